"""Issue 13 behaviours the other inspection tests left unasserted, on both databases: a plan's filters (team,
channel, rule, score band), appealed calls always sampled, the least confident judgement findings first read
from the stored reports, due dates; adopting a calibration consensus that differs from the machine (findings
rejected, missed rules recorded); whether a rule's violations went down after a coaching note; trends per team
with the change since the week before; the assignment page's transcript beside the findings; the weekly
summary's CSV and printable page; the retention command removing recordings."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

import svc_samples as samples
from sqlalchemy import select, update

from conftest import World
from kefuqa.service.models import CoachingItem, Conversation, MissedFinding, Score, Team

DAY = 4  # sample day 4: the week the plans sample


def _plan(w: World, **body: Any) -> dict[str, Any]:
    r = w.post("qa", "/api/plans", json={"name": "筛选抽检", "week": samples.on_day(DAY).isoformat(),
                                         "inspectors": [w.users["qa1"]], "seed": 5, **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _week_ids(w: World) -> dict[int, tuple[int | None, float | None, str | None]]:
    """Numeric id → (agent id, score, channel) of every stored call in the local week of sample day DAY."""
    from kefuqa.service.usecases.plans import week_bounds

    start, end = week_bounds(samples.on_day(DAY), w.wb.settings.timezone)
    with w.wb.sessions() as db:
        rows = db.execute(select(Conversation.id, Conversation.agent_id, Conversation.score, Conversation.channel)
                          .where(Conversation.call_at >= start, Conversation.call_at < end)).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _team_id(w: World, name: str) -> int:
    with w.wb.sessions() as db:
        return int(db.scalar(select(Team.id).where(Team.name == name)))  # type: ignore[arg-type]


def _agent_of(w: World, code: str) -> int:
    from kefuqa.service.models import Agent

    with w.wb.sessions() as db:
        return int(db.scalar(select(Agent.id).where(Agent.code == code)))  # type: ignore[arg-type]


def test_plan_filters_narrow_what_is_sampled(world: World) -> None:
    week = _week_ids(world)

    def sampled(**body: Any) -> set[int]:
        return {a["call"] for a in _plan(world, per_agent=50, **body)["assignments"]}

    everything = sampled()
    assert everything == set(week)  # 50 per agent: every call of the week
    got = sampled(team=_team_id(world, "二组"))
    assert got and {week[c][0] for c in got} == {_agent_of(world, "B1")}
    assert got == {c for c, (agent, _, _) in week.items() if agent == _agent_of(world, "B1")}
    # a rule: only calls with a current finding of it (the refusals)
    refusals = {world.calls[cid] for cid, _, _, k in samples.PLAN if k == "refuse"} & everything
    assert refusals and sampled(rule="RSP002") == refusals
    # a score band
    scores = {c: s for c, (_, s, _) in week.items() if s is not None}
    low, high = min(scores.values()), max(scores.values())
    assert low < high, scores
    cut = (low + high) / 2
    band = sampled(score_max=cut)
    assert band and band == {c for c, s in scores.items() if s <= cut} and band != everything
    assert sampled(score_min=cut) == {c for c, s in scores.items() if s >= cut}
    # a channel: every sample call is a phone call
    assert sampled(channel="phone") == everything and sampled(channel="chat") == set()


def test_an_appealed_call_is_always_sampled_and_due_dates_follow_the_plan(world: World) -> None:
    call = world.new_call("A2", "refuse", day=DAY)
    finding = world.findings("a2", call)[0]
    r = world.post("a2", f"/api/findings/{finding['id']}/appeal", json={"reason": "客户同意明天上门"})
    assert r.status_code == 201, r.text
    before = datetime.now(timezone.utc)
    plan = _plan(world, per_agent=0, due_days=5)
    after = datetime.now(timezone.utc)
    reasons = {a["id"]: a["reason"] for a in plan["assignments"]}
    assert [a["call"] for a in plan["assignments"] if a["reason"] == "appeal"] == [call]
    assert set(reasons.values()) <= {"fatal", "complaint", "appeal"}  # per_agent 0: nothing at random
    for a in plan["assignments"]:
        due = datetime.fromisoformat(a["due_at"])
        due = due if due.tzinfo else due.replace(tzinfo=timezone.utc)
        assert before + timedelta(days=5) - timedelta(seconds=1) <= due <= after + timedelta(days=5, seconds=1)
    without = _plan(world, per_agent=0, include_appeal=False)
    assert call not in {a["call"] for a in without["assignments"]}


def test_the_least_confident_judgement_findings_come_first(world: World) -> None:
    """The plan reads each call's lowest judgement-model confidence from its stored report."""
    calls = [world.new_call("B1", "good", day=DAY) for _ in range(3)]
    confidence = dict(zip(calls, (0.003, 0.001, 0.002), strict=True))  # below any real model finding's
    with world.wb.sessions() as db, db.begin():
        for c in calls:
            score = db.scalar(select(Score).join(Conversation, Conversation.current_score_id == Score.id)
                              .where(Conversation.id == c))
            assert score is not None
            report = dict(score.report)
            report["findings"] = [*report.get("findings", []),
                                  {"rule": "RSP002", "confidence": confidence[c], "judge": "ngram:test"}]
            score.report = report
    plan = _plan(world, per_agent=2, order="low_confidence", team=_team_id(world, "二组"))
    picked = [(a["call"], a["reason"]) for a in plan["assignments"]
              if a["reason"] in ("low_confidence", "random")]
    assert sorted(picked, key=lambda p: confidence.get(p[0], 1.0)) == [(calls[1], "low_confidence"),
                                                                            (calls[2], "low_confidence")]
    assert plan["summary"]["reasons"]["low_confidence"] == 2



