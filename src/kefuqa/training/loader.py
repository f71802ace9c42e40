"""Loading question and scenario files (YAML) with file:line errors; one bad file never stops the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import RuleError
from ..rules.yamlsrc import LineDict, line_of, load_yaml
from .schema import Module, Question, QuestionFile, Scenario, ScenarioFile

Place = tuple[str, int | None]  # (file, line)


@dataclass
class Bank:
    """Everything a company trains with: modules, questions, scenarios, and where each was written."""

    modules: dict[str, Module] = field(default_factory=dict)
    questions: dict[str, Question] = field(default_factory=dict)
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    where: dict[tuple[str, ...], Place] = field(default_factory=dict)

    def place(self, *key: str) -> Place:
        return self.where.get(key, ("<memory>", None))

    def questions_of(self, module: str | None = None) -> list[Question]:
        return [q for q in self.questions.values() if module is None or q.module == module]


def bundled_dir() -> Path:
    return Path(str(resources.files("kefuqa.training") / "data"))


_ERR_ZH = {"missing": "缺少必填项", "extra_forbidden": "未知的键", "literal_error": "取值无效",
           "string_too_short": "不能为空", "too_short": "不能为空", "string_pattern_mismatch": "格式无效（只能用字母、数字、_ . -）",
           "int_parsing": "应为整数", "bool_parsing": "应为 true 或 false", "float_parsing": "应为数字",
           "string_type": "应为文字", "list_type": "应为列表", "dict_type": "应为映射", "model_type": "应为映射",
           "union_tag_invalid": "type 无效（可选 single / multiple / truefalse / rewrite）",
           "union_tag_not_found": "缺少 type（single / multiple / truefalse / rewrite）"}


def _error(exc: ValidationError, data: Any, source: str) -> RuleError:
    generic = {"string_type", "model_type", "dict_type", "model_attributes_type", "list_type"}
    err = sorted(exc.errors(), key=lambda e: (e["type"] in generic, -len(e["loc"])))[0]
    loc = [p for p in err["loc"] if isinstance(p, str | int)]
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif err["type"] == "extra_forbidden" and part == loc[-1]:
            path.append(part)
    line, key = line_of(data, path)
    dotted = ".".join(str(p) for p in path)
    if err["type"] == "extra_forbidden":
        reason = f"未知的键 {path[-1]!s}" if path else "未知的键"
    elif err["type"] == "value_error":
        reason = str(err["msg"]).removeprefix("Value error, ")
    else:
        reason = _ERR_ZH.get(err["type"], str(err["msg"]))
        if err["type"] == "missing" and loc:
            reason += f" {loc[-1]}"
    return RuleError(source, line, dotted or key, reason)


def _record_places(bank: Bank, data: Any, source: str, kind: str) -> None:
    for i, item in enumerate(data.get(kind) or []):
        if not isinstance(item, LineDict):
            continue
        iid = str(item.get("id"))
        line, _ = line_of(data, [kind, i])
        bank.where[(iid,)] = (source, line)
        nodes = item.get("nodes")
        if isinstance(nodes, LineDict):
            for nid, node in nodes.items():
                bank.where[(iid, nid)] = (source, nodes.key_lines.get(nid))
                if isinstance(node, LineDict) and isinstance(node.get("branches"), list):
                    for j, ln in enumerate(getattr(node["branches"], "item_lines", [])):
                        bank.where[(iid, nid, str(j))] = (source, ln)
        for key in ("poor", "start"):
            if key in item.key_lines:
                bank.where[(iid, key)] = (source, item.key_lines[key])


def load_text(bank: Bank, text: str, source: str) -> None:
    """Add one file's content to `bank`; raises RuleError (file, line, reason) and adds nothing then."""
    data = load_yaml(text, source)
    if not isinstance(data, dict):
        raise RuleError(source, 1, None, "文件应为映射（modules / questions / scenarios）")
    is_scen = "scenarios" in data
    if is_scen and "questions" in data:
        line = data.key_lines.get("questions") if isinstance(data, LineDict) else None
        raise RuleError(source, line, "questions", "一个文件只能写题目（questions）或场景（scenarios）其中一种："
                        "请把题目和场景分成两个文件（同一个模块可以在两个文件里用）")
    try:
        parsed: QuestionFile | ScenarioFile = (ScenarioFile if is_scen else QuestionFile).model_validate(data)
    except ValidationError as exc:
        raise _error(exc, data, source) from None
    new: list[tuple[str, Any]] = []
    for m in parsed.modules:
        new.append(("module", m))
    items = parsed.scenarios if isinstance(parsed, ScenarioFile) else parsed.questions
    kind = "scenarios" if is_scen else "questions"
    seen: set[str] = set()
    for i, it in enumerate(items):
        if it.id in bank.questions or it.id in bank.scenarios or it.id in seen:
            line, _ = line_of(data, [kind, i])
            prev = bank.where.get((it.id,))
            at = f"（已在 {prev[0]}:{prev[1]} 定义）" if prev else ""
            raise RuleError(source, line, "id", f"编号 {it.id} 重复{at}")
        seen.add(it.id)
    for m in parsed.modules:
        bank.modules[m.id] = m
    for it in items:
        if isinstance(it, Scenario):
            bank.scenarios[it.id] = it
        else:
            bank.questions[it.id] = it
    _record_places(bank, data, source, kind)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def load_bank(paths: Sequence[str | Path] | None = None, *, bundled: bool = True) -> tuple[Bank, list[RuleError]]:
    """The bundled bank plus the given files or folders. Bad files are returned as errors, not raised."""
    bank = Bank()
    errors: list[RuleError] = []
    roots: list[Path] = ([bundled_dir()] if bundled else []) + [Path(p) for p in paths or []]
    for root in roots:
        if not root.exists():
            errors.append(RuleError(str(root), None, None, "文件或目录不存在"))
            continue
        for f in _files(root):
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(RuleError(str(f), None, None, f"无法读取（{exc}）"))
                continue
            try:
                load_text(bank, text, str(f))
            except RuleError as exc:
                errors.append(exc)
    return bank, errors
