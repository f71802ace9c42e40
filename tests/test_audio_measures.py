"""Acoustic measures against generated audio with a known answer (espeak-ng speech, tones, crosstalk)."""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("soundfile")

import audio_synth as synth  # noqa: E402
from kefuqa.audio import measures as M  # noqa: E402
from kefuqa.audio.analyze import Options, analyze  # noqa: E402
from kefuqa.audio.decode import AudioError  # noqa: E402
from kefuqa.audio.vad import SileroVad, VadError, silero_model_path  # noqa: E402

# Tests that synthesise speech (espeak-ng, one process per sentence) or encode and decode recordings are
# marked slow; the signal-processing helpers on numpy arrays are not.
needs_espeak = pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed "
                                  "(apt-get install espeak-ng) — speech test audio cannot be generated")


def _silero_ok() -> bool:
    try:
        SileroVad()
        return True
    except VadError:
        return False


VADS = ["energy", pytest.param("silero", marks=pytest.mark.skipif(
    not _silero_ok(), reason="onnxruntime or faster-whisper's silero_vad_v6.onnx not installed"))]

GREETING = "Hello, thank you for calling. How can I help you today?"
PROBLEM = "I want to ask about my bill, it is much higher than last month and I do not understand why"
SORRY = "I am sorry to hear that, let me check it for you"
THANKS = "okay, thank you"
TOL = 0.1  # seconds: evidence must be accurate to a tenth of a second


def _call(sr: int = 8000) -> synth.Call:
    """agent greets; customer explains; agent cuts in 1.5 s before the customer ends; 4 s of silence;
    customer thanks; 3 s of silence to the end."""
    a1 = synth.speak(GREETING, sample_rate=sr, level_dbfs=-20)
    c1 = synth.speak(PROBLEM, sample_rate=sr, pitch=80, level_dbfs=-24)
    a2 = synth.speak(SORRY, sample_rate=sr, level_dbfs=-20)
    c2 = synth.speak(THANKS, sample_rate=sr, pitch=80, level_dbfs=-24)
    call = synth.Call(0.5 + a1.size / sr + 0.8 + c1.size / sr + a2.size / sr + c2.size / sr + 6.0, sr)
    call.add("agent", 0.5, a1)
    t = call.truth[-1][2] + 0.8
    call.add("customer", t, c1)
    call.add("agent", call.truth[-1][2] - 1.5, a2)
    call.add("customer", call.truth[-1][2] + 4.0, c2)
    return call


@pytest.fixture(scope="module")
def call8k() -> synth.Call:
    if not synth.have_espeak():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return _call(8000)


def _spans(conv, role):
    return [(u.start, u.end) for u in conv.utterances if u.role == role]


def _assert_matches_truth(conv, truth):
    got = [(u.role, u.start, u.end) for u in conv.utterances]
    assert len(got) == len(truth), (got, truth)
    for (role, s, e), (trole, ts, te) in zip(got, sorted(truth, key=lambda x: x[1]), strict=True):
        assert role == trole
        assert abs(s - ts) <= TOL, (role, s, ts)
        assert abs(e - te) <= TOL, (role, e, te)


