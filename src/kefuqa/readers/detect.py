"""Which format an input is: from its content first, its extension as a hint.

Every registered sniffer looks at the first bytes, binary formats first (their magic numbers are
unambiguous), except that input opening with a Unicode byte-order mark tries the text formats first (a
UTF-16 BOM, FF FE, also looks like an MPEG audio frame header). Vendor and other specific formats win
outright; among the generic ones (json, jsonl, csv, tsv, text) a generic extension decides when its
format is among those that match (a one-line ``.jsonl`` file is JSON Lines, not JSON). When no sniffer
matches, the extension alone decides.
"""

from __future__ import annotations

import codecs

from .registry import format_for_name, readers_in_detection_order

GENERIC = frozenset({"json", "jsonl", "csv", "tsv", "text"})
_TEXT_BOMS = (
    codecs.BOM_UTF8,
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
)


def detect_format(head: bytes, filename: str) -> str | None:
    by_extension = format_for_name(filename) if filename else None
    specs = readers_in_detection_order()
    if head.startswith(_TEXT_BOMS):
        specs = [s for s in specs if not s.binary] + [s for s in specs if s.binary]
    candidates = [s.name for s in specs if s.sniff is not None and s.sniff(head, filename)]
    if not candidates:
        return by_extension
    first = candidates[0]
    if first not in GENERIC:
        return first
    if by_extension in GENERIC and by_extension in candidates:
        return by_extension
    return first
