"""A batch run: inputs → units → workers (local processes or Ray actors) → committed parts + manifest.

    result = run_batch(["calls/", "s3://qa/2026-03/"], "s3://qa-out/", load_rulebook(), engine="ray")

The driver (this process) lists the work, hands units to the engine, puts the results back in input order,
drops repeated call ids (the first one wins, as in `kefuqa check`), and commits a part every
`part_calls` calls. Bad inputs become rows of the errors table; they never stop the run.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import __version__
from ..batch import DuplicateId, Unit
from ..engine import Checker
from ..errors import InputError, KefuqaError
from ..rules.rulebook import Rulebook
from .inputs import list_units
from .schema import SCHEMA_VERSION, error_row
from .store import Output
from .work import DoneIndex, Job, Scored, Scorer, scoring_key

__all__ = ["BatchResult", "Stalled", "run_batch"]

PART_CALLS = 5000  # calls per committed part (one Parquet file per table and date)
STALL_SECONDS = 900.0  # no unit finished for this long: the run stops with a clear message


class Stalled(KefuqaError):
    """The engine made no progress for too long (e.g. a Ray cluster without free CPUs for the workers)."""


@dataclass
class BatchResult:
    run_id: str
    scored: int = 0
    skipped: int = 0
    errors: int = 0
    duplicates: int = 0
    units: int = 0
    parts: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)


Engine = Callable[[list[Unit], Job], Iterator[Scored]]


def _local_engine(jobs: int, checker: Checker | None) -> Engine:
    def run(units: list[Unit], job: Job) -> Iterator[Scored]:
        if jobs <= 1:
            scorer = Scorer(job, checker)
            for i, u in enumerate(units):
                yield scorer(i, u)
            return
        yield from _pool(units, job, jobs, checker)
    return run


_WORKER: Scorer | None = None


def _init(job: Job, checker: Checker | None) -> None:
    global _WORKER
    _WORKER = Scorer(job, checker)


def _work(arg: tuple[int, Unit]) -> Scored:
    assert _WORKER is not None
    return _WORKER(*arg)


def _pool(units: list[Unit], job: Job, jobs: int, checker: Checker | None) -> Iterator[Scored]:
    import multiprocessing as mp

    # fork shares the compiled rulebook; not with ASR: a model this process already loaded (its threads)
    # does not survive a fork, so those workers start fresh and load their own
    forking = "fork" in mp.get_all_start_methods() and not job.read_options.get("asr")
    ctx = mp.get_context("fork") if forking else mp.get_context("spawn")
    slots = threading.Semaphore(jobs * 3)
    stopping = threading.Event()

    def feed() -> Iterator[tuple[int, Unit]]:
        for i, u in enumerate(units):
            slots.acquire()
            if stopping.is_set():
                return
            yield i, u

    pool = ctx.Pool(jobs, initializer=_init, initargs=(job, checker if forking else None))
    finished = False
    try:
        for scored in pool.imap(_work, feed()):
            slots.release()
            yield scored
        finished = True
    finally:
        stopping.set()
        for _ in range(jobs * 3):
            slots.release()
        if finished:
            pool.close()  # the workers exit on their own
        else:
            pool.terminate()
        pool.join()


class SeenIds:
    """The call ids met in this run and where each was first met, to drop repeated ids as `kefuqa check` does.

    Kept in a private temporary SQLite file (deleted when closed) with a small page cache, not in a dict:
    a 5 GB JSONL file has ~1.7 M calls, whose ids and sources would take ~0.5 GB of the driver; this way
    the driver's memory stays flat however many calls a run has (the file takes ~100 bytes a call)."""

    def __init__(self, cache_mb: int = 8) -> None:
        self.db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        for pragma in (f"cache_size=-{cache_mb * 1024}", "journal_mode=OFF", "synchronous=OFF",
                       "temp_store=FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY, source TEXT NOT NULL) WITHOUT ROWID")

    def first(self, calls: list[tuple[str, str]]) -> list[str | None]:
        """For each (call id, source), in order: None when the id is new (it is remembered now), else the
        source where it was first met (earlier in the run, or earlier in `calls`)."""
        ids = list({cid: None for cid, _ in calls})
        known: dict[str, str] = {}
        for k in range(0, len(ids), 500):  # SQLite's limit on bound parameters is 999 on old builds
            chunk = ids[k:k + 500]
            marks = ",".join("?" * len(chunk))
            known.update(self.db.execute(f"SELECT id, source FROM seen WHERE id IN ({marks})", chunk).fetchall())
        out: list[str | None] = []
        new: list[tuple[str, str]] = []
        for cid, source in calls:
            got = known.get(cid)
            out.append(got)
            if got is None:
                known[cid] = source
                new.append((cid, source))
        if new:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO seen VALUES (?, ?)", new)
            self.db.execute("COMMIT")
        return out

    def close(self) -> None:
        self.db.close()


