"""Transcript-guided measures: a recording and its transcript (the ASR vendor's, or a person's) as one call.

The transcript gives the text, the roles and the utterance times; the recording gives, for each transcript
utterance, the acoustic measures the bare-recording analysis gives its own segments (``loudness_dbfs``,
``loudness_rel_db``, ``pitch_median_hz``, ``pitch_sd_semitones``, ``syllables``, ``speech_seconds``) and the
utterance's rate (``syllables_per_minute`` of its own speech), and
over the gaps between utterances the speech the transcript left out (events ``untranscribed_speech``,
which SIL001 does not count as dead air).

Before measuring, the two time lines are checked against each other on the 32 ms frame grid: the
transcript's utterances of each role against the speech found on that role's channel, at the given offset
and at every other offset within ±`MAX_LAG` s, with the channels as given and swapped. What is found:

- the transcript runs past the end of the recording, or matches it nowhere: `AlignmentError` (the
  transcript belongs to another call), and the call is an input error naming both files;
- the channels fit the other way round, or another offset fits clearly better: a note saying so and how
  to fix it (``--channels customer,agent``, the manifest's ``agent_channel`` or ``offset``); the acoustic
  measures are then left out rather than taken from the wrong voice or the wrong second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kefuqa.audio import measures as M
from kefuqa.audio.analyze import Piece, Prepared, Track, _call_metrics, _measure, loudness_envelope
from kefuqa.audio.quality import reliability
from kefuqa.audio.vad import FRAME_SECONDS
from kefuqa.model import Conversation, Event

MAX_LAG = 10.0  # seconds of offset searched either way
OVERRUN = 2.0  # a transcript may end this much after the recording (rounding, trailing ASR segment)
MIN_FIT = 0.3  # agreement (Jaccard of speech frames) below this everywhere: not this call's transcript
EXPLAINED = 0.6  # a poor fit as given is a fixable offset or channel swap only when the fix fits this well
BETTER = 0.15  # another offset or channel order fits this much better: reported, measures left out
GAP_SPEECH = 1.0  # seconds of speech in a transcript gap that make it 'untranscribed speech'


class AlignmentError(ValueError):
    """The transcript and the recording are not the same call (the message says why, in Chinese)."""


@dataclass(slots=True)
class Fit:
    swapped: bool
    lag: float  # seconds to add to the transcript's times
    score: float


def _role_masks(conv: Conversation, n: int, offset: float) -> dict[str, np.ndarray]:
    masks = {"agent": np.zeros(n, bool), "customer": np.zeros(n, bool)}
    for u in conv.utterances:
        if u.role not in masks or u.start is None or u.end is None:
            continue
        f0 = max(0, int((u.start + offset) / FRAME_SECONDS))
        f1 = min(n, int(np.ceil((u.end + offset) / FRAME_SECONDS)))
        if f1 > f0:
            masks[u.role][f0:f1] = True
    return masks


def _agreement(trans: list[np.ndarray], heard: list[np.ndarray], max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(lags in frames, Jaccard of speech frames over the pairs at each lag): transcript shifted by +lag."""
    lags = np.arange(-max_lag, max_lag + 1)
    inter = np.zeros(lags.size)
    total = 0.0
    for t, a in zip(trans, heard, strict=True):
        ti, ai = t.astype(np.float32), a.astype(np.float32)
        n = ti.size
        for k, lag in enumerate(lags.tolist()):
            if lag >= 0:
                inter[k] += float(np.dot(ti[: n - lag], ai[lag:])) if lag < n else 0.0
            else:
                inter[k] += float(np.dot(ti[-lag:], ai[: n + lag])) if -lag < n else 0.0
        total += float(ti.sum() + ai.sum())
    union = np.maximum(total - inter, 1.0)
    return lags, inter / union


