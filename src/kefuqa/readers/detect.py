"""Which format an input is: from its content first, its extension as a hint.

Every registered sniffer looks at the first bytes (binary formats first). Vendor and other specific
formats win outright; among the generic ones (json, jsonl, csv, tsv, text) the extension decides when
its format is among those that match (a one-line ``.jsonl`` file is JSON Lines, not JSON). When no
sniffer matches, the extension alone decides.
"""

from __future__ import annotations

from .registry import format_for_name, readers_in_detection_order

GENERIC = frozenset({"json", "jsonl", "csv", "tsv", "text"})


def detect_format(head: bytes, filename: str) -> str | None:
    by_extension = format_for_name(filename) if filename else None
    candidates = [
        spec.name for spec in readers_in_detection_order() if spec.sniff is not None and spec.sniff(head, filename)
    ]
    if not candidates:
        return by_extension
    first = candidates[0]
    if first not in GENERIC:
        return first
    if by_extension in candidates:
        return by_extension
    return first
