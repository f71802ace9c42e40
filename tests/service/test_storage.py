"""Schema and migrations on SQLite and PostgreSQL, the effective score after withdrawn findings, loading
uploaded rulebooks from their text, and the `kefuqa ingest` / `kefuqa serve` functions."""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import svc_samples as samples
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

import kefuqa
from conftest import make_settings
from kefuqa.scoring import rescore
from kefuqa.service import cli
from kefuqa.service.db import alembic_config, make_engine, migrate
from kefuqa.service.errors import Conflict
from kefuqa.service.ingest import Item
from kefuqa.service.models import (
    AuditEntry,
    Base,
    Conversation,
    RulebookVersion,
    Score,
    User,
    include_in_schema_compare,
)
from kefuqa.service.scores import effective, rescore_conversation
from kefuqa.service.workbench import Workbench

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "readers"


def _all_revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def test_migrations_are_one_linear_history() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, script.get_heads()
    assert _all_revisions()[0] == "0001"


def test_migrations_build_the_models_schema_and_go_back(any_db: str) -> None:
    engine = make_engine(any_db)
    assert migrate(engine) == _all_revisions()
    assert migrate(engine) == []  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": include_in_schema_compare}),
                                Base.metadata)
    assert diff == [], diff
    tables = set(inspect(engine).get_table_names())
    assert {"conversations", "scores", "findings", "rulebooks", "agents", "teams", "users", "reviews",
            "appeals", "audit_log", "sessions", "alembic_version"} <= tables
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_setup_on_a_fresh_database(any_db: str, tmp_path: Path) -> None:
    wb = Workbench(make_settings(any_db, tmp_path, admin_password=None))
    info = wb.setup()
    assert info.applied_migrations == _all_revisions() and info.rulebook.startswith("standard ")
    assert info.admin_username == "admin" and info.admin_password and len(info.admin_password) >= 12
    again = wb.setup()
    assert again.applied_migrations == [] and again.admin_password is None
    with wb.sessions() as db:
        users = list(db.scalars(select(User)))
        assert [(u.username, u.role) for u in users] == [("admin", "admin")]
        active = list(db.scalars(select(RulebookVersion).where(RulebookVersion.status == "active")))
        assert len(active) == 1 and active[0].origin == "bundled"
    wb.engine.dispose()


def test_every_score_records_its_rulebook_version(any_db: str, tmp_path: Path) -> None:
    wb = Workbench(make_settings(any_db, tmp_path))
    wb.setup()
    calls = samples.seed_calls()[:3]
    items = [Item(kefuqa.Conversation.model_validate(c), "t") for c in calls]
    out = wb.ingestor.ingest(items)
    assert [o.status for o in out.outcomes] == ["stored"] * 3 and out.rulebook.startswith("standard ")
    again = wb.ingestor.ingest([Item(kefuqa.Conversation.model_validate(c), "t") for c in calls])
    assert [o.status for o in again.outcomes] == ["unchanged"] * 3
    with wb.sessions() as db:
        conv = db.scalar(select(Conversation).where(Conversation.call_id == calls[1]["id"]))
        assert conv is not None and conv.agent.code == "A1" and conv.team.name == "一组"
        score = db.get(Score, conv.current_score_id)
        assert score is not None and score.rulebook.name == "standard"
        assert score.report["rulebook"]["version"] == score.rulebook.version
        rescore_conversation(db, wb.rulebooks, conv, user_id=None)
        db.commit()
        history = list(db.scalars(select(Score).where(Score.conversation_id == conv.id)))
        assert len(history) == 2 and conv.current_score_id == max(s.id for s in history)
        assert db.scalar(select(AuditEntry).where(AuditEntry.action == "conversation.ingest")) is not None
    wb.engine.dispose()


def _report(call: dict) -> tuple[dict, kefuqa.Rulebook]:
    rb = kefuqa.load_rulebook()
    return kefuqa.check(call, rb).to_dict(), rb


