"""The audio timeline of a call for the HTML report: both parties' speech, silences, overlaps, holds and
findings on one time axis (inline SVG), with an ``<audio>`` player that jumps to a finding when clicked.

``render_timeline(report)`` returns an HTML fragment with no network assets. Its script and style are
the constants `TIMELINE_JS` and `TIMELINE_CSS`; they are the same for every call, so a page with many
timelines includes them once (``render_timeline(report, assets=False)``) and can cover the script with
its Content-Security-Policy hash (`TIMELINE_JS_SHA256`). The page's CSP must also allow the audio:
``media-src data: file: 'self'`` (or ``*`` for recordings served over HTTP).

Any element of the page with ``data-kefuqa-seek="12.3"`` (and optionally ``data-kefuqa-timeline="<id>"``,
see `timeline_id`) seeks the player to that second when clicked — a findings table can link that way. An
element with ``data-kefuqa-timeline="<id>" data-kefuqa-from="3.2" data-kefuqa-to="7.0"`` (a transcript
utterance) has the class ``kq-playing`` while that timeline's player is between those seconds.
"""

from __future__ import annotations

import base64
import hashlib
import html
import mimetypes
from collections.abc import Callable
from pathlib import Path

from kefuqa.model import Conversation, Report

WIDTH = 1000  # SVG user units
LEFT = 64  # room for lane labels
LANE_H = 22
MIN_SILENCE = 1.0  # gaps shorter than this are not drawn as silences (s)

_ROLE_LABEL = {"agent": "坐席", "customer": "客户"}
_SEVERITY_COLOUR = {"fatal": "#b91c1c", "critical": "#dc2626", "major": "#ea580c", "minor": "#ca8a04",
                    "info": "#2563eb"}

TIMELINE_CSS = """
.kq-tl{margin:12px 0;font:12px/1.4 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif}
.kq-tl audio{width:100%;margin:4px 0}
.kq-tl svg{width:100%;height:auto;display:block;cursor:pointer;user-select:none}
.kq-tl .kq-agent{fill:#2563eb}.kq-tl .kq-customer{fill:#16a34a}
.kq-tl .kq-overlap{fill:#dc2626;opacity:.75}.kq-tl .kq-silence{fill:#9ca3af;opacity:.45}
.kq-tl .kq-hold{fill:#f59e0b;opacity:.35}.kq-tl .kq-lane{fill:#f3f4f6}
.kq-tl .kq-label{fill:#374151;font-size:11px}.kq-tl .kq-tick{stroke:#d1d5db}
.kq-tl .kq-ticklabel{fill:#6b7280;font-size:10px}.kq-tl .kq-head{stroke:#111827;stroke-width:1.5}
.kq-tl .kq-env{fill:none;stroke:#111827;stroke-width:1;opacity:.55;pointer-events:none}
.kq-tl .kq-finding{cursor:pointer}.kq-tl .kq-finding:hover{opacity:.7}
.kq-tl ol.kq-findings{margin:6px 0 0;padding-left:20px}
.kq-tl ol.kq-findings li{cursor:pointer}.kq-tl ol.kq-findings li:hover{text-decoration:underline}
.kq-tl .kq-legend span{display:inline-block;margin-right:10px}
.kq-tl .kq-legend i{display:inline-block;width:10px;height:10px;margin-right:3px;vertical-align:-1px}
[data-kefuqa-seek]{cursor:pointer}.kq-seekable:hover{text-decoration:underline}
.kq-playing{outline:2px solid #2563eb;outline-offset:2px;border-radius:6px}
"""

