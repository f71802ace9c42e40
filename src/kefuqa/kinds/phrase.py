"""`phrase`: forbidden wording — a finding for each phrase said (with `suggest`, exceptions and context)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..engine.hits import Hit, NotApplicable
from ..engine.windows import scoped
from ..labels import missing
from ..rules.schema import Phrases, PhraseStr, RuleBase, Scope, check_phrases
from .base import Compiler, Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class PhraseRule(RuleBase):
    kind: Literal["phrase"]
    phrases: Phrases = Field(default_factory=list)
    unless: list[PhraseStr] = Field(default_factory=list)
    unless_near: list[str] = Field(default_factory=list)
    near_turns: int = Field(default=0, ge=0)
    pinyin: bool = True
    pinyin_min_len: int = Field(default=3, ge=2)
    scope: Scope | None = None
    attrs: dict[str, list[str]] = Field(default_factory=dict)  # utterance attributes that count as hits

    _v = field_validator("phrases")(check_phrases)

    @model_validator(mode="after")
    def _some(self) -> PhraseRule:
        if not self.phrases and not self.attrs:
            raise ValueError("用语规则需要 phrases（或 attrs）")
        return self


@register
class Phrase(Kind):
    name = "phrase"
    schema = PhraseRule
    needs_text = True
    decided = "utterance"

    def __init__(self, rule: PhraseRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        self.sid = compiler.phrases(rule.phrases, rule, unless=list(rule.unless)) if rule.phrases else None
        self.near_sid = compiler.phrases(rule.unless_near, rule, pinyin=False) if rule.unless_near else None
        self.attrs = {name: {x.lower() for x in values} for name, values in rule.attrs.items()}
        self.all_hours = False  # every phrase has allowed_hours: needs started_at
        self.unfiltered = False  # a regex that runs on every utterance

    def bind(self, index: Any) -> None:
        if self.sid is not None:
            pset = index.sets[self.sid]
            self.all_hours = bool(pset.items) and all(i.allowed_hours for i in pset.items)
            self.unfiltered = pset.unfiltered_regex

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        if self.all_hours and ctx.conv.started_at is None:
            raise NotApplicable(missing("started_at"))
        sid = self.sid
        with_attrs = bool(self.attrs) and ctx.any_attrs
        if sid is not None and sid not in ctx.sets_hit and not self.unfiltered and not with_attrs:
            return []  # none of its phrases occurs anywhere in the call
        pset = ctx.index.sets[sid] if sid is not None else None
        hits: list[Hit] = []
        us = scoped(ctx, r.role, r.scope)
        role_us = ctx.role_utts(r.role)
        base_vars = ctx.time_vars
        check_us = ctx.candidates(sid, us) if sid is not None else []
        if with_attrs:
            check_us = sorted(set(check_us) | {u for u in us if ctx.conv.utterances[u].attrs})
        for u in check_us:
            if sid is not None:
                assert pset is not None
                for m in ctx.matches(sid, u):
                    item = pset.items[m.item]
                    if self.near_sid is not None or item.near_set is not None:
                        pos = role_us.index(u) if u in role_us else 0
                        near = role_us[pos: pos + 1 + r.near_turns]
                        if self.near_sid is not None and ctx.said(self.near_sid, near) is not None:
                            continue
                        if item.near_set is not None and ctx.said(item.near_set, near) is not None:
                            continue
                    hits.append(ctx.hit_at(u, m, suggestion=item.suggest, via=m.via, vars=dict(base_vars)))
            if self.attrs:
                attrs = ctx.conv.utterances[u].attrs
                for name, values in self.attrs.items():
                    v = attrs.get(name)
                    if v is not None and str(v).lower() in values:
                        if not any(h.utterance == u for h in hits):
                            hits.append(ctx.hit_at(u, None, via="attr", vars={name: v}))
        return hits
