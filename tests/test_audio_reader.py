"""Decoding, the reader entry point, registration and bad input: always an InputError, never a crash."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
sf = pytest.importorskip("soundfile")

import audio_synth as synth  # noqa: E402
import kefuqa.audio as audio  # noqa: E402
from kefuqa.audio.decode import decode  # noqa: E402
from kefuqa.audio.resample import resample, resample_poly  # noqa: E402
from kefuqa.errors import InputError  # noqa: E402
from kefuqa.model import Conversation  # noqa: E402

# Tests that synthesise speech (espeak-ng, one process per sentence) or encode and decode recordings are
# marked slow; the signal-processing helpers on numpy arrays are not.
needs_espeak = pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed "
                                  "(apt-get install espeak-ng) — speech test audio cannot be generated")
GREETING = "Hello, thank you for calling. How can I help you today?"


def _one(path, **kw):
    items = list(audio.read(path, **kw))
    assert len(items) == 1
    return items[0]


@pytest.fixture(scope="module")
def stereo() -> tuple[np.ndarray, synth.Call]:
    if not synth.have_espeak():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    call = synth.Call(6.0, 8000)
    call.add("agent", 0.4, synth.speak(GREETING))
    call.add("customer", call.truth[-1][2] + 0.6, synth.speak("okay, thank you", pitch=80))
    return call.render(bleed_db=-25.0), call


# ---- formats ---------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_espeak
@pytest.mark.parametrize("name,kwargs", [
    ("call.wav", {"subtype": "PCM_16"}),
    ("call_ulaw.wav", {"subtype": "ULAW"}),
    ("call_alaw.wav", {"subtype": "ALAW"}),
    ("call.flac", {}),
    ("call.ogg", {}),
    ("call.mp3", {}),
])
def test_formats_decode_to_the_same_conversation(tmp_path, stereo, name, kwargs):
    x, call = stereo
    p = tmp_path / name
    synth.write(str(p), x, 8000, **kwargs)
    conv = _one(p)
    assert isinstance(conv, Conversation), conv
    assert [u.role for u in conv.utterances] == ["agent", "customer"]
    tol = 0.1 if not name.endswith(".mp3") else 0.15  # the MP3 encoder adds a little delay
    for u, (_, s, e) in zip(conv.utterances, call.truth, strict=True):
        assert abs(u.start - s) <= tol and abs(u.end - e) <= tol
    assert conv.id == Path(name).stem and conv.source == str(p)
    m = conv.metrics
    assert m["audio"] is True and m["audio_path"] == str(p) and m["channels"] == 2
    assert m["sample_rate"] == 8000 and m["duration_seconds"] == pytest.approx(6.0, abs=0.1)
    assert m["vad"] in ("silero", "energy") and m["asr"] is None
    assert all(u.text == "" for u in conv.utterances)
    for key in ("loudness_dbfs", "pitch_sd_semitones", "pitch_median_hz", "syllables"):
        assert key in conv.utterances[0].attrs


@pytest.mark.slow
def test_pyav_fallback_for_a_codec_libsndfile_lacks(tmp_path):
    """AAC in an MP4 container is not libsndfile's: it is decoded through PyAV."""
    av = pytest.importorskip("av")
    p = tmp_path / "tone.m4a"
    sr = 16000
    x = synth.tone(440, 1.0, sr, level_dbfs=-12)
    with av.open(str(p), "w") as out:
        st = out.add_stream("aac", rate=sr)
        st.layout = "mono"
        frame = av.AudioFrame.from_ndarray(x[None, :], format="fltp", layout="mono")
        frame.sample_rate = sr
        frame.pts = 0
        for packet in st.encode(frame):
            out.mux(packet)
        for packet in st.encode(None):
            out.mux(packet)
    d = decode(p)
    assert "PyAV" in d.codec and d.sample_rate == sr and d.channels == 1
    assert d.duration == pytest.approx(1.0, abs=0.1)
    mid = d.samples[0][2000:14000]
    assert 20 * np.log10(np.sqrt(np.mean(mid**2))) == pytest.approx(-12.0, abs=0.5)


