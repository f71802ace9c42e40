"""`kefuqa replay CALL.json --speed 10 --url ws://…`: stream a stored conversation into the live-assist
WebSocket as if it were happening, and print the guidance that comes back (for demos and tests)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from .errors import InputError
from .live.frames import frames, start_frame
from .model import Conversation
from .readers import read_path
from .replay_follow import err, push


async def replay(conv: Conversation, url: str, token: str | None, speed: float, *, call_id: str | None = None,
                 partials: bool = False, as_json: bool = False) -> int:
    plan = [(at, json.dumps(f, ensure_ascii=False)) for at, f in frames(conv, partials=partials)]
    return await push(url, token, start_frame(conv, call_id), plan, speed, as_json=as_json)


def replay_cmd(
    path: Annotated[str, typer.Argument(help="一通会话的文件（JSON、文本、CSV、ASR JSON 等）。")],
    url: Annotated[str, typer.Option(help="实时辅助的 WebSocket 地址，例如 ws://127.0.0.1:8000/api/assist/v1/ws")],
    token: Annotated[str | None, typer.Option(envvar="KEFUQA_TOKEN", help="API 令牌（或环境变量 KEFUQA_TOKEN）。")] = None,
    speed: Annotated[float, typer.Option(min=0.01, help="回放速度，实际速度的倍数（10 = 快十倍）。")] = 1.0,
    call_id: Annotated[str | None, typer.Option(help="用这个通话编号代替文件里的。")] = None,
    partials: Annotated[bool, typer.Option(help="每句话之前先发送一个中间识别结果。")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="把服务端的帧按 JSON 行输出。")] = False,
    audio: Annotated[bool, typer.Option("--audio", help="PATH 是录音：按 20 毫秒 L16 帧推送到音频接口"
                                        "（…/api/assist/v1/audio）。")] = False,
    channels: Annotated[str | None, typer.Option(help="--audio：立体声文件各声道的角色（customer,agent）；"
                                                 "单声道文件：agent、customer 或 mixed（默认）。")] = None,
) -> None:
    """把已存的会话（或 --audio 时的录音）按实时节奏推送到实时辅助，并打印提示。"""
    if audio:
        from .replay_audio import replay_audio

        try:
            errors = asyncio.run(replay_audio(path, url, token, speed, call_id=call_id, channels=channels,
                                              as_json=as_json))
        except (OSError, TimeoutError) as exc:
            err.print(f"连接失败 {escape(url)}：{escape(str(exc) or type(exc).__name__)}")
            raise typer.Exit(2) from None
        except Exception as exc:  # unreadable audio, the server closed the connection
            err.print(f"回放中断 {escape(path)}：{escape(str(exc) or type(exc).__name__)}")
            raise typer.Exit(2) from None
        if errors:
            sys.exit(2)
        return
    items = [c for c in read_path(path)]
    bad = [c for c in items if isinstance(c, InputError)]
    convs = [c for c in items if isinstance(c, Conversation)]
    if bad or len(convs) != 1:
        err.print(f"无法回放 {escape(path)}：" + (escape(str(bad[0])) if bad else f"应有一通会话，读到 {len(convs)} 通"))
        raise typer.Exit(2)
    try:
        errors = asyncio.run(replay(convs[0], url, token, speed, call_id=call_id, partials=partials, as_json=as_json))
    except (OSError, TimeoutError) as exc:
        err.print(f"连接失败 {escape(url)}：{escape(str(exc) or type(exc).__name__)}")
        raise typer.Exit(2) from None
    except Exception as exc:  # the server closed the connection (auth, protocol)
        err.print(f"回放中断：{escape(str(exc) or type(exc).__name__)}")
        raise typer.Exit(2) from None
    if errors:
        sys.exit(2)


def register(app: typer.Typer) -> None:
    app.command("replay")(replay_cmd)
    from .replay_audio import audiosocket_cmd

    app.command("assist-audiosocket")(audiosocket_cmd)
