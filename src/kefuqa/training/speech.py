"""Spoken replies: a recording of one reply is decoded, checked and transcribed by an ASR backend
(`kefuqa.audio.asr.make_transcriber`); the transcript is then graded exactly like a typed reply.

Bad audio is refused with the reason in Chinese before anything is graded or stored: not audio, empty, silent
(nothing recognised), longer than `MAX_SECONDS` or larger than `MAX_BYTES`."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

MAX_SECONDS = 60.0  # one reply; a longer recording is almost certainly not one reply
MAX_BYTES = 10 * 1024 * 1024
SPEC_ENV = ("KEFUQA_TRAINING_ASR", "KEFUQA_ASSIST_ASR")


class SpeechError(ValueError):
    """A recording that cannot be used as a reply; the message is the reason shown to the trainee."""


_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()  # one model per process; faster-whisper/sherpa calls are serialised through it


def configured_spec() -> str | None:
    """The server's ASR backend for spoken replies: KEFUQA_TRAINING_ASR, else the assist one (KEFUQA_ASSIST_ASR)."""
    for name in SPEC_ENV:
        v = (os.environ.get(name) or "").strip()
        if v:
            return v
    return None


def transcriber_for(spec: str) -> Any:
    """The transcriber of a spec, made once per process (loading a model takes seconds)."""
    from ..audio.asr import AsrError, make_transcriber

    with _LOCK:
        t = _CACHE.get(spec)
        if t is None:
            try:
                t = _CACHE[spec] = make_transcriber(spec)
            except AsrError as exc:
                raise SpeechError(f"语音识别无法启动：{exc}") from None
        return t


def transcribe_file(path: str | Path, transcriber: Any, *, name: str | None = None) -> str:
    """The text of one spoken reply in a recording file (WAV, FLAC, or anything PyAV reads)."""
    import numpy as np

    from ..audio.asr import ASR_RATE
    from ..audio.decode import AudioError, decode
    from ..audio.resample import resample

    p = Path(path)
    label = name or p.name
    if not p.is_file():
        raise SpeechError(f"{label}：录音文件不存在")
    size = p.stat().st_size
    if size == 0:
        raise SpeechError(f"{label}：录音是空的（0 字节）")
    if size > MAX_BYTES:
        raise SpeechError(f"{label}：录音 {size / 1024 / 1024:.1f} MB，超过 {MAX_BYTES // 1024 // 1024} MB 的上限")
    try:
        d = decode(p)
    except AudioError as exc:
        raise SpeechError(f"{label}：不是可用的录音（{exc}）") from None
    if d.duration > MAX_SECONDS:
        raise SpeechError(f"{label}：录音 {d.duration:.0f} 秒，一次回复最长 {MAX_SECONDS:.0f} 秒，请分句说")
    mono = d.samples.mean(axis=0).astype(np.float32)
    if float(np.max(np.abs(mono), initial=0.0)) < 1e-3:
        raise SpeechError(f"{label}：录音里没有声音（全是静音）")
    x = resample(mono, d.sample_rate, ASR_RATE) if d.sample_rate != ASR_RATE else mono
    with _LOCK:
        piece = transcriber.transcribe(x, ASR_RATE)
    text = " ".join(str(piece.text or "").split())
    if not text:
        raise SpeechError(f"{label}：没有识别出说话内容，请靠近话筒重新录一遍")
    return text


def transcribe_bytes(data: bytes, transcriber: Any, *, name: str = "录音") -> str:
    """`transcribe_file` for an upload (written to a temporary file that is removed at once)."""
    if not data:
        raise SpeechError(f"{name}：录音是空的（0 字节）")
    if len(data) > MAX_BYTES:
        raise SpeechError(f"{name}：录音 {len(data) / 1024 / 1024:.1f} MB，超过 {MAX_BYTES // 1024 // 1024} MB 的上限")
    suffix = Path(name).suffix if Path(name).suffix and len(Path(name).suffix) <= 6 else ".bin"
    with tempfile.TemporaryDirectory(prefix="kefuqa-speech-") as tmp:
        p = Path(tmp) / f"reply{suffix}"
        p.write_bytes(data)
        return transcribe_file(p, transcriber, name=name)
