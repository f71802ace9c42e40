"""Scoring many inputs: paths → conversations → reports, in one process or several, in input order.

The CLI (`kefuqa check`), the workbench's ingest and a distributed runner share this module. Nothing here
prints: bad inputs and duplicate call ids come back as `InputError` values in the stream, in the place
where they were found, and the caller decides how to show them.

    files, missing = find_inputs(["calls/", "extra.jsonl"])     # folders expanded; missing paths as errors
    for item in score(files, Checker(rb), jobs=4):             # Report | InputError, in input order
        ...

The pieces, for callers that schedule work themselves (a Ray or queue runner):

- `work_units(files)` cuts the inputs into picklable `Unit`s: whole files, big JSONL files in slices of
  about `SLICE_BYTES` cut at line ends (each slice knows its first line number, so places in errors and
  default ids are those of the whole file), big JSON lists at element starts (each slice knows its
  first element's index) and big CSV/TSV tables where a call begins (each slice is read with the header
  row); no unit holds more than about one slice of a file, so a worker's memory does not grow with it;
- `check_unit(unit, checker)` reads and checks one unit: ``[(source, Report) | InputError, ...]``;
- `Dedupe` keeps the first report of each call id and turns later ones into `DuplicateId` errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from .engine import Checker
from .errors import InputError
from .model import Conversation, Report
from .rules.rulebook import Rulebook

__all__ = [
    "SLICE_BYTES", "DuplicateId", "Dedupe", "Unit", "check_unit", "find_inputs", "format_slices", "read_inputs",
    "read_slice", "read_unit", "score", "score_items", "work_units",
]

Target = Any  # a file (str | Path), "-" for stdin, or a `kefuqa.readers.calls.CallFiles` (several files, one call)
Result = Report | InputError

SLICE_BYTES = 1 << 20  # JSONL files bigger than this are read in parallel slices of about this size
IN_FLIGHT_PER_JOB = 3  # units queued or being checked per process: memory stays bounded


class DuplicateId(InputError):
    """A call id seen before in the same batch; the later conversation is skipped."""

    def __init__(self, source: str, call_id: str, first: str) -> None:
        super().__init__(source, None, f"duplicate id {call_id!r} (first in {first}); skipped")
        self.call_id = call_id
        self.first = first

    def __reduce__(self) -> tuple[type[DuplicateId], tuple[str, str, str]]:  # type: ignore[override]
        return (DuplicateId, (self.source, self.call_id, self.first))


class Dedupe:
    """Remembers where each call id was first seen."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, call_id: str, source: str) -> DuplicateId | None:
        """None the first time `call_id` is seen (and remember `source`), else the error to report."""
        first = self.seen.get(call_id)
        if first is not None:
            return DuplicateId(source, call_id, first)
        self.seen[call_id] = source
        return None


def find_inputs(paths: Iterable[str | Path]) -> tuple[list[Target], list[InputError]]:
    """The files to read, folders expanded recursively (hidden entries and unknown extensions skipped,
    ``"-"`` kept for stdin), and an error for each path that does not exist.

    Files that make one call are grouped (`kefuqa.readers.calls.group_targets`): the calls a manifest
    lists, and a recording with the transcript of the same stem; a manifest row that cannot be used is
    an error here."""
    from .readers import iter_paths
    from .readers.calls import group_targets

    files: list[Target] = []
    missing: list[InputError] = []
    for p in paths:
        if str(p) == "-":
            files.append("-")
            continue
        try:
            Path(p).stat()
        except FileNotFoundError:
            missing.append(InputError(str(p), None, "文件或文件夹不存在"))
            continue
        except OSError:
            pass  # a file in a folder that cannot be searched: the reader names the reason
        files.extend(iter_paths([p], missing))
    grouped, bad_rows = group_targets(files)
    return grouped, missing + bad_rows


def read_inputs(files: Iterable[Target], input_format: str | None = None,
                **read_options: Any) -> Iterator[Conversation | InputError]:
    """Every conversation in `files`, in order; a bad file or record is an `InputError` (file, place,
    reason) and reading goes on. `read_options` go to `kefuqa.readers.read_path`."""
    from .readers import read_path
    from .readers.calls import CallFiles, read_call

    for f in files:
        if isinstance(f, CallFiles):
            yield from read_call(f, input_format, **read_options)
        else:
            yield from read_path(f, input_format, **read_options)


def score_items(items: Iterable[Conversation | InputError], checker: Checker, *,
                select: list[str] | None = None, ignore: list[str] | None = None,
                dedupe: Dedupe | None = None) -> Iterator[Result]:
    """Check conversations in this process: a `Report` per conversation, errors passed through, and a
    `DuplicateId` instead of the report for a call id seen before (not checked at all)."""
    dedupe = dedupe if dedupe is not None else Dedupe()
    for item in items:
        if isinstance(item, InputError):
            yield item
            continue
        dup = dedupe(item.id, item.source or item.id)
        if dup is not None:
            yield dup
        else:
            yield checker.check(item, select=select, ignore=ignore)


