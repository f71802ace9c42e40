"""Rulebook validation: every error names file, line and key; inheritance works without copying."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import conv

import kefuqa
from kefuqa.errors import RuleError

HEAD = "name: t\nscorecard:\n  name: s\n  dimensions: [{name: 礼貌, max: 100}]\nrules:\n"


def write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "rulebook.yaml"
    p.write_text(HEAD + body, encoding="utf-8")
    return p


def lint_one(path: Path) -> RuleError:
    (err,) = kefuqa.lint(path)
    return err


def test_unknown_key_names_file_line_and_key(tmp_path):
    p = write(tmp_path, "  - {id: X01, name: a, kind: phrase, message: m, phrases: [喂]}\n"
                        "  - id: X02\n    name: b\n    kind: phrase\n    message: m\n    phrazes: [嘿]\n")
    err = lint_one(p)
    assert err.source == str(p) and err.line == 11 and err.key == "phrazes" and "未知的键 'phrazes'" in err.reason


def test_unknown_kind(tmp_path):
    err = lint_one(write(tmp_path, "  - {id: X01, name: a, kind: magic, message: m}\n"))
    assert err.line == 6 and "magic" in str(err)


def test_bad_regex(tmp_path):
    err = lint_one(write(tmp_path, "  - id: X01\n    name: a\n    kind: phrase\n    message: m\n"
                                   "    phrases:\n      - {regex: '难道(.*吗'}\n"))
    assert err.line == 11 and "正则表达式" in err.reason and "写法有误" in err.reason


def test_duplicate_ids(tmp_path):
    err = lint_one(write(tmp_path, "  - {id: X01, name: a, kind: phrase, message: m, phrases: [喂]}\n"
                                   "  - {id: X01, name: b, kind: phrase, message: m, phrases: [嘿]}\n"))
    assert err.line == 7 and "规则编号 X01 重复" in err.reason


def test_bad_threshold(tmp_path):
    err = lint_one(write(tmp_path, "  - {id: X01, name: a, kind: silence, message: m, min_seconds: -3}\n"))
    assert err.line == 6 and "min_seconds" in err.reason


def test_unknown_dimension_and_reference(tmp_path):
    err = lint_one(write(tmp_path, "  - {id: X01, name: a, kind: phrase, points: 2, dimension: 耐心, message: m, phrases: [喂]}\n"))
    assert "耐心" in err.reason and err.line == 6
    err = lint_one(write(tmp_path, "  - id: X01\n    name: a\n    kind: conditional\n    message: m\n"
                                   "    if: {rule: EVT009}\n    then: {phrases: [抱歉]}\n"))
    assert "EVT009" in err.reason


def test_duplicate_yaml_key(tmp_path):
    err = lint_one(write(tmp_path, "  - id: X01\n    name: a\n    name: b\n    kind: phrase\n    message: m\n    phrases: [喂]\n"))
    assert err.line == 8 and "重复的键" in err.reason


def test_invalid_yaml(tmp_path):
    # an unclosed flow mapping: the parser notices at the end of the file (line 7)
    err = lint_one(write(tmp_path, "  - {id: X01, name: a\n"))
    assert err.line == 7 and err.reason.startswith("YAML 格式错误：花括号 { } 没有配对")
    # a tab in the indentation is reported on its own line
    err = lint_one(write(tmp_path, "  - id: X01\n\tname: a\n    kind: phrase\n"))
    assert err.line == 7 and err.reason.startswith("YAML 格式错误：行首有制表符")


def test_bundled_rulebooks_lint_clean():
    for name in ("standard", "utility-95598"):
        assert kefuqa.lint(name) == []


def test_profile_inherits_disables_overrides_and_adds(tmp_path):
    std = kefuqa.load_rulebook("standard")
    grid = kefuqa.load_rulebook("utility-95598")
    assert set(std.ids) < set(grid.ids)
    assert not grid.rule("OPN002").enabled and std.rule("OPN002").enabled
    assert grid.rule("LST003").min_seconds == 60 and std.rule("LST003").min_seconds == 45
    assert grid.scorecard.rules["RSP003"].points == 8
    assert grid.scorecard.fatal == std.scorecard.fatal
    # checked with the bundled rulebooks by name: compiled once per process (the rule cases use them too)
    r = kefuqa.check(conv("C: 停电了", "A: 停电又不是我们造成的"), "utility-95598")
    assert any(f.rule == "RSP001" for f in r.findings)
    r = kefuqa.check(conv("C: 停电了", "A: 停电又不是我们造成的"), "standard")
    assert not any(f.rule == "RSP001" for f in r.findings)


def test_user_profile_overrides_bundled(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\nextends: standard\ndisable: [VOC]\noverride:\n  SIL001: {min_seconds: 20}\n"
                 "add_phrases:\n  LNG001: [你自己想办法]\n"
                 "rules:\n  - {id: X01, name: 推销, kind: phrase, points: 2, dimension: 礼貌程度, message: m, phrases: [办个信用卡]}\n",
                 encoding="utf-8")
    rb = kefuqa.load_rulebook(p)
    assert all(not rb.rule(i).enabled for i in rb.ids if i.startswith("VOC"))
    assert rb.rule("SIL001").min_seconds == 20
    r = kefuqa.check(conv("A: 你自己想办法，要不办个信用卡"), rb)
    assert {"LNG001", "X01"} <= {f.rule for f in r.findings}


def test_override_error_points_at_the_profile(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\nextends: standard\noverride:\n  SIL001: {min_seconds: 'long'}\n", encoding="utf-8")
    err = lint_one(p)
    assert err.source == str(p) and "min_seconds" in str(err)
    p.write_text("name: mine\nextends: standard\ndisable: [ZZZ001]\n", encoding="utf-8")
    assert "ZZZ001" in lint_one(p).reason


def test_version_changes_with_content(tmp_path):
    a = write(tmp_path, "  - {id: X01, name: a, kind: phrase, message: m, phrases: [喂]}\n")
    v1 = kefuqa.load_rulebook(a).version
    a.write_text(a.read_text(encoding="utf-8").replace("喂", "嘿"), encoding="utf-8")
    assert kefuqa.load_rulebook(a).version != v1


STANDARD = kefuqa.load_rulebook("standard")


@pytest.mark.parametrize("rule_id", STANDARD.ids)
def test_every_rule_has_an_explanation_with_example(rule_id):
    from kefuqa.docs import explain

    rule = STANDARD.rule(rule_id)
    info = explain(STANDARD, rule)
    # what `kefuqa rules explain` prints: the rule, its example and the better wording, both written out
    assert info["text"].startswith(f"{rule_id} {rule.name}")
    assert info["example"] == rule.doc.example and f"违规示例：{rule.doc.example}" in info["text"]
    assert info["instead"] and f"规范说法：{info['instead']}" in info["text"]


def test_schema_errors_read_in_chinese(tmp_path):
    """Issue 9, item 15: what pydantic finds wrong in a rule is said in Chinese, with file, line and key."""
    p = tmp_path / "mine.yaml"
    p.write_text("name: mine\nversion: '1'\nextends: standard\nrules:\n  - id: ZZZ001\n    name: 测试\n"
                 "    kind: phrase\n    severity: minor\n    points: -2\n    role: agent\n    phrases: [喂]\n",
                 encoding="utf-8")
    with pytest.raises(RuleError) as info:
        kefuqa.load_rulebook(p)
    err = info.value
    assert err.line == 9 and err.reason.endswith("应不小于 0.0") and "Input should" not in err.reason


def test_yaml_errors_are_explained_in_chinese(tmp_path):
    # a colon inside a value, and an unclosed quote: a Chinese reason first, the parser's words in brackets
    err = lint_one(write(tmp_path, "  - id: X01\n    name: 说明: 不对\n"))
    assert err.reason.startswith("YAML 格式错误：此处不能有冒号") and "mapping values" in err.reason
    err = lint_one(write(tmp_path, '  - id: X01\n    name: "未闭合\n'))
    assert err.reason.startswith("YAML 格式错误：引号没有闭合")
