"""Scorecard arithmetic: deductions per dimension, fatal (红线) rules, grade bands.

The one place where points are counted. `score_report` scores a fresh report; `rescore` scores a report
again once some of its findings were voided (an inspector rejected them, an appeal was accepted), with the
same arithmetic; `rule_terms` is what one rule's finding costs under a rulebook's scorecard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from .model import Report

if TYPE_CHECKING:
    from .rules.rulebook import Rulebook
    from .rules.schema import RuleScore, Scorecard


class RuleTerms(NamedTuple):
    """What a rule's findings cost: the scorecard's entry for the rule wins over the rule's own keys."""

    points: float
    dimension: str | None
    deduct: Literal["once", "each"]  # once per call, or each finding up to `max_points`
    max_points: float | None


def rule_terms(rulebook: Rulebook, rule_id: str) -> RuleTerms:
    """The scoring terms of a rule of `rulebook` (KeyError for an unknown rule id)."""
    return _terms(rulebook.by_id[rule_id], rulebook.scorecard.rules.get(rule_id))


def terms_of(rule: Any, scorecard: Scorecard) -> RuleTerms:
    """The scoring terms of `rule` under `scorecard` (for a rule object at hand, e.g. while loading)."""
    return _terms(rule, scorecard.rules.get(rule.id))


def _terms(rule: Any, override: RuleScore | None) -> RuleTerms:
    if override is None:
        return RuleTerms(rule.points, rule.dimension, rule.deduct, rule.max_points)
    return RuleTerms(
        points=override.points if override.points is not None else rule.points,
        dimension=override.dimension or rule.dimension,
        deduct=override.deduct or rule.deduct,
        max_points=override.max_points if override.max_points is not None else rule.max_points,
    )


def score_report(report: Report, rulebook: Rulebook) -> None:
    """Fill score, grade, fatal, dimensions and each finding's points, in place.

    Each finding carries the points it actually cost: a rule that deducts ``once`` charges its first
    finding only; ``each`` charges every finding until ``max_points``. A dimension never drops below 0.
    Dimensions and the score are rounded to two decimals.
    """
    card = rulebook.scorecard
    dims = {d.name: d.max for d in card.dimensions}
    lost = dict.fromkeys(dims, 0.0)
    charged: dict[str, float] = {}
    rules, overrides = rulebook.by_id, card.rules
    terms: dict[str, RuleTerms] = {}
    fatal_rules: list[str] = []
    for f in report.findings:
        t = terms.get(f.rule)
        if t is None:
            t = terms[f.rule] = _terms(rules[f.rule], overrides.get(f.rule))
        dim = t.dimension
        f.dimension = dim
        if f.rule in card.fatal and f.rule not in fatal_rules:
            fatal_rules.append(f.rule)
        already = charged.get(f.rule, 0.0)
        if t.deduct == "once":
            cost = t.points if already == 0 else 0.0
        else:
            cost = t.points if t.max_points is None else max(0.0, min(t.points, t.max_points - already))
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


def rescore(report: Report, rulebook: Rulebook, voided: Collection[int] = ()) -> Report:
    """The report scored again without the findings at the indexes in `voided` (withdrawn by an inspector
    or an accepted appeal): exactly what `score_report` gives for a report that never had them.

    A new report is returned and `report` is left as it was. Its findings are the remaining ones, in their
    order, each with the points it costs now: when the finding a ``once`` rule charged is voided, the
    rule's next finding is charged instead; an ``each`` rule's cap is filled by the remaining findings; a
    call stops being fatal when every finding of its fatal (红线) rules was voided. `rulebook` must be the
    one that produced the report (every finding's rule must be in it).
    """
    n = len(report.findings)
    drop = set(voided)
    outside = sorted(i for i in drop if not 0 <= i < n)
    if outside:
        raise ValueError(f"voided finding indexes {outside} are not in a report of {n} findings")
    kept = [dataclasses.replace(f) for i, f in enumerate(report.findings) if i not in drop]
    out = dataclasses.replace(report, findings=kept, dimensions={}, dimension_max={}, fatal_rules=[],
                              events=list(report.events), not_applicable=dict(report.not_applicable),
                              notes=list(report.notes))
    score_report(out, rulebook)
    return out


def grade_for(score: float, rulebook: Rulebook) -> str:
    for g in sorted(rulebook.scorecard.grades, key=lambda g: -g.min):
        if score >= g.min:
            return g.name
    return lowest_grade(rulebook)


def lowest_grade(rulebook: Rulebook) -> str:
    return min(rulebook.scorecard.grades, key=lambda g: g.min).name
