"""Readers: native JSON/JSONL, CSV/TSV, plain text, encodings, detection and the public functions."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefuqa.errors import InputError
from kefuqa.model import Conversation, Utterance
from kefuqa.readers import (
    FORMATS,
    ReadOptions,
    detect_format,
    iter_paths,
    read_bytes,
    read_path,
    register_reader,
)
from kefuqa.readers import registry as registry_module

FIXTURES = Path(__file__).parent / "fixtures" / "readers"


def read_all(path: str | Path, **kw: object) -> list[Conversation | InputError]:
    return list(read_path(path, **kw))  # type: ignore[arg-type]


def only_conversation(items: list[Conversation | InputError]) -> Conversation:
    assert len(items) == 1, items
    item = items[0]
    assert isinstance(item, Conversation), item
    return item


def only_error(items: list[Conversation | InputError]) -> InputError:
    assert len(items) == 1, items
    item = items[0]
    assert isinstance(item, InputError), item
    return item


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def conv_json(**fields: object) -> str:
    data = {"id": "x", "utterances": [{"role": "agent", "text": "您好"}], **fields}
    return json.dumps(data, ensure_ascii=False)


# ---- detection --------------------------------------------------------------------------------------


def test_formats_lists_the_builtin_readers_in_detection_order() -> None:
    assert FORMATS[:8] == ["aliyun", "funasr", "aws", "json", "jsonl", "csv", "tsv", "text"]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("native_call.json", "json"),
        ("native_batch.json", "json"),
        ("calls.jsonl", "jsonl"),
        ("calls_utf8_bom.csv", "csv"),
        ("calls_gbk.csv", "csv"),
        ("calls_ms.tsv", "tsv"),
        ("transcript.txt", "text"),
        ("transcript_tw.txt", "text"),
        ("aliyun_filetrans.json", "aliyun"),
        ("aliyun_flash.json", "aliyun"),
        ("funasr.json", "funasr"),
        ("aws_call_analytics.json", "aws"),
    ],
)
def test_detects_each_fixture_format(fixture: str, expected: str) -> None:
    head = (FIXTURES / fixture).read_bytes()
    assert detect_format(head, fixture) == expected
    assert detect_format(head, "no-extension") == expected


def test_content_decides_over_a_misleading_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "export.txt", "角色,内容\n坐席,您好\n客户,你好\n")
    conv = only_conversation(read_all(path))
    assert [u.role for u in conv.utterances] == ["agent", "customer"]


def test_one_line_jsonl_file_is_json_lines_by_its_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "one.jsonl", conv_json() + "\n")
    conv = only_conversation(read_all(path))
    assert conv.source == f"{path}:第 1 行"


def test_jsonl_whose_first_line_is_broken_is_still_json_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path, "calls.jsonl", '{"id": "a", "utterances": [\n' + conv_json() + "\n" + conv_json() + "\n"
    )
    assert detect_format(path.read_bytes(), "") == "jsonl"
    items = read_all(path)
    assert [type(i).__name__ for i in items] == ["InputError", "Conversation", "Conversation"]


def test_pretty_printed_json_is_json_not_json_lines(tmp_path: Path) -> None:
    content = json.dumps({"id": "p", "utterances": [{"role": "agent", "text": "您好"}]}, indent=2)
    assert detect_format(content.encode(), "p.jsonl") == "json"


def test_input_format_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", conv_json() + "\n")
    conv = only_conversation(read_all(path, input_format="jsonl"))
    assert conv.source == f"{path}:第 1 行"


def test_unknown_input_format_raises_value_error() -> None:
    with pytest.raises(ValueError, match="unknown input format 'xml'"):
        read_path(FIXTURES / "native_call.json", "xml")


def test_unknown_csv_column_field_raises_value_error() -> None:
    with pytest.raises(ValueError, match="未知的列字段"):
        read_path(FIXTURES / "calls_gbk.csv", csv_columns={"speaker_name": "说话人"})


def test_unrecognisable_content_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.dat", "今天天气不错\n明天见\n")
    error = only_error(read_all(path))
    assert "无法识别格式" in error.reason
    assert error.source == str(path)


def test_timestamped_transcript_is_not_mistaken_for_a_json_list() -> None:
    data = "[00:01-00:03] 坐席：您好\n[00:04-00:06] 客户：喂\n".encode()
    assert detect_format(data, "") == "text"
    conv = only_conversation(list(read_bytes(data, "")))
    assert [u.start for u in conv.utterances] == [1.0, 4.0]


# ---- native JSON ------------------------------------------------------------------------------------


def test_native_json_object_keeps_every_field() -> None:
    conv = only_conversation(read_all(FIXTURES / "native_call.json"))
    assert conv.id == "call-20260305-0001"
    assert conv.source == str(FIXTURES / "native_call.json")
    assert conv.direction == "inbound" and conv.channel == "phone" and conv.ring_seconds == 8.0
    assert conv.agent is not None and conv.agent.name == "王芳"
    assert [e.type for e in conv.events] == ["hold", "transfer"]
    assert conv.utterances[2].attrs == {"emotion": "neutral"}
    assert conv.utterances[4].role == "agent"  # 坐席 normalised


def test_utterance_with_null_or_empty_text_is_kept() -> None:
    conv = only_conversation(read_all(FIXTURES / "native_call.json"))
    assert len(conv.utterances) == 5
    assert conv.utterances[3].text == ""


def test_native_json_list_yields_each_conversation_and_stem_ids_when_missing() -> None:
    items = read_all(FIXTURES / "native_batch.json")
    assert len(items) == 3
    first, second, third = items
    assert isinstance(first, Conversation) and first.id == "chat-0001" and first.channel == "chat"
    assert isinstance(second, Conversation) and second.id == "native_batch#2"
    assert second.notes == ["缺少 id，已用文件名代替"]
    assert isinstance(third, InputError)


def test_reversed_times_fail_only_that_conversation_with_the_field_path() -> None:
    error = read_all(FIXTURES / "native_batch.json")[2]
    assert isinstance(error, InputError)
    assert error.place == "[2].utterances[0].end"
    assert error.reason == "end 3.2 早于 start 4.0（结束不能早于开始）"


def test_negative_time_is_an_input_error_naming_the_field(tmp_path: Path) -> None:
    utts = [
        {"role": "agent", "start": 0, "end": 1, "text": "您好"},
        {"role": "customer", "start": -2.0, "text": "喂"},
    ]
    path = write(tmp_path, "neg.json", json.dumps({"id": "n", "utterances": utts}))
    error = only_error(read_all(path))
    assert error.place == "utterances[1].start"
    assert error.reason == "start -2.0 是负数"


def test_unknown_role_is_an_input_error(tmp_path: Path) -> None:
    path = write(
        tmp_path, "role.json", json.dumps({"id": "r", "utterances": [{"role": "robot", "text": "您好"}]})
    )
    error = only_error(read_all(path))
    assert error.place == "utterances[0].role"
    assert error.reason == "角色 'robot' 无效（应为 agent、customer 或 system）"


def test_conversation_without_utterances_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "empty_conv.json", json.dumps({"id": "e", "utterances": []}))
    error = only_error(read_all(path))
    assert error.place == "utterances"
    assert error.reason == "会话没有任何话语（utterances 为空）"


def test_several_problems_are_all_named_in_the_reason(tmp_path: Path) -> None:
    utts = [{"role": "boss", "text": "a"}, {"role": "agent", "start": 5, "end": 1}]
    path = write(tmp_path, "two.json", json.dumps({"id": "t", "direction": "sideways", "utterances": utts}))
    error = only_error(read_all(path))
    assert error.place == "direction"
    assert "utterances[0].role：角色 'boss' 无效" in error.reason
    assert "utterances[1].end：end 1.0 早于 start 5.0（结束不能早于开始）" in error.reason


def test_invalid_json_is_an_input_error_with_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broken.json",
        '{\n  "id": "b",\n  "utterances": [\n    {"role": "agent" "text": "您好"}\n  ]\n}\n',
    )
    error = only_error(read_all(path, input_format="json"))
    assert error.place == "第 4 行第 22 列"
    assert error.reason == "不是有效的 JSON：缺少逗号"


def test_json_list_element_that_is_not_an_object_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "mixed.json", "[" + conv_json() + ", 42]")
    items = read_all(path)
    assert isinstance(items[0], Conversation)
    assert isinstance(items[1], InputError) and items[1].place == "[1]"
    assert "实际是数字" in items[1].reason


def test_json_with_nan_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "nan.json", '{"id": "n", "utterances": [{"role": "agent", "start": NaN}]}')
    error = only_error(read_all(path))
    assert "NaN" in error.reason


def test_empty_json_list_is_an_input_error(tmp_path: Path) -> None:
    error = only_error(read_all(write(tmp_path, "none.json", "[]")))
    assert "空列表" in error.reason


@pytest.mark.parametrize("content", [b"", b"   \n\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n"])
@pytest.mark.parametrize("name", ["empty.json", "empty.jsonl", "empty.csv", "empty.txt", "empty"])
def test_empty_file_is_one_input_error(tmp_path: Path, name: str, content: bytes) -> None:
    path = write(tmp_path, name, content)
    error = only_error(read_all(path))
    assert error.reason == "文件是空的" and error.source == str(path)


# ---- JSON Lines -------------------------------------------------------------------------------------


def test_jsonl_bad_lines_fail_only_themselves() -> None:
    path = FIXTURES / "calls.jsonl"
    items = read_all(path)
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Conversation", "InputError", "InputError", "InputError", "Conversation"]
    c1, bad_json, bad_role, no_utts, c5 = items
    assert isinstance(c1, Conversation) and c1.source == f"{path}:第 1 行"
    assert isinstance(c5, Conversation) and c5.id == "c5" and c5.source == f"{path}:第 6 行"
    assert isinstance(bad_json, InputError) and bad_json.place is not None
    assert bad_json.place.startswith("第 2 行第 ") and bad_json.reason.startswith("不是有效的 JSON")
    assert isinstance(bad_role, InputError) and bad_role.place == "第 3 行 utterances[1].role"
    assert isinstance(no_utts, InputError) and no_utts.place == "第 5 行 utterances"


def test_jsonl_line_with_undecodable_bytes_fails_only_that_line(tmp_path: Path) -> None:
    good = conv_json().encode("utf-8")
    path = write(tmp_path, "mixed.jsonl", good + b"\n" + b'{"id": "\xff\xfe\x80"}\n' + good + b"\n")
    items = read_all(path)
    assert [type(i).__name__ for i in items] == ["Conversation", "InputError", "Conversation"]
    assert isinstance(items[1], InputError) and items[1].place == "第 2 行"
    assert "无法解码" in items[1].reason


def test_jsonl_ids_fall_back_to_stem_and_line(tmp_path: Path) -> None:
    line = json.dumps({"utterances": [{"role": "agent", "text": "您好"}]})
    conv = read_all(write(tmp_path, "day.jsonl", f"{line}\n\n{line}\n"))[1]
    assert isinstance(conv, Conversation) and conv.id == "day#3"


# ---- CSV / TSV --------------------------------------------------------------------------------------


def test_csv_utf8_bom_with_chinese_headers_groups_calls() -> None:
    items = read_all(FIXTURES / "calls_utf8_bom.csv")
    assert [c.id for c in items if isinstance(c, Conversation)] == ["CALL-001", "CALL-002"]
    first, second = items
    assert isinstance(first, Conversation) and isinstance(second, Conversation)
    assert [(u.role, u.start, u.end) for u in first.utterances] == [
        ("agent", 0.0, 3.2),
        ("customer", 3.6, 9.1),
        ("agent", 9.5, 14.0),
    ]
    assert first.utterances[1].text == "我想查一下话费，为什么这个月扣了这么多"
    assert first.direction == "inbound" and first.agent is not None and first.agent.id == "A1023"
    assert second.direction == "outbound"
    assert second.utterances[1].text == ""  # empty cell kept as an empty utterance
    assert first.source == str(FIXTURES / "calls_utf8_bom.csv")


def test_csv_in_gbk_is_decoded() -> None:
    conv = only_conversation(read_all(FIXTURES / "calls_gbk.csv"))
    assert conv.id == "GBK-01"
    assert conv.utterances[0].text == "您好，欢迎致电国家电网95598"
    assert [u.role for u in conv.utterances] == ["agent", "customer", "agent"]


def test_tsv_with_millisecond_headers() -> None:
    items = read_all(FIXTURES / "calls_ms.tsv")
    assert [c.id for c in items if isinstance(c, Conversation)] == ["T-1", "T-2"]
    first = items[0]
    assert isinstance(first, Conversation)
    assert (first.utterances[1].start, first.utterances[1].end) == (3.6, 9.1)


def test_csv_millisecond_unit_in_brackets_and_clock_times(tmp_path: Path) -> None:
    content = (
        "通话ID,角色,开始时间（毫秒）,结束时间,内容\nX,客服,1500,00:00:03.5,您好\nX,客户,4000,01:02,喂\n"
    )
    conv = only_conversation(read_all(write(tmp_path, "unit.csv", content)))
    assert [(u.start, u.end) for u in conv.utterances] == [(1.5, 3.5), (4.0, 62.0)]


def test_csv_columns_option_names_unusual_headers(tmp_path: Path) -> None:
    content = "录音号,说话方,话术内容,起(秒)\nR1,坐席,您好,0\nR1,客户,你好,1.5\n"
    path = write(tmp_path, "custom.csv", content)
    cols = {"id": "录音号", "role": "说话方", "text": "话术内容", "start": "起(秒)"}
    conv = only_conversation(read_all(path, csv_columns=cols))
    assert conv.id == "R1" and [u.start for u in conv.utterances] == [0.0, 1.5]


def test_csv_columns_option_naming_a_missing_header_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "custom.csv", "角色,内容\n坐席,您好\n")
    error = only_error(read_all(path, csv_columns={"role": "说话方"}))
    assert error.place == "第 1 行"
    assert "'说话方'" in error.reason and "角色, 内容" in error.reason


def test_csv_without_role_column_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "norole.csv", "通话ID,内容\n1,您好\n")
    error = only_error(read_all(path))
    assert "role column" in error.reason


def test_csv_with_only_a_header_is_an_input_error(tmp_path: Path) -> None:
    error = only_error(read_all(write(tmp_path, "header.csv", "角色,内容\n")))
    assert error.reason == "表头之后没有数据行"


def test_csv_without_id_column_is_one_call_named_after_the_file(tmp_path: Path) -> None:
    conv = only_conversation(
        read_all(write(tmp_path, "20260305-0042.csv", "role,text\nagent,您好\ncustomer,喂\n"))
    )
    assert conv.id == "20260305-0042"


def test_csv_reappearing_call_id_fails_the_later_rows(tmp_path: Path) -> None:
    content = "call_id,role,text\nA,agent,您好\nA,customer,喂\nB,agent,您好\nA,agent,还在吗\nA,customer,在\nC,agent,您好\n"
    items = read_all(write(tmp_path, "mixed.csv", content))
    assert [type(i).__name__ for i in items] == ["Conversation", "Conversation", "InputError", "Conversation"]
    error = items[2]
    assert isinstance(error, InputError) and error.place == "第 5 行"
    assert "'A' 在前面已出现过（从第 2 行起）" in error.reason
    first = items[0]
    assert isinstance(first, Conversation) and len(first.utterances) == 2


def test_csv_empty_id_cell_continues_the_call_above(tmp_path: Path) -> None:
    content = "通话ID,角色,内容\nM1,坐席(王芳),您好\n,客户,我要报修\n,坐席-1023,好的\nM2,坐席,您好\n"
    items = read_all(write(tmp_path, "merged.csv", content))
    assert [(c.id, len(c.utterances)) for c in items if isinstance(c, Conversation)] == [("M1", 3), ("M2", 1)]


def test_csv_bad_row_fails_its_call_with_the_row_number(tmp_path: Path) -> None:
    content = (
        "通话ID,角色,开始,结束,内容\n"
        "A,坐席,0,2,您好\n"
        "A,客户,5,3,喂\n"  # reversed times
        "B,机器人,0,1,您好\n"  # 无效
        "C,坐席,abc,1,您好\n"  # bad time
        "D,坐席,0,1,您好\n"
    )
    items = read_all(write(tmp_path, "bad.csv", content))
    assert [type(i).__name__ for i in items] == ["InputError", "InputError", "InputError", "Conversation"]
    reversed_times, unknown_role, bad_time, _ = items
    assert isinstance(reversed_times, InputError) and reversed_times.place == "第 3 行"
    assert reversed_times.reason == "end 3.0 早于 start 5.0（结束不能早于开始）"
    assert isinstance(unknown_role, InputError) and unknown_role.place == "第 4 行"
    assert "角色 '机器人' 无效" in unknown_role.reason
    assert isinstance(bad_time, InputError) and bad_time.place == "第 5 行"
    assert bad_time.reason.startswith("start 'abc' 不是时间")


def test_csv_quoted_multiline_cell_and_row_numbers(tmp_path: Path) -> None:
    content = 'id,role,text,start,end\nQ,agent,"您好，\n请问有什么可以帮您？",0,2\nQ,customer,喂,3,1\n'
    error = only_error(read_all(write(tmp_path, "multi.csv", content)))
    assert error.place == "第 4 行"


def test_csv_title_rows_before_the_header_are_skipped(tmp_path: Path) -> None:
    content = "通话记录导出,2026-03-05\n\n通话ID,角色,内容\nK1,坐席,您好\nK1,客户,喂\n"
    path = write(tmp_path, "export.csv", content)
    assert detect_format(path.read_bytes(), "") == "csv"
    conv = only_conversation(read_all(path))
    assert conv.id == "K1" and len(conv.utterances) == 2


def test_csv_call_fields_and_attrs(tmp_path: Path) -> None:
    content = (
        "通话ID,坐席工号,坐席姓名,渠道,通话开始时间,角色,内容,情绪,语速\n"
        "Z,1023,王芳,电话,2026/3/5 14:32:10,坐席,您好,平静,240\n"
        "Z,1023,王芳,电话,2026/3/5 14:32:10,客户,喂,生气,\n"
    )
    conv = only_conversation(read_all(write(tmp_path, "fields.csv", content)))
    assert conv.agent is not None and (conv.agent.id, conv.agent.name) == ("1023", "王芳")
    assert conv.channel == "phone"
    assert conv.started_at is not None and conv.started_at.isoformat() == "2026-03-05T14:32:10"
    assert conv.utterances[0].attrs == {"emotion": "平静", "speech_rate": 240.0}
    assert conv.utterances[1].attrs == {"emotion": "生气"}


def test_csv_bad_call_field_fails_that_call(tmp_path: Path) -> None:
    content = "通话ID,呼叫方向,角色,内容\nD1,侧向,坐席,您好\nD2,呼入,坐席,您好\n"
    items = read_all(write(tmp_path, "dir.csv", content))
    assert isinstance(items[0], InputError) and items[0].place == "第 2 行"
    assert "direction '侧向'" in items[0].reason
    assert isinstance(items[1], Conversation) and items[1].direction == "inbound"


def test_utf16_tsv_from_excel_unicode_text(tmp_path: Path) -> None:
    content = "角色\t内容\n坐席\t您好\n客户\t你好\n"
    conv = only_conversation(read_all(write(tmp_path, "excel.txt", content.encode("utf-16"))))
    assert [u.text for u in conv.utterances] == ["您好", "你好"]


# ---- plain text -------------------------------------------------------------------------------------


def test_text_transcript_with_timestamps_prefixes_and_continuations() -> None:
    path = FIXTURES / "transcript.txt"
    conv = only_conversation(read_all(path))
    assert conv.id == "transcript" and conv.source == str(path)
    got = [(u.role, u.start, u.end, u.text) for u in conv.utterances]
    assert got == [
        ("agent", 0.0, 3.2, "您好，这里是XX物业客服中心，我是小王，请问有什么可以帮您？"),
        ("customer", 3.6, 9.1, "你好，我家楼上漏水，天花板都湿了。"),
        ("agent", 9.5, 12.0, "非常抱歉，请问您家的门牌号是多少？"),
        ("customer", 12.5, 15.0, "3栋2单元501"),
        ("agent", 16.0, None, "好的，我马上安排维修师傅上门。"),
    ]
    assert conv.notes == ["第一个角色前缀之前的 1 行已跳过"]


def test_traditional_chinese_text_is_kept_as_is_with_a_b_roles() -> None:
    conv = only_conversation(read_all(FIXTURES / "transcript_tw.txt"))
    assert [u.role for u in conv.utterances] == ["agent", "customer", "agent", "customer"]
    assert conv.utterances[0].text == "您好，這裡是客服中心，請問有什麼可以幫您？"
    assert not conv.timed


def test_text_in_gbk_is_decoded(tmp_path: Path) -> None:
    path = write(tmp_path, "gbk.txt", "坐席：您好，请问有什么可以帮您？\n客户：我要投诉\n".encode("gbk"))
    conv = only_conversation(read_all(path))
    assert conv.utterances[1].text == "我要投诉"


def test_text_latin_continuation_is_joined_with_a_space(tmp_path: Path) -> None:
    conv = only_conversation(read_all(write(tmp_path, "t.txt", "Agent: hello\nhow are you\n客户：好\n")))
    assert conv.utterances[0].text == "hello how are you"


def test_text_without_role_prefixes_is_an_input_error(tmp_path: Path) -> None:
    error = only_error(read_all(write(tmp_path, "plain.txt", "您好\n请问有什么可以帮您\n")))
    assert "没有一行以角色前缀开头" in error.reason


def test_text_reversed_timestamp_is_an_input_error_with_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "rev.txt", "[00:01-00:03] 坐席：您好\n[00:09-00:05] 客户：喂\n")
    error = only_error(read_all(path))
    assert error.place == "第 2 行" and error.reason == "end 5.0 早于 start 9.0（结束不能早于开始）"


def test_text_bracketed_title_before_the_first_prefix_is_skipped(tmp_path: Path) -> None:
    conv = only_conversation(read_all(write(tmp_path, "t.txt", "【通话记录】\n坐席：您好\n")))
    assert [(u.role, u.text) for u in conv.utterances] == [("agent", "您好")]
    assert conv.notes == ["第一个角色前缀之前的 1 行已跳过"]


def test_text_time_without_role_is_an_input_error(tmp_path: Path) -> None:
    error = only_error(read_all(write(tmp_path, "t.txt", "[00:01-00:03] 坐席：您好\n[00:04-00:05] 喂\n")))
    assert error.place == "第 2 行"


# ---- encodings --------------------------------------------------------------------------------------


def test_undecodable_file_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "garbage.csv", bytes(range(256)) * 4)
    error = only_error(read_all(path))
    assert error.source == str(path)
    assert "无法解码" in error.reason


def test_undecodable_file_with_a_format_given_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, "garbage.bin", bytes(range(256)) * 4)
    error = only_error(read_all(path, input_format="text"))
    assert "无法解码" in error.reason


# ---- public functions -------------------------------------------------------------------------------


def test_read_bytes_gives_the_same_as_read_path() -> None:
    path = FIXTURES / "calls_utf8_bom.csv"
    from_bytes = list(read_bytes(path.read_bytes(), str(path)))
    assert [c.model_dump() for c in from_bytes] == [c.model_dump() for c in read_all(path)]  # type: ignore[union-attr]


def test_read_bytes_uses_the_upload_name_for_source_and_id() -> None:
    data = (FIXTURES / "transcript_tw.txt").read_bytes()
    conv = only_conversation(list(read_bytes(data, "upload-77.txt")))
    assert conv.id == "upload-77" and conv.source == "upload-77.txt"


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_read_path_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin((FIXTURES / "calls.jsonl").read_bytes()))
    items = read_all("-")
    assert len(items) == 5
    assert isinstance(items[0], Conversation) and items[0].source == "-:第 1 行"


def test_source_name_names_stdin_input_and_its_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin("坐席：您好\n客户：喂\n".encode()))
    conv = only_conversation(read_all("-", source_name="call-9.txt"))
    assert conv.id == "call-9" and conv.source == "call-9.txt"


def test_stdin_larger_than_the_sniffed_head_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [conv_json(id=f"s{i}", notes=["x" * 200]) for i in range(3000)]  # ~1 MB
    monkeypatch.setattr(sys, "stdin", _Stdin(("\n".join(lines) + "\n").encode()))
    items = read_all("-")
    assert len(items) == 3000 and all(isinstance(i, Conversation) for i in items)


def test_missing_file_and_folder_are_input_errors(tmp_path: Path) -> None:
    missing = only_error(read_all(tmp_path / "nope.json"))
    assert missing.reason == "文件不存在"
    folder = only_error(read_all(tmp_path))
    assert "文件夹" in folder.reason


def test_iter_paths_expands_folders_sorted_skipping_hidden_and_unknown(tmp_path: Path) -> None:
    for rel in [
        "b.json",
        "a.csv",
        "sub/c.txt",
        "sub/d.jsonl",
        "notes.docx",
        ".hidden.json",
        ".git/x.json",
        "e.TSV",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    explicit = tmp_path / "notes.docx"
    got = [p.relative_to(tmp_path).as_posix() for p in iter_paths([tmp_path, explicit])]
    assert got == ["a.csv", "b.json", "e.TSV", "sub/c.txt", "sub/d.jsonl", "notes.docx"]
    assert list(iter_paths(["-"])) == [Path("-")]


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Registrations made by a test are undone afterwards."""
    readers = dict(registry_module._READERS)
    formats = list(FORMATS)
    yield
    registry_module._READERS.clear()
    registry_module._READERS.update(readers)
    FORMATS[:] = formats


