"""The inspection program's pages in a real browser (Debian chromium, Playwright), as each role, at 1440 px
and 390 px. Screenshots go to test-artifacts/service/inspection-*.png."""

from __future__ import annotations

import re

import pytest
import svc_samples as samples
import test_browser as tb

from conftest import ADMIN_PASSWORD, World

pytestmark = pytest.mark.slow
playwright_sync, shot = tb.playwright_sync, tb.shot
served, chromium, page_for = tb.served, tb.chromium, tb.page_for  # the browser fixtures, shared


def _no_overflow(page: object) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= 392, f"page is {width}px wide at 390px"


def test_inspector_searches_plans_reviews_and_calibrates(page_for: object, served: tuple[World, str]) -> None:
    w, base = served
    expect = playwright_sync.expect
    page = page_for("qa1")
    # search: highlighted hits, saved
    page.goto(f"{base}/search")
    page.fill("input[name=q]", "办不了 可能吧")
    page.click("form[role=search] button[type=submit]")
    expect(page.locator("[data-testid=hit]")).to_have_count(3)
    expect(page.locator("[data-testid=hit] mark").first).to_have_text("办不了")
    page.fill(".save-search input[name=name]", "生硬拒绝")
    page.click(".save-search button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("搜索已保存")
    expect(page.locator(".saved-searches")).to_contain_text("生硬拒绝")
    shot(page, "inspection-01-search")
    # a plan for the week of the sample calls
    page.goto(f"{base}/plans")
    page.fill("input[name=name]", "浏览器抽检")
    page.fill("input[name=week]", samples.on_day(4).isoformat())
    page.fill("input[name=seed]", "77")
    page.check(f"input[name=inspector_{w.users['qa1']}]")
    page.click("[data-testid=plan-form] button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("抽检计划已生成")
    expect(page.locator("[data-testid=seed]")).to_have_text("77")
    shot(page, "inspection-02-plan")
    # the queue: open an assignment, add a missed finding, finish it
    page.goto(f"{base}/queue")
    rows = page.locator("[data-testid=queue] tbody tr[data-href]")
    count = rows.count()
    assert count >= 1
    page.locator("[data-testid=queue] tbody tr a").first.click()
    expect(page.locator("h1")).to_contain_text("整通复核")
    page.select_option("[data-testid=missed-form] select[name=rule]", "INF002")
    page.select_option("[data-testid=missed-form] select[name=utterance]", "1")
    page.fill("[data-testid=missed-form] input[name=comment]", "没有称呼客户")
    page.click("[data-testid=missed-form] button[type=submit]")
    expect(page.locator("[data-testid=missed-item]")).to_contain_text("INF002")
    shot(page, "inspection-03-assignment")
    page.click("[data-testid=finish]")
    expect(page.locator(".notice")).to_contain_text("已标记为复核完成")
    expect(page.locator("[data-testid=queue] tbody tr[data-href]")).to_have_count(count - 1)
    # calibration: start one with the administrator, score the first call blind
    page.goto(f"{base}/calibration")
    page.fill("[data-testid=calibration-form] input[name=name]", "浏览器校准")
    page.fill("[data-testid=calibration-form] input[name=calls]", "call-a1-02 call-a2-01")
    page.check(f"input[name=inspector_{w.users['qa1']}]")
    page.check("input[name=inspector_1]")
    page.click("[data-testid=calibration-form] button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("校准已发起")
    page.locator("[data-testid=my-calls] a").first.click()
    expect(page.locator("h1")).to_contain_text("盲评")
    assert page.locator("article.finding").count() == 0  # blind: no machine findings
    page.check("input[name=rule_LNG001]")
    page.click("[data-testid=verdict-form] button[type=submit]")
    expect(page.locator("h1")).to_contain_text("盲评")  # on to the next call
    page.click("[data-testid=verdict-form] button[type=submit]")
    expect(page.locator("[data-testid=my-calls]")).to_contain_text("已评：LNG001")
    shot(page, "inspection-04-calibration-open")
    assert not page.errors, page.errors


def test_admin_closes_calibration_and_sees_quality_trends_and_lifecycle(page_for: object,
                                                                          served: tuple[World, str]) -> None:
    w, base = served
    expect = playwright_sync.expect
    page = page_for("admin", ADMIN_PASSWORD)
    page.goto(f"{base}/calibration")
    page.locator("[data-testid=calibrations] a", has_text="浏览器校准").click()
    for link in page.locator("[data-testid=my-calls] a").all():
        href = link.get_attribute("href")
        assert href
    page.locator("[data-testid=my-calls] a").first.click()
    page.check("input[name=rule_LNG001]")
    page.check("input[name=rule_RSP001]")
    page.click("[data-testid=verdict-form] button[type=submit]")
    page.click("[data-testid=verdict-form] button[type=submit]")
    page.click("[data-testid=close]")
    expect(page.locator("[data-testid=fleiss]")).to_be_visible()
    expect(page.locator("[data-testid=by-rule]")).to_contain_text("RSP001")
    expect(page.locator("[data-testid=spread] tbody tr")).to_have_count(2)
    shot(page, "inspection-05-calibration-results")
    page.goto(f"{base}/rules/quality")
    expect(page.locator("[data-testid=quality] thead")).to_contain_text("召回率")
    expect(page.locator("[data-testid=quality]")).to_contain_text("INF002")
    shot(page, "inspection-06-quality-recall")
    page.goto(f"{base}/trends?weeks=4")
    expect(page.locator("[data-testid=rule-trends]")).to_be_visible()
    page.goto(f"{base}/trends/weekly?week={samples.on_day(4).isoformat()}")
    expect(page.locator("[data-testid=weekly] h1")).to_contain_text("质检周报")
    shot(page, "inspection-07-weekly")
    page.goto(f"{base}/agents/A1")
    expect(page.locator("[data-testid=export-agent]")).to_be_visible()
    call = w.new_call("A2", "good")
    page.goto(f"{base}/calls/{call}")
    page.click("details.delete-call summary")
    page.fill("[data-testid=delete-form] input[name=reason]", "测试数据，删除")
    page.click("[data-testid=delete-form] button[type=submit]")
    expect(page.locator(".notice")).to_contain_text("会话已删除")
    assert not page.errors, page.errors


def test_leader_coaches_and_agent_acknowledges(page_for: object, served: tuple[World, str]) -> None:
    w, base = served
    expect = playwright_sync.expect
    lead = page_for("lead1")
    lead.goto(f"{base}/calls/{w.calls['call-a1-03']}")
    lead.click("[data-testid=coach]")
    lead.locator("[data-testid=coaching-form] input[type=radio]").nth(1).check()
    lead.fill("[data-testid=coaching-form] textarea[name=note]", "办理不了时，先说明原因，再说“我现在可以为您……”")
    lead.click("[data-testid=coaching-form] button[type=submit]")
    expect(lead.locator(".notice")).to_contain_text("辅导已指派")
    lead.goto(f"{base}/trends?weeks=4")
    expect(lead.locator("[data-testid=team-trends]")).not_to_contain_text("二组")
    assert not lead.errors, lead.errors
    lead.goto(f"{base}/calibration")
    assert "当前角色无权" in lead.content()
    agent = page_for("wangfang")
    expect(agent.locator("[data-testid=coaching-panel]")).to_contain_text("我现在可以为您")
    shot(agent, "inspection-08-agent-coaching")
    agent.goto(f"{base}/coaching")
    agent.locator("[data-testid=coaching-item] button.ok-btn").first.click()
    expect(agent.locator(".notice")).to_contain_text("已确认这条辅导")
    assert not agent.errors, agent.errors
    for path in ("/plans", "/queue", "/calibration", "/trends"):
        agent.goto(base + path)
        assert re.search("当前角色无权", agent.content()), path
    other = page_for("lilei")
    other.goto(f"{base}/coaching")
    expect(other.locator("body")).not_to_contain_text("我现在可以为您")


@pytest.mark.parametrize("path", ["/search?q=宽带", "/queue", "/plans", "/calibration", "/trends", "/coaching"])
def test_pages_fit_a_phone(chromium: object, served: tuple[World, str], path: str) -> None:
    w, base = served
    ctx = chromium.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")  # type: ignore[attr-defined]
    page = ctx.new_page()
    page.goto(base + "/login")
    page.fill("input[name=username]", "qa1")
    page.fill("input[name=password]", "Passw0rd-test")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    page.goto(base + path)
    _no_overflow(page)
    if path.startswith("/search"):
        shot(page, "inspection-09-search-390")
    ctx.close()
