"""Real browser (headless Debian chromium driven by Playwright): each role logs in and does its job.
Screenshots go to test-artifacts/service/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_wait import seeked_by, until
from conftest import ADMIN_PASSWORD, PASSWORD, World, build_world, serve_app

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
uvicorn = pytest.importorskip("uvicorn")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "service"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                                "(apt-get install chromium fonts-noto-cjk)")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:
    folder = tmp_path_factory.mktemp("browser")
    w = build_world("sqlite", f"sqlite:///{folder / 'kefuqa.db'}", folder)
    with serve_app(w.client.app) as base:
        yield w, base
    w.wb.engine.dispose()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page_for(chromium: object, served: tuple[World, str]) -> Iterator[object]:
    contexts = []

    def open_as(username: str, password: str = PASSWORD) -> object:
        ctx = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")  # type: ignore[attr-defined]
        contexts.append(ctx)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.errors = errors
        page.goto(served[1] + "/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    yield open_as
    for ctx in contexts:
        ctx.close()


def shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_login_page_and_wrong_password(chromium: object, served: tuple[World, str]) -> None:
    ctx = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")  # type: ignore[attr-defined]
    page = ctx.new_page()
    page.goto(served[1] + "/calls")
    assert "/login" in page.url
    shot(page, "01-login")
    page.fill("input[name=username]", "qa1")
    page.fill("input[name=password]", "wrong-password-1")
    page.click("button[type=submit]")
    playwright_sync.expect(page.locator(".alert")).to_contain_text("用户名或密码错误")
    ctx.close()


def test_inspector_reviews_and_uploads(page_for: object, served: tuple[World, str]) -> None:
    w, base = served
    page = page_for("qa1")
    expect = playwright_sync.expect
    expect(page.locator("h1")).to_have_text("质检概览")
    shot(page, "02-qa-overview")
    # the call list, filtered by rule
    page.click("nav >> text=会话列表")
    page.fill("input[name=rule]", "RSP002")
    page.click("form.filters button[type=submit]")
    expect(page.locator("table.calls tbody tr")).to_have_count(3)
    shot(page, "03-qa-calls-filtered")
    # a call: findings highlighted, suggestions shown; reject one with a reason, confirm another
    page.goto(f"{base}/calls/{w.calls['call-a1-03']}")
    expect(page.locator("mark").first).to_be_visible()
    shot(page, "04-qa-call-detail")
    first = page.locator("article.finding").first
    fid = first.get_attribute("data-finding")
    first.locator("input[name=reason]").fill("客户同意改约，属正常说明")
    first.locator("button[value=reject]").click()
    expect(page.locator(f"#f{fid} [data-testid=status]")).to_have_text("已驳回")
    expect(page.locator(".notice")).to_contain_text("复核结论已保存")
    second = page.locator("article.finding").nth(1)
    sid = second.get_attribute("data-finding")
    second.locator("button[value=confirm]").click()
    expect(page.locator(f"#f{sid} [data-testid=status]")).to_have_text("已确认")
    # a rejection without a reason is stopped before it is sent
    page.goto(f"{base}/reviews")
    item = page.locator("article.queue-item").first
    qid = item.get_attribute("data-finding")
    item.locator("button[value=reject]").click()
    assert page.url.endswith("/reviews")
    item.locator("button[value=confirm]").click()
    expect(page.locator(f"article[data-finding='{qid}']")).to_have_count(0)
    shot(page, "05-qa-review-queue")
    # upload a transcript through the page
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "readers" / "native_call.json"
    page.goto(f"{base}/upload")
    page.set_input_files("input[name=files]", str(fixture))
    page.click("form.upload button[type=submit]")
    expect(page.locator("[data-testid=upload-result]")).to_contain_text("导入结果")
    shot(page, "06-qa-upload-result")
    assert not page.errors, page.errors


def test_agent_sees_own_results_and_appeals(page_for: object, served: tuple[World, str]) -> None:
    w, base = served
    expect = playwright_sync.expect
    page = page_for("wangfang")
    expect(page.locator("h1")).to_have_text("我的表现")
    expect(page.locator("section.practice")).to_contain_text("应说")
    shot(page, "07-agent-my-page")
    page.goto(f"{base}/calls")
    rows = page.locator("table.calls tbody tr")
    assert rows.count() == 5
    expect(page.locator("table.calls")).not_to_contain_text("call-b1")
    page.goto(f"{base}/calls/{w.calls['call-a1-04']}")
    expect(page.locator("form.review-form")).to_have_count(0)  # agents do not review
    finding = page.locator("article.finding").first
    fid = finding.get_attribute("data-finding")
    finding.locator("summary").click()
    finding.locator("textarea[name=reason]").fill("客户已主动挂断，来不及说结束语")
    finding.locator("form button[type=submit]").click()
    expect(page.locator(f"#f{fid} .appeal-box")).to_contain_text("待裁决")
    expect(page.locator(f"#f{fid} summary")).to_have_count(0)  # no second appeal
    shot(page, "08-agent-appealed")
    assert not page.errors, page.errors
    # guessing another agent's call (the browser logs the 404 and 403 answers as console errors)
    page.goto(f"{base}/calls/{w.calls['call-b1-01']}")
    expect(page.locator(".empty-state")).to_contain_text("404")
    shot(page, "09-agent-guessed-url")
    page.goto(f"{base}/reviews")
    expect(page.locator(".empty-state")).to_contain_text("403")


def test_inspector_decides_the_appeal(page_for: object, served: tuple[World, str]) -> None:
    w, base = served
    expect = playwright_sync.expect
    # an appeal to decide (made through the API so this test stands alone)
    cid = w.new_call("A2", "refuse", day=15)
    f = w.findings("a2", cid)[0]
    w.post("a2", f"/api/findings/{f['id']}/appeal", json={"reason": "客户要求的业务确实无法办理"})
    page = page_for("qa1")
    page.goto(f"{base}/appeals")
    item = page.locator("article.appeal-item.pending").first
    aid = item.get_attribute("data-appeal")
    shot(page, "10-qa-appeals")
    item.locator("input[name=reason]").fill("已核实，客户需求不在服务范围")
    item.locator("button[value=reject]").click()
    expect(page.locator(f"#a{aid} .status")).to_have_text("维持扣分")
    expect(page.locator(f"#a{aid} form")).to_have_count(0)
    assert not page.errors, page.errors


def test_leader_team_overview(page_for: object, served: tuple[World, str]) -> None:
    w, base = served
    expect = playwright_sync.expect
    page = page_for("lead1")
    expect(page.locator("h1")).to_have_text("一组")
    expect(page.locator("svg.chart").first).to_be_visible()
    shot(page, "11-leader-team")
    page.click("a:text('李雷')")
    expect(page.locator("h1")).to_have_text("李雷")
    shot(page, "12-leader-agent")
    page.goto(f"{base}/calls")
    expect(page.locator("table.calls")).not_to_contain_text("call-b1")
    page.goto(f"{base}/teams")
    assert "/teams/" in page.url
    assert not page.errors, page.errors


def test_admin_pages(page_for: object, served: tuple[World, str]) -> None:
    w, base = served
    expect = playwright_sync.expect
    page = page_for("admin", ADMIN_PASSWORD)
    page.goto(f"{base}/rules/quality")
    expect(page.locator("[data-testid=quality]")).to_contain_text("RSP002")
    shot(page, "13-admin-rule-quality")
    page.goto(f"{base}/admin/users")
    page.fill("form.user-form input[name=username]", "sun")
    page.select_option("form.user-form select[name=role]", "leader")
    page.fill("form.user-form input[name=team]", "二组")
    page.click("form.user-form button[type=submit]")
    expect(page.locator("[data-testid=new-password]")).to_be_visible()
    shot(page, "14-admin-users")
    page.goto(f"{base}/rulebooks")
    shot(page, "15-admin-rulebooks")
    page.goto(f"{base}/admin/audit")
    expect(page.locator("table")).to_contain_text("驳回扣分")  # the action in Chinese (the code is in the tooltip)
    shot(page, "16-admin-audit")
    page.goto(f"{base}/teams")
    shot(page, "17-admin-teams")
    assert not page.errors, page.errors


def test_recording_with_timeline_and_player(page_for: object, served: tuple[World, str], tmp_path: Path) -> None:
    synth = pytest.importorskip("audio_synth")
    if not synth.have_espeak():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no test speech")
    call = synth.Call(9.0, 8000)
    call.add("agent", 0.4, synth.speak("ni3 hao3, qing3 wen4 you3 shen2 me5 ke3 yi3 bang1 nin2",
                                       voice="cmn-latn-pinyin"))
    call.add("customer", call.truth[-1][2] + 0.8, synth.speak("wo3 de5 kuan1 dai4 huai4 le5",
                                                               voice="cmn-latn-pinyin", pitch=80))
    path = tmp_path / "录音-0305.wav"
    synth.write(str(path), call.render(bleed_db=-30), 8000)
    w, base = served
    expect = playwright_sync.expect
    page = page_for("qa1")
    page.goto(f"{base}/upload")
    page.set_input_files("input[name=files]", str(path))
    page.click("form.upload button[type=submit]")
    link = page.locator("[data-testid=upload-result] a").first
    link.click()
    expect(page.locator(".kq-tl svg")).to_be_visible()
    audio = page.locator(".kq-tl audio")
    expect(audio).to_have_attribute("src", page.url.split(base)[1].split("#")[0] + "/audio")
    duration = page.evaluate("() => new Promise(r => { const a = document.querySelector('.kq-tl audio');"
                             " if (a.readyState >= 1) r(a.duration); else a.addEventListener('loadedmetadata',"
                             " () => r(a.duration)); })")
    assert duration > 8
    shot(page, "18-qa-recording")
    assert not page.errors, page.errors


def test_export_of_recordings_transcripts_and_manifest(page_for: object, served: tuple[World, str]) -> None:
    """examples/telephony uploaded as a QA lead would (recordings, ASR transcripts and the manifest, selected
    together): one call per manifest row with the manifest's agent and team; the call page draws both
    channels' loudness envelope, and its transcript follows the player (click a line to play from there,
    the line playing is highlighted)."""
    pytest.importorskip("soundfile")
    example = Path(__file__).resolve().parents[2] / "examples" / "telephony"
    _, base = served
    expect = playwright_sync.expect
    page = page_for("qa1")
    page.goto(f"{base}/upload")
    page.set_input_files("input[name=files]", [str(example / n) for n in
                                               ("manifest.csv", "TEL-0001.wav", "TEL-0001.json",
                                                "TEL-0002.wav", "TEL-0002.json")])
    page.click("form.upload button[type=submit]")
    result = page.locator("[data-testid=upload-result]")
    expect(result).to_contain_text("TEL-0001")
    expect(result).to_contain_text("TEL-0002")
    page.locator("[data-testid=upload-result] a", has_text="TEL-0001").first.click()
    expect(page.locator(".kq-tl svg")).to_be_visible()
    body = page.inner_text("body")
    assert "王芳" in body and "宽带一组" in body and "VOC003" in body and "CLS002" in body
    assert page.locator(".kq-tl polyline.kq-env").count() == 2
    # a measurement is the evidence of a voice rule, not words the agent said
    voc3 = page.locator(".evidence", has_text="坐席音量 -12.3 dBFS")
    expect(voc3.locator(".lbl")).to_have_text("证据")
    player = "document.querySelector('.kq-tl audio')"
    until(page, f"{player}.readyState >= 1")
    utt = page.locator(".utt[data-start]").nth(2)
    start, end = float(utt.get_attribute("data-start")), float(utt.get_attribute("data-end"))
    assert abs(seeked_by(page, player, utt.click) - start) < 0.5
    page.evaluate(f"{player}.pause()")
    at = round((start + end) / 2, 2)
    page.evaluate(f"{player}.currentTime = {at}")
    until(page, f"Math.abs({player}.currentTime - {at}) < 0.05 && !{player}.seeking")
    until(page, "document.querySelectorAll('.utt.playing').length === 1")
    assert "playing" in (utt.get_attribute("class") or "").split()
    shot(page, "19-qa-telephony-export")
    assert not page.errors, page.errors
