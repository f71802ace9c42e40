"""Fixtures of the service tests: databases (SQLite and PostgreSQL), a seeded workbench per backend, and
clients logged in as each role.

PostgreSQL: ``KEFUQA_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); every
test module gets a fresh schema, dropped afterwards. When no server answers, the PostgreSQL variants are
skipped with the reason shown by ``pytest -rs``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs the server extra: pip install -e '.[server]'")
pytest.importorskip("sqlalchemy", reason="the service needs the server extra: pip install -e '.[server]'")

from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

import svc_samples as samples  # noqa: E402

from kefuqa.service.app import create_app  # noqa: E402
from kefuqa.service.config import Settings  # noqa: E402
from kefuqa.service.workbench import Workbench  # noqa: E402

PG_URL = os.environ.get("KEFUQA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN_PASSWORD = "Admin-pass-1"
PASSWORD = "Passw0rd-test"

WS_TIMEOUT = 60.0  # seconds a test waits for the server's next WebSocket message, or for its threads at a barrier
THREAD_TIMEOUT = 300.0  # seconds a test waits for the threads it started (each may make many requests)

_pg_problem: list[str | None] = []


def _receive_with_deadline(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Starlette's `WebSocketTestSession.receive` (behind receive_json/_text/_bytes and the accept in
    `websocket_connect`) waits forever; this one fails after `WS_TIMEOUT` seconds, so a server that stopped
    answering fails its test instead of hanging the run."""
    import anyio

    def receive(self: Any) -> Any:
        rx = getattr(self, "_send_rx", None)  # the session's queue of the server's messages (Starlette ≥ 0.37)
        if rx is None:
            return original(self)

        async def get() -> Any:
            with anyio.fail_after(WS_TIMEOUT):
                return await rx.receive()

        try:
            return self.portal.call(get)
        except TimeoutError:
            raise AssertionError(f"no WebSocket message from the server within {WS_TIMEOUT:g} s") from None

    return receive


@pytest.fixture(autouse=True, scope="session")
def _websocket_deadline() -> Iterator[None]:
    from starlette.testclient import WebSocketTestSession

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(WebSocketTestSession, "receive", _receive_with_deadline(WebSocketTestSession.receive))
        yield


def join_all(threads: list[threading.Thread], what: str = "a thread") -> None:
    """Join `threads` (started as daemons, so that one left hanging does not keep the run from ending), failing
    when one is still running `THREAD_TIMEOUT` seconds after the join began."""
    deadline = time.monotonic() + THREAD_TIMEOUT
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not t.is_alive(), f"{what} still running after {THREAD_TIMEOUT:g} s: it hangs"


def pg_problem() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); asked once per test run."""
    if not _pg_problem:
        problem: str | None = None
        for _ in range(5):  # a server still starting, or a loaded machine, gets a few tries before the skip
            try:
                engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
                with engine.connect() as conn:
                    conn.execute(text("select 1"))
                engine.dispose()
                problem = None
                break
            except Exception as exc:  # any driver or network error means: no server here (yet)
                problem = f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}: {str(exc)[:200]}"
                time.sleep(2)
        _pg_problem.append(problem)
    return _pg_problem[0]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test."""
    yield from _pg_schema()


def _pg_schema() -> Iterator[str]:
    problem = pg_problem()
    if problem:
        pytest.skip(problem)
    schema = f"kq_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def database_url(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'kefuqa.db'}"
    else:
        yield from _pg_schema()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, for one test."""
    yield from database_url(request.param, tmp_path)


def make_settings(url: str, folder: Path, **extra: Any) -> Settings:
    extra.setdefault("admin_password", ADMIN_PASSWORD)
    return Settings(database_url=url, data_dir=folder, **extra)


# ---- a seeded workbench ------------------------------------------------------------------------------------


@dataclass
class World:
    backend: str
    wb: Workbench
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)  # call id → numeric id
    users: dict[str, int] = field(default_factory=dict)

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, who: str, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.h(who), **kw)

    def post(self, who: str, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers=self.h(who), **kw)

    def login(self, username: str, password: str = PASSWORD) -> str:
        r = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def new_call(self, agent: str = "A1", kind: str = "fatal", day: int = 8) -> int:
        """A fresh call of its own for a test that changes things."""
        call = samples.conversation(f"t-{uuid.uuid4().hex[:10]}", agent, day, kind)
        r = self.post("qa", "/api/conversations", json=call)
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        return int(r.json()["results"][0]["id"])

    def findings(self, who: str, call: int) -> list[dict[str, Any]]:
        r = self.get(who, f"/api/calls/{call}")
        assert r.status_code == 200, r.text
        return list(r.json()["findings"])

    def browser_login(self, client: TestClient, username: str, password: str = PASSWORD) -> str:
        """Log a cookie client in through the form; returns the page's CSRF token."""
        page = client.get("/login")
        token = _hidden(page.text, "csrf_token")
        r = client.post("/login", data={"username": username, "password": password, "csrf_token": token,
                                        "next": "/"}, follow_redirects=False)
        assert r.status_code == 303, r.text
        home = client.get("/calls")
        return _hidden(home.text, "csrf_token")


    @contextmanager
    def as_browser(self, username: str) -> Iterator[TestClient]:
        """The test client logged in through the form as `username` (cookies), logged out again afterwards."""
        self.client.cookies.clear()
        self.browser_login(self.client, username)
        try:
            yield self.client
        finally:
            self.client.cookies.clear()

    def ensure_inspector(self, username: str = "qa2", display_name: str = "质检二") -> int:
        """A second QA inspector (created once per world): its user id; its token in `tokens`."""
        if username not in self.users:
            r = self.post("admin", "/api/users", json={"username": username, "role": "qa", "password": PASSWORD,
                                                       "display_name": display_name})
            assert r.status_code == 201, r.text
            self.users[username] = r.json()["id"]
            self.tokens[username] = self.login(username)
        return self.users[username]


