"""The HTTP API on SQLite and PostgreSQL: upload, reports, lists and filters, review, appeal, rulebooks,
CSV export, statistics."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import svc_samples as samples

from conftest import World
from kefuqa import readers
from kefuqa.errors import InputError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "readers"


def test_openapi_documents_every_endpoint(world: World) -> None:
    spec = world.client.get("/api/openapi.json").json()
    paths = spec["paths"]
    for p in ["/api/auth/login", "/api/uploads", "/api/conversations", "/api/calls", "/api/calls.csv",
              "/api/calls/{ref}", "/api/calls/{ref}/report", "/api/calls/{ref}/rescore",
              "/api/findings/{finding_id}/review", "/api/findings/{finding_id}/appeal", "/api/appeals",
              "/api/appeals/{appeal_id}/decision", "/api/rulebooks", "/api/rulebooks/{rulebook_id}/activate",
              "/api/rules/quality", "/api/agents/{code}", "/api/teams/{team_id}", "/api/users", "/api/audit"]:
        assert p in paths, p
    assert all(op.get("summary") for ops in paths.values() for op in ops.values())
    assert world.client.get("/api/docs").status_code == 200


def test_report_is_the_findings_format_with_rulebook_version(world: World) -> None:
    cid = world.calls["call-a1-02"]
    r = world.get("qa", f"/api/calls/{cid}/report")
    assert r.status_code == 200
    rep = r.json()
    assert rep["call_id"] == "call-a1-02"
    assert rep["rulebook"]["name"] == "standard" and rep["rulebook"]["version"]
    assert rep["fatal"] is True and rep["score"] == 0
    assert {"score", "grade", "dimensions", "findings", "events", "not_applicable"} <= set(rep)
    lng = [f for f in rep["findings"] if f["rule"] == "LNG001"]
    assert lng and lng[0]["evidence"] == "我怎么知道" and lng[0]["suggestion"]
    # the same by the call's own id
    assert world.get("qa", "/api/calls/call-a1-02/report").json()["call_id"] == "call-a1-02"


def test_call_detail_has_transcript_findings_and_history(world: World) -> None:
    d = world.get("qa", f"/api/calls/{world.calls['call-a1-03']}").json()
    assert d["agent"] == {"code": "A1", "name": "王芳"} and d["team"]["name"] == "一组"
    assert len(d["conversation"]["utterances"]) == d["utterances"]
    rules = {f["rule"] for f in d["findings"]}
    assert {"RSP002", "LNG006"} <= rules
    f = next(f for f in d["findings"] if f["rule"] == "RSP002")
    text = d["conversation"]["utterances"][f["utterance"]]["text"]
    assert text[f["span"][0]:f["span"][1]] == f["evidence"]
    assert all(f["status"] == "open" for f in d["findings"])
    assert len(d["history"]) == 1 and d["history"][0]["rulebook"]["name"] == "standard"
    assert "source" not in d["conversation"]  # no server paths


def test_list_and_filter_calls(world: World) -> None:
    def ids(**params: object) -> set[str]:
        r = world.get("qa", "/api/calls", params={**params, "page_size": 200})
        assert r.status_code == 200, r.text
        return {c["call_id"] for c in r.json()["items"] if c["call_id"].startswith("call-")}

    everything = {p[0] for p in samples.PLAN}
    assert ids() == everything
    assert ids(agent="B1") == {"call-b1-01", "call-b1-02", "call-b1-03"}
    team2 = world.get("admin", "/api/teams").json()
    team2_id = next(t["id"] for t in team2 if t["name"] == "二组")
    assert ids(team=team2_id) == {"call-b1-01", "call-b1-02", "call-b1-03"}
    assert ids(date_from=samples.on_day(6).isoformat(), date_to=samples.on_day(7).isoformat()) == {
        "call-a1-05", "call-a2-03", "call-b1-03"}
    assert ids(date_to=samples.on_day(2).isoformat()) == {"call-a1-01", "call-a2-01"}
    assert ids(score_max=50) == {"call-a1-02", "call-b1-03"}
    assert ids(score_min=95) == {"call-a1-01", "call-a1-05", "call-a2-03", "call-b1-01"}
    assert ids(rule="RSP002") == {"call-a1-03", "call-a2-01", "call-b1-02"}
    assert ids(rule="CMP") == {"call-a2-02"}
    assert ids(grade="不合格") == {"call-a1-02", "call-b1-03"}
    assert ids(fatal="true") == {"call-a1-02", "call-b1-03"}
    assert ids(q="a2-0") == {"call-a2-01", "call-a2-02", "call-a2-03"}
    page = world.get("qa", "/api/calls", params={"page_size": 2, "sort": "score", "q": "call-"}).json()
    assert page["total"] == len(everything) and len(page["items"]) == 2
    assert page["items"][0]["score"] <= page["items"][1]["score"]
    assert world.get("qa", "/api/calls", params={"page_size": 100000}).status_code == 422
    assert world.get("qa", "/api/calls", params={"sort": "password_hash"}).status_code == 422


def test_upload_files_of_every_text_format(world: World) -> None:
    names = ["native_call.json", "native_batch.json", "calls.jsonl", "calls_utf8_bom.csv", "calls_gbk.csv",
             "calls_ms.tsv", "transcript.txt", "transcript_tw.txt", "aliyun_filetrans.json", "funasr.json",
             "aws_call_analytics.json"]
    files = [("files", (n, (FIXTURES / n).read_bytes())) for n in names]
    r = world.post("qa", "/api/uploads", files=files)
    assert r.status_code == 200, r.text
    out = r.json()
    # what the readers make of the fixtures (some records in them are broken on purpose)
    read = [x for n in names for x in readers.read_bytes((FIXTURES / n).read_bytes(), n)]
    broken = [x for x in read if isinstance(x, InputError)]
    assert out["errors"] == len(broken), out
    assert out["stored"] + out["unchanged"] == len(read) - len(broken)
    errors = [o for o in out["results"] if o["status"] == "error"]
    assert {e["source"] for e in errors} == {b.source for b in broken}
    assert all(e["error"] for e in errors)
    sources = {o.get("source") for o in out["results"]}
    assert set(names) <= sources
    stored = [o for o in out["results"] if o["status"] == "stored"]
    assert all(o["id"] and o["score"] is not None for o in stored)
    # the same files again: nothing new
    again = world.post("qa", "/api/uploads", files=files).json()
    assert again["stored"] == 0 and again["unchanged"] == out["stored"] + out["unchanged"]
    assert again["errors"] == len(broken)


def test_reupload_conflict_and_replace_keeps_history(world: World) -> None:
    call = samples.conversation("call-replace-1", "A2", 9, "refuse")
    first = world.post("qa", "/api/conversations", json=call).json()
    cid = first["results"][0]["id"]
    changed = samples.conversation("call-replace-1", "A2", 9, "good")
    conflict = world.post("qa", "/api/conversations", json=changed).json()
    assert conflict["conflicts"] == 1 and conflict["results"][0]["status"] == "conflict"
    replaced = world.post("qa", "/api/conversations", params={"replace": "true"}, json=changed).json()
    assert replaced["results"][0]["status"] == "replaced" and replaced["results"][0]["id"] == cid
    d = world.get("qa", f"/api/calls/{cid}").json()
    assert d["score"] == 100 and len(d["history"]) == 2
    assert [h["reason"] for h in d["history"]] == ["replace", "ingest"]
    old = world.get("qa", f"/api/calls/{cid}/report", params={"score_id": d["history"][1]["id"]}).json()
    assert old["score"] == 90


def test_bad_records_are_reported_not_fatal(world: World) -> None:
    good = samples.conversation("call-ok-batch", "A1", 9, "good")
    r = world.post("qa", "/api/conversations", json=[good, {"id": "x", "utterances": []}, {"utterances": 3}])
    out = r.json()
    assert r.status_code == 200 and out["stored"] == 1 and out["errors"] == 2
    bad_file = world.post("qa", "/api/uploads", files=[("files", ("broken.json", b'{"id": "z", "utterances": [}'))])
    assert bad_file.json()["errors"] == 1 and bad_file.json()["stored"] == 0


def test_review_confirm_reject_and_score_follows(world: World) -> None:
    cid = world.new_call("A1", "fatal")
    findings = world.findings("qa", cid)
    assert world.get("qa", f"/api/calls/{cid}").json()["score"] == 0
    lng = [f for f in findings if f["rule"] == "LNG001"]
    # rejecting needs a reason
    assert world.post("qa", f"/api/findings/{lng[0]['id']}/review", json={"verdict": "reject"}).status_code == 422
    for f in lng:
        r = world.post("qa", f"/api/findings/{f['id']}/review", json={"verdict": "reject", "reason": "客户先说的"})
        assert r.status_code == 200 and r.json()["status"] == "rejected"
    d = world.get("qa", f"/api/calls/{cid}").json()
    assert d["fatal"] is False and d["score"] == 90 and d["grade"] == "优秀"
    rsp = next(f for f in findings if f["rule"] == "RSP001")
    r = world.post("qa", f"/api/findings/{rsp['id']}/review", json={"verdict": "confirm"})
    assert r.json()["status"] == "confirmed"
    assert world.get("qa", f"/api/calls/{cid}").json()["score"] == 90
    # the engine's report stays as it was; the effective score is alongside
    rep = world.get("qa", f"/api/calls/{cid}/report").json()
    assert rep["score"] == 0 and rep["final_score"] == 90
    queue = world.get("qa", "/api/reviews/queue", params={"limit": 500}).json()
    assert all(item["id"] not in {f["id"] for f in findings} for item in queue["items"])


def test_appeal_and_decision_are_final(world: World) -> None:
    cid = world.new_call("A1", "refuse")
    f = next(f for f in world.findings("a1", cid) if f["rule"] == "RSP002")
    r = world.post("a1", f"/api/findings/{f['id']}/appeal", json={"reason": "客户要求的服务确实无法办理，已解释原因"})
    assert r.status_code == 201, r.text
    appeal = r.json()
    assert appeal["status"] == "pending"
    again = world.post("a1", f"/api/findings/{f['id']}/appeal", json={"reason": "再申诉一次"})
    assert again.status_code == 409
    mine = world.get("a1", "/api/appeals").json()
    assert appeal["id"] in {a["id"] for a in mine}
    before = world.get("qa", f"/api/calls/{cid}").json()["score"]
    r = world.post("qa", f"/api/appeals/{appeal['id']}/decision", json={"decision": "accept"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    after = world.get("qa", f"/api/calls/{cid}").json()
    assert after["score"] == before + 5
    assert next(x for x in after["findings"] if x["id"] == f["id"])["status"] == "overturned"
    # final: no second decision, no further review, no second appeal
    assert world.post("qa", f"/api/appeals/{appeal['id']}/decision",
                      json={"decision": "reject", "reason": "改判"}).status_code == 409
    assert world.post("qa", f"/api/findings/{f['id']}/review", json={"verdict": "confirm"}).status_code == 409
    assert world.post("a1", f"/api/findings/{f['id']}/appeal", json={"reason": "第三次"}).status_code == 409


def test_rejected_appeal_confirms_the_finding(world: World) -> None:
    cid = world.new_call("A2", "refuse")
    f = next(f for f in world.findings("a2", cid) if f["rule"] == "LNG006")
    appeal = world.post("a2", f"/api/findings/{f['id']}/appeal", json={"reason": "只是说明可能的时间"}).json()
    assert world.post("qa", f"/api/appeals/{appeal['id']}/decision", json={"decision": "reject"}).status_code == 422
    r = world.post("qa", f"/api/appeals/{appeal['id']}/decision",
                   json={"decision": "reject", "reason": "应给出明确时限"})
    assert r.json()["status"] == "rejected"
    assert next(x for x in world.findings("qa", cid) if x["id"] == f["id"])["status"] == "confirmed"


def test_rescore_adds_a_version_and_carries_verdicts(world: World) -> None:
    cid = world.new_call("B1", "refuse", day=10)
    f = next(f for f in world.findings("qa", cid) if f["rule"] == "LNG006")
    world.post("qa", f"/api/findings/{f['id']}/review", json={"verdict": "reject", "reason": "误报"})
    r = world.post("qa", f"/api/calls/{cid}/rescore")
    assert r.status_code == 200
    d = world.get("qa", f"/api/calls/{cid}").json()
    assert len(d["history"]) == 2 and d["history"][0]["reason"] == "rescore"
    carried = [x for x in d["findings"] if x["rule"] == "LNG006" and x["evidence"] == f["evidence"]]
    assert carried and carried[0]["status"] == "rejected" and carried[0]["id"] != f["id"]
    assert d["score"] == d["history"][0]["final_score"]


def test_replacing_a_call_carries_verdicts_and_closes_appeals_whose_finding_is_gone(world: World) -> None:
    """The call is uploaded again with the refusal corrected: the appeal against the refusal has nothing left
    to decide (closed as moot, audited, no decision possible); the appeal against the unchanged uncertain wording moves to
    the new finding and is decided as usual."""
    cid = world.new_call("A1", "refuse")
    call_id = world.get("qa", f"/api/calls/{cid}").json()["call_id"]
    found = {f["rule"]: f for f in world.findings("a1", cid)}
    refusal = world.post("a1", f"/api/findings/{found['RSP002']['id']}/appeal", json={"reason": "确实无法办理"}).json()
    hedge = world.post("a1", f"/api/findings/{found['LNG002']['id']}/appeal", json={"reason": "只是估计时间"}).json()
    call = samples.conversation(call_id, "A1", 8, "refuse")
    assert call["utterances"][4]["text"] == "这个办不了。"
    call["utterances"][4]["text"] = "好的，我马上帮您安排今天上门。"
    r = world.post("qa", "/api/conversations", params={"replace": "true"}, json=call)
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "replaced", r.text
    after = world.findings("qa", cid)
    assert "RSP002" not in {f["rule"] for f in after}
    mine = {a["id"]: a for a in world.get("a1", "/api/appeals").json()}
    assert mine[refusal["id"]]["status"] == "moot" and "已不存在" in mine[refusal["id"]]["decision_reason"]
    assert world.post("qa", f"/api/appeals/{refusal['id']}/decision", json={"decision": "accept"}).status_code == 409
    new_hedge = next(f for f in after if f["rule"] == "LNG002")
    assert new_hedge["id"] != found["LNG002"]["id"] and mine[hedge["id"]]["status"] == "pending"
    assert mine[hedge["id"]]["finding_id"] == new_hedge["id"]
    r = world.post("qa", f"/api/appeals/{hedge['id']}/decision", json={"decision": "accept"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert next(f for f in world.findings("qa", cid) if f["rule"] == "LNG002")["status"] == "overturned"
    audit = world.get("admin", "/api/audit", params={"action": "appeal.moot"}).json()
    assert any(e["object_id"] == str(refusal["id"]) for e in audit)


LINT_BAD = """name: bad
extends: standard
override:
  LNG999: {points: 3}
