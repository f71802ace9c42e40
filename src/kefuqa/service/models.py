"""The storage schema (SQLAlchemy 2). One schema for SQLite and PostgreSQL; Alembic migrations in
``service/migrations`` create and evolve it (a test checks the two agree).

A conversation keeps every score it ever had: each `Score` row records the rulebook version that
produced it, and re-scoring adds a row instead of replacing one. `Conversation.current_score_id` points
at the score shown to people; `Conversation.score`/`grade`/`fatal` copy its effective values so that
lists can filter and sort without a join.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")

ROLES = ("admin", "qa", "leader", "agent")
ROLE_LABELS = {"admin": "管理员", "qa": "质检员", "leader": "组长", "agent": "坐席"}

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC on every database and read back as an aware UTC datetime. SQLite keeps no
    offset (its driver would write 23:30+08:00 as 23:30), so every value is converted to UTC before it is
    written or compared; a naive value is taken to be UTC already. Shown in KEFUQA_TIMEZONE by the views."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSONType, list[Any]: JSONType, datetime: UTCDateTime()}


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)  # the agent id of the call-center system
    name: Mapped[str | None] = mapped_column(String(100))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    team: Mapped[Team | None] = relationship(lazy="joined")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))  # a leader's team
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))  # an agent's own record
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    team: Mapped[Team | None] = relationship(lazy="joined")
    agent: Mapped[Agent | None] = relationship(lazy="joined")

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def label(self) -> str:
        return self.display_name or self.username


class Session(Base):
    """A login: the browser's cookie or an API bearer token. Only the token's SHA-256 is stored."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8), default="web")  # web | api
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class RulebookVersion(Base):
    __tablename__ = "rulebooks"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_rulebooks_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    origin: Mapped[str] = mapped_column(String(16))  # bundled | path | upload
    source_ref: Mapped[str | None] = mapped_column(String(500))  # bundled name or path it came from
    filename: Mapped[str | None] = mapped_column(String(255))
    content: Mapped[str | None] = mapped_column(Text, deferred=True)  # the uploaded YAML text
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | active | archived | invalid
    lint_errors: Mapped[list[Any]] = mapped_column(default=list)
    rules: Mapped[list[Any]] = mapped_column(default=list)  # [{id, name, kind, severity, dimension, points}]
    scorecard: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {name, dimensions, grades, fatal}
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_agent_call_at", "agent_id", "call_at"),
        Index("ix_conversations_team_call_at", "team_id", "call_at"),
        # issue 13 (migration 0008): the overview's statistics and search's ordering from the index alone
        Index("ix_conversations_call_at_stats", "call_at", "team_id", "agent_id", "score", "grade", "fatal",
              "insufficient", "current_score_id", "id"),
        Index("ix_conversations_id_call_at", "id", "call_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(200), unique=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))  # the agent's team at ingest
    channel: Mapped[str | None] = mapped_column(String(16))
    direction: Mapped[str | None] = mapped_column(String(16))
    call_at: Mapped[datetime] = mapped_column(index=True)  # started_at, else received_at, else upload time
    duration: Mapped[float | None] = mapped_column(Float)
    utterance_count: Mapped[int] = mapped_column(Integer, default=0)
    has_audio: Mapped[bool] = mapped_column(Boolean, default=False)
    audio_file: Mapped[str | None] = mapped_column(String(100))  # file name inside the data dir's audio/
    source_name: Mapped[str | None] = mapped_column(String(255))
    content_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(deferred=True)  # the conversation (DESIGN §1), loaded on use
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    current_score_id: Mapped[int | None] = mapped_column(
        ForeignKey("scores.id", use_alter=True, name="fk_conversations_current_score_id_scores")
    )
    score: Mapped[float | None] = mapped_column(Float, index=True)
    grade: Mapped[str | None] = mapped_column(String(32))
    fatal: Mapped[bool] = mapped_column(Boolean, default=False)
    # issue 9: the current score's input let too little of the standard be checked (「未充分质检」,
    # kefuqa.coverage): kept out of averages and rankings by default
    insufficient: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    agent: Mapped[Agent | None] = relationship(lazy="joined")
    team: Mapped[Team | None] = relationship(lazy="joined")


class Score(Base):
    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    rulebook_id: Mapped[int] = mapped_column(ForeignKey("rulebooks.id"), index=True)
    score: Mapped[float] = mapped_column(Float)  # as the engine computed it
    final_score: Mapped[float] = mapped_column(Float)  # after findings voided by review or appeal
    grade: Mapped[str] = mapped_column(String(32))
    fatal: Mapped[bool] = mapped_column(Boolean, default=False)
    dimensions: Mapped[dict[str, Any]] = mapped_column()
    report: Mapped[dict[str, Any]] = mapped_column(deferred=True)  # DESIGN §3, as the engine wrote it
    reason: Mapped[str] = mapped_column(String(16), default="ingest")  # ingest | rescore | replace
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    rulebook: Mapped[RulebookVersion] = relationship()  # loaded on use (one per session: identity map)


class Finding(Base):
    __tablename__ = "findings"
    __table_args__ = (Index("ix_findings_rule_status", "rule", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    score_id: Mapped[int] = mapped_column(ForeignKey("scores.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8), default="finding")  # finding | event
    position: Mapped[int] = mapped_column(Integer, default=0)  # index in the report's findings / events
    rule: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str | None] = mapped_column(String(16))
    points: Mapped[float] = mapped_column(Float, default=0.0)
    dimension: Mapped[str | None] = mapped_column(String(100))
    utterance: Mapped[int | None] = mapped_column(Integer)
    start: Mapped[float | None] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    suggestion: Mapped[str | None] = mapped_column(Text)
    span_start: Mapped[int | None] = mapped_column(Integer)
    span_end: Mapped[int | None] = mapped_column(Integer)
    # open | confirmed | rejected (by an inspector) | overturned (appeal accepted)
    status: Mapped[str] = mapped_column(String(16), default="open")
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    review_reason: Mapped[str | None] = mapped_column(Text)

    @property
    def voided(self) -> bool:
        return self.status in ("rejected", "overturned")


class Review(Base):
    """Every verdict an inspector gave on a finding (the finding row keeps the latest)."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(16))  # confirm | reject
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Appeal(Base):
    """An agent's appeal against one finding. One per finding (unique), and the decision is final."""

    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id", ondelete="CASCADE"), unique=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending | accepted | rejected | moot (its finding gone on re-scoring)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]

    finding: Mapped[Finding] = relationship(lazy="joined")


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


# ---- inspection program (issue 13; migration 0003_inspection) ---------------------------------------------------
# The full-text index of transcripts lives beside these tables and outside the models: on SQLite an FTS5
# table with the trigram tokenizer (`call_texts_fts` and its shadow tables), on PostgreSQL a pg_trgm GIN index
# on `call_texts.body`. `call_texts` is filled by triggers on `conversations` (migration 0003).

SEARCH_INDEX_OBJECTS = frozenset({
    "call_texts_fts", "call_texts_fts_data", "call_texts_fts_idx", "call_texts_fts_content",
    "call_texts_fts_docsize", "call_texts_fts_config", "ix_call_texts_body_trgm",
    "ix_call_texts_body_grams", "call_texts_fts_vocab",  # migration 0010: words under three characters
})


def include_in_schema_compare(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic `include_name`: the search index's database-specific objects are not models."""
    return name not in SEARCH_INDEX_OBJECTS


class CallText(Base):
    """A call's transcript as one text (utterances joined by newlines), kept by database triggers."""

    __tablename__ = "call_texts"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    body: Mapped[str] = mapped_column(Text, default="")


class SavedSearch(Base):
    __tablename__ = "saved_searches"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(String(2000))  # the search page's query string
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewPlan(Base):
    """What humans re-check in one week: the rules of the sample, its seed, and what was drawn."""

    __tablename__ = "review_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    week_start: Mapped[datetime]  # Monday 00:00 local time of the sampled week, stored in UTC
    seed: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # counts per reason and per inspector
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewAssignment(Base):
    __tablename__ = "review_assignments"
    __table_args__ = (
        UniqueConstraint("plan_id", "conversation_id", name="uq_review_assignments_plan_call"),
        Index("ix_review_assignments_inspector_status", "inspector_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("review_plans.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    inspector_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(16))  # random | fatal | complaint | appeal
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | done
    done_at: Mapped[datetime | None]


class MissedFinding(Base):
    """A violation the machine did not report, added by an inspector reviewing the whole call."""

    __tablename__ = "missed_findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(32), index=True)
    utterance: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="review")  # review | calibration
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CalibrationSession(Base):
    __tablename__ = "calibration_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    call_ids: Mapped[list[Any]] = mapped_column(default=list)  # conversation ids, in order
    inspector_ids: Mapped[list[Any]] = mapped_column(default=list)  # user ids asked to score
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | closed
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CalibrationVerdict(Base):
    """One inspector's blind judgement of one call: the rules it violates."""

    __tablename__ = "calibration_verdicts"
    __table_args__ = (UniqueConstraint("session_id", "conversation_id", "inspector_id",
                                       name="uq_calibration_verdicts_session_call_inspector"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("calibration_sessions.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    inspector_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    rules: Mapped[list[Any]] = mapped_column(default=list)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CoachingItem(Base):
    """A leader's coaching note on a call (or one finding of it), assigned to the call's agent."""

    __tablename__ = "coaching_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="SET NULL"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    rule: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | acknowledged | disputed
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]


# ---- training (issue 12; migration 0004_training) -------------------------------------------------------------


class TrainingAssignment(Base):
    """A leader's assignment of a quiz (a module), a scenario or a drill to one agent, with a due date. A drill's
    items (rewrite items from the agent's own flagged utterances) are fixed when it is assigned."""

    __tablename__ = "training_assignments"
    __table_args__ = (Index("ix_training_assignments_agent_status", "agent_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # quiz | scenario | drill
    ref: Mapped[str] = mapped_column(String(100), default="")  # module id, scenario id ('' for a drill)
    title: Mapped[str] = mapped_column(String(200))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    due_at: Mapped[datetime]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # a drill's items
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | done
    done_at: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingAttempt(Base):
    """One finished quiz, scenario run or drill: its score, whether it passed, the rules it tripped, the detail."""

    __tablename__ = "training_attempts"
    __table_args__ = (Index("ix_training_attempts_agent_created", "agent_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("training_assignments.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))  # quiz | scenario | drill
    ref: Mapped[str] = mapped_column(String(100), default="")
    module: Mapped[str | None] = mapped_column(String(100))  # the certification module it counts for
    title: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)  # 0–100
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    correct: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    rules: Mapped[list[Any]] = mapped_column(default=list)  # rules the attempt tripped (weak rules)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)  # answers and feedback, transcript and report
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ---- live assist (issue 11; migration 0006_live_calls) --------------------------------------------------------


class LiveCallRow(Base):
    """A call being assisted live, shared by all worker processes: who streams it, whose agent and team it
    is (role scoping), which worker holds it now (`owner`, `epoch` grows on each take-over), and what the
    supervisor wall shows. Its accepted input frames are in `live_call_frames`; any worker rebuilds the
    call by replaying them."""

    __tablename__ = "live_calls"
    __table_args__ = (Index("ix_live_calls_status_team", "status", "team_id"),)

    call_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))  # who streams it
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    rulebook_id: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(8), default="text")  # text | audio
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the start frame's call
    owner: Mapped[str] = mapped_column(String(100))
    epoch: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(8), default="live")  # live | ended
    received: Mapped[int] = mapped_column(Integer, default=0)  # the last client frame number applied
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # what the wall shows
    stored: Mapped[bool | None] = mapped_column(Boolean)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)  # the owner's last write (heartbeat)


class LiveCallFrame(Base):
    """One accepted input frame of a live call, in the order applied (`idx` from 1)."""

    __tablename__ = "live_call_frames"

    call_id: Mapped[str] = mapped_column(ForeignKey("live_calls.call_id", ondelete="CASCADE"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int | None] = mapped_column(Integer)
    frame: Mapped[dict[str, Any]] = mapped_column(default=dict)


# ---- login throttling shared by the worker processes (migration 0007) --------------------------------------


class LoginFailure(Base):
    """A counter of recent failed logins: ``client|<ip>``, ``pair|<ip>|<name>`` or ``account|<name>``;
    `last` is the wall-clock time (epoch seconds) of the latest failure."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last: Mapped[float] = mapped_column(Float, index=True)


# ---- daily statistics rollup (issue 13; migration 0009) ---------------------------------------------------------
# Kept by database triggers on `conversations` and `findings` in the same transaction as the write: each change
# appends signed rows (merged = false); `service.rollup` merges them per day (merged = true), so writers never
# wait on one another's counters. `day` is the local day in the zone whose UTC offsets `stats_zone` holds.


class StatsCalls(Base):
    """Calls per local day, team, grade, 红线, 未充分质检 and score band (with the sum of their scores in
    millionths of a point: exact on both databases)."""

    __tablename__ = "stats_calls"
    __table_args__ = (Index("ix_stats_calls_day", "day", "team_id"), Index("ix_stats_calls_merged", "merged", "day"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date | None] = mapped_column(Date)
    team_id: Mapped[int | None] = mapped_column(Integer)
    scored: Mapped[bool] = mapped_column(Boolean)
    grade: Mapped[str] = mapped_column(String(32))
    fatal: Mapped[bool] = mapped_column(Boolean)
    insufficient: Mapped[bool] = mapped_column(Boolean)
    band: Mapped[int] = mapped_column(Integer)
    calls: Mapped[int] = mapped_column(Integer)
    score_micro: Mapped[int] = mapped_column(BigInteger)
    merged: Mapped[bool] = mapped_column(Boolean)


class StatsRules(Base):
    """Findings of current scores that no review or appeal voided, per local day, team and rule; `open`: those no
    inspector has looked at yet (the review badge)."""

    __tablename__ = "stats_rules"
    __table_args__ = (Index("ix_stats_rules_day", "day", "team_id"), Index("ix_stats_rules_merged", "merged", "day"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date | None] = mapped_column(Date)
    team_id: Mapped[int | None] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    findings: Mapped[int] = mapped_column(Integer)
    open: Mapped[int] = mapped_column(Integer)
    merged: Mapped[bool] = mapped_column(Boolean)


class StatsZone(Base):
    """The UTC offset (seconds) of the time zone `zone` from `starts` on: the triggers turn an instant into a
    local day with it, the same way on SQLite (which has no time-zone data) and PostgreSQL."""

    __tablename__ = "stats_zone"

    starts: Mapped[datetime] = mapped_column(primary_key=True)
    offset_seconds: Mapped[int] = mapped_column(Integer)
    zone: Mapped[str] = mapped_column(String(64))
