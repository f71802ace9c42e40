"""Voice rules on generated calls with known truth: precision and recall of VOC003–VOC005, and timing.

    python bench/eval_voice.py [--seeds 2] [--keep DIR] [--skip-voice] [--skip-timing]

Generates two-party calls (espeak-ng speech, tests/call_synth.py) near and far from each threshold of the
standard rulebook — the agent too loud or too quiet for the line or for this call's customer (VOC003),
monotone (VOC004), louder after the customer turns angry in words or only in voice (VOC005), and calls
that must not fire — each written as a recording + transcript pair and scored by the same path as
``kefuqa check DIR`` (kefuqa.batch). Line conditions: clean 16-bit PCM; G.711 µ-law with white noise 20 dB
below the speech; the same with each party's voice echoed back on the other's channel (150 ms, −15 dB:
a poor hybrid); and the recording alone. Prints, per condition and rule, TP/FP/FN, precision and recall
(targets ≥ 0.9 / ≥ 0.85) and how many calls had the rule not applicable.

Timing: calls with 10–17 s of dead air and the agent cutting into the customer for 1.3–2 s, scored on the
recording alone; the start and end of each SIL001 and LST001 finding against the same rules on the true
utterance times (target: within 0.1 s), and where the recording said the timing is not measurable
(``metrics.unreliable``) how often. Plus every utterance edge the recording gives against the truth.
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

import audio_synth as synth  # noqa: E402
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


ECHO = (150.0, -15.0)  # ms, dB: each party's voice back on the other's channel (tests/call_synth.echo_path)
CONDITIONS: dict[str, dict] = {
    "clean": {"subtype": "PCM_16", "snr_db": None, "transcript": True},
    "µ-law + 20 dB SNR": {"subtype": "ULAW", "snr_db": 20.0, "transcript": True},
    "µ-law + 20 dB SNR + echo 150 ms −15 dB": {"subtype": "ULAW", "snr_db": 20.0, "transcript": True, "echo": ECHO},
    # the recording alone: utterances found by the VAD, no words — anger only heard (VOC005 expected only
    # where the customer's voice shows it)
    "µ-law + 20 dB SNR, recording only": {"subtype": "ULAW", "snr_db": 20.0, "transcript": False},
    "µ-law + 20 dB SNR + echo, recording only": {"subtype": "ULAW", "snr_db": 20.0, "transcript": False,
                                                 "echo": ECHO},
}
TIMING_CONDITIONS: dict[str, dict] = {
    "clean": {"subtype": "PCM_16", "snr_db": None},
    "µ-law + 20 dB SNR": {"subtype": "ULAW", "snr_db": 20.0},
    "µ-law + 20 dB SNR + echo 150 ms −22 dB": {"subtype": "ULAW", "snr_db": 20.0, "echo": (150.0, -22.0)},
    "µ-law + 20 dB SNR + echo 40 ms −15 dB": {"subtype": "ULAW", "snr_db": 20.0, "echo": (40.0, -15.0)},
    "clean + echo 20 ms −12 dB": {"subtype": "PCM_16", "snr_db": None, "echo": (20.0, -12.0)},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--keep", help="write the generated calls here instead of a temporary folder")
    ap.add_argument("--skip-voice", action="store_true", help="only the timing of SIL001/LST001")
    ap.add_argument("--skip-timing", action="store_true", help="no SIL001/LST001 timing")
    ap.add_argument("--skip-mandarin", action="store_true", help="no VOC004 on Mandarin speech")
    args = ap.parse_args()
    checker = Checker(load_rulebook(None))
    work = Path(args.keep or tempfile.mkdtemp(prefix="kefuqa-voice-"))
    if not args.skip_voice:
        _voice(args, checker, work)
    if not args.skip_timing:
        _finding_timing(args.seeds, checker, work)
    if not args.skip_mandarin:
        _mandarin(args.seeds, checker, work)


def _voice(args: argparse.Namespace, checker: Checker, work: Path) -> None:
    generated = []
    for seed in range(args.seeds):
        for k, (name, spec, fire) in enumerate(cases()):
            spec.seed = seed
            generated.append((f"s{seed}-{k:02d}", name, cs.build(spec, f"s{seed}-{k:02d}"), fire))
    print(f"{len(generated)} generated calls × {len(CONDITIONS)} conditions, in {work}")
    for cond, opts in CONDITIONS.items():
        folder = (work / ("mu-law" if "µ" in cond else "clean") / ("echo" if opts.get("echo") else "line")
                  / ("pair" if opts["transcript"] else "bare"))
        for cid, _, g, _ in generated:
            cs.write_call(str(folder), cid, cs.degrade(g.samples, snr_db=opts["snr_db"], echo=opts.get("echo"),
                                                       seed=len(cid)),
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


TIMED = ("SIL001", "LST001")


def timing_cases(seeds: int) -> list[cs.Spec]:
    """Calls with dead air (10.5–17 s after a turn) and the agent cutting in (1.3–2 s before the customer
    stops), the parties at equal levels or up to 8 dB apart either way."""
    out = []
    for seed in range(seeds):
        for k, (after, cut_at, cut) in enumerate([(1, None, 1.5), (2, 0, 1.3), (3, 1, 2.0), (None, 0, 1.4),
                                                  (4, 2, 1.6), (0, 1, 1.8)]):
            out.append(cs.Spec(turns=5, seed=seed, silence_after=after, silence=10.5 + seed * 2 + k * 0.7,
                               cut_in_at=cut_at, cut_in=cut, agent_db=-26.0 + (k - 2) * 2,
                               customer_db=-26.0 - (k - 2) * 2))
    return out


def _findings(checker: Checker, conv: object) -> tuple[list[tuple[str, float, float]], dict[str, str]]:
    rep = checker.check(conv, select=list(TIMED))  # type: ignore[arg-type]
    return ([(f.rule, float(f.start), float(f.end)) for f in rep.findings
             if f.rule in TIMED and f.start is not None and f.end is not None], dict(rep.not_applicable))


def _finding_timing(seeds: int, checker: Checker, work: Path) -> None:
    """SIL001 and LST001 on the recording alone (utterances from the VAD) against the same rules on the
    generated times; and every utterance edge."""
    from kefuqa.audio.analyze import analyze
    from kefuqa.audio.decode import decode
    from kefuqa.model import Conversation

    gens = [cs.build(spec, f"t{i:02d}") for i, spec in enumerate(timing_cases(seeds))]
    print(f"\n== SIL001/LST001 timing: {len(gens)} generated calls (dead air, the agent cutting in), the "
          "recording alone vs the same rules on the true times (words removed)")
    for cond, opts in TIMING_CONDITIONS.items():
        folder = work / "timing" / cond.replace(" ", "_").replace("µ", "mu").replace("−", "-")
        errs: dict[str, list[float]] = {r: [] for r in TIMED}
        starts: list[float] = []
        ends: list[float] = []
        na = {r: 0 for r in TIMED}
        miss = extra = 0
        worst = ""
        for g in gens:
            cid = g.transcript["id"]
            cs.write_call(str(folder), cid, cs.degrade(g.samples, snr_db=opts["snr_db"], echo=opts.get("echo"),
                                                       seed=3), g.transcript, subtype=str(opts["subtype"]))
            plain = {**g.transcript, "utterances": [{**u, "text": ""} for u in g.transcript["utterances"]]}
            truth, _ = _findings(checker, Conversation.model_validate(plain))
            d = decode(folder / f"{cid}.wav")
            conv = analyze(d.samples, d.sample_rate, call_id=cid)
            got, not_applicable = _findings(checker, conv)
            for rule, s, e in truth:
                if rule in not_applicable:
                    na[rule] += 1
                    continue
                match = [(s2, e2) for r2, s2, e2 in got if r2 == rule and min(e, e2) > max(s, s2)]
                if not match:
                    miss += 1
                    continue
                err = max(abs(match[0][0] - s), abs(match[0][1] - e))
                errs[rule].append(err)
                if err == max(max(v, default=0.0) for v in errs.values()):
                    worst = f"{cid} {rule} true {s:.2f}–{e:.2f}, found {match[0][0]:.2f}–{match[0][1]:.2f}"
            extra += sum(1 for r2, s2, e2 in got if not any(r2 == r and min(e, e2) > max(s, s2) for r, s, e in truth))
            for t in g.transcript["utterances"]:
                same = [u for u in conv.utterances if u.role == t["role"] and u.start is not None
                        and u.end is not None and min(u.end, t["end"]) > max(u.start, t["start"])]
                if same:
                    starts.append(min(float(u.start or 0) for u in same) - t["start"])
                    ends.append(max(float(u.end or 0) for u in same) - t["end"])
        print(f"-- {cond}")
        for rule in TIMED:
            a = np.array(errs[rule])
            if a.size:
                print(f"   {rule}: {a.size} findings timed, max error {a.max():.3f} s, median {np.median(a):.3f} s, "
                      f"within 0.1 s {np.mean(a <= 0.1) * 100:.0f}%; not applicable (timing not measurable) "
                      f"{na[rule]}")
            else:
                print(f"   {rule}: none timed; not applicable {na[rule]}")
        print(f"   missed {miss}, extra {extra}; worst: {worst}")
        st, en = np.array(starts), np.array(ends)
        both = np.maximum(np.abs(st), np.abs(en))
        print(f"   utterance edges ({st.size}): start error median {np.median(st):+.3f} s (95th pct |err| "
              f"{np.percentile(np.abs(st), 95):.3f}), end {np.median(en):+.3f} s (95th pct "
              f"{np.percentile(np.abs(en), 95):.3f}); both within 0.1 s {np.mean(both <= 0.1) * 100:.1f}%")



MANDARIN_VOICES = ("f1", "f3", "f5", "Alicia", "Annie")  # espeak-ng variants: women, 140–280 Hz tops
MANDARIN_RANGES = ("0", "20%", "35%", "45%", "55%", "65%", "80%", "100%", "130%")  # SSML pitch range (100%: medium)


def _mandarin(seeds: int, checker: Checker, work: Path) -> None:
    """VOC004 (monotone: the agent's median pitch spread under the rulebook's `below`) on Mandarin: the agent
    speaks the Chinese script with espeak-ng's Mandarin voice (cmn, its tones) as five women's voices, from
    flat (SSML pitch range 0) to lively (130 % of espeak-ng's medium range). The truth of each call is the spread measured on the
    agent's clean turns before they are mixed; calls within ±0.15 semitone of the threshold are reported,
    not scored; near = within 0.6 semitone."""
    from kefuqa.audio import measures as M

    rule = next(r for r in checker.rulebook.rules if r.id == "VOC004")
    below = float(rule.below)  # type: ignore[union-attr]
    gens = []
    for seed in range(seeds):
        for variant in MANDARIN_VOICES:
            for rng in MANDARIN_RANGES:
                spec = cs.Spec(language="zh", agent_variant=variant, agent_range=rng, turns=4, seed=seed)
                g = cs.build(spec, f"zh{seed}-{variant}-{rng}")
                sds = [M.pitch_stats(M.pitch_track(x, cs.SR))[1] for role, x in g.truth["pieces"] if role == "agent"]
                truth = float(np.median([v for v in sds if v is not None]))
                gens.append((g, variant, rng, truth))
    print(f"\n== VOC004 on Mandarin agent speech (espeak-ng cmn, {len(gens)} calls), threshold {below} semitones")
    table: dict[str, list[str]] = {}
    for _, variant, rng, truth in gens:
        table.setdefault(variant, []).append(f"{rng} {truth:.2f}")
    for variant, cells in table.items():
        print(f"   clean spread of cmn+{variant}: " + ", ".join(cells[: len(MANDARIN_RANGES)]))
    # the lexical tones alone: each syllable of the script spoken on its own (its tone, no phrase
    # intonation), 0.22 s apiece — what a speaker who reads without any intonation keeps
    for voice in ("cmn", "cmn+f3", "cmn+Annie"):
        spreads = []
        for _, zh in cs.AGENT:
            parts = []
            for ch in (c for c in zh if "\u4e00" <= c <= "\u9fff"):
                parts += [synth.speak(ch, voice=voice, pitch=50, level_dbfs=-26.0)[: int(0.22 * cs.SR)],
                          np.zeros(int(0.02 * cs.SR), np.float32)]
            spreads.append(M.pitch_stats(M.pitch_track(np.concatenate(parts), cs.SR))[1])
        print(f"   tones alone (syllables spoken one by one), {voice}: median spread "
              f"{np.median([v for v in spreads if v is not None]):.2f} semitones")
    for cond, opts in (("clean", {"subtype": "PCM_16", "snr_db": None}),
                       ("µ-law + 20 dB SNR", {"subtype": "ULAW", "snr_db": 20.0})):
        folder = work / "mandarin" / ("mu-law" if "µ" in cond else "clean")
        for g, *_ in gens:
            cid = g.transcript["id"]
            cs.write_call(str(folder), cid, cs.degrade(g.samples, snr_db=opts["snr_db"], seed=len(cid)),
                          g.transcript, subtype=str(opts["subtype"]))
        files, errors = find_inputs([folder])
        reports = {r.call_id: r for r in score(files, checker, select=["VOC004"]) if isinstance(r, Report)}
        counts = {"near": [0, 0, 0, 0], "far": [0, 0, 0, 0]}  # tp, fp, fn, tn
        at_threshold = []
        na = 0
        wrong = []
        for g, variant, rng, truth in gens:
            rep = reports.get(g.transcript["id"])
            if rep is None:
                continue
            got = any(f.rule == "VOC004" for f in rep.findings)
            na += "VOC004" in rep.not_applicable
            measured = (rep.conversation.metrics.get("agent_pitch_sd_semitones")
                        if rep.conversation is not None else None)
            if abs(truth - below) < 0.15:
                at_threshold.append(f"{variant}/{rng} truth {truth:.2f} measured {measured} "
                                    f"{'fired' if got else 'not fired'}")
                continue
            want = truth < below
            c = counts["near" if abs(truth - below) < 0.6 else "far"]
            c[0] += got and want
            c[1] += got and not want
            c[2] += want and not got
            c[3] += not want and not got
            if got != want:
                wrong.append(f"{variant}/{rng} truth {truth:.2f} measured {measured}: {'fired' if got else 'missed'}")
        print(f"-- {cond} ({len(reports)} calls, {len(errors)} errors, VOC004 not applicable on {na})")
        for k, (tp, fp, fn, tn) in counts.items():
            p = tp / (tp + fp) if tp + fp else 1.0
            r = tp / (tp + fn) if tp + fn else 1.0
            print(f"   {k}: TP {tp} FP {fp} FN {fn} TN {tn}  precision {p:.2f}  recall {r:.2f}")
        tp, fp, fn = (sum(v[i] for v in counts.values()) for i in range(3))
        print(f"   all: precision {tp / (tp + fp) if tp + fp else 1.0:.2f}  recall {tp / (tp + fn) if tp + fn else 1.0:.2f}")
        for w in wrong:
            print(f"     {w}")
        for a in at_threshold:
            print(f"     at the threshold (not scored): {a}")


if __name__ == "__main__":
    main()
