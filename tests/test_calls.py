"""One call from several files (kefuqa.readers.calls): same-stem pairs, manifests, bad manifest rows.

No audio is decoded here: recordings are only paired and named (a file that merely exists is enough);
tests/test_audio_calls.py measures real generated recordings against their transcripts.
"""

from __future__ import annotations

import json
from pathlib import Path

from kefuqa.batch import find_inputs
from kefuqa.errors import InputError
from kefuqa.readers.calls import CallFiles, group_targets, read_call, read_manifest

TRANSCRIPT = {"id": "t", "channel": "phone", "utterances": [
    {"role": "agent", "start": 0.5, "end": 3.0, "text": "您好，客服中心，请问有什么可以帮您？"},
    {"role": "customer", "start": 3.5, "end": 6.0, "text": "我家宽带断了。"}]}


def _files(tmp_path: Path, *names: str) -> None:
    for n in names:
        p = tmp_path / n
        p.parent.mkdir(parents=True, exist_ok=True)
        if n.endswith(".wav"):
            p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
        else:
            p.write_text(json.dumps({**TRANSCRIPT, "id": Path(n).stem}, ensure_ascii=False), encoding="utf-8")


def test_a_recording_and_its_transcript_of_the_same_stem_are_one_call(tmp_path: Path) -> None:
    _files(tmp_path, "c1.json", "c1.wav", "c2.json", "c3.wav", "sub/c1.wav")
    files, errors = find_inputs([tmp_path])
    assert errors == []
    calls = [f for f in files if isinstance(f, CallFiles)]
    assert [(Path(c.transcript or "").name, Path(c.recording or "").name) for c in calls] == [("c1.json", "c1.wav")]
    # the others stay single files: c2 has no recording, c3 no transcript, sub/c1.wav is in another folder
    singles = sorted(str(Path(f).relative_to(tmp_path)) for f in files if not isinstance(f, CallFiles))
    assert singles == ["c2.json", "c3.wav", "sub/c1.wav"]


def test_an_asr_suffix_still_pairs_and_two_transcripts_do_not_guess(tmp_path: Path) -> None:
    _files(tmp_path, "a.asr.json", "a.wav", "b.json", "b.txt", "b.wav")
    grouped, _ = group_targets(sorted(tmp_path.iterdir()))
    pairs = {Path(c.recording or "").name: Path(c.transcript or "").name for c in grouped if isinstance(c, CallFiles)}
    assert pairs == {"a.wav": "a.asr.json"}
    assert sum(1 for g in grouped if not isinstance(g, CallFiles)) == 3


def test_manifest_rows_are_calls_with_agent_team_and_attributes(tmp_path: Path) -> None:
    _files(tmp_path, "rec/x1.wav", "asr/x1.json", "x2.json")
    (tmp_path / "manifest.csv").write_text(
        "call_id,recording,transcript,工号,坐席姓名,班组,呼叫方向,started_at,ring_seconds,agent_channel,队列\n"
        "CALL-1,rec/x1.wav,asr/x1.json,A7,李娜,二组,呼出,2026-03-05T14:32:10+08:00,4.5,右,宽带\n"
        "CALL-2,,x2.json,A8,,三组,inbound,,,,\n", encoding="utf-8")
    files, errors = find_inputs([tmp_path])
    assert errors == []
    assert [f.call_id for f in files] == ["CALL-1", "CALL-2"]  # every file is claimed by the manifest
    first = files[0]
    assert first.meta == {"agent_id": "A7", "agent_name": "李娜", "team": "二组", "direction": "outbound",
                          "started_at": "2026-03-05T14:32:10+08:00", "ring_seconds": 4.5, "agent_channel": "right"}
    assert first.attributes == {"队列": "宽带"}
    (conv,) = read_call(files[1])
    assert conv.id == "CALL-2" and conv.agent.id == "A8" and conv.agent.team == "三组"
    assert conv.direction == "inbound" and conv.source.endswith("x2.json")
    assert conv.metrics["manifest"].endswith("manifest.csv 第 3 行")


def test_jsonl_manifest_with_a_files_list(tmp_path: Path) -> None:
    _files(tmp_path, "y.json")
    (tmp_path / "calls.manifest.jsonl").write_text(json.dumps(
        {"id": "Y-1", "files": ["y.json"], "agent_id": "A9", "team": "一组", "queue": {"name": "售后"}},
        ensure_ascii=False) + "\n", encoding="utf-8")
    (call,), errors = read_manifest(tmp_path / "calls.manifest.jsonl")
    assert errors == [] and call.transcript == str(tmp_path / "y.json") and call.recording is None
    (conv,) = read_call(call)
    assert conv.id == "Y-1" and conv.agent.id == "A9"
    assert conv.metrics["attributes"] == {"queue": '{"name": "售后"}'}


