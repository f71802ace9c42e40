"""Judgement rules (`kind: intent`) with a small hand-written model, the model file's errors, labels in
groups and triggers, and the corpus builder."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tests.conftest import conv, fired

import kefuqa
from kefuqa.judge.corpus import CorpusError, build_corpus
from kefuqa.judge.ngram import FORMAT, ModelError, NgramModel

# weights on character n-grams ("c" + gram) of the key view: 压扁 and 怎么送 say complaint; 厂家 and 管不了
# blame_shift; 理解 and 着急 empathy. Everything else weighs nothing, so the bias decides: no.
TINY = {
    "format": FORMAT, "version": "test+1", "labels": ["blame_shift", "complaint", "empathy"],
    "bias": [-3.0, -3.0, -3.0], "thresholds": [0.5, 0.5, 0.5],
    "weights": {"c压扁": [[1, 4.0]], "c怎么送": [[1, 2.5]], "c厂家": [[0, 2.0]], "c管不了": [[0, 2.5]],
                "c理解": [[2, 3.5]], "c着急": [[2, 1.0]]},
}


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.json.gz"
    p.write_bytes(gzip.compress(json.dumps(TINY).encode()))
    return p


def _settings(path: Path) -> str:
    return f"settings:\n  judges:\n    fast: {{type: ngram, path: '{path}'}}\n"


def test_intent_rule_fires_on_what_the_model_judges_and_quotes_the_weighty_clause(rulebook, tiny_model):
    rb = rulebook("""
    - {id: X01, name: 客户投诉, kind: intent, label: complaint, role: customer, severity: event,
       message: "客户不满（置信度 {confidence}）：「{evidence}」"}
    """, extra=_settings(tiny_model))
    r = kefuqa.check(conv("A: 您好", "C: 你們這快遞怎麼送的，箱子都壓扁了", "A: 非常抱歉"), rb)
    (e,) = fired(r, "X01")
    assert e.utterance == 1 and e.judge == "ngram:test+1" and 0.5 < e.confidence < 1
    # the clause (original Traditional characters) around what the weights concentrate on, not the whole turn
    assert e.evidence == "箱子都壓扁了" and e.span == (10, 16)
    assert r.rulebook["models"] == "ngram:test+1"  # the report records which model produced it
    assert not fired(kefuqa.check(conv("C: 我想查一下快递到哪了"), rb), "X01")


def test_intent_rule_threshold_unless_and_shortcut_phrases(rulebook, tiny_model):
    rb = rulebook("""
    - {id: X01, name: 推诿, kind: intent, label: blame_shift, points: 3, dimension: 礼貌, message: m,
       threshold: 0.9, phrases: [不归我们管], unless: [我帮您联系]}
    """, extra=_settings(tiny_model))
    # 厂家 + 管不了: 1/(1+e^-1.5) = 0.82 — under the rule's own threshold of 0.9
    assert not fired(kefuqa.check(conv("A: 这个您得问厂家，我们管不了"), rb), "X01")
    # a shortcut phrase fires without the model
    (f,) = fired(kefuqa.check(conv("A: 这事不归我们管"), rb), "X01")
    assert f.evidence == "不归我们管" and f.confidence is None and f.match == "exact"
    rb2 = rulebook("""
    - {id: X01, name: 推诿, kind: intent, label: blame_shift, points: 3, dimension: 礼貌, message: m,
       unless: [我帮您联系]}
    """, extra=_settings(tiny_model))
    assert fired(kefuqa.check(conv("A: 这个您得问厂家，我们管不了"), rb2), "X01")
    # an exception phrase in the utterance: the model's judgement does not count
    assert not fired(kefuqa.check(conv("A: 这个得厂家处理，我们管不了，我帮您联系厂家"), rb2), "X01")


def test_intent_rule_role_and_label_are_checked_with_file_and_line(rulebook, tiny_model):
    with pytest.raises(kefuqa.RuleError, match="请设置 role: customer"):
        rulebook("- {id: X01, name: a, kind: intent, label: complaint, severity: event, message: m}")
    with pytest.raises(kefuqa.RuleError, match="未知的判断标签 'grumpy'"):
        rulebook("- {id: X01, name: a, kind: intent, label: grumpy, severity: event, message: m}")
    with pytest.raises(kefuqa.RuleError, match="未配置判断模型 'llm'") as err:
        rulebook("- {id: X01, name: a, kind: intent, label: empathy, judge: llm, severity: event, message: m}")
    assert err.value.line == 11 and err.value.key == "X01"  # the rule's line (rules start on line 11)


def test_missing_or_corrupt_model_file_is_a_clear_error(rulebook, tmp_path):
    missing = tmp_path / "nope.json.gz"
    rb = rulebook("- {id: X01, name: a, kind: intent, label: empathy, severity: event, message: m}",
                  extra=_settings(missing))
    with pytest.raises(ModelError, match="nope.json.gz"):
        kefuqa.Checker(rb)
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(gzip.compress(b"{not json"))
    with pytest.raises(ModelError, match="bad.json.gz.*损坏"):
        NgramModel.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match="不是 kefuqa 判断模型"):
        NgramModel.load(other)
    truncated = tmp_path / "trunc.json.gz"
    truncated.write_bytes(gzip.compress(json.dumps(TINY).encode())[:40])
    with pytest.raises(ModelError, match="trunc.json.gz"):
        NgramModel.load(truncated)


def test_a_word_said_twice_weighs_once_as_in_training(tiny_model):
    # the model is trained on feature presence; summing every occurrence would push long, repetitive
    # utterances over the threshold (a customer listing 了…了…了 facts is not complaining more)
    model = NgramModel.load(tiny_model)
    once = model.judge("箱子压扁了")["complaint"].score
    thrice = model.judge("箱子压扁了，盒子压扁了，袋子也压扁了")["complaint"].score
    assert thrice == pytest.approx(once)
    assert model.judge("箱子压扁了")["complaint"].span is not None


def test_syllable_features_are_named_by_reading_not_by_process_order():
    # pinyin_key numbers syllables in the order a process first meets them; a saved model must not depend
    # on that order, so its syllable features are the readings themselves (and ASR homophones share them)
    import subprocess
    import sys

    from kefuqa.judge.features import features

    names = {f for f, _, _ in features("我在这里等他")[1]}
    assert {"pwo|zai", "pzai|zhe", "pdeng|ta"} <= names
    assert {f for f, _, _ in features("我再这里等她")[1] if f.startswith("p")} == \
        {f for f in names if f.startswith("p")}
    code = ("from kefuqa import normalize; normalize.pinyin_key('他她它塔踏再在载'); "
            "from kefuqa.judge.features import features; print(sorted(f for f, _, _ in features('我在这里等他')[1]))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           timeout=120).stdout
    assert other.strip() == str(sorted(names))


def test_a_model_without_the_label_leaves_the_rule_undecided_not_crashed(rulebook, tiny_model):
    rb = rulebook("- {id: X01, name: a, kind: intent, label: anger, role: customer, severity: event, message: m}",
                  extra=_settings(tiny_model))  # the tiny model has no 'anger'
    report = kefuqa.Checker(rb).check(conv("C: 气死我了，你们到底管不管"))
    assert not report.events and not report.findings
    assert "anger" in " ".join([*report.notes, *report.not_applicable.values()])


def test_cli_check_names_a_missing_model_and_exits_2(rulebook, tmp_path):
    from typer.testing import CliRunner

    from kefuqa.cli import app

    rulebook("- {id: X01, name: a, kind: intent, label: empathy, severity: event, message: m}",
             extra=_settings(tmp_path / "gone.json.gz"))
    call = tmp_path / "c.json"
    call.write_text(json.dumps({"id": "c1", "utterances": [{"role": "agent", "text": "我理解您的心情"}]}),
                    encoding="utf-8")
    got = CliRunner().invoke(app, ["check", str(call), "--rulebook", str(tmp_path / "rulebook.yaml")])
    assert got.exit_code == 2
    assert "判断模型错误" in got.output and "gone.json.gz" in got.output
    assert "Traceback" not in got.output


def test_labels_satisfy_groups_of_required_and_conditional_rules(rulebook, tiny_model):
    rb = rulebook("""
    - {id: X01, name: 投诉, kind: intent, label: complaint, role: customer, severity: event, message: m}
    - id: X02
      name: 投诉未共情
      kind: conditional
      points: 4
      dimension: 礼貌
      message: 没有共情
      if: {rule: X01}
      then: {role: agent, phrases: [感谢您的反馈], labels: {"": {label: empathy}}}
    """, extra=_settings(tiny_model))
    cold = conv("C: 箱子都压扁了", "A: 您要退货吗")
    warm = conv("C: 箱子都压扁了", "A: 我非常理解您的心情，我马上处理")
    thanks = conv("C: 箱子都压扁了", "A: 感谢您的反馈")
    assert fired(kefuqa.check(cold, rb), "X02")
    assert not fired(kefuqa.check(warm, rb), "X02")
    assert not fired(kefuqa.check(thanks, rb), "X02")


def test_a_trigger_can_be_an_intent(rulebook, tiny_model):
    rb = rulebook("""
    - id: X01
      name: 推诿后未给办法
      kind: conditional
      points: 2
      dimension: 礼貌
      message: m
      if: {intent: {label: blame_shift}}
      window: {direction: after, turns: 1, include_anchor: false}
      then: {role: agent, phrases: [我帮您]}
    """, extra=_settings(tiny_model))
    (f,) = fired(kefuqa.check(conv("A: 这个您得问厂家，我们管不了", "C: 啊？", "A: 没办法"), rb), "X01")
    assert f.utterance == 0
    assert not fired(kefuqa.check(conv("A: 这个您得问厂家，我们管不了", "C: 啊？", "A: 我帮您联系厂家"), rb), "X01")


def _authored(folder: Path, industry: str, items: dict) -> None:
    (folder / "authored").mkdir(parents=True, exist_ok=True)
    (folder / "splits.yaml").write_text("train: [bank]\nheldout: [hotel]\n", encoding="utf-8")
    import yaml

    (folder / "authored" / f"{industry}.yaml").write_text(
        yaml.safe_dump({"industry": industry, "author": "t", "items": items}, allow_unicode=True), encoding="utf-8")


def test_corpus_builder_adds_variants_keeps_the_industry_split_and_is_deterministic(tmp_path):
    _authored(tmp_path, "bank", {"complaint": {"pos": ["你们这卡怎么又被冻结了，烦不烦"], "neg": ["我想查一下账单"]}})
    _authored(tmp_path, "hotel", {"empathy": {"pos": ["这么晚还让您等着，真是辛苦了"], "neg": ["请问您几位入住"]}})
    a = build_corpus(tmp_path)
    assert a == build_corpus(tmp_path)
    assert {e.split for e in a if e.industry == "hotel"} == {"heldout"}
    asr = [e for e in a if e.source.startswith("augment:asr of ")]
    assert len(asr) == 2 and all(e.register == "asr" for e in asr)  # the punctuated ones got an ASR variant
    assert all("，" not in e.text and "," not in e.text for e in asr)
    parents = {e.id: e for e in a if e.source.startswith("authored")}
    for e in a:
        if not e.source.startswith("authored"):
            p = parents[e.source.rsplit(" ", 1)[1]]
            assert (e.label, e.y, e.industry, e.split) == (p.label, p.y, p.industry, p.split)


def test_corpus_builder_rejects_duplicates_unknown_labels_and_industries(tmp_path):
    _authored(tmp_path, "bank", {"complaint": {"pos": ["太慢了吧", "太慢了吧！", "太慢了吧，"], "neg": []}})
    with pytest.raises(CorpusError, match="重复"):
        build_corpus(tmp_path)
    dupes: list[str] = []
    kept = [e for e in build_corpus(tmp_path, dupes) if e.source.startswith("authored")]
    assert [e.text for e in kept] == ["太慢了吧"] and len(dupes) == 2 and "bank-complaint-pos001" in dupes[0]
    _authored(tmp_path, "bank", {"grumpy": {"pos": ["哼"], "neg": []}})
    with pytest.raises(CorpusError, match="bank.yaml.*未知标签"):
        build_corpus(tmp_path)
    _authored(tmp_path, "bank", {"complaint": {"pos": ["太慢了"], "neg": []}})
    _authored(tmp_path, "mining", {"complaint": {"pos": ["太慢了吧"], "neg": []}})
    with pytest.raises(CorpusError, match="mining.*splits.yaml"):
        build_corpus(tmp_path)


def test_rules_explain_shows_the_label_definition_and_examples_both_ways(rulebook, tiny_model):
    from kefuqa.docs import explain
    from kefuqa.judge.labels import labels

    rb = rulebook("""
    - {id: X01, name: 推诿, kind: intent, label: blame_shift, points: 3, dimension: 礼貌, message: m,
       phrases: [不归我们管]}
    """, extra=_settings(tiny_model))
    text = explain(rb, rb.rule("X01"))["text"]
    lab = labels()["blame_shift"]
    assert "判断标签（判断）：blame_shift 推诿责任" in text
    assert lab.definition in text and lab.positives[0] in text and lab.negatives[0] in text
    assert "高精度短语（不经模型直接命中）：不归我们管" in text
