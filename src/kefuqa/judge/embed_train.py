"""Training the semantic judge's head: embed the corpus once, then one logistic regression per label,
threshold by industry-grouped cross-validation on the training industries (as for the n-gram model)."""

from __future__ import annotations

import datetime as _dt
import gzip
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .corpus import Example
from .embed import DEFAULT_HEAD, HEAD_FORMAT, make_embedder
from .train import C_GRID, cross_validate, need_sklearn, rows_for


def embed_all(texts: Sequence[str], model_dir: str | None, batch: int = 64,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    emb = make_embedder(model_dir)
    uniq = list(dict.fromkeys(texts))
    vecs: dict[str, Any] = {}
    for i in range(0, len(uniq), batch):
        chunk = uniq[i:i + batch]
        for t, v in zip(chunk, emb.embed(chunk), strict=True):
            vecs[t] = v
        if (i // batch) % 20 == 0:
            log(f"嵌入 {min(i + batch, len(uniq))}/{len(uniq)}")
    vecs["__embedder__"] = (emb.name, emb.dim)
    return vecs


def _fit_head(C: float, vecs: dict[str, Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    np = need_sklearn()
    from sklearn.linear_model import LogisticRegression

    def fit(texts: list[str], y: Any, w: Any) -> Any:
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000)
        clf.fit(np.stack([vecs[t] for t in texts]), y, sample_weight=w)
        return clf

    def predict(clf: Any, texts: list[str]) -> Any:
        return clf.predict_proba(np.stack([vecs[t] for t in texts]))[:, 1]

    return fit, predict


def train_head(examples: Sequence[Example], *, model_dir: str | None = None, out_path: Path | None = None,
               vecs: dict[str, Any] | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    train = [ex for ex in examples if ex.split == "train"]
    if vecs is None:
        vecs = embed_all([ex.text for ex in examples], model_dir, log=log)
    name, dim = vecs["__embedder__"]
    head: dict[str, Any] = {"format": HEAD_FORMAT, "embedder": name, "dim": dim,
                            "version": _dt.date.today().strftime("%Y.%m.%d"), "labels": {}}
    for label in sorted({ex.label for ex in train}):
        rows = rows_for(label, train)
        best = None
        for C in C_GRID:
            th, f1 = cross_validate(label, rows, *_fit_head(C, vecs))
            if best is None or f1 > best[2] + 1e-9:
                best = (C, th, f1)
        assert best is not None
        C, th, f1 = best
        fit, _ = _fit_head(C, vecs)
        clf = fit(rows.texts, rows.y, rows.weight)
        head["labels"][label] = {"w": [round(float(x), 5) for x in clf.coef_[0]], "b": round(float(clf.intercept_[0]), 5),
                                 "threshold": round(th, 3), "C": C, "cv_f_beta": round(f1, 3)}
        log(f"{label:20s} 语义头 C={C:<4} 阈值={th:.2f} 交叉验证 F0.5={f1:.3f}")
    p = out_path or DEFAULT_HEAD
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_bytes(gzip.compress(json.dumps(head, ensure_ascii=False).encode(), mtime=0))
    tmp.replace(p)
    log(f"已写入 {p}")
    return head
