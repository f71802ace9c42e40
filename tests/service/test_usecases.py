"""The use-case layer: one scoring path (the core's `rescore`) behind reviews and appeals, domain errors
turned into HTTP answers and pages by the adapters, use cases that work without FastAPI, and uploaded
rulebooks loaded from their text."""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import svc_samples as samples
from fastapi.testclient import TestClient

import kefuqa
from conftest import ADMIN_PASSWORD, PASSWORD, World, make_settings
from kefuqa.errors import RuleError
from kefuqa.scoring import rescore
from kefuqa.service import rulebooks as store
from kefuqa.service.deps import http_status
from kefuqa.service.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    RulebookProblem,
    TooLarge,
    Unauthorized,
)
from kefuqa.service.models import RulebookVersion, User
from kefuqa.service.usecases import Ctx, calls, reviews, users
from kefuqa.service.workbench import Workbench

SERVICE = Path(kefuqa.__file__).resolve().parent / "service"


# ---- one scoring path ------------------------------------------------------------------------------------------


def each_and_fatal_call(call_id: str) -> dict[str, Any]:
    """A call with two 服务禁语 (LNG001, 红线) and four 禁用词 (LNG002: 2 points each, at most 6)."""
    call = samples.conversation(call_id, "A1", 14, "fatal")
    utts = call["utterances"]
    for role, text in [("agent", "这个我不知道。"), ("customer", "那怎么办？"), ("agent", "不可能今天修好。"),
                       ("customer", "啊？"), ("agent", "好像是线路问题吧。"), ("customer", "嗯。"),
                       ("agent", "喂，您还在吗？")]:
        utts.insert(len(utts) - 3, {"role": role, "text": text})
    for i, u in enumerate(utts):
        u["start"], u["end"] = i * 3.0, i * 3.0 + 2.5
    return call


def test_the_services_score_after_voiding_is_the_cores_rescore(world: World) -> None:
    """Reviews and appeals re-score with `kefuqa.scoring.rescore` and the rulebook that scored the call: the
    stored effective score equals the core's at every step — a voided 红线 rule, an `each` rule whose cap the
    remaining findings fill again, a `once` rule."""
    call = each_and_fatal_call(f"void-{uuid.uuid4().hex[:8]}")
    out = world.post("qa", "/api/conversations", json=call).json()
    cid = out["results"][0]["id"]
    rb = kefuqa.load_rulebook("standard")
    core = kefuqa.check(call, rb)
    stored = world.get("qa", f"/api/calls/{cid}/report").json()
    assert stored["rulebook"]["version"] == rb.version
    assert [(f["rule"], f["points"]) for f in stored["findings"]] == [(f.rule, f.points) for f in core.findings]
    findings = world.findings("qa", cid)  # in report order: the index is the finding's position
    rules = [f["rule"] for f in findings]
    lng001 = [i for i, r in enumerate(rules) if r == "LNG001"]
    lng002 = [i for i, r in enumerate(rules) if r == "LNG002"]
    assert len(lng001) == 2 and len(lng002) == 4 and core.fatal
    assert [core.findings[i].points for i in lng002] == [-2.0, -2.0, -2.0, 0.0]  # capped at 6
    voided: set[int] = set()

    def check_step() -> kefuqa.Report:
        expected = rescore(core, rb, voided)
        d = world.get("qa", f"/api/calls/{cid}").json()
        assert (d["score"], d["grade"], d["fatal"]) == (expected.score, expected.grade, expected.fatal), voided
        rep = world.get("qa", f"/api/calls/{cid}/report").json()
        assert (rep["final_score"], rep["final_grade"]) == (expected.score, expected.grade)
        assert rep["score"] == 0.0  # the engine's report stays as it was
        return expected

    # the agent appeals both 服务禁语 findings; the first accepted leaves the call fatal, the second does not
    for n, i in enumerate(lng001):
        appeal = world.post("a1", f"/api/findings/{findings[i]['id']}/appeal", json={"reason": "客户先这样说的"})
        assert appeal.status_code == 201, appeal.text
        r = world.post("qa", f"/api/appeals/{appeal.json()['id']}/decision", json={"decision": "accept"})
        assert r.status_code == 200, r.text
        voided.add(i)
        assert check_step().fatal is (n == 0)
    unfatal = check_step().score
    assert unfatal > 0
    # an inspector rejects a charged 禁用词: the uncharged fourth one is charged instead (cap 6 still full)
    r = world.post("qa", f"/api/findings/{findings[lng002[0]]['id']}/review",
                   json={"verdict": "reject", "reason": "语境正常"})
    assert r.status_code == 200, r.text
    voided.add(lng002[0])
    assert check_step().score == unfatal
    # more rejected: two left cost 4 (2 points back), one left costs 2 (4 back)
    for i, back in zip(lng002[1:3], (2, 4), strict=True):
        world.post("qa", f"/api/findings/{findings[i]['id']}/review", json={"verdict": "reject", "reason": "误报"})
        voided.add(i)
        assert check_step().score == unfatal + back
    # confirming a finding changes nothing
    world.post("qa", f"/api/findings/{findings[lng002[3]]['id']}/review", json={"verdict": "confirm"})
    assert check_step().score == unfatal + 4


