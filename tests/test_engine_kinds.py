"""Each rule kind on a tiny custom rulebook: positive, negative and not applicable."""

from __future__ import annotations

import pytest
from tests.conftest import conv, fired

import kefuqa


def test_phrase_kind_fires_and_quotes_original_text(rulebook):
    rb = rulebook("""
    - {id: X01, name: 禁语, kind: phrase, points: 5, dimension: 礼貌, message: "说了「{evidence}」", suggest: 请您稍等, phrases: [我怎么知道]}
    """)
    r = kefuqa.check(conv("C: 在嗎", "A: 我怎麼知道！你問別人"), rb)
    (f,) = fired(r, "X01")
    assert f.evidence == "我怎麼知道"  # the original Traditional characters, not the normalised ones
    assert f.span == (0, 5) and f.utterance == 1
    assert f.message == "说了「我怎麼知道」" and f.suggestion == "请您稍等"
    assert f.points == -5


def test_phrase_kind_ignores_other_role_and_exceptions(rulebook):
    rb = rulebook("""
    - id: X01
      name: 禁用词
      kind: phrase
      points: 1
      dimension: 礼貌
      message: m
      phrases: [{text: 不知道, unless: [不知道您]}]
    """)
    assert not fired(kefuqa.check(conv("C: 我不知道", "A: 不知道您现在方便吗"), rb), "X01")
    assert fired(kefuqa.check(conv("A: 我也不知道"), rb), "X01")


def test_phrase_kind_pinyin_matches_homophones_only_when_enabled(rulebook):
    rb = rulebook("""
    - {id: X01, name: a, kind: phrase, points: 1, dimension: 礼貌, message: m, phrases: [我怎么知道]}
    - {id: X02, name: b, kind: phrase, points: 1, dimension: 礼貌, message: m, pinyin: false, phrases: [我怎么知道]}
    """)
    r = kefuqa.check(conv("A: 我怎么知到"), rb)
    (f,) = fired(r, "X01")
    assert f.match == "pinyin" and f.evidence == "我怎么知到"
    assert not fired(r, "X02")


def test_expected_phrases_match_by_sound_unless_the_rule_says_no(rulebook):
    # an absence is not reported because ASR wrote a homophone of one character of the phrase that was said
    rb = rulebook("""
    - {id: X01, name: a, kind: required, points: 1, dimension: 礼貌, message: m, scope: {first_turns: 1}, phrases: [感谢您的耐心]}
    - {id: X02, name: b, kind: required, points: 1, dimension: 礼貌, message: m, scope: {first_turns: 1}, pinyin: false, phrases: [感谢您的耐心]}
    - {id: X03, name: c, kind: conditional, points: 1, dimension: 礼貌, message: m, if: {said: {role: customer, phrases: [投诉]}}, then: {phrases: [帮您记录]}}
    - {id: X04, name: d, kind: sequence, points: 1, dimension: 礼貌, message: m, steps: [{name: 问候, phrases: [您好]}, {name: 致谢, phrases: [感谢来电]}]}
    - {id: X05, name: e, kind: required, points: 1, dimension: 礼貌, message: m, scope: {first_turns: 1}, phrases: [工号, {text: 我姓, pinyin: true}]}
    """)
    r = kefuqa.check(conv("A: 您好，感谢您的耐新等待，赶谢来电", "C: 我要投诉", "A: 好的，帮您己录下来了"), rb)
    assert not fired(r, "X01")
    assert not fired(r, "X03")
    assert not fired(r, "X04")
    assert fired(r, "X02")  # pinyin: false — exact phrases only
    # a 2-character phrase matches by sound only where the phrase says so
    assert not fired(kefuqa.check(conv("A: 您好，我幸王"), rb), "X05")
    assert fired(kefuqa.check(conv("A: 您好，供号1023"), rb), "X05")
    # a trigger does not match by sound: 投素 is no complaint to answer
    assert not fired(kefuqa.check(conv("A: 您好", "C: 我要投素", "A: 好的"), rb), "X03")


