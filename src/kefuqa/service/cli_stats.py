"""`kefuqa stats rebuild` and `kefuqa stats compact`: the daily statistics rollup behind the overview and the
trends (issue 13, migration 0009). `serve`, `ingest` and every other command build it by themselves when it is
missing or was built for another zone (KEFUQA_TIMEZONE); `rebuild` recomputes it from the stored calls on
demand (after loading calls with triggers disabled, say), `compact` merges the rows appended since the last
merge (the pages do that by themselves once enough have piled up)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from .config import Settings

DatabaseURL = Annotated[str | None, typer.Option("--database-url", envvar="KEFUQA_DATABASE_URL",
                                                 help="数据库 SQLAlchemy URL；默认是数据目录里的 SQLite 文件")]
DataDir = Annotated[str | None, typer.Option("--data-dir", envvar="KEFUQA_DATA_DIR",
                                             help="SQLite 文件和录音存放的目录（~/.local/share/kefuqa）")]


def _workbench(database_url: str | None, data_dir: str | None):  # type: ignore[no-untyped-def]
    from .workbench import Workbench

    settings = Settings.from_env(database_url=database_url or None,
                                 data_dir=Path(data_dir).expanduser() if data_dir else None)
    wb = Workbench(settings)
    wb.setup()
    return wb


def rebuild_command(database_url: DatabaseURL = None, data_dir: DataDir = None) -> None:
    """按已存储的会话重新计算每日统计汇总（总览、趋势和待复核数所用）。"""
    from . import rollup
    from .models import StatsCalls

    wb = _workbench(database_url, data_dir)
    t0 = time.perf_counter()
    rollup.rebuild(wb.engine, wb.settings.timezone)
    with wb.sessions() as db:
        rows = db.query(StatsCalls).count()
    print(f"每日统计汇总已重建（时区 {wb.settings.timezone}）：{rows} 行，用时 {time.perf_counter() - t0:.1f} 秒")
    wb.engine.dispose()


def compact_command(database_url: DatabaseURL = None, data_dir: DataDir = None) -> None:
    """合并每日统计汇总中新追加的行（页面在行数较多时会自动合并）。"""
    from . import rollup

    wb = _workbench(database_url, data_dir)
    merged = rollup.compact(wb.engine)
    print(f"已合并 {merged} 行统计记录")
    wb.engine.dispose()


def register(app: typer.Typer) -> None:
    stats = typer.Typer(help="每日统计汇总：重建或合并。", no_args_is_help=True)
    stats.command("rebuild")(rebuild_command)
    stats.command("compact")(compact_command)
    app.add_typer(stats, name="stats")
