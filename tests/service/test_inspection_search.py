"""Full-text search of transcripts (SQLite FTS5 trigram, PostgreSQL pg_trgm), with filters, scope, highlights
and saved searches; on both databases."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import svc_samples as samples
from sqlalchemy import select, update

from conftest import World
from kefuqa.service.models import CallText, Conversation


def _kinds(*kinds: str, agent: str | None = None, team: str | None = None) -> set[str]:
    return {cid for cid, a, _, k in samples.PLAN if k in kinds and (agent is None or a == agent)
            and (team is None or samples.AGENTS[a][1] == team)}


def _search(w: World, who: str, **params: Any) -> dict[str, Any]:
    r = w.get(who, "/api/search", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _ids(body: dict[str, Any]) -> set[str]:
    return {r["call_id"] for r in body["results"]}


def test_a_phrase_finds_exactly_the_calls_that_say_it_highlighted(world: World) -> None:
    body = _search(world, "qa", q="我怎么知道")
    assert _ids(body) == _kinds("fatal") and body["total"] == len(_kinds("fatal"))
    assert body["scanned_terms"] == []
    for hit in body["results"]:
        assert hit["matches"] == 1
        assert "<mark>我怎么知道</mark>" in hit["snippets"][0]["html"]
        assert hit["snippets"][0]["role"] == "agent"


def test_two_terms_must_both_occur(world: World) -> None:
    assert _ids(_search(world, "qa", q="办不了 可能吧")) == _kinds("refuse")
    assert _ids(_search(world, "qa", q="办不了 我怎么知道")) == set()
    # a term in every call and one in a few: the few
    assert _ids(_search(world, "qa", q="上不了网 服务太差")) == _kinds("complaint")


def test_terms_shorter_than_a_trigram_find_exactly_the_calls_that_say_them(world: World) -> None:
    """Looked up by an index (migration 0010: PostgreSQL's grams, SQLite's trigrams that begin with the word)."""
    body = _search(world, "qa", q="投诉")
    assert _ids(body) == _kinds("complaint") and body["scanned_terms"] == []
    assert "<mark>投诉</mark>" in body["results"][0]["snippets"][0]["html"]
    one = _search(world, "qa", q="修 办不了")  # 修 (one character) and 办不了 (indexed)
    assert _ids(one) == _kinds("refuse") and one["scanned_terms"] == []
    assert _ids(_search(world, "qa", q="修")) == _ids(_search(world, "qa", q="维修")) | _ids(one)
    # a pair across two utterances is not a word said; Latin letters in any case; the last words of a call
    assert _ids(_search(world, "qa", q="吗没")) == set()
    assert _ids(_search(world, "qa", q="XX")) == _ids(_search(world, "qa", q="xx")) == {c for c, *_ in samples.PLAN}
    assert _ids(_search(world, "qa", q="再见")) == {c for c, *_ in samples.PLAN if c not in _kinds("noclose")}
    # the last characters of a transcript (the index pads its end)
    last = world.new_call("B1", "good")
    with world.wb.sessions() as db, db.begin():
        db.execute(update(CallText).where(CallText.conversation_id == last).values(body=CallText.body + "拜拜"))
    assert last in {r["id"] for r in _search(world, "qa", q="拜拜")["results"]}
    assert last in {r["id"] for r in _search(world, "qa", q="拜")["results"]}
    assert world.post("admin", f"/api/calls/{last}/delete", json={"reason": "测试完毕"}).status_code == 200


def test_search_combines_with_the_call_filters(world: World) -> None:
    assert _ids(_search(world, "qa", q="办不了", agent="A1")) == _kinds("refuse", agent="A1")
    day = samples.on_day(3).isoformat()
    fatal_on_day = {cid for cid, _, d, k in samples.PLAN if k == "fatal" and d == 3}
    assert _ids(_search(world, "qa", q="我怎么知道", date_from=day, date_to=day)) == fatal_on_day


def test_scope_agent_and_leader_see_only_their_calls(world: World) -> None:
    assert _ids(_search(world, "a1", q="我怎么知道")) == _kinds("fatal", agent="A1")
    assert _ids(_search(world, "lead2", q="我怎么知道")) == _kinds("fatal", team="二组")
    assert _ids(_search(world, "a2", q="我怎么知道")) == set()


def test_odd_input_is_safe(world: World) -> None:
    assert _search(world, "qa", q="100%_/")["total"] == 0
    assert _search(world, "qa", q='"我怎么知道" OR NEAR(')["total"] == 0  # FTS syntax is taken literally
    r = world.get("qa", "/api/search", params={"q": "一 二 三 四 五 六"})
    assert r.status_code == 422 and "最多 5 个" in r.json()["detail"]


def test_saved_searches_belong_to_their_user(world: World) -> None:
    client = world.client
    client.cookies.clear()
    csrf = world.browser_login(client, "qa1")
    r = client.post("/search/saved", data={"csrf_token": csrf, "name": "禁语", "query": "q=我怎么知道"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/search?q=我怎么知道")
    assert "禁语" in page.text and "<mark>我怎么知道</mark>" in page.text
    import re

    saved_id = int(re.search(r'/search/saved/(\d+)/delete', page.text).group(1))  # type: ignore[union-attr]
    client.cookies.clear()
    other = world.browser_login(client, "lead1")
    assert "禁语" not in client.get("/search").text
    r = client.post(f"/search/saved/{saved_id}/delete", data={"csrf_token": other})
    assert r.status_code == 404
    client.cookies.clear()
    csrf = world.browser_login(client, "qa1")
    r = client.post(f"/search/saved/{saved_id}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and "禁语" not in client.get("/search").text
    client.cookies.clear()


def test_a_new_call_is_searchable_at_once(world: World) -> None:
    token = "蓝鲸" + uuid.uuid4().hex[:6]
    call = samples.conversation(f"t-{uuid.uuid4().hex[:8]}", "A1", 8, "good")
    call["utterances"][1]["text"] = f"我想问一下{token}套餐怎么退订，我是VIP会员"
    r = world.post("qa", "/api/conversations", json=call)
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    body = _search(world, "qa", q=f"{token}套餐")
    assert _ids(body) == {call["id"]}
    assert body["results"][0]["snippets"][0]["role"] == "customer"
    latin = _search(world, "qa", q=f"vip会员 {token}")  # Latin letters match in either case
    assert _ids(latin) == {call["id"]} and "<mark>VIP会员</mark>" in latin["results"][0]["snippets"][0]["html"]


def test_a_large_result_is_counted_up_to_the_cap(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from kefuqa.service.usecases import search

    monkeypatch.setattr(search, "PREFETCH", 3)  # more matches than prefetched: the walk, counted to the cap
    monkeypatch.setattr(search, "COUNT_CAP", 2)
    body = _search(world, "qa", q="上不了网")  # every sample call
    assert body["total"] == 2 and body["more"] is True and len(body["results"]) == min(20, len(samples.PLAN))
    assert {r["call_id"] for r in body["results"]} == {cid for cid, *_ in samples.PLAN}
    few = _search(world, "qa", q="服务太差")  # fewer than prefetched: exact
    assert few["more"] is False and _ids(few) == _kinds("complaint")
    assert _ids(_search(world, "qa", q="办不了", agent="A1")) == _kinds("refuse", agent="A1")


def test_search_combines_with_team_rule_and_score(world: World) -> None:
    from kefuqa.service.models import Team

    with world.wb.sessions() as db:
        team2 = db.scalar(select(Team.id).where(Team.name == "二组"))
        scores = dict(db.execute(select(Conversation.call_id, Conversation.score).where(
            Conversation.call_id.in_([c for c, *_ in samples.PLAN]))).all())
    everyone = {c for c, *_ in samples.PLAN}
    assert _ids(_search(world, "qa", q="上不了网", team=team2)) == {c for c, a, *_ in samples.PLAN
                                                                  if samples.AGENTS[a][1] == "二组"}
    assert _ids(_search(world, "qa", q="上不了网", rule="RSP002")) == _kinds("refuse")
    low, high = min(scores.values()), max(scores.values())
    cut = (low + high) / 2
    assert low < high
    band = _ids(_search(world, "qa", q="上不了网", score_max=cut))
    assert band == {c for c in everyone if scores[c] <= cut} and band and band != everyone
    assert _ids(_search(world, "qa", q="上不了网", score_min=cut, rule="RSP002")) == {
        c for c in _kinds("refuse") if scores[c] >= cut}
    # a leader asking for another team's calls gets none of them
    assert _ids(_search(world, "lead1", q="上不了网", team=team2)) == set()
