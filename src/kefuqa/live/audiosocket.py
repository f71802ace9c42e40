"""Asterisk AudioSocket → the assist audio WebSocket (`kefuqa assist-audiosocket`).

AudioSocket (https://docs.asterisk.org/Configuration/Channel-Drivers/AudioSocket/, Asterisk's
``include/asterisk/res_audiosocket.h``) is TCP; every message is a 3-byte header — a kind byte and the
payload length as an unsigned 16-bit big-endian integer — then the payload:

- ``0x00`` hang up (no payload; closing the socket means the same)
- ``0x01`` the call's UUID, 16 bytes (the dialplan's ``AudioSocket(uuid,host:port)``), sent first
- ``0x03`` a DTMF digit, 1 ASCII byte
- ``0x10`` audio: signed linear 16-bit, 8 kHz, mono, little-endian (slin)
- ``0x12`` audio as slin16 (16 kHz) in current Asterisk, where ``0x11`` is slin12; one short-lived release
  used ``0x11`` for slin16, so ``0x11`` is refused with an explanation rather than guessed
- ``0xff`` an error; Asterisk's payload is one byte of flags: 0x01 the caller hung up, 0x02 frame
  forwarding, 0x04 memory

AudioSocket has no field for credentials or call details: the bridge listens on an internal address and
acts with the API token it was started with; each connection becomes one live call whose id is the UUID.
The audio is the channel's one stream (``--role``: the party it carries, or ``mixed`` for a snoop that
hears both). If the WebSocket drops, the bridge reconnects and resumes the call (``resume`` + ``audio.at``
= the audio already delivered); Asterisk's audio waits in the TCP buffer meanwhile, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HANGUP, UUID, DTMF, SLIN, SLIN11, SLIN16, ERROR = 0x00, 0x01, 0x03, 0x10, 0x11, 0x12, 0xFF
AUDIO_RATES = {SLIN: 8000, SLIN16: 16000}
RESEND_SECONDS = 3.0
ASTERISK_ERRORS = {0x01: "主叫挂机", 0x02: "帧转发错误", 0x04: "内存分配错误"}


class AudioSocketError(Exception):
    """A message that breaks the protocol (Chinese message; the connection is closed)."""


def encode(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise AudioSocketError(f"负载 {len(payload)} 字节超过 AudioSocket 上限 65535")
    return struct.pack(">BH", kind, len(payload)) + payload


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """The next (kind, payload), or None at the end of the stream."""
    try:
        head = await reader.readexactly(3)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise AudioSocketError(f"消息头不完整（{len(exc.partial)} 字节，应为 3 字节）") from None
        return None
    kind, length = struct.unpack(">BH", head)
    try:
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise AudioSocketError(f"消息 0x{kind:02x} 声明 {length} 字节负载，只收到 {len(exc.partial)} 字节") from None
    return kind, payload


def describe_error(payload: bytes) -> str:
    if not payload:
        return "Asterisk 报告错误（无错误码）"
    code = payload[0]
    names = [v for k, v in ASTERISK_ERRORS.items() if code & k] or [f"未知错误码 0x{code:02x}"]
    return "Asterisk 报告错误：" + "、".join(names)


@dataclass
class Bridge:
    """One AudioSocket server; each TCP connection is streamed to `url` (the audio WebSocket)."""

    url: str
    token: str | None
    role: str = "mixed"
    direction: str = "inbound"
    hangover_ms: int | None = None
    on_frame: Callable[[str, dict[str, Any]], None] | None = None  # (call id, server frame): printing, tests
    retries: int = 5
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def serve(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self.handle, host, port)

    def _emit(self, cid: str, frame: dict[str, Any]) -> None:
        if self.on_frame is not None:
            self.on_frame(cid, frame)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cid = "?"
        try:
            first = await asyncio.wait_for(read_message(reader), 10)
            if first is None:
                return
            kind, payload = first
            if kind != UUID or len(payload) != 16:
                raise AudioSocketError(f"第一条消息应为 0x01（16 字节 UUID），收到 0x{kind:02x}（{len(payload)} 字节）")
            cid = str(uuid.UUID(bytes=payload))
            await self._stream(cid, reader)
        except (AudioSocketError, TimeoutError) as exc:
            msg = str(exc) or "10 秒内没有收到 UUID"
            self._emit(cid, {"type": "error", "code": "audiosocket", "message": msg})
            with contextlib.suppress(Exception):
                writer.write(encode(ERROR, msg.encode()[:200]))
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.write(encode(HANGUP))
                await writer.drain()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _stream(self, cid: str, reader: asyncio.StreamReader) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        # the first audio message says the rate
        early: list[tuple[int, bytes]] = []
        rate = None
        while rate is None:
            msg = await read_message(reader)
            if msg is None:
                return  # hung up before any audio: no call
            kind, payload = msg
            if kind == HANGUP or kind == ERROR:
                return
            if kind == SLIN11:
                raise AudioSocketError("音频类型 0x11 在不同 Asterisk 版本中表示 12 kHz 或 16 kHz，无法判断："
                                       "请把通道编码设为 slin（0x10，8 kHz）或 slin16（0x12，16 kHz）")
            if kind in AUDIO_RATES:
                rate = AUDIO_RATES[kind]
            early.append(msg)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        audio: dict[str, Any] = {"rate": rate, "channels": 1, "roles": [self.role]}
        if self.hangover_ms is not None:
            audio["hangover_ms"] = self.hangover_ms
        start = {"type": "start", "v": 1, "call": {"id": cid, "channel": "phone", "direction": self.direction},
                 "audio": audio}
        sent = 0.0  # seconds of audio delivered
        last_seq = 0
        n = 0
        state = self.calls[cid] = {"ended": None, "resumes": 0}
        bytes_per_second = rate * 2
        backlog: list[tuple[int, bytes]] = list(early)
        ring: deque[bytes] = deque()  # the last RESEND_SECONDS of audio sent: resent after a reconnect
        ring_bytes = 0
        tries = 0
        opened = False
        while True:
            try:
                async with connect(self.url, additional_headers=headers, max_size=2**22) as ws:
                    first = dict(start)
                    if opened:
                        first["resume"] = {"after_seq": last_seq}
                        first["audio"] = {**audio, "at": round(sent - ring_bytes / bytes_per_second, 4)}
                    await ws.send(json.dumps(first, ensure_ascii=False))
                    ready = json.loads(await ws.recv())
                    self._emit(cid, ready)
                    if ready.get("type") != "ready":
                        raise AudioSocketError(f"服务拒绝：{ready.get('message') or ready}")
                    done = asyncio.get_running_loop().create_future()

                    async def replies(ws: Any = ws, done: asyncio.Future[Any] = done) -> None:
                        nonlocal last_seq
                        try:
                            async for raw in ws:
                                f = json.loads(raw)
                                for it in f.get("items") or []:
                                    last_seq = max(last_seq, int(it.get("seq", 0)))
                                self._emit(cid, f)
                                if f.get("type") == "ended" and not done.done():
                                    done.set_result(f)
                        except ConnectionClosed:
                            pass

                    task = asyncio.create_task(replies())
                    try:
                        if opened and ring and first.get("resume"):
                            for b in ring:  # the server drops what it already had (audio.at)
                                await ws.send(b)
                        opened = True
                        while True:
                            if backlog:
                                kind, payload = backlog[0]
                            else:
                                msg = await read_message(reader)
                                if msg is None:
                                    kind, payload = HANGUP, b""
                                else:
                                    kind, payload = msg
                                backlog.append((kind, payload))
                            if kind in AUDIO_RATES:
                                if AUDIO_RATES[kind] != rate:
                                    self._emit(cid, {"type": "error", "code": "bad_audio", "message":
                                                     f"音频类型 0x{kind:02x} 与通话开始时的 {rate} Hz 不同，已丢弃"})
                                else:
                                    await ws.send(payload)
                                    sent += len(payload) / bytes_per_second
                                    ring.append(payload)
                                    ring_bytes += len(payload)
                                    while ring_bytes - len(ring[0]) >= RESEND_SECONDS * bytes_per_second:
                                        ring_bytes -= len(ring.popleft())
                            elif kind == DTMF and payload:
                                n += 1
                                await ws.send(json.dumps({"type": "event", "event": "dtmf", "n": n,
                                                          "target": payload[:1].decode("ascii", "replace")}))
                            elif kind in (HANGUP, ERROR):
                                n += 1
                                hang: dict[str, Any] = {"type": "hangup", "n": n}
                                if kind == ERROR:
                                    self._emit(cid, {"type": "error", "code": "asterisk", "message": describe_error(payload)})
                                    if payload and payload[0] & 0x01:
                                        hang["ended_by"] = "customer"
                                await ws.send(json.dumps(hang))
                                backlog.pop(0)
                                state["ended"] = await asyncio.wait_for(done, 120)
                                return
                            elif kind == SLIN11:
                                self._emit(cid, {"type": "error", "code": "bad_audio", "message": "音频类型 0x11 无法判断采样率，已丢弃"})
                            backlog.pop(0)
                    finally:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
            except (ConnectionClosed, OSError) as exc:
                if state["ended"] is not None:
                    return
                tries += 1
                if tries > self.retries:
                    self._emit(cid, {"type": "error", "code": "disconnected",
                                     "message": f"与服务的连接断开，重试 {self.retries} 次仍失败：{exc}"})
                    return
                state["resumes"] += 1
                await asyncio.sleep(min(2.0, 0.2 * tries))
