"""The service's working parts in one object: settings, database, rulebooks, and the ingest path
(read → score → store) shared by the HTTP API and `kefuqa ingest`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DBSession

from ..errors import InputError
from ..model import Conversation as ConversationModel
from . import scoring
from .config import Settings
from .db import make_engine, migrate, session_factory
from .models import (
    Agent,
    Appeal,
    AuditEntry,
    Conversation,
    Finding,
    Score,
    Team,
    User,
    utcnow,
)
from .security import generate_password, hash_password

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3"}
TEXT_EXTENSIONS = {".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".tab", ".txt", ".text"}
STORE_BATCH = 200
ACTIVE_TTL = 2.0  # seconds a worker trusts its idea of the active rulebook
CONVERSATIONS = cast(Table, Conversation.__table__)
SCORES = cast(Table, Score.__table__)
FINDINGS = cast(Table, Finding.__table__)
AUDIT = cast(Table, AuditEntry.__table__)
_SAFE_NAME = re.compile(r"[^\w.\-\u4e00-\u9fff]+")


class UploadError(ValueError):
    """A file was refused before reading (size, type, content)."""


@dataclass
class Outcome:
    """What happened to one conversation (or one unreadable record) of an upload."""

    call_id: str | None
    status: str  # stored | replaced | unchanged | conflict | error
    id: int | None = None
    score: float | None = None
    grade: str | None = None
    error: str | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Ingested:
    outcomes: list[Outcome]
    rulebook: str  # "name version" of the rulebook that scored them


GROUP_MAX = 200  # requests one shared transaction takes at most
GROUP_SMALL = 5  # requests of up to this many conversations share transactions
GROUP_WAIT = 0.003  # seconds the first request waits for others to join


class _GroupCommit:
    """Group commit for small uploads: the first request to arrive leads; it waits a few milliseconds for
    the requests that arrive meanwhile, stores all of them in one `ingest` per (user, replace), and hands
    each request its own outcomes. A failure fails only the requests of that group."""

    def __init__(self, wb: Workbench) -> None:
        self.wb = wb
        self.lock = threading.Lock()
        self.pending: list[tuple[tuple[int | None, bool], list[Item], Future[Ingested]]] = []
        self.leading = False

    def submit(self, items: list[Item], user_id: int | None, replace: bool) -> Ingested:
        fut: Future[Ingested] = Future()
        with self.lock:
            self.pending.append(((user_id, replace), items, fut))
            lead = not self.leading
            self.leading = True
        if lead:
            time.sleep(GROUP_WAIT)
            while True:
                with self.lock:
                    batch, self.pending = self.pending[:GROUP_MAX], self.pending[GROUP_MAX:]
                    if not batch:
                        self.leading = False
                        break
                self._run(batch)
        return fut.result()

    def _run(self, batch: list[tuple[tuple[int | None, bool], list[Item], Future[Ingested]]]) -> None:
        groups: dict[tuple[int | None, bool], list[tuple[list[Item], Future[Ingested]]]] = {}
        for key, items, fut in batch:
            groups.setdefault(key, []).append((items, fut))
        for (user_id, replace), members in groups.items():
            try:
                done = self.wb.ingest([i for items, _ in members for i in items], user_id=user_id, replace=replace)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
                for _, fut in members:
                    fut.set_exception(exc)
                continue
            at = 0
            for items, fut in members:  # outcomes come back in item order
                fut.set_result(Ingested(done.outcomes[at:at + len(items)], done.rulebook))
                at += len(items)


@dataclass
class SetupInfo:
    applied_migrations: list[str]
    rulebook: str
    admin_username: str | None = None
    admin_password: str | None = None  # set only when a password was generated now


@dataclass
class Item:
    conversation: ConversationModel
    source_name: str | None = None
    audio_file: str | None = None
    report: Any = None
    data: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""


def safe_filename(name: str) -> str:
    """The last path component of a client-supplied name, with anything odd replaced; never a path."""
    base = re.split(r"[\\/]", name or "")[-1].strip().lstrip(".")
    base = _SAFE_NAME.sub("_", base)[:120]
    return base or "upload"


def _sniff_audio(head: bytes, ext: str) -> bool:
    if ext == ".wav":
        return head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE"
    if ext == ".flac":
        return head[:4] == b"fLaC"
    if ext in (".ogg", ".oga"):
        return head[:4] == b"OggS"
    if ext == ".mp3":
        return head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0)
    return False


def _audio_supported() -> bool:
    """Whether audio files can be read here (the audio extra installed and its reader registered)."""
    from ..readers.registry import known_extension

    if known_extension("x.wav"):
        return True
    try:
        from .. import audio
    except ImportError:
        return False
    if audio.available() is not None:
        return False
    audio.register()
    return known_extension("x.wav")


def _text_supported(name: str) -> bool:
    return Path(name).suffix.lower() in TEXT_EXTENSIONS


class Workbench:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.sessions = session_factory(self.engine)
        self.rulebooks = scoring.RulebookCache(settings)
        self._active: tuple[int | None, float] = (None, 0.0)
        # agent code → (agent id, team id, name, team name) as last stored by this process
        self._agent_cache: dict[str, tuple[int, int | None, str | None, str | None]] = {}
        self._group = _GroupCommit(self)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ---- set-up ------------------------------------------------------------------------------------------

    def setup(self) -> SetupInfo:
        """Migrate, make sure a rulebook is active, and create the first administrator on an empty database."""
        applied = migrate(self.engine)
        with self.sessions() as db, db.begin():
            rec = scoring.ensure_active(db, self.settings)
            info = SetupInfo(applied, f"{rec.name} {rec.version}")
            if db.scalar(select(User.id).limit(1)) is None:
                password = self.settings.admin_password
                generated = password is None
                if generated:
                    password = generate_password()
                assert password is not None
                db.add(User(username=self.settings.admin_username, display_name="管理员", role="admin",
                            password_hash=hash_password(password)))
                db.add(AuditEntry(action="user.create", object_type="user", object_id=self.settings.admin_username,
                                  detail={"role": "admin", "first_admin": True}))
                info.admin_username = self.settings.admin_username
                info.admin_password = password if generated else None
        return info

    def active(self, db: DBSession) -> scoring.Loaded:
        """The active rulebook version, compiled. Which version is active is looked up again after
        ACTIVE_TTL seconds (another worker may have activated one), at once after `forget_active`."""
        now = time.monotonic()
        rid, at = self._active
        if rid is None or now - at > ACTIVE_TTL:
            rid = scoring.active_id(db)
            if rid is None:
                rid = scoring.ensure_active(db, self.settings).id
            self._active = (rid, now)
        return self.rulebooks.get(db, rid)

    def forget_active(self) -> None:
        self._active = (None, 0.0)

    # ---- reading -----------------------------------------------------------------------------------------

    def check_upload(self, name: str, data: bytes) -> tuple[str, str]:
        """(safe name, "audio" | "text") for an acceptable upload, else UploadError."""
        safe = safe_filename(name)
        ext = Path(safe).suffix.lower()
        if not data:
            raise UploadError("文件为空")
        if ext in AUDIO_EXTENSIONS:
            if len(data) > self.settings.max_file_bytes:
                raise UploadError(f"录音文件超过 {self.settings.max_file_bytes // (1024 * 1024)} MB")
            if not _sniff_audio(data[:16], ext):
                raise UploadError(f"文件内容不是 {ext[1:]} 音频")
            if not _audio_supported():
                raise UploadError("此安装未启用录音读取（需安装 kefuqa[audio]）")
            return safe, "audio"
        if not _text_supported(safe):
            raise UploadError(f"不支持的文件类型 {ext or '（无扩展名）'}")
        if len(data) > self.settings.max_text_file_bytes:
            raise UploadError(f"文本文件超过 {self.settings.max_text_file_bytes // (1024 * 1024)} MB")
        if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UploadError("文件内容是二进制数据，不是文本")
        return safe, "text"

    def store_audio_bytes(self, data: bytes, ext: str) -> Path:
        """Keep an audio file under the data dir, named by its content hash (so never by a client's name)."""
        digest = hashlib.sha256(data).hexdigest()
        self.settings.audio_dir.mkdir(parents=True, exist_ok=True)
        path = self.settings.audio_dir / f"{digest}{ext}"
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self.settings.audio_dir, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return path

    def read_upload(self, name: str, data: bytes) -> Iterator[Item | InputError]:
        """Conversations of one uploaded file (after `check_upload`)."""
        from .. import readers

        safe, kind = self.check_upload(name, data)
        if kind == "audio":
            path = self.store_audio_bytes(data, Path(safe).suffix.lower())
            for conv in readers.read_path(path, source_name=safe):
                if isinstance(conv, InputError):
                    yield InputError(safe, conv.place, conv.reason)
                else:
                    yield Item(conv, safe, path.name)
            return
        for conv in readers.read_bytes(data, safe):
            yield conv if isinstance(conv, InputError) else Item(conv, safe)

    def read_local(self, path: Path) -> Iterator[Item | InputError]:
        """Conversations of a local file (for `kefuqa ingest`): audio is copied into the data dir."""
        from .. import readers

        ext = path.suffix.lower()
        if ext in AUDIO_EXTENSIONS:
            with path.open("rb") as fh:
                head = fh.read(16)
            if not _sniff_audio(head, ext):
                yield InputError(str(path), None, f"not {ext[1:]} audio")
                return
            if not _audio_supported():
                yield InputError(str(path), None, "audio input needs the audio extra: pip install 'kefuqa[audio]'")
                return
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self.settings.audio_dir.mkdir(parents=True, exist_ok=True)
            stored = self.settings.audio_dir / f"{digest}{ext}"
            if not stored.exists():
                shutil.copyfile(path, stored)
            for conv in readers.read_path(stored, source_name=path.name):
                if isinstance(conv, InputError):
                    yield InputError(str(path), conv.place, conv.reason)
                else:
                    yield Item(conv, path.name, stored.name)
            return
        for conv in readers.read_path(path):
            yield conv if isinstance(conv, InputError) else Item(conv, path.name)

    # ---- scoring and storing -----------------------------------------------------------------------------

    @staticmethod
    def score_items(items: list[Item], checker: Any) -> None:
        for item in items:
            item.report = checker.check(item.conversation)
            item.data = conversation_data(item.conversation, item.audio_file)
            item.content_hash = content_hash(item.data)

    def ingest(self, items: Iterable[Item], *, user_id: int | None = None, replace: bool = False) -> Ingested:
        """Score with the active rulebook and store, in batches of STORE_BATCH (one transaction each)."""
        out = Ingested([], "")
        batch: list[Item] = []
        for item in items:
            batch.append(item)
            if len(batch) >= STORE_BATCH:
                self._ingest_batch(batch, user_id, replace, out)
                batch = []
        if batch:
            self._ingest_batch(batch, user_id, replace, out)
        return out

    def ingest_shared(self, items: list[Item], *, user_id: int | None = None, replace: bool = False) -> Ingested:
        """`ingest` for small requests arriving concurrently: they share one transaction (group commit), so
        many one-conversation uploads cost about what one batch of them costs."""
        if len(items) > GROUP_SMALL:
            return self.ingest(items, user_id=user_id, replace=replace)  # already a batch of its own
        return self._group.submit(items, user_id, replace)

    def _ingest_batch(self, items: list[Item], user_id: int | None, replace: bool, out: Ingested) -> None:
        for attempt in range(3):
            try:
                with self.sessions() as db, db.begin():
                    rb = self.active(db)
                    self.score_items(items, rb.checker)
                    outcomes, learned = self._store(db, items, rb, user_id, replace)
            except IntegrityError:
                # Another request stored one of these call ids (or agents) at the same moment: look again.
                if attempt == 2:
                    raise
                continue
            self._agent_cache.update(learned)  # only what a committed transaction wrote
            out.outcomes.extend(outcomes)
            out.rulebook = rb.label
            return

    def _insert_ignore(self, db: DBSession, model: Any, rows: list[dict[str, Any]], key: str) -> None:
        if not rows:
            return
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        db.execute(dialect.insert(model).on_conflict_do_nothing(index_elements=[key]), rows)

    def _agents(self, db: DBSession, items: list[Item]) -> tuple[dict[str, tuple[int, int | None]],
                                                                  dict[str, tuple[int, int | None, str | None,
                                                                                  str | None]]]:
        """Agent code → (agent id, team id), creating agents and teams met for the first time and following
        agents who changed name or team. Agents already known to this process as they are cost no query.
        Returns the mapping and what to add to the process's agent cache once the transaction commits."""
        wanted: dict[str, tuple[str | None, str | None]] = {}
        for i in items:
            a = i.conversation.agent
            code = agent_code(a)
            if code and a is not None:
                name, team = wanted.get(code, (None, None))
                wanted[code] = (a.name or name, a.team or team)
        out: dict[str, tuple[int, int | None]] = {}
        todo: dict[str, tuple[str | None, str | None]] = {}
        for code, (name, team) in wanted.items():
            known = self._agent_cache.get(code)
            if known and name in (None, known[2]) and team in (None, known[3]):
                out[code] = (known[0], known[1])
            else:
                todo[code] = (name, team)
        if not todo:
            return out, {}
        teams = sorted({t for _, t in todo.values() if t})
        self._insert_ignore(db, Team, [{"name": t, "created_at": utcnow()} for t in teams], "name")
        team_ids = dict(db.execute(select(Team.name, Team.id).where(Team.name.in_(teams))).all()) if teams else {}
        self._insert_ignore(db, Agent, [{"code": c, "name": n, "team_id": team_ids.get(t) if t else None,
                                         "created_at": utcnow()} for c, (n, t) in sorted(todo.items())], "code")
        learned = {}
        for agent in db.scalars(select(Agent).where(Agent.code.in_(todo))):
            name, team = todo[agent.code]
            if name and agent.name != name:
                agent.name = name
            if team and agent.team_id != team_ids[team]:
                agent.team_id = team_ids[team]  # agents move between teams; their old calls keep the old team
            team_name = team or (agent.team.name if agent.team else None)
            out[agent.code] = (agent.id, agent.team_id)
            learned[agent.code] = (agent.id, agent.team_id, agent.name, team_name)
        return out, learned

    def _store(self, db: DBSession, items: list[Item], rb: scoring.Loaded, user_id: int | None,
               replace: bool) -> tuple[list[Outcome], dict[str, Any]]:
        """Insert the scored conversations with a handful of bulk statements (SQLAlchemy Core, executemany
        with RETURNING): conversations, scores, findings, the current-score links, one audit entry."""
        agents, learned = self._agents(db, items)
        conv_t, score_t = CONVERSATIONS, SCORES
        existing = {r.call_id: r for r in db.execute(
            select(conv_t.c.id, conv_t.c.call_id, conv_t.c.content_hash, conv_t.c.score, conv_t.c.grade)
            .where(conv_t.c.call_id.in_({i.conversation.id for i in items})))}
        outcomes: list[Outcome] = []
        new: list[tuple[Item, dict[str, Any], Outcome]] = []
        replaced: list[tuple[Item, int, dict[str, Any], Outcome]] = []
        seen: dict[str, str] = {}
        now = utcnow()
        for item in items:
            conv = item.conversation
            cid = conv.id
            if cid in seen:
                same = seen[cid] == item.content_hash
                outcomes.append(Outcome(cid, "unchanged" if same else "conflict", source=item.source_name,
                                        error=None if same else "同一批次中有两个同编号但内容不同的会话"))
                continue
            seen[cid] = item.content_hash
            agent_id, team_id = agents.get(agent_code(conv.agent) or "", (None, None))
            report = item.report
            fields = conversation_fields(item, agent_id, team_id)
            fields.update(score=float(report.score), grade=report.grade, fatal=bool(report.fatal), updated_at=now)
            old = existing.get(cid)
            if old is not None:
                if old.content_hash == item.content_hash:
                    outcomes.append(Outcome(cid, "unchanged", old.id, old.score, old.grade, source=item.source_name))
                elif not replace:
                    outcomes.append(Outcome(cid, "conflict", old.id, source=item.source_name,
                                            error="会话编号已存在且内容不同（需要覆盖时请选择“替换已有会话”）"))
                else:
                    o = Outcome(cid, "replaced", old.id, float(report.score), report.grade, source=item.source_name)
                    replaced.append((item, old.id, fields, o))
                    outcomes.append(o)
                continue
            o = Outcome(cid, "stored", None, float(report.score), report.grade, source=item.source_name)
            new.append((item, {**fields, "uploaded_by": user_id, "created_at": now}, o))
            outcomes.append(o)
        if not new and not replaced:
            return outcomes, learned
        if new:
            ids = db.execute(insert(conv_t).returning(conv_t.c.id, sort_by_parameter_order=True),
                             [f for _, f, _ in new]).scalars().all()
            for (_, _, o), new_id in zip(new, ids, strict=True):
                o.id = new_id
        for _, conv_id, fields, _ in replaced:
            db.execute(update(conv_t).where(conv_t.c.id == conv_id).values(**fields))
        todo = [(item, int(o.id or 0), "ingest") for item, _, o in new]
        todo += [(item, cid, "replace") for item, cid, _, _ in replaced]
        score_ids = db.execute(insert(score_t).returning(score_t.c.id, sort_by_parameter_order=True), [
            self._score_values(item.report, conv_id, rb.id, user_id, reason, now) for item, conv_id, reason in todo
        ]).scalars().all()
        rows: list[dict[str, Any]] = []
        for (item, conv_id, _), score_id in zip(todo, score_ids, strict=True):
            rows.extend(finding_rows(item.report, score_id, conv_id))
        if rows:
            db.execute(insert(FINDINGS), rows)
        db.execute(update(conv_t).where(conv_t.c.id == bindparam("b_conv")).values(current_score_id=bindparam("b_score")),
                   [{"b_conv": conv_id, "b_score": sid} for (_, conv_id, _), sid in zip(todo, score_ids, strict=True)])
        db.execute(insert(AUDIT).values(
            user_id=user_id, action="conversation.ingest", object_type="conversation",
            object_id=str(todo[0][1]) if len(todo) == 1 else None, at=now,
            detail={"count": len(todo), "rulebook": rb.label, "replaced": len(replaced)}))
        return outcomes, learned

    @staticmethod
    def _score_values(report: Any, conversation_id: int, rulebook_id: int, user_id: int | None, reason: str,
                      now: datetime) -> dict[str, Any]:
        return {"conversation_id": conversation_id, "rulebook_id": rulebook_id, "score": float(report.score),
                "final_score": float(report.score), "grade": report.grade, "fatal": bool(report.fatal),
                "dimensions": dict(report.dimensions), "report": report.to_dict(), "reason": reason,
                "created_by": user_id, "created_at": now}

    @classmethod
    def _score_row(cls, report: Any, conversation_id: int, rulebook_id: int, user_id: int | None,
                   reason: str) -> Score:
        return Score(**cls._score_values(report, conversation_id, rulebook_id, user_id, reason, utcnow()))

    def rescore(self, db: DBSession, conv: Conversation, *, user_id: int | None) -> Score:
        """Score a stored conversation again with the active rulebook; the old scores stay as history and
        inspectors' verdicts and pending appeals move to the matching new findings."""
        rb = self.active(db)
        report = rb.checker.check(ConversationModel.model_validate(conv.data))
        score = self._score_row(report, conv.id, rb.id, user_id, "rescore")
        db.add(score)
        db.flush()
        old = list(db.scalars(select(Finding).where(Finding.score_id == conv.current_score_id))) \
            if conv.current_score_id else []
        rows = finding_rows(report, score.id, conv.id)
        db.execute(insert(FINDINGS), rows)
        new = list(db.scalars(select(Finding).where(Finding.score_id == score.id)))
        carry_over(db, old, new)
        conv.current_score_id = score.id
        recompute(db, conv, score, rb.scorecard)
        return score


# ---- helpers ---------------------------------------------------------------------------------------------


def agent_code(agent: Any) -> str | None:
    if agent is None:
        return None
    code = agent.id or agent.name
    return str(code).strip()[:100] if code else None


def conversation_data(conv: ConversationModel, audio_file: str | None) -> dict[str, Any]:
    data = conv.model_dump(mode="json", exclude_none=True)
    data.pop("source", None)  # a path of the machine it was read on; the file name is kept in the row
    metrics = data.get("metrics") or {}
    if "audio_path" in metrics:  # a path of this server: keep only the stored file's name
        metrics["audio_path"] = audio_file
    if audio_file:
        metrics["audio"] = True
    if metrics:
        data["metrics"] = metrics
    return data


def content_hash(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k not in ("source", "notes")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def call_time(conv: ConversationModel) -> datetime:
    for value in (conv.started_at, conv.received_at):
        if value is not None:
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return utcnow()


def conversation_fields(item: Item, agent_id: int | None, team_id: int | None) -> dict[str, Any]:
    conv = item.conversation
    ends = [u.end for u in conv.utterances if u.end is not None]
    recorded = conv.metrics.get("duration_seconds")
    duration = float(recorded) if isinstance(recorded, (int, float)) else (max(ends) if ends else None)
    return {
        "call_id": conv.id, "agent_id": agent_id, "team_id": team_id, "channel": conv.channel,
        "direction": conv.direction, "call_at": call_time(conv), "duration": duration,
        "utterance_count": len(conv.utterances), "has_audio": bool(item.audio_file),
        "audio_file": item.audio_file, "source_name": (item.source_name or None) and item.source_name[:255],
        "content_hash": item.content_hash, "data": item.data,
    }


def finding_rows(report: Any, score_id: int, conversation_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    base = {"score_id": score_id, "conversation_id": conversation_id, "status": "open"}
    for i, f in enumerate(report.findings):
        span = f.span or (None, None)
        rows.append({**base, "kind": "finding", "position": i, "rule": f.rule, "name": f.name,
                     "severity": f.severity, "points": float(f.points or 0), "dimension": f.dimension,
                     "utterance": f.utterance, "start": f.start, "end": f.end, "evidence": f.evidence,
                     "message": f.message, "suggestion": f.suggestion, "span_start": span[0], "span_end": span[1]})
    for i, e in enumerate(report.events):
        span = e.span or (None, None)
        rows.append({**base, "kind": "event", "position": i, "rule": e.rule, "name": e.name, "severity": "event",
                     "points": 0.0, "dimension": None, "utterance": e.utterance, "start": e.start, "end": None,
                     "evidence": e.evidence, "message": e.name, "suggestion": None, "span_start": span[0],
                     "span_end": span[1]})
    return rows


def _key(f: Finding) -> tuple[Any, ...]:
    return (f.kind, f.rule, f.utterance, f.evidence)


def carry_over(db: DBSession, old: list[Finding], new: list[Finding]) -> None:
    """Verdicts of old findings to the new findings that say the same (same rule, utterance, evidence)."""
    by_key = {_key(f): f for f in new}
    for f in old:
        target = by_key.get(_key(f))
        if target is None:
            continue
        if f.status != "open":
            target.status, target.reviewed_by, target.reviewed_at, target.review_reason = (
                f.status, f.reviewed_by, f.reviewed_at, f.review_reason)
        db.execute(update(Appeal).where(Appeal.finding_id == f.id).values(finding_id=target.id))


def recompute(db: DBSession, conv: Conversation, score: Score, scorecard: dict[str, Any]) -> None:
    """The effective score of `score` from its findings' statuses; copied to the conversation if current."""
    voided = set(db.scalars(select(Finding.position).where(
        Finding.score_id == score.id, Finding.kind == "finding", Finding.status.in_(("rejected", "overturned")))))
    final, grade, fatal = scoring.effective_score(score.report, voided, scorecard)
    score.final_score, score.grade, score.fatal = final, grade, fatal
    if conv.current_score_id == score.id:
        conv.score, conv.grade, conv.fatal = final, grade, fatal
