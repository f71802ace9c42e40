"""Helpers shared by the readers: times, roles, JSON loading and turning validation errors into words."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from kefuqa.errors import InputError
from kefuqa.model import Conversation, Utterance, unsafe_value

from .source import Source

# ---- times ------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# mm:ss, hh:mm:ss, with an optional fraction after "." or "," (SRT writes 00:00:01,200)
_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d+))?")


def to_seconds(value: object, *, ms: bool = False) -> float | None:
    """Seconds from a number, a numeric string, or a ``mm:ss(.s)`` / ``hh:mm:ss(.s)`` clock string.

    Empty values give None; anything else raises ValueError with a message in words. With ``ms`` plain
    numbers are milliseconds (clock strings are clock strings either way).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a time")
        return round(value / 1000, 3) if ms else float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time")
    text = value.strip()
    if not text:
        return None
    if _NUMBER.fullmatch(text):
        number = float(text)
        return round(number / 1000, 3) if ms else number
    m = _CLOCK.fullmatch(text)
    if m:
        hours, minutes, seconds, fraction = m.groups()
        if int(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
            raise ValueError(f"{text!r} 不是有效的时刻")
        total = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
        return total + (float("0." + fraction) if fraction else 0.0)
    raise ValueError(f"{text!r} 不是时间（应为秒数、mm:ss 或 hh:mm:ss）")


def ms_to_seconds(value: object, field: str) -> float | None:
    """Vendor milliseconds to seconds; ValueError names the vendor field."""
    if value is None or value == "":
        return None
    try:
        return to_seconds(value, ms=True)
    except ValueError:
        raise ValueError(f"{field} {value!r} 不是毫秒数") from None


# ---- JSON -------------------------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"JSON 中不允许出现 {name}")


def parse_json(text: str, source: str, place_prefix: str | None = None) -> Any | InputError:
    """Parse JSON text; an error names line and column (after `place_prefix`, e.g. ``line 12``)."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        return json_syntax_error(source, e.msg, e.lineno, e.colno, place_prefix)
    except RecursionError:
        depth, line, col = _too_deep_at(text)
        place = f"{place_prefix}第 {col} 列" if place_prefix else f"第 {line} 行第 {col} 列"
        return InputError(source, place, f"不是有效的 JSON：嵌套过深（此处已是第 {depth} 层），不是通话数据")
    except ValueError as e:
        return InputError(source, place_prefix, f"不是有效的 JSON：{e}")


def json_syntax_error(source: str, msg: str, lineno: int, colno: int,
                      place_prefix: str | None = None) -> InputError:
    """The error of a JSON syntax error (the parser's `msg` at `lineno`/`colno`), as `parse_json` words it."""
    if place_prefix:  # one line of a JSONL file: the column is enough
        place = f"{place_prefix}第 {colno} 列"
    else:
        place = f"第 {lineno} 行第 {colno} 列"
    reason = f"不是有效的 JSON：{_JSON_WORDS.get(msg, msg)}"
    if msg == "Extra data":
        reason += "（不止一个 JSON 值；JSON Lines 文件请用 --format jsonl）"
    return InputError(source, place, reason)


_DEEP = 500  # where the place of a too-deep JSON value is shown (the parser itself gives up near 1,000)


def _too_deep_at(text: str) -> tuple[int, int, int]:
    """(depth, line, column), 1-based, of the bracket that opens level `_DEEP`, else of the deepest one
    (strings skipped); only called after the parser gave up, so the character loop costs nothing on
    good input."""
    depth, line, col, in_str, escaped = 0, 1, 0, False, False
    deepest = (0, 1, 1)
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > deepest[0]:
                deepest = (depth, line, col)
            if depth >= _DEEP:
                break
        elif ch in "]}":
            depth -= 1
    return deepest


def load_json(src: Source) -> Any | InputError:
    text = src.text()
    if isinstance(text, InputError):
        return text
    return parse_json(text, src.name)


def type_name(value: object) -> str:
    return {
        dict: "对象",
        list: "列表",
        str: "字符串",
        int: "数字",
        float: "数字",
        bool: "true/false",
        type(None): "null",
    }.get(type(value), type(value).__name__)


# ---- validation errors ------------------------------------------------------------------------------

# the JSON parser's messages (json.JSONDecodeError.msg) in words
_JSON_WORDS = {
    "Expecting value": "此处应有一个值",
    "Expecting property name enclosed in double quotes": "字段名应使用双引号",
    "Expecting ',' delimiter": "缺少逗号",
    "Expecting ':' delimiter": "缺少冒号",
    "Unterminated string starting at": "字符串没有结束引号",
    "Extra data": "多余的内容",
    "Invalid control character at": "字符串中有控制字符",
    "Invalid \\escape": "无效的转义",
}


def _pydantic_words(err: Any) -> str:
    """A pydantic error in words, by its type; the type's own English words only for a rare one."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        return "应为数字" if kind != "int_from_float" else "应为整数"
    if kind in ("string_type", "string_unicode"):
        return "应为字符串"
    if kind in ("bool_parsing", "bool_type"):
        return "应为 true 或 false"
    if kind in ("list_type", "tuple_type"):
        return "应为列表"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "应为对象"
    if kind in ("literal_error", "enum"):
        return f"应为 {ctx.get('expected', '规定的取值之一')}".replace(" or ", " 或 ")
    if kind == "extra_forbidden":
        return "不认识的字段"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        sign = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<", "less_than_equal": "≤"}[kind]
        bound = next(iter(ctx.values()), "")
        return f"应 {sign} {bound}"
    if kind in ("string_too_long", "too_long"):
        return f"太长（最多 {ctx.get('max_length', '?')}）"
    if kind in ("string_too_short", "too_short"):
        return f"太短（至少 {ctx.get('min_length', '?')}）"
    if kind in ("datetime_parsing", "datetime_type", "datetime_from_date_parsing"):
        return "应为日期时间（ISO 8601，如 2026-03-05T14:32:10+08:00）"
    if kind == "finite_number":
        return "应为有限的数字"
    msg: str = err["msg"]
    return f"取值无效（{msg}）"


_FIELD_FIRST = re.compile(r"(start|end|at|ring_seconds|id) ")


def loc_path(loc: Sequence[int | str]) -> str:
    """('utterances', 3, 'end') -> 'utterances[3].end'"""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _error_words(err: Any) -> tuple[tuple[int | str, ...], str]:
    """(location, reason) of one pydantic error, the location refined to the field a message names."""
    loc: tuple[int | str, ...] = tuple(err["loc"])
    msg: str = err["msg"]
    kind = err["type"]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        m = _FIELD_FIRST.match(msg)
        if m and (not loc or loc[-1] != m.group(1)):
            loc = loc + (m.group(1),)
        if not loc and msg.startswith("会话没有任何话语"):
            loc = ("utterances",)
    elif kind == "missing":
        msg = f"缺少 {field}" if field else "缺少必填项"
    else:
        value = err.get("input")
        shown = (
            repr(value) if isinstance(value, str | int | float | bool) or value is None else type_name(value)
        )
        words = _pydantic_words(err)
        msg = f"{field} {shown}：{words}" if field else words
    return loc, msg


def describe_validation(
    exc: ValidationError, place_of: Callable[[tuple[int | str, ...]], str | None]
) -> tuple[str | None, str]:
    """(place, reason) for a validation error: the first problem's place and all problems in words."""
    problems = [_error_words(e) for e in exc.errors()]
    (loc, reason), rest = problems[0], problems[1:]
    if rest:
        more = "；".join(f"{place_of(lo) or '会话'}：{r}" for lo, r in rest[:3])
        extra = f"，另有 {len(rest) - 3} 处" if len(rest) > 3 else ""
        reason = f"{reason}（另外：{more}{extra}）"
    return place_of(loc), reason


def prefixed(prefix: str | None) -> Callable[[tuple[int | str, ...]], str | None]:
    """A place function: 'line 12, utterances[3].end' / '[2].utterances[3].end' / 'utterances[3].end'."""

    def place(loc: tuple[int | str, ...]) -> str | None:
        path = loc_path(loc)
        if not prefix:
            return path or None
        if not path:
            return prefix
        if prefix.startswith("["):
            return prefix + ("" if path.startswith("[") else ".") + path
        return f"{prefix} {path}"

    return place


def validate_conversation(
    data: dict[str, Any], source: str, place_of: Callable[[tuple[int | str, ...]], str | None]
) -> Conversation | InputError:
    bad = unsafe_value(data)
    if bad is not None:
        return InputError(source, place_of(bad[0]), bad[1])
    try:
        return Conversation.model_validate(data)
    except ValidationError as e:
        place, reason = describe_validation(e, place_of)
        return InputError(source, place, reason)


def make_utterance(data: dict[str, Any]) -> Utterance:
    """Validate one utterance; raises ValueError with the problems in words."""
    try:
        return Utterance.model_validate(data)
    except ValidationError as e:
        _, reason = describe_validation(e, lambda loc: loc_path(loc) or None)
        raise ValueError(reason) from None


def conversation_id(stem: str, index: int | None) -> str:
    """The id of a conversation from a format that carries none: the file stem, `stem#N` for several."""
    return stem if index is None else f"{stem}#{index}"
