"""The rule engine: a compiled rulebook (`Checker`) checks conversations and produces reports.

- `checker`  — compiles a rulebook (one `kefuqa.kinds.Kind` per rule, in dependency order) and runs it
- `context`  — one conversation being checked: utterance views, phrase matches, evidence, fired rules
- `views`    — what is cached per distinct utterance (normalised text, phrase hits, added views)
- `windows`  — scopes and windows: which utterances a rule looks at
- `triggers` — where a trigger occurs; which phrase groups a window lacks
- `events`   — given and inferred events (holds, transfers)
- `measures` — named numbers for `metric` rules and conditions
- `hits`     — what kinds return
"""

from .checker import Checker, rule_selected
from .context import Context
from .hits import Hit, NotApplicable, Pos
from .measures import add_limit, compare, measure

__all__ = ["Checker", "Context", "Hit", "NotApplicable", "Pos", "add_limit", "compare", "measure", "rule_selected"]
