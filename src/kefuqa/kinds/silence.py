"""`silence`: dead air — nobody speaking for longer than a threshold, not covered by a hold or transfer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..engine.hits import Hit, NotApplicable
from ..rules.schema import RuleBase
from .base import Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class SilenceRule(RuleBase):
    kind: Literal["silence"]
    min_seconds: float = Field(gt=0)
    exclude_events: list[str] = Field(default_factory=lambda: ["hold", "transfer"])
    edges: bool = False  # also count silence before the first and after the last utterance


@register
class Silence(Kind):
    name = "silence"
    schema = SilenceRule
    decided = "utterance"

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        utts = ctx.conv.utterances
        order = ctx.time_order
        if not order:
            raise NotApplicable("无人发言")
        covers = [(e.start, e.end) for e in ctx.events if e.type in r.exclude_events and e.start is not None
                  and e.end is not None]
        points = [e.at for e in ctx.events if e.type in r.exclude_events and e.end is None and e.at is not None]
        hits = []
        last_end = utts[order[0]].end or 0.0
        gaps: list[tuple[float, float, int | None]] = []
        if r.edges and (utts[order[0]].start or 0.0) >= r.min_seconds:
            gaps.append((0.0, utts[order[0]].start or 0.0, order[0]))
        for i in order[1:]:
            s = utts[i].start or 0.0
            if s - last_end >= r.min_seconds:
                gaps.append((last_end, s, i))
            last_end = max(last_end, utts[i].end or 0.0)
        for gs, ge, u in gaps:
            if any(gs - 1 <= p <= ge + 1 for p in points):
                continue  # a transfer happened in the gap
            covered = sum(max(0.0, min(ge, b) - max(gs, a)) for a, b in covers)  # type: ignore[type-var,operator]
            dead = (ge - gs) - covered  # a hold covers part of the gap: only the rest is dead air
            if dead < r.min_seconds:
                continue
            hits.append(Hit(u, round(gs, 2), round(ge, 2), f"静音 {dead:.1f} 秒", None,
                            vars={"seconds": round(dead, 1)}))
        return hits
