"""Live assist role scoping (issue 11) on SQLite and PostgreSQL, with users of every role: an agent reaches
only their own calls, a team leader only their team's, QA and admins all — on watching, resuming, the wall's
list, the wall page and starting a call. Refusals are 4401 with a Chinese message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from conftest import World

WS = "/api/assist/v1/ws"
HELLO = {"type": "utterance", "role": "agent", "text": "您好，请问有什么可以帮您？", "start": 0.0, "end": 2.0, "n": 1}


@pytest.fixture(scope="module")
def w(world: World) -> Iterator[World]:
    with world.client:  # one event loop for the module (the server's background tasks live in it)
        yield world


def _start(w: World, who: str, call_id: str, agent: str | None, **kw: Any) -> tuple[Any, Any, dict[str, Any]]:
    ctx = w.client.websocket_connect(WS, headers=w.h(who))
    ws = ctx.__enter__()
    call: dict[str, Any] = {"id": call_id}
    if agent is not None:
        call["agent"] = {"id": agent}
    ws.send_json({"type": "start", "v": 1, "call": call, **kw})
    return ctx, ws, ws.receive_json()


def _refused(w: World, who: str, call_id: str, agent: str | None = None, **kw: Any) -> str:
    ctx, ws, first = _start(w, who, call_id, agent, **kw)
    with pytest.raises(WebSocketDisconnect) as exc:
        ws.receive_json()
    ctx.__exit__(None, None, None)
    assert first["type"] == "error", first
    assert exc.value.code == 4401, first
    return str(first["message"])


def _allowed(w: World, who: str, call_id: str, **kw: Any) -> dict[str, Any]:
    ctx, _, first = _start(w, who, call_id, None, **kw)
    ctx.__exit__(None, None, None)
    assert first["type"] == "ready", first
    return first


def _stream(w: World, who: str, call_id: str, agent: str | None) -> Any:
    """A call streamed by `who` (left open: the caller closes it)."""
    ctx, ws, ready = _start(w, who, call_id, agent)
    assert ready["type"] == "ready", ready
    ws.receive_json()  # checklists
    ws.send_json(HELLO)
    assert ws.receive_json()["type"] == "guidance"
    return ctx


def test_each_role_reaches_only_its_calls(w: World) -> None:
    tag = w.backend
    a1_call, b1_call = f"scope-a1-{tag}", f"scope-b1-{tag}"
    gateway_a1 = _stream(w, "admin", a1_call, "A1")  # a telephony gateway streams for agents A1 (一组) and B1 (二组)
    gateway_b1 = _stream(w, "admin", b1_call, "B1")
    try:
        # watch: the agent panel and a leader opening a tile
        for who, ok in [("a1", a1_call), ("lead1", a1_call), ("lead2", b1_call), ("b1", b1_call), ("qa", a1_call),
                        ("qa", b1_call), ("admin", b1_call)]:
            assert _allowed(w, who, ok, watch=True)["watch"] is True
        for who, other in [("a1", b1_call), ("a2", a1_call), ("b1", a1_call), ("lead1", b1_call), ("lead2", a1_call)]:
            assert "无权访问" in _refused(w, who, other, watch=True)
        # the wall's list, from the database
        for who, seen in [("a1", {a1_call}), ("a2", set()), ("b1", {b1_call}), ("lead1", {a1_call}),
                          ("lead2", {b1_call}), ("qa", {a1_call, b1_call}), ("admin", {a1_call, b1_call})]:
            r = w.get(who, "/api/assist/v1/calls")
            assert r.status_code == 200, r.text
            listed = {c["call_id"] for c in r.json()["calls"]} & {a1_call, b1_call}
            assert listed == seen, (who, listed)
        # resume (taking the stream over): someone else's call is refused
        for who, other in [("a2", a1_call), ("lead2", a1_call), ("lead1", b1_call), ("b1", a1_call)]:
            assert "无权访问" in _refused(w, who, other, resume={"after_seq": 0})
    finally:
        gateway_a1.__exit__(None, None, None)
        gateway_b1.__exit__(None, None, None)
    # a leader of the team may take over its call after the gateway dropped; QA too
    assert _allowed(w, "lead1", a1_call, resume={"after_seq": 0})["resumed"] is True
    assert _allowed(w, "qa", b1_call, resume={"after_seq": 0})["resumed"] is True


def test_starting_a_call_is_scoped_too(w: World) -> None:
    tag = w.backend
    assert "只能推送自己的通话" in _refused(w, "a1", f"own-{tag}-1", "A2")  # an agent for another agent
    assert "本组" in _refused(w, "lead1", f"own-{tag}-2", "B1")  # a leader for another team's agent
    ctx = _stream(w, "a1", f"own-{tag}-3", None)  # an agent's own call: their agent code is filled in
    try:
        calls = {c["call_id"]: c for c in w.get("lead1", "/api/assist/v1/calls").json()["calls"]}
        assert calls[f"own-{tag}-3"]["agent"]["id"] == "A1"
        assert f"own-{tag}-3" not in {c["call_id"] for c in w.get("lead2", "/api/assist/v1/calls").json()["calls"]}
        assert "无权访问" in _refused(w, "a2", f"own-{tag}-3", watch=True)
    finally:
        ctx.__exit__(None, None, None)
    ctx = _stream(w, "lead1", f"own-{tag}-4", "A2")  # a leader for an agent of the team
    ctx.__exit__(None, None, None)


def test_the_wall_page_is_for_leaders_qa_and_admins(w: World) -> None:
    assert w.get("a1", "/api/assist/v1/calls").status_code == 200  # an agent's list: their own calls only
    for user, code in [("wangfang", 403), ("lead1", 200), ("qa1", 200)]:
        with TestClient(w.client.app) as browser:
            w.browser_login(browser, user)
            r = browser.get("/assist/wall", follow_redirects=False)
            assert r.status_code == code, (user, r.status_code)
    assert w.client.get("/api/assist/v1/calls").status_code == 401
