"""`voice`: how the agent sounds, from the measures the audio layer writes on each utterance.

Three checks, each with its measurement in the evidence (「坐席音量 -9.8 dBFS，高于本通客户 11.0 dB」):

- ``check: level`` (VOC003) — the agent's typical level (median over substantial turns, dBFS) outside
  `range`, or outside the narrower `soft_range` while `relative_db` or more louder / quieter than this
  call's customer: too loud or too quiet for the line *and* for this conversation;
- ``check: monotone`` (VOC004) — the median pitch spread of the agent's turns below `below` semitones;
- ``check: composure`` (VOC005) — after the customer turns angry (an ``emotion: angry`` tag, a hit of a
  rule in `uses` such as EVT004, or — heard, not read — a customer turn `angry_db` above the customer's
  own median level, or `angry_db_with_pitch` above it with the pitch `angry_semitones` up), the agent's
  loudest reply is more than `rise_db` above the agent's level before the anger, or more than
  `rise_db_with_pace` above it while speaking `pace_rise` faster.

A measure the recording cannot give reliably (``metrics["unreliable"]``, written by the audio layer for a
clipped or noisy channel) makes the check not applicable, with the reason: never a confident wrong finding.
"""

from __future__ import annotations

import math
from statistics import median
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from ..engine.hits import Hit, NotApplicable
from ..rules.schema import RuleBase
from .base import Kind, register

if TYPE_CHECKING:
    from ..engine.context import Context


