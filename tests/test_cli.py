"""The `kefuqa` command: formats, selection, exit codes, bad input, atomic output."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

# every test runs `python -m kefuqa.cli` in a subprocess: about a second each, mostly start-up
pytestmark = pytest.mark.slow

FIX = Path(__file__).parent / "fixtures" / "cli"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kefuqa.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=120)


def test_json_output_follows_the_contract():
    p = run("check", str(FIX / "forbidden.txt"), "-f", "json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert set(d) >= {"call_id", "rulebook", "score", "grade", "fatal", "dimensions", "findings", "events",
                      "not_applicable"}
    assert d["call_id"] == "forbidden" and d["fatal"] and d["score"] == 0
    f = next(f for f in d["findings"] if f["rule"] == "LNG001")
    assert f["evidence"] == "我怎么知道" and f["utterance"] == 2 and f["points"] < 0 and f["suggestion"]


def test_jsonl_one_line_per_call_and_select():
    p = run("check", str(FIX / "good.json"), str(FIX / "forbidden.txt"), "-f", "jsonl", "--select", "LNG")
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert [x["call_id"] for x in lines] == ["good-1", "forbidden"]
    assert {f["rule"][:3] for x in lines for f in x["findings"]} == {"LNG"}


def test_ignore_by_prefix():
    p = run("check", str(FIX / "forbidden.txt"), "-f", "json", "--ignore", "LNG,RSP")
    rules = {f["rule"] for f in json.loads(p.stdout)["findings"]}
    assert rules and not any(r.startswith(("LNG", "RSP")) for r in rules)


def test_exemplary_call_scores_full_marks_in_table():
    p = run("check", str(FIX / "good.json"))
    assert p.returncode == 0
    assert "good-1" in p.stdout and "100" in p.stdout


def test_fail_under_exits_1():
    p = run("check", str(FIX / "forbidden.txt"), "--fail-under", "60", "-f", "jsonl")
    assert p.returncode == 1 and "低于 60 分" in p.stderr


def test_bad_input_is_reported_and_the_rest_scored():
    p = run("check", str(FIX / "bad.json"), str(FIX / "good.json"), "-f", "jsonl")
    assert p.returncode == 2
    assert [json.loads(x)["call_id"] for x in p.stdout.splitlines()] == ["good-1"]
    assert "bad.json" in p.stderr and "utterances[0]" in p.stderr and "早于 start" in p.stderr


def test_missing_path_and_bad_format_exit_2():
    assert run("check", "/nonexistent/x.json").returncode == 2
    assert run("check", str(FIX / "good.json"), "-f", "xml").returncode == 2


def test_stdin_and_folder(tmp_path):
    text = (FIX / "forbidden.txt").read_text(encoding="utf-8")
    p = run("check", "-", "-f", "jsonl", "--input-format", "text", stdin=text)
    assert p.returncode == 0 and json.loads(p.stdout)["fatal"]
    p = run("check", str(FIX), "-f", "jsonl")
    assert p.returncode == 2  # bad.json is in the folder
    assert sorted(json.loads(x)["call_id"] for x in p.stdout.splitlines()) == ["forbidden", "good-1"]


def test_duplicate_ids_are_reported(tmp_path):
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text((FIX / "good.json").read_text(encoding="utf-8"), encoding="utf-8")
    b.write_text((FIX / "good.json").read_text(encoding="utf-8"), encoding="utf-8")
    p = run("check", str(a), str(b), "-f", "jsonl")
    assert p.returncode == 2 and "duplicate id 'good-1'" in p.stderr
    assert len(p.stdout.splitlines()) == 1


def test_output_file_csv_and_html(tmp_path):
    out = tmp_path / "r.csv"
    p = run("check", str(FIX / "forbidden.txt"), "-f", "csv", "-o", str(out))
    assert p.returncode == 0 and p.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert any(r["rule"] == "LNG001" and r["evidence"] == "我怎么知道" for r in rows)
    html = tmp_path / "r.html"
    assert run("check", str(FIX / "forbidden.txt"), "-f", "html", "-o", str(html)).returncode == 0
    assert "我怎么知道" in html.read_text(encoding="utf-8")
    assert not list(tmp_path.glob(".*.part"))  # nothing half-written left behind


def test_jobs_gives_the_same_reports_in_order():
    files = [str(FIX / "good.json"), str(FIX / "forbidden.txt")]
    one = run("check", *files, "-f", "jsonl").stdout
    two = run("check", *files, "-f", "jsonl", "--jobs", "2").stdout
    assert one == two and one


def test_rulebook_option_and_bad_rulebook(tmp_path):
    p = run("check", str(FIX / "good.json"), "-r", "utility-95598", "-f", "json")
    assert json.loads(p.stdout)["rulebook"]["name"] == "utility-95598"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nextends: standard\noverride:\n  NOPE1: {points: 1}\n", encoding="utf-8")
    p = run("check", str(FIX / "good.json"), "-r", str(bad))
    assert p.returncode == 2 and "NOPE1" in p.stderr


def test_rules_commands():
    p = run("rules", "explain", "LNG001")
    assert p.returncode == 0 and "我怎么知道" in p.stdout and "红线" in p.stdout
    p = run("rules", "list", "-f", "json")
    ids = [r["id"] for r in json.loads(p.stdout)]
    assert "OPN001" in ids and "EVT004" in ids
    assert run("rules", "explain", "ZZZ999").returncode == 2
    assert run("rules", "lint", "standard").returncode == 0


def test_output_to_a_device_writes_through(tmp_path):
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    p = run("check", str(FIX / "good.json"), "-f", "jsonl", "-o", str(fifo))
    out, _ = reader.communicate(timeout=60)
    assert p.returncode == 0 and json.loads(out)["call_id"] == "good-1"
    assert fifo.is_fifo()  # not replaced by a regular file


def test_jobs_reads_big_jsonl_in_slices_with_the_same_results(tmp_path):
    """--jobs reads a big JSONL in parallel slices: same reports, same order, same line numbers in errors."""
    good = json.loads((FIX / "good.json").read_text(encoding="utf-8"))
    big = tmp_path / "big.jsonl"
    with big.open("w", encoding="utf-8") as fh:
        for i in range(1, 3001):
            if i == 2500:
                fh.write('{"id": "broken", "utterances": [\n')
                continue
            fh.write(json.dumps({**good, "id": f"c{i}"}, ensure_ascii=False) + "\n")
    assert big.stat().st_size > 2 * (1 << 20)  # more than one slice
    one = run("check", str(big), "-f", "jsonl")
    two = run("check", str(big), "-f", "jsonl", "--jobs", "2")
    assert one.returncode == two.returncode == 2
    assert one.stdout == two.stdout and len(two.stdout.splitlines()) == 2999
    assert "第 2500 行" in one.stderr and "第 2500 行" in two.stderr
