"""Issue 9 (service half): times in UTC on both databases, hostile input at the edge, the database gone,
login throttling, rejected audio removed. Each test runs on SQLite and on PostgreSQL where a database
is involved."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import svc_samples as samples
from fastapi.testclient import TestClient

from conftest import ADMIN_PASSWORD, make_settings
from kefuqa.service.app import create_app
from kefuqa.service.workbench import Workbench


class Admin:
    """A workbench with only its admin, and a client logged in as the admin."""

    def __init__(self, url: str, folder: Path, **settings: Any) -> None:
        self.wb = Workbench(make_settings(url, folder, **settings))
        self.wb.setup()
        self.client = TestClient(create_app(self.wb.settings, self.wb))
        r = self.client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        self.h = {"Authorization": f"Bearer {r.json()['token']}"}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.h, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers={**self.h, **kw.pop("headers", {})}, **kw)

    def close(self) -> None:
        self.client.close()
        self.wb.engine.dispose()


@pytest.fixture
def admin(any_db: str, tmp_path: Path) -> Any:
    a = Admin(any_db, tmp_path)
    yield a
    a.close()


# ---- item 8: times ------------------------------------------------------------------------------------------


def _call_at(call_id: str, started_at: str) -> dict[str, Any]:
    call = samples.conversation(call_id, "A1", 2)
    call["started_at"] = started_at
    return call


def test_times_are_stored_in_utc_and_shown_in_the_configured_zone(admin: Admin) -> None:
    """23:30 and 00:30 (+08:00) fall on two local days but one UTC day: the API answers the instant in UTC,
    the date filter and the CSV use the local day and time, the same on SQLite and PostgreSQL."""
    late, early = f"tz-late-{uuid.uuid4().hex[:6]}", f"tz-early-{uuid.uuid4().hex[:6]}"
    r = admin.post("/api/conversations", json=[_call_at(late, "2026-11-20T23:30:00+08:00"),
                                               _call_at(early, "2026-11-21T00:30:00+08:00")])
    assert r.status_code == 200 and r.json()["stored"] == 2, r.text
    got = {c["call_id"]: c["call_at"] for c in admin.get("/api/calls").json()["items"]}
    assert got[late] == "2026-11-20T15:30:00+00:00"
    assert got[early] == "2026-11-20T16:30:00+00:00"

    def on(day: str) -> set[str]:
        items = admin.get(f"/api/calls?date_from={day}&date_to={day}").json()["items"]
        return {c["call_id"] for c in items}

    assert on("2026-11-20") == {late}
    assert on("2026-11-21") == {early}
    rows = list(csv.reader(io.StringIO(admin.get("/api/calls.csv").text.lstrip("\ufeff"))))
    when = {row[0]: row[1] for row in rows[1:]}
    assert when[late].startswith("2026-11-20 23:30") and when[early].startswith("2026-11-21 00:30")


def test_another_configured_zone_moves_the_local_day(any_db: str, tmp_path: Path) -> None:
    a = Admin(any_db, tmp_path, timezone="America/New_York")
    try:
        cid = f"tz-ny-{uuid.uuid4().hex[:6]}"
        assert a.post("/api/conversations", json=[_call_at(cid, "2026-11-21T03:00:00+00:00")]).json()["stored"] == 1
        items = a.get("/api/calls?date_from=2026-11-20&date_to=2026-11-20").json()["items"]
        assert [c["call_id"] for c in items] == [cid]  # 22:00 the evening before in New York
        rows = list(csv.reader(io.StringIO(a.get("/api/calls.csv").text.lstrip("\ufeff"))))
        assert rows[1][1].startswith("2026-11-20 22:00")
    finally:
        a.close()


def test_a_call_time_without_offset_is_the_configured_zones_wall_clock(any_db: str, tmp_path: Path) -> None:
    """A vendor export that writes 2026-11-20T23:30:00 means half past eleven where the call was taken (the
    greeting rule reads it so); the workbench must file it on that local day, not 8 hours later."""
    a = Admin(any_db, tmp_path, timezone="Asia/Shanghai")
    try:
        cid = f"tz-naive-{uuid.uuid4().hex[:6]}"
        assert a.post("/api/conversations", json=[_call_at(cid, "2026-11-20T23:30:00")]).json()["stored"] == 1
        items = a.get("/api/calls?date_from=2026-11-20&date_to=2026-11-20").json()["items"]
        assert cid in [c["call_id"] for c in items]
        nxt = a.get("/api/calls?date_from=2026-11-21&date_to=2026-11-21").json()["items"]
        assert cid not in [c["call_id"] for c in nxt]
        rows = list(csv.reader(io.StringIO(a.get("/api/calls.csv").text.lstrip("\ufeff"))))
        assert [r[1] for r in rows[1:] if r[0] == cid][0].startswith("2026-11-20 23:30")
    finally:
        a.close()


def test_migration_moves_old_sqlite_call_times_to_utc(tmp_path: Path) -> None:
    """Calls stored on SQLite before UTC conversion kept their local wall-clock time; 0002 fixes them from
    the conversation's own started_at."""
    import json

    from alembic import command
    from sqlalchemy import text

    from kefuqa.service.db import alembic_config, make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO conversations (call_id, call_at, utterance_count, has_audio, content_hash, "
                          "data, created_at, updated_at, fatal) VALUES ('old-1', '2026-11-20 23:30:00.000000', 0, "
                          "0, 'x', :data, '2026-11-20 15:31:00.000000', '2026-11-20 15:31:00.000000', 0)"),
                     {"data": json.dumps({"id": "old-1", "started_at": "2026-11-20T23:30:00+08:00"})})
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT call_at FROM conversations")).scalar() == "2026-11-20 15:30:00.000000"
    engine.dispose()


