"""Numbers measured on a conversation, by name: call fields, metrics, and computed measures.

`metric` rules and `applies` conditions name a measure (``ring_seconds``, ``customer_first_delay``,
``loudness_rise_db`` …). A new measure is one function registered with `@measure_fn(name)`; it gets the
context and the rule asking (for parameters such as `uses`) and returns a value or None when unknown.
A measure about one turn stores its index as ``ctx.cache["at:<name>"]``; a `metric` finding then sits on
that turn instead of being call-level.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from ..model import Conversation
from .context import Context

MeasureFn = Callable[[Context, Any], Any]
_MEASURES: dict[str, MeasureFn] = {}


def measure_fn(name: str) -> Callable[[MeasureFn], MeasureFn]:
    def register(fn: MeasureFn) -> MeasureFn:
        _MEASURES[name] = fn
        return fn
    return register


def measure(ctx: Context, name: str, rule: Any = None) -> Any:
    """A measure or call field for `metric` rules and conditions; None when unknown for this call."""
    fn = _MEASURES.get(name)
    if fn is not None:
        return fn(ctx, rule)
    conv = ctx.conv
    if name in ("ring_seconds", "ended_by", "channel", "direction"):
        return getattr(conv, name)
    if name.startswith("metrics:"):
        return conv.metrics.get(name[8:])
    if name.startswith("turns:"):
        return len(ctx.by_role.get(name[6:], []))
    return getattr(conv, name, None) if name in Conversation.model_fields else conv.metrics.get(name)


def compare(value: Any, op: str | None, target: Any) -> bool:
    if op == ">":
        return bool(value > target)
    if op == ">=":
        return bool(value >= target)
    if op == "<":
        return bool(value < target)
    if op == "<=":
        return bool(value <= target)
    if op == "==":
        return bool(value == target)
    if op == "!=":
        return bool(value != target)
    if op == "in":
        return value in target
    if op == "not in":
        return value not in target
    raise ValueError(f"unknown operator {op!r}")


def speech_rate(ctx: Context, role: str) -> tuple[float, float, float, list[tuple[float, int]]]:
    """(all speech seconds, seconds and units of the substantial turns, sorted per-turn rates)."""
    key = "speech_rate:" + role
    got = ctx.cache.get(key)
    if got is not None:
        return got  # type: ignore[no-any-return]
    utts = ctx.conv.utterances
    us = ctx.by_role[role]
    seconds = units = 0.0
    per_utt: list[tuple[float, int]] = []
    total = sum(utts[u].duration for u in us)
    for u in us:
        d = utts[u].duration
        n: float
        if ctx.has_text:
            n = ctx.word_count(u)
        else:
            syl = utts[u].attrs.get("syllables")
            if syl is None:
                continue
            n = float(syl)
        if n < 3 or d < 1.0:
            continue  # "嗯", "好的": listening, not a sample of how the agent speaks
        seconds += d
        units += n
        if d >= 2.0:
            per_utt.append((n / d * 60, u))
    per_utt.sort()
    got = ctx.cache[key] = (total, seconds, units, per_utt)
    return got


@measure_fn("customer_first_delay")
def customer_first_delay(ctx: Context, rule: Any) -> float | None:
    """Seconds from the end of the agent's opening to the customer's first words (silent calls)."""
    agent, cust = ctx.by_role["agent"], ctx.by_role["customer"]
    if not agent:
        return None
    if not cust:
        return float("inf")
    if not ctx.timed:
        return None
    # the opening: the agent's first turn, with ASR segments less than a second apart joined
    utts = ctx.conv.utterances
    opening_end = utts[agent[0]].end or 0.0
    for a in agent[1:]:
        if (utts[a].start or 0.0) - opening_end >= 1.0:
            break
        opening_end = max(opening_end, utts[a].end or 0.0)
    t = utts[cust[0]].start or 0.0
    return max(0.0, t - opening_end)


@measure_fn("ended_in_transfer")
def ended_in_transfer(ctx: Context, rule: Any) -> bool:
    """Whether the agent handed the call on at the end: a transfer (given or inferred) during or after the
    agent's last turn. The closing is then the receiving side's, not this agent's (CLS001/CLS002)."""
    agent = ctx.by_role["agent"]
    if not agent:
        return False
    last = agent[-1]
    start = ctx.conv.utterances[last].start
    for e in ctx.events:
        if e.type != "transfer":
            continue
        if e.utterance is not None and e.utterance >= last:
            return True
        t = e.at if e.at is not None else e.start
        if t is not None and start is not None and t >= start:
            return True
    return False


@measure_fn("max_hold_seconds")
def max_hold_seconds(ctx: Context, rule: Any) -> float | None:
    ds = [e.duration for e in ctx.events if e.type == "hold" and e.duration is not None]
    return max(ds) if ds else None


@measure_fn("loudness_rise_db")
def loudness_rise_db(ctx: Context, rule: Any) -> float | None:
    """How many dB louder the agent gets right after an angry customer turn than the agent's median level.

    A customer turn is angry when the recogniser tagged it angry, when a rule the asking rule `uses`
    (EVT004 in the standard rulebook) fired on it, or when it is 6 dB above the customer's median level.
    """
    ctx.cache.pop("at:loudness_rise_db", None)
    utts = ctx.conv.utterances
    agent = [u for u in ctx.by_role["agent"] if isinstance(utts[u].attrs.get("loudness_dbfs"), int | float)]
    cust = [u for u in ctx.by_role["customer"] if isinstance(utts[u].attrs.get("loudness_dbfs"), int | float)]
    if len(agent) < 3:
        return None
    angry_hits = {h.utterance for rid in (getattr(rule, "uses", None) or ())
                  for h in ctx.fired.get(rid, ()) if h.utterance is not None}
    cust_levels = [float(utts[u].attrs["loudness_dbfs"]) for u in cust]
    cust_median = median(cust_levels) if cust_levels else None
    angry = set()
    for u in ctx.by_role["customer"]:
        a = utts[u].attrs
        if str(a.get("emotion", "")).lower() == "angry" or u in angry_hits:
            angry.add(u)
        elif cust_median is not None and isinstance(a.get("loudness_dbfs"), int | float) and \
                a["loudness_dbfs"] >= cust_median + 6:
            angry.add(u)
    if not angry:
        return 0.0
    base = median(float(utts[u].attrs["loudness_dbfs"]) for u in agent)
    after = []
    for u in agent:
        prev_cust = [c for c in ctx.by_role["customer"] if c < u]
        if prev_cust and prev_cust[-1] in angry:
            after.append((float(utts[u].attrs["loudness_dbfs"]), u))
    if not after:
        return 0.0
    loudest, u = max(after)
    ctx.cache["at:loudness_rise_db"] = u  # the finding belongs on this turn
    return loudest - base


def add_limit(start: datetime, limit: str) -> datetime:
    """start + a limit like 2h, 30m, 3d or 1wd (working days, Monday–Friday)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(h|m|s|d|wd)", limit)
    if not m:
        raise ValueError(f"bad limit {limit!r}")
    n, unit = float(m.group(1)), m.group(2)
    if unit == "h":
        return start + timedelta(hours=n)
    if unit == "m":
        return start + timedelta(minutes=n)
    if unit == "s":
        return start + timedelta(seconds=n)
    if unit == "d":
        return start + timedelta(days=n)
    # working days: a request arriving at the weekend counts from Monday 00:00
    t = start
    while t.weekday() >= 5:
        t = (t + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    days = int(n)
    while days > 0:
        t += timedelta(days=1)
        if t.weekday() < 5:
            days -= 1
    return t
