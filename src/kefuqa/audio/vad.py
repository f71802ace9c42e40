"""Voice activity detection on a 32 ms frame grid.

`SileroVad` runs Silero VAD v6 as ONNX on onnxruntime (no torch). The model file is the one that
faster-whisper ships as ``faster_whisper/assets/silero_vad_v6.onnx``: a 16 kHz model whose input is a
batch of 512-sample windows, each prefixed with the 64 samples before it (``input`` [n, 576], ``h``/``c``
[1, 1, 128] LSTM state; output ``speech_probs`` [n]). 8 kHz audio is upsampled to 16 kHz for it, so both
rates land on the same 32 ms grid. `EnergyVad` is the fallback when onnxruntime or the model is absent:
frame level against an adaptive noise floor.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from kefuqa.audio.resample import resample

FRAME_SECONDS = 0.032
SILERO_RATE = 16000
SILERO_WINDOW = 512
SILERO_CONTEXT = 64


class VadError(Exception):
    pass


class Vad(Protocol):
    name: str

    def probabilities(self, samples: np.ndarray, sample_rate: int, candidates: np.ndarray | None = None
                      ) -> np.ndarray:
        """Speech probability (0..1) per 32 ms frame; len == ceil(len(samples) / frame). Frames outside
        `candidates` (bool per frame) may be skipped and scored 0."""
        ...


def frame_length(sample_rate: int) -> int:
    return int(round(FRAME_SECONDS * sample_rate))


def n_frames(n_samples: int, sample_rate: int) -> int:
    fl = frame_length(sample_rate)
    return -(-n_samples // fl)


def silero_model_path() -> Path | None:
    """The Silero VAD ONNX file from an installed package, or from $KEFUQA_SILERO_VAD."""
    env = os.environ.get("KEFUQA_SILERO_VAD")
    if env:
        return Path(env)
    try:
        spec = importlib.util.find_spec("faster_whisper")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "assets" / "silero_vad_v6.onnx"
        if p.is_file():
            return p
    return None


class SileroVad:
    name = "silero"

    def __init__(self, model_path: str | Path | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise VadError("Silero VAD 需要 onnxruntime（pip install 'kefuqa[audio]'）") from exc
        path = Path(model_path) if model_path else silero_model_path()
        if path is None:
            raise VadError("找不到 Silero VAD 模型：请安装 faster-whisper（它带有 silero_vad_v6.onnx）")
        if not path.is_file():
            raise VadError(f"找不到 Silero VAD 模型：{path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 4
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise VadError(f"无法加载 Silero VAD 模型 {path}：{exc}") from exc
        names = {i.name: i.shape for i in self.session.get_inputs()}
        if set(names) != {"input", "h", "c"} or names["input"][-1] != SILERO_WINDOW + SILERO_CONTEXT:
            raise VadError(
                f"{path}：不支持的 Silero VAD 模型（输入 {names}）；应为 faster-whisper 的 "
                "silero_vad_v6.onnx（输入 input[n, 576]、h、c）"
            )
        self.model_path = path

    def probabilities(self, samples: np.ndarray, sample_rate: int, candidates: np.ndarray | None = None
                      ) -> np.ndarray:
        """Speech probability per 32 ms frame. With `candidates` (a bool per frame), the network only
        runs on those frames' neighbourhood — 0.5 s before each stretch to settle its state — and the
        rest is 0: silence and crosstalk need no neural network to be rejected."""
        n = n_frames(samples.size, sample_rate)
        if n == 0:
            return np.zeros(0, np.float32)
        x = samples if sample_rate == SILERO_RATE else resample(samples, sample_rate, SILERO_RATE)
        x = np.asarray(x, np.float32)
        total = n * SILERO_WINDOW
        if x.size < total:
            x = np.pad(x, (0, total - x.size))
        windows = x[:total].reshape(n, SILERO_WINDOW)
        if candidates is None:
            return self._run(windows, 0, n)
        out = np.zeros(n, np.float32)
        for s, e in _regions(np.asarray(candidates[:n], bool), before=16, after=4, bridge=32):
            out[s:e] = self._run(windows, s, e)
        return out

    def _run(self, windows: np.ndarray, s: int, e: int) -> np.ndarray:
        """The network over windows[s:e], each with the 64 samples before it as context, fresh state."""
        n = e - s
        context = np.empty((n, SILERO_CONTEXT), np.float32)
        context[0] = windows[s - 1, -SILERO_CONTEXT:] if s > 0 else 0.0
        context[1:] = windows[s : e - 1, -SILERO_CONTEXT:]
        batch = np.concatenate([context, windows[s:e]], axis=1)
        h = np.zeros((1, 1, 128), np.float32)
        c = np.zeros((1, 1, 128), np.float32)
        out = []
        step = 8192
        for i in range(0, n, step):
            probs, h, c = self.session.run(None, {"input": batch[i : i + step], "h": h, "c": c})
            out.append(np.asarray(probs, np.float32).reshape(-1))
        return np.concatenate(out)[:n]


def _regions(mask: np.ndarray, before: int, after: int, bridge: int) -> list[tuple[int, int]]:
    """Runs of `mask` widened by `before`/`after` frames, joined across gaps under `bridge` frames."""
    idx = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    out: list[list[int]] = []
    for s, e in zip(idx[::2].tolist(), idx[1::2].tolist(), strict=True):
        s, e = max(0, s - before), min(mask.size, e + after)
        if out and s - out[-1][1] < bridge:
            out[-1][1] = e
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


class EnergyVad:
    """Frame level above an adaptive noise floor; a pseudo-probability for the shared hysteresis."""

    name = "energy"

    def __init__(self, margin_db: float = 12.0, floor_dbfs: float = -60.0) -> None:
        self.margin_db = margin_db
        self.floor_dbfs = floor_dbfs

    def probabilities(self, samples: np.ndarray, sample_rate: int, candidates: np.ndarray | None = None
                      ) -> np.ndarray:
        levels = frame_levels(samples, sample_rate)
        if levels.size == 0:
            return np.zeros(0, np.float32)
        noise = noise_floor(levels)
        threshold = max(noise + self.margin_db, self.floor_dbfs)
        # 0.5 at the threshold, 0.35 (the release level) 3 dB below it, saturating over ±10 dB
        p = 0.5 + (levels - threshold) / 20.0
        return np.clip(p, 0.0, 1.0).astype(np.float32)


def frame_levels(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean-square level of each 32 ms frame in dB relative to full scale (RMS, −120 for digital silence)."""
    fl = frame_length(sample_rate)
    n = n_frames(samples.size, sample_rate)
    if n == 0:
        return np.zeros(0, np.float64)
    x = np.asarray(samples, np.float64)
    if x.size < n * fl:
        x = np.pad(x, (0, n * fl - x.size))
    ms = np.einsum("ij,ij->i", x.reshape(n, fl), x.reshape(n, fl)) / fl
    return 10.0 * np.log10(ms + 1e-12)


def noise_floor(levels: np.ndarray) -> float:
    """The level of the quietest tenth of the frames: background noise, line hiss or digital silence."""
    if levels.size == 0:
        return -120.0
    return float(np.percentile(levels, 10))


@lru_cache(maxsize=4)
def _silero_cached(path: str | None) -> SileroVad:
    return SileroVad(path)


def get_vad(kind: str = "auto") -> Vad:
    """``auto`` (Silero when available, else energy), ``silero``, ``silero:/path/model.onnx``, ``energy``."""
    kind = (kind or "auto").strip()
    if kind == "energy":
        return EnergyVad()
    if kind == "auto":
        try:
            return _silero_cached(None)
        except VadError:
            return EnergyVad()
    if kind == "silero":
        return _silero_cached(None)
    if kind.startswith("silero:"):
        return _silero_cached(kind.split(":", 1)[1])
    raise VadError(f"未知的 VAD {kind!r}（应为 auto、silero、silero:/模型路径.onnx 或 energy）")
