"""The checker's cache of utterance views is bounded by bytes (two generations), keeps what is still said,
and never changes a report."""

from __future__ import annotations

from pathlib import Path

from kefuqa import Checker, InputError, load_rulebook
from kefuqa.engine.checker import VIEW_BYTES
from kefuqa.readers import read_path
from kefuqa.writers.jsonout import report_to_json

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _calls(n: int) -> list:
    base = [c for p in sorted(EXAMPLES.glob("*.json")) for c in read_path(p) if not isinstance(c, InputError)]
    out = []
    for i in range(n):
        conv = base[i % len(base)]
        utts = [u.model_copy(update={"text": f"{u.text}（{i}）"}) if u.text else u for u in conv.utterances]
        out.append(conv.model_copy(update={"id": f"c{i}", "utterances": utts}))  # every call's texts new
    return out


def test_a_small_budget_bounds_the_cache_and_changes_no_report():
    rb = load_rulebook()
    calls = _calls(120)
    budget = 40 * VIEW_BYTES
    small, unbounded = Checker(rb, cache_bytes=budget), Checker(rb, cache_bytes=1 << 62)
    most = 0
    for conv in calls:
        assert report_to_json(small.check(conv), indent=None) == report_to_json(unbounded.check(conv), indent=None)
        most = max(most, small.cache_size)
    longest = max(len(c.utterances) for c in calls)
    assert most <= budget // VIEW_BYTES + 2 * longest  # the budget, plus at most a call's views per generation
    assert unbounded.cache_size > 3 * most


def test_what_is_still_said_stays_across_generations():
    rb = load_rulebook()
    calls = _calls(100)
    longest = max(len(c.utterances) for c in calls)
    checker = Checker(rb, cache_bytes=8 * longest * VIEW_BYTES)  # a generation holds several calls
    greeting = calls[0]
    for conv in calls:  # the cache turns over several times, the greeting is said in between
        checker.check(conv)
        misses = checker.cache_misses
        checker.check(greeting)
        assert checker.cache_misses == misses  # found in the young or the old generation every time
    assert checker.cache_size < sum(len(c.utterances) for c in calls) / 2
