"""Writers: JSON/JSONL (DESIGN §3), CSV, terminal table, HTML, and the `write_reports` dispatcher."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import importlib.util
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kefuqa.model import Finding, Report
from kefuqa.writers import FORMATS, render_html, write_reports
from kefuqa.writers._common import Summary, fmt_num, fmt_time, grade_tone
from kefuqa.writers.csvout import CSV_COLUMNS, write_csv
from kefuqa.writers.html import _highlight, _locate, _Mark, write_html
from kefuqa.writers.jsonout import write_json, write_jsonl
from kefuqa.writers.table import write_table


def _load_samples() -> Any:
    path = Path(__file__).parent / "fixtures" / "writers" / "samples.py"
    spec = importlib.util.spec_from_file_location("kefuqa_writer_samples", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


S = _load_samples()


def _gen(reports: list[Report]) -> Iterator[Report]:
    """A one-shot iterator: writers must not need a list."""
    yield from reports


def _render(fmt: str, reports: list[Report], **opts: Any) -> str:
    buf = io.StringIO()
    write_reports(_gen(reports), fmt, buf, **opts)
    return buf.getvalue()


# ---- helpers -----------------------------------------------------------------------------------------


def test_time_and_number_formatting() -> None:
    assert fmt_time(0) == "00:00"
    assert fmt_time(41.2) == "00:41"
    assert fmt_time(599.99) == "09:59"
    assert fmt_time(3725) == "1:02:05"
    assert fmt_time(None) == ""
    assert fmt_num(82.0) == "82"
    assert fmt_num(-10) == "-10"
    assert fmt_num(55.666, 1) == "55.7"
    assert fmt_num(None) == ""


def test_grade_tone() -> None:
    assert grade_tone("优秀", 95, False) == "good"
    assert grade_tone("不合格", 40, False) == "fail"
    assert grade_tone("优秀", 95, True) == "fail"  # a fatal call is never shown green
    assert grade_tone("B+", 85, False) == "fair"  # unknown name: by score


def test_summary() -> None:
    s = Summary()
    for r in S.all_reports():
        s.add(r)
    assert s.count == 3 and s.fatal == 1 and s.findings == 7
    assert s.mean == pytest.approx((67 + 0 + 100) / 3)
    top = s.top_rules(2)
    assert top[0].rule == "LNG001" and top[0].calls == 2 and top[0].points == -35
    assert [g for g, _ in s.grade_items()] == ["优秀", "合格", "不合格"]


# ---- JSON --------------------------------------------------------------------------------------------

FINDING_KEYS = {"rule", "name", "severity", "points", "utterance", "start", "end", "evidence", "message",
                "suggestion"}


def _check_section3(obj: dict[str, Any]) -> None:
    assert isinstance(obj["call_id"], str)
    assert set(obj["rulebook"]) >= {"name", "version"}
    assert isinstance(obj["score"], int | float) and not isinstance(obj["score"], bool)
    assert isinstance(obj["grade"], str)
    assert isinstance(obj["fatal"], bool)
    assert all(isinstance(k, str) and isinstance(v, int | float) for k, v in obj["dimensions"].items())
    for f in obj["findings"]:
        assert FINDING_KEYS <= set(f)
        assert isinstance(f["points"], int | float) and f["points"] <= 0
        assert f["utterance"] is None or isinstance(f["utterance"], int)
    for e in obj["events"]:
        assert {"rule", "utterance", "start"} <= set(e)
    assert isinstance(obj["not_applicable"], list) and all(isinstance(x, str) for x in obj["not_applicable"])


def test_json_single_is_one_object() -> None:
    text = _render("json", [S.report_one()])
    obj = json.loads(text)
    assert isinstance(obj, dict)
    _check_section3(obj)
    assert obj == S.report_one().to_dict()
    assert "服务禁语" in text and "\\u" not in text  # ensure_ascii=False
    assert text.startswith("{\n  ") and text.endswith("}\n")
    first = obj["findings"][0]
    assert first["rule"] == "LNG001" and first["utterance"] == 4 and first["span"] == [0, 5]
    assert obj["events"] == [{"rule": "EVT001", "name": "客户投诉", "utterance": 3, "start": 12.4,
                              "evidence": "投訴", "span": [10, 12]}]
    assert obj["not_applicable"] == ["OPN003", "VOC003"]
    call_level = [f for f in obj["findings"] if f["rule"] == "CMP001"][0]
    assert call_level["utterance"] is None and call_level["start"] is None


def test_json_several_is_an_array_and_streams() -> None:
    reports = S.all_reports()
    text = _render("json", reports)
    arr = json.loads(text)
    assert isinstance(arr, list) and len(arr) == 3
    for obj, rep in zip(arr, reports, strict=True):
        _check_section3(obj)
        assert obj == rep.to_dict()
    assert arr[1]["fatal"] is True and arr[1]["fatal_rules"] == ["LNG001"]


def test_json_zero_and_forced_shapes() -> None:
    assert json.loads(_render("json", [])) == []
    one = json.loads(_render("json", [S.report_clean()], array=True))
    assert isinstance(one, list) and one[0]["call_id"] == "call-0003"
    with pytest.raises(ValueError):
        _render("json", S.all_reports(), array=False)


def test_json_line_separator_in_text_survives_indentation() -> None:
    r = S.report_clean()
    r.notes = ["a\u2028b\x85c"]
    arr = json.loads(_render("json", [r, S.report_clean()]))
    assert arr[0]["notes"] == ["a\u2028b\x85c"]


def test_jsonl_one_compact_object_per_line() -> None:
    reports = S.all_reports()
    text = _render("jsonl", reports)
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 4
    for line, rep in zip(lines[:-1], reports, strict=True):
        assert ": " not in line.split('"message"')[0]  # compact separators
        obj = json.loads(line)
        _check_section3(obj)
        assert obj == rep.to_dict()
    assert "有意见找领导去" in text


def test_jsonl_writes_as_reports_arrive() -> None:
    buf = io.StringIO()
    seen: list[int] = []

    def produce() -> Iterator[Report]:
        for r in S.all_reports():
            seen.append(buf.getvalue().count("\n"))
            yield r

    assert write_jsonl(produce(), buf) == 3
    assert seen == [0, 1, 2]
    assert write_json(iter([]), io.StringIO()) == 0


# ---- CSV ---------------------------------------------------------------------------------------------


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))


def test_csv_one_row_per_finding_and_every_call_kept() -> None:
    text = _render("csv", S.all_reports())
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = _csv_rows(text)
    assert len(rows) == 5 + 2 + 1
    assert [r["call_id"] for r in rows].count("call-20260305-0001") == 5
    clean = [r for r in rows if r["call_id"] == "call-0003"]
    assert len(clean) == 1 and clean[0]["rule"] == "" and clean[0]["score"] == "100" and clean[0]["grade"] == "优秀"
    lng = [r for r in rows if r["rule"] == "LNG001" and r["call_id"] == "call-20260305-0001"][0]
    assert lng["agent_id"] == "A1023" and lng["agent_name"] == "王芳" and lng["agent_team"] == "一组"
    assert lng["points"] == "-10" and lng["utterance"] == "4" and lng["start"] == "41.2" and lng["end"] == "43"
    assert lng["evidence"] == "我怎么知道" and lng["suggestion"] == "请您稍等，我帮您查询一下"
    assert lng["severity"] == "major" and lng["dimension"] == "礼貌程度" and lng["fatal"] == "0"
    cmp_ = [r for r in rows if r["rule"] == "CMP001"][0]
    assert cmp_["utterance"] == "" and cmp_["start"] == "" and cmp_["evidence"] == ""
    fatal = [r for r in rows if r["call_id"] == "chat-0002"]
    assert {r["fatal"] for r in fatal} == {"1"} and fatal[0]["start"] == ""
    # call-level findings come first, then transcript order
    assert [r["rule"] for r in rows[:5]] == ["CMP001", "LNG002", "LNG007", "LNG001", "RSP001"]
    assert "\r\n" not in text and not text.startswith("\ufeff")


def test_csv_excel_bom_crlf_and_formula_defused() -> None:
    r = S.report_clean()
    r.findings = [Finding("X01", "自定义", "minor", -1, None, None, None, '=HYPERLINK("x","点我")', "+1 message",
                          "@suggest")]
    text = _render("csv", [r, S.report_one()], excel=True)
    assert text.startswith("\ufeffcall_id,")
    assert "\r\n" in text
    rows = _csv_rows(text)
    assert rows[0]["evidence"] == '\'=HYPERLINK("x","点我")'
    assert rows[0]["message"] == "'+1 message" and rows[0]["suggestion"] == "'@suggest"
    assert rows[0]["points"] == "-1"  # numbers are left alone


def test_csv_quotes_commas_and_newlines_round_trip() -> None:
    r = S.report_clean()
    r.findings = [Finding("X01", "名,称", "minor", -1, None, None, None, '他说"不行"\n换行', "m", None)]
    rows = _csv_rows(_render("csv", [r]))
    assert rows[0]["name"] == "名,称" and rows[0]["evidence"] == '他说"不行"\n换行'


def test_csv_events_option() -> None:
    rows = _csv_rows(_render("csv", S.all_reports(), events=True))
    evts = [r for r in rows if r["severity"] == "event"]
    assert [(r["rule"], r["utterance"], r["points"]) for r in evts] == [("EVT001", "3", "0"), ("EVT003", "2", "0")]
    assert len(rows) == 8 + 2
    assert write_csv(S.all_reports(), io.StringIO()) == 8
    assert write_csv(S.all_reports(), io.StringIO(), events=True, header=False) == 10


# ---- table -------------------------------------------------------------------------------------------


def test_table_plain_text_has_what_a_person_needs() -> None:
    text = _render("table", S.all_reports())
    assert "\x1b[" not in text  # not a TTY: no escape codes
    for needle in ("call-20260305-0001", "王芳", "A1023", "67", "合格", "chat-0002", "红线", "不合格",
                   "LNG001", "服务禁语", "00:41", "00:09", "我怎么知道", "请您稍等，我帮您查询一下", "整通",
                   "CMP001", "非常抱歉给您带来不便", "EVT001", "客户投诉", "call-0003", "优秀", "无问题"):
        assert needle in text, needle
    # summary over all calls
    summary = text[text.index("汇总"):]
    assert "通话 3 通" in summary and "平均分 55.7" in summary and "红线 1 通" in summary
    assert "等级分布" in summary and "优秀 1" in summary and "不合格 1" in summary
    assert "高频问题" in summary and summary.index("LNG001") < summary.index("CMP001")
    assert max(len(line) for line in text.splitlines()) <= 120


def test_table_single_call_has_no_summary_and_color_on_request() -> None:
    text = _render("table", [S.report_one()])
    assert "汇总" not in text
    colored = _render("table", [S.report_fatal()], color=True)
    assert "\x1b[" in colored and "红线" in colored
    assert "汇总" in _render("table", [S.report_one()], summary=True)


def test_table_does_not_interpret_markup_in_transcripts() -> None:
    r = S.report_clean()
    r.findings = [Finding("X01", "自定义", "minor", -1, 0, 1.0, 2.0, "[bold red]注入[/bold red]", "m", "[link]")]
    text = _render("table", [r])
    assert "[bold red]注入[/bold red]" in text and "[link]" in text


def test_table_empty() -> None:
    assert "没有可评分的通话" in _render("table", [])
    assert write_table([], io.StringIO()) == 0


# ---- HTML --------------------------------------------------------------------------------------------


def test_html_escapes_transcripts_and_loads_nothing() -> None:
    page = render_html(S.all_reports())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&amp; &lt;b&gt;粗體&lt;/b&gt;" in page and "<b>粗體" not in page
    assert page.count("<script") == 1  # ours, at the end
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\bsrc\s*=", page)
    assert "@import" not in page and "url(" not in page


def test_html_csp_allows_exactly_our_script() -> None:
    page = render_html([S.report_one()])
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None
    policy = html.unescape(csp.group(1))
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy


def test_html_single_call_content() -> None:
    page = render_html([S.report_one()], title="质检 <报告>")
    assert "<title>质检 &lt;报告&gt;</title>" in page
    assert 'data-testid="score">67<' in page and 'data-testid="grade">合格<' in page
    assert 'class="fatal-banner"' not in page and "通话索引" not in page  # one call: no index
    # the evidence is highlighted inside utterance 4, both findings on it
    utt4 = page[page.index('id="c1-u4"'):page.index('id="c1-u5"')]
    assert re.search(r'<mark class="hl sev-major" data-ref="c1-f4"[^>]*>我怎么知道</mark>', utt4)
    assert re.search(r"<mark [^>]*>这不归我们管</mark>", utt4)
    assert "请您稍等，我帮您查询一下" in utt4 and "-10 分" in utt4 and "LNG001" in utt4
    # call-level finding above the transcript
    assert page.index("整通问题") < page.index("非常抱歉给您带来不便") < page.index('id="c1-u0"')
    # event tagged and highlighted on the customer's (Traditional) utterance
    utt3 = page[page.index('id="c1-u3"'):page.index('id="c1-u4"')]
    assert '<mark class="hl evt"' in utt3 and ">投訴</mark>" in utt3 and "EVT001" in utt3
    assert "我家的電費怎麼這麼高" in page
    # times, roles, hold and transfer
    assert "00:41–00:43" in page and "role-agent" in page and "role-customer" in page
    assert "等候" in page and "转接" in page and "维修部" in page
    # dimension bars: 13/25 = 52 %
    assert "width:52.0%" in page and "礼貌程度" in page
    # not applicable, collapsed, with reasons
    assert '<details class="na">' in page and "没有录音，无法测量音量" in page and "OPN003" in page
    # the list links each finding to its utterance
    assert 'href="#c1-u2" data-card="c1-f2"' in page


def test_html_several_calls_index_and_fatal() -> None:
    buf = io.StringIO()
    assert write_html(_gen(S.all_reports()), buf) == 3
    page = buf.getvalue()
    assert "通话索引" in page
    for n, cid in enumerate(("call-20260305-0001", "chat-0002", "call-0003"), 1):
        assert f'<a class="jump" href="#c{n}">{cid}</a>' in page
        assert f'id="c{n}"' in page
    c2 = page[page.index('id="c2"'):page.index('id="c3"')]
    assert 'class="fatal-banner"' in c2 and "本通触犯红线规则：LNG001 服务禁语" in c2
    # no span given: highlighted from the evidence text
    assert re.search(r"<mark [^>]*>不行就是不行</mark>", c2)
    assert "roles inferred from text" in c2
    assert "未附带对话原文" in page[page.index('id="c3"'):]


def test_highlight_overlaps_and_bad_spans() -> None:
    text = "我怎么知道这不归我们管<i>"
    marks = [_Mark(0, 5, "sev-major", "f1", "A"), _Mark(3, 8, "sev-minor", "f2", "B"), _Mark(9, 11, "evt", "e1", "E")]
    out = _highlight(text, marks)
    assert re.sub(r"<[^>]+>", "", out) == "我怎么知道这不归我们管&lt;i&gt;"
    assert re.search(r'<mark class="hl sev-major multi" data-ref="f1 f2" title="A；B">知道</mark>', out)
    assert '<mark class="hl sev-minor" data-ref="f2" title="B">这不归</mark>' in out
    assert _locate("abc", (5, 9), "bc") == (1, 3)  # out of range span: search evidence
    assert _locate("abc", (2, 1), None) is None
    assert _locate("abc", None, "zz") is None


def test_html_finding_on_missing_utterance_is_call_level() -> None:
    r = S.report_one()
    r.findings.append(Finding("X02", "越界", "minor", -1, 99, None, None, "某句", "utterance index out of range"))
    page = render_html([r])
    level = page[page.index("整通问题"):page.index('id="c1-u0"')]
    assert "X02" in level and "某句" in level


def test_html_empty() -> None:
    page = render_html([])
    assert "没有可评分的通话" in page


# ---- dispatcher --------------------------------------------------------------------------------------


def test_formats_and_dispatch() -> None:
    assert FORMATS == ("table", "json", "jsonl", "csv", "html")
    ids = [r.call_id for r in S.all_reports()]
    for fmt in FORMATS:
        out = _render(fmt, S.all_reports())
        assert all(cid in out for cid in ids), (fmt, ids)  # each writer writes every call
    assert _render("JSON", [S.report_one()]).startswith("{")
    with pytest.raises(ValueError, match="unknown output format"):
        _render("xml", [])
    with pytest.raises(ValueError, match="excel"):
        _render("json", [], excel=True)
    assert _render("html", [S.report_one()], title="标题").count("<title>标题</title>") == 1


def test_table_shows_the_readers_notes_with_their_fix() -> None:
    """A note of the reader (e.g. a recording whose channels are the other way round from its transcript)
    carries the fix the QA lead must apply; the default table output shows it, not only JSON."""
    import dataclasses

    note = "录音声道与转写角色相反（按 customer,agent 重合度 0.81，按现设 0.00）：声学测量未采用；请用 --channels customer,agent 或清单的 agent_channel 校正"
    text = _render("table", [dataclasses.replace(S.report_one(), notes=[note])])
    flat = "".join(text.split())  # the console folds long lines
    assert "注意：" + "".join(note.split()) in flat
    assert "注意" not in _render("table", [S.report_one()])  # no note, no line
