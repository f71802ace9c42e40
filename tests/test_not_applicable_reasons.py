"""Why a rule is not applicable is said in words, not in rulebook field names (the report, the workbench's
call page and the CLI show it to inspectors)."""

from __future__ import annotations

import re

from kefuqa import check
from kefuqa.engine.triggers import condition_text
from kefuqa.rules.schema import Condition


def test_field_conditions_are_said_in_words() -> None:
    assert condition_text(Condition(field="ring_seconds", op=">=", value=30)) == "仅当振铃时长（秒）不少于 30 时适用"
    assert condition_text(Condition(field="ended_by", op="!=", value="system")) == "仅当挂断方不为 系统（线路） 时适用"
    assert condition_text(Condition(field="direction", op="in", value=["inbound", "outbound"])) == \
        "仅当呼叫方向为以下之一： 呼入、外呼 时适用"
    # a company's own measure keeps its name: nothing to translate it to
    assert condition_text(Condition(field="queue_wait", op=">", value=60)) == "仅当queue_wait大于 60 时适用"


def test_a_report_says_no_field_name_in_its_reasons() -> None:
    conv = {"id": "na-1", "channel": "phone", "ring_seconds": 4, "utterances": [
        {"role": "agent", "start": 0.0, "end": 3.0, "text": "您好，XX公司客服部，工号1023，请问有什么可以帮您？"},
        {"role": "customer", "start": 3.5, "end": 6.0, "text": "我想查一下话费。"}]}
    reasons = check(conv).to_dict()["not_applicable_reasons"]
    assert reasons["OPN004"] == "仅当振铃时长（秒）不少于 30 时适用"
    # a missing field is named in words, the export's field name only in brackets for whoever fixes the export
    assert reasons["CLS003"] == "缺少挂断方（ended_by）"
    assert not [r for r in reasons.values() if re.search(r"[a-z]+_[a-z]+", re.sub(r"（[^）]*）", "", r))], reasons
