"""One Aho-Corasick pass per utterance for every phrase of every rule.

Every phrase list a rulebook uses (a rule's phrases, an ``unless`` list, a group, a step …) becomes a
`PhraseSet` with an integer id. All literal phrases go into one automaton over the key view, and those
allowed to match by sound into a second automaton over the pinyin view (same offsets). Scanning an
utterance yields raw matches for all sets at once; rules then ask for the matches of their own sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

import ahocorasick

try:  # Python 3.11+
    import re._constants as sre_constants
    import re._parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

from .. import normalize
from .schema import PhraseItem

_HAS_CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff]")


class Match(NamedTuple):
    item: int  # index of the phrase inside its set
    start: int
    end: int  # exclusive
    via: str  # "exact", "pinyin" or "regex"
    view: str  # "key" or "clean": which view start/end refer to


# A raw hit from the automata: (item, start, end, via). via "pre" marks the literal that a regex needs,
# so the regex only runs on utterances that contain it.
Raw = tuple[int, int, int, str]


def regex_literal(pattern: str) -> str | None:
    """The longest literal run a regex cannot match without (top level only), if it is plain word text."""
    try:
        parsed = sre_parse.parse(pattern)
    except Exception:  # noqa: BLE001 - a bad pattern is reported by the schema, not here
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    best, run = "", ""
    for op, arg in parsed:
        if op is sre_constants.LITERAL:
            run += chr(arg)  # type: ignore[arg-type]
            continue
        if op in (sre_constants.AT,):
            continue
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            lo, _hi, sub = arg  # type: ignore[misc]
            if lo >= 1 and len(sub) == 1 and sub[0][0] is sre_constants.LITERAL:
                run += chr(sub[0][1])  # "喂+" needs one 喂
            best, run = max(best, run, key=len), ""
            continue
        best, run = max(best, run, key=len), ""
    best = max(best, run, key=len)
    if not best or normalize.key(best) != best:
        return None  # punctuation or a stutter: not visible in the key view as written
    return best


@dataclass
class Item:
    text: str  # as written in the rule (for messages and docs)
    key: str | None
    regex: re.Pattern[str] | None
    suggest: str | None
    whole: bool | None
    pinyin: bool
    unless_set: int | None
    near_set: int | None
    allowed_hours: tuple[int, int] | None  # minutes of the day [from, to)


@dataclass
class PhraseSet:
    id: int
    items: list[Item]
    unless_set: int | None = None
    regex_items: list[int] = field(default_factory=list)
    # regex items with a literal they need (registered in the automaton as a "pre" hit)
    prefiltered: set[int] = field(default_factory=set)
    # some regex item has no such literal: it must run on every utterance
    unfiltered_regex: bool = False


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class PhraseIndex:
    def __init__(self) -> None:
        self.sets: list[PhraseSet] = []
        self._exact: dict[str, int] = {}
        self._exact_consumers: list[list[tuple[int, int, str]]] = []
        self._exact_len: list[int] = []
        self._py: dict[str, int] = {}
        self._py_consumers: list[list[tuple[int, int, str]]] = []
        self._py_len: list[int] = []
        self._auto: ahocorasick.Automaton | None = None
        self._auto_py: ahocorasick.Automaton | None = None
        self._dedupe: dict[tuple[object, ...], int] = {}

    # ---- building -------------------------------------------------------------------------------------

    def add(self, phrases: list[str | PhraseItem], *, pinyin: bool = False, pinyin_min_len: int = 3,
            unless: list[str] | None = None) -> int:
        """Register a phrase list; returns its set id. Identical lists share one set."""
        sig = (tuple(p if isinstance(p, str) else p.model_dump_json() for p in phrases), pinyin, pinyin_min_len,
               tuple(unless or ()))
        if sig in self._dedupe:
            return self._dedupe[sig]
        sid = len(self.sets)
        pset = PhraseSet(sid, [])
        self.sets.append(pset)
        self._dedupe[sig] = sid
        if unless:
            pset.unless_set = self.add(list(unless))
        for p in phrases:
            item = p if isinstance(p, PhraseItem) else PhraseItem(text=p)
            use_py = item.pinyin if item.pinyin is not None else pinyin
            unless_set = self.add(list(item.unless)) if item.unless else None
            near_set = self.add(list(item.unless_near)) if item.unless_near else None
            hours = None
            if item.allowed_hours:
                a, b = item.allowed_hours.split("-")
                hours = (_minutes(a), _minutes(b))
            if item.regex is not None:
                idx = len(pset.items)
                pset.regex_items.append(idx)
                pset.items.append(Item(item.regex, None, re.compile(item.regex), item.suggest, item.whole, False,
                                       unless_set, near_set, hours))
                lit = regex_literal(item.regex)
                if lit:
                    self._register(lit, sid, idx, pinyin=False, pre=True)
                    pset.prefiltered.add(idx)
                else:
                    pset.unfiltered_regex = True
                continue
            assert item.text is not None
            k = normalize.key(item.text)
            if not k:
                continue  # punctuation only: nothing to match
            idx = len(pset.items)
            py_ok = use_py and len(k) >= pinyin_min_len and bool(_HAS_CJK.search(k))
            pset.items.append(Item(item.text, k, None, item.suggest, item.whole, py_ok, unless_set, near_set, hours))
            self._register(k, sid, idx, pinyin=False)
            if py_ok:
                self._register(normalize.pinyin_key(k), sid, idx, pinyin=True)
        return sid

    def _register(self, pattern: str, sid: int, idx: int, *, pinyin: bool, pre: bool = False) -> None:
        table, consumers, lengths = (
            (self._py, self._py_consumers, self._py_len) if pinyin else (self._exact, self._exact_consumers, self._exact_len)
        )
        pid = table.get(pattern)
        if pid is None:
            pid = len(consumers)
            table[pattern] = pid
            consumers.append([])
            lengths.append(len(pattern))
        consumers[pid].append((sid, idx, "pre" if pre else ("pinyin" if pinyin else "exact")))

    def build(self) -> None:
        self._auto = _automaton(self._exact)
        self._auto_py = _automaton(self._py) if self._py else None

    @property
    def pattern_count(self) -> int:
        return len(self._exact)

    # ---- scanning -------------------------------------------------------------------------------------

    def scan(self, key: str) -> dict[int, list[Raw]]:
        """Raw literal, pinyin and regex-prefilter hits of every set in one utterance's key view."""
        out: dict[int, list[Raw]] = {}
        auto = self._auto
        if auto is None or not key:
            return out
        lengths = self._exact_len
        consumers = self._exact_consumers
        for end, pid in auto.iter(key):
            start = end - lengths[pid] + 1
            for sid, idx, via in consumers[pid]:
                lst = out.get(sid)
                if lst is None:
                    out[sid] = [(idx, start, end + 1, via)]
                else:
                    lst.append((idx, start, end + 1, via))
        if self._auto_py is not None and _HAS_CJK.search(key):
            pkey = normalize.pinyin_key(key)
            if pkey != key:
                plen = self._py_len
                pcons = self._py_consumers
                sets = self.sets
                for end, pid in self._auto_py.iter(pkey):
                    start = end - plen[pid] + 1
                    for sid, idx, _ in pcons[pid]:
                        if key[start:end + 1] == sets[sid].items[idx].key:
                            continue  # already an exact match
                        out.setdefault(sid, []).append((idx, start, end + 1, "pinyin"))
        return out


def _automaton(patterns: dict[str, int]) -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton()
    for pattern, pid in patterns.items():
        auto.add_word(pattern, pid)
    if len(patterns) == 0:
        auto.add_word("\x00never\x00", -1)  # an automaton needs one word; this one cannot occur in a key
    auto.make_automaton()
    return auto
