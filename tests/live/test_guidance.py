"""Guidance files: errors name file, line and reason in Chinese; the bundled guidance drives alerts, timers,
cards, checklists and styles in a live session; bad input is a `LiveError` with a code."""

from __future__ import annotations

from typing import Any

import pytest

from kefuqa.engine import Checker
from kefuqa.errors import RuleError
from kefuqa.live import Guidance, LiveError, LiveSession, live_rules, load_guidance, parse_guidance
from kefuqa.rules.rulebook import load_rulebook


@pytest.fixture(scope="module")
def parts() -> tuple[Checker, Any]:
    rb = load_rulebook("standard")
    return Checker(rb), load_guidance("standard", {r.id for r in rb.rules})


def test_unknown_key_names_file_and_line() -> None:
    text = "version: 1\ntimers:\n  hold:\n    after_seconds: 30\n    title: 等候\n    colour: red\n"
    with pytest.raises(RuleError) as exc:
        parse_guidance(text, "g.yaml")
    assert exc.value.source == "g.yaml" and exc.value.line == 6
    assert "未知的键" in exc.value.reason


def test_unknown_rule_is_an_error() -> None:
    with pytest.raises(RuleError) as exc:
        parse_guidance("alerts:\n  rules: [XYZ001]\n", "g.yaml", {"LNG001"})
    assert "规则手册中没有规则 XYZ001" in str(exc.value)


def test_bad_yaml_and_bad_value() -> None:
    with pytest.raises(RuleError) as exc:
        parse_guidance("timers: [\n", "g.yaml")
    assert "YAML 格式错误" in exc.value.reason
    with pytest.raises(RuleError) as exc:
        parse_guidance("timers:\n  hold: {after_seconds: -3, title: x}\n", "g.yaml")
    assert exc.value.line == 2


def _session(parts: tuple[Checker, Any], **call: Any) -> LiveSession:
    return LiveSession(parts[0], parts[1], {"id": "t", "direction": "inbound", "channel": "phone", **call})


def test_timers(parts: tuple[Checker, Any]) -> None:
    s = _session(parts)
    s.utterance("agent", "您好，客服中心", 0.0, 2.0)
    assert s.tick(4.0) == []
    silent = s.tick(7.5)
    assert [i["timer"] for i in silent] == ["customer_silent"]
    assert "听到我讲话" in silent[0]["script"][0]
    assert s.tick(9.0) == []  # once
    s.utterance("customer", "我家停电了", 9.0, 10.0)
    talk = []
    for k in range(6):  # a long customer turn, arriving as partials of one utterance
        talk += s.utterance("customer", "然后" * (k + 1), 11.0, 12.0 + 5 * k, final=False, uid="c2")
    assert [i["timer"] for i in talk if i["kind"] == "timer"] == ["monologue"]
    s.utterance("customer", "然后就这样", 11.0, 37.0, uid="c2")
    s.utterance("agent", "嗯，好的", 37.0, 38.0)
    air = s.tick(47.0)
    assert [i["timer"] for i in air] == ["dead_air"]


def test_style_hint(parts: tuple[Checker, Any]) -> None:
    s = _session(parts)
    s.utterance("agent", "您好", 0.0, 1.0)
    got = s.utterance("customer", "具体是怎么计算的？请你详细说一下依据和标准是什么，数据要准确，明细也发我一份看看，我要核对一下每一项到底是多少钱", 1.5, 20.0)
    style = [i for i in got if i["kind"] == "style"]
    assert style and style[0]["name"] == "分析型" and style[0]["hint"] is True


def test_bad_input(parts: tuple[Checker, Any]) -> None:
    s = _session(parts)
    s.utterance("agent", "您好", 5.0, 6.0)
    cases = [(lambda: s.utterance("robot", "x"), "bad_role"),
             (lambda: s.utterance("agent", "x", 3.0, 2.0), "bad_time"),
             (lambda: s.utterance("agent", "x", 1.0, 2.0), "out_of_order"),
             (lambda: s.utterance("agent", "x", final=False), "bad_partial"),
             (lambda: s.event("hold", phase="end", at=3.0), "bad_event")]
    for call, code in cases:
        with pytest.raises(LiveError) as exc:
            call()
        assert exc.value.code == code and exc.value.message
    s.hangup("customer")
    with pytest.raises(LiveError) as exc:
        s.utterance("agent", "再见", 7.0, 8.0)
    assert exc.value.code == "ended"
    with pytest.raises(LiveError) as exc:
        _session(parts).hangup()
    assert exc.value.code == "empty"


