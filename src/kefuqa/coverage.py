"""How much of the standard a report could check (coverage), and whether that is enough.

A rule that is *not applicable* is one of two things. Either the situation it is about did not happen (no
hold, no complaint, an inbound call for an outbound rule): the standard was checked and had nothing to say.
Or the input lacks what the rule needs (no transcript, no recording, no timestamps, a missing field, a
call too short to judge): the rule could not be checked at all. Coverage is the share of scored rules that
were checked, and a call below the rulebook's `settings.min_coverage` is 「未充分质检」: its score says
little, so summaries, averages and rankings leave it out by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Words of the reasons (as the kinds and the checker word them) that mean "the input lacks what the rule
# needs"; every other reason says the rule's situation did not occur.
_INPUT_MISSING = ("缺少", "需要录音", "没有转写文本", "说话不足", "没有发言", "判断未完成", "无人发言",
                  "发言少于")

_INPUT_MISSING_RX = re.compile("|".join(map(re.escape, _INPUT_MISSING)))  # one search per reason, every call

INSUFFICIENT = "未充分质检"


def undecidable(reason: str) -> bool:
    """True when a not-applicable reason says the input lacks what the rule needs (not checkable),
    False when the situation the rule is about did not happen (checked, nothing to report)."""
    return _INPUT_MISSING_RX.search(reason) is not None


@dataclass(slots=True)
class Coverage:
    checked: int  # scored rules decided for this call (fired, passed, or their situation did not occur)
    rules: int  # scored rules shown
    minimum: float  # the rulebook's threshold
    unchecked: list[str] = field(default_factory=list)  # rule ids the input did not allow to check

    @property
    def ratio(self) -> float:
        return self.checked / self.rules if self.rules else 0.0

    @property
    def sufficient(self) -> bool:
        return self.rules > 0 and self.ratio >= self.minimum

    def to_dict(self) -> dict[str, Any]:
        return {"ratio": round(self.ratio, 3), "checked": self.checked, "rules": self.rules,
                "min": self.minimum, "sufficient": self.sufficient, "unchecked": list(self.unchecked)}

    def words(self) -> str:
        """「已检查 29/40 条规则（73%）」, with 「未充分质检」 when below the threshold."""
        text = f"已检查 {self.checked}/{self.rules} 条规则（{self.ratio:.0%}）"
        return text if self.sufficient else f"{text}，{INSUFFICIENT}"


def measure_coverage(scored: Iterable[str], not_applicable: Mapping[str, str], minimum: float,
                     dialogue: bool = True) -> Coverage:
    """Coverage over the scored (non-event) rules `scored` given the report's not-applicable reasons.

    Without a `dialogue` (one side never said anything) "the situation did not occur" proves nothing —
    no complaint can be heard from a customer who is not in the transcript — so every not-applicable rule
    is unchecked then."""
    ids = list(scored)
    unchecked = [r for r in ids if r in not_applicable and (not dialogue or undecidable(not_applicable[r]))]
    return Coverage(len(ids) - len(unchecked), len(ids), minimum, unchecked)


def sufficient(report: Any) -> bool:
    """Whether a report counts in averages and rankings (reports without coverage count)."""
    cov = getattr(report, "coverage", None)
    return cov is None or cov.sufficient
