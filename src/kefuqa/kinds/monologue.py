"""`monologue`: one role speaks longer than a threshold with no response from the other (LST003)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..engine.hits import Hit, NotApplicable
from ..rules.schema import RuleBase
from .base import Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class MonologueRule(RuleBase):
    kind: Literal["monologue"]
    min_seconds: float = Field(gt=0)
    responder: Literal["agent", "customer"] = "agent"


@register
class Monologue(Kind):
    name = "monologue"
    schema = MonologueRule
    decided = "utterance"

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        utts = ctx.conv.utterances
        # when the responder said anything (even "嗯" over a long ASR segment of the speaker)
        responses = sorted(utts[i].start or 0.0 for i in ctx.by_role[r.responder])
        hits: list[Hit] = []
        stretch: list[int] = []
        stretch_end = 0.0

        def flush() -> None:
            if not stretch:
                return
            s0 = utts[stretch[0]].start or 0.0
            e0 = stretch_end
            if e0 - s0 <= r.min_seconds:
                return
            cuts = [s0] + [t for t in responses if s0 < t < e0] + [e0]
            for a, b in zip(cuts, cuts[1:], strict=False):
                if b - a > r.min_seconds:
                    u = max((i for i in stretch if (utts[i].start or 0.0) <= a + 0.05), default=stretch[0])
                    h = ctx.hit_at(u, None, vars={"seconds": round(b - a, 1)})
                    h.start, h.end = round(a, 2), round(b, 2)
                    hits.append(h)

        for i in ctx.time_order:
            if ctx.roles[i] == r.role:
                if not stretch:
                    stretch_end = 0.0
                stretch.append(i)
                stretch_end = max(stretch_end, utts[i].end or 0.0)
            elif ctx.roles[i] == r.responder and not (stretch and (utts[i].start or 0.0) < stretch_end):
                flush()
                stretch = []
        flush()
        return hits
