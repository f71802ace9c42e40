"""Plain-text transcripts: one utterance per line with a role prefix.

    [00:01.2-00:03.4] 坐席：您好，这里是XX公司客服部，请问有什么可以帮您？
    [00:04-00:09] 客户: 我家宽带断了
    接着说的话（没有前缀的行接在上一句后面）

Prefixes: 坐席/座席/客服/客户/用户/A/B (A = agent, B = customer) and the other role words of
`kefuqa.model.ROLE_ALIASES`, optionally with a name in brackets (``客服(1023)：``), then a full- or
half-width colon. A leading ``[start-end]`` or ``[start]`` gives times (seconds, mm:ss(.s), hh:mm:ss).
The file is one conversation whose id is the file stem. Text is kept as written (Traditional Chinese
included); normalisation happens later.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from kefuqa.errors import InputError
from kefuqa.model import Conversation, normalize_role

from .common import make_utterance, to_seconds, validate_conversation
from .source import ReadOptions, Source, head_text

_ROLE_WORDS = (
    "客服代表",
    "工作人员",
    "话务员",
    "来电人",
    "坐席",
    "座席",
    "客服",
    "客户",
    "用户",
    "顾客",
    "业主",
    "系统",
)
_ROLE = "|".join(_ROLE_WORDS) + r"|(?i:agent|customer|ivr)|A|B"
_STAMP = r"[\[【](?P<stamp>[^\]】]{1,40})[\]】]"
PREFIX = re.compile(
    rf"^\s*(?:{_STAMP}\s*)?(?P<role>{_ROLE})\s*(?:[(（][^)）]{{0,20}}[)）])?\s*[:：]\s?(?P<text>.*)$"
)
_STAMP_ONLY = re.compile(rf"^\s*{_STAMP}")
_RANGE = re.compile(r"\s*(?:-->|[-~–—至])\s*")


def sniff_text(head: bytes, name: str) -> bool:
    lines = [ln for ln in head_text(head).splitlines() if ln.strip()][:10]
    return any(PREFIX.match(ln) for ln in lines)


def _times(stamp: str) -> tuple[float | None, float | None]:
    """'00:01.2-00:03.4' -> (1.2, 3.4); '00:00:01' -> (1.0, None). Raises ValueError."""
    parts = _RANGE.split(stamp.strip(), maxsplit=1)
    start = to_seconds(parts[0])
    end = to_seconds(parts[1]) if len(parts) > 1 else None
    return start, end


def _is_time_stamp(line: str) -> bool:
    m = _STAMP_ONLY.match(line)
    if m is None:
        return False
    try:
        _times(m["stamp"])
    except ValueError:
        return False  # "[通话记录]" is a title, not a time
    return True


def _join(before: str, after: str) -> str:
    if before and after and _latin(before[-1]) and _latin(after[0]):
        return f"{before} {after}"
    return before + after


def _latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def read_text(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
    text = src.text()
    if isinstance(text, InputError):
        yield text
        return
    yield parse_transcript(text, src)


def parse_transcript(text: str, src: Source) -> Conversation | InputError:
    turns: list[dict[str, Any]] = []
    lines: list[int] = []  # line number of each utterance
    skipped = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = PREFIX.match(line)
        if m is None:
            if _is_time_stamp(line):
                return InputError(
                    src.name, f"第 {number} 行", "有时间但没有角色前缀（坐席：/客户：/A:/B:）"
                )
            if turns:
                turns[-1]["text"] = _join(turns[-1]["text"], line.strip())
            else:
                skipped += 1
            continue
        turn: dict[str, Any] = {"role": normalize_role(m["role"]), "text": m["text"].strip()}
        if m["stamp"]:
            try:
                turn["start"], turn["end"] = _times(m["stamp"])
            except ValueError as e:
                return InputError(src.name, f"第 {number} 行", f"时间 [{m['stamp']}]：{e}")
        turns.append(turn)
        lines.append(number)
    if not turns:
        return InputError(
            src.name, None, "没有一行以角色前缀开头（坐席：/客户：/客服：/用户：/A:/B:）"
        )
    utterances = []
    for turn, number in zip(turns, lines, strict=True):
        try:
            utterances.append(make_utterance(turn))
        except ValueError as e:
            return InputError(src.name, f"第 {number} 行", str(e))
    notes = [f"第一个角色前缀之前的 {skipped} 行已跳过"] if skipped else []
    data = {"id": src.stem, "utterances": utterances, "source": src.name, "notes": notes}
    return validate_conversation(data, src.name, lambda loc: _line_of(loc, lines))


def _line_of(loc: tuple[int | str, ...], lines: list[int]) -> str | None:
    """('utterances', 3, 'text') -> 'line 17': the transcript line the utterance starts on."""
    if len(loc) >= 2 and loc[0] == "utterances" and isinstance(loc[1], int) and loc[1] < len(lines):
        return f"第 {lines[loc[1]]} 行"
    return None
