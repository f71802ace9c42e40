"""The labelled judgement corpus: authored utterances (`data/intent/authored/<industry>.yaml`) plus
generated ASR-noise and Traditional-Chinese variants, split by industry (`data/intent/splits.yaml`).

`build_corpus` is deterministic (fixed seeds): the same authored files give the same `corpus.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import opencc
import yaml

from .. import normalize
from .labels import labels

_S2T = opencc.OpenCC("s2t")
_PUNCT = re.compile(r"[，。！？、；：,.!?;:“”\"'‘’（）()…~～—\-\s]+")
_FILLERS = ["嗯", "呃", "那个", "就是", "然后", "啊", "这个"]
# common confusions of Mandarin ASR beyond same-syllable swaps
_CONFUSIONS = {"在": "再", "再": "在", "的": "得", "得": "的", "地": "的", "账": "帐", "帐": "账", "做": "作",
               "那": "哪", "哪": "那", "他": "她", "她": "他", "已": "以", "以": "已", "像": "象", "吗": "嘛"}


class CorpusError(ValueError):
    """An authored corpus file is malformed (the message names the file and the place)."""


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    label: str
    y: int  # 1: the label applies; 0: a hard negative
    role: str
    industry: str
    register: str  # spoken | asr | traditional
    source: str  # authored:<author> or augment:<asr|traditional> of <parent id>
    split: str  # train | heldout

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def read_splits(folder: Path) -> dict[str, str]:
    data = yaml.safe_load((folder / "splits.yaml").read_text(encoding="utf-8"))
    out = {ind: "train" for ind in data.get("train", [])}
    out.update({ind: "heldout" for ind in data.get("heldout", [])})
    return out


def _register(text: str) -> str:
    if normalize.t2s(text) != text:
        return "traditional"
    if not _PUNCT.search(text) or "_" in text:
        return "asr"
    return "spoken"


def read_authored(folder: Path) -> Iterator[Example]:
    splits = read_splits(folder)
    known = labels()
    for path in sorted((folder / "authored").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CorpusError(f"{path}: YAML 错误：{exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("items", data.get("neutral")), dict):
            raise CorpusError(f"{path}: 需要 industry、author 和 items（或 neutral）")
        industry = str(data.get("industry") or path.stem)
        if industry not in splits:
            raise CorpusError(f"{path}: 行业 {industry!r} 不在 splits.yaml 的 train 或 heldout 中")
        author = str(data.get("author") or "unknown")
        # neutral turns (嗯、再见、号码、流程说明): a negative of every label of that role
        for role, texts in (data.get("neutral") or {}).items():
            for k, text in enumerate(texts or []):
                text = str(text) if isinstance(text, int) and not isinstance(text, bool) else text
                if not isinstance(text, str) or not text.strip():
                    raise CorpusError(f"{path}: neutral.{role}[{k}]: 需要一句非空文本")
                for label, lab in known.items():
                    if lab.role == role:
                        yield Example(f"{industry}-{label}-neutral{k:03d}", text.strip(), label, 0, role, industry,
                                      _register(text), f"authored:{author}", splits[industry])
        for label, lists in (data.get("items") or {}).items():
            if label not in known:
                raise CorpusError(f"{path}: items.{label}: 未知标签（labels.yaml 中没有）")
            for polarity, y in (("pos", 1), ("neg", 0)):
                for k, text in enumerate((lists or {}).get(polarity) or []):
                    text = str(text) if isinstance(text, int) and not isinstance(text, bool) else text
                    if not isinstance(text, str) or not text.strip():
                        raise CorpusError(f"{path}: items.{label}.{polarity}[{k}]: 需要一句非空文本")
                    yield Example(f"{industry}-{label}-{polarity}{k:03d}", text.strip(), label, y,
                                  known[label].role, industry, _register(text), f"authored:{author}",
                                  splits[industry])


def _homophones(chars: set[str]) -> dict[str, list[str]]:
    by_syllable: dict[str, list[str]] = {}
    for ch in sorted(chars):
        py = normalize.pinyin_key(ch)
        if py != ch:
            by_syllable.setdefault(py, []).append(ch)
    return {ch: [o for o in group if o != ch] for group in by_syllable.values() for ch in group if len(group) > 1}


def asr_variant(text: str, rng: random.Random, homophones: dict[str, list[str]]) -> str:
    """What a recogniser might make of the sentence: no punctuation, a homophone or two, fillers, pause
    marks, a stutter."""
    chars = list(_PUNCT.sub(" ", normalize.t2s(text)).replace(" ", ""))
    swaps = max(1, len(chars) // 12)
    for _ in range(swaps):
        i = rng.randrange(len(chars)) if chars else 0
        if chars and (chars[i] in _CONFUSIONS or chars[i] in homophones):
            chars[i] = _CONFUSIONS.get(chars[i]) or rng.choice(homophones[chars[i]])
    out = "".join(chars)
    if rng.random() < 0.5 and len(out) > 4:
        out = rng.choice(_FILLERS) + out
    if rng.random() < 0.3 and len(out) > 6:
        i = rng.randrange(2, len(out) - 2)
        out = out[:i] + rng.choice(["_", rng.choice(_FILLERS)]) + out[i:]
    if rng.random() < 0.2 and out:
        i = rng.randrange(len(out))
        out = out[:i] + out[i] + out[i:]
    return out


def build_corpus(folder: Path, duplicates: list[str] | None = None) -> list[Example]:
    """Authored examples plus one ASR variant of each and a Traditional variant of every third one.

    The same sentence twice under one label (also in Traditional, or with other punctuation) is an error,
    or, when a `duplicates` list is given, skipped and described there."""
    authored: list[Example] = []
    seen: dict[tuple[str, str], str] = {}
    for ex in read_authored(folder):
        first = seen.setdefault((ex.label, normalize.key(ex.text)), ex.id)
        if first != ex.id:
            msg = f"{folder / 'authored' / (ex.industry + '.yaml')}: {ex.id} 与 {first} 重复：{ex.text}"
            if duplicates is None:
                raise CorpusError(msg)
            duplicates.append(msg)
            continue
        authored.append(ex)
    homophones = _homophones({c for ex in authored for c in normalize.t2s(ex.text)})
    out = list(authored)
    for ex in authored:
        rng = random.Random(int(hashlib.sha256(ex.id.encode()).hexdigest()[:12], 16))
        if ex.register != "asr":
            out.append(Example(ex.id + "-asr", asr_variant(ex.text, rng, homophones), ex.label, ex.y, ex.role,
                               ex.industry, "asr", f"augment:asr of {ex.id}", ex.split))
        if ex.register == "spoken" and rng.random() < 1 / 3:
            out.append(Example(ex.id + "-tw", _S2T.convert(ex.text), ex.label, ex.y, ex.role, ex.industry,
                               "traditional", f"augment:traditional of {ex.id}", ex.split))
    return out


def write_corpus(examples: list[Example], path: Path) -> str:
    """Write the corpus as JSON Lines (via a temporary file); returns its sha256."""
    text = "".join(ex.to_json() + "\n" for ex in examples)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return hashlib.sha256(text.encode()).hexdigest()


def read_corpus(path: Path) -> list[Example]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            try:
                out.append(Example(**json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise CorpusError(f"{path}:{n}: {exc}") from None
    return out
