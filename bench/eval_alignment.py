"""How well the recording/transcript time check tells a transcript of another call (issue 10).

    python bench/eval_alignment.py

Generates 8 two-party calls (espeak-ng speech, tests/call_synth.py) that all follow one script — the same
greeting, turns of similar length: the hardest case for a check by times — and scores each recording
against the transcripts of the 7 others (56 wrong pairs), on stereo and on mono (both channels summed)
recordings with white noise 20 dB under the speech, through kefuqa.audio.guided.check_alignment as
kefuqa check uses it. Prints how many wrong pairs are caught (transcript past the recording; fits nowhere),
reported as an offset or a channel swap (measures left out), or accepted, with the accepted pairs'
agreement; and the agreement of the right transcript under line conditions and with coarse vendor
segments (each utterance 0.4 and 0.8 s longer at both ends), to show how far a stricter threshold could go.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import call_synth as cs  # noqa: E402
from kefuqa.audio import guided as G  # noqa: E402
from kefuqa.audio.analyze import prepare  # noqa: E402
from kefuqa.audio.vad import get_vad  # noqa: E402
from kefuqa.model import Conversation  # noqa: E402

ROLES = ("agent", "customer")
SPECS = [cs.Spec(turns=6, seed=s, gap=gap) for s, gap in [(0, 0.7), (1, 0.7), (2, 1.0), (3, 0.5), (4, 1.5)]] + [
    cs.Spec(turns=4, seed=5, silence_after=3, cut_in_at=1), cs.Spec(turns=3, seed=6, agent_db=-14, customer_db=-27),
    cs.Spec(turns=5, seed=7, agent_db=-20, customer_db=-38)]


def _padded(transcript: dict, pad: float) -> dict:
    t = json.loads(json.dumps(transcript))
    for u in t["utterances"]:
        u["start"], u["end"] = max(0.0, round(u["start"] - pad, 2)), round(u["end"] + pad, 2)
    return t


def _verdict(conv: Conversation, prep: object) -> tuple[str, float | None]:
    try:
        given, best = G.check_alignment(conv, prep, ROLES)  # type: ignore[arg-type]
    except G.AlignmentError as e:
        return ("caught: past the recording" if "超过录音时长" in str(e) else "caught: fits nowhere"), None
    moved = ((best.swapped and not prep.mono) or abs(best.lag) >= 0.3) and best.score - given.score >= G.BETTER  # type: ignore[attr-defined]
    return ("reported as offset/swap (measures left out)" if moved else "accepted"), round(given.score, 2)


def main() -> None:
    vad = get_vad("auto")
    calls = [cs.build(spec, f"s{i}") for i, spec in enumerate(SPECS)]
    print("wrong transcripts (each recording against the other calls' transcripts), white noise 20 dB under the speech")
    for mono in (False, True):
        counts: Counter[str] = Counter()
        accepted: list[float] = []
        for i, rec in enumerate(calls):
            x = cs.degrade(rec.samples, snr_db=20.0)
            prep = prepare(x.sum(axis=0, keepdims=True) if mono else x, cs.SR, vad=vad)
            for j, other in enumerate(calls):
                if i != j:
                    what, sc = _verdict(Conversation.model_validate(other.transcript), prep)
                    counts[what] += 1
                    if sc is not None and what == "accepted":
                        accepted.append(sc)
        print(f"  {'mono' if mono else 'stereo'}: {dict(counts)}; accepted agreement {sorted(accepted)}")
    print("right transcripts: agreement as given (min–max over the calls)")
    conditions = {"clean": ({}, 0.0), "20 dB SNR": ({"snr_db": 20.0}, 0.0), "10 dB SNR": ({"snr_db": 10.0}, 0.0),
                  "−15 dB crosstalk + 20 dB": ({"bleed_db": -15.0, "snr_db": 20.0}, 0.0),
                  "echo 150 ms −12 dB + 20 dB": ({"echo": (150.0, -12.0), "snr_db": 20.0}, 0.0),
                  "segments +0.4 s each end, 20 dB": ({"snr_db": 20.0}, 0.4),
                  "segments +0.8 s each end, 20 dB": ({"snr_db": 20.0}, 0.8)}
    for name, (kw, pad) in conditions.items():
        scores = []
        for rec in calls:
            prep = prepare(cs.degrade(rec.samples, **kw), cs.SR, vad=vad)  # type: ignore[arg-type]
            what, sc = _verdict(Conversation.model_validate(_padded(rec.transcript, pad)), prep)
            scores.append(sc if sc is not None else what)
        nums = [s for s in scores if isinstance(s, float)]
        print(f"  {name}: {min(nums):.2f}–{max(nums):.2f}" + ("" if len(nums) == len(scores) else f"; {scores}"))


if __name__ == "__main__":
    main()
