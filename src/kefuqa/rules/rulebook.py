"""Loading rulebooks: bundled ones by name, a directory, or a single YAML file; inheritance with
``extends``, ``disable``, ``override`` and ``add_phrases``; cross-reference checks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import RuleError
from ..kinds import judges_used, rule_models, rule_refs
from ..scoring import terms_of
from .schema import PhraseItem, Scorecard, Settings
from .yamlsrc import LineDict, load_yaml, rule_error_from_validation

BUNDLED = Path(__file__).resolve().parent.parent / "rulebooks"


@dataclass
class Rulebook:
    name: str
    version: str
    description: str | None
    rules: list[Any]  # validated rule models, in definition order
    scorecard: Scorecard
    settings: Settings
    origin: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # file path -> text, for the version digest

    def rule(self, rule_id: str) -> Any:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    @property
    def by_id(self) -> dict[str, Any]:
        """Rules by ID (cached; rebuilt if the list of rules is replaced)."""
        cached = self.__dict__.get("_by_id")
        if cached is None or cached[0] is not self.rules or len(cached[1]) != len(self.rules):
            cached = (self.rules, {r.id: r for r in self.rules})
            self.__dict__["_by_id"] = cached
        return cached[1]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rules]


def bundled_names() -> list[str]:
    return sorted(p.name for p in BUNDLED.iterdir() if (p / "rulebook.yaml").is_file())


def resolve(source: str | Path | None, base: Path | None = None) -> Path:
    """A rulebook name or path → the rulebook.yaml (or rule file / folder) to read."""
    if source is None:
        source = "standard"
    s = str(source)
    if base is not None and not Path(s).is_absolute() and (base / s).exists():
        p = base / s
    else:
        p = Path(s)
    if not p.exists() and (BUNDLED / s / "rulebook.yaml").is_file():
        return BUNDLED / s / "rulebook.yaml"
    if p.is_dir():
        return p / "rulebook.yaml" if (p / "rulebook.yaml").is_file() else p
    if p.is_file():
        return p
    raise RuleError(s, None, None, f"没有这个规则集（内置的有：{'、'.join(bundled_names())}）")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(str(path), None, None, f"无法读取：{exc}") from None


def load_rulebook(source: str | Path | None = None, *, _stack: tuple[str, ...] = ()) -> Rulebook:
    path = resolve(source)
    key = str(path.resolve())
    if key in _stack:
        raise RuleError(str(path), None, "extends", "规则集之间循环继承（extends）")
    if path.is_dir():  # a folder of rule files without rulebook.yaml: those rules + the standard scorecard
        parent = load_rulebook("standard", _stack=_stack + (key,))
        files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
        rules: dict[str, Any] = {}
        origin: dict[str, tuple[str, int | None]] = {}
        sources: dict[str, str] = {}
        for f in files:
            _load_rule_file(f, rules, origin, sources)
        rb = Rulebook(path.name, "", None, list(rules.values()), parent.scorecard, parent.settings, origin, sources)
        finish(rb, str(path))
        return rb
    text = _read(path)
    data = load_yaml(text, str(path))
    if isinstance(data, dict) and "name" not in data and "rules" in data:
        # a single rule file: its rules with the standard scorecard
        parent = load_rulebook("standard", _stack=_stack + (key,))
        rules, origin, sources = {}, {}, {}
        _load_rule_file(path, rules, origin, sources, text=text, data=data)
        rb = Rulebook(path.stem, "", None, list(rules.values()), parent.scorecard, parent.settings, origin, sources)
        finish(rb, str(path))
        return rb
    if not isinstance(data, dict):
        raise RuleError(str(path), 1, None, "规则集应是一个映射（键: 值），至少要有 name")
    try:
        spec: Any = rule_models().rulebook_file.model_validate(data)
    except ValidationError as exc:
        raise rule_error_from_validation(exc, data, str(path)) from None

    base = path.parent
    if spec.extends:
        parent_path = resolve(spec.extends, base)
        parent = load_rulebook(parent_path, _stack=_stack + (key,))
        rules = {r.id: r for r in parent.rules}
        origin = dict(parent.origin)
        sources = dict(parent.sources)
        scorecard = parent.scorecard
        settings = parent.settings
    else:
        rules, origin, sources = {}, {}, {}
        scorecard = None  # type: ignore[assignment]
        settings = Settings()
    sources[str(path)] = text

    own: set[str] = set()
    raw_rules = data.get("rules") or []
    for i, item in enumerate(spec.rules):
        if isinstance(item, str):
            matches = sorted(base.glob(item))
            if not matches:
                line = raw_rules.item_lines[i] if hasattr(raw_rules, "item_lines") else None
                raise RuleError(str(path), line, "rules", f"没有与 {item!r} 匹配的规则文件")
            for f in matches:
                _load_rule_file(f, rules, origin, sources, own=own)
        else:
            line = raw_rules.item_lines[i] if hasattr(raw_rules, "item_lines") else None
            _add_rule(item, rules, origin, own, str(path), line)

    lines = data.key_lines if isinstance(data, LineDict) else {}
    _apply_edits(spec, data, lines, rules, str(path))

    if spec.scorecard is not None:
        scorecard = load_scorecard(spec.scorecard, base, scorecard, str(path), sources)
    if scorecard is None:
        raise RuleError(str(path), None, "scorecard", "规则集需要 scorecard（或 extends 另一个规则集）")
    if spec.settings is not None:
        settings = spec.settings

    rb = Rulebook(spec.name, spec.version or "", spec.description, list(rules.values()), scorecard, settings,
                  origin, sources)
    finish(rb, str(path))
    return rb


def _apply_edits(spec: Any, data: Any, lines: dict[str, int], rules: dict[str, Any], source: str) -> None:
    """A rulebook's `disable`, `override` and `add_phrases`, applied to the rules it has so far."""
    for target in spec.disable:
        hit = [rid for rid in rules if rid == target or (rid.startswith(target) and not target[-1:].isdigit())]
        if not hit:
            raise RuleError(source, lines.get("disable"), "disable", f"要停用的规则 {target!r} 不存在")
        for rid in hit:
            rules[rid] = rules[rid].model_copy(update={"enabled": False})
    for rid, changes in spec.override.items():
        if rid not in rules:
            raise RuleError(source, lines.get("override"), f"override.{rid}", f"要覆盖的规则 {rid!r} 不存在")
        if "id" in changes or "kind" in changes:
            raise RuleError(source, lines.get("override"), f"override.{rid}", "不能修改 id 或 kind")
        merged = rules[rid].model_dump(by_alias=True, exclude_unset=True)
        merged.update(changes)
        try:
            rules[rid] = rule_models().rule.validate_python(merged)
        except ValidationError as exc:
            ov = data["override"][rid]
            raise rule_error_from_validation(exc, ov, source, prefix=f"override.{rid}.") from None
    for rid, phrases in spec.add_phrases.items():
        if rid not in rules:
            raise RuleError(source, lines.get("add_phrases"), f"add_phrases.{rid}", f"规则 {rid!r} 不存在")
        rule = rules[rid]
        if not hasattr(rule, "phrases") or (not rule.phrases and getattr(rule, "groups", None)):
            raise RuleError(source, lines.get("add_phrases"), f"add_phrases.{rid}",
                            f"rule {rid} ({rule.kind}) has no phrase list to add to")
        rules[rid] = rule.model_copy(update={"phrases": list(rule.phrases) + list(phrases)})


