"""A call deleted after a calibration session was set up (data lifecycle, issue 13): the session lists it as
deleted (page and API), its progress counts only the calls that can still be scored, and the agreement is
that of the remaining calls; adopting a consensus for it is refused with a clear message."""

from __future__ import annotations

from conftest import World


def test_deleted_call_is_listed_and_left_out(world: World) -> None:
    keep, gone = world.new_call("A1", "fatal"), world.new_call("A1", "refuse")
    refs = [keep, gone]
    r = world.post("qa", "/api/calibration", json={"name": "删除后校准", "calls": [str(c) for c in refs],
                                                   "inspectors": [1, world.users["qa1"]]})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    for who in ("qa", "admin"):
        for c in refs:
            assert world.client.put(f"/api/calibration/{sid}/calls/{c}", headers=world.h(who),
                                    json={"rules": ["LNG001"]}).status_code == 200
    r = world.post("admin", f"/api/calls/{gone}/delete", json={"reason": "客户要求删除个人信息"})
    assert r.status_code == 200, r.text
    body = world.get("qa", f"/api/calibration/{sid}").json()
    assert {p["total"] for p in body["progress"]} == {1} and {p["done"] for p in body["progress"]} == {1}
    assert world.post("qa", f"/api/calibration/{sid}/close").status_code == 200
    body = world.get("qa", f"/api/calibration/{sid}").json()
    assert body["deleted_calls"] == [gone]
    assert body["agreement"]["calls"] == [keep]
    world.client.cookies.clear()
    world.browser_login(world.client, "qa1")
    page = world.client.get(f"/calibration/{sid}")
    world.client.cookies.clear()
    assert page.status_code == 200
    assert 'data-testid="deleted-calls"' in page.text and f"编号 {gone}" in page.text
    r = world.post("qa", f"/api/calibration/{sid}/calls/{gone}/adopt")
    assert r.status_code == 409 and "没有共识" in r.text
