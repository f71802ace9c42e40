"""Calibration sessions: the QA lead picks calls and inspectors; each inspector marks, blind, the rules each
call violates (without the machine's findings or anyone else's marks); once the lead closes the session the
agreement is shown (`kefuqa.agreement`), and the consensus of a call can be adopted as its reference: the
machine's findings the consensus shares are confirmed, the others rejected, and the consensus rules the
machine missed are recorded as missed findings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ... import agreement
from .. import repository as repo
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..models import (
    CalibrationSession,
    CalibrationVerdict,
    Conversation,
    Finding,
    MissedFinding,
    User,
    utcnow,
)
from ..scores import ADDED, add_missed, lock_call
from . import reviews
from .context import Ctx
from .missed import rule_choices

LEADS = ("admin", "qa")
MAX_CALLS = 50


def _lead(ctx: Ctx) -> User:
    user = ctx.acting()
    ctx.require(LEADS, "只有质检员和管理员可以参加校准")
    return user


def create(ctx: Ctx, name: str, call_refs: list[str] | str, inspector_ids: list[int]) -> CalibrationSession:
    user = _lead(ctx)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise Invalid("请填写校准名称（不超过 200 字）")
    refs = [r for r in re.split(r"[\s,，;；]+", call_refs) if r] if isinstance(call_refs, str) else list(call_refs)
    refs = list(dict.fromkeys(refs))
    if not refs or len(refs) > MAX_CALLS:
        raise Invalid(f"请选择 1–{MAX_CALLS} 通会话")
    ids = sorted(set(inspector_ids))
    if len(ids) < 2:
        raise Invalid("校准至少需要两名质检员")
    with ctx.transaction() as db:
        calls = []
        for ref in refs:
            try:
                calls.append(repo.get_call_by_ref(db, user, str(ref)[:200]).id)
            except NotFound:
                raise Invalid(f"会话 {ref} 不存在") from None
        found = set(db.scalars(select(User.id).where(User.id.in_(ids), User.role.in_(LEADS), User.active.is_(True))))
        if found != set(ids):
            raise Invalid(f"这些用户不是在职质检员：{', '.join(str(i) for i in ids if i not in found)}")
        rec = CalibrationSession(name=name, call_ids=calls, inspector_ids=ids, status="open", created_by=user.id,
                                 created_at=utcnow())
        db.add(rec)
        db.flush()
        repo.audit(db, user, "calibration.create", "calibration", rec.id, ctx.ip, calls=len(calls), inspectors=ids)
    return rec


def get(ctx: Ctx, session_id: int) -> CalibrationSession:
    _lead(ctx)
    rec = ctx.db.get(CalibrationSession, session_id)
    if rec is None:
        raise NotFound("校准不存在")
    return rec


def list_sessions(ctx: Ctx) -> list[tuple[CalibrationSession, int]]:
    """Sessions, newest first, with how many verdicts were given."""
    _lead(ctx)
    rows = list(ctx.db.scalars(select(CalibrationSession).order_by(CalibrationSession.id.desc()).limit(100)))
    counts: dict[int, int] = {}
    for sid in ctx.db.scalars(select(CalibrationVerdict.session_id).where(
            CalibrationVerdict.session_id.in_([r.id for r in rows]))):
        counts[sid] = counts.get(sid, 0) + 1
    return [(r, counts.get(r.id, 0)) for r in rows]


@dataclass
class Progress:
    inspector: int
    name: str
    done: int
    total: int


def progress(ctx: Ctx, rec: CalibrationSession) -> list[Progress]:
    """Per inspector: how many calls they scored (never what they marked)."""
    done: dict[int, int] = {}
    for who in ctx.db.scalars(select(CalibrationVerdict.inspector_id).where(CalibrationVerdict.session_id == rec.id)):
        done[who] = done.get(who, 0) + 1
    names = repo.user_names(ctx.db, set(rec.inspector_ids))
    total = len(rec.call_ids) - len(deleted_calls(ctx, rec))  # a deleted call can no longer be scored
    return [Progress(i, names.get(i, str(i)), done.get(i, 0), total) for i in rec.inspector_ids]


def deleted_calls(ctx: Ctx, rec: CalibrationSession) -> list[int]:
    """The session's calls deleted since it was set up (data lifecycle): their verdicts went with them."""
    have = set(ctx.db.scalars(select(Conversation.id).where(Conversation.id.in_(rec.call_ids))))
    return [c for c in rec.call_ids if c not in have]


def my_verdicts(ctx: Ctx, rec: CalibrationSession) -> dict[int, CalibrationVerdict]:
    user = _lead(ctx)
    return {v.conversation_id: v for v in ctx.db.scalars(select(CalibrationVerdict).where(
        CalibrationVerdict.session_id == rec.id, CalibrationVerdict.inspector_id == user.id))}


def scoring_call(ctx: Ctx, session_id: int, call_id: int) -> tuple[CalibrationSession, Conversation]:
    """A call to score blind: only the session's inspectors, only its calls."""
    user = _lead(ctx)
    rec = get(ctx, session_id)
    if call_id not in rec.call_ids:
        raise NotFound("该会话不在本次校准中")
    if user.id not in rec.inspector_ids:
        raise Forbidden("您不是本次校准的质检员")
    conv = ctx.db.get(Conversation, call_id)
    if conv is None:
        raise NotFound("会话不存在")
    return rec, conv