@dataclass(frozen=True)
class Unit:
    """A piece of input one worker reads and checks: a whole file, or a slice of a JSONL file."""

    path: str
    start: int = 0
    end: int = -1  # -1: the whole file
    first_line: int = 1  # the line number, in the whole file, of the slice's first line
    call: Any = None  # a CallFiles: the files of one call (recording + transcript + manifest row)
    # a slice of a JSON list: ("json", first element's index, elements in the list, encoding);
    # of a CSV/TSV table: ("csv" | "tsv", header's first byte, header's end, encoding)
    part: tuple[Any, ...] | None = None


def work_units(files: Iterable[Target], input_format: str | None = None, *,
               slice_bytes: int | None = None, csv_columns: Mapping[str, str] | None = None) -> Iterator[Unit]:
    """Whole files; JSONL files over `slice_bytes` (default `SLICE_BYTES`) cut at line ends into slices
    (line numbers kept), JSON lists and CSV/TSV tables as `format_slices` cuts them. Stdin (``"-"``)
    can't be shared with workers: use `read_inputs` for it."""
    from .readers import detect_format
    from .readers.calls import CallFiles

    slice_bytes = slice_bytes or SLICE_BYTES

    for f in files:
        if isinstance(f, CallFiles):
            yield Unit(f.name, call=f)
            continue
        if str(f) == "-":
            raise ValueError("stdin cannot be cut into work units")
        path = Path(f)
        try:
            size = path.stat().st_size
        except OSError:
            yield Unit(str(path))  # the reader reports why it can't be read
            continue
        fmt = input_format
        head = b""
        if size > slice_bytes:
            with path.open("rb") as fh:
                head = fh.read(256 * 1024)
            fmt = fmt or detect_format(head, path.name)
        if fmt != "jsonl" or size <= slice_bytes:
            cut = format_slices(_opener(path), head, str(path), fmt, size, slice_bytes, csv_columns)
            yield from cut or [Unit(str(path))]
            continue
        with path.open("rb") as fh:
            start, line = 0, 1
            while start < size:
                fh.seek(start)
                chunk = fh.read(slice_bytes)
                rest = fh.readline()  # finish the last line of the slice
                end = start + len(chunk) + len(rest)
                yield Unit(str(path), start, end, line)
                line += chunk.count(b"\n") + rest.count(b"\n")
                start = end


def _opener(path: Path) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        return path.open("rb")
    return opener


def format_slices(opener: Callable[[], BinaryIO], head: bytes, name: str, fmt: str | None, size: int,
                  slice_bytes: int, csv_columns: Mapping[str, str] | None = None) -> list[Unit] | None:
    """Slices of a big JSON list (cut at element starts, after checking the whole text as `json.loads`
    would) or CSV/TSV table (cut where a call begins); None to read the file as one unit (small, of
    another format, broken JSON — whose one error the reader gives —, or not safe to cut)."""
    from .readers.native import ArrayScan, scan_array
    from .readers.tabular import row_slices

    if size <= slice_bytes:
        return None
    if fmt == "json":
        scan = scan_array(opener, head, name, size, slice_bytes)
        if not isinstance(scan, ArrayScan) or len(scan.slices) < 2:
            return None
        return [Unit(name, start, end, 1, part=("json", index, scan.count, scan.encoding))
                for start, end, index in scan.slices]
    if fmt in ("csv", "tsv"):
        rows = row_slices(opener, head, name, "," if fmt == "csv" else "\t", size, slice_bytes, csv_columns)
        if rows is None:
            return None
        return [Unit(name, start, end, line, part=(fmt, *rows.header, rows.encoding))
                for start, end, line in rows.slices]
    return None


def read_slice(unit: Unit, data: bytes, header: bytes, input_format: str | None,
               **read_options: Any) -> Iterator[Conversation | InputError]:
    """The conversations of a slice's bytes (`header`: the table's header row, for CSV/TSV slices)."""
    from .readers import read_bytes

    if unit.part is None:
        yield from read_bytes(data, unit.path, input_format or "jsonl", first_line=unit.first_line, **read_options)
    elif unit.part[0] == "json":
        yield from read_bytes(data, unit.path, "json", json_items=unit.part[1:], **read_options)
    else:
        yield from read_bytes(header + data, unit.path, unit.part[0], first_line=unit.first_line - 1,
                              encoding=unit.part[3], **read_options)