def test_phrase_kind_tolerates_asr_marks_stutter_and_width(rulebook):
    rb = rulebook("""
    - {id: X01, name: a, kind: phrase, points: 1, dimension: 礼貌, message: m, phrases: [不行就是不行]}
    """)
    r = kefuqa.check(conv("A: 不_行，不行就就是 不行！！"), rb)
    (f,) = fired(r, "X01")
    # the key view drops the pause mark and the punctuation and collapses 就就; the evidence is the original
    assert f.evidence == "不行就就是 不行" and f.span == (4, 12)


def test_phrase_regex_and_whole_utterance(rulebook):
    rb = rulebook("""
    - id: X01
      name: a
      kind: phrase
      points: 1
      dimension: 礼貌
      message: m
      phrases: [{text: 什么, whole: true}, {regex: "难道.{1,10}吗"}]
    """)
    assert fired(kefuqa.check(conv("A: 什么？"), rb), "X01")
    assert fired(kefuqa.check(conv("A: 难道你没看短信吗"), rb), "X01")
    assert not fired(kefuqa.check(conv("A: 请问有什么可以帮您"), rb), "X01")


def test_phrase_unless_near_looks_at_the_next_turn(rulebook):
    rb = rulebook("""
    - {id: X01, name: a, kind: phrase, points: 1, dimension: 礼貌, message: m, pinyin: false, phrases: [办不了], unless_near: [可以为您], near_turns: 1}
    """)
    assert fired(kefuqa.check(conv("A: 办不了。", "C: 啊？", "A: 好的。"), rb), "X01")
    assert not fired(kefuqa.check(conv("A: 办不了。", "C: 啊？", "A: 我现在可以为您预约。"), rb), "X01")


def test_required_kind_groups_scope_and_missing_names(rulebook):
    rb = rulebook("""
    - id: X01
      name: 开场
      kind: required
      points: 2
      dimension: 礼貌
      message: "缺少：{missing}"
      scope: {first_turns: 1}
      groups: {问候: [您好], 报号: [工号]}
    """)
    (f,) = fired(kefuqa.check(conv("A: 您好，请讲", "A: 工号123"), rb), "X01")
    assert f.message == "缺少：报号" and f.utterance == 0
    assert not fired(kefuqa.check(conv("A: 您好，工号123"), rb), "X01")
    r = kefuqa.check(conv("C: 喂？"), rb)
    assert "X01" in r.not_applicable


def test_required_after_trigger_window(rulebook):
    rb = rulebook("""
    - id: X01
      name: 等候后致谢
      kind: required
      points: 1
      dimension: 礼貌
      message: m
      after: {event: hold, edge: end}
      window: {direction: after, turns: 1}
      phrases: [久等]
    """)
    base = ["[0-2] A: 请稍等", "[30-32] A: 查到了", "[33-35] A: 让您久等了"]
    events = [{"type": "hold", "start": 2.5, "end": 29}]
    (f,) = fired(kefuqa.check(conv(*base, events=events), rb), "X01")
    assert f.utterance == 1
    ok = ["[0-2] A: 请稍等", "[30-32] A: 让您久等了"]
    assert not fired(kefuqa.check(conv(*ok, events=events), rb), "X01")
    assert "X01" in kefuqa.check(conv(*ok), rb).not_applicable


def test_sequence_kind_order_matters(rulebook):
    rb = rulebook("""
    - id: X01
      name: 结束流程
      kind: sequence
      points: 1
      dimension: 礼貌
      message: "缺少：{missing}"
      steps:
        - {name: 询问, phrases: [还有其他]}
        - {name: 致谢, phrases: [感谢]}
        - {name: 道别, phrases: [再见]}
    """)
    assert not fired(kefuqa.check(conv("A: 请问还有其他问题吗", "A: 感谢来电，再见"), rb), "X01")
    (f,) = fired(kefuqa.check(conv("A: 再见", "A: 感谢来电", "A: 还有其他问题吗"), rb), "X01")
    assert "致谢" in f.message and "道别" in f.message


