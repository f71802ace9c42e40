"""What a rule kind returns: hits (becoming findings or events) or `NotApplicable` with a reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..rules.matcher import Match


class NotApplicable(Exception):
    """The rule cannot be decided for this conversation; `reason` is shown to the inspector (Chinese)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Hit:
    utterance: int | None
    start: float | None
    end: float | None
    evidence: str | None = None
    span: tuple[int, int] | None = None
    suggestion: str | None = None
    via: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None  # judgement kinds: the model's confidence and its name
    judge: str | None = None


@dataclass(slots=True)
class Pos:
    """A position a window is measured from (a trigger occurrence)."""

    u: int | None
    t: float | None
    end_t: float | None = None
    evidence: str | None = None
    key: str | None = None
    span: tuple[int, int] | None = None
    match: Match | None = None  # evidence is computed from it only when a finding needs it


NO_HITS: list[Hit] = []

ROLE_NAMES = {"agent": "坐席", "customer": "客户", "any": "双方"}
DIRECTION_NAMES = {"inbound": "呼入", "outbound": "外呼"}
EVENT_NAMES = {"hold": "等候", "transfer": "转接"}


def trim(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_time(t: float | None) -> str:
    if t is None:
        return ""
    m, s = divmod(t, 60)
    return f"{int(m):02d}:{s:04.1f}"
