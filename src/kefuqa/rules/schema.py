"""The YAML schema of rules, rulebooks and scorecards (pydantic, unknown keys are errors)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

RoleSel = Literal["agent", "customer", "any"]
Op = Literal[">", ">=", "<", "<=", "==", "!=", "in", "not in"]
Severity = Literal["info", "minor", "major", "critical", "event"]

RULE_ID = re.compile(r"^[A-Z]{1,6}[0-9]{1,4}$")


def _coerce_phrase(v: Any) -> Any:
    # a bare number in YAML (12315, 95598) is a phrase too
    return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


PhraseStr = Annotated[str, BeforeValidator(_coerce_phrase)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None


class PhraseItem(Strict):
    """One phrase: literal ``text`` (matched on the normalised key view) or a ``regex`` (on the clean view)."""

    text: PhraseStr | None = None
    regex: str | None = None
    suggest: str | None = None
    pinyin: bool | None = None
    # True: only a hit when the phrase is the whole utterance; False: only when it is not.
    whole: bool | None = None
    # Exceptions for this phrase alone: a hit inside one of these longer phrases does not count.
    unless: list[PhraseStr] = Field(default_factory=list)
    # No hit when one of these is said in the same utterance (or the rule's near_turns after it).
    unless_near: list[str] = Field(default_factory=list)
    # "05:00-10:30": the phrase is only a hit when said outside this local-time window of started_at.
    allowed_hours: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> PhraseItem:
        if (self.text is None) == (self.regex is None):
            raise ValueError("a phrase needs exactly one of 'text' or 'regex'")
        if self.text is not None and not self.text.strip():
            raise ValueError("empty phrase")
        if self.regex is not None:
            _compile(self.regex)
        if self.allowed_hours is not None and not re.fullmatch(r"\d{1,2}:\d{2}-\d{1,2}:\d{2}", self.allowed_hours):
            raise ValueError(f"allowed_hours {self.allowed_hours!r} must look like 05:00-10:30")
        return self


Phrase = Annotated[str | PhraseItem, BeforeValidator(_coerce_phrase)]
Phrases = list[Phrase]


def check_phrases(v: Phrases) -> Phrases:
    for p in v:
        if isinstance(p, str) and not p.strip():
            raise ValueError("empty phrase")
    return v


class Said(Strict):
    role: RoleSel = "customer"
    phrases: Phrases

    _v = field_validator("phrases")(check_phrases)


class Condition(Strict):
    """One condition of ``applies.when`` / ``applies.unless`` / ``conditional.if``.

    Exactly one of: ``fired`` (a rule produced a finding or event), ``not_fired``, ``field`` with ``op`` and
    ``value`` (a call field or measure), ``said`` (a role said one of some phrases).
    """

    fired: str | None = None
    not_fired: str | None = None
    field: str | None = None
    op: Op | None = None
    value: Any = None
    said: Said | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        given = [x for x in (self.fired, self.not_fired, self.field, self.said) if x is not None]
        if len(given) != 1:
            raise ValueError("a condition needs exactly one of fired, not_fired, field, said")
        if self.field is not None and self.op is None:
            raise ValueError(f"condition on field {self.field!r} needs 'op'")
        return self


class Applies(Strict):
    channels: list[Literal["phone", "chat", "email", "web", "onsite"]] | None = None
    directions: list[Literal["inbound", "outbound"]] | None = None
    when: list[Condition] = Field(default_factory=list)  # all must hold, else not applicable
    unless: list[Condition] = Field(default_factory=list)  # all hold → the rule does not fire (exempt)
    min_turns: int | None = Field(default=None, ge=0)  # customer turns needed for the rule to make sense


class Doc(Strict):
    checks: str | None = None
    why: str | None = None
    example: str | None = None
    instead: str | None = None
    source: str | None = None


class Scope(Strict):
    """Which utterances of the rule's role are looked at."""

    first_turns: int | None = Field(default=None, ge=1)
    last_turns: int | None = Field(default=None, ge=1)
    first_seconds: float | None = Field(default=None, gt=0)
    last_seconds: float | None = Field(default=None, gt=0)


class Trigger(Strict):
    """Positions in the call a window is measured from: a rule's hits, an event, or phrases said."""

    rule: str | None = None
    event: str | None = None
    edge: Literal["start", "end"] = "end"
    said: Said | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        if len([x for x in (self.rule, self.event, self.said) if x is not None]) != 1:
            raise ValueError("a trigger needs exactly one of rule, event, said")
        return self