def test_effective_score_matches_the_engine_without_the_withdrawn_rule() -> None:
    call = samples.conversation("x", "A1", 3, "refuse")
    rep, rb = _report(call)
    assert effective(rep, set(), rb) == (rep["score"], rep["grade"], rep["fatal"])
    rules = {f["rule"] for f in rep["findings"]}
    assert len(rules) >= 3
    for rule in rules:
        # withdrawing every finding of a rule = scoring with that rule ignored
        same_rule = {j for j, g in enumerate(rep["findings"]) if g["rule"] == rule}
        expected = kefuqa.check(call, ignore=[rule])
        assert effective(rep, same_rule, rb) == (expected.score, expected.grade, expected.fatal), rule


def test_effective_score_of_a_fatal_call() -> None:
    rep, rb = _report(samples.conversation("x", "A1", 3, "fatal"))
    assert rep["fatal"] and rep["score"] == 0
    lng = {i for i, f in enumerate(rep["findings"]) if f["rule"] == "LNG001"}
    first = min(lng)
    # one of two 服务禁语 withdrawn: still fatal
    assert effective(rep, {first}, rb) == (0.0, rep["grade"], True)
    expected = kefuqa.check(samples.conversation("x", "A1", 3, "fatal"), ignore=["LNG001"])
    assert effective(rep, lng, rb) == (expected.score, expected.grade, False)


def test_once_rules_charge_a_remaining_finding() -> None:
    rep, rb = _report(samples.conversation("x", "A1", 3, "refuse"))
    lng6 = [i for i, f in enumerate(rep["findings"]) if f["rule"] == "LNG006"]
    assert len(lng6) == 2 and rep["findings"][lng6[1]]["points"] == 0
    # the charged one withdrawn, the other still costs the rule's points
    assert effective(rep, {lng6[0]}, rb)[0] == rep["score"]


def test_effective_score_needs_the_rules_that_scored_the_report() -> None:
    rep, rb = _report(samples.conversation("x", "A1", 3, "refuse"))
    other = kefuqa.load_rulebook("standard")
    other.rules = [r for r in other.rules if r.id != "RSP002"]
    with pytest.raises(Conflict, match="RSP002"):
        effective(rep, {0}, other)
    assert effective(rep, set(), other) == (rep["score"], rep["grade"], rep["fatal"])  # nothing to recount
    assert rescore(kefuqa.check(samples.conversation("x", "A1", 3, "refuse"), rb), rb, [0]).score == \
        effective(rep, {0}, rb)[0]


# ---- the command-line functions ----------------------------------------------------------------------------


def test_ingest_files_and_folders(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    folder = tmp_path / "calls"
    folder.mkdir()
    for i, c in enumerate(samples.seed_calls()[:4]):
        (folder / f"c{i}.json").write_text(json.dumps(c, ensure_ascii=False), encoding="utf-8")
    (folder / "notes.md").write_text("not a conversation")
    lines: list[str] = []
    errors: list[str] = []
    code = cli.ingest([str(folder), str(FIXTURES / "transcript.txt")], url, data_dir=str(tmp_path),
                      echo=lines.append, err=errors.append)
    assert code == 0, (lines, errors)
    text = "\n".join(lines)
    assert "已创建管理员账号 admin" in text and "已存储 5 通" in text
    code = cli.ingest([str(folder)], url, data_dir=str(tmp_path), echo=lines.append, err=errors.append)
    assert code == 0 and "未变化 4" in lines[-1]
    code = cli.ingest([str(FIXTURES / "calls.jsonl"), str(tmp_path / "missing.json")], url, data_dir=str(tmp_path),
                      echo=lines.append, err=errors.append)
    assert code == 1 and any("missing.json" in e for e in errors) and any("calls.jsonl" in e for e in errors)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(Conversation.call_id)).all()
    engine.dispose()


