"""At hang-up a live session's report equals `kefuqa check` of the whole conversation: every example in
examples/ and generated calls (random utterances from a pool of right and wrong wording, random times with
overlaps and gaps, random holds, transfers and call fields), fed one utterance at a time."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from kefuqa.engine import Checker
from kefuqa.errors import InputError
from kefuqa.live import LiveSession, compile_guidance, live_rules, load_guidance
from kefuqa.model import Conversation
from kefuqa.readers import iter_paths, read_path
from kefuqa.rules.rulebook import load_rulebook

from .feed import call_meta, feed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def engine() -> tuple[Checker, Any, Any, list[str]]:
    rb = load_rulebook("standard")
    checker = Checker(rb)
    g = load_guidance("standard", {r.id for r in rb.rules})
    return checker, g, compile_guidance(g), live_rules(checker)


def _final(engine: Any, conv: Conversation, partials: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    checker, g, compiled, ids = engine
    s = LiveSession(checker, g, call_meta(conv), compiled=compiled, live_ids=ids)
    items = feed(s, conv, partials=partials)
    assert s.report is not None
    return s.report.to_dict(), items


def _expected(checker: Checker, conv: Conversation) -> dict[str, Any]:
    return checker.check(conv).to_dict()


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "notes"}  # reader notes (roles inferred …) are not said live


CONVS = [c for p in iter_paths([EXAMPLES]) for c in read_path(p) if not isinstance(c, InputError)]


@pytest.mark.parametrize("conv", CONVS, ids=[c.id for c in CONVS])
def test_example_final_report_equals_check(engine: Any, conv: Conversation) -> None:
    got, items = _final(engine, conv)
    assert _strip(got) == _strip(_expected(engine[0], conv))
    seqs = [i["seq"] for i in items]
    assert seqs == list(range(1, len(seqs) + 1))  # every item once, in order
    assert len({i["key"] for i in items}) == len(items)


AGENT = ["您好，这里是客服中心，我是工号1023，请问有什么可以帮您？", "请问您贵姓？", "我不是跟你说过了吗", "我怎么知道",
         "请您稍等，我帮您查询一下，大约需要一分钟", "感谢您的耐心等待", "这跟我们没关系", "不行就是不行", "嗯",
         "好的，您继续讲", "您的号码是13812345678，对吗？", "非常抱歉给您带来不便", "我们会在3个工作日内给您回复",
         "请问还有其他可以帮您的吗？", "感谢您的来电，再见", "啊？什么？", "现在为您转接到维修部，您看可以吗",
         "可能吧", "就是说这个这个", "您的心情我非常理解", "早上好"]
CUSTOMER = ["我家停电了", "我要投诉你们！", "叫你们领导来接电话", "气死我了！！", "你这个废物", "我的号码是13812345678",
            "好的", "谢谢", "什么时候来电", "我没有户号", "", "喂？", "你们怎么搞的，好几次了", "嗯嗯", "具体是怎么计算的"]


def _generated(seed: int) -> Conversation:
    rnd = random.Random(seed)
    t = rnd.choice([0.0, 2.0])
    utts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    timed = rnd.random() > 0.15
    for _ in range(rnd.randint(1, 24)):
        role = rnd.choice(["agent", "customer", "agent", "customer", "system"] if rnd.random() < 0.1 else
                          ["agent", "customer"])
        text = rnd.choice(AGENT if role != "customer" else CUSTOMER)
        dur = rnd.uniform(0.5, 12.0)
        if rnd.random() < 0.15 and utts:
            t = max(utts[-1].get("start", 0.0), t - rnd.uniform(0.2, 2.5))  # overlaps the previous turn
        u: dict[str, Any] = {"role": role, "text": text}
        if timed:
            u |= {"start": round(t, 2), "end": round(t + dur, 2)}
        utts.append(u)
        t += dur + rnd.choice([0.2, 0.5, 1.0, 3.0, 12.0, 40.0])
        if timed and rnd.random() < 0.12:
            h = rnd.uniform(5, 70)
            events.append({"type": "hold", "start": round(t, 2), "end": round(t + h, 2)})
            t += h + 0.5
        if timed and rnd.random() < 0.05:
            events.append({"type": "transfer", "at": round(t, 2), "target": "维修部"})
    data: dict[str, Any] = {"id": f"gen-{seed}", "utterances": utts, "events": events}
    if rnd.random() < 0.7:
        data["channel"] = rnd.choice(["phone", "phone", "chat", "email"])
    if rnd.random() < 0.7:
        data["direction"] = rnd.choice(["inbound", "outbound"])
    if rnd.random() < 0.5:
        data["started_at"] = f"2026-03-05T{rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}:00+08:00"
    if rnd.random() < 0.5:
        data["ring_seconds"] = rnd.choice([2.0, 18.0, 35.0])
    if rnd.random() < 0.7:
        data["ended_by"] = rnd.choice(["customer", "agent", "system"])
    if rnd.random() < 0.3:
        data["agent"] = {"id": "A1", "name": "王芳", "team": "一组"}
    return Conversation.model_validate(data)


@pytest.mark.parametrize("seed", range(80))
def test_generated_final_report_equals_check(engine: Any, seed: int) -> None:
    conv = _generated(seed)
    got, _ = _final(engine, conv, partials=seed % 2 == 0)
    assert _strip(got) == _strip(_expected(engine[0], conv))
