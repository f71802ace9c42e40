"""A self-contained HTML report: the page a team leader hands an agent.

One file, no network: CSS and JS are inline, bars are CSS, and a Content-Security-Policy forbids
loading anything (the one script is allowed by its SHA-256 hash, so even a transcript that slipped
past escaping could not run a script). Every piece of text from the conversation or the rulebook
is HTML-escaped.

Per call: score and grade, a 红线 banner when a fatal rule fired, the per-dimension breakdown, the
list of findings (each a link to its utterance), call-level findings, the transcript with the evidence
highlighted inside the utterance (from ``Finding.span``) and each finding's message, points and
建议话术 beneath it, events (EVT…) tagged, and the not-applicable rules with their reasons in a
collapsible section. With several calls an overview and an index table come first.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any, TextIO

from kefuqa.coverage import INSUFFICIENT, sufficient
from kefuqa.model import Conversation, EventHit, Finding, Report
from kefuqa.writers._common import (
    CHANNEL_LABELS,
    DIRECTION_LABELS,
    EVENT_TYPE_LABELS,
    FATAL_NOTE,
    ROLE_LABELS,
    Summary,
    agent_fields,
    coverage_label,
    finding_sort_key,
    fmt_num,
    fmt_points,
    fmt_span,
    fmt_time,
    grade_tone,
    severity_label,
)
from kefuqa.writers.timeline import (
    TIMELINE_CSS,
    TIMELINE_JS,
    TIMELINE_JS_SHA256,
    render_timeline,
    timeline_id,
)

__all__ = ["DEFAULT_TITLE", "render_html", "write_html"]

DEFAULT_TITLE = "客服质检报告"


def _e(value: object) -> str:
    """Escape text for element content and quoted attributes."""
    return escape("" if value is None else str(value), quote=True)


# ---- highlighting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mark:
    start: int
    end: int
    css: str  # "sev-major", "evt", …
    ref: str  # element id of the finding card / event tag it belongs to
    title: str


def _locate(text: str, span: tuple[int, int] | None, evidence: str | None) -> tuple[int, int] | None:
    """Character range of the evidence in ``text``: the given span when it is valid, else a search."""
    if span is not None:
        try:
            s, e = int(span[0]), int(span[1])
        except (TypeError, ValueError, IndexError):
            s, e = -1, -1
        if 0 <= s < e <= len(text):
            return s, e
    if evidence:
        i = text.find(evidence)
        if i >= 0:
            return i, i + len(evidence)
    return None


def _highlight(text: str, marks: Sequence[_Mark]) -> str:
    """Escaped ``text`` with ``<mark>`` around each range; overlapping ranges are split into segments."""
    if not marks:
        return _e(text)
    cuts = sorted({0, len(text), *(m.start for m in marks), *(m.end for m in marks)})
    parts: list[str] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if a >= b:
            continue
        seg = _e(text[a:b])
        cover = [m for m in marks if m.start <= a and b <= m.end]
        if not cover:
            parts.append(seg)
            continue
        # the most severe finding gives the colour; events only when no finding covers the segment
        main = next((m for m in cover if m.css != "evt"), cover[0])
        css = f"hl {main.css}" + (" multi" if len(cover) > 1 else "")
        refs = " ".join(dict.fromkeys(m.ref for m in cover))
        title = "；".join(dict.fromkeys(m.title for m in cover))
        parts.append(f'<mark class="{css}" data-ref="{_e(refs)}" title="{_e(title)}">{seg}</mark>')
    return "".join(parts)


# ---- pieces ------------------------------------------------------------------------------------------


def _tone(report: Report) -> str:
    return grade_tone(report.grade, report.score, report.fatal)


def _ratio_tone(ratio: float) -> str:
    if ratio >= 0.9:
        return "good"
    if ratio >= 0.75:
        return "fair"
    if ratio >= 0.6:
        return "pass"
    return "fail"


def _call_meta(report: Report) -> str:
    conv = report.conversation
    aid, name, team = agent_fields(report)
    bits: list[str] = []
    if name or aid:
        who = _e(name) if name else ""
        if aid:
            who += f' <span class="muted">工号 {_e(aid)}</span>'
        bits.append(f"坐席 {who.strip()}")
    if team:
        bits.append(_e(team))
    if conv is not None:
        ch = " · ".join(x for x in (CHANNEL_LABELS.get(conv.channel or "", conv.channel or ""),
                                    DIRECTION_LABELS.get(conv.direction or "", conv.direction or "")) if x)
        if ch:
            bits.append(_e(ch))
        if conv.started_at is not None:
            bits.append(_e(conv.started_at.strftime("%Y-%m-%d %H:%M")))
        ends = [u.end for u in conv.utterances if u.end is not None]
        if ends:
            bits.append(f"时长 {_e(fmt_time(max(ends)))}")
        if conv.customer is not None and (conv.customer.name or conv.customer.id):
            bits.append(f"客户 {_e(conv.customer.name or conv.customer.id)}")
    rb = report.rulebook or {}
    if rb.get("name"):
        bits.append(f'<span class="muted">规则库 {_e(rb.get("name"))} {_e(rb.get("version", ""))}</span>')
    return '<span class="sep">｜</span>'.join(bits)


def _scorebox(report: Report) -> str:
    return (f'<div class="scorebox tone-{_tone(report)}" aria-label="得分">'
            f'<div class="score" data-testid="score">{_e(fmt_num(report.score, 1))}</div>'
            f'<div class="grade" data-testid="grade">{_e(report.grade)}</div>{_coverage(report)}</div>')


def _coverage(report: Report) -> str:
    """How much of the standard this call's input let be checked; 「未充分质检」 below the threshold."""
    label = coverage_label(report)
    if not label:
        return ""
    low = report.coverage is not None and not report.coverage.sufficient
    tip = (f"可检查的规则 {report.coverage.checked}/{report.coverage.rules} 条" if report.coverage else "")
    return (f'<div class="coverage{" low" if low else ""}" data-testid="coverage" title="{_e(tip)}">'
            f'{_e(label)}</div>')


