"""`kefuqa replay CALL.wav --audio --url ws://…/api/assist/v1/audio`: stream a recording into the assist
audio WebSocket as a PBX would (JSON start frame with the audio format, then 20 ms L16 frames at the pace
`--speed` gives) and print what comes back: each recognised utterance and its guidance. And
`kefuqa assist-audiosocket`: the Asterisk AudioSocket bridge (`kefuqa.live.audiosocket`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .replay_follow import err, frame_lines, out, push

if TYPE_CHECKING:  # numpy comes with kefuqa[audio]; `kefuqa --help` and text replay work without it
    import numpy as np


def load(path: str, channels: str | None) -> tuple[np.ndarray, int, list[str]]:
    """A recording as (channels, n) float32 at 8 or 16 kHz, and each channel's role."""
    import numpy as np

    from .audio import parse_channels
    from .audio.decode import decode, to_rate

    d = decode(path)
    x = d.samples
    rate = 8000 if d.sample_rate <= 8000 else 16000
    if d.sample_rate != rate:
        x = to_rate(x, d.sample_rate, rate)
    if x.shape[0] > 2:
        raise ValueError(f"{x.shape[0]} 个声道：实时接口只接受单声道或立体声（每方一个声道）")
    if x.shape[0] == 2:
        roles = list(parse_channels(channels))
    else:
        roles = [channels.strip()] if channels and channels.strip() in ("agent", "customer") else ["mixed"]
    return np.asarray(x, np.float32), rate, roles


async def replay_audio(path: str, url: str, token: str | None, speed: float, *, call_id: str | None = None,
                       channels: str | None = None, direction: str = "inbound", as_json: bool = False,
                       frame_ms: int = 20) -> int:
    from .live.audio import pcm_frames

    x, rate, roles = load(path, channels)
    step = frame_ms / 1000
    plan = ((k * step, b) for k, b in enumerate(pcm_frames(x, rate, frame_ms)))
    start = {"type": "start", "v": 1, "call": {"id": call_id or Path(path).stem, "channel": "phone",
                                              "direction": direction},
             "audio": {"rate": rate, "channels": int(x.shape[0]), "roles": roles}}
    return await push(url, token, start, plan, speed, as_json=as_json, last={"type": "hangup", "n": 1}, timeout=300)


def audiosocket_cmd(
    listen: Annotated[str, typer.Option(help="接收 AudioSocket 连接的 主机:端口（只在内网开放）。")]
    = "127.0.0.1:9092",
    url: Annotated[str, typer.Option(help="实时辅助的音频 WebSocket 地址。")] = "ws://127.0.0.1:8000/api/assist/v1/audio",
    token: Annotated[str | None, typer.Option(envvar="KEFUQA_TOKEN", help="开启通话所用的 API 令牌。")] = None,
    role: Annotated[str, typer.Option(help="音频里是谁：mixed（旁听双方的混音）、customer 或 agent。")]
    = "mixed",
    direction: Annotated[str, typer.Option(help="呼入 inbound 或呼出 outbound。")] = "inbound",
    hangover_ms: Annotated[int | None, typer.Option(help="多长的静音算一句话结束（毫秒）。")] = None,
    quiet: Annotated[bool, typer.Option(help="不打印识别的话和提示。")] = False,
) -> None:
    """接收 Asterisk AudioSocket（TCP）通话，把每通推送到实时辅助的音频 WebSocket。"""
    from .live.audiosocket import Bridge

    if role not in ("mixed", "customer", "agent"):
        err.print(f"--role {escape(role)}：应为 mixed、customer 或 agent")
        raise typer.Exit(2)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        err.print(f"--listen {escape(listen)}：应为 主机:端口，如 127.0.0.1:9092")
        raise typer.Exit(2)

    def show(cid: str, f: dict[str, Any]) -> None:
        if f.get("type") == "error":
            err.print(f"[{cid}] 错误 {f.get('code')}：{escape(str(f.get('message')))}")
        elif not quiet and f.get("type") == "guidance":
            for ln in frame_lines(f):
                out.print(f"[{cid}] {escape(ln)}")
        elif not quiet and f.get("type") == "ended":
            out.print(f"[{cid}] 通话结束（已保存：{f.get('stored')}）")

    async def main() -> None:
        bridge = Bridge(url, token, role=role, direction=direction, hangover_ms=hangover_ms, on_frame=show)
        server = await bridge.serve(host.strip("[]"), int(port))
        out.print(f"AudioSocket 桥接：监听 {listen} → {url}")
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    except OSError as exc:
        err.print(f"无法监听 {escape(listen)}：{escape(str(exc))}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass
