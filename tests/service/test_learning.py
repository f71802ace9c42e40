"""Learning from inspectors, the workbench side (SQLite and PostgreSQL): verdicts on the findings of a judgement
(`intent`) rule exported as labelled utterances (`kefuqa model export-reviews`), conflicts left out, every score
recording its rulebook and model version, and the rule-precision page showing each model version's precision
before and after a retraining.

The deployment's model folder (KEFUQA_MODEL_DIR) holds a hand-written model: 厂家 and 管不了 say blame_shift."""

from __future__ import annotations

import gzip
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import svc_samples as samples
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import ADMIN_PASSWORD, World
from kefuqa.cli import app as cli_app
from kefuqa.judge.deploy import MODEL_DIR_ENV, MODEL_FILE
from kefuqa.judge.ngram import FORMAT
from kefuqa.service.app import create_app
from kefuqa.service.errors import Forbidden
from kefuqa.service.models import User
from kefuqa.service.usecases import Ctx
from kefuqa.service.usecases.learning import export_reviews
from kefuqa.service.workbench import Workbench

RULEBOOK = """name: company-intent
version: "1"
extends: standard
rules:
  - {id: XTR001, name: 推诿（判断）, kind: intent, label: blame_shift, role: agent, points: 3, dimension: 责任承担,
     message: "推诿：「{evidence}」"}
"""


def model(version: str, weight: float) -> bytes:
    data = {"format": FORMAT, "version": version, "labels": ["blame_shift"], "bias": [-3.0], "thresholds": [0.5],
            "weights": {"c厂家": [[0, weight]], "c管不了": [[0, 2.5]]}}
    return gzip.compress(json.dumps(data).encode())


@dataclass
class Learning:
    world: World
    models: Path  # KEFUQA_MODEL_DIR
    rulebook_id: int

    def call(self, text: str, agent: str = "A1", **extra: Any) -> int:
        """A new call whose agent says `text` once (before the closing)."""
        call = samples.conversation(f"l-{uuid.uuid4().hex[:10]}", agent, 9, "good")
        utts = call["utterances"]
        utts.insert(len(utts) - 3, {"role": "agent", "text": text})
        for i, u in enumerate(utts):
            u["start"], u["end"] = i * 3.0, i * 3.0 + 2.5
        call.update(extra)
        r = self.world.post("qa", "/api/conversations", json=call)
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        return int(r.json()["results"][0]["id"])

    def finding(self, call: int, rule: str = "XTR001", client: TestClient | None = None) -> dict[str, Any]:
        c = client or self.world.client
        r = c.get(f"/api/calls/{call}", headers=self.world.h("qa"))
        (f,) = [f for f in r.json()["findings"] if f["rule"] == rule]
        return dict(f)

    def review(self, who: str, finding: dict[str, Any], verdict: str, client: TestClient | None = None) -> None:
        c = client or self.world.client
        r = c.post(f"/api/findings/{finding['id']}/review", headers=self.world.h(who),
                   json={"verdict": verdict, "reason": "复核"})
        assert r.status_code == 200, r.text

    def appeal(self, finding: dict[str, Any], decision: str) -> None:
        r = self.world.post("a1", f"/api/findings/{finding['id']}/appeal", json={"reason": "我是在帮客户转接厂家"})
        assert r.status_code == 201, r.text
        r = self.world.post("qa", f"/api/appeals/{r.json()['id']}/decision", json={"decision": decision,
                                                                                    "reason": "已核实"})
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def lw(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Learning]:
    """The world with model v1 deployed in KEFUQA_MODEL_DIR and a rulebook with an intent rule active."""
    folder = tmp_path_factory.mktemp(f"models-{world.backend}")
    (folder / MODEL_FILE).write_bytes(model("test+1", 4.0))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODEL_DIR_ENV, str(folder))
        r = world.post("admin", "/api/rulebooks", files={"file": ("intent.yaml", RULEBOOK.encode())})
        assert r.status_code == 200, r.text
        rid = r.json()["id"]
        assert world.post("admin", f"/api/rulebooks/{rid}/activate").status_code == 200
        yield Learning(world, folder, rid)


