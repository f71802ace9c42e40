"""Races on one call, with real parallel HTTP requests against a running server (uvicorn in a thread, the
workbench on SQLite and on PostgreSQL): re-scoring while an appeal is open, and two decisions on one appeal.
Each race is run several rounds, every request of a round released together by a barrier."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from conftest import World, serve_app, together

uvicorn = pytest.importorskip("uvicorn")

ROUNDS = 6


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[tuple[World, str]]:
    with serve_app(world.client.app) as base:
        yield world, base


def _post(base: str, w: World, who: str, url: str, **kw: Any) -> Callable[[], httpx.Response]:
    return lambda: httpx.post(base + url, headers=w.h(who), timeout=60, **kw)


def _key(f: dict[str, Any]) -> tuple[Any, ...]:
    return f["rule"], f["utterance"], f["evidence"]


def _deducting(w: World, call: int) -> dict[str, Any]:
    return next(f for f in w.findings("a1", call) if f["points"] < 0)


def _appealed_call(w: World) -> tuple[int, dict[str, Any], int]:
    call = w.new_call("A1", "refuse")
    finding = _deducting(w, call)
    r = w.post("a1", f"/api/findings/{finding['id']}/appeal", json={"reason": "客户先骂人，我只是复述"})
    assert r.status_code == 201, r.text
    return call, finding, int(r.json()["id"])


def test_concurrent_rescoring_keeps_the_appeal_on_the_current_finding(served: tuple[World, str]) -> None:
    """Two re-scorings at once: the open appeal follows its finding into the score that ends up current,
    the agent cannot appeal that finding again, and accepting the appeal changes the current score."""
    w, base = served
    for _ in range(ROUNDS):
        call, finding, appeal = _appealed_call(w)
        got = together(_post(base, w, "qa", f"/api/calls/{call}/rescore"),
                       _post(base, w, "admin", f"/api/calls/{call}/rescore"))
        assert [r.status_code for r in got] == [200, 200], [r.text for r in got]
        now = [f for f in w.findings("qa", call) if _key(f) == _key(finding)]
        assert len(now) == 1
        assert (now[0].get("appeal") or {}).get("id") == appeal, now[0]
        again = w.post("a1", f"/api/findings/{now[0]['id']}/appeal", json={"reason": "再申诉一次"})
        assert again.status_code == 409, again.text
        before = w.get("qa", f"/api/calls/{call}").json()["score"]
        r = w.post("qa", f"/api/appeals/{appeal}/decision", json={"decision": "accept"})
        assert r.status_code == 200, r.text
        after = w.get("qa", f"/api/calls/{call}").json()
        assert after["score"] > before
        assert [f["status"] for f in after["findings"] if _key(f) == _key(finding)] == ["overturned"]


def test_rescoring_and_appealing_at_once_never_leave_an_appeal_behind(served: tuple[World, str]) -> None:
    """An appeal filed while the call is re-scored lands on the finding of the current score (or is refused
    as belonging to a superseded score), never on a finding nobody sees any more."""
    w, base = served
    for _ in range(ROUNDS):
        call = w.new_call("A1", "refuse")
        finding = _deducting(w, call)
        got = together(_post(base, w, "qa", f"/api/calls/{call}/rescore"),
                       _post(base, w, "a1", f"/api/findings/{finding['id']}/appeal", json={"reason": "并发申诉"}))
        assert got[0].status_code == 200, got[0].text
        assert got[1].status_code in (201, 409), got[1].text
        now = next(f for f in w.findings("a1", call) if _key(f) == _key(finding))
        if got[1].status_code == 201:
            assert (now.get("appeal") or {}).get("id") == got[1].json()["id"]
        else:
            assert "历史评分" in got[1].json()["detail"]
            assert now.get("appeal") is None


def test_parallel_accept_and_reject_decide_an_appeal_exactly_once(served: tuple[World, str]) -> None:
    w, base = served
    for _ in range(ROUNDS):
        call, finding, appeal = _appealed_call(w)
        got = together(_post(base, w, "qa", f"/api/appeals/{appeal}/decision", json={"decision": "accept"}),
                       _post(base, w, "admin", f"/api/appeals/{appeal}/decision",
                             json={"decision": "reject", "reason": "录音证据确凿"}))
        codes = sorted(r.status_code for r in got)
        assert codes == [200, 409], [r.text for r in got]
        loser = next(r for r in got if r.status_code == 409)
        assert "已裁决" in loser.json()["detail"]
        winner = next(i for i, r in enumerate(got) if r.status_code == 200)
        status = w.get("qa", "/api/appeals").json()
        mine = next(a for a in status if a["id"] == appeal)
        assert mine["status"] == ("accepted" if winner == 0 else "rejected")
        entries = [e for e in w.get("admin", "/api/audit?action=appeal.&limit=1000").json()
                   if e["object_id"] == str(appeal) and e["action"] in ("appeal.accept", "appeal.reject")]
        assert len(entries) == 1
        detail = w.get("qa", f"/api/calls/{call}").json()
        f = next(f for f in detail["findings"] if _key(f) == _key(finding))
        assert f["status"] == ("overturned" if winner == 0 else "confirmed")