def submit(ctx: Ctx, session_id: int, call_id: int, rules: list[str], comment: str | None) -> CalibrationVerdict:
    """The acting inspector's verdict on one call of an open session (given again, it replaces theirs)."""
    user = ctx.acting()
    with ctx.transaction() as db:
        rec, conv = scoring_call(ctx, session_id, call_id)
        if rec.status != "open":
            raise Conflict("校准已结束，不能再评分")
        known = {r["id"] for r in rule_choices(db)}
        chosen = sorted({r.strip().upper() for r in rules if r and r.strip()})
        unknown = [r for r in chosen if r not in known]
        if unknown:
            raise Invalid(f"规则不在当前规则集中：{', '.join(unknown)}")
        text = (comment or "").strip() or None
        if text and len(text) > 2000:
            raise Invalid("说明不能超过 2000 字")
        v = db.scalar(select(CalibrationVerdict).where(CalibrationVerdict.session_id == rec.id,
                                                       CalibrationVerdict.conversation_id == conv.id,
                                                       CalibrationVerdict.inspector_id == user.id))
        if v is None:
            v = CalibrationVerdict(session_id=rec.id, conversation_id=conv.id, inspector_id=user.id)
            db.add(v)
        v.rules, v.comment, v.created_at = chosen, text, utcnow()
        db.flush()
        repo.audit(db, user, "calibration.verdict", "calibration", rec.id, ctx.ip, call=conv.call_id)
    return v


def close(ctx: Ctx, session_id: int) -> CalibrationSession:
    user = _lead(ctx)
    with ctx.transaction() as db:
        rec = get(ctx, session_id)
        if user.role != "admin" and rec.created_by != user.id:
            raise Forbidden("只有发起人或管理员可以结束校准")
        if rec.status != "open":
            raise Conflict("校准已结束")
        rec.status = "closed"
        repo.audit(db, user, "calibration.close", "calibration", rec.id, ctx.ip)
    return rec


def _machine(ctx: Ctx, call_ids: list[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {c: set() for c in call_ids}
    for cid, rule in ctx.db.execute(select(Finding.conversation_id, Finding.rule).join(
            Conversation, Conversation.current_score_id == Finding.score_id).where(
            Finding.conversation_id.in_(call_ids), Finding.kind == "finding")):
        out[cid].add(rule)
    return out


@dataclass
class Results:
    report: agreement.CalibrationReport
    names: dict[int, str]
    calls: dict[int, Conversation]
    comments: dict[tuple[int, int], str]
    deleted: list[int] = field(default_factory=list)  # calls of the session deleted since: not compared


def results(ctx: Ctx, session_id: int) -> Results:
    """The agreement of a closed session (blind while open: nobody sees anyone's marks before the end)."""
    rec = get(ctx, session_id)
    if rec.status == "open":
        raise Conflict("校准进行中：为保证盲评，结束后才公开各人的评分与一致性")
    verdicts = list(ctx.db.scalars(select(CalibrationVerdict).where(CalibrationVerdict.session_id == rec.id)))
    report = agreement.calibration_report({(v.conversation_id, v.inspector_id): set(v.rules) for v in verdicts},
                                          _machine(ctx, list(rec.call_ids)))
    calls = {c.id: c for c in ctx.db.scalars(select(Conversation).where(Conversation.id.in_(rec.call_ids)))}
    return Results(report, repo.user_names(ctx.db, set(rec.inspector_ids)), calls,
                   {(v.conversation_id, v.inspector_id): v.comment for v in verdicts if v.comment},
                   [c for c in rec.call_ids if c not in calls])


def adopt_consensus(ctx: Ctx, session_id: int, call_id: int) -> dict[str, Any]:
    """Make a closed session's consensus the reference for one call: machine findings of consensus rules are
    confirmed, the others rejected; consensus rules the machine did not report become missed findings."""
    user = _lead(ctx)
    rec = get(ctx, session_id)
    if user.role != "admin" and rec.created_by != user.id:
        raise Forbidden("只有发起人或管理员可以采用共识")
    res = results(ctx, session_id)
    if call_id not in res.report.consensus:
        raise Conflict("这通会话没有全部质检员的评分，没有共识")
    agreed = set(res.report.consensus[call_id])
    conv = ctx.db.get(Conversation, call_id)
    assert conv is not None
    findings = list(ctx.db.scalars(select(Finding).where(Finding.score_id == conv.current_score_id,
                                                         Finding.kind == "finding", Finding.status != ADDED)))
    ctx.db.commit()
    out = {"confirmed": 0, "rejected": 0, "missed": 0, "skipped": 0}
    for f in findings:
        verdict = "confirm" if f.rule in agreed else "reject"
        if f.status in ("overturned",) or (f.status == "confirmed" and verdict == "confirm") or \
                (f.status == "rejected" and verdict == "reject"):
            continue
        try:
            reviews.review_finding(ctx, f.id, verdict, f"校准「{rec.name}」共识" + ("" if verdict == "confirm" else "：不违规"))
            out["confirmed" if verdict == "confirm" else "rejected"] += 1
        except Conflict:
            out["skipped"] += 1  # an appeal already decided it
    have = {f.rule for f in findings}
    with ctx.transaction() as db:
        already = set(db.scalars(select(MissedFinding.rule).where(MissedFinding.conversation_id == call_id)))
        added = [MissedFinding(conversation_id=call_id, rule=rule, comment=f"校准「{rec.name}」共识", source="calibration",
                               created_by=user.id, created_at=utcnow()) for rule in sorted(agreed - have - already)]
        db.add_all(added)
        db.flush()
        add_missed(db, ctx.wb.rulebooks, lock_call(db, call_id), added)  # findings of the call from now on
        out["missed"] += len(added)
        repo.audit(db, user, "calibration.adopt", "calibration", rec.id, ctx.ip, call=conv.call_id, **out)
    return out
