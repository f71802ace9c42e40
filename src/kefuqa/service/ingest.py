"""Ingest: read uploaded or local files into conversations, score them with the active rulebook and store
them (conversations, scores, findings) in bulk, with group commit for many small concurrent uploads."""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DBSession
from sqlalchemy.orm import sessionmaker

from ..engine import Checker
from ..errors import InputError
from ..model import Conversation as ConversationModel
from ..model import Report
from ..readers.calls import CallFiles, group_targets, is_manifest, is_recording, read_call
from . import audio_store
from .audio_store import AUDIO_EXTENSIONS, AudioStore
from .config import Settings
from .errors import Busy
from .models import Agent, AuditEntry, Conversation, Finding, Score, Team, utcnow
from .records import (
    agent_code,
    content_hash,
    conversation_data,
    conversation_fields,
    finding_rows,
    score_values,
)
from .rulebooks import Loaded, Rulebooks
from .scores import carry_over, recompute

TEXT_EXTENSIONS = {".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".tab", ".txt", ".text"}
STORE_BATCH = 200
CONVERSATIONS = cast(Table, Conversation.__table__)
SCORES = cast(Table, Score.__table__)
FINDINGS = cast(Table, Finding.__table__)
AUDIT = cast(Table, AuditEntry.__table__)
_SAFE_NAME = re.compile(r"[^\w.\-\u4e00-\u9fff]+")

GROUP_MAX = 200  # requests one shared transaction takes at most
GROUP_SMALL = 5  # requests of up to this many conversations share transactions
GROUP_WAIT = 0.003  # seconds the first request waits for others to join
INGEST_SLOTS = 4  # ingests scoring and storing at once in one process (one connection each)
INGEST_WAIT = 30.0  # seconds an upload waits for a slot before it is refused (Busy)
BUSY_RETRY_AFTER = 3  # seconds, in the Retry-After of that refusal


class UploadError(ValueError):
    """A file was refused before reading (size, type, content); it becomes an error outcome."""


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


@dataclass
class Item:
    conversation: ConversationModel
    source_name: str | None = None
    audio_file: str | None = None
    report: Report | None = None
    data: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""


def safe_filename(name: str) -> str:
    """The last path component of a client-supplied name, with anything odd replaced; never a path."""
    base = re.split(r"[\\/]", name or "")[-1].strip().lstrip(".")
    base = _SAFE_NAME.sub("_", base)[:120]
    return base or "upload"


# ---- reading ---------------------------------------------------------------------------------------------


class Reader:
    """Files → conversations: uploads (checked first) and local files; recordings go to the audio store."""

    def __init__(self, settings: Settings, audio: AudioStore) -> None:
        self.settings = settings
        self.audio = audio

    def check_upload(self, name: str, data: bytes) -> tuple[str, str]:
        """(safe name, "audio" | "text") for an acceptable upload, else UploadError."""
        s = self.settings
        safe = safe_filename(name)
        ext = Path(safe).suffix.lower()
        if not data:
            raise UploadError("文件为空")
        if ext in AUDIO_EXTENSIONS:
            if len(data) > s.max_file_bytes:
                raise UploadError(f"录音文件超过 {s.max_file_bytes // (1024 * 1024)} MB")
            if not audio_store.sniff(data[:16], ext):
                raise UploadError(f"文件内容不是 {ext[1:]} 音频")
            if not audio_store.supported():
                raise UploadError("此安装未启用录音读取（需安装 kefuqa[audio]）")
            return safe, "audio"
        if ext not in TEXT_EXTENSIONS:
            raise UploadError(f"不支持的文件类型 {ext or '（无扩展名）'}")
        if len(data) > s.max_text_file_bytes:
            raise UploadError(f"文本文件超过 {s.max_text_file_bytes // (1024 * 1024)} MB")
        if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UploadError("文件内容是二进制数据，不是文本")
        return safe, "text"

    def read_upload(self, name: str, data: bytes) -> Iterator[Item | InputError]:
        """Conversations of one uploaded file (UploadError when the file is refused)."""
        from .. import readers

        safe, kind = self.check_upload(name, data)
        if kind == "audio":
            path = self.audio.keep_bytes(data, Path(safe).suffix.lower())
            for conv in readers.read_path(path, source_name=safe):
                if isinstance(conv, InputError):
                    yield InputError(safe, conv.place, conv.reason)
                else:
                    yield Item(conv, safe, path.name)
            return
        for conv in readers.read_bytes(data, safe):
            yield conv if isinstance(conv, InputError) else Item(conv, safe)

    def read_local(self, path: Path) -> Iterator[Item | InputError]:
        """Conversations of a local file (for `kefuqa ingest`): audio is copied into the audio store."""
        from .. import readers

        ext = path.suffix.lower()
        if ext in AUDIO_EXTENSIONS:
            with path.open("rb") as fh:
                head = fh.read(16)
            if not audio_store.sniff(head, ext):
                yield InputError(str(path), None, f"文件内容不是 {ext[1:]} 音频")
                return
            if not audio_store.supported():
                yield InputError(str(path), None, "读取录音需要安装音频组件：pip install 'kefuqa[audio]'")
                return
            stored = self.audio.keep_file(path)
            for conv in readers.read_path(stored, source_name=path.name):
                if isinstance(conv, InputError):
                    yield InputError(str(path), conv.place, conv.reason)
                else:
                    yield Item(conv, path.name, stored.name)
            return
        for conv in readers.read_path(path):
            yield conv if isinstance(conv, InputError) else Item(conv, path.name)

    def read_upload_calls(self, files: list[tuple[str, bytes]]
                          ) -> tuple[list[Item | InputError], list[tuple[str, bytes]]]:
        """Uploaded files that make calls together — a recording with the transcript of the same stem, the
        rows of an uploaded manifest — read as those calls (`read_local_call` on a private copy); returns
        them and the uploads left to read one by one. An upload refused by `check_upload` is left there
        (it is reported where it is read)."""
        names = [safe_filename(n) for n, _ in files]
        stems = [Path(n).stem for n in names]
        pairs = any(is_recording(n) and stems.count(Path(n).stem) > 1 for n in names)
        if len(set(names)) != len(names) or not (pairs or any(is_manifest(n) for n in names)):
            return [], files
        out: list[Item | InputError] = []
        with tempfile.TemporaryDirectory(prefix="kefuqa-upload-") as tmp:
            written: dict[str, int] = {}
            for i, ((name, data), safe) in enumerate(zip(files, names, strict=True)):
                try:
                    if not is_manifest(safe):
                        self.check_upload(name, data)
                except UploadError:
                    continue
                (Path(tmp) / safe).write_bytes(data)
                written[str(Path(tmp) / safe)] = i
            grouped, errors = group_targets(sorted(Path(p) for p in written))
            used: set[int] = set()
            for e in errors:
                out.append(InputError(Path(e.source).name, e.place, e.reason))
            for g in grouped:
                if not isinstance(g, CallFiles):
                    continue
                used.update(written[p] for p in (g.transcript, g.recording) if p)
                for got in self.read_local_call(g):
                    if isinstance(got, InputError):
                        out.append(InputError(Path(got.source.split(" + ")[0]).name, got.place,
                                              got.reason.replace(tmp + "/", "")))
                    else:
                        got.conversation = got.conversation.model_copy(update={"source": got.source_name})
                        if got.conversation.metrics.get("audio_path"):
                            got.conversation.metrics["audio_path"] = Path(str(g.recording)).name
                        out.append(got)
            used.update(i for p, i in written.items() if is_manifest(p))
        return out, [f for i, f in enumerate(files) if i not in used]

    def read_local_call(self, call: CallFiles) -> Iterator[Item | InputError]:
        """One call from several local files (recording + transcript + manifest row, `kefuqa.readers.calls`):
        the recording is copied into the audio store and measured there, by the library's `read_call`."""
        stored: Path | None = None
        if call.recording is not None:
            rec = Path(call.recording)
            ext = rec.suffix.lower()
            with rec.open("rb") as fh:
                head = fh.read(16)
            if not audio_store.sniff(head, ext):
                yield InputError(str(rec), None, f"文件内容不是 {ext[1:]} 音频")
                return
            if audio_store.supported():
                stored = self.audio.keep_file(rec)
        shown = " + ".join(Path(p).name for p in (call.transcript, call.recording) if p)
        for conv in read_call(call, recording_path=stored):
            if isinstance(conv, InputError):
                yield conv
            else:
                yield Item(conv, shown, stored.name if stored is not None else None)


# ---- scoring and storing -----------------------------------------------------------------------------------


class _GroupCommit:
    """Group commit for small uploads: the first request to arrive leads; it waits a few milliseconds for
    the requests that arrive meanwhile, stores all of them in one `ingest` per (user, replace), and hands
    each request its own outcomes. A failure fails only the requests of that group."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
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
                done = self.ingestor.ingest([i for items, _ in members for i in items], user_id=user_id,
                                            replace=replace)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
                for _, fut in members:
                    fut.set_exception(exc)
                continue
            at = 0
            for items, fut in members:  # outcomes come back in item order
                fut.set_result(Ingested(done.outcomes[at:at + len(items)], done.rulebook))
                at += len(items)


def score_items(items: list[Item], checker: Checker) -> None:
    for item in items:
        if item.report is not None and item.content_hash and \
                item.report.rulebook.get("version") == checker.rulebook.version:
            continue  # scored already by this rulebook version (a `kefuqa batch` output): stored as it is
        item.report = checker.check(item.conversation)
        item.data = conversation_data(item.conversation, item.audio_file)
        item.content_hash = content_hash(item.data)


class Ingestor:
    """Scores items with the active rulebook and stores them, in batches of STORE_BATCH (one transaction
    each); many small concurrent requests share transactions (`ingest_shared`)."""

    def __init__(self, sessions: sessionmaker[DBSession], rulebooks: Rulebooks, dialect: str, *,
                 slots: int = INGEST_SLOTS, wait: float = INGEST_WAIT, tz: str = "UTC") -> None:
        self.sessions = sessions
        self.tz = ZoneInfo(tz)  # the zone of a call time given without an offset
        self.rulebooks = rulebooks
        self.dialect = dialect
        # At most `slots` ingests of this process score and store at once, each on one connection, so a burst
        # of uploads queues here instead of exhausting the connection pool; who waits longer than `wait`
        # seconds is told to come back (Busy: 503 with Retry-After), with nothing stored.
        self.gate = threading.BoundedSemaphore(slots)
        self.wait = wait
        # agent code → (agent id, team id, name, team name) as last stored by this process
        self._agent_cache: dict[str, tuple[int, int | None, str | None, str | None]] = {}
        self._group = _GroupCommit(self)

    def ingest(self, items: Iterable[Item], *, user_id: int | None = None, replace: bool = False) -> Ingested:
        if not self.gate.acquire(timeout=self.wait):
            raise Busy("当前导入任务较多，本次上传未保存，请稍后重试", retry_after=BUSY_RETRY_AFTER)
        try:
            return self._ingest(items, user_id, replace)
        finally:
            self.gate.release()

    def _ingest(self, items: Iterable[Item], user_id: int | None, replace: bool) -> Ingested:
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
                    rb = self.rulebooks.active(db)
                    score_items(items, rb.checker)
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

    def _carry_over(self, db: DBSession, previous: dict[int | None, int | None], user_id: int | None) -> None:
        """A replaced call keeps the inspectors' verdicts and pending appeals on the findings its new content
        still has (as a re-scoring does); an appeal whose finding is gone is closed as moot."""
        for conv_id, old_score_id in previous.items():
            conv = db.get(Conversation, conv_id)
            if conv is None or old_score_id is None or conv.current_score_id is None:
                continue
            old = list(db.scalars(select(Finding).where(Finding.score_id == old_score_id)))
            new = list(db.scalars(select(Finding).where(Finding.score_id == conv.current_score_id)))
            carry_over(db, old, new, user_id=user_id, call_id=conv.call_id)
            score = db.get(Score, conv.current_score_id)
            if score is not None and any(f.status != "open" for f in new):
                recompute(db, self.rulebooks, conv, score)
        db.flush()

    def _store(self, db: DBSession, items: list[Item], rb: Loaded, user_id: int | None,
               replace: bool) -> tuple[list[Outcome], dict[str, Any]]:
        """Insert the scored conversations with a handful of bulk statements (SQLAlchemy Core, executemany
        with RETURNING): conversations, scores, findings, the current-score links, one audit entry."""
        agents, learned = self._agents(db, items)
        conv_t, score_t = CONVERSATIONS, SCORES
        existing = {r.call_id: r for r in db.execute(
            select(conv_t.c.id, conv_t.c.call_id, conv_t.c.content_hash, conv_t.c.score, conv_t.c.grade,
                   conv_t.c.current_score_id)
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
            assert report is not None  # scored above
            fields = conversation_fields(conv, item.data, item.content_hash, agent_id=agent_id, team_id=team_id,
                                         audio_file=item.audio_file, source_name=item.source_name, tz=self.tz)
            fields.update(score=float(report.score), grade=report.grade, fatal=bool(report.fatal), updated_at=now,
                          insufficient=bool(report.coverage is not None and not report.coverage.sufficient))
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
            score_values(cast(Report, item.report), conv_id, rb.id, user_id, reason, now)
            for item, conv_id, reason in todo
        ]).scalars().all()
        rows: list[dict[str, Any]] = []
        for (item, conv_id, _), score_id in zip(todo, score_ids, strict=True):
            rows.extend(finding_rows(cast(Report, item.report), score_id, conv_id))
        if rows:
            db.execute(insert(FINDINGS), rows)
        db.execute(update(conv_t).where(conv_t.c.id == bindparam("b_conv")).values(current_score_id=bindparam("b_score")),
                   [{"b_conv": conv_id, "b_score": sid} for (_, conv_id, _), sid in zip(todo, score_ids, strict=True)])
        if replaced:
            self._carry_over(db, {o.id: existing[item.conversation.id].current_score_id
                                  for item, _, _, o in replaced}, user_id)
        db.execute(insert(AUDIT).values(
            user_id=user_id, action="conversation.ingest", object_type="conversation",
            object_id=str(todo[0][1]) if len(todo) == 1 else None, at=now,
            detail={"count": len(todo), "rulebook": rb.label, "replaced": len(replaced)}))
        return outcomes, learned