# ---- speech segments, silences, overlaps ---------------------------------------------------------


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("vad", VADS)
@pytest.mark.parametrize("bleed", [None, -25.0])
def test_segments_per_role_match_truth(call8k, vad, bleed):
    conv = analyze(call8k.render(bleed_db=bleed), 8000, call_id="c", options=Options(vad=vad))
    _assert_matches_truth(conv, call8k.truth)
    assert conv.metrics["vad"] == vad
    assert conv.metrics["channels"] == 2 and conv.metrics["sample_rate"] == 8000


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("vad", VADS)
def test_silence_gap_and_overlap_started_by_agent(call8k, vad):
    conv = analyze(call8k.render(bleed_db=-25.0), 8000, call_id="c", options=Options(vad=vad))
    agent, customer = _spans(conv, "agent"), _spans(conv, "customer")
    ov = M.overlaps(agent, customer)
    assert len(ov) == 1
    s, e, who = ov[0]
    assert who == "a"  # the agent started inside the customer's speech
    assert abs((e - s) - 1.5) <= 2 * TOL
    # truth: 4.0 s of silence between the agent's apology and the customer's thanks
    silences = M.gaps(agent + customer, 0.0, conv.metrics["duration_seconds"], minimum=2.0)
    inner = [g for g in silences if 0 < g[0] and g[1] < conv.metrics["duration_seconds"]]
    assert len(inner) == 1 and abs((inner[0][1] - inner[0][0]) - 4.0) <= 2 * TOL
    assert conv.metrics["overlaps_started_by_agent"] == 1
    assert abs(conv.metrics["overlap_seconds"] - 1.5) <= 2 * TOL


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("vad", VADS)
@pytest.mark.parametrize("bleed", [-25.0, -18.0])
def test_bleed_alone_makes_no_utterances(vad, bleed):
    """The customer never speaks: their channel only carries the agent's leak and line noise."""
    sr = 8000
    call = synth.Call(9.0, sr)
    call.add("agent", 0.4, synth.speak(GREETING, sample_rate=sr, level_dbfs=-14))
    call.add("agent", call.truth[-1][2] + 1.0, synth.speak(SORRY, sample_rate=sr, level_dbfs=-14))
    conv = analyze(call.render(bleed_db=bleed), sr, call_id="c", options=Options(vad=vad))
    assert [u.role for u in conv.utterances] == ["agent", "agent"]
    assert conv.metrics["talk_ratio_agent"] == 1.0
    assert conv.metrics["customer_bleed_db"] == pytest.approx(bleed, abs=3.0)


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("vad", VADS)
def test_short_backchannel_is_a_short_overlap_started_by_customer(vad):
    sr = 8000
    call = synth.Call(8.0, sr)
    call.add("agent", 0.5, synth.speak(PROBLEM, sample_rate=sr, level_dbfs=-20))
    call.add("customer", 2.5, synth.speak("yes", sample_rate=sr, pitch=80, level_dbfs=-22))
    conv = analyze(call.render(bleed_db=-25.0), sr, call_id="c", options=Options(vad=vad))
    ov = M.overlaps(_spans(conv, "agent"), _spans(conv, "customer"))
    assert len(ov) == 1 and ov[0][2] == "b"  # the customer's "yes" started inside the agent's turn
    assert ov[0][1] - ov[0][0] < 1.0  # not an interruption by LST001's 1 s threshold
    assert conv.metrics["overlaps_started_by_agent"] == 0


@pytest.mark.slow
@needs_espeak
def test_talk_ratio(call8k):
    conv = analyze(call8k.render(), 8000, call_id="c", options=Options(vad="energy"))
    agent = sum(e - s for r, s, e in call8k.truth if r == "agent")
    customer = sum(e - s for r, s, e in call8k.truth if r == "customer")
    assert conv.metrics["talk_ratio_agent"] == pytest.approx(agent / (agent + customer), abs=0.02)
    assert conv.metrics["agent_talk_seconds"] == pytest.approx(agent, abs=0.2)


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("sr", [16000, 44100])
def test_other_sample_rates(sr):
    call = synth.Call(6.0, sr)
    call.add("agent", 0.5, synth.speak(GREETING, sample_rate=sr))
    call.add("customer", 4.3, synth.speak(THANKS, sample_rate=sr, pitch=80))
    conv = analyze(call.render(), sr, call_id="c")
    _assert_matches_truth(conv, call.truth)
    assert conv.metrics["sample_rate"] == sr


@pytest.mark.slow
@needs_espeak
def test_channel_order_customer_left():
    sr = 8000
    call = synth.Call(7.0, sr, roles=("customer", "agent"))
    call.add("agent", 0.3, synth.speak(GREETING, sample_rate=sr))
    call.add("customer", 4.2, synth.speak(THANKS, sample_rate=sr, pitch=80))
    conv = analyze(call.render(), sr, call_id="c", options=Options(roles=("customer", "agent")))
    assert [u.role for u in conv.utterances] == ["agent", "customer"]


def test_silence_only_is_no_speech_error():
    x = synth.Call(3.0, 8000).render(bleed_db=None, noise_dbfs=-70)
    with pytest.raises(AudioError, match="没有找到语音"):
        analyze(x, 8000, call_id="c", options=Options(vad="energy"))
    with pytest.raises(AudioError, match="没有找到语音"):
        analyze(np.zeros((2, 16000), np.float32), 8000, call_id="c", options=Options(vad="energy"))


# ---- speech rate (syllables) ---------------------------------------------------------------------


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("text,voice,truth", [
    ("one two three four five six seven eight nine ten", "en", 11),
    (GREETING, "en", 14),
    ("ni3 hao3 huan1 ying2 zhi4 dian4 ke4 fu2 zhong1 xin1", "cmn-latn-pinyin", 10),
    ("qing3 wen4 you3 shen2 me5 ke3 yi3 bang1 nin2 de5", "cmn-latn-pinyin", 10),
    ("wo3 yao4 tou2 su4 ni3 men5 de5 fu2 wu4 tai4 cha4 le5", "cmn-latn-pinyin", 12),
])
@pytest.mark.parametrize("sr", [8000, 16000])
def test_syllable_count(text, voice, truth, sr):
    x = synth.speak(text, voice=voice, sample_rate=sr)
    n = M.count_syllables(x, sr, M.pitch_track(x, sr))
    assert abs(n - truth) <= max(1, round(0.15 * truth)), (n, truth)