def _hidden(html: str, name: str) -> str:
    import re

    m = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert m, f"no {name} in page"
    return m.group(1)


USERS = [
    # username, role, team, agent
    ("qa1", "qa", None, None),
    ("lead1", "leader", "一组", None),
    ("lead2", "leader", "二组", None),
    ("wangfang", "agent", None, "A1"),
    ("lilei", "agent", None, "A2"),
    ("zhaomin", "agent", None, "B1"),
]
ROLE_OF = {"admin": "admin", "qa": "qa1", "lead1": "lead1", "lead2": "lead2", "a1": "wangfang", "a2": "lilei",
           "b1": "zhaomin"}


def build_world(backend: str, url: str, folder: Path) -> World:
    settings = make_settings(url, folder, max_failed_logins=5)
    wb = Workbench(settings)
    wb.setup()
    client = TestClient(create_app(settings, wb))
    w = World(backend, wb, client)
    w.tokens["admin"] = w.login("admin", ADMIN_PASSWORD)
    for username, role, team, agent in USERS:
        r = w.post("admin", "/api/users", json={"username": username, "role": role, "password": PASSWORD,
                                                "team": team, "agent_code": agent, "display_name": username})
        assert r.status_code == 201, r.text
        w.users[username] = r.json()["id"]
    for key, username in ROLE_OF.items():
        if key != "admin":
            w.tokens[key] = w.login(username)
    r = w.post("qa", "/api/conversations", json=samples.seed_calls())
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == len(samples.PLAN), r.json()
    w.calls = {o["call_id"]: o["id"] for o in r.json()["results"]}
    return w


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A workbench with users of every role and the sample calls, on each backend (one per test module)."""
    folder = tmp_path_factory.mktemp(f"world-{request.param}")
    for url in database_url(request.param, folder):
        w = build_world(request.param, url, folder)
        try:
            yield w
        finally:
            w.client.close()
            w.wb.engine.dispose()


@pytest.fixture(scope="module")
def sqlite_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("world-sqlite")
    w = build_world("sqlite", f"sqlite:///{folder / 'kefuqa.db'}", folder)
    yield w
    w.client.close()
    w.wb.engine.dispose()


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run ``app`` on a real uvicorn server in a thread (for parallel HTTP requests and browsers); its base URL.

    The port is picked by the system and stays bound from then on: the server is handed the bound socket, so
    no other socket of the machine (a client's connection, another server) can take the port in between. The
    server is stopped when the block ends."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    try:
        assert server.started, "the test server did not start (see its log above)"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in parallel threads, released at the same moment; their results in order."""
    barrier = threading.Barrier(len(calls), timeout=WS_TIMEOUT)
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        out[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    join_all(threads, "a call run together with others")
    return out


@contextmanager
def served_workbench(folder: Path) -> Iterator[tuple[str, str, Any]]:
    """A fresh SQLite workbench in `folder`, served by uvicorn in a thread: its host:port, an administrator's API
    token, and the app."""
    import httpx

    settings = make_settings(f"sqlite:///{folder / 'kefuqa.db'}", folder)
    wb = Workbench(settings)
    wb.setup()
    app = create_app(settings, wb)
    try:
        with serve_app(app) as base:
            r = httpx.post(base + "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            yield base.removeprefix("http://"), r.json()["token"], app
    finally:
        wb.engine.dispose()
