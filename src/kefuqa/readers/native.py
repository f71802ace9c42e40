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
from .source import Line, ReadOptions, Source, head_text, undecodable

NATIVE_KEY = re.compile(r'"utterances"\s*:')
# a list of objects (or an empty list); "[00:01-00:03] 坐席：…" is a transcript, not JSON
JSON_LIST = re.compile(r"\[\s*(?:\{|\]|$)")


def _first_object_line(text: str) -> tuple[bool, str]:
    """(whether the first line is one complete JSON object, the text after it)."""
    first, _, rest = text.partition("\n")
    try:
        value = json.loads(first)
    except ValueError:
        return False, rest
    return isinstance(value, dict), rest


def sniff_json(head: bytes, name: str) -> bool:
    text = head_text(head).lstrip()
    if JSON_LIST.match(text):
        return True
    if not text.startswith("{"):
        return False
    whole_line, rest = _first_object_line(text)
    # two or more objects, one per line, are JSON Lines and not one JSON document
    return not (whole_line and rest.lstrip().startswith("{"))


def sniff_jsonl(head: bytes, name: str) -> bool:
    text = head_text(head).lstrip()
    return text.startswith("{") and _first_object_line(text)[0]


def conversation_from_object(
    value: Any, src: Source, source: str, fallback_id: str, place: str | None
) -> Conversation | InputError:
    """Validate one native conversation object; `place` prefixes error places ('line 3', '[2]')."""
    if not isinstance(value, dict):
        return InputError(src.name, place, f"expected a conversation object, found {type_name(value)}")
    data = dict(value)
    notes = data.get("notes")
    if data.get("id") is None:
        data["id"] = fallback_id
        data["notes"] = [*notes, "id missing; taken from the file name"] if isinstance(notes, list) else [
            "id missing; taken from the file name"
        ]
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
        yield InputError(src.name, None, f"expected a conversation object or a list of them, found {type_name(value)}")
        return
    if not value:
        yield InputError(src.name, None, "the file holds an empty list: no conversations")
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
        yield InputError(src.name, None, "the file holds no conversations")


def _jsonl_line(line: Line, src: Source) -> Conversation | InputError | None:
    place = f"line {line.number}"
    if not line.ok:
        return undecodable(src.name, place)
    text = line.text.strip()
    if not text:
        return None
    value = parse_json(text, src.name, place)
    if isinstance(value, InputError):
        return value
    source = f"{src.name}:line {line.number}"
    return conversation_from_object(value, src, source, f"{src.stem}#{line.number}", place)
