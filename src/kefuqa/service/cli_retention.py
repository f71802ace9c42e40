"""`kefuqa retention apply`: delete the calls older than the retention period (KEFUQA_RETENTION_DAYS or
--days) with their recordings; --dry-run counts them only."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .config import Settings

RETENTION_ENV = "KEFUQA_RETENTION_DAYS"


def retention_days(value: int | None, env: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """The days to keep: --days, else KEFUQA_RETENTION_DAYS; a clear error when neither is a positive integer."""
    if value is not None:
        if value < 1:
            raise ValueError("--days 须为正整数")
        return value
    raw = (env.get(RETENTION_ENV) or "").strip()
    if not raw:
        raise ValueError(f"没有设置保留期限：请用 --days 或环境变量 {RETENTION_ENV} 指定天数")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"环境变量 {RETENTION_ENV}={raw!r} 不是正整数天数")
    return int(raw)


def apply_command(
    days: Annotated[int | None, typer.Option("--days", help=f"保留的天数（默认取 ${RETENTION_ENV}）")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只统计要删除的通话，不删除")] = False,
    database_url: Annotated[str | None, typer.Option("--database-url", envvar="KEFUQA_DATABASE_URL",
                                                             help="数据库 SQLAlchemy URL；默认是数据目录里的 SQLite 文件")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", envvar="KEFUQA_DATA_DIR",
                                                         help="SQLite 文件和录音存放的目录（~/.local/share/kefuqa）")] = None,
) -> None:
    """删除超过保留期的通话及其录音（记入审计日志）。"""
    from pathlib import Path

    from .usecases import Ctx
    from .usecases.lifecycle import apply_retention
    from .workbench import Workbench

    try:
        keep = retention_days(days)
    except ValueError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    settings = Settings.from_env(database_url=database_url or None,
                                 data_dir=Path(data_dir).expanduser() if data_dir else None)
    wb = Workbench(settings)
    wb.setup()
    with wb.sessions() as db:
        r = apply_retention(Ctx(wb, db), keep, dry_run=dry_run)
    when = r.cutoff.astimezone().strftime("%Y-%m-%d %H:%M")
    if r.dry_run:
        print(f"保留 {r.days} 天：{when} 之前的会话共 {r.calls} 通（试运行，未删除）")
    else:
        print(f"保留 {r.days} 天：已删除 {when} 之前的会话 {r.calls} 通，录音文件 {r.audio_removed} 个")
    wb.engine.dispose()


def register(app: typer.Typer) -> None:
    retention = typer.Typer(help="数据保留：删除早于 KEFUQA_RETENTION_DAYS 天的通话。", no_args_is_help=True)
    retention.command("apply")(apply_command)
    app.add_typer(retention, name="retention")
