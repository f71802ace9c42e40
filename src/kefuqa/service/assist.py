"""Real-time agent assist over WebSocket, protocol v1 (docs/assist.md): one connection per call, text
frames in (start, utterance, event, tick, hangup) and out (ready, guidance, ack, error, ended). A call
that hangs up is stored as a normal scored conversation through the ingest use case (with the report the
session computed: no second scoring); live calls are listed for the supervisor wall from the database.

Several worker processes: each call's accepted frames are journaled (`live_store`), so a resume or a watch
that lands on another worker (or on the server after a restart) rebuilds the call by replaying them.
Role scoping on every path: an agent reaches only their own calls, a team leader their team's, QA and
admins all (`live_store.may_access`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..live import LiveError
from . import live_store
from .deps import SESSION_COOKIE, APIUser, PageForbidden, PageUser
from .ingest import Item
from .live_calls import PROTOCOL, Engine, LiveCall, LiveCalls, apply, error, parse, replay
from .live_store import Who, may_access
from .records import content_hash, conversation_data
from .usecases.auth import request_token
from .workbench import Workbench

router = APIRouter()

CLOSE_NORMAL = 1000
CLOSE_AUTH = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_REPLACED = 4409
CLOSE_BAD = 4400
CLOSE_LIMIT = 4429
CLOSE_TIMEOUT = 4408
FIRST_FRAME_SECONDS = 10.0
WATCH_POLL_SECONDS = 0.5  # a watcher on another worker than the call's reads its journal this often

# Storing hung-up calls and writing the journal run in threads of their own, so that neither waits for the
# other nor for the request threads, and the event loop only hands work over.
_STORE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assist-store")
_JOURNAL_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assist-journal")
_TOKENS = live_store.TokenCache()


def live_calls(app: Any) -> LiveCalls:
    calls = getattr(app.state, "live_calls", None)
    if calls is None:
        calls = app.state.live_calls = LiveCalls()
    return calls  # type: ignore[no-any-return]


def _who(wb: Workbench, token: str | None) -> Who | None:
    """The user behind a token; looked up once per `TOKEN_TTL` seconds (a storm of connections of one
    gateway or one agent costs one query)."""
    if not token:
        return None
    hit = _TOKENS.get(token)
    if hit is not None:
        return hit
    with wb.sessions() as db:
        who = live_store.lookup_user(db, token)
    if who is not None:
        _TOKENS.put(token, who)
    return who


def _user(wb: Workbench, token: str | None) -> tuple[int, str, str | None] | None:
    who = _who(wb, token)
    return (who.id, who.role, who.username) if who is not None else None


ENGINE_TTL = 5.0  # seconds a new call reuses the engine the previous one looked up (rulebook activation)


def _engine(wb: Workbench, calls: LiveCalls, rulebook_id: int | None = None) -> Engine:
    """The active rulebook's engine (a new call), or a given version's (a call rebuilt from its journal)."""
    if rulebook_id is None:
        recent = calls.engines.get("recent")
        if recent is not None and time.monotonic() - calls.engine_at < ENGINE_TTL:
            return recent
    elif f"{rulebook_id}" in calls.engines:
        return calls.engines[f"{rulebook_id}"]
    with wb.sessions() as db:
        rb = wb.rulebooks.active(db) if rulebook_id is None else wb.rulebooks.get(db, rulebook_id)
        rec_ref = None
        from .models import RulebookVersion

        rec = db.get(RulebookVersion, rb.id)
        if rec is not None and rec.origin != "upload":
            rec_ref = rec.source_ref
    key = f"{rb.id}"
    eng = calls.engines.get(key)
    if eng is None:
        eng = calls.engines[key] = Engine.build(rb.label, rb.checker, rb.name, rec_ref)
        eng.rulebook_id = rb.id
    if rulebook_id is None:
        calls.engines["recent"] = eng
        calls.engine_at = time.monotonic()
    return eng


def _in_db(wb: Workbench, fn: Any, *args: Any) -> Any:
    """`fn(db, *args)` in one transaction."""
    with wb.sessions() as db, db.begin():
        return fn(db, *args)


async def _db(wb: Workbench, fn: Any, *args: Any) -> Any:
    return await run_in_threadpool(_in_db, wb, fn, *args)


# ---- the journal: every worker's calls in the database ------------------------------------------------------


async def flush(app: Any, check: list[LiveCall] | None = None) -> None:
    """Write this worker's pending journal frames and wall views (one transaction, in the journal thread);
    calls another worker took over are let go. `check`: calls whose hold to confirm too."""
    wb: Workbench = app.state.workbench
    calls = live_calls(app)
    lock = _flush_lock(app)
    async with lock:
        taken = calls.take_pending()
        beat = [(c.session.call_id, c.epoch) for c in (check or []) if c.claimed]
        if not taken and not beat:
            return
        loop = asyncio.get_running_loop()
        try:
            lost = await loop.run_in_executor(_JOURNAL_POOL, _in_db, wb, live_store.flush, [p for _, p in taken], beat)
        except Exception:  # the database is away: keep everything for the next try
            calls.restore(taken)
            return
        calls.written(taken)
    for cid in lost:
        call = calls.calls.get(cid)
        if call is None:
            continue
        call.lost = True
        calls.calls.pop(cid, None)
        ws, call.connection = call.connection, None
        if ws is not None:
            await _send(ws, error("replaced", "这通电话已由另一台服务器上的新连接接管"))
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_REPLACED)
        for w in list(call.watchers):
            with contextlib.suppress(Exception):
                await w.close(CLOSE_REPLACED)


async def flush_at_shutdown(app: Any) -> None:
    """A server stopping (SIGTERM, a deploy) writes what its live calls have not journaled yet, so that a resume
    on the restarted server or on another worker loses no frame; calls it held are resumed from there."""
    calls = getattr(app.state, "live_calls", None)
    if calls is None:
        return
    for c in calls.calls.values():
        c.view_at = 0.0  # the wall's view too
    with contextlib.suppress(Exception):  # the database is away: the client resends from what the journal has
        await flush(app)


def _flush_lock(app: Any) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    held = getattr(app.state, "live_flush_lock", None)
    if held is None or held[0] is not loop:
        held = app.state.live_flush_lock = (loop, asyncio.Lock())
    return held[1]  # type: ignore[no-any-return]


async def _flusher(app: Any) -> None:
    calls = live_calls(app)
    last_beat = time.monotonic()
    while True:
        await asyncio.sleep(live_store.FLUSH_SECONDS)
        check = None
        if time.monotonic() - last_beat > live_store.HEARTBEAT_SECONDS:
            check = [c for c in calls.calls.values() if not c.session.ended]
            last_beat = time.monotonic()
        with contextlib.suppress(Exception):
            await flush(app, check)


async def _send(ws: WebSocket, frame: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):  # the peer went away: its call waits for a resume
        await ws.send_json(frame)


class _Stores:
    """Hung-up calls waiting to be stored: whatever piled up while the previous batch was being written goes
    in one ingest (one transaction), in a thread of its own — a hang-up storm costs a few transactions and
    never holds the event loop."""

    def __init__(self, wb: Workbench) -> None:
        self.wb = wb
        self.loop = asyncio.get_running_loop()
        self.waiting: list[tuple[Any, int | None, asyncio.Future[Any]]] = []
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, wb: Workbench) -> _Stores:
        stores = getattr(wb, "_live_stores", None)
        if stores is None or stores.loop is not asyncio.get_running_loop():
            stores = cls(wb)
            wb._live_stores = stores  # type: ignore[attr-defined]
        return stores  # type: ignore[no-any-return]

    async def store(self, report: Any, user_id: int | None) -> Any:
        fut: asyncio.Future[Any] = self.loop.create_future()
        self.waiting.append((report, user_id, fut))
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            groups: dict[int | None, list[tuple[Any, asyncio.Future[Any]]]] = {}
            for report, user_id, fut in batch:
                groups.setdefault(user_id, []).append((report, fut))
            for user_id, members in groups.items():
                try:
                    done = await self.loop.run_in_executor(_STORE_POOL, _ingest, self.wb, [r for r, _ in members],
                                                           user_id)
                except Exception as exc:  # noqa: BLE001 - handed to the waiting calls
                    for _, fut in members:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                by_id = {o.call_id: o for o in done.outcomes}
                for report, fut in members:
                    if not fut.done():
                        fut.set_result(by_id.get(report.conversation.id))


def _ingest(wb: Workbench, reports: list[Any], user_id: int | None) -> Any:
    items = []
    for report in reports:
        # the session's final report is `Checker.check` of the whole call: the ingest stores it as it is
        conv = report.conversation
        data = conversation_data(conv, None)
        items.append(Item(conv, "实时通话", report=report, data=data, content_hash=content_hash(data)))
    return wb.ingestor.ingest(items, user_id=user_id)


async def _store(wb: Workbench, call: LiveCall) -> None:
    """The hung-up call, stored like an upload (`replace=False`: a call id stored before stays)."""
    report = call.session.report
    if report is None or report.conversation is None or call.stored is not None:
        return
    call.stored = False
    try:
        outcome = await _Stores.of(wb).store(report, call.user_id)
        call.stored = outcome is not None and outcome.status in ("stored", "replaced", "unchanged")
        call.store_note = outcome.status if outcome is not None else None
    except Exception as exc:  # storage down: the live guidance still worked; say so in the ended frame
        call.store_note = f"保存失败：{type(exc).__name__}"
    call.dirty = True


async def _end(wb: Workbench, calls: LiveCalls, call: LiveCall, reason: str) -> None:
    """End a call nobody hangs up (idle, or its connection did not come back)."""
    if not call.session.ended:
        frame = {"type": "hangup", "ended_by": None, "server": reason}
        try:
            items = call.session.hangup(None)
            calls.record(call, None, frame)
            calls.note(call, items)
            await _broadcast(call, [{"type": "guidance", "items": items}])
        except LiveError:  # nothing was said: nothing to score or keep
            calls.calls.pop(call.session.call_id, None)
            with contextlib.suppress(Exception):
                await _db(wb, live_store.drop, call.session.call_id)
        await _store(wb, call)
    ended = {"type": "ended", "reason": reason, "stored": call.stored}
    await _broadcast(call, [ended])
    ws = call.connection
    if ws is not None:
        call.connection = None
        await _send(ws, ended)
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_TIMEOUT, reason)


async def _reaper(app: Any) -> None:
    wb: Workbench = app.state.workbench
    calls = live_calls(app)
    last_orphans = 0.0
    while True:
        await asyncio.sleep(min(5.0, calls.limits.resume_seconds / 2, calls.limits.idle_seconds / 2))
        with contextlib.suppress(Exception):
            expired = calls.expired()
            if expired:
                await flush(app, check=expired)  # a call another worker took over is not this one's to end
            for c in expired:
                if not c.lost:
                    await _end(wb, calls, c, "超时未挂断或连接未恢复，通话已结束")
            calls.forget_ended()
            if time.monotonic() - last_orphans > 30.0:
                last_orphans = time.monotonic()
                await _end_orphans(app)
                await _db(wb, live_store.forget_ended)  # rows of calls ended 10 minutes ago


async def _end_orphans(app: Any) -> None:
    """Calls whose worker went away (a restart, a crash) and that nobody resumed: taken over, ended, stored."""
    wb: Workbench = app.state.workbench
    calls = live_calls(app)
    stale = max(live_store.ORPHAN_SECONDS, calls.limits.resume_seconds)
    for cid in await _db(wb, live_store.orphans, stale):
        if cid in calls.calls:
            continue
        call = await _take_over(wb, calls, cid)
        if call is not None and not call.session.ended:
            await _end(wb, calls, call, "通话所在的服务进程已停止，且连接未恢复，通话已结束")


def _ensure_reaper(app: Any) -> None:
    task = getattr(app.state, "live_reaper", None)
    if task is None or task.done():
        loop = asyncio.get_running_loop()
        app.state.live_reaper = loop.create_task(_reaper(app))
        app.state.live_flusher = loop.create_task(_flusher(app))


async def _take_over(wb: Workbench, calls: LiveCalls, cid: str) -> LiveCall | None:
    """A live call held by another worker (or by none after a restart), now held here: rebuilt from its journal."""
    row, frames = await _db(wb, live_store.take_over, cid)
    if row is None:
        return None
    engine = await run_in_threadpool(_engine, wb, calls, row.rulebook_id)
    return calls.rebuild(engine, row, frames)


@router.websocket("/api/assist/v1/ws")
async def assist_ws(ws: WebSocket) -> None:
    app = ws.app
    wb: Workbench = app.state.workbench
    calls = live_calls(app)
    limits = calls.limits
    await ws.accept()
    _ensure_reaper(app)
    try:
        first_raw = await asyncio.wait_for(_receive(ws), FIRST_FRAME_SECONDS)
    except (TimeoutError, WebSocketDisconnect, RuntimeError, KeyError):
        await _send(ws, error("no_start", f"{FIRST_FRAME_SECONDS:g} 秒内没有收到 start 帧"))
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_BAD)
        return
    try:
        first = parse(first_raw, limits)
        if first["type"] != "start":
            raise LiveError("no_start", "第一帧应为 start")
        if first.get("v") != PROTOCOL:
            raise LiveError("bad_version", f"不支持的协议版本 {first.get('v')!r}（本服务支持 v{PROTOCOL}）")
    except LiveError as exc:
        await _refuse(ws, exc.code, exc.message, CLOSE_BAD)
        return
    token, via = request_token(ws.headers.get("authorization"), ws.cookies.get(SESSION_COOKIE))
    if via == "cookie" and token is not None and not _same_origin(ws):
        token = None  # a page of another site must not ride on the browser's session cookie
    if token is None and isinstance(first.get("token"), str):
        token = first["token"]
    who = await run_in_threadpool(_who, wb, token)
    if who is None:
        await _refuse(ws, "unauthorized", "未登录或令牌无效", CLOSE_AUTH)
        return
    meta = first.get("call")
    resume = first.get("resume")
    if not isinstance(meta, dict) or not isinstance(meta.get("id"), str) or not meta["id"].strip():
        await _refuse(ws, "bad_call", "start 帧需要 call.id", CLOSE_BAD)
        return
    cid = meta["id"]
    after = after_seq(resume)
    call = calls.calls.get(cid)
    if call is not None and (resume is not None or first.get("watch") is True):
        await flush(app, check=[call])  # still this worker's? (another may have taken it over meanwhile)
        call = calls.calls.get(cid)
    if first.get("watch") is True:
        await _watch(ws, calls, cid, who, after)
        return
    if call is None:
        if resume is None:
            await _open(ws, wb, calls, who, meta, cid)
            return
        try:
            row, frames = await _db(wb, live_store.load, cid)
        except Exception:
            await _refuse(ws, "unavailable", "暂时无法读取通话记录，请稍后重试", 1011)
            return
        if row is None:
            await _refuse(ws, "unknown_call", f"没有进行中的通话 {cid}，无法恢复", CLOSE_NOT_FOUND)
            return
        if not may_access(who, row.user_id, row.agent_id, row.team_id):
            await _refuse(ws, "forbidden", _FORBIDDEN, CLOSE_AUTH)
            return
        if row.status == "ended":  # its report, from the journal
            engine = await run_in_threadpool(_engine, wb, calls, row.rulebook_id)
            call = calls.rebuild(engine, row, frames, register=False)
        else:
            call = await _take_over(wb, calls, cid)
            if call is None:
                await _refuse(ws, "unknown_call", f"没有进行中的通话 {cid}，无法恢复", CLOSE_NOT_FOUND)
                return
    elif not may_access(who, call.user_id, call.agent_id, call.team_id):
        await _refuse(ws, "forbidden", _FORBIDDEN, CLOSE_AUTH)
        return
    if resume is None:
        if call.session.ended:
            await _refuse(ws, "call_ended", f"通话 {cid} 已结束；取回结果请在 start 帧带 resume", CLOSE_BAD)
            return
        await _refuse(ws, "call_in_progress", f"通话 {cid} 正在进行；重连请在 start 帧带 resume", CLOSE_BAD)
        return
    await attach(ws, call)
    await _send(ws, {"type": "ready", "v": PROTOCOL, "call_id": cid, "resumed": True, "received": call.received,
                     "last_seq": len(call.session.log), "worker": live_store.WORKER})
    await _send(ws, {"type": "guidance", "items": call.session.since(after), "replay": True})
    if call.session.ended:
        if call.connection is ws:
            call.connection = None
        await _send(ws, {"type": "ended", "stored": call.stored})
        await ws.close(CLOSE_NORMAL)
        return
    await _serve(ws, wb, calls, call, max(after, len(call.session.log)))


_FORBIDDEN = "无权访问这通电话：坐席只能访问自己的通话，组长只能访问本组的通话"


async def _refuse(ws: WebSocket, code: str, message: str, close: int) -> None:
    await _send(ws, error(code, message))
    with contextlib.suppress(Exception):
        await ws.close(close)


def _claim(db: Any, who: Who, meta: dict[str, Any], rulebook_id: int | None, path: str
           ) -> tuple[Any, tuple[int | None, int | None, dict[str, Any]]]:
    """The new call's scope (its agent and team) and its id claimed in the database (no other worker has it)."""
    scope = live_store.call_scope(db, who, meta)
    agent_id, team_id, meta = scope
    taken = live_store.claim(db, {"call_id": meta["id"], "user_id": who.id, "agent_id": agent_id,
                                  "team_id": team_id, "rulebook_id": rulebook_id, "path": path, "meta": meta})
    return (None if taken is None else (taken.status, taken.user_id, taken.agent_id, taken.team_id)), scope


