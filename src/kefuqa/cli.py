"""The `kefuqa` command line. It only calls the library (`kefuqa.batch` → writers) and prints."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from . import __version__, cli_zh
from .batch import find_inputs, score
from .distributed.cli import register as _register_batch
from .engine import Checker
from .errors import InputError, RuleError
from .judge.ngram import ModelError
from .judge_cli import model_app
from .model import Report
from .replay_cli import register as _register_replay
from .rules.rulebook import Rulebook, load_rulebook
from .training import cli as training_cli

cli_zh.install()  # Typer's own words (usage, headings, --help, usage errors) in Chinese

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="kefuqa 客服质检：按服务规范检查客服通话、打分，并给出每条问题的原话、时间和规范话术。")
rules_app = typer.Typer(add_completion=False, no_args_is_help=True, help="查看和校验规则集。")
app.add_typer(rules_app, name="rules")
app.add_typer(model_app, name="model")
training_cli.register(app)  # kefuqa quiz, kefuqa practice (issue 12)

err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # "x.json:id: …" stays text

EXIT_OK, EXIT_LOW_SCORE, EXIT_BAD_INPUT = 0, 1, 2


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [v.strip().upper() for item in values for v in item.split(",") if v.strip()]
    return out or None


def _load(rulebook: str | None, scorecard: str | None) -> Rulebook:
    rb = load_rulebook(rulebook)
    if scorecard:
        from .rules.rulebook import with_scorecard

        rb = with_scorecard(rb, scorecard)
    return rb


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kefuqa {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                 help="显示版本号后退出。")] = False) -> None:
    pass


# ---- check ------------------------------------------------------------------------------------------------


@dataclass
class _Tally:
    """What happened in a run: bad inputs (reported on stderr as they come), low scores, counts."""

    errors: list[InputError] = field(default_factory=list)
    low: list[str] = field(default_factory=list)
    scored: int = 0

    def bad(self, e: InputError) -> None:
        """Report a bad input now (file, place, reason) and count it for the exit code."""
        self.errors.append(e)
        err.print(f"[red]错误[/red] {escape(str(e))}", highlight=False)

    def reports(self, results: Iterator[Report | InputError], fail_under: float | None) -> Iterator[Report]:
        """The reports of a batch; its errors reported and counted."""
        for r in results:
            if isinstance(r, InputError):
                self.bad(r)
                continue
            self.scored += 1
            if fail_under is not None and r.score < fail_under:
                self.low.append(r.call_id)
            yield r


def _many(targets: list[str | Path]) -> bool:
    """More than a handful of inputs: several files, or one big batch file."""
    if len(targets) > 5:
        return True
    return any(isinstance(t, Path) and _size(t) > 1_000_000 for t in targets)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the reader reports why it cannot be read


def _file_mode(target: Path) -> int:
    """The mode of the file being replaced, else what the process's umask gives a new file (0666 & ~umask)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextmanager
def _output(path: str | None, fmt: str) -> Iterator[TextIO]:
    """stdout, or a temporary file renamed into place only when everything was written."""
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    if target.exists() and not target.is_file():
        # /dev/null, a FIFO, a terminal: write straight to it (renaming onto it would replace it)
        with target.open("w", encoding="utf-8", newline="" if fmt == "csv" else None) as fh:
            yield fh
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    newline = "" if fmt == "csv" else None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
        os.chmod(tmp, _file_mode(target))  # mkstemp makes 0600; a report gets the mode any new file gets
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _progress(reports: Iterator[Report]) -> Iterator[Report]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as prog:
        task = prog.add_task("score", total=None)
        for r in reports:
            prog.advance(task)
            yield r