def _add_rule(rule: Any, rules: dict[str, Any], origin: dict[str, tuple[str, int | None]], own: set[str],
              source: str, line: int | None) -> None:
    if rule.id in own:
        first = origin.get(rule.id, ("?", None))
        raise RuleError(source, line, "id", f"规则编号 {rule.id} 重复（首次定义于 {first[0]}:{first[1]}）")
    own.add(rule.id)
    rules[rule.id] = rule
    origin[rule.id] = (source, line)


def _load_rule_file(path: Path, rules: dict[str, Any], origin: dict[str, tuple[str, int | None]],
                    sources: dict[str, str], *, own: set[str] | None = None, text: str | None = None,
                    data: Any = None) -> None:
    own = own if own is not None else set()
    if text is None:
        text = _read(path)
        data = load_yaml(text, str(path))
    sources[str(path)] = text
    if not isinstance(data, dict) or "rules" not in data:
        raise RuleError(str(path), 1, None, "规则文件应是一个映射，其中有 rules 列表")
    try:
        parsed: Any = rule_models().rule_file.model_validate(data)
    except ValidationError as exc:
        raise rule_error_from_validation(exc, data, str(path)) from None
    lines = data["rules"].item_lines if hasattr(data["rules"], "item_lines") else [None] * len(parsed.rules)
    for rule, line in zip(parsed.rules, lines, strict=False):
        _add_rule(rule, rules, origin, own, str(path), line)


