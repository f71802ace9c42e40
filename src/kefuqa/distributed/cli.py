"""`kefuqa batch SRC… --out DST`: the command line of `kefuqa.distributed` (registered by `kefuqa.cli`)."""

from __future__ import annotations

import importlib.util
import sys
import time
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)


def _split(values: list[str] | None) -> list[str] | None:
    """``--select LNG,OPN001 --select CLS`` as rule IDs and prefixes (as `kefuqa check` reads them)."""
    out = [v.strip().upper() for item in values or [] for v in item.split(",") if v.strip()]
    return out or None


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def batch(
    sources: Annotated[list[str], typer.Argument(help="文件、文件夹（递归）或 s3://桶/前缀。")],
    out: Annotated[str, typer.Option("--out", "-o", help="输出文件夹或 s3:// 地址（结果表和运行清单）。")],
    engine: Annotated[str, typer.Option(help="local（本机多进程）或 ray。")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray：集群地址（auto、ray://主机:10001）；"
                                                     "默认在本机启动 Ray。")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet 或 jsonl。")] = "parquet",
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="local：进程数；ray：actor 数"
                                                                  "（默认每个集群 CPU 一个）。")] = 1,
    rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="内置规则集名称、规则集文件夹或 YAML 文件。")] = None,
    scorecard: Annotated[str | None, typer.Option(help="用这个评分卡 YAML 替换规则集自带的评分卡。")] = None,
    select: Annotated[list[str] | None, typer.Option(help="只检查这些规则编号或前缀（LNG、LNG001）。")] = None,
    ignore: Annotated[list[str] | None, typer.Option(help="跳过这些规则编号或前缀。")] = None,
    input_format: Annotated[str | None, typer.Option(help="指定输入格式（json、jsonl、csv、tsv、text、aliyun、funasr、aws、audio）。")] = None,
    channels: Annotated[str | None, typer.Option(help="录音：各声道的角色，默认 agent,customer（左坐席、右客户）。")] = None,
    asr: Annotated[str | None, typer.Option(help="录音：语音识别引擎，例如 sherpa-onnx:/models/sense-voice。")] = None,
    vad: Annotated[str | None, typer.Option(help="录音：语音活动检测，auto、silero 或 energy。")] = None,
    pipeline: Annotated[str, typer.Option(help="Ray：actors（由主进程分派的 actor 池，默认）或 data"
                                               "（Ray Data 流水线）。")] = "actors",
    cpus_per_actor: Annotated[float | None, typer.Option(min=0.01, help="Ray：每个 actor 申请的 CPU 数"
                                                         "（默认由各 actor 平分集群的 CPU）。")] = None,
    gpus_per_actor: Annotated[float | None, typer.Option(min=0.0, help="Ray：每个 actor 申请的 GPU 数（0.25：每块 GPU "
                                                  "四个识别 actor）；actor 只在有 GPU 的节点上运行。默认：有 --asr 且集群有 GPU 时"
                                                  "自动平分（每块 GPU 至多 4 个 actor），否则不用 GPU；0：不用 GPU。")] = None,
    part_calls: Annotated[int, typer.Option(min=1, help="每个提交分片的通话数。")] = 5000,
    stall_timeout: Annotated[float, typer.Option(help="这么多秒内没有任何任务完成就停止运行。")] = 900.0,
    fail_on_error: Annotated[bool, typer.Option(help="有输入无法读取时以退出码 2 结束。")] = False,
) -> None:
    """把通话存档批量评分，写成 Parquet 表（通话、问题、错误）和运行清单；重跑时跳过已用同一规则集评过的通话，中途被终止的运行从停下处继续。"""
    from ..errors import InputError, RuleError
    from ..rules.rulebook import load_rulebook, with_scorecard

    missing = [m for m in ("pyarrow", "fsspec") if importlib.util.find_spec(m) is None]
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        missing.append("ray")
    if missing:
        _say(f"错误 批量评分需要安装 kefuqa[ray]（缺少 {', '.join(missing)}）：pip install 'kefuqa[ray]'")
        raise typer.Exit(2)
    if engine not in ("local", "ray"):
        _say(f"错误 未知的 --engine {engine!r}（可选 local、ray）")
        raise typer.Exit(2)
    if fmt not in ("parquet", "jsonl"):
        _say(f"错误 未知的 --format {fmt!r}（可选 parquet、jsonl）")
        raise typer.Exit(2)
    try:
        rb = load_rulebook(rulebook)
        if scorecard:
            rb = with_scorecard(rb, scorecard)
    except RuleError as exc:
        _say(f"规则集错误 {exc}")
        raise typer.Exit(2) from None
    if engine == "ray" and pipeline not in ("actors", "data"):
        _say(f"错误 未知的 --pipeline {pipeline!r}（可选 actors、data）")
        raise typer.Exit(2)
    if asr:
        from pathlib import Path

        from ..audio.asr import AsrError, parse_spec

        try:
            _, model_dir, _ = parse_spec(asr)
        except AsrError as exc:
            _say(f"错误 --asr 无法使用：{exc}")
            raise typer.Exit(2) from None
        if "://" not in str(model_dir) and not Path(model_dir).is_dir():
            # on a cluster every node needs the model at this path; the driver's copy is checked here
            _say(f"错误 --asr 的模型目录不存在：{model_dir}")
            raise typer.Exit(2)
    options = {k: v for k, v in (("channels", channels), ("asr", asr), ("vad", vad)) if v}
    ray_options: dict[str, object] = {"pipeline": pipeline, "gpus_per_actor": gpus_per_actor}
    if cpus_per_actor is not None:
        ray_options["cpus_per_actor"] = cpus_per_actor

    from .runner import Stalled, run_batch
    from .work import EngineError

    def on_error(e: InputError) -> None:
        _say(f"错误 {e}")

    t0 = time.perf_counter()
    try:
        res = run_batch(sources, out, rb, engine=engine, jobs=jobs, address=address, fmt=fmt,
                        input_format=input_format, read_options=options, select=_split(select),
                        ignore=_split(ignore), part_calls=part_calls,
                        ray_options=ray_options if engine == "ray" else None, stall_timeout=stall_timeout, on_error=on_error)
    except (Stalled, EngineError) as exc:
        _say(f"错误 {exc}")
        raise typer.Exit(3) from None
    secs = time.perf_counter() - t0
    rate = res.scored / secs if secs > 0 else 0.0
    _say(f"批量评分完成（{engine}）：评分 {res.scored} 通，跳过已评分 {res.skipped} 通，错误 {res.errors} 条"
         f"（重复编号 {res.duplicates}），{res.parts} 个分片，用时 {secs:.1f} 秒（{rate:.1f} 通/秒）；"
         f"输出 {out}，运行编号 {res.run_id}")
    if fail_on_error and res.errors:
        raise typer.Exit(2)
