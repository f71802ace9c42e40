"""A recording scored end to end by the CLI, its HTML report opened in headless Chromium: the timeline
shows both channels and the player jumps to a finding when it is clicked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser_wait import seeked_by, until

np = pytest.importorskip("numpy")
pytest.importorskip("soundfile")
playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# slow: a recording scored by the CLI in a subprocess, then a browser
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")]


def _recording(path: Path) -> None:
    import audio_synth as synth

    call = synth.Call(seconds=24.0)
    call.add("agent", 0.5, synth.harmonic(180.0, 3.0, level_dbfs=-22))
    call.add("customer", 4.0, synth.harmonic(120.0, 6.0, level_dbfs=-24))
    call.add("agent", 7.0, synth.harmonic(200.0, 2.5, level_dbfs=-22))  # cuts in for 3 s
    call.add("customer", 21.0, synth.harmonic(130.0, 2.0, level_dbfs=-24))  # after 11 s of silence
    synth.write(str(path), call.render(), 8000)


def test_audio_report_timeline_and_player(tmp_path):
    wav = tmp_path / "call-audio.wav"
    _recording(wav)
    out = tmp_path / "report.html"
    p = subprocess.run([sys.executable, "-m", "kefuqa.cli", "check", str(wav), "-f", "html", "-o", str(out),
                        "--vad", "energy"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    html = out.read_text(encoding="utf-8")
    assert "<audio" in html and "<svg" in html
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        assert page.locator("audio").count() == 1
        # the findings from the audio: an interruption (LST001) and dead air (SIL001) are listed with times
        text = page.inner_text("body")
        assert "LST001" in text and "SIL001" in text
        marker = page.locator("[data-kefuqa-seek]").first
        target = float(marker.get_attribute("data-kefuqa-seek"))
        page.wait_for_function("document.querySelector('audio').readyState >= 1", timeout=60000)
        assert abs(seeked_by(page, "document.querySelector('audio')", marker.click) - target) < 0.5
        Path("test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path="test-artifacts/audio-report.png", full_page=True)
        browser.close()
    assert not errors


def test_transcript_of_a_recording_plays_from_its_time_and_is_outlined_while_it_plays(tmp_path):
    """examples/telephony (recording + transcript + manifest): the report's transcript is tied to the
    player — an utterance's time plays the recording from there, and the utterance playing is outlined."""
    pytest.importorskip("soundfile")
    out = tmp_path / "report.html"
    example = Path(__file__).resolve().parents[1] / "examples" / "telephony"
    p = subprocess.run([sys.executable, "-m", "kefuqa.cli", "check", str(example), "-f", "html", "-o", str(out),
                        "--embed-audio"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(out.as_uri())
        call = page.locator('section[data-call-id="TEL-0002"]')
        assert call.locator(".kq-tl polyline.kq-env").count() == 2  # both channels' loudness envelope
        utt = call.locator(".transcript .utt").nth(2)
        start = float(utt.get_attribute("data-kefuqa-from"))
        end = float(utt.get_attribute("data-kefuqa-to"))
        player = "document.querySelector('section[data-call-id=\"TEL-0002\"] audio')"
        until(page, f"{player}.readyState >= 1")
        assert abs(seeked_by(page, player, utt.locator(".utt-meta .t").click) - start) < 0.5
        until(page, f"{player}.currentTime > {start} + 0.3")  # it plays
        page.evaluate(f"{player}.pause()")
        # the utterance under the play head is outlined, and only it
        first = call.locator(".transcript .utt").nth(0)
        for shown, other, at in ((utt, first, (start + end) / 2),
                                 (first, utt, float(first.get_attribute("data-kefuqa-from")) + 1.0)):
            page.evaluate(f"{player}.currentTime = {at:.2f}")
            until(page, f"Math.abs({player}.currentTime - {at:.2f}) < 0.05 && !{player}.seeking")
            until(page, "document.querySelectorAll('section[data-call-id=\"TEL-0002\"] .utt.kq-playing').length === 1")
            assert "kq-playing" in (shown.get_attribute("class") or "")
            assert "kq-playing" not in (other.get_attribute("class") or "")
        # the first call's player did not move
        assert page.evaluate("document.querySelector('section[data-call-id=\"TEL-0001\"] audio').currentTime") == 0
        browser.close()
    assert not errors
