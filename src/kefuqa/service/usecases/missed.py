"""Whole-call review: findings the machine missed, each rule's recall beside its precision, and the reviewed
utterances as training examples.

- precision = confirmed ÷ (confirmed + rejected + overturned) — of what the machine reported, how much was right;
- recall = confirmed ÷ (confirmed + missed) — of the violations people found on reviewed calls, how many the
  machine reported. Only rules with a human judgement get a figure.

A missed finding counts as a finding of its call (marked 人工补充, `scores.add_missed`) but never in the machine's
precision; one an accepted appeal withdrew is no violation: not missed, a hard negative in the training export.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.orm import Session as DBSession

from .. import repository as repo
from .. import rulebooks as store
from ..errors import Forbidden, Invalid, NotFound
from ..models import Conversation, Finding, MissedFinding, utcnow
from ..scores import add_missed as count_missed
from ..scores import human_row, lock_call, remove_missed
from .context import Ctx

REVIEWERS = ("admin", "qa")


def rule_choices(ctx: Ctx | DBSession) -> list[dict[str, Any]]:
    """The active rulebook's rules ({id, name}), for the form."""
    rec = store.active(ctx.db if isinstance(ctx, Ctx) else ctx)
    return [{"id": r["id"], "name": r.get("name")} for r in (rec.rules if rec else []) if r.get("id")]


def add_missed(ctx: Ctx, call_id: int, rule: str | None, utterance: int | str | None, comment: str | None,
               source: str = "review") -> MissedFinding:
    """An inspector adds a violation the machine did not report: a rule of the active rulebook, optionally the
    utterance (0-based) and a comment. It is a finding of the call's current score from then on (marked
    人工补充, `scores.add_missed`): in its report, the exports and the agent's score."""
    user = ctx.acting()
    with ctx.transaction() as db:
        conv = repo.get_call(db, user, call_id)
        if not repo.can_review(user):
            raise Forbidden("只有质检员和管理员可以补充漏报")
        rule = (rule or "").strip().upper()
        known = {r["id"] for r in rule_choices(ctx)}
        if rule not in known:
            raise Invalid(f"规则 {rule or '（空）'} 不在当前规则集中")
        index: int | None = None
        if utterance not in (None, ""):
            try:
                index = int(utterance)  # type: ignore[arg-type]
            except ValueError:
                raise Invalid("句子序号须为数字") from None
            if not 0 <= index < max(conv.utterance_count, 0):
                raise Invalid(f"句子序号超出范围（0–{conv.utterance_count - 1}）")
        text = (comment or "").strip() or None
        if text and len(text) > 2000:
            raise Invalid("说明不能超过 2000 字")
        rec = MissedFinding(conversation_id=conv.id, rule=rule, utterance=index, comment=text, source=source,
                            created_by=user.id, created_at=utcnow())
        db.add(rec)
        db.flush()
        count_missed(db, ctx.wb.rulebooks, lock_call(db, conv.id), [rec])
        repo.audit(db, user, "finding.missed", "conversation", conv.id, ctx.ip, call=conv.call_id, rule=rule,
                   utterance=index, comment=text)
    return rec


def delete_missed(ctx: Ctx, missed_id: int, call_id: int | None = None) -> None:
    """Delete a missed finding (of call `call_id` when given: an assignment removes only its own call's)."""
    user = ctx.acting()
    with ctx.transaction() as db:
        rec = db.get(MissedFinding, missed_id)
        if rec is None or (call_id is not None and rec.conversation_id != call_id):
            raise NotFound("漏报记录不存在")
        repo.get_call(db, user, rec.conversation_id)
        if not repo.can_review(user):
            raise Forbidden("只有质检员和管理员可以删除漏报")
        remove_missed(db, ctx.wb.rulebooks, lock_call(db, rec.conversation_id), rec)
        db.execute(delete(MissedFinding).where(MissedFinding.id == missed_id))
        repo.audit(db, user, "finding.missed_delete", "conversation", rec.conversation_id, ctx.ip, rule=rec.rule)


def missed_for(ctx: Ctx, call_id: int) -> list[MissedFinding]:
    return list(ctx.db.scalars(select(MissedFinding).where(MissedFinding.conversation_id == call_id)
                               .order_by(MissedFinding.id)))


