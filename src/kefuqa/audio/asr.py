"""Offline speech recognition behind one small interface.

A backend is chosen by a spec ``BACKEND:PATH`` (``--asr`` on the command line):

- ``sherpa-onnx:/models/sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17`` — SenseVoice (text, language,
  emotion tags such as ANGRY) or Paraformer from a sherpa-onnx model directory (``model.int8.onnx`` or
  ``model.onnx`` + ``tokens.txt``). The model type is taken from the directory name (``sense-voice`` /
  ``paraformer``) or the ONNX metadata; ``sherpa-onnx-sense-voice:`` and ``sherpa-onnx-paraformer:``
  name it explicitly.
- ``faster-whisper:/models/whisper-small-ct2`` — a CTranslate2 Whisper model directory (``model.bin``,
  ``config.json``, ``tokenizer.json``), run on CPU with int8.

Options may follow the path after ``?``: ``faster-whisper:/m?language=zh&beam_size=5``,
``sherpa-onnx:/m?language=zh&use_itn=1&num_threads=2``.

Nothing is downloaded: the path must be a local directory, and a missing or incomplete one is an
`AsrError` that names it.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl

import numpy as np

ASR_RATE = 16000


class AsrError(Exception):
    """The ASR backend cannot be set up (bad spec, missing package, missing or wrong model path)."""


@dataclass(slots=True)
class TranscriptPiece:
    text: str
    emotion: str | None = None  # lower-case: angry, happy, sad, neutral, fearful, disgusted, surprised
    confidence: float | None = None  # 0..1
    language: str | None = None


@runtime_checkable
class Transcriber(Protocol):
    name: str

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> TranscriptPiece:
        """Transcribe one speech segment (mono float32, normally 16 kHz)."""
        ...


class TimedTranscriber:
    """Wraps a transcriber and adds up the seconds spent inside the engine (for the benchmark)."""

    def __init__(self, inner: Transcriber) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0
        self.calls = 0

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> TranscriptPiece:
        t = time.perf_counter()
        try:
            return self.inner.transcribe(samples, sample_rate)
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1


# ---- spec parsing ----------------------------------------------------------------------------------

BACKENDS = ("sherpa-onnx", "sherpa-onnx-sense-voice", "sherpa-onnx-paraformer", "sherpa-onnx-streaming", "faster-whisper")


def parse_spec(spec: str) -> tuple[str, Path, dict[str, str]]:
    if not spec or ":" not in spec:
        raise AsrError(f"ASR 设置 {spec!r} 应为 引擎:模型目录（BACKEND:PATH），如 sherpa-onnx:/models/sense-voice "
                       "或 faster-whisper:/models/whisper-ct2")
    backend, rest = spec.split(":", 1)
    backend = backend.strip().lower().replace("_", "-")
    if backend not in BACKENDS:
        raise AsrError(f"未知的 ASR 引擎 {backend!r}（应为其一：{', '.join(BACKENDS)}）")
    options: dict[str, str] = {}
    if "?" in rest:
        path_part, query = rest.rsplit("?", 1)
        pairs = parse_qsl(query, keep_blank_values=True)
        if pairs and all(re.fullmatch(r"[a-z_]+", k) for k, _ in pairs):
            rest, options = path_part, dict(pairs)
    if not rest.strip():
        raise AsrError(f"ASR 设置 {spec!r} 没有写模型目录")
    return backend, Path(rest).expanduser(), options


_CACHE: dict[str, Transcriber] = {}
_LOCK = threading.Lock()


def make_transcriber(spec: str) -> Transcriber:
    """Build (once per process and spec) the transcriber that `spec` names."""
    with _LOCK:
        if spec in _CACHE:
            return _CACHE[spec]
        backend, path, options = parse_spec(spec)
        if backend == "faster-whisper":
            t: Transcriber = FasterWhisperTranscriber(path, **options)
        elif backend == "sherpa-onnx-streaming":
            t = SherpaOnnxStreamingTranscriber(path, **options)
        else:
            kind = {"sherpa-onnx-sense-voice": "sense_voice", "sherpa-onnx-paraformer": "paraformer"}.get(backend)
            t = SherpaOnnxTranscriber(path, model_type=kind, **options)
        _CACHE[spec] = t
        return t


def _check_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise AsrError(f"{what} 模型目录不存在：{path}")
    if not path.is_dir():
        raise AsrError(f"{what} 模型路径不是目录：{path}")


def _as_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(samples, np.float32).reshape(-1)
    if sample_rate != ASR_RATE:
        from kefuqa.audio.resample import resample

        x = resample(x, sample_rate, ASR_RATE)
    return np.ascontiguousarray(x, dtype=np.float32)


# ---- sherpa-onnx -----------------------------------------------------------------------------------

_TAG = re.compile(r"<\|([^|>]*)\|>")
EMOTIONS = {"ANGRY": "angry", "HAPPY": "happy", "SAD": "sad", "NEUTRAL": "neutral", "FEARFUL": "fearful",
            "DISGUSTED": "disgusted", "SURPRISED": "surprised"}


def parse_tag(tag: str | None) -> str | None:
    """``<|ANGRY|>`` → ``ANGRY``; empty or missing → None."""
    if not tag:
        return None
    m = _TAG.search(tag)
    value = (m.group(1) if m else tag).strip()
    return value or None


def emotion_from_tag(tag: str | None) -> str | None:
    value = parse_tag(tag)
    if value is None:
        return None
    return EMOTIONS.get(value.upper())


def strip_tags(text: str) -> tuple[str, list[str]]:
    """Remove SenseVoice's ``<|zh|><|NEUTRAL|><|Speech|><|woitn|>`` tags from text; return them too."""
    tags = _TAG.findall(text)
    return _TAG.sub("", text).strip(), tags