def check_alignment(conv: Conversation, prep: Prepared, roles: tuple[str, str], offset: float = 0.0
                    ) -> tuple[Fit, Fit]:
    """(the fit as given, the best fit found); raises `AlignmentError` when the times cannot be this call's."""
    timed = [u for u in conv.utterances if u.start is not None and u.end is not None]
    if not timed:
        raise AlignmentError("转写没有时间戳，无法与录音对齐")
    last = max(float(u.end or 0.0) for u in timed) + offset
    if last > prep.duration + OVERRUN:
        raise AlignmentError(f"转写长 {last:.1f} 秒，超过录音时长 {prep.duration:.1f} 秒：转写可能属于另一通电话"
                             "（或需要 offset 校正）")
    n = min(tr.speech.size for tr in prep.tracks)
    masks = _role_masks(conv, n, offset)
    max_lag = int(MAX_LAG / FRAME_SECONDS)
    fits: list[Fit] = []
    if prep.mono:
        heard = [prep.tracks[0].speech[:n]]
        lags, score = _agreement([masks["agent"] | masks["customer"]], heard, max_lag)
        fits.append(Fit(False, 0.0, float(score[max_lag])))
        best_i = int(np.argmax(score))
        best = Fit(False, float(lags[best_i]) * FRAME_SECONDS, float(score[best_i]))
    else:
        best = Fit(False, 0.0, -1.0)
        for swapped in (False, True):
            order = roles[::-1] if swapped else roles
            lags, score = _agreement([masks[order[0]], masks[order[1]]],
                                     [prep.tracks[0].speech[:n], prep.tracks[1].speech[:n]], max_lag)
            if not swapped:
                fits.append(Fit(False, 0.0, float(score[max_lag])))
            i = int(np.argmax(score))
            if score[i] > best.score:
                best = Fit(swapped, float(lags[i]) * FRAME_SECONDS, float(score[i]))
    given = fits[0]
    if best.score < MIN_FIT or (given.score < MIN_FIT and best.score < EXPLAINED):
        raise AlignmentError(f"转写与录音的说话时间对不上（重合度 {given.score:.2f}，移动或换声道后最高 "
                             f"{best.score:.2f}）：转写可能属于另一通电话")
    return given, best


