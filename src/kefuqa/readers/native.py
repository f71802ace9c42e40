"""The native format of DESIGN §1: ``json`` (one object or a list of objects) and ``jsonl`` (one per line).

JSON Lines is read line by line, so a file of any size is read in constant memory, and a bad line only
costs that line. A JSON file over `STREAM_BYTES` that holds a list is streamed (`jsonstream`): a first
pass checks the whole text as `json.loads` would (the same error, line and column for a broken file,
which is then rejected whole, as when it is read whole), a second yields the conversations one by one,
with the ids and places the whole-file reading gives. Memory holds one conversation and one 1 MB chunk.
A file the stream cannot decide (a single object, UTF-16, nesting too deep for the parser, bytes neither
UTF-8 nor GB18030) is read whole. `array_slices` cuts such a file at element starts for parallel workers.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from kefuqa.errors import InputError
from kefuqa.model import Conversation

from .common import conversation_id, json_syntax_error, parse_json, prefixed, type_name, validate_conversation
from .jsonstream import ArrayStream, NotStreamable, StreamError
from .source import HEAD_SIZE, Line, ReadOptions, Source, head_text, undecodable

NATIVE_KEY = re.compile(r'"utterances"\s*:')
# a list of objects (or an empty list); "[00:01-00:03] 坐席：…" is a transcript, not JSON
JSON_LIST = re.compile(r"\[\s*(?:\{|\]|$)")


def _object_lines(head: bytes) -> tuple[int, int] | None:
    """For input starting with '{': (complete lines seen, how many of them are whole JSON objects), or
    None when some line does not start with '{' (pretty-printed JSON). Looks at up to 20 lines."""
    text = head_text(head).lstrip()
    lines = text.split("\n")
    if len(head) >= HEAD_SIZE:
        lines = lines[:-1]  # the last line may be cut
    lines = [ln.strip() for ln in lines if ln.strip()][:20]
    if not all(ln.startswith("{") for ln in lines):
        return None
    whole = 0
    for line in lines:
        try:
            whole += isinstance(json.loads(line), dict)
        except (ValueError, RecursionError):
            pass
    return len(lines), whole


def sniff_json(head: bytes, name: str) -> bool:
    text = head_text(head).lstrip()
    if JSON_LIST.match(text):
        return True
    if not text.startswith("{"):
        return False
    seen = _object_lines(head)
    # two or more objects, one per line, are JSON Lines and not one JSON document
    return seen is None or seen[0] < 2 or seen[1] == 0


def sniff_jsonl(head: bytes, name: str) -> bool:
    if not head_text(head).lstrip().startswith("{"):
        return False
    seen = _object_lines(head)
    # no complete line yet (a very long first line): maybe; the extension decides
    return seen is not None and (seen[0] == 0 or seen[1] > 0)


def conversation_from_object(
    value: Any, src: Source, source: str, fallback_id: str, place: str | None
) -> Conversation | InputError:
    """Validate one native conversation object; `place` prefixes error places ('line 3', '[2]')."""
    if not isinstance(value, dict):
        return InputError(src.name, place, f"应为一个会话对象，实际是{type_name(value)}")
    data = dict(value)
    if data.get("id") is None:
        data["id"] = fallback_id
        notes = data.get("notes")
        data["notes"] = [*(notes if isinstance(notes, list) else []), "缺少 id，已用文件名代替"]
    data["source"] = source
    return validate_conversation(data, src.name, prefixed(place))


STREAM_BYTES = 8 << 20  # JSON files bigger than this are streamed instead of read whole
_ENCODINGS = ("utf-8", "gb18030")  # the whole-file reader's order (`source.decode_all`)


@dataclass
class ArrayScan:
    """A JSON list checked from end to end without holding it: its encoding, its number of elements,
    and (when asked) where to cut it: ``(start byte, end byte, index of the first element)``."""

    encoding: str
    count: int
    slices: list[tuple[int, int, int]] = field(default_factory=list)


def scan_array(opener: Callable[[], BinaryIO], head: bytes, name: str, size: int,
               slice_bytes: int | None = None) -> ArrayScan | InputError | None:
    """Check a JSON list as the whole-file reader would, one element at a time: its `ArrayScan`, the
    `InputError` of a broken file (the same as `json.loads` of the whole text gives), or None when the
    whole-file reader must decide (not a list, not UTF-8/GB18030, too deep)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)):
        return None  # UTF-16/32 (UTF-32 LE's BOM starts as UTF-16 LE's)
    for enc in _ENCODINGS[:1] if head.startswith(codecs.BOM_UTF8) else _ENCODINGS:
        try:
            with opener() as fh:
                scan = ArrayScan(enc, 0)
                cut = -1
                for index, offset, _ in ArrayStream(fh, enc, offsets=slice_bytes is not None):
                    scan.count = index + 1
                    if slice_bytes is not None and (cut < 0 or offset - cut >= slice_bytes):
                        if scan.slices:
                            scan.slices[-1] = (scan.slices[-1][0], offset, scan.slices[-1][2])
                        scan.slices.append((offset, size, index))
                        cut = offset
                return scan
        except NotStreamable as e:
            if str(e) != "undecodable":
                return None
        except StreamError as e:
            if not _decodes_all(opener, enc):  # the whole-file reader would read other text
                continue
            if e.constant:
                return InputError(name, None, f"不是有效的 JSON：{e.msg}")
            assert e.lineno is not None and e.colno is not None
            return json_syntax_error(name, e.msg, e.lineno, e.colno)
    return None


