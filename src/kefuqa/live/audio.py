"""The live audio path's signal side: 16-bit PCM frames of a call as they arrive → speech segments per
channel (streaming VAD with state kept across frames, a segment ends after the hangover) → utterances in
spoken order, each with its role (from the channel) and times (from the audio clock: samples received).

Pure like the rest of `kefuqa.live`: no I/O and no wall clock; ASR is not run here (the server runs it off
its event loop and hands the text back through `Sequencer`). Protocol and framing: docs/assist.md, "Audio".
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio.roles import text_score
from ..audio.vad import FRAME_SECONDS, SILERO_CONTEXT, SILERO_WINDOW, SileroVad, Vad
from .session import OUT_OF_ORDER_TOLERANCE, LiveError

RATES = (8000, 16000)
ROLES = ("agent", "customer")
MIXED = "mixed"  # one channel carrying both parties: roles from the words and turn-taking
ON, OFF = 0.5, 0.35  # the VAD's hysteresis (as the offline analysis: audio.measures.hysteresis)
CROSSTALK_DB = 15.0  # stereo: a frame this much quieter than the other channel's is its echo, not speech
NOISE_FRAMES = 312  # running noise floor over the last 10 s
NOISE_MIN_FRAMES = 94  # ... used for the gate once 3 s are known
# silence that ends an utterance: the end of speech is known this long after it. 0.25 s keeps end of speech →
# guidance under issue 11's 300 ms with room for a loaded server (0.3 s left 0–15 ms at 20 calls) and still spans
# the short pauses inside a Chinese sentence; KEFUQA_ASSIST_HANGOVER_MS or a call's hangover_ms changes it
HANGOVER = 0.25


@dataclass(frozen=True)
class AudioFormat:
    """What a connection's binary frames carry: little-endian signed 16-bit PCM (L16), `channels`
    interleaved, at `rate`; `roles[i]` is channel i's party (``agent``, ``customer`` or ``mixed``)."""

    rate: int
    channels: int
    roles: tuple[str, ...]

    @property
    def frame_bytes(self) -> int:
        """Bytes of one sample of every channel."""
        return 2 * self.channels

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.frame_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"encoding": "L16", "rate": self.rate, "channels": self.channels, "roles": list(self.roles)}

    @classmethod
    def parse(cls, audio: Any, direction: str | None = None) -> AudioFormat:
        """The start frame's ``audio`` object. Accepts mod_audio_fork / mod_audio_stream's own words too:
        ``rate`` 8000 / 16000 / "8k" / "16k", ``mix`` mono / mixed / stereo. Raises `LiveError`
        (``bad_audio_format``) naming what is wrong, in Chinese."""
        if not isinstance(audio, dict):
            raise LiveError("bad_audio_format", "start 帧需要 audio 对象（rate、channels 或 mix、roles）")
        unknown = sorted(set(audio) - {"encoding", "rate", "channels", "mix", "roles", "at", "hangover_ms"})
        if unknown:
            raise LiveError("bad_audio_format", f"audio 中有未知的键：{', '.join(unknown)}")
        enc = audio.get("encoding", "L16")
        if not isinstance(enc, str) or enc.upper() not in ("L16", "LINEAR16", "PCM_S16LE", "SLIN"):
            raise LiveError("bad_audio_format", f"不支持的音频编码 {enc!r}：只接受 16 位线性 PCM（L16，小端）")
        rate = audio.get("rate")
        if isinstance(rate, str) and rate.strip().lower() in ("8k", "16k"):
            rate = int(rate.strip()[:-1]) * 1000
        if isinstance(rate, bool) or not isinstance(rate, int) or rate not in RATES:
            raise LiveError("bad_audio_format", f"不支持的采样率 {rate!r}：应为 8000 或 16000（Hz）")
        mix = audio.get("mix")
        channels = audio.get("channels")
        if mix is not None:
            if mix not in ("mono", "mixed", "stereo"):
                raise LiveError("bad_audio_format", f"未知的 mix {mix!r}（应为 mono、mixed 或 stereo）")
            want = 2 if mix == "stereo" else 1
            if channels is not None and channels != want:
                raise LiveError("bad_audio_format", f"mix 为 {mix} 时声道数应为 {want}，收到 {channels!r}")
            channels = want
        if channels is None:
            channels = 1
        if isinstance(channels, bool) or channels not in (1, 2):
            raise LiveError("bad_audio_format", f"不支持的声道数 {channels!r}：应为 1（单声道）或 2（立体声，每方一个声道）")
        roles = audio.get("roles")
        if roles is None:
            # the FreeSWITCH channel's own audio (the caller's on an inbound call) comes first
            pair = ("agent", "customer") if direction == "outbound" else ("customer", "agent")
            roles = [MIXED] if mix == "mixed" or (channels == 1 and mix is None) else list(pair[:channels])
        if not isinstance(roles, list) or len(roles) != channels:
            raise LiveError("bad_audio_format", f"roles 应为每个声道一项的列表（{channels} 项），如 [\"customer\", \"agent\"]")
        for r in roles:
            if r not in (*ROLES, MIXED):
                raise LiveError("bad_audio_format", f"未知的声道角色 {r!r}（应为 agent、customer 或 mixed）")
        if channels == 2 and (MIXED in roles or roles[0] == roles[1]):
            raise LiveError("bad_audio_format", "立体声的两个声道应分别为 agent 和 customer")
        return cls(int(rate), int(channels), tuple(roles))


