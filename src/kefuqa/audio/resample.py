"""Sample-rate conversion: `soxr` when installed, else a numpy polyphase windowed-sinc filter."""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np

try:  # soxr is small (no dependencies) and the best quality/speed; optional
    import soxr as _soxr
except ImportError:  # pragma: no cover - exercised when soxr is absent
    _soxr = None

_ZEROS = 16  # zero crossings of the sinc on each side


def resample(x: np.ndarray, sr_in: int, sr_out: int, *, use_soxr: bool = True) -> np.ndarray:
    """Resample a 1-D float signal from `sr_in` to `sr_out` Hz; returns float32."""
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out or x.size == 0:
        return x
    if use_soxr and _soxr is not None:
        return np.asarray(_soxr.resample(x, sr_in, sr_out, quality="HQ"), dtype=np.float32)
    return resample_poly(x, sr_in, sr_out)


@lru_cache(maxsize=16)
def _polyphase_bank(up: int, down: int) -> np.ndarray:
    """Kaiser-windowed sinc low-pass, split into `up` phases of K taps (shape (up, K))."""
    m = max(up, down)
    half = _ZEROS * m
    n = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = 0.94 / m  # a little below Nyquist of the lower rate, in units of the upsampled Nyquist
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(n.size, 8.6)
    h *= up / h.sum()  # unity gain after zero-stuffing by `up`
    taps = -(-h.size // up)
    padded = np.zeros(taps * up)
    padded[: h.size] = h
    # bank[p, k] = h[p + k*up]
    return padded.reshape(taps, up).T.astype(np.float32).copy()


def resample_poly(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Rational-ratio polyphase resampling with numpy only (no scipy)."""
    g = gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    bank = _polyphase_bank(up, down)
    taps = bank.shape[1]
    centre = _ZEROS * max(up, down)
    n_out = int(np.ceil(x.size * up / down))
    pad = taps + 1
    xp = np.concatenate([np.zeros(pad, np.float32), np.asarray(x, np.float32), np.zeros(pad, np.float32)])
    out = np.empty(n_out, dtype=np.float32)
    k = np.arange(taps)
    chunk = 1 << 15
    for s in range(0, n_out, chunk):
        m = np.arange(s, min(n_out, s + chunk), dtype=np.int64)
        t = m * down + centre
        phase = t % up
        base = t // up + pad
        idx = base[:, None] - k[None, :]
        out[s : s + m.size] = np.einsum("ij,ij->i", xp[idx], bank[phase])
    return out