def test_registered_binary_reader_gets_a_real_path(tmp_path: Path, scratch_registry: None) -> None:
    seen: dict[str, object] = {}

    def read(path: Path, options: ReadOptions) -> Iterator[Conversation | InputError]:
        seen["exists"] = path.exists()
        seen["bytes"] = path.read_bytes()
        seen["source"] = options.source_name
        utterance = Utterance(role="agent", text="您好")
        yield Conversation(id=path.stem, utterances=[utterance], source=options.source_name)

    register_reader(
        "fakeaudio",
        extensions=("fak",),
        sniff=lambda head, name: head.startswith(b"FAKE"),
        read=read,
        binary=True,
    )
    assert "fakeaudio" in FORMATS
    data = b"FAKE\x00\xff\x01binary"
    conv = only_conversation(list(read_bytes(data, "upload.fak")))
    assert seen == {"exists": True, "bytes": data, "source": "upload.fak"}
    assert conv.source == "upload.fak"

    on_disk = write(tmp_path, "call.fak", data)
    only_conversation(read_all(on_disk))
    assert seen["source"] == str(on_disk)
    assert [p.name for p in iter_paths([tmp_path])] == ["call.fak"]


def test_json_file_with_a_bad_byte_names_the_line(tmp_path: Path) -> None:
    lines = ['{"id": "x", "agent": {"name": "王芳"},', ' "utterances": [{"role": "agent", "text": "您好"}]}']
    content = lines[0].encode() + b"\n" + lines[1].encode().replace("好".encode(), b"\xff") + b"\n"
    error = only_error(read_all(write(tmp_path, "bad.json", content)))
    assert error.place == "第 2 行"
    assert error.reason == "有不符合 UTF-8 编码的字节（文件其余部分是 UTF-8）"


