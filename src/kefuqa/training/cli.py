"""`kefuqa quiz` and `kefuqa practice` (run, list, lint) in the terminal, without a server."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import RuleError
from ..judge.labels import labels as all_labels
from .grading import Feedback, ReplyError, grade, parse_answer
from .lint import lint_bank, lint_scenario
from .loader import Bank, bundled_dir, load_bank
from .scenario import ScenarioError, Session
from .schema import MultipleChoice, Rewrite, SingleChoice, TrueFalse
from .speech import SpeechError, transcribe_file, transcriber_for

practice_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="情景练习：按场景与模拟客户对话，每句回复即时反馈，结束后按真实通话评分。")
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

_TYPES = {"single": "单选", "multiple": "多选", "truefalse": "判断", "rewrite": "改写"}


def _bank(paths: list[str] | None, bundled: bool = True) -> Bank:
    bank, errors = load_bank(paths, bundled=bundled)
    for e in errors:
        err.print(escape(str(e)))
    return bank


def _checker(rulebook: str | None):  # type: ignore[no-untyped-def]
    import kefuqa

    return kefuqa.checker_for(rulebook)


def _show_feedback(fb: Feedback) -> None:
    out.print("[green]✓ 正确[/green]" if fb.correct else "[red]✗ 不符合标准[/red]")
    for m in fb.messages():
        out.print("  · " + escape(m))
    if fb.explain:
        out.print("  说明：" + escape(fb.explain))
    for s in fb.suggestions[:2]:
        out.print("  规范话术：" + escape(s))
    if fb.model:
        out.print("  参考说法：" + escape(fb.model))


def _prompt(label: str) -> str:
    try:
        return str(typer.prompt(label, default="", show_default=False))
    except (typer.Abort, EOFError):
        err.print("输入已结束，练习中止（没有保存任何内容）")
        raise typer.Exit(2) from None


def _answer_key(q: object) -> str:
    if isinstance(q, TrueFalse):
        return "+（正确）" if q.answer else "-（错误）"
    if isinstance(q, SingleChoice):
        return chr(65 + q.answer)
    if isinstance(q, MultipleChoice):
        return "".join(chr(65 + a) for a in sorted(q.answer))
    return ""


def quiz(module: Annotated[str | None, typer.Option("--module", "-m", help="只考这个模块（编号）")] = None,
         count: Annotated[int, typer.Option("--count", "-n", help="题数（0 = 全部）")] = 0,
         seed: Annotated[int | None, typer.Option("--seed", help="随机抽题的种子")] = None,
         files: Annotated[list[str] | None, typer.Option("--questions", "-q", help="公司自己的题目文件或目录")] = None,
         rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="规则库（改写题用它评分）")] = None,
         ) -> None:
    """答题：判断、单选、多选和改写题；改写题由规则库评分。"""
    bank = _bank(files)
    qs = bank.questions_of(module)
    if module and module not in bank.modules:
        err.print(f"没有模块 {escape(module)}；可选：{'、'.join(bank.modules)}")
        raise typer.Exit(2)
    if not qs:
        err.print("没有可答的题目")
        raise typer.Exit(2)
    rnd = random.Random(seed)
    if count and count < len(qs):
        qs = rnd.sample(qs, count)
    checker = _checker(rulebook) if any(isinstance(q, Rewrite) for q in qs) else None
    right = 0
    for i, q in enumerate(qs, 1):
        out.print(f"\n[bold]第 {i}/{len(qs)} 题（{_TYPES[q.type]}）[/bold] {escape(q.prompt)}")
        if isinstance(q, Rewrite):
            for t in q.context:
                out.print(f"  {'客户' if t.role == 'customer' else '坐席'}：{escape(t.text)}")
            out.print(f"  原话：「{escape(q.original)}」")
        if isinstance(q, SingleChoice | MultipleChoice):
            for j, o in enumerate(q.options):
                out.print(f"  {chr(65 + j)}. {escape(o)}")
        hint = {"truefalse": "+ 或 -", "single": "选项字母", "multiple": "所有正确选项的字母", "rewrite": "您的说法"}[q.type]
        while True:
            raw = _prompt(f"作答（{hint}）")
            try:
                fb = grade(q, parse_answer(q, raw), checker)  # type: ignore[arg-type]
                break
            except ReplyError as exc:
                err.print(escape(str(exc)))
        if not isinstance(q, Rewrite) and not fb.correct:
            out.print(f"  正确答案：{_answer_key(q)}")
        _show_feedback(fb)
        right += fb.correct
    pct = 100.0 * right / len(qs)
    mark = bank.modules[module].pass_mark if module else 80.0
    verdict = "通过" if pct >= mark else "未通过"
    out.print(f"\n得分：{right}/{len(qs)}（{pct:.0f}%），及格线 {mark:g}%：{verdict}")
    raise typer.Exit(0 if pct >= mark else 1)


@practice_app.command("list")
def list_scenarios(files: Annotated[list[str] | None, typer.Option("--scenarios", "-s",
                                                                    help="公司自己的场景文件或目录")] = None) -> None:
    """列出所有场景。"""
    bank = _bank(files)
    t = Table("编号", "模块", "场景", "客户类型", show_lines=False)
    for s in bank.scenarios.values():
        t.add_row(s.id, bank.modules[s.module].name if s.module in bank.modules else s.module, s.title,
                  s.customer_style or "")
    out.print(t)


@practice_app.command("run")
def run(scenario: Annotated[str, typer.Argument(help="场景编号（kefuqa practice list）")],
        files: Annotated[list[str] | None, typer.Option("--scenarios", "-s", help="公司自己的场景文件或目录")] = None,
        rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="规则库")] = None,
        asr: Annotated[str | None, typer.Option("--asr", help="语音识别后端（如 faster-whisper:/模型目录）："
                                                 "每句回复可以输入一个录音文件（WAV 等）的路径，识别成文字后同样评分")] = None,
        ) -> None:
    """与模拟客户对话：每句回复即时反馈，结束后按真实通话评分。"""
    bank = _bank(files)
    s = bank.scenarios.get(scenario)
    if s is None:
        err.print(f"没有场景 {escape(scenario)}；用 kefuqa practice list 查看")
        raise typer.Exit(2)
    transcriber = None
    if asr:
        try:
            transcriber = transcriber_for(asr)
        except SpeechError as exc:
            err.print(escape(str(exc)))
            raise typer.Exit(2) from None
    try:
        checker = _checker(rulebook)
    except RuleError as exc:
        err.print(escape(str(exc)))
        raise typer.Exit(2) from None
    # a scenario that cannot be played to an end (a cycle, a step leading nowhere, no end) is refused before
    # the first reply, with the file and line of each error, instead of going round until the turn limit
    problems = lint_scenario(bank, s, {r.id for r in checker.rulebook.rules}, set(all_labels()))
    if problems:
        for e in problems:
            err.print(escape(str(e)))
        err.print(f"场景 {escape(scenario)} 有 {len(problems)} 个错误，无法练习；请先修改（kefuqa practice lint 可检查）")
        raise typer.Exit(2)
    session = Session(s, checker)
    out.print(f"[bold]{escape(s.title)}[/bold]" + (f"（客户类型：{escape(s.customer_style)}）" if s.customer_style else ""))
    if s.brief:
        out.print(escape(s.brief))
    first = session.opening_line()
    if first:
        out.print(f"客户：{escape(first)}")
    while not session.ended:
        if session.node.hint:
            out.print(f"[dim]提示：{escape(session.node.hint)}[/dim]")
        said = _prompt("您（文字，或录音文件路径）" if transcriber is not None else "您")
        if transcriber is not None and _looks_like_recording(said):
            try:
                said = transcribe_file(said.strip(), transcriber)
            except SpeechError as exc:
                err.print(escape(str(exc)))
                continue
            out.print(f"识别结果：{escape(said)}")
        try:
            step = session.reply(said)
        except ReplyError as exc:
            err.print(escape(str(exc)))
            continue
        except ScenarioError as exc:
            err.print(escape(str(exc)))
            raise typer.Exit(2) from None
        fb = step.feedback
        if fb.findings or fb.pending:
            _show_feedback(fb)
        else:
            out.print("[green]✓[/green]")
        if step.customer:
            out.print(f"客户：{escape(step.customer)}")
    rep = session.report()
    out.print(f"\n[bold]整通评分：{rep.score:g} 分（{rep.grade}）[/bold]")
    for f in rep.findings:
        where = f"第 {f.utterance + 1} 句" if f.utterance is not None else "全程"
        out.print(f"  {f.rule} {escape(f.name)}（{where}）：{escape(f.message)}")
        if f.suggestion:
            out.print(f"    规范话术：{escape(f.suggestion)}")
    raise typer.Exit(0 if rep.score >= 90 and not rep.findings else 1)


_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".webm", ".opus")


def _looks_like_recording(text: str) -> bool:
    """A reply that names a recording file (an existing file, or a name ending in an audio suffix)."""
    t = text.strip()
    if not t or "\n" in t or len(t) > 1000:
        return False
    return t.lower().endswith(_AUDIO_SUFFIXES) or Path(t).is_file()


@practice_app.command("lint")
def lint_cmd(paths: Annotated[list[str] | None, typer.Argument(help="题目/场景文件或目录（默认检查内置的）")] = None,
             rulebook: Annotated[str | None, typer.Option("--rulebook", "-r", help="规则库")] = None,
             no_play: Annotated[bool, typer.Option("--no-play", help="不试走参考回答和差的回答")] = False) -> None:
    """检查题目和场景文件：未知规则、走不到的步骤、没有结束、循环；试走参考回答与差的回答。"""
    # the given files are read beside the bundled bank (as `quiz -q`, `practice run -s` and the workbench read
    # them: a company file may use a bundled module, and its ids must not clash), and only they are checked
    bank, errors = load_bank(paths)
    try:
        checker = _checker(rulebook)
    except RuleError as exc:
        err.print(escape(str(exc)))
        raise typer.Exit(2) from None
    bundled = str(bundled_dir())

    def mine(item_id: str) -> bool:
        return not paths or not bank.place(item_id)[0].startswith(bundled)

    errors += lint_bank(bank, checker, play_answers=not no_play, only=mine)
    for e in errors:
        err.print(escape(str(e)))
    n = (f"{sum(map(mine, bank.questions))} 道题、{sum(map(mine, bank.scenarios))} 个场景")
    if errors:
        err.print(f"发现 {len(errors)} 个问题（已读 {n}）")
        raise typer.Exit(2)
    out.print(f"没有问题：{n}")


def register(app: typer.Typer) -> None:
    app.add_typer(practice_app, name="practice")
    app.command("quiz")(quiz)
