"""A recording and its transcript as one call, over telephone-grade audio (generated, known truth).

The transcript gives text, roles and times; the recording the measures per transcript utterance. The
time lines are checked against each other (swapped channels, an offset, a transcript of another call),
and a recording a measure cannot be trusted on says so instead of finding something wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
sf = pytest.importorskip("soundfile")

import audio_synth as synth  # noqa: E402
import call_synth as cs  # noqa: E402
import kefuqa  # noqa: E402
from kefuqa.batch import find_inputs, read_inputs, score  # noqa: E402
from kefuqa.errors import InputError  # noqa: E402
from kefuqa.model import Conversation, Report  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed (apt-get install espeak-ng)")]


@pytest.fixture(scope="module")
def checker() -> kefuqa.Checker:
    return kefuqa.checker_for(None)


@pytest.fixture(scope="module")
def loud_agent() -> cs.Generated:
    """The agent 12 dB over this customer (VOC003 by the call's own levels), lively."""
    return cs.build(cs.Spec(agent_db=-14.0, customer_db=-27.0, turns=4), "loud")


def _read(folder: Path, **opts: object) -> list[Conversation | InputError]:
    files, errors = find_inputs([folder])
    return [*errors, *read_inputs(files, **opts)]


def _levels(conv: Conversation, role: str) -> list[float]:
    return [u.attrs["loudness_dbfs"] for u in conv.utterances if u.role == role]


def test_recording_and_transcript_are_one_report_with_text_and_voice_rules(tmp_path, loud_agent, checker):
    cs.write_call(str(tmp_path), "c1", cs.degrade(loud_agent.samples), loud_agent.transcript)
    files, errors = find_inputs([tmp_path])
    assert errors == [] and len(files) == 1
    (report,) = list(score(files, checker))
    assert isinstance(report, Report) and report.call_id == "loud"
    conv = report.conversation
    assert conv is not None and conv.notes == []
    # each transcript utterance measured on its own channel, within 1 dB of the generated level
    assert all(abs(v - -14.0) <= 1.0 for v in _levels(conv, "agent"))
    assert all(abs(v - -27.0) <= 1.0 for v in _levels(conv, "customer"))
    # and its rate: espeak-ng at its default 160 words a minute speaks 3–6 syllables a second
    assert all(180 <= u.attrs["syllables_per_minute"] <= 360 for u in conv.utterances), \
        [u.attrs["syllables_per_minute"] for u in conv.utterances]
    assert conv.metrics["audio_path"] == str(tmp_path / "c1.wav") and conv.metrics["alignment_score"] > 0.8
    (voc,) = [f for f in report.findings if f.rule == "VOC003"]
    diff = conv.metrics["agent_loudness_dbfs"] - conv.metrics["customer_loudness_dbfs"]
    assert voc.evidence.startswith("坐席音量 -1") and "高于本通客户" in voc.evidence
    assert abs(float(voc.evidence.split("高于本通客户 ")[1].split(" dB")[0]) - diff) <= 0.6
    # the text rules ran on the same report: the transcript has no closing thanks
    assert any(f.rule == "CLS002" for f in report.findings)
    # both channels' loudness envelope for the timeline (0.256 s a point), drawn in the report's lanes
    env = conv.metrics["envelope"]
    assert len(env["agent"]) == len(env["customer"]) == -(-int(conv.metrics["duration_seconds"] / 0.032) // 8)
    t = loud_agent.transcript["utterances"][0]
    mid = int((t["start"] + t["end"]) / 2 / env["step"])
    assert env["agent"][mid] > env["customer"][mid] + 10  # the agent speaking, the customer silent
    from kefuqa.writers.timeline import render_timeline

    html = render_timeline(report)
    assert html.count('class="kq-env"') == 2 and "坐席音量包络" in html


def test_swapped_channels_are_reported_and_fixed_with_channels(tmp_path, loud_agent):
    cs.write_call(str(tmp_path), "c1", cs.degrade(loud_agent.samples)[::-1], loud_agent.transcript)
    (conv,) = _read(tmp_path)
    assert isinstance(conv, Conversation)
    assert any("录音声道与转写角色相反" in n and "--channels customer,agent" in n for n in conv.notes)
    assert all("loudness_dbfs" not in u.attrs for u in conv.utterances)  # measures left out, not wrong
    # and the voice rules say why they are not judged (not that a recording is needed)
    assert "录音声道与转写角色相反" in conv.metrics["unreliable"]["loudness_dbfs"]
    na = kefuqa.checker_for(None).check(conv).not_applicable
    assert all("录音声道与转写角色相反" in na[r] for r in ("VOC003", "VOC004", "VOC005")), na
    (fixed,) = _read(tmp_path, channels="customer,agent")
    assert isinstance(fixed, Conversation) and fixed.notes == []
    assert all(abs(v - -14.0) <= 1.0 for v in _levels(fixed, "agent"))
    # kefuqa check's default table shows the note with its fix (not only the JSON output)
    from typer.testing import CliRunner

    from kefuqa.cli import app

    shown = "".join(CliRunner().invoke(app, ["check", str(tmp_path)]).stdout.split())
    assert "注意：录音声道与转写角色相反" in shown and "请用--channelscustomer,agent" in shown


def test_an_offset_is_reported_and_fixed_in_the_manifest(tmp_path, loud_agent):
    shifted = json.loads(json.dumps(loud_agent.transcript))
    for u in shifted["utterances"]:
        u["start"], u["end"] = round(u["start"] + 1.5, 2), round(u["end"] + 1.5, 2)
    cs.write_call(str(tmp_path), "c1", cs.degrade(loud_agent.samples), shifted)
    (conv,) = _read(tmp_path)
    assert isinstance(conv, Conversation)
    (note,) = [n for n in conv.notes if "录音比转写早约 1.5 秒" in n]
    assert "offset 列填 -1.50" in note and conv.metrics["alignment_offset_seconds"] == pytest.approx(-1.5, abs=0.07)
    assert "时间差约 1.5 秒，声学测量未采用" in conv.metrics["unreliable"]["loudness_dbfs"]
    (tmp_path / "manifest.csv").write_text("call_id,recording,transcript,offset,agent_id,team\n"
                                           "L-1,c1.wav,c1.json,-1.5,A1,一组\n", encoding="utf-8")
    (fixed,) = _read(tmp_path)
    assert isinstance(fixed, Conversation) and fixed.id == "L-1" and fixed.notes == []
    assert fixed.agent is not None and fixed.agent.team == "一组"
    assert all(abs(v - -14.0) <= 1.0 for v in _levels(fixed, "agent"))


def test_a_transcript_of_another_call_is_an_error_and_the_rest_is_scored(tmp_path, loud_agent, checker):
    other = cs.build(cs.Spec(turns=3, seed=3), "other")
    cs.write_call(str(tmp_path), "a", cs.degrade(other.samples), loud_agent.transcript)  # times don't fit
    cs.write_call(str(tmp_path), "b", cs.degrade(loud_agent.samples), loud_agent.transcript)
    longer = json.loads(json.dumps(other.transcript))
    longer["utterances"][-1]["end"] += 30.0
    longer["id"] = "longer"
    cs.write_call(str(tmp_path), "c", cs.degrade(other.samples), longer)
    files, _ = find_inputs([tmp_path])
    results = list(score(files, checker))
    errors = [r for r in results if isinstance(r, InputError)]
    assert [r.call_id for r in results if isinstance(r, Report)] == ["loud"]
    assert [Path(e.source).name for e in errors] == ["a.wav", "c.wav"]
    assert "转写可能属于另一通电话" in errors[0].reason and "a.json" in errors[0].reason
    assert "超过录音时长" in errors[1].reason


@pytest.mark.parametrize("subtype", ["ULAW", "ALAW", "GSM610", "MPEG_LAYER_III"])
def test_telephone_codecs_keep_the_measures(tmp_path, loud_agent, subtype):
    if subtype not in sf.available_subtypes("WAV" if subtype != "MPEG_LAYER_III" else "MP3"):
        pytest.skip(f"libsndfile here cannot write {subtype}")
    x = cs.degrade(loud_agent.samples)
    if subtype == "MPEG_LAYER_III":  # a low-bitrate MP3 at 8 kHz, mono mix (as some PBXs archive)
        path = tmp_path / "c1.mp3"
        synth.write(str(path), x.sum(axis=0, keepdims=True), cs.SR, format="MP3", subtype=subtype,
                    compression_level=0.9)
        (tmp_path / "c1.json").write_text(json.dumps(loud_agent.transcript, ensure_ascii=False), encoding="utf-8")
    else:
        cs.write_call(str(tmp_path), "c1", x, loud_agent.transcript, subtype=subtype)
    (conv,) = _read(tmp_path)
    assert isinstance(conv, Conversation), conv
    mono = subtype in ("GSM610", "MPEG_LAYER_III")
    tol = 1.5 if mono else 1.0
    # a mono recording measures each utterance on the one channel: still the speaker of that turn
    assert all(abs(v - -14.0) <= tol for v in _levels(conv, "agent")), _levels(conv, "agent")
    assert all(abs(v - -27.0) <= tol for v in _levels(conv, "customer")), _levels(conv, "customer")
    sds = [u.attrs["pitch_sd_semitones"] for u in conv.utterances if u.role == "agent"]
    assert all(s is not None and s > 1.5 for s in sds)  # lively stays lively


def test_a_clipped_agent_is_never_found_too_quiet(tmp_path, checker):
    g = cs.build(cs.Spec(agent_db=-30.0, customer_db=-26.0, turns=4), "clip")
    cs.write_call(str(tmp_path), "c1", cs.degrade(g.samples, clip_agent_db=30.0), g.transcript)
    (report,) = list(score(find_inputs([tmp_path])[0], checker))
    assert isinstance(report, Report) and report.conversation is not None
    assert "削波" in report.conversation.metrics["unreliable"]["loudness_dbfs"]
    voc3 = [f for f in report.findings if f.rule == "VOC003"]
    # driven 30 dB up the agent is loud, and clipping only hides loudness: found loud, or not judged
    assert all("实际更响" in f.evidence for f in voc3)
    assert voc3 or "削波" in report.not_applicable.get("VOC003", "")
    assert "VOC005" not in {f.rule for f in report.findings}


def test_noise_at_10_db_makes_monotony_not_judged_rather_than_wrong(tmp_path, checker):
    g = cs.build(cs.Spec(agent_range="x-high", turns=4), "noisy")
    cs.write_call(str(tmp_path), "c1", cs.degrade(g.samples, snr_db=10.0), g.transcript, subtype="ULAW")
    (report,) = list(score(find_inputs([tmp_path])[0], checker))
    assert isinstance(report, Report)
    assert "VOC004" not in {f.rule for f in report.findings}
    # loudness: within 2.5 dB at 10 dB SNR (the VAD misses the quietest speech frames under the noise)
    assert all(abs(v - -26.0) <= 2.5 for v in _levels(report.conversation, "agent"))


def test_a_recording_below_telephone_rate_or_with_three_channels_is_named(tmp_path, loud_agent):
    four_k = tmp_path / "slow"
    four_k.mkdir()
    synth.write(str(four_k / "c1.wav"), loud_agent.samples[:, ::2], 4000)
    (four_k / "c1.json").write_text(json.dumps(loud_agent.transcript), encoding="utf-8")
    three = tmp_path / "three"
    three.mkdir()
    synth.write(str(three / "c1.wav"), np.vstack([loud_agent.samples, loud_agent.samples[:1]]), 8000)
    (three / "c1.json").write_text(json.dumps(loud_agent.transcript), encoding="utf-8")
    (e1,) = _read(four_k)
    (e2,) = _read(three)
    assert isinstance(e1, InputError) and e1.source.endswith("slow/c1.wav") and "4000 Hz" in e1.reason
    assert isinstance(e2, InputError) and e2.source.endswith("three/c1.wav") and "3 个声道" in e2.reason
    # listed in a manifest beside a good call: the error also names the row and the call, the rest is scored
    (four_k / "good").mkdir()
    cs.write_call(str(four_k / "good"), "g1", cs.degrade(loud_agent.samples), loud_agent.transcript, subtype="ULAW")
    (four_k / "manifest.csv").write_text("call_id,recording,transcript,工号\nR-SLOW,c1.wav,c1.json,A1\n"
                                         "R-GOOD,good/g1.wav,good/g1.json,A2\n", encoding="utf-8")
    e3, good = _read(four_k)
    assert isinstance(e3, InputError) and e3.source.endswith("slow/c1.wav") and "4000 Hz" in e3.reason
    assert e3.reason.endswith("manifest.csv 第 2 行，通话 R-SLOW）"), e3.reason
    assert isinstance(good, Conversation) and good.id == "R-GOOD" and good.agent is not None


@pytest.mark.parametrize("snr", [None, 20.0])
def test_crosstalk_at_minus_15_db_does_not_move_either_party(tmp_path, loud_agent, snr):
    # each party leaks into the other's channel 15 dB down (a poor hybrid); the customer is 13 dB quieter
    # than the agent, so the agent's leak sits only 2 dB under the customer's own speech on that channel
    cs.write_call(str(tmp_path), "c1", cs.degrade(loud_agent.samples, bleed_db=-15.0, snr_db=snr),
                  loud_agent.transcript, subtype="ULAW")
    (conv,) = _read(tmp_path)
    assert isinstance(conv, Conversation) and conv.notes == []
    tol = 1.0 if snr is None else 1.5  # the stated tolerance: 1 dB on a clean line, 1.5 dB at 20 dB SNR
    assert all(abs(v - -14.0) <= tol for v in _levels(conv, "agent")), _levels(conv, "agent")
    assert all(abs(v - -27.0) <= tol for v in _levels(conv, "customer")), _levels(conv, "customer")


def test_check_command_on_a_folder_with_offset_and_a_bad_manifest_row(tmp_path, loud_agent):
    from typer.testing import CliRunner

    from kefuqa.cli import app

    shifted = json.loads(json.dumps(loud_agent.transcript))
    for u in shifted["utterances"]:
        u["start"], u["end"] = round(u["start"] + 1.5, 2), round(u["end"] + 1.5, 2)
    cs.write_call(str(tmp_path), "c1", cs.degrade(loud_agent.samples), shifted, subtype="ULAW")
    result = CliRunner().invoke(app, ["check", str(tmp_path), "--offset", "-1.5", "-f", "json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout) if result.stdout.lstrip().startswith("[") else [json.loads(result.stdout)]
    assert report["call_id"] == "loud" and "VOC003" in {f["rule"] for f in report["findings"]}
    (tmp_path / "manifest.csv").write_text("call_id,recording,transcript,offset\nL-1,c1.wav,c1.json,-1.5\n"
                                           "L-2,gone.wav,c1.json,\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(tmp_path), "-f", "jsonl"])
    assert result.exit_code == 2
    assert [json.loads(line)["call_id"] for line in result.stdout.splitlines()] == ["L-1"]
    assert "manifest.csv:第 3 行（L-2）: 录音文件不存在：gone.wav" in result.stderr


def test_measuring_leaves_the_callers_transcript_as_it_was(loud_agent):
    from kefuqa.audio.analyze import prepare
    from kefuqa.audio.guided import measure_transcript
    from kefuqa.audio.vad import get_vad

    x = cs.degrade(loud_agent.samples)
    conv = Conversation.model_validate(loud_agent.transcript)
    conv.utterances[0].attrs["emotion"] = "neutral"  # a vendor's own attribute is kept, not overwritten
    out = measure_transcript(conv, prepare(x, cs.SR, vad=get_vad("auto")), ("agent", "customer"), samples=x)
    assert [u.attrs for u in conv.utterances] == [{"emotion": "neutral"}] + [{}] * (len(conv.utterances) - 1)
    assert out.utterances[0].attrs["emotion"] == "neutral" and out.utterances[0].attrs["loudness_dbfs"] < -12


@pytest.mark.parametrize(("spec", "transcript", "fires"), [
    (cs.Spec(angry_at=2, reply_db=8), True, True),  # angry words, the agent 8 dB up: over the 6 dB of VOC005
    (cs.Spec(angry_at=1, reply_db=3), True, False),  # angry words, the agent 3 dB up: under it
    (cs.Spec(angry_at=1, angry_words=False, angry_db=10, reply_db=10), False, True),  # anger only heard
    (cs.Spec(angry_at=1, angry_words=False, angry_db=10, reply_db=0), False, False),  # heard, the agent calm
], ids=["words-agent+8dB", "words-agent+3dB", "heard-agent+10dB", "heard-agent-calm"])
def test_composure_after_an_angry_customer_on_a_telephone_line(tmp_path, checker, spec, transcript, fires):
    """VOC005 on generated G.711 µ-law calls with noise 20 dB under the speech: after the customer turns
    angry — in the transcript's words, or on the recording alone only in the customer's voice (louder and
    higher) — the agent's reply louder than the 6 dB of the rulebook is found with its measurement, and a
    reply under it is not."""
    g = cs.build(spec, "angry")
    cs.write_call(str(tmp_path), "c1", cs.degrade(g.samples, snr_db=20.0), g.transcript, subtype="ULAW")
    if not transcript:
        (tmp_path / "c1.json").unlink()
    (report,) = list(score(find_inputs([tmp_path])[0], checker))
    assert isinstance(report, Report) and "VOC005" not in report.not_applicable
    voc5 = [f for f in report.findings if f.rule == "VOC005"]
    assert bool(voc5) == fires, [(f.rule, f.evidence) for f in report.findings]
    if fires:
        (f,) = voc5
        assert f.evidence.startswith("客户激动后坐席音量升高") and "dBFS" in f.evidence, f.evidence
        rise = float(f.evidence.split("升高 ")[1].split(" dB")[0])
        assert abs(rise - spec.reply_db) <= 2.0, f.evidence  # the measured rise is the generated one