def test_bad_manifest_rows_are_named_and_the_rest_is_read(tmp_path: Path) -> None:
    _files(tmp_path, "ok.json", "b.json")
    (tmp_path / "manifest.csv").write_text(
        "call_id,recording,transcript,ring_seconds,direction,agent_channel\n"
        "A,missing.wav,ok.json,,,\n"
        "B,,b.json,soon,,\n"
        "C,,b.json,,sideways,\n"
        "D,,b.json,,,middle\n"
        "E,,,,,\n"
        "F,,ok.json,3,呼入,左\n", encoding="utf-8")
    calls, errors = read_manifest(tmp_path / "manifest.csv")
    assert [c.call_id for c in calls] == ["F"]
    got = [(e.place, e.reason) for e in errors]
    assert got == [
        ("第 2 行（A）", "录音文件不存在：missing.wav"),
        ("第 3 行（B）", "ring_seconds 的值 'soon' 不是秒数"),
        ("第 4 行（C）", "direction 的值 'sideways' 无法识别（应为 inbound/outbound 或 呼入/呼出）"),
        ("第 5 行（D）", "agent_channel 的值 'middle' 无法识别（应为 left/right 或 0/1、左/右）"),
        ("第 6 行（E）", "这一行没有列出录音或转写文件"),
    ]
    assert all(e.source == str(tmp_path / "manifest.csv") for e in errors)


def test_a_manifest_without_file_columns_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("call_id,agent_id\nA,7\n", encoding="utf-8")
    calls, errors = read_manifest(tmp_path / "manifest.csv")
    assert calls == [] and [(e.place, e.reason) for e in errors] == [("第 1 行", "清单缺少文件列（recording / transcript / files）")]


def test_a_broken_jsonl_manifest_line_is_named_in_chinese_and_the_rest_is_read(tmp_path: Path) -> None:
    _files(tmp_path, "y.json")
    (tmp_path / "calls.manifest.jsonl").write_text('{"id": "Y-1", "files": ["y.json"]}\n{"id": "Y-2", files}\n',
                                                   encoding="utf-8")
    calls, errors = read_manifest(tmp_path / "calls.manifest.jsonl")
    assert [c.call_id for c in calls] == ["Y-1"]
    assert [(e.place, e.reason) for e in errors] == [("第 2 行第 15 列", "不是有效的 JSON：字段名应使用双引号")]


def test_an_error_in_a_file_a_manifest_row_names_says_which_row_and_call(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"id": "x", "utterances": [', encoding="utf-8")
    (tmp_path / "manifest.csv").write_text("call_id,transcript\nCALL-9,broken.json\n", encoding="utf-8")
    (call,), _ = read_manifest(tmp_path / "manifest.csv")
    (err,) = read_call(call)
    assert isinstance(err, InputError) and err.source == str(tmp_path / "broken.json")
    assert err.reason.endswith(f"（见清单 {tmp_path / 'manifest.csv'} 第 2 行，通话 CALL-9）"), err.reason


def test_a_transcript_file_with_several_calls_cannot_pair(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps({**TRANSCRIPT, "id": f"t{i}"}, ensure_ascii=False) for i in range(2))
    (tmp_path / "t.jsonl").write_text(lines + "\n", encoding="utf-8")
    _files(tmp_path, "t.wav")
    (item,) = read_call(CallFiles(transcript=str(tmp_path / "t.jsonl"), recording=str(tmp_path / "t.wav")))
    assert isinstance(item, InputError) and item.reason == "转写文件含 2 通会话，无法与一段录音配对"


def test_a_manifest_is_known_by_its_columns_whatever_its_name(tmp_path: Path) -> None:
    _files(tmp_path, "k.json", "k.wav")
    (tmp_path / "export-2026-03-05.csv").write_text("通话编号,录音文件,转写文件,工号\nK-1,k.wav,k.json,A3\n",
                                                    encoding="gb18030")
    (tmp_path / "utterances.csv").write_text("call_id,role,text\nu1,坐席,您好\n", encoding="utf-8")
    files, errors = find_inputs([tmp_path])
    assert errors == []
    calls = [f for f in files if isinstance(f, CallFiles)]
    assert [(c.call_id, c.meta) for c in calls] == [("K-1", {"agent_id": "A3"})]
    # a transcript CSV (it has a text column) is still a transcript
    assert [Path(f).name for f in files if not isinstance(f, CallFiles)] == ["utterances.csv"]


def test_a_pbx_export_s_own_words_for_who_hung_up_and_the_other_spelling_of_agent(tmp_path: Path) -> None:
    _files(tmp_path, "p1.json", "p2.json")
    (tmp_path / "manifest.csv").write_text(
        "通话编号,转写文件,座席工号,座席姓名,班组,呼叫方向,渠道,挂机方,客户编号,开始时间\n"
        "P-1,p1.json,A5,赵敏,一组,去电,电话,客户挂机,C-77,2026/03/05 14:32:10\n"
        "P-2,p2.json,A6,钱多,二组,来电,电话,座席挂机,,\n", encoding="utf-8")
    files, errors = find_inputs([tmp_path])
    assert errors == []
    (c1,), (c2,) = (list(read_call(f)) for f in files)
    assert (c1.id, c1.agent.id, c1.agent.name, c1.direction, c1.channel, c1.ended_by, c1.customer.id) == (
        "P-1", "A5", "赵敏", "outbound", "phone", "customer", "C-77")
    assert c1.started_at is not None and c1.started_at.isoformat() == "2026-03-05T14:32:10"
    assert (c2.direction, c2.ended_by) == ("inbound", "agent")