def test_since_replays_items(parts: tuple[Checker, Any]) -> None:
    s = _session(parts)
    a = s.start() + s.utterance("agent", "您好，我是工号1023，请问有什么可以帮您", 0.0, 3.0)
    assert s.since(0) == a and s.since(2) == a[2:]


def test_rules_lint_checks_the_guidance(tmp_path: Any) -> None:
    import shutil
    from pathlib import Path

    from typer.testing import CliRunner

    from kefuqa.cli import app
    from kefuqa.rules.rulebook import BUNDLED

    runner = CliRunner()
    ok = runner.invoke(app, ["rules", "lint", "standard"])
    assert ok.exit_code == 0 and "16 张情景卡片" in ok.output
    folder = Path(tmp_path) / "rb"
    shutil.copytree(Path(BUNDLED) / "standard", folder)
    g = folder / "guidance.yaml"
    g.write_text(g.read_text(encoding="utf-8").replace("alerts:\n", "alerts:\n  colour: red\n", 1), encoding="utf-8")
    bad = runner.invoke(app, ["rules", "lint", str(folder)])
    assert bad.exit_code == 1
    assert "guidance.yaml:" in bad.output and "未知的键 'colour'" in bad.output


# ---- a weak model reading live: it waits for its support instead of showing and being withdrawn ----------

WEAK = "你们客服电话太难打了"  # a complaint the fast model reads above EVT001's threshold but under its `sure`
SUPPORT = "我的订单被取消了也没人通知我"  # another turn leaning complaint (≥ the rule's `support`)
CALM = ["我想查一下我的订单", "哦那我知道了，谢谢"]


def _say(s: LiveSession, turns: list[tuple[str, str]]) -> list[list[dict[str, Any]]]:
    return [s.utterance(role, text, k * 3.0, k * 3.0 + 2.0) for k, (role, text) in enumerate(turns)]


def test_weak_model_reading_waits_for_support_live(parts: tuple[Checker, Any]) -> None:
    checker = parts[0]
    rule = next(r for r in checker.rulebook.rules if r.id == "EVT001")
    weak, support = checker.judges.get("fast").judge_many([WEAK, SUPPORT], "complaint")
    assert rule.threshold <= weak.score < rule.sure and support.score >= rule.support  # what the test is about
    said = {"EVT001", "complaint"}

    def shown(items: list[dict[str, Any]]) -> list[str]:
        return [i.get("rule") or i.get("id") for i in items if i["kind"] in ("event", "card", "retract")
                and (i.get("rule") or i.get("id")) in said]

    # calm afterwards: never shown, so nothing to withdraw; the whole call agrees
    s = _session(parts)
    steps = _say(s, [("agent", "您好，请问有什么可以帮您？"), ("customer", WEAK), ("agent", "好的我帮您查一下"),
                     ("customer", CALM[0]), ("agent", "查到了"), ("customer", CALM[1])])
    end = s.hangup("customer")
    assert [shown(x) for x in steps] == [[]] * len(steps) and shown(end) == []
    assert "EVT001" not in {e.rule for e in s.report.events}
    # the support comes later: the event and the complaint card come with it, and stay
    s = _session(parts)
    steps = _say(s, [("agent", "您好，请问有什么可以帮您？"), ("customer", WEAK), ("agent", "好的我帮您查一下"),
                     ("customer", SUPPORT)])
    assert [shown(x) for x in steps[:3]] == [[]] * 3
    assert set(shown(steps[3])) == said
    end = s.hangup("customer")
    assert not [i for i in end if i["kind"] == "retract"] and "EVT001" in {e.rule for e in s.report.events}
    # a call too short to ask the rest of it: the final check lets the weak reading stand, sent at hang-up
    s = _session(parts)
    steps = _say(s, [("agent", "您好，请问有什么可以帮您？"), ("customer", WEAK), ("agent", "好的我帮您反映")])
    assert [shown(x) for x in steps] == [[]] * 3
    end = s.hangup("customer")
    ev = [i for i in end if i["kind"] == "event" and i["rule"] == "EVT001"]
    assert len(ev) == 1 and ev[0]["live"] is False and ev[0]["utterance"] == 1
    assert s.report.to_dict() == checker.check(s.conversation(ended_by="customer")).to_dict()