def test_migration_0011_moves_naive_call_times_stored_as_utc_into_the_zone(any_db: str, tmp_path: Path) -> None:
    """Calls stored before naive times were read in KEFUQA_TIMEZONE sit 8 hours late (Asia/Shanghai); 0011
    moves them, and only them: a call stored since (already in the zone) and a time with an offset stay. The
    day lists and the daily statistics follow, the same on SQLite and PostgreSQL."""
    from sqlalchemy import text

    from kefuqa.service import rollup
    from kefuqa.service.db import migrate

    a = Admin(any_db, tmp_path, timezone="Asia/Shanghai")
    try:
        old, new, aware = (f"tz-{k}-{uuid.uuid4().hex[:6]}" for k in ("old", "new", "aware"))
        for cid, at in ((old, "2026-11-20T23:30:00"), (new, "2026-11-20T23:30:00"),
                        (aware, "2026-11-20T23:30:00+08:00")):
            assert a.post("/api/conversations", json=[_call_at(cid, at)]).json()["stored"] == 1
        with a.wb.engine.begin() as conn:  # `old` as the workbench stored it before 96bf4f6: 23:30 UTC
            conn.execute(text("UPDATE conversations SET call_at = :at WHERE call_id = :cid"),
                         {"at": datetime(2026, 11, 20, 23, 30, tzinfo=timezone.utc)
                          if a.wb.dialect == "postgresql" else "2026-11-20 23:30:00.000000", "cid": old})
            conn.execute(text("UPDATE alembic_version SET version_num = '0010'"))

        def day(d: str) -> set[str]:
            return {c["call_id"] for c in a.get(f"/api/calls?date_from={d}&date_to={d}").json()["items"]}

        def stats() -> list[tuple[Any, ...]]:
            with a.wb.engine.connect() as conn:
                return sorted(tuple(r) for r in conn.execute(text(
                    "SELECT day, sum(calls) FROM stats_calls GROUP BY day HAVING sum(calls) <> 0")))

        assert old in day("2026-11-21") and old not in day("2026-11-20")  # the bug: filed on the next day
        assert migrate(a.wb.engine, "Asia/Shanghai") == ["0011"]
        assert {old, new, aware} <= day("2026-11-20") and not {old, new, aware} & day("2026-11-21")
        calls = {c["call_id"]: c for c in a.get("/api/calls?date_from=2026-11-20&date_to=2026-11-20").json()["items"]}
        assert calls[old]["call_at"] == calls[new]["call_at"] == calls[aware]["call_at"]
        kept = stats()
        rollup.rebuild(a.wb.engine, "Asia/Shanghai")  # what the triggers kept is what a full rebuild gives
        assert stats() == kept and len(kept) == 1
        assert migrate(a.wb.engine, "Asia/Shanghai") == []  # once
    finally:
        a.close()


# ---- item 10: the database gone -------------------------------------------------------------------------------

DEAD_PG = "postgresql+psycopg://kefuqa:s3cret-pw@127.0.0.1:9/kefuqa"  # nothing listens on port 9


