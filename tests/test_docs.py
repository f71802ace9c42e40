"""docs/rules.md is generated from the rulebook; this keeps it current."""

from __future__ import annotations

from pathlib import Path

import kefuqa
from kefuqa.docs import rulebook_markdown

DOC = Path(__file__).resolve().parent.parent / "docs" / "rules.md"


def test_rules_md_is_current():
    expected = rulebook_markdown(kefuqa.load_rulebook("standard"))
    assert DOC.read_text(encoding="utf-8") == expected, "regenerate with: kefuqa rules docs -o docs/rules.md"


def test_rules_md_lists_every_rule_with_example_and_better_wording():
    text = DOC.read_text(encoding="utf-8")
    rb = kefuqa.load_rulebook("standard")
    for rule in rb.rules:
        assert f"## {rule.id}" in text
        assert rule.doc.example and rule.doc.example.split("：")[-1][:6] in text