def load_scorecard(spec: str | Scorecard, base: Path, parent: Scorecard | None, source: str,
                    sources: dict[str, str]) -> Scorecard:
    if isinstance(spec, str):
        p = base / spec
        text = _read(p)
        sources[str(p)] = text
        data = load_yaml(text, str(p))
        try:
            card = Scorecard.model_validate(data)
        except ValidationError as exc:
            raise rule_error_from_validation(exc, data, str(p)) from None
        source = str(p)
    else:
        card = spec
    if card.extends:
        if parent is None:
            parent = load_rulebook(card.extends).scorecard
        dims = {d.name: d for d in parent.dimensions}
        for d in card.dimensions:
            dims[d.name] = d
        fatal = [f for f in list(dict.fromkeys(parent.fatal + card.fatal)) if f not in card.not_fatal]
        rules = dict(parent.rules)
        rules.update(card.rules)
        card = Scorecard(name=card.name, extends=card.extends, description=card.description or parent.description,
                         dimensions=list(dims.values()), fatal=fatal, grades=card.grades or parent.grades, rules=rules)
    if not card.dimensions:
        raise RuleError(source, None, "dimensions", "评分卡至少需要一个维度")
    if not card.grades:
        card = card.model_copy(update={"grades": _DEFAULT_GRADES})
    return card


def _default_grades() -> list[Any]:
    from .schema import Grade

    return [Grade(name="优秀", min=90), Grade(name="良好", min=80), Grade(name="合格", min=60),
            Grade(name="不合格", min=0)]


_DEFAULT_GRADES = _default_grades()


def finish(rb: Rulebook, source: str) -> None:
    """Cross-reference checks and the version digest."""
    ids = {r.id for r in rb.rules}
    dims = {d.name for d in rb.scorecard.dimensions}
    for r in rb.rules:
        where = rb.origin.get(r.id, (source, None))
        for ref in rule_refs(r):
            if ref not in ids:
                raise RuleError(where[0], where[1], r.id, f"引用了不存在的规则 {ref!r}")
        for ref in r.yields_to:
            if ref not in ids:
                raise RuleError(where[0], where[1], r.id, f"yields_to 指向不存在的规则 {ref!r}")
        for judge in judges_used(r):
            if judge != "fast" and judge not in rb.settings.judges:
                raise RuleError(where[0], where[1], r.id,
                                f"未配置判断模型 {judge!r}（settings.judges 中有：{', '.join(['fast', *rb.settings.judges])}）")
        points, dim, _, _ = terms_of(r, rb.scorecard)  # the scorecard's entry wins, as when scoring
        if r.severity != "event" and points and dim not in dims:
            raise RuleError(where[0], where[1], r.id,
                            f"维度 {dim!r} 不在评分卡 {rb.scorecard.name!r} 中（有：{'、'.join(sorted(dims))}）")
        for p in getattr(r, "phrases", []) or []:
            if isinstance(p, PhraseItem) and p.regex is None and p.text is not None and not p.text.strip():
                raise RuleError(where[0], where[1], r.id, "短语为空")
    rule_order(rb.rules, rb.origin, source)  # a dependency cycle is a lint error
    for f in rb.scorecard.fatal:
        if f not in ids:
            raise RuleError(source, None, "fatal", f"红线规则 {f!r} 不在规则集中")
    for rid in rb.scorecard.rules:
        if rid not in ids:
            raise RuleError(source, None, f"rules.{rid}", f"评分卡给不存在的规则 {rid!r} 打分")
    digest = hashlib.sha256()
    # by file name, not path: the same rulebook installed elsewhere has the same version
    for name, text in sorted((Path(n).name, t) for n, t in rb.sources.items()):
        digest.update(name.encode())
        digest.update(text.encode())
    short = digest.hexdigest()[:10]
    rb.version = f"{rb.version}+{short}" if rb.version else short