def test_conditional_kind_if_rule_then_phrase(rulebook):
    rb = rulebook("""
    - {id: E01, name: 投诉, kind: phrase, severity: event, role: customer, message: m, phrases: [投诉]}
    - id: X01
      name: 投诉未致歉
      kind: conditional
      points: 3
      dimension: 礼貌
      message: "投诉「{trigger}」未致歉"
      if: {rule: E01}
      then: {phrases: [抱歉, 对不起]}
    """)
    (f,) = fired(kefuqa.check(conv("A: 您好", "C: 我要投诉", "A: 说吧"), rb), "X01")
    # on the agent's reply that lacks the apology, quoting nothing; the message names the complaint
    assert f.utterance == 2 and f.evidence is None and f.span is None and f.message == "投诉「投诉」未致歉"
    (f,) = fired(kefuqa.check(conv("C: 我要投诉"), rb), "X01")  # no reply at all: on the complaint
    assert f.utterance == 0 and f.evidence == "投诉"
    assert not fired(kefuqa.check(conv("C: 我要投诉", "A: 非常抱歉"), rb), "X01")
    # an apology before the complaint does not count
    assert fired(kefuqa.check(conv("A: 抱歉久等", "C: 我要投诉", "A: 说吧"), rb), "X01")
    r = kefuqa.check(conv("C: 查话费", "A: 好的"), rb)
    assert "X01" in r.not_applicable and "E01" in r.not_applicable["X01"]


def test_conditional_echo_reads_back_the_number(rulebook):
    rb = rulebook("""
    - id: X01
      name: 复核
      kind: conditional
      points: 1
      dimension: 礼貌
      message: m
      if: {said: {role: customer, phrases: [{regex: "1[3-9][0-9]{9}"}]}}
      window: {direction: after, turns: 1}
      then: {echo: true}
    """)
    assert not fired(kefuqa.check(conv("C: 13912345678", "A: 尾号5678的号码，好的"), rb), "X01")
    assert fired(kefuqa.check(conv("C: 13912345678", "A: 好的"), rb), "X01")


def test_count_kind_max_and_min(rulebook):
    rb = rulebook("""
    - {id: X01, name: 口头禅, kind: count, points: 1, dimension: 礼貌, message: "{count}次", max: 2, phrases: [就是说]}
    - {id: X02, name: 礼貌, kind: count, points: 1, dimension: 礼貌, message: "{count}次", min: 2, phrases: [请, 谢谢]}
    """)
    r = kefuqa.check(conv("A: 就是说，就是说", "A: 就是说，请"), rb)
    (f,) = fired(r, "X01")
    assert f.message == "3次"
    (g,) = fired(r, "X02")
    assert g.message == "1次" and g.utterance is None
    r = kefuqa.check(conv("A: 就是说，请", "A: 谢谢"), rb)
    assert not fired(r, "X01") and not fired(r, "X02")


def test_silence_kind_excludes_holds(rulebook):
    rb = rulebook("""
    - {id: X01, name: 静音, kind: silence, role: any, points: 1, dimension: 效率, message: "{seconds}秒", min_seconds: 10}
    """)
    (f,) = fired(kefuqa.check(conv("[0-2] A: 您好", "[14-15] C: 嗯"), rb), "X01")
    assert (f.start, f.end) == (2.0, 14.0) and f.message == "12.0秒" and f.utterance == 1
    held = conv("[0-2] A: 您好", "[14-15] C: 嗯", events=[{"type": "hold", "start": 2, "end": 14}])
    assert not fired(kefuqa.check(held, rb), "X01")
    assert "X01" in kefuqa.check(conv("A: 您好", "C: 嗯"), rb).not_applicable


def test_overlap_kind_measures_interruptions(rulebook):
    rb = rulebook("""
    - {id: X01, name: 抢话, kind: overlap, points: 1, dimension: 礼貌, message: "{seconds}秒", min_seconds: 1.0, unless: [嗯, 好的]}
    """)
    r = kefuqa.check(conv("[0-10] C: 我说一下情况啊", "[6-9] A: 那是你的问题"), rb)
    (f,) = fired(r, "X01")
    assert f.start == 6.0 and f.end == 9.0 and f.message == "3.0秒"
    assert not fired(kefuqa.check(conv("[0-10] C: 我说一下情况", "[6-8] A: 嗯，好的"), rb), "X01")
    assert not fired(kefuqa.check(conv("[0-10] C: 我说一下情况", "[9.5-12] A: 明白"), rb), "X01")


