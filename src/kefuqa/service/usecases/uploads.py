"""Conversations into the workbench: uploaded files, JSON posted to the API, local files (`kefuqa ingest`).
Every readable conversation is scored with the active rulebook and stored; what cannot be read becomes an
error outcome, never a failed request."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from ...errors import InputError
from ...model import Conversation as ConversationModel
from ...model import loc_text, unsafe_value
from ..audio_store import AUDIO_EXTENSIONS
from ..errors import Invalid, TooLarge
from ..ingest import STORE_BATCH, Ingested, Item, Outcome, UploadError, safe_filename
from ..models import Conversation
from ..repository import audit
from .context import Ctx

UPLOADERS = ("admin", "qa")


def summary(rulebook: str, outcomes: list[Outcome]) -> dict[str, Any]:
    """What the API answers and the upload page shows."""
    return {
        "rulebook": rulebook,
        "stored": sum(1 for o in outcomes if o.status in ("stored", "replaced")),
        "unchanged": sum(1 for o in outcomes if o.status == "unchanged"),
        "conflicts": sum(1 for o in outcomes if o.status == "conflict"),
        "errors": sum(1 for o in outcomes if o.status == "error"),
        "results": [o.to_dict() for o in outcomes],
    }


def _label(ctx: Ctx, done: Ingested) -> str:
    return done.rulebook or ctx.wb.active_label()


def upload_files(ctx: Ctx, files: list[tuple[str, bytes]], *, replace: bool = False) -> dict[str, Any]:
    """Check, read, score and store uploaded files (name, content): every format the CLI reads, audio too.
    A recording whose call was not stored (unreadable, a conflict, the request refused) is removed again
    unless another call references the same file."""
    ctx.require(UPLOADERS, "只有质检员和管理员可以导入会话")
    s = ctx.settings
    if not files:
        raise Invalid("没有上传文件")
    if len(files) > s.max_files:
        raise TooLarge(f"一次最多上传 {s.max_files} 个文件")
    exts = [(Path(safe_filename(name)).suffix.lower(), data) for name, data in files]
    audio = {ctx.wb.audio.name_for(data, ext) for ext, data in exts if ext in AUDIO_EXTENSIONS}
    try:
        return _upload(ctx, files, replace)
    finally:
        if audio:
            _discard_unreferenced(ctx, audio)


def _discard_unreferenced(ctx: Ctx, names: set[str]) -> None:
    with ctx.transaction() as db:
        used = set(db.scalars(select(Conversation.audio_file).where(Conversation.audio_file.in_(names))))
    ctx.wb.audio.discard(names, {u for u in used if u})


def _upload(ctx: Ctx, files: list[tuple[str, bytes]], replace: bool) -> dict[str, Any]:
    s = ctx.settings
    items: list[Item] = []
    errors: list[Outcome] = []
    # issue 10: a recording with its transcript (and the rows of an uploaded manifest) is one call
    calls, files = ctx.wb.reader.read_upload_calls(files)
    for got in calls:
        if isinstance(got, InputError):
            errors.append(Outcome(None, "error", error=got.reason if not got.place else f"{got.place}: {got.reason}",
                                  source=got.source))
        else:
            items.append(got)
    for name, data in files:
        try:
            for got in ctx.wb.reader.read_upload(name, data):
                if isinstance(got, InputError):
                    errors.append(Outcome(None, "error", error=got.reason if not got.place else
                                          f"{got.place}: {got.reason}", source=got.source))
                else:
                    items.append(got)
                if len(items) > s.max_conversations_per_request:
                    raise TooLarge(f"一次最多导入 {s.max_conversations_per_request} 通会话")
        except UploadError as exc:
            errors.append(Outcome(None, "error", error=str(exc), source=name[-255:]))
    ctx.db.commit()  # the request's connection goes back to the pool while the ingest waits for a slot
    done = ctx.wb.ingestor.ingest(items, user_id=ctx.user_id, replace=replace)
    if errors:
        with ctx.transaction() as db:
            audit(db, ctx.user, "conversation.upload_errors", None, None, ctx.ip,
                  errors=[e.to_dict() for e in errors[:50]])
    return summary(_label(ctx, done), done.outcomes + errors)


def shown_id(rec: object) -> str | None:
    """A record's call id as it may be shown in an answer: at most 200 characters, a lone surrogate or NUL
    written as its escape (JSON answers must be valid UTF-8)."""
    cid = rec.get("id") if isinstance(rec, dict) else None
    if cid is None:
        return None
    text = str(cid)[:200]
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def post_conversations(ctx: Ctx, records: list[dict[str, Any]], *, replace: bool = False) -> dict[str, Any]:
    """Score and store conversations given as JSON (DESIGN §1); an invalid record is an error outcome."""
    ctx.require(UPLOADERS, "只有质检员和管理员可以导入会话")
    limit = ctx.settings.max_conversations_per_request
    if len(records) > limit:
        raise TooLarge(f"一次最多导入 {limit} 通会话")
    items: list[Item] = []
    errors: list[Outcome] = []
    for i, rec in enumerate(records):
        bad = unsafe_value(rec)  # the core's rules for what no layer can store (kefuqa.model)
        if bad is not None:
            errors.append(Outcome(shown_id(rec), "error", error=f"[{i}] {loc_text(bad[0]) or '会话'}: {bad[1]}"))
            continue
        try:
            items.append(Item(ConversationModel.model_validate(rec), "api"))
        except ValidationError as exc:
            first = exc.errors()[0]
            place = loc_text(tuple(first.get("loc", ()))) or "会话"
            msg = str(first.get("msg", "")).removeprefix("Value error, ")
            errors.append(Outcome(shown_id(rec), "error", error=f"[{i}] {place}: {msg}"))
    ctx.db.commit()  # the request's connection goes back to the pool while the ingest waits for a slot
    done = ctx.wb.ingestor.ingest_shared(items, user_id=ctx.user_id, replace=replace)
    return summary(_label(ctx, done), done.outcomes + errors)


@dataclass
class IngestRun:
    """What `ingest_paths` did."""

    files: int = 0
    missing: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def average(self) -> float | None:
        scores = [o.score for o in self.outcomes if o.status in ("stored", "replaced") and o.score is not None]
        return sum(scores) / len(scores) if scores else None


def ingest_paths(ctx: Ctx, paths: Iterable[str], *, replace: bool = False,
                 on_error: Callable[[str], None] = lambda _: None) -> IngestRun:
    """Read, score and store local files and folders (for `kefuqa ingest`); `on_error` hears each missing
    path and unreadable record as it is met."""
    from ... import readers
    from ...readers.calls import CallFiles, group_targets

    ctx.require(UPLOADERS, "只有质检员和管理员可以导入会话")
    run = IngestRun()
    present = []
    for p in paths:
        if Path(p).exists():
            present.append(p)
        else:
            run.missing.append(p)
            on_error(f"{p}: 文件或目录不存在")
    batch: list[Item] = []
    files = list(readers.iter_paths(present))
    run.files = len(files)
    targets, bad_rows = group_targets(files)  # recording + transcript (+ manifest row) = one call
    for e in bad_rows:
        run.outcomes.append(Outcome(None, "error", error=str(e), source=e.source))
        on_error(str(e))
    for path in targets:
        got_items = (ctx.wb.reader.read_local_call(path) if isinstance(path, CallFiles)
                     else ctx.wb.reader.read_local(Path(path)))
        for got in got_items:
            if isinstance(got, Item):
                batch.append(got)
                if len(batch) >= STORE_BATCH:
                    run.outcomes.extend(ctx.wb.ingestor.ingest(batch, user_id=ctx.user_id, replace=replace).outcomes)
                    batch = []
            else:
                run.outcomes.append(Outcome(None, "error", error=str(got), source=str(path)))
                on_error(str(got))
    if batch:
        run.outcomes.extend(ctx.wb.ingestor.ingest(batch, user_id=ctx.user_id, replace=replace).outcomes)
    return run
