"""Stored scores: a conversation scored again (a new score, the old ones kept as history), and the effective
score once inspectors or appeals voided some findings — computed by the core's `kefuqa.scoring.rescore`
with the rulebook version that produced the report, never by arithmetic of the service's own."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, func, insert, or_, select, update
from sqlalchemy.orm import Session as DBSession

from ..model import Conversation as ConversationModel
from ..rules.rulebook import Rulebook
from ..scoring import rescore
from .errors import Conflict
from .models import Appeal, AuditEntry, Conversation, Finding, MissedFinding, Score, utcnow
from .records import finding_rows, report_from_dict, score_values
from .rulebooks import Loaded, Rulebooks

VOIDED = ("rejected", "overturned")  # finding statuses that withdraw a finding: inspector's reject, accepted appeal
ADDED = "added"  # the status of a finding an inspector added (a missed finding): it costs points, nobody reviews it
# a missed finding in the stored report (DESIGN §3 shape): `source` says a person added it, the message starts
# with the mark, the evidence is empty (no words of the call prove it; `utterance` null for a call-level one)
HUMAN_SOURCE = "inspector"
HUMAN_MARK = "人工补充"


def human(f: dict[str, Any]) -> bool:
    """A finding of a stored report that an inspector added (not the machine's)."""
    return f.get("source") == HUMAN_SOURCE


def human_row() -> ColumnElement[bool]:
    """SQL condition: a finding row an inspector added (a missed finding), whatever its status now. An accepted
    appeal makes it `overturned` like a machine's finding, but the row keeps what `add_missed` wrote: the
    message starting with the mark and no evidence (the report's finding says `source: inspector`). Never NULL,
    so that `~human_row()` keeps a machine's row without a message."""
    return or_(Finding.status == ADDED, and_(Finding.message.is_not(None), Finding.message.startswith(f"{HUMAN_MARK}："),
                                             func.coalesce(Finding.evidence, "") == ""))


def effective(report: dict[str, Any], voided: set[int], rulebook: Rulebook) -> tuple[float, str, bool]:
    """Score, grade and 红线 flag of a stored report whose findings at the positions in `voided` were
    withdrawn. With nothing withdrawn these are the engine's own figures."""
    score, grade, fatal, _ = _effective(report, voided, rulebook)
    return score, grade, fatal


def _effective(report: dict[str, Any], voided: set[int], rulebook: Rulebook
               ) -> tuple[float, str, bool, dict[int, float]]:
    """`effective`, and what each remaining finding (by position) costs now: when the finding a rule
    charged once is withdrawn, the rule's next finding is charged instead."""
    stored = report.get("findings") or []
    if not voided and not any(human(f) for f in stored):
        points = {i: float(f.get("points") or 0.0) for i, f in enumerate(stored)}
        return float(report.get("score") or 0.0), str(report.get("grade") or ""), bool(report.get("fatal")), points
    core = report_from_dict(report)
    missing = sorted({f.rule for f in core.findings} - set(rulebook.by_id))
    if missing:
        raise Conflict(f"评分所用的规则集已变化（缺少规则 {', '.join(missing)}），不能重算得分；请先用当前规则集重新评分")
    got = rescore(core, rulebook, voided)
    kept = [i for i in range(len(core.findings)) if i not in voided]
    return got.score, got.grade, got.fatal, {i: f.points for i, f in zip(kept, got.findings, strict=True)}


def insufficient(report: dict[str, Any] | None) -> bool:
    """A stored report whose coverage is below its rulebook's threshold (「未充分质检」); reports stored
    before coverage existed count as checked."""
    cov = (report or {}).get("coverage")
    return isinstance(cov, dict) and cov.get("sufficient") is False


def recompute(db: DBSession, rulebooks: Rulebooks, conv: Conversation, score: Score) -> None:
    """The effective score of `score` from its findings' statuses; copied to the conversation if current."""
    voided = set(db.scalars(select(Finding.position).where(
        Finding.score_id == score.id, Finding.kind == "finding", Finding.status.in_(VOIDED))))
    rulebook = rulebooks.get(db, score.rulebook_id).rulebook
    final, grade, fatal, points = _effective(score.report, voided, rulebook)
    score.final_score, score.grade, score.fatal = final, grade, fatal
    # each remaining finding shows what it costs now (a 0-point repeat of a rule becomes the charged one
    # when the finding that was charged is withdrawn); a withdrawn finding keeps what it had cost
    for f in db.scalars(select(Finding).where(Finding.score_id == score.id, Finding.kind == "finding",
                                              Finding.position.in_(list(points)))):
        if f.points != points[f.position]:
            f.points = points[f.position]
    added = [i for i, f in enumerate(score.report.get("findings") or []) if human(f) and i in points]
    if added:  # what an added finding costs is in the report too (the machine's keep what the engine charged)
        findings = [dict(f) for f in score.report["findings"]]
        for i in added:
            findings[i]["points"] = points[i]
        score.report = {**score.report, "findings": findings}
    if conv.current_score_id == score.id:
        conv.score, conv.grade, conv.fatal = final, grade, fatal
        conv.insufficient = insufficient(score.report)


def _human_finding(rulebook: Rulebook, data: dict[str, Any], m: MissedFinding) -> dict[str, Any]:
    rule = rulebook.by_id[m.rule]
    utts = data.get("utterances") or []
    u = utts[m.utterance] if m.utterance is not None and 0 <= m.utterance < len(utts) else {}
    return {"rule": m.rule, "name": rule.name, "severity": rule.severity, "points": 0.0,
            "utterance": m.utterance if u else None, "start": u.get("start"), "end": u.get("end"), "evidence": "",
            "message": f"{HUMAN_MARK}：{m.comment or rule.name}", "suggestion": rule.suggest,
            "dimension": rule.dimension, "source": HUMAN_SOURCE}


def add_missed(db: DBSession, rulebooks: Rulebooks, conv: Conversation, missed: list[MissedFinding],
               score: Score | None = None) -> int:
    """Inspectors' missed findings of `conv` as findings of its current score (or `score`), after the
    machine's: in the stored report (`_human_finding`) and as finding rows (status added), then the score
    recomputed by the core's arithmetic — a missed finding costs what its rule costs, as if the machine had
    reported it. One of a rule the machine reported (at its utterance, for one with an utterance) is left
    out: the machine's finding is that violation. How many were added."""
    score = score or (db.get(Score, conv.current_score_id) if conv.current_score_id else None)
    if score is None or not missed:
        return 0
    rulebook = rulebooks.get(db, score.rulebook_id).rulebook
    findings = list(score.report.get("findings") or [])
    machine = {(f.get("rule"), f.get("utterance")) for f in findings if not human(f)}
    rows = []
    for m in missed:
        if m.rule not in rulebook.by_id or (m.rule, m.utterance) in machine or \
                (m.utterance is None and any(r == m.rule for r, _u in machine)):
            continue
        f = _human_finding(rulebook, conv.data or {}, m)
        rows.append(Finding(score_id=score.id, conversation_id=conv.id, kind="finding", position=len(findings),
                            rule=f["rule"], name=f["name"], severity=f["severity"], points=0.0,
                            dimension=f["dimension"], utterance=f["utterance"], start=f["start"], end=f["end"],
                            evidence="", message=f["message"], suggestion=f["suggestion"], status=ADDED,
                            reviewed_by=m.created_by, reviewed_at=m.created_at, review_reason=m.comment))
        findings.append(f)
    if rows:
        score.report = {**score.report, "findings": findings}
        db.add_all(rows)
        db.flush()
        recompute(db, rulebooks, conv, score)
    return len(rows)


def remove_missed(db: DBSession, rulebooks: Rulebooks, conv: Conversation, m: MissedFinding) -> None:
    """A deleted missed finding no longer counts: its finding leaves the current score's report and rows
    (the added ones after it move up one place), and the score is recomputed."""
    score = db.get(Score, conv.current_score_id) if conv.current_score_id else None
    if score is None:
        return
    findings = list(score.report.get("findings") or [])
    at = next((i for i in range(len(findings) - 1, -1, -1) if human(findings[i]) and findings[i].get("rule") == m.rule
               and findings[i].get("utterance") == m.utterance), None)
    if at is None:
        return
    rows = {f.position: f for f in db.scalars(select(Finding).where(
        Finding.score_id == score.id, Finding.kind == "finding", Finding.position >= at))}
    if at in rows:
        db.delete(rows.pop(at))
        db.flush()
    for pos in sorted(rows):
        rows[pos].position = pos - 1
    del findings[at]
    score.report = {**score.report, "findings": findings}
    db.flush()
    recompute(db, rulebooks, conv, score)


def _key(f: Finding) -> tuple[Any, ...]:
    return (f.kind, f.rule, f.utterance, f.evidence)


MOOT_REASON = "重新评分后这条扣分已不存在，申诉自动结束"


def carry_over(db: DBSession, old: list[Finding], new: list[Finding], *, user_id: int | None = None,
               call_id: str | None = None) -> None:
    """Verdicts of old findings to the new findings that say the same (same rule, utterance, evidence). A
    pending appeal whose finding the new score no longer has is moot: it is closed (status ``moot``, with
    the reason and an audit line) instead of waiting in the queue for a decision that could change nothing."""
    by_key = {_key(f): f for f in new}
    now = utcnow()
    for f in old:
        target = by_key.get(_key(f))
        if target is None:
            moot = db.scalars(select(Appeal).where(Appeal.finding_id == f.id, Appeal.status == "pending")).all()
            for appeal in moot:
                appeal.status, appeal.decided_at, appeal.decision_reason = "moot", now, MOOT_REASON
                appeal.decided_by = user_id
                db.add(AuditEntry(user_id=user_id, action="appeal.moot", object_type="appeal",
                                  object_id=str(appeal.id), detail={"call": call_id, "rule": f.rule,
                                                                    "reason": MOOT_REASON}, at=now))
            continue
        if f.status != "open":
            target.status, target.reviewed_by, target.reviewed_at, target.review_reason = (
                f.status, f.reviewed_by, f.reviewed_at, f.review_reason)
        db.execute(update(Appeal).where(Appeal.finding_id == f.id).values(finding_id=target.id))


def lock_call(db: DBSession, conv_id: int) -> Conversation:
    """Hold the call for the rest of the transaction and read it afresh. Every change to a call's scores,
    verdicts and appeals takes this lock first, so two of them on one call run one after the other and
    the second sees what the first committed (a re-scoring never moves appeals off a superseded score, a
    decision is taken once). PostgreSQL: the call's row (SELECT … FOR UPDATE); SQLite: the database's write
    lock, taken by a write that changes nothing (its driver opens the transaction at the first write, so
    what is read after it is current)."""
    stmt = select(Conversation).where(Conversation.id == conv_id).execution_options(populate_existing=True)
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=Conversation)
    else:
        db.execute(update(Conversation).where(Conversation.id == conv_id).values(id=Conversation.id)
                   .execution_options(synchronize_session=False))
    fresh = db.scalar(stmt)
    assert fresh is not None  # a call is never deleted while the workbench runs
    return fresh


