"""The rule-kind interface: a kind is one module, rules declare what they depend on, the `ratio` kind."""

from __future__ import annotations

from typing import Literal

import pytest
from tests.conftest import conv, fired

import kefuqa
from kefuqa.engine import Checker, Hit
from kefuqa.kinds import Kind, kinds, register, unregister
from kefuqa.model import Conversation
from kefuqa.rules.schema import RuleBase


def _loud_call(customer_angry_text: str) -> Conversation:
    """Agent at about -26 dBFS, the customer at a steady level; after the customer's second turn the agent
    gets 12 dB louder. Only the words of that customer turn say whether the customer is angry."""
    utts = [
        {"role": "agent", "start": 0.0, "end": 4.0, "text": "您好，这里是客服中心，请问有什么可以帮您？", "attrs": {"loudness_dbfs": -26.0}},
        {"role": "customer", "start": 4.5, "end": 9.0, "text": "我家的宽带从昨天开始就上不了网", "attrs": {"loudness_dbfs": -24.0}},
        {"role": "agent", "start": 9.5, "end": 13.0, "text": "好的，请问您的宽带账号是多少？", "attrs": {"loudness_dbfs": -26.5}},
        {"role": "customer", "start": 13.5, "end": 18.0, "text": customer_angry_text, "attrs": {"loudness_dbfs": -23.5}},
        {"role": "agent", "start": 18.5, "end": 23.0, "text": "您听我说，这个要先查一下线路的情况", "attrs": {"loudness_dbfs": -14.0}},
        {"role": "agent", "start": 23.5, "end": 27.0, "text": "请您稍等，我帮您查询一下线路", "attrs": {"loudness_dbfs": -25.5}},
    ]
    return Conversation.model_validate({"id": "loud", "utterances": utts})


def test_voc005_hears_anger_that_only_the_words_show():
    # the customer's level does not rise (no acoustic anger), but 凭什么…气死我了 makes EVT004 fire; VOC005
    # declares it uses EVT004, so it is decided after it even though VOC.yaml comes before EVT.yaml
    checker = kefuqa.Checker(kefuqa.load_rulebook("standard"))
    order = [r.id for r in checker.order]
    assert order.index("EVT004") < order.index("VOC005")
    angry = checker.check(_loud_call("凭什么让我等这么久，气死我了"))
    assert fired(angry, "EVT004")
    (f,) = fired(angry, "VOC005")
    # the agent's answer right after the angry turn: -14.0 against the agent's level before the anger
    # (median of -26.0 and -26.5), the measurement in the evidence too
    assert f.message == "客户激动后坐席音量升高 12.2 dB（-26.2 → -14.0 dBFS）"
    assert f.evidence == f.message and f.utterance == 4
    calm = checker.check(_loud_call("账号是零二八幺三五七九"))
    assert not fired(calm, "EVT004") and not fired(calm, "VOC005")


