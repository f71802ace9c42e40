"""From samples to a `Conversation`: speech per channel, bleed removal, measures, optional ASR, roles.

Stereo recordings carry one party per channel (``channels=("agent", "customer")`` says which); mono
recordings are one stream whose segments get roles from their text and voice (see `roles`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from kefuqa.audio import measures as M
from kefuqa.audio.asr import ASR_RATE, Transcriber
from kefuqa.audio.decode import AudioError, to_rate, working_rate
from kefuqa.audio.quality import reliability
from kefuqa.audio.resample import resample
from kefuqa.audio.roles import assign_roles
from kefuqa.audio.vad import FRAME_SECONDS, Vad, frame_length, frame_levels, get_vad, noise_floor
from kefuqa.model import Conversation, Role, Utterance

ROLE_NOTE_TEXT = "角色由文字推断"


@dataclass(slots=True)
class Options:
    roles: tuple[str, str] = ("agent", "customer")  # role of channel 0 (left) and channel 1 (right)
    vad: str = "auto"
    merge_gap: float = 0.5  # pauses shorter than this stay inside one utterance (s)
    min_speech: float = 0.2  # shorter bursts are not utterances (s)
    max_utterance: float = 30.0  # longer speech is split at its quietest frame (s)
    asr_pad: float = 0.1  # audio added on each side of a segment handed to ASR (s)


@dataclass(slots=True)
class Track:
    """One channel on the 32 ms frame grid."""

    index: int
    x: np.ndarray  # samples at the working rate
    levels: np.ndarray  # dBFS per frame
    noise: float
    active: np.ndarray  # VAD decision per frame
    speech: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # own speech (bleed removed)
    allowed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # frames not explained by bleed
    bleed_db: float | None = None
    echo_lag: int = 0  # frames by which the other party's crosstalk on this channel lags (hybrid/acoustic echo)
    _x16: np.ndarray | None = None


@dataclass(slots=True)
class Timing:
    decode: float = 0.0
    vad: float = 0.0
    measures: float = 0.0
    asr: float = 0.0

    @property
    def acoustic(self) -> float:
        return self.vad + self.measures


@dataclass(slots=True)
class Piece:
    track: int
    f0: int
    f1: int
    role: str = ""
    attrs: dict = field(default_factory=dict)
    text: str = ""

    @property
    def start(self) -> float:
        return self.f0 * FRAME_SECONDS

    @property
    def end(self) -> float:
        return self.f1 * FRAME_SECONDS


@dataclass(slots=True)
class Prepared:
    """A recording on the frame grid: one `Track` per channel with its own speech (bleed removed)."""

    tracks: list[Track]
    work: int  # the working sample rate
    duration: float  # seconds
    channels: int  # channels in the file (2 even when both carry the same signal)
    notes: list[str]

    @property
    def mono(self) -> bool:
        return len(self.tracks) == 1


def prepare(samples: np.ndarray, sample_rate: int, *, vad: Vad, timing: Timing | None = None) -> Prepared:
    """Frame levels, noise floor, crosstalk and VAD per channel: what both the bare-recording analysis and
    the transcript-guided measures (`kefuqa.audio.guided`) start from."""
    timing = timing if timing is not None else Timing()
    samples = np.atleast_2d(np.asarray(samples, np.float32))
    if samples.shape[0] > 2:
        raise AudioError(f"{samples.shape[0]} 个声道；应为单声道或立体声（每方一个声道）")
    duration = samples.shape[1] / sample_rate
    notes: list[str] = []
    n_channels = samples.shape[0]
    if n_channels == 2 and _same_signal(samples[0], samples[1]):
        samples = samples[:1]
        notes.append("左右声道是同一信号，按单声道分析")
    t = time.perf_counter()
    work = working_rate(sample_rate)
    x = to_rate(samples, sample_rate, work)
    tracks = []
    for i, ch in enumerate(x):
        levels = frame_levels(ch, work)
        tracks.append(Track(i, ch, levels, noise_floor(levels), np.zeros(levels.size, bool)))
    _find_bleed(tracks)
    for tr in tracks:
        gate = tr.levels > max(tr.noise + 6.0, -70.0)
        probs, tr._x16 = _vad_probs(vad, tr.x, work, gate & tr.allowed)
        tr.active = M.hysteresis(probs) & gate
        tr.speech = tr.active & tr.allowed
    timing.vad += time.perf_counter() - t
    return Prepared(tracks, work, duration, int(n_channels), notes)


ENVELOPE_FRAMES = 8  # frames of 32 ms per point of the loudness envelope (0.256 s)


def loudness_envelope(tracks: list[Track], roles: tuple[str, str]) -> dict:
    """Each channel's level over the call, one point per 0.256 s (dBFS, power mean, floored at −80), for
    the report's timeline: ``{"step": 0.256, "agent": [...], "customer": [...]}`` (``"mix"`` when mono)."""
    out: dict = {"step": round(ENVELOPE_FRAMES * FRAME_SECONDS, 3)}
    for tr in tracks:
        n = tr.levels.size // ENVELOPE_FRAMES * ENVELOPE_FRAMES
        lv = tr.levels[:n].reshape(-1, ENVELOPE_FRAMES)
        tail = tr.levels[n:]
        power = list(np.mean(10 ** (lv / 10), axis=1))
        if tail.size:
            power.append(float(np.mean(10 ** (tail / 10))))
        db = np.maximum(10 * np.log10(np.asarray(power) + 1e-12), -80.0)
        out["mix" if len(tracks) == 1 else roles[tr.index]] = [int(round(v)) for v in db.tolist()]
    return out


