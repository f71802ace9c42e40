"""Audio input (DESIGN §5): call recordings become `Conversation`s.

``read(path, channels="agent,customer", asr=None, vad="auto")`` decodes a recording, finds speech per
channel, measures it and (with an ASR backend) transcribes it; it yields one `Conversation` or one
`InputError`. `register()` adds it to the readers registry: the registry finds it through the entry point
``audio = "kefuqa.audio:register"`` (group ``kefuqa.readers``), so the readers never import this layer.

This module imports nothing heavy: without the ``audio`` extra (numpy, soundfile, onnxruntime, …) kefuqa
still works, and audio files give the InputError "install kefuqa[audio]".

Per-utterance ``attrs``: ``loudness_dbfs`` (active-speech RMS level), ``loudness_rel_db`` (against the
speaker's median over the call: the loudness trend), ``pitch_median_hz``, ``pitch_sd_semitones`` (None
when under 0.2 s of voicing), ``syllables`` (signal estimate), ``speech_seconds``, and from ASR
``emotion``, ``asr_confidence``, ``language``. Call ``metrics``: ``audio``, ``audio_path``,
``duration_seconds``, ``sample_rate``, ``channels``, ``talk_ratio_agent``, ``agent_loudness_dbfs``,
``customer_loudness_dbfs``, ``vad``, ``asr``, plus talk seconds, overlap, silence, syllables per minute,
pitch spread per role and the measured crosstalk (``agent_bleed_db`` …).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kefuqa.errors import InputError

EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
INSTALL_HINT = "读取录音需要安装音频组件：pip install 'kefuqa[audio]'"

__all__ = ["EXTENSIONS", "read", "register", "sniff", "parse_channels", "available"]


def available() -> str | None:
    """None when the audio extra is importable, else the name of the missing module."""
    for mod in ("numpy", "soundfile"):
        try:
            __import__(mod)
        except ImportError:
            return mod
    return None


def sniff(head: bytes, path: str | Path | None = None) -> bool:
    """True when the first bytes of a file look like a recording (RIFF/RF64 WAVE, FLAC, Ogg, MP3)."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return True
    if head[:4] in (b"fLaC", b"OggS"):
        return True
    if head[:3] == b"ID3":
        return True
    return _mpeg_frame(head)


def _mpeg_frame(head: bytes) -> bool:
    """An MPEG audio layer II/III frame header without ID3 tag: 11 sync bits, a valid version, bitrate
    and sample-rate index. Layer I is left out, so a UTF-16 byte-order mark (FF FE) is not audio."""
    if len(head) < 3 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version = (head[1] >> 3) & 0x03
    layer = (head[1] >> 1) & 0x03
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0x03
    return version != 0x01 and layer in (0x01, 0x02) and bitrate not in (0x00, 0x0F) and rate != 0x03


