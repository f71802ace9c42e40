"""Plain-data views of stored rows, shared by the JSON API, the CSV export and the web pages."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .. import labels
from .models import Appeal, Conversation, Finding, RulebookVersion, Score, User

STATUS_LABELS = {"open": "待复核", "confirmed": "已确认", "rejected": "已驳回", "overturned": "申诉撤销", "added": "人工补充"}
APPEAL_LABELS = {"pending": "待裁决", "accepted": "申诉成立", "rejected": "维持扣分", "moot": "无需裁决"}
SEVERITY_LABELS = labels.SEVERITY_LABELS  # the report's words too (kefuqa.labels)
KIND_LABELS = labels.KIND_LABELS
AUDIT_LABELS = labels.AUDIT_LABELS
CHANNEL_LABELS = {"phone": "电话", "chat": "在线", "email": "邮件", "web": "网页", "onsite": "现场"}
ROLE_NAMES = {"agent": "坐席", "customer": "客户", "system": "系统", "ivr": "语音导航"}
RULEBOOK_STATUS = {"active": "启用中", "draft": "待启用", "archived": "已停用", "invalid": "校验未通过"}


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()


def local(dt: datetime | None, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(ZoneInfo(tz)).strftime(fmt)


def call_summary(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id, "call_id": c.call_id, "call_at": iso(c.call_at), "channel": c.channel,
        "direction": c.direction, "duration": c.duration,
        "agent": {"code": c.agent.code, "name": c.agent.name} if c.agent else None,
        "team": {"id": c.team.id, "name": c.team.name} if c.team else None,
        "score": c.score, "grade": c.grade, "fatal": c.fatal, "has_audio": c.has_audio,
        "utterances": c.utterance_count, "source": c.source_name,
    }


def finding_view(f: Finding, appeal: Appeal | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": f.id, "kind": f.kind, "rule": f.rule, "name": f.name, "severity": f.severity, "points": f.points,
        "dimension": f.dimension, "utterance": f.utterance, "start": f.start, "end": f.end,
        "evidence": f.evidence, "message": f.message, "suggestion": f.suggestion,
        "span": [f.span_start, f.span_end] if f.span_start is not None and f.span_end is not None else None,
        "status": f.status, "review_reason": f.review_reason, "reviewed_at": iso(f.reviewed_at),
    }
    if appeal is not None:
        d["appeal"] = appeal_view(appeal)
    return d


def appeal_view(a: Appeal) -> dict[str, Any]:
    return {"id": a.id, "finding_id": a.finding_id, "conversation_id": a.conversation_id, "status": a.status,
            "reason": a.reason, "decision_reason": a.decision_reason, "created_at": iso(a.created_at),
            "decided_at": iso(a.decided_at)}


def score_view(s: Score) -> dict[str, Any]:
    return {"id": s.id, "score": s.score, "final_score": s.final_score, "grade": s.grade, "fatal": s.fatal,
            "dimensions": s.dimensions, "reason": s.reason, "created_at": iso(s.created_at),
            "rulebook": {"id": s.rulebook_id, "name": s.rulebook.name, "version": s.rulebook.version}}


def rulebook_view(r: RulebookVersion, *, with_content: bool = False) -> dict[str, Any]:
    d = {"id": r.id, "name": r.name, "version": r.version, "origin": r.origin, "status": r.status,
         "filename": r.filename, "rules": len(r.rules or []), "lint_errors": r.lint_errors,
         "created_at": iso(r.created_at), "activated_at": iso(r.activated_at), "scorecard": r.scorecard}
    if with_content:
        d["content"] = r.content
        d["rule_list"] = r.rules
    return d


def user_view(u: User) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "display_name": u.display_name, "role": u.role,
            "team": {"id": u.team.id, "name": u.team.name} if u.team else None,
            "agent": {"code": u.agent.code, "name": u.agent.name} if u.agent else None, "active": u.active,
            "last_login_at": iso(u.last_login_at)}


def _cell(value: object) -> object:
    """Spreadsheet programs run cells that start with = + - @ as formulas: quote them."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


CSV_COLUMNS = ["会话编号", "通话时间", "渠道", "坐席工号", "坐席姓名", "班组", "得分", "等级", "红线", "扣分项数",
               "扣分规则", "时长(秒)", "来源文件", "人工补充"]


def calls_csv(calls: Iterable[Conversation], rules_by_call: dict[int, list[str]], tz: str,
              added_by_call: dict[int, list[str]] | None = None) -> str:
    """One row per call; 扣分规则 lists every finding that counts, 人工补充 those of them an inspector added
    (the machine missed them)."""
    buf = io.StringIO()
    buf.write("\ufeff")  # Excel opens UTF-8 CSV correctly only with a BOM
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for c in calls:
        rules = rules_by_call.get(c.id, [])
        w.writerow([_cell(v) for v in (
            c.call_id, local(c.call_at, tz), CHANNEL_LABELS.get(c.channel or "", c.channel or ""),
            c.agent.code if c.agent else "", (c.agent.name or "") if c.agent else "", c.team.name if c.team else "",
            "" if c.score is None else c.score, c.grade or "", "是" if c.fatal else "否", len(rules),
            " ".join(rules), "" if c.duration is None else round(c.duration, 1), c.source_name or "",
            " ".join((added_by_call or {}).get(c.id, [])))])
    return buf.getvalue()


def transcript_context(db: Any, rows: list[tuple[Finding, Conversation]], around: int = 1) -> dict[int, list[dict[str, Any]]]:
    """Per finding of the review queue: its utterance with `around` turns before and after, from the stored
    conversation (one query for all calls), each as {role, text, at: is it the finding's utterance}."""
    from sqlalchemy import select

    ids = {c.id for _, c in rows}
    if not ids:
        return {}
    data = dict(db.execute(select(Conversation.id, Conversation.data).where(Conversation.id.in_(ids))).all())
    out: dict[int, list[dict[str, Any]]] = {}
    for f, c in rows:
        utts = (data.get(c.id) or {}).get("utterances") or []
        if f.utterance is None or not 0 <= f.utterance < len(utts):
            continue
        lo, hi = max(0, f.utterance - around), min(len(utts), f.utterance + around + 1)
        out[f.id] = [{"role": ROLE_NAMES.get(str(u.get("role")), str(u.get("role") or "")),
                      "text": str(u.get("text") or ""), "at": i == f.utterance} for i, u in enumerate(utts[lo:hi], lo)]
    return out
