"""Scorecard arithmetic: deductions, caps, dimension floors, fatal rules, grades."""

from __future__ import annotations

from tests.conftest import conv

import kefuqa

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
