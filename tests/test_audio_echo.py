"""Echo on the line, and the timing of dead air and interruptions, on generated calls with known truth.

A PBX's stereo recording hears each party's voice come back on the other's channel: the 2-wire hybrid's
echo or the handset's acoustic echo, 20–150 ms late and 12–20 dB down (tests/call_synth.echo_path). The
crosstalk is measured with its delay, so the echo makes no utterances of its own and moves no level past
its tolerance; where the echo is too strong for double talk to be timed, interruption (LST001) is *not
applicable* with the reason, never a finding at the wrong time. Dead air (SIL001) and interruptions
(LST001) found on a recording alone start and end within 0.1 s of the truth.
"""

from __future__ import annotations

import io

import pytest

np = pytest.importorskip("numpy")
sf = pytest.importorskip("soundfile")

import audio_synth as synth  # noqa: E402
import call_synth as cs  # noqa: E402
import kefuqa  # noqa: E402
from kefuqa.audio.analyze import analyze, prepare  # noqa: E402
from kefuqa.audio.vad import get_vad  # noqa: E402
from kefuqa.batch import find_inputs, score  # noqa: E402
from kefuqa.model import Conversation, Report  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed (apt-get install espeak-ng)")]

TIMED = ["SIL001", "LST001"]
WITHIN = 0.1 + 1e-6  # seconds (times are rounded to 0.01 s)


@pytest.fixture(scope="module")
def checker() -> kefuqa.Checker:
    return kefuqa.checker_for(None)


@pytest.fixture(scope="module")
def loud_agent() -> cs.Generated:
    """The agent 13 dB over the customer: its echo on the customer's channel is as loud as the customer."""
    return cs.build(cs.Spec(agent_db=-14.0, customer_db=-27.0, turns=4), "loud")


@pytest.fixture(scope="module")
def eventful() -> cs.Generated:
    """11 s of dead air after the first customer turn, and the agent cutting in 1.6 s before the customer
    stops (equal levels)."""
    return cs.build(cs.Spec(turns=4, silence_after=1, silence=11.0, cut_in_at=1, cut_in=1.6, seed=1), "events")


def _line(x: np.ndarray, mulaw: bool) -> np.ndarray:
    """Through a real G.711 µ-law WAV (libsndfile) and back, when asked."""
    if not mulaw:
        return x
    buf = io.BytesIO()
    sf.write(buf, x.T, cs.SR, format="WAV", subtype="ULAW")
    buf.seek(0)
    return sf.read(buf, dtype="float32")[0].T


def _timed(checker: kefuqa.Checker, conv: Conversation) -> tuple[list[tuple[str, float, float]], dict[str, str]]:
    rep = checker.check(conv, select=TIMED)
    return [(f.rule, f.start, f.end) for f in rep.findings], rep.not_applicable


def _truth(checker: kefuqa.Checker, g: cs.Generated) -> list[tuple[str, float, float]]:
    """The same rules on the generated times, words removed (the recording alone has none either)."""
    plain = {**g.transcript, "utterances": [{**u, "text": ""} for u in g.transcript["utterances"]]}
    found, _ = _timed(checker, Conversation.model_validate(plain))
    return found


@pytest.mark.parametrize(("delay", "level"), [(20.0, -12.0), (80.0, -15.0), (150.0, -12.0), (150.0, -20.0)])
def test_the_echo_is_measured_with_its_delay(loud_agent, delay, level):
    g = cs.build(cs.Spec(turns=4, seed=1), "even")  # equal levels: both echoes well over the noise
    p = prepare(cs.degrade(g.samples, echo=(delay, level)), cs.SR, vad=get_vad("auto"))
    for tr in p.tracks:
        assert tr.bleed_db is not None and abs(tr.bleed_db - level) <= 3.0, tr.bleed_db
        # the delays taken as echo reach the true one, and not more than two frames past it
        assert tr.echo_lag * 32 <= delay + 64 and (tr.echo_lag + 1) * 32 >= delay, tr.echo_lag


@pytest.mark.parametrize("mulaw", [False, True])
@pytest.mark.parametrize(("delay", "level"), [(20.0, -12.0), (150.0, -12.0), (150.0, -20.0)])
def test_an_echo_makes_no_utterances_of_its_own(loud_agent, delay, level, mulaw):
    x = _line(cs.degrade(loud_agent.samples, echo=(delay, level), snr_db=20.0 if mulaw else None), mulaw)
    conv = analyze(x, cs.SR, call_id="e", options=None)
    truth = loud_agent.transcript["utterances"]
    for u in conv.utterances:  # each found utterance is a true one of that role, not the other's echo
        assert any(t["role"] == u.role and min(u.end, t["end"]) > max(u.start, t["start"]) for t in truth), u
    for t in truth:  # and each true one is found, its edges within 0.1 s
        (u,) = [u for u in conv.utterances if u.role == t["role"] and min(u.end, t["end"]) > max(u.start, t["start"])]
        assert abs(u.start - t["start"]) <= WITHIN and abs(u.end - t["end"]) <= WITHIN, (u, t)
    assert "overlap_seconds" in conv.metrics["unreliable"]  # an echo as loud as the customer: no double-talk timing


