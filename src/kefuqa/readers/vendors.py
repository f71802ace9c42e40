"""ASR vendors' result JSON: Alibaba Cloud recording-file recognition, FunASR, AWS Transcribe Call Analytics.

- ``aliyun``: ``Result.Sentences[]`` (GetTaskResult), ``Sentences[]`` (callback) or
  ``flash_result.sentences[]`` (极速版) with ``BeginTime``/``EndTime`` in ms, ``ChannelId``, ``Text``,
  ``SpeechRate`` and ``EmotionValue`` (the flash API spells them ``begin_time``, ``channel_id`` …).
  Channel 0 is the agent and 1 the customer (``swap_roles`` for the other way round). A mono file with
  speaker diarization (one channel, several ``SpeakerId``) takes the first speaker as the agent.
- ``funasr``: ``sentence_info[]`` with ``text``, ``start``/``end`` in ms and ``spk`` (0 = agent), or a
  list of such results ``[{"key": …, "text": …, "sentence_info": […]}]``; ``key`` becomes the id.
- ``aws``: ``Transcript[]`` with ``BeginOffsetMillis``, ``EndOffsetMillis``, ``ParticipantRole``
  (AGENT/CUSTOMER), ``Content`` and ``Sentiment``; ``JobName`` becomes the id.

A list at the top level holds several results (ids ``stem#N`` unless they carry their own).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from kefuqa.errors import InputError
from kefuqa.model import Conversation, Utterance, normalize_role

from .common import (
    conversation_id,
    load_json,
    make_utterance,
    ms_to_seconds,
    prefixed,
    type_name,
    validate_conversation,
)
from .native import JSON_LIST, NATIVE_KEY
from .source import ReadOptions, Source, head_text

# ---- sniffing ---------------------------------------------------------------------------------------


def _json_with(head: bytes, *patterns: str) -> bool:
    text = head_text(head).lstrip()
    if not (text.startswith("{") or JSON_LIST.match(text)) or NATIVE_KEY.search(text):
        return False
    return all(re.search(p, text) for p in patterns)


def sniff_aliyun(head: bytes, name: str) -> bool:
    return _json_with(head, r'"Sentences"\s*:\s*\[') or _json_with(head, r'"flash_result"\s*:\s*\{')


def sniff_funasr(head: bytes, name: str) -> bool:
    return _json_with(head, r'"sentence_info"\s*:\s*\[')


def sniff_aws(head: bytes, name: str) -> bool:
    return _json_with(
        head, r'"Transcript"\s*:\s*\[', r'"(?:ParticipantRole|ParticipantId|BeginOffsetMillis)"'
    )


# ---- shared -----------------------------------------------------------------------------------------


class _Bad(Exception):
    """A problem at a place inside one result."""

    def __init__(self, place: str, reason: str) -> None:
        super().__init__(reason)
        self.place = place
        self.reason = reason


def _results(value: Any) -> list[tuple[str, Any]]:
    """(place prefix, result) for a single result or a top-level list of them."""
    if isinstance(value, list):
        return [(f"[{i}].", item) for i, item in enumerate(value)]
    return [("", value)]


def _field(item: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in item:
            return item[name]
    return None


def _read_results(
    src: Source, convert: Callable[[Any, str, str], dict[str, Any]], what: str
) -> Iterator[Conversation | InputError]:
    """Load the JSON and convert each result into conversation data; errors stay per result."""
    value = load_json(src)
    if isinstance(value, InputError):
        yield value
        return
    results = _results(value)
    if not results:
        yield InputError(src.name, None, f"文件是一个空列表：没有{what}结果")
        return
    for n, (prefix, result) in enumerate(results, 1):
        fallback = conversation_id(src.stem, n if len(results) > 1 else None)
        try:
            if not isinstance(result, dict):
                raise _Bad(
                    prefix.rstrip(".") or "", f"应为{what}结果对象，实际是{type_name(result)}"
                )
            data = convert(result, prefix, fallback)
        except _Bad as e:
            yield InputError(src.name, e.place or None, e.reason)
            continue
        data["source"] = src.name
        yield validate_conversation(data, src.name, prefixed(prefix.rstrip(".") or None))


def _sentences(result: dict[str, Any], path: str, key_path: tuple[str, ...]) -> list[Any]:
    value: Any = result
    for key in key_path:
        if isinstance(value, str) and value.strip().startswith("{"):  # a Result sent as a JSON string
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                raise _Bad(path, "Result 是字符串，但不是有效的 JSON") from None
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, list):
        raise _Bad(path, f"{'.'.join(key_path)} 应为列表，实际是{type_name(value)}")
    if not value:
        raise _Bad(path, "识别结果中没有句子")
    return value


def _utterance(place: str, data: dict[str, Any]) -> Utterance:
    try:
        return make_utterance(data)
    except ValueError as e:
        raise _Bad(place, str(e)) from None


def _times(item: dict[str, Any], place: str, begin: tuple[str, ...], end: tuple[str, ...]) -> dict[str, Any]:
    try:
        return {
            "start": ms_to_seconds(_field(item, *begin), begin[0]),
            "end": ms_to_seconds(_field(item, *end), end[0]),
        }
    except ValueError as e:
        raise _Bad(place, str(e)) from None


def _role_by_number(value: Any, place: str, what: str, swap: bool) -> str:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _Bad(place, f"{what} {value!r} is not 0 or 1") from None
    if number not in (0, 1):
        raise _Bad(place, f"{what} {number} 无法对应到坐席或客户（只有 0 和 1 可以）")
    return ("customer", "agent")[number] if swap else ("agent", "customer")[number]


# ---- Alibaba Cloud ----------------------------------------------------------------------------------


def read_aliyun(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
    def convert(result: dict[str, Any], prefix: str, fallback: str) -> dict[str, Any]:
        return _aliyun(result, prefix, fallback, options.swap_roles)

    return _read_results(src, convert, "阿里云录音识别")


def _aliyun(result: dict[str, Any], prefix: str, fallback: str, swap: bool) -> dict[str, Any]:
    status = result.get("StatusText")
    if isinstance(status, str) and not status.startswith("SUCCESS"):
        raise _Bad(f"{prefix}StatusText", f"识别没有成功：{status}")
    if "flash_result" in result:
        key_path: tuple[str, ...] = ("flash_result", "sentences")
    elif "Result" in result:
        key_path = ("Result", "Sentences")
    else:
        key_path = ("Sentences",)
    where = prefix + ".".join(key_path)
    sentences = _sentences(result, where, key_path)
    speakers = _speaker_order(sentences)
    notes = []
    if speakers:
        notes.append(
            "角色为推断：单声道说话人分离，第一个说话人视为坐席"
        )
    utterances = []
    for j, s in enumerate(sentences):
        place = f"{where}[{j}]"
        if not isinstance(s, dict):
            raise _Bad(place, f"应为句子对象，实际是{type_name(s)}")
        if speakers:
            speaker = str(_field(s, "SpeakerId", "speaker_id"))
            if speaker not in speakers[:2]:
                raise _Bad(
                    place, f"SpeakerId {speaker} 是第三个说话人；只能有坐席和客户两人"
                )
            role = _role_by_number(speakers.index(speaker), place, "speaker", swap)
        else:
            role = _role_by_number(_field(s, "ChannelId", "channel_id") or 0, place, "ChannelId", swap)
        data = {"role": role, "text": _field(s, "Text", "text")}
        data |= _times(s, place, ("BeginTime", "begin_time"), ("EndTime", "end_time"))
        attrs = {
            name: s[key]
            for name, key in (
                ("speech_rate", "SpeechRate"),
                ("emotion_value", "EmotionValue"),
                ("silence_duration", "SilenceDuration"),
            )
            if s.get(key) is not None
        }
        if attrs:
            data["attrs"] = attrs
        utterances.append(_utterance(place, data))
    return {"id": fallback, "utterances": utterances, "notes": notes}


def _speaker_order(sentences: list[Any]) -> list[str]:
    """Speakers in order of appearance when the audio is one channel with diarization, else []."""
    dicts = [s for s in sentences if isinstance(s, dict)]
    channels = {str(_field(s, "ChannelId", "channel_id") or 0) for s in dicts}
    order: list[str] = []
    for s in dicts:
        speaker = _field(s, "SpeakerId", "speaker_id")
        if speaker is not None and str(speaker) not in order:
            order.append(str(speaker))
    return order if len(channels) == 1 and len(order) >= 2 else []


# ---- FunASR -----------------------------------------------------------------------------------------


def read_funasr(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
    def convert(result: dict[str, Any], prefix: str, fallback: str) -> dict[str, Any]:
        return _funasr(result, prefix, fallback, options.swap_roles)

    return _read_results(src, convert, "FunASR")


def _funasr(result: dict[str, Any], prefix: str, fallback: str, swap: bool) -> dict[str, Any]:
    where = f"{prefix}sentence_info"
    sentences = _sentences(result, where, ("sentence_info",))
    utterances = []
    for j, s in enumerate(sentences):
        place = f"{where}[{j}]"
        if not isinstance(s, dict):
            raise _Bad(place, f"应为句子对象，实际是{type_name(s)}")
        if s.get("spk") is None:
            raise _Bad(
                place,
                "没有说话人（spk）：FunASR 识别时未加载说话人模型，"
                "无法区分坐席和客户",
            )
        data = {"role": _role_by_number(s["spk"], place, "spk", swap), "text": _field(s, "text", "sentence")}
        data |= _times(s, place, ("start",), ("end",))
        utterances.append(_utterance(place, data))
    key = result.get("key")
    return {"id": str(key) if key not in (None, "") else fallback, "utterances": utterances}


# ---- AWS Transcribe Call Analytics ------------------------------------------------------------------


def read_aws(src: Source, options: ReadOptions) -> Iterator[Conversation | InputError]:
    return _read_results(src, _aws, "AWS Transcribe Call Analytics")


def _aws(result: dict[str, Any], prefix: str, fallback: str) -> dict[str, Any]:
    where = f"{prefix}Transcript"
    turns = _sentences(result, where, ("Transcript",))
    listed = result.get("Participants")
    participants = {
        p["ParticipantId"]: p.get("ParticipantRole")
        for p in (listed if isinstance(listed, list) else [])
        if isinstance(p, dict) and isinstance(p.get("ParticipantId"), str)
    }
    utterances = []
    for j, t in enumerate(turns):
        place = f"{where}[{j}]"
        if not isinstance(t, dict):
            raise _Bad(place, f"应为转写片段对象，实际是{type_name(t)}")
        pid = t.get("ParticipantId")
        role = t.get("ParticipantRole") or (participants.get(pid) if isinstance(pid, str) else None) or pid
        try:
            data: dict[str, Any] = {"role": normalize_role(role), "text": t.get("Content")}
        except ValueError as e:
            raise _Bad(place, str(e)) from None
        data |= _times(t, place, ("BeginOffsetMillis",), ("EndOffsetMillis",))
        attrs = {
            name: t[key]
            for name, key in (("sentiment", "Sentiment"), ("loudness_scores", "LoudnessScores"))
            if t.get(key) is not None
        }
        if attrs:
            data["attrs"] = attrs
        utterances.append(_utterance(place, data))
    job = result.get("JobName")
    return {"id": str(job) if job not in (None, "") else fallback, "utterances": utterances}
