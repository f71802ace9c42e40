"""Coaching on both databases: a leader coaches their team's calls, the agent sees only their own items and
acknowledges or disputes them through the appeal path; the effect on the rule's violations is shown."""

from __future__ import annotations

from conftest import World


def _finding(w: World, call: str) -> dict:  # type: ignore[type-arg]
    return next(f for f in w.findings("qa", w.calls[call]))


def test_leader_coaches_agent_acknowledges(world: World) -> None:
    call = world.calls["call-a1-03"]
    f = _finding(world, "call-a1-03")
    r = world.post("lead1", "/api/coaching", json={"call": call, "finding": f["id"],
                                                    "note": "办不了时先说明原因，再给替代方案"})
    assert r.status_code == 201, r.text
    item = r.json()["id"]
    assert r.json()["rule"] == f["rule"]
    # out of scope: another team's leader, another agent
    assert world.post("lead2", "/api/coaching", json={"call": call, "note": "看不到这通"}).status_code == 404
    assert item not in {i["id"] for i in world.get("a2", "/api/coaching").json()}
    assert world.post("a2", f"/api/coaching/{item}/acknowledge").status_code == 404
    mine = {i["id"]: i for i in world.get("a1", "/api/coaching").json()}
    assert mine[item]["note"] == "办不了时先说明原因，再给替代方案" and mine[item]["status"] == "open"
    # the effect: the rule's violations per 100 of A1's calls in the 30 days before the note
    a1_calls = [c for cid, c in world.calls.items() if cid.startswith("call-a1")]
    hits = sum(1 for c in a1_calls for x in world.findings("qa", c) if x["rule"] == f["rule"]
               and x["status"] not in ("rejected", "overturned"))
    effect = mine[item]["effect"]
    assert effect["calls_before"] >= len(a1_calls)
    assert effect["before"] == round(hits * 100 / effect["calls_before"], 1)
    assert world.post("lead1", f"/api/coaching/{item}/acknowledge").status_code == 403
    r = world.post("a1", f"/api/coaching/{item}/acknowledge")
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert world.post("a1", f"/api/coaching/{item}/acknowledge").status_code == 409
    assert world.get("a1", "/api/coaching", params={"status": "open"}).json() == [
        i for i in world.get("a1", "/api/coaching", params={"status": "open"}).json() if i["id"] != item]


def test_agent_disputes_through_the_appeal_path(world: World) -> None:
    call = world.new_call("A1", "refuse")
    f = world.findings("qa", call)[0]
    item = world.post("lead1", "/api/coaching", json={"call": call, "finding": f["id"], "note": "注意用语"}).json()["id"]
    bad = world.post("a1", f"/api/coaching/{item}/dispute", json={"reason": ""})
    assert bad.status_code == 422
    r = world.post("a1", f"/api/coaching/{item}/dispute", json={"reason": "客户要求的业务确实无法办理，我说明了原因"})
    assert r.status_code == 200 and r.json()["status"] == "disputed"
    after = next(x for x in world.findings("a1", call) if x["id"] == f["id"])
    assert after["appeal"] and after["appeal"]["status"] == "pending"
    whole = world.post("lead1", "/api/coaching", json={"call": call, "note": "整通会话语速偏快"}).json()["id"]
    r = world.post("a1", f"/api/coaching/{whole}/dispute", json={"reason": "不同意"})
    assert r.status_code == 422 and "没有对应的扣分项" in r.json()["detail"]


def test_pages_show_coaching_to_the_right_people(world: World) -> None:
    client = world.client
    client.cookies.clear()
    world.browser_login(client, "lead1")
    new = client.get(f"/coaching/new?call={world.calls['call-a1-04']}")
    assert new.status_code == 200 and 'data-testid="coaching-form"' in new.text
    assert client.get(f"/coaching/new?call={world.calls['call-b1-01']}").status_code == 404
    client.cookies.clear()
    world.browser_login(client, "wangfang")
    assert client.get(f"/coaching/new?call={world.calls['call-a1-04']}").status_code == 403
    page = client.get("/coaching")
    assert page.status_code == 200 and "我的辅导" in page.text
    world.post("lead1", "/api/coaching", json={"call": world.calls["call-a1-04"], "note": "结束语要完整"})
    me = client.get("/agents/A1")
    assert 'data-testid="coaching-panel"' in me.text and "结束语要完整" in me.text
    client.cookies.clear()
    world.browser_login(client, "lilei")
    assert "结束语要完整" not in client.get("/coaching").text
    client.cookies.clear()
