"""Inspectors' verdicts on findings, agents' appeals, and the decision on an appeal. Each one that voids a
finding (a rejected finding, an accepted appeal) re-scores the call with the core's arithmetic
(`service.scores.recompute`). Lookups are scoped first: what is outside the user's scope is NotFound, and
only then is the role asked (Forbidden)."""

from __future__ import annotations

from sqlalchemy import select, update

from .. import repository as repo
from ..errors import Conflict, Forbidden, Invalid
from ..models import Appeal, Conversation, Finding, Review, Score, utcnow
from ..scores import ADDED, VOIDED, lock_call, recompute
from .context import Ctx

REVIEWERS = ("admin", "qa")


def _reason(reason: str | None, required: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if required and not reason:
        raise Invalid(required)
    if reason and len(reason) > 2000:
        raise Invalid("理由不能超过 2000 字")
    return reason


def _rescore(ctx: Ctx, conv: Conversation, finding: Finding) -> None:
    score = ctx.db.get(Score, finding.score_id)
    assert score is not None  # a finding belongs to a score
    recompute(ctx.db, ctx.wb.rulebooks, conv, score)


def review_finding(ctx: Ctx, finding_id: int, verdict: str, reason: str | None) -> Finding:
    """An inspector confirms a finding, or rejects it with a reason (then it no longer costs points)."""
    user = ctx.acting()
    with ctx.transaction() as db:
        finding, conv = repo.get_finding(db, user, finding_id)
        if not repo.can_review(user):
            raise Forbidden("只有质检员和管理员可以复核扣分项")
        if verdict not in ("confirm", "reject"):
            raise Invalid("复核结论须为 confirm（确认）或 reject（驳回）")
        reason = _reason(reason, "驳回扣分项时请填写理由" if verdict == "reject" else None)
        conv = lock_call(db, conv.id)
        db.refresh(finding)
        if finding.score_id != conv.current_score_id:
            raise Conflict("这条扣分属于历史评分，只能复核当前评分")
        if finding.status == ADDED:
            raise Conflict("这条扣分是人工补充的漏报，不需复核；不再计入请删除这条漏报")
        appeal = db.scalar(select(Appeal).where(Appeal.finding_id == finding.id))
        if appeal is not None and appeal.status != "pending":
            raise Conflict("该扣分的申诉已裁决，结论为最终结果")
        now = utcnow()
        finding.status = "confirmed" if verdict == "confirm" else "rejected"
        finding.reviewed_by, finding.reviewed_at, finding.review_reason = user.id, now, reason
        db.add(Review(finding_id=finding.id, reviewer_id=user.id, verdict=verdict, reason=reason, created_at=now))
        _rescore(ctx, conv, finding)
        repo.audit(db, user, f"finding.{verdict}", "finding", finding.id, ctx.ip, call=conv.call_id,
                   rule=finding.rule, reason=reason)
    return finding


def appeal_finding(ctx: Ctx, finding_id: int, reason: str | None) -> Appeal:
    """An agent appeals a finding of their own call, once, with a reason."""
    user = ctx.acting()
    with ctx.transaction() as db:
        finding, conv = repo.get_finding(db, user, finding_id)  # an agent's scope is their own calls
        if user.role != "agent":
            raise Forbidden("只有坐席本人可以申诉")
        text = (reason or "").strip()
        if len(text) < 2:
            raise Invalid("请填写申诉理由")
        if len(text) > 2000:
            raise Invalid("申诉理由不能超过 2000 字")
        if finding.kind != "finding":
            raise Invalid("事件不扣分，无需申诉")
        conv = lock_call(db, conv.id)
        db.refresh(finding)
        if finding.score_id != conv.current_score_id:
            raise Conflict("这条扣分属于历史评分，不能申诉")
        if finding.status in VOIDED:
            raise Conflict("这条扣分已被撤销，无需申诉")
        if not finding.points:
            raise Invalid("这一条不扣分，无需申诉")
        if db.scalar(select(Appeal.id).where(Appeal.finding_id == finding.id)) is not None:
            raise Conflict("每条扣分只能申诉一次")
        appeal = Appeal(finding_id=finding.id, conversation_id=conv.id, agent_id=conv.agent_id, user_id=user.id,
                        reason=text, status="pending", created_at=utcnow())
        db.add(appeal)
        db.flush()
        repo.audit(db, user, "appeal.create", "appeal", appeal.id, ctx.ip, call=conv.call_id, rule=finding.rule,
                   reason=text)
    return appeal


def decide_appeal(ctx: Ctx, appeal_id: int, decision: str, reason: str | None) -> Appeal:
    """An inspector accepts an appeal (the finding is withdrawn) or rejects it with a reason (it stands,
    confirmed). Final: no second decision."""
    user = ctx.acting()
    with ctx.transaction() as db:
        appeal = repo.get_appeal(db, user, appeal_id)
        if not repo.can_review(user):
            raise Forbidden("只有质检员和管理员可以裁决申诉")
        if decision not in ("accept", "reject"):
            raise Invalid("裁决须为 accept（申诉成立）或 reject（维持扣分）")
        reason = _reason(reason, "维持扣分时请填写理由" if decision == "reject" else None)
        conv = lock_call(db, appeal.conversation_id)
        db.refresh(appeal)
        if appeal.status == "pending" and appeal.finding.score_id != conv.current_score_id:
            raise Conflict("这条扣分属于历史评分，申诉无需裁决")
        now = utcnow()
        status = "accepted" if decision == "accept" else "rejected"
        # decided exactly once: only a pending appeal changes, whoever else decides at the same moment
        done = db.execute(update(Appeal).where(Appeal.id == appeal.id, Appeal.status == "pending").values(
            status=status, decided_by=user.id, decided_at=now, decision_reason=reason)
            .execution_options(synchronize_session=False))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("该申诉已裁决，结论为最终结果，不能再次裁决")
        db.refresh(appeal)
        finding = appeal.finding
        db.refresh(finding)
        # a rejected appeal keeps an inspector's added finding what it is (人工补充), the machine's is confirmed
        finding.status = "overturned" if decision == "accept" else ADDED if finding.status == ADDED else "confirmed"
        finding.reviewed_by, finding.reviewed_at = user.id, now
        finding.review_reason = reason or ("申诉成立" if decision == "accept" else None)
        _rescore(ctx, conv, finding)
        repo.audit(db, user, f"appeal.{decision}", "appeal", appeal.id, ctx.ip, call=conv.call_id,
                   rule=finding.rule, reason=reason)
    return appeal


def review_many(ctx: Ctx, finding_ids: list[int], verdict: str, reason: str | None) -> dict[int, str | None]:
    """The same verdict on several findings (the review queue's bulk confirm / reject), each in its own
    transaction: one that cannot be reviewed (decided meanwhile, out of scope) does not stop the others.
    Returns finding id → None when saved, else the reason it was not."""
    from ..errors import DomainError

    if not repo.can_review(ctx.acting()):
        raise Forbidden("只有质检员和管理员可以复核扣分项")
    if len(finding_ids) > 200:
        raise Invalid("一次最多批量复核 200 条")
    out: dict[int, str | None] = {}
    for fid in dict.fromkeys(finding_ids):
        try:
            review_finding(ctx, fid, verdict, reason)
            out[fid] = None
        except (Invalid, Forbidden):
            raise  # the same for every finding: say it once
        except DomainError as exc:
            out[fid] = str(exc)
    return out