def test_a_consensus_unlike_the_machine_becomes_the_reference(world: World) -> None:
    world.ensure_inspector()
    call = world.new_call("A1", "refuse")
    machine = [f for f in world.findings("qa", call) if f["status"] == "open"]
    assert len({f["rule"] for f in machine}) >= 2, machine
    dropped = machine[0]["rule"]
    kept = sorted({f["rule"] for f in machine} - {dropped})
    extra = "CLS003"  # a rule the machine did not report on this call
    assert extra not in {f["rule"] for f in machine}
    r = world.post("qa", "/api/calibration", json={"name": "共识不同于机器", "calls": [str(call)],
                                                   "inspectors": [world.users["qa1"], world.users["qa2"], 1]})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    marks = {"qa": kept + [extra], "qa2": kept + [extra], "admin": kept + [dropped]}  # dropped: 1 of 3
    for who, rules in marks.items():
        assert world.client.put(f"/api/calibration/{sid}/calls/{call}", headers=world.h(who),
                                json={"rules": rules}).status_code == 200
    assert world.post("qa", f"/api/calibration/{sid}/close").status_code == 200
    body = world.get("qa", f"/api/calibration/{sid}").json()["agreement"]
    assert body["machine"]["percent"] < 1.0
    r = world.post("qa", f"/api/calibration/{sid}/calls/{call}/adopt")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["missed"] == 1 and out["rejected"] == sum(1 for f in machine if f["rule"] == dropped)
    after = {f["id"]: f for f in world.findings("qa", call)}
    for f in machine:
        assert after[f["id"]]["status"] == ("rejected" if f["rule"] == dropped else "confirmed"), f
    with world.wb.sessions() as db:
        missed = list(db.scalars(select(MissedFinding).where(MissedFinding.conversation_id == call)))
    assert [(m.rule, m.source) for m in missed] == [(extra, "calibration")]
    again = world.post("qa", f"/api/calibration/{sid}/calls/{call}/adopt").json()
    assert again["missed"] == 0 and again["confirmed"] == again["rejected"] == 0  # adopting twice changes nothing


def _rate(w: World, agent: str, rule: str, start: datetime, end: datetime) -> tuple[float | None, int]:
    with w.wb.sessions() as db:
        ids = list(db.scalars(select(Conversation.id).where(
            Conversation.agent_id == _agent_of(w, agent), Conversation.call_at >= start, Conversation.call_at < end)))
    hits = sum(1 for c in ids for f in w.findings("qa", c)
               if f["rule"] == rule and f["status"] not in ("rejected", "overturned"))
    return (round(hits * 100 / len(ids), 1) if ids else None), len(ids)


