"""Coverage (issue 9, item 11): a report says how much of the standard its input let be checked; calls
below the rulebook's threshold are 「未充分质检」 and stay out of averages by default. 红线 reports name the
rule that zeroed the score (item 12)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from tests.conftest import conv

import kefuqa
from kefuqa.coverage import INSUFFICIENT, undecidable
from kefuqa.model import Conversation
from kefuqa.writers import write_reports
from kefuqa.writers._common import Summary

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def checker() -> kefuqa.Checker:
    return kefuqa.Checker(kefuqa.load_rulebook("standard"))


def _example(name: str) -> Conversation:
    return Conversation.model_validate(json.loads((EXAMPLES / name).read_text(encoding="utf-8")))


def test_a_full_transcribed_call_is_covered(checker):
    r = checker.check(_example("telecom-inbound-exemplary.json"))
    cov = r.coverage
    assert cov is not None and cov.sufficient
    # what it could not check is exactly what needs a recording
    assert cov.unchecked == [rid for rid in cov.unchecked if rid.startswith("VOC")] and cov.unchecked
    assert cov.checked + len(cov.unchecked) == cov.rules
    assert cov.rules == len([x for x in checker.rulebook.rules if x.enabled and x.severity != "event"])


def test_one_utterance_call_is_not_sufficiently_checked(checker):
    r = checker.check(conv("A: 您好，请问有什么可以帮您？"))
    assert r.coverage is not None and not r.coverage.sufficient
    assert r.to_dict()["coverage"]["sufficient"] is False and INSUFFICIENT in r.coverage.words()


def test_recording_without_asr_is_not_sufficiently_checked(checker):
    audio_only = Conversation.model_validate({"id": "rec", "channel": "phone", "ring_seconds": 3, "utterances": [
        {"role": "agent" if i % 2 == 0 else "customer", "start": i * 4.0, "end": i * 4.0 + 3, "text": "",
         "attrs": {"loudness_dbfs": -22.0, "pitch_sd_semitones": 3.0}} for i in range(8)]})
    r = checker.check(audio_only)
    assert r.coverage is not None and not r.coverage.sufficient
    assert "LNG001" in r.coverage.unchecked and "VOC003" not in r.coverage.unchecked


def test_situation_not_met_is_checked_missing_input_is_not():
    assert not undecidable("本通没有等候")
    assert not undecidable("仅适用于外呼通话")
    for reason in ("缺少时间戳", "缺少 started_at", "没有转写文本（录音未做语音识别）", "客户发言少于 2 句",
                   "需要录音测得的 loudness_dbfs（至少 3 句坐席语音）"):
        assert undecidable(reason), reason


def test_threshold_is_a_rulebook_setting(tmp_path):
    p = tmp_path / "rb.yaml"
    p.write_text("name: strict\nextends: standard\nsettings: {min_coverage: 0.95}\n", encoding="utf-8")
    strict = kefuqa.load_rulebook(p)
    assert strict.settings.min_coverage == 0.95
    r = kefuqa.check(_example("telecom-inbound-exemplary.json"), strict)
    assert r.coverage is not None and r.coverage.minimum == 0.95 and not r.coverage.sufficient
    with pytest.raises(kefuqa.RuleError):
        p.write_text("name: bad\nextends: standard\nsettings: {min_coverage: 2}\n", encoding="utf-8")
        kefuqa.load_rulebook(p)


def test_summary_keeps_insufficient_calls_out_of_the_mean(checker):
    good = checker.check(_example("ecommerce-complaint-handled-badly.json"))
    thin = checker.check(conv("A: 您好，请问有什么可以帮您？", id="thin"))
    assert good.coverage and good.coverage.sufficient and thin.coverage and not thin.coverage.sufficient
    s = Summary()
    for r in (good, thin):
        s.add(r)
    assert s.count == 2 and s.insufficient == 1 and s.mean == good.score and sum(s.grades.values()) == 1
    both = Summary(include_insufficient=True)
    for r in (good, thin):
        both.add(r)
    assert both.mean == (good.score + thin.score) / 2

    out = io.StringIO()
    write_reports([good, thin], "table", out, width=200)
    text = out.getvalue()
    assert f"{INSUFFICIENT}（已检查 {thin.coverage.checked}/{thin.coverage.rules} 条规则）" in text
    assert f"其中{INSUFFICIENT} 1 通，不计入平均分" in text and f"平均分 {good.score:g}" in text

    html = io.StringIO()
    write_reports([good, thin], "html", html)
    page = html.getvalue()
    assert 'data-testid="insufficient"' in page and page.count(f'class="pill low">{INSUFFICIENT}<') == 1


def test_fatal_report_names_the_rule_and_explains_the_bars(checker):
    r = checker.check(_example("property-fee-rude-agent.json"))
    assert r.fatal and r.fatal_rules == ["LNG001"]
    out = io.StringIO()
    write_reports([r], "table", out, width=200)
    assert "红线  LNG001 服务禁语 判为 0 分" in out.getvalue()
    html = io.StringIO()
    write_reports([r], "html", html)
    page = html.getvalue()
    assert "本通触犯红线规则：LNG001 服务禁语，整通判为 0 分" in page
    assert 'data-testid="fatal-note"' in page and "不是总分" in page
