"""Data lifecycle on both databases: deleting a call (audited, recording removed when no call uses it),
retention by age, the export of everything about one agent."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import svc_samples as samples
from sqlalchemy import select, update

from conftest import World
from kefuqa.service.cli_retention import retention_days
from kefuqa.service.models import AuditEntry, CallText, Conversation, utcnow
from kefuqa.service.usecases import Ctx
from kefuqa.service.usecases.lifecycle import apply_retention


def _audits(w: World, action: str) -> list[AuditEntry]:
    with w.wb.sessions() as db:
        return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def test_delete_a_call_with_a_reason(world: World) -> None:
    call = world.new_call("A1", "fatal")
    r = world.post("qa", f"/api/calls/{call}/delete", json={"reason": "客户要求删除"})
    assert r.status_code == 403
    r = world.post("admin", f"/api/calls/{call}/delete", json={"reason": " "})
    assert r.status_code == 422 and "原因" in r.json()["detail"]
    r = world.post("admin", f"/api/calls/{call}/delete", json={"reason": "客户要求删除个人信息"})
    assert r.status_code == 200, r.text
    assert world.get("admin", f"/api/calls/{call}").status_code == 404
    with world.wb.sessions() as db:
        assert db.get(CallText, call) is None  # the transcript index goes with it
    last = _audits(world, "conversation.delete")[-1]
    assert last.detail["reason"] == "客户要求删除个人信息" and last.object_id == str(call)
    assert world.post("admin", f"/api/calls/{call}/delete", json={"reason": "再删一次"}).status_code == 404


def test_a_shared_recording_goes_with_the_last_call(world: World) -> None:
    a, b = world.new_call("A2", "good"), world.new_call("A2", "good")
    name = f"{uuid.uuid4().hex}.wav"
    path = world.wb.audio.folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF0000WAVE")
    with world.wb.sessions() as db, db.begin():
        db.execute(update(Conversation).where(Conversation.id.in_([a, b])).values(audio_file=name, has_audio=True))
    r = world.post("admin", f"/api/calls/{a}/delete", json={"reason": "重复导入"})
    assert r.status_code == 200 and r.json()["audio_removed"] == 0 and path.exists()
    r = world.post("admin", f"/api/calls/{b}/delete", json={"reason": "重复导入"})
    assert r.status_code == 200 and r.json()["audio_removed"] == 1 and not path.exists()


def test_retention_deletes_only_old_calls(world: World) -> None:
    old = world.new_call("B1", "good")
    with world.wb.sessions() as db, db.begin():
        db.execute(update(Conversation).where(Conversation.id == old).values(call_at=utcnow() - timedelta(days=400)))
    with world.wb.sessions() as db:
        admin_ctx = Ctx(world.wb, db)
        dry = apply_retention(admin_ctx, 365, dry_run=True)
        assert dry.calls == 1 and dry.dry_run
        done = apply_retention(admin_ctx, 365)
    assert done.calls == 1
    assert world.get("admin", f"/api/calls/{old}").status_code == 404
    for cid in samples.PLAN[:3]:
        assert world.get("admin", f"/api/calls/{world.calls[cid[0]]}").status_code == 200
    assert _audits(world, "retention.apply")[-1].detail["calls"] == 1


def test_retention_days_come_from_the_option_or_the_environment() -> None:
    assert retention_days(30, {}) == 30
    assert retention_days(None, {"KEFUQA_RETENTION_DAYS": "180"}) == 180
    for env in ({}, {"KEFUQA_RETENTION_DAYS": "半年"}, {"KEFUQA_RETENTION_DAYS": "0"}):
        with pytest.raises(ValueError, match="KEFUQA_RETENTION_DAYS|--days"):
            retention_days(None, env)


def test_export_everything_about_one_agent(world: World) -> None:
    assert world.get("qa", "/api/agents/A1/export").status_code == 403
    r = world.get("admin", "/api/agents/A1/export")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["agent"]["code"] == "A1" and data["agent"]["team"] == "一组"
    with world.wb.sessions() as db:
        expected = set(db.scalars(select(Conversation.call_id).join(Conversation.agent).where(
            Conversation.agent.has(code="A1"))))
    assert {c["call_id"] for c in data["calls"]} == expected
    fatal = next(c for c in data["calls"] if c["call_id"] == "call-a1-02")
    assert fatal["conversation"]["utterances"] and any(f["rule"] == "LNG001" for f in fatal["findings"])
    assert _audits(world, "agent.export")[-1].object_id == "A1"


def test_retention_command(world: World) -> None:
    from typer.testing import CliRunner

    from kefuqa.cli import app

    s = world.wb.settings
    args = ["retention", "apply", "--dry-run", "--database-url", s.database_url, "--data-dir", str(s.data_dir)]
    r = CliRunner().invoke(app, args, env={"KEFUQA_RETENTION_DAYS": "3650"})
    assert r.exit_code == 0, r.output
    assert "保留 3650 天" in r.output and "共 0 通（试运行，未删除）" in r.output
    r = CliRunner().invoke(app, args, env={"KEFUQA_RETENTION_DAYS": "很久"})
    assert r.exit_code == 2 and "KEFUQA_RETENTION_DAYS='很久' 不是正整数天数" in r.output


def test_the_agent_export_holds_accounts_reviews_appeals_coaching_training_and_activity(world: World) -> None:
    from kefuqa.service.models import Agent, LiveCallRow, TrainingAssignment, TrainingAttempt, User

    call = world.new_call("A2", "refuse")
    first, second = world.findings("qa", call)[:2]
    assert world.post("qa", f"/api/findings/{first['id']}/review",
                      json={"verdict": "reject", "reason": "客户同意改约"}).status_code == 200
    assert world.post("a2", f"/api/findings/{second['id']}/appeal", json={"reason": "我说明了原因"}).status_code == 201
    assert world.post("qa", f"/api/calls/{call}/missed", json={"rule": "INF002", "utterance": 2,
                                                               "comment": "没有称呼客户"}).status_code == 201
    assert world.post("lead1", "/api/coaching", json={"call": call, "note": "先说明原因再给方案"}).status_code == 201
    with world.wb.sessions() as db, db.begin():
        agent = db.scalar(select(Agent).where(Agent.code == "A2"))
        user = db.scalar(select(User).where(User.username == "lilei"))
        assert agent is not None and user is not None
        task = TrainingAssignment(kind="quiz", ref="m-test", title="礼貌用语测验", agent_id=agent.id,
                                  due_at=utcnow() + timedelta(days=3), created_by=world.users["lead1"])
        db.add(task)
        db.flush()
        db.add(TrainingAttempt(user_id=user.id, agent_id=agent.id, assignment_id=task.id, kind="quiz", ref="m-test",
                               title="礼貌用语测验", score=80.0, passed=True, correct=4, total=5, rules=["LNG001"]))
        db.add(LiveCallRow(call_id=f"live-{uuid.uuid4().hex[:8]}", user_id=user.id, agent_id=agent.id, owner="test",
                           summary={"alerts": 1}))
        password_hash = user.password_hash
    r = world.get("admin", "/api/agents/A2/export")
    assert r.status_code == 200, r.text
    assert password_hash not in r.text and "password" not in r.text
    data = r.json()
    assert [(a["username"], a["role"]) for a in data["accounts"]] == [("lilei", "agent")]
    ref = world.get("qa", f"/api/calls/{call}").json()["conversation"]["id"]
    exported = next(c for c in data["calls"] if c["call_id"] == ref)
    findings = {f["id"]: f for f in exported["findings"]}
    assert [(v["verdict"], v["reason"]) for v in findings[first["id"]]["reviews"]] == [("reject", "客户同意改约")]
    assert [(a["finding"], a["reason"], a["status"]) for a in exported["appeals"]] == [
        (second["id"], "我说明了原因", "pending")]
    assert [(m["rule"], m["utterance"], m["comment"]) for m in exported["missed"]] == [("INF002", 2, "没有称呼客户")]
    assert [c["note"] for c in exported["coaching"]] == ["先说明原因再给方案"]
    assert [(t["title"], t["status"]) for t in data["training"]["assignments"]] == [("礼貌用语测验", "open")]
    assert [(t["score"], t["passed"], t["rules"]) for t in data["training"]["attempts"]] == [(80.0, True, ["LNG001"])]
    actions = {(e["action"], e["object_type"]) for e in data["activity"]}
    assert ("appeal.create", "appeal") in actions
    assert all(e["username"] == "lilei" for e in data["activity"])
    assert [(x["status"], x["summary"]) for x in data["live_calls"]] == [("live", {"alerts": 1})]