def test_monologue_kind(rulebook):
    rb = rulebook("""
    - {id: X01, name: 无回应, kind: monologue, role: customer, responder: agent, points: 1, dimension: 礼貌, message: m, min_seconds: 45}
    """)
    assert fired(kefuqa.check(conv("[0-30] C: 一", "[30-50] C: 二", "[51-52] A: 好"), rb), "X01")
    assert not fired(kefuqa.check(conv("[0-30] C: 一", "[30-31] A: 嗯", "[31-50] C: 二"), rb), "X01")


def test_rate_kind_and_min_speech(rulebook):
    rb = rulebook("""
    - {id: X01, name: 快, kind: rate, points: 1, dimension: 效率, message: "{value}", max: 300, min_speech_seconds: 5}
    """)
    fast = conv("[0-6] A: " + "快" * 40)  # 400 per minute
    (f,) = fired(kefuqa.check(fast, rb), "X01")
    assert f.message == "400"
    assert not fired(kefuqa.check(conv("[0-6] A: " + "慢" * 20), rb), "X01")
    assert "X01" in kefuqa.check(conv("[0-2] A: 您好"), rb).not_applicable


def test_rate_kind_uses_syllables_without_transcript(rulebook):
    rb = rulebook("""
    - {id: X01, name: 快, kind: rate, points: 1, dimension: 效率, message: "{value}", max: 300, min_speech_seconds: 5}
    """)
    c = kefuqa.Conversation.model_validate({"id": "a", "utterances": [
        {"role": "agent", "start": 0, "end": 10, "text": "", "attrs": {"syllables": 60}}]})
    (f,) = fired(kefuqa.check(c, rb), "X01")
    assert f.message == "360"


def test_metric_kind_call_fields_and_attrs(rulebook):
    rb = rulebook("""
    - {id: X01, name: 振铃, kind: metric, points: 1, dimension: 效率, message: "{value}", measure: ring_seconds, op: ">", value: 15}
    - {id: X02, name: 音量, kind: metric, points: 1, dimension: 效率, message: "{value}", measure: "attr:loudness_dbfs", outside: [-40, -10], min_count: 2}
    """)
    r = kefuqa.check(conv("A: 您好", ring_seconds=20), rb)
    assert fired(r, "X01")[0].message == "20.0"
    assert not fired(kefuqa.check(conv("A: 您好", ring_seconds=10), rb), "X01")
    assert "X01" in kefuqa.check(conv("A: 您好"), rb).not_applicable
    loud = kefuqa.Conversation.model_validate({"id": "a", "utterances": [
        {"role": "agent", "text": "您好，客服中心", "attrs": {"loudness_dbfs": -5}},
        {"role": "agent", "text": "请问有什么可以帮您", "attrs": {"loudness_dbfs": -8}},
        {"role": "agent", "text": "嗯", "attrs": {"loudness_dbfs": -50}}]})  # a backchannel is no sample
    (f,) = fired(kefuqa.check(loud, rb), "X02")
    assert f.utterance == 0  # the loudest utterance is the evidence


def test_metric_sla_working_days(rulebook):
    rb = rulebook("""
    - {id: X01, name: 时效, kind: metric, role: any, points: 1, dimension: 效率, message: m, measure: response_delay, limits: {web: 1wd, email: 2h}}
    """)
    friday = conv("C: 求助", channel="web", received_at="2026-03-06T16:00:00+08:00",
                  first_response_at="2026-03-09T15:00:00+08:00")
    assert not fired(kefuqa.check(friday, rb), "X01")
    late = conv("C: 求助", channel="web", received_at="2026-03-06T16:00:00+08:00",
                first_response_at="2026-03-09T17:00:00+08:00")
    assert fired(kefuqa.check(late, rb), "X01")
    assert "X01" in kefuqa.check(conv("C: 求助", channel="email"), rb).not_applicable


def test_event_kind_hold_check_in(rulebook):
    rb = rulebook("""
    - {id: X01, name: 等候超时, kind: event, event: hold, min_seconds: 30, points: 1, dimension: 效率, message: "{seconds}", phrases: [久等], window: {direction: during}}
    """)
    ev = [{"type": "hold", "start": 3, "end": 70}]
    (f,) = fired(kefuqa.check(conv("[0-2] A: 稍等", "[71-72] A: 好了", events=ev), rb), "X01")
    assert f.start == 3 and f.end == 70 and f.message == "67.0"
    ok = conv("[0-2] A: 稍等", "[35-37] A: 让您久等了，还要一会", "[71-72] A: 好了", events=ev)
    assert not fired(kefuqa.check(ok, rb), "X01")


