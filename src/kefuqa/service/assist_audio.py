"""Real-time assist from call audio (audio protocol v1, docs/assist.md "Audio"): `ws(s)://HOST/api/assist/v1/audio`.

The framing FreeSWITCH's mod_audio_fork and mod_audio_stream use: a JSON text frame first (our `start`
frame, with an ``audio`` object saying rate, channels and which party each channel is), then binary frames
of little-endian 16-bit PCM (L16), channels interleaved. Text frames may follow at any time (events such
as a hold, ``hangup``). Asterisk AudioSocket (TCP) reaches this endpoint through `kefuqa assist-audiosocket`
(`kefuqa.live.audiosocket`).

Each channel is segmented by the streaming VAD (`kefuqa.live.audio`), each segment transcribed by the
configured ASR backend in a thread pool (never on the event loop), and each utterance — role from its
channel, times from the audio clock — goes into the same live call (`LiveSession`) as the text path's, so
guidance, watchers (agent panel, wall), resume and the store at hang-up are the text path's. Audio timers
(customer silent, dead air, monologue, hold) run on the audio clock: speech still being said counts as
speech, silence as silence.

Configuration (environment): KEFUQA_ASSIST_ASR (an ASR spec, e.g. ``faster-whisper:/models/whisper-small``
or ``sherpa-onnx-streaming:/models/zipformer``), KEFUQA_ASSIST_VAD (``auto``), KEFUQA_ASSIST_HANGOVER_MS
(300), KEFUQA_ASSIST_AUDIO_SPEED (4: audio faster than 4× real time is refused), KEFUQA_ASSIST_ASR_WORKERS (2).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..audio.asr import AsrError, TimedTranscriber, make_transcriber
from ..audio.vad import VadError, get_vad
from ..live import LiveError
from ..live.audio import HANGOVER, MIXED, AudioFormat, AudioPipeline, MixedRoles, Pending, Segment, Sequencer
from . import live_store
from .assist import (
    _FORBIDDEN,
    CLOSE_AUTH,
    CLOSE_BAD,
    CLOSE_NORMAL,
    CLOSE_NOT_FOUND,
    FIRST_FRAME_SECONDS,
    _broadcast,
    _db,
    _engine,
    _ensure_reaper,
    _refuse,
    _same_origin,
    _send,
    _store,
    _take_over,
    _transcript_frame,
    _who,
    acked_again,
    after_seq,
    applied,
    attach,
    detach,
    incoming,
    live_calls,
    open_call,
)
from .deps import SESSION_COOKIE
from .live_calls import PROTOCOL, LiveCall, LiveCalls, apply, error, parse
from .live_store import may_access
from .usecases.auth import request_token
from .workbench import Workbench

router = APIRouter()

AUDIO_PATH = "/api/assist/v1/audio"
# mod_audio_fork asks for a WebSocket sub-protocol (MOD_AUDIO_FORK_SUBPROTOCOL_NAME, default
# audio.drachtio.org; older builds audiostream.drachtio.org) and its client wants it echoed back.
SUBPROTOCOLS = ("audio.drachtio.org", "audiostream.drachtio.org")
TICK_SECONDS = 0.2  # audio clock step between timer checks
_VAD_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kefuqa-vad")
PARTIAL_SECONDS = 1.0  # how often speech still being said is renewed as a partial (monologue timing)
RESUME_GRACE = 2.0  # seconds a dropped connection's open speech waits for the resume before it is closed


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


@dataclass
class AudioConfig:
    """The audio path's settings; `app.state.assist_audio` (tests set a transcriber directly)."""

    asr: str | None = field(default_factory=lambda: os.environ.get("KEFUQA_ASSIST_ASR") or None)
    vad: str = field(default_factory=lambda: os.environ.get("KEFUQA_ASSIST_VAD") or "auto")
    hangover: float = field(default_factory=lambda: _env_float("KEFUQA_ASSIST_HANGOVER_MS", HANGOVER * 1000) / 1000)
    max_speed: float = field(default_factory=lambda: _env_float("KEFUQA_ASSIST_AUDIO_SPEED", 4.0))
    burst_seconds: float = 10.0  # audio a connection may send ahead of max_speed (a reconnect's backlog)
    max_frame_bytes: int = 64 * 1024
    asr_workers: int = field(default_factory=lambda: int(_env_float("KEFUQA_ASSIST_ASR_WORKERS", 2)))
    min_speech: float = 0.2
    max_utterance: float = 30.0
    transcriber: Any = None
    _pool: ThreadPoolExecutor | None = None

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, self.asr_workers), thread_name_prefix="kefuqa-asr")
        return self._pool

    def get_transcriber(self) -> Any:
        if self.transcriber is None:
            if not self.asr:
                raise LiveError("no_asr", "服务端没有配置语音识别：启动前设置 KEFUQA_ASSIST_ASR，如 "
                                          "faster-whisper:/模型目录 或 sherpa-onnx:/模型目录")
            try:
                self.transcriber = TimedTranscriber(make_transcriber(self.asr))
            except AsrError as exc:
                raise LiveError("asr_unavailable", f"语音识别无法启动：{exc}") from None
        return self.transcriber