async def open_call(ws: WebSocket, wb: Workbench, calls: LiveCalls, who: Who, meta: dict[str, Any], cid: str,
                    path: str) -> tuple[LiveCall, Any] | None:
    """A new call of the text or audio path: its scope checked, its id claimed in the database (no other
    worker has it), opened here; (call, engine), or None once the client has been refused."""
    try:
        engine = await run_in_threadpool(_engine, wb, calls)
        if len([c for c in calls.calls.values() if not c.session.ended]) >= calls.limits.max_live_calls:
            raise LiveError("too_many_calls", f"同时进行的通话已达上限 {calls.limits.max_live_calls}")
        taken, (agent_id, team_id, meta) = await _db(wb, _claim, who, meta, engine.rulebook_id, path)
    except LiveError as exc:
        await _refuse(ws, exc.code, exc.message, CLOSE_LIMIT if exc.code == "too_many_calls" else CLOSE_AUTH
                      if exc.code == "forbidden" else CLOSE_BAD)
        return None
    if taken is not None:  # the id is another call's (on another worker, or ended a moment ago)
        status, user_id, a_id, t_id = taken
        if not may_access(who, user_id, a_id, t_id):
            await _refuse(ws, "forbidden", _FORBIDDEN, CLOSE_AUTH)
        elif status == "ended":
            await _refuse(ws, "call_ended", f"通话 {cid} 已结束；取回结果请在 start 帧带 resume", CLOSE_BAD)
        else:
            await _refuse(ws, "call_in_progress", f"通话 {cid} 正在进行；重连请在 start 帧带 resume", CLOSE_BAD)
        return None
    try:
        call = calls.open(engine, meta, who.id, agent_id=agent_id, team_id=team_id, claimed=True)
    except LiveError as exc:
        await _db(wb, live_store.drop, cid)
        await _refuse(ws, exc.code, exc.message, CLOSE_LIMIT if exc.code == "too_many_calls" else CLOSE_BAD)
        return None
    return call, engine