def test_repeat_ask_kind(rulebook):
    rb = rulebook("""
    - id: X01
      name: 重复询问
      kind: repeat_ask
      points: 1
      dimension: 礼貌
      message: "{slot}"
      slots: [{name: 电话, given: [{regex: "1[3-9][0-9]{9}"}], ask: [电话是多少]}]
    """)
    c = conv("A: 电话是多少", "C: 13912345678", "A: 13912345678对吗", "C: 对", "A: 您电话是多少")
    (f,) = fired(kefuqa.check(c, rb), "X01")
    assert f.utterance == 4 and f.message == "电话"
    assert not fired(kefuqa.check(conv("A: 电话是多少", "C: 13912345678", "A: 好的"), rb), "X01")


def test_applies_channels_directions_and_unless(rulebook):
    rb = rulebook("""
    - {id: E01, name: 辱骂, kind: phrase, severity: event, role: customer, message: m, phrases: [滚]}
    - id: X01
      name: 先挂机
      kind: metric
      points: 1
      dimension: 礼貌
      message: m
      measure: ended_by
      op: "=="
      value: agent
      applies: {channels: [phone], unless: [{fired: E01}]}
    """)
    assert fired(kefuqa.check(conv("A: 再见", ended_by="agent"), rb), "X01")
    assert not fired(kefuqa.check(conv("C: 滚", "A: 再见", ended_by="agent"), rb), "X01")
    assert "X01" in kefuqa.check(conv("A: 再见", ended_by="agent", channel="email"), rb).not_applicable


def test_text_rules_not_applicable_without_transcript(rulebook):
    rb = rulebook("""
    - {id: X01, name: a, kind: phrase, points: 1, dimension: 礼貌, message: m, phrases: [喂]}
    - {id: X02, name: b, kind: silence, role: any, points: 1, dimension: 效率, message: m, min_seconds: 5}
    """)
    c = kefuqa.Conversation.model_validate({"id": "audio", "utterances": [
        {"role": "agent", "start": 0, "end": 2, "text": ""}, {"role": "customer", "start": 9, "end": 10}]})
    r = kefuqa.check(c, rb)
    assert "X01" in r.not_applicable and "转写" in r.not_applicable["X01"]
    assert fired(r, "X02")


def test_select_and_ignore_by_prefix(rulebook):
    rb = rulebook("""
    - {id: AB01, name: a, kind: phrase, points: 1, dimension: 礼貌, message: m, phrases: [喂]}
    - {id: AB02, name: b, kind: phrase, points: 1, dimension: 礼貌, message: m, phrases: [嘿]}
    - {id: CD01, name: c, kind: phrase, points: 1, dimension: 礼貌, message: m, phrases: [哈]}
    """)
    c = conv("A: 喂嘿哈")
    assert {f.rule for f in kefuqa.check(c, rb, select=["AB"]).findings} == {"AB01", "AB02"}
    assert {f.rule for f in kefuqa.check(c, rb, ignore=["AB02"]).findings} == {"AB01", "CD01"}
    assert {f.rule for f in kefuqa.check(c, rb, select=["AB"], ignore=["AB01"]).findings} == {"AB02"}


def test_inferred_hold_needs_the_request_and_a_gap(rulebook):
    rb = rulebook("""
    - {id: X01, name: 等候超时, kind: event, event: hold, min_seconds: 5, points: 1, dimension: 效率, message: m}
    """, extra="""
settings:
  infer_holds: {phrases: [请稍等], min_gap_seconds: 10}
""")
    assert fired(kefuqa.check(conv("[0-2] A: 请稍等", "[20-21] A: 好了"), rb), "X01")
    assert "X01" in kefuqa.check(conv("[0-2] A: 您好", "[20-21] A: 好了"), rb).not_applicable
    assert "X01" in kefuqa.check(conv("[0-2] A: 请稍等", "[5-6] A: 好了"), rb).not_applicable


