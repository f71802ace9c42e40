"""Big JSON lists and CSV tables are streamed and cut into slices (issue 14): the same conversations and the
same errors (file, place, reason) as the whole-file read, in bounded memory (tracemalloc, no timings)."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from kefuqa import Checker, load_rulebook
from kefuqa.batch import Unit, read_unit, work_units
from kefuqa.errors import InputError
from kefuqa.readers import jsonstream, native, read_path
from test_batch_scale import produced, reference, s3  # noqa: F401 - s3: the moto server fixture

MB = 1024 * 1024
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _calls(n: int) -> list[dict[str, Any]]:
    base = []
    for p in sorted(EXAMPLES.glob("*.json")):
        for conv in read_path(p):
            if not isinstance(conv, InputError):
                base.append(conv.model_dump(mode="json", exclude_none=True, exclude={"source"}))
    out = []
    for i in range(n):
        call = json.loads(json.dumps(base[i % len(base)]))
        call["id"] = f"s-{i:05d}"
        out.append(call)
    return out


def _items(items: Any) -> list[Any]:
    return [(i.source, i.place, i.reason) if isinstance(i, InputError) else i.model_dump(mode="json")
            for i in items]


def _whole(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> list[Any]:
    monkeypatch.setattr(native, "STREAM_BYTES", 1 << 62)
    return _items(read_path(path, **kw))


def _streamed(path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int = 97, **kw: Any) -> list[Any]:
    monkeypatch.setattr(native, "STREAM_BYTES", 0)
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)  # tiny chunks: every element crosses a boundary
    return _items(read_path(path, **kw))


def _sliced(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[list[Any], list[Unit]]:
    """What the units of `work_units` give, read one by one (as the batch workers read them)."""
    monkeypatch.setattr(jsonstream, "CHUNK", 97)
    units = list(work_units([path], slice_bytes=2000, csv_columns=kw.get("csv_columns")))
    out = []
    for unit in units:
        out += _items(read_unit(unit, **kw))
    return out, units


# ---- JSON lists -------------------------------------------------------------------------------------------

def _json_text(calls: list[dict[str, Any]], indent: int | None = 1) -> str:
    return json.dumps(calls, ensure_ascii=False, indent=indent)


def test_a_json_list_streamed_or_sliced_gives_what_the_whole_file_gives(tmp_path, monkeypatch):
    calls = _calls(40)
    del calls[3]["id"]  # a default id from the file name and the index
    calls[5]["utterances"][0]["end"] = -1  # a bad conversation: its error names [5].utterances[0]…
    calls[7] = [1, 2]  # not an object
    path = tmp_path / "many.json"
    path.write_text(_json_text(calls), encoding="utf-8")
    whole = _whole(path, monkeypatch)
    assert sum(isinstance(x, tuple) for x in whole) == 2
    assert any(isinstance(x, dict) and x["id"] == "many#4" for x in whole)
    assert _streamed(path, monkeypatch) == whole
    assert _streamed(path, monkeypatch, chunk=1 << 20) == whole
    sliced, units = _sliced(path, monkeypatch)
    assert len(units) > 5 and all(u.part and u.part[0] == "json" for u in units)
    assert sliced == whole


@pytest.mark.parametrize("variant", [
    "syntax", "trailing_comma", "unclosed", "extra", "nan", "cut_string", "object", "empty", "gb18030",
    "bom", "crlf", "bad_byte_late", "one", "spaces", "number_list",
])
def test_streamed_json_errors_and_encodings_match_the_whole_file(tmp_path, monkeypatch, variant):
    calls = _calls(12)
    text = _json_text(calls)
    data: bytes
    if variant == "syntax":
        text = text.replace('"role"', "'role'", 30)  # the first error is in a later element
        text = text.replace("'role'", '"role"', 20)
    elif variant == "trailing_comma":
        text = text[: text.rindex("]")].rstrip() + ",\n]"
    elif variant == "unclosed":
        text = text[: text.rindex("]")]
    elif variant == "extra":
        text += "\n{}"
    elif variant == "nan":
        at = text.rindex('"end": ')  # in the last element
        text = text[:at] + '"x": NaN, ' + text[at:]
    elif variant == "cut_string":
        text = text[: len(text) * 2 // 3]
    elif variant == "object":
        text = _json_text(calls[0])  # type: ignore[arg-type]
    elif variant == "empty":
        text = "[ \n ]\n"
    elif variant == "one":
        text = _json_text(calls[:1])
    elif variant == "spaces":
        text = "   \n  "
    elif variant == "number_list":
        text = "[" + ", ".join(str(10 ** 30 + i) for i in range(50)) + "]"
    elif variant == "crlf":
        text = text.replace("\n", "\r\n")
    if variant == "gb18030":
        data = text.encode("gb18030")
    elif variant == "bom":
        data = b"\xef\xbb\xbf" + text.encode("utf-8")
    elif variant == "bad_byte_late":
        raw = text.encode("utf-8")
        data = raw[: len(raw) - 200] + b"\xff" + raw[len(raw) - 200:]
    else:
        data = text.encode("utf-8")
    path = tmp_path / "calls.json"
    path.write_bytes(data)
    whole = _whole(path, monkeypatch)
    assert _streamed(path, monkeypatch) == whole
    sliced, _ = _sliced(path, monkeypatch)
    assert sliced == whole
    if variant in ("syntax", "trailing_comma", "unclosed", "extra", "cut_string"):
        assert len(whole) == 1 and whole[0][1].startswith("第 ")  # one error naming line and column


def _read_all_in_bounded_memory(path: Path, calls: int, size: int) -> None:
    """Every call of `path` read, and the peak of Python's allocations meanwhile under 10 MB."""
    count = 0
    tracemalloc.start()
    try:
        for item in read_path(path):
            assert not isinstance(item, InputError)
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == calls
    assert peak < 10 * MB, f"peak {peak / MB:.1f} MB while reading {path.name} ({size / MB:.0f} MB)"


