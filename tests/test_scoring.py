"""Scorecard arithmetic: deductions, caps, dimension floors, fatal rules, grades."""

from __future__ import annotations

import pytest
from tests.conftest import conv

import kefuqa
from kefuqa.scoring import RuleTerms, rescore, rule_terms

CARD = """
scorecard:
  name: test
  dimensions:
    - {name: 礼貌, max: 10}
    - {name: 效率, max: 90}
  fatal: [F01]
  grades:
    - {name: 好, min: 90}
    - {name: 中, min: 60}
    - {name: 差, min: 0}
"""


def test_once_each_caps_and_dimension_floor(rulebook):
    rb = rulebook("""
    - {id: A01, name: a, kind: phrase, points: 4, dimension: 礼貌, message: m, phrases: [喂]}
    - {id: B01, name: b, kind: phrase, points: 3, deduct: each, max_points: 7, dimension: 效率, message: m, phrases: [嘿]}
    """, scorecard=CARD.replace("fatal: [F01]", "fatal: []"))
    r = kefuqa.check(conv("A: 喂", "A: 喂", "A: 嘿嘿", "A: 嘿", "A: 嘿", "A: 嘿"), rb)
    a = [f.points for f in r.findings if f.rule == "A01"]
    b = [f.points for f in r.findings if f.rule == "B01"]
    assert a == [-4.0, 0.0]  # once per call: only the first finding costs points
    assert b == [-3.0, -3.0, -1.0, 0.0]  # each, capped at 7
    assert r.dimensions == {"礼貌": 6.0, "效率": 83.0}
    assert r.score == 89.0 and r.grade == "中" and not r.fatal


def test_dimension_never_goes_below_zero(rulebook):
    rb = rulebook("""
    - {id: A01, name: a, kind: phrase, points: 8, deduct: each, dimension: 礼貌, message: m, phrases: [喂]}
    """, scorecard=CARD.replace("fatal: [F01]", "fatal: []"))
    r = kefuqa.check(conv("A: 喂", "A: 喂", "A: 喂"), rb)
    assert r.dimensions["礼貌"] == 0.0 and r.score == 90.0 and r.grade == "好"


def test_fatal_rule_zeroes_the_score(rulebook):
    rb = rulebook("""
    - {id: F01, name: 红线, kind: phrase, severity: critical, points: 1, dimension: 礼貌, message: m, phrases: [滚]}
    """, scorecard=CARD)
    r = kefuqa.check(conv("A: 你滚"), rb)
    assert r.fatal and r.score == 0.0 and r.grade == "差" and r.fatal_rules == ["F01"]
    assert r.dimensions["礼貌"] == 9.0  # the breakdown still shows where points were lost


def test_scorecard_override_changes_points_and_dimension(rulebook):
    card = CARD.replace("fatal: [F01]", "fatal: []") + "  rules:\n    A01: {points: 9, dimension: 效率}\n"
    rb = rulebook("""
    - {id: A01, name: a, kind: phrase, points: 1, dimension: 礼貌, message: m, phrases: [喂]}
    """, scorecard=card)
    r = kefuqa.check(conv("A: 喂"), rb)
    (f,) = r.findings
    assert f.points == -9.0 and f.dimension == "效率" and r.score == 91.0


def test_events_carry_no_points(rulebook):
    rb = rulebook("""
    - {id: E01, name: e, kind: phrase, severity: event, role: customer, message: m, phrases: [投诉]}
    """, scorecard=CARD.replace("fatal: [F01]", "fatal: []"))
    r = kefuqa.check(conv("C: 我要投诉"), rb)
    assert r.score == 100.0 and not r.findings and [e.rule for e in r.events] == ["E01"]


def test_findings_points_add_up_to_the_deduction(rulebook):
    rb = kefuqa.load_rulebook("standard")
    r = kefuqa.check(conv("A: 喂，你说", "C: 我要投诉", "A: 不知道，好像是吧", "C: 什么破服务", "A: 嗯嗯"), rb)
    lost = sum(d.max for d in rb.scorecard.dimensions) - sum(r.dimensions.values())
    assert abs(-sum(f.points for f in r.findings) - lost) < 1e-6


# ---- re-scoring with voided findings (accepted appeals, findings an inspector rejected) ----------------------

RULES = """
- {id: A01, name: a, kind: phrase, points: 4, dimension: 礼貌, message: m, phrases: [喂]}
- {id: B01, name: b, kind: phrase, points: 3, deduct: each, max_points: 7, dimension: 效率, message: m, phrases: [嘿]}
- {id: F01, name: 红线, kind: phrase, severity: critical, points: 1, dimension: 礼貌, message: m, phrases: [滚]}
"""
CALL = ("A: 喂", "A: 喂", "A: 嘿嘿", "A: 嘿", "A: 你滚", "A: 嘿", "A: 嘿")


def _indexes(report, rule):
    return [i for i, f in enumerate(report.findings) if f.rule == rule]


