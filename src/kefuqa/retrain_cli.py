"""`kefuqa model export-reviews` and `kefuqa model train --reviews`: learning from inspectors' verdicts
(registered on the `model` group by judge_cli). The work is the library's: `service.usecases.learning`
exports, `judge.retrain` trains, compares and activates; this module parses options and prints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from .judge.corpus import CorpusError, Example
from .judge.ngram import ModelError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _since(raw: str | None, tz: str) -> datetime | None:
    """YYYY-MM-DD as the start of that day in the workbench's time zone, in UTC."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        err.print(f"[red]错误[/red] --since {raw!r}：日期格式应为 YYYY-MM-DD")
        raise typer.Exit(2) from None
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


def export_reviews_cmd(
        db: Annotated[str, typer.Option("--db", help="工作台数据库 URL（如 sqlite:///kefuqa.db 或 postgresql+psycopg://…）")],
        out_file: Annotated[Path, typer.Option("--out", help="输出的 JSONL 文件")],
        since: Annotated[str | None, typer.Option(help="只导出该日（含，工作台时区）以后的复核和申诉裁决，YYYY-MM-DD")] = None,
) -> None:
    """把判断规则（intent）扣分项的复核结论和申诉裁决导出为训练样本：确认 → 正例，驳回 → 难负例；申诉成立 → 负例，
    申诉驳回 → 正例。同一句话被判为两种结论时记为冲突，不导出。"""
    try:
        from .service.config import Settings
        from .service.usecases import Ctx
        from .service.usecases.learning import export_reviews, write_jsonl
        from .service.workbench import Workbench
    except ImportError as exc:
        err.print(f"[red]错误[/red] 导出复核样本需要工作台组件：pip install 'kefuqa[server]'（{exc}）")
        raise typer.Exit(2) from None
    from sqlalchemy.exc import SQLAlchemyError

    settings = Settings.from_env(database_url=db)
    start = _since(since, settings.timezone)
    try:
        wb = Workbench(settings)
    except (SQLAlchemyError, ValueError) as exc:
        err.print(f"[red]错误[/red] 数据库 {db}：{exc}")
        raise typer.Exit(2) from None
    try:
        with wb.sessions() as session:
            got = export_reviews(Ctx(wb, session), start)
        write_jsonl(got.rows, out_file)
    except SQLAlchemyError as exc:
        err.print(f"[red]错误[/red] 读取数据库失败：{str(exc).splitlines()[0]}")
        raise typer.Exit(2) from None
    except OSError as exc:
        err.print(f"[red]错误[/red] {out_file}：无法写入（{exc.strerror or exc}）")
        raise typer.Exit(2) from None
    finally:
        wb.engine.dispose()
    pos = sum(r["y"] for r in got.rows)
    out.print(f"已写入 {out_file}：{len(got.rows)} 条样本（正例 {pos}，负例 {len(got.rows) - pos}），"
              f"来自 {got.verdicts} 条复核/申诉结论；冲突 {len(got.conflicts)} 句未导出；跳过 {got.skipped} 处"
              "（句子不存在或角色不符）")
    for text, label in got.conflicts[:20]:
        err.print(f"[yellow]冲突，未导出[/yellow] {label}：{text}")


def retrain_with_reviews(examples: Sequence[Example], paths: Sequence[Path], target: Path, *, force: bool,
                         corpus_sha: str) -> None:
    """Train a candidate with the review rows, compare, activate or keep the current model, and print why."""
    from .judge.retrain import read_review_rows, retrain

    rows: list[Example] = []
    skipped: list[str] = []
    try:
        for p in paths:
            rows.extend(read_review_rows(p, skipped))
    except CorpusError as exc:
        err.print(f"[red]错误[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        got = retrain(examples, rows, target, force=force, corpus_sha=corpus_sha, log=out.print)
    except ModelError as exc:
        err.print(f"[red]错误[/red] 当前模型无法读取：{exc}")
        raise typer.Exit(2) from None
    a = got.added
    out.print(f"复核样本 {len(rows)} 条：加入训练集 {a.added}，与训练集重复 {a.duplicates}，"
              f"与留出集同句而未用 {a.heldout}" + (f"；非判断规则的样本跳过 {len(skipped)} 条" if skipped else ""))
    t = Table("标签", "当前 F1", "候选 F1", "变化", "结论", title="留出行业上的比较（同一留出集）")
    for c in got.gate.labels:
        verdict = "[red]下降超过 0.01[/red]" if c.worse else (
            "提高" if c.delta > 0.0005 else "略降（容许 0.01 以内）" if c.delta < -0.0005 else "持平")
        t.add_row(c.label, f"{c.current:.3f}", f"{c.candidate:.3f}", f"{c.delta:+.3f}", verdict)
    g = got.gate
    t.add_row("宏平均", f"{g.current_macro:.3f}", f"{g.candidate_macro:.3f}",
              f"{g.candidate_macro - g.current_macro:+.3f}", "[red]下降[/red]" if g.macro_dropped else "未下降")
    out.print(t)
    if got.activated:
        how = "（--force：成绩变差仍强制启用）" if got.forced else ""
        out.print(f"已启用新模型 {got.version}{how}：{target}")
        if got.kept is not None:
            out.print(f"原模型已保留在 {got.kept}（复制回 {target} 即可撤销）")
        out.print("工作台需重启后才会用新模型评分；新评分的报告记录模型版本。")
    else:
        out.print(f"[yellow]未启用[/yellow] 候选模型 {got.version} 的留出成绩变差，继续使用当前模型：")
        for r in g.reasons():
            out.print(f"  · {r}")
        out.print(f"候选模型保存在 {got.candidate}；确需启用可加 --force。")
        raise typer.Exit(1)
