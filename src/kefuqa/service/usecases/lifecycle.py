"""Data lifecycle: delete a call (its scores, findings, reviews, appeals, coaching, transcript index and
recording) with a reason in the audit log; delete calls older than the retention period
(`kefuqa retention apply`, KEFUQA_RETENTION_DAYS); export everything stored about one agent.

A recording is stored once by its content hash and may belong to several calls: the file is removed only when
no remaining call uses it, and only after the database change is committed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from .. import repository as repo
from ..errors import Conflict, Invalid
from ..models import (
    Appeal,
    AuditEntry,
    CoachingItem,
    Conversation,
    Finding,
    LiveCallRow,
    MissedFinding,
    Review,
    Score,
    TrainingAssignment,
    TrainingAttempt,
    User,
    utcnow,
)
from .context import Ctx

ADMIN = ("admin",)
BATCH = 1000


def _remove_audio(ctx: Ctx, names: Iterable[str]) -> int:
    """Remove recordings no call uses any more; returns how many files went."""
    gone = 0
    for name in sorted(set(names)):
        if ctx.db.scalar(select(Conversation.id).where(Conversation.audio_file == name).limit(1)) is not None:
            continue
        path = ctx.wb.audio.find(name)
        if path is not None:
            path.unlink(missing_ok=True)
            gone += 1
    return gone


def _delete_ids(ctx: Ctx, ids: list[int]) -> None:
    db = ctx.db
    db.execute(update(Conversation).where(Conversation.id.in_(ids)).values(current_score_id=None))
    db.execute(delete(Conversation).where(Conversation.id.in_(ids)))


def delete_call(ctx: Ctx, call_id: int, reason: str | None) -> dict[str, Any]:
    """An administrator deletes one call and everything derived from it; the reason goes to the audit log."""
    user = ctx.acting()
    text = (reason or "").strip()
    with ctx.transaction() as db:
        conv = repo.get_call(db, user, call_id)
        ctx.require(ADMIN, "只有管理员可以删除会话")
        if len(text) < 2:
            raise Invalid("删除会话须填写原因")
        if len(text) > 500:
            raise Invalid("原因不能超过 500 字")
        info: dict[str, Any] = {"call": conv.call_id, "agent": conv.agent.code if conv.agent else None,
                "call_at": conv.call_at.isoformat(), "audio": conv.audio_file, "reason": text}
        try:
            _delete_ids(ctx, [conv.id])
            db.flush()
        except IntegrityError:
            raise Conflict("这通会话还被其他记录引用，暂时不能删除") from None
        repo.audit(db, user, "conversation.delete", "conversation", conv.id, ctx.ip, **info)
    info["audio_removed"] = _remove_audio(ctx, [info["audio"]] if info["audio"] else [])
    ctx.db.commit()
    return info


@dataclass
class Retention:
    days: int
    cutoff: datetime
    calls: int
    audio_removed: int
    dry_run: bool


def apply_retention(ctx: Ctx, days: int, *, dry_run: bool = False) -> Retention:
    """Delete the calls that happened more than `days` days ago (in batches), and their recordings."""
    ctx.require(ADMIN, "只有管理员可以执行保留期限清理")
    if days < 1:
        raise Invalid("保留天数须为正整数")
    cutoff = utcnow() - timedelta(days=days)
    db = ctx.db
    old = select(Conversation.id, Conversation.audio_file).where(Conversation.call_at < cutoff)
    if dry_run:
        n = len(db.execute(old).all())
        db.commit()
        return Retention(days, cutoff, n, 0, True)
    total, removed = 0, 0
    while True:
        with ctx.transaction():
            rows = db.execute(old.order_by(Conversation.id).limit(BATCH)).all()
            if not rows:
                break
            _delete_ids(ctx, [r[0] for r in rows])
            total += len(rows)
        removed += _remove_audio(ctx, [r[1] for r in rows if r[1]])
        db.commit()
    with ctx.transaction():
        repo.audit(db, ctx.user, "retention.apply", None, None, ctx.ip, days=days, cutoff=cutoff.isoformat(),
                   calls=total, audio_removed=removed)
    return Retention(days, cutoff, total, removed, False)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def export_agent(ctx: Ctx, code: str) -> dict[str, Any]:
    """Everything stored about one agent: the agent, their login accounts (never a password hash) and what
    those accounts did (the audit log), their calls (conversation, current score, findings with every verdict
    given, appeals, missed findings, coaching), their training assignments and attempts, and the live calls
    assisted for them. Administrators only; the export is audited."""
    user = ctx.acting()
    ctx.require(ADMIN, "只有管理员可以导出坐席的全部数据")
    db = ctx.db
    agent = repo.get_agent(db, user, code[:100])
    calls = list(db.scalars(select(Conversation).where(Conversation.agent_id == agent.id).order_by(Conversation.call_at)))
    ids = [c.id for c in calls]
    by_call: dict[int, dict[str, list[Any]]] = {c.id: {"findings": [], "appeals": [], "missed": [], "coaching": []}
                                               for c in calls}
    scores = {s.id: s for s in db.scalars(select(Score).where(Score.id.in_([c.current_score_id for c in calls
                                                                              if c.current_score_id])))}
    for i in range(0, len(ids), 1000):
        chunk = ids[i:i + 1000]
        found = list(db.scalars(select(Finding).where(Finding.conversation_id.in_(chunk),
                                                      Finding.score_id.in_(list(scores))).order_by(Finding.id)))
        verdicts: dict[int, list[dict[str, Any]]] = {}
        for r in db.scalars(select(Review).where(Review.finding_id.in_([f.id for f in found])).order_by(Review.id)):
            verdicts.setdefault(r.finding_id, []).append({"verdict": r.verdict, "reason": r.reason,
                                                          "created_at": _iso(r.created_at)})
        for f in found:
            by_call[f.conversation_id]["findings"].append({
                "id": f.id, "kind": f.kind, "rule": f.rule, "name": f.name, "severity": f.severity, "points": f.points,
                "utterance": f.utterance, "evidence": f.evidence, "message": f.message, "status": f.status,
                "review_reason": f.review_reason, "reviews": verdicts.get(f.id, [])})
        for a in db.scalars(select(Appeal).where(Appeal.conversation_id.in_(chunk))):
            by_call[a.conversation_id]["appeals"].append({
                "finding": a.finding_id, "reason": a.reason, "status": a.status, "decision_reason": a.decision_reason,
                "created_at": a.created_at.isoformat()})
        for m in db.scalars(select(MissedFinding).where(MissedFinding.conversation_id.in_(chunk))):
            by_call[m.conversation_id]["missed"].append({"rule": m.rule, "utterance": m.utterance,
                                                         "comment": m.comment})
        for k in db.scalars(select(CoachingItem).where(CoachingItem.conversation_id.in_(chunk))):
            by_call[k.conversation_id]["coaching"].append({
                "note": k.note, "rule": k.rule, "status": k.status, "created_at": k.created_at.isoformat()})
    accounts = list(db.scalars(select(User).where(User.agent_id == agent.id).order_by(User.id)))
    user_ids = [u.id for u in accounts]
    activity = [{"at": _iso(e.at), "username": e.username, "action": e.action, "object_type": e.object_type,
                 "object_id": e.object_id, "detail": e.detail}
                for e in db.scalars(select(AuditEntry).where(AuditEntry.user_id.in_(user_ids)).order_by(AuditEntry.id))]
    training = {
        "assignments": [{"kind": t.kind, "ref": t.ref, "title": t.title, "status": t.status, "due_at": _iso(t.due_at),
                         "done_at": _iso(t.done_at), "created_at": _iso(t.created_at)}
                        for t in db.scalars(select(TrainingAssignment).where(TrainingAssignment.agent_id == agent.id)
                                            .order_by(TrainingAssignment.id))],
        "attempts": [{"kind": t.kind, "ref": t.ref, "module": t.module, "title": t.title, "score": t.score,
                      "passed": t.passed, "correct": t.correct, "total": t.total, "rules": t.rules, "detail": t.detail,
                      "created_at": _iso(t.created_at)}
                     for t in db.scalars(select(TrainingAttempt).where(
                         (TrainingAttempt.agent_id == agent.id) | TrainingAttempt.user_id.in_(user_ids))
                         .order_by(TrainingAttempt.id))]}
    live = [{"call_id": r.call_id, "path": r.path, "status": r.status, "opened_at": _iso(r.opened_at),
             "summary": r.summary, "stored": r.stored}
            for r in db.scalars(select(LiveCallRow).where(LiveCallRow.agent_id == agent.id)
                                .order_by(LiveCallRow.opened_at))]
    out = {
        "agent": {"code": agent.code, "name": agent.name, "team": agent.team.name if agent.team else None},
        "accounts": [{"username": u.username, "display_name": u.display_name, "role": u.role, "active": u.active,
                      "created_at": _iso(u.created_at), "last_login_at": _iso(u.last_login_at)} for u in accounts],
        "activity": activity, "training": training, "live_calls": live,
        "exported_at": utcnow().isoformat(), "calls": [{
            "call_id": c.call_id, "call_at": c.call_at.isoformat(), "channel": c.channel, "duration": c.duration,
            "score": c.score, "grade": c.grade, "fatal": c.fatal, "has_audio": c.has_audio,
            "conversation": c.data, **by_call[c.id]} for c in calls]}
    repo.audit(db, user, "agent.export", "agent", agent.code, ctx.ip, calls=len(calls))
    db.commit()
    return out