def read_unit(unit: Unit, input_format: str | None = None, **read_options: Any) -> Iterator[Conversation | InputError]:
    """The conversations of one unit, as `read_inputs` gives them for the whole file."""
    if unit.call is not None or unit.end < 0:
        yield from read_inputs([unit.call or unit.path], input_format, **read_options)
        return
    header = b""
    with open(unit.path, "rb") as fh:
        if unit.part is not None and unit.part[0] != "json":
            fh.seek(unit.part[1])
            header = fh.read(unit.part[2] - unit.part[1])
        fh.seek(unit.start)
        data = fh.read(unit.end - unit.start)
    yield from read_slice(unit, data, header, input_format, **read_options)


def check_unit(unit: Unit, checker: Checker, *, input_format: str | None = None,
               read_options: Mapping[str, Any] | None = None, select: list[str] | None = None,
               ignore: list[str] | None = None,
               keep_conversations: bool = True) -> list[tuple[str, Report] | InputError]:
    """Read and check one unit: ``(source, report)`` per conversation (source: file, or file:第 N 行) and
    the unit's bad records, in file order. Duplicates are not removed (that needs the whole batch:
    `Dedupe`). Without `keep_conversations` reports don't carry the conversation (less to pickle)."""
    out: list[tuple[str, Report] | InputError] = []
    for item in read_unit(unit, input_format, **(read_options or {})):
        if isinstance(item, InputError):
            out.append(item)
            continue
        report = checker.check(item, select=select, ignore=ignore)
        if not keep_conversations:
            report.conversation = None
        out.append((item.source or unit.path, report))
    return out


def score(files: Iterable[Target], checker: Checker, *, jobs: int = 1, input_format: str | None = None,
          read_options: Mapping[str, Any] | None = None, select: list[str] | None = None,
          ignore: list[str] | None = None, keep_conversations: bool = True) -> Iterator[Result]:
    """Read and check `files`: a `Report` per conversation and an `InputError` per bad file or record
    (and per repeated call id: `DuplicateId`, the conversation skipped), in input order.

    With ``jobs > 1`` worker processes read, parse and check whole files or slices of big JSONL files,
    at most ``jobs * IN_FLIGHT_PER_JOB`` units at a time; the results are the same, in the same order.
    Input from stdin is read in this process. `keep_conversations=False` drops ``report.conversation``
    (writers of JSON don't need it) so workers send less back.
    """
    files = list(files)
    opts = dict(read_options or {})
    if jobs <= 1 or "-" in (str(f) for f in files):
        reports = score_items(read_inputs(files, input_format, **opts), checker, select=select, ignore=ignore)
        for r in reports:
            if isinstance(r, Report) and not keep_conversations:
                r.conversation = None
            yield r
        return
    yield from _parallel(files, checker, jobs, input_format, opts, select, ignore, keep_conversations)


# ---- processes --------------------------------------------------------------------------------------

_WORKER: Checker | None = None


def _init_worker(checker: Checker | None, rulebook: Rulebook) -> None:
    global _WORKER
    _WORKER = checker if checker is not None else Checker(rulebook)


def _work(unit: Unit, **kw: Any) -> list[tuple[str, Report] | InputError]:
    assert _WORKER is not None
    return check_unit(unit, _WORKER, **kw)


def _parallel(files: list[Target], checker: Checker, jobs: int, input_format: str | None,
              read_options: dict[str, Any], select: list[str] | None, ignore: list[str] | None,
              keep_conversations: bool) -> Iterator[Result]:
    import multiprocessing as mp
    import threading

    forking = "fork" in mp.get_all_start_methods()
    ctx = mp.get_context("fork") if forking else mp.get_context()
    # forked workers share the compiled checker; others compile the rulebook once each
    init_args = (checker, checker.rulebook) if forking else (None, checker.rulebook)
    limit = jobs * IN_FLIGHT_PER_JOB
    slots = threading.Semaphore(limit)
    stopping = threading.Event()

    def feed() -> Iterator[Unit]:
        for unit in work_units(files, input_format, csv_columns=read_options.get("csv_columns")):
            slots.acquire()
            if stopping.is_set():
                return
            yield unit

    work = partial(_work, input_format=input_format, read_options=read_options, select=select, ignore=ignore,
                   keep_conversations=keep_conversations)
    dedupe = Dedupe()
    pool = ctx.Pool(jobs, initializer=_init_worker, initargs=init_args)
    try:
        for items in pool.imap(work, feed()):
            slots.release()
            for item in items:
                if isinstance(item, InputError):
                    yield item
                    continue
                source, report = item
                yield dedupe(report.call_id, source) or report
    finally:
        # the caller may stop early (a closed pipe): unblock the feeding thread before stopping the pool
        stopping.set()
        for _ in range(limit):
            slots.release()
        pool.terminate()
        pool.join()
