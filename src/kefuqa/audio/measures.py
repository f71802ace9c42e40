"""Acoustic measures of speech: segmentation on the frame grid, channel bleed, loudness, pitch, syllables.

Every function works on plain numpy arrays so that each can be tested against generated audio with a
known answer. Levels are RMS in dB relative to full scale: a full-scale square wave is 0 dBFS, a
full-scale sine −3.0 dBFS (the convention of sox's "RMS lev dB" and pydub's ``dBFS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kefuqa.audio.vad import FRAME_SECONDS

# ---- frame decisions and segments ---------------------------------------------------------------


def hysteresis(probs: np.ndarray, on: float = 0.5, off: float = 0.35) -> np.ndarray:
    """Speech while the probability is ≥ `on`, kept until it falls below `off`."""
    out = np.zeros(probs.size, dtype=bool)
    state = False
    # A python loop over 31 frames per second of audio is cheap next to the VAD itself.
    for i, p in enumerate(probs.tolist()):
        if state:
            state = p >= off
        else:
            state = p >= on
        out[i] = state
    return out


def estimate_bleed_db(levels_self: np.ndarray, levels_other: np.ndarray, active_other: np.ndarray,
                      noise_other: float) -> float | None:
    """How far below the other channel its leak into this one sits (dB, negative), or None if unknown.

    Measured over frames where the other party speaks clearly: in the ones where this party is silent the
    difference of levels is the crosstalk gain; where both speak it is larger. The 20th percentile takes
    the former as long as a fifth of the other party's speech is not double-talk.
    """
    strong = active_other & (levels_other > noise_other + 15.0)
    if int(strong.sum()) < 10:
        return None
    diff = levels_self[strong] - levels_other[strong]
    return float(np.percentile(diff, 20))


MAX_ECHO_FRAMES = 8  # echo delays searched: up to 8 frames (256 ms) — network round trips of 20–150 ms and more


def _shift(levels: np.ndarray, lag: int, fill: float) -> np.ndarray:
    """`levels` delayed by `lag` frames (frame t holds levels[t - lag])."""
    if lag <= 0:
        return levels
    out = np.full(levels.size, fill, dtype=levels.dtype)
    out[lag:] = levels[: levels.size - lag]
    return out


def estimate_echo(levels_self: np.ndarray, levels_other: np.ndarray, active_other: np.ndarray,
                  noise_other: float, noise_self: float | None = None, max_lag: int = MAX_ECHO_FRAMES
                  ) -> tuple[float | None, int]:
    """(how far below the other channel its leak into this one sits, in dB, or None; the longest delay in
    frames at which it is heard back).

    A recording's crosstalk is the hybrid's echo or the handset's acoustic echo: the other party's voice
    returning on this channel 0–150 ms later, smeared over a few tens of ms. At each delay the crosstalk
    gain is measured as in `estimate_bleed_db`; the delays whose gain is within 3 dB of the best, and whose
    leak's louder frames (80th percentile) stand 6 dB over this channel's noise floor (else the noise,
    not an echo, is measured), are the
    echo's. None of them beyond 0: the crosstalk is simultaneous (delay 0), as `estimate_bleed_db` has it.
    """
    strong = active_other & (levels_other > noise_other + 15.0)
    idx = np.flatnonzero(strong)
    if idx.size < 10:
        return None, 0
    gains: list[float] = []
    audible: list[bool] = []
    for lag in range(0, max_lag + 1):
        j = idx[idx + lag < levels_self.size]
        if j.size < 10:
            break
        back = levels_self[j + lag]
        gains.append(float(np.percentile(back - levels_other[j], 20)))
        audible.append(noise_self is None or float(np.percentile(back, 80)) > noise_self + 6.0)
    if not gains:
        return None, 0
    best = max(gains)
    echo = [k for k, g in enumerate(gains) if g >= best - 3.0 and audible[k]]
    if not echo or max(echo) == 0:
        return gains[0], 0
    return best, max(echo)


def echo_envelope(levels_other: np.ndarray, lag: int, spread: int = 1) -> np.ndarray:
    """The loudest of the other channel's frames that can still be heard back on this one: lags 0 (direct
    bleed) to `lag` + `spread` (the echo, its tail, a delay off the 32 ms grid)."""
    if lag <= 0:
        return levels_other
    env = levels_other.copy()
    floor = float(levels_other.min()) if levels_other.size else -120.0
    for k in range(1, lag + spread + 1):
        env = np.maximum(env, _shift(levels_other, k, floor))
    return env


def own_speech_mask(active: np.ndarray, levels_self: np.ndarray, levels_other: np.ndarray,
                    bleed_db: float | None, margin_db: float = 8.0, max_bleed_db: float = -15.0,
                    lag: int = 0) -> np.ndarray:
    """Frames of `active` whose energy is more than the leak from the other channel — at once, or as an
    echo `lag` frames later — can explain."""
    if bleed_db is None:
        return active.copy()
    g = min(bleed_db, max_bleed_db)
    return active & (levels_self > echo_envelope(levels_other, lag) + g + margin_db)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame index pairs of the True runs."""
    if mask.size == 0:
        return []
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def segment(mask: np.ndarray, *, merge_gap: float = 0.5, min_speech: float = 0.2,
            max_length: float = 30.0, levels: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Speech frames → utterance frame ranges: gaps shorter than `merge_gap` s are bridged, runs with less
    than `min_speech` s of speech frames dropped, runs longer than `max_length` s split at their quietest frame."""
    gap = int(round(merge_gap / FRAME_SECONDS))
    shortest = int(round(min_speech / FRAME_SECONDS))
    longest = max(2, int(max_length / FRAME_SECONDS + 1e-9))
    merged: list[list[int]] = []
    for s, e in runs(mask):
        if merged and s - merged[-1][1] <= gap:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    out: list[tuple[int, int]] = []
    for s, e in merged:
        if int(np.count_nonzero(mask[s:e])) < shortest:
            continue  # too little speech, even when scattered frames (an echo's peaks) span more
        out.extend(_split_long(s, e, longest, levels))
    return out


def _split_long(s: int, e: int, longest: int, levels: np.ndarray | None) -> list[tuple[int, int]]:
    if e - s <= longest:
        return [(s, e)]
    lo, hi = s + longest // 2, s + longest
    if levels is not None:
        cut = lo + int(np.argmin(levels[lo:hi]))
    else:
        cut = hi
    return [(s, cut), *_split_long(cut, e, longest, levels)]


def refine_edges(seg: tuple[int, int], levels: np.ndarray, allowed: np.ndarray, noise: float,
                 reach: int = 5) -> tuple[int, int]:
    """Move a segment's edges to where its energy starts and stops.

    The VAD's decision lags the signal by a frame or two at onsets and hangs over at offsets; the
    energy envelope marks the edge within one frame. Edges move by at most `reach` frames outwards and
    never into frames that `allowed` excludes (bleed).
    """
    s, e = seg
    peak = float(np.max(levels[s:e]))
    thr = max(noise + 9.0, peak - 40.0)
    lo = max(0, s - reach)
    while s > lo and levels[s - 1] > thr and allowed[s - 1]:
        s -= 1
    hi = min(levels.size, e + reach)
    while e < hi and levels[e] > thr and allowed[e]:
        e += 1
    while e - s > 1 and levels[s] <= thr:
        s += 1
    while e - s > 1 and levels[e - 1] <= thr:
        e -= 1
    return s, e


def overlaps(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float, str]]:
    """Intervals where a segment of `a` and one of `b` overlap (both lists sorted, non-overlapping
    within themselves), with who started: ``a`` when the `a` segment began inside the `b` one (it cut
    in), else ``b``."""
    out = []
    j0 = 0
    for sa, ea in a:
        while j0 < len(b) and b[j0][1] <= sa:
            j0 += 1
        for sb, eb in b[j0:]:
            if sb >= ea:
                break
            s, e = max(sa, sb), min(ea, eb)
            if e > s:
                out.append((s, e, "a" if sa > sb else "b"))
    return out


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one interval."""
    total = 0.0
    cur_s = cur_e = 0.0
    started = False
    for s, e in sorted(intervals):
        if not started or s > cur_e:
            if started:
                total += cur_e - cur_s
            cur_s, cur_e, started = s, e, True
        else:
            cur_e = max(cur_e, e)
    if started:
        total += cur_e - cur_s
    return total


def gaps(intervals: list[tuple[float, float]], start: float = 0.0, end: float | None = None,
         minimum: float = 0.0) -> list[tuple[float, float]]:
    """Stretches where no interval is active (silences), at least `minimum` seconds long."""
    out = []
    cur = start
    for s, e in sorted(intervals):
        if s - cur >= minimum and s > cur:
            out.append((cur, s))
        cur = max(cur, e)
    if end is not None and end - cur >= minimum and end > cur:
        out.append((cur, end))
    return out


# ---- loudness ------------------------------------------------------------------------------------


def active_level_dbfs(levels: np.ndarray, mask: np.ndarray) -> float | None:
    """Active-speech level: mean power of the speech frames, in dBFS (RMS)."""
    sel = levels[mask]
    if sel.size == 0:
        return None
    return float(10.0 * np.log10(np.mean(10.0 ** (sel / 10.0)) + 1e-12))


def rms_dbfs(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return float(10.0 * np.log10(np.mean(x * x) + 1e-12)) if x.size else -120.0


# ---- pitch ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class PitchTrack:
    times: np.ndarray  # seconds from the start of the analysed piece
    f0: np.ndarray  # Hz, 0 where unvoiced

    @property
    def voiced(self) -> np.ndarray:
        return self.f0[self.f0 > 0]


def pitch_track(x: np.ndarray, sample_rate: int, *, floor: float = 70.0, ceiling: float = 500.0,
                step: float = 0.01) -> PitchTrack | None:
    """F0 by Praat's autocorrelation method (praat-parselmouth); None if parselmouth is missing or the
    piece is too short to analyse."""
    try:
        import parselmouth
    except ImportError:
        return None
    if x.size < int(3.0 / floor * sample_rate) + 2:
        return None
    try:
        snd = parselmouth.Sound(np.asarray(x, np.float64), sampling_frequency=float(sample_rate))
        pitch = snd.to_pitch_ac(time_step=step, pitch_floor=floor, pitch_ceiling=ceiling)
    except Exception:
        return None
    return PitchTrack(np.asarray(pitch.xs(), np.float64), np.asarray(pitch.selected_array["frequency"], np.float64))


MIN_VOICED_FRAMES = 20  # 0.2 s of voicing at 10 ms steps


def pitch_stats(track: PitchTrack | None) -> tuple[float | None, float | None]:
    """(median F0 in Hz, standard deviation of F0 in semitones) over voiced frames.

    Frames more than 9 semitones from the median are taken as octave errors of the tracker and left
    out of the spread; with fewer than `MIN_VOICED_FRAMES` voiced frames the spread is None.
    """
    if track is None:
        return None, None
    f = track.voiced
    if f.size == 0:
        return None, None
    med = float(np.median(f))
    if f.size < MIN_VOICED_FRAMES:
        return med, None
    st = 12.0 * np.log2(f / med)
    st = st[np.abs(st) <= 9.0]
    if st.size < MIN_VOICED_FRAMES:
        return med, None
    return med, float(np.std(st))


# ---- syllables -----------------------------------------------------------------------------------


def intensity_db(x: np.ndarray, sample_rate: int, step: float = 0.01, window: float = 0.04) -> np.ndarray:
    """Short-time power (dB) with a Hann window, one value per `step` seconds."""
    hop = max(1, int(round(step * sample_rate)))
    win = max(hop, int(round(window * sample_rate)))
    x = np.asarray(x, np.float64)
    if x.size < win:
        return np.zeros(0)
    n = 1 + (x.size - win) // hop
    w = np.hanning(win)
    w /= w.sum()
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx]
    power = (frames * frames) @ w
    return 10.0 * np.log10(power + 1e-12)


def count_syllables(x: np.ndarray, sample_rate: int, track: PitchTrack | None = None, *,
                    min_dip_db: float = 3.0, below_peak_db: float = 25.0, min_spacing: float = 0.08) -> int:
    """Syllable nuclei: intensity peaks with a dip of at least `min_dip_db` to the next peak (3 dB: 2 dB
    splits Mandarin third tones and diphthongs in two), no more than
    `below_peak_db` under the loudest part, voiced at the peak when a pitch track is given
    (de Jong & Wempe 2009, "Praat script to detect syllable nuclei")."""
    step = 0.01
    inten = intensity_db(x, sample_rate, step=step)
    if inten.size < 3:
        return 0
    threshold = float(np.percentile(inten, 99)) - below_peak_db
    # local maxima
    maxima = np.flatnonzero((inten[1:-1] > inten[:-2]) & (inten[1:-1] >= inten[2:])) + 1
    cand: list[int] = [int(i) for i in maxima if inten[i] > threshold]
    if not cand:
        return 0
    # merge neighbours whose dip is too shallow (or that are too close), keeping the higher peak
    changed = True
    while changed and len(cand) > 1:
        changed = False
        kept = [cand[0]]
        for i in cand[1:]:
            j = kept[-1]
            dip = float(np.min(inten[j : i + 1]))
            shallow = min(inten[i], inten[j]) - dip < min_dip_db
            close = (i - j) * step < min_spacing
            if shallow or close:
                if inten[i] > inten[j]:
                    kept[-1] = i
                changed = True
            else:
                kept.append(i)
        cand = kept
    if track is not None and track.times.size:
        win = 0.04  # intensity frame i is centred at i*step + window/2
        voiced: list[int] = []
        for i in cand:
            t = i * step + win / 2
            k = int(np.argmin(np.abs(track.times - t)))
            if abs(track.times[k] - t) <= 0.02 and track.f0[k] > 0:
                voiced.append(i)
        cand = voiced
    return len(cand)