def test_dependency_cycle_is_a_lint_error_naming_file_and_rules(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text(
        "rules:\n"
        "  - {id: X01, name: a, kind: phrase, points: 1, dimension: 礼貌程度, message: m, phrases: [甲],\n"
        "     applies: {when: [{fired: X02}]}}\n"
        "  - {id: X02, name: b, kind: phrase, points: 1, dimension: 礼貌程度, message: m, phrases: [乙],\n"
        "     applies: {when: [{not_fired: X01}]}}\n", encoding="utf-8")
    (err,) = kefuqa.lint(p)
    assert "循环依赖" in str(err) and "X01 → X02 → X01" in str(err)
    assert err.source == str(p) and err.line == 2


RATIO = """
- {id: X01, name: 坐席说话占比过高, kind: ratio, role: agent, max: 0.7, min_speech_seconds: 30, points: 2,
   dimension: 礼貌, message: "坐席说话占 {value}%，超过 {max}%"}
"""


def test_ratio_kind_fires_when_the_agent_talks_over_the_share(rulebook):
    rb = rulebook(RATIO)
    lecture = conv("[0-25] A: 我给您详细介绍一下我们这个套餐的全部内容", "[25.5-30] C: 嗯",
                   "[30-55] A: 另外还有流量包和宽带的优惠活动", "[55.5-60] C: 好吧")
    (f,) = fired(kefuqa.check(lecture, rb), "X01")
    # 50 s of 59 s of speech
    assert f.message == "坐席说话占 85%，超过 70%" and f.utterance is None
    balanced = conv("[0-15] A: 您好请问有什么可以帮您", "[15.5-35] C: 我想问一下我的话费为什么这么高",
                    "[35.5-50] A: 我帮您查一下", "[50.5-62] C: 好的谢谢")
    assert not fired(kefuqa.check(balanced, rb), "X01")


def test_ratio_kind_counts_overlapping_segments_of_one_speaker_once(rulebook):
    rb = rulebook(RATIO)
    # two ASR segments of the agent overlap (20 s in all, not 30); the customer 20 s: a 50 % share
    c = conv("[0-15] A: 第一段", "[5-20] A: 第二段", "[20.5-40.5] C: 客户说话")
    assert not fired(kefuqa.check(c, rb), "X01")


def test_ratio_kind_is_not_applicable_without_times_or_enough_speech(rulebook):
    rb = rulebook(RATIO)
    assert "X01" in kefuqa.check(conv("A: 您好", "C: 你好"), rb).not_applicable
    short = kefuqa.check(conv("[0-8] A: 您好请问有什么可以帮您", "[8.5-10] C: 查话费"), rb)
    assert short.not_applicable["X01"] == "双方说话不足 30 秒"


def test_ratio_rule_needs_a_share_between_0_and_1(rulebook):
    with pytest.raises(kefuqa.RuleError, match="应不大于 1"):
        rulebook("- {id: X01, name: a, kind: ratio, max: 70, points: 1, dimension: 礼貌, message: m}")
    with pytest.raises(kefuqa.RuleError, match="role 为 agent 或 customer"):
        rulebook("- {id: X01, name: a, kind: ratio, role: any, max: 0.7, points: 1, dimension: 礼貌, message: m}")


class ShoutRule(RuleBase):
    kind: Literal["shout"]
    marks: int = 3


class Shout(Kind):
    """A kind written outside kefuqa: an utterance with `marks` or more exclamation marks."""

    name = "shout"
    schema = ShoutRule
    needs_text = True
    decided = "utterance"

    def run(self, ctx):  # type: ignore[no-untyped-def]
        return [ctx.hit_at(u) for u in ctx.role_utts(self.rule.role)
                if ctx.texts[u].count("！") + ctx.texts[u].count("!") >= self.rule.marks]


@pytest.fixture
def shout_kind():
    register(Shout)
    yield Shout
    unregister("shout")


def test_a_new_kind_is_one_module_registered_with_the_engine(rulebook, shout_kind):
    rb = rulebook("- {id: X01, name: 喊叫, kind: shout, marks: 2, points: 1, dimension: 礼貌, message: 坐席喊叫}")
    assert "shout" in kinds()
    r = Checker(rb).check(conv("A: 您好", "C: 我要退款", "A: 不行！！"))
    (f,) = fired(r, "X01")
    assert f.utterance == 2 and f.evidence == "不行！！"
    # its schema is part of the rulebook schema: unknown keys are errors with file and line
    with pytest.raises(kefuqa.RuleError, match="loud"):
        rulebook("- {id: X01, name: a, kind: shout, loud: 1, points: 1, dimension: 礼貌, message: m}")


def test_unregistered_kind_is_an_error_again(rulebook):
    with pytest.raises(kefuqa.RuleError, match="shout"):
        rulebook("- {id: X01, name: a, kind: shout, points: 1, dimension: 礼貌, message: m}")


def test_every_builtin_kind_says_when_it_can_be_decided():
    live = {name for name, k in kinds().items() if k.decided == "utterance"}
    assert {"phrase", "silence", "overlap", "monologue", "event"} <= live
    assert not live & {"required", "count", "rate", "ratio", "metric"}  # only at the end of the call
    for k in kinds().values():
        assert k.schema.model_fields["kind"].annotation == Literal[k.name]  # type: ignore[comparison-overlap]
        assert issubclass(k, Kind) and k.run is not Kind.run


class TallyRule(RuleBase):
    kind: Literal["tally"]
    over: int = 2


class Tally(Kind):
    """A call-level kind: more than `over` turns of the role. Its hit has no utterance."""

    name = "tally"
    schema = TallyRule

    def run(self, ctx):  # type: ignore[no-untyped-def]
        n = len(ctx.by_role[self.rule.role])
        return [Hit(None, None, None, f"{n} 句", vars={"n": n})] if n > self.rule.over else []


def test_a_hit_without_an_utterance_is_a_call_level_finding(rulebook):
    register(Tally)
    try:
        rb = rulebook("- {id: X01, name: 话多, kind: tally, points: 2, dimension: 礼貌, message: '坐席说了 {n} 句'}")
        r = Checker(rb).check(conv("A: 您好", "C: 查话费", "A: 三十八元", "A: 还有别的吗"))
        (f,) = fired(r, "X01")
        assert (f.utterance, f.start, f.end, f.span) == (None, None, None, None)
        assert f.evidence == "3 句" and f.message == "坐席说了 3 句" and f.points == -2
        assert not fired(Checker(rb).check(conv("A: 您好", "C: 查话费", "A: 三十八元")), "X01")
    finally:
        unregister("tally")
