"""Terminal output for a person: per call a header line and a table of findings, then a batch summary.

Uses rich. On a terminal it is coloured; when ``out`` is a file or a pipe it is plain text (no escape
codes) at a fixed width, so ``kefuqa check … > report.txt`` reads the same as the screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kefuqa.model import Report
from kefuqa.writers._common import (
    Summary,
    agent_label,
    coverage_label,
    fatal_label,
    finding_sort_key,
    fmt_num,
    fmt_points,
    fmt_time,
    grade_tone,
    severity_label,
)

__all__ = ["make_console", "write_table"]

TONE_STYLES: dict[str, str] = {"good": "bold green", "fair": "bold cyan", "pass": "bold yellow", "fail": "bold red"}
SEVERITY_STYLES: dict[str, str] = {"fatal": "bold red", "critical": "red", "major": "yellow", "minor": "cyan",
                                   "info": "dim"}

PLAIN_WIDTH = 120


def make_console(out: TextIO, *, color: bool | None = None, width: int | None = None) -> Console:
    """A rich Console on ``out``: colour only on a terminal unless ``color`` forces it either way."""
    probe = Console(file=out)
    tty = probe.is_terminal
    if width is None and not tty:
        width = PLAIN_WIDTH
    return Console(
        file=out,
        force_terminal=color if color is not None else None,
        no_color=(color is False) or None,
        color_system="auto" if color is not False else None,
        width=width,
        highlight=False,
        emoji=False,
        soft_wrap=False,
        legacy_windows=False,
    )


def _header(report: Report) -> Text:
    tone = grade_tone(report.grade, report.score, report.fatal)
    t = Text()
    t.append(report.call_id, style="bold")
    agent = agent_label(report)
    if agent:
        t.append("  坐席 ", style="dim")
        t.append(agent)
    t.append("  得分 ", style="dim")
    t.append(fmt_num(report.score), style=TONE_STYLES[tone])
    t.append("  ")
    t.append(report.grade, style=TONE_STYLES[tone])
    if report.fatal:
        t.append("  ")
        t.append(" 红线 ", style="bold white on red")
        if report.fatal_rules:
            t.append(" " + fatal_label(report) + " 判为 0 分", style="red")
    cov = coverage_label(report)
    if cov:
        t.append("  ")
        t.append(cov, style="dim" if report.coverage is None or report.coverage.sufficient else "bold yellow")
    n = len(report.findings)
    t.append(f"  {n} 项问题" if n else "  无问题", style="dim")
    return t


def _findings_table(report: Report) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False, header_style="bold")
    table.add_column("规则", no_wrap=True)
    table.add_column("名称", no_wrap=True)
    table.add_column("扣分", justify="right", no_wrap=True)
    table.add_column("时间", no_wrap=True)
    table.add_column("证据", ratio=3, overflow="fold")
    table.add_column("建议话术", ratio=3, overflow="fold")
    for f in sorted(report.findings, key=finding_sort_key):
        rule = Text(f.rule, style=SEVERITY_STYLES.get(f.severity, ""))
        if f.severity in ("fatal", "critical"):
            rule.append(f" {severity_label(f.severity)}")
        when = fmt_time(f.start) if f.utterance is not None or f.start is not None else ""
        if not when:
            when = "整通" if f.utterance is None else f"#{f.utterance}"
        evidence = Text(f.evidence or "", style="bold") if f.evidence else Text(f.message, style="dim")
        table.add_row(rule, f.name, fmt_points(f.points), when, evidence, Text(f.suggestion or ""))
    return table


def _write_one(console: Console, report: Report) -> None:
    console.print(_header(report))
    # what the reader said about this call (channels the other way round, an offset to set, speech the
    # transcript left out, roles guessed …): the fix a QA lead needs, so shown first, not only in JSON
    for note in report.notes:
        console.print(Text(f"  注意：{note}", style="yellow"), overflow="fold")
    if report.findings:
        console.print(_findings_table(report))
    if report.events:
        ev = Text("  事件 ", style="dim")
        for i, e in enumerate(report.events):
            if i:
                ev.append("；")
            ev.append(f"{e.rule} {e.name}", style="magenta")
            when = fmt_time(e.start)
            if when:
                ev.append(f" {when}", style="dim")
        console.print(ev)
    if report.not_applicable:
        console.print(Text(f"  不适用 {len(report.not_applicable)} 条规则: " + ", ".join(sorted(report.not_applicable)),
                           style="dim"), overflow="fold")
    console.print()


def _write_summary(console: Console, summary: Summary, top: int) -> None:
    line = Text()
    line.append("汇总", style="bold")
    line.append(f"  通话 {summary.count} 通")
    if summary.insufficient:
        counted = "计入" if summary.include_insufficient else "不计入"
        line.append(f"（其中未充分质检 {summary.insufficient} 通，{counted}平均分和等级分布）", style="yellow")
    mean = summary.mean
    if mean is not None:
        line.append(f"  平均分 {fmt_num(mean, 1)}")
        line.append(f"  最低 {fmt_num(summary.score_min, 1)}  最高 {fmt_num(summary.score_max, 1)}", style="dim")
    line.append(f"  问题 {summary.findings} 项")
    if summary.fatal:
        line.append("  ")
        line.append(f" 红线 {summary.fatal} 通 ", style="bold white on red")
    console.print(line)
    if summary.grades:
        g = Text("  等级分布 ", style="dim")
        for i, (grade, count) in enumerate(summary.grade_items()):
            if i:
                g.append("  ")
            g.append(grade, style=TONE_STYLES.get(summary.grade_tones.get(grade, ""), ""))
            g.append(f" {count}")
        console.print(g)
    rules = summary.top_rules(top)
    if rules:
        t = Table(title="高频问题", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  header_style="bold")
        t.add_column("规则", no_wrap=True)
        t.add_column("名称", no_wrap=True)
        t.add_column("涉及通话", justify="right")
        t.add_column("次数", justify="right")
        t.add_column("合计扣分", justify="right")
        for r in rules:
            t.add_row(r.rule, r.name, str(r.calls), str(r.hits), fmt_points(r.points))
        console.print(t)


def write_table(
    reports: Iterable[Report],
    out: TextIO,
    *,
    color: bool | None = None,
    width: int | None = None,
    summary: bool | None = None,
    top: int = 10,
    include_insufficient: bool = False,
) -> int:
    """Print each report as it arrives, then a summary; returns the number of reports.

    ``summary=None`` prints the summary only for more than one call. ``color`` forces colour on or off
    (default: on for a terminal). ``width`` defaults to the terminal's, or 120 columns for a file.
    Calls marked 「未充分质检」 stay out of the mean and the grades unless ``include_insufficient``.
    """
    console = make_console(out, color=color, width=width)
    stats = Summary(include_insufficient=include_insufficient)
    for report in reports:
        _write_one(console, report)
        stats.add(report)
    if summary or (summary is None and stats.count > 1):
        _write_summary(console, stats, top)
    elif stats.count == 0:
        console.print(Text("没有可评分的通话", style="dim"))
    return stats.count
