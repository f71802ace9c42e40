"""A recording scored end to end by the CLI, its HTML report opened in headless Chromium: the timeline
shows both channels and the player jumps to a finding when it is clicked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
        page.wait_for_function("document.querySelector('audio').readyState >= 1", timeout=10000)
        marker.click()
        page.wait_for_function(f"Math.abs(document.querySelector('audio').currentTime - {target}) < 0.5",
                               timeout=10000)
        Path("test-artifacts").mkdir(exist_ok=True)
        page.screenshot(path="test-artifacts/audio-report.png", full_page=True)
        browser.close()
    assert not errors