def decode_pcm(data: bytes, fmt: AudioFormat) -> np.ndarray:
    """One binary frame → float32 samples, shape (channels, n). Raises `LiveError` (``bad_audio``)."""
    if len(data) % 2:
        raise LiveError("bad_audio", f"音频帧 {len(data)} 字节是奇数：16 位 PCM 每个采样 2 字节，帧已丢弃")
    if len(data) % fmt.frame_bytes:
        raise LiveError("bad_audio", f"音频帧 {len(data)} 字节不是 {fmt.frame_bytes} 的整数倍（{fmt.channels} 声道 × "
                                     "2 字节，声道交错），帧已丢弃")
    x = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return x.reshape(-1, fmt.channels).T


def pcm_frames(samples: np.ndarray, rate: int, frame_ms: int = 20) -> list[bytes]:
    """(channels, n) float samples → L16 frames of `frame_ms`, channels interleaved (what a PBX sends)."""
    x = np.atleast_2d(np.asarray(samples, np.float32))
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").T.reshape(-1).tobytes()
    step = int(rate * frame_ms / 1000) * 2 * x.shape[0]
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


# ---- streaming VAD -----------------------------------------------------------------------------------


def _levels(frames: np.ndarray) -> np.ndarray:
    """dBFS per row (RMS; −120 for digital silence)."""
    ms = np.einsum("ij,ij->i", frames.astype(np.float64), frames.astype(np.float64)) / frames.shape[1]
    return np.asarray(10.0 * np.log10(ms + 1e-12))