async def _open(ws: WebSocket, wb: Workbench, calls: LiveCalls, who: Who, meta: dict[str, Any], cid: str) -> None:
    opened = await open_call(ws, wb, calls, who, meta, cid, "text")
    if opened is None:
        return
    call, engine = opened
    call.connection = ws
    items = call.session.start()
    await _send(ws, {"type": "ready", "v": PROTOCOL, "call_id": cid, "resumed": False, "received": 0,
                     "last_seq": 0, "rulebook": engine.label, "worker": live_store.WORKER})
    await _send(ws, {"type": "guidance", "items": items})
    await _serve(ws, wb, calls, call, len(call.session.log))


async def _receive(ws: WebSocket) -> str:
    """The next text frame; a binary frame becomes a text the frame parser refuses with a clear error."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        return json.dumps({"type": "binary", "bytes": len(message.get("bytes") or b"")})
    return str(text)


def _may_watch(call: LiveCall, user_id: int, role: str) -> bool:
    """Kept for callers that know only the user id and role: the call's streamer, or QA and admins."""
    return call.user_id == user_id or role in ("admin", "qa")


async def _watch(ws: WebSocket, calls: LiveCalls, cid: str, who: Who, after: int) -> None:
    """A read-only connection (the agent panel, the supervisor wall): everything the call's guidance and
    transcript say, as they happen; frames it sends are ignored. A call held by another worker is followed
    through its journal."""
    call = calls.calls.get(cid)
    wb: Workbench = ws.app.state.workbench
    if call is None:
        try:
            row, frames = await _db(wb, live_store.load, cid)
        except Exception:
            row, frames = None, []
        if row is None:
            await _refuse(ws, "unknown_call", f"没有进行中的通话 {cid}", CLOSE_NOT_FOUND)
            return
        if not may_access(who, row.user_id, row.agent_id, row.team_id):
            await _refuse(ws, "forbidden", _FORBIDDEN, CLOSE_AUTH)
            return
        engine = await run_in_threadpool(_engine, wb, calls, row.rulebook_id)
        mirror = calls.rebuild(engine, row, frames, register=False)
        await _watch_remote(ws, wb, calls, mirror, after, row.status == "ended")
        return
    if not may_access(who, call.user_id, call.agent_id, call.team_id):
        await _refuse(ws, "forbidden", _FORBIDDEN, CLOSE_AUTH)
        return
    if not await _watch_hello(ws, call, after):
        return
    call.watchers.add(ws)
    try:
        while True:
            await _receive(ws)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        call.watchers.discard(ws)


