"""Live guidance as data: what an agent is shown while the call is going (alerts, checklists, timers,
situation cards, the customer's communication style). The file sits next to a rulebook
(``guidance.yaml``); unknown keys and bad values are errors with file, line and reason, in Chinese."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import RuleError
from ..rules.rulebook import resolve
from ..rules.schema import Phrases, check_phrases
from ..rules.yamlsrc import load_yaml, rule_error_from_validation

GUIDANCE_FILE = "guidance.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Alerts(_Strict):
    """Which live findings interrupt the agent as an alert (rule IDs or prefixes); the wording the agent
    should use instead is the finding's `suggestion` (the rule's `suggest` or the phrase's own)."""

    rules: list[str] = Field(default_factory=list)


class Item(_Strict):
    """A checklist item or a card step: ticked when the agent says one of `phrases` (and, when `also` is
    given, one of `also` in the same utterance)."""

    id: str
    label: str
    phrases: Phrases
    also: Phrases = Field(default_factory=list)
    role: Literal["agent", "customer"] = "agent"

    _v = field_validator("phrases", "also")(check_phrases)


class Checklist(_Strict):
    id: str
    name: str
    directions: list[Literal["inbound", "outbound"]] | None = None
    channels: list[Literal["phone", "chat", "email", "web", "onsite"]] | None = None
    items: list[Item]


class Timer(_Strict):
    after_seconds: float = Field(gt=0)
    title: str
    script: list[str] = Field(default_factory=list)


class Timers(_Strict):
    hold: Timer | None = None  # a hold still running after N seconds
    customer_silent: Timer | None = None  # the customer has not said a word N seconds after the greeting
    dead_air: Timer | None = None  # nobody speaks (and no hold) for N seconds
    monologue: Timer | None = None  # the customer speaks N seconds with no listening response


class When(_Strict):
    """What shows a card: a live rule's hit (an event such as EVT001 客户投诉) or the customer's words; with
    `topic`, only in a call that has mentioned one of those words so far (either party): the 95598 scripts
    are for calls about electricity, not for every caller who asks for a manager."""

    rules: list[str] = Field(default_factory=list)
    said: Phrases = Field(default_factory=list)
    topic: Phrases = Field(default_factory=list)

    _v = field_validator("said", "topic")(check_phrases)

    @model_validator(mode="after")
    def _some(self) -> When:
        if not self.rules and not self.said:
            raise ValueError("when 需要 rules 或 said")
        return self


class Card(_Strict):
    id: str
    title: str
    source: str | None = None
    when: When
    script: list[str]
    steps: list[Item] = Field(default_factory=list)


class Style(_Strict):
    id: str
    name: str
    cues: Phrases = Field(default_factory=list)
    min_rate: float | None = Field(default=None, ge=0)  # customer characters per minute
    max_rate: float | None = Field(default=None, ge=0)
    traits: str
    advice: str

    _v = field_validator("cues")(check_phrases)


class Styles(_Strict):
    min_chars: int = Field(default=40, ge=1)  # customer characters before a style is guessed
    min_score: int = Field(default=2, ge=1)
    source: str | None = None
    kinds: list[Style]


class Guidance(_Strict):
    version: int = 1
    alerts: Alerts = Field(default_factory=Alerts)
    checklists: list[Checklist] = Field(default_factory=list)
    timers: Timers = Field(default_factory=Timers)
    cards: list[Card] = Field(default_factory=list)
    styles: Styles | None = None

    @model_validator(mode="after")
    def _unique(self) -> Guidance:
        for what, ids in (("checklist", [c.id for c in self.checklists]), ("card", [c.id for c in self.cards]),
                          ("style", [s.id for s in self.styles.kinds] if self.styles else [])):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            if dup:
                raise ValueError(f"{what} id 重复：{', '.join(dup)}")
        return self


_MSG_ZH = (("unknown key", "未知的键"), ("Field required", "缺少必填项"), ("Input should be", "取值应为"),
           ("Extra inputs are not permitted", "不允许的键"))


def _zh(err: RuleError) -> RuleError:
    reason = err.reason
    for en, zh in _MSG_ZH:
        reason = reason.replace(en, zh)
    return RuleError(err.source, err.line, err.key, reason)


