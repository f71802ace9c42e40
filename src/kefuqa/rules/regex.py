"""Rule regexes that cannot freeze a checker: an inspector's typo must never stop a contact center.

Python's `re` backtracks: ``(a+)+$`` takes exponential time on ``aaaa…b``. Every rule regex is looked
at once, when the rulebook loads:

- a pattern whose shape can backtrack badly (`risk`: a repeat inside a repeat, a repeated alternation,
  three or more unbounded repeats in a row) runs on **RE2** (google-re2), which matches in linear time;
- such a pattern RE2 cannot express (lookarounds ``(?=…)``/``(?<!…)``, backreferences) is a lint error
  (file, line, a Chinese reason that points to ``unless`` / ``unless_near``, which say the same safely);
- every other pattern runs on `re` as before (the bundled rulebooks use lookarounds in bounded,
  single-repeat patterns, which backtrack at most polynomially over one utterance).

RE2's ``\\d``, ``\\s``, ``\\w`` are ASCII-only; that only concerns patterns that would otherwise be risky.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Protocol

try:  # Python 3.11+
    import re._constants as sre_constants
    import re._parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None))
_UNBOUNDED = sre_constants.MAXREPEAT


class RuleMatch(Protocol):
    def start(self) -> int: ...

    def end(self) -> int: ...


class RulePattern(Protocol):
    """What the engine needs of a compiled rule regex (a `re.Pattern` or an RE2 pattern)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> Any: ...

    def finditer(self, text: str) -> Iterator[Any]: ...


def _walk(items: Any, depth: int, counts: dict[str, int]) -> None:
    """Count, over the parsed pattern: repeats nested in repeats, alternations under a repeat, and the
    longest run of unbounded repeats that no fixed character separates (``.*.*.*`` is a run of 3,
    ``\\s*什么\\s*`` two runs of 1)."""
    run = 0
    for op, arg in items:
        if op in _REPEATS:
            lo, hi, sub = arg
            if hi == _UNBOUNDED:
                run += 1
                counts["run"] = max(counts["run"], run)
            if hi > 1:
                if depth > 0:
                    counts["nested"] += 1
                _walk(sub, depth + 1, counts)
            else:
                _walk(sub, depth, counts)
            continue
        if op is sre_constants.LITERAL:
            run = 0
        elif op is sre_constants.BRANCH:
            if depth > 0:
                counts["branch"] += 1
            for br in arg[1]:
                _walk(br, depth, counts)
        elif op is sre_constants.SUBPATTERN:
            _walk(arg[-1], depth, counts)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            _walk(arg[1], depth, counts)
        elif op is getattr(sre_constants, "ATOMIC_GROUP", None):
            _walk(arg, depth, counts)
        elif op is sre_constants.GROUPREF_EXISTS:
            for part in arg[1:]:
                if part is not None:
                    _walk(part, depth, counts)


def risk(pattern: str) -> str | None:
    """Why `pattern` may backtrack exponentially (or with a high polynomial) under `re`, in Chinese, or
    None. Raises `re.error` for a pattern that does not parse."""
    counts = {"nested": 0, "branch": 0, "run": 0}
    _walk(sre_parse.parse(pattern), 0, counts)
    if counts["nested"]:
        return "重复里套着重复（如 (a+)+）"
    if counts["branch"]:
        return "重复的分组里有多个选项（如 (a|ab)*）"
    if counts["run"] >= 3:
        return "有三个以上相邻的不限次数重复（如 .*.*.*）"
    return None


def _re2(pattern: str) -> RulePattern | None:
    """`pattern` compiled by RE2, or None when RE2 cannot express it."""
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would print its parse error on stderr
    try:
        return re2.compile(pattern, options)  # type: ignore[no-any-return]
    except re2.error:
        return None


def compile_rule_regex(pattern: str) -> RulePattern:
    """Compile a rule's regex safely; ValueError (in Chinese) when it is invalid or can backtrack
    badly and RE2 cannot run it."""
    try:
        compiled = re.compile(pattern)
        why = risk(pattern)
    except re.error as exc:
        raise ValueError(f"正则表达式 {pattern!r} 写法有误：{exc}") from None
    if why is None:
        return compiled
    safe = _re2(pattern)
    if safe is None:
        raise ValueError(
            f"正则表达式 {pattern!r} {why}，遇到某些句子会回溯极久、卡住质检；"
            "其中的环视（?= ?! ?<= ?<!）或反向引用又无法交给线性时间的 RE2 引擎执行。"
            "请去掉嵌套的重复，或把环视改写为短语的 unless（这些更长的说法里不算）/ unless_near（同一句或附近说了就不算）"
        )
    return safe


def engine_of(compiled: RulePattern) -> str:
    """'re' or 're2': which engine runs a compiled rule regex."""
    return "re" if isinstance(compiled, re.Pattern) else "re2"