async def _watch_hello(ws: WebSocket, call: LiveCall, after: int) -> bool:
    """ready, the transcript so far, the guidance after `after`; False (and closed) if the call has ended."""
    s = call.session
    await _send(ws, {"type": "ready", "v": PROTOCOL, "call_id": s.call_id, "watch": True, "last_seq": len(s.log),
                     "agent": call.agent, "worker": live_store.WORKER})
    await _send(ws, {"type": "transcript", "utterances": [_utt(i, u.role, u.text or "", u.start, True)
                                                          for i, u in enumerate(s.utterances)]})
    await _send(ws, {"type": "guidance", "items": s.since(after), "replay": True})
    if s.ended:
        await _send(ws, {"type": "ended", "stored": call.stored})
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_NORMAL)
        return False
    return True


async def _watch_remote(ws: WebSocket, wb: Workbench, calls: LiveCalls, mirror: LiveCall, after: int,
                        ended: bool) -> None:
    """Follow a call another worker holds: its journal read every WATCH_POLL_SECONDS and replayed into a
    mirror of the session (the same items, in the same order, as the holder sends)."""
    if not await _watch_hello(ws, mirror, after):
        return
    gone = asyncio.Event()

    async def reader() -> None:
        try:
            while True:
                await _receive(ws)
        except (WebSocketDisconnect, RuntimeError):
            gone.set()

    task = asyncio.get_running_loop().create_task(reader())
    cid = mirror.session.call_id
    try:
        while not gone.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), WATCH_POLL_SECONDS)
            if gone.is_set():
                break
            try:
                row, frames = await _db(wb, live_store.load, cid, mirror.journaled)
            except Exception:
                continue
            if row is None:
                await _send(ws, {"type": "ended", "stored": mirror.stored})
                break
            for f in frames:
                seen = len(mirror.session.log)
                replay(mirror, [f], calls.limits)
                items = mirror.session.since(seen)
                out = [tf] if (tf := _transcript_frame(mirror, dict(f.frame))) else []
                if items:
                    out.append({"type": "guidance", "items": items})
                for frame in out:
                    await _send(ws, frame)
            if row.status == "ended" and mirror.session.ended:
                await _send(ws, {"type": "ended", "stored": row.stored})
                break
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_NORMAL)
    finally:
        task.cancel()


