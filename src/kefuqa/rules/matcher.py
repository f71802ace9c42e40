"""One Aho-Corasick pass per utterance for every phrase of every rule.

Every phrase list a rulebook uses (a rule's phrases, an ``unless`` list, a group, a step …) becomes a
`PhraseSet` with an integer id. All literal phrases go into one automaton over the key view, and those
allowed to match by sound into a second automaton over the pinyin view (same offsets). Scanning an
utterance yields raw matches for all sets at once; rules then ask for the matches of their own sets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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
from .regex import RulePattern, compile_rule_regex
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


def regex_literals(pattern: str, limit: int = 16, key_view: bool = True) -> list[str] | None:
    """Literal strings one of which every match of a regex contains (top level only), or None.

    Runs of literal characters are extended through short alternations of literals (``您(是|要|想)`` gives
    您是/您要/您想) and through a repeat of one character (``喂+`` needs 喂). Of all such runs, the one
    whose shortest alternative is longest wins. Only plain word text counts: the literals must survive
    into the key view unchanged, where the automaton looks for them.
    """
    try:
        parsed = sre_parse.parse(pattern)
    except Exception:  # noqa: BLE001 - a bad pattern is reported by the schema, not here
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    best: list[str] = []
    run: list[str] = [""]

    def close() -> None:
        nonlocal best, run
        if run != [""] and (not best or min(map(len, run)) > min(map(len, best))):
            best = run
        run = [""]

    for op, arg in parsed:
        if op is sre_constants.LITERAL:
            run = [r + chr(arg) for r in run]  # type: ignore[arg-type]
        elif op is sre_constants.AT:
            continue
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            lo, _hi, sub = arg  # type: ignore[misc]
            if lo >= 1 and len(sub) == 1 and sub[0][0] is sre_constants.LITERAL:
                run = [r + chr(sub[0][1]) for r in run]
            elif lo >= 1 and len(sub) == 1 and sub[0][0] is sre_constants.IN and not key_view:
                alts = _branch_literals(sub)
                if alts and len(run) * len(alts) <= limit:
                    run = [r + a for r in run for a in alts]
            close()
        elif op is sre_constants.IN and not key_view and _branch_literals([(op, arg)]):
            alts = _branch_literals([(op, arg)])
            assert alts is not None
            run = [r + a for r in run for a in alts] if len(run) * len(alts) <= limit else list(alts)
        elif op is sre_constants.SUBPATTERN and _branch_literals(arg[-1]) is not None:  # type: ignore[index]
            alts = _branch_literals(arg[-1])  # type: ignore[index]
            assert alts is not None
            if len(run) * len(alts) > limit:
                close()
                run = list(alts)
            else:
                run = [r + a for r in run for a in alts]
        else:
            close()
    close()
    if not best or any(not x or (key_view and normalize.key(x) != x) for x in best):
        return None  # punctuation or a stutter: not visible in the key view as written
    return sorted(set(best))


def _branch_literals(sub: object) -> list[str] | None:
    """``(是|要|想)`` → ['是', '要', '想'] when every branch is plain literal text."""
    items = list(sub)  # type: ignore[call-overload]
    if len(items) == 1 and items[0][0] is sre_constants.BRANCH:
        branches = items[0][1][1]
    elif len(items) == 1 and items[0][0] is sre_constants.IN:
        chars = items[0][1]
        if all(kind is sre_constants.LITERAL for kind, _ in chars):
            return [chr(c) for _, c in chars]
        return None
    else:
        branches = [items]
    out = []
    for br in branches:
        text = ""
        for op, arg in br:
            if op is not sre_constants.LITERAL:
                return None
            text += chr(arg)
        out.append(text)
    return out or None


@dataclass
class Item:
    text: str  # as written in the rule (for messages and docs)
    key: str | None
    regex: RulePattern | None
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
    # for those: strings of the clean view one of which must be there before the regex runs
    clean_needs: dict[int, tuple[str, ...]] = field(default_factory=dict)
    # the roles whose utterances this set is looked for in; unless/near sets inherit their parent's
    roles: set[str] = field(default_factory=set)
    children: list[int] = field(default_factory=list)

    # derived once by PhraseIndex.build(), read on the hot path
    clean_needs_all: tuple[str, ...] | None = None  # every unfiltered regex needs one of these clean strings
    unfiltered_items: list[int] = field(default_factory=list)  # regex items without a literal, in order
    hour_dependent: bool = False  # a phrase only counts at some hours of the call (greetings)
    simple: bool = False  # no exceptions, whole-utterance items, hours or regexes: every raw hit is a match

    def finish(self) -> None:
        unfiltered = self.unfiltered_items = [i for i in self.regex_items if i not in self.prefiltered]
        if unfiltered and all(i in self.clean_needs for i in unfiltered):
            self.clean_needs_all = tuple(sorted({n for i in unfiltered for n in self.clean_needs[i]}))
        self.hour_dependent = any(i.allowed_hours is not None for i in self.items)
        self.simple = (self.unless_set is None and not self.regex_items and all(
            i.unless_set is None and i.whole is None and i.allowed_hours is None for i in self.items))


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
        self._by_role: dict[str, _RoleIndex] = {}
        self._dedupe: dict[tuple[object, ...], int] = {}
        self._whole: dict[str, list[tuple[int, int]]] = {}

    # ---- building -------------------------------------------------------------------------------------

    def add(self, phrases: list[str | PhraseItem], *, pinyin: bool = False, pinyin_min_len: int = 3,
            unless: list[str] | None = None, role: str = "any") -> int:
        """Register a phrase list looked for in `role`'s utterances; returns its set id.

        Identical lists share one set (and the union of their roles).
        """
        roles = {"agent", "customer"} if role == "any" else {role}
        sig = (tuple(p if isinstance(p, str) else p.model_dump_json() for p in phrases), pinyin, pinyin_min_len,
               tuple(unless or ()))
        if sig in self._dedupe:
            got = self._dedupe[sig]
            self.sets[got].roles |= roles
            return got
        sid = len(self.sets)
        pset = PhraseSet(sid, [], roles=set(roles))
        self.sets.append(pset)
        self._dedupe[sig] = sid
        if unless:
            pset.unless_set = self.add(list(unless), role=role)
            pset.children.append(pset.unless_set)
        for p in phrases:
            item = p if isinstance(p, PhraseItem) else PhraseItem(text=p)
            use_py = item.pinyin if item.pinyin is not None else pinyin
            unless_set = self.add(list(item.unless), role=role) if item.unless else None
            near_set = self.add(list(item.unless_near), role=role) if item.unless_near else None
            pset.children += [x for x in (unless_set, near_set) if x is not None]
            hours = None
            if item.allowed_hours:
                a, b = item.allowed_hours.split("-")
                hours = (_minutes(a), _minutes(b))
            if item.regex is not None:
                idx = len(pset.items)
                pset.regex_items.append(idx)
                pset.items.append(Item(item.regex, None, compile_rule_regex(item.regex), item.suggest, item.whole, False,
                                       unless_set, near_set, hours))
                lits = regex_literals(item.regex)
                if lits:
                    for lit in lits:
                        self._register(lit, sid, idx, pinyin=False, pre=True)
                    pset.prefiltered.add(idx)
                else:
                    pset.unfiltered_regex = True
                    # text it needs in the clean view (punctuation such as ！！): a substring test first
                    clean_lits = regex_literals(item.regex, key_view=False)
                    if clean_lits:
                        pset.clean_needs[idx] = tuple(clean_lits)
                continue
            assert item.text is not None
            k = normalize.key(item.text)
            if not k:
                continue  # punctuation only: nothing to match
            idx = len(pset.items)
            # a phrase marked `pinyin: true` itself may be as short as 2 characters (工号): the rule's minimum
            # is for all of its phrases, where 2-character ones clash too often (我姓/我行, 好吗/号码)
            min_len = 2 if item.pinyin is True else pinyin_min_len
            py_ok = bool(use_py) and len(k) >= min_len and bool(_HAS_CJK.search(k))
            pset.items.append(Item(item.text, k, None, item.suggest, item.whole, py_ok, unless_set, near_set, hours))
            if item.whole is True:
                # only ever a match as the whole utterance: look the utterance up, don't scan for it
                self._whole.setdefault(k, []).append((sid, idx))
                continue
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
        """One automaton pair per role, holding only the patterns of sets looked for in that role's turns."""
        for pset in self.sets:
            pset.finish()
        stack = list(range(len(self.sets)))
        while stack:  # children are looked for wherever their parents are
            parent = self.sets[stack.pop()]
            for child in parent.children:
                if not parent.roles <= self.sets[child].roles:
                    self.sets[child].roles |= parent.roles
                    stack.append(child)
        self._by_role = {}
        for role in ("agent", "customer"):
            exact = _for_role(self._exact, self._exact_consumers, self._exact_len, self.sets, role)
            py = _for_role(self._py, self._py_consumers, self._py_len, self.sets, role)
            whole = {k: [c for c in cs if role in self.sets[c[0]].roles] for k, cs in self._whole.items()}
            self._by_role[role] = _RoleIndex(
                _automaton(exact[0]), exact[1], exact[2],
                _automaton(py[0]) if py[0] else None, py[1], py[2],
                {k: v for k, v in whole.items() if v},
            )

    @property
    def pattern_count(self) -> int:
        return len(self._exact)

    # ---- scanning -------------------------------------------------------------------------------------

    def scan(self, key: str, role: str = "agent", pinyin: bool = True) -> dict[int, list[Raw]]:
        """Raw literal, pinyin and regex-prefilter hits, in one utterance of `role`, of every set."""
        out: dict[int, list[Raw]] = {}
        ri = self._by_role.get(role)
        if ri is None or not key:
            return out
        lengths = ri.lengths
        consumers = ri.consumers
        for end, pid in ri.auto.iter(key):
            start = end - lengths[pid] + 1
            for sid, idx, via in consumers[pid]:
                lst = out.get(sid)
                if lst is None:
                    out[sid] = [(idx, start, end + 1, via)]
                else:
                    lst.append((idx, start, end + 1, via))
        whole = ri.whole.get(key)
        if whole is not None:
            for sid, idx in whole:
                out.setdefault(sid, []).append((idx, 0, len(key), "exact"))
        if pinyin and ri.auto_py is not None and _HAS_CJK.search(key):
            pkey = normalize.pinyin_key(key)
            plen = ri.py_lengths
            pcons = ri.py_consumers
            sets = self.sets
            for end, pid in ri.auto_py.iter(pkey):
                start = end - plen[pid] + 1
                for sid, idx, _ in pcons[pid]:
                    if key[start:end + 1] == sets[sid].items[idx].key:
                        continue  # already an exact match
                    out.setdefault(sid, []).append((idx, start, end + 1, "pinyin"))
        return out


    def scan_many(self, keys: list[str], roles: Sequence[str]) -> list[dict[int, list[Raw]]]:
        """`scan` of every utterance of a call: one automaton pass per role over the joined keys."""
        out: list[dict[int, list[Raw]]] = [{} for _ in keys]
        for role, ri in self._by_role.items():
            idx = [i for i, r in enumerate(roles) if r == role and keys[i]]
            if not idx:
                continue
            offsets: list[int] = []
            pos = 0
            for i in idx:
                offsets.append(pos)
                pos += len(keys[i]) + 1
            joined = "\n".join(keys[i] for i in idx)  # a newline never occurs inside a key
            self._scan_joined(ri, joined, idx, offsets, keys, out)
        return out

    def _scan_joined(self, ri: _RoleIndex, joined: str, idx: list[int], offsets: list[int], keys: list[str],
                     out: list[dict[int, list[Raw]]]) -> None:
        lengths = ri.lengths
        consumers = ri.consumers
        j = 0  # which utterance the current hit is in: hits come in order of their end
        nxt = offsets[1] if len(offsets) > 1 else len(joined) + 1
        for end, pid in ri.auto.iter(joined):
            while end >= nxt:
                j += 1
                nxt = offsets[j + 1] if j + 1 < len(offsets) else len(joined) + 1
            base = offsets[j]
            start = end - lengths[pid] + 1 - base
            d = out[idx[j]]
            for sid, item, via in consumers[pid]:
                lst = d.get(sid)
                if lst is None:
                    d[sid] = [(item, start, end + 1 - base, via)]
                else:
                    lst.append((item, start, end + 1 - base, via))
        whole = ri.whole
        if whole:
            for i in idx:
                got = whole.get(keys[i])
                if got is not None:
                    for sid, item in got:
                        out[i].setdefault(sid, []).append((item, 0, len(keys[i]), "exact"))
        if ri.auto_py is not None:
            pjoined = normalize.pinyin_key(joined)
            if pjoined != joined:
                plen = ri.py_lengths
                pcons = ri.py_consumers
                sets = self.sets
                j = 0
                nxt = offsets[1] if len(offsets) > 1 else len(joined) + 1
                for end, pid in ri.auto_py.iter(pjoined):
                    while end >= nxt:
                        j += 1
                        nxt = offsets[j + 1] if j + 1 < len(offsets) else len(joined) + 1
                    base = offsets[j]
                    start = end - plen[pid] + 1
                    if start < base:
                        continue  # across two utterances
                    for sid, item, _ in pcons[pid]:
                        if joined[start:end + 1] == sets[sid].items[item].key:
                            continue  # already an exact match
                        out[idx[j]].setdefault(sid, []).append((item, start - base, end + 1 - base, "pinyin"))


