"""Overload (issue 9, item 3): a burst of concurrent single-call uploads against `kefuqa serve --workers 2`
on PostgreSQL. Every request is answered 200 (stored) or 503 with Retry-After (not accepted: sent again),
never 500, and every call ends up stored exactly once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import svc_samples as samples

from conftest import ADMIN_PASSWORD, WS_TIMEOUT, _pg_schema, join_all

BURST = 60


@pytest.fixture
def server(tmp_path: Path) -> object:
    for url in _pg_schema():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "KEFUQA_ADMIN_PASSWORD": ADMIN_PASSWORD}
        proc = subprocess.Popen([str(Path(sys.executable).with_name("kefuqa")), "serve", "--workers", "2", "--port", str(port),
                                 "--database-url", url, "--data-dir", str(tmp_path)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.mark.slow
def test_a_burst_of_uploads_is_queued_or_refused_never_lost(server: str) -> None:
    base = server
    token = httpx.post(base + "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    tag = uuid.uuid4().hex[:6]
    calls = [samples.conversation(f"burst-{tag}-{i}", ("A1", "A2", "B1")[i % 3], 3, "refuse") for i in range(BURST)]
    barrier = threading.Barrier(BURST, timeout=WS_TIMEOUT)
    first: list[int] = [0] * BURST
    stored: list[int] = [0] * BURST

    def upload(i: int) -> None:
        barrier.wait()
        body = json.dumps(calls[i], ensure_ascii=False).encode()
        for attempt in range(50):
            r = httpx.post(base + "/api/uploads", headers=headers, timeout=120,
                           files={"files": (f"{calls[i]['id']}.json", body, "application/json")})
            if attempt == 0:
                first[i] = r.status_code
            if r.status_code == 503:
                assert int(r.headers["retry-after"]) >= 1
                assert "稍后" in r.json()["detail"]
                time.sleep(int(r.headers["retry-after"]))
                continue
            assert r.status_code == 200, r.text
            stored[i] = r.json()["stored"] + r.json()["unchanged"]
            return

    threads = [threading.Thread(target=upload, args=(i,), daemon=True) for i in range(BURST)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    join_all(threads, "an upload of the burst")
    print(f"burst of {BURST}: {time.perf_counter() - began:.1f} s; first answers:", sorted(first))
    assert set(first) <= {200, 503}, sorted(first)
    assert stored == [1] * BURST
    listed = httpx.get(base + f"/api/calls?q=burst-{tag}&page_size=200", headers=headers).json()
    assert listed["total"] == BURST