def _utt(idx: int | str, role: str, text: str, start: float | None, final: bool) -> dict[str, Any]:
    return {"id": idx, "role": role, "text": text, "start": start, "final": final}


async def _broadcast(call: LiveCall, frames: list[dict[str, Any]]) -> None:
    for w in list(call.watchers):
        try:
            for f in frames:
                await w.send_json(f)
        except Exception:
            call.watchers.discard(w)


def _transcript_frame(call: LiveCall, frame: dict[str, Any]) -> dict[str, Any] | None:
    if frame.get("type") != "utterance":
        return None
    s = call.session
    if frame.get("final", True):
        if not s.utterances:
            return None
        u = s.utterances[-1]
        return {"type": "transcript", "utterances": [_utt(len(s.utterances) - 1, u.role, u.text or "", u.start, True)],
                "partial_id": frame.get("id")}
    return {"type": "transcript", "utterances": [_utt(str(frame.get("id")), str(frame.get("role")),
                                                      str(frame.get("text", "")), frame.get("start"), False)]}


def incoming(call: LiveCall, raw: str, limits: Any) -> dict[str, Any]:
    """A client frame of a live call (text or audio path), within the call's frame rate."""
    assert call.bucket is not None
    if not call.bucket.take():
        raise LiveError("rate_limited", f"发送过快（上限每秒 {limits.frames_per_second:g} 帧）")
    return parse(raw, limits)


