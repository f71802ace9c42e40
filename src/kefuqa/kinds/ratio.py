"""`ratio`: the role's share of the talk time (0–1) outside a range — an agent who lectures (too high)
or leaves the customer talking alone (too low)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from ..engine.hits import Hit, NotApplicable
from ..rules.schema import RuleBase
from .base import Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class RatioRule(RuleBase):
    kind: Literal["ratio"]
    of: Literal["talk_time"] = "talk_time"
    min: float | None = Field(default=None, ge=0, le=1)
    max: float | None = Field(default=None, ge=0, le=1)
    min_speech_seconds: float = Field(default=30, ge=0)  # less speech than this in the call: not decided

    @model_validator(mode="after")
    def _bounds(self) -> RatioRule:
        if self.min is None and self.max is None:
            raise ValueError("占比规则需要 min 或 max（0 到 1 之间的比例）")
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError(f"min {self.min} 应小于 max {self.max}")
        if self.role == "any":
            raise ValueError("占比规则需要 role 为 agent 或 customer（谁的说话时长占比）")
        return self


def talk_seconds(ctx: Context, role: str) -> float:
    """Seconds the role is speaking: the union of its utterances' spans (overlapping ASR segments of one
    speaker count once)."""
    utts = ctx.conv.utterances
    spans = sorted((utts[u].start or 0.0, utts[u].end or 0.0) for u in ctx.by_role[role])
    total, cur_s, cur_e = 0.0, None, 0.0
    for s, e in spans:
        if cur_s is None or s > cur_e:
            if cur_s is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_s is not None:
        total += cur_e - cur_s
    return total


@register
class Ratio(Kind):
    name = "ratio"
    schema = RatioRule

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        other = "customer" if r.role == "agent" else "agent"
        mine, theirs = talk_seconds(ctx, r.role), talk_seconds(ctx, other)
        if mine + theirs < r.min_speech_seconds:
            raise NotApplicable(f"双方说话不足 {r.min_speech_seconds:g} 秒")
        share = mine / (mine + theirs)
        high = r.max is not None and share > r.max
        low = r.min is not None and share < r.min
        if not (high or low):
            return []
        pct = round(share * 100)
        vars_ = {"value": pct, "max": round(r.max * 100) if r.max is not None else None,
                 "min": round(r.min * 100) if r.min is not None else None,
                 "seconds": round(mine, 1), "other_seconds": round(theirs, 1)}
        return [Hit(None, None, None, f"说话时长占比 {pct}%（{mine:.0f} 秒 / {mine + theirs:.0f} 秒）", None,
                    vars=vars_)]
