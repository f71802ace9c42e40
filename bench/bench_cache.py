"""The checker's utterance cache: hit rate, calls/s and memory for several byte budgets.

    python bench/bench_cache.py [--calls 30000] [--budgets 0,8,24,48,96,inf] [--corpus check|batch]

A worker scoring an archive keeps one `Checker` for hours; its cache of utterance views
(`Checker.CACHE_BYTES`) must stay bounded while keeping the phrases a call center repeats. For each budget
(MB; ``inf`` = never evicted) a fresh process checks the same generated calls (bench_check's synthetic
calls with ASR noise, or bench_batch's varied examples) and prints, against the unbounded cache in the
same run: calls per CPU-second (parsing excluded), the hit rate, views held, and the process's RSS growth. A first
pass with tracemalloc measures what a cached view really holds, against `_view_cost`'s estimate.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from kefuqa import Checker, load_rulebook  # noqa: E402
from kefuqa.engine.checker import _view_cost  # noqa: E402
from kefuqa.model import Conversation  # noqa: E402


def make_lines(kind: str, n: int) -> list[bytes]:
    if kind == "check":
        from bench_check import make_call

        rnd = random.Random(20260305)
        return [json.dumps(make_call(i, rnd), ensure_ascii=False).encode() for i in range(n)]
    from bench_batch import make_text_corpus

    with tempfile.TemporaryDirectory() as d:
        folder = make_text_corpus(Path(d), n, files=1)
        return (folder / "calls-00.jsonl").read_bytes().splitlines()


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def one(kind: str, n: int, budget: float) -> dict[str, float]:
    """Check `n` calls with a cache of `budget` MB (inf: unbounded) in this process."""
    lines = make_lines(kind, n)  # kept: its memory freed would be reused by the cache and hide its growth
    convs = [Conversation.model_validate_json(x) for x in lines]
    checker = Checker(load_rulebook(), cache_bytes=(1 << 62) if budget == float("inf") else int(budget * 2**20))
    for c in convs[:50]:  # warm the code paths, then start cold
        checker.check(c)
    checker.clear_cache()
    checker.cache_lookups = checker.cache_misses = 0
    gc.collect()
    r0 = rss_kb()
    t = time.process_time()  # CPU time: on a shared machine wall time moves with other people's work
    for c in convs:
        checker.check(c)
    secs = time.process_time() - t
    del lines
    return {"secs": secs, "hit": 1 - checker.cache_misses / max(checker.cache_lookups, 1),
            "views": checker.cache_size, "rss_mb": (rss_kb() - r0) / 1024}


def calibrate(kind: str, n: int) -> None:
    """What the views of `n` calls really hold (tracemalloc), against the estimate."""
    import tracemalloc

    convs = [Conversation.model_validate_json(x) for x in make_lines(kind, n)]
    checker = Checker(load_rulebook(), cache_bytes=1 << 62)
    for c in convs[:50]:
        checker.check(c)
    checker.clear_cache()
    gc.collect()
    tracemalloc.start()
    for c in convs:
        checker.check(c)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0]
    keys = list(checker._utt_cache)
    estimate = sum(_view_cost(t) for t, _ in keys)
    chars = sum(len(t) for t, _ in keys)
    checker.clear_cache()
    gc.collect()
    freed = held - tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"  calibration ({kind}, {n} calls): {len(keys)} views, {chars / max(len(keys), 1):.0f} characters each; "
          f"they hold {freed / max(len(keys), 1):.0f} bytes each (tracemalloc), estimated "
          f"{estimate / max(len(keys), 1):.0f} (actual/estimate {freed / max(estimate, 1):.2f})", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=30000)
    ap.add_argument("--budgets", default="0,8,24,48,96,inf", help="MB, comma-separated (inf: unbounded)")
    ap.add_argument("--corpus", default="check,batch")
    ap.add_argument("--calibrate", type=int, default=3000, help="calls for the tracemalloc pass (0: skip)")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "N", "BUDGET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), float(args.one[2]))))
        return 0
    print(f"utterance cache: {args.calls} calls per run, one fresh process per budget; load average "
          f"{os.getloadavg()[0]:.1f} at start; default budget {Checker.CACHE_BYTES / 2**20:.0f} MB")
    for kind in args.corpus.split(","):
        if args.calibrate:
            calibrate(kind, args.calibrate)
        rows = {}
        for b in args.budgets.split(","):
            out = subprocess.run([sys.executable, __file__, "--one", kind, str(args.calls), b],
                                 capture_output=True, text=True, check=True).stdout
            rows[b] = json.loads(out.strip().splitlines()[-1])
        ref = rows.get("inf") or next(iter(rows.values()))
        for b, r in rows.items():
            print(f"  {kind:5s} budget {b:>4s} MB: {args.calls / r['secs']:6.0f} calls per CPU-s "
                  f"({r['secs'] / ref['secs']:4.2f}x the unbounded CPU time), hit rate {r['hit']:6.1%}, "
                  f"{int(r['views']):7d} views held, RSS +{r['rss_mb']:5.0f} MB", flush=True)
    print(f"(load average {os.getloadavg()[0]:.1f} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
