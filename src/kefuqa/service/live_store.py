"""Live calls shared by every worker process (issue 11): who may see a call, and its rows in the database.

A call's connection may land on any worker of `kefuqa serve --workers N` (or on the server after a restart).
Each accepted input frame is journaled in `live_call_frames`; the row in `live_calls` says who streams the
call, whose agent and team it is, which worker holds it now (`owner`, `epoch`), and what the supervisor wall
shows. A worker that gets a resume for a call it does not hold takes it over (epoch + 1, in one transaction
that waits for the old holder's last write) and rebuilds the session by replaying the frames; the old holder's
next write finds the epoch changed and lets the call go. The session is pure, so the replay gives the same
guidance items (seq, kind, key) as the original.

Journal and wall rows are written by a background flusher about every `FLUSH_SECONDS`, off the event loop;
frames a worker had not yet written when it lost the call are resent by the client (`ready.received` says
the last frame applied), and guidance the client already has (`resume.after_seq`) is not sent again.

Everything here is synchronous and meant for a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, false, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DBSession

from ..live import LiveError
from .models import Agent, LiveCallFrame, LiveCallRow, Team, utcnow
from .security import find_session

WORKER = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
FLUSH_SECONDS = 0.2  # how often journal and wall rows are written
HEARTBEAT_SECONDS = 15.0  # a worker touches its live calls' rows this often
ORPHAN_SECONDS = 60.0  # a live row nobody touched this long (and past the resume window) has lost its worker
KEEP_ENDED_SECONDS = 600.0  # an ended call's rows (its report on resume, the wall's last glance) are kept this long
TOKEN_TTL = 10.0  # seconds a looked-up token is reused (a logout takes effect within this time)


@dataclass(frozen=True)
class Who:
    """The user behind a connection or request, with what role scoping needs."""

    id: int
    role: str
    username: str
    agent_id: int | None  # an agent's own agent record
    agent_code: str | None
    team_id: int | None  # a leader's team


class TokenCache:
    """Token → user for a few seconds, so that a storm of connections does not look up one login each."""

    def __init__(self, ttl: float = TOKEN_TTL) -> None:
        self.ttl = ttl
        self._hits: dict[str, tuple[float, Who]] = {}

    def get(self, token: str) -> Who | None:
        hit = self._hits.get(token)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[1]

    def put(self, token: str, who: Who) -> None:
        if len(self._hits) > 10_000:
            now = time.monotonic()
            self._hits = {k: v for k, v in self._hits.items() if now - v[0] <= self.ttl}
        self._hits[token] = (time.monotonic(), who)


def lookup_user(db: DBSession, token: str | None) -> Who | None:
    found = find_session(db, token)
    if found is None:
        return None
    user = found[1]
    code = db.scalar(select(Agent.code).where(Agent.id == user.agent_id)) if user.agent_id else None
    return Who(user.id, user.role, user.username, user.agent_id, code, user.team_id)


def may_access(who: Who, user_id: int | None, agent_id: int | None, team_id: int | None) -> bool:
    """Watch, resume or list a live call: QA and admins every call; a team leader the calls of their team;
    an agent the calls that are theirs (their agent record); anyone the calls they stream themselves."""
    if who.role in ("admin", "qa"):
        return True
    if user_id is not None and user_id == who.id:
        return True
    if who.role == "leader":
        return who.team_id is not None and team_id == who.team_id
    if who.role == "agent":
        return who.agent_id is not None and agent_id == who.agent_id
    return False


def call_scope(db: DBSession, who: Who | None, meta: dict[str, Any]) -> tuple[int | None, int | None, dict[str, Any]]:
    """The call's agent and team (from the start frame's `call.agent`, checked against the streaming user):
    an agent streams only their own calls (their agent code is filled in), a team leader only their team's."""
    agent = meta.get("agent") if isinstance(meta.get("agent"), dict) else None
    code = str(agent["id"]) if agent and agent.get("id") not in (None, "") else None
    if who is not None and who.role == "agent":
        if who.agent_id is None or who.agent_code is None:
            raise LiveError("forbidden", "该坐席账号没有关联坐席工号，不能推送实时通话")
        if code is not None and code != who.agent_code:
            raise LiveError("forbidden", f"坐席只能推送自己的通话（本账号的工号是 {who.agent_code}，start 帧写的是 {code}）")
        team_id = db.scalar(select(Agent.team_id).where(Agent.id == who.agent_id))
        return who.agent_id, team_id, {**meta, "agent": {**(agent or {}), "id": who.agent_code}}
    agent_id = team_id = None
    if code is not None:
        row = db.execute(select(Agent.id, Agent.team_id).where(Agent.code == code)).first()
        if row is not None:
            agent_id, team_id = row
    team_name = agent.get("team") if agent else None
    if isinstance(team_name, str) and team_name.strip():
        named = db.scalar(select(Team.id).where(Team.name == team_name))
        if named is not None:
            team_id = named
    if who is not None and who.role == "leader":
        if team_id is None and code is None:
            team_id = who.team_id
        if who.team_id is None or team_id != who.team_id:
            raise LiveError("forbidden", "组长只能为本组坐席推送实时通话")
    return agent_id, team_id, meta


