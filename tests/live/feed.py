"""Feeding a stored conversation into a live session as if it were happening (shared by the tests)."""

from __future__ import annotations

from typing import Any

from kefuqa.live import LiveSession
from kefuqa.model import Conversation

CALL_FIELDS = ("id", "channel", "direction", "started_at", "received_at", "first_response_at", "agent",
               "customer", "ring_seconds")


def call_meta(conv: Conversation) -> dict[str, Any]:
    data = conv.model_dump(mode="json", include=set(CALL_FIELDS), exclude_unset=True)
    return data


def feed(session: LiveSession, conv: Conversation, *, partials: bool = False) -> list[dict[str, Any]]:
    """Every utterance (optionally preceded by a partial of its first half) and event in time order, then
    the hang-up; returns every item the session sent."""
    out = session.start()
    events = sorted(conv.events, key=lambda e: (e.end if e.end is not None else e.at if e.at is not None else 0.0))
    pending = list(events)
    for i, u in enumerate(conv.utterances):
        while pending and u.start is not None and _when(pending[0]) is not None and _when(pending[0]) <= u.start:
            out += _event(session, pending.pop(0))
        if partials and u.text:
            out += session.utterance(u.role, u.text[: len(u.text) // 2], u.start, u.start, final=False, uid=f"u{i}")
        out += session.utterance(u.role, u.text or "", u.start, u.end, uid=f"u{i}", attrs=dict(u.attrs))
    for e in pending:
        out += _event(session, e)
    out += session.hangup(conv.ended_by, metrics=dict(conv.metrics))
    return out


def _when(e: Any) -> float | None:
    return e.end if e.end is not None else e.at


def _event(session: LiveSession, e: Any) -> list[dict[str, Any]]:
    extra = {k: v for k, v in (e.model_extra or {}).items()}
    assert not extra, f"event fields the live protocol does not carry: {extra}"
    return session.event(e.type, start=e.start, end=e.end, at=e.at, target=e.target)
