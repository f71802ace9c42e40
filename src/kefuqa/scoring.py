"""Scorecard arithmetic: deductions per dimension, fatal (红线) rules, grade bands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import Report

if TYPE_CHECKING:
    from .rules.rulebook import Rulebook


def score_report(report: Report, rulebook: Rulebook) -> None:
    """Fill score, grade, fatal, dimensions and each finding's points, in place.

    Each finding carries the points it actually cost: a rule that deducts ``once`` charges its first
    finding only; ``each`` charges every finding until ``max_points``. A dimension never drops below 0.
    """
    card = rulebook.scorecard
    dims = {d.name: d.max for d in card.dimensions}
    lost = dict.fromkeys(dims, 0.0)
    charged: dict[str, float] = {}
    rules = rulebook.by_id
    fatal_rules: list[str] = []
    for f in report.findings:
        rule = rules[f.rule]
        override = card.rules.get(f.rule)
        points = override.points if override and override.points is not None else rule.points
        dim = (override.dimension if override and override.dimension else None) or rule.dimension
        deduct = (override.deduct if override and override.deduct else None) or rule.deduct
        cap = override.max_points if override and override.max_points is not None else rule.max_points
        f.dimension = dim
        if f.rule in card.fatal and f.rule not in fatal_rules:
            fatal_rules.append(f.rule)
        already = charged.get(f.rule, 0.0)
        if deduct == "once":
            cost = points if already == 0 else 0.0
        else:
            cost = points if cap is None else max(0.0, min(points, cap - already))
        if cost and dim in lost:
            charged[f.rule] = already + cost
            lost[dim] += cost
            f.points = -float(cost)
        else:
            f.points = 0.0
    report.dimension_max = {name: float(mx) for name, mx in dims.items()}
    report.dimensions = {name: round(max(0.0, mx - lost[name]), 2) for name, mx in dims.items()}
    report.fatal_rules = fatal_rules
    report.fatal = bool(fatal_rules)
    report.score = 0.0 if report.fatal else round(sum(report.dimensions.values()), 2)
    report.grade = grade_for(report.score, rulebook) if not report.fatal else lowest_grade(rulebook)


def grade_for(score: float, rulebook: Rulebook) -> str:
    for g in sorted(rulebook.scorecard.grades, key=lambda g: -g.min):
        if score >= g.min:
            return g.name
    return lowest_grade(rulebook)


def lowest_grade(rulebook: Rulebook) -> str:
    return min(rulebook.scorecard.grades, key=lambda g: g.min).name
