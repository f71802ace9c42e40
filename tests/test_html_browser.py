"""The HTML report in a real browser (headless Debian Chromium via Playwright): what a person sees.

Needs ``pip install playwright`` (the dev extra) and the Debian packages ``chromium fonts-noto-cjk``;
Playwright's own browser download is not used. Skips only when no chromium binary exists.
Screenshots go to ``test-artifacts/`` (gitignored).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def _chromium() -> str | None:
    for cand in (os.environ.get("KEFUQA_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.slow,  # a real browser
    pytest.mark.skipif(CHROMIUM is None,
                       reason="no chromium binary (/usr/bin/chromium): apt-get install -y chromium fonts-noto-cjk"),
]


def _samples() -> Any:
    path = Path(__file__).parent / "fixtures" / "writers" / "samples.py"
    spec = importlib.util.spec_from_file_location("kefuqa_writer_samples", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page_for(browser: Any) -> Iterator[Any]:
    """Open a report file in a fresh page; collects console errors and every non-file request."""
    pages: list[Any] = []

    def open_file(path: Path, width: int = 1280, height: int = 900) -> Any:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.kefuqa_errors = []  # type: ignore[attr-defined]
        page.kefuqa_requests = []  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and page.kefuqa_errors.append(m.text))
        page.on("pageerror", lambda e: page.kefuqa_errors.append(str(e)))
        page.on("request", lambda r: not r.url.startswith("file://") and page.kefuqa_requests.append(r.url))
        page.goto(path.as_uri())
        pages.append(page)
        return page

    yield open_file
    for p in pages:
        p.close()


def _write(name: str, reports: list[Any]) -> Path:
    from kefuqa.writers.html import write_html

    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    with path.open("w", encoding="utf-8") as fh:
        write_html(reports, fh, title="客服质检报告 · 测试")
    return path


def _inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (inner["x"] >= outer["x"] - 0.5 and inner["y"] >= outer["y"] - 0.5
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)


def test_single_call_what_a_person_sees(page_for: Any) -> None:
    from playwright.sync_api import expect

    s = _samples()
    path = _write("writers-single.html", [s.report_one()])
    page = page_for(path)

    call = page.locator("#c1")
    expect(call.locator("[data-testid=score]")).to_be_visible()
    expect(call.locator("[data-testid=score]")).to_have_text("67")
    expect(call.locator("[data-testid=grade]")).to_have_text("合格")
    expect(page.locator(".fatal-banner")).to_have_count(0)

    # the evidence is highlighted inside utterance #4, within its bubble
    utt = page.locator("#c1-u4")
    mark = utt.locator("mark.hl", has_text="我怎么知道")
    expect(mark).to_be_visible()
    assert _inside(mark.bounding_box(), utt.locator(".bubble").bounding_box())
    expect(utt.locator("mark.hl", has_text="这不归我们管")).to_be_visible()
    # the untrusted <script> in that utterance is shown as text, not run
    expect(utt.locator(".text")).to_contain_text("<script>alert('x')</script>")
    expect(utt.locator(".text")).to_contain_text("<script>")
    assert page.evaluate("document.scripts.length") == 1
    # the suggestion (建议话术) is visible next to it
    expect(utt.locator(".sugg", has_text="请您稍等，我帮您查询一下")).to_be_visible()
    expect(utt.locator(".finding .pts", has_text="-10")).to_have_count(2)
    # the event is tagged on the customer's utterance, Traditional text kept
    expect(page.locator("#c1-u3 .evt-tag", has_text="EVT001")).to_be_visible()
    expect(page.locator("#c1-u3 mark.evt")).to_have_text("投訴")
    # call-level finding sits above the transcript
    level = page.locator(".call-level .finding", has_text="CMP001")
    expect(level).to_be_visible()
    assert level.bounding_box()["y"] < page.locator("#c1-u0").bounding_box()["y"]
    # the hold is drawn between the utterances
    expect(page.locator(".conv-event", has_text="等候")).to_be_visible()
    # dimension bars have widths
    fill = page.locator(".dims .dim-row", has_text="礼貌程度").locator(".fill")
    assert 0.45 < fill.bounding_box()["width"] / fill.locator("..").bounding_box()["width"] < 0.6

    # not-applicable rules are collapsed until opened
    na = page.locator("details.na")
    expect(na.locator("td", has_text="没有录音")).to_be_hidden()
    na.locator("summary").click()
    expect(na.locator("td", has_text="没有录音")).to_be_visible()

    page.screenshot(path=str(ARTIFACTS / "writers-single.png"), full_page=True)

    # clicking a finding in the list jumps to its utterance and flashes it
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    expect(page.locator("#c1-u2")).not_to_be_in_viewport()
    page.locator(".issue-panel a.jump", has_text="请求重复不礼貌").click()
    expect(page.locator("#c1-u2")).to_be_in_viewport()
    expect(page.locator("#c1-u2")).to_have_class("utt role-agent flagged flash")
    assert page.evaluate("location.hash") == "#c1-u2"

    # "只看问题发言" hides the utterances without findings or events
    page.locator("#only-flagged").check()
    expect(page.locator("#c1-u0")).to_be_hidden()
    expect(page.locator("#c1-u4")).to_be_visible()
    expect(page.locator("#c1-u3")).to_be_visible()  # event
    page.locator("#only-flagged").uncheck()
    expect(page.locator("#c1-u0")).to_be_visible()

    assert page.kefuqa_errors == []  # no CSP violation: the inline script ran under its hash
    assert page.kefuqa_requests == []


def test_several_calls_index_and_fatal(page_for: Any) -> None:
    from playwright.sync_api import expect

    s = _samples()
    path = _write("writers-batch.html", s.all_reports())
    page = page_for(path)

    index = page.locator("table.index")
    expect(index).to_be_visible()
    expect(index.locator("tbody tr")).to_have_count(3)
    expect(page.locator(".overview .stat", has_text="红线通话")).to_contain_text("1")

    page.screenshot(path=str(ARTIFACTS / "writers-batch.png"), full_page=True)

    # the index links to each call section
    expect(page.locator("#c3")).not_to_be_in_viewport()
    index.locator("a", has_text="call-0003").click()
    expect(page.locator("#c3")).to_be_in_viewport()
    expect(page.locator("#c3 [data-testid=score]")).to_have_text("100")
    expect(page.locator("#c3")).to_contain_text("未附带对话原文")

    index.locator("a", has_text="chat-0002").click()
    call = page.locator("#c2")
    expect(call).to_be_in_viewport()
    expect(call.locator(".fatal-banner")).to_be_visible()
    expect(call.locator(".fatal-banner")).to_contain_text("LNG001")
    expect(call.locator("[data-testid=grade]")).to_have_text("不合格")
    # a finding without a span is still highlighted from its evidence text
    expect(page.locator("#c2-u1 mark.hl", has_text="不行就是不行")).to_be_visible()
    expect(page.locator("#c2-u1 .sugg", has_text="您的意见我会如实记录并向上反映")).to_be_visible()
    call.screenshot(path=str(ARTIFACTS / "writers-fatal-call.png"))

    # sorting the index by score puts the fatal call first
    index.locator("th", has_text="得分").click()
    expect(index.locator("tbody tr").first).to_contain_text("chat-0002")

    # print layout: toolbar hidden, details opened for paper
    page.emulate_media(media="print")
    expect(page.locator(".toolbar")).to_be_hidden()
    page.emulate_media(media="screen")

    assert page.kefuqa_errors == []
    assert page.kefuqa_requests == []


def test_narrow_screen_has_no_horizontal_scroll(page_for: Any) -> None:
    s = _samples()
    path = _write("writers-batch-narrow.html", s.all_reports())
    page = page_for(path, width=420, height=900)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.screenshot(path=str(ARTIFACTS / "writers-narrow.png"), full_page=False)
    assert overflow <= 1
