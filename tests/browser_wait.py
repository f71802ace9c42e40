"""Waiting on a page's audio player in the browser tests (the HTML report and the workbench call page)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(page: Any, expr: str, timeout: float = 60.0) -> None:
    """Wait for a JS condition, evaluated from outside the page (`wait_for_function` builds a function inside
    it, which the pages' Content-Security-Policy rightly forbids)."""
    stop = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expr})"):
        assert time.monotonic() < stop, f"timed out waiting for {expr}"
        time.sleep(0.05)


def seeked_by(page: Any, player: str, click: Callable[[], None]) -> float:
    """Where `player` seeked to when `click` played it from a time, read at its 'seeked' event: it plays on at
    once, so a poll of currentTime that comes late (a loaded machine) would find it past the mark for ever."""
    page.evaluate(f"() => {{ const a = {player}; window.kqSeeked = null; a.addEventListener('seeked', "
                  f"() => {{ window.kqSeeked = a.currentTime; }}, {{once: true}}); }}")
    click()
    until(page, "window.kqSeeked !== null")
    return float(page.evaluate("() => window.kqSeeked"))
