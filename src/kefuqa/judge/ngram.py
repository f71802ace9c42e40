"""The fast judgement model shipped in the package: one logistic regression per label over character and
syllable n-grams (`features.py`), stored as sparse weights in a gzip'd JSON file. Pure Python at run time
(no numpy, no torch): about 50 µs an utterance for all labels."""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .features import features

FORMAT = "kefuqa-intent-ngram/1"
DEFAULT_MODEL = Path(__file__).with_name("models") / "intent-ngram.json.gz"


class ModelError(Exception):
    """A judgement model file is missing, corrupt or of another format (the message names the file)."""


@dataclass(frozen=True)
class Judgement:
    label: str
    score: float  # calibrated probability-like confidence, 0–1
    threshold: float  # the label's default decision threshold
    span: tuple[int, int] | None  # key-view offsets of the words that weighed most (None when nothing did)
    judge: str  # which model decided ("ngram:2026.12.05+ab12cd")
    reason: str | None = None  # a judge's one-line justification (the LLM judge); None for the fast model


class NgramModel:
    """Per-label linear models over hashed-free sparse n-gram features."""

    def __init__(self, data: dict[str, Any], source: str = "<memory>") -> None:
        if data.get("format") != FORMAT:
            raise ModelError(f"{source}: 不是 kefuqa 判断模型（format 应为 {FORMAT}）")
        try:
            self.labels: list[str] = list(data["labels"])
            self.bias: list[float] = [float(b) for b in data["bias"]]
            self.thresholds: list[float] = [float(t) for t in data["thresholds"]]
            self.version: str = str(data["version"])
            weights: dict[str, list[list[float]]] = data["weights"]
            self.weights = {f: [(int(i), float(w)) for i, w in pairs] for f, pairs in weights.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: 判断模型文件损坏（{exc!r}）") from None
        if not (len(self.labels) == len(self.bias) == len(self.thresholds)):
            raise ModelError(f"{source}: 判断模型文件损坏（标签、偏置和阈值数目不一致）")
        self.meta: dict[str, Any] = data.get("meta", {})
        self.index = {k: i for i, k in enumerate(self.labels)}
        self.name = "ngram:" + self.version
        self._all: dict[str, dict[str, Judgement]] = {}  # text → every label, for repeated sentences
        self._old: dict[str, dict[str, Judgement]] = {}  # the previous generation of `_all`

    @classmethod
    def load(cls, path: str | Path | None = None) -> NgramModel:
        p = Path(path) if path is not None else DEFAULT_MODEL
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ModelError(f"{p}: 无法读取判断模型（{exc.strerror or exc}）") from None
        try:
            data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        except (OSError, EOFError, ValueError) as exc:
            raise ModelError(f"{p}: 判断模型文件损坏（{exc}）") from None
        if not isinstance(data, dict):
            raise ModelError(f"{p}: 判断模型文件损坏（不是 JSON 对象）")
        return cls(data, str(p))

    # texts per cache generation: an entry (every label's judgement of one text) holds ~2.3 kB, so two
    # generations stay under ~40 MB per process (it was 100,000 entries, ~230 MB; issue 14)
    _CACHE_MAX = 8_000

    def judge_all(self, text: str) -> dict[str, Judgement]:
        """Every label's judgement of one utterance, cached by text (one feature pass for all labels).

        Two generations: when the young one is full it becomes the old one (the previous old one is
        dropped), and a text found in the old one moves back, so the sentences said all day stay."""
        got = self._all.get(text)
        if got is None:
            got = self._old.pop(text, None)
            if got is None:
                got = self.judge(text)
            if len(self._all) >= self._CACHE_MAX:
                self._old, self._all = self._all, {}
            self._all[text] = got
        return got

    def judge(self, text: str, wanted: list[str] | None = None) -> dict[str, Judgement]:
        """Scores of `wanted` labels (all by default) for one utterance."""
        idx = [self.index[k] for k in (wanted if wanted is not None else self.labels)]
        _, feats = features(text)
        z = {i: self.bias[i] for i in idx}
        contrib: dict[int, list[tuple[int, int, float]]] = {i: [] for i in idx}
        weights = self.weights
        seen: set[str] = set()
        for f, s, e in feats:
            pairs = weights.get(f)
            if pairs is None:
                continue
            first = f not in seen  # presence, as in training: a feature said twice counts once
            seen.add(f)
            for i, w in pairs:
                if i in z:
                    if first:
                        z[i] += w
                    if w > 0:
                        contrib[i].append((s, e, w))  # every occurrence, for the evidence span
        out = {}
        for i in idx:
            score = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z[i]))))
            out[self.labels[i]] = Judgement(self.labels[i], score, self.thresholds[i], _span(contrib[i]),
                                            self.name)
        return out


def _span(contrib: list[tuple[int, int, float]], max_len: int = 12) -> tuple[int, int] | None:
    """The stretch of characters the positive weights concentrate on: the best-weighted character,
    grown while the neighbours carry at least a quarter of its weight (at most `max_len` characters)."""
    if not contrib:
        return None
    size = max(e for _, e, _ in contrib)
    per = [0.0] * size
    for s, e, w in contrib:
        for k in range(s, e):
            per[k] += w / (e - s)
    best = max(range(size), key=per.__getitem__)
    if per[best] <= 0:
        return None
    lo = hi = best
    floor = per[best] / 4
    while hi - lo + 1 < max_len:
        left = per[lo - 1] if lo > 0 else -1.0
        right = per[hi + 1] if hi + 1 < size else -1.0
        if max(left, right) < floor:
            break
        if left >= right:
            lo -= 1
        else:
            hi += 1
    return lo, hi + 1
