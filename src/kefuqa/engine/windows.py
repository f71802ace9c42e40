"""Which utterances a rule looks at: scopes (first/last turns or seconds of a role) and windows around a
trigger (after, before, during, the whole call)."""

from __future__ import annotations

from ..rules.schema import Scope, Window
from .context import Context
from .hits import NotApplicable, Pos


def turns(ctx: Context, us: list[int]) -> list[list[int]]:
    """Utterances of one role grouped into turns: ASR segments of one turn (timed, less than a second
    apart, nobody else speaking in between) are one turn."""
    utts = ctx.conv.utterances
    out: list[list[int]] = []
    timed = ctx.timed
    roles = ctx.roles
    for u in us:
        if out and timed:
            p = out[-1][-1]
            pe, us_ = utts[p].end, utts[u].start
            if pe is not None and us_ is not None and us_ - pe < 1.0 and (
                    u == p + 1 or not any(roles[i] in ("agent", "customer") and roles[i] != roles[u]
                                          for i in range(p + 1, u))):
                out[-1].append(u)
                continue
        out.append([u])
    return out


def scoped(ctx: Context, role: str, scope: Scope | None) -> list[int]:
    us = ctx.role_utts(role)
    if scope is None:
        return us
    if scope.first_turns or scope.last_turns or scope.skip_turns:
        ts = ctx.turn_cache.get(role)
        if ts is None:
            ts = ctx.turn_cache[role] = turns(ctx, us)
        if scope.first_turns:
            ts = ts[: scope.first_turns]
        ts = ts[scope.skip_turns:]
        if scope.last_turns:
            ts = ts[-scope.last_turns:]
        us = [u for t in ts for u in t]
    if scope.first_seconds or scope.last_seconds:
        if not ctx.timed:
            raise NotApplicable("缺少时间戳")
        utts = ctx.conv.utterances
        if scope.first_seconds:
            t0 = min((x.start or 0.0) for x in utts)
            us = [u for u in us if (utts[u].start or 0.0) <= t0 + scope.first_seconds]
        if scope.last_seconds:
            t1 = max((x.end or 0.0) for x in utts)
            us = [u for u in us if (utts[u].end or 0.0) >= t1 - scope.last_seconds]
    return us


def window(ctx: Context, pos: Pos, role: str, win: Window) -> list[int]:
    us = ctx.role_utts(role)
    if win.direction == "call":
        return us
    if win.seconds and not ctx.timed:
        raise NotApplicable("缺少时间戳")
    utts = ctx.conv.utterances
    if win.direction == "during":
        if pos.t is None or pos.end_t is None:
            return []
        t0, t1 = pos.t, pos.end_t
        return [u for u in us if (s := utts[u].start) is not None and t0 <= s < t1]
    if win.direction == "after":
        if pos.u is not None:
            sel = [u for u in us if u > pos.u or (win.include_anchor and u == pos.u)]
        elif pos.t is not None:
            sel = [u for u in us if (utts[u].start or 0.0) >= pos.t - 0.05]
        else:
            sel = us
        if win.seconds and pos.t is not None:
            sel = [u for u in sel if (utts[u].start or 0.0) <= pos.t + win.seconds]
        if win.turns and win.skip_questions:
            kept, n = [], 0
            for u in sel:
                if n >= win.turns:
                    break
                kept.append(u)
                if not ctx.is_question(u):
                    n += 1
            sel = kept
        elif win.turns:
            sel = sel[: win.turns]
        if win.before_turns and pos.u is not None:
            sel = [u for u in us if u < pos.u][-win.before_turns:] + sel
        return sel
    # before
    if pos.u is not None:
        sel = [u for u in us if u < pos.u or (win.include_anchor and u == pos.u)]
    elif pos.t is not None:
        sel = [u for u in us if (utts[u].end or utts[u].start or 0.0) <= pos.t + 0.05]
    else:
        sel = us
    if win.seconds and pos.t is not None:
        sel = [u for u in sel if (utts[u].end or 0.0) >= pos.t - win.seconds]
    return sel[-win.turns:] if win.turns else sel
