"""Writers: reports out in the formats a person or a program reads.

``write_reports(reports, fmt, out, **opts)`` is the one entry point the CLI and the service use.

=========  =====================================================================================
format     what
=========  =====================================================================================
table      terminal: per call a header and a findings table, then a summary (``writers.table``)
json       one pretty §3 object for one call, an array for several (``writers.jsonout``)
jsonl      one compact §3 object per line, streamed
csv        one row per finding, ``excel=True`` for a BOM and formula-safe cells (``writers.csvout``)
html       one self-contained page with transcript, highlights and 建议话术 (``writers.html``)
=========  =====================================================================================

Options are passed to the writer of the format: table ``color``, ``width``, ``summary``, ``top``;
json ``array``, ``indent``; jsonl ``flush``; csv ``excel``, ``events``, ``header``; html ``title``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from kefuqa.model import Report
from kefuqa.writers.csvout import write_csv
from kefuqa.writers.html import render_html, write_html
from kefuqa.writers.jsonout import write_json, write_jsonl
from kefuqa.writers.table import write_table

__all__ = [
    "FORMATS", "render_html", "write_csv", "write_html", "write_json", "write_jsonl", "write_reports",
    "write_table",
]

FORMATS: tuple[str, ...] = ("table", "json", "jsonl", "csv", "html")

_WRITERS: dict[str, Callable[..., int]] = {
    "table": write_table,
    "json": write_json,
    "jsonl": write_jsonl,
    "csv": write_csv,
    "html": write_html,
}


def write_reports(reports: Iterable[Report], fmt: str, out: TextIO, **opts: Any) -> int:
    """Write ``reports`` to ``out`` in format ``fmt`` (one of `FORMATS`); returns how many were written.

    Unknown formats and options unknown to that format's writer raise ``ValueError``.
    """
    key = fmt.strip().lower()
    writer = _WRITERS.get(key)
    if writer is None:
        raise ValueError(f"unknown output format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    accepted = {p.name for p in inspect.signature(writer).parameters.values() if p.kind is p.KEYWORD_ONLY}
    unknown = sorted(set(opts) - accepted)
    if unknown:
        raise ValueError(f"format {key!r} does not take option(s) {', '.join(unknown)} "
                         f"(it takes: {', '.join(sorted(accepted)) or 'none'})")
    return writer(reports, out, **opts)