# One script for every timeline on the page: delegated clicks, no inline handlers (CSP-friendly).
TIMELINE_JS = """(function(){
if(window.__kqTimeline)return;window.__kqTimeline=1;
function tl(el){var id=el.getAttribute('data-kefuqa-timeline');
 if(id){return document.getElementById(id);}var c=el.closest('.kq-tl');if(c)return c;
 var all=document.querySelectorAll('.kq-tl');return all.length===1?all[0]:null;}
function seek(box,t){var a=box&&box.querySelector('audio');if(!a)return;
 try{a.currentTime=Math.max(0,t);}catch(e){}var p=a.play();if(p&&p.catch)p.catch(function(){});}
document.addEventListener('click',function(ev){
 var el=ev.target.closest&&ev.target.closest('[data-kefuqa-seek]');
 if(el){ev.preventDefault();seek(tl(el),parseFloat(el.getAttribute('data-kefuqa-seek'))||0);return;}
 var svg=ev.target.closest&&ev.target.closest('.kq-tl svg');
 if(svg){var box=svg.closest('.kq-tl'),r=svg.getBoundingClientRect(),
  vb=svg.viewBox.baseVal,x=(ev.clientX-r.left)*vb.width/r.width,
  l=parseFloat(svg.getAttribute('data-left')),w=parseFloat(svg.getAttribute('data-plot')),
  d=parseFloat(svg.getAttribute('data-duration'));
  if(x>=l&&d>0)seek(box,(x-l)/w*d);}
});
function track(a){var box=a.closest('.kq-tl'),svg=box&&box.querySelector('svg'),
 head=svg&&svg.querySelector('.kq-head');if(!head)return;
 var l=parseFloat(svg.getAttribute('data-left')),w=parseFloat(svg.getAttribute('data-plot')),
 d=parseFloat(svg.getAttribute('data-duration')),
 utts=box.id?document.querySelectorAll('[data-kefuqa-timeline="'+box.id+'"][data-kefuqa-to]'):[];
 a.addEventListener('timeupdate',function(){var t=a.currentTime,x=l+Math.min(1,t/d)*w;
  head.setAttribute('x1',x);head.setAttribute('x2',x);
  for(var i=0;i<utts.length;i++){var u=utts[i];u.classList.toggle('kq-playing',
   t>=parseFloat(u.getAttribute('data-kefuqa-from'))&&t<=parseFloat(u.getAttribute('data-kefuqa-to')));}});}
function init(){var as=document.querySelectorAll('.kq-tl audio');for(var i=0;i<as.length;i++)track(as[i]);}
if(document.readyState==='loading')document.addEventListener('DOMContentLoaded',init);else init();
})();"""

TIMELINE_JS_SHA256 = base64.b64encode(hashlib.sha256(TIMELINE_JS.encode("utf-8")).digest()).decode("ascii")


def timeline_id(report: Report) -> str:
    """The element id of a report's timeline (stable for a call id)."""
    return "kq-tl-" + hashlib.sha1(report.call_id.encode("utf-8")).hexdigest()[:10]


def audio_source(conv: Conversation, *, embed: bool = False, base_dir: str | Path | None = None) -> str | None:
    """The ``src`` of the player: a data: URI of the recording (``embed``), else the recording's absolute
    ``file:`` URI, so that the page keeps playing when it is moved or mailed within the machine (a path
    relative to the page broke as soon as the page moved). `base_dir` is accepted for compatibility: a
    relative recording path is taken relative to the current folder, as the reader recorded it."""
    path = conv.metrics.get("audio_path") or conv.source
    if not path:
        return None
    p = Path(str(path))
    if embed and p.is_file():
        mime = _mime(p)
        return f"data:{mime};base64," + base64.b64encode(p.read_bytes()).decode("ascii")
    if p.is_absolute() or p.exists() or base_dir is not None:
        return p.resolve().as_uri()
    return p.as_posix()


def _mime(p: Path) -> str:
    ext = p.suffix.lower()
    return {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}.get(
        ext, mimetypes.guess_type(p.name)[0] or "application/octet-stream")


def _fmt(t: float) -> str:
    t = max(0.0, t)
    m, s = divmod(t, 60.0)
    return f"{int(m)}:{s:04.1f}"


