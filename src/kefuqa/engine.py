"""The rule engine: a compiled rulebook checks conversations and produces reports.

`Checker` is built once per rulebook (phrase automata, rule order); `Checker.check` is pure and fast.
Each rule *kind* is a method ``_k_<kind>`` returning hits, or raising `NotApplicable` with a reason.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import mean, median
from typing import Any

from . import normalize
from .model import Conversation, Event, EventHit, Finding, Report
from .rules.matcher import Match, PhraseIndex
from .rules.rulebook import Rulebook, rule_refs
from .rules.schema import Condition, Phrases, Scope, Trigger, Window
from .scoring import score_report


class NotApplicable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Hit:
    utterance: int | None
    start: float | None
    end: float | None
    evidence: str | None = None
    span: tuple[int, int] | None = None
    suggestion: str | None = None
    via: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Pos:
    """A position a window is measured from (a trigger occurrence)."""

    u: int | None
    t: float | None
    end_t: float | None = None
    evidence: str | None = None
    key: str | None = None
    span: tuple[int, int] | None = None
    match: Match | None = None  # evidence is computed from it only when a finding needs it


_NONE: list[Match] = []
_NO_HITS: list[Hit] = []
_EMPTY_RAW: dict[int, list[Any]] = {}
_NO_UTTS: list[int] = []


class _Vars(dict[str, Any]):
    def __missing__(self, k: str) -> str:
        return "{" + k + "}"


_QUOTE_CHARS = re.compile("[“”「」『』\"]")
_QUOTED = re.compile("“[^”]*”|「[^」]*」|『[^』]*』|\"[^\"]*\"")
# spoken and ASR digits → Arabic, for comparing a number with its read-back
_DIGITS_T = str.maketrans("零〇一幺二两三四五六七八九", "0011223456789")
_DIGITS = re.compile(r"[0-9]{4,}")


def _rule_selected(rule_id: str, select: list[str] | None, ignore: list[str] | None) -> bool:
    if select and not any(rule_id.startswith(s) for s in select):
        return False
    return not (ignore and any(rule_id.startswith(s) for s in ignore))


def _fmt_time(t: float | None) -> str:
    if t is None:
        return ""
    m, s = divmod(t, 60)
    return f"{int(m):02d}:{s:04.1f}"


class Context:
    """Per-conversation state: normalised views, raw phrase matches, events, fired rules."""

    def __init__(self, checker: Checker, conv: Conversation) -> None:
        self.checker = checker
        self.conv = conv
        utts = conv.utterances
        self.n = len(utts)
        self.roles = [u.role for u in utts]
        self.texts = [u.text or "" for u in utts]
        self.timed = conv.timed
        self.has_text = conv.has_text
        self.cleans, self.keys, self._words, self.raw, self._mc = checker.prepare(self.texts, self.roles)
        self.sets_hit: set[int] = set().union(*self.raw) if self.raw else set()
        self._has_quotes = ([bool(_QUOTE_CHARS.search(t)) for t in self.texts]
                            if any(_QUOTE_CHARS.search(t) for t in self.cleans) else [False] * self.n)
        self.any_attrs = any(u.attrs for u in utts)
        self.by_role: dict[str, list[int]] = {"agent": [], "customer": [], "any": []}
        for i, r in enumerate(self.roles):
            if r in ("agent", "customer"):
                self.by_role[r].append(i)
                self.by_role["any"].append(i)
        self._hours_cache: dict[int, dict[int, list[Match]]] = {}
        self._time_order: list[int] | None = None
        self._turns: dict[str, list[list[int]]] = {}
        self._texted: dict[str, list[int]] = {}
        self._time_vars: dict[str, Any] | None = None
        self._quotes: dict[int, list[tuple[int, int]]] = {}
        self._rates: dict[str, tuple[float, float, float, list[tuple[float, int]]]] = {}
        self.fired: dict[str, list[Hit]] = {}
        self.events: list[Event] = list(conv.events)
        self._infer_events()

    # ---- phrase matches ------------------------------------------------------------------------------

    def matches(self, sid: int, u: int) -> list[Match]:
        """Matches of phrase set `sid` in utterance `u`, exceptions applied, longest first, no overlaps."""
        raw = self.raw[u].get(sid)
        pset = self.checker.index.sets[sid]
        if raw is None and not pset.unfiltered_regex:
            return _NONE
        # matches depend only on the utterance's text and role (and, for greetings, the call's hour):
        # the per-utterance cache lives as long as the checker's cache of that utterance
        mc = self._mc[u] if not pset.hour_dependent else self._hours_cache.setdefault(u, {})
        got = mc.get(sid)
        if got is not None:
            return got
        found: list[Match] = []
        pre: set[int] = set()
        if pset.regex_items:
            for item, start, end, via in raw or ():
                if via == "pre":
                    pre.add(item)
                else:
                    found.append(Match(item, start, end, via, "key"))
        else:
            found = [Match(item, start, end, via, "key") for item, start, end, via in raw or ()]
        if pset.regex_items:
            clean = self.cleans[u]
            for idx in pset.regex_items:
                rx = pset.items[idx].regex
                assert rx is not None
                if idx in pset.prefiltered and idx not in pre:
                    continue  # the literal this regex needs is not in the utterance
                needs = pset.clean_needs.get(idx)
                if needs is not None and not any(n in clean for n in needs):
                    continue
                for rm in rx.finditer(clean):
                    if rm.end() > rm.start():
                        found.append(Match(idx, rm.start(), rm.end(), "regex", "clean"))
        if not found:
            mc[sid] = _NONE
            return _NONE
        if self._has_quotes[u]:
            found = [m for m in found if not self._quoted(u, m)]
        key = self.keys[u]
        out: list[Match] = []
        for m in found:
            item_ = pset.items[m.item]
            if item_.whole is not None and m.view == "key":
                is_whole = m.start == 0 and m.end == len(key)
                if item_.whole != is_whole:
                    continue
            if item_.unless_set is not None and self._covered(item_.unless_set, u, m):
                continue
            if pset.unless_set is not None and self._covered(pset.unless_set, u, m):
                continue
            if item_.allowed_hours is not None and not self._outside_hours(item_.allowed_hours):
                continue
            out.append(m)
        if len(out) > 1:
            out.sort(key=lambda x: (x.view, x.start, x.start - x.end))
            kept: list[Match] = []
            for x in out:
                if kept and kept[-1].view == x.view and x.start < kept[-1].end:
                    continue
                kept.append(x)
            out = kept
        mc[sid] = out
        return out

    def candidates(self, sid: int, us: list[int]) -> list[int]:
        """The utterances of `us` where set `sid` can match at all (the automata saw something)."""
        pset = self.checker.index.sets[sid]
        raw = self.raw
        if pset.unfiltered_regex:
            needs = pset.clean_needs_all
            if needs is None:
                return us
            cleans = self.cleans
            return [u for u in us if sid in raw[u] or any(n in cleans[u] for n in needs)]
        if sid not in self.sets_hit:
            return _NO_UTTS
        return [u for u in us if sid in raw[u]]

    def _quoted(self, u: int, m: Match) -> bool:
        """Is the match inside quotation marks (“这跟我们没关系”: the agent quoting someone)?"""
        ranges = self._quotes.get(u)
        if ranges is None:
            ranges = [(q.start(), q.end()) for q in _QUOTED.finditer(self.texts[u])]
            self._quotes[u] = ranges
        if not ranges:
            return False
        _, (s, e) = self.evidence(u, m)
        return any(a <= s and e <= b for a, b in ranges)

    def _covered(self, sid: int, u: int, m: Match) -> bool:
        if m.view != "key":
            return False
        for x in self.matches(sid, u):
            if x.start <= m.start and x.end >= m.end:
                return True
        return False

    def _outside_hours(self, hours: tuple[int, int]) -> bool:
        st = self.conv.started_at
        if st is None:
            return False
        minute = st.hour * 60 + st.minute
        lo, hi = hours
        inside = lo <= minute < hi if lo <= hi else (minute >= lo or minute < hi)
        return not inside

    def said(self, sid: int, us: list[int]) -> tuple[int, Match] | None:
        pset = self.checker.index.sets[sid]
        if pset.simple:
            # no exceptions, whole-utterance items, hours or regexes: the first raw hit is a match
            raw = self.raw
            for u in us:
                hits = raw[u].get(sid)
                if hits and not self._has_quotes[u]:
                    item, start, end, via = hits[0]
                    return u, Match(item, start, end, via, "key")
                if hits and self.matches(sid, u):
                    return u, self.matches(sid, u)[0]
            return None
        for u in self.candidates(sid, us):
            ms = self.matches(sid, u)
            if ms:
                return u, ms[0]
        return None

    # ---- evidence -------------------------------------------------------------------------------------

    def evidence(self, u: int, m: Match | None = None) -> tuple[str, tuple[int, int]]:
        text = self.texts[u]
        if m is None:
            return _trim(text), (0, len(text))
        mc = self._mc[u]  # the maps depend on the text alone: kept with the utterance's cached matches
        maps = mc.get(-1)
        if maps is None:
            maps = mc[-1] = normalize.maps_from_clean(text, self.cleans[u])
        mapping = maps[0] if m.view == "key" else maps[1]
        s, e = normalize.span_from_map(mapping, len(text), m.start, m.end)
        return text[s:e], (s, e)

    def utt_time(self, u: int | None) -> tuple[float | None, float | None]:
        if u is None:
            return None, None
        x = self.conv.utterances[u]
        return x.start, x.end

    def hit_at(self, u: int | None, m: Match | None = None, **kw: Any) -> Hit:
        start, end = self.utt_time(u)
        ev, span = (None, None) if u is None else self.evidence(u, m)
        return Hit(u, start, end, ev, span, **kw)

    # ---- scopes and windows -----------------------------------------------------------------------------

    @property
    def time_vars(self) -> dict[str, Any]:
        tv = self._time_vars
        if tv is None:
            st = self.conv.started_at
            tv = self._time_vars = {"time_of_day": st.strftime("%H:%M")} if st is not None else {}
        return tv

    def digit_key(self, u: int) -> str:
        """The key view with spoken digits as Arabic ones (幺三九 → 139), for read-back comparisons;
        kept with the utterance's cached matches (it depends on the text alone)."""
        mc = self._mc[u]
        got = mc.get(-2)
        if got is None:
            got = mc[-2] = self.keys[u].translate(_DIGITS_T)
        return got  # type: ignore[no-any-return]

    def word_count(self, u: int) -> int:
        """Characters that count for speech rate (CJK, letters, digits)."""
        return self._words[u]

    def speech_rate(self, role: str) -> tuple[float, float, float, list[tuple[float, int]]]:
        """(all speech seconds, seconds and units of the substantial turns, sorted per-turn rates)."""
        got = self._rates.get(role)
        if got is not None:
            return got
        utts = self.conv.utterances
        us = self.by_role[role]
        seconds = units = 0.0
        per_utt: list[tuple[float, int]] = []
        total = sum(utts[u].duration for u in us)
        for u in us:
            d = utts[u].duration
            n: float
            if self.has_text:
                n = self.word_count(u)
            else:
                syl = utts[u].attrs.get("syllables")
                if syl is None:
                    continue
                n = float(syl)
            if n < 3 or d < 1.0:
                continue  # "嗯", "好的": listening, not a sample of how the agent speaks
            seconds += d
            units += n
            if d >= 2.0:
                per_utt.append((n / d * 60, u))
        per_utt.sort()
        got = self._rates[role] = (total, seconds, units, per_utt)
        return got

    @property
    def time_order(self) -> list[int]:
        """Agent and customer utterances by start time (spoken order when the call is untimed)."""
        got = self._time_order
        if got is None:
            utts = self.conv.utterances
            got = self._time_order = sorted(self.by_role["any"], key=lambda i: utts[i].start or 0.0)
        return got

    def substantial(self, u: int) -> bool:
        """Not a short backchannel: at least a second long (when timed) and 3 characters (when transcribed)."""
        x = self.conv.utterances[u]
        if x.start is not None and x.end is not None and x.end - x.start < 1.0:
            return False
        return not (self.has_text and self.word_count(u) < 3)

    def role_utts(self, role: str) -> list[int]:
        """Utterances of a role that carry text (all of them when the call has no transcript)."""
        got = self._texted.get(role)
        if got is None:
            got = [u for u in self.by_role[role] if self.keys[u]] if self.has_text else self.by_role[role]
            self._texted[role] = got
        return got

    def scoped(self, role: str, scope: Scope | None) -> list[int]:
        us = self.role_utts(role)
        if scope is None:
            return us
        if scope.first_turns or scope.last_turns:
            turns = self._turns.get(role)
            if turns is None:
                turns = self._turns[role] = self.turns(us)
            if scope.first_turns:
                turns = turns[: scope.first_turns]
            if scope.last_turns:
                turns = turns[-scope.last_turns:]
            us = [u for t in turns for u in t]
        if scope.first_seconds or scope.last_seconds:
            if not self.timed:
                raise NotApplicable("缺少时间戳")
            if scope.first_seconds:
                t0 = min((x.start or 0.0) for x in self.conv.utterances)
                us = [u for u in us if (self.conv.utterances[u].start or 0.0) <= t0 + scope.first_seconds]
            if scope.last_seconds:
                t1 = max((x.end or 0.0) for x in self.conv.utterances)
                us = [u for u in us if (self.conv.utterances[u].end or 0.0) >= t1 - scope.last_seconds]
        return us

    def turns(self, us: list[int]) -> list[list[int]]:
        """Utterances of one role grouped into turns: ASR segments of one turn (timed, less than a second
        apart, nobody else speaking in between) are one turn."""
        utts = self.conv.utterances
        out: list[list[int]] = []
        timed = self.timed
        roles = self.roles
        for u in us:
            if out and timed:
                p = out[-1][-1]
                pe, us_ = utts[p].end, utts[u].start
                if pe is not None and us_ is not None and us_ - pe < 1.0 and (
                        u == p + 1 or not any(roles[i] in ("agent", "customer") and roles[i] != roles[u]
                                              for i in range(p + 1, u))):
                    out[-1].append(u)
                    continue
            out.append([u])
        return out

    def is_question(self, u: int) -> bool:
        c = self.cleans[u].rstrip(" 。.！!~～")
        return c.endswith(("？", "?")) or self.keys[u].endswith(("吗", "对吧", "是吧", "没错吧"))

    def window(self, pos: Pos, role: str, win: Window) -> list[int]:
        us = self.role_utts(role)
        if win.direction == "call":
            return us
        if win.seconds and not self.timed:
            raise NotApplicable("缺少时间戳")
        utts = self.conv.utterances
        if win.direction == "during":
            if pos.t is None or pos.end_t is None:
                return []
            return [u for u in us if utts[u].start is not None and pos.t <= utts[u].start < pos.end_t]  # type: ignore[operator]
        if win.direction == "after":
            if pos.u is not None:
                sel = [u for u in us if u > pos.u or (win.include_anchor and u == pos.u)]
            elif pos.t is not None:
                sel = [u for u in us if (utts[u].start or 0.0) >= pos.t - 0.05]
            else:
                sel = us
            if win.seconds and pos.t is not None:
                sel = [u for u in sel if (utts[u].start or 0.0) <= pos.t + win.seconds]
            if win.turns and win.skip_questions:
                kept, n = [], 0
                for u in sel:
                    if n >= win.turns:
                        break
                    kept.append(u)
                    if not self.is_question(u):
                        n += 1
                sel = kept
            elif win.turns:
                sel = sel[: win.turns]
            if win.before_turns and pos.u is not None:
                sel = [u for u in us if u < pos.u][-win.before_turns:] + sel
            return sel
        # before
        if pos.u is not None:
            sel = [u for u in us if u < pos.u or (win.include_anchor and u == pos.u)]
        elif pos.t is not None:
            sel = [u for u in us if (utts[u].end or utts[u].start or 0.0) <= pos.t + 0.05]
        else:
            sel = us
        if win.seconds and pos.t is not None:
            sel = [u for u in sel if (utts[u].end or 0.0) >= pos.t - win.seconds]
        return sel[-win.turns:] if win.turns else sel

    # ---- events -----------------------------------------------------------------------------------------

    def _infer_events(self) -> None:
        settings = self.checker.rulebook.settings
        utts = self.conv.utterances
        if settings.infer_holds.enabled and self.timed and not any(e.type == "hold" for e in self.events):
            sid = self.checker.hold_sid
            agent = self.by_role["agent"]
            candidates = set(self.candidates(sid, agent)) if sid is not None else set()
            back = settings.infer_holds.lookback_turns
            requests = {x for x in candidates if self.matches(sid, x)}  # type: ignore[arg-type]
            for k, (a, b) in enumerate(zip(agent, agent[1:], strict=False)):
                if requests and any(x in requests for x in agent[max(0, k - back + 1): k + 1]):
                    gap_start, gap_end = utts[a].end, utts[b].start
                    if gap_start is not None and gap_end is not None and \
                            gap_end - gap_start >= settings.infer_holds.min_gap_seconds:
                        self.events.append(Event(type="hold", start=gap_start, end=gap_end, inferred=True, utterance=a))
        csid = self.checker.customer_hold_sid
        if settings.infer_holds.enabled and self.timed and csid is not None:
            order = self.time_order
            for a, b in zip(order, order[1:], strict=False):
                if self.roles[a] == "customer" and csid in self.raw[a] and self.matches(csid, a):
                    gap_start, gap_end = utts[a].end, utts[b].start
                    if gap_start is not None and gap_end is not None and \
                            gap_end - gap_start >= settings.infer_holds.min_gap_seconds:
                        self.events.append(Event(type="customer_hold", start=gap_start, end=gap_end, inferred=True,
                                                 utterance=a))
        if settings.infer_transfers.enabled and not any(e.type == "transfer" for e in self.events):
            sid = self.checker.transfer_sid
            if sid is not None:
                for a in self.candidates(sid, self.by_role["agent"]):
                    if self.matches(sid, a):
                        self.events.append(Event(type="transfer", at=utts[a].end, inferred=True, utterance=a))
        self.events.sort(key=lambda e: (e.at if e.at is not None else float("inf")))

    def event_pos(self, ev: Event, edge: str = "end") -> Pos:
        """Where a window around an event starts: its time when the call is timed, else its utterance."""
        t = ev.end if (edge == "end" and ev.end is not None) else (ev.start if ev.start is not None else ev.at)
        if ev.utterance is not None and (edge == "start" or t is None or not self.timed):
            return Pos(ev.utterance, t, ev.end, None)
        return Pos(None, t, ev.end, None)

    def utterance_before(self, t: float | None) -> int | None:
        """The last utterance that starts at or before time t (the evidence for a timed event)."""
        if t is None:
            return None
        best = None
        for i, x in enumerate(self.conv.utterances):
            if x.start is not None and x.start <= t + 0.05:
                best = i
        return best


