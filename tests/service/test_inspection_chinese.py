"""Every inspection page's visible text is Chinese (issue 13: all UI text Chinese), as each role that may open
it, with data on it (a plan, an assignment, an open and a closed calibration, a coaching item, trends): words of
Latin letters are only rule ids, call ids, user names and the few technical names a QA lead reads as such."""

from __future__ import annotations

import html
import re

import svc_samples as samples

from conftest import ADMIN_PASSWORD, PASSWORD, World

# Latin words a page may show: technical names (κ statistics, file formats), the rulebook file's own keywords
# (a rule's intent/override/unless, the rulebook's name), channel values as the call data spells them, and the
# sample data's own words. A field name with an underscore (ring_seconds in a not-applicable reason) is also
# shown as the rulebook spells it.
ALLOWED = {"fleiss", "cohen", "csv", "json", "jsonl", "html", "kefuqa", "xx", "vip", "api", "id", "asr",
           "intent", "override", "unless", "standard", "phone", "chat", "email", "web", "onsite", "app"}
ROLES = {"admin": ("admin", ADMIN_PASSWORD), "qa": ("qa1", PASSWORD), "leader": ("lead1", PASSWORD),
         "agent": ("wangfang", PASSWORD)}
STAFF = {"admin", "qa"}


def visible_text(page: str) -> str:
    page = re.sub(r"(?is)<(script|style|svg)\b.*?</\1>", " ", page)
    page = re.sub(r"(?s)<!--.*?-->", " ", page)
    shown = [m for m in re.findall(r'(?i)\b(?:placeholder|title|aria-label|alt)="([^"]*)"', page)]
    shown += [v for v in re.findall(r'(?i)<input[^>]*\btype="(?:submit|button)"[^>]*\bvalue="([^"]*)"', page)]
    text = re.sub(r"<[^>]+>", " ", page)
    return html.unescape(text + " " + " ".join(shown))


def english(text: str, names: set[str]) -> list[str]:
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9_.@/-]*", text)
    out = []
    for w in words:
        low = w.lower()
        if not re.search("[A-Za-z]", w) or re.search("[0-9]", w):  # numbers, ids (call-a1-01, LNG001, A1)
            continue
        if low in ALLOWED or low in names or len(w) == 1 or "_" in w:
            continue
        if re.fullmatch(r"[A-Z]{2,4}", w):  # rule-id prefixes, grades, team codes (LNG, RSP, A1 …)
            continue
        out.append(w)
    return out


def _setup(w: World) -> dict[str, object]:
    r = w.post("qa", "/api/plans", json={"name": "中文检查", "week": samples.on_day(4).isoformat(), "per_agent": 1,
                                         "inspectors": [w.users["qa1"]], "seed": 3})
    assert r.status_code == 201, r.text
    plan = r.json()
    call = w.calls["call-a1-03"]
    sessions = []
    for name in ("进行中的校准", "已结束的校准"):
        r = w.post("qa", "/api/calibration", json={"name": name, "calls": ["call-a1-03", "call-a1-02"],
                                                   "inspectors": [w.users["qa1"], 1]})
        assert r.status_code == 201, r.text
        sessions.append(r.json()["id"])
    for who in ("qa", "admin"):
        for c in (call, w.calls["call-a1-02"]):
            assert w.client.put(f"/api/calibration/{sessions[1]}/calls/{c}", headers=w.h(who),
                                json={"rules": ["RSP002"] if who == "qa" else ["LNG001"],
                                      "comment": "看法不同"}).status_code == 200
    assert w.post("qa", f"/api/calibration/{sessions[1]}/close").status_code == 200
    finding = w.findings("qa", call)[0]
    assert w.post("lead1", "/api/coaching", json={"call": call, "finding": finding["id"],
                                                  "note": "先说明原因"}).status_code == 201
    return {"plan": plan["id"], "assignment": plan["assignments"][0]["id"], "open": sessions[0],
            "closed": sessions[1], "call": call}


def test_every_inspection_page_speaks_chinese(sqlite_world: World) -> None:
    w = sqlite_world
    f = _setup(w)
    pages = [
        ("/", STAFF), ("/search", STAFF | {"leader", "agent"}), ("/search?q=办不了 可能吧", STAFF | {"leader", "agent"}),
        ("/search?q=一 二 三 四 五 六", STAFF), ("/plans", STAFF), (f"/plans/{f['plan']}", STAFF),
        ("/queue", STAFF), (f"/queue/{f['assignment']}", STAFF), ("/calibration", STAFF),
        (f"/calibration/{f['open']}", STAFF), (f"/calibration/{f['open']}/calls/{f['call']}", STAFF),
        (f"/calibration/{f['closed']}", STAFF), ("/coaching", STAFF | {"leader", "agent"}),
        (f"/coaching/new?call={f['call']}", STAFF | {"leader"}), ("/trends?weeks=4", STAFF | {"leader"}),
        (f"/trends/weekly?week={samples.on_day(4).isoformat()}", STAFF | {"leader"}),
        ("/rules/quality", {"admin"}), ("/agents/A1", STAFF | {"leader", "agent"}),
        (f"/calls/{f['call']}", STAFF | {"leader", "agent"}),
    ]
    names = {u.lower() for u in w.users} | {"admin"}
    client = w.client
    seen = 0
    problems = []
    for role, (username, password) in ROLES.items():
        client.cookies.clear()
        w.browser_login(client, username, password)
        for path, allowed in pages:
            r = client.get(path)
            if role not in allowed:
                assert r.status_code in (200, 403, 404), (role, path, r.status_code)
            else:
                assert r.status_code == 200, (role, path, r.status_code)
                seen += 1
            bad = english(visible_text(r.text), names)
            if bad:
                problems.append((role, path, sorted(set(bad))))
    client.cookies.clear()
    assert seen >= 50
    assert not problems, problems


def test_the_checker_finds_english() -> None:
    assert english(visible_text("<p>Loading <b>results</b> 结果 LNG001 <script>var x='Hidden'</script></p>"), set()) \
        == ["Loading", "results"]
    assert english(visible_text('<input placeholder="Search calls">'), set()) == ["Search", "calls"]