def test_yields_to_keeps_one_finding_per_clause(rulebook):
    """A rulebook may let a rule yield to another on the same words (the standard rulebook does not: DESIGN §2)."""
    rb = rulebook("""
    - {id: X01, name: 禁语, kind: phrase, points: 10, dimension: 礼貌, message: m, phrases: [我不是说了吗]}
    - {id: X02, name: 反问, kind: phrase, points: 5, dimension: 礼貌, message: m, yields_to: [X01],
       phrases: [我不是说了吗, 你不明白吗]}
    """)
    r = kefuqa.check(conv("C: 怎么弄", "A: 我不是说了吗？你不明白吗？"), rb)
    assert [(f.rule, f.evidence) for f in r.findings] == [("X01", "我不是说了吗"), ("X02", "你不明白吗")]
    # ignoring the stronger rule brings the other back: nothing is hidden behind a rule not shown
    r = kefuqa.check(conv("C: 怎么弄", "A: 我不是说了吗？"), rb, ignore=["X01"])
    assert [(f.rule, f.evidence) for f in r.findings] == [("X02", "我不是说了吗")]


def test_yields_to_an_unknown_rule_is_a_lint_error(rulebook):
    with pytest.raises(kefuqa.RuleError, match="yields_to"):
        rulebook("- {id: X02, name: a, kind: phrase, message: m, yields_to: [X09], phrases: [喂]}\n")


def test_standard_rules_are_independent_on_one_clause():
    """DESIGN §2: words that match several rules' examples make each of them fire — 我不是说了吗 is a
    服务禁语 and a reproach; the standard rulebook uses no `yields_to`."""
    r = kefuqa.check(conv("C: 怎么弄", "A: 我不是说了吗"))
    assert sorted(f.rule for f in r.findings if f.rule.startswith("LNG")) == ["LNG001", "LNG004"]
    assert not any(rule.yields_to for rule in kefuqa.load_rulebook().rules)


def test_intent_rest_a_later_clause_that_says_more_takes_the_finding_back(rulebook):
    """`rest`: a clause after the label's words that the judge does not read as the label (nor as any of
    `labels`) and that is more than filler is the reason or the other way; a topic before the no, filler, a
    second no or a wait-and-see after it are not; the same rule without `rest` fires on all of them."""
    rule = """
    - id: X01
      name: 生硬拒绝
      kind: intent
      label: flat_refusal
      role: agent
      points: 5
      dimension: 礼貌
      message: m
      phrases: [退不了, 办不了]
      judge_if: [不了]
"""
    rest = """      rest: {below: 0.5, labels: [open_no_commitment], filler: [不好意思, 抱歉, 请, 您, 理解, 啊, 了]}
"""
    with_rest, plain = rulebook(rule + rest), rulebook(rule)
    says_more = ["退不了，这个券过了有效期了", "退不了，只能换码", "退不了 超過七天了 只能換貨"]
    says_no_more = ["这张券啊，退不了", "不好意思啊，退不了", "退不了，请您理解", "办不了，我也办不了",
                    "退不了，您再等等吧", "退不了这个券过了有效期了"]
    for text in says_more + says_no_more:
        r = kefuqa.check(conv("C: 能退吗？", "A: " + text), plain)
        assert fired(r, "X01"), text
        r = kefuqa.check(conv("C: 能退吗？", "A: " + text), with_rest)
        assert bool(fired(r, "X01")) == (text in says_no_more), text
    # `no_reason`: a clause saying one of them gives nothing, whatever the judge reads in it
    pointed = "退不了，合同上写着呢"
    assert not fired(kefuqa.check(conv("C: 能退吗？", "A: " + pointed), with_rest), "X01")
    with_bare = rulebook(rule + rest.rstrip("}\n") + ", no_reason: [{regex: '合同(上|里)'}]}\n")
    assert fired(kefuqa.check(conv("C: 能退吗？", "A: " + pointed), with_bare), "X01")


def test_intent_rest_labels_must_be_known(rulebook):
    with pytest.raises(kefuqa.RuleError, match="rest.labels"):
        rulebook("""
    - {id: X01, name: a, kind: intent, label: flat_refusal, role: agent, message: m, rest: {labels: [nope]}}
    """)