def _decodes_all(opener: Callable[[], BinaryIO], encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    with opener() as fh:
        try:
            while data := fh.read(1 << 20):
                decoder.decode(data)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _file_size(src: Source) -> int:
    try:
        return os.stat(src.path).st_size if src.path is not None else 0
    except OSError:
        return 0


def _read_streamed(src: Source, scan: ArrayScan, elements_only: bool = False,
                   first_index: int = 0) -> Iterator[Conversation | InputError]:
    try:
        with src.open() as fh:
            for i, _, item in ArrayStream(fh, scan.encoding, elements_only=elements_only, first_index=first_index):
                fallback = conversation_id(src.stem, i + 1 if scan.count > 1 else None)
                yield conversation_from_object(item, src, src.name, fallback, f"[{i}]")
    except (StreamError, NotStreamable):  # checked before: the file changed while it was read
        yield InputError(src.name, None, "文件在读取过程中被修改，请重新运行")


def read_json(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
    part = options.extra.get("json_items")
    if part is not None:  # a slice of a list checked whole before: (first index, elements, encoding)
        first_index, count, encoding = part
        yield from _read_streamed(src, ArrayScan(encoding, count), True, first_index)
        return
    size = _file_size(src)
    if size > STREAM_BYTES:
        scan = scan_array(src.open, src.head, src.name, size)
        if isinstance(scan, InputError):
            yield scan
            return
        if scan is not None:
            if scan.count == 0:
                yield InputError(src.name, None, "文件是一个空列表：没有会话")
            else:
                yield from _read_streamed(src, scan)
            return
    text = src.text()
    if isinstance(text, InputError):
        yield text
        return
    value = parse_json(text, src.name)
    if isinstance(value, InputError):
        yield value
        return
    if isinstance(value, dict):
        yield conversation_from_object(value, src, src.name, src.stem, None)
        return
    if not isinstance(value, list):
        yield InputError(
            src.name, None, f"应为会话对象或会话对象的列表，实际是{type_name(value)}"
        )
        return
    if not value:
        yield InputError(src.name, None, "文件是一个空列表：没有会话")
        return
    for i, item in enumerate(value):
        fallback = conversation_id(src.stem, i + 1 if len(value) > 1 else None)
        yield conversation_from_object(item, src, src.name, fallback, f"[{i}]")


def read_jsonl(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
    found = False
    for line in src.lines():
        item = _jsonl_line(line, src)
        if item is not None:
            found = True
            yield item
    if not found:
        yield InputError(src.name, None, "文件中没有会话")


def _jsonl_line(line: Line, src: Source) -> Conversation | InputError | None:
    place = f"第 {line.number} 行"
    if not line.ok:
        return undecodable(src.name, place)
    text = line.text.strip()
    if not text:
        return None
    value = parse_json(text, src.name, place)
    if isinstance(value, InputError):
        return value
    source = f"{src.name}:第 {line.number} 行"
    return conversation_from_object(value, src, source, f"{src.stem}#{line.number}", place)
