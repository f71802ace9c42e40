"""`rest` of an intent rule: what the rest of the utterance says after the label's own words.

One score for a whole utterance reads the strongest words: 退不了 weighs far more than a reason or another way
said in plain words after it (退不了，这个券过了有效期了 / 退不了，只能换码), and no list of markers (因为、可以为您)
covers the plain ones. So the utterance is cut into clauses (at punctuation and spaces); the clauses holding
the label's words (a shortcut phrase, a `judge_if` phrase, the words the model weighed) are the label's own,
and every clause after the first of them is asked on its own: it says something more — the reason or the
other way — when it still has `min_chars` word characters without the `filler` (politeness, particles, a
bare 公司规定: never a reason), and the judge scores it under `below` for the rule's label and for each of
`labels` (a second no 我也没办法, a dismissal 您别再问了, a reproach or a push-off is no reason). One such
clause takes the utterance's findings back. Unpunctuated ASR text is one clause: judged as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from .. import normalize
from ..judge import Judgement
from ..rules.schema import Phrases, Strict

if TYPE_CHECKING:
    from ..engine.context import Context

CLAUSE_STOPS = frozenset("，,。.！!？?；;：:、…~～ \t\n「」“”\"（）()")


class Rest(Strict):
    below: float = Field(default=0.5, gt=0, lt=1)  # a clause scored under this for the label says something else
    labels: list[str] = Field(default_factory=list)  # labels a clause must not be either (reproach, blame_shift)
    filler: list[str] = Field(default_factory=list)  # words that are no reason and no other way on their own
    min_chars: int = Field(default=2, ge=1)  # word characters a clause needs beyond the filler
    # a clause saying one of these is never the reason nor the way, whatever else it says (规定就是这样、谁来都一样)
    no_reason: Phrases = Field(default_factory=list)


def clauses(text: str) -> list[tuple[int, int]]:
    """Spans of the clauses of `text`, cut at punctuation and spaces."""
    out: list[tuple[int, int]] = []
    start = 0
    for i, ch in enumerate(text):
        if ch in CLAUSE_STOPS:
            if i > start:
                out.append((start, i))
            start = i + 1
    if len(text) > start:
        out.append((start, len(text)))
    return out


def strip_filler(text: str, filler: list[str]) -> str:
    """The key view of `text` without the filler words (longest first)."""
    k = normalize.key(text)
    for f in filler:
        k = k.replace(f, "")
    return k


def says_more(ctx: Context, u: int, own: list[tuple[int, int]], rest: Rest, filler: list[str], judge: str,
              label: str, bare: list[tuple[int, int]]) -> bool:
    """Whether a clause of utterance `u` after the first clause holding one of the spans `own` (original
    offsets: the label's words) says something more than the label — see the module's doc. `bare`: the
    spans of `no_reason` phrases in the utterance (their clauses say nothing more)."""
    text = ctx.texts[u]
    cut = clauses(text)
    mine = [k for k, (s, e) in enumerate(cut) if any(s < oe and os < e for os, oe in own)]
    if not mine:
        return False
    candidates = [text[s:e] for k, (s, e) in enumerate(cut)
                  if k > mine[0] and k not in mine and len(strip_filler(text[s:e], filler)) >= rest.min_chars
                  and not any(s < be and bs < e for bs, be in bare)]
    if not candidates:
        return False
    asked = ctx.checker.judges.get(judge)
    left = list(range(len(candidates)))
    for lab in (label, *rest.labels):
        got = asked.judge_many([candidates[k] for k in left], lab)
        # an undecided clause (a judge that could not answer) says nothing more: the finding stands
        left = [k for k, j in zip(left, got, strict=True) if isinstance(j, Judgement) and j.score < rest.below]
        if not left:
            return False
    return True