@pytest.mark.slow
@needs_espeak
def test_speech_rate_fast_and_slow():
    """The same words at espeak speed 260 and 110: the syllable rate per minute follows."""
    sr = 8000
    rates = {}
    for speed in (110, 260):
        call = synth.Call(8.0, sr)
        call.add("agent", 0.3, synth.speak(GREETING, speed=speed, sample_rate=sr))
        conv = analyze(call.render(), sr, call_id="c", options=Options(vad="energy"))
        us = conv.utterances
        rates[speed] = sum(u.attrs["syllables"] for u in us) / sum(u.duration for u in us) * 60
        assert conv.metrics["agent_syllables_per_minute"] == pytest.approx(rates[speed], rel=0.02)
    assert rates[260] > 1.7 * rates[110]
    assert 140 < rates[110] < 260 < rates[260]


# ---- loudness ------------------------------------------------------------------------------------


def test_loudness_of_tones_in_dbfs():
    sr = 8000
    call = synth.Call(6.0, sr)
    call.add("agent", 0.5, synth.tone(300, 1.5, sr, level_dbfs=-18.0))
    call.add("customer", 3.0, synth.tone(500, 1.5, sr, level_dbfs=-30.0))
    conv = analyze(call.render(bleed_db=-25.0, noise_dbfs=-70), sr, call_id="c", options=Options(vad="energy"))
    a, c = conv.utterances
    assert (a.role, c.role) == ("agent", "customer")
    assert a.attrs["loudness_dbfs"] == pytest.approx(-18.0, abs=0.3)
    assert c.attrs["loudness_dbfs"] == pytest.approx(-30.0, abs=0.3)
    assert conv.metrics["agent_loudness_dbfs"] == pytest.approx(-18.0, abs=0.3)
    assert conv.metrics["customer_loudness_dbfs"] == pytest.approx(-30.0, abs=0.3)
    assert a.start == pytest.approx(0.5, abs=TOL) and a.end == pytest.approx(2.0, abs=TOL)


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("vad", VADS)
def test_loudness_of_speech_and_agent_trend(vad):
    """Agent at −26, −26, then −16 dBFS (raising the voice at an angry customer): loudness_rel_db of
    the last utterance is about +10 dB."""
    sr = 8000
    call = synth.Call(20.0, sr)
    t = 0.3
    for level in (-26.0, -26.0, -16.0):
        call.add("agent", t, synth.speak(SORRY, sample_rate=sr, level_dbfs=level))
        t = call.truth[-1][2] + 1.0
        call.add("customer", t, synth.speak("this is not acceptable", sample_rate=sr, pitch=85, level_dbfs=-12))
        t = call.truth[-1][2] + 0.8
    conv = analyze(call.render(bleed_db=-25.0), sr, call_id="c", options=Options(vad=vad))
    agent = [u for u in conv.utterances if u.role == "agent"]
    assert len(agent) == 3
    for u, level in zip(agent, (-26.0, -26.0, -16.0), strict=True):
        assert u.attrs["loudness_dbfs"] == pytest.approx(level, abs=1.5)
    assert agent[-1].attrs["loudness_rel_db"] == pytest.approx(10.0, abs=1.5)
    assert agent[0].attrs["loudness_rel_db"] == pytest.approx(0.0, abs=1.0)
    cust = [u for u in conv.utterances if u.role == "customer"]
    assert all(u.attrs["loudness_dbfs"] == pytest.approx(-12.0, abs=1.5) for u in cust)


# ---- pitch ---------------------------------------------------------------------------------------