# ---- domain errors → HTTP answers and pages ------------------------------------------------------------------------


def test_every_domain_error_has_a_status() -> None:
    assert {cls.__name__: http_status(cls("x")) for cls in (NotFound, Forbidden, Unauthorized, Conflict, Invalid,
                                                             TooLarge)} == {
        "NotFound": 404, "Forbidden": 403, "Unauthorized": 401, "Conflict": 409, "Invalid": 422, "TooLarge": 413}
    assert http_status(RulebookProblem([{"file": "x", "line": 1, "key": None, "reason": "坏"}])) == 422
    assert http_status(DomainError("其他")) == 400


@pytest.fixture
def browser(sqlite_world: World) -> Iterator[tuple[TestClient, str]]:
    with TestClient(sqlite_world.client.app) as client:
        yield client, sqlite_world.browser_login(client, "qa1")


ERRORS = [(NotFound("没有这通会话"), 404), (Forbidden("不许重新评分"), 403), (Conflict("评分已变化"), 409),
          (Invalid("参数不对"), 422), (TooLarge("太多了"), 413)]


@pytest.mark.parametrize("error, status", ERRORS, ids=[type(e).__name__ for e, _ in ERRORS])
def test_a_use_cases_error_is_the_apis_status_and_the_pages_status(
        sqlite_world: World, browser: tuple[TestClient, str], monkeypatch: pytest.MonkeyPatch, error: DomainError,
        status: int) -> None:
    def refuse(ctx: Ctx, ref: int | str) -> None:
        raise error

    monkeypatch.setattr(calls, "rescore", refuse)
    cid = sqlite_world.calls["call-a1-01"]
    r = sqlite_world.post("qa", f"/api/calls/{cid}/rescore")
    assert (r.status_code, r.json()) == (status, {"detail": str(error)})
    client, csrf = browser
    page = client.post(f"/calls/{cid}/rescore", data={"csrf_token": csrf}, headers={"accept": "text/html"},
                       follow_redirects=False)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in page.text and str(error) in page.text


def test_not_found_from_the_scoped_lookup(sqlite_world: World, browser: tuple[TestClient, str]) -> None:
    r = sqlite_world.get("qa", "/api/calls/999999")
    assert (r.status_code, r.json()) == (404, {"detail": "会话不存在或无权查看"})
    client, _ = browser
    page = client.get("/calls/999999", headers={"accept": "text/html"})
    assert page.status_code == 404 and "会话不存在或无权查看" in page.text and "<form" in page.text  # the page, with nav


def test_forms_show_the_use_cases_message_again(sqlite_world: World, browser: tuple[TestClient, str]) -> None:
    """The adapters map the same error differently where the page can do better than an error page."""
    with TestClient(sqlite_world.client.app) as admin:
        csrf = sqlite_world.browser_login(admin, "admin", ADMIN_PASSWORD)
        page = admin.post("/admin/users", data={"csrf_token": csrf, "username": "qa1", "role": "qa"})
        assert page.status_code == 422 and "用户名已存在" in page.text and "用户管理" in page.text
    assert sqlite_world.post("admin", "/api/users", json={"username": "qa1", "role": "qa"}).status_code == 409
    client, csrf = browser
    page = client.post("/account/password", data={"csrf_token": csrf, "old_password": "wrong-one-1",
                                                  "new_password": "New-passw0rd", "confirm_password": "New-passw0rd"})
    assert page.status_code == 422 and "原密码不正确" in page.text
    r = sqlite_world.post("qa", "/api/me/password", json={"old_password": "wrong-one-1", "new_password": "x"})
    assert (r.status_code, r.json()) == (403, {"detail": "原密码不正确"})


# ---- the use cases on their own ------------------------------------------------------------------------------------