def test_other_keywords_reach_registered_readers_as_option_attributes(scratch_registry: None) -> None:
    seen: dict[str, object] = {}

    def read(path: Path, options: ReadOptions) -> Iterator[Conversation | InputError]:
        seen["asr"] = options.asr
        seen["channels"] = getattr(options, "channels", None)
        seen["vad"] = getattr(options, "vad", "absent")
        yield InputError(options.source_name or str(path), None, "not decoded in this test")

    register_reader("fakeaudio", extensions=(".fak",), sniff=None, read=read, binary=True)
    list(read_bytes(b"\x00\x01", "x.fak", "fakeaudio", asr="sherpa-onnx:/m", channels="customer,agent"))
    assert seen == {"asr": "sherpa-onnx:/m", "channels": "customer,agent", "vad": "absent"}


def test_reader_keywords_are_ignored_by_readers_that_do_not_use_them() -> None:
    conv = only_conversation(read_all(FIXTURES / "transcript_tw.txt", channels="agent,customer", asr="x"))
    assert conv.id == "transcript_tw"


def test_audio_reader_of_the_audio_layer_is_registered() -> None:
    from kefuqa.readers.registry import get_reader

    spec = get_reader("audio")
    assert spec.binary and ".wav" in spec.extensions
    assert detect_format(b"RIFF\x24\x00\x00\x00WAVEfmt ", "call.wav") == "audio"
    # a UTF-16 byte-order mark (FF FE) also looks like an MPEG frame header: text formats go first
    assert detect_format("角色\t内容\n坐席\t您好\n".encode("utf-16"), "x.mp3") == "tsv"
