"""JSON and JSON Lines writers (DESIGN §3).

``--format json`` must always be one valid JSON document, so:

- exactly one conversation -> one pretty-printed object, the §3 object itself;
- zero or several conversations -> a JSON array of those objects (``[]`` for none).

Pass ``array=True`` to always get an array (scripts that do not want to look at the first character),
``array=False`` to insist on a single object (an error when there are several). ``--format jsonl`` is
the streaming format: one compact object per line, written as each report arrives.

Both write UTF-8 text as is (``ensure_ascii=False``): 服务禁语 stays readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from kefuqa.model import Report

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; json is the fallback
    orjson = None  # type: ignore[assignment]

__all__ = ["report_to_json", "write_json", "write_jsonl"]


def _default(obj: object) -> Any:
    # tuples are handled by json; anything else the model may grow (datetime, Path) becomes its str
    return str(obj)


def report_to_json(report: Report, *, indent: int | None = 2) -> str:
    """One report as a JSON text (§3 object, `Report.to_dict()`)."""
    if indent is None:
        if orjson is not None:  # the compact form is the hot path of big JSONL runs
            return orjson.dumps(report.to_dict(), default=_default).decode()
        return json.dumps(report.to_dict(), ensure_ascii=False, separators=(",", ":"), default=_default)
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=indent, default=_default)


def _indent_block(text: str, prefix: str) -> str:
    # split on "\n" only: str.splitlines() would also split inside strings at U+2028, U+0085 …,
    # which ensure_ascii=False leaves unescaped.
    return "\n".join(prefix + line for line in text.split("\n"))


def write_json(reports: Iterable[Report], out: TextIO, *, array: bool | None = None, indent: int = 2) -> int:
    """Write the reports as one JSON document; returns the number of reports written.

    One report -> one object; zero or several -> an array (see the module docstring). Reports are
    serialised one at a time, so a long batch is streamed, not held as one big string.
    """
    it: Iterator[Report] = iter(reports)
    first = next(it, None)
    second = next(it, None) if first is not None else None
    if array is False and second is not None:
        raise ValueError("write_json(array=False) got more than one report")
    if first is not None and second is None and not array:
        out.write(report_to_json(first, indent=indent))
        out.write("\n")
        return 1
    if first is None:
        out.write("[]\n")
        return 0
    pad = " " * indent
    out.write("[\n")
    out.write(_indent_block(report_to_json(first, indent=indent), pad))
    n = 1
    rest = it if second is None else _chain_one(second, it)
    for report in rest:
        out.write(",\n")
        out.write(_indent_block(report_to_json(report, indent=indent), pad))
        n += 1
    out.write("\n]\n")
    return n


def _chain_one(head: Report, tail: Iterator[Report]) -> Iterator[Report]:
    yield head
    yield from tail


def write_jsonl(reports: Iterable[Report], out: TextIO, *, flush: bool = False) -> int:
    """One compact §3 object per line; returns the number of reports written.

    ``flush=True`` flushes after every line (for a pipe that a dashboard tails).
    """
    n = 0
    for report in reports:
        out.write(report_to_json(report, indent=None))
        out.write("\n")
        if flush:
            out.flush()
        n += 1
    return n
