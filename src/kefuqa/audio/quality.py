"""Which acoustic measures a recording can be trusted for.

Telephone recordings are companded (G.711), noisy, clipped and leak one party into the other. Loudness
survives companding, noise down to about 10 dB SNR and crosstalk under −15 dB (the bleed is removed
before measuring); it does not survive clipping. Pitch spread (monotony) needs the voice well above the
line noise. `reliability` names the measures a recording cannot give, with the reason in Chinese; the
voice rules then say "not applicable: <reason>" instead of a confident wrong finding. The result goes
into ``Conversation.metrics["unreliable"]`` keyed by the utterance attribute or measure concerned.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kefuqa.audio import measures as M

CLIP_LEVEL = 0.98  # of the channel's peak, when the peak is at full scale
CLIP_SHARE = 0.02  # clipped samples per speech sample above which loudness is not trusted (1 %: < 0.3 dB)
MIN_SNR_PITCH = 12.0  # dB of active speech over the noise floor needed for the pitch spread
MIN_SNR_LEVEL = 8.0  # … and for the level (measured within 1 dB at 20 dB SNR, 2.5 dB at 10 dB)
# Where both talk at once, a party's own speech is told from the other's crosstalk (a hybrid's or handset's
# echo) by energy: it must stand this far over the other party's voice returning on its channel (the other's
# level + the measured crosstalk gain). Under it, who-talks-when inside double talk — when an interruption
# starts and stops — is not measured within 0.1 s (bench/eval_voice.py: 12 dB misses by 0.13–0.6 s).
MIN_ECHO_MARGIN_OVERLAP = 14.0


def reliability(tracks: list[Any], roles: tuple[str, str], samples: np.ndarray, *, timed: bool = False
                ) -> dict[str, str]:
    """{measure: reason} for the measures these tracks (`analyze.Track`) cannot give reliably. `timed`:
    the utterance times come from this recording (no transcript), so double-talk timing is judged too."""
    out: dict[str, str] = {}
    x = np.atleast_2d(samples)
    mono = len(tracks) == 1
    if timed and not mono:
        _echo_margin(tracks, roles, out)
    for tr in tracks:
        role = "agent" if mono else roles[tr.index]
        who = "录音" if mono else ("坐席声道" if role == "agent" else "客户声道")
        ch = x[min(tr.index, x.shape[0] - 1)]
        peak = float(np.max(np.abs(ch))) if ch.size else 0.0
        if peak >= CLIP_LEVEL:
            clipped = float(np.mean(np.abs(ch) >= CLIP_LEVEL * peak))
            speech = max(float(tr.speech.mean()), 1e-6) if tr.speech.size else 1e-6
            share = clipped / speech
            if share > CLIP_SHARE:
                reason = f"{who}削波（{share * 100:.1f}% 的语音样本到顶），音量测量不可靠"
                out.setdefault("loudness_dbfs", reason)
                out.setdefault("loudness_rise_db", reason)
        level = M.active_level_dbfs(tr.levels, tr.speech) if tr.speech.any() else None
        if level is None:
            continue
        snr = level - tr.noise
        if role == "agent" and snr < MIN_SNR_PITCH:
            out.setdefault("pitch_sd_semitones", f"{who}信噪比约 {snr:.0f} dB，语调（基频）测量不可靠")
        if snr < MIN_SNR_LEVEL:
            reason = f"{who}信噪比约 {snr:.0f} dB，音量测量不可靠"
            out.setdefault("loudness_dbfs", reason)
            out.setdefault("loudness_rise_db", reason)
    return out


def _echo_margin(tracks: list[Any], roles: tuple[str, str], out: dict[str, str]) -> None:
    levels = [M.active_level_dbfs(tr.levels, tr.speech) if tr.speech.any() else None for tr in tracks]
    for me, other in ((0, 1), (1, 0)):
        tr, own, theirs = tracks[me], levels[me], levels[other]
        if tr.bleed_db is None or own is None or theirs is None:
            continue
        margin = own - (theirs + tr.bleed_db)
        if margin < MIN_ECHO_MARGIN_OVERLAP:
            who = "坐席声道" if roles[me] == "agent" else "客户声道"
            late = f"、延迟约 {tr.echo_lag * 32} 毫秒" if getattr(tr, "echo_lag", 0) else ""
            out.setdefault("overlap_seconds", f"{who}有对方的回声/串音（低 {-tr.bleed_db:.0f} dB{late}），本方语音只高出 "
                                              f"{margin:.1f} dB（需 {MIN_ECHO_MARGIN_OVERLAP:.0f} dB）："
                                              "双方同时说话时的起止测不准，抢话判断不可靠")
