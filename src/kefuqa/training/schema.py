"""The shapes of training data (YAML): modules, questions and scenarios. Unknown keys are errors."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Module(_Strict):
    """A unit of certification: questions and scenarios that share a pass mark."""

    id: Annotated[str, Field(pattern=_ID)]
    name: str
    pass_mark: Annotated[float, Field(ge=0, le=100)] = 80.0
    description: str = ""


class Turn(_Strict):
    """One line of context before the trainee speaks."""

    role: Literal["customer", "agent"] = "customer"
    text: Annotated[str, Field(min_length=1)]


class Element(_Strict):
    """A required element of a rewrite answer: any of these phrases (after normalisation)."""

    name: str
    any: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


AGENT_FAULT_LABELS = ("blame_shift", "flat_refusal", "reproach")


class _QuestionBase(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    module: str
    prompt: Annotated[str, Field(min_length=1)]
    explain: str = ""  # the reason, from the standards, shown after the attempt
    source: str = ""  # which standard it comes from
    rules: list[str] = Field(default_factory=list)  # the rules this question teaches


class SingleChoice(_QuestionBase):
    type: Literal["single"]
    options: Annotated[list[str], Field(min_length=2)]
    answer: int  # 0-based

    @model_validator(mode="after")
    def _in_range(self) -> SingleChoice:
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer 超出选项范围（共 {len(self.options)} 个选项，从 0 数起）")
        return self


class MultipleChoice(_QuestionBase):
    type: Literal["multiple"]
    options: Annotated[list[str], Field(min_length=2)]
    answer: Annotated[list[int], Field(min_length=1)]

    @model_validator(mode="after")
    def _in_range(self) -> MultipleChoice:
        bad = [a for a in self.answer if not 0 <= a < len(self.options)]
        if bad or len(set(self.answer)) != len(self.answer):
            raise ValueError(f"answer 中的选项 {bad or self.answer} 无效（共 {len(self.options)} 个选项，从 0 数起，不可重复）")
        return self


class TrueFalse(_QuestionBase):
    type: Literal["truefalse"]
    answer: bool


class Rewrite(_QuestionBase):
    """'Say this to the standard': graded by the rulebook (selected rules), required elements, judgement labels."""

    type: Literal["rewrite"]
    context: list[Turn] = Field(default_factory=list)
    original: Annotated[str, Field(min_length=1)]
    require: list[Element] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=lambda: list(AGENT_FAULT_LABELS))
    model: Annotated[str, Field(min_length=1)]  # a reply that passes: shown after the attempt, tested


Question = Annotated[SingleChoice | MultipleChoice | TrueFalse | Rewrite, Field(discriminator="type")]


class QuestionFile(_Strict):
    modules: list[Module] = Field(default_factory=list)
    questions: list[Question] = Field(default_factory=list)


class When(_Strict):
    """A branch condition on the trainee's reply; every key given must hold."""

    fired: list[str] = Field(default_factory=list)  # any of these rules fired on the reply
    not_fired: list[str] = Field(default_factory=list)  # none of these rules fired on the reply
    label: list[str] = Field(default_factory=list)  # the judgement model gave any of these labels
    not_label: list[str] = Field(default_factory=list)
    said: list[str] = Field(default_factory=list)  # the reply contains any of these words
    not_said: list[str] = Field(default_factory=list)


class Branch(_Strict):
    when: When
    next: str


class Node(_Strict):
    customer: str | None = None  # what the customer says on entering this step (None: the trainee speaks first)
    hint: str = ""  # the task shown to the trainee
    model: str | None = None  # a reply to the standard (shown after the attempt; played by the tests)
    branches: list[Branch] = Field(default_factory=list)
    next: str | None = None  # where to go when no branch matches
    end: bool = False  # the call ends after the customer's line
    hold_seconds: Annotated[float, Field(gt=0, le=600)] | None = None  # the trainee's reply here puts the customer on hold this long

    @model_validator(mode="after")
    def _shape(self) -> Node:
        if self.end and (self.branches or self.next or self.model or self.hold_seconds):
            raise ValueError("结束步骤（end: true）不能再有 model、branches、next 或 hold_seconds")
        if not self.end and self.model is None:
            raise ValueError("非结束步骤需要 model（符合标准的参考回答）")
        return self


class PoorPlay(_Strict):
    """A poor answer for the tests and for the trainer: replies that replace the model ones, and what fires."""

    replies: Annotated[dict[str, str], Field(min_length=1)]
    expect: Annotated[list[str], Field(min_length=1)]


class Scenario(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    module: str
    title: str
    brief: str = ""  # the situation, shown before the first line
    source: str = ""
    customer_style: str | None = None  # 驾驭型 / 友善型 / 分析型 / 表现型 …
    rules: list[str] = Field(default_factory=list)  # the rules this scenario exercises
    channel: Literal["phone", "chat"] = "phone"
    direction: Literal["inbound", "outbound"] = "inbound"
    timed: bool = False  # give the practice call times (needed for holds: hold_seconds); see docs/training.md
    start: str
    nodes: Annotated[dict[str, Node], Field(min_length=1)]
    poor: PoorPlay


class ScenarioFile(_Strict):
    modules: list[Module] = Field(default_factory=list)
    scenarios: list[Scenario] = Field(default_factory=list)
