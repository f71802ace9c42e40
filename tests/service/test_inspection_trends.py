"""Trends on both databases: violations per 100 calls by week, rising rules, new complaint phrases on the
overview, the weekly summary; leaders see their team, agents nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, timedelta
from typing import Any

import svc_samples as samples

from conftest import ADMIN_PASSWORD, World

PHRASE = "充电桩一直充不上电"


def _post(w: World, day: int, kind: str, agent: str = "A1", phrase: str | None = None) -> int:
    call = samples.conversation(f"tr-{uuid.uuid4().hex[:8]}", agent, day, kind)
    if phrase:
        call["utterances"][1]["text"] = f"{phrase}，我要投诉！"
    r = w.post("qa", "/api/conversations", json=call)
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    return int(r.json()["results"][0]["id"])


def _rules(w: World, calls: list[int]) -> Counter[str]:
    return Counter(f["rule"] for c in calls for f in w.findings("qa", c)
                   if f["status"] not in ("rejected", "overturned"))


def test_weekly_rates_rising_rules_and_new_phrases(world: World) -> None:
    """The default view is the service's current week (Asia/Shanghai): the calls of "now" are dated today
    there, as the test runs (not as the samples were imported, nor by the machine's own date), and those of
    "before" a week earlier."""
    today = (samples.service_today() - samples.DAY0).days
    before = [_post(world, today - 7, "good") for _ in range(4)] + [_post(world, today - 7, "complaint")
                                                                    for _ in range(2)]
    now = [_post(world, today, "refuse") for _ in range(4)] + [_post(world, today, "complaint", phrase=PHRASE)
                                                               for _ in range(4)]
    r = world.get("qa", "/api/trends", params={"weeks": 4})
    assert r.status_code == 200, r.text
    t: dict[str, Any] = r.json()
    monday = samples.on_day(today) - timedelta(days=samples.on_day(today).weekday())
    assert t["weeks"][-1] == monday.isoformat() and len(t["weeks"]) == 4
    assert t["calls"][-2:] == [len(before), len(now)]
    expected_now, expected_before = _rules(world, now), _rules(world, before)
    rules = {s["key"]: s for s in t["rules"]}
    for rule, n in expected_now.items():
        assert rules[rule]["counts"][-1] == n
        assert rules[rule]["rates"][-1] == round(n * 100 / len(now), 2)
    for rule, n in expected_before.items():
        assert rules[rule]["counts"][-2] == n
    new_rules = {r for r, n in expected_now.items() if n >= 4 and r not in expected_before}
    assert new_rules and new_rules <= {s["key"] for s in t["rules"] if s["rising"]}
    assert any(PHRASE in p["text"] or p["text"] in PHRASE for p in t["new_phrases"])
    assert t["complaint_calls"] == [4, 2]
    # leaders: their team only (these calls are 一组's)
    assert world.get("lead2", "/api/trends", params={"weeks": 4}).json()["calls"][-1] == 0
    assert world.get("lead1", "/api/trends", params={"weeks": 4}).json()["calls"][-1] == len(now)
    assert world.get("a1", "/api/trends").status_code == 403
    # pages
    client = world.client
    client.cookies.clear()
    world.browser_login(client, "admin", ADMIN_PASSWORD)
    home = client.get("/")
    assert "本周预警" in home.text and PHRASE[:3] in home.text
    alerts = home.text[home.text.index('data-testid="alerts"'):].split("</section>")[0]
    for s in t["rules"]:  # every rising rule flagged on the overview, and no other rule
        assert (f'href="/calls?rule={s["key"]}"' in alerts) == s["rising"], s
    page = client.get("/trends?weeks=4")
    assert page.status_code == 200 and 'data-testid="rule-trends"' in page.text and "上升" in page.text
    csv_text = client.get("/trends.csv?weeks=4").text
    assert csv_text.startswith("\ufeff类别,规则/班组") and "投诉新词" in csv_text
    week = client.get(f"/trends/weekly?week={date.today().isoformat()}")
    assert week.status_code == 200 and "质检周报" in week.text
    client.cookies.clear()
    world.browser_login(client, "wangfang")
    assert client.get("/trends").status_code == 403
    client.cookies.clear()