@pytest.mark.slow  # two 50 MB files written and read
def test_a_json_list_is_read_in_bounded_memory(tmp_path):
    calls = _calls(60)
    path = tmp_path / "big.json"
    size = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write("[\n")
        i = 0
        while size < 50 * MB:
            call = calls[i % len(calls)]
            call["id"] = f"big-{i:07d}"
            line = ("" if i == 0 else ",\n") + json.dumps(call, ensure_ascii=False)
            fh.write(line)
            size += len(line.encode())
            i += 1
        fh.write("\n]\n")
    _read_all_in_bounded_memory(path, i, size)


# ---- CSV tables -------------------------------------------------------------------------------------------

def _csv_rows(calls: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["通话ID", "角色", "开始", "结束", "内容", "坐席工号"]]
    for c in calls:
        for u in c["utterances"]:
            rows.append([c["id"], {"agent": "坐席", "customer": "客户"}.get(u["role"], u["role"]),
                         str(u.get("start", "")), str(u.get("end", "")), u["text"],
                         (c.get("agent") or {}).get("id", "")])
    return rows


def _write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", title: bool = False) -> None:
    buf = io.StringIO()
    if title:
        buf.write("通话记录导出 2026-03-05\n")
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))


@pytest.mark.parametrize("variant", ["plain", "gb18030", "title_and_quotes", "bad_rows"])
def test_a_csv_table_sliced_gives_what_the_whole_file_gives(tmp_path, monkeypatch, variant):
    calls = _calls(30)
    rows = _csv_rows(calls)
    if variant == "title_and_quotes":
        rows[5][4] = "第一行\n第二行，\"引号\""  # a quoted cell over two lines
    if variant == "bad_rows":
        rows[9][2] = "十秒"  # a bad time: the call's error names the row
        rows[30][0] = ""  # an empty id continues the call above
        rows[60][1] = ""  # an empty role
    path = tmp_path / "calls.csv"
    _write_csv(path, rows, "gb18030" if variant == "gb18030" else "utf-8", title=variant == "title_and_quotes")
    whole = _whole(path, monkeypatch)
    sliced, units = _sliced(path, monkeypatch)
    assert len(units) > 5 and all(u.part and u.part[0] == "csv" for u in units)
    assert sliced == whole
    if variant == "bad_rows":
        assert [x[1] for x in whole if isinstance(x, tuple)] == ["第 10 行", "第 61 行"]