# ---- rows ---------------------------------------------------------------------------------------------------


def claim(db: DBSession, values: dict[str, Any]) -> LiveCallRow | None:
    """Insert a new call's row; None if the call id was new. If the id is taken (live on some worker, or
    ended a moment ago), its row."""
    old = db.get(LiveCallRow, values["call_id"])
    if old is not None:
        return old
    try:
        with db.begin_nested():
            db.add(LiveCallRow(**values, owner=WORKER, epoch=1, status="live", received=0, opened_at=utcnow(),
                               updated_at=utcnow()))
    except IntegrityError:
        return db.get(LiveCallRow, values["call_id"])
    return None


def load(db: DBSession, call_id: str, after_idx: int = 0) -> tuple[LiveCallRow | None, list[LiveCallFrame]]:
    row = db.get(LiveCallRow, call_id)
    if row is None:
        return None, []
    frames = list(db.scalars(select(LiveCallFrame).where(LiveCallFrame.call_id == call_id, LiveCallFrame.idx > after_idx)
                             .order_by(LiveCallFrame.idx)))
    return row, frames


def take_over(db: DBSession, call_id: str) -> tuple[LiveCallRow | None, list[LiveCallFrame]]:
    """This worker holds the call from now on (the caller commits). The update waits for a write of the
    previous holder in progress; the frames read after it include that write."""
    res = db.execute(update(LiveCallRow).where(LiveCallRow.call_id == call_id, LiveCallRow.status == "live")
                     .values(epoch=LiveCallRow.epoch + 1, owner=WORKER, updated_at=utcnow()))
    if not getattr(res, "rowcount", 0):
        return None, []
    db.expire_all()
    return load(db, call_id)


@dataclass
class Pending:
    """What one call has to write: its row if not claimed yet, new frames, the wall's view."""

    call_id: str
    epoch: int
    new_row: dict[str, Any] | None
    frames: list[tuple[int, int | None, dict[str, Any]]]
    received: int
    summary: dict[str, Any] | None  # None: the wall's view is not due for a write yet
    status: str
    stored: bool | None