def test_rescore_without_voided_findings_is_the_report(rulebook):
    rb = rulebook(RULES, scorecard=CARD)
    r = kefuqa.check(conv(*CALL), rb)
    again = rescore(r, rb, ())
    assert again.to_dict() == r.to_dict() and again is not r


def test_rescore_is_scoring_as_if_the_findings_had_not_been_found(rulebook):
    rb = rulebook(RULES, scorecard=CARD)
    r = kefuqa.check(conv(*CALL), rb)
    assert r.fatal and r.score == 0.0
    for rule in ("A01", "B01", "F01"):
        got = rescore(r, rb, _indexes(r, rule))
        expected = kefuqa.check(conv(*CALL), rb, ignore=[rule])
        assert (got.score, got.grade, got.fatal, got.dimensions, got.fatal_rules) == (
            expected.score, expected.grade, expected.fatal, expected.dimensions, expected.fatal_rules), rule
        assert [(f.rule, f.points) for f in got.findings] == [(f.rule, f.points) for f in expected.findings]


def test_rescore_a_fatal_rule_voided(rulebook):
    rb = rulebook(RULES, scorecard=CARD)
    r = kefuqa.check(conv(*CALL), rb)
    got = rescore(r, rb, _indexes(r, "F01"))
    # 礼貌 10 − 4 (A01 once) = 6; 效率 90 − 7 (B01 capped) = 83; no 红线 left
    assert not got.fatal and got.fatal_rules == [] and got.dimensions == {"礼貌": 6.0, "效率": 83.0}
    assert got.score == 89.0 and got.grade == "中"
    assert r.fatal and r.score == 0.0 and len(r.findings) == len(got.findings) + 1  # the input is unchanged


def test_rescore_moves_a_once_charge_to_the_next_finding(rulebook):
    rb = rulebook(RULES, scorecard=CARD.replace("fatal: [F01]", "fatal: []"))
    r = kefuqa.check(conv(*CALL), rb)
    a = _indexes(r, "A01")
    assert [r.findings[i].points for i in a] == [-4.0, 0.0]
    got = rescore(r, rb, [a[0]])
    assert [f.points for f in got.findings if f.rule == "A01"] == [-4.0]
    assert got.dimensions == r.dimensions and got.score == r.score
    both = rescore(r, rb, a)
    assert both.dimensions["礼貌"] == r.dimensions["礼貌"] + 4


def test_rescore_refills_an_each_rules_cap(rulebook):
    rb = rulebook(RULES, scorecard=CARD.replace("fatal: [F01]", "fatal: []"))
    r = kefuqa.check(conv(*CALL), rb)
    b = _indexes(r, "B01")
    assert [r.findings[i].points for i in b] == [-3.0, -3.0, -1.0, 0.0]
    one = rescore(r, rb, [b[0]])  # three left: 3 + 3 + 1 (cap 7)
    assert [f.points for f in one.findings if f.rule == "B01"] == [-3.0, -3.0, -1.0]
    assert one.dimensions["效率"] == 83.0
    two = rescore(r, rb, b[:2])  # two left: 3 + 3
    assert [f.points for f in two.findings if f.rule == "B01"] == [-3.0, -3.0]
    assert two.dimensions == {"礼貌": 5.0, "效率": 84.0} and two.score == 89.0  # 礼貌: A01 4, F01 1


def test_rescore_rounds_as_the_engine_does(rulebook):
    card = CARD.replace("fatal: [F01]", "fatal: []")
    rb = rulebook("""
    - {id: A01, name: a, kind: phrase, points: 0.333, deduct: each, dimension: 礼貌, message: m, phrases: [喂]}
    """, scorecard=card)
    r = kefuqa.check(conv("A: 喂", "A: 喂", "A: 喂"), rb)
    got = rescore(r, rb, [0])
    assert got.dimensions["礼貌"] == round(10 - 2 * 0.333, 2) == 9.33 and got.score == 99.33


def test_rescore_refuses_indexes_outside_the_report(rulebook):
    rb = rulebook(RULES, scorecard=CARD)
    r = kefuqa.check(conv("A: 喂"), rb)
    with pytest.raises(ValueError, match="not in a report of 1 findings"):
        rescore(r, rb, [1])


def test_rule_terms_apply_the_scorecards_overrides(rulebook):
    card = CARD.replace("fatal: [F01]", "fatal: []") + "  rules:\n    A01: {points: 9, dimension: 效率}\n"
    rb = rulebook("""
    - {id: A01, name: a, kind: phrase, points: 1, dimension: 礼貌, message: m, phrases: [喂]}
    - {id: B01, name: b, kind: phrase, points: 3, deduct: each, max_points: 7, dimension: 效率, message: m, phrases: [嘿]}
    """, scorecard=card)
    assert rule_terms(rb, "A01") == RuleTerms(9, "效率", "once", None)
    assert rule_terms(rb, "B01") == RuleTerms(3, "效率", "each", 7)
    with pytest.raises(KeyError):
        rule_terms(rb, "Z99")