def test_pitch_of_harmonic_glide_known_spread():
    """F0 glides from 110 to 220 Hz evenly in semitones: sd = 12/sqrt(12) = 3.46 st, median 155.6 Hz."""
    sr = 8000
    n = 3 * sr
    f0 = 110.0 * 2 ** (np.linspace(0, 12, n) / 12)
    x = synth.harmonic(f0, 3.0, sr)
    med, sd = M.pitch_stats(M.pitch_track(x, sr))
    assert sd == pytest.approx(12 / np.sqrt(12), abs=0.15)
    assert med == pytest.approx(110 * 2 ** 0.5, rel=0.03)
    med, sd = M.pitch_stats(M.pitch_track(synth.harmonic(180.0, 2.0, sr), sr))
    assert sd < 0.05 and med == pytest.approx(180.0, rel=0.01)


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("sr", [8000, 16000])
def test_pitch_monotone_vs_lively_speech(sr):
    text = GREETING + " Is there anything else I can do for you?"
    flat = synth.speak(synth.prosody(text, "0"), ssml=True, sample_rate=sr)
    lively = synth.speak(synth.prosody(text, "x-high"), ssml=True, sample_rate=sr)
    _, sd_flat = M.pitch_stats(M.pitch_track(flat, sr))
    _, sd_lively = M.pitch_stats(M.pitch_track(lively, sr))
    assert sd_flat < 0.6  # 机械语气
    assert sd_lively > 2.0
    # through the whole pipeline, per utterance
    call = synth.Call(flat.size / sr + lively.size / sr + 2.0, sr)
    call.add("agent", 0.3, flat).add("agent", flat.size / sr + 1.3, lively)
    conv = analyze(call.render(), sr, call_id="c")
    a, b = conv.utterances
    assert a.attrs["pitch_sd_semitones"] < 0.6 < 2.0 < b.attrs["pitch_sd_semitones"]


@pytest.mark.slow
@needs_espeak
def test_pitch_median_follows_espeak_pitch():
    lo = synth.speak(GREETING, pitch=20)
    hi = synth.speak(GREETING, pitch=80)
    med_lo, _ = M.pitch_stats(M.pitch_track(lo, 8000))
    med_hi, _ = M.pitch_stats(M.pitch_track(hi, 8000))
    assert 70 < med_lo < 95 and 120 < med_hi < 160  # espeak-ng 1.51 "en": about 84 and 137 Hz


def test_pitch_none_when_too_little_voicing():
    x = synth.harmonic(150.0, 0.12, 8000)
    med, sd = M.pitch_stats(M.pitch_track(x, 8000))
    assert sd is None


# ---- mono ----------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_espeak
def test_mono_roles_from_voice_pitch_without_asr():
    sr = 8000
    call = synth.Call(12.0, sr)
    call.add("agent", 0.3, synth.speak(GREETING, pitch=15, sample_rate=sr))
    call.add("customer", call.truth[-1][2] + 0.8, synth.speak(PROBLEM, pitch=95, sample_rate=sr))
    call.add("agent", call.truth[-1][2] + 0.8, synth.speak(SORRY, pitch=15, sample_rate=sr))
    conv = analyze(call.mono(), sr, call_id="c")
    assert [u.role for u in conv.utterances] == ["agent", "customer", "agent"]
    assert conv.metrics["channels"] == 1
    assert any("嗓音音高" in n for n in conv.notes)


@pytest.mark.slow
@needs_espeak
def test_identical_channels_are_treated_as_mono():
    sr = 8000
    call = synth.Call(5.0, sr)
    call.add("agent", 0.3, synth.speak(GREETING, sample_rate=sr))
    m = call.mono()
    conv = analyze(np.vstack([m, m]), sr, call_id="c")
    assert any("同一信号" in n for n in conv.notes)
    assert len(conv.utterances) == 1


# ---- primitives ------------------------------------------------------------------------------------


def test_segment_merges_short_gaps_and_drops_blips():
    f = M.FRAME_SECONDS
    mask = np.zeros(200, bool)
    mask[10:40] = True  # 0.96 s
    mask[45:60] = True  # gap of 5 frames (0.16 s) → merged
    mask[100:103] = True  # 0.096 s blip → dropped
    mask[150:190] = True
    assert M.segment(mask) == [(10, 60), (150, 190)]
    assert M.segment(mask, merge_gap=0.1) == [(10, 40), (45, 60), (150, 190)]
    long = np.ones(int(70 / f), bool)
    parts = M.segment(long, max_length=30.0)
    assert all((e - s) * f <= 30.0 + 1e-9 for s, e in parts) and parts[0][0] == 0 and parts[-1][1] == long.size


def test_overlap_and_gap_helpers():
    a = [(0.0, 3.0), (5.0, 9.0)]
    b = [(2.0, 6.0)]
    assert M.overlaps(a, b) == [(2.0, 3.0, "b"), (5.0, 6.0, "a")]
    assert M.gaps(a + b, 0.0, 12.0) == [(9.0, 12.0)]
    assert M.union_seconds(a + b) == 9.0


def test_silero_model_is_the_v6_file_from_faster_whisper():
    p = silero_model_path()
    if p is None:
        pytest.skip("faster-whisper is not installed")
    assert p.name == "silero_vad_v6.onnx" and p.parent.name == "assets"
