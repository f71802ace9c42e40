"""`repeat_ask`: the agent asks again for information the customer already gave (number, name, address)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..engine.hits import Hit
from ..rules.schema import Phrases, RuleBase, Strict
from .base import Compiler, Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context

_DID_NOT_CATCH = ("没听清", "沒聽清", "听不清", "聽不清", "没听到", "沒聽到", "再说一遍", "再說一遍", "再说一次", "再說一次",
                  "信号不", "信號不")


class Slot(Strict):
    name: str
    given: Phrases  # what the customer says when giving it
    ask: Phrases  # how the agent asks for it


class RepeatAskRule(RuleBase):
    kind: Literal["repeat_ask"]
    slots: list[Slot] = Field(min_length=1)
    pinyin: bool = False


@register
class RepeatAsk(Kind):
    name = "repeat_ask"
    schema = RepeatAskRule
    needs_text = True

    def __init__(self, rule: RepeatAskRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        self.slots = [(sl.name, compiler.phrases(sl.given, rule, "customer"), compiler.phrases(sl.ask, rule))
                      for sl in rule.slots]

    def run(self, ctx: Context) -> list[Hit]:
        hits = []
        cust = ctx.by_role["customer"]
        agent = ctx.role_utts(self.rule.role)
        for name, given_sid, ask_sid in self.slots:
            got = ctx.said(given_sid, cust)
            if got is None:
                continue
            g = got[0]
            # the agent's next turn asking for it again is a repeat ask too (the customer gave it unasked), unless
            # it is a polite request to repeat what the agent did not catch (请您再说一遍, LNG007's business)
            later = [u for u in agent if u > g]
            if later and any(w in (ctx.conv.utterances[later[0]].text or "") for w in _DID_NOT_CATCH):
                later = later[1:]
            again = ctx.said(ask_sid, later)
            if again is not None:
                u, m = again
                hits.append(ctx.hit_at(u, m, vars={"slot": name, "given": ctx.evidence(g, got[1])[0]}))
        return hits
