"""Calibration sessions on both databases: blind while open, agreement once closed, consensus adopted,
roles (agents and leaders never see calibration scores)."""

from __future__ import annotations

from conftest import World


def _machine(w: World, call: int) -> list[str]:
    return sorted({f["rule"] for f in w.findings("qa", call)})


def test_blind_scoring_then_agreement_and_consensus(world: World) -> None:
    qa2 = world.ensure_inspector()
    inspectors = [world.users["qa1"], qa2, 1]
    refs = ["call-a1-02", "call-a2-01", "call-b1-01"]
    r = world.post("qa", "/api/calibration", json={"name": "第一次校准", "calls": refs, "inspectors": inspectors})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    ids = [world.calls[c] for c in refs]
    machine = {c: _machine(world, c) for c in ids}
    extra = "CLS003"
    assert extra not in machine[ids[0]]
    for who in ("qa", "admin"):
        for c in ids:
            assert world.client.put(f"/api/calibration/{sid}/calls/{c}", headers=world.h(who),
                                    json={"rules": machine[c]}).status_code == 200
    # while open: progress only, nothing of anyone's marks
    body = world.get("qa2", f"/api/calibration/{sid}").json()
    assert "agreement" not in body and {p["done"] for p in body["progress"]} == {3, 0}
    for c in ids:
        rules = machine[c] + ([extra] if c == ids[0] else [])
        assert world.client.put(f"/api/calibration/{sid}/calls/{c}", headers=world.h("qa2"),
                                json={"rules": rules, "comment": "多判一条" if c == ids[0] else None}).status_code == 200
    world.client.cookies.clear()
    world.browser_login(world.client, "qa1")
    page = world.client.get(f"/calibration/{sid}")
    assert page.status_code == 200 and "盲评" in page.text and extra not in page.text
    world.client.cookies.clear()
    assert world.post("qa2", f"/api/calibration/{sid}/close").status_code == 403  # not the one who started it
    assert world.post("qa", f"/api/calibration/{sid}/close").status_code == 200
    late = world.client.put(f"/api/calibration/{sid}/calls/{ids[0]}", headers=world.h("qa"), json={"rules": []})
    assert late.status_code == 409
    agreement = world.get("qa", f"/api/calibration/{sid}").json()["agreement"]
    rules = sorted({x for c in ids for x in machine[c]} | {extra})
    assert agreement["calls"] == sorted(ids) and agreement["items"] == 3 * len(rules)
    assert agreement["machine"]["percent"] == 1.0 and agreement["machine"]["kappa"] == 1.0
    per = {x["inspector"]: x for x in agreement["inspectors"]}
    assert per[world.users["qa1"]]["percent_with_consensus"] == 1.0
    assert abs(per[qa2]["percent_with_consensus"] - (1 - 1 / agreement["items"])) < 1e-9
    assert agreement["spread"][0]["call"] == ids[0] and agreement["spread"][0]["votes"][extra] == 1
    by_rule = {x["rule"]: x for x in agreement["rules"]}
    assert by_rule[extra]["percent"] < 1.0 and by_rule[extra]["machine_percent"] == 1.0
    page = world.client
    world.browser_login(page, "qa1")
    html = page.get(f"/calibration/{sid}").text
    assert "Fleiss κ" in html and "分歧最大的会话" in html and "多判一条" not in html
    page.cookies.clear()
    # adopting the consensus confirms the machine's findings it shares
    adopted = world.post("qa", f"/api/calibration/{sid}/calls/{ids[0]}/adopt")
    assert adopted.status_code == 200, adopted.text
    statuses = {f["status"] for f in world.findings("qa", ids[0])}
    assert statuses <= {"confirmed", "overturned"} and "confirmed" in statuses


def test_only_members_score_and_other_roles_never_see_calibration(world: World) -> None:
    qa2 = world.ensure_inspector()
    r = world.post("qa", "/api/calibration", json={"name": "两人校准", "calls": ["call-a1-01"],
                                                   "inspectors": [world.users["qa1"], qa2]})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    c = world.calls["call-a1-01"]
    assert world.client.put(f"/api/calibration/{sid}/calls/{c}", headers=world.h("admin"),
                            json={"rules": []}).status_code == 403
    assert world.client.put(f"/api/calibration/{sid}/calls/{world.calls['call-a2-01']}", headers=world.h("qa"),
                            json={"rules": []}).status_code == 404
    bad = world.client.put(f"/api/calibration/{sid}/calls/{c}", headers=world.h("qa"), json={"rules": ["NOPE1"]})
    assert bad.status_code == 422 and "NOPE1" in bad.json()["detail"]
    for who in ("a1", "lead1"):
        assert world.get(who, f"/api/calibration/{sid}").status_code == 403
        assert world.post(who, "/api/calibration", json={"name": "x", "calls": ["call-a1-01"],
                                                         "inspectors": [1, 2]}).status_code == 403
    for username in ("wangfang", "lead1"):
        world.client.cookies.clear()
        world.browser_login(world.client, username)
        assert world.client.get(f"/calibration/{sid}").status_code == 403
        assert world.client.get("/calibration").status_code == 403
    world.client.cookies.clear()
    one = world.post("qa", "/api/calibration", json={"name": "一人", "calls": ["call-a1-01"], "inspectors": [1]})
    assert one.status_code == 422 and "两名" in one.json()["detail"]
    missing = world.post("qa", "/api/calibration", json={"name": "无", "calls": ["no-such-call"], "inspectors": [1, qa2]})
    assert missing.status_code == 422 and "no-such-call" in missing.json()["detail"]