def _fatal_banner(report: Report, names: dict[str, str]) -> str:
    if not report.fatal:
        return ""
    rules = report.fatal_rules or [f.rule for f in report.findings if f.severity == "fatal"]
    listed = "、".join(f"{_e(r)} {_e(names.get(r, ''))}".strip() for r in dict.fromkeys(rules))
    detail = f"本通触犯红线规则：{listed}，整通判为 0 分" if listed else "本通触犯红线规则，整通判为 0 分"
    return (f'<div class="fatal-banner" role="alert"><span class="fatal-tag">红线</span>'
            f'<span>{detail}</span></div>')


def _dimensions(report: Report) -> str:
    if not report.dimensions:
        return ""
    lost: dict[str, float] = {}
    for f in report.findings:
        if f.dimension:
            lost[f.dimension] = lost.get(f.dimension, 0.0) + f.points
    rows: list[str] = []
    for name, points in report.dimensions.items():
        top = report.dimension_max.get(name)
        if top:
            ratio = max(0.0, min(1.0, points / top))
            bar = (f'<div class="bar" role="img" aria-label="{_e(name)} {fmt_num(ratio * 100, 0)}%">'
                   f'<div class="fill tone-{_ratio_tone(ratio)}" style="width:{ratio * 100:.1f}%"></div></div>')
            value = f'<b>{_e(fmt_num(points))}</b><span class="muted"> / {_e(fmt_num(top))}</span>'
        else:
            bar = '<div class="bar"></div>'
            value = f"<b>{_e(fmt_num(points))}</b>"
        minus = lost.get(name)
        loss = f'<span class="loss">{_e(fmt_points(minus))}</span>' if minus else '<span class="loss"></span>'
        rows.append(f'<div class="dim-row"><span class="dim-name" title="{_e(name)}">{_e(name)}</span>{bar}'
                    f'<span class="dim-val">{value}</span>{loss}</div>')
    note = f'<p class="dims-note" data-testid="fatal-note">{_e(FATAL_NOTE)}</p>' if report.fatal else ""
    return f'<div class="panel dims"><h3>分项得分</h3>{note}{"".join(rows)}</div>'


def _finding_card(f: Finding, fid: str, *, show_evidence: bool) -> str:
    head = (f'<span class="rule">{_e(f.rule)}</span><span class="fname">{_e(f.name)}</span>'
            f'<span class="sev">{_e(severity_label(f.severity))}</span>')
    if f.dimension:
        head += f'<span class="fdim">{_e(f.dimension)}</span>'
    if f.points:
        head += f'<span class="pts">{_e(fmt_points(f.points))} 分</span>'
    body = f'<p class="msg">{_e(f.message)}</p>'
    if show_evidence and f.evidence:
        where = fmt_span(f.start, f.end)
        where_html = f' <span class="muted">{_e(where)}</span>' if where else ""
        body += f'<p class="ev"><span class="lbl">证据</span>「{_e(f.evidence)}」{where_html}</p>'
    if f.suggestion:
        body += (f'<p class="sugg"><span class="lbl">建议话术</span>'
                 f'<span class="sugg-text">{_e(f.suggestion)}</span></p>')
    return (f'<article class="finding sev-{_e(f.severity)}" id="{fid}" data-rule="{_e(f.rule)}">'
            f'<header>{head}</header>{body}</article>')


def _event_tag(e: EventHit, eid: str) -> str:
    when = fmt_time(e.start)
    t = f' <span class="muted">{_e(when)}</span>' if when else ""
    ev = f'<span class="evt-ev">「{_e(e.evidence)}」</span>' if e.evidence else ""
    return (f'<span class="evt-tag" id="{eid}" data-rule="{_e(e.rule)}"><b>{_e(e.rule)}</b> {_e(e.name)}'
            f'{ev}{t}</span>')


def _issue_list(report: Report, placed: list[tuple[Finding, str, str]],
                events: list[tuple[EventHit, str, str]]) -> str:
    """The clickable list of findings (and events): each jumps to its utterance or card."""
    items: list[str] = []
    for f, fid, target in placed:
        when = fmt_time(f.start) or ("整通" if target == fid else f"#{f.utterance}")
        items.append(
            f'<li class="sev-{_e(f.severity)}"><a class="jump" href="#{target}" data-card="{fid}">'
            f'<span class="rule">{_e(f.rule)}</span><span class="iname">{_e(f.name)}</span>'
            f'<span class="itime">{_e(when)}</span><span class="pts">{_e(fmt_points(f.points)) if f.points else ""}'
            f"</span></a></li>")
    if not items:
        items.append('<li class="none">未发现问题，继续保持。</li>')
    ev_html = ""
    if events:
        ev_items = "".join(
            f'<li><a class="jump" href="#{target}"><span class="rule evt">{_e(e.rule)}</span>'
            f'<span class="iname">{_e(e.name)}</span><span class="itime">'
            f'{_e(fmt_time(e.start) or ("整通" if target == _eid else f"#{e.utterance}"))}</span></a></li>'
            for e, _eid, target in events)
        ev_html = f'<h4>事件</h4><ul class="issues evts">{ev_items}</ul>'
    return (f'<div class="panel issue-panel"><h3>问题清单 <span class="count">{len(placed)}</span></h3>'
            f'<ol class="issues">{"".join(items)}</ol>{ev_html}</div>')


