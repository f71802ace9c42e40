"""VOC004 (monotone) on Mandarin speech: espeak-ng's Mandarin voice speaks the Chinese script.

Mandarin's tones move the pitch on every syllable. A lively Mandarin agent must not be called monotone and
a flat one must be, on a clean line and through G.711 µ-law with noise 20 dB under the speech; the spread
in the evidence is the one measured on the agent's clean turns. espeak-ng is not a real agent (its pitch
range scales tones and intonation together): see docs/telephony.md, *VOC004 on Mandarin*.
"""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("soundfile")
pytest.importorskip("parselmouth")

import audio_synth as synth  # noqa: E402
import call_synth as cs  # noqa: E402
import kefuqa  # noqa: E402
from kefuqa.audio import measures as M  # noqa: E402
from kefuqa.batch import find_inputs, score  # noqa: E402
from kefuqa.model import Report  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed (apt-get install espeak-ng)")]


def _spread(g: cs.Generated) -> float:
    """The agent's median pitch spread over its clean turns, before mixing (the truth)."""
    sds = [M.pitch_stats(M.pitch_track(x, cs.SR))[1] for role, x in g.truth["pieces"] if role == "agent"]
    return float(np.median([v for v in sds if v is not None]))


@pytest.mark.parametrize(("variant", "pitch_range", "monotone"), [
    ("f3", "130%", False),   # lively (about 3 semitones)
    ("Alicia", "100%", False),  # espeak-ng's medium range for this voice (about 1.9)
    ("f3", "0", True),       # flat: tones and intonation gone (under 0.1)
    ("Annie", "35%", True),  # a flat reading by a wide voice (about 1.2)
])
@pytest.mark.parametrize(("subtype", "snr"), [("PCM_16", None), ("ULAW", 20.0)])
def test_mandarin_liveliness_is_judged_by_the_rulebook_threshold(tmp_path, variant, pitch_range, monotone,
                                                                 subtype, snr):
    g = cs.build(cs.Spec(language="zh", agent_variant=variant, agent_range=pitch_range, turns=4), "zh")
    truth = _spread(g)
    assert (truth < 1.5) == monotone and abs(truth - 1.5) > 0.25  # the case is what it says, not borderline
    cs.write_call(str(tmp_path), "c1", cs.degrade(g.samples, snr_db=snr), g.transcript, subtype=subtype)
    (report,) = list(score(find_inputs([tmp_path])[0], kefuqa.checker_for(None), select=["VOC004"]))
    assert isinstance(report, Report) and report.conversation is not None
    measured = report.conversation.metrics["agent_pitch_sd_semitones"]
    assert abs(measured - truth) <= 0.1, (measured, truth)
    fired = [f for f in report.findings if f.rule == "VOC004"]
    assert bool(fired) == monotone
    if fired:
        assert fired[0].evidence.startswith(f"坐席语调起伏 {measured:.2f} 个半音")
