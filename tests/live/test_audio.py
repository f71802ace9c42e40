"""The audio path's signal side (`kefuqa.live.audio`) on real espeak-ng speech and the real Silero VAD:
frames of any size give the same segments (state kept across frames), times against the truth, the
hangover, the long-turn cut, spoken order across channels, mixed-stream roles, format and frame errors in
Chinese; the AudioSocket codec; the streaming sherpa-onnx backend through a stand-in recognizer (no
streaming model ships in a package)."""

from __future__ import annotations

import asyncio
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from kefuqa.audio import asr
from kefuqa.audio.vad import get_vad
from kefuqa.live import LiveError
from kefuqa.live.audio import (
    AudioFormat,
    AudioPipeline,
    MixedRoles,
    Segment,
    Sequencer,
    decode_pcm,
    pcm_frames,
)
from kefuqa.live.audiosocket import AudioSocketError, describe_error, encode, read_message

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import audio_synth as synth  # noqa: E402

needs_espeak = pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed")
RATE = 8000


def _call(rate: int = RATE) -> tuple[np.ndarray, list[tuple[int, float, float]]]:
    """Stereo: agent on channel 1, customer on channel 0, with a short backchannel inside a long turn."""
    a = synth.speak("Thank you for calling how can I help you today", sample_rate=rate)
    c = synth.speak("My internet has not been working since yesterday evening and nobody came", voice="en+f3",
                    sample_rate=rate)
    ok = synth.speak("OK", sample_rate=rate)
    n = int(rate * (0.5 + a.size / rate + 0.8 + c.size / rate + 1.5))
    x = np.zeros((2, n), np.float32)
    t_a = 0.5
    x[1, int(t_a * rate): int(t_a * rate) + a.size] = a
    t_c = t_a + a.size / rate + 0.8
    x[0, int(t_c * rate): int(t_c * rate) + c.size] = c
    t_ok = t_c + 1.5  # the agent's "OK" while the customer is still talking
    x[1, int(t_ok * rate): int(t_ok * rate) + ok.size] += ok
    truth = [(1, t_a, t_a + a.size / rate), (0, t_c, t_c + c.size / rate), (1, t_ok, t_ok + ok.size / rate)]
    return x, truth


def _run(pipe: AudioPipeline, frames: list[bytes]) -> list[Segment]:
    out = [s for b in frames for s in pipe.feed(b)]
    return out + pipe.flush()


@needs_espeak
@pytest.mark.parametrize("frame_ms", [10, 20, 100, 250])
def test_segments_do_not_depend_on_frame_size(frame_ms: int) -> None:
    x, truth = _call()
    fmt = AudioFormat.parse({"rate": RATE, "mix": "stereo"}, "inbound")
    pipe = AudioPipeline(fmt, get_vad("auto"))
    segs = _run(pipe, pcm_frames(x, RATE, frame_ms))
    ref = _run(AudioPipeline(fmt, get_vad("auto")), pcm_frames(x, RATE, 20))
    assert [(s.channel, round(s.start, 3), round(s.end, 3)) for s in segs] == \
        [(s.channel, round(s.start, 3), round(s.end, 3)) for s in ref]
    assert len(segs) == 3
    for ch, start, end in truth:
        seg = next(s for s in segs if s.channel == ch and s.start < end and s.end > start)
        assert abs(seg.start - start) < 0.3 and abs(seg.end - end) < 0.3, (seg.start, seg.end, start, end)
        assert pipe.hangover - 0.04 <= seg.closed_at - seg.end <= pipe.hangover + 0.04  # the hangover
        assert seg.samples.size >= (seg.end - seg.start) * RATE  # what ASR gets, with its padding


