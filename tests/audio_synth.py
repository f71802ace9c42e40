"""Test audio with a known answer: espeak-ng speech, tones, and two-party calls with crosstalk.

A test helper, not part of the kefuqa package: the tests import it as ``audio_synth`` and
``bench/bench_audio.py`` puts this folder on ``sys.path``; nothing here is needed to score real recordings.
espeak-ng (Debian package ``espeak-ng``) makes the speech; Mandarin uses the voice ``cmn-latn-pinyin``.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from kefuqa.audio.resample import resample


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


@lru_cache(maxsize=64)
def _espeak_cached(text: str, voice: str, pitch: int, speed: int, ssml: bool) -> tuple[bytes, int]:
    import soundfile as sf

    cmd = ["espeak-ng", "--stdout", "-v", voice, "-p", str(pitch), "-s", str(speed)]
    if ssml:
        cmd.append("-m")
    out = subprocess.run([*cmd, text], check=True, capture_output=True, timeout=60).stdout
    data, sr = sf.read(io.BytesIO(out), dtype="float32")
    return data.astype(np.float32).tobytes(), int(sr)


def speak(text: str, *, voice: str = "en", pitch: int = 50, speed: int = 160, ssml: bool = False,
          sample_rate: int = 8000, level_dbfs: float | None = -20.0) -> np.ndarray:
    """espeak-ng speech, trimmed of its own leading/trailing silence, at `sample_rate`, scaled to an
    active-speech level of `level_dbfs` (RMS over the samples louder than −50 dB of the peak)."""
    raw, sr = _espeak_cached(text, voice, pitch, speed, ssml)
    x = np.frombuffer(raw, np.float32).copy()
    x = trim(x)
    x = resample(x, sr, sample_rate)
    if level_dbfs is not None:
        x = set_level(x, level_dbfs)
    return x.astype(np.float32)


def prosody(text: str, range_: str) -> str:
    """SSML asking espeak-ng for a pitch range: ``"0"`` is monotone, ``"x-high"`` lively."""
    return f'<speak><prosody range="{range_}">{text}</prosody></speak>'


def trim(x: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    nz = np.flatnonzero(np.abs(x) > threshold)
    return x[nz[0] : nz[-1] + 1] if nz.size else x[:0]


def active_rms_dbfs(x: np.ndarray, frame: int = 256) -> float:
    n = x.size // frame
    if n == 0:
        return -120.0
    fr = x[: n * frame].reshape(n, frame).astype(np.float64)
    p = (fr * fr).mean(axis=1)
    sel = p[p > p.max() * 1e-5]
    return float(10 * np.log10(sel.mean() + 1e-12))


def set_level(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    cur = active_rms_dbfs(x)
    return (x * 10 ** ((level_dbfs - cur) / 20)).astype(np.float32)


def tone(freq: float, seconds: float, sample_rate: int = 8000, level_dbfs: float = -20.0) -> np.ndarray:
    """A sine at `level_dbfs` RMS (a sine's RMS is its peak − 3.01 dB)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    amp = np.sqrt(2) * 10 ** (level_dbfs / 20)
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def harmonic(f0: np.ndarray | float, seconds: float, sample_rate: int = 8000, level_dbfs: float = -20.0,
             harmonics: int = 12) -> np.ndarray:
    """A voiced-like harmonic complex whose F0 follows `f0` (Hz, scalar or one value per sample)."""
    n = int(round(seconds * sample_rate))
    f = np.broadcast_to(np.asarray(f0, np.float64), (n,)) if np.ndim(f0) == 0 else np.asarray(f0, np.float64)[:n]
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    x = np.zeros(n)
    for k in range(1, harmonics + 1):
        alive = (k * f) < sample_rate / 2 * 0.9
        x += np.where(alive, np.sin(k * phase) / k, 0.0)
    return set_level(x.astype(np.float32), level_dbfs)


@dataclass
class Call:
    """A two-party recording being composed; `truth` lists (role, start, end) of what was placed."""

    seconds: float
    sample_rate: int = 8000
    roles: tuple[str, str] = ("agent", "customer")
    truth: list[tuple[str, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clean = np.zeros((2, int(round(self.seconds * self.sample_rate))), np.float32)

    def add(self, role: str, start: float, x: np.ndarray) -> Call:
        ch = self.roles.index(role)
        i = int(round(start * self.sample_rate))
        j = min(self.clean.shape[1], i + x.size)
        self.clean[ch, i:j] += x[: j - i]
        self.truth.append((role, start, start + (j - i) / self.sample_rate))
        return self

    def render(self, bleed_db: float | None = -25.0, noise_dbfs: float | None = -65.0, delay_ms: float = 1.0,
               seed: int = 0) -> np.ndarray:
        """Both channels with each one leaking into the other at `bleed_db` (delayed, low-passed, like a
        hybrid's echo) and a little line noise."""
        out = self.clean.copy()
        if bleed_db is not None:
            g = 10 ** (bleed_db / 20)
            d = max(1, int(round(delay_ms / 1000 * self.sample_rate)))
            for a, b in ((0, 1), (1, 0)):
                leak = np.zeros_like(self.clean[b])
                leak[d:] = self.clean[b][:-d]
                leak = np.convolve(leak, np.array([0.25, 0.5, 0.25], np.float32), mode="same")
                out[a] += g * leak
        if noise_dbfs is not None:
            rng = np.random.default_rng(seed)
            out += (rng.standard_normal(out.shape) * 10 ** (noise_dbfs / 20)).astype(np.float32)
        return np.clip(out, -1.0, 1.0)

    def mono(self, noise_dbfs: float | None = -65.0, seed: int = 0) -> np.ndarray:
        out = self.clean.sum(axis=0, keepdims=True)
        if noise_dbfs is not None:
            rng = np.random.default_rng(seed)
            out = out + (rng.standard_normal(out.shape) * 10 ** (noise_dbfs / 20)).astype(np.float32)
        return np.clip(out, -1.0, 1.0)


def write(path: str, samples: np.ndarray, sample_rate: int, **kwargs: object) -> None:
    """Write a (channels, n) array with soundfile (format from the file name)."""
    import soundfile as sf

    sf.write(path, np.asarray(samples).T, sample_rate, **kwargs)
