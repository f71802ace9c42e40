"""A stored report reads back as the report the core wrote (the workbench re-scores from it)."""

from __future__ import annotations

from pathlib import Path

import kefuqa
from kefuqa.readers import read_path
from kefuqa.service.records import report_from_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_report_round_trips_with_coverage_and_judgements() -> None:
    checker = kefuqa.Checker(kefuqa.load_rulebook("standard"))
    for name in ("telecom-billing-hold-bad.json", "ecommerce-complaint-handled-badly.json"):
        report = checker.check(next(iter(read_path(EXAMPLES / name))))
        stored = report.to_dict()
        back = report_from_dict(stored)
        assert back.to_dict() == stored
        assert back.coverage is not None and back.coverage.rules == report.coverage.rules  # type: ignore[union-attr]
        assert any(f.confidence is not None for f in back.findings)  # a judgement finding keeps its confidence
