"""The agent panel and the supervisor wall in real Chromium: a scripted call streams into the assist
WebSocket (a real uvicorn server) while the panel watches; the panel shows the transcript, the alert with
the prescribed wording, the cards in the order they came, the ticks, the report and an alert a later turn
withdrew (struck through); the wall shows the call."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ADMIN_PASSWORD, WS_TIMEOUT, served_workbench

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
uvicorn = pytest.importorskip("uvicorn")
ws_sync = pytest.importorskip("websockets.sync.client")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")]

SCRIPT: list[dict[str, Any]] = [
    {"type": "utterance", "role": "agent", "text": "您好，这里是客服中心，我是工号1023，请问有什么可以帮您？", "start": 0.0, "end": 4.0},
    {"type": "utterance", "role": "customer", "text": "我家突然停电了", "start": 4.5, "end": 5.5, "final": False, "id": "c1"},
    {"type": "utterance", "role": "customer", "text": "我家突然停电了，又没欠费，我要投诉！", "start": 4.5, "end": 7.0, "id": "c1"},
    {"type": "utterance", "role": "agent", "text": "我不是跟你说过了吗", "start": 7.5, "end": 9.0},
    {"type": "utterance", "role": "customer", "text": "叫你们领导来接电话", "start": 9.5, "end": 11.0},
    # a flat no (RSP002, an alert) that the agent's next turn explains: withdrawn as that turn comes
    {"type": "utterance", "role": "agent", "text": "这个退不了", "start": 11.5, "end": 12.5},
    {"type": "utterance", "role": "agent", "text": "因为已经超过七天了，不过我可以帮您申请换货", "start": 12.6, "end": 15.0},
    {"type": "utterance", "role": "agent", "text": "非常抱歉，我们会在3个工作日内给您回复，感谢您的来电，再见", "start": 15.5, "end": 20.0},
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with served_workbench(tmp_path_factory.mktemp("assist-browser")) as (addr, token, app):
        yield addr, token


@pytest.fixture(scope="module")
def page(served: tuple[str, str]) -> Iterator[Any]:
    host, _ = served
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        pg = ctx.new_page()
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(f"http://{host}/login")
        pg.fill("input[name=username]", "admin")
        pg.fill("input[name=password]", ADMIN_PASSWORD)
        pg.click("button[type=submit]")
        pg.wait_for_load_state("networkidle")
        yield pg
        browser.close()


def _recv(feed: Any) -> dict[str, Any]:
    """The server's next frame, or a failure when none comes within `WS_TIMEOUT` seconds."""
    try:
        return dict(json.loads(feed.recv(timeout=WS_TIMEOUT)))
    except TimeoutError:
        raise AssertionError(f"no WebSocket message from the server within {WS_TIMEOUT:g} s") from None


def test_panel_shows_the_call_as_it_happens(served: tuple[str, str], page: Any) -> None:
    host, token = served
    expect = playwright_sync.expect
    sent: list[dict[str, Any]] = []
    with ws_sync.connect(f"ws://{host}/api/assist/v1/ws", additional_headers={"Authorization": f"Bearer {token}"}) as feed:
        feed.send(json.dumps({"type": "start", "v": 1, "call": {"id": "browser-1", "direction": "inbound",
                                                                 "agent": {"id": "A7", "name": "王芳", "team": "一组"}}}))
        assert _recv(feed)["type"] == "ready"
        sent += _recv(feed)["items"]
        page.goto(f"http://{host}/assist/wall")
        expect(page.get_by_test_id("tile")).to_have_count(1)
        expect(page.get_by_test_id("tile")).to_contain_text("王芳")
        page.get_by_test_id("tile").click()
        expect(page.get_by_test_id("assist-status")).to_contain_text("已连接")
        for n, f in enumerate(SCRIPT, 1):
            feed.send(json.dumps({**f, "n": n}, ensure_ascii=False))
            sent += _recv(feed)["items"]
        expect(page.get_by_test_id("transcript").locator("li")).to_have_count(7)  # the partial was replaced
        # the words are a 服务禁语 (LNG001) and a reproach (LNG004): each alert carries its better wording
        alert = page.get_by_test_id("alerts").locator("li.alert").filter(has_text="我不是跟你说过了吗")
        expect(alert).to_have_count(1)
        expect(alert).to_contain_text("可能我刚才没有解释清楚")
        expect(page.get_by_test_id("alerts").locator("li.alert").filter(has_text="反问质问")).to_have_count(1)
        cards_sent = [i["id"] for i in sent if i["kind"] == "card"]
        assert {"complaint", "s14-sudden-outage", "s09-leader"} <= set(cards_sent)
        assert cards_sent.index("complaint") < cards_sent.index("s09-leader")  # the leader is asked for later
        cards = page.get_by_test_id("card")
        expect(cards).to_have_count(len(cards_sent))
        shown = [cards.nth(k).get_attribute("data-card") for k in range(len(cards_sent))]
        assert shown[::-1] == cards_sent  # newest on top, in the order they came
        expect(page.locator("[data-check='inbound.offer']")).to_have_class("done")
        expect(page.locator("[data-check='complaint.promise']")).to_have_class("done")
        feed.send(json.dumps({"type": "hangup", "n": len(SCRIPT) + 1, "ended_by": "customer"}))
        final = _recv(feed)
        assert any(i["kind"] == "report" for i in final["items"])
        assert _recv(feed)["type"] == "ended"
    expect(page.get_by_test_id("report")).to_be_visible()
    # the next turn gave the reason and another way: the flat no's alert is struck through with the reason
    # (sent with that turn's guidance, nothing more at hang-up), the others stand
    retracted = [i for i in sent + final["items"] if i["kind"] == "retract"]
    assert [i["rule"] for i in retracted] == ["RSP002"] and retracted[0] in sent
    refusal = page.get_by_test_id("alerts").locator("li.alert").filter(has_text="退不了")
    expect(refusal).to_have_class("alert withdrawn")
    expect(refusal).to_contain_text("已撤回：后文的话使其成为例外")
    expect(page.get_by_test_id("alerts").locator("li.withdrawn")).to_have_count(1)
    expect(page.get_by_test_id("assist-status")).to_contain_text("通话已结束")
    page.set_viewport_size({"width": 390, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert not page.errors