"""

CUSTOM = """name: company
version: "2"
extends: standard
disable: [LNG006]
rules:
  - id: X01
    name: 未报工号
    kind: phrase
    role: agent
    severity: minor
    points: 2
    dimension: 礼貌程度
    message: 使用了不规范说法
    phrases: [亲]
"""


def test_rulebook_upload_lint_activate(world: World) -> None:
    bad = world.post("admin", "/api/rulebooks", files={"file": ("bad.yaml", LINT_BAD.encode())})
    assert bad.status_code == 422
    err = bad.json()["errors"][0]
    assert err["file"] == "bad.yaml" and "LNG999" in (err["key"] or "") + err["reason"]
    assert world.post("qa", "/api/rulebooks", files={"file": ("c.yaml", CUSTOM.encode())}).status_code == 403
    r = world.post("admin", "/api/rulebooks", files={"file": ("company.yaml", CUSTOM.encode())})
    if r.status_code != 200:
        raise AssertionError(r.text)
    rb = r.json()
    assert rb["status"] == "draft" and rb["name"] == "company" and rb["version"].startswith("2+")
    full = world.get("qa", f"/api/rulebooks/{rb['id']}").json()
    assert full["content"] == CUSTOM and any(x["id"] == "X01" for x in full["rule_list"])
    try:
        assert world.post("admin", f"/api/rulebooks/{rb['id']}/activate").json()["status"] == "active"
        call = samples.conversation("call-custom-rb", "A1", 11, "refuse")
        call["utterances"][2]["text"] = "亲，" + call["utterances"][2]["text"]
        out = world.post("qa", "/api/conversations", json=call).json()
        assert out["rulebook"].startswith("company 2+")
        rep = world.get("qa", f"/api/calls/{out['results'][0]['id']}/report").json()
        rules = {f["rule"] for f in rep["findings"]}
        assert "X01" in rules and "LNG006" not in rules
        assert rep["rulebook"]["name"] == "company"
        # the old calls keep the version that scored them
        old = world.get("qa", f"/api/calls/{world.calls['call-a1-03']}/report").json()
        assert old["rulebook"]["name"] == "standard"
    finally:
        standard = next(x for x in world.get("admin", "/api/rulebooks").json() if x["name"] == "standard")
        assert world.post("admin", f"/api/rulebooks/{standard['id']}/activate").status_code == 200
    listed = world.get("admin", "/api/rulebooks").json()
    assert [x["status"] for x in listed].count("active") == 1


def test_csv_export(world: World) -> None:
    r = world.get("qa", "/api/calls.csv", params={"agent": "A2", "q": "call-a2"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][0] == "会话编号"
    assert {row[0] for row in rows[1:]} == {"call-a2-01", "call-a2-02", "call-a2-03"}
    complaint = next(row for row in rows if row[0] == "call-a2-02")
    assert "CMP001" in complaint[10]


def test_csv_cells_cannot_be_formulas(world: World) -> None:
    call = samples.conversation("=HYPERLINK(\"http://x\")", "A1", 12, "good")
    world.post("qa", "/api/conversations", json=call)
    body = world.get("qa", "/api/calls.csv", params={"q": "HYPERLINK"}).content.decode("utf-8-sig")
    assert "'=HYPERLINK" in body


def test_agent_and_team_statistics(world: World) -> None:
    a = world.get("lead1", "/api/agents/A1").json()
    assert a["agent"]["code"] == "A1" and a["calls"] >= 5
    assert a["top_rules"] and {"rule", "name", "count"} <= set(a["top_rules"][0])
    assert a["trend"] and all({"date", "average", "calls"} <= set(p) for p in a["trend"])
    practice = a["practice"]
    assert any(p["suggestion"] for items in practice.values() for p in items)
    teams = {t["name"]: t["id"] for t in world.get("qa", "/api/teams").json()}
    t = world.get("qa", f"/api/teams/{teams['二组']}").json()
    assert t["calls"] >= 3 and sum(t["distribution"].values()) == t["calls"]
    assert [x["code"] for x in t["agents"]] == ["B1"]
    assert t["top_rules"][0]["count"] >= 1


def test_rule_quality_measures_precision_from_reviews(world: World) -> None:
    cid1 = world.new_call("A2", "refuse", day=13)
    cid2 = world.new_call("A2", "refuse", day=13)
    for cid, verdict in ((cid1, "confirm"), (cid2, "reject")):
        f = next(f for f in world.findings("qa", cid) if f["rule"] == "RSP002")
        world.post("qa", f"/api/findings/{f['id']}/review", json={"verdict": verdict, "reason": "抽检"})
    q = {r["rule"]: r for r in world.get("admin", "/api/rules/quality").json()}
    rsp = q["RSP002"]
    assert rsp["confirmed"] >= 1 and rsp["rejected"] >= 1
    assert rsp["precision"] == round(rsp["confirmed"] / rsp["reviewed"], 3)
    assert world.get("qa", "/api/rules/quality").status_code == 403


def test_users_and_audit_log(world: World) -> None:
    r = world.post("admin", "/api/users", json={"username": "newqa", "role": "qa"})
    assert r.status_code == 201 and len(r.json()["password"]) >= 12
    assert world.post("admin", "/api/users", json={"username": "newqa", "role": "qa"}).status_code == 409
    assert world.post("admin", "/api/users", json={"username": "x1", "role": "agent"}).status_code == 422
    assert world.post("admin", "/api/users", json={"username": "bad name!", "role": "qa"}).status_code == 422
    uid = r.json()["id"]
    r = world.client.patch(f"/api/users/{uid}", headers=world.h("admin"), json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    log = world.get("admin", "/api/audit", params={"limit": 1000}).json()
    actions = {e["action"] for e in log}
    assert {"user.create", "user.update", "auth.login", "conversation.ingest"} <= actions
    assert any(e["action"] == "finding.reject" and e["user"] == "qa1" for e in log)
    assert world.get("qa", "/api/audit").status_code == 403


def test_health_and_me(world: World) -> None:
    assert world.client.get("/api/health").json()["ok"] is True
    me = world.get("a1", "/api/me").json()
    assert me["role"] == "agent" and me["agent"]["code"] == "A1"
    assert "password" not in json.dumps(me)


def test_request_validation_errors_are_chinese(world: World) -> None:
    # a value of the wrong type, one out of range, an unknown choice: the place and type stay, the words are Chinese
    for params, words in (({"page_size": "many"}, "应为整数"), ({"page_size": 100000}, "应不大于"),
                          ({"page": 0}, "应不小于")):
        r = world.get("qa", "/api/calls", params=params)
        assert r.status_code == 422, r.text
        err = r.json()["detail"][0]
        assert err["loc"][-1] in params and words in err["msg"], err
    # a body that is not JSON at all
    r = world.client.post("/api/users", content=b"{not json", headers={**world.h("admin"),
                                                                       "content-type": "application/json"})
    assert r.status_code == 422 and "不是有效的 JSON" in r.json()["detail"][0]["msg"], r.text
