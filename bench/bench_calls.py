"""Recording + transcript benchmark: transcript-guided acoustic analysis on one core, against the bare
recording analysis as the baseline, on the same generated 8 kHz G.711 µ-law stereo call.

    python bench/bench_calls.py [--turns 40] [--repeat 3]

Times are CPU seconds of this process pinned to one core (the best of --repeat runs). Prints, from one run: seconds of audio, the bare analysis (decode + VAD + segmentation + loudness, pitch
and syllables per found segment: what `kefuqa check call.wav` does) and the guided one (decode + VAD +
time-line check + the same measures per transcript utterance + speech in the gaps: what
`kefuqa check call.wav call.json` does) as multiples of real time (target ≥ 50×), and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import call_synth as cs  # noqa: E402
from kefuqa.audio.analyze import Options, analyze, prepare  # noqa: E402
from kefuqa.audio.decode import decode  # noqa: E402
from kefuqa.audio.guided import measure_transcript  # noqa: E402
from kefuqa.audio.vad import get_vad  # noqa: E402
from kefuqa.model import Conversation  # noqa: E402


def pin_one_core() -> str:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        return f"pinned to CPU {cpus[-1]}"
    except (AttributeError, OSError):
        return "not pinned"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=40, help="agent turns in the generated call")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(pin_one_core())
    g = cs.build(cs.Spec(turns=args.turns, angry_at=5, reply_db=8), "bench")
    folder = tempfile.mkdtemp(prefix="kefuqa-bench-calls-")
    cs.write_call(folder, "call", cs.degrade(g.samples, snr_db=30.0), g.transcript, subtype="ULAW")
    wav = Path(folder) / "call.wav"
    vad = get_vad("auto")
    transcript = Conversation.model_validate(g.transcript)
    seconds = decode(wav).duration
    print(f"audio: {seconds:.1f} s, 8 kHz stereo µ-law, {len(transcript.utterances)} transcript utterances, "
          f"VAD {vad.name}")

    def bare() -> None:
        d = decode(wav)
        analyze(d.samples, d.sample_rate, call_id="b", options=Options(), vad=vad)

    def guided() -> None:
        d = decode(wav)
        prep = prepare(d.samples, d.sample_rate, vad=vad)
        measure_transcript(transcript.model_copy(deep=True), prep, ("agent", "customer"), samples=d.samples)

    bare()
    guided()  # warm up (model load, caches)
    best = {}
    for name, fn in (("bare recording (baseline)", bare), ("recording + transcript", guided)):
        cpu, wall = [], []
        for _ in range(args.repeat):
            t, w = time.process_time(), time.perf_counter()
            fn()
            cpu.append(time.process_time() - t)
            wall.append(time.perf_counter() - w)
        best[name] = min(cpu)
        print(f"{name:28s} CPU {best[name]:.3f} s = {seconds / best[name]:.0f}× real time   "
              f"(wall {min(wall):.3f} s = {seconds / min(wall):.0f}×, lower when other processes share the core)")
    b, gd = best["bare recording (baseline)"], best["recording + transcript"]
    print(f"guided / baseline time: {gd / b:.2f}")


if __name__ == "__main__":
    main()
