"""`required`: phrases (or groups of phrases) the role must say in a scope or in a window after a trigger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..engine.hits import ROLE_NAMES, Hit, NotApplicable
from ..engine.triggers import groups_missing, positions, trigger_text
from ..engine.windows import scoped, window
from ..rules.schema import NeedsPhrases, Scope, Trigger, Window
from .base import Compiler, Kind, by_sound, register

if TYPE_CHECKING:
    from ..engine.context import Context


class RequiredRule(NeedsPhrases):
    kind: Literal["required"]
    scope: Scope | None = None
    after: Trigger | None = None
    window: Window | None = None


@register
class Required(Kind):
    name = "required"
    schema = RequiredRule
    needs_text = True

    def __init__(self, rule: RequiredRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        if rule.phrases:
            self.groups = {"": compiler.phrases(rule.phrases, rule, pinyin=by_sound(rule))}
        else:
            self.groups = {name: compiler.phrases(p, rule, pinyin=by_sound(rule)) for name, p in rule.groups.items()}
        self.trigger_sid = compiler.trigger(rule.after, rule)

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        if r.after is not None:
            found = positions(ctx, r.after, self.trigger_sid)
            if not found:
                raise NotApplicable(trigger_text(r.after))
            win = r.window or Window(direction="after")
            hits = []
            for pos in found:
                us = window(ctx, pos, r.role, win)
                if r.scope is not None:
                    allowed = set(scoped(ctx, r.role, r.scope))
                    us = [u for u in us if u in allowed]
                missing = groups_missing(ctx, self.groups, us, r.need, r.labels)
                if missing:
                    u = us[0] if us else pos.u
                    hits.append(ctx.absence_at(u, vars={"missing": "、".join(m for m in missing if m)}))
                if not win.turns and not win.seconds:
                    break  # the rest of the call: the first trigger decides
            return hits
        us = scoped(ctx, r.role, r.scope)
        if not us:
            raise NotApplicable(f"{'检查范围内' if r.scope is not None else ''}{ROLE_NAMES[r.role]}没有发言")
        missing = groups_missing(ctx, self.groups, us, r.need, r.labels)
        if not missing:
            return []
        # a closing check points at the last turn, an opening check at the first
        # (a whole-call omission, 全程没有…, is call-level)
        u = None if r.scope is None else us[-1] if r.scope.last_turns else us[0]
        return [ctx.absence_at(u, vars={"missing": "、".join(m for m in missing if m)})]
