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
