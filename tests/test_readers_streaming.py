"""Large JSONL and CSV files are read in constant memory (measured with tracemalloc, no timings)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefuqa.errors import InputError
from kefuqa.model import Conversation
from kefuqa.readers import read_path

pytestmark = pytest.mark.slow  # 50 MB and 20 MB files written and read

MB = 1024 * 1024
AGENT = (
    "您好，这里是XX公司客服部，我是工号1023，请问有什么可以帮您？非常抱歉给您带来不便，我马上为您查询处理。"
    * 2
)
CUSTOMER = (
    "你好，我家宽带从昨天晚上开始就上不了网了，打了好几次电话都没有人处理，你们到底什么时候能修好？" * 2
)


def _conversation_line(i: int, utterances: int) -> str:
    utts = [
        {
            "role": "agent" if j % 2 == 0 else "customer",
            "start": j * 5.0,
            "end": j * 5.0 + 4.5,
            "text": AGENT if j % 2 == 0 else CUSTOMER,
        }
        for j in range(utterances)
    ]
    return json.dumps({"id": f"call-{i:06d}", "channel": "phone", "utterances": utts}, ensure_ascii=False)


def _write_lines(path: Path, lines: Iterator[str], target: int) -> int:
    """Write lines until the file reaches `target` bytes; returns the number of lines."""
    written = count = 0
    with path.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
            written += len(line.encode()) + 1
            count += 1
            if written >= target:
                break
    return count


def _peak_while_reading(path: Path) -> tuple[int, int, int]:
    """(conversations, errors, peak traced bytes) for reading `path` completely."""
    conversations = errors = 0
    tracemalloc.start()
    try:
        for item in read_path(path):
            if isinstance(item, Conversation):
                conversations += 1
            elif isinstance(item, InputError):
                errors += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return conversations, errors, peak


def test_50mb_jsonl_is_read_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"

    def lines() -> Iterator[str]:
        i = 0
        while True:
            i += 1
            yield "{not json" if i == 777 else _conversation_line(i, 30)

    count = _write_lines(path, lines(), 50 * MB)
    assert path.stat().st_size >= 50 * MB

    conversations, errors, peak = _peak_while_reading(path)

    assert (conversations, errors) == (count - 1, 1)
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB while reading a {path.stat().st_size / MB:.0f} MB file"


def test_20mb_csv_of_many_calls_is_read_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"

    def rows() -> Iterator[str]:
        yield "通话ID,角色,开始时间,结束时间,内容"
        call = 0
        while True:
            call += 1
            for j in range(20):
                role = "坐席" if j % 2 == 0 else "客户"
                text = AGENT if j % 2 == 0 else CUSTOMER
                yield f"C{call:06d},{role},{j * 5},{j * 5 + 4.5},{text}"

    lines = _write_lines(path, rows(), 20 * MB)

    conversations, errors, peak = _peak_while_reading(path)

    assert errors == 0  # the last call may be cut short by the size limit, and is still a call
    assert conversations == (lines - 1 + 19) // 20
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MB while reading a {path.stat().st_size / MB:.0f} MB file"