def test_a_call_whose_rows_come_back_in_a_later_slice_is_a_repeated_id(tmp_path, monkeypatch):
    """Rows of one call must be adjacent. Read whole, the later rows are an error naming where the call
    began; cut into slices, the later rows are a conversation of an id seen before, which the batch skips
    (`DuplicateId`). Either way the first rows' call is the one scored and the later rows are not."""
    calls = _calls(30)
    rows = _csv_rows(calls)
    rows.append(rows[1])  # the first call comes back at the end
    path = tmp_path / "calls.csv"
    _write_csv(path, rows)
    whole = _whole(path, monkeypatch)
    sliced, _ = _sliced(path, monkeypatch)
    assert whole[:-1] == sliced[:-1]
    assert "同一通话的行必须相邻" in whole[-1][2]
    assert sliced[-1]["id"] == whole[0]["id"] == "s-00000"  # the batch's Dedupe skips it as a repeated id


@pytest.mark.slow
def test_a_csv_table_is_read_in_bounded_memory(tmp_path):
    calls = _calls(60)
    path = tmp_path / "big.csv"
    size, i = 0, 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        header, *_ = _csv_rows(calls[:1])
        w.writerow(header)
        while size < 50 * MB:
            call = dict(calls[i % len(calls)], id=f"big-{i:07d}")
            for row in _csv_rows([call])[1:]:
                w.writerow(row)
            size = fh.tell()
            i += 1
    _read_all_in_bounded_memory(path, i, size)


# ---- kefuqa batch: the slices scored are the reports of kefuqa check ---------------------------------------

def _archive(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    calls = _calls(60)
    calls[9]["utterances"][0]["end"] = -1
    (folder / "list.json").write_text(_json_text(calls), encoding="utf-8")
    table = _csv_rows([dict(c, id=f"t-{i:03d}") for i, c in enumerate(_calls(40))])
    table[20][2] = "十秒"
    _write_csv(folder / "table.csv", table, "gb18030")
    return folder


def _batch_matches_check(src: str, local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kefuqa batch SRC` cut into 8 kB slices gives the reports and errors of `kefuqa check LOCAL` (the
    same files; errors named by SRC)."""
    from kefuqa.distributed import run_batch

    monkeypatch.setattr("kefuqa.batch.SLICE_BYTES", 8192)
    monkeypatch.setattr("kefuqa.distributed.inputs.SLICE_BYTES", 8192)
    rulebook = load_rulebook()
    res = run_batch([src], str(tmp_path / "out"), rulebook, part_calls=25)
    assert res.units > 10 and res.errors == 2 and res.scored == 98
    want_reports, want_errors = reference([local], Checker(rulebook))
    got_reports, got_errors = produced(str(tmp_path / "out"))
    assert got_reports == want_reports
    assert got_errors == [e.replace(str(local), src.rstrip("/")) for e in want_errors]


def test_batch_scores_slices_of_json_lists_and_csv_tables_as_check_scores_the_files(tmp_path, monkeypatch):
    folder = _archive(tmp_path / "in")
    _batch_matches_check(str(folder), folder, tmp_path, monkeypatch)


@pytest.mark.slow
def test_batch_slices_json_lists_and_csv_tables_in_object_storage(tmp_path, monkeypatch, s3):  # noqa: F811
    folder = _archive(tmp_path / "in")
    for p in sorted(folder.iterdir()):
        s3.upload_file(str(p), "qa-archive", f"a/{p.name}")
    _batch_matches_check("s3://qa-archive/a/", folder, tmp_path, monkeypatch)