class VoiceRule(RuleBase):
    kind: Literal["voice"]
    check: Literal["level", "monotone", "composure"]
    min_count: int = Field(default=3, ge=1)
    # level
    range: tuple[float, float] = (-40.0, -10.0)
    soft_range: tuple[float, float] | None = None
    relative_db: float | None = Field(default=None, gt=0)
    # monotone
    below: float = Field(default=1.5, gt=0)
    # composure
    uses: list[str] = Field(default_factory=list)
    rise_db: float = Field(default=6.0, gt=0)
    rise_db_with_pace: float | None = Field(default=None, gt=0)
    pace_rise: float = Field(default=0.25, gt=0)  # 0.25: a quarter faster
    angry_db: float = Field(default=6.0, gt=0)
    angry_db_with_pitch: float = Field(default=3.0, gt=0)
    angry_semitones: float = Field(default=3.0, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> VoiceRule:
        for name in ("range", "soft_range"):
            r = getattr(self, name)
            if r is not None and r[0] >= r[1]:
                raise ValueError(f"{name}: the first bound must be below the second")
        if self.soft_range is not None and not (self.range[0] <= self.soft_range[0] < self.soft_range[1]
                                                <= self.range[1]):
            raise ValueError("soft_range 应在 range 之内")
        if (self.soft_range is None) != (self.relative_db is None):
            raise ValueError("soft_range 与 relative_db 须同时给出")
        return self


def _f(v: float) -> str:
    return f"{v:.1f}"


@register
class Voice(Kind):
    name = "voice"
    schema = VoiceRule

    @classmethod
    def refs(cls, rule: object) -> list[str]:
        return list(getattr(rule, "uses", []))

    def run(self, ctx: Context) -> list[Hit]:
        return {"level": self._level, "monotone": self._monotone, "composure": self._composure}[self.rule.check](ctx)

    # ---- helpers --------------------------------------------------------------------------------------

    def _unreliable(self, ctx: Context, *names: str) -> None:
        bad = ctx.conv.metrics.get("unreliable") or {}
        for n in names:
            if isinstance(bad, dict) and bad.get(n):
                raise NotApplicable(str(bad[n]))

    def _values(self, ctx: Context, role: str, attr: str, substantial: bool = True) -> list[tuple[float, int]]:
        utts = ctx.conv.utterances
        return [(float(utts[u].attrs[attr]), u) for u in ctx.by_role[role]
                if isinstance(utts[u].attrs.get(attr), int | float) and (not substantial or ctx.substantial(u))]

    def _at(self, ctx: Context, u: int, words: str, **vars_: object) -> Hit:
        start, end = ctx.utt_time(u)
        return Hit(u, start, end, words, None, vars={"measured": words, **vars_})

    # ---- VOC003 ---------------------------------------------------------------------------------------

    def _level(self, ctx: Context) -> list[Hit]:
        r = self.rule
        try:
            self._unreliable(ctx, "loudness_dbfs")
            clipped = None
        except NotApplicable as exc:  # clipping only lowers a level: "too loud" still stands, nothing else
            clipped = exc
        mine = self._values(ctx, "agent", "loudness_dbfs")
        if len(mine) < r.min_count:
            if clipped is not None:  # no levels because the recording said why (left out, not measurable)
                raise clipped
            raise NotApplicable(f"需要录音测得的坐席音量（至少 {r.min_count} 句坐席语音）")
        level = median(v for v, _ in mine)
        theirs = self._values(ctx, "customer", "loudness_dbfs")
        cust = median(v for v, _ in theirs) if len(theirs) >= 2 else None
        diff = level - cust if cust is not None else None
        loud = level > r.range[1]
        quiet = level < r.range[0]
        if not (loud or quiet) and diff is not None and r.soft_range is not None and r.relative_db is not None:
            loud = level > r.soft_range[1] and diff >= r.relative_db
            quiet = level < r.soft_range[0] and -diff >= r.relative_db
        if clipped is not None and not loud:
            raise clipped
        if not (loud or quiet):
            return []
        words = f"坐席音量 {_f(level)} dBFS" + ("（削波，实际更响）" if clipped is not None else "")
        if diff is not None:
            words += f"，{'高于' if diff >= 0 else '低于'}本通客户 {_f(abs(diff))} dB"
        else:
            words += f"，超出适中范围（{r.range[0]:g} 至 {r.range[1]:g} dBFS）"
        mine.sort()
        u = mine[-1][1] if loud else mine[0][1]
        return [self._at(ctx, u, words, value=round(level, 1), customer=None if cust is None else round(cust, 1),
                         diff=None if diff is None else round(diff, 1), direction="过高" if loud else "过低")]

    # ---- VOC004 ---------------------------------------------------------------------------------------

    def _monotone(self, ctx: Context) -> list[Hit]:
        r = self.rule
        self._unreliable(ctx, "pitch_sd_semitones")
        vals = self._values(ctx, "agent", "pitch_sd_semitones")
        if len(vals) < r.min_count:
            raise NotApplicable(f"需要录音测得的坐席语调（至少 {r.min_count} 句坐席语音）")
        spread = median(v for v, _ in vals)
        if spread >= r.below:
            return []
        vals.sort()
        words = f"坐席语调起伏 {spread:.2f} 个半音（低于 {r.below:g}）"
        return [self._at(ctx, vals[0][1], words, value=round(spread, 2))]

    # ---- VOC005 ---------------------------------------------------------------------------------------

    def _angry(self, ctx: Context) -> list[int]:
        r = self.rule
        utts = ctx.conv.utterances
        by_rules = {h.utterance for rid in r.uses for h in ctx.fired.get(rid, ()) if h.utterance is not None}
        levels = self._values(ctx, "customer", "loudness_dbfs", substantial=False)
        lvl_med = median(v for v, _ in levels) if len(levels) >= 3 else None
        pitches = [(float(utts[u].attrs["pitch_median_hz"]), u) for u in ctx.by_role["customer"]
                   if isinstance(utts[u].attrs.get("pitch_median_hz"), int | float)]
        p_med = median(v for v, _ in pitches) if len(pitches) >= 3 else None
        out = []
        for u in ctx.by_role["customer"]:
            a = utts[u].attrs
            if str(a.get("emotion", "")).lower() == "angry" or u in by_rules:
                out.append(u)
                continue
            lv = a.get("loudness_dbfs")
            if lvl_med is None or not isinstance(lv, int | float):
                continue
            if lv >= lvl_med + r.angry_db:
                out.append(u)
                continue
            ph = a.get("pitch_median_hz")
            if p_med and isinstance(ph, int | float) and ph > 0 and lv >= lvl_med + r.angry_db_with_pitch \
                    and 12 * math.log2(ph / p_med) >= r.angry_semitones:
                out.append(u)
        return out

    def _composure(self, ctx: Context) -> list[Hit]:
        r = self.rule
        self._unreliable(ctx, "loudness_rise_db", "loudness_dbfs")
        agent = self._values(ctx, "agent", "loudness_dbfs", substantial=False)
        if len(agent) < r.min_count:
            raise NotApplicable(f"需要录音测得的坐席音量（至少 {r.min_count} 句坐席语音）")
        angry = self._angry(ctx)
        if not angry:
            return []
        first = min(angry)
        before = [(v, u) for v, u in agent if u < first]
        base = median(v for v, _ in before) if len(before) >= 2 else median(v for v, _ in agent)
        angry_set = set(angry)
        after: list[tuple[float, int]] = []
        for v, u in agent:
            prev = [c for c in ctx.by_role["customer"] if c < u]
            if prev and prev[-1] in angry_set:
                after.append((v, u))
        if not after:
            return []
        loudest, u = max(after)
        rise = loudest - base
        pace = self._pace_rise(ctx, [x for _, x in before] or [x for _, x in agent], [u])
        fire = rise > r.rise_db or (r.rise_db_with_pace is not None and rise > r.rise_db_with_pace
                                    and pace is not None and pace >= r.pace_rise)
        if not fire:
            return []
        words = f"客户激动后坐席音量升高 {_f(rise)} dB（{_f(base)} → {_f(loudest)} dBFS）"
        if pace is not None and pace >= r.pace_rise:
            words += f"，语速加快 {round(pace * 100)}%"
        return [self._at(ctx, u, words, value=round(rise, 1), base=round(base, 1), after=round(loudest, 1))]

    def _pace_rise(self, ctx: Context, base: list[int], after: list[int]) -> float | None:
        """How much faster (fraction) the agent speaks in `after` than in `base`: syllables per second of
        speech measured on the audio (characters per second of the turn without them)."""
        def rate(us: list[int]) -> float | None:
            n = secs = 0.0
            for u in us:
                x = ctx.conv.utterances[u]
                syl, sp = x.attrs.get("syllables"), x.attrs.get("speech_seconds")
                if isinstance(syl, int | float) and isinstance(sp, int | float) and sp >= 0.8:
                    n, secs = n + float(syl), secs + float(sp)
            return n / secs if secs > 0 else None
        a, b = rate(after), rate(base)
        if a is None or b is None or b <= 0:
            return None
        return a / b - 1.0
