"""Rule regexes cannot freeze the checker (issue 9, item 4): a pattern that can backtrack badly runs on
RE2 (linear time) or, when RE2 cannot express it, is a lint error naming file and line. No timing is
asserted: the outcome (which engine, which error) is."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import conv

import kefuqa
from kefuqa.engine import Checker
from kefuqa.rules.regex import compile_rule_regex, engine_of, risk

HEAD = "name: t\nscorecard:\n  name: s\n  dimensions: [{name: 礼貌, max: 100}]\nrules:\n"


def rulebook(tmp_path: Path, pattern: str) -> Path:
    p = tmp_path / "rulebook.yaml"
    p.write_text(HEAD + "  - id: X01\n    name: a\n    kind: phrase\n    points: 5\n    dimension: 礼貌\n"
                 f"    message: m\n    phrases:\n      - {{regex: '{pattern}'}}\n", encoding="utf-8")
    return p


def test_catastrophic_pattern_runs_on_the_linear_engine(tmp_path):
    path = rulebook(tmp_path, "(a+)+$")
    assert kefuqa.lint(path) == []
    checker = Checker(kefuqa.load_rulebook(path))
    (item,) = [i for s in checker.index.sets for i in s.items if i.regex is not None]
    assert engine_of(item.regex) == "re2"
    # the input that takes Python's re exponential time: no match, and the check returns
    report = checker.check(conv("A: " + "a" * 40 + "!"))
    assert [f.rule for f in report.findings] == []
    hit = checker.check(conv("A: 您好aaaa"))
    assert [(f.rule, f.evidence) for f in hit.findings] == [("X01", "aaaa")]


def test_catastrophic_pattern_re2_cannot_run_is_a_lint_error_with_file_and_line(tmp_path):
    path = rulebook(tmp_path, "(a+)+(?=b)")
    (err,) = kefuqa.lint(path)
    assert err.source == str(path) and err.line == 13  # the phrases: key
    assert "重复里套着重复" in err.reason and "unless_near" in err.reason and "unless" in err.reason


@pytest.mark.parametrize("pattern, why", [
    ("(a+)+$", "重复里套着重复"), ("(x*y?)*", "重复里套着重复"), ("(a|ab)*c", "多个选项"),
    (".*.*.*x", "三个以上"), ("喂+", None), ("难道[^。！？!?]{1,30}(吗|嘛)", None),
    ("(?<![0-9])1[3-9][0-9]{9}(?![0-9])", None),
])
def test_risk_names_the_shape(pattern, why):
    got = risk(pattern)
    assert (got is None) if why is None else (got is not None and why in got)


def test_safe_patterns_keep_python_semantics():
    # lookarounds and Unicode classes stay on re: the bundled rulebooks rely on them
    assert engine_of(compile_rule_regex("(?<!孩子)[他她]妈的")) == "re"
    assert compile_rule_regex(r"\s好").search("您\u3000好") is not None


def test_every_bundled_rulebook_still_loads_and_keeps_its_lookarounds():
    for name in ("standard", "utility-95598"):
        checker = Checker(kefuqa.load_rulebook(name))
        regexes = [i.regex for s in checker.index.sets for i in s.items if i.regex is not None]
        assert regexes and all(engine_of(r) == "re" for r in regexes)
