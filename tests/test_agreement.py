"""Agreement statistics against values computed by hand (and the textbook Fleiss example)."""

from __future__ import annotations

import pytest

from kefuqa.agreement import (
    calibration_report,
    cohen_kappa,
    consensus,
    fleiss,
    fleiss_kappa,
    percent_agreement,
)


def test_cohen_kappa_two_by_two_textbook() -> None:
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 → p_o = .7, p_e = .5·.6 + .5·.4 = .5
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert percent_agreement(a, b) == pytest.approx(0.7)
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_small_by_hand() -> None:
    # p_o = 3/4; p_A(1) = 1/2, p_B(1) = 1/4 → p_e = 1/2·1/4 + 1/2·3/4 = 1/2 → κ = (3/4 − 1/2)/(1/2) = 1/2
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)  # always opposite
    assert cohen_kappa(["x", "x"], ["x", "x"]) is None  # chance agreement is 1: undefined
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 0])


def test_fleiss_kappa_wikipedia_example() -> None:
    # 10 items, 14 raters, 5 categories (Fleiss 1971 as on Wikipedia): P̄ = 0.378, P̄e = 0.213, κ = 0.210
    rows = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    counts = [{k: v for k, v in enumerate(r) if v} for r in rows]
    p_bar, kappa = fleiss(counts)
    assert p_bar == pytest.approx(0.378, abs=5e-4)
    assert kappa == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_edge_cases() -> None:
    assert fleiss_kappa([[1, 1], [0, 0]]) == pytest.approx(1.0)  # perfect agreement, both categories used
    assert fleiss_kappa([[1, 1, 1], [1, 1, 1]]) is None  # one category only
    with pytest.raises(ValueError):
        fleiss([{"a": 2}, {"a": 3}])
    assert fleiss([]) == (None, None)


def test_consensus_is_the_majority() -> None:
    assert consensus([{"A"}, {"A", "B"}, {"B", "C"}]) == {"A", "B"}
    assert consensus([{"A"}, {"B"}]) == set()  # a tie is no majority


def test_calibration_report_by_hand() -> None:
    verdicts = {(10, 1): {"A"}, (10, 2): {"A"}, (10, 3): {"A", "B"},
                (20, 1): set(), (20, 2): {"B"}, (20, 3): set(),
                (30, 1): {"A"}}  # call 30: not every rater scored it, left out
    machine = {10: {"A"}, 20: {"C"}, 30: {"Z"}}
    r = calibration_report(verdicts, machine)
    assert r.calls == [10, 20] and r.raters == [1, 2, 3] and r.items == 6  # rules A, B, C
    assert r.percent == pytest.approx(7 / 9)
    assert r.fleiss == pytest.approx(58 / 130)
    assert r.consensus == {10: ["A"], 20: []}
    assert r.pairs[(1, 2)] == pytest.approx(8 / 14)
    assert r.pair_percent[(1, 2)] == pytest.approx(5 / 6)
    per = {x.rater: x for x in r.per_rater}
    assert per[1].with_consensus == pytest.approx(1.0) and per[1].kappa_consensus == pytest.approx(1.0)
    assert per[3].with_consensus == pytest.approx(5 / 6) and per[3].kappa_consensus == pytest.approx(8 / 14)
    assert r.machine_percent == pytest.approx(5 / 6) and r.machine_kappa == pytest.approx(8 / 14)
    rules = {x.rule: x for x in r.rules}
    assert rules["A"].fleiss == pytest.approx(1.0) and rules["A"].machine == pytest.approx(1.0)
    assert rules["B"].percent == pytest.approx(1 / 3) and rules["B"].fleiss == pytest.approx(-0.5)
    assert rules["C"].fleiss is None and rules["C"].machine == pytest.approx(0.5)
    assert [(s.call, round(s.spread, 4)) for s in r.spread] == [(10, round(2 / 9, 4)), (20, round(2 / 9, 4))]
    assert r.spread[0].votes == {"A": 3, "B": 1}


def test_calibration_report_needs_two_raters() -> None:
    r = calibration_report({(1, 7): {"A"}}, {1: {"A"}})
    assert r.fleiss is None and r.per_rater == [] and r.calls == [1]
