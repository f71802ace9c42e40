"""The live-assist WebSocket (protocol v1) against the real app on SQLite and PostgreSQL: a scripted call
gets its alerts, cards and report and is stored as a scored conversation; bad frames get error frames and
never disturb the call or another one; a dropped connection resumes without losing or repeating guidance."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from conftest import ADMIN_PASSWORD, database_url, make_settings
from kefuqa.engine import Checker
from kefuqa.model import Conversation as ConversationModel
from kefuqa.rules.rulebook import load_rulebook
from kefuqa.service import assist
from kefuqa.service.app import create_app
from kefuqa.service.live_calls import Limits, LiveCalls
from kefuqa.service.models import Conversation, Finding
from kefuqa.service.workbench import Workbench

WS = "/api/assist/v1/ws"

SCRIPT: list[dict[str, Any]] = [
    {"type": "utterance", "role": "agent", "text": "您好，这里是客服中心，我是工号1023，请问有什么可以帮您？", "start": 0.0, "end": 4.0},
    {"type": "utterance", "role": "customer", "text": "又停电了，叫你们领导来接电话，我要投诉！", "start": 4.5, "end": 7.0},
    {"type": "utterance", "role": "agent", "text": "我不是跟你说过了吗", "start": 7.5, "end": 9.0},
    {"type": "event", "event": "hold", "phase": "start", "at": 10.0},
    {"type": "tick", "t": 45.0},
    {"type": "event", "event": "hold", "phase": "end", "at": 50.0},
    {"type": "utterance", "role": "agent", "text": "非常抱歉让您久等了，我们会在3个工作日内给您回复，感谢您的来电，再见", "start": 50.5,
     "end": 56.0},
    {"type": "hangup", "ended_by": "customer", "at": 57.0},
]



@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    folder: Path = tmp_path_factory.mktemp(f"assist-{request.param}")
    for url in database_url(request.param, folder):
        settings = make_settings(url, folder)
        wb = Workbench(settings)
        wb.setup()
        app = create_app(settings, wb)
        app.state.live_calls = LiveCalls(Limits(max_frame_bytes=4096, idle_seconds=3600, resume_seconds=3600))
        with TestClient(app) as client:
            r = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            assert r.status_code == 200, r.text
            yield client, r.json()["token"]
        wb.engine.dispose()


def _start(ws: Any, call_id: str, **kw: Any) -> dict[str, Any]:
    ws.send_json({"type": "start", "v": 1, "call": {"id": call_id, "direction": "inbound", "channel": "phone",
                                                     "agent": {"id": "A9", "name": "测试", "team": "一组"}}, **kw})
    ready = ws.receive_json()
    return ready


def _items(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for f in frames if f["type"] == "guidance" for i in f["items"]]


def _run(ws: Any, frames: list[dict[str, Any]], first_n: int = 1) -> list[dict[str, Any]]:
    out = []
    for k, f in enumerate(frames):
        ws.send_json({**f, "n": first_n + k})
        got = ws.receive_json()
        out.append(got)
        if got["type"] == "guidance" and any(i["kind"] == "report" for i in got["items"]):
            out.append(ws.receive_json())  # ended
    return out


def test_scripted_call_gets_guidance_and_is_stored(svc: tuple[Any, str]) -> None:
    client, token = svc
    with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
        ready = _start(ws, "live-1")
        assert ready["type"] == "ready" and ready["v"] == 1
        first = ws.receive_json()
        assert [i["kind"] for i in first["items"]] == ["checklist"]
        frames = _run(ws, SCRIPT)
    items = _items(frames)
    kinds = [(i["kind"], i.get("id") or i.get("rule") or i.get("timer")) for i in items]
    alert = next(i for i in items if i["kind"] == "alert")
    assert alert["said"] == "我不是跟你说过了吗" and alert["say_instead"].startswith("可能我刚才没有解释清楚")
    cards = [k[1] for k in kinds if k[0] == "card"]
    assert {"complaint", "s09-leader"} <= set(cards) and len(cards) == len(set(cards))  # each card once
    assert ("timer", "hold") in kinds
    assert ("check", "promise") in kinds  # the complaint card's step ticked by 3个工作日内给您回复
    report = next(i for i in items if i["kind"] == "report")["report"]
    assert frames[-1] == {"type": "ended", "stored": True, "note": "stored"}
    wb = client.app.state.workbench
    with wb.sessions() as db:
        stored = db.scalar(select(Conversation).where(Conversation.call_id == "live-1"))
        assert stored is not None
        assert stored.score == report["score"]
        # the ingest stored the session's report (no second scoring): it is `kefuqa check` of the stored call
        expected = Checker(load_rulebook("standard")).check(ConversationModel.model_validate(stored.data))
        rows = db.scalars(select(Finding.rule).where(Finding.conversation_id == stored.id,
                                                  Finding.kind == "finding")).all()
        assert sorted(rows) == sorted(f.rule for f in expected.findings) == sorted(f["rule"] for f in
                                                                                   report["findings"])
        assert stored.score == expected.score


def test_auth_required(svc: tuple[Any, str]) -> None:
    client, _ = svc
    with client.websocket_connect(WS) as ws:
        ws.send_json({"type": "start", "v": 1, "call": {"id": "x"}})
        assert ws.receive_json()["code"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
        assert exc.value.code == 4401
    with client.websocket_connect(WS) as ws:  # the token may come in the start frame (browsers)
        ws.send_json({"type": "start", "v": 1, "call": {"id": "x"}, "token": "wrong"})
        assert ws.receive_json()["code"] == "unauthorized"


def test_bad_frames_get_errors_and_the_call_goes_on(svc: tuple[Any, str]) -> None:
    client, token = svc
    h = {"Authorization": f"Bearer {token}"}
    with client.websocket_connect(WS, headers=h) as ws, client.websocket_connect(WS, headers=h) as other:
        _start(ws, "live-bad")
        ws.receive_json()
        _start(other, "live-other")
        other.receive_json()
        bad = ["{not json", json.dumps([1, 2]), json.dumps({"type": "dance"}), "x" * 5000,
               json.dumps({"type": "utterance", "role": "robot", "text": "hi"}),
               json.dumps({"type": "utterance", "role": "agent", "text": "hi", "start": 5, "end": 1}),
               json.dumps({"type": "utterance", "role": "agent", "text": "hi", "start": "soon"}),
               json.dumps({"type": "event", "event": "hold", "phase": "end", "at": 3}),
               json.dumps({"type": "tick"})]
        codes = []
        for b in bad:
            ws.send_text(b)
            got = ws.receive_json()
            assert got["type"] == "error", got
            assert got["message"]
            codes.append(got["code"])
        assert codes == ["bad_json", "bad_frame", "bad_frame", "frame_too_large", "bad_role", "bad_time", "bad_frame",
                         "bad_event", "bad_frame"]
        ws.send_json({"type": "utterance", "role": "agent", "text": "您好", "start": 10.0, "end": 11.0})
        assert ws.receive_json()["type"] == "guidance"
        ws.send_json({"type": "utterance", "role": "customer", "text": "早", "start": 2.0, "end": 3.0})
        assert ws.receive_json()["code"] == "out_of_order"
        other.send_json({"type": "utterance", "role": "agent", "text": "您好，请问有什么可以帮您", "start": 0.0, "end": 2.0})
        assert other.receive_json()["type"] == "guidance"  # the other call never noticed


def test_unknown_call_cannot_resume(svc: tuple[Any, str]) -> None:
    client, token = svc
    with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
        _ = _start(ws, "never-started", resume={"after_seq": 3})
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
        assert exc.value.code == 4404


def test_resume_loses_and_repeats_nothing(svc: tuple[Any, str]) -> None:
    client, token = svc
    h = {"Authorization": f"Bearer {token}"}
    with client.websocket_connect(WS, headers=h) as ws:  # the whole call on one connection, for comparison
        _start(ws, "live-whole")
        whole = ws.receive_json()["items"] + _items(_run(ws, SCRIPT))
    with client.websocket_connect(WS, headers=h) as ws:
        _start(ws, "live-drop")
        got = ws.receive_json()["items"]
        for k, f in enumerate(SCRIPT[:3]):
            ws.send_json({**f, "n": k + 1})
            if k < 2:  # the answer to frame 3 is lost with the connection
                got += ws.receive_json()["items"]
    seen = max(i["seq"] for i in got)
    with client.websocket_connect(WS, headers=h) as ws:
        ready = _start(ws, "live-drop", resume={"after_seq": seen})
        assert ready["resumed"] and ready["received"] == 3
        replay = ws.receive_json()
        assert replay["replay"]
        got += replay["items"]
        ws.send_json({**SCRIPT[2], "n": 3})  # the client did not know frame 3 arrived: a duplicate
        assert ws.receive_json() == {"type": "ack", "n": 3, "duplicate": True}
        got += _items(_run(ws, SCRIPT[3:], first_n=4))

    def strip(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(i["seq"], i["kind"], i["key"]) for i in items]

    assert strip(got) == strip(whole)


def test_a_client_that_never_hangs_up_is_ended_and_stored(svc: tuple[Any, str]) -> None:
    client, token = svc
    limits = client.app.state.live_calls.limits
    saved = limits.idle_seconds
    limits.idle_seconds = 1.0
    try:
        with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
            _start(ws, "live-idle")
            ws.receive_json()
            ws.send_json({**SCRIPT[0], "n": 1})
            assert ws.receive_json()["type"] == "guidance"
            ended = ws.receive_json()  # nothing more is sent: the server ends the call
            assert ended["type"] == "ended" and ended["stored"] is True and "秒没有收到任何帧" in ended["reason"]
            with pytest.raises(WebSocketDisconnect) as exc:
                ws.receive_json()
            assert exc.value.code == 4408
    finally:
        limits.idle_seconds = saved
    wb = client.app.state.workbench
    with wb.sessions() as db:
        assert db.scalar(select(Conversation).where(Conversation.call_id == "live-idle")) is not None


def test_binary_frames_and_floods_get_errors(svc: tuple[Any, str]) -> None:
    client, token = svc
    limits = client.app.state.live_calls.limits
    with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
        _start(ws, "live-flood")
        ws.receive_json()
        ws.send_bytes(b"\x00\x01" * 160)  # 20 ms of 8 kHz PCM: not in protocol v1
        got = ws.receive_json()
        assert got["code"] == "binary_not_supported"
        bucket = client.app.state.live_calls.calls["live-flood"].bucket
        bucket.tokens, bucket.rate = 2.0, 0.001  # this call's budget is nearly spent
        codes = []
        for k in range(4):
            ws.send_json({"type": "tick", "t": float(k)})
            codes.append(ws.receive_json().get("code"))
        assert codes[:2] == [None, None] and codes[2:] == ["rate_limited", "rate_limited"]
    assert limits.frames_per_second == 50.0  # the limits of other calls are untouched


def test_an_ended_call_gives_its_report_on_resume(svc: tuple[Any, str]) -> None:
    client, token = svc
    h = {"Authorization": f"Bearer {token}"}
    with client.websocket_connect(WS, headers=h) as ws:
        _start(ws, "live-done")
        ws.receive_json()
        _run(ws, [SCRIPT[0], SCRIPT[-1]])
    with client.websocket_connect(WS, headers=h) as ws:
        assert _start(ws, "live-done")["code"] == "call_ended"
    with client.websocket_connect(WS, headers=h) as ws:
        ready = _start(ws, "live-done", resume={"after_seq": 0})
        assert ready["resumed"] and ready["received"] == 2
        replay = ws.receive_json()["items"]
        assert replay[-1]["kind"] == "report"
        assert ws.receive_json()["type"] == "ended"


def test_overlapping_and_out_of_order_times(svc: tuple[Any, str]) -> None:
    """Overlapping speech is a real thing (both talk at once): accepted. A final utterance that starts well
    before the previous one, or an event that ends before it starts, is refused; the call goes on."""
    client, token = svc
    with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
        _start(ws, "live-times")
        ws.receive_json()
        ws.send_json({"type": "utterance", "role": "agent", "text": "您好，请问有什么可以帮您", "start": 0.0, "end": 4.0})
        assert ws.receive_json()["type"] == "guidance"
        ws.send_json({"type": "utterance", "role": "customer", "text": "我家停电了", "start": 3.0, "end": 5.0})
        assert ws.receive_json()["type"] == "guidance"  # overlaps the agent's turn by a second: fine
        ws.send_json({"type": "utterance", "role": "customer", "text": "早", "start": 1.0, "end": 2.0})
        got = ws.receive_json()
        assert got["code"] == "out_of_order" and "按说话顺序" in got["message"]
        ws.send_json({"type": "event", "event": "hold", "start": 9.0, "end": 6.0})
        got = ws.receive_json()
        assert got["type"] == "error" and got["code"] in ("bad_event", "bad_time"), got
        ws.send_json({"type": "event", "event": "hold", "phase": "start", "at": 6.0})
        assert ws.receive_json()["type"] == "guidance"
        ws.send_json({"type": "event", "event": "hold", "phase": "start", "at": 7.0})
        assert ws.receive_json()["code"] == "bad_event"  # a hold already running
        ws.send_json({"type": "event", "event": "hold", "phase": "end", "at": 5.0})
        assert ws.receive_json()["code"] == "bad_time"  # ends before it started
        frames = _run(ws, [{"type": "event", "event": "hold", "phase": "end", "at": 8.0},
                           {"type": "hangup", "ended_by": "customer", "at": 9.0}])
        assert frames[-1]["type"] == "ended" and frames[-1]["stored"] is True
        assert any(i["kind"] == "report" for i in _items(frames))


def test_bad_starts_and_unknown_calls(svc: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    client, token = svc
    h = {"Authorization": f"Bearer {token}"}
    for start, code in [({"type": "start", "v": 2, "call": {"id": "x"}}, "bad_version"),
                        ({"type": "utterance", "v": 1}, "no_start"),
                        ({"type": "start", "v": 1, "call": {"id": " "}}, "bad_call"),
                        ({"type": "start", "v": 1}, "bad_call")]:
        with client.websocket_connect(WS, headers=h) as ws:
            ws.send_json(start)
            got = ws.receive_json()
            assert got["type"] == "error" and got["code"] == code and got["message"], got
            with pytest.raises(WebSocketDisconnect) as exc:
                ws.receive_json()
            assert exc.value.code == 4400
    with client.websocket_connect(WS, headers=h) as ws:  # watching a call nobody streams
        ws.send_json({"type": "start", "v": 1, "call": {"id": "nobody-streams-this"}, "watch": True})
        assert ws.receive_json()["code"] == "unknown_call"
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_json()
        assert exc.value.code == 4404
    monkeypatch.setattr(assist, "FIRST_FRAME_SECONDS", 0.3)
    with client.websocket_connect(WS, headers=h) as ws:  # connected, but never says which call
        got = ws.receive_json()
        assert got["code"] == "no_start" and "start" in got["message"]
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def test_a_dropped_call_that_never_comes_back_is_ended_and_stored(svc: tuple[Any, str]) -> None:
    client, token = svc
    limits = client.app.state.live_calls.limits
    saved = limits.resume_seconds
    limits.resume_seconds = 0.5
    try:
        with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
            _start(ws, "live-gone")
            ws.receive_json()
            _run(ws, SCRIPT[:2])
        wb = client.app.state.workbench
        # the reaper runs at least every 5 s (its sleep may have begun before this test shortened the resume
        # window), then scores and stores the call: a generous deadline, since a loaded machine takes longer
        deadline = time.monotonic() + 60
        while True:
            with wb.sessions() as db:
                if db.scalar(select(Conversation).where(Conversation.call_id == "live-gone")) is not None:
                    break
            assert time.monotonic() < deadline, "the abandoned call was not ended and stored"
            time.sleep(0.1)
    finally:
        limits.resume_seconds = saved
    with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
        ready = _start(ws, "live-gone", resume={"after_seq": 0})
        assert ready["resumed"]
        assert ws.receive_json()["items"][-1]["kind"] == "report"
        assert ws.receive_json()["type"] == "ended"


def test_ended_calls_rows_are_forgotten_after_a_while(svc: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from kefuqa.service import live_store
    from kefuqa.service.models import LiveCallFrame, LiveCallRow

    client, token = svc
    with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
        _start(ws, "live-forget")
        ws.receive_json()
        _run(ws, [SCRIPT[0], SCRIPT[1]])
        client.get("/api/assist/v1/calls", headers={"Authorization": f"Bearer {token}"})  # journal written
        wb = client.app.state.workbench
        with wb.sessions() as db:
            assert db.scalar(select(LiveCallRow.status).where(LiveCallRow.call_id == "live-forget")) == "live"
            assert len(db.scalars(select(LiveCallFrame).where(LiveCallFrame.call_id == "live-forget")).all()) == 2
        _run(ws, [SCRIPT[-1]], first_n=3)
    client.get("/api/assist/v1/calls", headers={"Authorization": f"Bearer {token}"})
    with wb.sessions() as db, db.begin():
        assert db.scalar(select(LiveCallRow.status).where(LiveCallRow.call_id == "live-forget")) == "ended"
        live_store.forget_ended(db)  # kept for 10 minutes
        assert db.get(LiveCallRow, "live-forget") is not None
        monkeypatch.setattr(live_store, "KEEP_ENDED_SECONDS", -1.0)
        live_store.forget_ended(db)
    with wb.sessions() as db:
        assert db.get(LiveCallRow, "live-forget") is None
        assert not db.scalars(select(LiveCallFrame).where(LiveCallFrame.call_id == "live-forget")).all()


def test_many_calls_hanging_up_at_once_are_all_stored(svc: tuple[Any, str]) -> None:
    """Hang-ups that pile up are stored together (one ingest for whatever waited) with each call's own report."""
    from contextlib import ExitStack

    client, token = svc
    h = {"Authorization": f"Bearer {token}"}
    ids = [f"live-storm-{k}" for k in range(8)]
    with ExitStack() as stack:
        conns = [stack.enter_context(client.websocket_connect(WS, headers=h)) for _ in ids]
        for ws, cid in zip(conns, ids, strict=True):
            _start(ws, cid)
            ws.receive_json()
            ws.send_json({**SCRIPT[0], "n": 1})
            ws.receive_json()
        for ws in conns:  # all hang up before any answer is read
            ws.send_json({"type": "hangup", "ended_by": "customer", "at": 5.0, "n": 2})
        scores = {}
        for ws, cid in zip(conns, ids, strict=True):
            report = next(i for i in ws.receive_json()["items"] if i["kind"] == "report")
            assert ws.receive_json() == {"type": "ended", "stored": True, "note": "stored"}
            scores[cid] = report["score"]
    with client.app.state.workbench.sessions() as db:
        stored = dict(db.execute(select(Conversation.call_id, Conversation.score)
                                 .where(Conversation.call_id.in_(ids))).all())
    assert stored == scores


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_stopping_server_journals_what_it_had_not_written_yet(backend: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A deploy stops the server between two journal writes: the frames of its live calls go in at shutdown,
    so a resume on the restarted server (or another worker) starts where the client was."""
    from kefuqa.service import live_store

    monkeypatch.setattr(live_store, "FLUSH_SECONDS", 3600.0)  # the background writer never gets to it
    for url in database_url(backend, tmp_path):
        settings = make_settings(url, tmp_path)
        wb = Workbench(settings)
        wb.setup()
        app = create_app(settings, wb)
        with TestClient(app) as client:
            token = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
            with client.websocket_connect(WS, headers={"Authorization": f"Bearer {token}"}) as ws:
                _start(ws, "stopped-mid-call")
                ws.receive_json()
                _run(ws, SCRIPT[:3])
            with wb.sessions() as db:
                _, before = live_store.load(db, "stopped-mid-call")
            assert before == []  # nothing journaled while the server runs
        with wb.sessions() as db:
            row, frames = live_store.load(db, "stopped-mid-call")
        assert row is not None and row.received == 3 and row.status == "live"
        assert [f.n for f in frames] == [1, 2, 3]
        wb.engine.dispose()
