"""The tables a batch run writes (schema version `SCHEMA_VERSION`, documented in docs/scale.md).

- ``calls``: one row per scored call — who, when, score, grade, 红线, dimensions, the rulebook and the
  versions that scored it, the §3 report itself (``report_json``, byte for byte what
  ``kefuqa check --format jsonl`` prints) and the conversation (``conversation_json``, for the workbench);
- ``findings``: one row per finding or event of a call (rule, utterance, times, evidence, message,
  suggestion);
- ``errors``: one row per bad input (file, place, reason), written by the run that met it.

Rows are plain dicts here; `kefuqa.distributed.store` turns them into Parquet (with these Arrow schemas) or
JSON Lines. ``calls`` and ``findings`` are partitioned by ``date`` (the call's local date, ``unknown``
without a time).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pyarrow as pa

from ..model import Conversation, Report
from ..writers.jsonout import report_to_json

SCHEMA_VERSION = 1

CALLS = pa.schema([
    ("call_id", pa.string()), ("content_hash", pa.string()), ("source", pa.string()),
    ("date", pa.string()), ("started_at", pa.string()), ("channel", pa.string()), ("direction", pa.string()),
    ("agent_id", pa.string()), ("agent_name", pa.string()), ("team", pa.string()),
    ("utterances", pa.int32()), ("duration", pa.float64()),
    ("score", pa.float64()), ("grade", pa.string()), ("fatal", pa.bool_()),
    ("fatal_rules", pa.list_(pa.string())), ("dimensions", pa.map_(pa.string(), pa.float64())),
    ("findings", pa.int32()), ("events", pa.list_(pa.string())),
    ("rulebook_name", pa.string()), ("rulebook_version", pa.string()), ("kefuqa_version", pa.string()),
    ("judge_models", pa.list_(pa.string())),
    ("run_id", pa.string()), ("scored_at", pa.timestamp("ms", tz="UTC")),
    ("report_json", pa.string()), ("conversation_json", pa.string()),
])

FINDINGS = pa.schema([
    ("call_id", pa.string()), ("date", pa.string()), ("rulebook_version", pa.string()), ("run_id", pa.string()),
    ("kind", pa.string()), ("position", pa.int32()), ("rule", pa.string()), ("name", pa.string()),
    ("severity", pa.string()), ("points", pa.float64()), ("dimension", pa.string()),
    ("utterance", pa.int32()), ("start", pa.float64()), ("end", pa.float64()),
    ("evidence", pa.string()), ("message", pa.string()), ("suggestion", pa.string()),
    ("match", pa.string()), ("confidence", pa.float64()),
])

ERRORS = pa.schema([
    ("run_id", pa.string()), ("file", pa.string()), ("place", pa.string()), ("line", pa.int64()),
    ("reason", pa.string()), ("kind", pa.string()),
])

SCHEMAS = {"calls": CALLS, "findings": FINDINGS, "errors": ERRORS}


def conversation_data(conv: Conversation) -> dict[str, Any]:
    """The conversation as DESIGN §1 JSON, without the path of the machine it was read on."""
    data = conv.model_dump(mode="json", exclude_none=True)
    data.pop("source", None)
    return data


def content_hash(data: dict[str, Any]) -> str:
    """The digest the workbench also keeps (`service.records.content_hash`): a changed call rescores."""
    body = {k: v for k, v in data.items() if k not in ("source", "notes")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def call_date(conv: Conversation) -> str:
    """The partition of a call: the date of its start (or arrival) in its own time zone."""
    for value in (conv.started_at, conv.received_at):
        if value is not None:
            return value.date().isoformat()
    return "unknown"


def call_rows(conv: Conversation, report: Report, *, source: str, digest: str, data: dict[str, Any],
              run_id: str, scored_at: Any, kefuqa_version: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``calls`` row and the ``findings`` rows of one scored call."""
    date = call_date(conv)
    ends = [u.end for u in conv.utterances if u.end is not None]
    recorded = conv.metrics.get("duration_seconds")
    duration = float(recorded) if isinstance(recorded, (int, float)) else (max(ends) if ends else None)
    agent = conv.agent
    judges = sorted({f.judge for f in report.findings if f.judge} | {e.judge for e in report.events if e.judge})
    version = str(report.rulebook.get("version", ""))
    row = {
        "call_id": conv.id, "content_hash": digest, "source": source, "date": date,
        "started_at": conv.started_at.isoformat() if conv.started_at else None,
        "channel": conv.channel, "direction": conv.direction,
        "agent_id": agent.id if agent else None, "agent_name": agent.name if agent else None,
        "team": agent.team if agent else None, "utterances": len(conv.utterances), "duration": duration,
        "score": float(report.score), "grade": report.grade, "fatal": bool(report.fatal),
        "fatal_rules": list(report.fatal_rules), "dimensions": [(k, float(v)) for k, v in report.dimensions.items()],
        "findings": len(report.findings), "events": [e.rule for e in report.events],
        "rulebook_name": str(report.rulebook.get("name", "")), "rulebook_version": version,
        "kefuqa_version": kefuqa_version, "judge_models": judges, "run_id": run_id, "scored_at": scored_at,
        "report_json": report_to_json(report, indent=None),
        "conversation_json": json.dumps(data, ensure_ascii=False, sort_keys=True),
    }
    base = {"call_id": conv.id, "date": date, "rulebook_version": version, "run_id": run_id}
    findings = [{**base, "kind": "finding", "position": i, "rule": f.rule, "name": f.name, "severity": f.severity,
                 "points": float(f.points or 0), "dimension": f.dimension, "utterance": f.utterance,
                 "start": f.start, "end": f.end, "evidence": f.evidence, "message": f.message,
                 "suggestion": f.suggestion, "match": f.match, "confidence": f.confidence}
                for i, f in enumerate(report.findings)]
    findings += [{**base, "kind": "event", "position": i, "rule": e.rule, "name": e.name, "severity": "event",
                  "points": 0.0, "dimension": None, "utterance": e.utterance, "start": e.start, "end": None,
                  "evidence": e.evidence, "message": e.name, "suggestion": None, "match": None,
                  "confidence": e.confidence} for i, e in enumerate(report.events)]
    return row, findings


_LINE = re.compile(r"第 (\d+) 行")  # the readers' places: 第 12 行, 第 12 行第 3 列, 第 12 行 utterances[0].end


def error_row(file: str, place: str | None, reason: str, kind: str, run_id: str) -> dict[str, Any]:
    m = _LINE.match(place or "")
    line = int(m.group(1)) if m else None
    return {"run_id": run_id, "file": file, "place": place, "line": line, "reason": reason, "kind": kind}