@needs_espeak
def test_spoken_order_waits_for_the_longer_turn() -> None:
    x, _ = _call()
    fmt = AudioFormat(RATE, 2, ("customer", "agent"))
    pipe = AudioPipeline(fmt, get_vad("auto"))
    seq = Sequencer()
    released: list[Segment] = []
    for b in pcm_frames(x, RATE):
        for seg in pipe.feed(b):
            p = seq.add(seg)
            p.done = True  # the text is back at once
        released += [p.seg for p in seq.ready(pipe.open_starts())]
    for seg in pipe.flush():
        seq.add(seg).done = True
    released += [p.seg for p in seq.ready(pipe.open_starts(), final=True)]
    # the agent's "OK" closed first but is released after the customer's turn that began before it
    assert [s.channel for s in released] == [1, 0, 1]
    assert [s.start for s in released] == sorted(s.start for s in released)


@needs_espeak
def test_a_long_turn_is_cut_and_a_gap_ends_speech() -> None:
    speech = np.concatenate([synth.speak("one two three four five six seven eight nine ten", sample_rate=RATE)] * 3)
    x = np.concatenate([np.zeros(4000, np.float32), speech, np.zeros(8000, np.float32)])[None, :]
    pipe = AudioPipeline(AudioFormat(RATE, 1, ("customer",)), get_vad("auto"), hangover=1.5, max_length=3.0)
    segs = _run(pipe, pcm_frames(x, RATE))
    assert len(segs) >= 3 and all(s.end - s.start <= 3.0 + 1e-6 for s in segs)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(segs, segs[1:], strict=False))
    # a reconnect that comes back 5 s later: the open speech ends, the clock jumps, then goes on
    pipe = AudioPipeline(AudioFormat(RATE, 1, ("customer",)), get_vad("auto"))
    frames = pcm_frames(x, RATE)
    for b in frames[:60]:
        pipe.feed(b)
    cut = pipe.skip_to(pipe.clock + 5.0)
    assert len(cut) == 1 and abs(pipe.clock - (60 * 0.02 + 5.0)) < 1e-6
    resent = pipe.skip_to(pipe.clock - 0.5)  # a client that resends its last half second: dropped
    assert resent == [] and pipe.discard == RATE // 2


def test_format_and_frame_errors_are_chinese() -> None:
    cases = [({"rate": 44100}, "采样率 44100"), ({"rate": 8000, "channels": 3}, "声道数 3"),
             ({"rate": "16k", "mix": "surround"}, "未知的 mix"), ({"rate": 8000, "encoding": "opus"}, "L16"),
             ({"rate": 8000, "channels": 2, "roles": ["agent"]}, "每个声道一项"),
             ({"rate": 8000, "roles": ["boss"]}, "未知的声道角色"), ({"rate": 8000, "codec": "x"}, "未知的键"),
             ("8k", "audio 对象")]
    for audio, words in cases:
        with pytest.raises(LiveError, match=words):
            AudioFormat.parse(audio)
    assert AudioFormat.parse({"rate": "8k", "mix": "stereo"}, "outbound").roles == ("agent", "customer")
    assert AudioFormat.parse({"rate": 16000, "mix": "mixed"}).roles == ("mixed",)
    fmt = AudioFormat(RATE, 2, ("customer", "agent"))
    with pytest.raises(LiveError, match="奇数"):
        decode_pcm(b"\x00" * 5, fmt)
    with pytest.raises(LiveError, match="整数倍"):
        decode_pcm(b"\x00" * 6, fmt)
    x = decode_pcm(struct.pack("<4h", 100, -200, 32767, -32768), fmt)
    assert x.shape == (2, 2) and x[0, 1] == pytest.approx(32767 / 32768) and x[1, 1] == -1.0


def test_mixed_roles_by_words_then_turns() -> None:
    r = MixedRoles()
    assert r.role("嗯")[0] == "agent"  # the agent answers
    assert r.role("我想投诉你们的网络") == ("customer", "text")
    assert r.role("嗯嗯") == ("agent", "turn")
    assert r.role("请问您的号码是多少") == ("agent", "text")


