"""`conditional`: if a trigger occurs, the checked role must answer within a window (read-backs via `echo`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from ..engine.context import DIGITS_T
from ..engine.hits import Hit, NotApplicable
from ..engine.triggers import groups_missing, positions, trigger_text
from ..engine.windows import window
from ..rules.schema import IntentRef, Phrases, RoleSel, RuleBase, Strict, Trigger, Window
from .base import Compiler, Kind, by_sound, register

if TYPE_CHECKING:
    from ..engine.context import Context

_DIGITS = re.compile(r"[0-9]{4,}")


class Then(Strict):
    phrases: Phrases = Field(default_factory=list)
    groups: dict[str, Phrases] = Field(default_factory=dict)
    # a group (or, with `phrases`, the answer as a whole: key "") is also satisfied by an utterance a judge
    # finds to be this label
    labels: dict[str, IntentRef] = Field(default_factory=dict)
    need: Literal["all", "any"] | int = "all"
    role: RoleSel = "agent"
    # the checked role repeats the trigger's evidence (e.g. reads a phone number back)
    echo: bool = False
    # the echo may come this many turns of the role later (the read-back at the end of the registration),
    # but not after the trigger's role had to give the same information again
    echo_turns: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _some(self) -> Then:
        if not self.phrases and not self.groups and not self.labels and not self.echo:
            raise ValueError("'then' needs phrases, groups or echo")
        return self


class ConditionalRule(RuleBase):
    kind: Literal["conditional"]
    if_: Trigger = Field(alias="if")
    then: Then
    window: Window = Field(default_factory=lambda: Window(direction="after"))
    # `then`'s phrases also match by sound from pinyin_min_len characters unless `false` (see NeedsPhrases);
    # the trigger only with `true`
    pinyin: bool | None = None
    pinyin_min_len: int = Field(default=3, ge=2)
    # every trigger is checked in its own window: a second open promise (会尽快的) after a first one is its
    # own finding, not hidden inside the first one's window (the default reports a stretch once)
    each: bool = False


@register
class Conditional(Kind):
    name = "conditional"
    schema = ConditionalRule
    needs_text = True

    def __init__(self, rule: ConditionalRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        then = rule.then
        self.groups: dict[str, int] = {}
        if then.phrases:
            self.groups = {"": compiler.phrases(then.phrases, rule, then.role, pinyin=by_sound(rule))}
        elif then.groups:
            self.groups = {name: compiler.phrases(p, rule, then.role, pinyin=by_sound(rule))
                           for name, p in then.groups.items()}
        self.trigger_sid = compiler.trigger(rule.if_, rule)

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        found = positions(ctx, r.if_, self.trigger_sid)
        if not found:
            raise NotApplicable(trigger_text(r.if_))
        then = r.then
        hits = []
        covered: set[int] = set()  # utterances inside the window of a trigger already reported
        for pos in found:
            if pos.u is not None and pos.u in covered:
                continue  # with `each`, only a second trigger on an utterance already reported
            us = window(ctx, pos, then.role, r.window)
            ok = False
            if self.groups or then.labels:
                ok = not groups_missing(ctx, self.groups, us, then.need, then.labels)
            if not ok and then.echo and pos.key:
                said = pos.key.translate(DIGITS_T)
                tail = _DIGITS.findall(said)
                probe = tail[-1][-4:] if tail else said[-4:]
                digit_key = ctx.digit_key
                eus = us
                if then.echo_turns and pos.u is not None:
                    # later read-backs count until the trigger's role has to give the same thing again
                    stop = next((v for v in ctx.role_utts(r.if_.said.role if r.if_.said else "customer")
                                 if v > pos.u and probe in digit_key(v)), ctx.n)
                    eus = [u for u in ctx.role_utts(then.role) if pos.u < u < stop][: then.echo_turns]
                ok = any(probe in digit_key(u) for u in eus)
            if not ok:
                if pos.match is not None and pos.u is not None:
                    pos.evidence, pos.span = ctx.evidence(pos.u, pos.match)
                reply = _reply(ctx, pos.u, then, us)
                if reply is not None:
                    # the other side's words (a complaint) asked for an answer the checked role never
                    # gave: the finding sits on that role's first turn after them, quoting nothing
                    # (the message names the trigger)
                    h = ctx.absence_at(reply, vars={"trigger": pos.evidence or ""})
                else:
                    h = ctx.hit_at(pos.u, None, vars={"trigger": pos.evidence or ""})
                    if pos.evidence:
                        h.evidence, h.span = pos.evidence, pos.span
                hits.append(h)
                if r.each:
                    if pos.u is not None:
                        covered.add(pos.u)
                elif us:
                    covered.update(range(pos.u if pos.u is not None else us[0], us[-1] + 1))
            if not r.window.turns and not r.window.seconds and r.window.direction in ("after", "call"):
                break  # unbounded window: the first trigger decides
        return hits


def _reply(ctx: Context, trigger_u: int | None, then: Then, us: list[int]) -> int | None:
    """The checked role's first turn in the window after a trigger another role said, or None (the
    trigger is the checked role's own words, or the role never spoke). A number or address not read back
    sits there too: the fault is the reply that takes it down without repeating it (the message quotes it)."""
    if trigger_u is None or not us or then.role == "any":
        return None
    if ctx.conv.utterances[trigger_u].role == then.role:
        return None
    return next((u for u in us if u > trigger_u), None)