def _conv_event_line(ev_type: str, start: float | None, end: float | None, target: str | None) -> str:
    label = EVENT_TYPE_LABELS.get(ev_type, ev_type)
    when = fmt_span(start, end)
    dur = f"（{fmt_num(end - start, 0)} 秒）" if start is not None and end is not None else ""
    to = f" → {_e(target)}" if target else ""
    return (f'<div class="conv-event"><span>{_e(label)}{to} {_e(when)}{_e(dur)}</span></div>')


def _transcript(conv: Conversation, cid: str, by_utt: dict[int, list[tuple[Finding, str]]],
                ev_by_utt: dict[int, list[tuple[EventHit, str]]], timeline: str | None = None) -> str:
    """The utterances as chat bubbles. With a recording's `timeline` (its element id) each timed utterance
    is tied to that player: its time plays from there when clicked, and it is outlined while it plays."""
    # conversation events (hold, transfer) placed between utterances by time
    timed_events = sorted(
        ((ev.at if ev.at is not None else ev.start, ev) for ev in conv.events
         if (ev.at if ev.at is not None else ev.start) is not None),
        key=lambda p: p[0] or 0.0)
    rows: list[str] = []
    k = 0
    for i, u in enumerate(conv.utterances):
        while k < len(timed_events) and u.start is not None and (timed_events[k][0] or 0.0) <= u.start:
            ev = timed_events[k][1]
            rows.append(_conv_event_line(ev.type, ev.start if ev.start is not None else ev.at, ev.end, ev.target))
            k += 1
        text = u.text or ""
        finds = by_utt.get(i, [])
        evts = ev_by_utt.get(i, [])
        marks: list[_Mark] = []
        for f, fid in finds:
            rng = _locate(text, f.span, f.evidence)
            if rng:
                marks.append(_Mark(rng[0], rng[1], f"sev-{f.severity}", fid, f"{f.rule} {f.name}"))
        for e, eid in evts:
            rng = _locate(text, e.span, e.evidence)
            if rng:
                marks.append(_Mark(rng[0], rng[1], "evt", eid, f"{e.rule} {e.name}"))
        body = _highlight(text, marks) if text.strip() else '<span class="muted">（无文本）</span>'
        role = u.role
        cls = f"utt role-{role}" + (" flagged" if finds else "") + (" has-evt" if evts else "")
        tags = ""
        if evts:
            tags = '<div class="tags">' + "".join(_event_tag(e, eid) for e, eid in evts) + "</div>"
        cards = ""
        if finds:
            cards = '<div class="finds">' + "".join(
                _finding_card(f, fid, show_evidence=_locate(text, f.span, f.evidence) is None) for f, fid in finds
            ) + "</div>"
        when = fmt_span(u.start, u.end)
        tie = t_attr = ""
        if timeline and u.start is not None and u.end is not None:
            tie = (f' data-kefuqa-timeline="{timeline}" data-kefuqa-from="{u.start:.2f}"'
                   f' data-kefuqa-to="{u.end:.2f}"')
            t_attr = (f' data-kefuqa-timeline="{timeline}" data-kefuqa-seek="{u.start:.2f}"'
                      f' title="从这里播放录音"')
        rows.append(
            f'<div class="{cls}" id="{cid}-u{i}" data-idx="{i}"{tie}>'
            f'<div class="utt-meta"><span class="who">{_e(ROLE_LABELS.get(role, role))}</span>'
            f'<span class="t{" kq-seekable" if t_attr else ""}"{t_attr}>{_e(when)}</span>'
            f'<span class="idx">#{i}</span></div>'
            f'<div class="bubble"><p class="text">{body}</p>{tags}</div>{cards}</div>')
    for _, ev in timed_events[k:]:
        rows.append(_conv_event_line(ev.type, ev.start if ev.start is not None else ev.at, ev.end, ev.target))
    untimed = [ev for ev in conv.events if (ev.at if ev.at is not None else ev.start) is None]
    for ev in untimed:
        rows.append(_conv_event_line(ev.type, None, None, ev.target))
    return f'<div class="transcript">{"".join(rows)}</div>'


def _not_applicable(report: Report) -> str:
    if not report.not_applicable:
        return ""
    rows = "".join(f"<tr><td class=\"rule\">{_e(r)}</td><td>{_e(reason)}</td></tr>"
                   for r, reason in sorted(report.not_applicable.items()))
    return (f'<details class="na"><summary>不适用的规则 <span class="count">{len(report.not_applicable)}</span>'
            f'<span class="muted">（缺少所需数据，不计分）</span></summary>'
            f'<table><thead><tr><th>规则</th><th>原因</th></tr></thead><tbody>{rows}</tbody></table></details>')


def _notes(report: Report) -> str:
    notes = list(report.notes)
    if report.conversation is not None:
        notes += [n for n in report.conversation.notes if n not in notes]
    if not notes:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"


