"""The conversation model (DESIGN §1) and the report model (DESIGN §3).

Conversations are validated with pydantic at the edge; reports are plain dataclasses because the
engine builds thousands of them per second.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .coverage import Coverage

Role = Literal["agent", "customer", "system"]
Channel = Literal["phone", "chat", "email", "web", "onsite"]

# Spellings of roles seen in call-center exports, mapped to the three roles of the contract.
ROLE_ALIASES: dict[str, str] = {
    "agent": "agent", "坐席": "agent", "座席": "agent", "客服": "agent", "seat": "agent",
    "staff": "agent", "service": "agent", "csr": "agent", "operator": "agent", "a": "agent",
    "客服代表": "agent", "话务员": "agent", "工作人员": "agent",
    "customer": "customer", "客户": "customer", "用户": "customer", "顾客": "customer",
    "caller": "customer", "user": "customer", "client": "customer", "b": "customer", "来电人": "customer",
    "业主": "customer",
    "system": "system", "ivr": "system", "系统": "system", "bot": "system",
}


# Limits every conversation obeys, whoever reads it (CLI readers, the service's API and uploads):
MAX_DEPTH = 32  # nesting of objects/lists (attrs, metrics, extra fields of events and parties)
MAX_ID_CHARS = 200  # a call id (the service stores it in a column of this size on every database)


_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def _bad_string(s: str) -> str | None:
    """Why a string cannot be stored or normalised (a lone surrogate, NUL), or None."""
    m = _BAD_CHAR.search(s)
    if m is None:
        return None
    if m.group() == "\x00":
        return f"第 {m.start() + 1} 个字符是空字符（U+0000），无法保存"
    return f"第 {m.start() + 1} 个字符是孤立的代理字符 U+{ord(m.group()):04X}（不是有效的 Unicode 文本）"


def _looks_safe(data: object) -> bool:
    """The walk of `unsafe_value` without the locations: True when nothing is wrong. Strings (keys and
    values) are gathered and searched once, joined: one regex call per conversation instead of one per
    string, and plain numbers are skipped by their exact type before any isinstance chain."""
    found: list[str] = []
    add = found.append
    stack: list[tuple[int, object]] = [(0, data)]
    pop, push = stack.pop, stack.append
    while stack:
        depth, value = pop()
        if isinstance(value, str):
            add(value)
        elif isinstance(value, dict | list | tuple | BaseModel):
            if depth >= MAX_DEPTH:
                return False
            if isinstance(value, dict):
                try:
                    add("".join(value))  # JSON keys are all strings
                except TypeError:
                    found.extend(k for k in value if isinstance(k, str))
                children: Iterable[object] = value.values()
            elif isinstance(value, BaseModel):
                children = vars(value).values()
            else:
                children = value
            for v in children:
                t = type(v)
                if t is str:
                    add(v)  # type: ignore[arg-type]
                elif t is float or t is int or t is bool or v is None:
                    continue
                elif isinstance(v, str):
                    add(v)
                elif isinstance(v, dict | list | tuple | BaseModel):
                    push((depth + 1, v))
    return _BAD_CHAR.search("".join(found)) is None


def unsafe_value(data: object) -> tuple[tuple[int | str, ...], str] | None:
    """The first thing in a raw conversation object (parsed JSON) that no layer can handle safely, as
    (location, reason in Chinese), or None: a lone surrogate or NUL in any key or string, nesting deeper
    than `MAX_DEPTH`, a call id longer than `MAX_ID_CHARS`. Iterative: deep input cannot overflow the stack.
    `Conversation` runs it before validating; the readers and the service reuse it through that."""
    if isinstance(data, dict):
        cid = data.get("id")
        if isinstance(cid, str) and len(cid) > MAX_ID_CHARS:
            return ("id",), f"通话编号过长（{len(cid)} 个字符，最多 {MAX_ID_CHARS} 个）"
    if _looks_safe(data):  # every call pays for this walk: paths are built only when something is wrong
        return None
    stack: list[tuple[tuple[int | str, ...], object]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if len(loc) > MAX_DEPTH:
            return loc[:MAX_DEPTH], f"嵌套过深（超过 {MAX_DEPTH} 层）"
        if isinstance(value, str):
            why = _bad_string(value)
            if why:
                return loc, why
        elif isinstance(value, dict):
            items = list(value.items())
            for key, _ in items:
                why = _bad_string(key) if isinstance(key, str) else None
                if why:
                    return loc, f"字段名{why}"
            stack.extend((loc + (k,), v) for k, v in reversed(items))
        elif isinstance(value, list | tuple):
            stack.extend((loc + (i,), v) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, BaseModel):  # readers may build utterances before the conversation
            stack.extend((loc + (k,), v) for k, v in reversed(list(vars(value).items())))
    return None


def loc_text(loc: tuple[int | str, ...]) -> str:
    """('utterances', 3, 'end') -> 'utterances[3].end'"""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


_ROLES = frozenset(("agent", "customer", "system"))


def normalize_role(value: object) -> str:
    key = str(value).strip().lower()
    role = ROLE_ALIASES.get(key)
    if role is None:
        raise ValueError(f"角色 {value!r} 无效（应为 agent、customer 或 system）")
    return role


class Utterance(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    text: str | None = ""
    start: float | None = None
    end: float | None = None
    # Measurements and tags added by readers or the audio layer (emotion, loudness_dbfs, pitch_sd …).
    attrs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, v: object) -> str:
        if type(v) is str and v in _ROLES:
            return v  # already one of the three (every utterance of every call passes here)
        return normalize_role(v)

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, v: object) -> object:
        return "" if v is None else v

    @model_validator(mode="after")
    def _times(self) -> Utterance:
        if self.start is not None and self.start < 0:
            raise ValueError(f"start {self.start} 是负数")
        if self.end is not None and self.end < 0:
            raise ValueError(f"end {self.end} 是负数")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} 早于 start {self.start}（结束不能早于开始）")
        return self

    @property
    def timed(self) -> bool:
        return self.start is not None and self.end is not None

    @property
    def duration(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return self.end - self.start


class Event(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    start: float | None = None
    end: float | None = None
    at: float | None = None
    target: str | None = None
    inferred: bool = False
    # the utterance an event was said in (inferred transfers), when known
    utterance: int | None = None

    @model_validator(mode="after")
    def _times(self) -> Event:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} 早于 start {self.start}（结束不能早于开始）")
        if self.at is None and self.start is not None:
            self.at = self.start
        return self

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


class Party(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    name: str | None = None
    team: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: object) -> object:
        return None if v is None else str(v)


class Conversation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    channel: Channel | None = None
    direction: Literal["inbound", "outbound"] | None = None
    started_at: datetime | None = None
    received_at: datetime | None = None
    first_response_at: datetime | None = None
    agent: Party | None = None
    customer: Party | None = None
    ring_seconds: float | None = None
    ended_by: Literal["customer", "agent", "system"] | None = None
    utterances: list[Utterance]
    events: list[Event] = Field(default_factory=list)
    # Call-level measurements from the audio layer (agent_loudness_dbfs, …); rules of kind `metric` read them.
    metrics: dict[str, Any] = Field(default_factory=dict)
    # Where the conversation came from (file, line) and notes such as "roles inferred"; not part of §1.
    source: str | None = None
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _safe(cls, data: object) -> object:
        bad = unsafe_value(data)
        if bad is not None:
            loc, reason = bad
            raise ValueError(f"{loc_text(loc) or '会话'}：{reason}")
        return data

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: object) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            raise ValueError("id 为空")
        return str(v)

    @field_validator("ring_seconds")
    @classmethod
    def _ring(cls, v: float | None) -> float | None:
        if v is not None and v < 0:
            raise ValueError(f"ring_seconds {v} 是负数")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> Conversation:
        if not self.utterances:
            raise ValueError("会话没有任何话语（utterances 为空）")
        return self

    @property
    def timed(self) -> bool:
        """True when every utterance carries start and end times."""
        return all(u.timed for u in self.utterances)

    @property
    def has_text(self) -> bool:
        return any(u.text and u.text.strip() for u in self.utterances)


# ---- reports (DESIGN §3) ----------------------------------------------------------------------------


@dataclass(slots=True)
class Finding:
    rule: str
    name: str
    severity: str
    points: float
    utterance: int | None
    start: float | None
    end: float | None
    evidence: str | None
    message: str
    suggestion: str | None = None
    dimension: str | None = None
    # character offsets of the evidence inside the original utterance text (for highlighting)
    span: tuple[int, int] | None = None
    match: str | None = None  # "exact", "pinyin" or "regex" for phrase evidence; "model" for a judgement
    confidence: float | None = None  # a judgement model's confidence (0–1)
    judge: str | None = None  # which model decided ("ngram:2026.12.05+ab12cd34")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "rule": self.rule, "name": self.name, "severity": self.severity, "points": self.points,
            "utterance": self.utterance, "start": self.start, "end": self.end, "evidence": self.evidence,
            "message": self.message, "suggestion": self.suggestion,
        }
        if self.dimension is not None:
            d["dimension"] = self.dimension
        if self.span is not None:
            d["span"] = list(self.span)
        if self.match is not None:
            d["match"] = self.match
        if self.confidence is not None:
            d["confidence"] = self.confidence
            d["judge"] = self.judge
        return d


@dataclass(slots=True)
class EventHit:
    rule: str
    name: str
    utterance: int | None
    start: float | None
    evidence: str | None = None
    span: tuple[int, int] | None = None
    confidence: float | None = None  # a judgement model's confidence (0–1)
    judge: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"rule": self.rule, "name": self.name, "utterance": self.utterance, "start": self.start}
        if self.evidence is not None:
            d["evidence"] = self.evidence
        if self.span is not None:
            d["span"] = list(self.span)
        if self.confidence is not None:
            d["confidence"] = self.confidence
            d["judge"] = self.judge
        return d


@dataclass(slots=True)
class Report:
    call_id: str
    rulebook: dict[str, str]
    score: float
    grade: str
    fatal: bool
    dimensions: dict[str, float]
    findings: list[Finding]
    events: list[EventHit]
    not_applicable: dict[str, str]  # rule id -> reason
    dimension_max: dict[str, float] = field(default_factory=dict)
    fatal_rules: list[str] = field(default_factory=list)
    conversation: Conversation | None = None
    notes: list[str] = field(default_factory=list)
    coverage: Coverage | None = None  # how much of the standard the input let be checked

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "call_id": self.call_id,
            "rulebook": dict(self.rulebook),
            "score": self.score,
            "grade": self.grade,
            "fatal": self.fatal,
            "dimensions": dict(self.dimensions),
            "findings": [f.to_dict() for f in self.findings],
            "events": [e.to_dict() for e in self.events],
            "not_applicable": sorted(self.not_applicable),
            "not_applicable_reasons": dict(sorted(self.not_applicable.items())),
        }
        if self.fatal_rules:
            d["fatal_rules"] = list(self.fatal_rules)
        if self.coverage is not None:
            d["coverage"] = self.coverage.to_dict()
        if self.notes:
            d["notes"] = list(self.notes)
        return d
