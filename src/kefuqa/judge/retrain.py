"""Retraining the fast model with inspectors' verdicts, and the gate that decides whether the result
replaces the model in use.

- `read_review_rows` reads the JSON Lines `kefuqa model export-reviews` writes (the corpus's row shape;
  extra keys such as rule and call_id are ignored).
- `add_reviews` puts those rows into the training split only: never into the held-out split, and a
  reviewed sentence that is also a held-out example is left out, so the held-out figures stay a measure of
  sentences the model never saw.
- `compare` sets the candidate's held-out figures beside the current model's on the same rows; `Gate.passed`
  holds when no label's F1 drops by more than `MAX_LABEL_DROP` and the macro F1 does not drop.
- `activate` copies a candidate over the model in use (through a temporary file), first keeping the model it
  replaces in `candidates/` under its version, so that an activation can be undone by copying it back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import normalize
from .corpus import CorpusError, Example
from .labels import labels
from .ngram import ModelError, NgramModel
from .train import Scores, evaluate, ngram_decider

MAX_LABEL_DROP = 0.01  # a label's held-out F1 may fall by at most this much
_EPS = 1e-9


def read_review_rows(path: Path, skipped: list[str] | None = None) -> list[Example]:
    """Labelled rows of one export file. A line that is not a row of a known label is a CorpusError naming the
    file, the line and the reason — except a row of a rule that is not a judgement rule (the inspection pages'
    export labels those with the rule id, `label == rule`): it is left out and described in `skipped`."""
    known = labels()
    out: list[Example] = []
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise CorpusError(f"{path}: 无法读取（{exc.strerror or exc}）") from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("不是 JSON 对象")
                missing = [k for k in ("text", "label", "y") if k not in data]
                if missing:
                    raise ValueError(f"缺少字段 {', '.join(missing)}")
                label, y, text = data["label"], data["y"], data["text"]
                if label not in known and skipped is not None and label == data.get("rule"):
                    skipped.append(f"{path}:{n}: 规则 {label} 不是判断规则，已跳过")
                    continue
                if label not in known:
                    raise ValueError(f"未知标签 {label!r}（labels.yaml 中没有）")
                if y not in (0, 1) or isinstance(y, bool):
                    raise ValueError(f"y 应为 0 或 1，而不是 {y!r}")
                if not isinstance(text, str) or not text.strip():
                    raise ValueError("text 需要一句非空文本")
                out.append(Example(
                    id=str(data.get("id") or f"{path.stem}-{n}"), text=text.strip(), label=label, y=y,
                    role=str(data.get("role") or known[label].role), industry=str(data.get("industry") or "reviews"),
                    register=str(data.get("register") or "spoken"),
                    source=str(data.get("source") or f"review:{path.name}:{n}"), split="train"))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                raise CorpusError(f"{path}:{n}: {exc}") from None
    return out


@dataclass
class Added:
    rows: list[Example] = field(default_factory=list)  # the corpus with the review rows in its train split
    added: int = 0
    duplicates: int = 0  # the same sentence and label already in the training rows (or twice in the files)
    heldout: int = 0  # the sentence is a held-out example: left out


def add_reviews(examples: Sequence[Example], reviews: Iterable[Example]) -> Added:
    """The corpus plus review rows as training rows (never held-out ones)."""
    out = Added(rows=list(examples))
    held = {(normalize.key(e.text), e.label) for e in examples if e.split != "train"}
    seen = {(normalize.key(e.text), e.label, e.y) for e in examples if e.split == "train"}
    for r in reviews:
        k = normalize.key(r.text)
        if (k, r.label) in held:
            out.heldout += 1
        elif (k, r.label, r.y) in seen:
            out.duplicates += 1
        else:
            seen.add((k, r.label, r.y))
            out.rows.append(replace(r, split="train"))
            out.added += 1
    return out


@dataclass(frozen=True)
class LabelChange:
    label: str
    current: float  # held-out F1 of the model in use
    candidate: float

    @property
    def delta(self) -> float:
        return self.candidate - self.current

    @property
    def worse(self) -> bool:
        return self.delta < -MAX_LABEL_DROP - _EPS


@dataclass(frozen=True)
class Gate:
    labels: list[LabelChange]
    current_macro: float
    candidate_macro: float

    @property
    def macro_dropped(self) -> bool:
        return self.candidate_macro < self.current_macro - _EPS

    @property
    def passed(self) -> bool:
        return not self.macro_dropped and not any(c.worse for c in self.labels)

    def reasons(self) -> list[str]:
        """Why the candidate is kept out, in Chinese (empty when it passed)."""
        out = [f"标签 {c.label} 的留出 F1 从 {c.current:.3f} 降到 {c.candidate:.3f}（降幅超过 {MAX_LABEL_DROP}）"
               for c in self.labels if c.worse]
        if self.macro_dropped:
            out.append(f"宏平均 F1 从 {self.current_macro:.3f} 降到 {self.candidate_macro:.3f}")
        return out


def macro_f1(scores: dict[str, Scores], names: Sequence[str]) -> float:
    return sum(scores[k].f1 if k in scores else 0.0 for k in names) / len(names) if names else 0.0


def heldout_scores(model: NgramModel, heldout: Sequence[Example]) -> dict[str, Scores]:
    """Per-label scores on the held-out rows; a label the model does not know scores nothing (F1 0)."""
    mine = [e for e in heldout if e.label in model.index]
    out = evaluate(ngram_decider(model), mine)
    for e in heldout:
        if e.label not in model.index:
            s = out.setdefault(e.label, Scores())
            if e.y:
                s.fn += 1
            else:
                s.tn += 1
    return out


def compare(current: NgramModel | None, candidate: NgramModel, heldout: Sequence[Example]) -> Gate:
    """Both models on the same held-out rows. Without a current model the candidate passes."""
    cand = heldout_scores(candidate, heldout)
    cur = heldout_scores(current, heldout) if current is not None else {}
    names = sorted({e.label for e in heldout})
    changes = [LabelChange(k, cur[k].f1 if k in cur else 0.0, cand[k].f1 if k in cand else 0.0) for k in names]
    return Gate(changes, macro_f1(cur, names), macro_f1(cand, names))


def load_current(path: Path) -> NgramModel | None:
    """The model at `path`, None when there is none yet; a corrupt file is a ModelError."""
    if not path.exists():
        return None
    return NgramModel.load(path)


def candidate_path(target: Path, version: str) -> Path:
    return target.parent / "candidates" / f"intent-ngram-{version}.json.gz"


def activate(candidate: Path, target: Path, current: NgramModel | None) -> Path | None:
    """Copy `candidate` over `target`; the replaced model is kept in candidates/ first (returned, or None)."""
    kept = None
    if current is not None and target.exists():
        kept = candidate_path(target, current.version)
        if not kept.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, kept)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(candidate, tmp)
    try:
        NgramModel.load(tmp)  # never activate a file that would not load
    except ModelError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(target)
    return kept


@dataclass
class Retrained:
    candidate: Path  # the trained candidate's file
    version: str
    gate: Gate
    activated: bool
    forced: bool
    added: Added
    kept: Path | None = None  # where the replaced model was kept, when one was


def retrain(examples: Sequence[Example], reviews: Iterable[Example], target: Path, *, force: bool = False,
            corpus_sha: str = "", log: Callable[[str], None] = print, c_grid: Sequence[float] | None = None
            ) -> Retrained:
    """Train a candidate on the corpus's training rows plus `reviews`, write it to candidates/, compare it with
    the model at `target` (or the model in use when `target` does not exist yet) on the held-out rows, and
    activate it when the gate passes (or `force`)."""
    from .deploy import deployed_model_path
    from .train import C_GRID, save_model, train_ngram

    added = add_reviews(examples, reviews)
    current = load_current(target) if target.exists() else load_current(deployed_model_path())
    trained = train_ngram(added.rows, corpus_sha=corpus_sha, log=log, c_grid=c_grid or C_GRID)
    candidate = NgramModel(trained)
    heldout = [e for e in added.rows if e.split == "heldout"]
    gate = compare(current, candidate, heldout)
    cand_scores = heldout_scores(candidate, heldout)
    trained["meta"]["heldout"] = {k: {"precision": round(s.precision, 3), "recall": round(s.recall, 3),
                                      "f1": round(s.f1, 3)} for k, s in sorted(cand_scores.items())}
    trained["meta"]["reviews"] = {"added": added.added, "duplicates": added.duplicates, "heldout": added.heldout,
                                  "replaces": current.version if current is not None else None}
    path = candidate_path(target, str(trained["version"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(trained, path)
    ok = gate.passed or force
    kept = activate(path, target, current if target.exists() else None) if ok else None
    return Retrained(path, str(trained["version"]), gate, ok, force and not gate.passed, added, kept)