def test_the_agent_page_says_whether_violations_went_down_after_coaching(world: World) -> None:
    """A note dated eight days back: the 30 days before it against the days since, for B1's calls."""
    fatal = world.calls["call-b1-03"]
    rule = "LNG001"  # 服务禁语, the 红线 of the fatal sample call
    down = world.post("lead2", "/api/coaching", json={"call": fatal, "note": "红线用语一次都不能有",
                                                      "finding": next(f["id"] for f in world.findings("qa", fatal)
                                                                      if f["rule"] == rule)})
    refusal = world.calls["call-b1-02"]
    rf = next(f for f in world.findings("qa", refusal) if f["rule"] == "RSP002")
    up = world.post("lead2", "/api/coaching", json={"call": refusal, "finding": rf["id"], "note": "拒绝时给出替代方案"})
    assert down.status_code == up.status_code == 201, (down.text, up.text)
    at = datetime.now(timezone.utc) - timedelta(days=8)
    with world.wb.sessions() as db, db.begin():
        db.execute(update(CoachingItem).where(CoachingItem.id.in_([down.json()["id"], up.json()["id"]]))
                   .values(created_at=at))
    for _ in range(3):  # since the note: good calls and refusals, no 红线
        world.new_call("B1", "good", day=17)
        world.new_call("B1", "refuse", day=18)
    items = {i["id"]: i for i in world.get("b1", "/api/coaching").json()}
    now = datetime.now(timezone.utc)
    for item, r in ((down.json()["id"], rule), (up.json()["id"], "RSP002")):
        effect = items[item]["effect"]
        before, n_before = _rate(world, "B1", r, at - timedelta(days=30), at)
        after, n_after = _rate(world, "B1", r, at, now)
        assert (effect["before"], effect["calls_before"], effect["after"], effect["calls_after"]) == (
            before, n_before, after, n_after), (r, effect)
        assert n_after >= 6 and effect["went_down"] == (after is not None and before is not None and after < before)
    assert items[down.json()["id"]]["effect"]["went_down"] is True  # no 红线 since
    assert items[up.json()["id"]]["effect"]["went_down"] is False  # half the calls since are refusals
    with world.as_browser("zhaomin") as client:
        page = client.get("/agents/B1").text
    assert 'data-testid="coaching-panel"' in page and "↓ 已下降" in page and "未下降" in page


def test_trends_per_team_with_the_change_since_last_week(world: World) -> None:
    t = world.get("qa", "/api/trends", params={"weeks": 3, "week": samples.on_day(DAY).isoformat()}).json()
    starts = [date.fromisoformat(d) for d in t["weeks"]]
    from kefuqa.service.usecases.trends import _utc

    tz = world.wb.settings.timezone
    bounds = [_utc(d, tz) for d in starts] + [_utc(starts[-1] + timedelta(days=7), tz)]
    teams = {s["name"]: s for s in t["teams"]}
    assert {"一组", "二组"} <= set(teams)
    for name, agents in (("一组", ("A1", "A2")), ("二组", ("B1",))):
        s = teams[name]
        for i in range(len(starts)):
            calls, hits = 0, 0
            with world.wb.sessions() as db:
                ids = list(db.scalars(select(Conversation.id).where(
                    Conversation.agent_id.in_([_agent_of(world, a) for a in agents]),
                    Conversation.call_at >= bounds[i], Conversation.call_at < bounds[i + 1])))
            calls = len(ids)
            hits = sum(1 for c in ids for f in world.findings("qa", c) if f["status"] not in ("rejected", "overturned"))
            assert s["counts"][i] == hits, (name, i)
            assert s["rates"][i] == (round(hits * 100 / calls, 2) if calls else None), (name, i)
        expected = None if None in s["rates"][-2:] else round(s["rates"][-1] - s["rates"][-2], 2)
        assert s["change"] == expected
    for s in t["rules"]:
        expected = None if None in s["rates"][-2:] else round(s["rates"][-1] - s["rates"][-2], 2)
        assert s["change"] == expected, s
    lead = world.get("lead2", "/api/trends", params={"weeks": 3, "week": samples.on_day(DAY).isoformat()}).json()
    assert [s["name"] for s in lead["teams"]] == ["二组"] and lead["teams"][0]["counts"] == teams["二组"]["counts"]


