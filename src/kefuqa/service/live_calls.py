"""Live calls held by this process: one `LiveSession` per call id, the frames of protocol v1 (docs/assist.md)
turned into session calls, limits, resume after a dropped connection, and the store at hang-up.

Frames are handled in the event loop (a live step costs about a millisecond); storing a finished call and
writing the journal go to worker threads. A call lives in the memory of the worker its connection reached;
its accepted frames are journaled (`record`) and written with its wall view by the flusher (`take_pending`,
`live_store.flush`), so that any other worker can rebuild it (`rebuild`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..engine import Checker
from ..live import Guidance, LiveError, LiveSession, compile_guidance, live_rules, load_guidance
from ..rules.rulebook import bundled_names
from .live_store import Pending

PROTOCOL = 1
VIEW_SECONDS = 1.0  # the wall's view of a call is written at most this often (its frames every flush)


@dataclass
class Limits:
    max_frame_bytes: int = 64 * 1024
    max_text_chars: int = 2000
    frames_per_second: float = 50.0  # sustained, per call (burst: `burst` frames)
    burst: int = 200
    max_call_seconds: float = 4 * 3600  # the call's own clock (seconds from answer)
    idle_seconds: float = 600.0  # no frame at all for this long: the call is ended (a client that never hangs up)
    resume_seconds: float = 120.0  # a dropped connection may come back this long; then the call is ended
    max_live_calls: int = 2000
    max_utterances: int = 5000


@dataclass
class Engine:
    """A rulebook ready for live use: its checker, guidance and the rules decided per utterance."""

    label: str
    checker: Checker
    guidance: Guidance
    compiled: Any
    live_ids: list[str]
    rulebook_id: int | None = None

    @classmethod
    def build(cls, label: str, checker: Checker, rulebook_name: str, source_ref: str | None) -> Engine:
        ids = {r.id for r in checker.rulebook.rules}
        src = source_ref if source_ref else (rulebook_name if rulebook_name in bundled_names() else None)
        parent = None if src else _extends(checker.rulebook)  # an uploaded rulebook: its bundled parent's
        try:
            if src:
                g = load_guidance(src, ids)
            elif parent in bundled_names():
                g = load_guidance(parent, ids, inherit=True)
            else:
                g = Guidance()
        except Exception:  # a rulebook outside the bundle without guidance of its own
            g = Guidance()
        return cls(label, checker, g, compile_guidance(g), live_rules(checker))


def _extends(rb: Any) -> str | None:
    """The rulebook an uploaded rulebook extends (its own text is among its sources)."""
    import yaml

    for text in reversed(list(rb.sources.values())):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and data.get("name") == rb.name:
            parent = data.get("extends")
            return parent if isinstance(parent, str) else None
    return None


class Bucket:
    """Token bucket: `rate` frames per second, up to `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class LiveCall:
    session: LiveSession
    user_id: int | None
    agent: dict[str, Any] | None
    received: int = 0  # the last input frame number handled (frames at or below are duplicates)
    opened: float = field(default_factory=time.monotonic)
    last_frame: float = field(default_factory=time.monotonic)
    detached_at: float | None = None
    connection: Any = None  # the websocket attached now
    bucket: Bucket | None = None
    stored: bool | None = None
    store_note: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)
    watchers: set[Any] = field(default_factory=set)  # read-only connections: the agent panel, the wall
    agent_id: int | None = None  # the call's agent record and team (role scoping)
    team_id: int | None = None
    rulebook_id: int | None = None
    epoch: int = 1  # this worker's hold on the call (live_calls.epoch)
    claimed: bool = False  # its row exists (the text path claims it at start; others' rows come with the flusher)
    journaled: int = 0  # frames journaled so far (the last idx)
    pending: list[tuple[int, int | None, dict[str, Any]]] = field(default_factory=list)  # frames not written yet
    dirty: bool = True  # the wall's view changed since the last write
    lost: bool = False  # another worker took the call over
    view_at: float = 0.0  # when the wall's view was last taken for writing

    def summary(self) -> dict[str, Any]:
        s = self.session
        return {"call_id": s.call_id, "agent": self.agent, "utterances": len(s.utterances),
                "call_seconds": round(s.clock.now, 1), "score": s.score, "ended": s.ended,
                "connected": self.connection is not None, "alerts": self.alerts[-5:], "cards": self.cards,
                "team": (self.agent or {}).get("team"), "watchers": len(self.watchers),
                "last": (s.utterances[-1].text or "")[:60] if s.utterances else ""}


def error(code: str, message: str, n: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if n is not None:
        out["n"] = n
    return out


def _num(v: Any, name: str, required: bool = False) -> float | None:
    if v is None:
        if required:
            raise LiveError("bad_frame", f"缺少 {name}")
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise LiveError("bad_frame", f"{name} 应为数字（秒）")
    return float(v)


def parse(text: str | bytes, limits: Limits) -> dict[str, Any]:
    """A frame's JSON object, or `LiveError` saying what is wrong with it."""
    if len(text) > limits.max_frame_bytes:
        raise LiveError("frame_too_large", f"帧过大（上限 {limits.max_frame_bytes} 字节）")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LiveError("bad_json", f"不是有效的 JSON（第 {exc.lineno} 行第 {exc.colno} 列）") from None
    except (ValueError, UnicodeDecodeError):
        raise LiveError("bad_json", "不是有效的 JSON：应为 UTF-8 文本") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise LiveError("bad_frame", "帧应是带 type 字段的 JSON 对象")
    n = data.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise LiveError("bad_frame", "n 应为从 1 开始递增的整数")
    return data


def apply(call: LiveCall, frame: dict[str, Any], limits: Limits) -> list[dict[str, Any]]:
    """One input frame (already parsed) applied to its call: the guidance items it produced."""
    s = call.session
    kind = frame["type"]
    if kind == "utterance":
        text = frame.get("text", "")
        if not isinstance(text, str):
            raise LiveError("bad_frame", "text 应为字符串")
        if len(text) > limits.max_text_chars:
            raise LiveError("text_too_long", f"一句话过长（上限 {limits.max_text_chars} 字）")
        final = frame.get("final", True)
        if final and len(s.utterances) >= limits.max_utterances:
            raise LiveError("call_too_long", f"通话语句数超过上限 {limits.max_utterances}")
        start, end = _num(frame.get("start"), "start"), _num(frame.get("end"), "end")
        _call_length(end if end is not None else start, limits)
        uid = frame.get("id")
        attrs = frame.get("attrs")
        if attrs is not None and not isinstance(attrs, dict):
            raise LiveError("bad_frame", "attrs 应为对象")
        return s.utterance(str(frame.get("role", "")), text, start, end, final=bool(final),
                           uid=str(uid) if uid is not None else None, attrs=attrs)
    if kind == "event":
        ev = frame.get("event")
        if not isinstance(ev, str) or not ev:
            raise LiveError("bad_frame", "event 帧需要 event（如 hold、transfer）")
        phase = frame.get("phase")
        if phase is not None and not isinstance(phase, str):
            raise LiveError("bad_frame", "phase 应为 start 或 end")
        times = {k: _num(frame.get(k), k) for k in ("start", "end", "at")}
        _call_length(max((t for t in times.values() if t is not None), default=None), limits)
        target = frame.get("target")
        return s.event(ev, phase=phase, start=times["start"], end=times["end"], at=times["at"],
                       target=str(target) if target is not None else None)
    if kind == "tick":
        t = _num(frame.get("t"), "t", required=True)
        assert t is not None
        _call_length(t, limits)
        return s.tick(t)
    if kind == "hangup":
        ended_by = frame.get("ended_by")
        metrics = frame.get("metrics")
        if metrics is not None and not isinstance(metrics, dict):
            raise LiveError("bad_frame", "metrics 应为对象")
        return s.hangup(ended_by, _num(frame.get("at"), "at"), metrics=metrics)
    if kind == "binary":
        raise LiveError("binary_not_supported", "此接口只接受文本帧（JSON）；音频帧请发到 /api/assist/v1/audio")
    raise LiveError("bad_frame", f"未知的帧类型 {kind!r}（utterance、event、tick、hangup）")


def replay(call: LiveCall, frames: list[Any], limits: Limits) -> None:
    """Journaled frames (rows with `idx`, `n`, `frame`) applied to a call in order."""
    for f in frames:
        if f.idx <= call.journaled:
            continue
        try:
            apply(call, dict(f.frame), limits)
        except LiveError:  # it was accepted once; the same session refuses it the same way (never happens)
            pass
        call.journaled = f.idx
        if f.n is not None:
            call.received = max(call.received, f.n)


def _call_length(t: float | None, limits: Limits) -> None:
    if t is not None and t > limits.max_call_seconds:
        raise LiveError("call_too_long", f"通话时长超过上限 {limits.max_call_seconds:g} 秒")


class LiveCalls:
    """Every live call of this process, by call id."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.calls: dict[str, LiveCall] = {}
        self.engines: dict[str, Engine] = {}
        self.engine_at = 0.0  # when engines["recent"] (the active rulebook's) was looked up

    def open(self, engine: Engine, meta: dict[str, Any], user_id: int | None, **scope: Any) -> LiveCall:
        if len([c for c in self.calls.values() if not c.session.ended]) >= self.limits.max_live_calls:
            raise LiveError("too_many_calls", f"同时进行的通话已达上限 {self.limits.max_live_calls}")
        call = self.build(engine, meta, user_id, **scope)
        self.calls[call.session.call_id] = call
        return call

    def build(self, engine: Engine, meta: dict[str, Any], user_id: int | None, **scope: Any) -> LiveCall:
        """A call object not registered here (a rebuilt or mirrored call)."""
        s = LiveSession(engine.checker, engine.guidance, meta, compiled=engine.compiled, live_ids=engine.live_ids)
        agent = meta.get("agent") if isinstance(meta.get("agent"), dict) else None
        return LiveCall(s, user_id, agent, bucket=Bucket(self.limits.frames_per_second, self.limits.burst),
                        rulebook_id=engine.rulebook_id, **scope)

    def rebuild(self, engine: Engine, row: Any, frames: list[Any], register: bool = True) -> LiveCall:
        """A call as another worker left it (its row and journal from `live_store`): the session replayed
        frame by frame, so its guidance log is the one the client saw."""
        call = self.build(engine, dict(row.meta), row.user_id, agent_id=row.agent_id, team_id=row.team_id,
                          epoch=row.epoch, claimed=True)
        call.session.start()
        replay(call, frames, self.limits)
        call.stored = row.stored
        call.dirty = False
        if register:
            self.calls[call.session.call_id] = call
        return call

    def record(self, call: LiveCall, n: int | None, frame: dict[str, Any]) -> None:
        """An input frame applied to the call, to be journaled."""
        call.journaled += 1
        call.pending.append((call.journaled, n, {k: v for k, v in frame.items() if k != "n"}))
        call.dirty = True

    def take_pending(self) -> list[tuple[LiveCall, Pending]]:
        """What the calls of this worker have to write now (taken off them: `restore` if the write fails)."""
        out = []
        now = time.monotonic()
        for c in list(self.calls.values()):
            if c.lost or not (c.pending or (c.dirty and (now - c.view_at >= VIEW_SECONDS or c.session.ended
                                                         or not c.claimed))):
                continue
            new_row = None
            if not c.claimed:
                new_row = {"call_id": c.session.call_id, "user_id": c.user_id, "agent_id": c.agent_id,
                           "team_id": c.team_id, "rulebook_id": c.rulebook_id, "path": "audio",
                           "meta": c.session._proto.model_dump(mode="json", exclude={"utterances"}, exclude_unset=True)}
            summary = None
            if c.dirty and (now - c.view_at >= VIEW_SECONDS or c.session.ended or not c.claimed):
                summary = c.summary()
                summary["watchers"] = len(c.watchers)
                c.dirty, c.view_at = False, now
            p = Pending(c.session.call_id, c.epoch, new_row, c.pending, c.received, summary,
                        "ended" if c.session.ended else "live", c.stored)
            c.pending = []
            out.append((c, p))
        return out

    @staticmethod
    def restore(taken: list[tuple[LiveCall, Pending]]) -> None:
        for c, p in taken:
            c.pending = p.frames + c.pending
            if p.summary is not None:
                c.dirty, c.view_at = True, 0.0

    @staticmethod
    def written(taken: list[tuple[LiveCall, Pending]]) -> None:
        for c, p in taken:
            if p.new_row is not None:
                c.claimed = True

    def note(self, call: LiveCall, items: list[dict[str, Any]]) -> None:
        """Keep what the supervisor wall shows of a call."""
        call.dirty = True
        for it in items:
            if it["kind"] in ("alert", "timer"):
                call.alerts.append({"kind": it["kind"], "title": it.get("name") or it.get("title"),
                                    "at": it.get("at"), "key": it["key"]})
            elif it["kind"] == "retract":  # a withdrawn finding's alert leaves the wall
                gone = "alert:" + str(it.get("item") or it.get("finding") or "")
                call.alerts = [a for a in call.alerts if a.get("key") != gone]
            elif it["kind"] == "card":
                call.cards.append(it["title"])

    def expired(self, now: float | None = None) -> list[LiveCall]:
        """Calls to end now: idle too long, or detached longer than the resume window."""
        now = time.monotonic() if now is None else now
        out = []
        for c in self.calls.values():
            if c.session.ended:
                continue
            if now - c.last_frame > self.limits.idle_seconds or (
                    c.detached_at is not None and now - c.detached_at > self.limits.resume_seconds):
                out.append(c)
        return out

    def forget_ended(self, keep_seconds: float = 60.0) -> None:
        now = time.monotonic()
        for cid in [cid for cid, c in self.calls.items()
                    if c.session.ended and c.connection is None and now - c.last_frame > keep_seconds]:
            del self.calls[cid]
