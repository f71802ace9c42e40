"""What `kefuqa replay` does with the live-assist WebSocket, text and audio alike: send the start frame, push
the call's frames at the pace `--speed` gives, and follow what the server sends back — guidance (with the
recognised utterance on the audio path), errors, the end of the call — printing it in Chinese or as JSON
lines. No numpy here: `kefuqa --help` and text replay run on the core install."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape

from .live.lines import line

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
ROLE_ZH = {"agent": "坐席", "customer": "客户", "system": "系统"}
# error codes after which the server takes no more of the call (the start frame was refused)
FINAL_ERRORS = ("unauthorized", "bad_audio_format", "no_asr", "asr_unavailable", "no_start", "bad_version")


def frame_lines(f: dict[str, Any]) -> list[str]:
    """A guidance frame as printed lines: the utterance it answers (audio path), then one line per item."""
    lines = []
    u = f.get("utterance")
    if u:
        lines.append(f"[{u['start']:.1f}–{u['end']:.1f}s] {ROLE_ZH.get(u['role'], u['role'])}：{u['text']}")
    lines += [line(it) for it in f.get("items") or []]
    return lines


async def follow(ws: Any, as_json: bool = False) -> int:
    """Print the server's frames until the call has ended (or was refused, or the connection closed); the
    number of errors, counting a connection that closed before the call ended."""
    from websockets.exceptions import ConnectionClosed

    errors = 0
    try:
        async for raw in ws:
            msg = json.loads(raw)
            if as_json:
                out.print(escape(json.dumps(msg, ensure_ascii=False)))
            elif msg["type"] == "guidance":
                for ln in frame_lines(msg):
                    out.print(escape(ln))
            elif msg["type"] == "error":
                errors += 1
                err.print(f"错误 {msg['code']}：{escape(msg['message'])}")
            if msg["type"] == "ended" or (msg["type"] == "error" and msg["code"] in FINAL_ERRORS):
                return errors
    except ConnectionClosed as exc:  # refused (its error frame was printed) or the server went away
        if not errors:
            errors += 1
            code = exc.rcvd.code if exc.rcvd is not None else "无"
            err.print(f"连接被服务端关闭（代码 {code}），通话未结束")
        return errors
    if not errors:  # closed without a report
        errors += 1
        err.print("连接被服务端关闭，通话未结束")
    return errors


async def push(url: str, token: str | None, start: dict[str, Any], plan: Iterable[tuple[float, str | bytes]],
               speed: float, *, as_json: bool = False, last: dict[str, Any] | None = None,
               timeout: float = 60) -> int:
    """Open the call with `start`, send each (seconds into the call, frame) of `plan` when its time comes at
    `speed`, then `last` (a hangup) unless the call already ended; what `follow` returns."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with connect(url, additional_headers=headers, max_size=2**22) as ws:
        await ws.send(json.dumps(start, ensure_ascii=False))
        task = asyncio.create_task(follow(ws, as_json))
        t0 = time.monotonic()
        for at, f in plan:
            if task.done():  # the server refused the call or closed the connection
                break
            wait = at / speed - (time.monotonic() - t0)
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await ws.send(f)
            except ConnectionClosed:
                break
        if last is not None and not task.done():
            try:
                await ws.send(json.dumps(last))
            except ConnectionClosed:
                pass
        return await asyncio.wait_for(task, timeout)