class SherpaOnnxTranscriber:
    """SenseVoice or Paraformer through sherpa-onnx's offline recognizer."""

    def __init__(self, model_dir: str | Path, model_type: str | None = None, *, language: str = "",
                 use_itn: str | bool = True, num_threads: str | int = 1, **unknown: str) -> None:
        if unknown:
            raise AsrError(f"未知的 sherpa-onnx 选项：{', '.join(sorted(unknown))}")
        path = Path(model_dir)
        _check_dir(path, "sherpa-onnx")
        model = next((path / n for n in ("model.int8.onnx", "model.onnx") if (path / n).is_file()), None)
        if model is None:
            onnx = sorted(path.glob("*.onnx"))
            model = onnx[0] if len(onnx) == 1 else None
        tokens = path / "tokens.txt"
        if model is None or not tokens.is_file():
            raise AsrError(f"{path}：不是 sherpa-onnx 模型目录（需要 model.int8.onnx 或 model.onnx "
                           "以及 tokens.txt）")
        kind = model_type or _sherpa_model_type(path, model)
        if kind not in ("sense_voice", "paraformer"):
            raise AsrError(f"{path}：分不出是 SenseVoice 还是 Paraformer 模型；请用 "
                           "sherpa-onnx-sense-voice:PATH 或 sherpa-onnx-paraformer:PATH")
        try:
            import sherpa_onnx
        except ImportError as exc:
            raise AsrError("sherpa-onnx 引擎需要安装 sherpa-onnx：pip install 'kefuqa[asr]'") from exc
        threads = int(num_threads)
        itn = str(use_itn).lower() not in ("0", "false", "no", "")
        try:
            if kind == "sense_voice":
                self.recognizer = sherpa_onnx.OfflineRecognizer.from_sense_voice(
                    model=str(model), tokens=str(tokens), num_threads=threads, language=language,
                    use_itn=itn)
            else:
                self.recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(
                    paraformer=str(model), tokens=str(tokens), num_threads=threads)
        except Exception as exc:
            raise AsrError(f"{path}：sherpa-onnx 无法加载模型：{exc}") from exc
        self.kind = kind
        self.name = f"sherpa-onnx/{'sense-voice' if kind == 'sense_voice' else 'paraformer'}"
        self.model_dir = path

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> TranscriptPiece:
        x = _as_16k(samples, sample_rate)
        stream = self.recognizer.create_stream()
        stream.accept_waveform(ASR_RATE, x)
        self.recognizer.decode_stream(stream)
        return piece_from_sherpa(stream.result)


