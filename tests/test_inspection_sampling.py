"""Review-plan sampling and assignment as pure functions: reproducible with a seed, every must-review call
kept, N more per agent, balanced load."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")

from kefuqa.service.errors import Invalid  # noqa: E402
from kefuqa.service.usecases.plans import Candidate, balance, draw  # noqa: E402


def _pool() -> list[Candidate]:
    out = []
    for agent in (1, 2, 3):
        for k in range(20):
            call = agent * 100 + k
            must = "fatal" if k == 0 else "complaint" if (agent == 2 and k == 1) else None
            out.append(Candidate(call, agent, must, confidence=None if k % 3 else k / 100))
    return out


def test_every_must_call_and_n_random_per_agent() -> None:
    picked = draw(_pool(), 3, seed=7)
    by_agent: dict[int, list[tuple[int, str]]] = {}
    for call, reason in picked:
        by_agent.setdefault(call // 100, []).append((call, reason))
    assert sorted(by_agent) == [1, 2, 3]
    for agent, rows in by_agent.items():
        musts = {c for c, r in rows if r != "random"}
        assert musts == ({agent * 100, 201} if agent == 2 else {agent * 100})
        randoms = [c for c, r in rows if r == "random"]
        assert len(randoms) == 3 and not set(randoms) & musts
    assert len({c for c, _ in picked}) == len(picked)


def test_the_same_seed_gives_the_same_sample_whatever_the_input_order() -> None:
    pool = _pool()
    assert draw(pool, 3, seed=42) == draw(list(reversed(pool)), 3, seed=42)
    samples = {tuple(draw(pool, 3, seed=s)) for s in range(10)}
    assert len(samples) > 1  # the seed matters


def test_an_agent_with_fewer_calls_gets_them_all() -> None:
    pool = [Candidate(1, 9, None), Candidate(2, 9, None)]
    assert sorted(draw(pool, 3, seed=1)) == [(1, "random"), (2, "random")]
    assert draw(pool, 0, seed=1) == []


def test_lowest_confidence_first() -> None:
    pool = [Candidate(1, 5, None, 0.9), Candidate(2, 5, None, 0.55), Candidate(3, 5, None, None),
            Candidate(4, 5, None, 0.61)]
    assert draw(pool, 2, seed=3, order="low_confidence") == [(2, "low_confidence"), (4, "low_confidence")]
    # calls without a model finding come after every call with one
    assert [c for c, _ in draw(pool, 4, seed=3, order="low_confidence")] == [2, 4, 1, 3]


def test_balance_evens_the_load_counting_open_work() -> None:
    out = balance(list(range(10)), [7, 8, 9], {7: 4})
    counts = {i: list(out.values()).count(i) for i in (7, 8, 9)}
    assert counts == {7: 1, 8: 5, 9: 4}  # 7 had 4 open: all end with 5 or 4, ties to the lower id
    assert max(counts[i] + {7: 4}.get(i, 0) for i in counts) - min(counts[i] + {7: 4}.get(i, 0) for i in counts) <= 1
    with pytest.raises(Invalid):
        balance([1], [], {})
