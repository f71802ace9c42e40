"""A stored conversation as the input frames of the live protocol v1 (docs/assist.md), each with the call
time it is sent at: the replay tool, the benchmark and the tests stream calls with it."""

from __future__ import annotations

from typing import Any

from ..model import Conversation

CALL_FIELDS = ("id", "channel", "direction", "started_at", "received_at", "first_response_at", "agent",
               "customer", "ring_seconds")


def start_frame(conv: Conversation, call_id: str | None = None, **extra: Any) -> dict[str, Any]:
    meta = conv.model_dump(mode="json", include=set(CALL_FIELDS), exclude_unset=True)
    if call_id is not None:
        meta["id"] = call_id
    return {"type": "start", "v": 1, "call": meta, **extra}


def frames(conv: Conversation, *, partials: bool = False, tick: float | None = 1.0) -> list[tuple[float, dict[str, Any]]]:
    """(send at, frame) in time order: an utterance when it ends (and not before the one said before it) (a partial of its first half halfway, with
    `partials`), holds as start and end, other events when they happen, a tick every `tick` seconds of
    silence (none while someone speaks), and the hang-up. Untimed utterances are one second apart."""
    out: list[tuple[float, dict[str, Any]]] = []
    t = 0.0
    for i, u in enumerate(conv.utterances):
        start = u.start if u.start is not None else t
        # finals go in spoken order: a short turn inside a longer one waits until the longer one is final
        end = max(u.end if u.end is not None else start + 1.0, t)
        t = end
        f: dict[str, Any] = {"type": "utterance", "id": f"u{i}", "role": u.role, "text": u.text or ""}
        if u.start is not None:
            f["start"] = u.start
        if u.end is not None:
            f["end"] = u.end
        if u.attrs:
            f["attrs"] = dict(u.attrs)
        if partials and u.text and len(u.text) > 4 and u.start is not None and u.end is not None:
            mid = (u.start + u.end) / 2
            out.append((mid, {**f, "text": u.text[: len(u.text) // 2], "end": mid, "final": False}))
        out.append((end, f))
    for e in conv.events:
        if e.type == "hold" and e.start is not None and e.end is not None:
            out.append((e.start, {"type": "event", "event": "hold", "phase": "start", "at": e.start}))
            out.append((e.end, {"type": "event", "event": "hold", "phase": "end", "at": e.end}))
            t = max(t, e.end)
        else:
            at = e.at if e.at is not None else e.start if e.start is not None else t
            f = {"type": "event", "event": e.type, "at": at}
            if e.start is not None and e.end is not None:
                f |= {"start": e.start, "end": e.end}
                f.pop("at")
            if e.target is not None:
                f["target"] = e.target
            out.append((e.end if e.end is not None else at, f))
    out.sort(key=lambda x: (x[0], 0 if x[1]["type"] == "event" and x[1].get("phase") == "end" else 1))
    if tick:
        # ticks say "nobody is speaking now": none while someone is (an utterance's start to its end), as a
        # live client would send partials there — else the silent-caller and dead-air timers would fire
        # during a long turn that is only sent when it ends
        spoken = sorted((u.start, u.end) for u in conv.utterances if u.start is not None and u.end is not None)
        ticks: list[tuple[float, dict[str, Any]]] = []
        prev = 0.0
        for at, _f in out:
            k = prev + tick
            while k < at:
                if not any(a < k < b for a, b in spoken):
                    ticks.append((k, {"type": "tick", "t": round(k, 3)}))
                k += tick
            prev = max(prev, at)
        out = sorted(out + ticks, key=lambda x: x[0])
    hang: dict[str, Any] = {"type": "hangup", "at": t}
    if conv.ended_by is not None:
        hang["ended_by"] = conv.ended_by
    if conv.metrics:
        hang["metrics"] = dict(conv.metrics)
    out.append((t, hang))
    for n, (_at, f) in enumerate(out, 1):
        f["n"] = n
    return out
