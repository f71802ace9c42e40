"""Judges by name for one checker: "fast" (the bundled n-gram model) and those a rulebook's
`settings.judges` configures. Strong judges (embedding, llm) are asked only about the fast model's
candidates and are created on first use."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..rules.schema import JudgeSpec
from . import Judge, Judgement, Undecided
from .deploy import deployed_model_path
from .ngram import NgramModel

FAST = "fast"


class FastJudge:
    def __init__(self, model: NgramModel) -> None:
        self.model = model
        self.name = model.name

    def judge_many(self, texts: list[str], label: str) -> list[Judgement | Undecided]:
        if label not in self.model.index:  # a model trained without this label: undecided, never a crash
            return [Undecided(f"判断模型 {self.name} 没有标签 {label}", self.name)] * len(texts)
        return [self.model.judge_all(t)[label] for t in texts]


class Cascade:
    """The fast model first; a strong judge decides the candidates it scores at least `floor`."""

    def __init__(self, fast: FastJudge, strong: Any, floor: float) -> None:
        self.fast, self.strong, self.floor = fast, strong, floor
        self.name = strong.name

    def judge_many(self, texts: list[str], label: str) -> list[Judgement | Undecided]:
        first = self.fast.judge_many(texts, label)
        ask = [i for i, j in enumerate(first) if isinstance(j, Judgement) and j.score >= self.floor]
        out: list[Judgement | Undecided] = list(first)
        if ask:
            for i, j in zip(ask, self.strong.judge_many([texts[i] for i in ask], label), strict=True):
                if isinstance(j, Judgement) and j.span is None:
                    f = first[i]
                    j = replace(j, span=f.span if isinstance(f, Judgement) else None)
                out[i] = j
        # below the floor the fast model's "no" stands: score it as such under the strong judge's threshold
        return out


class Judges:
    def __init__(self, specs: dict[str, JudgeSpec]) -> None:
        self.specs = specs
        self._made: dict[str, Judge] = {}
        self._fast: FastJudge | None = None

    def names(self) -> list[str]:
        return [FAST, *self.specs]

    def fast(self) -> FastJudge:
        if self._fast is None:
            spec = self.specs.get(FAST)
            self._fast = FastJudge(NgramModel.load(spec.path if spec and spec.path else deployed_model_path()))
        return self._fast

    def get(self, name: str) -> Judge:
        got = self._made.get(name)
        if got is not None:
            return got
        if name == FAST:
            got = self.fast()
        else:
            spec = self.specs[name]
            if spec.type == "ngram":
                got = FastJudge(NgramModel.load(spec.path))
            elif spec.type == "embedding":
                from .embed import EmbeddingJudge

                got = Cascade(self.fast(), EmbeddingJudge.load(spec), spec.candidate_floor)
            else:
                from .llm import LLMJudge

                got = Cascade(self.fast(), LLMJudge(spec, name), spec.candidate_floor)
        self._made[name] = got
        return got