def test_ingest_with_a_rulebook_activates_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    f = tmp_path / "c.json"
    f.write_text(json.dumps(samples.conversation("rb-1", "A1", 3, "good"), ensure_ascii=False), encoding="utf-8")
    assert cli.ingest([str(f)], url, "utility-95598", data_dir=str(tmp_path), echo=lambda s: None) == 0
    engine = make_engine(url)
    with engine.connect() as conn:
        name = conn.execute(select(RulebookVersion.name).where(RulebookVersion.status == "active")).scalar()
        used = conn.execute(select(RulebookVersion.name).join(Score, Score.rulebook_id == RulebookVersion.id)).scalar()
    assert name == used == kefuqa.load_rulebook("utility-95598").name
    engine.dispose()


def test_add_user_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    out: list[str] = []
    assert cli.add_user("zhang", "leader", url, team="一组", data_dir=str(tmp_path), echo=out.append) == 0
    assert "初始密码" in out[-1]
    assert cli.add_user("zhang", "leader", url, team="一组", data_dir=str(tmp_path), echo=out.append) == 1
    assert cli.add_user("li", "agent", url, data_dir=str(tmp_path), echo=out.append) == 1  # needs --agent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_just_works_on_a_fresh_machine(tmp_path: Path) -> None:
    """`python -m kefuqa.service serve` with nothing but a data dir: it creates the SQLite file, migrates,
    prints the admin password, and the login works."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFUQA_")}
    env["KEFUQA_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen([sys.executable, "-m", "kefuqa.service", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = _output_until(proc, "api/docs")  # the banner ends with the URL line
        m = re.search(r"初始密码：(\S+)", banner)
        assert m, banner
        assert (tmp_path / "data" / "kefuqa.db").is_file()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            # wait for the socket (not a timing assertion: just readiness); the banner comes before the app is
            # imported and bound, which takes seconds more on a loaded machine
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/api/health")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
                    time.sleep(0.05)
            r = client.post("/api/auth/login", json={"username": "admin", "password": m.group(1)})
            assert r.status_code == 200
            assert client.get("/login").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _output_until(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> str:
    """What `proc` printed up to the line with `marker` (or up to its end); fails when neither came within
    `timeout` seconds instead of reading a silent process's output forever."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
            if marker in line:
                return
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no line with {marker!r} within {timeout:g} s: {''.join(got)}") from None
        if line is None or marker in line:
            return "".join(got + [line or ""])
        got.append(line)


@pytest.mark.parametrize("value", ["abc"])
def test_bad_env_values_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from kefuqa.service.config import Settings

    monkeypatch.setenv("KEFUQA_MAX_UPLOAD_MB", value)
    with pytest.raises(ValueError, match="KEFUQA_MAX_UPLOAD_MB"):
        Settings.from_env()
    monkeypatch.setenv("KEFUQA_MAX_UPLOAD_MB", " 7 ")
    assert Settings.from_env().max_file_bytes == 7 * 1024 * 1024


def test_concurrent_small_uploads_share_transactions_and_keep_their_outcomes(any_db: str, tmp_path: Path) -> None:
    """Group commit: one-call uploads arriving together are stored together, each request gets its own
    outcome, and a conflicting call in one request does not affect the others."""
    from concurrent.futures import ThreadPoolExecutor

    wb = Workbench(make_settings(any_db, tmp_path))
    wb.setup()
    calls = [samples.conversation(f"grp-{i}", ("A1", "A2", "B1")[i % 3], day=1) for i in range(24)]
    twin = samples.variant(calls[0], utterances=calls[0]["utterances"][:4])  # same id, other content
    requests = [[Item(kefuqa.Conversation.model_validate(c), "api")] for c in calls] + \
        [[Item(kefuqa.Conversation.model_validate(twin), "api")]]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda items: wb.ingestor.ingest_shared(items, user_id=None), requests))
    assert [len(r.outcomes) for r in results] == [1] * 25
    assert [r.outcomes[0].call_id for r in results] == [c["id"] for c in calls] + ["grp-0"]
    assert all(r.outcomes[0].status == "stored" for r in results[:24])
    assert results[24].outcomes[0].status == "conflict"
    with wb.sessions() as db:
        stored = db.scalars(select(Conversation.call_id).where(Conversation.call_id.like("grp-%"))).all()
    assert sorted(stored) == sorted(c["id"] for c in calls)