def _tick_step(duration: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if duration / step <= 12:
            return float(step)
    return 7200.0


def _merge(iv: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(iv):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def render_timeline(report: Report, *, embed: bool = False, base_dir: str | Path | None = None,
                    audio_src: str | None = None, assets: bool = True) -> str:
    """HTML fragment: player + SVG timeline + clickable list of the findings that have a time.

    `embed` puts the recording in the page as a data: URI; otherwise the player points at the file,
    relative to `base_dir` when given (or at `audio_src`). `assets=False` leaves out TIMELINE_CSS and
    TIMELINE_JS for a page that includes them once.
    """
    conv = report.conversation
    if conv is None:
        return ""
    e = html.escape
    tid = timeline_id(report)
    utts = [u for u in conv.utterances if u.start is not None and u.end is not None]
    ends = [u.end for u in utts] + [ev.end or ev.at or 0.0 for ev in conv.events]
    ends += [f.end or f.start or 0.0 for f in report.findings]
    duration = float(conv.metrics.get("duration_seconds") or 0.0) or max([1.0, *[x for x in ends if x]])
    duration = max(duration, 0.1)
    plot = WIDTH - LEFT - 24

    def xpos(t: float) -> float:
        return LEFT + max(0.0, min(1.0, t / duration)) * plot

    lanes = ["agent", "customer", "both", "findings"]
    lane_label = {"agent": "坐席", "customer": "客户", "both": "静音/重叠", "findings": "问题"}
    top = 4
    y = {name: top + i * (LANE_H + 6) for i, name in enumerate(lanes)}
    axis_y = top + len(lanes) * (LANE_H + 6) + 2
    height = axis_y + 18
    svg: list[str] = [
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="通话时间轴" data-left="{LEFT}" '
        f'data-plot="{plot}" data-duration="{duration:.3f}" xmlns="http://www.w3.org/2000/svg">']
    for name in lanes:
        svg.append(f'<rect class="kq-lane" x="{LEFT}" y="{y[name]}" width="{plot}" height="{LANE_H}"/>'
                   f'<text class="kq-label" x="4" y="{y[name] + 15}">{lane_label[name]}</text>')
    # ticks
    step = _tick_step(duration)
    t = 0.0
    while t <= duration + 1e-6:
        x = xpos(t)
        svg.append(f'<line class="kq-tick" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{axis_y}"/>'
                   f'<text class="kq-ticklabel" x="{x:.1f}" y="{axis_y + 12}" text-anchor="middle">'
                   f'{_fmt(t)[:-2]}</text>')
        t += step
    # holds (across all lanes)
    for ev in conv.events:
        if ev.type in ("hold", "mute") and ev.start is not None and ev.end is not None:
            x0, x1 = xpos(ev.start), xpos(ev.end)
            svg.append(f'<rect class="kq-hold" x="{x0:.1f}" y="{top}" width="{max(1.0, x1 - x0):.1f}" '
                       f'height="{axis_y - top}"><title>等候 {_fmt(ev.start)}–{_fmt(ev.end)}</title></rect>')
    # speech
    by_role: dict[str, list[tuple[float, float]]] = {"agent": [], "customer": []}
    for i, u in enumerate(conv.utterances):
        if u.start is None or u.end is None or u.role not in by_role:
            continue
        by_role[u.role].append((u.start, u.end))
        x0, x1 = xpos(u.start), xpos(u.end)
        tip = f"{_ROLE_LABEL[u.role]} #{i} {_fmt(u.start)}–{_fmt(u.end)}"
        if u.attrs.get("loudness_dbfs") is not None:
            tip += f" · {u.attrs['loudness_dbfs']} dBFS"
        if u.attrs.get("emotion"):
            tip += f" · {u.attrs['emotion']}"
        if u.text:
            tip += f"\n{u.text[:120]}"
        svg.append(f'<rect class="kq-{u.role}" x="{x0:.1f}" y="{y[u.role] + 3}" width="{max(1.0, x1 - x0):.1f}" '
                   f'height="{LANE_H - 6}" data-kefuqa-seek="{u.start:.2f}"><title>{e(tip)}</title></rect>')
    # each channel's loudness envelope (recordings), −70…0 dBFS over the lane's height
    svg.extend(_envelope(conv.metrics.get("envelope"), y, xpos))
    # silences and overlaps
    merged = _merge(by_role["agent"] + by_role["customer"])
    cur = 0.0
    for s, en in [*merged, (duration, duration)]:
        if s - cur >= MIN_SILENCE:
            x0, x1 = xpos(cur), xpos(s)
            svg.append(f'<rect class="kq-silence" x="{x0:.1f}" y="{y["both"] + 3}" width="{x1 - x0:.1f}" '
                       f'height="{LANE_H - 6}" data-kefuqa-seek="{cur:.2f}"><title>静音 {s - cur:.1f} 秒 '
                       f'{_fmt(cur)}–{_fmt(s)}</title></rect>')
        cur = max(cur, en)
    for sa, ea, sb, eb in _pairs(sorted(by_role["agent"]), sorted(by_role["customer"])):
        s, en = max(sa, sb), min(ea, eb)
        who = "坐席抢话" if sa > sb else "客户插话"
        x0, x1 = xpos(s), xpos(en)
        svg.append(f'<rect class="kq-overlap" x="{x0:.1f}" y="{y["both"] + 3}" width="{max(1.0, x1 - x0):.1f}" '
                   f'height="{LANE_H - 6}" data-kefuqa-seek="{s:.2f}"><title>重叠 {en - s:.1f} 秒 · {who} '
                   f'{_fmt(s)}</title></rect>')
    # findings
    timed = [f for f in report.findings if f.start is not None]
    timed.sort(key=lambda f: (f.start, f.rule))
    fy = y["findings"]
    for f in timed:
        x0 = xpos(f.start or 0.0)
        colour = _SEVERITY_COLOUR.get(f.severity, "#6b7280")
        if f.end is not None and f.end > (f.start or 0.0):
            x1 = xpos(f.end)
            svg.append(f'<rect x="{x0:.1f}" y="{fy + 15}" width="{max(1.0, x1 - x0):.1f}" height="4" '
                       f'fill="{colour}" opacity=".5"/>')
        svg.append(f'<path class="kq-finding" d="M{x0:.1f} {fy + 14} l-6 -10 h12 z" fill="{colour}" '
                   f'data-kefuqa-seek="{f.start:.2f}"><title>{e(f.rule)} {e(f.name)} {_fmt(f.start or 0.0)}'
                   f'\n{e(f.message)}</title></path>')
    svg.append(f'<line class="kq-head" x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{axis_y}"/>')
    svg.append("</svg>")

    src = audio_src if audio_src is not None else audio_source(conv, embed=embed, base_dir=base_dir)
    parts = [f'<div class="kq-tl" id="{tid}" data-call-id="{e(report.call_id)}">']
    if assets:
        parts.append(f"<style>{TIMELINE_CSS}</style>")
    if src:
        parts.append(f'<audio controls preload="metadata" src="{e(src, quote=True)}"></audio>')
    else:
        parts.append('<p class="kq-noaudio">（录音文件不可用）</p>')
    parts.append("".join(svg))
    parts.append('<div class="kq-legend"><span><i style="background:#2563eb"></i>坐席</span>'
                 '<span><i style="background:#16a34a"></i>客户</span><span><i style="background:#dc2626">'
                 '</i>重叠</span><span><i style="background:#9ca3af"></i>静音</span><span><i '
                 'style="background:#f59e0b"></i>等候</span></div>')
    if timed:
        parts.append('<ol class="kq-findings">')
        for f in timed:
            span = _fmt(f.start or 0.0) + (f"–{_fmt(f.end)}" if f.end is not None else "")
            parts.append(f'<li data-kefuqa-seek="{f.start:.2f}"><b>{e(f.rule)}</b> {e(f.name)} '
                         f'<span class="kq-time">{span}</span> {e(f.message)}</li>')
        parts.append("</ol>")
    if assets:
        parts.append(f"<script>{TIMELINE_JS}</script>")
    parts.append("</div>")
    return "".join(parts)


def _envelope(env: object, y: dict[str, int], xpos: Callable[[float], float]) -> list[str]:
    """Polylines of the loudness envelope the audio layer stores (``metrics["envelope"]``) in the agent's
    and the customer's lanes (a mono recording's in both)."""
    if not isinstance(env, dict) or not isinstance(env.get("step"), int | float) or env["step"] <= 0:
        return []
    out = []
    for role in ("agent", "customer"):
        values = env.get(role, env.get("mix"))
        if not isinstance(values, list) or not values:
            continue
        base = y[role] + LANE_H - 1
        pts = " ".join(f"{xpos(i * env['step']):.1f},{base - (min(0.0, max(-70.0, float(v))) + 70.0) / 70.0 * (LANE_H - 2):.1f}"
                       for i, v in enumerate(values) if isinstance(v, int | float))
        out.append(f'<polyline class="kq-env" points="{pts}"><title>{_ROLE_LABEL[role]}音量包络（dBFS）</title></polyline>')
    return out


def _pairs(a: list[tuple[float, float]], b: list[tuple[float, float]]):
    """(sa, ea, sb, eb) for every overlapping pair of intervals of `a` and `b` (both sorted)."""
    j0 = 0
    for sa, ea in a:
        while j0 < len(b) and b[j0][1] <= sa:
            j0 += 1
        for sb, eb in b[j0:]:
            if sb >= ea:
                break
            if min(ea, eb) > max(sa, sb):
                yield sa, ea, sb, eb


__all__ = ["render_timeline", "timeline_id", "audio_source", "TIMELINE_CSS", "TIMELINE_JS",
           "TIMELINE_JS_SHA256"]
