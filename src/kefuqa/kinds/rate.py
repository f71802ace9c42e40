"""`rate`: the role's speech rate (characters or syllables per minute of speech) outside a range."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from ..engine.hits import ROLE_NAMES, Hit, NotApplicable
from ..engine.measures import speech_rate
from ..rules.schema import RuleBase
from .base import Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class RateRule(RuleBase):
    kind: Literal["rate"]
    min: float | None = Field(default=None, gt=0)
    max: float | None = Field(default=None, gt=0)
    min_speech_seconds: float = Field(default=20, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RateRule:
        if self.min is None and self.max is None:
            raise ValueError("语速规则需要 min 或 max")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min {self.min} 应小于 max {self.max}")
        return self


@register
class Rate(Kind):
    name = "rate"
    schema = RateRule

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        total, seconds, units, per_utt = speech_rate(ctx, r.role)
        if total < r.min_speech_seconds or seconds < min(5.0, r.min_speech_seconds):
            raise NotApplicable(f"{ROLE_NAMES[r.role]}说话不足 {r.min_speech_seconds:g} 秒")
        rate = units / seconds * 60
        fast = r.max is not None and rate > r.max
        slow = r.min is not None and rate < r.min
        if not (fast or slow):
            return []
        vars_ = {"value": round(rate), "max": r.max, "min": r.min}
        if per_utt:
            u = per_utt[-1][1] if fast else per_utt[0][1]
            return [ctx.hit_at(u, None, vars=vars_)]
        return [Hit(None, None, None, None, None, vars=vars_)]
