"""Training and evaluating the judgement models (needs the `train` extra: scikit-learn and numpy).

- `train_ngram` fits one logistic regression per label on the training industries only. The regularisation
  strength and the decision threshold of each label are chosen by cross-validation grouped by industry
  (each fold holds out whole industries), never by looking at the held-out industries.
- `evaluate` scores a model on a split and returns precision, recall and F1 per label.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .corpus import Example
from .features import features
from .labels import labels
from .ngram import FORMAT, NgramModel

OTHER_NEGATIVE_WEIGHT = 0.3  # another label's hard negatives of the same role, as weaker negatives
C_GRID = (0.5, 1.0, 2.0, 4.0)


def need_sklearn() -> Any:
    try:
        import numpy as np
        import sklearn  # noqa: F401
    except ImportError:
        raise SystemExit("训练模型需要 scikit-learn 和 numpy：pip install 'kefuqa[train]'") from None
    return np


@dataclass
class Rows:
    texts: list[str]
    y: list[int]
    weight: list[float]
    groups: list[str]


def rows_for(label: str, examples: Sequence[Example]) -> Rows:
    """Training rows of one label: its own positives and hard negatives, plus the hard negatives other labels
    wrote for the same role (weaker: written as near-misses of another label, they are usually neutral)."""
    role = labels()[label].role
    r = Rows([], [], [], [])
    for ex in examples:
        if ex.label == label:
            r.texts.append(ex.text)
            r.y.append(ex.y)
            r.weight.append(1.0)
            r.groups.append(ex.industry)
        elif ex.role == role and ex.y == 0:
            r.texts.append(ex.text)
            r.y.append(0)
            r.weight.append(OTHER_NEGATIVE_WEIGHT)
            r.groups.append(ex.industry)
    return r


def _feature_dicts(texts: Sequence[str]) -> list[dict[str, float]]:
    out = []
    for t in texts:
        d: dict[str, float] = {}
        for f, _, _ in features(t)[1]:
            d[f] = 1.0  # presence, not counts: long utterances should not win by length
        out.append(d)
    return out


# Precision weighs more than recall when a threshold is chosen: a judgement finding an inspector rejects
# costs trust, and a false complaint also sets off the complaint-handling rules (CMP001–CMP003).
BETA = 0.5


def _best_threshold(y: Sequence[int], p: Sequence[float], w: Sequence[float], beta: float = BETA
                    ) -> tuple[float, float]:
    """The threshold with the best F-beta over all rows (a negative counts with its weight: other labels'
    near-misses weigh less than the label's own negatives and the neutral turns), and that F-beta."""
    pairs = sorted(zip(p, y, w, strict=True), key=lambda t: -t[0])
    pos = sum(yi for _, yi, _ in pairs)
    b2 = beta * beta
    best = (0.5, 0.0)
    tp = 0
    fp = 0.0
    for k, (pi, yi, wi) in enumerate(pairs):
        tp += yi
        fp += (1 - yi) * wi
        if k + 1 < len(pairs) and pairs[k + 1][0] == pi:
            continue
        f = (1 + b2) * tp / ((1 + b2) * tp + b2 * (pos - tp) + fp) if pos else 0.0
        if f > best[1]:
            nxt = pairs[k + 1][0] if k + 1 < len(pairs) else 0.0
            best = ((pi + nxt) / 2, f)
    return min(0.95, max(0.05, best[0])), best[1]


def cross_validate(label: str, rows: Rows, fit: Callable[..., Any], predict: Callable[..., Any], folds: int = 4
        ) -> tuple[float, float]:
    """Out-of-fold predictions with whole industries held out per fold: (threshold, F-beta)."""
    np = need_sklearn()
    from sklearn.model_selection import GroupKFold

    y = np.array(rows.y)
    w = np.array(rows.weight)
    pred = np.zeros(len(y))
    n_groups = len(set(rows.groups))
    if n_groups < 2:
        raise SystemExit(f"标签 {label}：训练行业不足两个，无法按行业交叉验证")
    for tr, te in GroupKFold(n_splits=min(folds, n_groups)).split(rows.texts, y, rows.groups):
        model = fit([rows.texts[i] for i in tr], y[tr], w[tr])
        pred[te] = predict(model, [rows.texts[i] for i in te])
    return _best_threshold(list(y), list(pred), list(w))


def _fit_ngram(C: float) -> tuple[Callable[..., Any], Callable[..., Any]]:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    def fit(texts: list[str], y: Any, w: Any) -> Any:
        vec = DictVectorizer()
        X = vec.fit_transform(_feature_dicts(texts))
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
        clf.fit(X, y, sample_weight=w)
        return vec, clf

    def predict(model: Any, texts: list[str]) -> Any:
        vec, clf = model
        return clf.predict_proba(vec.transform(_feature_dicts(texts)))[:, 1]

    return fit, predict


def train_ngram(examples: Sequence[Example], *, corpus_sha: str = "", log: Callable[[str], None] = print,
                min_weight: float = 1e-3, c_grid: Sequence[float] = C_GRID) -> dict[str, Any]:
    """Train the fast model on the train split; returns the model file's data. `c_grid`: the regularisation
    strengths cross-validation chooses from (tests pass one to train quickly)."""
    need_sklearn()
    train = [ex for ex in examples if ex.split == "train"]
    names = sorted({ex.label for ex in train})
    weights: dict[str, list[list[float]]] = defaultdict(list)
    bias, thresholds, cv = [], [], {}
    for i, label in enumerate(names):
        rows = rows_for(label, train)
        best: tuple[float, float, float] | None = None
        for C in c_grid:
            th, f1 = cross_validate(label, rows, *_fit_ngram(C))
            if best is None or f1 > best[2] + 1e-9:
                best = (C, th, f1)
        assert best is not None
        C, th, f1 = best
        fit, _ = _fit_ngram(C)
        vec, clf = fit(rows.texts, rows.y, rows.weight)
        for f, w in zip(vec.get_feature_names_out(), clf.coef_[0], strict=True):
            if abs(w) >= min_weight:
                weights[str(f)].append([i, round(float(w), 4)])
        bias.append(round(float(clf.intercept_[0]), 4))
        thresholds.append(round(th, 3))
        cv[label] = {"C": C, "threshold": round(th, 3), "cv_f_beta": round(f1, 3), "beta": BETA,
                     "rows": len(rows.y), "positives": sum(rows.y)}
        log(f"{label:20s} C={C:<4} 阈值={th:.2f} 交叉验证 F0.5={f1:.3f}（{sum(rows.y)} 正例 / {len(rows.y)} 行）")
    digest = hashlib.sha256(json.dumps([names, bias, sorted(weights.items())], sort_keys=True).encode())
    version = _dt.date.today().strftime("%Y.%m.%d") + "+" + digest.hexdigest()[:8]
    return {"format": FORMAT, "version": version, "labels": names, "bias": bias, "thresholds": thresholds,
            "weights": dict(weights),
            "meta": {"corpus_sha256": corpus_sha, "train_industries": sorted({ex.industry for ex in train}),
                     "cv": cv}}


def save_model(data: dict[str, Any], path: Path) -> None:
    raw = gzip.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(), mtime=0)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)


@dataclass
class Scores:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(decide: Callable[[str, str], bool], examples: Sequence[Example]) -> dict[str, Scores]:
    """Per-label confusion counts of `decide(text, label)` against the examples' own labels."""
    out: dict[str, Scores] = defaultdict(Scores)
    for ex in examples:
        got = decide(ex.text, ex.label)
        s = out[ex.label]
        if got and ex.y:
            s.tp += 1
        elif got:
            s.fp += 1
        elif ex.y:
            s.fn += 1
        else:
            s.tn += 1
    return dict(out)


def ngram_decider(model: NgramModel) -> Callable[[str, str], bool]:
    def decide(text: str, label: str) -> bool:
        j = model.judge(text, [label])[label]
        return j.score >= j.threshold
    return decide
