"""The HTML timeline of an audio call: lanes, silences, overlaps, holds, findings and the player."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from kefuqa.model import Conversation, Event, Finding, Report, Utterance
from kefuqa.writers.timeline import (
    TIMELINE_JS,
    TIMELINE_JS_SHA256,
    audio_source,
    render_timeline,
    timeline_id,
)


def _conv(tmp_path, name="call-1.wav") -> Conversation:
    audio = tmp_path / "rec" / name
    audio.parent.mkdir(exist_ok=True)
    audio.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfake")
    return Conversation(
        id="call-1", channel="phone",
        utterances=[
            Utterance(role="agent", start=0.5, end=4.2, text="您好，这里是客服中心", attrs={"loudness_dbfs": -20.1}),
            Utterance(role="customer", start=4.9, end=10.0, text="我想投诉<script>", attrs={"emotion": "angry"}),
            Utterance(role="agent", start=8.5, end=11.1, text="请您稍等"),
            Utterance(role="customer", start=26.0, end=28.0, text="好的"),
        ],
        events=[Event(type="hold", start=12.0, end=24.0)],
        metrics={"audio": True, "audio_path": str(audio), "duration_seconds": 30.0},
        source=str(audio),
    )


def _report(conv: Conversation) -> Report:
    findings = [
        Finding("LST001", "抢话打断", "major", -5, 2, 8.5, 10.0, None, "坐席在客户说话时插话 1.5 秒"),
        Finding("VOC003", "音量不当", "minor", -2, 0, 0.5, 4.2, None, "音量过低"),
        Finding("LNG005", "礼貌用语缺失", "minor", -2, None, None, None, None, "整通无礼貌用语"),
    ]
    return Report("call-1", {"name": "standard", "version": "1"}, 93.0, "优秀", False, {}, findings, [], {},
                  conversation=conv)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _parse(html: str) -> list[tuple[str, dict]]:
    p = _Collect()
    p.feed(html)
    return p.tags


def test_timeline_lanes_and_markers(tmp_path):
    conv = _conv(tmp_path)
    html = render_timeline(_report(conv), base_dir=tmp_path)
    tags = _parse(html)
    rects = [a for t, a in tags if t == "rect"]
    assert sum(1 for a in rects if a.get("class") == "kq-agent") == 2
    assert sum(1 for a in rects if a.get("class") == "kq-customer") == 2
    overlaps = [a for a in rects if a.get("class") == "kq-overlap"]
    assert len(overlaps) == 1 and overlaps[0]["data-kefuqa-seek"] == "8.50"
    assert "坐席抢话" in html
    silences = [a for a in rects if a.get("class") == "kq-silence"]
    # 11.1–26.0 (under the hold too) and 28.0–30.0; the 4.2–4.9 pause is too short to draw
    assert [s["data-kefuqa-seek"] for s in silences] == ["11.10", "28.00"]
    assert any(a.get("class") == "kq-hold" for a in rects)
    # findings with a time are markers and list items that seek; the call-level one is not placed
    seeks = [a["data-kefuqa-seek"] for t, a in tags if t in ("path", "li") and "data-kefuqa-seek" in a]
    assert sorted(seeks) == ["0.50", "0.50", "8.50", "8.50"]
    assert "LNG005" not in html
    # the player points at the recording by its absolute URI, so the page may be moved
    (audio_tag,) = [a for t, a in tags if t == "audio"]
    assert audio_tag["src"] == (tmp_path / "rec" / "call-1.wav").resolve().as_uri()  # absolute: the page may move
    # escaping, no network assets, one root with a stable id
    assert "<script>" not in html.replace(f"<script>{TIMELINE_JS}</script>", "")
    assert "我想投诉&lt;script&gt;" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert tags[0] == ("div", {"class": "kq-tl", "id": timeline_id(_report(conv)), "data-call-id": "call-1"})


def test_svg_positions_follow_time(tmp_path):
    html = render_timeline(_report(_conv(tmp_path)), assets=False)
    tags = _parse(html)
    svg = next(a for t, a in tags if t == "svg")
    left, plot, dur = float(svg["data-left"]), float(svg["data-plot"]), float(svg["data-duration"])
    assert dur == 30.0
    first = next(a for t, a in tags if t == "rect" and a.get("class") == "kq-agent")
    assert float(first["x"]) == pytest.approx(left + 0.5 / 30 * plot, abs=0.1)
    assert float(first["width"]) == pytest.approx(3.7 / 30 * plot, abs=0.1)
    assert "<style>" not in html and "<script>" not in html


def test_embedded_audio_is_a_data_uri(tmp_path):
    conv = _conv(tmp_path)
    src = audio_source(conv, embed=True)
    assert src.startswith("data:audio/wav;base64,")
    assert base64.b64decode(src.split(",", 1)[1]).startswith(b"RIFF")
    html = render_timeline(_report(conv), embed=True)
    assert 'src="data:audio/wav;base64,' in html


def test_missing_audio_and_no_conversation(tmp_path):
    conv = _conv(tmp_path)
    conv.metrics["audio_path"] = None
    conv.source = None
    assert "录音文件不可用" in render_timeline(_report(conv))
    r = _report(conv)
    r.conversation = None
    assert render_timeline(r) == ""


def test_script_hash_for_a_csp():
    import hashlib

    digest = base64.b64encode(hashlib.sha256(TIMELINE_JS.encode()).digest()).decode()
    assert digest == TIMELINE_JS_SHA256
    assert "onclick" not in TIMELINE_JS and "http" not in TIMELINE_JS
