"""The call page says why a score is what it is (issue 9, items 11, 12, 14): the 红线 rule that zeroed it,
that the dimension bars are not the score, how much of the standard was checked, and findings that cost
nothing are shown as such and offer neither 确认扣分 nor 申诉."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import World


@pytest.fixture
def browser(sqlite_world: World) -> Iterator[TestClient]:
    with TestClient(sqlite_world.client.app) as client:
        yield client


def test_fatal_call_names_the_rule_beside_the_score(sqlite_world: World, browser: TestClient) -> None:
    w = sqlite_world
    cid = w.new_call("A1", "fatal", day=21)
    w.browser_login(browser, "qa1")
    page = browser.get(f"/calls/{cid}").text
    assert 'data-testid="fatal-rules">LNG001 服务禁语 判为 0 分<' in page
    assert 'data-testid="fatal-note"' in page and "不是总分" in page
    assert 'data-testid="coverage"' in page and "覆盖 " in page


def test_zero_point_findings_offer_no_confirm_or_appeal(sqlite_world: World) -> None:
    w = sqlite_world
    cid = w.new_call("A1", "refuse", day=22)
    findings = w.findings("qa", cid)
    zero = [f for f in findings if f["points"] == 0]
    charged = [f for f in findings if f["points"] < 0]
    assert zero and charged, findings
    with TestClient(w.client.app) as qa, TestClient(w.client.app) as agent:
        w.browser_login(qa, "qa1")
        w.browser_login(agent, "wangfang")
        qa_page, agent_page = qa.get(f"/calls/{cid}").text, agent.get(f"/calls/{cid}").text
    for f in zero:
        assert f'/findings/{f["id"]}/review' not in qa_page and f'/findings/{f["id"]}/appeal' not in agent_page
    for f in charged:
        assert f'/findings/{f["id"]}/review' in qa_page and f'/findings/{f["id"]}/appeal' in agent_page
    assert qa_page.count('data-testid="no-points"') == len(zero)
    assert qa_page.count('data-testid="zero-note"') == len(zero)


def test_one_default_period_everywhere_and_shown(sqlite_world: World, browser: TestClient) -> None:
    """Overview, teams, agents and an agent's page open on the same period, marked in their switch; an
    agent with a 红线 call in it is never told there is nothing to fix."""
    w = sqlite_world
    w.browser_login(browser, "admin", "Admin-pass-1")
    for url in ("/", "/teams", "/agents", "/agents/A1"):
        page = browser.get(url).text
        assert '<a href="?days=30" class="on">近30天</a>' in page, url
    agent = browser.get("/agents/A1").text
    assert 'data-testid="no-deductions"' not in agent  # call-a1-02 (红线) is inside the default period
    assert "最近会话 <span" in agent and "近30天</span></h2>" in agent
    empty = browser.get("/agents/A2?days=7").text  # A2's sample calls are 2–3 weeks old
    assert 'data-testid="no-deductions">近7天没有扣分项' in empty
    assert "call-a2-0" not in empty  # and its recent-calls list keeps to the same period


def test_insufficiently_checked_calls_stay_out_of_averages_and_rankings(world: World) -> None:
    """On SQLite and PostgreSQL: a one-utterance call (「未充分质检」) is stored and shown, but the agent's
    average and the ranking are those of the calls that could be checked."""
    w = world

    def figures() -> tuple[dict, dict]:
        agent = w.get("qa", "/api/agents/B1").json()
        ranked = next(a for a in w.get("qa", "/api/agents").json() if a["code"] == "B1")
        return ({k: agent[k] for k in ("calls", "average", "grades")},
                {k: ranked[k] for k in ("calls", "average", "fatal")})

    before = figures()
    thin = {"id": f"thin-{w.backend}", "channel": "phone", "agent": {"id": "B1", "name": "赵敏", "team": "二组"},
            "utterances": [{"role": "agent", "start": 0, "end": 2, "text": "您好"}]}
    r = w.post("qa", "/api/conversations", json=thin)
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    cid = int(r.json()["results"][0]["id"])
    report = w.get("qa", f"/api/calls/{cid}/report").json()
    assert report["coverage"]["sufficient"] is False and report["coverage"]["checked"] < report["coverage"]["rules"]
    assert figures() == before
    agent = w.get("qa", "/api/agents/B1").json()
    assert agent["insufficient"] == 1 and agent["days"] == 30  # the API's default period is the pages'
    with TestClient(w.client.app) as lead:
        w.browser_login(lead, "qa1")
        page = lead.get("/agents/B1").text
    assert 'data-testid="insufficient">另有未充分质检 1 通，不计入' in page


def test_a_zero_point_finding_cannot_be_appealed_until_it_costs_points(world: World) -> None:
    """On both databases: a repeat of a rule charged once costs nothing (no appeal: 422); when the charged
    finding is rejected the repeat is charged instead, shows its points and can be appealed."""
    w = world
    cid = w.new_call("A1", "refuse", day=19)
    findings = w.findings("qa", cid)
    zero = next(f for f in findings if f["points"] == 0)
    charged = next(f for f in findings if f["rule"] == zero["rule"] and f["points"] < 0)
    r = w.post("a1", f"/api/findings/{zero['id']}/appeal", json={"reason": "这一句没有问题"})
    assert r.status_code == 422 and "不扣分" in r.text, r.text
    r = w.post("qa", f"/api/findings/{charged['id']}/review", json={"verdict": "reject", "reason": "误判"})
    assert r.status_code == 200, r.text
    now = {f["id"]: f for f in w.findings("qa", cid)}
    assert now[zero["id"]]["points"] == charged["points"]  # the repeat carries the rule's cost now
    r = w.post("a1", f"/api/findings/{zero['id']}/appeal", json={"reason": "这一句没有问题"})
    assert r.status_code == 201, r.text
