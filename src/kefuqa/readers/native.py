"""The native format of DESIGN §1: ``json`` (one object or a list of objects) and ``jsonl`` (one per line).

JSON Lines is read line by line, so a file of any size is read in constant memory, and a bad line only
costs that line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from kefuqa.errors import InputError
from kefuqa.model import Conversation

from .common import conversation_id, parse_json, prefixed, type_name, validate_conversation
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


def read_json(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
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
