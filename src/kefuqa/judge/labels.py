"""The judgement labels (`labels.yaml`): what each means, whose utterances it reads, examples both ways."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

LABELS_FILE = Path(__file__).with_name("labels.yaml")


@dataclass(frozen=True)
class Label:
    key: str  # complaint, blame_shift …
    name: str  # 客户投诉/不满
    role: str  # agent | customer: whose utterances the label is about
    definition: str
    fail_when: str
    pass_when: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


@lru_cache(maxsize=1)
def labels() -> dict[str, Label]:
    data = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))["labels"]
    return {k: Label(k, v["name"], v["role"], " ".join(v["definition"].split()), v["fail_when"],
                     " ".join(v["pass_when"].split()), tuple(v.get("positives", ())), tuple(v.get("negatives", ())))
            for k, v in data.items()}
