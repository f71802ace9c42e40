"""`overlap`: the role starts speaking while the other is still speaking (cutting in), backchannels aside."""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from .. import normalize
from ..engine.hits import Hit, NotApplicable
from ..rules.schema import PhraseStr, RuleBase
from .base import Compiler, Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class OverlapRule(RuleBase):
    kind: Literal["overlap"]
    over: Literal["agent", "customer"] = "customer"
    min_seconds: float = Field(gt=0)
    unless: list[PhraseStr] = Field(default_factory=list)  # backchannels said while overlapping don't count


@register
class Overlap(Kind):
    name = "overlap"
    schema = OverlapRule
    decided = "utterance"

    def __init__(self, rule: OverlapRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        words = sorted({normalize.key(w) for w in rule.unless if normalize.key(w)}, key=len, reverse=True)
        # utterances made only of these are listening, not cutting in
        self.backchannel = re.compile("(?:" + "|".join(map(re.escape, words)) + ")+") if words else None

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        unreliable = ctx.conv.metrics.get("unreliable")  # a recording's double talk it cannot time (echo)
        if isinstance(unreliable, dict) and unreliable.get("overlap_seconds"):
            raise NotApplicable(str(unreliable["overlap_seconds"]))
        utts = ctx.conv.utterances
        hits = []
        # the other role's speech as spans: ASR segments less than a breath (0.5 s) apart are one turn
        spans: list[list[float]] = []
        for v in (i for i in ctx.time_order if ctx.roles[i] == r.over):
            vs, ve = utts[v].start or 0.0, utts[v].end or 0.0
            if spans and vs - spans[-1][1] < 0.5:
                spans[-1][1] = max(spans[-1][1], ve)
            else:
                spans.append([vs, ve])
        starts = [sp[0] for sp in spans]
        for u in ctx.by_role[r.role]:
            us, ue = utts[u].start, utts[u].end
            assert us is not None and ue is not None
            i = bisect_right(starts, us) - 1
            if i < 0 or not spans[i][0] < us < spans[i][1]:
                continue  # not inside the other role's speech
            best = min(ue, spans[i][1]) - us
            if best < r.min_seconds:
                continue
            if self.backchannel is not None and self.backchannel.fullmatch(ctx.keys[u]):
                continue  # only backchannels ("嗯，好的") while the customer talks: listening, not cutting in
            h = ctx.hit_at(u, None, vars={"seconds": round(best, 1)})
            h.end = round(us + best, 2)
            hits.append(h)
        return hits
