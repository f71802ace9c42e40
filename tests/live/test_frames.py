"""The protocol frames of every example (what `kefuqa replay` and the benchmark send), applied as the server
applies them, give no error and end in the report `kefuqa check` gives."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kefuqa.engine import Checker
from kefuqa.errors import InputError
from kefuqa.live import LiveError, LiveSession, compile_guidance, live_rules, load_guidance
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


def _timers(engine: Any, conv: Conversation) -> list[dict[str, Any]]:
    checker, g, comp, ids = engine
    call = live_calls.LiveCall(LiveSession(checker, g, start_frame(conv)["call"], compiled=comp, live_ids=ids),
                               None, None)
    limits = live_calls.Limits()
    items: list[dict[str, Any]] = []
    for _at, f in frames(conv):
        items += live_calls.apply(call, live_calls.parse(live_calls.json.dumps(f, ensure_ascii=False), limits),
                                  limits) or []
    return [i for i in items if i.get("kind") == "timer"]


@pytest.mark.parametrize("conv", CONVS, ids=[c.id for c in CONVS])
def test_ticks_only_in_silence(conv: Conversation) -> None:
    """A tick says nobody is speaking: a replayed call never ticks inside a turn it sends only at its end."""
    spoken = [(u.start, u.end) for u in conv.utterances if u.start is not None and u.end is not None]
    ticks = [f["t"] for _at, f in frames(conv) if f["type"] == "tick"]
    assert not [t for t in ticks if any(a < t < b for a, b in spoken)]


def test_replayed_timers_are_the_calls_own(engine: Any) -> None:
    """The customer answers 0.7 s after the greeting with an 11 s turn and nobody pauses over a second: no
    silent-caller or dead-air timer (the ticks inside that turn used to raise both); the silent caller's call
    still gets its timer."""
    busy = next(c for c in CONVS if c.id == "YX-20260628-1193")  # ecommerce-complaint-handled-badly.json
    greet, answer = busy.utterances[:2]
    assert answer.start - greet.end < 1 and answer.end - answer.start > 10  # what the test is about
    assert _timers(engine, busy) == []
    wait = engine[1].timers.customer_silent.after_seconds
    silent = [c for c in CONVS if any(t["timer"] == "customer_silent" for t in _timers(engine, c))]
    assert silent, "no example call raises the silent-caller timer"
    for c in silent:  # and each time the customer really had said nothing for the timer's seconds
        first_customer = next((u.start for u in c.utterances if u.role == "customer"), None)
        first_agent_end = next(u.end for u in c.utterances if u.role == "agent")
        assert first_customer is None or first_customer - first_agent_end >= wait, c.id


def test_limits_on_text_call_length_and_live_calls(engine: Any) -> None:
    """Each limit is a Chinese error with its code; the call goes on (the frame is refused, not the call),
    and another call never notices."""
    checker, g, comp, ids = engine
    limits = live_calls.Limits(max_text_chars=20, max_call_seconds=60.0, max_utterances=3, max_live_calls=2)
    calls = live_calls.LiveCalls(limits)
    eng = live_calls.Engine("standard", checker, g, comp, ids)
    a = calls.open(eng, {"id": "a"}, None)
    b = calls.open(eng, {"id": "b"}, None)
    with pytest.raises(LiveError) as exc:
        calls.open(eng, {"id": "c"}, None)
    assert exc.value.code == "too_many_calls" and "上限 2" in exc.value.message

    def send(call: Any, frame: dict[str, Any]) -> list[dict[str, Any]]:
        return live_calls.apply(call, live_calls.parse(live_calls.json.dumps(frame, ensure_ascii=False), limits),
                                limits)

    refused = [({"type": "utterance", "role": "agent", "text": "您好" * 11, "start": 0.0, "end": 1.0}, "text_too_long"),
               ({"type": "utterance", "role": "agent", "text": "您好", "start": 61.0, "end": 62.0}, "call_too_long"),
               ({"type": "tick", "t": 3600.0}, "call_too_long"),
               ({"type": "event", "event": "hold", "phase": "start", "at": 90.0}, "call_too_long")]
    for frame, code in refused:
        with pytest.raises(LiveError) as exc:
            send(a, frame)
        assert exc.value.code == code and exc.value.message
    for k in range(3):
        send(a, {"type": "utterance", "role": "agent", "text": "您好", "start": float(k), "end": k + 0.5})
    with pytest.raises(LiveError) as exc:
        send(a, {"type": "utterance", "role": "customer", "text": "喂", "start": 4.0, "end": 4.5})
    assert exc.value.code == "call_too_long" and "语句数" in exc.value.message
    assert len(a.session.utterances) == 3 and b.session.utterances == []
    assert [i["kind"] for i in send(a, {"type": "hangup", "ended_by": "agent"})][-1] == "report"
    for bad in ("{not json", b"\xff\xfe"):
        with pytest.raises(LiveError) as exc:
            live_calls.parse(bad, limits)
        assert exc.value.code == "bad_json" and not re.search(r"[A-Za-z]{3,}", exc.value.message.replace("JSON", "")
                                                              .replace("UTF", "")), exc.value.message