def test_audiosocket_codec() -> None:
    async def parse(data: bytes) -> list[tuple[int, bytes] | None]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        out: list[tuple[int, bytes] | None] = []
        while True:
            try:
                m = await read_message(reader)
            except AudioSocketError as exc:
                out.append((-1, str(exc).encode()))
                return out
            out.append(m)
            if m is None:
                return out

    msgs = asyncio.run(parse(encode(0x01, b"u" * 16) + encode(0x10, b"\x01\x00" * 160) + encode(0x00)))
    assert msgs == [(0x01, b"u" * 16), (0x10, b"\x01\x00" * 160), (0x00, b""), None]
    assert struct.unpack(">BH", encode(0x10, b"\x00" * 320)[:3]) == (0x10, 320)  # big-endian length
    broken = asyncio.run(parse(b"\x10\x01\x40" + b"\x00" * 10))
    assert broken[-1][0] == -1 and "320 字节负载" in broken[-1][1].decode()
    assert describe_error(b"\x03") == "Asterisk 报告错误：主叫挂机、帧转发错误"


# ---- streaming sherpa-onnx (a stand-in recognizer) ----------------------------------------------------


class _OnlineStream:
    def __init__(self) -> None:
        self.fed: list[int] = []
        self.finished = False
        self.decodes = 0

    def accept_waveform(self, sr: int, samples: np.ndarray) -> None:
        assert sr == 16000 and samples.dtype == np.float32
        self.fed.append(samples.size)

    def input_finished(self) -> None:
        self.finished = True


class _Online:
    made: list[tuple[str, dict]] = []
    streams: list[_OnlineStream] = []

    def __init__(self, kind: str, kw: dict) -> None:
        _Online.made.append((kind, kw))

    @classmethod
    def from_transducer(cls, **kw: object) -> _Online:
        return cls("transducer", kw)

    @classmethod
    def from_paraformer(cls, **kw: object) -> _Online:
        return cls("paraformer", kw)

    def create_stream(self) -> _OnlineStream:
        s = _OnlineStream()
        _Online.streams.append(s)
        return s

    def is_ready(self, s: _OnlineStream) -> bool:
        return s.finished and s.decodes < 3

    def decode_stream(self, s: _OnlineStream) -> None:
        s.decodes += 1

    def get_result(self, s: _OnlineStream) -> str:
        return " 请问有什么可以帮您 "


def test_streaming_sherpa_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = types.ModuleType("sherpa_onnx")
    mod.OnlineRecognizer = _Online  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sherpa_onnx", mod)
    d = tmp_path / "sherpa-onnx-streaming-zipformer-bilingual-zh-en"
    d.mkdir()
    for n in ("encoder-epoch-99-avg-1.onnx", "encoder-epoch-99-avg-1.int8.onnx", "decoder-epoch-99-avg-1.onnx",
              "joiner-epoch-99-avg-1.int8.onnx", "tokens.txt"):
        (d / n).write_bytes(b"x")
    t = asr.make_transcriber(f"sherpa-onnx-streaming:{d}?num_threads=2")
    kind, kw = _Online.made[-1]
    assert kind == "transducer" and t.name == "sherpa-onnx-streaming/transducer"
    assert str(kw["encoder"]).endswith("encoder-epoch-99-avg-1.int8.onnx") and kw["num_threads"] == 2
    piece = t.transcribe(np.zeros(8000, np.float32), 8000)
    s = _Online.streams[-1]
    assert piece.text == "请问有什么可以帮您" and s.fed == [16000, int(0.66 * 16000)] and s.decodes == 3
    p = tmp_path / "paraformer-streaming"
    p.mkdir()
    for n in ("encoder.int8.onnx", "decoder.int8.onnx", "tokens.txt"):
        (p / n).write_bytes(b"x")
    assert asr.make_transcriber(f"sherpa-onnx-streaming:{p}").name == "sherpa-onnx-streaming/paraformer"
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(asr.AsrError, match="不是流式 sherpa-onnx 模型目录"):
        asr.make_transcriber(f"sherpa-onnx-streaming:{empty}")