def rescore_conversation(db: DBSession, rulebooks: Rulebooks, conv: Conversation, *, user_id: int | None) -> Score:
    """Score a stored conversation again with the active rulebook; the old scores stay as history and
    inspectors' verdicts and pending appeals move to the matching new findings."""
    conv = lock_call(db, conv.id)
    rb: Loaded = rulebooks.active(db)
    report = rb.checker.check(ConversationModel.model_validate(conv.data))
    score = Score(**score_values(report, conv.id, rb.id, user_id, "rescore", utcnow()))
    db.add(score)
    db.flush()
    old = list(db.scalars(select(Finding).where(Finding.score_id == conv.current_score_id))) \
        if conv.current_score_id else []
    rows = finding_rows(report, score.id, conv.id)
    if rows:
        db.execute(insert(cast(Table, Finding.__table__)), rows)
    add_missed(db, rulebooks, conv, list(db.scalars(select(MissedFinding).where(
        MissedFinding.conversation_id == conv.id).order_by(MissedFinding.id))), score)
    new = list(db.scalars(select(Finding).where(Finding.score_id == score.id)))
    carry_over(db, old, new, user_id=user_id, call_id=conv.call_id)
    conv.current_score_id = score.id
    recompute(db, rulebooks, conv, score)
    return score