def audio_config(app: Any) -> AudioConfig:
    cfg = getattr(app.state, "assist_audio", None)
    if cfg is None:
        cfg = app.state.assist_audio = AudioConfig()
    return cfg  # type: ignore[no-any-return]


def audio_calls(app: Any) -> dict[str, AudioCall]:
    reg = getattr(app.state, "audio_calls", None)
    if reg is None:
        reg = app.state.audio_calls = {}
    return reg  # type: ignore[no-any-return]


@dataclass
class AudioCall:
    """The audio side of a live call: its format, pipeline, segments waiting for text, partials."""

    call: LiveCall
    fmt: AudioFormat
    pipe: AudioPipeline
    transcriber: Any
    cfg: AudioConfig
    calls: LiveCalls
    seq: Sequencer = field(default_factory=Sequencer)
    mixed: MixedRoles = field(default_factory=MixedRoles)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # ASR in flight
    waits: set[asyncio.Task[None]] = field(default_factory=set)  # grace timers of dropped connections
    last_tick: float = 0.0
    detached_wall: float | None = None
    closing: bool = False
    utterances: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # the pipeline: one feed, flush or skip at a time

    # ---- segments → ASR → the session -----------------------------------------------------------------

    def submit(self, segs: list[Segment]) -> None:
        loop = asyncio.get_running_loop()
        for seg in segs:
            p = self.seq.add(seg)
            p.attrs["_closed_wall"] = time.perf_counter()
            fut = loop.run_in_executor(self.cfg.pool(), _transcribe, self.transcriber, seg)
            task = loop.create_task(self._finish(p, fut))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _finish(self, p: Pending, fut: Any) -> None:
        try:
            text, attrs, seconds = await fut
        except Exception as exc:  # the engine failed on this segment: say so, keep the call going
            text, attrs, seconds = "", {"asr_error": f"{type(exc).__name__}: {exc}"[:200]}, 0.0
            await self.send(error("asr_failed", f"一段语音（{p.seg.start:.1f}–{p.seg.end:.1f} 秒）识别失败："
                                                f"{attrs['asr_error']}"))
        p.text, p.asr_seconds, p.done = text, seconds, True
        p.attrs.update(attrs)
        p.attrs["_asr_wall"] = time.perf_counter() - p.attrs["_closed_wall"]
        await self.drain()

    async def drain(self, final: bool = False) -> None:
        """Utterances whose turn has come go into the session (synchronously, in spoken order), then out."""
        ready = self.seq.ready(self.pipe.open_starts(), final=final)
        if not ready:
            return
        s = self.call.session
        frames: list[dict[str, Any]] = []
        watch: list[dict[str, Any]] = []
        for p in ready:
            seg = p.seg
            text = p.text.strip()
            if not text or s.ended:
                s.partials.pop(seg.uid, None)
                continue
            role = self.fmt.roles[seg.channel]
            attrs = {k: v for k, v in p.attrs.items() if not k.startswith("_")}
            if role == MIXED:
                role, how = self.mixed.role(text)
                attrs["role_from"] = how
            attrs["source"] = "audio"
            start, end = round(seg.start, 2), round(seg.end, 2)
            frame = {"type": "utterance", "role": role, "text": text, "start": start, "end": end, "id": seg.uid,
                     "attrs": attrs}
            try:
                items = s.utterance(role, text, start, end, final=True, uid=seg.uid, attrs=attrs)
                self.calls.record(self.call, None, frame)  # journaled: a watcher on another worker sees it
            except LiveError as exc:
                s.partials.pop(seg.uid, None)
                frames.append(error(exc.code, exc.message))
                continue
            self.utterances += 1
            self.calls.note(self.call, items)
            done = time.perf_counter()
            info = {"role": role, "text": text, "start": round(seg.start, 2), "end": round(seg.end, 2),
                    "closed_at": round(seg.closed_at, 3), "channel": seg.channel,
                    "asr_ms": round(p.asr_seconds * 1000, 1), "asr_wall_ms": round(p.attrs["_asr_wall"] * 1000, 1),
                    "pipeline_ms": round((done - p.attrs["_closed_wall"] - p.attrs["_asr_wall"]) * 1000, 2)}
            frames.append({"type": "guidance", "items": items, "utterance": info})
            tf = _transcript_frame(self.call, {"type": "utterance", "final": True})
            if tf:
                watch.append(tf)
            if items:
                watch.append({"type": "guidance", "items": items})
        for f in frames:
            await self.send(f)
        if watch and self.call.watchers:
            await _broadcast(self.call, watch)

    async def send(self, frame: dict[str, Any]) -> None:
        ws = self.call.connection
        if ws is not None:
            await _send(ws, frame)

    def tick(self) -> list[dict[str, Any]]:
        """The audio clock moved: speech being said now is a partial (so silence timers do not fire on a
        long turn, and a customer's monologue is timed as it goes); timers run on the clock."""
        s = self.call.session
        if s.ended:
            return []
        now = self.pipe.clock
        self.last_tick = now
        out: list[dict[str, Any]] = []
        live = set()
        try:
            for c, sg in enumerate(self.pipe.segs):
                if sg.open is not None and sg.open_seconds() >= self.cfg.min_speech:
                    uid = f"a{c}-{sg.open}"
                    live.add(uid)
                    known = s.partials.get(uid)
                    if known is not None and known.end is not None and now - known.end < PARTIAL_SECONDS:
                        continue  # a speaker's partial is renewed once a second (each one is a journal line)
                    role = self.fmt.roles[c]
                    who, start, end = role if role != MIXED else "system", round(sg.open * 0.032, 2), round(now, 2)
                    part = {"type": "utterance", "role": who, "text": "", "start": start, "end": end, "final": False,
                            "id": uid}
                    out += s.utterance(who, "", start, end, final=False, uid=uid)
                    self.calls.record(self.call, None, part)
            waiting = {p.seg.uid for p in self.seq.pending}
            for uid in [u for u in s.partials if u.startswith("a") and u not in live and u not in waiting]:
                s.partials.pop(uid, None)
            ticked = s.tick(now)
            if ticked:  # a tick that changed nothing needs no journal line
                self.calls.record(self.call, None, {"type": "tick", "t": round(now, 3)})
            out += ticked
        except LiveError:
            return out
        self.calls.note(self.call, out)
        return out

    async def flush_later(self, stamp: float) -> None:
        """A dropped connection not back within the grace: the speech it left open becomes utterances (so a
        client that never returns loses nothing; one that returns quickly goes on mid-sentence)."""
        await asyncio.sleep(RESUME_GRACE)
        async with self.lock:
            if self.call.connection is None and self.detached_wall == stamp and not self.call.session.ended:
                self.submit(self.pipe.flush())

    async def flush_and_wait(self) -> None:
        """Everything said so far becomes utterances: open segments end, all ASR finishes, all released."""
        async with self.lock:
            self.submit(self.pipe.flush())
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
        await self.drain(final=True)
        for uid in [u for u in self.call.session.partials if u.startswith("a")]:
            self.call.session.partials.pop(uid, None)


