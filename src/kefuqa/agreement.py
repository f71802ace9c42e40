"""Agreement between raters (calibration of inspectors): percent agreement, Cohen's kappa for two raters,
Fleiss' kappa for several, and the report of a calibration session. Pure functions, no I/O.

- percent agreement of two raters: the share of items they rated alike; of several: Fleiss' P̄, the mean over
  items of the share of agreeing rater pairs.
- Cohen's κ = (p_o − p_e) / (1 − p_e), p_e = Σ_k p_A(k)·p_B(k) from each rater's own category shares.
- Fleiss' κ = (P̄ − P̄_e) / (1 − P̄_e), P̄_e = Σ_j p_j² from the category shares over all ratings; every item
  needs the same number of raters.
Kappa is undefined (None) when chance agreement is already 1 (every rating in one category).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations


def percent_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    if len(a) != len(b):
        raise ValueError("two raters must rate the same items")
    if not a:
        return None
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters over the same items (None when undefined)."""
    po = percent_agreement(a, b)
    if po is None:
        return None
    n = len(a)
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def fleiss_counts(ratings: Sequence[Sequence[Hashable]]) -> list[Counter[Hashable]]:
    """Per item, how many raters chose each category (from items × raters)."""
    return [Counter(r) for r in ratings]


def fleiss(counts: Sequence[Mapping[Hashable, int]]) -> tuple[float | None, float | None]:
    """(P̄, κ) of Fleiss for items rated by the same number of raters (counts per category per item)."""
    if not counts:
        return None, None
    n = sum(counts[0].values())
    if n < 2:
        raise ValueError("Fleiss' kappa needs at least two raters per item")
    if any(sum(c.values()) != n for c in counts):
        raise ValueError("every item needs the same number of raters")
    items = len(counts)
    p_bar = sum((sum(v * v for v in c.values()) - n) / (n * (n - 1)) for c in counts) / items
    totals: Counter[Hashable] = Counter()
    for c in counts:
        totals.update(c)
    pe = sum((v / (items * n)) ** 2 for v in totals.values())
    return p_bar, (None if pe >= 1.0 else (p_bar - pe) / (1 - pe))


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa from items × raters ratings."""
    return fleiss(fleiss_counts(ratings))[1]


# ---- a calibration session ----------------------------------------------------------------------------------


@dataclass
class RuleAgreement:
    rule: str
    calls: int  # calls every inspector rated
    percent: float | None  # mean share of agreeing inspector pairs
    fleiss: float | None
    machine: float | None  # machine's percent agreement with the consensus on this rule


@dataclass
class RaterAgreement:
    rater: int
    with_consensus: float | None  # percent agreement with the majority of the others and themselves
    kappa_consensus: float | None


@dataclass
class CallSpread:
    call: int
    spread: float  # mean over items of the disagreement (1 − P_i)
    votes: dict[str, int]  # rule → inspectors who flagged it
    consensus: list[str]
    machine: list[str]


@dataclass
class CalibrationReport:
    raters: list[int]
    calls: list[int]  # calls every rater scored
    items: int  # (call, rule) pairs compared
    percent: float | None
    fleiss: float | None
    pairs: dict[tuple[int, int], float | None] = field(default_factory=dict)  # Cohen's kappa per rater pair
    pair_percent: dict[tuple[int, int], float | None] = field(default_factory=dict)
    rules: list[RuleAgreement] = field(default_factory=list)
    per_rater: list[RaterAgreement] = field(default_factory=list)
    machine_percent: float | None = None
    machine_kappa: float | None = None
    spread: list[CallSpread] = field(default_factory=list)
    consensus: dict[int, list[str]] = field(default_factory=dict)


def consensus(sets: Sequence[set[str]]) -> set[str]:
    """The rules more than half of the raters flagged."""
    votes = Counter(r for s in sets for r in s)
    return {r for r, v in votes.items() if v * 2 > len(sets)}


def calibration_report(verdicts: Mapping[tuple[int, int], set[str]], machine: Mapping[int, set[str]]) -> CalibrationReport:
    """Agreement of a calibration session. `verdicts`: (call, rater) → the rules the rater found violated;
    `machine`: call → the rules the machine reported. Only calls every rater scored are compared; the items
    are each call's rules that anyone (a rater or the machine) flagged on any compared call."""
    raters = sorted({r for _, r in verdicts})
    calls = sorted({c for c, _ in verdicts if all((c, r) in verdicts for r in raters)})
    rules = sorted({x for c in calls for r in raters for x in verdicts[(c, r)]} | {x for c in calls for x in
                                                                                  machine.get(c, set())})
    report = CalibrationReport(raters, calls, len(calls) * len(rules), None, None)
    if not calls or not rules or len(raters) < 2:
        return report
    cons = {c: consensus([verdicts[(c, r)] for r in raters]) for c in calls}
    report.consensus = {c: sorted(s) for c, s in cons.items()}
    items = [(c, rule) for c in calls for rule in rules]
    table = [[rule in verdicts[(c, r)] for r in raters] for c, rule in items]
    report.percent, report.fleiss = fleiss(fleiss_counts(table))
    for i, j in combinations(range(len(raters)), 2):
        a, b = [row[i] for row in table], [row[j] for row in table]
        report.pairs[(raters[i], raters[j])] = cohen_kappa(a, b)
        report.pair_percent[(raters[i], raters[j])] = percent_agreement(a, b)
    cons_col = [rule in cons[c] for c, rule in items]
    for i, rater in enumerate(raters):
        col = [row[i] for row in table]
        report.per_rater.append(RaterAgreement(rater, percent_agreement(col, cons_col), cohen_kappa(col, cons_col)))
    mach_col = [rule in machine.get(c, set()) for c, rule in items]
    report.machine_percent = percent_agreement(mach_col, cons_col)
    report.machine_kappa = cohen_kappa(mach_col, cons_col)
    for rule in rules:
        rows = [[rule in verdicts[(c, r)] for r in raters] for c in calls]
        pbar, kappa = fleiss(fleiss_counts(rows))
        report.rules.append(RuleAgreement(rule, len(calls), pbar, kappa, percent_agreement(
            [rule in machine.get(c, set()) for c in calls], [rule in cons[c] for c in calls])))
    n = len(raters)
    for c in calls:
        votes = {rule: sum(1 for r in raters if rule in verdicts[(c, r)]) for rule in rules}
        dis = [1 - (v * v + (n - v) * (n - v) - n) / (n * (n - 1)) for v in votes.values()]
        report.spread.append(CallSpread(c, sum(dis) / len(dis), {k: v for k, v in votes.items() if v},
                                        sorted(cons[c]), sorted(machine.get(c, set()))))
    report.spread.sort(key=lambda s: (-s.spread, s.call))
    return report
