"""kefuqa (客服质检): score customer-service conversations against written service standards.

Library API (the CLI and the service only call these)::

    import kefuqa
    report = kefuqa.check({"id": "c1", "utterances": [...]})          # bundled standard rulebook
    rb = kefuqa.load_rulebook("utility-95598")                         # or a folder / YAML file
    report = kefuqa.check(conversation, rb, ignore=["VOC"])
    report.to_dict()                                                   # DESIGN §3 findings JSON
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from .engine.checker import Checker
from .errors import InputError, KefuqaError, RuleError
from .model import Conversation, EventHit, Finding, Report, Utterance
from .rules.rulebook import Rulebook, lint, load_rulebook

__version__ = "0.1.0"

__all__ = [
    "Checker", "Conversation", "EventHit", "Finding", "InputError", "KefuqaError", "Report", "RuleError",
    "Rulebook", "Utterance", "check", "checker_for", "lint", "load_rulebook",
]


@lru_cache(maxsize=16)
def _cached_checker(source: str) -> Checker:
    return Checker(load_rulebook(None if source == "" else source))


_BY_OBJECT: dict[int, tuple[Rulebook, Checker]] = {}


def checker_for(rulebook: Rulebook | str | Path | None = None) -> Checker:
    """A compiled checker; each rulebook (object, bundled name or path) is compiled once per process."""
    if isinstance(rulebook, Rulebook):
        got = _BY_OBJECT.get(id(rulebook))
        if got is None or got[0] is not rulebook:
            if len(_BY_OBJECT) >= 16:
                _BY_OBJECT.clear()
            got = (rulebook, Checker(rulebook))
            _BY_OBJECT[id(rulebook)] = got
        return got[1]
    return _cached_checker("" if rulebook is None else str(rulebook))


def check(conversation: Conversation | dict[str, Any], rulebook: Rulebook | Checker | str | Path | None = None, *,
          select: list[str] | None = None, ignore: list[str] | None = None) -> Report:
    """Score one conversation. `rulebook` is a Rulebook, a compiled Checker, a bundled name or a path."""
    conv = conversation if isinstance(conversation, Conversation) else Conversation.model_validate(conversation)
    checker = rulebook if isinstance(rulebook, Checker) else checker_for(rulebook)
    return checker.check(conv, select=select, ignore=ignore)