def _call_section(report: Report, n: int, several: bool, audio: dict[str, Any] | None = None) -> str:
    cid = f"c{n}"
    conv = report.conversation
    n_utts = len(conv.utterances) if conv is not None else 0
    findings = sorted(report.findings, key=finding_sort_key)
    names = {f.rule: f.name for f in findings}

    by_utt: dict[int, list[tuple[Finding, str]]] = {}
    call_level: list[tuple[Finding, str]] = []
    placed: list[tuple[Finding, str, str]] = []  # finding, card id, jump target
    for j, f in enumerate(findings, 1):
        fid = f"{cid}-f{j}"
        if f.utterance is not None and 0 <= f.utterance < n_utts:
            by_utt.setdefault(f.utterance, []).append((f, fid))
            placed.append((f, fid, f"{cid}-u{f.utterance}"))
        else:
            call_level.append((f, fid))
            placed.append((f, fid, fid))

    ev_by_utt: dict[int, list[tuple[EventHit, str]]] = {}
    call_events: list[tuple[EventHit, str]] = []
    ev_links: list[tuple[EventHit, str, str]] = []
    for j, e in enumerate(report.events, 1):
        eid = f"{cid}-e{j}"
        if e.utterance is not None and 0 <= e.utterance < n_utts:
            ev_by_utt.setdefault(e.utterance, []).append((e, eid))
            ev_links.append((e, eid, f"{cid}-u{e.utterance}"))
        else:
            call_events.append((e, eid))
            ev_links.append((e, eid, eid))

    parts: list[str] = [f'<section class="call tone-{_tone(report)}{" is-fatal" if report.fatal else ""}" '
                        f'id="{cid}" data-call-id="{_e(report.call_id)}">']
    back = '<a class="back no-print" href="#top">↑ 返回总览</a>' if several else ""
    parts.append(
        f'<div class="call-head"><div class="call-title">'
        f'<h2>{f"<span class=num>{n}</span>" if several else ""}{_e(report.call_id)}</h2>'
        f'<div class="call-meta">{_call_meta(report)}</div></div>{_scorebox(report)}</div>')
    parts.append(_fatal_banner(report, names))
    parts.append(f'<div class="call-grid">{_dimensions(report)}{_issue_list(report, placed, ev_links)}</div>')
    timeline = None
    if conv is not None and conv.metrics.get("audio"):
        # recordings: both channels on a time axis, with a player that jumps to each finding
        parts.append(render_timeline(report, assets=False, **(audio or {})))
        timeline = timeline_id(report)

    if call_level or call_events:
        inner = "".join(_finding_card(f, fid, show_evidence=True) for f, fid in call_level)
        if call_events:
            inner += '<div class="tags">' + "".join(_event_tag(e, eid) for e, eid in call_events) + "</div>"
        parts.append(f'<div class="call-level"><h3>整通问题</h3>{inner}</div>')

    if conv is not None:
        parts.append('<div class="transcript-head"><h3>对话记录</h3>'
                     '<span class="legend"><span class="lg lg-agent">坐席</span><span class="lg lg-customer">客户</span>'
                     '<span class="lg lg-hl">问题原话</span><span class="lg lg-evt">事件</span></span></div>')
        parts.append(_transcript(conv, cid, by_utt, ev_by_utt, timeline))
    else:
        parts.append('<p class="muted">本报告未附带对话原文。</p>')
    parts.append(_not_applicable(report))
    parts.append(_notes(report))
    parts.append(back)
    parts.append("</section>")
    return "".join(parts)


def _overview(reports: Sequence[Report], include_insufficient: bool = False) -> str:
    s = Summary(include_insufficient=include_insufficient)
    for r in reports:
        s.add(r)
    counted = [r for r in reports if include_insufficient or sufficient(r)]
    mean = s.mean
    cards = (
        f'<div class="stat"><div class="stat-v">{s.count}</div><div class="stat-k">通话</div></div>'
        f'<div class="stat"><div class="stat-v">{_e(fmt_num(mean, 1)) if mean is not None else "—"}</div>'
        f'<div class="stat-k">平均分</div></div>'
        f'<div class="stat{" bad" if s.fatal else ""}"><div class="stat-v">{s.fatal}</div>'
        f'<div class="stat-k">红线通话</div></div>'
        f'<div class="stat"><div class="stat-v">{s.findings}</div><div class="stat-k">问题</div></div>')
    if s.insufficient:
        kept = "计入" if include_insufficient else "不计入"
        cards += (f'<div class="stat warn" data-testid="insufficient"><div class="stat-v">{s.insufficient}</div>'
                  f'<div class="stat-k">{INSUFFICIENT}（{kept}平均分、等级和分数分布）</div></div>')
    dist = ""
    if s.count:
        segs = "".join(
            f'<div class="seg tone-{s.grade_tones.get(g, "pass")}" style="flex:{c}" title="{_e(g)} {c} 通">'
            f"{_e(g)} {c}</div>" for g, c in s.grade_items())
        inf = float("inf")
        bands = [("90–100", 90.0, inf, "good"), ("80–89", 80.0, 90.0, "fair"), ("70–79", 70.0, 80.0, "pass"),
                 ("60–69", 60.0, 70.0, "pass"), ("60 以下", -inf, 60.0, "fail")]
        in_band = [sum(1 for r in counted if lo <= r.score < hi) for _, lo, hi, _ in bands]
        peak = max(in_band) or 1
        hist = "".join(
            f'<div class="band"><span class="band-k">{_e(label)}</span><div class="bar"><div class="fill '
            f'tone-{tone}" style="width:{c / peak * 100:.0f}%"></div></div><span class="band-v">{c}</span></div>'
            for (label, _, _, tone), c in zip(bands, in_band, strict=True))
        dist = (f'<div class="panel"><h3>等级分布</h3><div class="dist">{segs}</div>'
                f'<h4>分数分布</h4><div class="hist">{hist}</div></div>')
    top = s.top_rules(8)
    top_html = ""
    if top:
        most = max(r.calls for r in top) or 1
        rows = "".join(
            f'<tr><td class="rule">{_e(r.rule)}</td><td>{_e(r.name)}</td>'
            f'<td class="num"><div class="mini"><div style="width:{r.calls / most * 100:.0f}%"></div></div>{r.calls}</td>'
            f'<td class="num">{r.hits}</td><td class="num neg">{_e(fmt_points(r.points))}</td></tr>'
            for r in top)
        top_html = (f'<div class="panel scroll"><h3>高频问题</h3><table class="top"><thead><tr><th>规则</th><th>名称</th>'
                    f'<th class="num">涉及通话</th><th class="num">次数</th><th class="num">扣分</th></tr></thead>'
                    f'<tbody>{rows}</tbody></table></div>')
    idx_rows: list[str] = []
    for n, r in enumerate(reports, 1):
        aid, name, team = agent_fields(r)
        counts: dict[str, int] = {}
        for f in r.findings:
            counts[f.rule] = counts.get(f.rule, 0) + 1
        main = " ".join(_e(k) for k in sorted(counts, key=lambda k: -counts[k])[:3])
        fatal = '<span class="fatal-tag small">红线</span>' if r.fatal else ""
        if not sufficient(r):
            fatal += f' <span class="pill low">{INSUFFICIENT}</span>'
        agent = _e(name) + (f' <span class="muted">{_e(aid)}</span>' if aid else "")
        idx_rows.append(
            f'<tr class="{"is-fatal" if r.fatal else ""}"><td class="num">{n}</td>'
            f'<td><a class="jump" href="#c{n}">{_e(r.call_id)}</a></td><td>{agent}</td><td>{_e(team)}</td>'
            f'<td class="num" data-sort="{r.score}"><b class="tone-text-{_tone(r)}">{_e(fmt_num(r.score, 1))}</b></td>'
            f'<td><span class="pill tone-{_tone(r)}">{_e(r.grade)}</span> {fatal}</td>'
            f'<td class="num">{len(r.findings)}</td><td class="rules">{main}</td></tr>')
    index = (f'<div class="panel scroll"><h3>通话索引</h3><table class="index sortable"><thead><tr>'
             f'<th class="num">#</th><th>通话</th><th>坐席</th><th>班组</th><th class="num">得分</th><th>等级</th>'
             f'<th class="num">问题</th><th>主要问题</th></tr></thead><tbody>{"".join(idx_rows)}</tbody></table></div>')
    return (f'<section class="overview" id="overview"><div class="stats">{cards}</div>'
            f'<div class="ov-grid">{dist}{top_html}</div>{index}</section>')


