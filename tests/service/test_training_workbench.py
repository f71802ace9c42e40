"""Training in the workbench on SQLite and PostgreSQL: quizzes, scenario runs and drills stored as attempts,
graded by the active rulebook; bad answers refused with nothing stored; assignments, certification, progress;
an agent sees only their own attempts."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conftest import PASSWORD, World
from kefuqa.service.models import TrainingAssignment, TrainingAttempt
from kefuqa.training import load_bank, play

BANK, _ = load_bank()


def _client(w: World, username: str) -> tuple[TestClient, str]:
    c = TestClient(w.client.app)
    csrf = w.browser_login(c, username, PASSWORD)
    return c, csrf


def _count(w: World, model: Any = TrainingAttempt) -> int:
    with w.wb.sessions() as db:
        return int(db.scalar(select(func.count(model.id))) or 0)


def _quiz_form(module: str, csrf: str) -> dict[str, str]:
    form = {"csrf_token": csrf}
    for q in BANK.questions_of(module):
        if q.type == "truefalse":
            form[f"q_{q.id}"] = "+" if q.answer else "-"
        elif q.type == "single":
            form[f"q_{q.id}"] = str(q.answer)
        elif q.type == "multiple":
            for j in q.answer:
                form[f"q_{q.id}_{j}"] = "1"
        else:
            form[f"q_{q.id}"] = q.model
    return form


def test_quiz_all_right_is_stored_and_certifies(world: World) -> None:
    c, csrf = _client(world, "wangfang")
    before = _count(world)
    r = c.post("/training/quiz/hold-transfer", data=_quiz_form("hold-transfer", csrf), follow_redirects=False)
    assert r.status_code == 303, r.text
    page = c.get(r.headers["location"])
    n = len(BANK.questions_of("hold-transfer"))
    assert f"（{n}/{n}）" in page.text and "通过" in page.text
    assert _count(world) == before + 1
    home = c.get("/training")
    assert "已通过" in home.text


def test_quiz_with_bad_or_missing_answers_stores_nothing(world: World) -> None:
    c, csrf = _client(world, "wangfang")
    before = _count(world)
    form = _quiz_form("standard-language", csrf)
    rewrite = next(q for q in BANK.questions_of("standard-language") if q.type == "rewrite")
    for bad, why in [("", "未作答"), ("请" * 10_000, "过长"), ("<script>alert(1)</script>", "标记")]:
        form[f"q_{rewrite.id}"] = bad
        r = c.post("/training/quiz/standard-language", data=form)
        assert r.status_code == 422 and why in r.text and "未保存" in r.text
        assert "<script>alert(1)" not in r.text  # shown escaped, never as markup
    assert _count(world) == before


def test_scenario_run_replays_and_stores_only_at_the_end(world: World) -> None:
    c, csrf = _client(world, "lilei")
    sc = BANK.scenarios["grid-08-address"]
    with world.wb.sessions() as db:
        path = play(sc, world.wb.rulebooks.active(db).checker)
    before = _count(world)
    replies: list[str] = []
    for i, st in enumerate(path.steps):
        data = {"csrf_token": csrf, "n": str(len(replies)), "reply": st.reply}
        data.update({f"r{j}": r for j, r in enumerate(replies)})
        if i == 1:  # an empty reply first: refused, the run goes on where it was
            bad = dict(data, reply="  ")
            r = c.post(f"/training/scenarios/{sc.id}", data=bad)
            assert r.status_code == 422 and "回复为空" in r.text
        r = c.post(f"/training/scenarios/{sc.id}", data=data, follow_redirects=False)
        replies.append(st.reply)
        if i < len(path.steps) - 1:
            assert r.status_code == 200 and _count(world) == before
            if st.customer:
                assert st.customer in r.text
    assert r.status_code == 303
    page = c.get(r.headers["location"])
    assert "整通评分：100" in page.text and "没有扣分项" in page.text
    assert _count(world) == before + 1


def test_agent_sees_only_own_attempts_and_leader_sees_team(world: World) -> None:
    a1, csrf1 = _client(world, "wangfang")
    r = a1.post("/training/quiz/hold-transfer", data=_quiz_form("hold-transfer", csrf1), follow_redirects=False)
    own = r.headers["location"]
    b1, _ = _client(world, "zhaomin")
    assert b1.get(own).status_code == 404
    assert a1.get(own).status_code == 200
    lead1, _ = _client(world, "lead1")  # 一组: wangfang's team
    lead2, _ = _client(world, "lead2")
    assert lead1.get(own).status_code == 200 and lead2.get(own).status_code == 404
    assert b1.get("/training/agents/A1").status_code == 404
    assert b1.get("/training/team").status_code == 403
    assert b1.get("/training/scenarios/grid-01-bill/script").status_code == 403  # the script gives the answers away
    script = lead1.get("/training/scenarios/grid-01-bill/script")
    assert script.status_code == 200 and BANK.scenarios["grid-01-bill"].nodes["open"].model in script.text
    assert "触发规则 RSP001" in script.text


def test_leader_assigns_to_team_and_follows_completion(world: World) -> None:
    lead, csrf = _client(world, "lead1")
    team_id = re.search(r'value="t:(\d+)"', lead.get("/training/team").text)
    assert team_id
    before = _count(world, TrainingAssignment)
    due = (date.today() + timedelta(days=7)).isoformat()
    bad = lead.post("/training/assign", data={"csrf_token": csrf, "kind": "quiz", "ref_quiz": "complaints",
                                              "target": f"t:{team_id.group(1)}",
                                              "due": (date.today() - timedelta(days=1)).isoformat()})
    assert bad.status_code == 422 and "截止日期" in bad.text and _count(world, TrainingAssignment) == before
    r = lead.post("/training/assign", data={"csrf_token": csrf, "kind": "quiz", "ref_quiz": "complaints",
                                            "target": f"t:{team_id.group(1)}", "due": due}, follow_redirects=False)
    assert r.status_code == 303
    assert _count(world, TrainingAssignment) == before + 2  # A1 and A2
    a2, csrf2 = _client(world, "lilei")
    home = a2.get("/training")
    m = re.search(r'href="/training/quiz/complaints\?assignment=(\d+)"', home.text)
    assert m, home.text
    form = _quiz_form("complaints", csrf2)
    form["assignment"] = m.group(1)
    assert a2.post("/training/quiz/complaints", data=form, follow_redirects=False).status_code == 303
    with world.wb.sessions() as db:
        assert db.get(TrainingAssignment, int(m.group(1))).status == "done"
    page = lead.get("/training/team")
    assert "完成情况" in page.text and "A2" in page.text
    # someone else's assignment cannot be used
    b1, csrf3 = _client(world, "zhaomin")
    form["csrf_token"] = csrf3
    assert b1.post("/training/quiz/complaints", data=form).status_code == 404


def test_drill_from_own_flagged_utterances(world: World) -> None:
    a1, csrf = _client(world, "wangfang")
    page = a1.get("/training/drill")
    assert page.status_code == 200
    names = re.findall(r'name="(a_drill-\d+)"', page.text)
    assert names, "A1 has flagged calls in the samples"
    assert "您当时说" in page.text
    before = _count(world)
    r = a1.post("/training/drill", data={"csrf_token": csrf, **{n: "" for n in names}})
    assert r.status_code == 422 and "回复为空" in r.text and _count(world) == before
    r = a1.post("/training/drill", data={"csrf_token": csrf, **{n: "请您稍等，我帮您查询一下，非常抱歉。"
                                                                 for n in names}}, follow_redirects=False)
    assert r.status_code == 303 and _count(world) == before + 1
    assert 'href="/training/agents/A1"' in a1.get("/agents/A1").text  # from the agent's own page
    prog = a1.get("/training/agents/A1")
    assert prog.status_code == 200 and "质检平均分" in prog.text and "真实通话改写" in prog.text


def test_leader_assigns_a_drill_built_from_the_agents_calls(world: World) -> None:
    lead, csrf = _client(world, "lead1")
    due = (date.today() + timedelta(days=5)).isoformat()
    r = lead.post("/training/assign", data={"csrf_token": csrf, "kind": "drill", "target": "a:A1", "due": due},
                  follow_redirects=False)
    assert r.status_code == 303, r.text
    with world.wb.sessions() as db:
        a = db.scalars(select(TrainingAssignment).where(TrainingAssignment.kind == "drill")
                       .order_by(TrainingAssignment.id.desc())).first()
        assert a is not None and a.params["items"] and a.status == "open"
        aid, items = a.id, a.params["items"]
    assert all(it["original"] for it in items)  # the agent's own sentences, fixed at assignment
    lead2, csrf2 = _client(world, "lead2")  # another team's leader cannot assign to A1
    r = lead2.post("/training/assign", data={"csrf_token": csrf2, "kind": "drill", "target": "a:A1", "due": due})
    assert r.status_code == 404
    a1, csrf1 = _client(world, "wangfang")
    page = a1.get(f"/training/drill?assignment={aid}")
    assert all(it["original"] in page.text for it in items)
    answers = {f"a_{it['id']}": "非常抱歉，请您稍等，我马上为您查询，会在1个工作日内给您回复。" for it in items}
    r = a1.post("/training/drill", data={"csrf_token": csrf1, "assignment": str(aid), **answers},
                follow_redirects=False)
    assert r.status_code == 303
    with world.wb.sessions() as db:
        assert db.get(TrainingAssignment, aid).status == "done"


def test_company_training_files_in_the_data_dir(world: World) -> None:
    folder = world.wb.settings.data_dir / "training"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ours.yaml").write_text(
        "modules:\n  - {id: our-rules, name: 本公司规范, pass_mark: 100}\nquestions:\n"
        "  - {id: our-1, type: truefalse, module: our-rules, prompt: 本公司要求铃响三声内接听。, answer: true}\n",
        encoding="utf-8")
    (folder / "broken.yaml").write_text("questions:\n  - id: x\n    colour: red\n", encoding="utf-8")
    # valid YAML and schema, but wrong against the rulebook: linted on load, left out, shown to QA and admins
    (folder / "unlinted.yaml").write_text(
        "questions:\n  - {id: our-2, type: truefalse, module: our-rules, prompt: 第二题, answer: true, rules: [ZZZ999]}\n",
        encoding="utf-8")
    (folder / "loop.yaml").write_text(
        "scenarios:\n  - id: our-loop\n    module: our-rules\n    title: 兜圈子\n    start: a\n"
        "    poor: {replies: {a: 不知道}, expect: [LNG001]}\n    nodes:\n"
        "      a: {customer: 你好, model: 您好，请问有什么可以帮您？, next: b}\n"
        "      b: {customer: 还是那个问题, model: 您好，请问有什么可以帮您？, next: a}\n", encoding="utf-8")
    try:
        qa, _ = _client(world, "qa1")
        page = qa.get("/training")
        assert "本公司规范" in page.text
        assert "broken.yaml:2" in page.text and "缺少 type" in page.text
        assert "unlinted.yaml:2" in page.text and "未知的规则编号 ZZZ999" in page.text
        assert "loop.yaml:" in page.text and "步骤之间循环" in page.text
        assert world.get("qa", "/api/training/scenarios").json() and "our-loop" not in {
            s["id"] for s in world.get("qa", "/api/training/scenarios").json()}
        assert [q["id"] for q in world.get("qa", "/api/training/modules/our-rules/questions").json()] == ["our-1"]
        a1, csrf = _client(world, "wangfang")
        assert "broken.yaml" not in a1.get("/training").text  # agents are not shown the authoring errors
        r = a1.post("/training/quiz/our-rules", data={"csrf_token": csrf, "q_our-1": "+"}, follow_redirects=False)
        assert r.status_code == 303
        assert "（1/1）" in a1.get(r.headers["location"]).text
    finally:
        for f in folder.iterdir():
            f.unlink()


def test_team_page_names_the_weak_rules_from_practice(world: World) -> None:
    a1, csrf = _client(world, "wangfang")
    form = _quiz_form("hold-transfer", csrf)
    q = next(q for q in BANK.questions_of("hold-transfer") if q.type == "truefalse" and q.rules)
    form[f"q_{q.id}"] = "-" if q.answer else "+"
    assert a1.post("/training/quiz/hold-transfer", data=form, follow_redirects=False).status_code == 303
    lead, _ = _client(world, "lead1")
    weak = re.search(r'data-testid="weak">(.*?)</section>', lead.get("/training/team").text, re.S)
    assert weak
    with world.wb.sessions() as db:
        rules = world.wb.rulebooks.active(db).checker.rulebook.by_id
    for rid in q.rules:
        assert f"{rid} {rules[rid].name}（" in weak.group(1), weak.group(1)