def test_the_assignment_shows_the_transcript_beside_each_finding(world: World) -> None:
    call = world.new_call("A1", "refuse", day=DAY)
    plan = _plan(world, per_agent=50, team=_team_id(world, "一组"))
    a = next(x for x in plan["assignments"] if x["call"] == call)
    assert a["inspector"] == world.users["qa1"]
    data = world.get("qa", f"/api/calls/{call}").json()
    texts = [u["text"] for u in data["conversation"]["utterances"]]
    with world.as_browser("qa1") as client:
        page = client.get(f"/queue/{a['id']}").text
    items = re.findall(r'<li class="utt (\w+)" id="u(\d+)">(.*?)</li>', page, re.S)
    assert [int(i) for _, i, _ in items] == list(range(len(texts)))
    plain = [re.sub(r"<[^>]+>", "", body) for _, _, body in items]
    for i, t in enumerate(texts):
        assert t in plain[i], (i, t)
    for f in data["findings"]:
        assert f'data-finding="{f["id"]}"' in page
        if f["utterance"] is not None:  # the finding links to its utterance, which carries the rule
            assert f'href="#u{f["utterance"]}"' in page and f["rule"] in plain[f["utterance"]]
    assert "截止" in page and "添加漏报" in page


def test_the_weekly_summary_csv_and_page_carry_the_figures(world: World) -> None:
    import csv
    import io

    week = samples.on_day(DAY).isoformat()
    t = world.get("qa", "/api/trends", params={"weeks": 2, "week": week}).json()
    with world.as_browser("qa1") as client:
        r = client.get(f"/trends.csv?weeks=2&week={week}")
        page = client.get(f"/trends/weekly?week={week}").text
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    last = t["weeks"][-1]
    for kind, series, key in (("规则", t["rules"], "key"), ("班组", t["teams"], "name")):
        assert series, kind
        for s in series:
            row = next(x for x in rows if x["类别"] == kind and x["规则/班组"] == s[key] and x["周开始"] == last)
            assert row["违规次数"] == str(s["counts"][-1])
            assert row["每百通违规"] == ("" if s["rates"][-1] is None else f"{s['rates'][-1]:.2f}")
            assert row["较上周变化"] == ("" if s["change"] is None else f"{s['change']:+.2f}")
            assert row["上升预警"] == ("是" if s["rising"] else "")
    # the printable page: this week against the last, every team, a print button and the print stylesheet
    assert f"质检周报：{last}" in page and "data-print" in page and "/static/inspection.css" in page
    for s in t["teams"]:
        assert s["name"] in page
    for s in t["rules"][:20]:
        assert s["key"] in page
    assert f'href="/trends.csv?weeks=2&amp;week={last}"' in page
    css = world.client.get("/static/inspection.css").text
    assert "@media print" in css


def test_the_retention_command_deletes_old_calls_and_their_recordings(world: World) -> None:
    import uuid

    from typer.testing import CliRunner

    from kefuqa.cli import app

    old, kept = world.new_call("A2", "good"), world.new_call("A2", "good")
    name = f"{uuid.uuid4().hex}.wav"
    path = world.wb.audio.folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF0000WAVE")
    with world.wb.sessions() as db, db.begin():
        db.execute(update(Conversation).where(Conversation.id == old).values(
            call_at=datetime.now(timezone.utc) - timedelta(days=800), audio_file=name, has_audio=True))
    s = world.wb.settings
    r = CliRunner().invoke(app, ["retention", "apply", "--database-url", s.database_url, "--data-dir", str(s.data_dir)],
                           env={"KEFUQA_RETENTION_DAYS": "730"})
    assert r.exit_code == 0, r.output
    assert "保留 730 天" in r.output
    assert world.get("admin", f"/api/calls/{old}").status_code == 404
    assert world.get("admin", f"/api/calls/{kept}").status_code == 200
    assert not path.exists()


