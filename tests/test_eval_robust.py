"""bench/eval_robust.py's transforms: deterministic, and they change only the texts of the utterances."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from kefuqa.model import Conversation
from kefuqa.normalize import syllable

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def robust():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("eval_robust", BENCH / "eval_robust.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def _conv() -> Conversation:
    return Conversation.model_validate({
        "id": "T-1", "channel": "phone", "direction": "inbound",
        "utterances": [
            {"role": "agent", "text": "您好，请问有什么可以帮您？", "start": 0.5, "end": 2.0},
            {"role": "customer", "text": "我的电话是13912345678，三天了还没到。", "start": 2.4, "end": 6.1},
            {"role": "agent", "text": "好的，我帮您查一下软件里的记录。", "start": 6.5, "end": 9.0},
            {"role": "customer", "text": "", "start": 9.5, "end": 9.9},
        ],
    })


def test_every_transform_is_deterministic_and_keeps_roles_and_times(robust):
    conv = _conv()
    chars = set("".join(u.text or "" for u in conv.utterances)) | set("话画化华滑")
    fns = robust.transforms(chars, rate=0.5, filler_rate=0.5)
    for name, fn in fns.items():
        a = robust.transform_conversation(conv, fn, name, seed=7)
        b = robust.transform_conversation(conv, fn, name, seed=7)
        assert [u.text for u in a.utterances] == [u.text for u in b.utterances], name
        assert a.id == conv.id and len(a.utterances) == len(conv.utterances)
        for old, new in zip(conv.utterances, a.utterances, strict=True):
            assert (new.role, new.start, new.end) == (old.role, old.start, old.end), name
        assert conv.utterances[0].text == "您好，请问有什么可以帮您？"  # the original is not changed
    changed = {name for name, fn in fns.items()
               if [u.text for u in robust.transform_conversation(conv, fn, name, 7).utterances]
               != [u.text for u in conv.utterances]}
    assert changed == set(fns)  # each one does something to this call


def test_homophones_keep_the_reading_and_the_seed_matters(robust):
    table = robust.homophone_table("话画化华滑在再载")
    assert set(table["在"]) == {"再", "载"} and "在" not in table["在"]
    fn = robust.make_homophone(table, 1.0)
    import random
    out = fn("在话", random.Random(1))
    assert [syllable(c) for c in out] == [syllable("在"), syllable("话")] and out != "在话"
    conv = _conv()
    texts = {tuple(u.text for u in robust.transform_conversation(conv, robust.make_homophone(
        robust.homophone_table("".join(u.text or "" for u in conv.utterances) + "话画化滑在再"), 0.5),
        "homophone", seed).utterances) for seed in range(5)}
    assert len(texts) > 1


def test_numbers_both_ways(robust):
    assert robust.num2zh("等了15分钟，电话13912345678") == "等了十五分钟，电话幺三九幺二三四五六七八"
    assert robust.num2zh("2000元，205号") == "两千元，二百零五号"
    assert robust.zh2num("三天了，幺三九幺二三四五六七八") == "3天了，13912345678"
    assert robust.nopunct("好的，谢谢！ ok") == "好的谢谢ok"