def test_an_event_a_later_turn_withdraws_is_retracted(tmp_path: Any) -> None:
    """A company rule whose exception may come in the customer's next turn: shown live, withdrawn with a
    `retract` item as soon as that turn comes (like a finding), never silently left standing."""
    book = tmp_path / "company.yaml"
    book.write_text("name: company\nextends: standard\noverride:\n  EVT003: {near_turns: 1, unless_near: [算了不用了]}\n",
                    encoding="utf-8")
    rb = load_rulebook(str(book))
    s = LiveSession(Checker(rb), load_guidance("standard", {r.id for r in rb.rules}), {"id": "t"})
    s.start()
    steps = _say(s, [("agent", "您好，请问有什么可以帮您？"), ("customer", "叫你们领导来接电话"), ("agent", "好的您稍等"),
                     ("customer", "算了不用了，你帮我查一下就行"), ("agent", "好的，再见")])
    live = [i for i in steps[1] if i["kind"] == "event"]
    assert [(i["rule"], i["live"]) for i in live] == [("EVT003", True)]
    back = [i for i in steps[3] if i["kind"] == "retract"]  # the customer's 算了不用了
    assert [(i["item"], i["event"], i["rule"]) for i in back] == [(live[0]["key"],) * 2 + ("EVT003",)]
    assert "不成立" in back[0]["message"]
    assert not [i for step in steps[4:] for i in step if i["kind"] in ("retract", "event")]
    end = s.hangup("customer")
    assert "EVT003" not in {e.rule for e in s.report.events}
    assert not [i for i in end if i["kind"] in ("retract", "event")]  # said once, not again at hang-up


@pytest.mark.parametrize(("said", "ticks"), [
    ("您的订单号是2606180937552，对吗？", ["readback"]),  # a regex with no literal it needs: runs on every utterance
    ("订单号多少？", []),
    ("我帮您查询一下，大约需要1分钟，请您稍等一下好吗？", ["hold"]),  # asked, with a reason and a time
    ("好的，我帮您核实一下，能不能请您稍等片刻", ["hold"]),
    ("请您稍等一下好吗", []),  # asked, but no reason or time
    ("请您稍等，我帮您查一下物流。", []),  # a reason, but not asked (the regex's literal alone is no match)
    ("您等一下", []),
])
def test_checklist_regex_items_tick_only_when_they_match(parts: tuple[Checker, Any], said: str, ticks: list[str]) -> None:
    """Read-back of the number and the hold request (with its reason and time) tick as the agent says them;
    a regex item ticks on what the regex matches, never on the literal the automaton pre-filters with."""
    s = _session(parts)
    s.start()
    got = s.utterance("agent", said, 0.0, 3.0)
    assert [i["id"] for i in got if i["kind"] == "check" and i["group"] == "inbound"
            and i["id"] in ("readback", "hold")] == ticks


@pytest.mark.parametrize(("request_", "alerted"), [("等着。", True),
                                                   ("我帮您查询一下，大约需要1分钟，请您稍等一下好吗？", False)])
def test_hold_request_is_decided_as_the_hold_begins(parts: tuple[Checker, Any], request_: str, alerted: bool) -> None:
    """HLD001 looks at the agent's turns before a hold: decided live, the moment the hold starts (the alert
    with the prescribed request), the same finding the whole call gives — nothing withdrawn at hang-up."""
    assert "HLD001" in live_rules(parts[0])
    s = _session(parts)
    s.start()
    s.utterance("agent", "您好，请问有什么可以帮您？", 0.0, 2.0)
    s.utterance("customer", "我想查一下话费", 2.5, 4.0)
    s.utterance("agent", request_, 4.5, 6.0)
    begun = s.event("hold", phase="start", at=6.5)
    alerts = [i for i in begun if i["kind"] == "alert" and i["rule"] == "HLD001"]
    assert len(alerts) == int(alerted)
    if alerted:
        assert "请您稍等一下好吗" in alerts[0]["say_instead"]
    rest = s.tick(40.0) + s.event("hold", phase="end", at=45.0) + s.utterance("agent", "感谢您的耐心等待，查到了", 45.5, 47.0)
    end = s.hangup("customer")
    assert not [i for i in rest + end if i.get("rule") == "HLD001" and i["kind"] in ("finding", "alert", "retract")]
    assert ("HLD001" in {f.rule for f in s.report.findings}) is alerted


