"""Hostile and odd input to `kefuqa check` (issue 9, item 6): a lone surrogate, NUL, nesting 1,000 deep,
unreadable files and folders, a pipe. Each bad input is one error naming the file and the place, exit 2,
and the valid files after it are scored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kefuqa import readers
from kefuqa.cli import app
from kefuqa.errors import InputError
from kefuqa.model import MAX_DEPTH, MAX_ID_CHARS, Conversation, unsafe_value

GOOD = {"id": "good-1", "utterances": [{"role": "agent", "text": "您好，请问有什么可以帮您？"},
                                       {"role": "customer", "text": "我想查一下话费"}]}


def _call(cid: str, text: str) -> str:
    # json.dumps writes a lone surrogate as the escape "\ud800", as a hostile client would
    return json.dumps({"id": cid, "utterances": [{"role": "agent", "text": text}]})


def check(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, ["check", "--format", "jsonl", *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def good(tmp_path: Path) -> Path:
    p = tmp_path / "z_good.json"
    p.write_text(json.dumps(GOOD, ensure_ascii=False), encoding="utf-8")
    return p


@pytest.mark.parametrize("name, content, place, words", [
    ("surrogate.json", _call("s1", "\ud800你好"), "utterances[0].text", "孤立的代理字符 U+D800"),
    ("nul.json", _call("n1", "您好\x00"), "utterances[0].text", "空字符"),
    ("agent.json", json.dumps({"id": "a1", "agent": {"id": "\udfff"}, "utterances": [{"role": "agent"}]}),
     "agent.id", "U+DFFF"),
    ("key.json", json.dumps({"id": "k1", "utterances": [{"role": "agent", "attrs": {"\ud801": 1}}]}),
     "utterances[0].attrs", "字段名"),
    ("deep.json", "[" * 1000 + "]" * 1000, "第 1 行第 ", "嵌套过深"),
    ("deep_attrs.json", '{"id":"d","utterances":[{"role":"agent","attrs":{"a":' + "[" * 100 + "]" * 100 + "}}]}",
     "utterances[0].attrs.a[0][0]", "嵌套过深（超过 32 层）"),
    ("long_id.json", _call("x" * (MAX_ID_CHARS + 1), "您好"), "id", "通话编号过长"),
])
def test_hostile_file_is_one_named_error_and_the_batch_goes_on(tmp_path, good, name, content, place, words):
    bad = tmp_path / name
    bad.write_text(content, encoding="utf-8", errors="surrogatepass")
    code, out, errs = check(str(bad), str(good))
    assert code == 2
    assert f"{bad}:{place}" in errs and words in errs, errs
    assert "Traceback" not in errs
    assert [json.loads(line)["call_id"] for line in out.splitlines()] == ["good-1"]


def test_a_bad_line_of_jsonl_costs_that_line(tmp_path):
    f = tmp_path / "calls.jsonl"
    f.write_text(_call("j1", "\ud800") + "\n" + json.dumps(GOOD) + "\n", encoding="utf-8")
    code, out, errs = check(str(f))
    assert code == 2 and f"{f}:第 1 行 utterances[0].text" in errs
    assert [json.loads(line)["call_id"] for line in out.splitlines()] == ["good-1"]


def test_nul_in_a_transcript_or_csv_is_an_error_not_a_score(tmp_path, good):
    txt = tmp_path / "t.txt"
    txt.write_text("坐席：您好\x00请问\n客户：你好\n", encoding="utf-8")
    csv = tmp_path / "c.csv"
    csv.write_text("role,text\nagent,您好\x00\n", encoding="utf-8")
    code, out, errs = check(str(txt), str(csv), str(good))
    assert code == 2 and errs.count("空字符") == 2 and f"{csv}:第 2 行" in errs and f"{txt}:第 1 行" in errs
    assert [json.loads(line)["call_id"] for line in out.splitlines()] == ["good-1"]


def test_unsafe_value_is_the_one_check_conversations_pass():
    assert unsafe_value(GOOD) is None
    deep: object = "x"
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    data = {"id": "d", "utterances": [{"role": "agent", "text": "好"}], "metrics": {"m": deep}}
    loc, reason = unsafe_value(data) or ((), "")
    assert loc[:2] == ("metrics", "m") and len(loc) == MAX_DEPTH and "32" in reason
    # the model itself refuses it, whoever validates (readers, the service's API)
    with pytest.raises(ValueError, match=r"metrics\.m\[0\]"):
        Conversation.model_validate(data)
    with pytest.raises(ValueError, match="U\\+D800"):
        Conversation.model_validate({"id": "\ud800", "utterances": [{"role": "agent"}]})


def test_a_pipe_is_read_once(tmp_path, good):
    fifo = tmp_path / "call.pipe"
    os.mkfifo(fifo)
    data = good.read_bytes()

    def feed() -> None:
        with open(fifo, "wb") as w:
            w.write(data)

    t = threading.Thread(target=feed)
    t.start()
    items = list(readers.read_path(fifo))
    t.join(10)
    assert [c.id for c in items if not isinstance(c, InputError)] == ["good-1"], items


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for <(…)")
def test_process_substitution_works(good):
    cmd = f'{sys.executable} -m kefuqa.cli check --format jsonl <(cat "{good}")'
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["call_id"] == "good-1"


# ---- unreadable files and folders ----------------------------------------------------------------------
# root reads everything whatever the mode bits say. Dropping the two capabilities that let it
# (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) with setpriv makes mode 000 bind root too, so the check runs in
# a subprocess without them; as another user chmod binds already.

_DROP = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
         "--bounding-set=-dac_override,-dac_read_search"]


def _unprivileged(*args: str) -> subprocess.CompletedProcess[str]:
    prefix = _DROP if os.geteuid() == 0 else []
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: mode bits cannot deny root a read")
    return subprocess.run([*prefix, sys.executable, "-m", "kefuqa.cli", "check", "--format", "jsonl", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def locked(tmp_path: Path):
    """tmp/tree/{a (mode 000) /1.json, b/2.json}; the modes restored afterwards for cleanup."""
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "b").mkdir()
    (tree / "a" / "1.json").write_text(json.dumps({**GOOD, "id": "in-a"}), encoding="utf-8")
    (tree / "b" / "2.json").write_text(json.dumps({**GOOD, "id": "in-b"}), encoding="utf-8")
    (tree / "a").chmod(0)
    yield tree
    (tree / "a").chmod(0o755)


@pytest.mark.slow
def test_unreadable_folder_met_while_walking_is_named(locked):
    p = _unprivileged(str(locked))
    assert p.returncode == 2, p.stderr
    assert f"{locked / 'a'}: 无法读取该文件夹" in p.stderr and "Traceback" not in p.stderr
    assert [json.loads(line)["call_id"] for line in p.stdout.splitlines()] == ["in-b"]


@pytest.mark.slow
def test_unreadable_folder_given_and_file_inside_it_are_named(locked):
    p = _unprivileged(str(locked / "a"), str(locked / "a" / "1.json"), str(locked / "b"))
    assert p.returncode == 2, p.stderr
    assert f"{locked / 'a'}: 无法读取该文件夹" in p.stderr
    assert f"{locked / 'a' / '1.json'}: 没有读取权限" in p.stderr and "Traceback" not in p.stderr
    assert [json.loads(line)["call_id"] for line in p.stdout.splitlines()] == ["in-b"]

