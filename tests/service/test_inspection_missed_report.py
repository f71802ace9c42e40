"""A finding the machine missed, added by people — the consensus of a calibration session, or an inspector's
whole-call review — is a finding of the call from then on, on both databases: in the call's findings report
(DESIGN §3 shape: `utterance` null for a call-level one, empty evidence, marked 人工补充), the CSV export,
the call page and the agent's score; it survives a re-scoring, an appeal can withdraw it, and deleting the
missed finding takes it away again."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import select

from conftest import World
from kefuqa.service.models import Finding, User
from kefuqa.service.scores import human_row
from kefuqa.service.usecases import missed
from kefuqa.service.usecases.context import Ctx

DESIGN_KEYS = {"rule", "name", "severity", "points", "utterance", "start", "end", "evidence", "message", "suggestion"}
CANDIDATES = ("CLS003", "INF002", "LNG005", "CLS001")  # deducting rules a good call does not break


def _report(w: World, call: int) -> dict[str, Any]:
    r = w.get("qa", f"/api/calls/{call}/report")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _added(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f.get("source") == "inspector"]


def _csv_row(w: World, call_id: str) -> dict[str, str]:
    r = w.get("qa", "/api/calls.csv")
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    return next(row for row in rows if row["会话编号"] == call_id)


def _fresh_call(w: World, agent: str) -> tuple[int, str, str]:
    """A good call of `agent`, its call id, and a deducting rule the machine did not report on it."""
    call = w.new_call(agent, "good")
    machine = {f["rule"] for f in w.findings("qa", call)}
    rule = next(r for r in CANDIDATES if r not in machine)
    return call, w.get("qa", f"/api/calls/{call}").json()["call_id"], rule


def test_a_missed_finding_of_an_adopted_consensus_counts_everywhere(world: World) -> None:
    qa2 = world.ensure_inspector()
    call, call_id, rule = _fresh_call(world, "B1")
    machine = sorted({f["rule"] for f in world.findings("qa", call)})
    before = _report(world, call)
    agent_before = world.get("qa", "/api/agents/B1").json()
    assert rule not in {t["rule"] for t in agent_before["top_rules"]}

    r = world.post("qa", "/api/calibration", json={"name": "漏报共识", "calls": [str(call)],
                                                   "inspectors": [world.users["qa1"], qa2]})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    for who in ("qa", "qa2"):
        assert world.client.put(f"/api/calibration/{sid}/calls/{call}", headers=world.h(who),
                                json={"rules": machine + [rule]}).status_code == 200
    assert world.post("qa", f"/api/calibration/{sid}/close").status_code == 200
    adopted = world.post("qa", f"/api/calibration/{sid}/calls/{call}/adopt")
    assert adopted.status_code == 200 and adopted.json()["missed"] == 1, adopted.text

    # the findings report: one more finding, in the DESIGN §3 shape, call-level, no evidence, marked
    report = _report(world, call)
    [f] = _added(report)
    assert DESIGN_KEYS <= set(f) and f["rule"] == rule
    assert f["utterance"] is None and f["start"] is None and f["end"] is None and f["evidence"] == ""
    assert f["message"].startswith("人工补充") and f["points"] < 0
    assert len(report["findings"]) == len(before["findings"]) + 1
    assert report["final_score"] == round(before["final_score"] + f["points"], 2)
    # the call's findings (API), the CSV export
    rows = [x for x in world.findings("qa", call) if x["rule"] == rule]
    assert [x["status"] for x in rows] == ["added"] and rows[0]["evidence"] == ""
    row = _csv_row(world, call_id)
    assert rule in row["扣分规则"].split() and row["人工补充"] == rule
    assert float(row["得分"]) == report["final_score"]
    # the agent's score and most violated rules
    agent = world.get("qa", "/api/agents/B1").json()
    assert agent["average"] < agent_before["average"]
    assert rule in {t["rule"] for t in agent["top_rules"]}
    # the call page says who found it and offers no review of it (nothing for a person to confirm)
    with world.as_browser("qa1") as client:
        page = client.get(f"/calls/{call}").text
    assert "人工补充" in page and f'action="/findings/{rows[0]["id"]}/review"' not in page
    refused = world.post("qa", f"/api/findings/{rows[0]['id']}/review", json={"verdict": "confirm"})
    assert refused.status_code == 409, refused.text
    # a re-scoring keeps it (same place, same cost)
    assert world.post("qa", f"/api/calls/{call}/rescore").status_code == 200
    again = _report(world, call)
    assert [(x["rule"], x["points"]) for x in _added(again)] == [(rule, f["points"])]
    assert again["final_score"] == report["final_score"]
    assert [x["status"] for x in world.findings("qa", call) if x["rule"] == rule] == ["added"]


def test_a_missed_finding_on_an_utterance_is_appealed_and_deleted(world: World) -> None:
    call, call_id, rule = _fresh_call(world, "A1")
    before = _report(world, call)
    utts = world.get("qa", f"/api/calls/{call}").json()["conversation"]["utterances"]
    r = world.post("qa", f"/api/calls/{call}/missed", json={"rule": rule, "utterance": 1, "comment": "没有称呼客户"})
    assert r.status_code == 201, r.text
    report = _report(world, call)
    [f] = _added(report)
    assert f["utterance"] == 1 and f["start"] == utts[1]["start"] and f["evidence"] == ""
    assert f["message"] == "人工补充：没有称呼客户"
    assert report["final_score"] == round(before["final_score"] + f["points"], 2) < before["final_score"]
    # the agent appeals it and the appeal is accepted: it no longer costs points
    row = next(x for x in world.findings("a1", call) if x["rule"] == rule)
    appeal = world.post("a1", f"/api/findings/{row['id']}/appeal", json={"reason": "我称呼了客户"})
    assert appeal.status_code == 201, appeal.text
    assert world.post("qa", f"/api/appeals/{appeal.json()['id']}/decision",
                      json={"decision": "accept", "reason": "录音里有称呼"}).status_code == 200
    assert _report(world, call)["final_score"] == before["final_score"]
    assert _csv_row(world, call_id)["人工补充"] == ""
    # a second one, deleted again: the report is the machine's once more
    r = world.post("qa", f"/api/calls/{call}/missed", json={"rule": rule})
    assert r.status_code == 201, r.text
    assert [x["utterance"] for x in _added(_report(world, call))] == [1, None]
    with world.wb.sessions() as db:
        missed.delete_missed(Ctx(world.wb, db, db.get(User, world.users["qa1"])), r.json()["id"])
    after = _report(world, call)
    assert [x["utterance"] for x in _added(after)] == [1]
    assert after["final_score"] == before["final_score"]


def _quality(w: World, rule: str) -> dict[str, Any]:
    r = w.get("admin", "/api/rules/quality")
    assert r.status_code == 200, r.text
    zero = {"findings": 0, "reviewed": 0, "confirmed": 0, "rejected": 0, "overturned": 0, "precision": None, "missed": 0}
    return next((row for row in r.json() if row["rule"] == rule), zero)


def _examples(w: World, call_id: str, rule: str) -> list[dict[str, Any]]:
    w.client.cookies.clear()
    w.browser_login(w.client, "qa1")
    try:
        r = w.client.get("/training-examples.jsonl")
    finally:
        w.client.cookies.clear()
    assert r.status_code == 200, r.text
    lines = [json.loads(x) for x in r.text.splitlines()]
    return [x for x in lines if x["call_id"] == call_id and x["rule"] == rule]


def test_an_appeal_that_withdraws_a_missed_finding_leaves_the_machines_precision_alone(world: World) -> None:
    """An accepted appeal makes an added finding `overturned`, like a machine's one an appeal withdrew; it still is
    no finding of the machine: the rule's precision does not count it, it is no longer missed (the inspector was
    wrong), and the training export has its utterance once, as a hard negative."""
    call, call_id, rule = _fresh_call(world, "A1")
    before = _quality(world, rule)
    r = world.post("qa", f"/api/calls/{call}/missed", json={"rule": rule, "utterance": 2, "comment": "漏了"})
    assert r.status_code == 201, r.text
    added = _quality(world, rule)
    assert added["missed"] == before["missed"] + 1
    assert [(x["y"], x["source"]) for x in _examples(world, call_id, rule)] == [(1, "review:missed:missed")]

    row = next(x for x in world.findings("a1", call) if x["rule"] == rule)
    appeal = world.post("a1", f"/api/findings/{row['id']}/appeal", json={"reason": "我没有违规"})
    assert appeal.status_code == 201, appeal.text
    assert world.post("qa", f"/api/appeals/{appeal.json()['id']}/decision",
                      json={"decision": "accept", "reason": "录音里没有问题"}).status_code == 200
    assert [x["status"] for x in world.findings("qa", call) if x["rule"] == rule] == ["overturned"]

    after = _quality(world, rule)
    machine = ("findings", "reviewed", "confirmed", "rejected", "overturned", "precision")
    assert {k: after[k] for k in machine} == {k: before[k] for k in machine}
    assert after["missed"] == before["missed"]
    [example] = _examples(world, call_id, rule)
    assert example["y"] == 0 and example["source"] == "review:missed:overturned" and example["utterance"] == 2


def test_a_machine_finding_without_message_or_evidence_is_the_machines(world: World) -> None:
    """`scores.human_row` is false, not NULL, on a machine's row with NULL message and evidence: negated, it keeps
    the row (rule precision, training export)."""
    call = world.new_call("B1", "refuse")
    with world.wb.sessions() as db:
        f = db.scalars(select(Finding).where(Finding.conversation_id == call, Finding.kind == "finding")).first()
        assert f is not None and f.status != "added"
        kept = (f.message, f.evidence)
        f.message, f.evidence = None, None
        db.flush()
        try:
            assert db.scalar(select(Finding.id).where(Finding.id == f.id, ~human_row())) == f.id
            assert db.scalar(select(Finding.id).where(Finding.id == f.id, human_row())) is None
        finally:
            f.message, f.evidence = kept
            db.commit()