def test_health_answers_503_with_the_reason_when_the_database_is_gone(any_db: str, tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    a = Admin(any_db, tmp_path)
    try:
        assert a.client.get("/api/health").status_code == 200
        a.wb.engine.dispose()
        if a.wb.dialect == "sqlite":
            (tmp_path / "blocked").write_text("a file where the database's folder should be")
            dead = create_engine(f"sqlite:///{tmp_path / 'blocked' / 'kefuqa.db'}")
        else:
            dead = create_engine(DEAD_PG, connect_args={"connect_timeout": 3})
            a.wb.settings.database_url = DEAD_PG
        a.wb.sessions.configure(bind=dead)
        r = a.client.get("/api/health")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        assert r.json()["detail"].startswith("无法连接数据库")
        assert "s3cret-pw" not in r.text
        r = a.client.get("/api/calls", headers=a.h)
        assert r.status_code == 503 and r.json()["detail"].startswith("无法连接数据库"), r.text
        dead.dispose()
    finally:
        a.close()


@pytest.mark.slow
@pytest.mark.parametrize("args", [["serve", "--port", "0"], ["ingest", "nothing.json"],
                                  ["user", "add", "zhang", "--role", "qa"]])
def test_commands_say_one_line_when_the_database_is_unreachable(args: list[str], tmp_path: Path) -> None:
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("kefuqa"))
    got = subprocess.run([exe, *args, "--database-url", DEAD_PG, "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 3, got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1, got.stderr
    assert lines[0].startswith("无法连接数据库 postgresql+psycopg://kefuqa:***@127.0.0.1:9/kefuqa")
    assert "s3cret-pw" not in got.stderr + got.stdout


# ---- item 5: hostile input ------------------------------------------------------------------------------------


def _hostile(field: str) -> tuple[Any, str]:
    call = samples.conversation(f"hostile-{uuid.uuid4().hex[:6]}", "A1", 2)
    if field == "text-surrogate":
        call["utterances"][1]["text"] = "我家宽带\ud800坏了"
        return call, "utterances[1].text"
    if field == "id-surrogate":
        call["id"] = "call-\ud800"
        return call, "id"
    if field == "agent-surrogate":
        call["agent"]["id"] = "A\udfff"
        return call, "agent.id"
    if field == "text-nul":
        call["utterances"][1]["text"] = "宽带\x00坏了"
        return call, "utterances[1].text"
    if field == "long-id":
        call["id"] = "x" * 300
        return call, "id"
    raise ValueError(field)


@pytest.mark.parametrize("field", ["text-surrogate", "id-surrogate", "agent-surrogate", "text-nul", "long-id"])
def test_hostile_values_are_refused_naming_the_field(admin: Admin, field: str) -> None:
    """The same answer on SQLite and PostgreSQL, by the JSON API and by file upload: the record is an error
    naming its field, nothing is stored, and the request itself succeeds."""
    import json

    call, place = _hostile(field)
    body = json.dumps([call], ensure_ascii=True)  # \\ud800 travels escaped, as JSON allows
    r = admin.post("/api/conversations", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), r.text
    errors = [o["error"] for o in r.json()["results"]] if r.status_code == 200 else [str(r.json()["detail"])]
    assert len(errors) == 1 and place in errors[0], errors
    if r.status_code == 200:
        assert r.json()["stored"] == 0 and r.json()["errors"] == 1
    up = admin.post("/api/uploads", files={"files": ("bad.json", body.encode(), "application/json")})
    assert up.status_code == 200, up.text
    assert up.json()["stored"] == 0 and up.json()["errors"] == 1
    assert place.split(".")[0] in up.json()["results"][0]["error"], up.json()
    assert admin.get("/api/calls").json()["total"] == 0


def test_json_nested_a_thousand_deep_is_a_4xx(admin: Admin) -> None:
    deep = "[" * 1000 + "]" * 1000
    r = admin.post("/api/conversations", content=deep, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    up = admin.post("/api/uploads", files={"files": ("deep.json", deep.encode(), "application/json")})
    assert up.status_code == 200 and up.json()["errors"] == 1, up.text
    assert "deep.json" in str(up.json()["results"][0])


# ---- item 9: login throttling ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client_from(a: Admin, ip: str) -> TestClient:
    return TestClient(a.client.app, client=(ip, 50000))


def test_login_failures_are_slowed_alike_for_known_and_unknown_names(admin: Admin) -> None:
    clock = Clock()
    admin.wb.logins.clock = clock
    n = admin.wb.settings.max_failed_logins

    def answers(name: str, ip: str) -> list[tuple[int, str]]:
        attacker = _client_from(admin, ip)
        out = []
        for _ in range(n + 3):
            r = attacker.post("/api/auth/login", json={"username": name, "password": "wrong-guess-1"})
            out.append((r.status_code, r.json()["detail"]))
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
                clock.now += int(r.headers["retry-after"])  # waits as told, then tries again
        return out

    known, unknown = answers("admin", "203.0.113.7"), answers("nobody-here", "203.0.113.8")
    assert known == unknown
    assert [code for code, _ in known[:n]] == [401] * n and known[0][1] == "用户名或密码错误"
    assert (429, "登录失败次数过多，请 1 秒后再试") in known
    assert not any("锁定" in text for _, text in known)


def test_failures_from_one_client_neither_lock_out_the_admin_nor_let_that_client_guess_on(admin: Admin) -> None:
    clock = Clock()
    admin.wb.logins.clock = clock
    attacker = _client_from(admin, "203.0.113.9")
    n = admin.wb.settings.max_failed_logins
    codes = [attacker.post("/api/auth/login", json={"username": "admin", "password": f"guess-{i}"}).status_code
             for i in range(50)]
    assert codes[:n] == [401] * n and codes[n:] == [429] * (50 - n)  # refused unchecked, not guessed
    # even the right password is refused to that client while it must wait
    r = attacker.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429
    # the administrator, from their own desk, logs in at once
    desk = _client_from(admin, "198.51.100.2")
    assert desk.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 200
    # the wait grows with each failure after the threshold and ends
    clock.now += 1
    assert attacker.post("/api/auth/login", json={"username": "admin", "password": "guess-x"}).status_code == 401
    r = attacker.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    clock.now += 2
    assert attacker.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).status_code == 200


def test_one_client_trying_many_names_is_slowed(admin: Admin) -> None:
    admin.wb.logins.clock = Clock()
    spray = _client_from(admin, "203.0.113.11")
    codes = [spray.post("/api/auth/login", json={"username": f"user{i}", "password": "123456"}).status_code
             for i in range(50)]
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 30


def test_two_worker_processes_share_the_failed_login_counters(any_db: str, tmp_path: Path) -> None:
    """`kefuqa serve --workers 2`: each worker has its own workbench object on the one database. A guesser
    whose attempts alternate between the workers is slowed after the same number of failures as on one
    worker, and a success on one worker clears what the other counted."""
    one = Admin(any_db, tmp_path / "w1")
    two = Workbench(one.wb.settings)  # a second process's workbench: same settings, its own engine and state
    try:
        clock = Clock()
        one.wb.logins.clock = two.logins.clock = clock
        workers = [_client_from(one, "203.0.113.30"), TestClient(create_app(two.settings, two),
                                                                 client=("203.0.113.30", 50000))]
        n = one.wb.settings.max_failed_logins
        codes = [workers[i % 2].post("/api/auth/login", json={"username": "admin", "password": f"g{i}"}).status_code
                 for i in range(n + 4)]
        assert codes == [401] * n + [429] * 4
        clock.now += 1
        ok = workers[1].post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert ok.status_code == 200
        r = workers[0].post("/api/auth/login", json={"username": "admin", "password": "wrong-again"})
        assert r.status_code == 401  # the success on the other worker cleared the pair's and client's counts
    finally:
        two.engine.dispose()
        one.close()


# ---- item 7: rejected audio leaves nothing on disk ---------------------------------------------------------------


def _broken_wav(i: int) -> bytes:
    return b"RIFF" + (1000).to_bytes(4, "little") + b"WAVE" + bytes([i]) * 2000  # a header, then garbage


@pytest.mark.slow
def test_rejected_audio_uploads_are_removed_from_disk(admin: Admin, tmp_path: Path) -> None:
    from kefuqa.service import audio_store

    if not audio_store.supported():
        pytest.skip("the audio extra is not installed")
    audio = admin.wb.settings.audio_dir
    for i in range(4):
        r = admin.post("/api/uploads", files={"files": (f"rec-{i}.wav", _broken_wav(i), "audio/wav")})
        assert r.status_code == 200 and r.json()["errors"] == 1 and r.json()["stored"] == 0, r.text
    r = admin.post("/api/uploads", files=[("files", (f"more-{i}.wav", _broken_wav(10 + i), "audio/wav"))
                                          for i in range(3)])
    assert r.status_code == 200 and r.json()["errors"] == 3, r.text
    left = sorted(p.name for p in audio.iterdir()) if audio.exists() else []
    assert left == []


def test_the_login_page_says_429_while_failures_are_slowed(admin: Admin) -> None:
    import re

    admin.wb.logins.clock = Clock()
    page = _client_from(admin, "203.0.113.20")
    codes = []
    for _ in range(admin.wb.settings.max_failed_logins + 1):
        form = page.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token
        r = page.post("/login", data={"username": "admin", "password": "wrong-guess", "csrf_token": token.group(1),
                                      "next": "/"}, follow_redirects=False)
        codes.append(r.status_code)
    assert codes[-1] == 429 and "登录失败次数过多" in r.text and set(codes[:-1]) == {401}