def analyze(samples: np.ndarray, sample_rate: int, *, call_id: str, options: Options | None = None,
            transcriber: Transcriber | None = None, vad: Vad | None = None, source: str | None = None,
            audio_path: str | None = None, timing: Timing | None = None) -> Conversation:
    """Analyse decoded audio (``(channels, n)`` float32) into a Conversation; raises `AudioError` when
    there is no speech."""
    opts = options or Options()
    timing = timing if timing is not None else Timing()
    vad = vad or get_vad(opts.vad)
    prepared = prepare(samples, sample_rate, vad=vad, timing=timing)
    tracks, work, duration = prepared.tracks, prepared.work, prepared.duration
    notes = list(prepared.notes)
    n_channels, mono = prepared.channels, prepared.mono

    t = time.perf_counter()
    pieces: list[Piece] = []
    for tr in tracks:
        for seg in M.segment(tr.speech, merge_gap=opts.merge_gap, min_speech=opts.min_speech,
                             max_length=opts.max_utterance, levels=tr.levels):
            f0, f1 = M.refine_edges(seg, tr.levels, tr.allowed, tr.noise)
            if (f1 - f0) * FRAME_SECONDS >= opts.min_speech * 0.75:
                pieces.append(Piece(tr.index, f0, f1))
    pieces.sort(key=lambda p: (p.f0, p.track))
    if not pieces:
        raise AudioError(f"{duration:.1f} 秒录音中没有找到语音")
    for p in pieces:
        p.attrs = _measure(tracks[p.track], p, work)
    timing.measures += time.perf_counter() - t

    if transcriber is not None:
        t = time.perf_counter()
        for p in pieces:
            piece = transcriber.transcribe(_segment_16k(tracks[p.track], p, work, opts.asr_pad), ASR_RATE)
            p.text = piece.text or ""
            if piece.emotion:
                p.attrs["emotion"] = piece.emotion
            if piece.confidence is not None:
                p.attrs["asr_confidence"] = round(float(piece.confidence), 3)
            if piece.language:
                p.attrs["language"] = piece.language
        timing.asr += time.perf_counter() - t

    t = time.perf_counter()
    if mono:
        assignment = assign_roles([p.text for p in pieces], [p.attrs.get("pitch_median_hz") for p in pieces])
        for p, role in zip(pieces, assignment.roles, strict=True):
            p.role = role
        if assignment.method in ("text", "text+pitch"):
            notes.append(ROLE_NOTE_TEXT)
        elif assignment.method == "pitch":
            notes.append("角色由嗓音音高推断（单声道录音，无转写）：先说话的声音当作坐席")
        else:
            notes.append("角色按说话轮次猜测（单声道录音，分不出两种嗓音）")
    else:
        for p in pieces:
            p.role = opts.roles[p.track]

    utterances = [Utterance(role=cast(Role, p.role), start=round(p.start, 2), end=round(p.end, 2),
                            text=p.text, attrs=p.attrs) for p in pieces]
    metrics = _call_metrics(utterances, duration)
    metrics.update({
        "audio": True, "audio_path": audio_path, "duration_seconds": round(duration, 2),
        "sample_rate": int(sample_rate), "channels": int(n_channels),
        "vad": vad.name, "asr": transcriber.name if transcriber is not None else None,
    })
    metrics["envelope"] = loudness_envelope(tracks, opts.roles)
    unreliable = reliability(tracks, opts.roles, samples, timed=True)
    if unreliable:
        metrics["unreliable"] = unreliable
    if not mono:
        for tr in tracks:
            if tr.bleed_db is not None:
                metrics[f"{opts.roles[tr.index]}_bleed_db"] = round(tr.bleed_db, 1)
    timing.measures += time.perf_counter() - t
    return Conversation(id=call_id, channel="phone", utterances=utterances, metrics=metrics, source=source,
                        notes=notes)


