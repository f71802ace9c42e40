"""Coaching from findings: a leader (or an inspector) attaches a coaching note to a call or one of its
findings for the call's agent; the agent acknowledges it, or disputes the finding through the appeal path.
Each item shows whether the agent's violations of that rule went down afterwards (per 100 calls, the 30 days
before the note against the days since, at most 30).

Scope: a leader coaches the calls of their team, an agent sees only their own items; anything else is
missing (NotFound)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Select, and_, func, select

from .. import repository as repo
from ..errors import Conflict, Forbidden, Invalid, NotFound
from ..models import CoachingItem, Conversation, Finding, utcnow
from . import reviews
from .context import Ctx

COACHES = ("admin", "qa", "leader")
WINDOW = timedelta(days=30)
STATUS_LABELS = {"open": "待确认", "acknowledged": "已确认", "disputed": "已申诉"}


def create(ctx: Ctx, call_id: int, note: str | None, finding_id: int | None = None) -> CoachingItem:
    user = ctx.acting()
    with ctx.transaction() as db:
        conv = repo.get_call(db, user, call_id)
        ctx.require(COACHES, "只有组长、质检员和管理员可以辅导坐席")
        text = (note or "").strip()
        if len(text) < 2:
            raise Invalid("请填写辅导内容")
        if len(text) > 2000:
            raise Invalid("辅导内容不能超过 2000 字")
        if conv.agent_id is None:
            raise Invalid("这通会话没有坐席信息，无法指派辅导")
        rule = None
        if finding_id is not None:
            finding = db.get(Finding, finding_id)
            if finding is None or finding.conversation_id != conv.id or finding.score_id != conv.current_score_id:
                raise Invalid("扣分项不属于这通会话的当前评分")
            rule = finding.rule
        item = CoachingItem(conversation_id=conv.id, finding_id=finding_id, agent_id=conv.agent_id, rule=rule,
                            note=text, status="open", created_by=user.id, created_at=utcnow())
        db.add(item)
        db.flush()
        repo.audit(db, user, "coaching.create", "coaching", item.id, ctx.ip, call=conv.call_id, rule=rule)
    return item


def _scoped(ctx: Ctx) -> Select[CoachingItem, Conversation]:
    return repo.scope_calls(select(CoachingItem, Conversation).join(
        Conversation, Conversation.id == CoachingItem.conversation_id), ctx.acting())


def get(ctx: Ctx, item_id: int) -> tuple[CoachingItem, Conversation]:
    row = ctx.db.execute(_scoped(ctx).where(CoachingItem.id == item_id)).first()
    if row is None:
        raise NotFound("辅导记录不存在或无权查看")
    return row[0], row[1]


@dataclass
class Effect:
    before: float | None  # violations of the rule per 100 calls, 30 days before the note
    after: float | None  # the same since the note (at most 30 days)
    calls_before: int
    calls_after: int

    @property
    def went_down(self) -> bool | None:
        if self.before is None or self.after is None or self.calls_after < 3:
            return None
        return self.after < self.before


@dataclass
class Item:
    item: CoachingItem
    call: Conversation
    effect: Effect | None


def _rate(ctx: Ctx, agent_id: int, rule: str, start: datetime, end: datetime) -> tuple[float | None, int]:
    db = ctx.db
    calls = db.scalar(select(func.count(Conversation.id)).where(
        Conversation.agent_id == agent_id, Conversation.call_at >= start, Conversation.call_at < end)) or 0
    if not calls:
        return None, 0
    found = db.scalar(select(func.count(Finding.id)).join(Conversation, and_(
        Conversation.id == Finding.conversation_id, Conversation.current_score_id == Finding.score_id)).where(
        Conversation.agent_id == agent_id, Conversation.call_at >= start, Conversation.call_at < end,
        Finding.rule == rule, Finding.kind == "finding", Finding.status.not_in(("rejected", "overturned")))) or 0
    return round(found * 100 / calls, 1), calls


def effect(ctx: Ctx, item: CoachingItem) -> Effect | None:
    if not item.rule or item.agent_id is None:
        return None
    at = item.created_at if item.created_at.tzinfo else item.created_at.replace(tzinfo=timezone.utc)
    before, n_before = _rate(ctx, item.agent_id, item.rule, at - WINDOW, at)
    after, n_after = _rate(ctx, item.agent_id, item.rule, at, min(utcnow(), at + WINDOW) + timedelta(seconds=1))
    return Effect(before, after, n_before, n_after)


def items(ctx: Ctx, *, agent_id: int | None = None, status: str | None = None, limit: int = 200) -> list[Item]:
    """Coaching items in the user's scope (an agent: their own), newest open first."""
    stmt = _scoped(ctx)
    if agent_id is not None:
        stmt = stmt.where(CoachingItem.agent_id == agent_id)
    if status:
        stmt = stmt.where(CoachingItem.status == status)
    rows = ctx.db.execute(stmt.order_by(
        (CoachingItem.status != "open"), CoachingItem.created_at.desc()).limit(limit)).all()
    return [Item(i, c, effect(ctx, i)) for i, c in rows]


def _own(ctx: Ctx, item_id: int) -> tuple[CoachingItem, Conversation]:
    user = ctx.acting()
    item, conv = get(ctx, item_id)
    if user.role != "agent" or user.agent_id != item.agent_id:
        raise Forbidden("只有被辅导的坐席本人可以确认或申诉")
    if item.status != "open":
        raise Conflict("这条辅导已经答复过了")
    return item, conv


def acknowledge(ctx: Ctx, item_id: int) -> CoachingItem:
    with ctx.transaction() as db:
        item, conv = _own(ctx, item_id)
        item.status, item.answered_at = "acknowledged", utcnow()
        repo.audit(db, ctx.user, "coaching.acknowledge", "coaching", item.id, ctx.ip, call=conv.call_id)
    return item


def dispute(ctx: Ctx, item_id: int, reason: str | None) -> CoachingItem:
    """The agent disagrees: the finding the note is about is appealed (the usual appeal, decided by QA)."""
    item, conv = _own(ctx, item_id)
    if item.finding_id is None:
        raise Invalid("这条辅导没有对应的扣分项，不能申诉；如有异议请直接与组长沟通")
    ctx.db.commit()
    reviews.appeal_finding(ctx, item.finding_id, reason)
    with ctx.transaction() as db:
        item, conv = get(ctx, item_id)
        item.status, item.answered_at = "disputed", utcnow()
        repo.audit(db, ctx.user, "coaching.dispute", "coaching", item.id, ctx.ip, call=conv.call_id)
    return item