def _transcribe(transcriber: Any, seg: Segment) -> tuple[str, dict[str, Any], float]:
    t = time.perf_counter()
    piece = transcriber.transcribe(np.ascontiguousarray(seg.samples, np.float32), seg.rate)
    attrs: dict[str, Any] = {}
    if getattr(piece, "emotion", None):
        attrs["emotion"] = piece.emotion
    if getattr(piece, "confidence", None) is not None:
        attrs["asr_confidence"] = round(float(piece.confidence), 3)
    if getattr(piece, "language", None):
        attrs["language"] = piece.language
    return str(piece.text or ""), attrs, time.perf_counter() - t


# ---- the WebSocket ---------------------------------------------------------------------------------------


@dataclass
class _Conn:
    t0: float = field(default_factory=time.monotonic)
    audio_seconds: float = 0.0


async def _first(ws: WebSocket) -> str:
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is None:
        raise LiveError("no_start", "第一帧应为 JSON 文本的 start 帧（含 audio 格式），收到的是二进制音频帧")
    return str(message["text"])


@router.websocket(AUDIO_PATH)
async def assist_audio_ws(ws: WebSocket) -> None:
    app = ws.app
    wb: Workbench = app.state.workbench
    calls = live_calls(app)
    cfg = audio_config(app)
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol=next((p for p in offered if p in SUBPROTOCOLS), None))
    _ensure_reaper(app)
    try:
        first = parse(await asyncio.wait_for(_first(ws), FIRST_FRAME_SECONDS), calls.limits)
        if first["type"] != "start":
            raise LiveError("no_start", "第一帧应为 start")
        if first.get("v") != PROTOCOL:
            raise LiveError("bad_version", f"不支持的协议版本 {first.get('v')!r}（本服务支持音频协议 v{PROTOCOL}）")
        meta = first.get("call")
        if not isinstance(meta, dict) or not isinstance(meta.get("id"), str) or not meta["id"].strip():
            raise LiveError("bad_call", "start 帧需要 call.id（如 FreeSWITCH 的 ${uuid}）")
        fmt = AudioFormat.parse(first.get("audio"), meta.get("direction"))
    except TimeoutError:
        await _refuse(ws, "no_start", f"{FIRST_FRAME_SECONDS:g} 秒内没有收到 start 帧", CLOSE_BAD)
        return
    except (WebSocketDisconnect, RuntimeError):
        return
    except LiveError as exc:
        await _refuse(ws, exc.code, exc.message, CLOSE_BAD)
        return
    token, via = request_token(ws.headers.get("authorization"), ws.cookies.get(SESSION_COOKIE))
    if via == "cookie" and token is not None and not _same_origin(ws):
        token = None
    if token is None:
        token = first.get("token") if isinstance(first.get("token"), str) else ws.query_params.get("token")
    who = await run_in_threadpool(_who, wb, token)
    if who is None:
        await _refuse(ws, "unauthorized", "未登录或令牌无效", CLOSE_AUTH)
        return
    try:
        transcriber = await run_in_threadpool(cfg.get_transcriber)
        vad = await run_in_threadpool(get_vad, cfg.vad)
    except LiveError as exc:
        await _refuse(ws, exc.code, exc.message, 1011)
        return
    except VadError as exc:
        await _refuse(ws, "vad_unavailable", f"语音检测（VAD）无法启动：{exc}", 1011)
        return
    registry = audio_calls(app)
    for cid in [c for c in registry if c not in calls.calls]:
        registry.pop(cid, None)  # calls the text side has forgotten
    cid = meta["id"]
    call = calls.calls.get(cid)
    resume = first.get("resume")
    after = after_seq(resume)
    audio = first.get("audio") or {}
    if call is None and resume is not None:
        # held by another worker (or by none after a restart): rebuilt here from its journal; the audio goes
        # on with a fresh VAD from the clock the journal reached (speech left open over there is lost). An
        # ended call's report comes from its journal.
        try:
            row, journal = await _db(wb, live_store.load, cid)
            if row is not None and not may_access(who, row.user_id, row.agent_id, row.team_id):
                await _refuse(ws, "forbidden", _FORBIDDEN, CLOSE_AUTH)
                return
            if row is not None and row.status == "ended":
                engine = await run_in_threadpool(_engine, wb, calls, row.rulebook_id)
                call = calls.rebuild(engine, row, journal, register=False)
            elif row is not None:
                call = await _take_over(wb, calls, cid)
        except Exception:
            await _refuse(ws, "unavailable", "暂时无法读取通话记录，请稍后重试", 1011)
            return
        if call is not None and not call.session.ended:
            pipe = AudioPipeline(fmt, vad, hangover=cfg.hangover, min_speech=cfg.min_speech,
                                 max_length=cfg.max_utterance)
            pipe.skip_to(call.session.clock.now)
            registry[cid] = AudioCall(call, fmt, pipe, transcriber, cfg, calls)
            registry[cid].detached_wall = time.monotonic()
    if call is not None:
        ac = registry.get(cid)
        if not may_access(who, call.user_id, call.agent_id, call.team_id):
            await _refuse(ws, "forbidden", _FORBIDDEN, CLOSE_AUTH)
            return
        if resume is None:
            msg = (f"通话 {cid} 已结束；取回结果请在 start 帧带 resume" if call.session.ended
                   else f"通话 {cid} 正在进行；重连请在 start 帧带 resume")
            await _refuse(ws, "call_ended" if call.session.ended else "call_in_progress", msg, CLOSE_BAD)
            return
        if ac is None and not call.session.ended:
            await _refuse(ws, "not_audio_call", f"通话 {cid} 是文本通话，不能用音频接口恢复", CLOSE_BAD)
            return
        if ac is not None and ac.fmt != fmt:
            await _refuse(ws, "bad_audio_format", f"恢复时的音频格式 {fmt.to_dict()} 与通话原来的 "
                                                  f"{ac.fmt.to_dict()} 不同", CLOSE_BAD)
            return
        await attach(ws, call)
        if ac is not None:
            at = audio.get("at")
            async with ac.lock:  # the old connection's last frame may still be in the VAD
                if isinstance(at, int | float) and not isinstance(at, bool) and at >= 0:
                    ac.submit(ac.pipe.skip_to(float(at)))
                elif ac.detached_wall is not None:  # audio lost while away counts as silence
                    ac.submit(ac.pipe.skip_to(ac.pipe.clock + time.monotonic() - ac.detached_wall))
                ac.detached_wall = None
        await _send(ws, {"type": "ready", "v": PROTOCOL, "call_id": cid, "resumed": True, "received": call.received,
                         "last_seq": len(call.session.log), "audio": fmt.to_dict(),
                         "audio_clock": round(ac.pipe.clock, 3) if ac else None})
        await _send(ws, {"type": "guidance", "items": call.session.since(after), "replay": True})
        if call.session.ended or ac is None:
            await _send(ws, {"type": "ended", "stored": call.stored})
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_NORMAL)
            return
    else:
        if resume is not None:
            await _refuse(ws, "unknown_call", f"没有进行中的通话 {cid}，无法恢复", CLOSE_NOT_FOUND)
            return
        hang = audio.get("hangover_ms")
        hangover = cfg.hangover
        if isinstance(hang, int | float) and not isinstance(hang, bool):
            hangover = min(2.0, max(0.1, float(hang) / 1000))
        opened = await open_call(ws, wb, calls, who, meta, cid, "audio")
        if opened is None:
            return
        call, engine = opened
        pipe = AudioPipeline(fmt, vad, hangover=hangover, min_speech=cfg.min_speech, max_length=cfg.max_utterance)
        ac = registry[cid] = AudioCall(call, fmt, pipe, transcriber, cfg, calls)
        call.connection = ws
        items = call.session.start()
        await _send(ws, {"type": "ready", "v": PROTOCOL, "call_id": cid, "resumed": False, "received": 0,
                         "last_seq": 0, "rulebook": engine.label, "audio": fmt.to_dict(), "audio_clock": 0.0,
                         "asr": getattr(transcriber, "name", None), "vad": pipe.vad_name,
                         "hangover_ms": round(hangover * 1000)})
        await _send(ws, {"type": "guidance", "items": items})
    await _serve(ws, wb, calls, ac)