S1, S2, S3, S4 = "这个您得问厂家，我们管不了", "这个得厂家来弄", "厂家那边负责的", "您直接问厂家吧"


def test_verdicts_on_intent_findings_export_as_labelled_utterances(lw: Learning, tmp_path: Path) -> None:
    w = lw.world
    c1, c2, c4, c5 = lw.call(S1), lw.call(S1), lw.call(S3), lw.call(S4)
    c3 = lw.call(S2, customer={"id": "c-9", "industry": "物流"})
    lw.review("qa", lw.finding(c1), "confirm")
    lw.review("admin", lw.finding(c2), "reject")  # the same sentence judged the other way: a conflict
    lw.review("qa", lw.finding(c3), "confirm")
    lw.review("qa", lw.finding(c3), "reject")  # an inspector who changed their mind: the latest counts
    lw.review("qa", lw.finding(c4), "confirm")
    lw.appeal(lw.finding(c4), "accept")  # the appeal's decision is final: the finding was wrong
    lw.appeal(lw.finding(c5), "reject")  # the finding stood
    fatal = w.new_call("A1", "fatal")  # a phrase rule's finding, confirmed: not a judgement, not exported
    f = next(f for f in w.findings("qa", fatal) if f["rule"] == "LNG001")
    lw.review("qa", f, "confirm")

    with w.wb.sessions() as db:
        got = export_reviews(Ctx(w.wb, db))
        agent = db.query(User).filter(User.username == "wangfang").one()
        with pytest.raises(Forbidden):
            export_reviews(Ctx(w.wb, db, agent))
    mine = {S1, S2, S3, S4}
    rows = {r["text"]: r for r in got.rows if r["text"] in mine}
    assert set(rows) == {S2, S3, S4}
    assert [(t, lab) for t, lab in got.conflicts if t in mine] == [(S1, "blame_shift")]
    assert (rows[S2]["y"], rows[S3]["y"], rows[S4]["y"]) == (0, 0, 1)
    assert re.fullmatch(r"review:\d+", rows[S2]["source"]) and re.fullmatch(r"appeal:\d+", rows[S3]["source"])
    assert rows[S2]["industry"] == "物流" and rows[S4]["industry"] == "reviews"
    assert all(r["label"] == "blame_shift" and r["role"] == "agent" and r["split"] == "train" and r["rule"] == "XTR001"
               for r in rows.values())
    assert not [r for r in got.rows if r["rule"] == "LNG001"]
    assert list(rows[S2])[:9] == ["id", "text", "label", "y", "role", "industry", "register", "source", "split"]

    # the command: the same rows in a file, a summary in Chinese; --since leaves out what was decided before
    out = tmp_path / "reviews.jsonl"
    url = w.wb.settings.database_url
    runner = CliRunner()
    r = runner.invoke(cli_app, ["model", "export-reviews", "--db", url, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"已写入 {out}：{len(got.rows)} 条样本" in r.output and f"冲突 {len(got.conflicts)} 句未导出" in r.output
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines == got.rows
    later = (date.today() + timedelta(days=2)).isoformat()
    r = runner.invoke(cli_app, ["model", "export-reviews", "--db", url, "--out", str(out), "--since", later])
    assert r.exit_code == 0 and "0 条样本" in r.output and out.read_text(encoding="utf-8") == ""
    r = runner.invoke(cli_app, ["model", "export-reviews", "--db", url, "--out", str(out), "--since", "昨天"])
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.output


def test_precision_per_model_version_before_and_after_a_retraining(lw: Learning) -> None:
    w = lw.world
    c7, c8 = lw.call("厂家说了算，我们这边管不了"), lw.call("这事您得找厂家")
    for c in (c7, c8):
        rep = w.get("qa", f"/api/calls/{c}/report").json()
        assert rep["rulebook"]["name"] == "company-intent" and rep["rulebook"]["models"] == "ngram:test+1"
    before = {r["model"]: r for r in w.get("admin", "/api/rules/quality/models").json() if r["rule"] == "XTR001"}
    v1 = before["ngram:test+1"]
    lw.review("qa", lw.finding(c7), "reject")
    lw.review("qa", lw.finding(c8), "confirm")

    # retrained: model v2 in the deployment's folder, the workbench restarted, the calls scored again
    (lw.models / MODEL_FILE).write_bytes(model("test+2", 5.0))
    wb2 = Workbench(w.wb.settings)
    client2 = TestClient(create_app(w.wb.settings, wb2))
    try:
        for c in (c7, c8):
            r = client2.post(f"/api/calls/{c}/rescore", headers=w.h("qa"))
            assert r.status_code == 200, r.text
            rep = client2.get(f"/api/calls/{c}/report", headers=w.h("qa")).json()
            assert rep["rulebook"]["models"] == "ngram:test+2"  # the score records its model version
            lw.review("qa", lw.finding(c, client=client2), "confirm", client=client2)
        rows = [r for r in client2.get("/api/rules/quality/models", headers=w.h("admin")).json()
                if r["rule"] == "XTR001"]
        assert [r["model"] for r in rows] == ["ngram:test+1", "ngram:test+2"]  # oldest first
        old, new = rows
        assert (old["reviewed"], old["right"], old["wrong"]) == (v1["reviewed"] + 2, v1["right"] + 1, v1["wrong"] + 1)
        assert old["precision"] == round(old["right"] / old["reviewed"], 3)
        assert (new["reviewed"], new["right"], new["wrong"], new["precision"]) == (2, 2, 0, 1.0)
        assert client2.get("/api/rules/quality/models", headers=w.h("qa")).status_code == 403

        page_client = TestClient(create_app(w.wb.settings, wb2))
        w.browser_login(page_client, "admin", ADMIN_PASSWORD)
        html = page_client.get("/rules/quality").text
        section = html[html.index('data-testid="quality-models"'):]
        tr_old = re.search(r'<tr data-rule="XTR001" data-model="ngram:test\+1">(.*?)</tr>', section, re.S)
        tr_new = re.search(r'<tr data-rule="XTR001" data-model="ngram:test\+2">(.*?)</tr>', section, re.S)
        assert tr_old and tr_new and tr_old.start() < tr_new.start()
        assert f"<span>{old['precision'] * 100:.0f}%</span>" in tr_old.group(1)
        assert "<span>100%</span>" in tr_new.group(1) and "推诿（判断）" in tr_new.group(1)
        page_client.close()
    finally:
        client2.close()
        wb2.engine.dispose()


def test_an_appeal_on_an_added_finding_is_no_verdict_on_the_model(lw: Learning) -> None:
    """An inspector's missed XTR001 (人工补充), appealed and withdrawn: the model did not report it, so its precision
    per model version is what it was."""
    w = lw.world
    call = lw.call("好的，我马上帮您登记")
    utts = w.get("qa", f"/api/calls/{call}").json()["conversation"]["utterances"]
    at = next(i for i, u in enumerate(utts) if u["text"] == "好的，我马上帮您登记")
    assert not [f for f in w.findings("qa", call) if f["rule"] == "XTR001"]
    before = [r for r in w.get("admin", "/api/rules/quality/models").json() if r["rule"] == "XTR001"]
    r = w.post("qa", f"/api/calls/{call}/missed", json={"rule": "XTR001", "utterance": at, "comment": "推诿"})
    assert r.status_code == 201, r.text
    added = lw.finding(call)
    assert added["status"] == "added"
    lw.appeal(added, "accept")
    assert lw.finding(call)["status"] == "overturned"
    assert [r for r in w.get("admin", "/api/rules/quality/models").json() if r["rule"] == "XTR001"] == before
