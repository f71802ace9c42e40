"""One line of text per guidance item, as `kefuqa replay` prints it (text and audio replay alike)."""

from __future__ import annotations

import json
from typing import Any

KIND_ZH = {"alert": "提醒", "finding": "发现", "check": "打勾", "card": "情景卡片", "timer": "计时提醒", "style": "客户风格（提示）",
           "event": "事件", "checklist": "检查清单", "retract": "撤回", "report": "通话报告"}


def line(item: dict[str, Any]) -> str:
    k = item["kind"]
    head = f"#{item['seq']} {KIND_ZH.get(k, k)}"
    if k == "alert":
        return f"{head} {item['name']}：「{item.get('said') or ''}」→ 建议说：{item.get('say_instead') or ''}"
    if k in ("card", "timer"):
        return f"{head} {item['title']}：" + " / ".join(item.get("script") or [])
    if k == "check":
        return f"{head} ✓ {item['label']}"
    if k == "style":
        return f"{head} {item['name']}：{item['advice']}"
    if k == "checklist":
        return f"{head} {item['name']}：" + "、".join(i["label"] for i in item["items"])
    if k == "report":
        return f"{head} 得分 {item['score']:g}（{item['grade']}），{item['findings']} 条发现"
    if k == "finding":
        return f"{head} {item['rule']} {item['message']}"
    if k == "event":
        return f"{head} {item['rule']} {item['name']}"
    if k == "retract":
        return f"{head} {item['rule']} {item['message']}"
    return f"{head} {json.dumps(item, ensure_ascii=False)}"
