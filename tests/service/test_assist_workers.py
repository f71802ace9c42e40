"""Live assist with several worker processes (issue 11): a real `kefuqa serve --workers 2` on PostgreSQL. A call's
connection drops and the reconnect lands on the other worker: the call is rebuilt from its journal and the
client gets every guidance item exactly once (the same (seq, kind, key) list as an unbroken call); a watcher
on the worker that does not hold the call follows it to the report; the wall lists it from both workers; after
a restart of the whole server the call resumes too."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from conftest import ADMIN_PASSWORD, _pg_schema

SCRIPT: list[dict[str, Any]] = [
    {"type": "utterance", "role": "agent", "text": "您好，这里是客服中心，我是工号1023，请问有什么可以帮您？", "start": 0.0, "end": 4.0},
    {"type": "utterance", "role": "customer", "text": "叫你们领导来接电话，我要投诉！", "start": 4.5, "end": 7.0},
    {"type": "utterance", "role": "agent", "text": "我不是跟你说过了吗", "start": 7.5, "end": 9.0},
    {"type": "event", "event": "hold", "phase": "start", "at": 10.0},
    {"type": "tick", "t": 45.0},
    {"type": "event", "event": "hold", "phase": "end", "at": 50.0},
    {"type": "utterance", "role": "agent", "text": "非常抱歉让您久等了，我们会在3个工作日内给您回复，感谢您的来电，再见", "start": 50.5,
     "end": 56.0},
    {"type": "hangup", "ended_by": "customer", "at": 57.0},
]


class Server:
    def __init__(self, url: str, folder: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url, self.folder = url, folder
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "KEFUQA_ADMIN_PASSWORD": ADMIN_PASSWORD}
        self.proc = subprocess.Popen([str(Path(sys.executable).with_name("kefuqa")), "serve", "--workers", "2",
                                      "--port", str(self.port), "--database-url", self.url, "--data-dir",
                                      str(self.folder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        for _ in range(600):
            try:
                if httpx.get(self.base + "/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.proc.stdout.read() if self.proc.stdout else ""
            time.sleep(0.1)
        raise AssertionError("the server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    for url in _pg_schema():
        srv = Server(url, tmp_path)
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


async def _recv(ws: Any) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), 30)))


class Client:
    """A streaming client as the protocol asks: frames numbered, resent after `ready.received` on resume."""

    def __init__(self, ws_url: str, token: str, call_id: str) -> None:
        self.url, self.token, self.call_id = ws_url, token, call_id
        self.items: list[dict[str, Any]] = []
        self.ws: Any = None
        self.worker: str | None = None

    async def connect(self, resume: bool = False, avoid: str | None = None) -> dict[str, Any]:
        """Connect (resume: until the connection lands on a worker other than `avoid`)."""
        for _ in range(40):
            ws = await websockets.connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"})
            start: dict[str, Any] = {"type": "start", "v": 1, "call": {"id": self.call_id, "direction": "inbound",
                                                                       "agent": {"id": "A9", "name": "测试"}}}
            if resume:
                start["resume"] = {"after_seq": max((i["seq"] for i in self.items), default=0)}
            await ws.send(json.dumps(start))
            ready = await _recv(ws)
            assert ready["type"] == "ready", ready
            first = await _recv(ws)  # the checklists, or the replay
            if avoid is not None and ready["worker"] == avoid:
                await ws.close()
                continue
            self.items += first["items"]
            self.ws, self.worker = ws, ready["worker"]
            return ready
        raise AssertionError("every connection landed on the same worker")

    async def send(self, frames: list[dict[str, Any]], first_n: int, answers: bool = True) -> None:
        for k, f in enumerate(frames):
            await self.ws.send(json.dumps({**f, "n": first_n + k}))
            if not answers:
                continue
            got = await _recv(self.ws)
            assert got["type"] == "guidance", got
            self.items += got["items"]


def _strip(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(i["seq"], i["kind"], i["key"]) for i in items]


@pytest.mark.slow
def test_a_reconnect_on_another_worker_loses_and_repeats_nothing(server: Server) -> None:
    token = httpx.post(server.base + "/api/auth/login",
                       json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    ws_url = f"ws://127.0.0.1:{server.port}/api/assist/v1/ws"

    async def scenario() -> None:
        whole = Client(ws_url, token, "mw-whole")
        await whole.connect()
        await whole.send(SCRIPT, 1)
        await whole.ws.close()

        c = Client(ws_url, token, "mw-drop")
        await c.connect()
        first_worker = c.worker
        await c.send(SCRIPT[:2], 1)
        await c.send(SCRIPT[2:3], 3, answers=False)  # its answer is lost with the connection
        await asyncio.sleep(0.05)
        await c.ws.close()
        ready = await c.connect(resume=True, avoid=first_worker)
        assert ready["resumed"] and c.worker != first_worker
        # whatever the first worker's journal had reached when this one took over (it writes every 0.2 s, so
        # on a loaded machine possibly nothing yet): the client resends from there, and nothing is lost or repeated
        assert 0 <= ready["received"] <= 3
        await c.send(SCRIPT[ready["received"]:4], ready["received"] + 1)  # resent and new frames

        # a watcher on the worker that does not hold the call follows it through the journal
        seen_by_watcher: list[dict[str, Any]] = []
        for _ in range(40):
            wws = await websockets.connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"})
            await wws.send(json.dumps({"type": "start", "v": 1, "call": {"id": "mw-drop"}, "watch": True}))
            hello = await _recv(wws)
            assert hello["type"] == "ready" and hello["watch"], hello
            if hello["worker"] != c.worker:
                break
            await wws.close()
        else:
            raise AssertionError("every watcher landed on the worker holding the call")
        assert (await _recv(wws))["type"] == "transcript"
        seen_by_watcher += (await _recv(wws))["items"]

        # the wall lists the call, whichever worker answers
        async with httpx.AsyncClient() as http:
            for _ in range(6):
                r = await http.get(server.base + "/api/assist/v1/calls", headers={"Authorization": f"Bearer {token}"})
                assert "mw-drop" in {x["call_id"] for x in r.json()["calls"]}

        await c.send(SCRIPT[4:], 5)
        assert (await _recv(c.ws))["type"] == "ended"
        assert _strip(c.items) == _strip(whole.items)
        assert [i["kind"] for i in c.items].count("report") == 1

        while True:
            f = await _recv(wws)
            if f["type"] == "guidance":
                seen_by_watcher += f["items"]
            if f["type"] == "ended":
                break
        assert _strip(seen_by_watcher) == _strip(whole.items)  # everything, once, in order

    asyncio.run(scenario())


@pytest.mark.slow
def test_a_call_resumes_after_the_server_restarts(server: Server) -> None:
    token = httpx.post(server.base + "/api/auth/login",
                       json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    ws_url = f"ws://127.0.0.1:{server.port}/api/assist/v1/ws"

    async def before() -> Client:
        whole = Client(ws_url, token, "rs-whole")
        await whole.connect()
        await whole.send(SCRIPT, 1)
        c = Client(ws_url, token, "rs-call")
        await c.connect()
        await c.send(SCRIPT[:3], 1)
        # no wait for the journal: a server that is stopped writes what it has not journaled yet
        c.whole = whole.items  # type: ignore[attr-defined]
        return c

    c = asyncio.run(before())
    server.stop()
    server.start()

    async def after() -> None:
        ready = await c.connect(resume=True)
        assert ready["resumed"] and ready["received"] == 3
        await c.send(SCRIPT[3:], 4)
        assert (await _recv(c.ws))["type"] == "ended"
        assert _strip(c.items) == _strip(c.whole)  # type: ignore[attr-defined]

    asyncio.run(after())
