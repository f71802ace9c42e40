"""Conversations for the service tests: a few agents in two teams, good and bad calls."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kefuqa.service.config import Settings

SERVICE_TZ = Settings.timezone  # the workbench's default time zone, which "this week" and "today" are in


def service_today() -> date:
    """Today in the service's time zone, not the test machine's: from 16:00 UTC Asia/Shanghai is a day ahead,
    and on a Sunday evening UTC a week ahead."""
    return datetime.now(ZoneInfo(SERVICE_TZ)).date()


# The sample calls happen in the last three weeks, so that "the last 30/90 days" views show them.
DAY0 = service_today() - timedelta(days=21)


def on_day(n: int) -> date:
    """The date of sample day `n`."""
    return DAY0 + timedelta(days=n)

OPENING = "您好，这里是XX公司客服部，我是工号1023，请问有什么可以帮您？"
CLOSING = [("agent", "不客气，请问还有其他可以帮您的吗？"), ("customer", "没有了。"), ("agent", "感谢您的来电，再见。")]

AGENTS = {
    "A1": ("王芳", "一组"),
    "A2": ("李雷", "一组"),
    "B1": ("赵敏", "二组"),
}


def _utterances(lines: list[tuple[str, str]]) -> list[dict[str, Any]]:
    out = []
    t = 0.0
    for role, text in lines:
        dur = max(1.0, len(text) / 4.5)
        out.append({"role": role, "start": round(t, 1), "end": round(t + dur, 1), "text": text})
        t += dur + 0.5
    return out


def conversation(call_id: str, agent: str, day: int, kind: str = "good", hour: int = 14) -> dict[str, Any]:
    """kinds: good, fatal (服务禁语, 红线), refuse (生硬拒绝 + 不确定用语), noclose (没有结束语), complaint."""
    name, team = AGENTS[agent]
    lines: list[tuple[str, str]] = [("agent", OPENING), ("customer", "我家宽带从昨天开始上不了网。")]
    if kind == "good":
        lines += [("agent", "您是说宽带从昨天开始无法上网，是吗？请问您贵姓？"), ("customer", "对，我姓张。"),
                  ("agent", "好的张先生，非常抱歉给您带来不便，我已经为您登记报修，维修人员会在24小时内联系您。"),
                  ("customer", "好的谢谢。")] + CLOSING
    elif kind == "fatal":
        lines += [("agent", "我怎么知道，这跟我们没关系。"), ("customer", "那我找谁？"),
                  ("agent", "您是说要找负责的部门是吗？张先生，我帮您登记，24小时内回复您。"),
                  ("customer", "好吧，谢谢。")] + CLOSING
    elif kind == "refuse":
        lines += [("agent", "您是说宽带无法上网，是吗？请问您贵姓？"), ("customer", "姓张，能今天上门修吗？"),
                  ("agent", "这个办不了。"), ("customer", "那什么时候能修好？"), ("agent", "可能吧，明天应该可以。"),
                  ("customer", "好的谢谢。")] + CLOSING
    elif kind == "noclose":
        lines += [("agent", "您是说宽带从昨天开始无法上网，是吗？请问您贵姓？"), ("customer", "对，我姓张。"),
                  ("agent", "好的张先生，我已经为您登记报修，维修人员会在24小时内联系您。"), ("customer", "好。")]
    elif kind == "complaint":
        lines += [("customer", "你们的服务太差了，我要投诉！"),
                  ("agent", "您是说要投诉宽带故障的处理，是吗？请问您贵姓？"), ("customer", "姓张。"),
                  ("agent", "好的张先生，我已经记录下来了。")] + CLOSING
    else:
        raise ValueError(kind)
    return {
        "id": call_id, "channel": "phone", "direction": "inbound",
        "started_at": f"{on_day(day).isoformat()}T{hour:02d}:10:00+08:00",
        "agent": {"id": agent, "name": name, "team": team}, "customer": {"id": f"C-{call_id}"},
        "ring_seconds": 4.0, "ended_by": "customer", "utterances": _utterances(lines),
    }


# (call id, agent, day, kind)
PLAN = [
    ("call-a1-01", "A1", 2, "good"), ("call-a1-02", "A1", 3, "fatal"), ("call-a1-03", "A1", 4, "refuse"),
    ("call-a1-04", "A1", 5, "noclose"), ("call-a1-05", "A1", 6, "good"),
    ("call-a2-01", "A2", 2, "refuse"), ("call-a2-02", "A2", 4, "complaint"), ("call-a2-03", "A2", 6, "good"),
    ("call-b1-01", "B1", 3, "good"), ("call-b1-02", "B1", 5, "refuse"), ("call-b1-03", "B1", 7, "fatal"),
]


def seed_calls() -> list[dict[str, Any]]:
    return [conversation(cid, agent, day, kind) for cid, agent, day, kind in PLAN]


def variant(call: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(call)
    out.update(changes)
    return out