class SherpaOnnxStreamingTranscriber:
    """A streaming sherpa-onnx model directory (``sherpa-onnx-streaming:/models/...``): a zipformer or
    conformer transducer (``encoder*.onnx``, ``decoder*.onnx``, ``joiner*.onnx``), a streaming Paraformer
    (``encoder*``, ``decoder*``) or a zipformer2 CTC (``model*.onnx``), with ``tokens.txt``; int8 files
    preferred. Used here per segment: the segment, 0.66 s of trailing silence to flush the model, decode."""

    def __init__(self, model_dir: str | Path, *, num_threads: str | int = 1, decoding_method: str = "greedy_search",
                 **unknown: str) -> None:
        if unknown:
            raise AsrError(f"未知的 sherpa-onnx-streaming 选项：{', '.join(sorted(unknown))}")
        path = Path(model_dir)
        _check_dir(path, "sherpa-onnx-streaming")
        tokens = path / "tokens.txt"

        def pick(stem: str) -> Path | None:
            found = sorted(path.glob(f"{stem}*.onnx"), key=lambda p: (".int8." not in p.name, p.name))
            return found[0] if found else None

        enc, dec, join, model = pick("encoder"), pick("decoder"), pick("joiner"), pick("model")
        if not tokens.is_file() or not ((enc and dec) or model):
            raise AsrError(f"{path}：不是流式 sherpa-onnx 模型目录（需要 tokens.txt 以及 "
                           "encoder/decoder[/joiner] 或 model 的 .onnx 文件）")
        try:
            import sherpa_onnx
        except ImportError as exc:
            raise AsrError("sherpa-onnx 引擎需要安装 sherpa-onnx：pip install 'kefuqa[asr]'") from exc
        threads = int(num_threads)
        try:
            if enc and dec and join:
                self.kind = "transducer"
                self.recognizer = sherpa_onnx.OnlineRecognizer.from_transducer(
                    tokens=str(tokens), encoder=str(enc), decoder=str(dec), joiner=str(join), num_threads=threads,
                    sample_rate=ASR_RATE, feature_dim=80, decoding_method=decoding_method)
            elif enc and dec:
                self.kind = "paraformer"
                self.recognizer = sherpa_onnx.OnlineRecognizer.from_paraformer(
                    tokens=str(tokens), encoder=str(enc), decoder=str(dec), num_threads=threads)
            else:
                self.kind = "zipformer2-ctc"
                self.recognizer = sherpa_onnx.OnlineRecognizer.from_zipformer2_ctc(
                    tokens=str(tokens), model=str(model), num_threads=threads)
        except Exception as exc:
            raise AsrError(f"{path}：sherpa-onnx 无法加载流式模型：{exc}") from exc
        self.name = f"sherpa-onnx-streaming/{self.kind}"
        self.model_dir = path

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> TranscriptPiece:
        x = _as_16k(samples, sample_rate)
        stream = self.recognizer.create_stream()
        stream.accept_waveform(ASR_RATE, x)
        stream.accept_waveform(ASR_RATE, np.zeros(int(0.66 * ASR_RATE), np.float32))
        stream.input_finished()
        while self.recognizer.is_ready(stream):
            self.recognizer.decode_stream(stream)
        result = self.recognizer.get_result(stream)
        text = result if isinstance(result, str) else str(getattr(result, "text", "") or "")
        return TranscriptPiece(text=text.strip())


