"""The checker: a rulebook compiled once (phrase automata, rule order, one `Kind` per rule), then
`Checker.check` — pure and fast — for each conversation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import normalize
from ..coverage import measure_coverage
from ..judge.registry import Judges
from ..kinds import Kind, judges_used, kind_of, rule_refs
from ..labels import missing
from ..model import Conversation, EventHit, Finding, Report
from ..rules.matcher import PhraseIndex
from ..rules.rulebook import Rulebook, rule_order
from ..rules.schema import Condition, PhraseItem, Trigger
from ..scoring import score_report
from .context import Context
from .hits import DIRECTION_NAMES, NO_HITS, Hit, NotApplicable, fmt_time
from .measures import compare, measure
from .triggers import condition_text
from .views import UtteranceView

_NO_TEXT = "没有转写文本（录音未做语音识别）"


class _Vars(dict[str, Any]):
    def __missing__(self, k: str) -> str:
        return "{" + k + "}"


def _view_cost(text: str) -> int:
    """Estimated bytes a cached view of `text` holds once checked (its key, the normalised strings, raw hits,
    matches and evidence maps): measured by bench/bench_cache.py on generated calls."""
    return VIEW_BYTES + VIEW_BYTES_PER_CHAR * len(text)


VIEW_BYTES = 3100  # bench_cache: 3.2-3.6 kB a view of 21-36 characters
VIEW_BYTES_PER_CHAR = 12  # the text itself (kept by the key once its call is gone), 2 bytes a character, and the normalised copies


def rule_selected(rule_id: str, select: list[str] | None, ignore: list[str] | None) -> bool:
    """`--select` / `--ignore` by ID or prefix."""
    if select and not any(rule_id.startswith(s) for s in select):
        return False
    return not (ignore and any(rule_id.startswith(s) for s in ignore))


class _Compiled:
    """One rule ready to run: its kind and its applicability conditions, compiled."""

    __slots__ = ("rule", "kind", "plain", "cond_sids")

    def __init__(self, rule: Any, kind: Kind) -> None:
        self.rule = rule
        self.kind = kind
        app = rule.applies
        self.plain = (app.channels is None and app.directions is None and app.min_turns is None and not app.when
                      and not app.unless)  # no applicability conditions: straight to the kind
        self.cond_sids: dict[int, int] = {}  # id(condition) -> phrase set of its `said`


class Checker:
    """A rulebook compiled for checking. Build once, call `check` for each conversation."""

    # The cache of utterance views is bounded by an estimate of its bytes (`_view_cost`), in two
    # generations: new views go to the young one; when it holds half the budget it becomes the old one and
    # the previous old one is dropped; a view found in the old generation moves back to the young. So the
    # phrases a call center repeats all day stay, a worker scoring an archive stays flat, and the cache
    # never holds more than `cache_bytes` (~ a call's worth more). bench/bench_cache.py measures the budget.
    CACHE_BYTES = 48 * 1024 * 1024

    def __init__(self, rulebook: Rulebook, *, cache_bytes: int | None = None) -> None:
        self.rulebook = rulebook
        self.index = PhraseIndex()
        needed = {r.id for r in rulebook.rules if r.enabled}
        by_id = rulebook.by_id
        stack = list(needed)
        while stack:  # disabled rules still run when an enabled rule depends on them
            for ref in rule_refs(by_id[stack.pop()]):
                if ref not in needed:
                    needed.add(ref)
                    stack.append(ref)
        self.order = rule_order([r for r in rulebook.rules if r.id in needed], rulebook.origin)
        self.compiled: dict[str, _Compiled] = {}
        for r in self.order:
            c = self.compiled[r.id] = _Compiled(r, kind_of(r)(r, self))
            for cond in r.applies.when + r.applies.unless:
                if cond.said is not None:
                    c.cond_sids[id(cond)] = self.index.add(list(cond.said.phrases), role=cond.said.role)
        self._sequence = [self.compiled[r.id] for r in self.order]
        s = rulebook.settings
        self.hold_sid = self.index.add(list(s.infer_holds.phrases), role="agent") if s.infer_holds.phrases else None
        self.customer_hold_sid = (self.index.add(list(s.infer_holds.customer_phrases), role="customer")
                                  if s.infer_holds.customer_phrases else None)
        self.transfer_sid = (self.index.add(list(s.infer_transfers.phrases), role="agent")
                             if s.infer_transfers.phrases else None)
        self.index.build()
        for c in self._sequence:
            c.kind.bind(self.index)
        self._shown = {r.id for r in self.order if r.enabled}
        self._scored = [r.id for r in self.order if r.enabled and r.severity != "event"]
        self._yielding = {r.id: list(r.yields_to) for r in self.order if r.yields_to}
        self._rulebook_ref = {"name": rulebook.name, "version": rulebook.version}
        self._utt_cache: dict[tuple[str, str], UtteranceView] = {}  # the young generation
        self._utt_old: dict[tuple[str, str], UtteranceView] = {}
        self._cache_cost = 0  # estimated bytes of the young generation
        self.cache_bytes = self.CACHE_BYTES if cache_bytes is None else cache_bytes
        self.cache_lookups = 0  # utterances looked up, and how many were not cached (the hit rate)
        self.cache_misses = 0
        self.judges = Judges(s.judges)
        uses_judges = sorted({j for r in self.order for j in judges_used(r)})
        if uses_judges:
            self._rulebook_ref["models"] = ", ".join(self.judges.get(n).name for n in uses_judges)

    # ---- what kinds ask while compiling (the `Compiler` protocol) -----------------------------------------

    def phrases(self, phrases: Sequence[str | PhraseItem], rule: Any, role: str | None = None, **kw: Any) -> int:
        """A phrase set for a rule: its role and pinyin settings unless `kw` says otherwise."""
        kw.setdefault("pinyin", getattr(rule, "pinyin", False))
        kw.setdefault("pinyin_min_len", getattr(rule, "pinyin_min_len", 3))
        return self.index.add(list(phrases), role=role or rule.role, **kw)

    def trigger(self, trig: Trigger | None, rule: Any) -> int | None:
        """The phrase set of a `said` trigger (None for rule and event triggers)."""
        if trig is None or trig.said is None:
            return None
        return self.index.add(list(trig.said.phrases), pinyin=getattr(rule, "pinyin", False), role=trig.said.role)

    # ---- utterance views ----------------------------------------------------------------------------------

    def clear_cache(self) -> None:
        """Forget the normalised utterances (benchmarks start each repetition cold)."""
        self._utt_cache.clear()
        self._utt_old.clear()
        self._cache_cost = 0

    @property
    def cache_size(self) -> int:
        return len(self._utt_cache) + len(self._utt_old)

    def prepare(self, texts: list[str], roles: Sequence[str]) -> list[UtteranceView]:
        """The views of a call's utterances: each distinct (text, role) is normalised and scanned once per
        checker and then looked up (call centers repeat themselves). Cached raw hits are never modified."""
        cache = self._utt_cache
        out: list[UtteranceView | None] = [cache.get((t, r)) for t, r in zip(texts, roles, strict=True)]
        miss = [i for i, v in enumerate(out) if v is None]
        self.cache_lookups += len(out)
        if not miss:
            return out  # type: ignore[return-value]
        old = self._utt_old
        cost = self._cache_cost
        if old:  # back into the young generation: what is still said stays
            still = []
            for i in miss:
                key = (texts[i], roles[i])
                view = old.get(key)
                if view is None:
                    still.append(i)
                elif (got := cache.get(key)) is not None:  # the same text twice in one call
                    out[i] = got
                else:
                    out[i] = cache[key] = view
                    cost += _view_cost(key[0])
            miss = still
        if miss:
            self.cache_misses += len(miss)
            m_texts = [texts[i] for i in miss]
            c2, k2, w2 = normalize.views_many(m_texts)
            r2 = self.index.scan_many(k2, [roles[i] for i in miss])
            for j, i in enumerate(miss):
                key = (texts[i], roles[i])
                view = cache.get(key)  # the same text twice in one call
                if view is None:
                    view = cache[key] = UtteranceView(c2[j], k2[j], w2[j], r2[j])
                    cost += _view_cost(key[0])
                out[i] = view
        if cost > self.cache_bytes // 2:  # the young generation is full: it becomes the old one
            self._utt_old = cache
            self._utt_cache = {}
            cost = 0
        self._cache_cost = cost
        return out  # type: ignore[return-value]

    # ---- checking -------------------------------------------------------------------------------------

    def check(self, conv: Conversation, *, select: list[str] | None = None,
              ignore: list[str] | None = None) -> Report:
        ctx = Context(self, conv)
        na: dict[str, str] = {}
        fired = ctx.fired
        run = self._run
        for c in self._sequence:
            rid = c.rule.id
            try:
                fired[rid] = run(c, ctx)
            except NotApplicable as exc:
                na[rid] = exc.reason
                fired[rid] = NO_HITS
        shown = self._shown if select is None and ignore is None else \
            {r.id for r in self.order if r.enabled and rule_selected(r.id, select, ignore)}
        if len(shown) != len(self.order):
            na = {k: v for k, v in na.items() if k in shown}
        return self.report(ctx, shown, na)

    def report(self, ctx: Context, shown: set[str], na: dict[str, str]) -> Report:
        """The report of a checked context: findings and events of the shown rules, scored."""
        findings: list[Finding] = []
        events: list[EventHit] = []
        fired = ctx.fired
        evented: set[tuple[str, int | None]] = set()
        for c in self._sequence:
            hits = fired[c.rule.id]
            if not hits or c.rule.id not in shown:
                continue
            r = c.rule
            for h in hits:
                if r.severity == "event":
                    # an event is something that happened in an utterance (the customer complained): two
                    # phrases of it in one sentence are one event, evidenced by the first
                    if h.utterance is not None and (r.id, h.utterance) in evented:
                        continue
                    evented.add((r.id, h.utterance))
                    events.append(EventHit(r.id, r.name, h.utterance, h.start, h.evidence, h.span, h.confidence,
                                           h.judge))
                    continue
                vars_ = _Vars(h.vars)
                vars_.setdefault("evidence", h.evidence or "")
                vars_.setdefault("time", fmt_time(h.start))
                findings.append(Finding(r.id, r.name, r.severity, 0.0, h.utterance, h.start, h.end, h.evidence,
                                        r.message.format_map(vars_), h.suggestion or r.suggest, None, h.span,
                                        h.via, h.confidence, h.judge))
        if self._yielding and findings:
            findings = _without_yielded(findings, self._yielding)
        findings.sort(key=_finding_order)
        events.sort(key=_finding_order)
        conv = ctx.conv
        report = Report(
            call_id=conv.id, rulebook=dict(self._rulebook_ref), score=0.0, grade="", fatal=False, dimensions={},
            findings=findings, events=events, not_applicable=na, conversation=conv, notes=list(conv.notes),
        )
        score_report(report, self.rulebook)
        scored = self._scored if shown is self._shown else [r for r in self._scored if r in shown]
        texts = ctx.texts
        dialogue = all(any(texts[u].strip() for u in ctx.by_role[role]) for role in ("agent", "customer"))
        report.coverage = measure_coverage(scored, na, self.rulebook.settings.min_coverage, dialogue)
        return report

    def _run(self, c: _Compiled, ctx: Context) -> list[Hit]:
        kind = c.kind
        if c.plain:
            if kind.needs_text and not ctx.has_text:
                raise NotApplicable(_NO_TEXT)
            return kind.run(ctx)
        r = c.rule
        conv = ctx.conv
        app = r.applies
        if app.channels is not None and (conv.channel or "phone") not in app.channels:
            raise NotApplicable(f"仅适用于渠道 {'、'.join(app.channels)}")
        if app.directions is not None and (conv.direction or "inbound") not in app.directions:
            raise NotApplicable("仅适用于" + "、".join(DIRECTION_NAMES[d] for d in app.directions) + "通话")
        if kind.needs_text and not ctx.has_text:
            raise NotApplicable(_NO_TEXT)
        if app.min_turns is not None and len(ctx.by_role["customer"]) < app.min_turns:
            raise NotApplicable(f"客户发言少于 {app.min_turns} 句")
        for cond in app.when:
            ok = self._cond(cond, c, ctx)
            if ok is None:
                raise NotApplicable(missing(str(cond.field)))
            if not ok:
                raise NotApplicable(condition_text(cond))
        hits = kind.run(ctx)
        if hits and app.unless and all(self._cond(cond, c, ctx) for cond in app.unless):
            return []  # exempt
        return hits

    @staticmethod
    def _cond(cond: Condition, c: _Compiled, ctx: Context) -> bool | None:
        if cond.fired is not None:
            return bool(ctx.fired.get(cond.fired))
        if cond.not_fired is not None:
            return not ctx.fired.get(cond.not_fired)
        if cond.said is not None:
            return ctx.said(c.cond_sids[id(cond)], ctx.role_utts(cond.said.role)) is not None
        assert cond.field is not None and cond.op is not None
        value = measure(ctx, cond.field, c.rule)
        if value is None:
            # an unknown value is not equal to anything: "ended_by != system" holds when ended_by is unknown
            return True if cond.op in ("!=", "not in") else None
        return compare(value, cond.op, cond.value)


def _without_yielded(findings: list[Finding], yielding: dict[str, list[str]]) -> list[Finding]:
    """Drop the findings of a rule with `yields_to` whose words a finding of a rule it yields to covers."""
    spans: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for f in findings:
        if f.utterance is not None and f.span is not None:
            spans.setdefault((f.rule, f.utterance), []).append(f.span)

    def covered(f: Finding) -> bool:
        if f.utterance is None or f.span is None:
            return False
        s, e = f.span
        return any(a < e and s < b for other in yielding[f.rule]
                   for a, b in spans.get((other, f.utterance), ()))

    return [f for f in findings if f.rule not in yielding or not covered(f)]


def _finding_order(f: Finding | EventHit) -> tuple[int, str]:
    return (f.utterance if f.utterance is not None else -1, f.rule)
