from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kefuqa
from kefuqa.model import Conversation

SCORECARD = """
scorecard:
  name: test
  dimensions:
    - {name: 礼貌, max: 60}
    - {name: 效率, max: 40}
  fatal: []
"""


@pytest.fixture
def rulebook(tmp_path: Path) -> Callable[..., kefuqa.Rulebook]:
    """Build a one-file rulebook from YAML rule text (inline rules + a two-dimension scorecard)."""

    def make(rules_yaml: str, extra: str = "", scorecard: str = SCORECARD) -> kefuqa.Rulebook:
        body = "name: t\nversion: '1'\n" + textwrap.dedent(scorecard) + textwrap.dedent(extra) + "rules:\n" + \
            textwrap.indent(textwrap.dedent(rules_yaml), "  ")
        p = tmp_path / "rulebook.yaml"
        p.write_text(body, encoding="utf-8")
        return kefuqa.load_rulebook(p)

    return make


def conv(*lines: str, **fields: Any) -> Conversation:
    """A conversation from compact lines: "A: text", "C: text", "[1.0-2.5] A: text"."""
    import re

    utts = []
    for line in lines:
        m = re.match(r"^(?:\[([\d.]+)-([\d.]+)\]\s*)?([ACS]):\s*(.*)$", line)
        assert m, line
        u: dict[str, Any] = {"role": {"A": "agent", "C": "customer", "S": "system"}[m[3]], "text": m[4]}
        if m[1] is not None:
            u["start"], u["end"] = float(m[1]), float(m[2])
        utts.append(u)
    return Conversation.model_validate({"id": fields.pop("id", "t"), "utterances": utts, **fields})


def fired(report: kefuqa.Report, rule: str) -> list[Any]:
    return [f for f in report.findings if f.rule == rule] + [e for e in report.events if e.rule == rule]
