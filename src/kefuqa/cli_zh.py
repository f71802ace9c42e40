"""The command line's own words in Chinese.

Typer (and the Click it carries) writes its usage line, help headings, the ``--help`` option and its usage
errors (an unknown option, a missing argument, a bad value) in English; kefuqa speaks Chinese everywhere, with
the same words in the report, the workbench and the CLI. `install()` puts Chinese words in those places. It
touches Typer's internals, so every step checks that what it changes is there and leaves Typer's English
where it is not (tests/test_cli_help.py asserts the Chinese, so a Typer that moved them is noticed).
"""

from __future__ import annotations

import re
from typing import Any

HELP_OPTION = "显示本帮助后退出。"
USAGE = "用法："

# Typer's headings and help notes, looked up with gettext's `_` in typer.core
_WORDS = {
    "Arguments": "参数", "Options": "选项", "Commands": "命令", "Positional arguments": "参数",
    "default: {default}": "默认：{default}", "required": "必填", "env var: {var}": "环境变量：{var}",
    "(dynamic)": "（动态）", "Aborted!": "已中止。", "Missing command.": "缺少命令。",
    "No such command {name!r}.": "没有这个命令：{name!r}。",
}

# usage errors, as Typer words them, and the same in Chinese (applied in order)
_ERRORS: list[tuple[re.Pattern[str], str]] = [(re.compile(p), r) for p, r in (
    (r"No such option: (\S+)", r"没有这个选项：\1"),
    (r" ?\(Possible options: ([^)]*)\)", r"（是不是：\1）"),
    (r"No such command '([^']*)'\.", r"没有这个命令：\1。"),
    (r"Missing argument ('[^']*')\.", r"缺少参数 \1。"),
    (r"Missing option ('[^']*')\.", r"缺少选项 \1。"),
    (r"Missing parameter: (\S+)", r"缺少参数 \1"),
    (r"Invalid value for ('[^']*'(?: / '[^']*')*): ", r"\1 的取值无效："),
    (r"Invalid value: ", r"取值无效："),
    # Typer checks values with pydantic: its words
    (r"Input should be a valid integer(?:, [^.]*)?", "应为整数"),
    (r"Input should be a valid number(?:, [^.]*)?", "应为数字"),
    (r"Input should be a valid boolean(?:, [^.]*)?", "应为是或否（true / false）"),
    (r"Input should be greater than or equal to (\S+)", r"应不小于 \1"),
    (r"Input should be greater than (\S+)", r"应大于 \1"),
    (r"Input should be less than or equal to (\S+)", r"应不大于 \1"),
    (r"Input should be less than (\S+)", r"应小于 \1"),
    (r"Input should be (.*)", r"应为 \1"),
    (r"Value ('[^']*'|\S+) is not a valid (\w+)\.", r"\1 不是有效的 \2。"),
    (r"('[^']*') is not a valid integer(?: range)?\.", r"\1 不是有效的整数。"),
    (r"('[^']*') is not a valid float(?: range)?\.", r"\1 不是有效的数字。"),
    (r"('[^']*') is not a valid boolean\.", r"\1 不是有效的是/否值。"),
    (r"('[^']*') is not one of (.*)\.", r"\1 不是可选的取值（\2）。"),
    (r"('[^']*') is not (.*)\.", r"\1 不是 \2。"),
    (r"(\S+) is not in the range (.*)\.", r"\1 不在范围 \2 内。"),
    (r"(?:File|Directory|Path) ('[^']*') does not exist\.", r"路径 \1 不存在。"),
    (r"(?:File|Directory|Path) ('[^']*') is a directory\.", r"\1 是文件夹。"),
    (r"(?:File|Directory|Path) ('[^']*') is a file\.", r"\1 是文件，不是文件夹。"),
    (r"(?:File|Directory|Path) ('[^']*') is not readable\.", r"\1 没有读取权限。"),
    (r"Got unexpected extra arguments? \((.*)\)", r"多余的参数：\1"),
    (r"Option ('[^']*') requires an argument\.", r"选项 \1 后面需要一个值。"),
    (r"Option ('[^']*') requires (\d+) arguments\.", r"选项 \1 后面需要 \2 个值。"),
    (r"Option ('[^']*') does not take a value\.", r"选项 \1 不带值。"),
)]


def zh_error(message: str) -> str:
    """A usage error's message in Chinese (the parts Typer words; a value or name in it stays as given)."""
    for pattern, repl in _ERRORS:
        message = pattern.sub(repl, message)
    return message


def install() -> None:
    """Chinese usage line, headings, --help text and usage errors for this process's Typer commands."""
    try:
        from typer import core as tcore
        from typer._click import core as ccore
        from typer._click import exceptions as cexc
        from typer._click import formatting as cfmt
        from typer._click.utils import echo
    except ImportError:  # a Typer without its own Click: its English stays
        return

    tcore._ = lambda message: _WORDS.get(message, message)  # type: ignore[attr-defined,assignment]

    write_usage = cfmt.HelpFormatter.write_usage

    def _write_usage(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
        write_usage(self, prog, args.replace("[OPTIONS]", "[选项]"), USAGE if prefix is None else prefix)

    cfmt.HelpFormatter.write_usage = _write_usage  # type: ignore[method-assign]

    get_help_option = ccore.Command.get_help_option

    def _get_help_option(self: Any, ctx: Any) -> Any:
        option = get_help_option(self, ctx)
        if option is not None:
            option.help = HELP_OPTION
        return option

    ccore.Command.get_help_option = _get_help_option  # type: ignore[method-assign]

    def _show_usage_error(self: Any, file: Any = None) -> None:
        hint = ""
        ctx = self.ctx
        if ctx is not None and ctx.command.get_help_option(ctx) is not None:
            hint = f"运行 '{ctx.command_path} {ctx.help_option_names[0]}' 查看帮助。\n"
        if ctx is not None:
            echo(f"{ctx.get_usage()}\n{hint}", file=file, err=file is None, color=ctx.color)
        echo(f"错误：{zh_error(self.format_message())}", file=file, err=file is None, color=None)

    def _show_error(self: Any, file: Any = None) -> None:
        echo(f"错误：{zh_error(self.format_message())}", file=file, err=file is None, color=None)

    cexc.UsageError.show = _show_usage_error  # type: ignore[method-assign]
    cexc.ClickException.show = _show_error  # type: ignore[method-assign]
