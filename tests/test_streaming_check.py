"""A big JSONL is read, scored and written in constant memory: peak memory does not grow with the
number of calls (measured with tracemalloc; no timing)."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest

import kefuqa
from kefuqa.readers import read_path
from kefuqa.writers import write_reports

pytestmark = pytest.mark.slow  # 1,800 calls scored under tracemalloc

LINES = ["您好，XX公司客服部，我是工号1023，请问有什么可以帮您？", "我家宽带老是掉线。",
         "您是咨询宽带掉线的问题，是吗？", "对。", "我怎么知道，你去问维修部。", "什么破服务！"]


def _jsonl(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            utts = [{"role": "agent" if j % 2 == 0 else "customer", "start": j * 3.0, "end": j * 3.0 + 2.5,
                     "text": LINES[j % len(LINES)]} for j in range(20)]
            fh.write(json.dumps({"id": f"c{i}", "utterances": utts}, ensure_ascii=False) + "\n")


def _peak(path: Path) -> tuple[int, int]:
    """(peak traced memory, reports written) while scoring a JSONL file into a JSONL sink."""
    checker = kefuqa.checker_for("standard")
    sink = io.StringIO()

    def reports():
        for item in read_path(path):
            assert not isinstance(item, kefuqa.InputError)
            yield checker.check(item)
            sink.seek(0)
            sink.truncate()  # the sink is not what is measured

    tracemalloc.start()
    try:
        written = write_reports(reports(), "jsonl", sink)
        return tracemalloc.get_traced_memory()[1], written
    finally:
        tracemalloc.stop()


def test_scoring_a_jsonl_stream_uses_constant_memory(tmp_path):
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    _jsonl(small, 200)
    _jsonl(big, 1600)
    kefuqa.checker_for("standard")  # compile outside the measurement
    (p_small, n_small), (p_big, n_big) = _peak(small), _peak(big)
    assert (n_small, n_big) == (200, 1600)  # every call was scored and written
    assert p_big < p_small * 1.5 + 256_000, (p_small, p_big)
