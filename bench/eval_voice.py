"""Voice rules on generated calls with known truth: precision and recall of VOC003–VOC005, and timing.

    python bench/eval_voice.py [--seeds 2] [--keep DIR]

Generates two-party calls (espeak-ng speech, tests/call_synth.py) near and far from each threshold of the
standard rulebook — the agent too loud or too quiet for the line or for this call's customer (VOC003),
monotone (VOC004), louder after the customer turns angry in words or only in voice (VOC005), and calls
that must not fire — each written as a recording + transcript pair and scored by the same path as
``kefuqa check DIR`` (kefuqa.batch). Two line conditions: clean 16-bit PCM, and G.711 µ-law with white
noise 20 dB below the speech. Prints, per condition and rule, TP/FP/FN, precision and recall (targets
≥ 0.9 / ≥ 0.85), how many calls had the rule not applicable, and the silence (SIL001) and interruption
(LST001) timing error of the recording-measured gaps against the generated truth (target ≤ 0.1 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

import call_synth as cs  # noqa: E402
from kefuqa.batch import find_inputs, score  # noqa: E402
from kefuqa.engine import Checker  # noqa: E402
from kefuqa.model import Report  # noqa: E402
from kefuqa.rules.rulebook import load_rulebook  # noqa: E402

RULES = ("VOC003", "VOC004", "VOC005")


def cases() -> list[tuple[str, cs.Spec, set[str]]]:
    """(name, spec, the voice rules that must fire)."""
    S = cs.Spec
    out: list[tuple[str, cs.Spec, set[str]]] = [
        # VOC003: range [-40, -10]; soft range [-34, -16] with 10 dB against the customer
        ("normal level", S(), set()),
        ("a little louder than the customer", S(agent_db=-19, customer_db=-26), set()),
        ("loud for the line, far", S(agent_db=-6, customer_db=-24), {"VOC003"}),
        ("loud for the line, near", S(agent_db=-8, customer_db=-12), {"VOC003"}),
        ("inside the line range, near", S(agent_db=-12.5, customer_db=-15), set()),
        ("14 dB over this customer", S(agent_db=-13, customer_db=-27), {"VOC003"}),
        ("7 dB over this customer", S(agent_db=-14, customer_db=-21), set()),
        ("quiet for the line, far", S(agent_db=-45, customer_db=-30), {"VOC003"}),
        ("quiet for the line, near", S(agent_db=-42.5, customer_db=-38), {"VOC003"}),
        ("quiet but like this customer", S(agent_db=-37, customer_db=-33), set()),
        ("13 dB under this customer", S(agent_db=-37, customer_db=-24), {"VOC003"}),
        # VOC004: median pitch spread under 1.5 semitones
        ("monotone", S(agent_range="0"), {"VOC004"}),
        ("flat, near", S(agent_range="low"), {"VOC004"}),
        ("lively", S(agent_range="x-high"), set()),
        # VOC005: more than 6 dB over the level before the anger
        ("angry words, agent +10 dB", S(angry_at=1, reply_db=10), {"VOC005"}),
        ("angry words, agent +8 dB (near)", S(angry_at=2, reply_db=8), {"VOC005"}),
        ("angry words, agent +3 dB", S(angry_at=1, reply_db=3), set()),
        ("angry words, agent calm", S(angry_at=2, reply_db=0), set()),
        ("angry voice only, agent +10 dB", S(angry_at=1, angry_words=False, angry_db=10, reply_db=10), {"VOC005"}),
        ("angry voice only, agent calm", S(angry_at=1, angry_words=False, angry_db=10, reply_db=0), set()),
        ("calm customer, agent +10 dB once", S(angry_at=None, reply_db=0, agent_db=-26), set()),
    ]
    return out


CONDITIONS = {
    "clean": {"subtype": "PCM_16", "snr_db": None, "transcript": True},
    "µ-law + 20 dB SNR": {"subtype": "ULAW", "snr_db": 20.0, "transcript": True},
    # the recording alone: utterances found by the VAD, no words — anger only heard (VOC005 expected only
    # where the customer's voice shows it)
    "µ-law + 20 dB SNR, recording only": {"subtype": "ULAW", "snr_db": 20.0, "transcript": False},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--keep", help="write the generated calls here instead of a temporary folder")
    args = ap.parse_args()
    checker = Checker(load_rulebook(None))
    work = Path(args.keep or tempfile.mkdtemp(prefix="kefuqa-voice-"))
    generated = []
    for seed in range(args.seeds):
        for k, (name, spec, fire) in enumerate(cases()):
            spec.seed = seed
            generated.append((f"s{seed}-{k:02d}", name, cs.build(spec, f"s{seed}-{k:02d}"), fire))
    print(f"{len(generated)} generated calls × {len(CONDITIONS)} conditions, in {work}")
    for cond, opts in CONDITIONS.items():
        folder = work / ("mu-law" if "µ" in cond else "clean") / ("pair" if opts["transcript"] else "bare")
        for cid, _, g, _ in generated:
            cs.write_call(str(folder), cid, cs.degrade(g.samples, snr_db=opts["snr_db"], seed=len(cid)),
                          g.transcript, subtype=str(opts["subtype"]))
            if not opts["transcript"]:
                (folder / f"{cid}.json").unlink()
        files, errors = find_inputs([folder])
        reports = {r.call_id: r for r in score(files, checker, select=["VOC", "SIL", "LST"])
                   if isinstance(r, Report)}
        bad = [r for r in score(files, checker) if not isinstance(r, Report)] + errors
        print(f"\n== {cond} ({len(reports)} calls scored, {len(bad)} errors)")
        for e in bad:
            print(f"   error: {e}")
        for rule in RULES:
            tp = fp = fn = na = 0
            misses = []
            for cid, name, g, fire in generated:
                if not opts["transcript"] and rule == "VOC005" and g.truth["spec"].angry_db <= 0:
                    fire = fire - {"VOC005"}  # anger only in the words: nothing to hear without a transcript
                rep = reports.get(cid)
                if rep is None:
                    continue
                got = any(f.rule == rule for f in rep.findings)
                if rule in rep.not_applicable:
                    na += 1
                want = rule in fire
                tp += got and want
                fp += got and not want
                fn += want and not got
                if got != want:
                    misses.append(f"{cid} {name}: {'fired' if got else 'missed'}"
                                  + (f" ({rep.not_applicable[rule]})" if rule in rep.not_applicable else ""))
            p = tp / (tp + fp) if tp + fp else 1.0
            r = tp / (tp + fn) if tp + fn else 1.0
            print(f"{rule}: TP {tp:3d} FP {fp:3d} FN {fn:3d}  precision {p:.2f}  recall {r:.2f}  "
                  f"not applicable {na}")
            for m in misses:
                print(f"    {m}")
        if opts["transcript"]:
            _timing(folder, generated)


def _timing(folder: Path, generated: list) -> None:
    """The recordings alone (no transcript): utterance edges the audio layer finds against the generated
    truth — what SIL001 (gaps) and LST001 (overlaps) are measured from."""
    from kefuqa.audio.analyze import analyze
    from kefuqa.audio.decode import decode

    errs = []
    for cid, _, g, _ in generated:
        d = decode(folder / f"{cid}.wav")
        conv = analyze(d.samples, d.sample_rate, call_id=cid)
        for t in g.transcript["utterances"]:
            same = [u for u in conv.utterances if u.role == t["role"]]
            best = max(same, key=lambda u: min(u.end, t["end"]) - max(u.start, t["start"]), default=None)
            if best is None or min(best.end, t["end"]) <= max(best.start, t["start"]):
                errs.append(float("inf"))
                continue
            errs.append(max(abs(best.start - t["start"]), abs(best.end - t["end"])))
    a = np.array(errs)
    print(f"utterance edges of the recording alone vs truth: median {np.median(a):.3f} s, 95th percentile "
          f"{np.percentile(a, 95):.3f} s, within 0.1 s {np.mean(a <= 0.1) * 100:.0f}% of {a.size} utterances")


if __name__ == "__main__":
    main()
