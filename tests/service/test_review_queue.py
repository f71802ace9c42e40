"""The review queue (issue 9, item 13): a verdict brings the queue back with its filter, each finding shows
its place in the transcript, and checked findings get one verdict together (page and API)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from conftest import World


def _queue(w: World, rule: str) -> list[dict]:
    r = w.get("qa", f"/api/reviews/queue?rule={rule}&limit=500")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_a_verdict_keeps_the_queue_filter_and_the_queue_shows_context(world: World) -> None:
    w = world
    for _ in range(2):
        w.new_call("A1", "refuse")
    with TestClient(w.client.app) as qa:
        csrf = w.browser_login(qa, "qa1")
        page = qa.get("/reviews?rule=RSP").text
        first = re.search(r'action="/findings/(\d+)/review"', page)
        assert first, page
        assert '<ol class="context"' in page and "这个办不了。" in page  # the finding's own utterance
        assert '<li class="at"><span class="who">坐席</span>这个办不了。</li>' in page
        r = qa.post(f"/findings/{first.group(1)}/review", data={"csrf_token": csrf, "verdict": "confirm",
                                                              "back": "queue", "rule": "RSP", "team": ""},
                    follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/reviews?rule=RSP&ok=reviewed"), r.headers["location"]


def test_bulk_verdicts_on_the_page_and_by_api(world: World) -> None:
    w = world
    calls = [w.new_call("A2", "refuse") for _ in range(2)]
    mine = [f for c in calls for f in w.findings("qa", c) if f["rule"].startswith("LNG") and f["status"] == "open"]
    assert len(mine) >= 2
    with TestClient(w.client.app) as qa:
        csrf = w.browser_login(qa, "qa1")
        r = qa.post("/reviews/bulk", data={"csrf_token": csrf, "ids": [str(mine[0]["id"]), str(mine[1]["id"])],
                                           "verdict": "reject", "reason": "客户原话被误判", "rule": "LNG"},
                    follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/reviews?rule=LNG&ok=reviewed")
    after = {f["id"]: f["status"] for c in calls for f in w.findings("qa", c)}
    assert after[mine[0]["id"]] == after[mine[1]["id"]] == "rejected"
    rest = [f["id"] for f in mine[2:]] or [mine[0]["id"]]
    r = w.post("qa", "/api/reviews/bulk", json={"ids": rest + [mine[0]["id"]], "verdict": "confirm"})
    assert r.status_code == 200, r.text
    assert mine[0]["id"] in r.json()["saved"] or mine[0]["id"] in [x["id"] for x in r.json()["refused"]]
    assert w.post("qa", "/api/reviews/bulk", json={"ids": rest, "verdict": "reject"}).status_code == 422
    assert w.post("a1", "/api/reviews/bulk", json={"ids": rest, "verdict": "confirm"}).status_code == 403


def test_audit_entries_and_rule_kinds_are_shown_in_chinese(world: World) -> None:
    from kefuqa.labels import KIND_LABELS

    with TestClient(world.client.app) as admin:
        from conftest import ADMIN_PASSWORD

        world.browser_login(admin, "admin", ADMIN_PASSWORD)
        audit = admin.get("/admin/audit").text
        assert "登录" in audit and ">auth.login<" not in audit and "<code>auth.login</code>" not in audit
        rb = world.get("admin", "/api/rulebooks").json()[0]["id"]
        page = admin.get(f"/rulebooks/{rb}").text
        assert KIND_LABELS["phrase"] in page and "<td>phrase</td>" not in page
