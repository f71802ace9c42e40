"""Decoding recordings into float32 sample arrays.

libsndfile (through `soundfile`) reads WAV (PCM, µ-law/A-law, GSM, IMA ADPCM …), FLAC, Ogg Vorbis/Opus
and, from libsndfile 1.1 on, MP3. Whatever it cannot read is tried with PyAV (FFmpeg), which
faster-whisper already brings. Failures become `AudioError` with a reason a QA engineer understands.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kefuqa.audio.resample import resample


class AudioError(Exception):
    """A recording that cannot be used; the message is the reason shown to the user."""


@dataclass(slots=True)
class Decoded:
    samples: np.ndarray  # float32, shape (channels, n), range about [-1, 1]
    sample_rate: int
    codec: str  # e.g. "WAV/PCM_16", "FLAC/PCM_16", "mp3 (PyAV)"

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.sample_rate if self.sample_rate else 0.0


MAX_SECONDS = 6 * 3600  # a call longer than six hours is almost certainly not a call


def decode(path: str | Path) -> Decoded:
    """Read a recording; raises `AudioError` for anything that is not usable audio."""
    p = Path(path)
    if not p.exists():
        raise AudioError("文件不存在")
    if p.is_dir():
        raise AudioError("这是文件夹，不是录音")
    if p.stat().st_size == 0:
        raise AudioError("空文件（0 字节）")
    sf_reason = None
    try:
        decoded = _decode_soundfile(p)
    except AudioError:
        raise
    except Exception as exc:  # libsndfile: unknown format, unsupported codec, truncated header …
        sf_reason = _short(exc)
        decoded = None
    if decoded is None:
        try:
            decoded = _decode_av(p)
        except AudioError:
            raise
        except ImportError:
            raise AudioError(f"无法解码：{sf_reason}（其他编码需要安装 PyAV）") from None
        except Exception as exc:
            raise AudioError(_wav_codec_problem(p) or f"无法作为音频解码：{sf_reason or _short(exc)}") from None
    _check(decoded)
    return decoded


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # soundfile prefixes messages with "Error opening '/long/path': "; PyAV with "[Errno N] " and ends
    # them with ": '/long/path'". The file is named by the InputError already.
    if text.startswith("Error opening") and ": " in text:
        text = text.split(": ", 1)[1]
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    text = re.sub(r":\s*'[^']*'$", "", text)
    return text[:200]


# WAVE format tags libsndfile or FFmpeg decode; anything else is named in the error.
_WAV_TAGS = {
    0x0001: "PCM", 0x0002: "MS ADPCM", 0x0003: "IEEE float", 0x0006: "A-law", 0x0007: "µ-law",
    0x0011: "IMA ADPCM", 0x0031: "GSM 6.10", 0x0055: "MP3", 0xFFFE: "extensible",
}


def _wav_codec_problem(p: Path) -> str | None:
    """For a RIFF/WAVE file whose codec is unknown, say which codec it is."""
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    i = 12
    while i + 8 <= len(head):
        cid, size = head[i : i + 4], struct.unpack("<I", head[i + 4 : i + 8])[0]
        if cid == b"fmt ":
            if size < 16 or i + 24 > len(head):
                return None
            tag, channels, rate = struct.unpack("<HHI", head[i + 8 : i + 16])
            if not (1 <= channels <= 64 and 1000 <= rate <= 768000):
                return None  # not a real fmt chunk: just a corrupt file
            if tag not in _WAV_TAGS:
                return f"WAV 文件的编码不受支持（格式标签 0x{tag:04X}）"
            return None
        i += 8 + size + (size & 1)
    return None


def _decode_soundfile(p: Path) -> Decoded:
    import soundfile as sf

    with sf.SoundFile(str(p)) as f:
        sr = int(f.samplerate)
        codec = f"{f.format}/{f.subtype}"
        if f.channels > 2:
            raise AudioError(f"{f.channels} 个声道；应为单声道或立体声（每方一个声道）")
        if sr <= 0:
            raise AudioError("采样率为 0，无效")
        if f.frames > MAX_SECONDS * sr:
            raise AudioError(f"录音长于 {MAX_SECONDS // 3600} 小时，不像一通电话")
        data = f.read(dtype="float32", always_2d=True)
    return Decoded(np.ascontiguousarray(data.T), sr, codec)


def _decode_av(p: Path) -> Decoded:
    import av

    try:
        container = av.open(str(p))
    except Exception as exc:
        raise AudioError(_wav_codec_problem(p) or f"不是可读的音频文件（{_short(exc)}）") from None
    with container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise AudioError("文件里没有音频流")
        stream: Any = streams[0]
        ctx: Any = stream.codec_context
        codec = f"{ctx.name} (PyAV)"
        layout_channels = int(getattr(ctx, "channels", 0) or 0)
        if not layout_channels:
            layout_channels = len(ctx.layout.channels)
        if layout_channels > 2:
            raise AudioError(f"{layout_channels} 个声道；应为单声道或立体声（每方一个声道）")
        sr = int(ctx.sample_rate or stream.sample_rate or 0)
        if sr <= 0:
            raise AudioError("采样率为 0，无效")
        chunks: list[np.ndarray] = []
        try:
            frame: Any
            for frame in container.decode(stream):
                arr = frame.to_ndarray()
                if arr.dtype.kind == "i":
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
                elif arr.dtype.kind == "u":
                    arr = (arr.astype(np.float32) - 128.0) / 128.0
                arr = arr.astype(np.float32, copy=False)
                if not frame.format.is_planar:
                    arr = arr.reshape(-1, layout_channels).T
                elif arr.ndim == 1:
                    arr = arr[None, :]
                chunks.append(arr)
        except Exception as exc:
            if not chunks:
                raise AudioError(f"无法解码音频流（{_short(exc)}）") from None
    if not chunks:
        return Decoded(np.zeros((1, 0), np.float32), sr, codec)
    return Decoded(np.ascontiguousarray(np.concatenate(chunks, axis=1)), sr, codec)


def _check(d: Decoded) -> None:
    if d.samples.shape[1] == 0:
        raise AudioError("文件里没有音频（0 个采样）")
    if d.channels > 2:
        raise AudioError(f"{d.channels} 个声道；应为单声道或立体声（每方一个声道）")
    if not np.isfinite(d.samples).all():
        d.samples = np.nan_to_num(d.samples, nan=0.0, posinf=1.0, neginf=-1.0)


def working_rate(sample_rate: int) -> int:
    """The rate the analysis runs at: 8 kHz for narrow-band telephony, 16 kHz for anything wider."""
    return 8000 if sample_rate <= 8000 else 16000


def to_rate(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample every channel of a (channels, n) array."""
    if sr_in == sr_out:
        return samples.astype(np.float32, copy=False)
    return np.stack([resample(ch, sr_in, sr_out) for ch in samples])
