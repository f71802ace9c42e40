"""Every command, argument and option of the CLI explains itself in Chinese, as the workbench and the
report do (`kefuqa --help`, `kefuqa batch --help`, …)."""

from __future__ import annotations

import re
from typing import Any

import typer.main

from kefuqa.cli import app

CJK = re.compile(r"[\u4e00-\u9fff]")


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(path, group)]
    if hasattr(group, "commands"):  # a group (typer ships its own click: no isinstance on click's classes)
        for name, sub in group.commands.items():
            out += _commands(sub, (*path, name))
    return out


def test_every_command_and_option_has_chinese_help() -> None:
    root = typer.main.get_command(app)
    english: list[str] = []
    commands = _commands(root)
    assert len(commands) > 15  # the whole tree was walked
    for path, cmd in commands:
        where = "kefuqa " + " ".join(path)
        if path and not CJK.search(cmd.help or cmd.short_help or ""):
            english.append(f"{where}: {cmd.help!r}")
        for p in cmd.params:
            text = getattr(p, "help", None)
            if p.name == "help" or text is None and p.param_type_name == "argument":
                continue  # click's own --help; a bare argument is described by its command
            if not CJK.search(text or ""):
                english.append(f"{where} {p.opts[0] if p.opts else p.name}: {text!r}")
    assert not english, "\n".join(english)


def _run(*args: str) -> Any:
    from typer.testing import CliRunner

    return CliRunner().invoke(app, list(args), prog_name="kefuqa")


def test_help_page_frame_is_chinese() -> None:
    out = _run("check", "--help").output
    assert out.startswith("用法：kefuqa check [选项]")
    assert "选项:" in out and "参数:" in out and "显示本帮助后退出。" in out and "[默认：table]" in out
    for english in ("Usage:", "Options", "Arguments", "Show this message", "default:"):
        assert english not in out


def test_usage_errors_are_chinese_and_exit_2() -> None:
    cases = [
        (("check", "--nope", "x.json"), "错误：没有这个选项：--nope"),
        (("check",), "错误：缺少参数 'paths'。"),
        (("check", "--jobs", "0", "x.json"), "错误：'--jobs' / '-j' 的取值无效：应不小于 1"),
        (("check", "--fail-under", "abc", "x.json"), "错误：'--fail-under' 的取值无效：应为数字"),
        (("nosuch",), "错误：没有这个命令：'nosuch'。"),
    ]
    for args, expected in cases:
        r = _run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert expected in r.output, (args, r.output)
        assert "运行 'kefuqa" in r.output and "查看帮助。" in r.output
        assert "Error" not in r.output and "Try '" not in r.output


def test_usage_error_in_the_installed_command(tmp_path: Any) -> None:
    # the real entry point, as a user's shell runs it
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "kefuqa.cli", "check", "--nope", "x.json"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    assert "错误：没有这个选项：--nope" in r.stderr and "用法：kefuqa" not in r.stdout


def test_the_cli_starts_without_the_audio_extra() -> None:
    # `make demo` installs the core only (no numpy, soundfile, onnxruntime): every command must still load, the
    # audio ones saying what to install when used
    import subprocess
    import sys

    code = ("import sys\n"
            "for m in ('numpy', 'soundfile', 'onnxruntime', 'scipy'): sys.modules[m] = None  # not installed\n"
            "sys.argv = ['kefuqa', '--help']\n"
            "from kefuqa.cli import main\n"
            "main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "用法：kefuqa" in r.stdout and "replay" in r.stdout