def _hidden_csrf(page: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, "no CSRF token on the page"
    return m.group(1)


def test_whole_call_review_on_the_assignment_page(world: World) -> None:
    call = world.new_call("A1", "refuse", day=DAY)
    other = world.new_call("A2", "refuse", day=DAY)
    plan = _plan(world, per_agent=50, team=_team_id(world, "一组"))
    a = next(x for x in plan["assignments"] if x["call"] == call)
    first, second = world.findings("qa", call)[:2]
    foreign = world.findings("qa", other)[0]
    r = world.post("qa", f"/api/calls/{other}/missed", json={"rule": "INF002", "comment": "另一通"})
    assert r.status_code == 201, r.text
    foreign_missed = r.json()["id"]
    with world.as_browser("qa1") as client:
        base = f"/queue/{a['id']}"
        csrf = _hidden_csrf(client.get(base).text)
        r = client.post(f"{base}/findings/{first['id']}", data={"csrf_token": csrf, "verdict": "confirm"},
                        follow_redirects=False)
        assert r.status_code == 303
        r = client.post(f"{base}/findings/{second['id']}", data={"csrf_token": csrf, "verdict": "reject", "reason": ""})
        assert r.status_code == 422  # a rejection needs its reason
        r = client.post(f"{base}/findings/{second['id']}", data={"csrf_token": csrf, "verdict": "reject",
                                                                  "reason": "客户同意改约"}, follow_redirects=False)
        assert r.status_code == 303
        r = client.post(f"{base}/missed", data={"csrf_token": csrf, "rule": "INF002", "utterance": "2",
                                                "comment": "没有称呼客户"}, follow_redirects=False)
        assert r.status_code == 303
        # only this call's findings and missed findings are handled through this assignment
        r = client.post(f"{base}/findings/{foreign['id']}", data={"csrf_token": csrf, "verdict": "reject",
                                                                   "reason": "不是这通"})
        assert r.status_code == 404
        r = client.post(f"{base}/missed/{foreign_missed}/delete", data={"csrf_token": csrf})
        assert r.status_code == 404
        page = client.get(base).text
        mine = re.findall(rf'action="{base}/missed/(\d+)/delete"', page)
        assert len(mine) == 1 and "没有称呼客户" in page
        r = client.post(f"{base}/missed/{mine[0]}/delete", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303 and "没有称呼客户" not in client.get(base).text
    status = {f["id"]: f["status"] for f in world.findings("qa", call)}
    assert status[first["id"]] == "confirmed" and status[second["id"]] == "rejected"
    assert {f["id"]: f["status"] for f in world.findings("qa", other)}[foreign["id"]] == "open"
    with world.wb.sessions() as db:
        assert db.get(MissedFinding, foreign_missed) is not None


def test_a_plan_records_its_conditions_and_they_reproduce_the_sample(world: World) -> None:
    team = _team_id(world, "一组")
    plan = _plan(world, per_agent=2, order="low_confidence", team=team, score_max=99, include_appeal=False,
                 due_days=4, seed=2024)
    params = dict(plan["params"])
    assert params["team"] == team and params["order"] == "low_confidence" and params["include_appeal"] is False
    again = world.post("qa", "/api/plans", json={"name": "按记录重抽", **params, "seed": plan["seed"]})
    assert again.status_code == 201, again.text
    assert {(a["call"], a["reason"]) for a in again.json()["assignments"]} == {
        (a["call"], a["reason"]) for a in plan["assignments"]}
    with world.as_browser("qa1") as client:
        page = client.get(f"/plans/{plan['id']}").text
    shown = re.search(r'data-testid="conditions">(.*?)</p>', page, re.S)
    assert shown, "no sampling conditions on the plan page"
    text = re.sub(r"<[^>]+>", " ", shown.group(1))
    for words in ("按模型置信度最低优先抽 2 通", "必抽：红线、客户投诉", "班组：一组", "分数：–99", "完成期限 4 天", "质检员：qa1"):
        assert words in text, (words, text)
    assert "申诉" not in text
