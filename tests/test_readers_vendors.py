"""Readers of vendor ASR results: Alibaba Cloud, FunASR, AWS Transcribe Call Analytics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kefuqa.errors import InputError
from kefuqa.model import Conversation
from kefuqa.readers import read_bytes, read_path

FIXTURES = Path(__file__).parent / "fixtures" / "readers"


def read(data: Any, name: str = "call.json", **kw: Any) -> list[Conversation | InputError]:
    return list(read_bytes(json.dumps(data, ensure_ascii=False).encode(), name, **kw))


def one(items: list[Conversation | InputError]) -> Conversation:
    assert len(items) == 1 and isinstance(items[0], Conversation), items
    return items[0]


def one_error(items: list[Conversation | InputError]) -> InputError:
    assert len(items) == 1 and isinstance(items[0], InputError), items
    return items[0]


def aliyun_sentence(channel: int, begin: int, end: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"BeginTime": begin, "EndTime": end, "ChannelId": channel, "Text": text, **extra}


# ---- Alibaba Cloud ----------------------------------------------------------------------------------


def test_aliyun_filetrans_result_maps_channels_times_and_attrs() -> None:
    path = FIXTURES / "aliyun_filetrans.json"
    conv = one(list(read_path(path)))
    assert conv.id == "aliyun_filetrans" and conv.source == str(path)
    assert [(u.role, u.start, u.end) for u in conv.utterances] == [
        ("agent", 0.0, 3.2),
        ("customer", 3.6, 8.9),
        ("agent", 9.3, 14.5),
    ]
    assert conv.utterances[1].text == "我的信用卡被盗刷了，你们怎么回事？"
    assert conv.utterances[1].attrs == {"speech_rate": 180, "emotion_value": 4.2, "silence_duration": 0}


def test_aliyun_swap_roles_makes_channel_0_the_customer() -> None:
    conv = one(list(read_path(FIXTURES / "aliyun_filetrans.json", swap_roles=True)))
    assert [u.role for u in conv.utterances] == ["customer", "agent", "customer"]


def test_aliyun_flash_result() -> None:
    conv = one(list(read_path(FIXTURES / "aliyun_flash.json")))
    assert [(u.role, u.start, u.end, u.text) for u in conv.utterances] == [
        ("agent", 0.0, 3.1, "您好，这里是快递客服，请问有什么可以帮您？"),
        ("customer", 3.4, 5.6, "我的包裹三天没动了"),
    ]


def test_aliyun_callback_with_top_level_sentences() -> None:
    data = {"TaskId": "t1", "StatusText": "SUCCESS", "Sentences": [aliyun_sentence(1, 0, 1200, "喂，你好")]}
    conv = one(read(data, "cb-001.json"))
    assert conv.id == "cb-001" and conv.utterances[0].role == "customer"


def test_aliyun_result_given_as_a_json_string() -> None:
    result = json.dumps({"Sentences": [aliyun_sentence(0, 0, 900, "您好")]}, ensure_ascii=False)
    conv = one(read({"StatusText": "SUCCESS", "Result": result}, input_format="aliyun"))
    assert conv.utterances[0].text == "您好"


def test_aliyun_failed_task_is_an_input_error() -> None:
    error = one_error(read({"StatusText": "FILE_DOWNLOAD_FAILED", "Result": {}}, input_format="aliyun"))
    assert error.place == "StatusText" and "FILE_DOWNLOAD_FAILED" in error.reason


def test_aliyun_result_without_sentences_is_an_input_error() -> None:
    error = one_error(read({"StatusText": "SUCCESS_WITH_NO_VALID_FRAGMENT", "Result": {"Sentences": []}}))
    assert error.place == "Result.Sentences" and "没有句子" in error.reason


def test_aliyun_mono_with_speaker_diarization_infers_roles_from_speaker_order() -> None:
    sentences = [
        aliyun_sentence(0, 0, 2000, "您好，客服中心", SpeakerId="2"),
        aliyun_sentence(0, 2100, 3000, "我要报修", SpeakerId="1"),
        aliyun_sentence(0, 3100, 4000, "好的", SpeakerId="2"),
    ]
    conv = one(read({"Result": {"Sentences": sentences}}))
    assert [u.role for u in conv.utterances] == ["agent", "customer", "agent"]
    assert conv.notes and conv.notes[0].startswith("角色为推断")


def test_aliyun_reversed_times_fail_the_result_at_the_sentence() -> None:
    sentences = [aliyun_sentence(0, 0, 2000, "您好"), aliyun_sentence(1, 5000, 3000, "喂")]
    error = one_error(read({"Result": {"Sentences": sentences}}))
    assert error.place == "Result.Sentences[1]" and error.reason == "end 3.0 早于 start 5.0（结束不能早于开始）"


def test_aliyun_unknown_channel_is_an_input_error() -> None:
    error = one_error(read({"Result": {"Sentences": [aliyun_sentence(3, 0, 100, "喂")]}}))
    assert error.place == "Result.Sentences[0]" and "ChannelId 3" in error.reason


def test_aliyun_non_numeric_time_is_an_input_error() -> None:
    bad = {"BeginTime": "soon", "EndTime": 100, "ChannelId": 0, "Text": "喂"}
    error = one_error(read({"Result": {"Sentences": [bad]}}))
    assert error.reason == "BeginTime 'soon' 不是毫秒数"


# ---- FunASR -----------------------------------------------------------------------------------------


def test_funasr_list_of_results_uses_key_as_id() -> None:
    conv = one(list(read_path(FIXTURES / "funasr.json")))
    assert conv.id == "rec_20260305_0007"
    assert [(u.role, u.start, u.end) for u in conv.utterances] == [
        ("agent", 0.38, 3.61),
        ("customer", 4.01, 5.53),
        ("agent", 5.9, 8.12),
    ]
    assert conv.utterances[1].text == "我家电梯又坏了。"


def test_funasr_single_result_without_key_is_named_after_the_file() -> None:
    data = {"text": "您好", "sentence_info": [{"text": "您好", "start": 0, "end": 800, "spk": 0}]}
    conv = one(read(data, "wav-17.json"))
    assert conv.id == "wav-17"


def test_funasr_several_results_without_keys_get_numbered_ids_and_fail_alone() -> None:
    good = {"sentence_info": [{"text": "您好", "start": 0, "end": 800, "spk": 1}]}
    no_spk = {"sentence_info": [{"text": "您好", "start": 0, "end": 800}]}
    items = read([good, no_spk, good], "batch.json", swap_roles=True)
    assert (
        isinstance(items[0], Conversation)
        and items[0].id == "batch#1"
        and items[0].utterances[0].role == "agent"
    )
    assert isinstance(items[1], InputError) and items[1].place == "[1].sentence_info[0]"
    assert "没有说话人（spk）" in items[1].reason
    assert isinstance(items[2], Conversation) and items[2].id == "batch#3"


def test_funasr_third_speaker_is_an_input_error() -> None:
    data = {"sentence_info": [{"text": "您好", "start": 0, "end": 800, "spk": 2}]}
    error = one_error(read(data))
    assert "spk 2 无法对应到坐席或客户" in error.reason


# ---- AWS --------------------------------------------------------------------------------------------


def test_aws_call_analytics_maps_roles_times_sentiment_and_job_name() -> None:
    conv = one(list(read_path(FIXTURES / "aws_call_analytics.json")))
    assert conv.id == "shop-call-0305-01"
    assert [(u.role, u.start, u.end) for u in conv.utterances] == [
        ("agent", 0.0, 3.3),
        ("customer", 3.7, 7.6),
        ("agent", 8.0, 10.9),
    ]
    assert conv.utterances[1].attrs["sentiment"] == "NEGATIVE"
    assert conv.utterances[1].attrs["loudness_scores"] == [85.2, 88.9, 90.3, 87.0]


def test_aws_participant_id_is_resolved_through_participants() -> None:
    data = {
        "Participants": [{"ParticipantId": "p-1", "ParticipantRole": "CUSTOMER"}],
        "Transcript": [
            {"ParticipantId": "p-1", "BeginOffsetMillis": 0, "EndOffsetMillis": 900, "Content": "喂"}
        ],
    }
    conv = one(read(data, "contact.json"))
    assert conv.id == "contact" and conv.utterances[0].role == "customer"


def test_aws_unknown_participant_role_is_an_input_error() -> None:
    turn = {"ParticipantRole": "SUPERVISOR", "BeginOffsetMillis": 0, "EndOffsetMillis": 900, "Content": "喂"}
    error = one_error(read({"JobName": "j", "Transcript": [turn]}))
    assert error.place == "Transcript[0]" and "角色 'SUPERVISOR' 无效" in error.reason


def test_vendor_result_that_is_not_an_object_is_an_input_error() -> None:
    error = one_error(read("just text", input_format="aws"))
    assert "实际是字符串" in error.reason