def _trim(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Compiled:
    rule: Any
    sid: int | None = None
    near_sid: int | None = None
    groups: dict[str, int] = field(default_factory=dict)
    steps: list[tuple[str, int]] = field(default_factory=list)
    trigger_sid: int | None = None
    slots: list[tuple[str, int, int]] = field(default_factory=list)
    cond_sids: dict[int, int] = field(default_factory=dict)  # id(condition) -> sid
    backchannel: re.Pattern[str] | None = None  # overlap: utterances made only of these are listening
    run: Any = None  # the kind's evaluator, bound once
    plain: bool = False  # no applicability conditions
    text_kind: bool = False
    all_hours: bool = False  # every phrase has allowed_hours: needs started_at
    unfiltered: bool = False  # the phrase set has a regex that runs on every utterance


class Checker:
    """A rulebook compiled for checking. Build once, call `check` for each conversation."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook
        self.index = PhraseIndex()
        self.compiled: dict[str, _Compiled] = {}
        needed = {r.id for r in rulebook.rules if r.enabled}
        by_id = {r.id: r for r in rulebook.rules}
        stack = list(needed)
        while stack:  # disabled rules still run when an enabled rule depends on them
            for ref in rule_refs(by_id[stack.pop()]):
                if ref not in needed:
                    needed.add(ref)
                    stack.append(ref)
        self.order = self._order([r for r in rulebook.rules if r.id in needed])
        for r in self.order:
            self.compiled[r.id] = self._compile(r)
        self._sequence = [self.compiled[r.id] for r in self.order]
        for c in self._sequence:
            app = c.rule.applies
            c.plain = (app.channels is None and app.directions is None and app.min_turns is None and not app.when
                       and not app.unless)
            c.text_kind = c.rule.kind in _TEXT_KINDS
            if c.sid is not None:
                pset = self.index.sets[c.sid]
                c.all_hours = bool(pset.items) and all(i.allowed_hours for i in pset.items)
                c.unfiltered = pset.unfiltered_regex
        self._shown = {r.id for r in self.order if r.enabled}
        self._rulebook_ref = {"name": rulebook.name, "version": rulebook.version}
        s = rulebook.settings
        self.hold_sid = self.index.add(list(s.infer_holds.phrases), role="agent") if s.infer_holds.phrases else None
        self.customer_hold_sid = (self.index.add(list(s.infer_holds.customer_phrases), role="customer")
                                  if s.infer_holds.customer_phrases else None)
        self.transfer_sid = (self.index.add(list(s.infer_transfers.phrases), role="agent")
                             if s.infer_transfers.phrases else None)
        self.index.build()
        self._utt_cache: dict[tuple[str, str], tuple[str, str, int, dict[int, list[Any]], dict[int, Any]]] = {}
        card = rulebook.scorecard
        self.fatal = set(card.fatal)

    _CACHE_MAX = 200_000

    def clear_cache(self) -> None:
        """Forget the normalised utterances (benchmarks start each repetition cold)."""
        self._utt_cache.clear()

    @property
    def cache_size(self) -> int:
        return len(self._utt_cache)

    def prepare(self, texts: list[str], roles: Sequence[str]
                ) -> tuple[list[str], list[str], list[int], list[dict[int, list[Any]]], list[dict[int, Any]]]:
        """Normalised views, word counts and raw phrase hits of a call's utterances.

        Call centers repeat themselves ("您好，请问有什么可以帮您？", "好的", "嗯"): each distinct
        (text, role) is normalised and scanned once per checker and then looked up. The cached hit lists are
        never modified.
        """
        cache = self._utt_cache
        n = len(texts)
        cleans: list[str] = [""] * n
        keys: list[str] = [""] * n
        words: list[int] = [0] * n
        raw: list[dict[int, list[Any]]] = [_EMPTY_RAW] * n
        mcs: list[dict[int, Any]] = [_EMPTY_RAW] * n
        miss: list[int] = []
        for i in range(n):
            got = cache.get((texts[i], roles[i]))
            if got is None:
                miss.append(i)
            else:
                cleans[i], keys[i], words[i], raw[i], mcs[i] = got
        if miss:
            m_texts = [texts[i] for i in miss]
            m_roles = [roles[i] for i in miss]
            c2, k2, w2 = normalize.views_many(m_texts)
            r2 = self.index.scan_many(k2, m_roles)
            if len(cache) + len(miss) > self._CACHE_MAX:
                cache.clear()
            for j, i in enumerate(miss):
                entry = cache.get((texts[i], roles[i]))  # the same text twice in one call
                if entry is None:
                    entry = cache[(texts[i], roles[i])] = (c2[j], k2[j], w2[j], r2[j], {})
                cleans[i], keys[i], words[i], raw[i], mcs[i] = entry
        return cleans, keys, words, raw, mcs

    @staticmethod
    def _order(rules: list[Any]) -> list[Any]:
        ids = {r.id for r in rules}
        done: set[str] = set()
        out: list[Any] = []
        by_id = {r.id: r for r in rules}

        def visit(r: Any, path: tuple[str, ...]) -> None:
            if r.id in done:
                return
            if r.id in path:
                raise ValueError(f"rules depend on each other in a cycle: {' → '.join(path + (r.id,))}")
            for ref in rule_refs(r):
                if ref in ids:
                    visit(by_id[ref], path + (r.id,))
            done.add(r.id)
            out.append(r)

        for r in rules:
            visit(r, ())
        return out

    def _phrases(self, phrases: Phrases, rule: Any, role: str | None = None, **kw: Any) -> int:
        return self.index.add(list(phrases), pinyin=getattr(rule, "pinyin", False),
                              pinyin_min_len=getattr(rule, "pinyin_min_len", 3), role=role or rule.role, **kw)

    def _compile(self, r: Any) -> _Compiled:
        c = _Compiled(r)
        c.run = getattr(self, "_k_" + r.kind)
        kind = r.kind
        if kind in ("phrase", "count") and r.phrases:
            c.sid = self._phrases(r.phrases, r, unless=list(r.unless))
        if kind == "phrase" and r.unless_near:
            c.near_sid = self.index.add(list(r.unless_near), role=r.role)
        if kind in ("required", "event"):
            if r.phrases:
                c.groups = {"": self._phrases(r.phrases, r)}
            else:
                c.groups = {name: self._phrases(p, r) for name, p in r.groups.items()}
        if kind == "conditional":
            then = r.then
            if then.phrases:
                c.groups = {"": self._phrases(then.phrases, r, then.role)}
            elif then.groups:
                c.groups = {name: self._phrases(p, r, then.role) for name, p in then.groups.items()}
        if kind == "sequence":
            c.steps = [(st.name, self._phrases(st.phrases, r)) for st in r.steps]
        if kind == "overlap" and r.unless:
            words = sorted({normalize.key(w) for w in r.unless if normalize.key(w)}, key=len, reverse=True)
            c.backchannel = re.compile("(?:" + "|".join(map(re.escape, words)) + ")+") if words else None
        if kind == "repeat_ask":
            c.slots = [(sl.name, self._phrases(sl.given, r, "customer"), self._phrases(sl.ask, r)) for sl in r.slots]
        trig: Trigger | None = getattr(r, "after", None) or getattr(r, "anchor", None) or getattr(r, "if_", None)
        if trig is not None and trig.said is not None:
            c.trigger_sid = self.index.add(list(trig.said.phrases), pinyin=getattr(r, "pinyin", False),
                                           role=trig.said.role)
        for cond in r.applies.when + r.applies.unless:
            if cond.said is not None:
                c.cond_sids[id(cond)] = self.index.add(list(cond.said.phrases), role=cond.said.role)
        return c

    # ---- checking ---------------------------------------------------------------------------------------

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
                fired[rid] = _NO_HITS
        shown = self._shown if select is None and ignore is None else \
            {r.id for r in self.order if r.enabled and _rule_selected(r.id, select, ignore)}
        if len(shown) != len(self.order):
            na = {k: v for k, v in na.items() if k in shown}
        findings: list[Finding] = []
        events: list[EventHit] = []
        for c in self._sequence:
            hits = fired[c.rule.id]
            if not hits or c.rule.id not in shown:
                continue
            r = c.rule
            for h in hits:
                vars_ = _Vars(h.vars)
                vars_.setdefault("evidence", h.evidence or "")
                vars_.setdefault("time", _fmt_time(h.start))
                if r.severity == "event":
                    events.append(EventHit(r.id, r.name, h.utterance, h.start, h.evidence, h.span))
                else:
                    findings.append(Finding(r.id, r.name, r.severity, 0.0, h.utterance, h.start, h.end, h.evidence,
                                            r.message.format_map(vars_), h.suggestion or r.suggest, None, h.span,
                                            h.via))
        findings.sort(key=_finding_order)
        events.sort(key=_finding_order)
        report = Report(
            call_id=conv.id, rulebook=dict(self._rulebook_ref), score=0.0, grade="", fatal=False, dimensions={},
            findings=findings, events=events, not_applicable=na, conversation=conv, notes=list(conv.notes),
        )
        score_report(report, self.rulebook)
        return report

    def _run(self, c: _Compiled, ctx: Context) -> list[Hit]:
        if c.plain:  # no applicability conditions: straight to the kind
            if c.text_kind and not ctx.has_text:
                raise NotApplicable("没有转写文本（录音未做语音识别）")
            return c.run(c, ctx)  # type: ignore[no-any-return]
        r = c.rule
        conv = ctx.conv
        app = r.applies
        if app.channels is not None and (conv.channel or "phone") not in app.channels:
            raise NotApplicable(f"仅适用于渠道 {'、'.join(app.channels)}")
        if app.directions is not None and (conv.direction or "inbound") not in app.directions:
            raise NotApplicable("仅适用于" + "、".join(_DIRECTION[d] for d in app.directions) + "通话")
        if r.kind in _TEXT_KINDS and not ctx.has_text:
            raise NotApplicable("没有转写文本（录音未做语音识别）")
        if app.min_turns is not None and len(ctx.by_role["customer"]) < app.min_turns:
            raise NotApplicable(f"客户发言少于 {app.min_turns} 句")
        for cond in app.when:
            ok = self._cond(cond, c, ctx)
            if ok is None:
                raise NotApplicable(f"缺少 {cond.field}")
            if not ok:
                raise NotApplicable(_cond_text(cond, negate=True))
        hits: list[Hit] = c.run(c, ctx)
        if hits and app.unless:
            exempt = all(self._cond(cond, c, ctx) for cond in app.unless)
            if exempt:
                return []
        return hits

    def _cond(self, cond: Condition, c: _Compiled, ctx: Context) -> bool | None:
        if cond.fired is not None:
            return bool(ctx.fired.get(cond.fired))
        if cond.not_fired is not None:
            return not ctx.fired.get(cond.not_fired)
        if cond.said is not None:
            sid = c.cond_sids[id(cond)]
            return ctx.said(sid, ctx.role_utts(cond.said.role)) is not None
        assert cond.field is not None and cond.op is not None
        value = measure(ctx, cond.field)
        if value is None:
            # an unknown value is not equal to anything: "ended_by != system" holds when ended_by is unknown
            return True if cond.op in ("!=", "not in") else None
        return compare(value, cond.op, cond.value)

    # ---- trigger positions -----------------------------------------------------------------------------

    def _positions(self, c: _Compiled, ctx: Context, trig: Trigger) -> list[Pos]:
        if trig.rule is not None:
            return [Pos(h.utterance, h.start, h.end, h.evidence, None, h.span) for h in ctx.fired.get(trig.rule, [])]
        if trig.event is not None:
            return [ctx.event_pos(e, trig.edge) for e in ctx.events if e.type == trig.event]
        assert trig.said is not None and c.trigger_sid is not None
        out = []
        for u in ctx.candidates(c.trigger_sid, ctx.role_utts(trig.said.role)):
            ms = ctx.matches(c.trigger_sid, u)
            if ms:
                m = ms[0]
                k = ctx.keys[u][m.start:m.end] if m.view == "key" else normalize.key_of_clean(ctx.cleans[u][m.start:m.end])
                out.append(Pos(u, ctx.conv.utterances[u].start, ctx.conv.utterances[u].end, None, k, None, m))
        return out

    @staticmethod
    def _groups_missing(c: _Compiled, ctx: Context, us: list[int], need: str | int) -> list[str]:
        missing = [name for name, sid in c.groups.items() if ctx.said(sid, us) is None]
        total = len(c.groups)
        if need == "all":
            return missing
        if need == "any":
            return missing if len(missing) == total else []
        return missing if total - len(missing) < int(need) else []

    # ---- kinds ------------------------------------------------------------------------------------------

    def _k_phrase(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        if c.all_hours and ctx.conv.started_at is None:
            raise NotApplicable("缺少 started_at")
        sid = c.sid
        if sid is not None and sid not in ctx.sets_hit and not c.unfiltered and not (r.attrs and ctx.any_attrs):
            return []  # none of its phrases occurs anywhere in the call
        pset = self.index.sets[sid] if sid is not None else None
        hits: list[Hit] = []
        us = ctx.scoped(r.role, r.scope)
        role_us = ctx.role_utts(r.role)
        base_vars = ctx.time_vars
        check_us = ctx.candidates(c.sid, us) if c.sid is not None else []
        if r.attrs and ctx.any_attrs:
            with_attrs = [u for u in us if ctx.conv.utterances[u].attrs]
            check_us = sorted(set(check_us) | set(with_attrs))
        for u in check_us:
            if c.sid is not None:
                for m in ctx.matches(c.sid, u):
                    item = pset.items[m.item]  # type: ignore[union-attr]
                    if c.near_sid is not None or item.near_set is not None:
                        pos = role_us.index(u) if u in role_us else 0
                        near = role_us[pos: pos + 1 + r.near_turns]
                        if c.near_sid is not None and ctx.said(c.near_sid, near) is not None:
                            continue
                        if item.near_set is not None and ctx.said(item.near_set, near) is not None:
                            continue
                    hits.append(ctx.hit_at(u, m, suggestion=item.suggest, via=m.via, vars=dict(base_vars)))
            if r.attrs:
                attrs = ctx.conv.utterances[u].attrs
                for name, values in r.attrs.items():
                    v = attrs.get(name)
                    if v is not None and str(v).lower() in {x.lower() for x in values}:
                        if not any(h.utterance == u for h in hits):
                            hits.append(ctx.hit_at(u, None, via="attr", vars={name: v}))
        return hits

    def _k_required(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        if r.after is not None:
            positions = self._positions(c, ctx, r.after)
            if not positions:
                raise NotApplicable(_trigger_text(r.after, absent=True))
            win = r.window or Window(direction="after")
            hits = []
            for pos in positions:
                us = ctx.window(pos, r.role, win)
                if r.scope is not None:
                    allowed = set(ctx.scoped(r.role, r.scope))
                    us = [u for u in us if u in allowed]
                missing = self._groups_missing(c, ctx, us, r.need)
                if missing:
                    u = us[0] if us else pos.u
                    hits.append(ctx.hit_at(u, None, vars={"missing": "、".join(m for m in missing if m)}))
                if not win.turns and not win.seconds:
                    break  # the rest of the call: the first trigger decides
            return hits
        us = ctx.scoped(r.role, r.scope)
        if not us:
            raise NotApplicable(f"{_ROLE[r.role]}没有发言")
        missing = self._groups_missing(c, ctx, us, r.need)
        if not missing:
            return []
        # a closing check points at the last turn, an opening check at the first
        u = us[-1] if r.scope is not None and r.scope.last_turns else us[0]
        return [ctx.hit_at(u, None, vars={"missing": "、".join(m for m in missing if m)})]

    def _k_sequence(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        positions = [Pos(None, None)] if r.anchor is None else self._positions(c, ctx, r.anchor)
        if not positions:
            raise NotApplicable(_trigger_text(r.anchor, absent=True))
        hits = []
        for pos in positions:
            us = ctx.scoped(r.role, r.scope) if r.anchor is None else ctx.window(pos, r.role, r.window)
            missing: list[str] = []
            cursor = (-1, -1)
            for name, sid in c.steps:
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
                    anchor_u = ctx.utterance_before(pos.t)
                h = ctx.hit_at(anchor_u, None, vars={"missing": "、".join(missing)})
                if pos.t is not None:
                    h.start = pos.t
                    h.end = pos.end_t if pos.end_t is not None else h.end
                hits.append(h)
        return hits

    def _k_conditional(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        positions = self._positions(c, ctx, r.if_)
        if not positions:
            raise NotApplicable(_trigger_text(r.if_, absent=True))
        then = r.then
        hits = []
        covered: set[int] = set()  # utterances inside the window of a trigger already reported
        for pos in positions:
            if pos.u is not None and pos.u in covered:
                continue
            us = ctx.window(pos, then.role, r.window)
            ok = False
            if c.groups:
                ok = not self._groups_missing(c, ctx, us, then.need)
            if not ok and then.echo and pos.key:
                said = pos.key.translate(_DIGITS_T)
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
                h = ctx.hit_at(pos.u, None, vars={"trigger": pos.evidence or ""})
                if pos.evidence:
                    h.evidence, h.span = pos.evidence, pos.span
                hits.append(h)
                if us:
                    covered.update(range(pos.u if pos.u is not None else us[0], us[-1] + 1))
            if not r.window.turns and not r.window.seconds and r.window.direction in ("after", "call"):
                break  # unbounded window: the first trigger decides
        return hits

    def _k_count(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        assert c.sid is not None
        found: list[tuple[int, Match]] = []
        us = ctx.role_utts(r.role)
        for u in ctx.candidates(c.sid, us):
            for m in ctx.matches(c.sid, u):
                found.append((u, m))
        count: float = len(found)
        if r.per == "minute":
            if not ctx.timed:
                raise NotApplicable("缺少时间戳")
            minutes = sum(ctx.conv.utterances[u].duration for u in us) / 60
            if minutes <= 0:
                raise NotApplicable(f"{_ROLE[r.role]}没有发言")
            count = count / minutes
        too_many = r.max is not None and count > r.max
        too_few = r.min is not None and count < r.min
        if not (too_many or too_few):
            return []
        words = "、".join(dict.fromkeys(ctx.evidence(u, m)[0] for u, m in found[:12]))  # only when firing
        vars_ = {"count": round(count, 1) if r.per == "minute" else int(count), "max": r.max, "min": r.min,
                 "words": words}
        if too_many and found:
            u, m = found[0]
            h = ctx.hit_at(u, m, vars=vars_)
            h.evidence = words
            return [h]
        return [Hit(None, None, None, words or None, None, vars=vars_)]

    def _k_silence(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        utts = ctx.conv.utterances
        order = ctx.time_order
        if not order:
            raise NotApplicable("无人发言")
        covers = [(e.start, e.end) for e in ctx.events if e.type in r.exclude_events and e.start is not None
                  and e.end is not None]
        points = [e.at for e in ctx.events if e.type in r.exclude_events and e.end is None and e.at is not None]
        hits = []
        last_end = utts[order[0]].end or 0.0
        gaps: list[tuple[float, float, int | None]] = []
        if r.edges and (utts[order[0]].start or 0.0) >= r.min_seconds:
            gaps.append((0.0, utts[order[0]].start or 0.0, order[0]))
        for i in order[1:]:
            s = utts[i].start or 0.0
            if s - last_end >= r.min_seconds:
                gaps.append((last_end, s, i))
            last_end = max(last_end, utts[i].end or 0.0)
        for gs, ge, u in gaps:
            if any(gs - 1 <= p <= ge + 1 for p in points):
                continue  # a transfer happened in the gap
            covered = sum(max(0.0, min(ge, b) - max(gs, a)) for a, b in covers)  # type: ignore[type-var,operator]
            dead = (ge - gs) - covered  # a hold covers part of the gap: only the rest is dead air
            if dead < r.min_seconds:
                continue
            h = Hit(u, round(gs, 2), round(ge, 2), f"静音 {dead:.1f} 秒", None, vars={"seconds": round(dead, 1)})
            hits.append(h)
        return hits

    def _k_overlap(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
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
            if c.backchannel is not None and c.backchannel.fullmatch(ctx.keys[u]):
                continue  # only backchannels ("嗯，好的") while the customer talks: listening, not cutting in
            h = ctx.hit_at(u, None, vars={"seconds": round(best, 1)})
            h.end = round(us + best, 2)
            hits.append(h)
        return hits

    def _k_monologue(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        utts = ctx.conv.utterances
        # when the responder said anything (even "嗯" over a long ASR segment of the speaker)
        responses = sorted(utts[i].start or 0.0 for i in ctx.by_role[r.responder])
        hits = []
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

    def _k_rate(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        total, seconds, units, per_utt = ctx.speech_rate(r.role)
        if total < r.min_speech_seconds or seconds < min(5.0, r.min_speech_seconds):
            raise NotApplicable(f"{_ROLE[r.role]}说话不足 {r.min_speech_seconds:g} 秒")
        rate = units / seconds * 60
        fast = r.max is not None and rate > r.max
        slow = r.min is not None and rate < r.min
        if not (fast or slow):
            return []
        vars_ = {"value": round(rate), "max": r.max, "min": r.min}
        if per_utt:
            u = per_utt[-1][1] if fast else per_utt[0][1]
            return [ctx.hit_at(u, None, vars=vars_)]
        return [Hit(None, None, None, None, None, vars=vars_)]

    def _k_metric(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        if r.measure == "response_delay":
            return self._sla(c, ctx)
        if r.measure.startswith("attr:"):
            name = r.measure[5:]
            vals = [(float(ctx.conv.utterances[u].attrs[name]), u) for u in ctx.by_role[r.role]
                    if isinstance(ctx.conv.utterances[u].attrs.get(name), int | float) and ctx.substantial(u)]
            if len(vals) < r.min_count:
                raise NotApplicable(f"需要录音测得的 {name}（至少 {r.min_count} 句{_ROLE[r.role]}语音）")
            nums = [v for v, _ in vals]
            value = float({"median": median(nums), "mean": mean(nums), "max": max(nums), "min": min(nums)}[r.agg])
            if not self._violates(r, value):
                return []
            # point at the utterance furthest out in the violating direction
            high = self._high_side(r, value)
            vals.sort()
            u = vals[-1][1] if high else vals[0][1]
            return [ctx.hit_at(u, None, vars={"value": round(value, 1)})]
        value = measure(ctx, r.measure)
        if value is None:
            raise NotApplicable(f"缺少 {r.measure}")
        if not self._violates(r, value):
            return []
        return [Hit(None, None, None, f"{r.measure}: {_round(value)}", None, vars={"value": _round(value)})]

    @staticmethod
    def _violates(r: Any, value: Any) -> bool:
        if r.outside is not None:
            return bool(value < r.outside[0] or value > r.outside[1])
        return compare(value, r.op, r.value)

    @staticmethod
    def _high_side(r: Any, value: float) -> bool:
        if r.outside is not None:
            return bool(value > r.outside[1])
        return r.op in (">", ">=")

    def _sla(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        conv = ctx.conv
        if conv.channel is None or conv.channel not in r.limits:
            raise NotApplicable(f"仅适用于渠道 {'、'.join(r.limits)}")
        if conv.received_at is None or conv.first_response_at is None:
            raise NotApplicable("缺少 received_at 或 first_response_at")
        limit = r.limits[conv.channel]
        deadline = add_limit(conv.received_at, limit)
        if conv.first_response_at <= deadline:
            return []
        late = conv.first_response_at - conv.received_at
        hours = late.total_seconds() / 3600
        return [Hit(None, None, None, f"{hours:.1f} 小时后首次回复", None,
                    vars={"value": f"{hours:.1f}", "limit": limit, "channel": conv.channel})]

    def _k_event(self, c: _Compiled, ctx: Context) -> list[Hit]:
        r = c.rule
        evs = [e for e in ctx.events if e.type == r.event]
        if not evs:
            raise NotApplicable(f"本通没有{_EVENT.get(r.event, r.event)}")
        hits = []
        for e in evs:
            if r.min_seconds is not None:
                d = e.duration
                if d is None or d <= r.min_seconds:
                    continue
            pos = ctx.event_pos(e, "start" if r.window.direction in ("before", "during") else "end")
            if r.window.direction == "during":
                pos = Pos(pos.u, e.start, e.end)
            us = ctx.window(pos, r.role, r.window)
            missing = self._groups_missing(c, ctx, us, r.need) if c.groups else []
            if c.groups and not missing:
                continue
            u = e.utterance if e.utterance is not None else ctx.utterance_before(e.start if e.start is not None else e.at)
            h = ctx.hit_at(u, None, vars={"missing": "、".join(m for m in missing if m),
                                          "seconds": round(e.duration, 1) if e.duration is not None else ""})
            if e.start is not None or e.at is not None:
                h.start = e.start if e.start is not None else e.at
                h.end = e.end
            hits.append(h)
        return hits

    def _k_repeat_ask(self, c: _Compiled, ctx: Context) -> list[Hit]:
        hits = []
        cust = ctx.by_role["customer"]
        agent = ctx.role_utts(c.rule.role)
        for name, given_sid, ask_sid in c.slots:
            got = ctx.said(given_sid, cust)
            if got is None:
                continue
            g = got[0]
            # an ask right after the answer is the agent confirming it; look past the next agent turn
            later = [u for u in agent if u > g][1:]
            again = ctx.said(ask_sid, later)
            if again is not None:
                u, m = again
                hits.append(ctx.hit_at(u, m, vars={"slot": name, "given": ctx.evidence(g, got[1])[0]}))
        return hits


_TEXT_KINDS = {"phrase", "required", "sequence", "conditional", "count", "repeat_ask"}


def _finding_order(f: Finding | EventHit) -> tuple[int, str]:
    return (f.utterance if f.utterance is not None else -1, f.rule)


def _round(v: Any) -> Any:
    return round(v, 1) if isinstance(v, float) else v


_ROLE = {"agent": "坐席", "customer": "客户", "any": "双方"}
_DIRECTION = {"inbound": "呼入", "outbound": "外呼"}
_EVENT = {"hold": "等候", "transfer": "转接"}


def _cond_text(cond: Condition, negate: bool = False) -> str:
    if cond.fired:
        return f"仅在 {cond.fired} 触发时适用"
    if cond.not_fired:
        return f"仅在 {cond.not_fired} 未触发时适用"
    if cond.said:
        return f"仅在{_ROLE[cond.said.role]}说出特定语句时适用"
    return f"仅当 {cond.field} {cond.op} {cond.value} 时适用"


def _trigger_text(t: Trigger | None, absent: bool = False) -> str:
    if t is None:
        return "没有触发条件"
    if t.rule:
        return f"{t.rule} 未触发"
    if t.event:
        return f"本通没有{_EVENT.get(t.event, t.event)}"
    return "未出现触发语句"


def compare(value: Any, op: str | None, target: Any) -> bool:
    if op == ">":
        return bool(value > target)
    if op == ">=":
        return bool(value >= target)
    if op == "<":
        return bool(value < target)
    if op == "<=":
        return bool(value <= target)
    if op == "==":
        return bool(value == target)
    if op == "!=":
        return bool(value != target)
    if op == "in":
        return value in target
    if op == "not in":
        return value not in target
    raise ValueError(f"unknown operator {op!r}")


def measure(ctx: Context, name: str) -> Any:
    """Built-in measures and call fields for `metric` rules and conditions; None when unknown here."""
    conv = ctx.conv
    if name in ("ring_seconds", "ended_by", "channel", "direction"):
        return getattr(conv, name)
    if name.startswith("metrics:"):
        return conv.metrics.get(name[8:])
    if name.startswith("turns:"):
        return len(ctx.by_role.get(name[6:], []))
    if name == "customer_first_delay":
        # seconds from the end of the agent's first turn to the customer's first words (silent calls)
        agent, cust = ctx.by_role["agent"], ctx.by_role["customer"]
        if not agent:
            return None
        if not cust:
            return float("inf")
        if not ctx.timed:
            return None
        # the opening: the agent's first turn, with ASR segments less than a second apart joined
        utts = conv.utterances
        opening_end = utts[agent[0]].end or 0.0
        for a in agent[1:]:
            if (utts[a].start or 0.0) - opening_end >= 1.0:
                break
            opening_end = max(opening_end, utts[a].end or 0.0)
        t = utts[cust[0]].start or 0.0
        return max(0.0, t - opening_end)
    if name == "loudness_rise_db":
        return _loudness_rise(ctx)
    if name == "max_hold_seconds":
        ds = [e.duration for e in ctx.events if e.type == "hold" and e.duration is not None]
        return max(ds) if ds else None
    return getattr(conv, name, None) if name in Conversation.model_fields else conv.metrics.get(name)


def _loudness_rise(ctx: Context) -> float | None:
    """How many dB louder the agent gets right after an angry customer turn than the agent's median level."""
    utts = ctx.conv.utterances
    agent = [u for u in ctx.by_role["agent"] if isinstance(utts[u].attrs.get("loudness_dbfs"), int | float)]
    cust = [u for u in ctx.by_role["customer"] if isinstance(utts[u].attrs.get("loudness_dbfs"), int | float)]
    if len(agent) < 3:
        return None
    angry_hits = {h.utterance for h in ctx.fired.get("EVT004", []) if h.utterance is not None}
    cust_levels = [float(utts[u].attrs["loudness_dbfs"]) for u in cust]
    cust_median = median(cust_levels) if cust_levels else None
    angry = set()
    for u in ctx.by_role["customer"]:
        a = utts[u].attrs
        if str(a.get("emotion", "")).lower() == "angry" or u in angry_hits:
            angry.add(u)
        elif cust_median is not None and isinstance(a.get("loudness_dbfs"), int | float) and \
                a["loudness_dbfs"] >= cust_median + 6:
            angry.add(u)
    if not angry:
        return 0.0
    base = median(float(utts[u].attrs["loudness_dbfs"]) for u in agent)
    after = []
    for u in agent:
        prev_cust = [c for c in ctx.by_role["customer"] if c < u]
        if prev_cust and prev_cust[-1] in angry:
            after.append(float(utts[u].attrs["loudness_dbfs"]))
    if not after:
        return 0.0
    return max(after) - base


def add_limit(start: datetime, limit: str) -> datetime:
    """start + a limit like 2h, 30m, 3d or 1wd (working days, Monday–Friday)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(h|m|s|d|wd)", limit)
    if not m:
        raise ValueError(f"bad limit {limit!r}")
    n, unit = float(m.group(1)), m.group(2)
    if unit == "h":
        return start + timedelta(hours=n)
    if unit == "m":
        return start + timedelta(minutes=n)
    if unit == "s":
        return start + timedelta(seconds=n)
    if unit == "d":
        return start + timedelta(days=n)
    # working days: a request arriving at the weekend counts from Monday 00:00
    t = start
    while t.weekday() >= 5:
        t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    days = int(n)
    while days > 0:
        t += timedelta(days=1)
        if t.weekday() < 5:
            days -= 1
    return t
