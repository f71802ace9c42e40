"""One Aho-Corasick pass per utterance for every phrase of every rule.

Every phrase list a rulebook uses (a rule's phrases, an ``unless`` list, a group, a step …) becomes a
`PhraseSet` with an integer id. All literal phrases go into one automaton over the key view, and those
allowed to match by sound into a second automaton over the pinyin view (same offsets). Scanning an
utterance yields raw matches for all sets at once; rules then ask for the matches of their own sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import ahocorasick

from .. import normalize
from .schema import PhraseItem

_HAS_CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True, slots=True)
class Match:
    item: int  # index of the phrase inside its set
    start: int
    end: int  # exclusive
    via: str  # "exact", "pinyin" or "regex"
    view: str  # "key" or "clean": which view start/end refer to


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


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class PhraseIndex:
    def __init__(self) -> None:
        self.sets: list[PhraseSet] = []
        self._exact: dict[str, int] = {}
        self._exact_consumers: list[list[tuple[int, int]]] = []
        self._exact_len: list[int] = []
        self._py: dict[str, int] = {}
        self._py_consumers: list[list[tuple[int, int]]] = []
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
                pset.regex_items.append(len(pset.items))
                pset.items.append(Item(item.regex, None, re.compile(item.regex), item.suggest, item.whole, False,
                                       unless_set, near_set, hours))
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

    def _register(self, pattern: str, sid: int, idx: int, *, pinyin: bool) -> None:
        table, consumers, lengths = (
            (self._py, self._py_consumers, self._py_len) if pinyin else (self._exact, self._exact_consumers, self._exact_len)
        )
        pid = table.get(pattern)
        if pid is None:
            pid = len(consumers)
            table[pattern] = pid
            consumers.append([])
            lengths.append(len(pattern))
        consumers[pid].append((sid, idx))

    def build(self) -> None:
        self._auto = _automaton(self._exact)
        self._auto_py = _automaton(self._py) if self._py else None

    @property
    def pattern_count(self) -> int:
        return len(self._exact)

    # ---- scanning -------------------------------------------------------------------------------------

    def scan(self, key: str) -> dict[int, list[Match]]:
        """Raw literal and pinyin matches of every set in one utterance's key view."""
        out: dict[int, list[Match]] = {}
        auto = self._auto
        if auto is None or not key:
            return out
        lengths = self._exact_len
        consumers = self._exact_consumers
        for end, pid in auto.iter(key):
            start = end - lengths[pid] + 1
            for sid, idx in consumers[pid]:
                m = Match(idx, start, end + 1, "exact", "key")
                lst = out.get(sid)
                if lst is None:
                    out[sid] = [m]
                else:
                    lst.append(m)
        if self._auto_py is not None and _HAS_CJK.search(key):
            pkey = normalize.pinyin_key(key)
            plen = self._py_len
            pcons = self._py_consumers
            for end, pid in self._auto_py.iter(pkey):
                start = end - plen[pid] + 1
                for sid, idx in pcons[pid]:
                    if key[start:end + 1] == self.sets[sid].items[idx].key:
                        continue  # already an exact match
                    out.setdefault(sid, []).append(Match(idx, start, end + 1, "pinyin", "key"))
        return out


def _automaton(patterns: dict[str, int]) -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton()
    for pattern, pid in patterns.items():
        auto.add_word(pattern, pid)
    if len(patterns) == 0:
        auto.add_word("\x00never\x00", -1)  # an automaton needs one word; this one cannot occur in a key
    auto.make_automaton()
    return auto
