"""`event`: around each event of a type (hold, transfer …) the role must say phrase groups, or the event
itself is the finding (a hold longer than `min_seconds`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..engine.events import event_pos, utterance_before
from ..engine.hits import EVENT_NAMES, Hit, NotApplicable, Pos
from ..engine.triggers import groups_missing
from ..engine.windows import window
from ..rules.schema import Phrases, RuleBase, Window
from .base import Compiler, Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class EventRule(RuleBase):
    kind: Literal["event"]
    event: str
    min_seconds: float | None = Field(default=None, ge=0)
    phrases: Phrases = Field(default_factory=list)
    groups: dict[str, Phrases] = Field(default_factory=dict)
    need: Literal["all", "any"] | int = "all"
    window: Window = Field(default_factory=lambda: Window(direction="during"))
    pinyin: bool = False


@register
class EventKind(Kind):
    name = "event"
    schema = EventRule
    decided = "utterance"

    def __init__(self, rule: EventRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        if rule.phrases:
            self.groups = {"": compiler.phrases(rule.phrases, rule)}
        else:
            self.groups = {name: compiler.phrases(p, rule) for name, p in rule.groups.items()}

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        evs = [e for e in ctx.events if e.type == r.event]
        if not evs:
            raise NotApplicable(f"本通没有{EVENT_NAMES.get(r.event, r.event)}")
        hits = []
        for e in evs:
            if r.min_seconds is not None:
                d = e.duration
                if d is None or d <= r.min_seconds:
                    continue
            pos = event_pos(ctx, e, "start" if r.window.direction in ("before", "during") else "end")
            if r.window.direction == "during":
                pos = Pos(pos.u, e.start, e.end)
            us = window(ctx, pos, r.role, r.window)
            missing = groups_missing(ctx, self.groups, us, r.need) if self.groups else []
            if self.groups and not missing:
                continue
            u = e.utterance if e.utterance is not None else utterance_before(
                ctx, e.start if e.start is not None else e.at, r.role)
            h = ctx.absence_at(u, vars={"missing": "、".join(m for m in missing if m),
                                          "seconds": round(e.duration, 1) if e.duration is not None else ""})
            if e.start is not None or e.at is not None:
                h.start = e.start if e.start is not None else e.at
                h.end = e.end
            hits.append(h)
        return hits
