"""Security on SQLite and PostgreSQL: role scoping through the API and through guessed URLs, CSRF, password
storage, lockout, sessions, upload limits and content checks, path traversal, injection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import svc_samples as samples
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import PASSWORD, World, make_settings
from kefuqa.service.app import create_app
from kefuqa.service.models import User
from kefuqa.service.workbench import Workbench


def own_and_foreign(w: World) -> tuple[list[int], list[int]]:
    a1 = [v for k, v in w.calls.items() if k.startswith("call-a1")]
    other = [v for k, v in w.calls.items() if not k.startswith("call-a1")]
    return a1, other


MISSING_CALL = {"detail": "会话不存在或无权查看"}


def _as_a1(w: World, url: str) -> object:
    return w.post("a1", url) if url.endswith("/rescore") else w.get("a1", url)


def test_agent_gets_404_for_another_agents_call_whether_it_exists_or_not(world: World) -> None:
    """README: an agent sees only their own calls, and another agent's call answers 404 whether it exists or
    not — the same status and the same body as a call that was never stored, for reading and for actions."""
    mine, foreign = own_and_foreign(world)
    nowhere = max(world.calls.values()) + 10_000
    for cid in [*foreign, nowhere, "call-b1-01", "no-such-call"]:
        for url in (f"/api/calls/{cid}", f"/api/calls/{cid}/report", f"/api/calls/{cid}/rescore"):
            r = _as_a1(world, url)
            assert (r.status_code, r.json()) == (404, MISSING_CALL), (url, r.status_code, r.text)
    for cid in mine:
        assert world.get("a1", f"/api/calls/{cid}").status_code == 200
        # their own call exists for them: rescoring it is refused for the role, not hidden
        assert world.post("a1", f"/api/calls/{cid}/rescore").status_code == 403


def test_guessing_ids_reveals_nothing(world: World) -> None:
    top = max(world.calls.values()) + 30
    seen = {cid for cid in range(1, top) if world.get("a1", f"/api/calls/{cid}").status_code == 200}
    rows = world.get("qa", "/api/calls", params={"agent": "A1", "page_size": 200}).json()["items"]
    assert seen == {c["id"] for c in rows if c["id"] < top}
    statuses = {world.get("a1", f"/api/calls/{cid}").status_code for cid in range(1, top) if cid not in seen}
    assert statuses == {404}  # the same answer for "someone else's" and "does not exist"


def test_agent_lists_exports_and_stats_only_their_own(world: World) -> None:
    items = world.get("a1", "/api/calls", params={"page_size": 200}).json()["items"]
    assert items and {c["agent"]["code"] for c in items} == {"A1"}
    # a filter naming someone else gives nothing, not their calls
    assert world.get("a1", "/api/calls", params={"agent": "B1"}).json()["total"] == 0
    csv_text = world.get("a1", "/api/calls.csv").content.decode("utf-8-sig")
    assert "call-b1" not in csv_text and "call-a2" not in csv_text and "call-a1-01" in csv_text
    assert world.get("a1", "/api/agents/A1").status_code == 200
    assert world.get("a1", "/api/agents/B1").status_code == 404
    assert world.get("a1", "/api/teams").json() == []
    team_ids = [t["id"] for t in world.get("qa", "/api/teams").json()]
    assert all(world.get("a1", f"/api/teams/{t}").status_code == 404 for t in team_ids)
    appeals = world.get("a1", "/api/appeals").json()
    assert all(a["finding"]["rule"] for a in appeals)
    assert world.get("a1", "/api/reviews/queue").status_code == 403


def test_agent_cannot_review_or_decide(world: World) -> None:
    mine, foreign = own_and_foreign(world)
    own_finding = world.findings("a1", world.calls["call-a1-03"])[0]
    assert world.post("a1", f"/api/findings/{own_finding['id']}/review",
                      json={"verdict": "reject", "reason": "我觉得没问题"}).status_code == 403
    other_finding = world.findings("qa", world.calls["call-b1-02"])[0]
    # someone else's finding: as if it did not exist, like one that does not
    for fid in (other_finding["id"], 10_000_000):
        r = world.post("a1", f"/api/findings/{fid}/review", json={"verdict": "reject", "reason": "x"})
        assert (r.status_code, r.json()) == (404, {"detail": "扣分项不存在或无权查看"})
    # appeals on someone else's finding: as if it did not exist
    assert world.post("a1", f"/api/findings/{other_finding['id']}/appeal",
                      json={"reason": "不是我的也申诉"}).status_code == 404
    # deciding an appeal, even one's own
    cid = world.new_call("A1", "refuse")
    f = world.findings("a1", cid)[0]
    appeal = world.post("a1", f"/api/findings/{f['id']}/appeal", json={"reason": "理由充分"}).json()
    assert world.post("a1", f"/api/appeals/{appeal['id']}/decision",
                      json={"decision": "accept"}).status_code == 403
    assert world.post("lead1", f"/api/appeals/{appeal['id']}/decision",
                      json={"decision": "accept"}).status_code == 403
    assert world.get("b1", "/api/appeals").json() == []
    # nothing changed
    assert world.findings("qa", world.calls["call-a1-03"])[0]["status"] == own_finding["status"]


def test_leader_sees_their_team_only(world: World) -> None:
    items = world.get("lead1", "/api/calls", params={"page_size": 200}).json()["items"]
    assert {c["team"]["name"] for c in items} == {"一组"}
    assert world.get("lead1", f"/api/calls/{world.calls['call-b1-01']}").status_code == 404
    assert world.get("lead2", f"/api/calls/{world.calls['call-a1-01']}").status_code == 404
    assert world.get("lead1", "/api/agents/B1").status_code == 404
    assert world.get("lead1", "/api/agents/A2").status_code == 200
    teams = {t["name"]: t["id"] for t in world.get("qa", "/api/teams").json()}
    assert world.get("lead1", f"/api/teams/{teams['二组']}").status_code == 404
    assert world.get("lead1", f"/api/teams/{teams['一组']}").status_code == 200
    assert [t["name"] for t in world.get("lead1", "/api/teams").json()] == ["一组"]
    f = world.findings("lead1", world.calls["call-a1-03"])[0]
    assert world.post("lead1", f"/api/findings/{f['id']}/review", json={"verdict": "confirm"}).status_code == 403
    assert world.post("lead1", f"/api/findings/{f['id']}/appeal", json={"reason": "组长代申诉"}).status_code == 403


@pytest.mark.parametrize("who", ["qa", "lead1", "a1"])
def test_admin_only_endpoints(world: World, who: str) -> None:
    assert world.get(who, "/api/users").status_code == 403
    assert world.get(who, "/api/audit").status_code == 403
    assert world.post(who, "/api/users", json={"username": "evil", "role": "admin"}).status_code == 403
    assert world.post(who, "/api/rulebooks/1/activate").status_code == 403
    assert world.get(who, "/api/rules/quality").status_code == 403


def test_uploads_need_qa_or_admin(world: World) -> None:
    call = samples.conversation("call-agent-upload", "A1", 9, "good")
    assert world.post("a1", "/api/conversations", json=call).status_code == 403
    assert world.post("lead1", "/api/conversations", json=call).status_code == 403
    assert world.post("a1", "/api/uploads", files=[("files", ("x.json", b"{}"))]).status_code == 403


def test_no_login_no_data(world: World) -> None:
    c = world.client
    assert c.get("/api/calls").status_code == 401
    assert c.get("/api/calls", headers={"Authorization": "Bearer forged"}).status_code == 401
    r = c.get(f"/calls/{world.calls['call-a1-01']}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert c.get("/calls/1/audio", follow_redirects=False).status_code == 303


def test_guessed_web_urls(world: World) -> None:
    with TestClient(world.client.app) as browser:
        csrf = world.browser_login(browser, "wangfang")
        assert browser.get(f"/calls/{world.calls['call-a1-02']}").status_code == 200
        for url in (f"/calls/{world.calls['call-b1-01']}", f"/calls/{world.calls['call-a2-01']}",
                    "/calls/999999", "/agents/B1", "/calls/abc"):
            r = browser.get(url)
            assert r.status_code in (404, 422), url
            assert "call-b1" not in r.text and "call-a2" not in r.text
        for url in ("/reviews", "/admin/users", "/admin/audit", "/rules/quality", "/rulebooks", "/upload", "/teams"):
            assert browser.get(url).status_code == 403, url
        f = world.findings("a1", world.calls["call-a1-03"])[0]
        r = browser.post(f"/findings/{f['id']}/review", data={"verdict": "reject", "reason": "x", "csrf_token": csrf})
        assert r.status_code == 403
        other = world.findings("qa", world.calls["call-b1-02"])[0]
        r = browser.post(f"/findings/{other['id']}/appeal", data={"reason": "猜一个编号", "csrf_token": csrf})
        assert r.status_code == 404
        r = browser.post(f"/findings/{other['id']}/review", data={"verdict": "reject", "reason": "x", "csrf_token": csrf})
        assert r.status_code == 404
        for cid in (world.calls["call-b1-01"], 999999):
            r = browser.post(f"/calls/{cid}/rescore", data={"csrf_token": csrf})
            assert r.status_code == 404 and "会话不存在或无权查看" in r.text
        page = browser.get("/calls").text
        assert "call-b1" not in page and "call-a1-01" in page


def test_csrf(world: World) -> None:
    with TestClient(world.client.app) as browser:
        csrf = world.browser_login(browser, "qa1")
        f = world.findings("qa", world.new_call("A2", "refuse"))[0]
        # a form without (or with a wrong) token is refused
        r = browser.post(f"/findings/{f['id']}/review", data={"verdict": "confirm"})
        assert r.status_code == 403
        r = browser.post(f"/findings/{f['id']}/review", data={"verdict": "confirm", "csrf_token": "x" * 43})
        assert r.status_code == 403
        # the API with the session cookie needs the header
        assert browser.post(f"/api/findings/{f['id']}/review", json={"verdict": "confirm"}).status_code == 403
        r = browser.post(f"/api/findings/{f['id']}/review", json={"verdict": "confirm"},
                         headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        r = browser.post(f"/findings/{f['id']}/review", data={"verdict": "confirm", "csrf_token": csrf},
                         follow_redirects=False)
        assert r.status_code == 303
    with TestClient(world.client.app) as fresh:
        # the login form itself is protected (token in a cookie and in the form)
        r = fresh.post("/login", data={"username": "qa1", "password": PASSWORD, "csrf_token": "guess"})
        assert r.status_code == 400


def test_session_cookie_flags_and_headers(world: World) -> None:
    with TestClient(world.client.app) as browser:
        page = browser.get("/login")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = browser.post("/login", data={"username": "qa1", "password": PASSWORD, "csrf_token": token},
                         follow_redirects=False)
        cookie = r.headers["set-cookie"]
        assert "kefuqa_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert world.client.get("/api/health").headers["x-frame-options"] == "DENY"


def test_passwords_are_argon2_hashes(world: World) -> None:
    with world.wb.sessions() as db:
        hashes = list(db.scalars(select(User.password_hash)))
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert not any(PASSWORD in h for h in hashes)


def test_failed_logins_slow_the_client_down_without_locking_the_account(world: World) -> None:
    """No lockout (issue 9): failures from one client make that client wait (429 with Retry-After, the same
    for known and unknown names); the account's owner elsewhere logs in at once."""
    from fastapi.testclient import TestClient

    r = world.post("admin", "/api/users", json={"username": "victim", "role": "qa", "password": PASSWORD})
    assert r.status_code == 201
    attacker = TestClient(world.client.app, client=("203.0.113.50", 40000))
    for name in ("victim", "nobody-here"):
        for _ in range(5):
            r = attacker.post("/api/auth/login", json={"username": name, "password": "wrong-guess-1"})
            assert r.status_code == 401 and r.json()["detail"] == "用户名或密码错误"
        r = attacker.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 429 and "锁定" not in r.json()["detail"] and int(r.headers["retry-after"]) >= 1
    owner = TestClient(world.client.app, client=("198.51.100.50", 40000))
    assert owner.post("/api/auth/login", json={"username": "victim", "password": PASSWORD}).status_code == 200


