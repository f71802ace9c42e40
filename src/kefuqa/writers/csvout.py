"""CSV writer: one row per finding, for spreadsheets and BI tools.

A call without findings still gets one row (empty ``rule``) so that every call is counted. Events
(EVT…, no points) are left out unless ``events=True``; their rows carry ``severity`` ``event`` and
``points`` 0.

``excel=True`` writes a UTF-8 byte-order mark (Excel otherwise opens UTF-8 as GBK and shows 乱码),
uses CRLF line ends, and defuses text cells that a spreadsheet would run as a formula (a transcript is
untrusted input: ``=HYPERLINK(…)`` is prefixed with ``'``). Open the output file with ``newline=""``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from kefuqa.model import EventHit, Finding, Report
from kefuqa.writers._common import agent_fields, finding_sort_key, fmt_num

__all__ = ["CSV_COLUMNS", "write_csv"]

CSV_COLUMNS: tuple[str, ...] = (
    "call_id", "agent_id", "agent_name", "agent_team", "score", "grade", "fatal",
    "rule", "name", "severity", "dimension", "points", "utterance", "start", "end",
    "evidence", "message", "suggestion",
)

# Columns whose value comes from text (transcripts, rulebooks), defused for Excel.
_TEXT_COLUMNS = frozenset({
    "call_id", "agent_id", "agent_name", "agent_team", "grade", "rule", "name", "severity", "dimension",
    "evidence", "message", "suggestion",
})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

BOM = "\ufeff"


def _defuse(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _call_cells(report: Report) -> dict[str, str]:
    aid, name, team = agent_fields(report)
    return {
        "call_id": report.call_id, "agent_id": aid, "agent_name": name, "agent_team": team,
        "score": fmt_num(report.score), "grade": report.grade, "fatal": "1" if report.fatal else "0",
    }


def _finding_cells(f: Finding) -> dict[str, str]:
    return {
        "rule": f.rule, "name": f.name, "severity": f.severity, "dimension": f.dimension or "",
        "points": fmt_num(f.points), "utterance": "" if f.utterance is None else str(f.utterance),
        "start": fmt_num(f.start, 3), "end": fmt_num(f.end, 3), "evidence": f.evidence or "",
        "message": f.message, "suggestion": f.suggestion or "",
    }


def _event_cells(e: EventHit) -> dict[str, str]:
    return {
        "rule": e.rule, "name": e.name, "severity": "event", "dimension": "", "points": "0",
        "utterance": "" if e.utterance is None else str(e.utterance), "start": fmt_num(e.start, 3),
        "end": "", "evidence": e.evidence or "", "message": "", "suggestion": "",
    }


def write_csv(
    reports: Iterable[Report],
    out: TextIO,
    *,
    excel: bool = False,
    events: bool = False,
    header: bool = True,
) -> int:
    """Write one row per finding (and per event with ``events=True``); returns the number of rows.

    Rows are written as each report arrives (streaming). Findings are in transcript order, call-level
    findings first.
    """
    if excel:
        out.write(BOM)
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n" if excel else "\n",
                            extrasaction="raise")
    if header:
        writer.writeheader()
    rows = 0
    empty = dict.fromkeys(CSV_COLUMNS[7:], "")
    for report in reports:
        call = _call_cells(report)
        items: list[dict[str, str]] = [_finding_cells(f) for f in sorted(report.findings, key=finding_sort_key)]
        if events:
            items += [_event_cells(e) for e in report.events]
        if not items:
            items = [empty]
        for item in items:
            row = {**call, **item}
            if excel:
                row = {k: _defuse(v) if k in _TEXT_COLUMNS else v for k, v in row.items()}
            writer.writerow(row)
            rows += 1
    return rows
