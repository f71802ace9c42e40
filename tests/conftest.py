from __future__ import annotations

import sys
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


SERVICE_TESTS = Path(__file__).parent / "service"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/service is `slow`: each module builds a service world (database schema,
    migrations, seeded users and calls, an app), runs once on SQLite and once on PostgreSQL, and
    test_browser.py drives Chromium. `pytest -m "not slow"` (make test-fast) leaves them out; the other slow
    tests carry the marker where they are written."""
    slow = pytest.mark.slow
    for item in items:
        if SERVICE_TESTS in item.path.parents:
            item.add_marker(slow)


EXPECT_TIMEOUT_MS = 30_000
_expect_waits: list[bool] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Playwright's expect() gives up after 5 s by default, and Chromium, the server and the test share a loaded
    2-core CI machine; once a browser test (its module or a fixture) has loaded Playwright, its assertions wait
    up to 30 s for what they expect (they pass as soon as it is there: a slow machine waits longer, a broken
    page still fails)."""
    expect = getattr(sys.modules.get("playwright.sync_api"), "expect", None)
    if expect is not None and not _expect_waits:
        expect.set_options(timeout=EXPECT_TIMEOUT_MS)
        _expect_waits.append(True)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """When the slow tests are deselected (`-m "not slow"`), tests/service is not even collected: importing
    the service stack (FastAPI, SQLAlchemy, the app) would cost more than many of the fast tests."""
    if collection_path != SERVICE_TESTS or not config.option.markexpr:
        return None
    try:
        from _pytest.mark.expression import Expression

        slow_wanted = Expression.compile(config.option.markexpr).evaluate(lambda name, **kw: name == "slow")
    except Exception:  # pytest's expression module is internal: if it changes, collect as usual
        return None
    return None if slow_wanted else True


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
