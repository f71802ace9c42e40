"""One severity vocabulary (issue 9, item 15): the HTML report, the table output and the workbench name a
severity with the same word."""

from __future__ import annotations

import pytest

import kefuqa
from kefuqa.labels import SEVERITY_LABELS
from kefuqa.writers.html import render_html

CALL = {"id": "c-sev", "channel": "phone", "utterances": [
    {"role": "agent", "text": "您好，请问有什么可以帮您？"}, {"role": "customer", "text": "宽带坏了，能今天修吗？"},
    {"role": "agent", "text": "这个办不了。"}, {"role": "customer", "text": "好吧。"}]}


def test_report_and_workbench_use_the_same_severity_words() -> None:
    report = kefuqa.check(kefuqa.Conversation.model_validate(CALL))
    severities = {f.severity for f in report.findings}
    assert "minor" in severities or "major" in severities
    html = render_html([report])
    for sev in severities:
        assert SEVERITY_LABELS[sev] in html
    assert "轻微" not in html
    views = pytest.importorskip("kefuqa.service.views")
    assert views.SEVERITY_LABELS == SEVERITY_LABELS