@app.command()
def check(
    paths: Annotated[list[str], typer.Argument(help="文件、文件夹（递归）或 -（标准输入）。")],
    rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="内置规则集名称、规则集文件夹或 YAML 文件。")] = None,
    scorecard: Annotated[str | None, typer.Option(help="用这个评分卡 YAML 替换规则集自带的评分卡。")] = None,
    select: Annotated[list[str] | None, typer.Option(help="只检查这些规则编号或前缀（LNG、LNG001）。")] = None,
    ignore: Annotated[list[str] | None, typer.Option(help="跳过这些规则编号或前缀。")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="输出格式：table、json、jsonl、csv 或 html。")] = "table",
    output: Annotated[str | None, typer.Option("--output", "-o", help="写入这个文件，而不是标准输出。")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="并行评分的进程数。")] = 1,
    fail_under: Annotated[float | None, typer.Option(help="有通话低于这个分数时退出码为 1。")] = None,
    input_format: Annotated[str | None, typer.Option(help="指定输入格式（json、jsonl、csv、tsv、"
                                                          "text、aliyun、funasr、aws、audio）。")] = None,
    channels: Annotated[str | None, typer.Option(help="录音：各声道的角色，默认 agent,customer（左坐席、右客户）。")] = None,
    offset: Annotated[float | None, typer.Option(help="录音加转写：转写时间加上的秒数，使其与录音对齐"
                                                      "（清单的 offset 列优先）。")] = None,
    asr: Annotated[str | None, typer.Option(help="录音：语音识别引擎，如 sherpa-onnx:/models/sense-voice。")] = None,
    vad: Annotated[str | None, typer.Option(help="录音：语音活动检测，auto、silero 或 energy。")] = None,
    excel: Annotated[bool, typer.Option(help="CSV：加 BOM 并转义公式，便于用 Excel 打开。")] = False,
    embed_audio: Annotated[bool, typer.Option(help="HTML：把录音嵌入页面，供页面内播放。")] = False,
    include_insufficient: Annotated[bool, typer.Option(
        help="表格/HTML：标为“未充分质检”的通话也计入平均分和等级分布。")] = False,
) -> None:
    """检查通话并输出问题和得分（退出码：0 正常，1 低于 --fail-under，2 有无法读取的输入）。"""
    from .writers import FORMATS, write_reports

    if fmt not in FORMATS:
        err.print(f"[red]错误[/red] 未知的 --format {fmt!r}（可用：{'、'.join(FORMATS)}）")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        rb = _load(rulebook, scorecard)
    except RuleError as exc:
        err.print(f"[red]规则集错误[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    options: dict[str, Any] = {}
    if channels:
        options["channels"] = channels
    if offset is not None:
        options["offset"] = offset
    if asr:
        options["asr"] = asr
    if vad:
        options["vad"] = vad
    tally = _Tally()
    targets, missing = find_inputs(paths)
    for e in missing:
        tally.bad(e)
    try:
        checker = Checker(rb)
    except ModelError as exc:  # a judgement model the rulebook needs is missing or corrupt
        err.print(f"[red]判断模型错误[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    results = score(targets, checker, jobs=jobs, input_format=input_format, read_options=options,
                    select=_split(select), ignore=_split(ignore), keep_conversations=fmt not in ("json", "jsonl"))
    reports = tally.reports(results, fail_under)
    # a live bar on stderr, unless the report itself is being printed to the same terminal
    if err.is_terminal and _many(targets) and (output not in (None, "-") or not sys.stdout.isatty()):
        reports = _progress(reports)
    write_opts: dict[str, Any] = {"excel": True} if (excel and fmt == "csv") else {}
    if fmt == "html":
        write_opts = {"embed_audio": embed_audio,
                      "base_dir": str(Path(output).resolve().parent) if output not in (None, "-") else None}
    if include_insufficient and fmt in ("table", "html"):
        write_opts["include_insufficient"] = True
    try:
        with _output(output, fmt) as out:
            write_reports(reports, fmt, out, **write_opts)
    except BrokenPipeError:
        pass
    if tally.errors:
        err.print(f"[yellow]{len(tally.errors)} 个输入无法读取；已评分 {tally.scored} 通。[/yellow]")
        raise typer.Exit(EXIT_BAD_INPUT)
    if tally.low:
        err.print(f"[yellow]{len(tally.low)} 通低于 {fail_under:g} 分：{'、'.join(tally.low[:10])}"
                  f"{' …' if len(tally.low) > 10 else ''}[/yellow]")
        raise typer.Exit(EXIT_LOW_SCORE)


# ---- rules ------------------------------------------------------------------------------------------------


def _rulebook_or_exit(rulebook: str | None) -> Rulebook:
    try:
        return load_rulebook(rulebook)
    except RuleError as exc:
        err.print(f"[red]规则集错误[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


@rules_app.command("lint")
def rules_lint(path: Annotated[str, typer.Argument(help="规则集文件夹、rulebook.yaml 或规则文件。")]) -> None:
    """校验规则集：未知的键、错误的取值、有问题的正则、重复的编号、引用不存在的规则；错误注明文件和行号。"""
    from .rules.rulebook import lint

    problems = lint(path)
    for p in problems:
        typer.echo(str(p))
    if problems:
        raise typer.Exit(1)
    rb = load_rulebook(path)
    from .live.guidance import lint_guidance  # issue 11: guidance.yaml next to the rulebook

    try:
        guidance = lint_guidance(path, {r.id for r in rb.rules})
    except RuleError as exc:
        typer.echo(str(exc))
        raise typer.Exit(1) from None
    typer.echo(f"ok: {rb.name} {rb.version}, {len(rb.rules)} rules, scorecard {rb.scorecard.name}; {guidance}")


@rules_app.command("list")
def rules_list(
    rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="内置规则集名称、规则集文件夹或 YAML 文件。")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table 或 json")] = "table",
) -> None:
    """列出规则集中的规则：编号、名称、检查方式、严重度、扣分、维度、红线。"""
    from .docs import rule_points

    rb = _rulebook_or_exit(rulebook)
    rows = []
    for r in rb.rules:
        points, dim = rule_points(rb, r)
        rows.append({"id": r.id, "name": r.name, "kind": r.kind, "severity": r.severity, "points": points,
                     "dimension": dim, "role": r.role, "enabled": r.enabled, "fatal": r.id in rb.scorecard.fatal})
    if fmt == "json":
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{rb.name} {rb.version}")
    from .labels import KIND_LABELS, SEVERITY_LABELS

    for col in ("ID", "名称", "检查方式", "严重度", "扣分", "维度", ""):
        table.add_column(col)
    for row in rows:
        flag = "红线" if row["fatal"] else ("停用" if not row["enabled"] else "")
        table.add_row(row["id"], row["name"], KIND_LABELS.get(row["kind"], row["kind"]),
                      SEVERITY_LABELS.get(row["severity"], row["severity"]), f"{row['points']:g}",
                      row["dimension"] or "", flag)
    Console(highlight=False).print(table)


@rules_app.command("explain")
def rules_explain(
    rule_id: Annotated[str, typer.Argument(help="规则编号，如 LNG001。")],
    rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="内置规则集名称、规则集文件夹或 YAML 文件。")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text 或 json")] = "text",
) -> None:
    """说明一条规则：检查什么、依据、违规示例和规范说法。"""
    from .docs import explain

    rb = _rulebook_or_exit(rulebook)
    try:
        rule = rb.rule(rule_id.upper())
    except KeyError:
        err.print(f"[red]错误[/red] 规则集 {rb.name} 中没有规则 {rule_id!r}（见 `kefuqa rules list`）")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    info = explain(rb, rule)
    if fmt == "json":
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    typer.echo(info["text"])


@rules_app.command("docs")
def rules_docs(
    rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="内置规则集名称、规则集文件夹或 YAML 文件。")] = None,
    output: Annotated[str | None, typer.Option("--output", "-o", help="写入这个文件，而不是标准输出。")] = None,
) -> None:
    """把规则集写成一页 Markdown（docs/rules.md）。"""
    from .docs import rulebook_markdown

    text = rulebook_markdown(_rulebook_or_exit(rulebook))
    with _output(output, "md") as out:
        out.write(text)


def _mount_service() -> None:
    """`kefuqa ingest` / `kefuqa serve` come from the service layer when its extra is installed."""
    try:
        from .service.cli import register
    except ImportError:
        return
    register(app)


_mount_service()
_register_batch(app)  # `kefuqa batch` (kefuqa.distributed): archives, Parquet, --engine ray
_register_replay(app)  # `kefuqa replay` (issue 11: live assist)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