def test_use_cases_work_without_http(sqlite_world: World) -> None:
    """A use case needs a Ctx, nothing of FastAPI; the command line acts as nobody (None) and may do what an
    admin may; scope comes before role."""
    wb = sqlite_world.wb
    with wb.sessions() as db:
        saved = users.create_user(Ctx(wb, db), users.NewUser(username="from-cli", role="agent", agent_code="C7"))
        assert saved.password and saved.user.id
        qa = db.get(User, sqlite_world.users["qa1"])
        a1 = db.get(User, sqlite_world.users["wangfang"])
        with pytest.raises(Forbidden):
            users.create_user(Ctx(wb, db, qa), users.NewUser(username="nope", role="qa"))
        with pytest.raises(Invalid, match="用户名"):
            users.create_user(Ctx(wb, db), users.NewUser(username="bad name!", role="qa"))
        with pytest.raises(Invalid, match="未知角色"):
            users.create_user(Ctx(wb, db), users.NewUser(username="role-x", role="boss"))
        with pytest.raises(NotFound):
            users.update_user(Ctx(wb, db), 10_000_000, users.UserChanges(active=False))
        own = sqlite_world.findings("a1", sqlite_world.calls["call-a1-03"])[0]["id"]
        foreign = sqlite_world.findings("qa", sqlite_world.calls["call-b1-02"])[0]["id"]
        with pytest.raises(Forbidden):
            reviews.review_finding(Ctx(wb, db, a1), own, "reject", "不服")
        with pytest.raises(NotFound):
            reviews.review_finding(Ctx(wb, db, a1), foreign, "reject", "不服")
        with pytest.raises(Invalid, match="理由"):
            reviews.review_finding(Ctx(wb, db, qa), own, "reject", " ")
        with pytest.raises(Forbidden):
            calls.rescore(Ctx(wb, db), sqlite_world.calls["call-a1-03"])  # an action of a person, not of the CLI


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{a.name}" if node.module else f"{base}{a.name}" for a in node.names)
    return names