def test_a_rulebook_that_extends_another_uses_its_guidance(parts: tuple[Checker, Any]) -> None:
    """utility-95598 (the standard rulebook plus the 95598 scripts) has no guidance file of its own: it uses
    the standard one, so the agent on the 95598 hotline gets the alerts, checklists and cards; an uploaded
    rulebook that extends a bundled one likewise, less what its disabled rules would show."""
    from typer.testing import CliRunner

    from kefuqa.cli import app
    from kefuqa.rules.rulebook import load_rulebook_text
    from kefuqa.service.live_calls import Engine

    standard = parts[1]
    rb = load_rulebook("utility-95598")
    g = load_guidance("utility-95598", {r.id for r in rb.rules})
    assert g == standard and g.cards and g.alerts.rules
    s = LiveSession(Checker(rb), g, {"id": "t", "direction": "inbound"})
    s.start()
    got = s.utterance("customer", "又停电了，叫你们领导来接电话", 0.0, 2.0) + s.utterance("agent", "我不是跟你说过了吗", 2.5, 4.0)
    assert {i["id"] for i in got if i["kind"] == "card"} >= {"s09-leader"}
    assert any(i["kind"] == "alert" and "可能我刚才没有解释清楚" in i["say_instead"] for i in got)
    lint = CliRunner().invoke(app, ["rules", "lint", "utility-95598"])
    assert lint.exit_code == 0 and "guidance.yaml（继承自 standard）" in lint.output and "16 张情景卡片" in lint.output
    up = load_rulebook_text("name: acme\nextends: standard\ndisable: [EVT003]\n", "acme.yaml")
    eng = Engine.build("acme 1", Checker(up), up.name, None)
    assert eng.guidance == standard
    s = LiveSession(eng.checker, eng.guidance, {"id": "t"}, compiled=eng.compiled, live_ids=eng.live_ids)
    got = s.utterance("customer", "又停电了，叫你们领导来接电话", 0.0, 2.0) + s.utterance("agent", "我不是跟你说过了吗", 2.5, 4.0)
    assert "s09-leader" not in [i["id"] for i in got if i["kind"] == "card"]  # only the disabled EVT003 shows it
    assert any(i["kind"] == "alert" and i["rule"] == "LNG001" for i in got)
    alone = load_rulebook_text("name: solo\nrules:\n  - {id: X001, name: 禁语, kind: phrase, severity: minor, points: 1, dimension: 全部,"
                               " message: 禁语, phrases: [随便]}\nscorecard: {name: solo, dimensions: [{name: 全部, max: 100}]}\n",
                               "solo.yaml")
    assert Engine.build("solo 1", Checker(alone), alone.name, None).guidance == Guidance()


def test_95598_cards_only_in_calls_about_electricity(parts: tuple[Checker, Any]) -> None:
    """A caller who asks for a manager gets the 95598 script (如果您有用电方面的问题…) only in a call that has
    spoken of electricity; in a shop's call the request is an event, with no card of another industry."""
    def cards(turns: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
        s = _session(parts)
        items = [i for k, (role, text) in enumerate(turns) for i in s.utterance(role, text, k * 3.0, k * 3.0 + 2.0)]
        return [i["id"] for i in items if i["kind"] == "card"], [i["rule"] for i in items if i["kind"] == "event"]

    shop = cards([("agent", "您好，优选商城售后，请问有什么可以帮您？"), ("customer", "我买的扫地机坏了，叫你们领导来接电话")])
    assert "EVT003" in shop[1] and "s09-leader" not in shop[0]
    grid = cards([("agent", "您好，95598，请问有什么可以帮您？"), ("customer", "我家停电两个小时了"),
                  ("agent", "好的，我帮您查一下"), ("customer", "叫你们领导来接电话")])
    assert "EVT003" in grid[1] and "s09-leader" in grid[0]
    said = cards([("agent", "您好，请问有什么可以帮您？"), ("customer", "我不认可这个结果，电费怎么这么多")])  # topic in the same turn
    assert "s10-final-answer" in said[0]


def test_a_flat_no_the_next_turn_explains_is_withdrawn_at_once(parts: tuple[Checker, Any]) -> None:
    """RSP002: 退不了 alone is a flat no (alert); the agent's next turn gives the reason and another way, so
    the alert is withdrawn right then — the whole call agrees at hang-up, and says nothing more about it."""
    s = _session(parts)
    s.start()
    s.utterance("agent", "您好，请问有什么可以帮您？", 0.0, 2.0)
    s.utterance("customer", "我要退货", 2.5, 3.5)
    no = s.utterance("agent", "这个退不了", 4.0, 5.0)
    alert = next(i for i in no if i["kind"] == "alert" and i["rule"] == "RSP002")
    why = s.utterance("agent", "因为已经超过七天了，不过我可以帮您申请换货", 5.2, 8.0)
    back = [i for i in why if i["kind"] == "retract"]
    assert [(i["rule"], "alert:" + i["item"]) for i in back] == [("RSP002", alert["key"])]
    end = s.hangup("customer")
    assert "RSP002" not in {f.rule for f in s.report.findings}
    assert not [i for i in end if i.get("rule") == "RSP002"]