# ---- page --------------------------------------------------------------------------------------------

_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f5f6f8;--card:#fff;--accent:#2563eb;
--good:#15803d;--fair:#2563eb;--pass:#b45309;--fail:#b91c1c;
--sev-fatal:#b91c1c;--sev-critical:#dc2626;--sev-major:#d97706;--sev-minor:#0e7490;--sev-info:#6b7280;
--agent:#eef4ff;--agent-line:#c7d7fe;--cust:#f3f4f6;--cust-line:#e5e7eb;--evt:#7c3aed}
*{box-sizing:border-box}
html{scroll-behavior:smooth}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.6 system-ui,-apple-system,"Segoe UI","PingFang SC",
"Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei",sans-serif;
-webkit-print-color-adjust:exact;print-color-adjust:exact}
.page-head{background:#111827;color:#fff;padding:18px 0}
.wrap{max-width:1080px;margin:0 auto;padding:0 24px}
.page-head .wrap{display:flex;align-items:center;gap:16px;flex-wrap:wrap}
.page-head h1{margin:0;font-size:22px;font-weight:650;letter-spacing:.02em}
.page-head .sub{color:#9ca3af;font-size:13px}
.toolbar{margin-left:auto;display:flex;gap:10px;align-items:center;font-size:13px}
.toolbar label{display:flex;gap:6px;align-items:center;cursor:pointer;color:#e5e7eb}
.toolbar button{font:inherit;border:1px solid #4b5563;background:#1f2937;color:#f9fafb;border-radius:6px;padding:4px 12px;cursor:pointer}
.toolbar button:hover{background:#374151}
main.wrap{padding-top:20px;padding-bottom:40px}
h2,h3,h4{margin:0}
h3{font-size:15px;font-weight:650;margin-bottom:10px}
h4{font-size:13px;color:var(--muted);margin:12px 0 6px;font-weight:600}
.muted{color:var(--muted)}
.panel,.call,.overview .stat{background:var(--card);border:1px solid var(--line);border-radius:10px}
.panel{padding:14px 16px}
.count{display:inline-block;min-width:20px;padding:0 6px;border-radius:10px;background:#eef2ff;color:#3730a3;font-size:12px;text-align:center;margin-left:4px}
/* overview */
.overview{margin-bottom:28px;display:grid;gap:14px}
.stats{display:grid;grid-template-columns:repeat(4,1fr);gap:14px}
.stat{padding:12px 16px}
.stat-v{font-size:26px;font-weight:700;line-height:1.2}
.stat-k{color:var(--muted);font-size:13px}
.stat.bad .stat-v{color:var(--fail)}
.ov-grid{display:grid;grid-template-columns:1fr 1.4fr;gap:14px}
.ov-grid>*,.call-grid>*{min-width:0}
.panel.scroll{overflow-x:auto}
.hist{display:grid;gap:4px}
.band{display:grid;grid-template-columns:4.5em 1fr 2em;gap:10px;align-items:center;font-size:12.5px}
.band-k{color:var(--muted);font-variant-numeric:tabular-nums}
.band-v{text-align:right;font-variant-numeric:tabular-nums}
.dist{display:flex;height:30px;border-radius:6px;overflow:hidden;font-size:12px;color:#fff;font-weight:600}
.dist .seg{display:flex;align-items:center;justify-content:center;white-space:nowrap;overflow:hidden;min-width:2.6em}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px;white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}
td.neg{color:var(--fail)}
td.rule,span.rule{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:12.5px;font-weight:600}
.mini{display:inline-block;width:60px;height:6px;background:#eef2f7;border-radius:3px;margin-right:8px;vertical-align:middle}
.mini div{height:100%;background:#94a3b8;border-radius:3px}
table.index a{color:var(--accent);text-decoration:none;font-weight:600}
table.index a:hover{text-decoration:underline}
table.index tr.is-fatal td:first-child{box-shadow:inset 3px 0 var(--fail)}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th.asc::after{content:" ▲";font-size:9px}
table.sortable th.desc::after{content:" ▼";font-size:9px}
.pill{display:inline-block;padding:0 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600}
.tone-good.pill,.seg.tone-good,.fill.tone-good{background:var(--good)}
.tone-fair.pill,.seg.tone-fair,.fill.tone-fair{background:var(--fair)}
.tone-pass.pill,.seg.tone-pass,.fill.tone-pass{background:var(--pass)}
.tone-fail.pill,.seg.tone-fail,.fill.tone-fail{background:var(--fail)}
.tone-text-good{color:var(--good)}.tone-text-fair{color:var(--fair)}.tone-text-pass{color:var(--pass)}.tone-text-fail{color:var(--fail)}
/* call */
.call{padding:20px 22px;margin-bottom:28px;scroll-margin-top:12px}
.call-head{display:flex;gap:16px;align-items:center;justify-content:space-between}
.call-title h2{font-size:19px;font-weight:650;word-break:break-all}
.call-title .num{display:inline-block;background:#111827;color:#fff;border-radius:6px;font-size:13px;padding:0 7px;margin-right:8px;vertical-align:3px}
.call-meta{color:#374151;font-size:13.5px;margin-top:4px}
.call-meta .sep{color:#d1d5db;margin:0 2px}
.scorebox{flex:none;text-align:center;min-width:104px;padding:8px 14px;border-radius:12px;color:#fff}
.scorebox .score{font-size:34px;font-weight:750;line-height:1.1;font-variant-numeric:tabular-nums}
.scorebox .grade{font-size:14px;font-weight:600;opacity:.95}
.scorebox.tone-good{background:var(--good)}.scorebox.tone-fair{background:var(--fair)}
.scorebox.tone-pass{background:var(--pass)}.scorebox.tone-fail{background:var(--fail)}
.fatal-banner{margin-top:14px;display:flex;gap:10px;align-items:center;background:#fef2f2;border:1px solid #fecaca;
border-left:5px solid var(--fail);color:#7f1d1d;padding:10px 14px;border-radius:8px;font-weight:500}
.fatal-tag{flex:none;background:var(--fail);color:#fff;font-weight:700;border-radius:5px;padding:1px 9px;letter-spacing:.1em}
.fatal-tag.small{font-size:11px;padding:0 6px;letter-spacing:0}
.coverage{font-size:12px;color:var(--muted,#6b7280);margin-top:4px}.coverage.low,.pill.low{color:#92400e;background:#fef3c7;border-radius:5px;padding:0 6px;white-space:nowrap}
.dims-note{font-size:12px;color:#991b1b;margin:0 0 8px}.stat.warn .stat-v{color:#b45309}
.call-grid{display:grid;grid-template-columns:1fr 1fr;gap:14px;margin-top:16px}
.dim-row{display:grid;grid-template-columns:5.5em 1fr auto 3em;gap:10px;align-items:center;font-size:13.5px;padding:3px 0}
.dim-name{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.bar{height:10px;background:#eef2f7;border-radius:5px;overflow:hidden}
.fill{height:100%;border-radius:5px}
.dim-val{white-space:nowrap;font-variant-numeric:tabular-nums;text-align:right}
.loss{color:var(--fail);font-size:12px;text-align:right;font-variant-numeric:tabular-nums}
ol.issues,ul.issues{list-style:none;margin:0;padding:0}
.issues li a{display:grid;grid-template-columns:4.6em 1fr auto 3em;gap:8px;align-items:center;padding:5px 8px;border-radius:6px;
color:inherit;text-decoration:none;border-left:3px solid transparent;font-size:13.5px}
.issues li a:hover{background:#f3f4f6}
.issues li.none{color:var(--good);padding:4px 0}
.issues .itime{color:var(--muted);font-variant-numeric:tabular-nums;font-size:12.5px}
.issues .pts{color:var(--fail);text-align:right;font-variant-numeric:tabular-nums}
.issues .rule.evt{color:var(--evt)}
.issues li.sev-fatal a,.issues li.sev-critical a{border-left-color:var(--sev-critical)}
.issues li.sev-major a{border-left-color:var(--sev-major)}
.issues li.sev-minor a{border-left-color:var(--sev-minor)}
.call-level{margin-top:16px}
.call-level .finding{max-width:none}
.transcript-head{display:flex;align-items:baseline;justify-content:space-between;margin-top:22px;border-top:1px solid var(--line);padding-top:16px}
.legend{display:flex;gap:10px;font-size:12px;color:var(--muted)}
.lg::before{content:"";display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.lg-agent::before{background:var(--agent);border:1px solid var(--agent-line)}
.lg-customer::before{background:var(--cust);border:1px solid #d1d5db}
.lg-hl::before{background:#fde68a;border-bottom:2px solid var(--sev-major)}
.lg-evt::before{background:#ede9fe;border-bottom:2px dotted var(--evt)}
.transcript{display:flex;flex-direction:column;gap:10px;margin-top:12px}
.utt{display:flex;flex-direction:column;align-items:flex-start;max-width:100%;scroll-margin-top:80px;border-radius:10px;padding:2px 4px}
.utt.role-customer{align-items:flex-end}
.utt.role-system{align-items:center}
.utt-meta{font-size:12px;color:var(--muted);display:flex;gap:8px;padding:0 6px 2px;font-variant-numeric:tabular-nums}
.utt-meta .who{font-weight:600;color:#374151}
.role-agent .utt-meta .who{color:#1d4ed8}
.utt-meta .idx{color:#9ca3af}
.bubble{max-width:78%;padding:8px 12px;border-radius:12px;border:1px solid var(--cust-line);background:var(--cust)}
.role-agent .bubble{background:var(--agent);border-color:var(--agent-line);border-top-left-radius:3px}
.role-customer .bubble{border-top-right-radius:3px}
.role-system .bubble{background:#fafafa;border-style:dashed;font-size:13px;color:var(--muted)}
.utt.flagged .bubble{border-color:#f59e0b;box-shadow:0 0 0 1px #fde68a}
.text{margin:0;white-space:pre-wrap;word-break:break-word}
mark.hl{background:#fde68a;color:inherit;border-bottom:2px solid var(--sev-major);border-radius:2px;padding:0 1px;cursor:pointer}
mark.hl.sev-fatal,mark.hl.sev-critical{background:#fecaca;border-bottom-color:var(--sev-critical)}
mark.hl.sev-minor{background:#cffafe;border-bottom-color:var(--sev-minor)}
mark.hl.sev-info{background:#e5e7eb;border-bottom-color:var(--sev-info)}
mark.hl.evt{background:#ede9fe;border-bottom:2px dotted var(--evt)}
.tags{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}
.evt-tag{font-size:12px;color:var(--evt);background:#f5f3ff;border:1px solid #ddd6fe;border-radius:10px;padding:0 8px}
.finds{display:flex;flex-direction:column;gap:6px;margin-top:6px;width:78%;max-width:78%}
.role-customer .finds{align-self:flex-end}
.finding{background:#fff;border:1px solid var(--line);border-left:4px solid var(--sev-major);border-radius:8px;padding:8px 12px;font-size:13.5px;scroll-margin-top:80px}
.finding.sev-fatal,.finding.sev-critical{border-left-color:var(--sev-critical);background:#fffafa}
.finding.sev-minor{border-left-color:var(--sev-minor)}
.finding.sev-info{border-left-color:var(--sev-info)}
.call-level .finding{margin-bottom:8px}
.finding header{display:flex;flex-wrap:wrap;gap:8px;align-items:baseline}
.finding .fname{font-weight:650}
.finding .sev,.finding .fdim{font-size:11.5px;border-radius:4px;padding:0 6px;background:#f3f4f6;color:#4b5563}
.finding.sev-fatal .sev,.finding.sev-critical .sev{background:var(--sev-critical);color:#fff}
.finding.sev-major .sev{background:#fef3c7;color:#92400e}
.finding .pts{margin-left:auto;color:var(--fail);font-weight:650;font-variant-numeric:tabular-nums}
.finding p{margin:4px 0 0}
.finding .lbl{display:inline-block;font-size:11.5px;font-weight:600;border-radius:4px;padding:0 6px;margin-right:8px;background:#f3f4f6;color:#4b5563}
.finding .sugg{background:#f0fdf4;border:1px solid #bbf7d0;border-radius:6px;padding:5px 8px;margin-top:6px}
.finding .sugg .lbl{background:var(--good);color:#fff}
.sugg-text{color:#14532d;font-weight:500}
.conv-event{display:flex;align-items:center;gap:10px;color:var(--muted);font-size:12.5px}
.conv-event::before,.conv-event::after{content:"";flex:1;border-top:1px dashed #cbd5e1}
details.na{margin-top:18px;border:1px solid var(--line);border-radius:8px;padding:8px 12px;background:#fcfcfd}
details.na summary{cursor:pointer;font-weight:600;font-size:14px}
details.na table{margin-top:8px}
ul.notes{margin:12px 0 0;padding-left:20px;color:var(--muted);font-size:13px}
a.back{display:inline-block;margin-top:14px;font-size:13px;color:var(--accent);text-decoration:none}
.only-flagged .utt:not(.flagged):not(.has-evt){display:none}
@keyframes flash{0%{background:#fef08a}100%{background:transparent}}
.utt.flash,.finding.flash,.utt:target,.finding:target{animation:flash 1.8s ease-out}
.utt.flash .bubble{box-shadow:0 0 0 3px #facc15}
.finding.flash{box-shadow:0 0 0 3px #facc15}
footer{color:var(--muted);font-size:12px;text-align:center;padding:10px 0 30px}
@media (max-width:760px){.stats{grid-template-columns:repeat(2,1fr)}.ov-grid,.call-grid{grid-template-columns:1fr}
.bubble,.finds{max-width:92%;width:auto}}
@media print{
body{background:#fff;font-size:12px}
.page-head{background:#fff;color:#111;border-bottom:2px solid #111;padding:0 0 8px}
.page-head .sub{color:#555}
.no-print,.toolbar{display:none!important}
.wrap{max-width:none;padding:0}
.call{border:none;padding:0;break-before:page}
.call:first-child{break-before:auto}
.panel{break-inside:avoid}
.utt,.finding,.fatal-banner,tr{break-inside:avoid}
.only-flagged .utt{display:flex!important}
html{scroll-behavior:auto}
@page{margin:14mm 12mm}
}
"""

_JS = """
(function(){
  "use strict";
  function flash(el){ if(!el) return; el.classList.remove("flash"); void el.offsetWidth; el.classList.add("flash");
    setTimeout(function(){ el.classList.remove("flash"); }, 1900); }
  function go(id, card){
    var el = document.getElementById(id); if(!el) return false;
    el.scrollIntoView({behavior: "smooth", block: "center"});
    if(history.replaceState) history.replaceState(null, "", "#" + id);
    flash(el); if(card && card !== id) flash(document.getElementById(card));
    return true;
  }
  document.addEventListener("click", function(ev){
    var a = ev.target.closest ? ev.target.closest("a.jump") : null;
    if(a){ var h = a.getAttribute("href") || ""; if(h.charAt(0) === "#" && go(h.slice(1), a.getAttribute("data-card"))) ev.preventDefault(); return; }
    var m = ev.target.closest ? ev.target.closest("mark[data-ref]") : null;
    if(m){ m.getAttribute("data-ref").split(" ").forEach(function(id){
      var c = document.getElementById(id); if(c){ flash(c); } }); }
  });
  var cb = document.getElementById("only-flagged");
  if(cb){ cb.addEventListener("change", function(){ document.body.classList.toggle("only-flagged", cb.checked); }); }
  var pb = document.getElementById("print-btn");
  if(pb){ pb.addEventListener("click", function(){ window.print(); }); }
  var opened = [];
  window.addEventListener("beforeprint", function(){ opened = [];
    document.querySelectorAll("details:not([open])").forEach(function(d){ d.open = true; opened.push(d); }); });
  window.addEventListener("afterprint", function(){ opened.forEach(function(d){ d.open = false; }); opened = []; });
  document.querySelectorAll("table.sortable").forEach(function(t){
    t.querySelectorAll("th").forEach(function(th, col){
      th.addEventListener("click", function(){
        var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var asc = !th.classList.contains("asc");
        t.querySelectorAll("th").forEach(function(x){ x.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        function key(r){ var c = r.cells[col]; var s = c.getAttribute("data-sort"); var v = s !== null ? s : c.textContent.trim();
          var n = parseFloat(v); return isNaN(n) ? v : n; }
        rows.sort(function(a, b){ var x = key(a), y = key(b);
          var r = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y), "zh");
          return asc ? r : -r; });
        rows.forEach(function(r){ body.appendChild(r); });
      });
    });
  });
})();
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_JS.encode("utf-8")).digest()).decode("ascii")
_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
        "media-src data: file: blob: 'self'; "
        f"script-src 'sha256-{_SCRIPT_HASH}' 'sha256-{TIMELINE_JS_SHA256}'; base-uri 'none'; form-action 'none'")


def render_html(reports: Sequence[Report] | Iterable[Report], title: str = DEFAULT_TITLE, *,
                base_dir: str | Path | None = None, embed_audio: bool = False,
                include_insufficient: bool = False) -> str:
    """The whole report as one self-contained HTML document (UTF-8 text).

    Recordings get a timeline and a player: ``embed_audio`` puts the audio inside the page (data: URI),
    otherwise the player points at the audio file relative to ``base_dir`` (the folder of the page).
    Calls marked 「未充分质检」 stay out of the overview's mean, grades and histogram unless
    ``include_insufficient``.
    """
    items = list(reports)
    audio_opts: dict[str, Any] = {"embed": embed_audio, "base_dir": base_dir}
    has_audio = any(r.conversation is not None and r.conversation.metrics.get("audio") for r in items)
    several = len(items) > 1
    rulebooks = {(r.rulebook.get("name", ""), r.rulebook.get("version", "")) for r in items if r.rulebook}
    sub_bits = [f"{len(items)} 通通话"]
    if len(rulebooks) == 1:
        name, version = next(iter(rulebooks))
        if name:
            sub_bits.append(f"规则库 {name} {version}".strip())
    head = (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="generator" content="kefuqa">'
        f"<title>{_e(title)}</title><style>{_CSS}{TIMELINE_CSS if has_audio else ''}</style></head>"
        '<body id="top"><header class="page-head"><div class="wrap">'
        f'<h1>{_e(title)}</h1><span class="sub">{_e(" · ".join(sub_bits))}</span>'
        '<div class="toolbar no-print"><label><input type="checkbox" id="only-flagged"> 只看问题发言</label>'
        '<button type="button" id="print-btn">打印</button></div></div></header><main class="wrap">')
    parts = [head]
    if several:
        parts.append(_overview(items, include_insufficient))
    if not items:
        parts.append('<p class="muted">没有可评分的通话。</p>')
    for n, r in enumerate(items, 1):
        parts.append(_call_section(r, n, several, audio_opts))
    parts.append("</main><footer>由 kefuqa 客服质检生成 · 建议话术出自所依据的服务规范</footer>")
    if has_audio:
        parts.append(f"<script>{TIMELINE_JS}</script>")
    parts.append(f"<script>{_JS}</script></body></html>\n")
    return "".join(parts)


def write_html(reports: Iterable[Report], out: TextIO, *, title: str = DEFAULT_TITLE,
               base_dir: str | Path | None = None, embed_audio: bool = False,
               include_insufficient: bool = False) -> int:
    """Write `render_html` to ``out``; returns the number of reports. The page needs all reports first
    (its index comes before the calls), so this is not streamed."""
    items = list(reports)
    out.write(render_html(items, title=title, base_dir=base_dir, embed_audio=embed_audio,
                          include_insufficient=include_insufficient))
    return len(items)