def test_resample_numpy_fallback_matches_a_sine():
    for a, b in [(8000, 16000), (44100, 16000), (16000, 8000)]:
        t = np.arange(a) / a
        x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
        y = resample_poly(x, a, b)
        ref = np.sin(2 * np.pi * 440 * np.arange(y.size) / b)
        mid = slice(y.size // 4, 3 * y.size // 4)
        assert y.size == b and np.abs(y[mid] - ref[mid]).max() < 1e-3
        assert resample(x, a, b).size == pytest.approx(b, abs=1)


# ---- bad input -------------------------------------------------------------------------------------


def _wav_with_tag(tag: int) -> bytes:
    data = b"\x01\x02" * 800
    fmt = struct.pack("<HHIIHH", tag, 1, 8000, 16000, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("name,content,reason", [
    ("empty.wav", b"", "空文件"),
    ("corrupt.wav", b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 3, "不是可读的音频文件"),
    ("notaudio.mp3", b"hello, this is a text file and not audio\n" * 20, "不是可读的音频文件"),
    ("truncated.flac", b"fLaC\x00\x00\x00\x22" + b"\x00" * 10, "不是可读的音频文件"),
    ("g729.wav", _wav_with_tag(0x0133), "WAV 文件的编码不受支持（格式标签 0x0133）"),
])
def test_bad_files_give_a_clear_input_error(tmp_path, name, content, reason):
    p = tmp_path / name
    p.write_bytes(content)
    err = _one(p)
    assert isinstance(err, InputError), err
    assert err.source == str(p) and reason in err.reason, err.reason


def test_zero_length_audio(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(str(p), np.zeros((0, 2), np.float32), 8000)
    err = _one(p)
    assert isinstance(err, InputError) and "0 个采样" in err.reason


def test_more_than_two_channels(tmp_path):
    p = tmp_path / "four.wav"
    sf.write(str(p), np.zeros((8000, 4), np.float32), 8000)
    err = _one(p)
    assert isinstance(err, InputError) and "4 个声道" in err.reason and "立体声" in err.reason


@pytest.mark.parametrize("vad", ["energy", "auto"])
def test_silence_only_recording(tmp_path, vad):
    p = tmp_path / "silence.wav"
    rng = np.random.default_rng(1)
    sf.write(str(p), (rng.standard_normal((16000, 2)) * 1e-4).astype(np.float32), 8000)
    err = _one(p, vad=vad)
    assert isinstance(err, InputError) and err.reason == "2.0 秒录音中没有找到语音"


def test_missing_file_and_folder(tmp_path):
    err = _one(tmp_path / "nope.wav")
    assert isinstance(err, InputError) and "文件不存在" in err.reason
    err = _one(tmp_path)
    assert isinstance(err, InputError) and "文件夹" in err.reason


def test_bad_options(tmp_path):
    p = tmp_path / "x.wav"
    sf.write(str(p), np.zeros((800, 2), np.float32), 8000)
    assert "--channels" in _one(p, channels="agent,agent").reason
    assert "未知的 VAD" in _one(p, vad="webrtc").reason
    err = _one(p, asr="faster-whisper:/no/such/model")
    assert isinstance(err, InputError) and "/no/such/model" in err.reason


def test_without_the_audio_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "available", lambda: "soundfile")
    err = _one(tmp_path / "x.wav")
    assert isinstance(err, InputError) and "kefuqa[audio]" in err.reason


@pytest.mark.slow
def test_an_engine_failure_is_an_input_error(tmp_path, monkeypatch, stereo):
    x, _ = stereo
    p = tmp_path / "c.wav"
    synth.write(str(p), x, 8000)

    class Broken:
        name = "broken"

        def transcribe(self, samples, sample_rate):
            raise RuntimeError("engine crashed")

    import kefuqa.audio.asr as asr

    monkeypatch.setattr(asr, "make_transcriber", lambda spec: Broken())
    err = _one(p, asr="faster-whisper:/whatever")
    assert isinstance(err, InputError) and "engine crashed" in err.reason


# ---- options and registration ----------------------------------------------------------------------


def test_parse_channels():
    assert audio.parse_channels("agent,customer") == ("agent", "customer")
    assert audio.parse_channels("客户, 坐席") == ("customer", "agent")
    assert audio.parse_channels(None) == ("agent", "customer")
    for bad in ("agent", "agent,customer,agent", "agent,robot"):
        with pytest.raises(ValueError):
            audio.parse_channels(bad)


def test_sniff():
    assert audio.sniff(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    assert audio.sniff(b"fLaC\x00\x00\x00\x22")
    assert audio.sniff(b"OggS\x00\x02")
    assert audio.sniff(b"ID3\x04\x00")
    assert audio.sniff(b"\xff\xfb\x90\x64")  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
    assert audio.sniff(b"\xff\xf3\x48\xc4")  # MPEG-2 layer III, 8 kbit/s... a narrow-band call
    assert not audio.sniff("坐席：您好".encode("utf-16"))  # FF FE byte-order mark
    assert not audio.sniff(b'{"id": "x", "utterances": []}')
    assert not audio.sniff("坐席：您好".encode())
    assert not audio.sniff(b"RIFF\x24\x00\x00\x00AVI LIST")


@pytest.mark.slow
@needs_espeak
def test_read_with_a_readoptions_like_object(tmp_path, stereo):
    """The registry calls read(path, options); swap_roles means channel 0 is the customer."""
    x, _ = stereo
    p = tmp_path / "tmpcopy.wav"
    synth.write(str(p), x, 8000)

    class Opts:
        source_name = "uploads/call-7.wav"
        swap_roles = True
        csv_columns = None

    conv = next(iter(audio.read(p, Opts())))
    assert conv.id == "call-7" and conv.source == "uploads/call-7.wav"
    assert [u.role for u in conv.utterances] == ["customer", "agent"]


@pytest.mark.slow
@needs_espeak
def test_register_with_the_readers_registry(tmp_path, stereo):
    from kefuqa import readers

    audio.register()
    from kefuqa.readers.registry import get_reader

    spec = get_reader("audio")
    assert spec.binary and set(spec.extensions) == {".wav", ".flac", ".ogg", ".mp3"}
    x, _ = stereo
    p = tmp_path / "c1.flac"
    synth.write(str(p), x, 8000)
    items = list(readers.read_path(str(p)))
    assert len(items) == 1 and isinstance(items[0], Conversation), items
    assert items[0].metrics["audio"] is True
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    items = list(readers.read_path(str(bad)))
    assert len(items) == 1 and isinstance(items[0], InputError)