@pytest.mark.parametrize("snr", [None, 20.0])
@pytest.mark.parametrize(("delay", "level"), [(40.0, -12.0), (150.0, -15.0)])
def test_an_echo_keeps_each_loudness_within_its_tolerance(tmp_path, loud_agent, checker, delay, level, snr):
    cs.write_call(str(tmp_path), "c1", cs.degrade(loud_agent.samples, echo=(delay, level), snr_db=snr),
                  loud_agent.transcript, subtype="ULAW")
    (report,) = list(score(find_inputs([tmp_path])[0], checker))
    assert isinstance(report, Report) and report.conversation is not None
    conv = report.conversation
    tol = 1.5 if snr is None else 2.0  # the stated tolerance with an echo (docs/telephony.md)
    for u in conv.utterances:
        want = -14.0 if u.role == "agent" else -27.0
        assert abs(u.attrs["loudness_dbfs"] - want) <= tol, (u.role, u.attrs["loudness_dbfs"])
    # the agent 13 dB over this customer is still found, and a lively agent is not called monotone
    assert "VOC003" in {f.rule for f in report.findings}
    assert "VOC004" not in {f.rule for f in report.findings}
    assert conv.notes == []  # the transcript still fits the recording (no swapped channels, no offset)


@pytest.mark.parametrize("mulaw", [False, True])
def test_dead_air_and_interruption_are_timed_within_a_tenth_of_a_second(eventful, checker, mulaw):
    x = _line(cs.degrade(eventful.samples, snr_db=20.0 if mulaw else None), mulaw)
    found, not_applicable = _timed(checker, analyze(x, cs.SR, call_id="e"))
    truth = _truth(checker, eventful)
    assert sorted(r for r, _, _ in truth) == ["LST001", "SIL001"] and not_applicable == {}
    assert len(found) == len(truth)
    for rule, s, e in truth:
        ((_, s2, e2),) = [f for f in found if f[0] == rule]
        assert abs(s2 - s) <= WITHIN and abs(e2 - e) <= WITHIN, (rule, s, e, s2, e2)


def test_a_strong_echo_makes_interruption_not_judged_rather_than_mistimed(tmp_path, eventful, checker):
    # the echo of each party 12 dB down on the other's channel, 40 ms late: inside double talk a party's
    # own speech is not told from the other's echo within 0.1 s, so LST001 is not judged; SIL001 still is
    synth.write(str(tmp_path / "c1.wav"), cs.degrade(eventful.samples, echo=(40.0, -12.0)), cs.SR)
    (report,) = list(score(find_inputs([tmp_path])[0], checker, select=TIMED))
    assert isinstance(report, Report)
    assert "LST001" not in {f.rule for f in report.findings}
    assert "回声" in report.not_applicable["LST001"] and "抢话判断不可靠" in report.not_applicable["LST001"]
    ((_, s, e),) = [f for f in _truth(checker, eventful) if f[0] == "SIL001"]
    (sil,) = [f for f in report.findings if f.rule == "SIL001"]
    assert abs(sil.start - s) <= WITHIN and abs(sil.end - e) <= WITHIN
    # a weaker echo (−25 dB) leaves double talk measurable: the interruption is found, on time
    weak = analyze(cs.degrade(eventful.samples, echo=(150.0, -25.0)), cs.SR, call_id="w")
    found, not_applicable = _timed(checker, weak)
    assert "LST001" not in not_applicable
    ((_, s, e),) = [f for f in _truth(checker, eventful) if f[0] == "LST001"]
    ((_, s2, e2),) = [f for f in found if f[0] == "LST001"]
    assert abs(s2 - s) <= WITHIN and abs(e2 - e) <= WITHIN


@pytest.mark.parametrize("echo", [None, (150.0, -12.0), (40.0, -15.0)])
def test_with_a_transcript_the_findings_keep_the_transcripts_times(tmp_path, eventful, checker, echo):
    # the echo after each turn is not speech the transcript left out: dead air stays dead air
    cs.write_call(str(tmp_path), "c1", cs.degrade(eventful.samples, echo=echo, snr_db=20.0), eventful.transcript,
                  subtype="ULAW")
    (report,) = list(score(find_inputs([tmp_path])[0], checker, select=TIMED))
    assert isinstance(report, Report) and report.conversation is not None
    assert report.conversation.metrics["untranscribed_speech_seconds"] == 0
    alone, _ = _timed(checker, Conversation.model_validate(eventful.transcript))
    assert sorted(r for r, _, _ in alone) == ["LST001", "SIL001"]
    assert sorted((f.rule, f.start, f.end) for f in report.findings) == sorted(alone)
