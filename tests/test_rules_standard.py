"""Every rule of the bundled standard rulebook against its positive, hard-negative and not-applicable cases.

The cases live in tests/rules/cases_*.yaml, keyed by rule ID; a test also checks that every rule of the
rulebook has at least one positive and one negative case.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import kefuqa
from kefuqa.model import Conversation

CASES_DIR = Path(__file__).parent / "rules"
_LINE = re.compile(r"^(?:\[(?P<s>[\d.]+)-(?P<e>[\d.]+)\]\s*)?(?P<role>[ACS]):\s*(?P<text>.*)$")
_ROLES = {"A": "agent", "C": "customer", "S": "system"}


def load_cases() -> dict[str, list[dict[str, Any]]]:
    cases: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(CASES_DIR.glob("cases_*.yaml")):
        for rule_id, items in yaml.safe_load(path.read_text(encoding="utf-8")).items():
            cases.setdefault(rule_id, []).extend(items)
    return cases


def conversation(rule_id: str, i: int, case: dict[str, Any]) -> Conversation:
    data = {k: v for k, v in case.items() if k not in ("name", "fire", "na", "lines")}
    if "lines" in case:
        utts = []
        for line in case["lines"]:
            m = _LINE.match(line)
            assert m, f"bad case line {line!r}"
            u: dict[str, Any] = {"role": _ROLES[m["role"]], "text": m["text"]}
            if m["s"] is not None:
                u["start"], u["end"] = float(m["s"]), float(m["e"])
            utts.append(u)
        data["utterances"] = utts
    data.setdefault("id", f"{rule_id}-{i}")
    return Conversation.model_validate(data)


CASES = load_cases()
CHECKER = kefuqa.checker_for("standard")
PARAMS = [pytest.param(rid, i, case, id=f"{rid}-{i}-{case['name']}") for rid, items in CASES.items()
          for i, case in enumerate(items)]


@pytest.mark.parametrize(("rule_id", "i", "case"), PARAMS)
def test_rule_case(rule_id: str, i: int, case: dict[str, Any]) -> None:
    report = CHECKER.check(conversation(rule_id, i, case))
    fired = [f for f in report.findings if f.rule == rule_id] + [e for e in report.events if e.rule == rule_id]
    if case.get("na"):
        assert rule_id in report.not_applicable, f"{rule_id} should be not applicable; fired={fired}"
        assert report.not_applicable[rule_id], "a not-applicable rule needs a reason"
        return
    assert rule_id not in report.not_applicable, f"{rule_id} not applicable: {report.not_applicable.get(rule_id)}"
    if case["fire"]:
        assert fired, f"{rule_id} should fire on: {case['name']}"
    else:
        assert not fired, f"{rule_id} should not fire on: {case['name']}; got {[getattr(f, 'evidence', None) for f in fired]}"


def test_every_rule_has_positive_and_negative_cases() -> None:
    rb = kefuqa.load_rulebook("standard")
    for rule in rb.rules:
        items = CASES.get(rule.id, [])
        assert any(c.get("fire") is True for c in items), f"{rule.id} has no positive case"
        assert any(c.get("fire") is False for c in items), f"{rule.id} has no negative case"


def test_taxonomy_is_complete() -> None:
    """Every ID of DESIGN §2 is in the bundled rulebook."""
    expected = (
        "OPN001 OPN002 OPN003 OPN004 OPN005 LNG001 LNG002 LNG003 LNG004 LNG005 LNG006 LNG007 LNG008 "
        "LST001 LST002 LST003 LST004 HLD001 HLD002 HLD003 TRF001 RSP001 RSP002 RSP003 CMP001 CMP002 CMP003 "
        "INF001 INF002 CLS001 CLS002 CLS003 SIL001 SIL002 VOC001 VOC002 VOC003 VOC004 VOC005 SLA001 "
        "EVT001 EVT002 EVT003 EVT004"
    ).split()
    ids = kefuqa.load_rulebook("standard").ids
    assert sorted(ids) == sorted(expected)


def test_every_rule_is_documented() -> None:
    rb = kefuqa.load_rulebook("standard")
    for rule in rb.rules:
        assert rule.doc.checks and rule.doc.why and rule.doc.example and (rule.doc.instead or rule.suggest), rule.id