def test_the_layers_of_the_service() -> None:
    """Use cases never import FastAPI (nor Starlette); the API and the pages never import each other; the
    command line calls use cases, not the API, and never handles HTTPException."""
    for path in sorted((SERVICE / "usecases").glob("*.py")):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("fastapi", "starlette")}
        assert not bad, (path.name, bad)
    def uses(names: set[str], module: str) -> bool:
        return any(n == f".{module}" or n.startswith(f".{module}.") or n == f"kefuqa.service.{module}"
                   for n in names)

    api, web, cli = (_imports(SERVICE / name) for name in ("api.py", "web.py", "cli.py"))
    assert not uses(api, "web") and not uses(web, "api") and not uses(cli, "api") and not uses(cli, "web")
    assert uses(cli, "usecases") and uses(api, "usecases") and uses(web, "usecases")
    assert "HTTPException" not in (SERVICE / "cli.py").read_text(encoding="utf-8")
    code = ("import sys\nimport kefuqa.service.usecases.auth, kefuqa.service.usecases.users, "
            "kefuqa.service.usecases.uploads, kefuqa.service.usecases.calls, kefuqa.service.usecases.reviews, "
            "kefuqa.service.usecases.rulebooks\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.strip() == "[]"


# ---- uploaded rulebooks from their text ----------------------------------------------------------------------------

UPLOAD = """name: company
version: "3"
description: 公司规则
extends: standard
disable: [LNG006, CLS]
override:
  LNG002: {max_points: 4}
add_phrases:
  RSP001: [这事儿我们管不了]
rules:
  - id: X01
    name: 推销
    kind: phrase
    role: agent
    severity: minor
    points: 2
    dimension: 礼貌程度
    message: 通话中推销「{evidence}」
    phrases: [办个信用卡]
scorecard:
  name: company
  extends: standard
  fatal: [X01]
  rules: {RSP003: {points: 8}}
"""


def test_an_uploaded_rulebook_loads_from_its_text_as_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rulebook.yaml"
    path.write_text(UPLOAD, encoding="utf-8")
    want = kefuqa.load_rulebook(path)
    got = store.load_rulebook_text(UPLOAD)
    assert (got.name, got.description) == (want.name, want.description)
    # the version is the file's "3" and a digest of the texts: the same texts, though the core orders them
    # by their paths (the bundled files' and this file's), so only the text's own version is stable
    assert got.version.split("+")[0] == want.version.split("+")[0] == "3"
    assert sorted(got.sources.values()) == sorted(want.sources.values())
    assert store.load_rulebook_text(UPLOAD).version == got.version
    assert [r.model_dump() for r in got.rules] == [r.model_dump() for r in want.rules]
    assert got.scorecard == want.scorecard and got.settings == want.settings
    assert not got.by_id["LNG006"].enabled and not got.by_id["CLS001"].enabled
    assert "X01" in got.scorecard.fatal and "LNG001" in got.scorecard.fatal
    call = samples.conversation("x", "A1", 3, "refuse")
    call["utterances"][2]["text"] = "要不要办个信用卡？" + call["utterances"][2]["text"]
    mine, theirs = kefuqa.check(call, got).to_dict(), kefuqa.check(call, want).to_dict()
    mine.pop("rulebook"), theirs.pop("rulebook")  # versions depend on where the files lie (see above)
    assert mine == theirs
    assert "X01" in {f["rule"] for f in mine["findings"]}


@pytest.mark.parametrize("text, key", [
    ("name: x\nextends: /etc/kefuqa\n", "extends"),
    ("name: x\nextends: standard\nrules: ['rules/*.yaml']\n", "rules"),
    ("name: x\nextends: standard\nscorecard: card.yaml\n", "scorecard"),
    ("name: x\nscorecard: {name: s, extends: ../x, dimensions: [{name: a, max: 1}]}\n", "scorecard.extends"),
    ("name: x\nextends: standard\ndisable: [NOPE]\n", "disable"),
    ("name: x\nextends: standard\nrules:\n  - {id: X1, name: a, kind: phrase, message: m, phrases: [a]}\n"
     "  - {id: X1, name: b, kind: phrase, message: m, phrases: [b]}\n", "id"),
])
def test_rulebook_text_never_reads_files(text: str, key: str) -> None:
    with pytest.raises(RuleError) as err:
        store.load_rulebook_text(text, "up.yaml")
    assert err.value.key == key and err.value.source == "up.yaml"


def test_uploads_are_linted_and_loaded_without_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wb = Workbench(make_settings(f"sqlite:///{tmp_path / 'k.db'}", tmp_path))
    wb.setup()

    def no_files(*args: object, **kwargs: object) -> None:
        raise AssertionError("a temporary file was made")

    monkeypatch.setattr(tempfile, "mkstemp", no_files)
    monkeypatch.setattr(tempfile, "mkdtemp", no_files)
    monkeypatch.setattr(Path, "write_text", no_files)
    before = {p for p in tmp_path.rglob("*") if "k.db" not in p.name}
    rb, text = store.lint_upload(UPLOAD.encode(), "company.yaml")
    with wb.sessions() as db:
        rec = store.register(db, rb, origin="upload", content=text, filename="company.yaml")
        db.commit()
        loaded = wb.rulebooks.get(db, rec.id)
        assert isinstance(loaded.rulebook, kefuqa.Rulebook) and isinstance(loaded.checker, kefuqa.Checker)
        assert loaded.rulebook.version == rec.version == rb.version and db.get(RulebookVersion, rec.id)
    assert {p for p in tmp_path.rglob("*") if "k.db" not in p.name} == before
    with pytest.raises(RulebookProblem) as err:
        store.lint_upload(b"name: x\nextends: standard\noverride:\n  LNG999: {points: 3}\n", "bad.yaml")
    assert err.value.errors[0]["file"] == "bad.yaml" and "LNG999" in err.value.errors[0]["key"]
    wb.engine.dispose()


def test_rulebook_summary_uses_the_scorecards_terms() -> None:
    rb = store.load_rulebook_text(UPLOAD)
    rules, card = store.summarize(rb)
    by_id = {r["id"]: r for r in rules}
    assert by_id["RSP003"]["points"] == 8 and by_id["X01"]["points"] == 2 and by_id["X01"]["dimension"] == "礼貌程度"
    assert by_id["LNG006"]["enabled"] is False
    assert card["name"] == "company" and "X01" in card["fatal"]
    assert [g["min"] for g in card["grades"]] == sorted((g["min"] for g in card["grades"]), reverse=True)


def test_a_refused_login_is_401(sqlite_world: World) -> None:
    """`auth.login` raises Unauthorized: the API answers 401 with the message that does not say which part
    was wrong."""
    assert sqlite_world.client.post("/api/auth/login", json={"username": "qa1", "password": PASSWORD}).status_code == 200
    r = sqlite_world.client.post("/api/auth/login", json={"username": "qa1", "password": PASSWORD + "x"})
    assert (r.status_code, r.json()) == (401, {"detail": "用户名或密码错误"})