class StreamVad:
    """Speech probability per 32 ms frame of one channel, frame after frame. Silero keeps its LSTM state
    and the 64 samples of context across calls to `probs` (as the model is meant to run on a stream);
    8 kHz is lifted to 16 kHz by linear interpolation that carries the last sample over. Without Silero
    (`EnergyVad`), the level against a running noise floor."""

    def __init__(self, vad: Vad, rate: int) -> None:
        self.vad = vad
        self.rate = rate
        self.silero = vad if isinstance(vad, SileroVad) else None
        self.h = np.zeros((1, 1, 128), np.float32)
        self.c = np.zeros((1, 1, 128), np.float32)
        self.context = np.zeros(SILERO_CONTEXT, np.float32)
        self.last = np.float32(0.0)

    def probs(self, frames: np.ndarray, levels: np.ndarray, noise: float, gate: np.ndarray) -> np.ndarray:
        """Probability per frame; frames outside `gate` (below the energy gate: silence, whatever the network
        would say) are 0 and not run, so the network's state only sees the frames it judges — the same
        frames whatever the size of the frames the audio arrived in."""
        if self.silero is None:
            threshold = max(noise + 12.0, -60.0)
            return np.clip(0.5 + (levels - threshold) / 20.0, 0.0, 1.0).astype(np.float32)
        x = frames.reshape(-1).astype(np.float32)
        if self.rate == 8000:
            y = np.empty(x.size * 2, np.float32)
            prev = np.concatenate([[self.last], x[:-1]])
            y[0::2] = (prev + x) / 2
            y[1::2] = x
            self.last = x[-1]
            x = y
        windows = x.reshape(-1, SILERO_WINDOW)
        ctx = np.empty((windows.shape[0], SILERO_CONTEXT), np.float32)
        ctx[0] = self.context
        ctx[1:] = windows[:-1, -SILERO_CONTEXT:]
        self.context = windows[-1, -SILERO_CONTEXT:].copy()
        out = np.zeros(windows.shape[0], np.float32)
        idx = np.flatnonzero(gate)
        if idx.size:
            batch = np.concatenate([ctx[idx], windows[idx]], axis=1)
            probs, self.h, self.c = self.silero.session.run(None, {"input": batch, "h": self.h, "c": self.c})
            out[idx] = np.asarray(probs, np.float32).reshape(-1)[: idx.size]
        return out


# ---- segments ----------------------------------------------------------------------------------------


@dataclass
class Segment:
    """Speech of one channel: `start`/`end` on the audio clock (seconds from the first sample), the samples
    handed to ASR (with `pad` before and after), and `closed_at`: the audio clock when the segment was
    closed (end + hangover; the moment end of speech was known)."""

    channel: int
    start: float
    end: float
    samples: np.ndarray
    rate: int
    closed_at: float
    uid: str = ""
    levels: list[float] = field(default_factory=list)


class ChannelSegmenter:
    """One channel's speech decisions (hysteresis over the VAD probability, an energy gate) turned into
    segments: speech starts a segment; `hangover` seconds without speech end it; shorter than
    `min_speech` is dropped; longer than `max_length` is cut at its quietest frame."""

    def __init__(self, channel: int, rate: int, *, hangover: float, min_speech: float, max_length: float,
                 pad: float) -> None:
        self.channel = channel
        self.rate = rate
        self.fl = int(round(FRAME_SECONDS * rate))
        self.hang = max(1, int(round(hangover / FRAME_SECONDS)))
        self.shortest = max(1, int(round(min_speech / FRAME_SECONDS)))
        self.longest = max(4, int(max_length / FRAME_SECONDS))
        self.pad = max(0, int(math.ceil(pad / FRAME_SECONDS)))
        self.frame = 0  # index of the next frame on the call's 32 ms grid
        self.state = False
        self.open: int | None = None  # first frame of the open segment
        self.first: int = 0  # frame index of buf[0]
        self.last = 0  # last speech frame
        self.buf: list[np.ndarray] = []  # frames since `first` (pre-roll + segment + hangover so far)
        self.lv: list[float] = []
        self.pre: deque[np.ndarray] = deque(maxlen=self.pad)

    @property
    def open_start(self) -> float | None:
        return None if self.open is None else self.open * FRAME_SECONDS

    def open_seconds(self) -> float:
        return 0.0 if self.open is None else (self.last + 1 - self.open) * FRAME_SECONDS

    def push(self, frames: np.ndarray, probs: np.ndarray, gate: np.ndarray, levels: np.ndarray) -> list[Segment]:
        out: list[Segment] = []
        for k in range(frames.shape[0]):
            f = self.frame
            self.frame += 1
            p = float(probs[k])
            self.state = p >= OFF if self.state else p >= ON
            speech = self.state and bool(gate[k])
            fr = frames[k]
            if self.open is None:
                if speech:
                    self.open = self.last = f
                    self.buf = list(self.pre) + [fr]
                    self.first = f - len(self.pre)
                    self.lv = [float(levels[k])]
                else:
                    self.pre.append(fr)
                continue
            self.buf.append(fr)
            self.lv.append(float(levels[k]))
            if speech:
                self.last = f
            if f - self.last >= self.hang:
                seg = self._close(f + 1)
                if seg is not None:
                    out.append(seg)
            elif f + 1 - self.open >= self.longest:
                out.extend(self._cut(f + 1))
        return out

    def _segment(self, s: int, e: int, closed: int) -> Segment:
        a = max(s - self.pad, self.first)
        b = min(e + self.pad, self.first + len(self.buf))
        x = np.concatenate(self.buf[a - self.first : b - self.first]) if b > a else np.zeros(0, np.float32)
        return Segment(self.channel, s * FRAME_SECONDS, e * FRAME_SECONDS, x.astype(np.float32), self.rate,
                       closed * FRAME_SECONDS, uid=f"a{self.channel}-{s}", levels=self.lv[s - self.open:e - self.open]
                       if self.open is not None else [])

    def _close(self, now: int) -> Segment | None:
        assert self.open is not None
        s, e = self.open, self.last + 1
        seg = self._segment(s, e, now) if e - s >= self.shortest else None
        tail = self.buf[-self.pad:] if self.pad else []
        self.open = None
        self.buf, self.lv = [], []
        self.pre = deque(tail, maxlen=self.pad)
        return seg

    def _cut(self, now: int) -> list[Segment]:
        """The open segment reached `max_length`: cut at its quietest frame in the second half."""
        assert self.open is not None
        s = self.open
        half = (now - s) // 2
        window = self.lv[half:]
        cut = s + half + int(np.argmin(window)) if window else now
        cut = max(cut, s + 1)
        seg = self._segment(s, cut, now)
        keep_from = max(cut - self.pad, self.first)
        self.buf = self.buf[keep_from - self.first :]
        self.first = keep_from
        self.lv = self.lv[cut - s :]
        self.open = cut
        self.last = max(self.last, cut)
        return [seg]

    def flush(self, now: int | None = None) -> Segment | None:
        """End the open segment now (hang-up, a dropped connection, a gap in the audio)."""
        if self.open is None:
            return None
        return self._close(self.frame if now is None else now)


