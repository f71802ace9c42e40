"""`sequence`: steps the role must take in order (hold: ask → give the reason → say how long)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..engine.events import utterance_before
from ..engine.hits import Hit, NotApplicable, Pos
from ..engine.triggers import positions, trigger_text
from ..engine.windows import scoped, window
from ..rules.schema import Phrases, RuleBase, Scope, Strict, Trigger, Window
from .base import Compiler, Kind, by_sound, register

if TYPE_CHECKING:
    from ..engine.context import Context


class Step(Strict):
    name: str
    phrases: Phrases


class SequenceRule(RuleBase):
    kind: Literal["sequence"]
    steps: list[Step] = Field(min_length=2)
    anchor: Trigger | None = None
    window: Window = Field(default_factory=lambda: Window(direction="before", turns=3))
    scope: Scope | None = None
    ordered: bool = True
    # the steps' phrases also match by sound from pinyin_min_len characters unless `false` (see
    # NeedsPhrases); the anchor only with `true`
    pinyin: bool | None = None
    pinyin_min_len: int = Field(default=3, ge=2)


@register
class Sequence(Kind):
    name = "sequence"
    schema = SequenceRule
    needs_text = True

    def __init__(self, rule: SequenceRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        self.steps = [(st.name, compiler.phrases(st.phrases, rule, pinyin=by_sound(rule))) for st in rule.steps]
        self.trigger_sid = compiler.trigger(rule.anchor, rule)
        # steps looked for before an anchor (the hold request before a hold) are all said once the anchor
        # is there: such a rule is decided live, as the anchor arrives; steps after it or over the whole
        # call only at the end
        if rule.anchor is not None and rule.window.direction == "before":
            self.decided = "utterance"  # type: ignore[misc]  # per rule, not per kind

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        found_at = [Pos(None, None)] if r.anchor is None else positions(ctx, r.anchor, self.trigger_sid)
        if not found_at:
            raise NotApplicable(trigger_text(r.anchor))
        hits = []
        for pos in found_at:
            us = scoped(ctx, r.role, r.scope) if r.anchor is None else window(ctx, pos, r.role, r.window)
            missing: list[str] = []
            cursor = (-1, -1)
            for name, sid in self.steps:
                found = None
                for u in us:
                    for m in ctx.matches(sid, u):
                        if not r.ordered or (u, m.start) > cursor:
                            found = (u, m.start)
                            break
                    if found:
                        break
                if found is None:
                    missing.append(name)
                else:
                    cursor = found
            if missing:
                if pos.u is not None:
                    anchor_u: int | None = pos.u
                elif us:
                    anchor_u = us[-1] if r.window.direction == "before" else us[0]
                else:
                    anchor_u = utterance_before(ctx, pos.t, r.role)
                h = ctx.absence_at(anchor_u, vars={"missing": "、".join(missing)})
                if pos.t is not None:
                    h.start = pos.t
                    h.end = pos.end_t if pos.end_t is not None else h.end
                hits.append(h)
        return hits