def measure_transcript(conv: Conversation, prep: Prepared, roles: tuple[str, str], *, offset: float = 0.0,
                       samples: np.ndarray | None = None) -> Conversation:
    """The transcript `conv` with the recording's measures per utterance and per call; raises
    `AlignmentError` when the transcript cannot belong to the recording."""
    given, best = check_alignment(conv, prep, roles, offset)
    notes: list[str] = list(prep.notes)
    metrics: dict = {"alignment_score": round(given.score, 2)}
    usable = True
    left_out = ""  # why the acoustic measures are left out, for the voice rules' not-applicable reason
    if not prep.mono and best.swapped and best.score - given.score >= BETTER:
        usable = False
        left_out = "录音声道与转写角色相反，声学测量未采用（见说明）"
        other = ",".join(roles[::-1])
        notes.append(f"录音声道与转写角色相反（按 {other} 重合度 {best.score:.2f}，按现设 {given.score:.2f}）："
                     f"声学测量未采用；请用 --channels {other} 或清单的 agent_channel 校正")
        metrics["channels_swapped"] = True
    elif abs(best.lag) >= 0.3 and best.score - given.score >= BETTER:
        usable = False
        sign = "晚" if best.lag > 0 else "早"
        notes.append(f"录音比转写{sign}约 {abs(best.lag):.1f} 秒（重合度 {best.score:.2f}，现为 {given.score:.2f}）："
                     f"声学测量未采用；请在清单的 offset 列填 {offset + best.lag:.2f} 校正")
        metrics["alignment_offset_seconds"] = round(offset + best.lag, 2)
        left_out = f"录音与转写的时间差约 {abs(best.lag):.1f} 秒，声学测量未采用（见说明）"
    # the caller's conversation is left as it was: the measures go on copies of its utterances
    utterances = [u.model_copy(update={"attrs": dict(u.attrs)}) for u in conv.utterances]
    if usable:
        for u in utterances:
            if u.start is None or u.end is None or u.role not in ("agent", "customer"):
                continue
            tr = prep.tracks[0] if prep.mono else prep.tracks[roles.index(u.role)]
            f0 = max(0, int((u.start + offset) / FRAME_SECONDS))
            f1 = min(tr.speech.size, int(np.ceil((u.end + offset) / FRAME_SECONDS)))
            if f1 - f0 < 2:
                continue
            got = _measure_span(tr, f0, f1, prep.work)
            if got.get("speech_seconds", 0) >= 0.5:  # the rate of this utterance, from the signal
                got["syllables_per_minute"] = round(got["syllables"] / got["speech_seconds"] * 60.0, 1)
            for k, v in got.items():
                if k not in u.attrs:  # what the transcript says (a vendor's emotion, rate …) is kept
                    u.attrs[k] = v
        metrics.update(_call_metrics(utterances, prep.duration))
        unreliable = reliability(prep.tracks, roles, samples) if samples is not None else {}
        if unreliable:
            metrics["unreliable"] = unreliable
    else:  # the voice rules say why they are not judged, not that a recording is needed
        metrics["unreliable"] = {k: left_out for k in ("loudness_dbfs", "pitch_sd_semitones", "loudness_rise_db")}
    events = list(conv.events)
    gap_seconds = 0.0
    for s, e in (_speech_in_gaps(conv, prep, offset) if usable else []):
        events.append(Event(type="untranscribed_speech", start=round(s, 2), end=round(e, 2), inferred=True))
        gap_seconds += e - s
    if gap_seconds:
        notes.append(f"录音中有 {gap_seconds:.1f} 秒语音不在转写里（转写漏句？）；这些时间不计为静音")
    metrics["untranscribed_speech_seconds"] = round(gap_seconds, 2)
    metrics.update({"audio": True, "duration_seconds": round(prep.duration, 2), "channels": prep.channels,
                    "envelope": loudness_envelope(prep.tracks, roles)})
    merged = {**conv.metrics, **metrics}
    return conv.model_copy(update={"utterances": utterances, "events": events, "metrics": merged,
                                   "notes": [*conv.notes, *notes], "channel": conv.channel or "phone"})


def _measure_span(tr: Track, f0: int, f1: int, work: int) -> dict:
    """The bare analysis's per-segment measures over frames [f0, f1) of a track, with its own speech
    (bleed removed); loudness None when the channel has none of its own speech there."""
    mask = tr.speech[f0:f1]
    if not mask.any():
        return {"loudness_dbfs": None, "pitch_sd_semitones": None, "pitch_median_hz": None, "syllables": 0,
                "speech_seconds": 0.0}
    # trim to the first and last frame of own speech: the transcript's edges are padded by the ASR
    idx = np.flatnonzero(mask)
    return _measure(tr, Piece(tr.index, f0 + int(idx[0]), f0 + int(idx[-1]) + 1), work)


def _speech_in_gaps(conv: Conversation, prep: Prepared, offset: float) -> list[tuple[float, float]]:
    """Stretches (transcript time) of at least `GAP_SPEECH` s where some channel has speech that no
    transcript utterance covers."""
    n = min(tr.speech.size for tr in prep.tracks)
    heard = np.zeros(n, bool)
    for tr in prep.tracks:
        heard |= tr.speech[:n]
    masks = _role_masks(conv, n, offset)
    covered = masks["agent"] | masks["customer"]
    pad = int(0.3 / FRAME_SECONDS)
    if pad and covered.any():  # ASR edges are a few frames off: do not count them as left out
        idx = np.flatnonzero(covered)
        grow = np.zeros(n + 2 * pad, bool)
        for k in range(-pad, pad + 1):
            grow[idx + pad + k] = True
        covered = grow[pad : pad + n]
    out = []
    for s, e in M.runs(heard & ~covered):
        seconds = (e - s) * FRAME_SECONDS
        if seconds >= GAP_SPEECH:
            out.append((s * FRAME_SECONDS - offset, e * FRAME_SECONDS - offset))
    return out