class AudioPipeline:
    """A call's audio: binary frames in, closed speech segments out, on one clock (seconds of audio
    received since the call's first sample; `skip_to` moves it over a gap)."""

    def __init__(self, fmt: AudioFormat, vad: Vad, *, hangover: float = HANGOVER, min_speech: float = 0.2,
                 max_length: float = 30.0, pad: float = 0.2) -> None:
        self.fmt = fmt
        self.vad_name = getattr(vad, "name", type(vad).__name__)
        self.fl = int(round(FRAME_SECONDS * fmt.rate))
        self.vads = [StreamVad(vad, fmt.rate) for _ in range(fmt.channels)]
        self.segs = [ChannelSegmenter(i, fmt.rate, hangover=hangover, min_speech=min_speech,
                                      max_length=max_length, pad=pad) for i in range(fmt.channels)]
        self.samples = 0  # per channel, including skipped gaps
        self.rest = np.zeros((fmt.channels, 0), np.float32)  # samples short of a whole 32 ms frame
        self.history: list[deque[float]] = [deque(maxlen=NOISE_FRAMES) for _ in range(fmt.channels)]
        self.noise = [-90.0] * fmt.channels  # running noise floor (dBFS), until 3 s are known: none
        self.since_noise = [0] * fmt.channels
        self.discard = 0  # samples of resent audio still to drop (a resume that starts before the clock)
        self.hangover = hangover

    @property
    def clock(self) -> float:
        return self.samples / self.fmt.rate

    def feed(self, data: bytes) -> list[Segment]:
        """One binary frame (raises `LiveError` for a malformed one, which is then ignored whole)."""
        x = decode_pcm(data, self.fmt)
        if self.discard:
            drop = min(self.discard, x.shape[1])
            x = x[:, drop:]
            self.discard -= drop
        if x.shape[1] == 0:
            return []
        self.samples += x.shape[1]
        x = np.concatenate([self.rest, x], axis=1) if self.rest.shape[1] else x
        n = x.shape[1] // self.fl
        self.rest = x[:, n * self.fl :]
        if n == 0:
            return []
        frames = x[:, : n * self.fl].reshape(self.fmt.channels, n, self.fl)
        levels = [_levels(frames[c]) for c in range(self.fmt.channels)]
        active = []
        for c in range(self.fmt.channels):
            h = self.history[c]
            self.since_noise[c] += n
            if len(h) >= NOISE_MIN_FRAMES and self.since_noise[c] >= 16:  # refreshed every half second
                self.noise[c] = float(np.percentile(np.fromiter(h, float), 10))
                self.since_noise[c] = 0
            noise = self.noise[c]
            h.extend(levels[c].tolist())
            gate = levels[c] > max(noise + 6.0, -70.0)
            probs = self.vads[c].probs(frames[c], levels[c], noise, gate)
            active.append((probs, gate))
        if self.fmt.channels == 2:  # the other party's voice leaking into this channel is not speech
            for c in (0, 1):
                o = 1 - c
                echo = (levels[o] - levels[c] > CROSSTALK_DB) & (active[o][0] >= ON)
                active[c] = (active[c][0], active[c][1] & ~echo)
        out: list[Segment] = []
        for c in range(self.fmt.channels):
            out += self.segs[c].push(frames[c], active[c][0], active[c][1], levels[c])
        return out

    def flush(self) -> list[Segment]:
        out = [s for s in (seg.flush() for seg in self.segs) if s is not None]
        return out

    def skip_to(self, t: float) -> list[Segment]:
        """Audio resumes at call time `t` (a reconnect). Later than the clock: a gap, counted as silence (open
        segments end). Earlier: audio resent from a client's buffer; the part already received is dropped and
        the speech goes on seamlessly."""
        target = int(round(t * self.fmt.rate))
        out: list[Segment] = []
        if target > self.samples:
            out = self.flush()
            self.samples = target
            self.rest = np.zeros((self.fmt.channels, 0), np.float32)
            for seg in self.segs:
                seg.frame = target // self.fl
                seg.state = False
                seg.pre.clear()
        elif target < self.samples:
            self.discard = self.samples - target
        return out

    def open_starts(self) -> list[float | None]:
        return [s.open_start for s in self.segs]