async def _serve(ws: WebSocket, wb: Workbench, calls: LiveCalls, ac: AudioCall) -> None:
    limits, call = calls.limits, ac.call
    conn = _Conn()
    try:
        while True:
            try:
                message = await asyncio.wait_for(ws.receive(), limits.idle_seconds)
            except TimeoutError:
                await _finish_call(ws, wb, ac, {"type": "hangup"}, reason=f"{limits.idle_seconds:g} 秒没有收到任何帧，通话已结束")
                return
            if message["type"] == "websocket.disconnect":
                return
            if call.connection is not ws or call.lost:
                return  # replaced by a newer connection, or taken over by another worker
            call.last_frame = time.monotonic()
            data = message.get("bytes")
            if data is not None:
                await _audio(ws, ac, conn, data)
                continue
            text = message.get("text") or ""
            n: Any = None
            try:
                frame = incoming(call, text, limits)
                n = frame.get("n")
                if await acked_again(ws, call, n):
                    continue
                if frame["type"] == "hangup":
                    if n is not None:
                        call.received = n
                    await _finish_call(ws, wb, ac, frame)
                    return
                if frame["type"] == "start":
                    raise LiveError("bad_frame", "start 帧只能是第一帧")
                if frame["type"] == "event":
                    if frame.get("phase") is not None and frame.get("at") is None:
                        frame["at"] = round(ac.pipe.clock, 3)
                    elif all(frame.get(k) is None for k in ("at", "start", "end")):
                        frame["at"] = round(ac.pipe.clock, 3)
                if frame["type"] == "tick" and frame.get("t") is None:
                    frame["t"] = round(ac.pipe.clock, 3)
                items = applied(calls, call, frame)
            except LiveError as exc:
                await ws.send_json(error(exc.code, exc.message, n))
                continue
            await ws.send_json({"type": "guidance", "ack": n, "items": items})
            if items and call.watchers:
                await _broadcast(call, [{"type": "guidance", "items": items}])
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        if detach(ws, call):
            # the connection dropped: the call waits for a resume (audio.at says where the audio goes on);
            # if none comes within RESUME_GRACE, what was being said ends here and is transcribed
            ac.detached_wall = stamp = time.monotonic()
            if not call.session.ended:
                task = asyncio.get_running_loop().create_task(ac.flush_later(stamp))
                ac.waits.add(task)
                task.add_done_callback(ac.waits.discard)


