"""YAML loading that remembers line numbers, so rule errors can name file, line and key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import RuleError


class LineDict(dict[str, Any]):
    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    source = "<yaml>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        k = loader.construct_object(key_node, deep=True)
        if not isinstance(k, str | int | float | bool):
            raise RuleError(loader.source, key_node.start_mark.line + 1, None, "键应是普通的值（文本或数字）")
        k = str(k)
        if k in out:
            raise RuleError(loader.source, key_node.start_mark.line + 1, k, f"重复的键 {k!r}")
        out[k] = loader.construct_object(value_node, deep=True)
        out.key_lines[k] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode, deep: bool = False) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)  # type: ignore[arg-type]
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)  # type: ignore[arg-type]


def load_yaml(text: str, source: str) -> Any:
    loader = _Loader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise RuleError(source, line, None, yaml_problem(str(exc.problem or exc))) from None
    finally:
        loader.dispose()


# libyaml's problems in the words of a rule author; the parser's own words follow in brackets
_YAML_PROBLEMS = (
    ("that cannot start any token", "'\\t'", "行首有制表符：YAML 的缩进只能用空格"),
    ("expected ',' or ']'", "", "方括号 [ ] 没有配对（或列表项之间缺少逗号）"),
    ("expected ',' or '}'", "", "花括号 { } 没有配对（或键值对之间缺少逗号）"),
    ("mapping values are not allowed here", "", "此处不能有冒号：值里含冒号时请给整个值加引号"),
    ("could not find expected ':'", "", "缺少冒号（键: 值）"),
    ("expected <block end>", "", "缩进不一致：同一层的键要对齐"),
    ("found unexpected end of stream", "", "引号没有闭合"),
    ("found undefined alias", "", "引用了未定义的锚点（*名称）"),
    ("found duplicate anchor", "", "锚点（&名称）重复定义"),
)


def yaml_problem(problem: str) -> str:
    """A YAML parse error as one Chinese sentence (with the parser's words in brackets for the expert)."""
    for needle, also, zh in _YAML_PROBLEMS:
        if needle in problem and also in problem:
            return f"YAML 格式错误：{zh}（{problem}）"
    return f"YAML 格式错误（缩进、冒号或括号不对）：{problem}"


def line_of(data: Any, loc: Sequence[str | int]) -> tuple[int | None, str | None]:
    """The line of the deepest node along `loc` that still exists, and the last key name seen."""
    line: int | None = getattr(data, "line", None)
    key: str | None = None
    node = data
    for part in loc:
        if isinstance(node, LineDict) and isinstance(part, str):
            if part in node.key_lines:
                line = node.key_lines[part]
                key = part
                node = node[part]
                continue
            break
        if isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
            continue
        # pydantic adds union-member names such as 'str' or 'function-after[...]' to locations
        continue
    return line, key


# pydantic's error types in the words of a rule author (lint output, the workbench's rulebook page)
_MESSAGES = {
    "missing": "缺少必填项",
    "string_type": "应为文本", "int_type": "应为整数", "int_parsing": "应为整数", "int_from_float": "应为整数",
    "float_type": "应为数字", "float_parsing": "应为数字", "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false", "list_type": "应为列表", "dict_type": "应为映射（键: 值）",
    "model_type": "应为映射（键: 值）", "model_attributes_type": "应为映射（键: 值）",
    "greater_than_equal": "应不小于 {ge}", "greater_than": "应大于 {gt}", "less_than_equal": "应不大于 {le}",
    "less_than": "应小于 {lt}", "too_short": "至少需要 {min_length} 项", "too_long": "最多 {max_length} 项",
    "string_too_short": "至少 {min_length} 个字符", "string_too_long": "最多 {max_length} 个字符",
    "literal_error": "应为 {expected} 之一", "enum": "应为 {expected} 之一",
    "union_tag_invalid": "未知的类型 {tag}（可用：{expected_tags}）", "union_tag_not_found": "缺少 {discriminator}",
    "string_pattern_mismatch": "格式不符（{pattern}）",
    "extra_forbidden": "未知的键", "json_invalid": "不是有效的 JSON（{error}）", "json_type": "应为 JSON",
    "datetime_parsing": "应为日期时间（如 2026-12-05T09:30:00+08:00）",
    "datetime_from_date_parsing": "应为日期时间（如 2026-12-05T09:30:00+08:00）",
    "datetime_type": "应为日期时间（如 2026-12-05T09:30:00+08:00）",
    "date_parsing": "应为日期（YYYY-MM-DD）", "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "date_type": "应为日期（YYYY-MM-DD）", "uuid_parsing": "应为 UUID", "uuid_type": "应为 UUID",
    "finite_number": "应为有限的数字",
}


def chinese_message(err: Any) -> str:
    """One pydantic error as a Chinese sentence; a validator's own message (already Chinese) as it is."""
    template = _MESSAGES.get(str(err.get("type")))
    if template is None:
        return str(err.get("msg", "")).removeprefix("Value error, ")
    ctx = {k: (v.replace("'", "") if isinstance(v, str) else v) for k, v in (err.get("ctx") or {}).items()}
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return template.split("{")[0].rstrip() or str(err.get("msg", ""))


def rule_error_from_validation(exc: ValidationError, data: Any, source: str, prefix: str = "") -> RuleError:
    """Turn pydantic's first error into a RuleError with file, line and key."""
    # A union (a phrase is a string or a mapping) reports one error per branch; the most specific is
    # the one that is not "wrong type" and goes deepest.
    generic = {"string_type", "model_type", "dict_type", "model_attributes_type", "list_type"}
    errors = sorted(exc.errors(), key=lambda e: (e["type"] in generic, -len(e["loc"])))
    err = errors[0]
    loc = [p for p in err["loc"] if isinstance(p, str | int)]
    # Drop discriminator/union tags that are not keys of the data (e.g. 'phrase' for kind=phrase).
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif err["type"] == "extra_forbidden" and part == loc[-1]:
            path.append(part)
    line, key = line_of(data, path)
    # "rules.3.phrases.0" → "phrases[0]": the line already says which rule
    tail = path[2:] if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int) else path
    dotted = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(tail))
    if err["type"] == "extra_forbidden":
        reason = f"未知的键 {str(path[-1]) if path else '?'!r}（拼写错误？）"
        key = str(path[-1]) if path else key
    else:
        msg = chinese_message(err)
        reason = f"{dotted}: {msg}" if dotted else msg
    return RuleError(source, line, f"{prefix}{key}" if key else None, reason)