def parse_channels(spec: str | tuple[str, ...] | list[str] | None) -> tuple[str, str]:
    """``"agent,customer"`` → ("agent", "customer"); also accepts 坐席/客户 and the other role aliases."""
    from kefuqa.model import normalize_role

    if spec is None or spec == "":
        return ("agent", "customer")
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    try:
        roles = tuple(normalize_role(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"--channels {spec!r}：{exc}") from None
    if len(roles) != 2 or set(roles) != {"agent", "customer"}:
        raise ValueError(f"--channels {spec!r}：请写出左、右声道各是谁，如 agent,customer 或 customer,agent"
                         "（坐席,客户）")
    return roles  # type: ignore[return-value]


def read(path: str | Path, options: Any = None, /, *, channels: str | None = None, asr: str | None = None,
         vad: str | None = None, call_id: str | None = None, source_name: str | None = None,
         **_other: Any) -> Iterator[Any]:
    """Yield the recording at `path` as one `Conversation`, or one `InputError` saying why not.

    Called by the readers registry as ``read(path, options)`` with a ``ReadOptions`` object (its
    ``channels``/``audio_channels``, ``asr``, ``vad``, ``source_name`` and ``swap_roles`` attributes are
    used when present), or directly with keywords. Options that do not concern audio are ignored.
    """
    if options is not None:
        channels = channels or getattr(options, "channels", None) or getattr(options, "audio_channels", None)
        asr = asr or getattr(options, "asr", None)
        vad = vad or getattr(options, "vad", None)
        source_name = source_name or getattr(options, "source_name", None)
        if channels is None and getattr(options, "swap_roles", False):
            channels = "customer,agent"
    source = source_name or str(path)
    missing = available()
    if missing is not None:
        yield InputError(source, None, f"{INSTALL_HINT}（缺少模块 {missing}）")
        return
    try:
        roles = parse_channels(channels)
    except ValueError as exc:
        yield InputError(source, None, str(exc))
        return
    from kefuqa.audio.analyze import Options, analyze
    from kefuqa.audio.asr import AsrError, make_transcriber
    from kefuqa.audio.decode import AudioError, decode
    from kefuqa.audio.vad import VadError, get_vad

    try:
        vad_impl = get_vad(vad or "auto")
        transcriber = make_transcriber(asr) if asr else None
    except (VadError, AsrError) as exc:
        yield InputError(source, None, str(exc))
        return
    try:
        decoded = decode(path)
        conv = analyze(decoded.samples, decoded.sample_rate, call_id=call_id or Path(source).stem,
                       options=Options(roles=roles, vad=vad or "auto"), transcriber=transcriber,
                       vad=vad_impl, source=source, audio_path=source)
    except AudioError as exc:
        yield InputError(source, None, str(exc))
        return
    except MemoryError:
        yield InputError(source, None, "录音太大，内存中无法分析")
        return
    except Exception as exc:  # an ASR engine or a library failing on odd input must not stop the batch
        yield InputError(source, None, f"录音分析失败：{type(exc).__name__}: {exc}")
        return
    conv.metrics["codec"] = decoded.codec
    yield conv


def register() -> None:
    """Add the audio reader to the readers registry (the registry calls this through the ``kefuqa.readers``
    entry point the first time it is consulted; calling it again is harmless)."""
    from kefuqa.readers.registry import register_reader

    register_reader("audio", extensions=EXTENSIONS, sniff=sniff, read=read, binary=True)
    if available() is None:  # without the extra a transcript paired with a recording is read with a note
        from kefuqa.readers.registry import register_recording_merger

        register_recording_merger(merge)


MIN_RATE = 8000  # below telephone quality nothing kefuqa measures is meaningful


def merge(conv: Any, path: str | Path, options: Any = None) -> Any:
    """The transcript `conv` with the measures of the recording at `path` (`kefuqa.audio.guided`), or an
    `InputError` naming the recording and the reason (unreadable, wrong rate or channel count, times that
    do not fit the transcript). `options`: ``channels`` (role of the left and right channel),
    ``offset`` (seconds to add to the transcript's times), ``vad``, ``source_name``."""
    source = str(getattr(options, "source_name", None) or path)
    missing = available()
    if missing is not None:
        return InputError(source, None, f"{INSTALL_HINT}（缺少模块 {missing}）")
    try:
        roles = parse_channels(getattr(options, "channels", None))
    except ValueError as exc:
        return InputError(source, None, str(exc))
    from kefuqa.audio.analyze import prepare
    from kefuqa.audio.decode import AudioError, decode
    from kefuqa.audio.guided import AlignmentError, measure_transcript
    from kefuqa.audio.vad import VadError, get_vad

    try:
        offset = float(getattr(options, "offset", None) or 0.0)
    except (TypeError, ValueError):
        return InputError(source, None, f"offset {getattr(options, 'offset', None)!r} 不是秒数")
    try:
        vad = get_vad(getattr(options, "vad", None) or "auto")
        decoded = decode(path)
        if decoded.sample_rate < MIN_RATE:
            return InputError(source, None, f"采样率 {decoded.sample_rate} Hz 低于电话音质的 8000 Hz，无法测量")
        prep = prepare(decoded.samples, decoded.sample_rate, vad=vad)
        out = measure_transcript(conv, prep, roles, offset=offset, samples=decoded.samples)
    except AlignmentError as exc:
        return InputError(source, None, f"与转写 {conv.source or conv.id} 不匹配：{exc}")
    except (AudioError, VadError) as exc:
        return InputError(source, None, str(exc))
    except MemoryError:
        return InputError(source, None, "录音太大，内存中无法分析")
    out.metrics.update({"audio_path": source, "sample_rate": int(decoded.sample_rate), "codec": decoded.codec,
                        "vad": vad.name})
    return out
