"""RSP002 judged on the rest of the turn (`rest:` of kind intent): every RSP002 case of the standard rulebook
holds under tests/fixtures/rulebooks/rsp002-rest.yaml, the plain-clause reasons and other ways the standard
rulebook still flags (its xfail cases) included."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tests.test_rules_standard import CASES, Case, run_case

import kefuqa

PROFILE = Path(__file__).parent / "fixtures" / "rulebooks" / "rsp002-rest.yaml"
RSP002 = [c for c in CASES if c.rulebook == "standard" and c.rule == "RSP002"]


def test_the_profile_changes_only_rsp002() -> None:
    standard = {r.id: r.model_dump() for r in kefuqa.checker_for("standard").rulebook.rules}
    profile = {r.id: r.model_dump() for r in kefuqa.checker_for(PROFILE).rulebook.rules}
    assert profile.keys() == standard.keys()
    assert [rid for rid in standard if profile[rid] != standard[rid]] == ["RSP002"]
    assert any(c.data.get("xfail") for c in RSP002)  # the cases this profile is for


@pytest.mark.parametrize("case", RSP002, ids=[c.test_id for c in RSP002])
def test_rsp002_case_under_the_rest_profile(case: Case) -> None:
    run_case(replace(case, rulebook=str(PROFILE)))
