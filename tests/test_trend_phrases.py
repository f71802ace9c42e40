"""New-phrase detection (pure): frequent this week, rare the week before, the longest form kept."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")

from kefuqa.service.usecases.trends import Series, emerging, ngrams  # noqa: E402


def test_ngrams_of_chinese_runs_only() -> None:
    assert ngrams("充电桩，OK坏了", (2,)) == {"充电", "电桩", "坏了"}


def test_emerging_phrase_is_found_and_old_ones_are_not() -> None:
    old = "你们的服务太差了我要投诉"
    now = [old + "，充电桩一直充不上电。"] * 4 + [old] * 6
    before = [old] * 5
    found = emerging(now, before, min_share=0.3)
    assert [(p.text, p.calls, p.share, p.before) for p in found] == [("充电桩一直充不上电", 4, 0.4, 0.0)]
    assert not any(p.text in old for p in found)
    # a phrase inside a longer one found as often is dropped
    assert not any(a.text != b.text and a.text in b.text for a in found for b in found)
    assert emerging([], before) == []
    assert emerging(now, [old + "，充电桩一直充不上电。"] * 5) == []  # common the week before: not new


def test_rising_needs_an_absolute_and_relative_rise_and_enough_findings() -> None:
    assert Series("R", "", [1, 6], [1.0, 6.0]).rising
    assert not Series("R", "", [10, 12], [10.0, 12.0]).rising  # +2 but only 1.2×
    assert not Series("R", "", [0, 2], [0.0, 2.0]).rising  # too few findings
    assert Series("R", "", [0, 3], [0.0, 3.0]).rising
    assert Series("R", "", [3, 3], [None, 3.0]).change is None