async def _audio(ws: WebSocket, ac: AudioCall, conn: _Conn, data: bytes) -> None:
    cfg, limits = ac.cfg, ac.calls.limits
    if ac.call.session.ended or ac.closing:
        await ws.send_json(error("ended", "通话已挂断，不再接收音频"))
        return
    if len(data) > cfg.max_frame_bytes:
        await ws.send_json(error("frame_too_large", f"音频帧 {len(data)} 字节，超过上限 {cfg.max_frame_bytes} 字节，帧已丢弃"))
        return
    seconds = len(data) / ac.fmt.bytes_per_second
    allowed = cfg.max_speed * (time.monotonic() - conn.t0) + cfg.burst_seconds
    if conn.audio_seconds + seconds > allowed:
        await ws.send_json(error("audio_too_fast", f"音频发送快于实时的 {cfg.max_speed:g} 倍，帧已丢弃：请按通话的实际节奏发送"))
        return
    if ac.pipe.clock + seconds > limits.max_call_seconds:
        await ws.send_json(error("call_too_long", f"通话时长超过上限 {limits.max_call_seconds:g} 秒，音频不再处理"))
        return
    conn.audio_seconds += seconds
    try:
        # the VAD off the event loop too (numpy and onnxruntime let the other core work); one frame of a call
        # at a time, in order, since this handler awaits it
        async with ac.lock:
            segs = await asyncio.get_running_loop().run_in_executor(_VAD_POOL, ac.pipe.feed, data)
    except LiveError as exc:
        await ws.send_json(error(exc.code, exc.message))
        return
    ac.submit(segs)
    if ac.pipe.clock - ac.last_tick >= TICK_SECONDS:
        items = ac.tick()
        if items:
            await ws.send_json({"type": "guidance", "items": items})
            if ac.call.watchers:
                await _broadcast(ac.call, [{"type": "guidance", "items": items}])


