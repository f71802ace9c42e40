"""Small inline SVG charts, drawn on the server (no JavaScript library, no CDN). Every label is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

FONT = "font-family=\"inherit\""
GRID = "#e5e7eb"
INK = "#475569"
BLUE = "#2563eb"
RED = "#dc2626"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 0.05 else f"{v:.1f}"


def line_chart(points: Sequence[tuple[str, float, int]], *, title: str, width: int = 560, height: int = 230,
               y_min: float = 0, y_max: float = 100, band: tuple[float, str] | None = (60, "合格线")) -> Markup:
    """Average score over time: points are (label, value, calls)."""
    if not points:
        return Markup(f'<div class="chart-empty">{_e(title)}：暂无数据</div>')
    left, right, top, bottom = 36, 12, 12, 28
    w, h = width - left - right, height - top - bottom
    lo = min(y_min, min(p[1] for p in points))
    span = (y_max - lo) or 1

    def x(i: int) -> float:
        return left + (w * (i + 0.5) / len(points))

    def y(v: float) -> float:
        return top + h - (v - lo) / span * h

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" {FONT}>',
             f"<title>{_e(title)}</title>"]
    for tick in range(int(lo // 20 * 20), int(y_max) + 1, 20):
        if tick < lo:
            continue
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     f'stroke="{GRID}"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
                     f'font-size="12" fill="{INK}">{tick}</text>')
    if band is not None and lo <= band[0] <= y_max:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(band[0]):.1f}" y2="{y(band[0]):.1f}" '
                     f'stroke="{RED}" stroke-dasharray="4 4" stroke-width="1"/>'
                     f'<text x="{width - right}" y="{y(band[0]) - 4:.1f}" text-anchor="end" font-size="10" '
                     f'fill="{RED}">{_e(band[1])}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(p[1]):.1f}" for i, p in enumerate(points))
    parts.append(f'<path d="{path}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    step = max(1, len(points) // 8)
    for i, (label, value, calls) in enumerate(points):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" fill="{BLUE}">'
                     f"<title>{_e(label)}：均分 {_fmt(value)}（{calls} 通）</title></circle>")
        if i % step == 0 or i == len(points) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" font-size="12" '
                         f'fill="{INK}">{_e(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, width: int = 560, unit: str = "",
              color: str = BLUE, label_width: int = 190, links: Sequence[str | None] | None = None,
              colors: Sequence[str] | None = None, top: float | None = None) -> Markup:
    """Horizontal bars in the order given (most violated rules, agent ranking); `top` is the full-scale
    value (default: the largest), `colors` one colour per bar."""
    if not items:
        return Markup(f'<div class="chart-empty">{_e(title)}：暂无数据</div>')
    row = 26
    height = row * len(items) + 8
    top_value = top or max(v for _, v in items) or 1
    w = width - label_width - 60
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" {FONT}>',
             f"<title>{_e(title)}</title>"]
    for i, (label, value) in enumerate(items):
        yy = 4 + i * row
        bw = max(2.0, w * value / top_value)
        text = _e(label if len(label) <= 16 else label[:15] + "…")
        link = links[i] if links and i < len(links) else None
        label_svg = (f'<text x="{label_width - 8}" y="{yy + 16}" text-anchor="end" font-size="12" fill="{INK}">'
                     f"{text}</text>")
        if link:
            label_svg = f'<a href="{_e(link)}">{label_svg}</a>'
        fill = colors[i] if colors and i < len(colors) else color
        parts.append(f'{label_svg}<rect x="{label_width}" y="{yy + 4}" width="{bw:.1f}" height="16" rx="3" '
                     f'fill="{fill}"><title>{_e(label)}：{_fmt(value)}{_e(unit)}</title></rect>'
                     f'<text x="{label_width + bw + 6:.1f}" y="{yy + 16}" font-size="12" fill="{INK}">'
                     f"{_fmt(value)}{_e(unit)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(items: Sequence[tuple[str, int]], *, title: str, width: int = 560, height: int = 230,
                 colors: Sequence[str] | None = None) -> Markup:
    """Vertical columns (score distribution)."""
    if not items or not any(v for _, v in items):
        return Markup(f'<div class="chart-empty">{_e(title)}：暂无数据</div>')
    left, bottom, top = 10, 26, 18
    h = height - bottom - top
    slot = (width - 2 * left) / len(items)
    top_value = max(v for _, v in items) or 1
    total = sum(v for _, v in items) or 1
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" {FONT}>',
             f"<title>{_e(title)}</title>",
             f'<line x1="{left}" x2="{width - left}" y1="{top + h}" y2="{top + h}" stroke="{GRID}"/>']
    palette = colors or [BLUE] * len(items)
    for i, (label, value) in enumerate(items):
        bh = h * value / top_value
        xx = left + i * slot + slot * 0.15
        bw = slot * 0.7
        parts.append(f'<rect x="{xx:.1f}" y="{top + h - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" rx="3" '
                     f'fill="{palette[i % len(palette)]}"><title>{_e(label)}：{value} 通'
                     f"（{value * 100 / total:.0f}%）</title></rect>"
                     f'<text x="{xx + bw / 2:.1f}" y="{top + h - bh - 4:.1f}" text-anchor="middle" font-size="11" '
                     f'fill="{INK}">{value}</text>'
                     f'<text x="{xx + bw / 2:.1f}" y="{height - 8}" text-anchor="middle" font-size="11" '
                     f'fill="{INK}">{_e(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


DISTRIBUTION_COLORS = ["#dc2626", "#f97316", "#eab308", "#22c55e", "#16a34a"]


def precision_color(precision: float) -> str:
    return "#16a34a" if precision >= 0.9 else "#eab308" if precision >= 0.7 else "#dc2626"


def precision_bar(precision: float | None) -> Markup:
    if precision is None:
        return Markup('<span class="muted">—</span>')
    pct = precision * 100
    color = precision_color(precision)
    return Markup(f'<svg class="meter" viewBox="0 0 100 10" width="100" height="10" aria-hidden="true">'
                  f'<rect width="100" height="10" rx="3" fill="{GRID}"/>'
                  f'<rect width="{pct:.1f}" height="10" rx="3" fill="{color}"/></svg> '
                  f"<span>{pct:.0f}%</span>")


def timeline(utterances: Sequence[dict[str, object]], findings: Sequence[dict[str, object]],
             events: Sequence[dict[str, object]], *, duration: float, width: int = 900) -> Markup:
    """Two lanes (agent above, customer below) of utterance blocks over the call, holds shaded, findings
    marked; a click on a block seeks the player (see app.js: data-seek)."""
    if duration <= 0:
        return Markup("")
    left, right = 48, 10
    w = width - left - right
    height = 96

    def x(t: float) -> float:
        return left + w * max(0.0, min(t, duration)) / duration

    lanes = {"agent": (14, "#3b82f6", "坐席"), "customer": (46, "#94a3b8", "客户"), "system": (46, "#cbd5e1", "系统")}
    parts = [f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img" aria-label="通话时间轴" {FONT}>']
    for _, (yy, _, name) in list(lanes.items())[:2]:
        parts.append(f'<text x="{left - 6}" y="{yy + 13}" text-anchor="end" font-size="11" fill="{INK}">{name}</text>')
    for ev in events:
        start, end = ev.get("start"), ev.get("end")
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end > start:
            parts.append(f'<rect x="{x(start):.1f}" y="8" width="{x(end) - x(start):.1f}" height="62" '
                         f'fill="#fef3c7"><title>{_e(ev.get("type"))} {start:.0f}–{end:.0f} 秒</title></rect>')
    for i, u in enumerate(utterances):
        start, end = u.get("start"), u.get("end")
        if not isinstance(start, (int, float)) or not isinstance(end, (int, float)):
            continue
        yy, color, _ = lanes.get(str(u.get("role")), lanes["customer"])
        text = str(u.get("text") or "")
        parts.append(f'<rect class="seek" data-seek="{start:.2f}" data-utt="{i}" x="{x(start):.1f}" y="{yy}" '
                     f'width="{max(1.5, x(end) - x(start)):.1f}" height="18" rx="2" fill="{color}">'
                     f"<title>{start:.1f}s {_e(text[:60])}</title></rect>")
    for f in findings:
        start = f.get("start")
        if not isinstance(start, (int, float)):
            continue
        parts.append(f'<path class="seek" data-seek="{start:.2f}" d="M{x(start):.1f},4 l5,-0 l-5,8 l-5,-8 z" '
                     f'fill="{RED}"><title>{_e(f.get("rule"))} {_e(f.get("name"))} @{start:.1f}s</title></path>')
    for t in range(0, int(duration) + 1, max(10, int(duration / 8) // 10 * 10 or 10)):
        parts.append(f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="middle" font-size="10" '
                     f'fill="{INK}">{t // 60}:{t % 60:02d}</text>')
    parts.append(f'<line class="playhead" x1="{left}" x2="{left}" y1="4" y2="74" stroke="{RED}" stroke-width="1.5" '
                 f'data-left="{left}" data-width="{w}" data-duration="{duration:.2f}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