def flush(db: DBSession, batch: list[Pending], heartbeat: list[tuple[str, int]]) -> set[str]:
    """Write a batch in one transaction (the caller commits), in a few statements whatever its size. Returns
    the calls another worker has taken over (their writes are dropped: the new holder rebuilt them from the
    journal). The rows are locked first (PostgreSQL), so a take-over waits for this write."""
    now = utcnow()
    for p in batch:
        if p.new_row is not None and db.get(LiveCallRow, p.call_id) is None:
            if p.new_row.get("agent_id") is None and p.new_row.get("team_id") is None:
                with contextlib.suppress(LiveError):  # a call opened without a scope (the audio path)
                    p.new_row["agent_id"], p.new_row["team_id"], _ = call_scope(db, None, p.new_row["meta"])
            try:
                with db.begin_nested():
                    db.add(LiveCallRow(**p.new_row, owner=WORKER, epoch=p.epoch, status="live", received=0,
                                       opened_at=now, updated_at=now))
            except IntegrityError:
                pass
    expected = {cid: epoch for cid, epoch in heartbeat}
    expected.update({p.call_id: p.epoch for p in batch})
    if not expected:
        return set()
    held: set[str] = set()
    ids = list(expected)
    for at in range(0, len(ids), 500):
        stmt = select(LiveCallRow.call_id, LiveCallRow.epoch, LiveCallRow.owner).where(
            LiveCallRow.call_id.in_(ids[at:at + 500]))
        if db.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        held |= {cid for cid, epoch, owner in db.execute(stmt) if owner == WORKER and epoch == expected[cid]}
    if not held:
        return set(expected)
    t, f = cast(Table, LiveCallRow.__table__), cast(Table, LiveCallFrame.__table__)
    counts = {p.call_id: p.received for p in batch if p.call_id in held}
    beat = [{"b_id": cid, "b_at": now} for cid in held if cid not in counts]
    if beat:
        db.execute(update(t).where(t.c.call_id == bindparam("b_id")).values(updated_at=bindparam("b_at")), beat)
    if counts:
        db.execute(update(t).where(t.c.call_id == bindparam("b_id")).values(
            updated_at=bindparam("b_at"), received=bindparam("b_received")),
            [{"b_id": cid, "b_at": now, "b_received": n} for cid, n in counts.items()])
    views = [{"b_id": p.call_id, "b_summary": p.summary, "b_status": p.status, "b_stored": p.stored}
             for p in batch if p.call_id in held and p.summary is not None]
    if views:
        db.execute(update(t).where(t.c.call_id == bindparam("b_id")).values(
            summary=bindparam("b_summary"), status=bindparam("b_status"), stored=bindparam("b_stored")), views)
    frames = [{"call_id": p.call_id, "idx": i, "n": n, "frame": fr} for p in batch if p.call_id in held
              for i, n, fr in p.frames]
    if frames:
        db.execute(insert(f), frames)
    return set(expected) - held


def orphans(db: DBSession, older_than: float) -> list[str]:
    """Live calls whose worker stopped writing (it ended or crashed, and nobody resumed them)."""
    since = utcnow() - timedelta(seconds=older_than)
    return list(db.scalars(select(LiveCallRow.call_id).where(LiveCallRow.status == "live",
                                                             LiveCallRow.updated_at < since).limit(100)))


def forget_ended(db: DBSession) -> None:
    since = utcnow() - timedelta(seconds=KEEP_ENDED_SECONDS)
    old = select(LiveCallRow.call_id).where(LiveCallRow.status == "ended", LiveCallRow.updated_at < since)
    db.execute(delete(LiveCallFrame).where(LiveCallFrame.call_id.in_(old)))
    db.execute(delete(LiveCallRow).where(LiveCallRow.status == "ended", LiveCallRow.updated_at < since))


def drop(db: DBSession, call_id: str) -> None:
    """A call that ended with nothing said: nothing to keep."""
    db.execute(delete(LiveCallFrame).where(LiveCallFrame.call_id == call_id))
    db.execute(delete(LiveCallRow).where(LiveCallRow.call_id == call_id))


def listed(db: DBSession, who: Who, recent_seconds: float = 60.0) -> list[LiveCallRow]:
    """The wall: live calls (and those ended in the last minute) that this user may see, from every worker."""
    since = utcnow() - timedelta(seconds=recent_seconds)
    stmt = select(LiveCallRow).where(or_(LiveCallRow.status == "live", LiveCallRow.updated_at >= since))
    if who.role == "leader":
        stmt = stmt.where(or_(LiveCallRow.user_id == who.id,
                              LiveCallRow.team_id == who.team_id if who.team_id is not None else false()))
    elif who.role == "agent":
        stmt = stmt.where(or_(LiveCallRow.user_id == who.id,
                              LiveCallRow.agent_id == who.agent_id if who.agent_id is not None else false()))
    elif who.role not in ("admin", "qa"):
        return []
    return list(db.scalars(stmt.order_by(LiveCallRow.opened_at).limit(2000)))