def piece_from_sherpa(result: object) -> TranscriptPiece:
    text, tags = strip_tags(str(getattr(result, "text", "") or ""))
    emotion = emotion_from_tag(getattr(result, "emotion", None))
    language = parse_tag(getattr(result, "lang", None))
    for tag in tags:  # older builds leave the tags in the text
        if emotion is None and tag.upper() in EMOTIONS:
            emotion = EMOTIONS[tag.upper()]
        if language is None and re.fullmatch(r"[a-z]{2,3}", tag):
            language = tag
    confidence = None
    logp = getattr(result, "ys_log_probs", None)
    if logp is not None and len(logp):
        confidence = float(np.exp(np.mean(np.asarray(logp, np.float64))))
    return TranscriptPiece(text=text, emotion=emotion, confidence=confidence, language=language)


def _sherpa_model_type(path: Path, model: Path) -> str | None:
    name = path.name.lower().replace("_", "-")
    if "sense-voice" in name or "sensevoice" in name:
        return "sense_voice"
    if "paraformer" in name:
        return "paraformer"
    try:  # the exported ONNX files carry a model_type in their metadata
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        meta = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
        custom = meta.get_modelmeta().custom_metadata_map
    except Exception:
        return None
    mt = str(custom.get("model_type", "")).lower().replace("-", "_")
    if "sense" in mt:
        return "sense_voice"
    if "paraformer" in mt:
        return "paraformer"
    if "lang_zh" in custom and "lang_auto" in custom:  # SenseVoice's language-id table
        return "sense_voice"
    return None


# ---- faster-whisper --------------------------------------------------------------------------------


class FasterWhisperTranscriber:
    """A local CTranslate2 Whisper model through faster-whisper (CPU, int8; ``device=cuda`` for a GPU)."""

    def __init__(self, model_dir: str | Path, *, language: str | None = None, beam_size: str | int = 1,
                 cpu_threads: str | int = 1, compute_type: str = "int8", device: str = "cpu",
                 **unknown: str) -> None:
        if unknown:
            raise AsrError(f"未知的 faster-whisper 选项：{', '.join(sorted(unknown))}")
        path = Path(model_dir)
        _check_dir(path, "faster-whisper")
        missing = [n for n in ("model.bin", "config.json") if not (path / n).is_file()]
        if missing:
            raise AsrError(f"{path}：不是 CTranslate2 Whisper 模型目录（缺少 {', '.join(missing)}）")
        if not (path / "tokenizer.json").is_file() and not (path / "vocabulary.txt").is_file() \
                and not (path / "vocabulary.json").is_file():
            raise AsrError(f"{path}：不是 CTranslate2 Whisper 模型目录（缺少 tokenizer.json）")
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise AsrError("faster-whisper 引擎需要安装 faster-whisper："
                           "pip install 'kefuqa[audio]'") from exc
        try:
            # A local directory path is loaded as is; local_files_only forbids any hub look-up.
            # device=cuda (spec "faster-whisper:/models/x?device=cuda"): a GPU actor of `kefuqa batch`
            self.model = WhisperModel(str(path), device=device, compute_type=compute_type,
                                      cpu_threads=int(cpu_threads), local_files_only=True)
        except Exception as exc:
            raise AsrError(f"{path}：faster-whisper 无法加载模型：{exc}") from exc
        self.language = language or None
        self.beam_size = int(beam_size)
        self.name = "faster-whisper"
        self.model_dir = path

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> TranscriptPiece:
        x = _as_16k(samples, sample_rate)
        segments, info = self.model.transcribe(
            x, language=self.language, beam_size=self.beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True)
        parts, logps, weights = [], [], []
        for seg in segments:
            parts.append(seg.text)
            logps.append(seg.avg_logprob)
            weights.append(max(1, len(seg.text)))
        text = "".join(parts).strip()
        conf = float(np.exp(np.average(logps, weights=weights))) if logps else None
        return TranscriptPiece(text=text, confidence=conf, language=getattr(info, "language", None))
