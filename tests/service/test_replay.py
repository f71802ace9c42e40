"""`kefuqa replay CALL.json --speed N --url ws://…` against a real server (uvicorn): a stored conversation
streams into the live-assist WebSocket as if it were happening; the guidance is printed in Chinese, the
report printed at hang-up is `kefuqa check`'s, and the call is stored. A wrong token, a server that is not
there and a file that is not one conversation end with a Chinese message and exit code 2."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import served_workbench
from kefuqa.cli import app as cli
from kefuqa.engine import Checker
from kefuqa.readers import read_path
from kefuqa.rules.rulebook import load_rulebook

uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WS = "/api/assist/v1/ws"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with served_workbench(tmp_path_factory.mktemp("replay")) as (addr, token, app):
        yield addr, token


def _get(addr: str, token: str, path: str) -> dict:
    req = urllib.request.Request(f"http://{addr}{path}", headers={"Authorization": f"Bearer {token}"})
    return json.load(urllib.request.urlopen(req))


def test_replay_streams_a_stored_call_and_prints_its_guidance(served: tuple[str, str]) -> None:
    addr, token = served
    path = EXAMPLES / "ecommerce-complaint-handled-badly.json"
    result = CliRunner().invoke(cli, ["replay", str(path), "--speed", "50", "--url", f"ws://{addr}{WS}",
                                      "--token", token, "--call-id", "replay-1", "--partials"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    seqs = [int(ln.split()[0][1:]) for ln in lines if ln.startswith("#")]
    assert seqs == list(range(1, len(seqs) + 1)), lines  # every item once, in order
    assert lines[0].startswith("#1 检查清单 ")
    assert any(ln.split()[1] == "提醒" and "随便你投诉" in ln and "建议说：" in ln for ln in lines), lines
    assert any(ln.split()[1] == "情景卡片" and "投诉" in ln for ln in lines), lines
    want = Checker(load_rulebook("standard")).check(next(iter(read_path(str(path)))))
    assert lines[-1].endswith(f"通话报告 得分 {want.score:g}（{want.grade}），{len(want.findings)} 条发现"), lines[-1]
    calls = {c["call_id"]: c for c in _get(addr, token, "/api/assist/v1/calls")["calls"]}
    assert calls["replay-1"]["ended"] and calls["replay-1"]["stored"]


def test_replay_refusals_are_chinese(served: tuple[str, str], tmp_path: Path) -> None:
    addr, token = served
    path = str(EXAMPLES / "telecom-inbound-exemplary.json")
    bad_token = CliRunner().invoke(cli, ["replay", path, "--speed", "50", "--url", f"ws://{addr}{WS}",
                                         "--token", "not-a-token"])
    assert bad_token.exit_code == 2 and "错误 unauthorized" in bad_token.output, bad_token.output
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    gone = CliRunner().invoke(cli, ["replay", path, "--url", f"ws://127.0.0.1:{free}{WS}", "--token", token])
    assert gone.exit_code == 2 and "连接失败" in gone.output, gone.output
    two = tmp_path / "two.jsonl"
    conv = json.loads(Path(path).read_text(encoding="utf-8"))
    two.write_text("\n".join(json.dumps({**conv, "id": f"c{k}"}, ensure_ascii=False) for k in range(2)) + "\n",
                   encoding="utf-8")
    many = CliRunner().invoke(cli, ["replay", str(two), "--url", f"ws://{addr}{WS}", "--token", token])
    assert many.exit_code == 2 and "应有一通会话，读到 2 通" in many.output, many.output
