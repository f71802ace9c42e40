"""The rule engine: a compiled rulebook (`Checker`) checks conversations and produces reports.

- `checker`  — compiles a rulebook (one `kefuqa.kinds.Kind` per rule, in dependency order) and runs it
- `context`  — one conversation being checked: utterance views, phrase matches, evidence, fired rules
- `views`    — what is cached per distinct utterance (normalised text, phrase hits, added views)
- `windows`  — scopes and windows: which utterances a rule looks at
- `triggers` — where a trigger occurs; which phrase groups a window lacks
- `events`   — given and inferred events (holds, transfers)
- `measures` — named numbers for `metric` rules and conditions
- `hits`     — what kinds return

Kinds import the modules above; the checker imports the kinds. So that importing `engine.context` from a
kind does not pull the checker (and with it every kind) in, `Checker` is loaded on first use here.
"""

from typing import TYPE_CHECKING, Any

from .context import Context
from .hits import Hit, NotApplicable, Pos
from .measures import add_limit, compare, measure

if TYPE_CHECKING:
    from .checker import Checker, rule_selected

__all__ = ["Checker", "Context", "Hit", "NotApplicable", "Pos", "add_limit", "compare", "measure", "rule_selected"]


def __getattr__(name: str) -> Any:
    if name in ("Checker", "rule_selected"):
        from . import checker

        return getattr(checker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
