"""kefuqa.batch: inputs → conversations → reports, in one process or several, errors as values."""

from __future__ import annotations

import json
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from kefuqa import Checker, InputError, Report, batch, load_rulebook
from kefuqa.batch import Dedupe, DuplicateId, Unit, find_inputs, read_unit, score, work_units
from kefuqa.readers import read_path

FIX = Path(__file__).parent / "fixtures" / "cli"
GOOD = json.loads((FIX / "good.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(load_rulebook())


def _call(call_id: str) -> dict[str, Any]:
    return {**GOOD, "id": call_id}


def _files(tmp_path: Path, n: int) -> list[Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = tmp_path / f"f{i:02d}.json"
        p.write_text(json.dumps(_call(f"call-{i:02d}"), ensure_ascii=False), encoding="utf-8")
        out.append(p)
    return out


def _big_jsonl(path: Path, n: int, broken: frozenset[int] | set[int] = frozenset()) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(1, n + 1):
            if i in broken:
                fh.write('{"id": "broken", "utterances": [\n')
            else:
                fh.write(json.dumps(_call(f"j{i}"), ensure_ascii=False) + "\n")
    return path


def _shape(results: list[Report | InputError]) -> list[str]:
    """Each result as a comparable string: the call id of a report, the text of an error."""
    return [r.call_id if isinstance(r, Report) else f"error {r}" for r in results]


def test_find_inputs_expands_folders_keeps_stdin_and_reports_missing(tmp_path):
    files = _files(tmp_path / "calls", 3)
    (tmp_path / "calls" / ".hidden.json").write_text("{}", encoding="utf-8")
    found, missing = find_inputs([str(tmp_path / "calls"), "-", str(tmp_path / "nope.json")])
    assert found == [*files, "-"]
    assert [(e.source, e.reason) for e in missing] == [(str(tmp_path / "nope.json"), "文件或文件夹不存在")]


@pytest.mark.parametrize("jobs", [1, 3])
def test_order_is_the_input_order(tmp_path, checker, jobs):
    files = _files(tmp_path, 12)
    results = list(score(files, checker, jobs=jobs))
    assert _shape(results) == [f"call-{i:02d}" for i in range(12)]
    assert all(isinstance(r, Report) and r.conversation is not None for r in results)


def test_jobs_give_the_same_results_as_one_process(tmp_path, checker, monkeypatch):
    monkeypatch.setattr(batch, "SLICE_BYTES", 20_000)  # several slices per JSONL file
    files = [*_files(tmp_path, 4), _big_jsonl(tmp_path / "big.jsonl", 60, broken={17, 44})]
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    files.insert(2, tmp_path / "bad.json")
    assert len(list(work_units(files))) > len(files)
    one = list(score(files, checker, jobs=1, keep_conversations=False))
    two = list(score(files, checker, jobs=2, keep_conversations=False))
    assert _shape(one) == _shape(two)
    assert [r.to_dict() for r in one if isinstance(r, Report)] == [r.to_dict() for r in two if isinstance(r, Report)]
    assert all(r.conversation is None for r in two if isinstance(r, Report))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_file_in_the_middle_does_not_stop_the_rest(tmp_path, checker, jobs):
    files = _files(tmp_path, 4)
    bad = tmp_path / "f01b.json"
    bad.write_text('{"id": "x", "utterances": [{"role": "agent", "start": 5, "end": 1, "text": "您好"}]}',
                   encoding="utf-8")
    missing = tmp_path / "gone.json"  # vanished between listing and reading
    results = list(score([files[0], files[1], bad, missing, files[2], files[3]], checker, jobs=jobs))
    shape = _shape(results)
    assert shape[:2] == ["call-00", "call-01"] and shape[4:] == ["call-02", "call-03"]
    err, gone = results[2], results[3]
    assert isinstance(err, InputError) and err.source == str(bad) and err.place == "utterances[0].end"
    assert isinstance(gone, InputError) and gone.source == str(missing) and gone.reason == "文件不存在"


@pytest.mark.parametrize("jobs", [1, 2])
def test_duplicates_are_reported_as_values_and_skipped(tmp_path, checker, jobs):
    a, b = _files(tmp_path, 2)
    again = tmp_path / "again.json"
    again.write_text(a.read_text(encoding="utf-8"), encoding="utf-8")
    results = list(score([a, b, again, a], checker, jobs=jobs, keep_conversations=False))
    assert _shape(results)[:2] == ["call-00", "call-01"]
    dups = results[2:]
    assert all(isinstance(d, DuplicateId) for d in dups)
    assert [(d.source, d.call_id, d.first) for d in dups] == [  # type: ignore[union-attr]
        (str(again), "call-00", str(a)), (str(a), "call-00", str(a))]
    assert str(dups[0]) == f"{again}: duplicate id 'call-00' (first in {a}); skipped"


def test_dedupe_and_duplicate_errors_pickle():
    d = Dedupe()
    assert d("c1", "a.json") is None and d("c2", "a.json:第 2 行") is None
    dup = d("c1", "b.json")
    assert isinstance(dup, DuplicateId) and dup.first == "a.json"
    back = pickle.loads(pickle.dumps(dup))
    assert isinstance(back, DuplicateId) and str(back) == str(dup) and back.call_id == "c1"


def test_jsonl_slices_keep_line_numbers(tmp_path):
    big = _big_jsonl(tmp_path / "big.jsonl", 200, broken={1, 57, 133, 200})
    units = list(work_units([big], slice_bytes=10_000))
    assert len(units) > 5
    assert units[0].first_line == 1 and units[0].start == 0 and units[-1].end == big.stat().st_size
    assert all(u.end == v.start for u, v in zip(units, units[1:], strict=False))  # no gaps, no overlaps
    whole = [(type(x).__name__, str(x) if isinstance(x, InputError) else (x.id, x.source))
             for x in read_path(big)]
    sliced = [(type(x).__name__, str(x) if isinstance(x, InputError) else (x.id, x.source))
              for u in units for x in read_unit(u)]
    assert sliced == whole
    errors = [s for kind, s in sliced if kind == "InputError"]
    assert [e.split("第 ")[1].split(" 行")[0] for e in errors] == ["1", "57", "133", "200"]
    assert ("Conversation", ("j58", f"{big}:第 58 行")) in sliced


def test_small_and_non_jsonl_files_are_whole_units(tmp_path):
    files = _files(tmp_path, 2)
    assert list(work_units(files, slice_bytes=10)) == [Unit(str(f)) for f in files]
    with pytest.raises(ValueError, match="stdin"):
        list(work_units(["-"]))


def test_stdin_is_read_in_this_process_even_with_jobs(checker, monkeypatch):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(_call("from-stdin")).encode())))
    assert _shape(list(score(["-"], checker, jobs=4))) == ["from-stdin"]


def test_stopping_early_does_not_hang(tmp_path, checker, monkeypatch):
    """A consumer that stops (a closed pipe) must not leave the feeding thread blocked on the pool."""
    monkeypatch.setattr(batch, "SLICE_BYTES", 4_000)
    big = _big_jsonl(tmp_path / "big.jsonl", 400)
    results = score([big], checker, jobs=2, keep_conversations=False)
    first = next(results)
    assert isinstance(first, Report) and first.call_id == "j1"
    closed = threading.Event()
    t = threading.Thread(target=lambda: (results.close(), closed.set()), daemon=True)
    t.start()
    assert closed.wait(30), "closing the batch hung"