def _in_order(results: Iterator[Scored]) -> Iterator[Scored]:
    """Results of engines that finish units out of order, back in input order."""
    waiting: dict[int, Scored] = {}
    nxt = 0
    for s in results:
        waiting[s.index] = s
        while nxt in waiting:
            yield waiting.pop(nxt)
            nxt += 1
    for i in sorted(waiting):
        yield waiting[i]


def _watchdog(results: Iterator[Scored], seconds: float, what: str) -> Iterator[Scored]:
    """`results`, or `Stalled` when no unit finishes for `seconds` (the engine runs in a thread)."""
    import queue

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=64)

    def pump() -> None:
        try:
            for s in results:
                q.put(("item", s))
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the driver
            q.put(("error", exc))

    threading.Thread(target=pump, daemon=True, name="kefuqa-batch-engine").start()
    while True:
        try:
            kind, value = q.get(timeout=seconds)
        except queue.Empty:
            raise Stalled(f"{what}：{seconds:g} 秒内没有任何工作单元完成，已停止。请检查集群是否有空闲 CPU"
                          f"（评分 actor 需要的 CPU 不能占满集群），或用 --stall-timeout 调大等待时间。") from None
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value


def run_batch(sources: list[str], out: str, rulebook: Rulebook, *, engine: str = "local", jobs: int = 1,
              address: str | None = None, fmt: str = "parquet", input_format: str | None = None,
              read_options: dict[str, Any] | None = None, select: list[str] | None = None,
              ignore: list[str] | None = None, part_calls: int = PART_CALLS,
              stall_timeout: float = STALL_SECONDS, checker: Checker | None = None,
              ray_options: dict[str, Any] | None = None,
              on_error: Callable[[InputError], None] | None = None,
              on_progress: Callable[[BatchResult], None] | None = None) -> BatchResult:
    """Score `sources` into the output folder `out` (see `kefuqa.distributed.store`).

    `engine`: ``local`` (`jobs` processes; one compiled checker each) or ``ray`` (actors on the cluster at
    `address`, or a local Ray; `jobs` > 1 caps the actors; `ray_options` go to `RayEngine`:
    ``cpus_per_actor``, ``gpus_per_actor``, ``num_cpus``). `part_calls` calls make one committed part.
    Raises `Stalled` when no unit finishes within `stall_timeout` seconds."""
    t_start = time.perf_counter()
    started_at = datetime.now(timezone.utc)
    run_id = started_at.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    output = Output(out, fmt)
    cleaned = output.clean_uncommitted()
    scoring = scoring_key(rulebook, select, ignore)
    done = DoneIndex(output.done_keys().get(scoring))
    units, missing = list_units(sources, input_format, csv_columns=(read_options or {}).get("csv_columns"))
    t_listed = time.perf_counter()
    job = Job(rulebook, run_id, scoring, done, input_format, dict(read_options or {}), select, ignore)
    result = BatchResult(run_id, units=len(units))
    timings: dict[str, float | None] = {"list_seconds": round(t_listed - t_start, 3)}

    calls: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    keys: list[tuple[str, str, str]] = []

    def bad(e: InputError, kind: str) -> None:
        result.errors += 1
        errors.append(error_row(e.source, e.place, e.reason, kind, run_id))
        if on_error is not None:
            on_error(e)

    def flush() -> None:
        if not (calls or errors):
            return
        result.parts += 1
        output.commit_part(f"{run_id}-{result.parts:05d}", calls, findings, errors, keys, run_id)
        calls.clear()
        findings.clear()
        errors.clear()
        keys.clear()

    for e in missing:
        bad(e, "input")

    if engine == "local":
        stream: Iterator[Scored] = _local_engine(jobs, checker)(units, job)
        what = "本地批量评分"
    elif engine == "ray":
        from .ray_engine import RayEngine

        ray_engine = RayEngine(address=address, **{"concurrency": jobs if jobs > 1 else None, **(ray_options or {})})
        t0 = time.perf_counter()
        ray_engine.start()
        timings["engine_start_seconds"] = round(time.perf_counter() - t0, 3)
        stream = _in_order(ray_engine.run(units, job))
        what = "Ray 批量评分"
    else:
        raise ValueError(f"unknown engine {engine!r} (local or ray)")
    if engine == "ray" or jobs > 1:
        stream = _watchdog(stream, stall_timeout, what)
    ready: Callable[[], float | None] = lambda: None  # noqa: E731
    if engine == "ray":
        ready = lambda: ray_engine.actors_ready_seconds or ray_engine.first_ready_seconds  # noqa: E731

    seen = SeenIds()
    work_seconds = 0.0
    first_result: float | None = None
    first_calls = 0
    t_run = time.perf_counter()
    try:
        for scored in stream:
            if first_result is None:
                first_result = time.perf_counter() - t_run
                first_calls = sum(1 for i in scored.items if i[0] == "call")
            work_seconds += scored.seconds
            firsts = iter(seen.first([(i[1], i[2]) for i in scored.items if i[0] != "error"]))
            for item in scored.items:
                if item[0] == "error":
                    bad(InputError(item[1], item[2], item[3]), "input")
                    continue
                call_id, source, digest = item[1], item[2], item[3]
                first = next(firsts)
                if first is not None:
                    result.duplicates += 1
                    bad(DuplicateId(source, call_id, first), "duplicate")
                    continue
                if item[0] == "skip":
                    result.skipped += 1
                    continue
                row, rows = item[4], item[5]
                calls.append(row)
                findings.extend(rows)
                keys.append((call_id, digest, scoring))
                result.scored += 1
                if len(calls) >= part_calls:
                    flush()
            if on_progress is not None:
                on_progress(result)
        flush()
    finally:
        seen.close()
        if engine == "ray":
            ray_engine.stop()
    t_end = time.perf_counter()
    timings.update(run_seconds=round(t_end - t_run, 3), total_seconds=round(t_end - t_start, 3),
                   worker_seconds=round(work_seconds, 3),
                   first_result_seconds=round(first_result, 3) if first_result is not None else None)
    started = ready()
    if started is not None:  # the actors' start-up (processes, imports, compiled rulebook), apart
        timings["workers_start_seconds"] = round(started, 3)
        if t_end - t_run - started > 0:
            timings["steady_calls_per_second"] = round(result.scored / (t_end - t_run - started), 1)
    elif first_result is not None and t_end - t_run - first_result > 0:  # throughput once the workers run
        timings["steady_calls_per_second"] = round((result.scored - first_calls) / (t_end - t_run - first_result), 1)
    result.manifest = {
        "kefuqa_batch": SCHEMA_VERSION, "run_id": run_id, "started_at": started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(), "inputs": list(sources), "output": out,
        "format": fmt, "engine": engine, "jobs": jobs, "address": address,
        "rulebook": {"name": rulebook.name, "version": rulebook.version}, "scoring_key": scoring,
        "select": select, "ignore": ignore,
        "counts": {"units": result.units, "scored": result.scored, "skipped": result.skipped,
                   "errors": result.errors, "duplicates": result.duplicates, "parts": result.parts,
                   "uncommitted_files_removed": len(cleaned),
                   "actors_lost": ray_engine.lost if engine == "ray" else 0},
        "versions": _versions(engine), "timings": timings,
        "workers": ray_engine.worker_info if engine == "ray" else [],
        "gpus_per_actor": ray_engine.gpus if engine == "ray" else 0.0,  # asked of Ray (explicit or `gpu_share`)
    }
    output.write_manifest(run_id, result.manifest)
    return result


def _versions(engine: str) -> dict[str, str]:
    import pyarrow

    v = {"kefuqa": __version__, "python": platform.python_version(), "pyarrow": pyarrow.__version__,
         "platform": sys.platform, "host": platform.node(), "pid": str(os.getpid())}
    if engine == "ray":
        import ray

        v["ray"] = ray.__version__
    return v