@dataclass
class _RoleIndex:
    auto: ahocorasick.Automaton
    consumers: list[list[tuple[int, int, str]]]
    lengths: list[int]
    auto_py: ahocorasick.Automaton | None
    py_consumers: list[list[tuple[int, int, str]]]
    py_lengths: list[int]
    whole: dict[str, list[tuple[int, int]]]


def _for_role(table: dict[str, int], consumers: list[list[tuple[int, int, str]]], lengths: list[int],
              sets: list[PhraseSet], role: str) -> tuple[dict[str, int], list[list[tuple[int, int, str]]], list[int]]:
    """The patterns (renumbered) and consumers of the sets looked for in `role`'s utterances."""
    out_table: dict[str, int] = {}
    out_cons: list[list[tuple[int, int, str]]] = []
    out_len: list[int] = []
    for pattern, pid in table.items():
        cons = [c for c in consumers[pid] if role in sets[c[0]].roles]
        if cons:
            out_table[pattern] = len(out_cons)
            out_cons.append(cons)
            out_len.append(lengths[pid])
    return out_table, out_cons, out_len


def _automaton(patterns: dict[str, int]) -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton()
    for pattern, pid in patterns.items():
        auto.add_word(pattern, pid)
    if len(patterns) == 0:
        auto.add_word("\x00never\x00", -1)  # an automaton needs one word; this one cannot occur in a key
    auto.make_automaton()
    return auto
