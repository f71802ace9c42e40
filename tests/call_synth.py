"""Generated phone calls with their transcript and the truth: for the recording + transcript tests and
``bench/eval_voice.py``. A test helper, not part of kefuqa (it uses `audio_synth`, espeak-ng speech).

A call alternates agent and customer turns (English speech from espeak-ng, Chinese transcript text); the
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
    turns: int = 6  # agent turns (the customer speaks between them)
    angry_at: int | None = None  # the customer turn (0-based) where the customer turns angry
    angry_words: bool = True  # the transcript shows the anger (EVT004 words)
    angry_db: float = 0.0  # the angry customer turn is this much louder
    angry_pitch: int = 0  # espeak-ng pitch added to the angry customer turn
    reply_db: float = 0.0  # the agent's reply right after the angry turn is this much louder
    gap: float = 0.7
    seed: int = 0


@dataclass
class Generated:
    samples: np.ndarray  # (2, n): agent left, customer right
    transcript: dict  # a DESIGN §1 conversation with the true times
    truth: dict = field(default_factory=dict)


def _agent_speech(text: str, spec: Spec, level: float) -> np.ndarray:
    return synth.speak(synth.prosody(text, spec.agent_range), ssml=True, voice="en", pitch=40, level_dbfs=level)


def build(spec: Spec, call_id: str = "gen") -> Generated:
    rng = np.random.default_rng(spec.seed)
    pieces: list[tuple[str, np.ndarray, str]] = []
    for i in range(spec.turns):
        level = spec.agent_db + (spec.reply_db if spec.angry_at is not None and i == spec.angry_at + 1 else 0.0)
        en, zh = AGENT[(i + spec.seed) % len(AGENT)] if i else AGENT[0]
        pieces.append(("agent", _agent_speech(en, spec, level), zh))
        if i == spec.turns - 1:
            break
        en, zh = CUSTOMER[int(rng.integers(0, len(CUSTOMER)))]
        level, pitch = spec.customer_db, 75
        if spec.angry_at is not None and i == spec.angry_at:
            level += spec.angry_db
            pitch += spec.angry_pitch
            if spec.angry_words:
                zh = ANGRY_TEXT
        pieces.append(("customer", synth.speak(en, voice="en", pitch=pitch, level_dbfs=level), zh))
    seconds = sum(x.size for _, x, _ in pieces) / SR + spec.gap * (len(pieces) + 1)
    call = synth.Call(seconds, SR)
    t = spec.gap
    utts = []
    for role, x, zh in pieces:
        call.add(role, t, x)
        utts.append({"role": role, "start": round(t, 2), "end": round(t + x.size / SR, 2), "text": zh})
        t += x.size / SR + spec.gap
    transcript = {"id": call_id, "channel": "phone", "utterances": utts}
    return Generated(call.clean.copy(), transcript, {"pieces": [(r, x) for r, x, _ in pieces], "spec": spec})


def degrade(x: np.ndarray, *, snr_db: float | None = None, bleed_db: float | None = -30.0,
            clip_agent_db: float | None = None, seed: int = 0) -> np.ndarray:
    """Crosstalk of each channel into the other at `bleed_db`, the agent driven `clip_agent_db` dB into
    clipping, and white line noise `snr_db` below each channel's active speech level."""
    out = x.astype(np.float64).copy()
    if clip_agent_db is not None:
        out[0] = np.clip(out[0] * 10 ** (clip_agent_db / 20), -1.0, 1.0)
    if bleed_db is not None:
        g = 10 ** (bleed_db / 20)
        out = out + g * out[::-1]
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
