"""Batch capacity: calls/s of `kefuqa batch` with --engine local (--jobs) and --engine ray on this machine.

    python bench/bench_batch.py [--calls 6000] [--recordings 8] [--minutes 1] [--vad energy,silero] [--no-ray]
    python bench/bench_batch.py --calls 0 --memory 100   # peak memory of driver and worker, 20 vs 100 MB JSONL

Prints, from one run, against the baseline `--engine local --jobs 1` measured in the same run:
- text: a generated corpus (the bundled examples, ids and wording varied) scored by local 1 and 2
  processes and by Ray with one actor per CPU; for Ray the fixed start-up (``ray.init``) is reported apart,
  and the run itself twice in the same Ray session: cold (actors start and compile the rulebook) and warm;
  Ray's per-call overhead = warm Ray run time over the local --jobs run with as many workers, per call;
- recordings (synthetic 8 kHz stereo calls, espeak-ng), with the energy and Silero VADs, no ASR:
  calls/s and the real-time factor per core.
Every figure is printed with the machine's CPU count; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def per_worker(res: Any) -> str:
    """Calls per second of one worker while it works (time inside the scorer, summed over units), and of
    the whole run once the first unit came back (start-up excluded)."""
    t = res.manifest["timings"]
    busy = float(t["worker_seconds"] or 0.0)
    steady = t.get("steady_calls_per_second")
    return (f"per worker {res.scored / busy:6.1f} calls/s busy" if busy else "") + \
        (f"; after start-up {steady:6.1f} calls/s" if steady else "")


def timed_run(src: Path, out: Path, rb: Any, **kw: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    res = run_batch([str(src)], str(out), rb, **kw)
    return time.perf_counter() - t, res


def line(name: str, calls: int, secs: float, base: float | None, extra: str = "") -> None:
    rate = calls / secs if secs else 0.0
    ratio = f"{base / secs:5.2f}x" if base else "  1.00x"
    print(f"  {name:<34} {calls:6d} calls {secs:8.2f} s {rate:9.1f} calls/s {ratio} {extra}", flush=True)


def bench_text(args: argparse.Namespace, tmp: Path, rb: Any) -> None:
    corpus = make_text_corpus(tmp / "text", args.calls)
    mb = sum(p.stat().st_size for p in corpus.iterdir()) / 1e6
    cpus = os.cpu_count() or 1
    print(f"text: {args.calls} calls, {mb:.1f} MB JSONL, {cpus} CPUs")
    base, res = timed_run(corpus, tmp / "o-l1", rb)
    line("local --jobs 1 (baseline)", args.calls, base, None, per_worker(res))
    t2, res = timed_run(corpus, tmp / "o-l2", rb, jobs=cpus)
    line(f"local --jobs {cpus}", args.calls, t2, base, per_worker(res))
    local_steady = float(res.manifest["timings"].get("steady_calls_per_second") or 0.0)
    if args.no_ray:
        return
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 1024 * 1024)
    start = time.perf_counter() - t
    print(f"  Ray start-up (ray.init)            {start:8.2f} s (fixed, once per session)")
    cold, res = timed_run(corpus, tmp / "o-r1", rb, engine="ray")
    line("ray, cold (actors start)", args.calls, cold, base,
         f"first unit after {res.manifest['timings']['first_result_seconds']:.1f} s; {per_worker(res)}")
    warm, res = timed_run(corpus, tmp / "o-r2", rb, engine="ray")
    line("ray, warm session", args.calls, warm, base, per_worker(res))
    over = (warm - t2) / t2 * 100
    print(f"  Ray overhead over --jobs {cpus} (warm session): {over:+.1f} % of the run "
          f"({(warm - t2) / args.calls * 1000:+.2f} ms per call)")
    ray_steady = float(res.manifest["timings"].get("steady_calls_per_second") or 0.0)
    if local_steady and ray_steady:
        print(f"  once started (after the first unit): ray {ray_steady:.1f} vs local {local_steady:.1f} calls/s: "
              f"overhead {(local_steady / ray_steady - 1) * 100:+.1f} %")
    ray.shutdown()


def bench_audio(args: argparse.Namespace, tmp: Path, rb: Any) -> None:
    recs = make_recordings(tmp / "rec", args.recordings, args.minutes)
    cpus = os.cpu_count() or 1
    audio_s = args.recordings * args.minutes * 60
    print(f"recordings: {args.recordings} x {args.minutes:g} min 8 kHz stereo, no ASR")
    for vad in args.vad.split(","):
        opts = {"vad": vad}
        base, res = timed_run(recs, tmp / f"a-{vad}-1", rb, read_options=opts)
        busy = float(res.manifest["timings"]["worker_seconds"] or base)
        line(f"{vad} VAD, local --jobs 1", args.recordings, base, None,
             f"{audio_s / busy:6.1f}x real time per busy core")
        t2, _ = timed_run(recs, tmp / f"a-{vad}-2", rb, read_options=opts, jobs=cpus)
        line(f"{vad} VAD, local --jobs {cpus}", args.recordings, t2, base)
        if not args.no_ray:
            tr, _ = timed_run(recs, tmp / f"a-{vad}-r", rb, read_options=opts, engine="ray")
            line(f"{vad} VAD, ray (incl. start-up)", args.recordings, tr, base)


def bench_memory(args: argparse.Namespace, tmp: Path) -> None:
    """Peak memory of a local --jobs 2 run on a JSONL file and one 5x larger (one file, sliced): both
    over one part's worth of calls (5,000, about 13 MB), so any growth is growth with the input."""
    print("memory: peak RSS of the driver and of the largest worker (local --jobs 2, one JSONL file)")
    for mb in (args.memory / 5, args.memory):
        folder = tmp / f"mem-{mb:g}"
        calls = int(mb * 1e6 / 2600)  # about 2.6 kB per generated call
        make_text_corpus(folder, calls, files=1)
        size = (folder / "calls-00.jsonl").stat().st_size / 1e6
        # the driver's own peak (VmHWM: ru_maxrss would carry this bench's peak across fork + exec)
        code = ("import resource,sys; from kefuqa import load_rulebook; from kefuqa.distributed import run_batch;"
                "r=run_batch([sys.argv[1]], sys.argv[2], load_rulebook(), jobs=2);"
                "hwm=[int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM')][0];"
                "print(r.scored, hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code, str(folder), str(tmp / f"mem-out-{mb:g}")],
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        scored, driver_kb, child_kb = out.stdout.split()
        print(f"  {size:7.1f} MB, {int(scored):7d} calls: driver {int(driver_kb) / 1024:6.0f} MB, "
              f"worker {int(child_kb) / 1024:6.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=6000)
    ap.add_argument("--recordings", type=int, default=0, help="synthetic recordings (0: skip)")
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--vad", default="energy,silero")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--memory", type=float, default=0.0, help="MB of JSONL for the memory check (0: skip)")
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
