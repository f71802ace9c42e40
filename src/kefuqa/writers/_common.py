"""Helpers shared by the writers: time and number formatting, labels, agent info and batch summaries."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from kefuqa.coverage import INSUFFICIENT, sufficient
from kefuqa.labels import SEVERITY_LABELS  # one vocabulary with the workbench (issue 9)
from kefuqa.model import Finding, Report

SEVERITY_ORDER: dict[str, int] = {"fatal": 0, "critical": 1, "major": 2, "minor": 3, "info": 4}

ROLE_LABELS: dict[str, str] = {"agent": "坐席", "customer": "客户", "system": "系统"}

EVENT_TYPE_LABELS: dict[str, str] = {
    "hold": "等候",
    "transfer": "转接",
    "mute": "静音",
    "silence": "静音",
    "conference": "三方通话",
    "ivr": "语音导航",
}

CHANNEL_LABELS: dict[str, str] = {
    "phone": "电话", "chat": "在线", "email": "邮件", "web": "网页", "onsite": "现场",
}
DIRECTION_LABELS: dict[str, str] = {"inbound": "呼入", "outbound": "外呼"}

# Grade names used by the bundled scorecards, best first; unknown names are ranked by score instead.
GOOD_GRADES = ("优秀", "excellent", "A")
FAIR_GRADES = ("良好", "good", "B")
PASS_GRADES = ("合格", "及格", "pass", "C")
FAIL_GRADES = ("不合格", "不及格", "差", "fail", "D", "E")


def grade_tone(grade: str, score: float, fatal: bool) -> str:
    """One of ``good``, ``fair``, ``pass``, ``fail``: how a grade should be coloured."""
    if fatal:
        return "fail"
    g = grade.strip()
    for tone, names in (("good", GOOD_GRADES), ("fair", FAIR_GRADES), ("pass", PASS_GRADES),
                        ("fail", FAIL_GRADES)):
        if g in names or g.lower() in names:
            return tone
    if score >= 90:
        return "good"
    if score >= 80:
        return "fair"
    if score >= 60:
        return "pass"
    return "fail"


def fmt_time(seconds: float | None) -> str:
    """``mm:ss`` (``h:mm:ss`` from one hour); empty string when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    total = max(0, int(seconds + 1e-6))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_span(start: float | None, end: float | None) -> str:
    a, b = fmt_time(start), fmt_time(end)
    if a and b and a != b:
        return f"{a}–{b}"
    return a or b


def fmt_num(value: float | int | None, digits: int = 2) -> str:
    """Compact number: 82.0 -> '82', 82.456 -> '82.46', -10.0 -> '-10'; empty for None."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    v = round(float(value), digits)
    if v == int(v):
        return str(int(v))
    return f"{v:.{digits}f}".rstrip("0").rstrip(".")


def fmt_points(points: float) -> str:
    """Deductions as a person reads them: -10 -> '-10', 0 -> '0', +2 -> '+2'."""
    s = fmt_num(points)
    return f"+{s}" if points > 0 else s


def severity_label(severity: str) -> str:
    return SEVERITY_LABELS.get(severity, severity)


def agent_fields(report: Report) -> tuple[str, str, str]:
    """(id, name, team) of the agent, empty strings when the report carries no conversation or agent."""
    conv = report.conversation
    agent = conv.agent if conv is not None else None
    if agent is None:
        return "", "", ""
    return agent.id or "", agent.name or "", agent.team or ""


def agent_label(report: Report) -> str:
    """'王芳 (A1023 · 一组)' or whatever part of it is known."""
    aid, name, team = agent_fields(report)
    extra = " · ".join(x for x in (aid, team) if x)
    if name and extra:
        return f"{name} ({extra})"
    return name or extra


def finding_sort_key(f: Finding) -> tuple[int, float, int, str]:
    """Transcript order; call-level findings first, by severity."""
    if f.utterance is None:
        return (0, 0.0, SEVERITY_ORDER.get(f.severity, 9), f.rule)
    return (1, float(f.utterance), SEVERITY_ORDER.get(f.severity, 9), f.rule)


@dataclass
class RuleStat:
    rule: str
    name: str
    hits: int = 0
    calls: int = 0
    points: float = 0.0


@dataclass
class Summary:
    """Running summary over a batch of reports; `add` one report at a time (works while streaming)."""

    count: int = 0
    score_sum: float = 0.0
    fatal: int = 0
    findings: int = 0
    grades: Counter[str] = field(default_factory=Counter)
    grade_tones: dict[str, str] = field(default_factory=dict)
    rules: dict[str, RuleStat] = field(default_factory=dict)
    score_min: float | None = None
    score_max: float | None = None
    # calls marked 「未充分质检」 (kefuqa.coverage): counted, but out of the mean, range and grades unless
    # `include_insufficient`
    insufficient: int = 0
    include_insufficient: bool = False

    def add(self, report: Report) -> None:
        self.count += 1
        self.fatal += bool(report.fatal)
        self.findings += len(report.findings)
        self._rule_stats(report)
        if not sufficient(report):
            self.insufficient += 1
            if not self.include_insufficient:
                return
        self.score_sum += report.score
        self.score_min = report.score if self.score_min is None else min(self.score_min, report.score)
        self.score_max = report.score if self.score_max is None else max(self.score_max, report.score)
        self.grades[report.grade] += 1
        self.grade_tones.setdefault(report.grade, grade_tone(report.grade, report.score, False))

    def _rule_stats(self, report: Report) -> None:
        seen: set[str] = set()
        for f in report.findings:
            st = self.rules.get(f.rule)
            if st is None:
                st = self.rules[f.rule] = RuleStat(f.rule, f.name)
            st.hits += 1
            st.points += f.points
            if f.rule not in seen:
                st.calls += 1
                seen.add(f.rule)

    @property
    def averaged(self) -> int:
        """How many calls the mean, the range and the grades are over."""
        return self.count if self.include_insufficient else self.count - self.insufficient

    @property
    def mean(self) -> float | None:
        return self.score_sum / self.averaged if self.averaged else None

    def top_rules(self, n: int = 10) -> list[RuleStat]:
        """Rules hit in the most calls (then most hits, then most points lost)."""
        return sorted(self.rules.values(), key=lambda r: (-r.calls, -r.hits, r.points, r.rule))[:n]

    def grade_items(self) -> list[tuple[str, int]]:
        """Grades best first (by tone), then by count."""
        order = {"good": 0, "fair": 1, "pass": 2, "fail": 3}
        return sorted(self.grades.items(), key=lambda kv: (order.get(self.grade_tones.get(kv[0], ""), 9), -kv[1]))


def coverage_label(report: Report) -> str:
    """「覆盖 92%」, or 「未充分质检（已检查 14/40 条规则）」 below the rulebook's threshold; "" without coverage."""
    cov = report.coverage
    if cov is None:
        return ""
    if cov.sufficient:
        return f"覆盖 {cov.ratio:.0%}"
    return f"{INSUFFICIENT}（已检查 {cov.checked}/{cov.rules} 条规则）"


def fatal_label(report: Report) -> str:
    """The 红线 rules that zeroed the score, with their names: 「LNG001 服务禁语」."""
    names = {f.rule: f.name for f in report.findings}
    return "、".join(f"{r} {names[r]}" if r in names else r for r in report.fatal_rules)


FATAL_NOTE = "红线：整通计 0 分；各维度得分只反映其余扣分，不是总分"