async def _finish_call(ws: WebSocket, wb: Workbench, ac: AudioCall, frame: dict[str, Any], reason: str | None = None
                       ) -> None:
    """Hang-up: the last words are transcribed and go in, then the report, the store, `ended`."""
    call, calls = ac.call, ac.calls
    ac.closing = True
    await ac.flush_and_wait()
    frame = dict(frame)
    if frame.get("at") is None:
        frame["at"] = round(ac.pipe.clock, 3)
    try:
        items = apply(call, frame, calls.limits)
        calls.record(call, frame.get("n"), frame)
    except LiveError as exc:
        if exc.code == "empty":  # nothing was said: nothing to score or keep
            await _send(ws, error(exc.code, "通话中没有识别到任何语句，未生成报告"))
            calls.calls.pop(call.session.call_id, None)
            audio_calls(ws.app).pop(call.session.call_id, None)
            with contextlib.suppress(Exception):
                await _db(wb, live_store.drop, call.session.call_id)
            ended = {"type": "ended", "stored": False, "reason": "没有语句"}
            await _send(ws, ended)
            await _broadcast(call, [ended])
            call.connection = None
            with contextlib.suppress(Exception):
                await ws.close(CLOSE_NORMAL)
            return
        ac.closing = False
        await _send(ws, error(exc.code, exc.message, frame.get("n")))
        return
    calls.note(call, items)
    await _send(ws, {"type": "guidance", "ack": frame.get("n"), "items": items})
    await _broadcast(call, [{"type": "guidance", "items": items}])
    await _store(wb, call)
    ended = {"type": "ended", "stored": call.stored, "note": call.store_note}
    if reason:
        ended["reason"] = reason
    await _send(ws, ended)
    await _broadcast(call, [ended])
    call.connection = None
    call.dirty = True
    audio_calls(ws.app).pop(call.session.call_id, None)
    with contextlib.suppress(Exception):
        await ws.close(CLOSE_NORMAL)


__all__ = ["AUDIO_PATH", "AudioConfig", "audio_config", "router"]