def _same_signal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.size == 0:
        return True
    if np.array_equal(a, b):
        return True
    ea, eb = float(np.dot(a, a)), float(np.dot(b, b))
    if ea == 0.0 or eb == 0.0:
        return False
    corr = float(np.dot(a, b)) / np.sqrt(ea * eb)
    return corr > 0.999 and abs(10 * np.log10(ea / eb)) < 1.0


def _vad_probs(vad: Vad, ch: np.ndarray, work: int, candidates: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray | None]:
    if getattr(vad, "name", "") == "silero":
        x16 = resample(ch, work, ASR_RATE) if work != ASR_RATE else ch
        return vad.probabilities(x16, ASR_RATE, candidates), x16
    return vad.probabilities(ch, work, candidates), (ch if work == ASR_RATE else None)


def _find_bleed(tracks: list[Track]) -> None:
    """Measure each channel's crosstalk from the other and mark the frames it cannot explain
    (`allowed`). Energy alone decides this, before the VAD, so the VAD can skip crosstalk."""
    if len(tracks) == 1:
        tracks[0].allowed = np.ones(tracks[0].levels.size, bool)
        return
    a, b = tracks
    n = min(a.levels.size, b.levels.size)
    loud = {id(t): t.levels[:n] > t.noise + 12.0 for t in tracks}
    for me, other in ((a, b), (b, a)):
        me.bleed_db, me.echo_lag = M.estimate_echo(me.levels[:n], other.levels[:n], loud[id(other)], other.noise,
                                                   me.noise)
    everything = np.ones(n, bool)
    first = {id(me): M.own_speech_mask(everything, me.levels[:n], other.levels[:n], me.bleed_db, lag=me.echo_lag)
             for me, other in ((a, b), (b, a))}
    for me, other in ((a, b), (b, a)):
        # the other channel's own speech only: its frames that are this party's echo do not mask this party
        # (a strong echo of the agent on the customer's channel would otherwise hide the agent's quieter frames)
        others = np.where(first[id(other)], other.levels[:n], min(float(other.noise), -120.0))
        me.allowed = M.own_speech_mask(everything, me.levels[:n], others, me.bleed_db, lag=me.echo_lag)


