"""Per-utterance views, computed once per distinct (text, role) and shared by every call that says it.

Call centers repeat themselves ("您好，请问有什么可以帮您？", "好的", "嗯"): a checker normalises and
scans each distinct utterance once and keeps its `UtteranceView`. Everything that depends on the text and
role alone lives here; a new view (a model's label scores) joins through `extra`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..rules.matcher import Match, Raw

EMPTY_RAW: dict[int, list[Raw]] = {}


@dataclass(slots=True)
class UtteranceView:
    clean: str  # width, punctuation and ASR marks normalised; Simplified
    key: str  # the matching view: clean without punctuation or spaces
    words: int  # characters that count for speech rate (CJK, letters, digits)
    raw: dict[int, list[Raw]]  # phrase set id → the automata's raw hits (never modified)
    matches: dict[int, list[Match]] = field(default_factory=dict)  # phrase set id → matches after exceptions
    maps: tuple[Any, Any] | None = None  # key/clean offsets → original characters, for evidence spans
    digit_key: str | None = None  # key with spoken digits as Arabic ones (幺三九 → 139)
    extra: dict[Any, Any] = field(default_factory=dict)  # views other kinds add (("intent", judge, label) → Judgement)
