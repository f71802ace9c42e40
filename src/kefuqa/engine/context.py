"""Per-conversation state: utterance views, phrase matches with exceptions applied, evidence, events and
the hits of the rules decided so far."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import normalize
from ..model import Conversation, Event
from ..rules.matcher import Match
from .events import infer_events
from .hits import Hit, trim
from .views import UtteranceView

if TYPE_CHECKING:
    from .checker import Checker

_NONE: list[Match] = []
_NO_UTTS: list[int] = []

_QUOTE_CHARS = re.compile("[“”「」『』\"]")
_QUOTED = re.compile("“[^”]*”|「[^」]*」|『[^』]*』|\"[^\"]*\"")
# spoken and ASR digits → Arabic, for comparing a number with its read-back
DIGITS_T = str.maketrans("零〇一幺二两三四五六七八九", "0011223456789")


_CLAUSE_STOPS = frozenset("，,。.！!？?；;：:、…~～ \t\n「」“”\"（）()")

class Context:
    """One conversation being checked. Kinds read it; the checker fills `fired` as rules are decided."""

    # True while a live call is checked on what has been said so far (kefuqa.live): the rest of the call is
    # still to come, so a judgement that may ask "the rest of the call" waits for it instead of standing alone
    live: bool = False

    def __init__(self, checker: Checker, conv: Conversation) -> None:
        self.checker = checker
        self.index = checker.index
        self.conv = conv
        utts = conv.utterances
        self.n = len(utts)
        self.roles = [u.role for u in utts]
        self.texts = [u.text or "" for u in utts]
        self.timed = conv.timed
        self.has_text = conv.has_text
        self.views: list[UtteranceView] = checker.prepare(self.texts, self.roles)
        views = self.views
        self.cleans = [v.clean for v in views]
        self.keys = [v.key for v in views]
        self.raw = [v.raw for v in views]
        self.sets_hit: set[int] = set().union(*self.raw) if self.raw else set()
        # per utterance: do quotation marks show (matches inside them are someone else's words)
        self.has_quotes = ([bool(_QUOTE_CHARS.search(t)) for t in self.texts]
                           if _QUOTE_CHARS.search("".join(self.cleans)) else [False] * self.n)
        self.any_attrs = any(u.attrs for u in utts)
        roles = self.roles
        self.by_role: dict[str, list[int]] = {
            "agent": [i for i, r in enumerate(roles) if r == "agent"],
            "customer": [i for i, r in enumerate(roles) if r == "customer"],
            "any": [i for i, r in enumerate(roles) if r == "agent" or r == "customer"],
        }
        self._hours_cache: dict[int, dict[int, list[Match]]] = {}
        self._time_order: list[int] | None = None
        self.turn_cache: dict[str, list[list[int]]] = {}
        self._texted: dict[str, list[int]] = {}
        self._time_vars: dict[str, Any] | None = None
        self._quotes: dict[int, list[tuple[int, int]]] = {}
        self.cache: dict[str, Any] = {}  # per-call values measures compute once (speech rate per role …)
        self.fired: dict[str, list[Hit]] = {}
        self.events: list[Event] = infer_events(self, list(conv.events))

    # ---- phrase matches ------------------------------------------------------------------------------

    def matches(self, sid: int, u: int) -> list[Match]:
        """Matches of phrase set `sid` in utterance `u`, exceptions applied, longest first, no overlaps."""
        view = self.views[u]
        got = view.matches.get(sid)  # most calls ask again what the view already knows
        if got is not None:
            return got
        raw = view.raw.get(sid)
        pset = self.index.sets[sid]
        if raw is None and not pset.unfiltered_regex:
            return _NONE
        # matches depend only on the utterance's text and role (and, for greetings, the call's hour):
        # they are kept with the view, which lives as long as the checker's cache of that utterance
        mc = view.matches if not pset.hour_dependent else self._hours_cache.setdefault(u, {})
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
            clean = view.clean
            # the regexes whose literal the automaton saw, and those without one, in the items' order (a
            # set has up to ~60 regexes, most prefiltered out): not a loop over every regex of the set
            todo = sorted(pre.union(pset.unfiltered_items)) if pre else pset.unfiltered_items
            for idx in todo:
                rx = pset.items[idx].regex
                assert rx is not None
                needs = pset.clean_needs.get(idx)
                if needs is not None and not any(n in clean for n in needs):
                    continue
                for rm in rx.finditer(clean):
                    if rm.end() > rm.start():
                        found.append(Match(idx, rm.start(), rm.end(), "regex", "clean"))
        if not found:
            mc[sid] = _NONE
            return _NONE
        if self.has_quotes[u]:
            found = [m for m in found if not self._quoted(u, m)]
        key = view.key
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
            if out[0].view != out[-1].view:  # both views: one phrase must not count twice
                out = self._one_per_span(u, out)
        mc[sid] = out
        return out

    def _one_per_span(self, u: int, found: list[Match]) -> list[Match]:
        """Matches of both views (a regex on the clean view, a literal on the key view) that cover the
        same words of the original text: the longer one is kept (the earlier one when as long), so the
        same phrase never yields two findings of one rule."""
        spans = [self.evidence(u, m)[1] for m in found]
        order = sorted(range(len(found)), key=lambda i: (spans[i][0] - spans[i][1], spans[i][0]))
        kept: list[int] = []
        for i in order:
            s, e = spans[i]
            if all(e <= spans[k][0] or s >= spans[k][1] for k in kept):
                kept.append(i)
        return [found[i] for i in sorted(kept, key=lambda i: spans[i])]

    def candidates(self, sid: int, us: list[int]) -> list[int]:
        """The utterances of `us` where set `sid` can match at all (the automata saw something)."""
        pset = self.index.sets[sid]
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
        """The first utterance of `us` that says a phrase of set `sid`, with the match."""
        pset = self.index.sets[sid]
        if pset.simple:
            # no exceptions, whole-utterance items, hours or regexes: the first raw hit is a match
            if sid not in self.sets_hit:
                return None  # the automata saw none of its phrases in this call
            raw = self.raw
            for u in us:
                hits = raw[u].get(sid)
                if hits and not self.has_quotes[u]:
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
        """The original words behind a match (or the whole utterance) and their character span."""
        text = self.texts[u]
        if m is None:
            return trim(text), (0, len(text))
        view = self.views[u]
        maps = view.maps
        if maps is None:
            maps = view.maps = normalize.maps_from_clean(text, view.clean)
        mapping = maps[0] if m.view == "key" else maps[1]
        s, e = normalize.span_from_map(mapping, len(text), m.start, m.end)
        return text[s:e], (s, e)

    def clause_at(self, u: int, span: tuple[int, int], reach: int = 12) -> tuple[str, tuple[int, int]]:
        """The clause of utterance `u` around `span` (to the nearest punctuation or space, at most `reach`
        characters further each way): a judgement is about what the clause says, so that is its evidence,
        not the two characters the model weighed most."""
        text = self.texts[u]
        s, e = span
        lo, hi = s, e
        while lo > 0 and s - lo < reach and text[lo - 1] not in _CLAUSE_STOPS:
            lo -= 1
        while hi < len(text) and hi - e < reach and text[hi] not in _CLAUSE_STOPS:
            hi += 1
        return text[lo:hi], (lo, hi)

    def utt_time(self, u: int | None) -> tuple[float | None, float | None]:
        if u is None:
            return None, None
        x = self.conv.utterances[u]
        return x.start, x.end

    def hit_at(self, u: int | None, m: Match | None = None, **kw: Any) -> Hit:
        start, end = self.utt_time(u)
        ev, span = (None, None) if u is None else self.evidence(u, m)
        return Hit(u, start, end, ev, span, **kw)

    def absence_at(self, u: int | None, **kw: Any) -> Hit:
        """A finding about something NOT said, placed on turn `u` (its time) without quoting or
        highlighting that turn: nothing in it is the fault, what is missing is in the message."""
        start, end = self.utt_time(u)
        return Hit(u, start, end, None, None, **kw)

    # ---- simple per-call views -----------------------------------------------------------------------

    @property
    def time_vars(self) -> dict[str, Any]:
        tv = self._time_vars
        if tv is None:
            st = self.conv.started_at
            tv = self._time_vars = {"time_of_day": st.strftime("%H:%M")} if st is not None else {}
        return tv

    def digit_key(self, u: int) -> str:
        """The key view with spoken digits as Arabic ones (幺三九 → 139), for read-back comparisons."""
        view = self.views[u]
        got = view.digit_key
        if got is None:
            got = view.digit_key = view.key.translate(DIGITS_T)
        return got

    def word_count(self, u: int) -> int:
        """Characters that count for speech rate (CJK, letters, digits)."""
        return self.views[u].words

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

    def judgements(self, judge: str, label: str, us: list[int]) -> list[Any]:
        """What judge `judge` says of `label` for each utterance of `us` (`Judgement` or `Undecided`), cached
        with the utterance views: a sentence the call center repeats is judged once per checker."""
        slot = ("intent", judge, label)
        out: list[Any] = [self.views[u].extra.get(slot) for u in us]
        missing = [k for k, j in enumerate(out) if j is None]
        if missing:
            got = self.checker.judges.get(judge).judge_many([self.texts[us[k]] for k in missing], label)
            for k, j in zip(missing, got, strict=True):
                out[k] = j
                if type(j).__name__ == "Judgement":  # an Undecided (endpoint down) is asked again next time
                    self.views[us[k]].extra[slot] = j
        return out

    def labelled(self, judge: str, label: str, us: list[int], threshold: float | None = None) -> int | None:
        """The first utterance of `us` the judge finds to be `label`, or None."""
        for u, j in zip(us, self.judgements(judge, label, us), strict=True):
            score = getattr(j, "score", None)
            if score is not None and score >= (threshold if threshold is not None else j.threshold):
                return u
        return None

    def is_question(self, u: int) -> bool:
        c = self.cleans[u].rstrip(" 。.！!~～")
        return c.endswith(("？", "?")) or self.keys[u].endswith(("吗", "对吧", "是吧", "没错吧"))