def parse_guidance(text: str, source: str = GUIDANCE_FILE, rule_ids: set[str] | None = None) -> Guidance:
    """A guidance file's text → `Guidance`; `RuleError` (file, line, Chinese reason) when it is invalid.
    With `rule_ids`, every rule an alert or a card names must exist in the rulebook."""
    try:
        data = load_yaml(text, source)
    except RuleError as exc:
        raise _zh(exc) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RuleError(source, 1, None, "指导文件应是一个映射（键: 值）")
    try:
        g = Guidance.model_validate(data)
    except ValidationError as exc:
        raise _zh(rule_error_from_validation(exc, data, source)) from None
    if rule_ids is not None:
        _check_refs(g, data, source, rule_ids)
    return g


def _check_refs(g: Guidance, data: Any, source: str, rule_ids: set[str]) -> None:
    def known(ref: str) -> bool:
        return any(r.startswith(ref) for r in rule_ids)

    for ref in g.alerts.rules:
        if not known(ref):
            line = getattr(data.get("alerts"), "line", None)
            raise RuleError(source, line, "alerts.rules", f"规则手册中没有规则 {ref}")
    for i, card in enumerate(g.cards):
        for ref in card.when.rules:
            if not known(ref):
                line = data["cards"].item_lines[i] if hasattr(data["cards"], "item_lines") else None
                raise RuleError(source, line, f"cards[{i}].when.rules", f"规则手册中没有规则 {ref}")


def guidance_file(rulebook: str | Path | None = None) -> tuple[Path | None, bool]:
    """The guidance file a rulebook uses: its own (next to its rulebook.yaml), else the one of the rulebook
    it `extends` (utility-95598 is the standard rulebook plus the 95598 scripts: the standard guidance), and
    whether it was inherited."""
    path = resolve(rulebook)
    seen: set[Path] = set()
    inherited = False
    while True:
        folder = path if path.is_dir() else path.parent
        if (folder / GUIDANCE_FILE).is_file():
            return folder / GUIDANCE_FILE, inherited
        book = path if path.is_file() else folder / "rulebook.yaml"
        if not book.is_file() or book.resolve() in seen:
            return None, False
        seen.add(book.resolve())
        try:
            data = yaml.safe_load(book.read_text(encoding="utf-8-sig"))
        except (OSError, yaml.YAMLError):
            return None, False
        parent = data.get("extends") if isinstance(data, dict) else None
        if not isinstance(parent, str) or not parent:
            return None, False
        try:
            path = resolve(parent, folder)
        except RuleError:
            return None, False
        inherited = True


def load_guidance(rulebook: str | Path | None = None, rule_ids: set[str] | None = None, *,
                  inherit: bool = False) -> Guidance:
    """The guidance of a rulebook (a bundled name, a folder or its rulebook.yaml): its own file, else the one
    of the rulebook it extends; empty guidance when there is none. `inherit`: `rulebook` is the parent of
    the rulebook whose `rule_ids` these are (an uploaded rulebook extending a bundled one)."""
    file, inherited = guidance_file(rulebook)
    if file is None:
        return Guidance()
    if inherited or inherit:  # checked against the rules of the rulebook it belongs to (a child only adds
        return parse_guidance(file.read_text(encoding="utf-8"), str(file))  # rules or disables them)
    return parse_guidance(file.read_text(encoding="utf-8"), str(file), rule_ids)


def lint_guidance(rulebook: str | Path, rule_ids: set[str]) -> str:
    """Validate the guidance of a rulebook (`RuleError` when invalid); a one-line summary in Chinese."""
    file, inherited = guidance_file(rulebook)
    if file is None:
        return "无实时辅助指导文件"
    g = load_guidance(rulebook, rule_ids)
    name = f"{GUIDANCE_FILE}（继承自 {file.parent.name}）" if inherited else GUIDANCE_FILE
    return (f"实时辅助 {name}：{len(g.checklists)} 个检查清单，{len(g.cards)} 张情景卡片，"
            f"{sum(1 for t in (g.timers.hold, g.timers.customer_silent, g.timers.dead_air, g.timers.monologue) if t)} 个计时提醒，"
            f"{len(g.styles.kinds) if g.styles else 0} 种客户风格")
