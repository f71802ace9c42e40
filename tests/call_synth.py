"""Generated phone calls with their transcript and the truth: for the recording + transcript tests and
``bench/eval_voice.py``. A test helper, not part of kefuqa (it uses `audio_synth`, espeak-ng speech).

A call alternates agent and customer turns (English speech from espeak-ng with the Chinese transcript text,
or with ``Spec(language="zh")`` the Chinese text spoken by espeak-ng's Mandarin voice); the
spec says how loud each party speaks, how lively the agent's pitch is, whether and how the customer turns
angry and how the agent answers. `degrade` makes it sound like a phone line (G.711 companding is done by
writing the file as µ-law/A-law WAV, the real codec), with noise at an SNR, crosstalk and clipping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import audio_synth as synth

SR = 8000
AGENT = [
    ("Hello, thank you for calling. How can I help you today?", "您好，欢迎致电客服中心，请问有什么可以帮您？"),
    ("Could you please tell me your account number?", "请您告诉我一下您的宽带账号好吗？"),
    ("Thank you for waiting. I have found the problem on your line", "感谢您的耐心等待，我查到您的线路有故障"),
    ("I am sorry to hear that, let me check it for you", "非常抱歉给您带来不便，我马上帮您查一下"),
    ("A technician will call you before ten tomorrow morning", "维修师傅明天上午十点前会联系您"),
    ("Is there anything else I can do for you?", "请问还有其他可以帮您的吗？"),
]
CUSTOMER = [
    ("My internet is not working since yesterday", "我家的宽带从昨天开始就上不了网"),
    ("Yes, it is seven three one five nine", "账号是七三一五九"),
    ("Why does this keep happening every month?", "为什么每个月都这样"),
    ("okay, I see, thank you", "好的，我知道了，谢谢"),
    ("When will someone come to fix it?", "什么时候能派人来修"),
]
ANGRY_TEXT = "凭什么每个月都断网，气死我了！"


@dataclass
class Spec:
    agent_db: float = -26.0  # active speech level of the agent's turns (dBFS)
    customer_db: float = -26.0
    agent_range: str = "medium"  # espeak-ng SSML pitch range of the agent: "0" monotone … "x-high"
    language: str = "en"  # "zh": both parties speak the Chinese text (espeak-ng voice cmn), Mandarin tones
    agent_variant: str = "f3"  # the espeak-ng voice variant of a Mandarin agent (f3: a woman, 140–240 Hz)
    turns: int = 6  # agent turns (the customer speaks between them)
    angry_at: int | None = None  # the customer turn (0-based) where the customer turns angry
    angry_words: bool = True  # the transcript shows the anger (EVT004 words)
    angry_db: float = 0.0  # the angry customer turn is this much louder
    angry_pitch: int = 0  # espeak-ng pitch added to the angry customer turn
    reply_db: float = 0.0  # the agent's reply right after the angry turn is this much louder
    gap: float = 0.7
    silence_after: int | None = None  # the piece (0-based, agent and customer turns counted together) after
    silence: float = 12.0  # which nobody speaks this long (SIL001's dead air)
    cut_in_at: int | None = None  # the customer turn (0-based) the agent cuts into …
    cut_in: float = 1.5  # … this many seconds before the customer stops (LST001)
    seed: int = 0


@dataclass
class Generated:
    samples: np.ndarray  # (2, n): agent left, customer right
    transcript: dict  # a DESIGN §1 conversation with the true times
    truth: dict = field(default_factory=dict)


def _agent_speech(text: str, spec: Spec, level: float) -> np.ndarray:
    if spec.language == "zh":
        return synth.speak(synth.prosody(text, spec.agent_range), ssml=True, voice=f"cmn+{spec.agent_variant}",
                           pitch=50, level_dbfs=level)
    return synth.speak(synth.prosody(text, spec.agent_range), ssml=True, voice="en", pitch=40, level_dbfs=level)


def build(spec: Spec, call_id: str = "gen") -> Generated:
    rng = np.random.default_rng(spec.seed)
    pieces: list[tuple[str, np.ndarray, str]] = []
    for i in range(spec.turns):
        level = spec.agent_db + (spec.reply_db if spec.angry_at is not None and i == spec.angry_at + 1 else 0.0)
        en, zh = AGENT[(i + spec.seed) % len(AGENT)] if i else AGENT[0]
        pieces.append(("agent", _agent_speech(zh if spec.language == "zh" else en, spec, level), zh))
        if i == spec.turns - 1:
            break
        en, zh = CUSTOMER[int(rng.integers(0, len(CUSTOMER)))]
        level, pitch = spec.customer_db, 75
        if spec.angry_at is not None and i == spec.angry_at:
            level += spec.angry_db
            pitch += spec.angry_pitch
            if spec.angry_words:
                zh = ANGRY_TEXT
        said, voice = (zh, "cmn") if spec.language == "zh" else (en, "en")
        pieces.append(("customer", synth.speak(said, voice=voice, pitch=pitch, level_dbfs=level), zh))
    extra = spec.silence if spec.silence_after is not None else 0.0
    seconds = sum(x.size for _, x, _ in pieces) / SR + spec.gap * (len(pieces) + 1) + extra
    call = synth.Call(seconds, SR)
    t = spec.gap
    utts = []
    for k, (role, x, zh) in enumerate(pieces):
        if role == "agent" and spec.cut_in_at is not None and k == 2 * spec.cut_in_at + 2:
            t -= spec.gap + spec.cut_in  # the agent starts while the customer is still speaking
        call.add(role, t, x)
        utts.append({"role": role, "start": round(t, 2), "end": round(t + x.size / SR, 2), "text": zh})
        t += x.size / SR + (spec.silence if k == spec.silence_after else spec.gap)
    transcript = {"id": call_id, "channel": "phone", "utterances": utts}
    return Generated(call.clean.copy(), transcript, {"pieces": [(r, x) for r, x, _ in pieces], "spec": spec})


def echo_path(delay_ms: float, level_db: float, *, tail_ms: float = 40.0, seed: int = 0) -> np.ndarray:
    """An echo path's impulse response at `SR`: the main reflection `delay_ms` late (network round trip
    to the 2-wire hybrid, or the far handset's loudspeaker into its microphone), smeared by a decaying
    diffuse tail of `tail_ms` (the hybrid's dispersion, the room), band-limited like a phone line; its
    total energy gain is `level_db` (echo return loss, negative)."""
    rng = np.random.default_rng(seed)
    d = int(round(delay_ms / 1000 * SR))
    n_tail = max(1, int(round(tail_ms / 1000 * SR)))
    h = np.zeros(d + n_tail + 8)
    h[d] = 1.0
    k = np.arange(1, n_tail)
    h[d + 1 : d + n_tail] += rng.standard_normal(k.size) * 0.5 * np.exp(-k / (n_tail / 4))
    h = np.convolve(h, np.array([-0.1, 0.25, 0.6, 0.25, -0.1]), mode="same")  # the line's band edges
    return h * 10 ** (level_db / 20) / np.sqrt(np.sum(h * h))


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = x.size + h.size - 1
    m = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(h, m), m)[: x.size]


def degrade(x: np.ndarray, *, snr_db: float | None = None, bleed_db: float | None = -30.0,
            clip_agent_db: float | None = None, echo: tuple[float, float] | None = None,
            seed: int = 0) -> np.ndarray:
    """Crosstalk of each channel into the other at `bleed_db`, the agent driven `clip_agent_db` dB into
    clipping, delayed echo of each party on the other's channel (`echo` = (delay ms, level dB), see
    `echo_path`), and white line noise `snr_db` below each channel's active speech level."""
    out = x.astype(np.float64).copy()
    if clip_agent_db is not None:
        out[0] = np.clip(out[0] * 10 ** (clip_agent_db / 20), -1.0, 1.0)
    if bleed_db is not None:
        g = 10 ** (bleed_db / 20)
        out = out + g * out[::-1]
    if echo is not None:
        delay_ms, level_db = echo
        src = out.copy()
        for a, b in ((0, 1), (1, 0)):  # the agent's voice back on the customer's channel, and vice versa
            out[a] += _convolve(src[b], echo_path(delay_ms, level_db, seed=seed + a))
    if snr_db is not None:
        rng = np.random.default_rng(seed)
        for ch in range(out.shape[0]):
            level = synth.active_rms_dbfs(out[ch].astype(np.float32))
            out[ch] += rng.standard_normal(out.shape[1]) * 10 ** ((level - snr_db) / 20)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def write_call(folder: str, name: str, samples: np.ndarray, transcript: dict, subtype: str = "PCM_16") -> None:
    """``name.wav`` (`subtype`: PCM_16, ULAW, ALAW, GSM610 …) and ``name.json`` side by side."""
    import json
    from pathlib import Path

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    data = samples if subtype != "GSM610" else samples.sum(axis=0, keepdims=True)  # GSM 6.10 WAV: mono only
    synth.write(str(d / f"{name}.wav"), data, SR, subtype=subtype)
    (d / f"{name}.json").write_text(json.dumps(transcript, ensure_ascii=False), encoding="utf-8")
