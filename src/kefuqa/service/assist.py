"""Real-time agent assist over WebSocket, protocol v1 (docs/assist.md): one connection per call, text
frames in (start, utterance, event, tick, hangup) and out (ready, guidance, ack, error, ended). A call
that hangs up is stored as a normal scored conversation through the ingest use case; live calls are
listed for the supervisor wall."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..live import LiveError
from .deps import SESSION_COOKIE, APIUser
from .ingest import Item
from .live_calls import PROTOCOL, Engine, LiveCall, LiveCalls, apply, error, parse
from .security import find_session
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


def live_calls(app: Any) -> LiveCalls:
    calls = getattr(app.state, "live_calls", None)
    if calls is None:
        calls = app.state.live_calls = LiveCalls()
    return calls  # type: ignore[no-any-return]


def _user(wb: Workbench, token: str | None) -> tuple[int, str, str | None] | None:
    with wb.sessions() as db:
        found = find_session(db, token)
        if found is None:
            return None
        user = found[1]
        return user.id, user.role, user.username


def _engine(wb: Workbench, calls: LiveCalls) -> Engine:
    with wb.sessions() as db:
        rb = wb.rulebooks.active(db)
        rec_ref = None
        from .models import RulebookVersion

        rec = db.get(RulebookVersion, rb.id)
        if rec is not None and rec.origin != "upload":
            rec_ref = rec.source_ref
    key = f"{rb.id}"
    eng = calls.engines.get(key)
    if eng is None:
        eng = calls.engines[key] = Engine.build(rb.label, rb.checker, rb.name, rec_ref)
    return eng


async def _send(ws: WebSocket, frame: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):  # the peer went away: its call waits for a resume
        await ws.send_json(frame)


async def _store(wb: Workbench, call: LiveCall) -> None:
    """The hung-up call, stored and scored like an upload (`replace=False`: a call id stored before stays)."""
    report = call.session.report
    if report is None or report.conversation is None or call.stored is not None:
        return
    call.stored = False
    try:
        res = await run_in_threadpool(wb.ingestor.ingest_shared, [Item(report.conversation, "实时通话")],
                                      user_id=call.user_id)
        outcome = res.outcomes[0] if res.outcomes else None
        call.stored = outcome is not None and outcome.status in ("stored", "replaced", "unchanged")
        call.store_note = outcome.status if outcome is not None else None
    except Exception as exc:  # storage down: the live guidance still worked; say so in the ended frame
        call.store_note = f"保存失败：{type(exc).__name__}"


async def _end(wb: Workbench, calls: LiveCalls, call: LiveCall, reason: str) -> None:
    """End a call nobody hangs up (idle, or its connection did not come back)."""
    if not call.session.ended:
        try:
            items = call.session.hangup(None)
            calls.note(call, items)
        except LiveError:
            call.session.report = None
        await _store(wb, call)
    ws = call.connection
    if ws is not None:
        await _send(ws, {"type": "ended", "reason": reason, "stored": call.stored})
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_TIMEOUT, reason)


async def _reaper(app: Any) -> None:
    wb: Workbench = app.state.workbench
    calls = live_calls(app)
    while True:
        await asyncio.sleep(min(5.0, calls.limits.resume_seconds / 2, calls.limits.idle_seconds / 2))
        for c in calls.expired():
            await _end(wb, calls, c, "超时未挂断或连接未恢复，通话已结束")
        calls.forget_ended()


def _ensure_reaper(app: Any) -> None:
    task = getattr(app.state, "live_reaper", None)
    if task is None or task.done():
        app.state.live_reaper = asyncio.get_running_loop().create_task(_reaper(app))


@router.websocket("/api/assist/v1/ws")
async def assist_ws(ws: WebSocket) -> None:
    app = ws.app
    wb: Workbench = app.state.workbench
    calls = live_calls(app)
    limits = calls.limits
    await ws.accept()
    _ensure_reaper(app)
    try:
        first_raw = await asyncio.wait_for(ws.receive_text(), FIRST_FRAME_SECONDS)
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
        await _send(ws, error(exc.code, exc.message))
        await ws.close(CLOSE_BAD)
        return
    token, _via = request_token(ws.headers.get("authorization"), ws.cookies.get(SESSION_COOKIE))
    if token is None and isinstance(first.get("token"), str):
        token = first["token"]
    who = await run_in_threadpool(_user, wb, token)
    if who is None:
        await _send(ws, error("unauthorized", "未登录或令牌无效"))
        await ws.close(CLOSE_AUTH)
        return
    user_id, role, _name = who
    meta = first.get("call")
    resume = first.get("resume")
    if not isinstance(meta, dict) or not isinstance(meta.get("id"), str) or not meta["id"].strip():
        await _send(ws, error("bad_call", "start 帧需要 call.id"))
        await ws.close(CLOSE_BAD)
        return
    cid = meta["id"]
    call = calls.calls.get(cid)
    after = resume.get("after_seq", 0) if isinstance(resume, dict) else 0
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        after = 0
    if call is not None:
        if call.user_id != user_id and role not in ("admin", "leader"):
            await _send(ws, error("forbidden", "这通电话属于其他坐席"))
            await ws.close(CLOSE_AUTH)
            return
        if resume is None:
            await _send(ws, error("call_in_progress", f"通话 {cid} 正在进行；重连请在 start 帧带 resume"))
            await ws.close(CLOSE_BAD)
            return
        old = call.connection
        call.connection = ws
        call.detached_at = None
        if old is not None:
            await _send(old, error("replaced", "同一通话的新连接已接管"))
            with contextlib.suppress(Exception):
                await old.close(CLOSE_REPLACED)
        await _send(ws, {"type": "ready", "v": PROTOCOL, "call_id": cid, "resumed": True, "received": call.received,
                         "last_seq": len(call.session.log)})
        await _send(ws, {"type": "guidance", "items": call.session.since(after), "replay": True})
        if call.session.ended:
            await _send(ws, {"type": "ended", "stored": call.stored})
            await ws.close(CLOSE_NORMAL)
            return
    else:
        if resume is not None:
            await _send(ws, error("unknown_call", f"没有进行中的通话 {cid}，无法恢复"))
            await ws.close(CLOSE_NOT_FOUND)
            return
        try:
            engine = await run_in_threadpool(_engine, wb, calls)
            call = calls.open(engine, meta, user_id)
        except LiveError as exc:
            await _send(ws, error(exc.code, exc.message))
            await ws.close(CLOSE_LIMIT if exc.code == "too_many_calls" else CLOSE_BAD)
            return
        call.connection = ws
        items = call.session.start()
        await _send(ws, {"type": "ready", "v": PROTOCOL, "call_id": cid, "resumed": False, "received": 0,
                         "last_seq": 0, "rulebook": engine.label})
        await _send(ws, {"type": "guidance", "items": items})
    await _serve(ws, wb, calls, call)


async def _serve(ws: WebSocket, wb: Workbench, calls: LiveCalls, call: LiveCall) -> None:
    limits = calls.limits
    try:
        while True:
            try:
                raw = await asyncio.wait_for(ws.receive_text(), limits.idle_seconds)
            except TimeoutError:
                await _end(wb, calls, call, f"{limits.idle_seconds:g} 秒没有收到任何帧，通话已结束")
                return
            if call.connection is not ws:
                return  # replaced by a newer connection
            call.last_frame = time.monotonic()
            n: Any = None
            try:
                assert call.bucket is not None
                if not call.bucket.take():
                    raise LiveError("rate_limited", f"发送过快（上限每秒 {limits.frames_per_second:g} 帧）")
                frame = parse(raw, limits)
                n = frame.get("n")
                if n is not None and n <= call.received:
                    await ws.send_json({"type": "ack", "n": n, "duplicate": True})
                    continue
                if n is not None:
                    call.received = n
                items = apply(call, frame, limits)
            except LiveError as exc:
                await ws.send_json(error(exc.code, exc.message, n))
                continue
            calls.note(call, items)
            await ws.send_json({"type": "guidance", "ack": n, "items": items})
            if call.session.ended:
                await _store(wb, call)
                await ws.send_json({"type": "ended", "stored": call.stored, "note": call.store_note})
                call.connection = None
                await ws.close(CLOSE_NORMAL)
                return
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if call.connection is ws:
            call.connection = None
            call.detached_at = time.monotonic()


@router.get("/api/assist/v1/calls", tags=["assist"])
async def list_live_calls(request: Request, p: APIUser) -> dict[str, Any]:
    """Live calls for the supervisor wall (an agent sees only their own)."""
    calls = live_calls(request.app)
    rows = [c.summary() for c in calls.calls.values()
            if p.user.role != "agent" or c.user_id == p.user.id]
    return {"v": PROTOCOL, "calls": rows}
