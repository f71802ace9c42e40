"""Rows of the database from the core's objects (conversation, report) and back: what ingest and re-scoring
store, in one place."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone, tzinfo
from typing import Any

from ..coverage import Coverage
from ..model import Conversation as ConversationModel
from ..model import EventHit, Finding, Party, Report
from .models import utcnow


def agent_code(agent: Party | None) -> str | None:
    if agent is None:
        return None
    code = agent.id or agent.name
    return str(code).strip()[:100] if code else None


def conversation_data(conv: ConversationModel, audio_file: str | None) -> dict[str, Any]:
    """The conversation as stored: DESIGN §1 JSON without paths of the machine it was read on."""
    data = conv.model_dump(mode="json", exclude_none=True)
    data.pop("source", None)  # a path of the machine it was read on; the file name is kept in the row
    metrics = data.get("metrics") or {}
    if "audio_path" in metrics:  # a path of this server: keep only the stored file's name
        metrics["audio_path"] = audio_file
    if audio_file:
        metrics["audio"] = True
    if metrics:
        data["metrics"] = metrics
    return data


def content_hash(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k not in ("source", "notes")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def call_time(conv: ConversationModel, tz: tzinfo = timezone.utc) -> datetime:
    """When the call took place. A time without an offset is the wall clock where the call was taken (as the
    greeting rule OPN002 reads it), so it is taken in the workbench's zone (KEFUQA_TIMEZONE), not as UTC."""
    for value in (conv.started_at, conv.received_at):
        if value is not None:
            return value if value.tzinfo else value.replace(tzinfo=tz)
    return utcnow()


def conversation_fields(conv: ConversationModel, data: dict[str, Any], digest: str, *, agent_id: int | None,
                        team_id: int | None, audio_file: str | None, source_name: str | None,
                        tz: tzinfo = timezone.utc) -> dict[str, Any]:
    """The columns of a conversation row."""
    ends = [u.end for u in conv.utterances if u.end is not None]
    recorded = conv.metrics.get("duration_seconds")
    duration = float(recorded) if isinstance(recorded, (int, float)) else (max(ends) if ends else None)
    return {
        "call_id": conv.id, "agent_id": agent_id, "team_id": team_id, "channel": conv.channel,
        "direction": conv.direction, "call_at": call_time(conv, tz), "duration": duration,
        "utterance_count": len(conv.utterances), "has_audio": bool(audio_file),
        "audio_file": audio_file, "source_name": (source_name or None) and source_name[:255],
        "content_hash": digest, "data": data,
    }


def score_values(report: Report, conversation_id: int, rulebook_id: int, user_id: int | None, reason: str,
                 now: datetime) -> dict[str, Any]:
    """The columns of a score row: the engine's figures, which are also the effective ones until an
    inspector or an appeal voids a finding."""
    return {"conversation_id": conversation_id, "rulebook_id": rulebook_id, "score": float(report.score),
            "final_score": float(report.score), "grade": report.grade, "fatal": bool(report.fatal),
            "dimensions": dict(report.dimensions), "report": report.to_dict(), "reason": reason,
            "created_by": user_id, "created_at": now}


def finding_rows(report: Report, score_id: int, conversation_id: int) -> list[dict[str, Any]]:
    """Finding rows of a report: its findings (`position` = index in the report) and its events."""
    rows: list[dict[str, Any]] = []
    base = {"score_id": score_id, "conversation_id": conversation_id, "status": "open"}
    for i, f in enumerate(report.findings):
        span = f.span or (None, None)
        rows.append({**base, "kind": "finding", "position": i, "rule": f.rule, "name": f.name,
                     "severity": f.severity, "points": float(f.points or 0), "dimension": f.dimension,
                     "utterance": f.utterance, "start": f.start, "end": f.end, "evidence": f.evidence,
                     "message": f.message, "suggestion": f.suggestion, "span_start": span[0], "span_end": span[1]})
    for i, e in enumerate(report.events):
        span = e.span or (None, None)
        rows.append({**base, "kind": "event", "position": i, "rule": e.rule, "name": e.name, "severity": "event",
                     "points": 0.0, "dimension": None, "utterance": e.utterance, "start": e.start, "end": None,
                     "evidence": e.evidence, "message": e.name, "suggestion": None, "span_start": span[0],
                     "span_end": span[1]})
    return rows


def _span(value: Any) -> tuple[int, int] | None:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) and len(value) == 2 else None


def report_from_dict(d: dict[str, Any]) -> Report:
    """The core report of a stored report (DESIGN §3 JSON, as `Report.to_dict` wrote it)."""
    findings = [Finding(rule=str(f["rule"]), name=str(f.get("name") or f["rule"]),
                        severity=str(f.get("severity") or "minor"), points=float(f.get("points") or 0.0),
                        utterance=f.get("utterance"), start=f.get("start"), end=f.get("end"),
                        evidence=f.get("evidence"), message=str(f.get("message") or ""),
                        suggestion=f.get("suggestion"), dimension=f.get("dimension"), span=_span(f.get("span")),
                        match=f.get("match"), confidence=f.get("confidence"), judge=f.get("judge"))
                for f in d.get("findings") or []]
    events = [EventHit(rule=str(e["rule"]), name=str(e.get("name") or e["rule"]), utterance=e.get("utterance"),
                       start=e.get("start"), evidence=e.get("evidence"), span=_span(e.get("span")),
                       confidence=e.get("confidence"), judge=e.get("judge"))
              for e in d.get("events") or []]
    reasons = d.get("not_applicable_reasons") or dict.fromkeys(d.get("not_applicable") or [], "")
    return Report(call_id=str(d.get("call_id") or ""), rulebook=dict(d.get("rulebook") or {}),
                  score=float(d.get("score") or 0.0), grade=str(d.get("grade") or ""), fatal=bool(d.get("fatal")),
                  dimensions={k: float(v) for k, v in (d.get("dimensions") or {}).items()}, findings=findings,
                  events=events, not_applicable=dict(reasons), fatal_rules=list(d.get("fatal_rules") or []),
                  notes=list(d.get("notes") or []), coverage=_coverage(d.get("coverage")))


def _coverage(c: Any) -> Coverage | None:
    """The stored coverage object (additive to DESIGN §3), if the report has one."""
    if not isinstance(c, dict):
        return None
    try:
        return Coverage(checked=int(c["checked"]), rules=int(c["rules"]), minimum=float(c["min"]),
                        unchecked=[str(x) for x in c.get("unchecked") or []])
    except (KeyError, TypeError, ValueError):
        return None
