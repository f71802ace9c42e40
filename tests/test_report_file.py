"""The HTML report as a file (issue 9, item 15): written with the mode the umask gives (not mkstemp's 0600)
and with the recording's absolute path, so the page still plays after it is moved."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from typer.testing import CliRunner

from kefuqa.cli import app
from kefuqa.model import Conversation
from kefuqa.writers.timeline import audio_source

CALL = {"id": "c1", "utterances": [{"role": "agent", "text": "您好，请问有什么可以帮您？"},
                                   {"role": "customer", "text": "我的宽带坏了。"}]}


def test_report_file_gets_the_umask_mode(tmp_path: Path) -> None:
    src = tmp_path / "c1.json"
    src.write_text(json.dumps(CALL, ensure_ascii=False), encoding="utf-8")
    old = os.umask(0o022)
    try:
        got = CliRunner().invoke(app, ["check", str(src), "-f", "html", "-o", str(tmp_path / "r.html")])
        assert (tmp_path / "r.html").stat().st_mode & 0o777 == 0o644, got.output
        os.umask(0o077)
        CliRunner().invoke(app, ["check", str(src), "-f", "html", "-o", str(tmp_path / "private.html")])
        assert (tmp_path / "private.html").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_the_player_points_at_the_recording_wherever_the_page_goes(tmp_path: Path) -> None:
    rec = tmp_path / "rec" / "call.wav"
    rec.parent.mkdir()
    rec.write_bytes(b"RIFF....WAVE")
    conv = Conversation.model_validate({**CALL, "metrics": {"audio": True, "audio_path": str(rec)}})
    src = audio_source(conv, base_dir=tmp_path / "out")
    assert src == rec.resolve().as_uri()
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(rec, moved / "x.wav")  # the page may move; the recording stays where the URI says
    assert Path(src.removeprefix("file://")).is_file()
