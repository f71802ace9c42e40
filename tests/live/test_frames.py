"""The protocol frames of every example (what `kefuqa replay` and the benchmark send), applied as the server
applies them, give no error and end in the report `kefuqa check` gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kefuqa.engine import Checker
from kefuqa.errors import InputError
from kefuqa.live import LiveSession, compile_guidance, live_rules, load_guidance
from kefuqa.live.frames import frames, start_frame
from kefuqa.model import Conversation
from kefuqa.readers import iter_paths, read_path
from kefuqa.rules.rulebook import load_rulebook

live_calls = pytest.importorskip("kefuqa.service.live_calls")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONVS = [c for p in iter_paths([EXAMPLES]) for c in read_path(p) if not isinstance(c, InputError)]


@pytest.fixture(scope="module")
def engine() -> tuple[Checker, Any, Any, list[str]]:
    rb = load_rulebook("standard")
    checker = Checker(rb)
    g = load_guidance("standard", {r.id for r in rb.rules})
    return checker, g, compile_guidance(g), live_rules(checker)


@pytest.mark.parametrize("conv", CONVS, ids=[c.id for c in CONVS])
def test_frames_replay_to_the_same_report(engine: Any, conv: Conversation) -> None:
    checker, g, comp, ids = engine
    start = start_frame(conv)
    call = live_calls.LiveCall(LiveSession(checker, g, start["call"], compiled=comp, live_ids=ids), None, None)
    limits = live_calls.Limits()
    plan = frames(conv, partials=True)
    assert [at for at, _ in plan] == sorted(at for at, _ in plan)
    for _at, f in plan:
        live_calls.apply(call, live_calls.parse(live_calls.json.dumps(f, ensure_ascii=False), limits), limits)
    assert call.session.report is not None
    got = call.session.report.to_dict()
    want = checker.check(conv).to_dict()
    got.pop("notes", None), want.pop("notes", None)
    assert got == want
