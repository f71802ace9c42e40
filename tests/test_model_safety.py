"""`unsafe_value` finds what no layer can store or normalise (NUL, lone surrogates, deep nesting, a huge
id) with its place; its fast walk never calls something safe that the located walk would refuse."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kefuqa.model import MAX_DEPTH, Conversation, unsafe_value


def _nest(depth: int, leaf: Any) -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


@pytest.mark.parametrize("bad, where", [
    ("a\x00b", ("utterances", 1, "text")),
    ("x\ud800y", ("utterances", 1, "text")),
])
def test_a_bad_string_is_found_with_its_place(bad: str, where: tuple[Any, ...]) -> None:
    data = {"id": "c1", "utterances": [{"role": "agent", "text": "您好"}, {"role": "customer", "text": bad}]}
    found = unsafe_value(data)
    assert found is not None and found[0] == where
    with pytest.raises(ValueError):
        Conversation.model_validate(data)


def test_a_bad_key_and_deep_nesting_are_found() -> None:
    assert unsafe_value({"id": "c", "attrs": {"k\x00": 1}}) is not None
    assert unsafe_value({"id": "c", "attrs": _nest(MAX_DEPTH + 2, 1)}) is not None
    assert unsafe_value({"id": "c", "attrs": _nest(MAX_DEPTH - 3, "ok")}) is None


def test_fast_and_located_walks_agree_on_random_input() -> None:
    rng = random.Random(7)
    leaves = ["您好", "ok", "", "a\x00", "\udc80", 1, 2.5, None, True]

    def build(depth: int) -> Any:
        r = rng.random()
        if depth > MAX_DEPTH + 3 or r < 0.3:
            return rng.choice(leaves)
        if r < 0.65:
            return [build(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["a", "b", "k\x00", "text"]): build(depth + 1) for _ in range(rng.randint(0, 3))}

    seen = {True: 0, False: 0}
    for _ in range(3000):
        data = {"id": "c", "attrs": build(rng.choice([0, MAX_DEPTH - 4, MAX_DEPTH - 1]))}
        found = unsafe_value(data)
        # the located walk alone, as before the fast path: a value deeper than MAX_DEPTH or a bad string/key
        def located(value: Any, depth: int) -> bool:
            if depth > MAX_DEPTH:
                return True
            if isinstance(value, str):
                return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)
            if isinstance(value, dict):
                return any(located(k, depth) for k in value) or any(located(v, depth + 1) for v in value.values())
            if isinstance(value, list):
                return any(located(v, depth + 1) for v in value)
            return False
        expect = located(data, 0)
        assert (found is not None) == expect, data
        seen[expect] += 1
    assert seen[True] > 100 and seen[False] > 100  # both kinds were tried