def _measure(tr: Track, p: Piece, work: int) -> dict:
    fl = frame_length(work)
    mask = tr.speech[p.f0 : p.f1]
    if not mask.any():
        mask = np.ones(p.f1 - p.f0, bool)
    levels = tr.levels[p.f0 : p.f1]
    loud = M.active_level_dbfs(levels, mask)
    if loud is not None and tr.noise < loud - 3.0:  # line noise adds its power to the speech: take it off
        loud = float(10.0 * np.log10(10 ** (loud / 10) - 10 ** (tr.noise / 10)))
    seg = tr.x[p.f0 * fl : p.f1 * fl]
    track = M.pitch_track(seg, work)
    median, sd = M.pitch_stats(track)
    attrs: dict = {
        "loudness_dbfs": None if loud is None else round(loud, 1),
        "pitch_sd_semitones": None if sd is None else round(sd, 2),
        "pitch_median_hz": None if median is None else round(median, 1),
        "syllables": M.count_syllables(seg, work, track),
        "speech_seconds": round(float(mask.sum()) * FRAME_SECONDS, 2),
    }
    return attrs


def _segment_16k(tr: Track, p: Piece, work: int, pad: float) -> np.ndarray:
    s = max(0.0, p.start - pad)
    e = p.end + pad
    if tr._x16 is not None:
        x16 = tr._x16
    else:
        x16 = resample(tr.x, work, ASR_RATE) if work != ASR_RATE else tr.x
        tr._x16 = x16
    return np.ascontiguousarray(x16[int(s * ASR_RATE) : int(e * ASR_RATE)], dtype=np.float32)


def _call_metrics(utterances: list[Utterance], duration: float) -> dict:
    by_role: dict[str, list[tuple[float, float]]] = {"agent": [], "customer": []}
    for u in utterances:
        if u.role in by_role and u.start is not None and u.end is not None:
            by_role[u.role].append((u.start, u.end))
    talk = {r: M.union_seconds(iv) for r, iv in by_role.items()}
    total = talk["agent"] + talk["customer"]
    metrics: dict = {
        "agent_talk_seconds": round(talk["agent"], 2),
        "customer_talk_seconds": round(talk["customer"], 2),
        "talk_ratio_agent": round(talk["agent"] / total, 3) if total > 0 else None,
    }
    ov = M.overlaps(sorted(by_role["agent"]), sorted(by_role["customer"]))
    metrics["overlap_seconds"] = round(sum(e - s for s, e, _ in ov), 2)
    metrics["overlaps_started_by_agent"] = sum(1 for _, _, who in ov if who == "a")
    silences = M.gaps(by_role["agent"] + by_role["customer"], 0.0, duration)
    metrics["longest_silence_seconds"] = round(max((e - s for s, e in silences), default=0.0), 2)
    for role in ("agent", "customer"):
        us = [u for u in utterances if u.role == role]
        # loudness of the whole side: power-weighted by active speech time
        num = sum(10 ** (u.attrs["loudness_dbfs"] / 10) * u.attrs.get("speech_seconds", u.duration)
                  for u in us if u.attrs.get("loudness_dbfs") is not None)
        den = sum(u.attrs.get("speech_seconds", u.duration) for u in us if u.attrs.get("loudness_dbfs") is not None)
        metrics[f"{role}_loudness_dbfs"] = round(float(10 * np.log10(num / den)), 1) if den > 0 and num > 0 else None
        louds = [u.attrs["loudness_dbfs"] for u in us if u.attrs.get("loudness_dbfs") is not None]
        med = float(np.median(louds)) if louds else None
        for u in us:
            if med is not None and u.attrs.get("loudness_dbfs") is not None:
                u.attrs["loudness_rel_db"] = round(u.attrs["loudness_dbfs"] - med, 1)
        syl = sum(u.attrs.get("syllables") or 0 for u in us)
        secs = sum(u.duration for u in us)
        metrics[f"{role}_syllables_per_minute"] = round(syl / secs * 60.0, 1) if secs > 0 else None
        sds = [u.attrs["pitch_sd_semitones"] for u in us if u.attrs.get("pitch_sd_semitones") is not None]
        metrics[f"{role}_pitch_sd_semitones"] = round(float(np.median(sds)), 2) if sds else None
    return metrics