def test_logout_disable_and_role_change_end_sessions(world: World) -> None:
    r = world.post("admin", "/api/users", json={"username": "temp-agent", "role": "agent", "agent_code": "A2",
                                                "password": PASSWORD})
    uid = r.json()["id"]
    token = world.login("temp-agent")
    h = {"Authorization": f"Bearer {token}"}
    assert world.client.get("/api/me", headers=h).status_code == 200
    assert world.client.post("/api/auth/logout", headers=h).status_code == 204
    assert world.client.get("/api/me", headers=h).status_code == 401
    token = world.login("temp-agent")
    h = {"Authorization": f"Bearer {token}"}
    world.client.patch(f"/api/users/{uid}", headers=world.h("admin"), json={"role": "qa"})
    assert world.client.get("/api/me", headers=h).status_code == 401
    token = world.login("temp-agent")
    world.client.patch(f"/api/users/{uid}", headers=world.h("admin"), json={"active": False})
    assert world.client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert world.client.post("/api/auth/login", json={"username": "temp-agent", "password": PASSWORD}).status_code == 401


def test_injection_attempts_are_just_strings(world: World) -> None:
    for q in ("' OR '1'='1", "%", "_", "\\", "call-a1-01'; DROP TABLE conversations; --"):
        r = world.get("a1", "/api/calls", params={"q": q})
        assert r.status_code == 200 and r.json()["total"] == 0, q
    assert world.get("a1", "/api/calls", params={"agent": "A1' OR 1=1 --"}).json()["total"] == 0
    assert world.get("qa", "/api/calls", params={"rule": "X' OR 1=1"}).status_code == 422
    assert world.get("qa", "/api/calls", params={"q": "call-a1-01"}).json()["total"] == 1


