"""Real-time agent assist over WebSocket, protocol v1 (docs/assist.md): one connection per call, text
frames in (start, utterance, event, tick, hangup) and out (ready, guidance, ack, error, ended). A call
that hangs up is stored as a normal scored conversation through the ingest use case; live calls are
listed for the supervisor wall."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..live import LiveError
from .deps import DB, SESSION_COOKIE, APIUser, PageForbidden, PageUser
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


ENGINE_TTL = 5.0  # seconds a new call reuses the engine the previous one looked up (rulebook activation)


def _engine(wb: Workbench, calls: LiveCalls) -> Engine:
    recent = calls.engines.get("recent")
    if recent is not None and time.monotonic() - calls.engine_at < ENGINE_TTL:
        return recent
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
    calls.engines["recent"] = eng
    calls.engine_at = time.monotonic()
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
            await _broadcast(call, [{"type": "guidance", "items": items}])
        except LiveError:  # nothing was said: nothing to score or keep
            calls.calls.pop(call.session.call_id, None)
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
        await _send(ws, error(exc.code, exc.message))
        await ws.close(CLOSE_BAD)
        return
    token, via = request_token(ws.headers.get("authorization"), ws.cookies.get(SESSION_COOKIE))
    if via == "cookie" and token is not None and not _same_origin(ws):
        token = None  # a page of another site must not ride on the browser's session cookie
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
    if first.get("watch") is True:
        await _watch(ws, call, cid, user_id, role, after)
        return
    if call is not None:
        if call.user_id != user_id and role not in ("admin", "leader"):
            await _send(ws, error("forbidden", "这通电话属于其他坐席"))
            await ws.close(CLOSE_AUTH)
            return
        if resume is None:
            if call.session.ended:
                msg = f"通话 {cid} 已结束；取回结果请在 start 帧带 resume"
                await _send(ws, error("call_ended", msg))
                await ws.close(CLOSE_BAD)
                return
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
    return call.user_id == user_id or role in ("admin", "leader", "qa")


async def _watch(ws: WebSocket, call: LiveCall | None, cid: str, user_id: int, role: str, after: int) -> None:
    """A read-only connection (the agent panel, the supervisor wall): everything the call's guidance and
    transcript say, as they happen; frames it sends are ignored."""
    if call is None:
        await _send(ws, error("unknown_call", f"没有进行中的通话 {cid}"))
        await ws.close(CLOSE_NOT_FOUND)
        return
    if not _may_watch(call, user_id, role):
        await _send(ws, error("forbidden", "这通电话属于其他坐席"))
        await ws.close(CLOSE_AUTH)
        return
    s = call.session
    await _send(ws, {"type": "ready", "v": PROTOCOL, "call_id": cid, "watch": True, "last_seq": len(s.log),
                     "agent": call.agent})
    await _send(ws, {"type": "transcript", "utterances": [_utt(i, u.role, u.text or "", u.start, True)
                                                          for i, u in enumerate(s.utterances)]})
    await _send(ws, {"type": "guidance", "items": s.since(after), "replay": True})
    if s.ended:
        await _send(ws, {"type": "ended", "stored": call.stored})
        await ws.close(CLOSE_NORMAL)
        return
    call.watchers.add(ws)
    try:
        while True:
            await _receive(ws)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        call.watchers.discard(ws)


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


async def _serve(ws: WebSocket, wb: Workbench, calls: LiveCalls, call: LiveCall) -> None:
    limits = calls.limits
    try:
        while True:
            try:
                raw = await asyncio.wait_for(_receive(ws), limits.idle_seconds)
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
            if call.watchers:
                tf = _transcript_frame(call, frame)
                await _broadcast(call, ([tf] if tf else []) + ([{"type": "guidance", "items": items}] if items else []))
            if call.session.ended:
                await _store(wb, call)
                ended = {"type": "ended", "stored": call.stored, "note": call.store_note}
                await ws.send_json(ended)
                await _broadcast(call, [ended])
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
async def list_live_calls(request: Request, p: APIUser, db: DB) -> dict[str, Any]:
    """Live calls for the supervisor wall: a team leader sees the team's (by the call's agent.team), an agent
    only the calls they stream, admins and QA all."""
    calls = live_calls(request.app)
    team = None
    if p.user.role == "leader" and p.user.team_id is not None:
        from .models import Team

        rec = await run_in_threadpool(db.get, Team, p.user.team_id)
        team = rec.name if rec is not None else None

    def visible(c: LiveCall) -> bool:
        if p.user.role == "agent":
            return c.user_id == p.user.id
        if p.user.role == "leader":
            return c.user_id == p.user.id or (team is not None and (c.agent or {}).get("team") == team)
        return True

    return {"v": PROTOCOL, "calls": [c.summary() for c in calls.calls.values() if visible(c)]}


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
