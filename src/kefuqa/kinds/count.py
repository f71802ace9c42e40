"""`count`: too many (fillers) or too few (polite words) phrases in the role's speech, per call or minute."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from ..engine.hits import ROLE_NAMES, Hit, NotApplicable
from ..rules.matcher import Match
from ..rules.schema import Phrases, PhraseStr, RuleBase
from .base import Compiler, Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class CountRule(RuleBase):
    kind: Literal["count"]
    phrases: Phrases
    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)
    per: Literal["call", "minute"] = "call"
    unless: list[PhraseStr] = Field(default_factory=list)
    pinyin: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> CountRule:
        if self.min is None and self.max is None:
            raise ValueError("次数规则需要 min 或 max")
        return self


@register
class Count(Kind):
    name = "count"
    schema = CountRule
    needs_text = True

    def __init__(self, rule: CountRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        self.sid = compiler.phrases(rule.phrases, rule, unless=list(rule.unless))

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        found: list[tuple[int, Match]] = []
        us = ctx.role_utts(r.role)
        for u in ctx.candidates(self.sid, us):
            for m in ctx.matches(self.sid, u):
                found.append((u, m))
        count: float = len(found)
        if r.per == "minute":
            if not ctx.timed:
                raise NotApplicable("缺少时间戳")
            minutes = sum(ctx.conv.utterances[u].duration for u in us) / 60
            if minutes <= 0:
                raise NotApplicable(f"{ROLE_NAMES[r.role]}没有发言")
            count = count / minutes
        too_many = r.max is not None and count > r.max
        too_few = r.min is not None and count < r.min
        if not (too_many or too_few):
            return []
        words = "、".join(dict.fromkeys(ctx.evidence(u, m)[0] for u, m in found[:12]))  # only when firing
        vars_ = {"count": round(count, 1) if r.per == "minute" else int(count), "max": r.max, "min": r.min,
                 "words": words}
        if too_many and found:
            u, m = found[0]
            h = ctx.hit_at(u, m, vars=vars_)
            h.evidence = words
            return [h]
        return [Hit(None, None, None, words or None, None, vars=vars_)]
