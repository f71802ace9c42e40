"""The web pages through a cookie session (no browser): every role's pages, the forms, audio."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import PASSWORD, World


@pytest.fixture
def browser(sqlite_world: World) -> Iterator[TestClient]:
    with TestClient(sqlite_world.client.app) as client:
        yield client


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


@pytest.mark.parametrize("user, pages", [
    ("admin", ["/", "/calls", "/reviews", "/appeals", "/teams", "/agents", "/upload", "/rulebooks",
               "/rules/quality", "/admin/users", "/admin/audit", "/account"]),
    ("qa1", ["/", "/calls", "/reviews", "/appeals", "/teams", "/agents", "/upload", "/rulebooks"]),
    ("lead1", ["/calls", "/appeals", "/agents", "/agents/A1"]),
    ("wangfang", ["/calls", "/appeals", "/agents/A1", "/account"]),
])
def test_pages_render_for_each_role(sqlite_world: World, browser: TestClient, user: str, pages: list[str]) -> None:
    sqlite_world.browser_login(browser, user, "Admin-pass-1" if user == "admin" else PASSWORD)
    for url in pages:
        r = browser.get(url)
        assert r.status_code == 200, (url, r.text[:500])
        assert '<html lang="zh-CN">' in r.text and "/static/app.css" in r.text
        assert "http://" not in r.text.replace("http://www.w3.org/2000/svg", "")  # no CDN, no external asset


def test_home_goes_where_the_role_works(sqlite_world: World, browser: TestClient) -> None:
    sqlite_world.browser_login(browser, "wangfang")
    assert browser.get("/", follow_redirects=False).headers["location"] == "/agents/A1"
    with TestClient(sqlite_world.client.app) as leader:
        sqlite_world.browser_login(leader, "lead1")
        assert leader.get("/", follow_redirects=False).headers["location"].startswith("/teams/")
        team = leader.get("/", follow_redirects=True)
        assert "一组" in team.text and "得分分布" in team.text and "<svg" in team.text


def test_call_page_highlights_findings_with_suggestions(sqlite_world: World, browser: TestClient) -> None:
    sqlite_world.browser_login(browser, "qa1")
    page = browser.get(f"/calls/{sqlite_world.calls['call-a1-02']}").text
    assert re.search(r'<mark class="sev-[a-z]+" title="LNG001[^"]*">我怎么知道</mark>', page)
    assert "建议话术" in page and "得分构成" in page and "礼貌程度" in page
    assert "确认扣分" in page and "驳回" in page  # the inspector's review form
    assert 'class="timeline"' in page  # timed transcript: lanes without a player
    assert "<audio" not in page


def test_review_appeal_and_decision_through_forms(sqlite_world: World) -> None:
    w = sqlite_world
    cid = w.new_call("A1", "refuse", day=20)
    f = next(x for x in w.findings("qa", cid) if x["rule"] == "RSP002")
    g = next(x for x in w.findings("qa", cid) if x["rule"] == "LNG002")
    with TestClient(w.client.app) as agent, TestClient(w.client.app) as qa:
        csrf_a = w.browser_login(agent, "wangfang")
        page = agent.get(f"/calls/{cid}").text
        assert "申诉" in page and "确认扣分" not in page
        r = agent.post(f"/findings/{f['id']}/appeal", data={"reason": "已向客户解释原因并给出替代方案",
                                                             "csrf_token": csrf_a}, follow_redirects=False)
        assert r.status_code == 303 and "ok=appealed" in r.headers["location"]
        assert "待裁决" in agent.get("/appeals").text
        csrf_q = w.browser_login(qa, "qa1")
        assert "已向客户解释原因" in qa.get("/appeals").text
        appeal_id = w.get("qa", "/api/appeals", params={"status": "pending"}).json()
        appeal_id = next(a["id"] for a in appeal_id if a["finding_id"] == f["id"])
        r = qa.post(f"/appeals/{appeal_id}/decide", data={"decision": "accept", "reason": "理由成立",
                                                          "csrf_token": csrf_q}, follow_redirects=False)
        assert r.status_code == 303
        r = qa.post(f"/findings/{g['id']}/review", data={"verdict": "reject", "reason": "语境正常",
                                                         "csrf_token": csrf_q, "back": "queue"}, follow_redirects=False)
        assert r.headers["location"].startswith("/reviews")
        r = qa.post(f"/findings/{g['id']}/review", data={"verdict": "reject", "csrf_token": csrf_q})
        assert r.status_code == 422 and "理由" in r.text
        page = agent.get(f"/calls/{cid}").text
        assert "申诉成立" in page and "已驳回" in page
        # no second appeal: the form is gone and the API says so
        assert f'action="/findings/{f["id"]}/appeal"' not in page


def test_upload_page_and_rulebook_page(sqlite_world: World, browser: TestClient) -> None:
    csrf = sqlite_world.browser_login(browser, "admin", "Admin-pass-1")
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "readers" / "transcript.txt"
    r = browser.post("/upload", data={"csrf_token": csrf, "replace": "1"},
                     files=[("files", ("my call.txt", fixture.read_bytes()))])
    assert r.status_code == 200 and "导入结果" in r.text and "my_call" in r.text
    r = browser.post("/rulebooks", data={"csrf_token": csrf},
                     files={"file": ("bad.yaml", b"name: x\nextends: standard\ndisable: [NOPE]\n")})
    assert r.status_code == 422 and "校验未通过" in r.text and "NOPE" in r.text
    r = browser.post("/rulebooks", data={"csrf_token": csrf},
                     files={"file": ("ok.yaml", b"name: web-ok\nextends: standard\ndisable: [LNG003]\n")})
    assert r.status_code == 200 and "web-ok" in r.text and "启用此版本" in r.text


def test_admin_creates_users_in_the_browser(sqlite_world: World, browser: TestClient) -> None:
    csrf = sqlite_world.browser_login(browser, "admin", "Admin-pass-1")
    r = browser.post("/admin/users", data={"csrf_token": csrf, "username": "zhou", "role": "agent",
                                           "agent_code": "A9", "display_name": "周"})
    assert r.status_code == 200
    password = re.search(r'data-testid="new-password">([^<]+)<', r.text)
    assert password
    with TestClient(sqlite_world.client.app) as new:
        sqlite_world.browser_login(new, "zhou", password.group(1))
        assert new.get("/calls").status_code == 200
    r = browser.post("/admin/users", data={"csrf_token": csrf, "username": "x", "role": "leader"})
    assert r.status_code == 422 and "班组" in r.text


def test_change_password(sqlite_world: World) -> None:
    sqlite_world.post("admin", "/api/users", json={"username": "pw-user", "role": "qa", "password": PASSWORD})
    with TestClient(sqlite_world.client.app) as c:
        csrf = sqlite_world.browser_login(c, "pw-user")
        r = c.post("/account/password", data={"csrf_token": csrf, "old_password": PASSWORD,
                                              "new_password": "short", "confirm_password": "short"})
        assert r.status_code == 422
        r = c.post("/account/password", data={"csrf_token": csrf, "old_password": PASSWORD,
                                              "new_password": "New-passw0rd", "confirm_password": "New-passw0rd"},
                   follow_redirects=False)
        assert r.status_code == 303
        assert c.get("/calls", follow_redirects=False).status_code == 303  # logged out everywhere
    assert sqlite_world.client.post("/api/auth/login", json={"username": "pw-user",
                                                             "password": "New-passw0rd"}).status_code == 200


def test_csv_from_the_call_list(sqlite_world: World, browser: TestClient) -> None:
    sqlite_world.browser_login(browser, "lead2")
    page = browser.get("/calls").text
    link = re.search(r'href="(/export\.csv[^"]*)"', page)
    assert link
    body = browser.get(link.group(1).replace("&amp;", "&")).content.decode("utf-8-sig")
    assert "call-b1-01" in body and "call-a1" not in body


def test_audio_upload_timeline_and_player(sqlite_world: World, tmp_path: Path) -> None:
    synth = pytest.importorskip("audio_synth")
    if not synth.have_espeak():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no test speech")
    call = synth.Call(8.0, 8000)
    call.add("agent", 0.4, synth.speak("ni3 hao3, qing3 wen4 you3 shen2 me5 ke3 yi3 bang1 nin2",
                                       voice="cmn-latn-pinyin"))
    call.add("customer", call.truth[-1][2] + 0.6, synth.speak("wo3 de5 kuan1 dai4 huai4 le5",
                                                               voice="cmn-latn-pinyin", pitch=80))
    path = tmp_path / "rec-0001.wav"
    synth.write(str(path), call.render(bleed_db=-30), 8000)
    data = path.read_bytes()
    w = sqlite_world
    out = w.post("qa", "/api/uploads", files=[("files", ("../rec-0001.wav", data))]).json()
    assert out["stored"] == 1, out
    cid = out["results"][0]["id"]
    detail = w.get("qa", f"/api/calls/{cid}").json()
    assert detail["call_id"] == "rec-0001" and detail["has_audio"] is True
    assert detail["conversation"]["metrics"]["audio_path"].endswith(".wav")
    assert "/" not in detail["conversation"]["metrics"]["audio_path"]
    with TestClient(w.client.app) as qa:
        w.browser_login(qa, "qa1")
        page = qa.get(f"/calls/{cid}").text
        assert f'src="/calls/{cid}/audio"' in page and "kq-tl" in page and "/assets/timeline.js" in page
        r = qa.get(f"/calls/{cid}/audio")
        assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "audio/wav"
        assert qa.get("/assets/timeline.js").status_code == 200
    with TestClient(w.client.app) as other:
        w.browser_login(other, "zhaomin")
        assert other.get(f"/calls/{cid}/audio").status_code == 404
