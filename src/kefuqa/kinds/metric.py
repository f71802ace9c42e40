"""`metric`: a number measured on the call (a field, a measure, an utterance attribute aggregated, the
response delay of a written channel) compared with a limit."""

from __future__ import annotations

import re
from statistics import mean, median
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from ..engine.hits import ROLE_NAMES, Hit, NotApplicable
from ..engine.measures import add_limit, compare, measure
from ..labels import missing
from ..rules.schema import Op, RuleBase
from .base import Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class MetricRule(RuleBase):
    kind: Literal["metric"]
    measure: str
    op: Op | None = None
    value: Any = None
    outside: tuple[float, float] | None = None
    # per channel limits for the measure 'response_delay': "2h", "30m", "1wd" (working days)
    limits: dict[str, str] = Field(default_factory=dict)
    agg: Literal["median", "mean", "max", "min"] = "median"
    min_count: int = Field(default=1, ge=1)
    # rules whose hits the measure reads (loudness_rise_db: the rules that mark angry customer turns);
    # the engine decides them first
    uses: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cmp(self) -> MetricRule:
        if not self.limits and self.outside is None and self.op is None:
            raise ValueError("指标规则需要 op 和 value、outside 或 limits")
        if self.outside is not None and self.outside[0] >= self.outside[1]:
            raise ValueError("outside：第一个界限应小于第二个")
        for ch, lim in self.limits.items():
            if not re.fullmatch(r"\d+(\.\d+)?(h|m|s|d|wd)", lim):
                raise ValueError(f"limits 的 {ch}：{lim!r} 格式应如 2h、30m、3d 或 1wd")
        return self


def _round(v: Any) -> Any:
    return round(v, 1) if isinstance(v, float) else v


# What a call-level measure found, in words (the evidence of a finding that quotes no utterance).
_WORDS: dict[str, str] = {
    "ring_seconds": "振铃 {v} 秒后接听",
    "customer_first_delay": "客户 {v} 秒后才开口",
    "loudness_rise_db": "客户激动后坐席音量升高 {v} dB",
}
_ENDED_BY = {"agent": "坐席先挂断了电话", "customer": "客户挂断了电话", "system": "线路中断"}


def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(_round(v))


def measured_words(measure: str, value: Any) -> str:
    """「振铃 22 秒后接听」, not 「ring_seconds: 22.0」: a call field or measure, in words."""
    if measure == "ended_by":
        return _ENDED_BY.get(str(value), f"挂断方：{value}")
    template = _WORDS.get(measure)
    if template is not None:
        return template.format(v=_num(value))
    name = measure.split(":", 1)[-1]
    return f"测得 {name} 为 {_num(value)}"


@register
class Metric(Kind):
    name = "metric"
    schema = MetricRule

    @classmethod
    def refs(cls, rule: Any) -> list[str]:
        return list(rule.uses)

    def violates(self, value: Any) -> bool:
        r = self.rule
        if r.outside is not None:
            return bool(value < r.outside[0] or value > r.outside[1])
        return compare(value, r.op, r.value)

    def high_side(self, value: float) -> bool:
        r = self.rule
        if r.outside is not None:
            return bool(value > r.outside[1])
        return r.op in (">", ">=")

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        if r.measure == "response_delay":
            return self._sla(ctx)
        if r.measure.startswith("attr:"):
            name = r.measure[5:]
            utts = ctx.conv.utterances
            vals = [(float(utts[u].attrs[name]), u) for u in ctx.by_role[r.role]
                    if isinstance(utts[u].attrs.get(name), int | float) and ctx.substantial(u)]
            if len(vals) < r.min_count:
                raise NotApplicable(f"需要录音测得的 {name}（至少 {r.min_count} 句{ROLE_NAMES[r.role]}语音）")
            nums = [v for v, _ in vals]
            value = float({"median": median(nums), "mean": mean(nums), "max": max(nums), "min": min(nums)}[r.agg])
            if not self.violates(value):
                return []
            # point at the utterance furthest out in the violating direction
            vals.sort()
            u = vals[-1][1] if self.high_side(value) else vals[0][1]
            return [ctx.hit_at(u, None, vars={"value": round(value, 1)})]
        value = measure(ctx, r.measure, r)
        if value is None:
            raise NotApplicable(missing(r.measure))
        if not self.violates(value):
            return []
        at = ctx.cache.get(f"at:{r.measure}")  # a measure may say which turn it measured
        if isinstance(at, int):
            return [ctx.hit_at(at, None, vars={"value": _round(value)})]
        return [Hit(None, None, None, measured_words(r.measure, value), None, vars={"value": _round(value)})]

    def _sla(self, ctx: Context) -> list[Hit]:
        r = self.rule
        conv = ctx.conv
        if conv.channel is None or conv.channel not in r.limits:
            raise NotApplicable(f"仅适用于渠道 {'、'.join(r.limits)}")
        if conv.received_at is None or conv.first_response_at is None:
            raise NotApplicable(missing("received_at", "first_response_at"))
        limit = r.limits[conv.channel]
        deadline = add_limit(conv.received_at, limit)
        if conv.first_response_at <= deadline:
            return []
        late = conv.first_response_at - conv.received_at
        hours = late.total_seconds() / 3600
        return [Hit(None, None, None, f"{hours:.1f} 小时后首次回复", None,
                    vars={"value": f"{hours:.1f}", "limit": limit, "channel": conv.channel})]