def withdrawn(m: type[MissedFinding]) -> ColumnElement[bool]:
    """SQL condition: the missed finding's finding (`scores.add_missed`, on the call's current score) was
    withdrawn by an accepted appeal — the agent was right and the inspector wrong, so it is no violation."""
    return select(Finding.id).join(Conversation, and_(
        Conversation.id == Finding.conversation_id, Conversation.current_score_id == Finding.score_id)).where(
        Finding.conversation_id == m.conversation_id, Finding.kind == "finding", Finding.rule == m.rule,
        Finding.utterance.is_not_distinct_from(m.utterance), Finding.status == "overturned", human_row()).exists()


def with_recall(db: DBSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rule-quality rows (`repository.rule_quality`) with `missed` and `recall`; rules only people found
    are added."""
    missed = dict(db.execute(select(MissedFinding.rule, func.count(MissedFinding.id))
                                 .where(~withdrawn(MissedFinding)).group_by(MissedFinding.rule)).all())
    names = {r["id"]: r.get("name") for r in rule_choices(db)}
    seen = set()
    for r in rows:
        seen.add(r["rule"])
        m = int(missed.get(r["rule"], 0))
        r["missed"] = m
        r["recall"] = round(r["confirmed"] / (r["confirmed"] + m), 3) if r["confirmed"] + m else None
    for rule, m in sorted(missed.items()):
        if rule not in seen:
            rows.append({"rule": rule, "name": names.get(rule), "findings": 0, "reviewed": 0, "confirmed": 0,
                         "rejected": 0, "overturned": 0, "precision": None, "missed": int(m), "recall": 0.0})
    return rows


def training_examples(ctx: Ctx) -> Iterator[str]:
    """Reviewed utterances as JSON lines in the judgement corpus's shape (`data/intent/corpus.jsonl`: id, text,
    label, y, role, industry, register, source, split) plus rule, call_id and utterance: a confirmed finding
    and a missed one are positives (y=1), a rejected or overturned one a hard negative (y=0). `label` is the
    rule's judgement label when it is an intent rule, else the rule id. A missed finding whose finding an
    appeal withdrew is one hard negative (source review:missed:overturned), not a positive as well."""
    ctx.require(REVIEWERS, "只有质检员和管理员可以导出训练样本")
    db = ctx.db
    rb = ctx.wb.rulebooks.active(db).rulebook
    labels = {r.id: getattr(r, "label", None) for r in rb.rules}
    rows: list[tuple[str, int, int | None, str, str]] = []  # rule, call, utterance, y-source, who
    for f in db.execute(select(Finding.rule, Finding.conversation_id, Finding.utterance, Finding.status).join(
            Conversation, and_(Conversation.id == Finding.conversation_id,
                               Conversation.current_score_id == Finding.score_id)).where(
            Finding.kind == "finding", Finding.status.in_(("confirmed", "rejected", "overturned")),
            Finding.utterance.is_not(None), ~human_row()).order_by(Finding.id)):  # the machine's findings
        rows.append((f[0], f[1], f[2], f[3], "finding"))
    for m in db.execute(select(MissedFinding.rule, MissedFinding.conversation_id, MissedFinding.utterance,
                               withdrawn(MissedFinding)).where(MissedFinding.utterance.is_not(None))
                        .order_by(MissedFinding.id)):
        rows.append((m[0], m[1], m[2], "overturned" if m[3] else "missed", "missed"))
    calls: dict[int, tuple[str, list[Any]]] = {}
    ids = sorted({r[1] for r in rows})
    for i in range(0, len(ids), 500):
        for cid, call_id, data in db.execute(select(Conversation.id, Conversation.call_id, Conversation.data)
                                             .where(Conversation.id.in_(ids[i:i + 500]))):
            calls[cid] = (call_id, list((data or {}).get("utterances") or []))
    for rule, cid, index, status, kind in rows:
        call_id, utts = calls.get(cid, ("", []))
        if index is None or not 0 <= index < len(utts) or not isinstance(utts[index], dict):
            continue
        u = utts[index]
        y = 0 if status in ("rejected", "overturned") else 1
        yield json.dumps({
            "id": f"review-{call_id}-{index}-{rule}", "text": str(u.get("text") or ""),
            "label": labels.get(rule) or rule, "y": y, "role": u.get("role") or "agent", "industry": "workbench",
            "register": "spoken", "source": f"review:{kind}:{status}", "split": "train",
            "rule": rule, "call_id": call_id, "utterance": index}, ensure_ascii=False)
