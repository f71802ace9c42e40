"""A rulebook regex with catastrophic backtracking, `(a+)+$`, on Python's `re` and as kefuqa runs it.

Python's `re` doubles its time with each extra character of ``aaaa…!``; kefuqa compiles such a pattern
for RE2 (kefuqa.rules.regex), whose time grows linearly. Prints, for each length, both times measured in
this run and their ratio; `re` stops after the first length over --budget seconds.

    python bench/bench_regex.py                # lengths 16..26, budget 2 s
    python bench/bench_regex.py --lengths 16,20 --budget 0.5
"""

from __future__ import annotations

import argparse
import re
import time

from kefuqa.rules.regex import compile_rule_regex, engine_of

PATTERN = "(a+)+$"


def _time(search, text: str, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        search(text)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="16,18,20,22,24,26")
    ap.add_argument("--budget", type=float, default=2.0, help="stop timing re after one run over this (s)")
    args = ap.parse_args()
    plain = re.compile(PATTERN)
    safe = compile_rule_regex(PATTERN)
    print(f"pattern {PATTERN!r}: kefuqa runs it on {engine_of(safe)}")
    print(f"{'chars':>6} {'re (s)':>10} {'kefuqa (s)':>12} {'re / kefuqa':>12}")
    over = False
    for n in (int(x) for x in args.lengths.split(",")):
        text = "a" * n + "!"
        fast = _time(safe.search, text, 5)
        if over:
            print(f"{n + 1:>6} {'(skipped)':>10} {fast:>12.2e} {'':>12}")
            continue
        slow = _time(plain.search, text, 1)
        over = slow > args.budget
        print(f"{n + 1:>6} {slow:>10.3f} {fast:>12.2e} {slow / fast:>12.0f}")


if __name__ == "__main__":
    main()