def test_rulebook_upload_cannot_read_server_files(world: World) -> None:
    for body in ("name: x\nextends: /etc/passwd\n", "name: x\nextends: ../../standard\n",
                 "name: x\nextends: standard\nrules: ['/etc/*.yaml']\n",
                 "name: x\nextends: standard\nscorecard: ../../../etc/scorecard.yaml\n",
                 "name: x\nscorecard: {name: s, extends: /tmp/x, dimensions: [{name: a, max: 1}]}\n"):
        r = world.post("admin", "/api/rulebooks", files={"file": ("evil.yaml", body.encode())})
        assert r.status_code == 422, body
        assert "root:" not in r.text
    r = world.post("admin", "/api/rulebooks", files={"file": ("x.yaml", b"name: [unclosed\n")})
    assert r.status_code == 422 and r.json()["errors"][0]["line"]
    r = world.post("admin", "/api/rulebooks", files={"file": ("x.yaml", "名称".encode("gbk"))})
    assert r.status_code == 422


def test_static_files_stay_in_their_folder(world: World) -> None:
    for url in ("/static/../app.py", "/static/..%2f..%2fapp.py", "/static/%2e%2e/models.py"):
        r = world.client.get(url)
        assert r.status_code in (400, 404), url
        assert "SQLAlchemy" not in r.text
    assert world.client.get("/static/app.css").status_code == 200


