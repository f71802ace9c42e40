"""`intent`: a judgement about what an utterance means — a complaint, a flat refusal, empathy — decided by
a model (the bundled fast model, or a stronger judge the rulebook configures), not by a word list alone.

An intent rule is a `phrase` rule plus a label: its phrases (with all their exceptions, `unless_near`,
`attrs` …) stay high-precision shortcuts that fire without asking the model, and its `unless` phrases are
also exceptions for the model (an utterance saying one of them is never a model hit). With `judge_if`,
only utterances saying one of those phrases are judged (the form the label needs: a question for a
rhetorical reproach, a word of doubt for a hedge, a word of refusal for a refusal); otherwise every other
utterance of the role in scope is judged; a finding quotes the words that weighed most, with the model's
confidence and name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from .. import normalize
from ..engine.hits import Hit, NotApplicable
from ..engine.windows import scoped
from ..judge import Judgement, Undecided
from ..judge.labels import labels
from ..rules.matcher import Match
from ..rules.schema import Phrases
from .base import Compiler, register
from .phrase import Phrase, PhraseRule
from .rest import Rest, says_more

if TYPE_CHECKING:
    from ..engine.context import Context


class IntentRule(PhraseRule):
    kind: Literal["intent"]  # type: ignore[assignment]
    label: str
    threshold: float | None = Field(default=None, gt=0, lt=1)  # default: the model's own for the label
    judge: str = "fast"  # a judge from settings.judges ("fast" is the bundled model)
    pinyin: bool = False
    # utterances with fewer word characters (嗯、好的、再见) are listening, not statements: never judged
    min_chars: int = Field(default=4, ge=1)
    # the model judges only utterances that say one of these (the shortcuts are not limited by it)
    judge_if: Phrases = Field(default_factory=list)
    # a model hit scoring under `sure` stands only with support from the rest of the call: a shortcut hit,
    # or another utterance of the role the model scores at least `support` (one ambiguous sentence in an
    # otherwise calm conversation — 人都没事 / 我什么都没干 — is not a complaint). Only where the role said
    # at least `support_turns` things: a one-message email or chat has no rest of the call to ask. In a live
    # call (`ctx.live`) the rest is still to come: a weak reading always waits for its support there.
    sure: float | None = Field(default=None, gt=0, lt=1)
    support: float = Field(default=0.5, gt=0, lt=1)
    support_turns: int = Field(default=3, ge=1)
    # a clause after the label's words that is neither the label nor filler takes the finding back (rest.py)
    rest: Rest | None = None

    @model_validator(mode="after")
    def _some(self) -> IntentRule:  # phrases are optional here: the label is the rule
        known = labels()
        if self.label not in known:
            raise ValueError(f"未知的判断标签 {self.label!r}；可用标签：{'、'.join(known)}")
        want = known[self.label].role
        if self.role != want:
            raise ValueError(f"标签 {self.label} 判断的是 {want} 的话：请设置 role: {want}")
        for other in self.rest.labels if self.rest is not None else []:
            if other not in known:
                raise ValueError(f"rest.labels：未知的判断标签 {other!r}；可用标签：{'、'.join(known)}")
        return self


@register
class Intent(Phrase):
    name = "intent"
    schema = IntentRule  # type: ignore[assignment]
    needs_text = True
    decided = "utterance"

    def __init__(self, rule: IntentRule, compiler: Compiler) -> None:
        super().__init__(rule, compiler)
        self.veto_sid = compiler.phrases(rule.unless, rule) if rule.unless else None
        self.gate_sid = compiler.phrases(rule.judge_if, rule, pinyin=False) if rule.judge_if else None
        # whether an utterance is asked at all (long enough, no veto, the gate said) depends on its view alone
        # (and on whether the call shows quotation marks there): kept with the view, keyed by that flag; the
        # judgement itself is kept once, by `Context.judgements`, for every rule and trigger asking that label
        self._ask_slots = (("intent-ask", rule.id, False), ("intent-ask", rule.id, True))
        self._ask_cached = True
        keys = {normalize.key(f) for f in rule.rest.filler} if rule.rest is not None else set()
        self.filler = sorted(keys - {""}, key=len, reverse=True)
        bare = rule.rest.no_reason if rule.rest is not None else []
        self.bare_sid = compiler.phrases(bare, rule, pinyin=False) if bare else None

    def bind(self, index: Any) -> None:
        super().bind(index)
        # a set with hour-limited phrases matches per call (the call's hour), not per view
        self._ask_cached = not any(sid is not None and index.sets[sid].hour_dependent
                                   for sid in (self.veto_sid, self.gate_sid))

    def _askable(self, ctx: Context, u: int) -> bool:
        r = self.rule
        veto, gate = self.veto_sid, self.gate_sid
        return (ctx.word_count(u) >= r.min_chars and (veto is None or ctx.said(veto, [u]) is None)
                and (gate is None or ctx.said(gate, [u]) is not None))

    def run(self, ctx: Context) -> list[Hit]:
        r = self.rule
        hits = super().run(ctx) if (r.phrases or r.attrs) else []  # the shortcuts
        for h in hits:
            h.vars.setdefault("confidence", "短语")
            h.vars.setdefault("reason", "")
        said = {h.utterance for h in hits}
        ask: list[int] = []
        views, quoted, slots, cached = ctx.views, ctx.has_quotes, self._ask_slots, self._ask_cached
        for u in scoped(ctx, r.role, r.scope):
            if u in said:
                continue
            if cached:
                extra = views[u].extra
                slot = slots[quoted[u]]
                got = extra.get(slot)
                if got is None:
                    got = extra[slot] = self._askable(ctx, u)
            else:
                got = self._askable(ctx, u)
            if got:
                ask.append(u)
        judged = ctx.judgements(r.judge, r.label, ask) if ask else []
        undecided: list[str] = []
        name = labels()[r.label].name
        role_us = ctx.role_utts(r.role)
        leaning: list[int] | None = None  # the utterances leaning to the label: only asked for a weak reading
        for u, j in zip(ask, judged, strict=True):
            if isinstance(j, Undecided):
                undecided.append(j.reason)
                continue
            if j.score < (r.threshold if r.threshold is not None else j.threshold):
                continue
            # live (a call still going), the rest of the call is to come: a weak reading waits for support
            # however few turns there are so far, else it would show now and be withdrawn when the third
            # customer turn arrives calm (the final check of the whole call decides as always)
            if (r.sure is not None and j.score < r.sure and not said
                    and (len(role_us) >= r.support_turns or ctx.live)):
                if leaning is None:
                    leaning = [x for x, k in zip(ask, judged, strict=True)
                               if isinstance(k, Judgement) and k.score >= r.support]
                if not any(x != u for x in leaning):
                    continue
            if self.near_sid is not None:  # the same context exceptions as the shortcuts (因为…/我帮您… next turn)
                pos = role_us.index(u) if u in role_us else 0
                if ctx.said(self.near_sid, role_us[pos: pos + 1 + r.near_turns]) is not None:
                    continue
            m = Match(0, j.span[0], j.span[1], "model", "key") if j.span is not None else None
            hit = ctx.hit_at(u, m, via="model", confidence=round(j.score, 3), judge=j.judge,
                             vars={**ctx.time_vars, "confidence": f"{j.score:.2f}", "label": name,
                                   "reason": j.reason or ""})
            if hit.span is not None and m is not None:
                hit.evidence, hit.span = ctx.clause_at(u, hit.span)
            hits.append(hit)
        if r.rest is not None and hits:
            hits = self._without_rest(ctx, hits)
        if undecided and not hits:
            raise NotApplicable(f"判断未完成：{undecided[0]}")
        hits.sort(key=lambda h: h.utterance if h.utterance is not None else -1)
        return hits

    def _without_rest(self, ctx: Context, hits: list[Hit]) -> list[Hit]:
        """The hits whose utterance says nothing more after the label's words (`rest`)."""
        r = self.rule
        assert r.rest is not None
        own: dict[int, list[tuple[int, int]]] = {}
        for h in hits:
            if h.utterance is not None and h.span is not None:
                own.setdefault(h.utterance, []).append(h.span)
        taken_back = set()
        for u, spans in own.items():
            if self.gate_sid is not None:  # the words of refusal the model was asked about are the label's too
                spans = spans + [ctx.evidence(u, m)[1] for m in ctx.matches(self.gate_sid, u)]
            bare = [ctx.evidence(u, m)[1] for m in ctx.matches(self.bare_sid, u)] if self.bare_sid is not None else []
            if says_more(ctx, u, spans, r.rest, self.filler, r.judge, r.label, bare):
                taken_back.add(u)
        return [h for h in hits if h.utterance not in taken_back]
