"""Events of a conversation: the ones the input gives, holds and transfers inferred from the transcript,
and where a window around an event starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import Event
from .hits import Pos

if TYPE_CHECKING:
    from .context import Context


def infer_events(ctx: Context, events: list[Event]) -> list[Event]:
    """The given events plus inferred holds (a hold request, then the agent silent a while), customer
    holds (你等一下，我去找电费单) and transfers, in time order."""
    checker = ctx.checker
    settings = checker.rulebook.settings
    utts = ctx.conv.utterances
    holds = settings.infer_holds
    if holds.enabled and ctx.timed and not any(e.type == "hold" for e in events):
        sid = checker.hold_sid
        agent = ctx.by_role["agent"]
        requests = {x for x in ctx.candidates(sid, agent) if ctx.matches(sid, x)} if sid is not None else set()
        back = holds.lookback_turns
        for k, (a, b) in enumerate(zip(agent, agent[1:], strict=False)):
            if not requests:
                break  # no hold request in the call
            if any(x in requests for x in agent[max(0, k - back + 1): k + 1]):
                gap_start, gap_end = utts[a].end, utts[b].start
                if gap_start is not None and gap_end is not None and gap_end - gap_start >= holds.min_gap_seconds:
                    events.append(Event(type="hold", start=gap_start, end=gap_end, inferred=True, utterance=a))
    csid = checker.customer_hold_sid
    if holds.enabled and ctx.timed and csid is not None and csid in ctx.sets_hit:  # else no customer said one
        order = ctx.time_order
        for a, b in zip(order, order[1:], strict=False):
            if ctx.roles[a] == "customer" and csid in ctx.raw[a] and ctx.matches(csid, a):
                gap_start, gap_end = utts[a].end, utts[b].start
                if gap_start is not None and gap_end is not None and gap_end - gap_start >= holds.min_gap_seconds:
                    events.append(Event(type="customer_hold", start=gap_start, end=gap_end, inferred=True,
                                        utterance=a))
    if settings.infer_transfers.enabled and not any(e.type == "transfer" for e in events):
        sid = checker.transfer_sid
        if sid is not None:
            for a in ctx.candidates(sid, ctx.by_role["agent"]):
                if ctx.matches(sid, a):
                    events.append(Event(type="transfer", at=utts[a].end, inferred=True, utterance=a))
    events.sort(key=lambda e: (e.at if e.at is not None else float("inf")))
    return events


def event_pos(ctx: Context, ev: Event, edge: str = "end") -> Pos:
    """Where a window around an event starts: its time when the call is timed, else its utterance."""
    t = ev.end if (edge == "end" and ev.end is not None) else (ev.start if ev.start is not None else ev.at)
    if ev.utterance is not None and (edge == "start" or t is None or not ctx.timed):
        return Pos(ev.utterance, t, ev.end, None)
    return Pos(None, t, ev.end, None)


def utterance_before(ctx: Context, t: float | None, role: str = "any") -> int | None:
    """The last utterance of `role` that starts at or before time t (the evidence for a timed event: a
    hold or transfer belongs on the agent's turn that started it, not on the customer's 好 before it);
    the last of any role when `role` said nothing by then."""
    if t is None:
        return None
    best = best_any = None
    for i, x in enumerate(ctx.conv.utterances):
        if x.start is not None and x.start <= t + 0.05:
            best_any = i
            if role == "any" or x.role == role:
                best = i
    return best if best is not None else best_any
