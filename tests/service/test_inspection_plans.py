"""Review plans on both databases: seeded sample of a week, balanced assignment, the inspector's queue,
missed findings with recall on the rule-quality page, training examples; role scoping."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import svc_samples as samples

from conftest import World


def _week_calls(day: date) -> list[tuple[str, str, str]]:
    """(call id, agent, kind) of the seeded calls in the local week (Monday to Sunday) of `day`."""
    monday = day - timedelta(days=day.weekday())
    return [(cid, a, k) for cid, a, d, k in samples.PLAN if monday <= samples.on_day(d) < monday + timedelta(days=7)]


def _plan(w: World, who: str = "qa", **body: Any) -> Any:
    return w.post(who, "/api/plans", json={"name": "第一周抽检", "week": samples.on_day(4).isoformat(), **body})


def test_a_plan_samples_the_week_reproducibly_and_keeps_every_must_call(world: World) -> None:
    week = _week_calls(samples.on_day(4))
    r = _plan(world, per_agent=1, seed=1234, inspectors=[world.users["qa1"]])
    assert r.status_code == 201, r.text
    plan = r.json()
    got = {a["call_id"]: a["reason"] for a in plan["assignments"]}
    must = {cid: ("fatal" if k == "fatal" else "complaint") for cid, _, k in week if k in ("fatal", "complaint")}
    assert {c: got[c] for c in must} == must
    randoms = [c for c, reason in got.items() if reason == "random"]
    agents_with_rest = {a for cid, a, k in week if cid not in must}
    assert len(randoms) == len(agents_with_rest)  # one per agent that has calls left
    assert {a for cid, a, _ in week if cid in randoms} == agents_with_rest
    assert set(got) <= {cid for cid, _, _ in week}
    assert plan["seed"] == 1234 and plan["summary"]["candidates"] == len(week)
    local = datetime.fromisoformat(plan["week_start"]).astimezone(ZoneInfo(world.wb.settings.timezone))
    assert local.date() == samples.on_day(4) - timedelta(days=samples.on_day(4).weekday())
    again = _plan(world, per_agent=1, seed=1234, inspectors=[world.users["qa1"]]).json()
    assert {a["call_id"]: a["reason"] for a in again["assignments"]} == got
    # stored with the plan: a plan page shows the seed
    world.client.cookies.clear()
    world.browser_login(world.client, "qa1")
    page = world.client.get(f"/plans/{plan['id']}")
    assert page.status_code == 200 and 'data-testid="seed">1234<' in page.text
    world.client.cookies.clear()


def test_assignment_is_balanced_between_inspectors(world: World) -> None:
    admin_id = 1
    before = {u: _open(world, who) for u, who in ((world.users["qa1"], "qa"), (admin_id, "admin"))}
    r = _plan(world, per_agent=5, seed=9, inspectors=[world.users["qa1"], admin_id])
    assert r.status_code == 201, r.text
    new = {u: sum(1 for a in r.json()["assignments"] if a["inspector"] == u) for u in before}
    after = {u: before[u] + new[u] for u in before}
    assert sum(new.values()) == len(r.json()["assignments"]) > 0
    gap_before = abs(before[world.users["qa1"]] - before[admin_id])
    assert abs(after[world.users["qa1"]] - after[admin_id]) <= max(1, gap_before - sum(new.values()))


def _open(w: World, who: str) -> int:
    r = w.get(who, "/api/queue")
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def test_queue_progress_and_done(world: World) -> None:
    assert _plan(world, per_agent=1, seed=3, inspectors=[world.users["qa1"]]).status_code == 201  # self-contained
    r = world.get("qa", "/api/queue")
    body = r.json()
    assert body["items"], body
    first = body["items"][0]
    assert first["due_at"] <= body["items"][-1]["due_at"]
    done = world.post("qa", f"/api/queue/{first['id']}/done")
    assert done.status_code == 200 and done.json()["status"] == "done"
    after = world.get("qa", "/api/queue").json()
    assert after["progress"]["done"] == body["progress"]["done"] + 1
    assert first["id"] not in {i["id"] for i in after["items"]}
    assert first["id"] in {i["id"] for i in world.get("qa", "/api/queue", params={"done": "true"}).json()["items"]}


def test_roles_without_plans_are_refused(world: World) -> None:
    for who in ("a1", "lead1"):
        assert _plan(world, who).status_code == 403
        assert world.get(who, "/api/queue").status_code == 403
        assert world.post(who, f"/api/calls/{world.calls['call-a1-01']}/missed", json={"rule": "LNG005"}).status_code == 403
    # another inspector's assignment is missing for qa1; an administrator may open it
    mine = world.get("admin", "/api/queue").json()["items"]
    if mine:
        assert world.post("qa", f"/api/queue/{mine[0]['id']}/done").status_code == 404


def test_bad_plans_are_refused_with_a_reason(world: World) -> None:
    r = _plan(world, per_agent=99)
    assert r.status_code == 422 and "0–50" in r.json()["detail"]
    r = _plan(world, inspectors=[world.users["wangfang"]])
    assert r.status_code == 422 and "不是在职质检员" in r.json()["detail"]
    r = _plan(world, score_min=90, score_max=10)
    assert r.status_code == 422


def test_missed_findings_give_recall_and_training_examples(world: World) -> None:
    call = world.new_call("A2", "refuse")
    findings = [f for f in world.findings("qa", call) if f["kind"] == "finding"]
    target = next(f for f in findings if f["utterance"] is not None)
    r = world.post("qa", f"/api/findings/{target['id']}/review", json={"verdict": "confirm"})
    assert r.status_code == 200, r.text
    before = {row["rule"]: row for row in world.get("admin", "/api/rules/quality").json()}
    r = world.post("qa", f"/api/calls/{call}/missed", json={"rule": target["rule"], "utterance": 2, "comment": "漏了"})
    assert r.status_code == 201, r.text
    row = {row["rule"]: row for row in world.get("admin", "/api/rules/quality").json()}[target["rule"]]
    assert row["missed"] == before[target["rule"]]["missed"] + 1
    assert row["recall"] == round(row["confirmed"] / (row["confirmed"] + row["missed"]), 3)
    bad = world.post("qa", f"/api/calls/{call}/missed", json={"rule": "XYZ999"})
    assert bad.status_code == 422 and "XYZ999" in bad.json()["detail"]
    bad = world.post("qa", f"/api/calls/{call}/missed", json={"rule": "LNG005", "utterance": 999})
    assert bad.status_code == 422 and "超出范围" in bad.json()["detail"]
    world.client.cookies.clear()
    world.browser_login(world.client, "qa1")
    lines = [json.loads(x) for x in world.client.get("/training-examples.jsonl").text.splitlines()]
    world.client.cookies.clear()
    data = world.get("qa", f"/api/calls/{call}").json()
    texts = [u["text"] for u in data["conversation"]["utterances"]]
    call_id = data["conversation"]["id"]
    mine = {(x["source"], x["utterance"]): x for x in lines if x["call_id"] == call_id and x["rule"] == target["rule"]}
    missed_line = mine[("review:missed:missed", 2)]
    assert set(missed_line) >= {"id", "text", "label", "y", "role", "industry", "register", "source", "split"}
    assert missed_line["y"] == 1 and missed_line["text"] == texts[2]
    confirmed = mine[("review:finding:confirmed", target["utterance"])]
    assert confirmed["y"] == 1 and confirmed["text"] == texts[target["utterance"]]


def test_plan_week_bounds_are_local_time(world: World) -> None:
    tz = ZoneInfo(world.wb.settings.timezone)
    plan = _plan(world, per_agent=0, seed=1, inspectors=[world.users["qa1"]]).json()
    start = datetime.fromisoformat(plan["week_start"]).astimezone(tz)
    assert start.weekday() == 0 and (start.hour, start.minute) == (0, 0)