class Window(Strict):
    direction: Literal["after", "before", "during", "call"] = "after"
    turns: int | None = Field(default=None, ge=1)  # utterances of the checked role
    seconds: float | None = Field(default=None, gt=0)
    include_anchor: bool = True
    # direction after: the checked role's utterances just before the anchor also count (a time promised
    # two turns earlier covers 修好了通知您)
    before_turns: int | None = Field(default=None, ge=1)
    # direction after with turns: the role's questions and read-backs (ending in ？/吗/对吗/没错吧) do not
    # use up the turns (派单 → 地址是？ → 地址…对吗？ → 两小时内到)
    skip_questions: bool = False


class RuleBase(Strict):
    """What every rule has, whatever its kind; each kind's model (kefuqa.kinds) adds its own keys."""

    id: str
    name: str
    severity: Severity = "minor"
    points: float = Field(default=0, ge=0)
    dimension: str | None = None
    role: RoleSel = "agent"
    message: str
    suggest: str | None = None
    enabled: bool = True
    deduct: Literal["once", "each"] = "once"
    max_points: float | None = Field(default=None, ge=0)
    applies: Applies = Field(default_factory=Applies)
    doc: Doc = Field(default_factory=Doc)
    tags: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RULE_ID.match(v):
            raise ValueError(f"rule id {v!r} must be letters then digits, like LNG001 or X01")
        return v


class NeedsPhrases(RuleBase):
    phrases: Phrases = Field(default_factory=list)
    groups: dict[str, Phrases] = Field(default_factory=dict)
    need: Literal["all", "any"] | int = "all"
    pinyin: bool = False

    @model_validator(mode="after")
    def _some(self) -> NeedsPhrases:
        if bool(self.phrases) == bool(self.groups):
            raise ValueError("give either 'phrases' or 'groups'")
        if isinstance(self.need, int) and not 1 <= self.need <= max(1, len(self.groups)):
            raise ValueError(f"need {self.need} is more than the {len(self.groups)} groups")
        return self


# ---- scorecards --------------------------------------------------------------------------------------------


class Grade(Strict):
    name: str
    min: float


class Dimension(Strict):
    name: str
    max: float = Field(gt=0)
    description: str | None = None


class RuleScore(Strict):
    points: float | None = Field(default=None, ge=0)
    dimension: str | None = None
    deduct: Literal["once", "each"] | None = None
    max_points: float | None = Field(default=None, ge=0)


class Scorecard(Strict):
    name: str
    extends: str | None = None
    description: str | None = None
    dimensions: list[Dimension] = Field(default_factory=list)
    fatal: list[str] = Field(default_factory=list)
    not_fatal: list[str] = Field(default_factory=list)
    grades: list[Grade] = Field(default_factory=list)
    rules: dict[str, RuleScore] = Field(default_factory=dict)


# ---- rulebooks ------------------------------------------------------------------------------------------


class HoldInference(Strict):
    """Infer holds in transcripts without hold events: a hold request, then the agent silent a while."""

    enabled: bool = True
    phrases: Phrases = Field(default_factory=list)
    # a hold request in one of the agent's last `lookback_turns` utterances before the silence
    # (您稍等一下可以吗 → 客户报订单号 → 坐席复述订单号 → 25 秒)
    lookback_turns: int = Field(default=1, ge=1)
    # the customer asks the agent to wait ("你等一下，我去找电费单"): not dead air, not the agent's hold
    customer_phrases: list[str] = Field(default_factory=list)
    min_gap_seconds: float = Field(default=10, gt=0)


class TransferInference(Strict):
    enabled: bool = True
    phrases: Phrases = Field(default_factory=list)  # phrase items, so 帮您转到 can have unless: [已经帮您转到]


class Settings(Strict):
    infer_holds: HoldInference = Field(default_factory=HoldInference)
    infer_transfers: TransferInference = Field(default_factory=TransferInference)


class RuleOverride(Strict):
    """Changes an inherited rule without copying it."""

    model_config = ConfigDict(extra="allow")


class RulebookFileBase(Strict):
    """A rulebook file without its `rules` list, whose item type depends on the registered kinds
    (`kefuqa.kinds.rule_models().rulebook_file` is the complete model)."""

    name: str
    version: str | None = None
    description: str | None = None
    extends: str | None = None
    scorecard: str | Scorecard | None = None
    disable: list[str] = Field(default_factory=list)
    override: dict[str, dict[str, Any]] = Field(default_factory=dict)
    add_phrases: dict[str, Phrases] = Field(default_factory=dict)
    settings: Settings | None = None