# ---- limits, on a workbench with small ones ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    folder = tmp_path_factory.mktemp("limits")
    settings = make_settings(f"sqlite:///{folder / 'k.db'}", folder, max_files=3, max_text_file_bytes=4000,
                             max_file_bytes=8000, max_request_bytes=60_000)
    wb = Workbench(settings)
    wb.setup()
    client = TestClient(create_app(settings, wb))
    token = client.post("/api/auth/login", json={"username": "admin", "password": "Admin-pass-1"}).json()["token"]
    yield client, {"Authorization": f"Bearer {token}"}, folder
    client.close()
    wb.engine.dispose()


def _json_file(name: str, call_id: str) -> tuple[str, tuple[str, bytes]]:
    import json

    return ("files", (name, json.dumps(samples.conversation(call_id, "A1", 3, "good"), ensure_ascii=False).encode()))


def test_upload_count_and_size_limits(small: tuple[TestClient, dict[str, str], Path]) -> None:
    client, h, _ = small
    files = [_json_file(f"c{i}.json", f"lim-{i}") for i in range(4)]
    r = client.post("/api/uploads", headers=h, files=files)
    assert r.status_code == 413 and "3" in r.json()["detail"]
    big = ("files", ("big.json", b"[" + b" " * 5000 + b"]"))
    r = client.post("/api/uploads", headers=h, files=[big, _json_file("ok.json", "lim-ok")])
    out = r.json()
    assert out["stored"] == 1 and out["errors"] == 1 and "MB" in out["results"][-1]["error"]
    r = client.post("/api/uploads", headers=h, files=[("files", ("huge.txt", b"x" * 70_000))])
    assert r.status_code == 413
    many = [samples.conversation(f"m-{i}", "A1", 3, "good") for i in range(3)]
    assert client.post("/api/conversations", headers=h, json=many).status_code == 200


def test_upload_content_checks(small: tuple[TestClient, dict[str, str], Path]) -> None:
    client, h, _ = small
    cases = {
        "binary.json": b"\x00\x01\x02\x03{}" * 10,
        "fake.wav": "坐席：您好".encode(),
        "tool.exe": b"MZ\x90\x00",
        "noext": b"hello",
        "empty.json": b"",
    }
    reasons = {}
    for n, b in cases.items():
        out = client.post("/api/uploads", headers=h, files=[("files", (n, b))]).json()
        assert out["stored"] == 0 and out["errors"] == 1, n
        reasons[out["results"][0]["source"]] = out["results"][0]["error"]
    assert "二进制" in reasons["binary.json"]
    assert "wav" in reasons["fake.wav"]
    assert "不支持" in reasons["tool.exe"]


def test_upload_names_cannot_traverse(small: tuple[TestClient, dict[str, str], Path]) -> None:
    client, h, folder = small
    name, (_, body) = _json_file("x", "trav-1")
    r = client.post("/api/uploads", headers=h, files=[("files", ("../../../../tmp/evil.json", body)),
                                                       ("files", ("..\\..\\win.json", body.replace(b"trav-1",
                                                                                                  b"trav-2")))])
    out = r.json()
    assert out["stored"] == 2
    assert {o["source"] for o in out["results"]} == {"evil.json", "win.json"}
    assert not Path("/tmp/evil.json").exists()
    assert not any(p.name == "evil.json" for p in folder.rglob("*"))