def rule_order(rules: list[Any], origin: dict[str, tuple[str, int | None]] | None = None,
               source: str = "") -> list[Any]:
    """The rules in an order where every rule comes after the rules it depends on (conditions, triggers,
    what its kind reads), otherwise in definition order. A cycle is a `RuleError` naming the rules."""
    by_id = {r.id: r for r in rules}
    done: set[str] = set()
    out: list[Any] = []

    def visit(r: Any, path: tuple[str, ...]) -> None:
        if r.id in done:
            return
        if r.id in path:
            cycle = path[path.index(r.id):] + (r.id,)
            where = (origin or {}).get(r.id, (source, None))
            raise RuleError(where[0], where[1], r.id, f"规则之间循环依赖：{' → '.join(cycle)}")
        for ref in rule_refs(r):
            if ref in by_id:
                visit(by_id[ref], path + (r.id,))
        done.add(r.id)
        out.append(r)

    for r in rules:
        visit(r, ())
    return out


def with_scorecard(rb: Rulebook, scorecard: str | Path) -> Rulebook:
    """The rulebook scored with another scorecard file (a scorecard may `extends:` the rulebook's own)."""
    p = Path(scorecard)
    rb.scorecard = load_scorecard(p.name, p.parent, rb.scorecard, str(p), rb.sources)
    finish(rb, str(p))
    return rb


def lint(source: str | Path) -> list[RuleError]:
    """Validate a rulebook (file or folder); an empty list means it is fine."""
    try:
        load_rulebook(source)
    except RuleError as exc:
        return [exc]
    return []


def load_rulebook_text(text: str, source: str = "rulebook.yaml") -> Rulebook:
    """The rulebook in one self-contained YAML text, as `kefuqa.load_rulebook` loads the same text from a
    file named `source` (same rules, scorecard and version): inline rules and scorecard, and `extends`
    (also the scorecard's) only of a bundled rulebook, so nothing is read from the server's files.
    Raises `RuleError` with `source` as the file.

    Uploaded rulebooks live in the database as text; this loads them without writing files.
    """
    data = load_yaml(text, source)
    if not isinstance(data, dict):
        raise RuleError(source, 1, None, "规则集应是一个映射（键: 值），至少要有 name")
    lines = data.key_lines if isinstance(data, LineDict) else {}
    try:
        spec: Any = rule_models().rulebook_file.model_validate(data)
    except ValidationError as exc:
        raise rule_error_from_validation(exc, data, source) from None

    def bundled(key: str, name: str) -> str:
        if name not in bundled_names():
            raise RuleError(source, lines.get(key.split(".")[0]), key,
                            f"只能继承内置规则集（{', '.join(bundled_names())}），不能引用文件路径")
        return name

    rules: dict[str, Any] = {}
    origin: dict[str, tuple[str, int | None]] = {}
    sources: dict[str, str] = {}
    scorecard: Scorecard | None = None
    settings = Settings()
    if spec.extends:
        parent = load_rulebook(bundled("extends", spec.extends))
        rules = {r.id: r for r in parent.rules}
        origin, sources = dict(parent.origin), dict(parent.sources)
        scorecard, settings = parent.scorecard, parent.settings
    sources[source] = text

    own: set[str] = set()
    raw_rules = data.get("rules") or []
    for i, item in enumerate(spec.rules):
        line = raw_rules.item_lines[i] if hasattr(raw_rules, "item_lines") else None
        if isinstance(item, str):
            raise RuleError(source, line, "rules", f"上传的规则集须内联规则，不能引用规则文件 {item!r}")
        if item.id in own:
            first = origin.get(item.id, ("?", None))
            raise RuleError(source, line, "id", f"规则编号 {item.id} 重复（首次定义于 {first[0]}:{first[1]}）")
        own.add(item.id)
        rules[item.id] = item
        origin[item.id] = (source, line)

    _apply_edits(spec, data, lines, rules, source)

    if isinstance(spec.scorecard, str):
        raise RuleError(source, lines.get("scorecard"), "scorecard", "评分卡须内联，不能引用文件")
    if spec.scorecard is not None:
        if spec.scorecard.extends and scorecard is None:
            scorecard = load_rulebook(bundled("scorecard.extends", spec.scorecard.extends)).scorecard
        scorecard = load_scorecard(spec.scorecard, Path("."), scorecard, source, sources)
    if scorecard is None:
        raise RuleError(source, None, "scorecard", "规则集需要 scorecard（或 extends 另一个规则集）")
    if spec.settings is not None:
        settings = spec.settings
    rb = Rulebook(spec.name, spec.version or "", spec.description, list(rules.values()), scorecard, settings,
                  origin, sources)
    finish(rb, source)
    return rb