# ---- spoken order and roles --------------------------------------------------------------------------


@dataclass
class Pending:
    seg: Segment
    done: bool = False
    text: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    asr_seconds: float = 0.0


class Sequencer:
    """Finished segments leave in spoken order: a segment is released once its text is back and no channel
    has speech open that began before it (the short 嗯 said inside a long turn waits for that turn), so the
    session always gets finals in the order they were said."""

    def __init__(self) -> None:
        self.pending: list[Pending] = []

    def add(self, seg: Segment) -> Pending:
        p = Pending(seg)
        self.pending.append(p)
        self.pending.sort(key=lambda q: (q.seg.start, q.seg.channel))
        return p

    def ready(self, open_starts: list[float | None], *, final: bool = False) -> list[Pending]:
        out: list[Pending] = []
        while self.pending:
            head = self.pending[0]
            if not head.done:
                break
            if not final and any(s is not None and s < head.seg.start - OUT_OF_ORDER_TOLERANCE * 0.8
                                 for s in open_starts):
                break
            out.append(self.pending.pop(0))
        return out

    @property
    def busy(self) -> bool:
        return bool(self.pending)


class MixedRoles:
    """Who spoke a segment of a mixed (one-channel) stream: the words when they say it (the agent's
    greeting, 工号, 请问; the customer's 我想/你们 — `kefuqa.audio.roles.text_score`), else the other party
    than the previous segment's (turn-taking); the first is the agent's (the agent answers)."""

    def __init__(self) -> None:
        self.previous: str | None = None

    def role(self, text: str) -> tuple[str, str]:
        score = text_score(text)
        if score > 0:
            role, how = "agent", "text"
        elif score < 0:
            role, how = "customer", "text"
        elif self.previous is None:
            role, how = "agent", "turn"
        else:
            role, how = ("customer" if self.previous == "agent" else "agent"), "turn"
        self.previous = role
        return role, how