async def acked_again(ws: WebSocket, call: LiveCall, n: Any) -> bool:
    """Frame `n` was already taken (the client resends after a reconnect): acked as a duplicate, not applied."""
    if n is None or n > call.received:
        return False
    await ws.send_json({"type": "ack", "n": n, "duplicate": True})
    return True


def applied(calls: LiveCalls, call: LiveCall, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The frame applied to the call and journalled; the guidance items it gave."""
    items = apply(call, frame, calls.limits)
    n = frame.get("n")
    if n is not None:
        call.received = n
    calls.record(call, n, frame)
    calls.note(call, items)
    return items


def detach(ws: WebSocket, call: LiveCall) -> bool:
    """`ws` closed: if it was still the call's connection, the call waits for a resume (True)."""
    if call.connection is not ws:
        return False
    call.connection = None
    call.detached_at = time.monotonic()
    call.dirty = True
    return True


async def attach(ws: WebSocket, call: LiveCall) -> None:
    """A resumed call now on `ws`; the connection it had (if any) is told it was replaced and closed."""
    old = call.connection
    call.connection = ws
    call.detached_at = None
    call.dirty = True
    if old is not None and old is not ws:
        await _send(old, error("replaced", "同一通话的新连接已接管"))
        with contextlib.suppress(Exception):
            await old.close(CLOSE_REPLACED)


def after_seq(resume: Any) -> int:
    """The last guidance item a resuming client has (`resume.after_seq`), 0 when absent or not a count."""
    after = resume.get("after_seq", 0) if isinstance(resume, dict) else 0
    return after if isinstance(after, int) and not isinstance(after, bool) and after >= 0 else 0


async def _serve(ws: WebSocket, wb: Workbench, calls: LiveCalls, call: LiveCall, seen: int = 0) -> None:
    """The call's input frames on this connection. `seen`: the last guidance item the client has; items at
    or below it (a frame the client resends after a take-over by another worker) are not sent again."""
    limits = calls.limits
    try:
        while True:
            try:
                raw = await asyncio.wait_for(_receive(ws), limits.idle_seconds)
            except TimeoutError:
                await _end(wb, calls, call, f"{limits.idle_seconds:g} 秒没有收到任何帧，通话已结束")
                return
            if call.connection is not ws or call.lost:
                return  # replaced by a newer connection
            call.last_frame = time.monotonic()
            n: Any = None
            try:
                frame = incoming(call, raw, limits)
                n = frame.get("n")
                if await acked_again(ws, call, n):
                    continue
                items = applied(calls, call, frame)
            except LiveError as exc:
                await ws.send_json(error(exc.code, exc.message, n))
                continue
            fresh = [i for i in items if i["seq"] > seen]
            if items:
                seen = max(seen, items[-1]["seq"])
            await ws.send_json({"type": "guidance", "ack": n, "items": fresh})
            if call.watchers:
                tf = _transcript_frame(call, frame)
                await _broadcast(call, ([tf] if tf else []) + ([{"type": "guidance", "items": items}] if items else []))
            if call.session.ended:
                await _store(wb, call)
                ended = {"type": "ended", "stored": call.stored, "note": call.store_note}
                await ws.send_json(ended)
                await _broadcast(call, [ended])
                call.connection = None
                call.dirty = True
                await ws.close(CLOSE_NORMAL)
                return
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        detach(ws, call)


@router.get("/api/assist/v1/calls", tags=["assist"])
async def list_live_calls(request: Request, p: APIUser) -> dict[str, Any]:
    """Live calls for the supervisor wall, from every worker: a team leader sees the team's, an agent their
    own, admins and QA all."""
    app = request.app
    wb: Workbench = app.state.workbench
    u = p.user
    who = Who(u.id, u.role, u.username, u.agent_id, None, u.team_id)
    for c in live_calls(app).calls.values():
        if c.dirty:
            c.view_at = 0.0  # this worker's latest view goes in now
    await flush(app)
    rows = await _db(wb, live_store.listed, who)
    return {"v": PROTOCOL, "calls": [{**(r.summary or {}), "call_id": r.call_id, "ended": r.status == "ended",
                                      "stored": r.stored} for r in rows]}


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser
    host = ws.headers.get("host", "")
    return origin.split("://", 1)[-1].rstrip("/") == host


@router.get("/assist", include_in_schema=False)
def assist_page(request: Request, p: PageUser) -> Any:
    from .web import render

    call_id = (request.query_params.get("call") or "").strip()[:200]
    return render(request, "assist.html", p, active="assist", call_id=call_id)


@router.get("/assist/wall", include_in_schema=False)
def wall_page(request: Request, p: PageUser) -> Any:
    from .web import render

    if p.user.role not in ("admin", "qa", "leader"):
        raise PageForbidden()
    return render(request, "assist_wall.html", p, active="wall")
