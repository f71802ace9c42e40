"""The embedding judge's ONNX path with a real (tiny) ONNX sentence-embedding model built in the test: a
character-level `tokenizers` tokenizer and an embedding-lookup graph made with `onnx.helper`, run by
onnxruntime. No mocks: the embedder, the head, the cascade behind the fast model and head training."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import conv, fired

import kefuqa
from kefuqa.judge import Judgement, ModelError, Undecided
from kefuqa.judge.corpus import Example
from kefuqa.judge.ngram import FORMAT as NGRAM_FORMAT
from kefuqa.rules.schema import JudgeSpec

np = pytest.importorskip("numpy")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from tokenizers import Regex, Tokenizer, models, pre_tokenizers  # noqa: E402

from kefuqa.judge.embed import HEAD_FORMAT, EmbeddingJudge, OnnxEmbedder  # noqa: E402

DIM = 4
# characters of complaint point (strongly) along axis 0, everything else (known or [UNK]) along axis 1; axis 2 tells the
# characters apart; [PAD] is huge along axis 3, so padding that leaked into a pooled vector would show
COMPLAINT = "差慢烂坏气"
NEUTRAL = "查问好谢请您我的订单一下"
VOCAB = {"[PAD]": 0, "[UNK]": 1, **{c: i + 2 for i, c in enumerate(COMPLAINT + NEUTRAL)}}


def _table(scale: float = 1.0) -> Any:
    t = np.zeros((len(VOCAB), DIM), dtype=np.float32)
    t[0] = [0, 0, 0, 9]
    t[1] = [0, 1, 0, 0]
    for c, i in VOCAB.items():
        if len(c) == 1:
            t[i] = [8 if c in COMPLAINT else 0, 0 if c in COMPLAINT else 1, ((i % 7) - 3) * 0.2, 0]
    return t * scale


def make_model(folder: Path, *, output: str = "tokens", token_types: bool = False, config: dict | None = None,
               scale: float = 1.0) -> Path:
    """An ONNX sentence-embedding model folder. output "tokens": [batch, seq, dim] (the embedder pools);
    "sentence": [batch, dim] (masked mean inside the graph). token_types: a third input, token_type_ids,
    whose embedding (zero for type 0) is added."""
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\S"), behavior="removed", invert=True)
    tok.save(str(folder / "tokenizer.json"))

    i64 = TensorProto.INT64
    inputs = [helper.make_tensor_value_info("input_ids", i64, ["batch", "seq"]),
              helper.make_tensor_value_info("attention_mask", i64, ["batch", "seq"])]
    inits = [numpy_helper.from_array(_table(scale), "word_embeddings")]
    nodes = [helper.make_node("Gather", ["word_embeddings", "input_ids"], ["words"], axis=0)]
    hidden = "words"
    if token_types:
        inputs.append(helper.make_tensor_value_info("token_type_ids", i64, ["batch", "seq"]))
        inits.append(numpy_helper.from_array(np.array([[0] * DIM, [5] * DIM], dtype=np.float32), "type_embeddings"))
        nodes += [helper.make_node("Gather", ["type_embeddings", "token_type_ids"], ["types"], axis=0),
                  helper.make_node("Add", ["words", "types"], ["hidden"])]
        hidden = "hidden"
    if output == "tokens":
        nodes.append(helper.make_node("Identity", [hidden], ["last_hidden_state"]))
        out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", DIM])
    else:
        inits += [numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
                  numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2")]
        nodes += [helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
                  helper.make_node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
                  helper.make_node("Mul", [hidden, "mask3"], ["masked"]),
                  helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=0),
                  helper.make_node("ReduceSum", ["mask3", "axis1"], ["count"], keepdims=0),
                  helper.make_node("Div", ["total", "count"], ["sentence_embedding"])]
        out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", DIM])
    graph = helper.make_graph(nodes, "tiny-encoder", inputs, [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    if config is not None:
        (folder / "kefuqa.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def write_head(path: Path, embedder: str, labels: dict[str, tuple[list[float], float, float]],
               dim: int = DIM) -> Path:
    head = {"format": HEAD_FORMAT, "embedder": embedder, "dim": dim, "version": "test+1",
            "labels": {k: {"w": w, "b": b, "threshold": th} for k, (w, b, th) in labels.items()}}
    path.write_bytes(gzip.compress(json.dumps(head).encode()))
    return path


COMPLAINT_HEAD = {"complaint": ([8.0, -8.0, 0.0, 0.0], 0.0, 0.5)}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_model(tmp_path / "tiny-zh")


@pytest.fixture
def embedder(folder: Path) -> OnnxEmbedder:
    return OnnxEmbedder(folder)


# ---- OnnxEmbedder ---------------------------------------------------------------------------------------

def test_tokenizer_is_character_level_with_unknowns(folder):
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tok.encode("太差 了").tokens == ["[UNK]", "差", "[UNK]"]


def test_vectors_are_normalised_repeatable_and_mean_pooled(embedder):
    assert embedder.dim == DIM
    v = embedder.embed(["太差了", "我想查一下订单", "差"])
    assert v.shape == (3, DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(embedder.embed(["太差了"])[0], v[0])
    # 太差了 is [UNK] 差 [UNK]: the mean of those rows, normalised
    t = _table()
    want = (t[1] + t[VOCAB["差"]] + t[1]) / 3
    assert np.allclose(v[0], want / np.linalg.norm(want), atol=1e-6)
    assert v[2][0] > 0.95 and v[1][1] > 0.9  # complaint along axis 0, the rest along axis 1


def test_mean_pooling_ignores_padding(embedder):
    short, long = "差", "我想查一下订单，东西太烂了"
    alone = embedder.embed([short])[0]
    batched = embedder.embed([short, long])
    assert np.allclose(batched[0], alone, atol=1e-6)  # 12 [PAD] rows (axis 3 = 9) left out of the mean
    assert abs(batched[0][3]) < 1e-6
    assert np.allclose(batched[1], embedder.embed([long])[0], atol=1e-6)


def test_cls_pooling_prefix_and_max_length_from_kefuqa_json(tmp_path, embedder):
    cls = OnnxEmbedder(make_model(tmp_path / "cls", config={"pooling": "cls"}))
    t = _table()
    first = t[VOCAB["差"]] / np.linalg.norm(t[VOCAB["差"]])
    assert np.allclose(cls.embed(["差好好好"])[0], first, atol=1e-6)
    assert not np.allclose(embedder.embed(["差好好好"])[0], first, atol=1e-3)
    pre = OnnxEmbedder(make_model(tmp_path / "pre", config={"prefix": "差"}))
    assert np.allclose(pre.embed(["好"])[0], embedder.embed(["差好"])[0], atol=1e-6)
    short = OnnxEmbedder(make_model(tmp_path / "short", config={"max_length": 2}))
    assert np.allclose(short.embed(["好差慢慢慢慢"])[0], embedder.embed(["好差"])[0], atol=1e-6)


def test_sentence_output_and_token_type_ids(tmp_path, embedder):
    texts = ["差", "我想查一下订单", "东西太烂了，气死我了"]
    want = embedder.embed(texts)
    for kw in ({"output": "sentence"}, {"token_types": True}, {"output": "sentence", "token_types": True}):
        other = OnnxEmbedder(make_model(tmp_path / "-".join(map(str, kw.values())), **kw))
        assert other.dim == DIM
        assert np.allclose(other.embed(texts), want, atol=1e-6), kw  # token types all 0, padding masked


def test_name_has_the_folder_and_a_digest_of_what_decides_the_vectors(tmp_path, folder, embedder):
    assert re.fullmatch(r"onnx:tiny-zh@[0-9a-f]{8}", embedder.name)
    again = OnnxEmbedder(make_model(tmp_path / "copy" / "tiny-zh"))
    assert again.name == embedder.name  # the same files elsewhere: the same embedder
    assert OnnxEmbedder(make_model(tmp_path / "w" / "tiny-zh", scale=2.0)).name != embedder.name
    assert OnnxEmbedder(make_model(tmp_path / "c" / "tiny-zh", config={"pooling": "cls"})).name != embedder.name


def test_missing_or_corrupt_files_are_model_errors_naming_the_file(tmp_path, folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match=re.escape(str(empty / "model.onnx"))):
        OnnxEmbedder(empty)
    (folder / "model.onnx").write_bytes(b"\x08\x07garbage, not a protobuf")
    with pytest.raises(ModelError, match=re.escape(str(folder / "model.onnx"))):
        OnnxEmbedder(folder)
    make_model(folder)
    (folder / "model.onnx").write_bytes((folder / "model.onnx").read_bytes()[:60])  # truncated
    with pytest.raises(ModelError, match=re.escape(str(folder / "model.onnx"))):
        OnnxEmbedder(folder)
    make_model(folder)
    (folder / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match=re.escape(str(folder / "tokenizer.json"))):
        OnnxEmbedder(folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=re.escape(str(folder / "tokenizer.json"))):
        OnnxEmbedder(folder)
    make_model(folder)
    for bad in ("{pooling: cls", '{"pooling": "max"}', '{"max_length": "long"}', "[1]"):
        (folder / "kefuqa.json").write_text(bad, encoding="utf-8")
        with pytest.raises(ModelError, match=re.escape(str(folder / "kefuqa.json"))):
            OnnxEmbedder(folder)


def test_a_model_that_loads_but_is_no_sentence_encoder_is_a_model_error(tmp_path):
    folder = make_model(tmp_path / "odd")
    graph = helper.make_graph(  # needs an input the embedder cannot feed
        [helper.make_node("Identity", ["pixel_values"], ["out"])], "odd",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              str(folder / "model.onnx"))
    with pytest.raises(ModelError, match=re.escape(str(folder / "model.onnx"))):
        OnnxEmbedder(folder)


# ---- EmbeddingJudge ------------------------------------------------------------------------------------

def _spec(head: Path, folder: Path, **kw: Any) -> JudgeSpec:
    return JudgeSpec(type="embedding", path=str(head), model_dir=str(folder), **kw)


def test_head_scores_texts(tmp_path, folder, embedder):
    head = write_head(tmp_path / "head.json.gz", embedder.name, COMPLAINT_HEAD)
    judge = EmbeddingJudge.load(_spec(head, folder))
    assert judge.name == f"embed:{embedder.name}+test+1"
    texts = ["太差了，慢死了", "我想查一下订单", "差"]
    got = judge.judge_many(texts, "complaint")
    assert all(isinstance(j, Judgement) and j.judge == judge.name and j.threshold == 0.5 and j.span is None
               for j in got)
    v = embedder.embed(texts)
    want = 1 / (1 + np.exp(-(8 * v[:, 0] - 8 * v[:, 1])))
    assert np.allclose([j.score for j in got], want, atol=1e-6)
    assert got[0].score > 0.5 > got[1].score and got[2].score > 0.99


def test_head_of_another_embedder_or_dimension_is_refused_naming_both(tmp_path, folder, embedder):
    other = write_head(tmp_path / "other.json.gz", "onnx:bge-small-zh@0123abcd", COMPLAINT_HEAD)
    with pytest.raises(ModelError, match=r"other\.json\.gz.*onnx:bge-small-zh@0123abcd.*" + re.escape(embedder.name)):
        EmbeddingJudge.load(_spec(other, folder))
    wide = write_head(tmp_path / "wide.json.gz", embedder.name, {"complaint": ([1.0] * 8, 0.0, 0.5)}, dim=8)
    with pytest.raises(ModelError, match=r"8 维.*" + re.escape(embedder.name) + r"（4 维）"):
        EmbeddingJudge.load(_spec(wide, folder))


def test_missing_corrupt_or_malformed_head_is_a_model_error(tmp_path, folder, embedder):
    with pytest.raises(ModelError, match="nope.json.gz"):
        EmbeddingJudge.load(_spec(tmp_path / "nope.json.gz", folder))
    good = gzip.compress(json.dumps({"format": HEAD_FORMAT, "embedder": embedder.name, "dim": DIM,
                                     "labels": {"complaint": {"w": [1, 0, 0, 0], "b": 0, "threshold": 0.5}}}).encode())
    for name, raw in (("trunc.json.gz", good[:30]), ("bad.json.gz", gzip.compress(b"{not json")),
                      ("list.json.gz", gzip.compress(b"[]"))):
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ModelError, match=re.escape(name) + ".*损坏"):
            EmbeddingJudge.load(_spec(tmp_path / name, folder))
    short_w = write_head(tmp_path / "short.json.gz", embedder.name, {"complaint": ([1.0, 2.0], 0.0, 0.5)})
    with pytest.raises(ModelError, match="short.json.gz.*complaint"):
        EmbeddingJudge.load(_spec(short_w, folder))
    no_b = tmp_path / "nob.json"  # an uncompressed head is read too
    no_b.write_text(json.dumps({"format": HEAD_FORMAT, "embedder": embedder.name, "dim": DIM,
                                "labels": {"complaint": {"w": [1, 0, 0, 0], "threshold": 0.5}}}))
    with pytest.raises(ModelError, match="nob.json.*损坏"):
        EmbeddingJudge.load(_spec(no_b, folder))
    (tmp_path / "plain.json").write_bytes(gzip.decompress(good))
    assert EmbeddingJudge.load(_spec(tmp_path / "plain.json", folder)).labels["complaint"][2] == 0.5


def test_label_missing_from_the_head_is_undecided_for_each_text(tmp_path, folder, embedder):
    judge = EmbeddingJudge.load(_spec(write_head(tmp_path / "h.json.gz", embedder.name, COMPLAINT_HEAD), folder))
    got = judge.judge_many(["您好", "谢谢", "差"], "empathy")
    assert len(got) == 3
    assert all(isinstance(j, Undecided) and "empathy" in j.reason and j.judge == judge.name for j in got)


# ---- through kefuqa.check: the fast model picks candidates, the embedding judge decides ---------------

# every utterance scores 0.5 (bias 0) — a candidate over the default floor of 0.15 but under the fast model's
# own threshold, so the fast model alone never fires; 天气 pushes an utterance far below the floor; 差 weighs
# a little, so the fast model marks where the evidence is
FAST = {"format": NGRAM_FORMAT, "version": "every+1", "labels": ["complaint"], "bias": [0.0], "thresholds": [0.99],
        "weights": {"c天气": [[0, -10.0]], "c差": [[0, 0.1]]}}


def test_intent_rule_with_an_embedding_judge_end_to_end(rulebook, tmp_path, folder, embedder):
    fast = tmp_path / "fast.json.gz"
    fast.write_bytes(gzip.compress(json.dumps(FAST).encode()))
    head = write_head(tmp_path / "head.json.gz", embedder.name, COMPLAINT_HEAD)
    rb = rulebook("""
    - {id: X01, name: 客户不满, kind: intent, label: complaint, role: customer, judge: sem, severity: event,
       message: "客户不满（{confidence}）"}
    """, extra=f"""settings:
      judges:
        fast: {{type: ngram, path: '{fast}'}}
        sem: {{type: embedding, path: '{head}', model_dir: '{folder}'}}
    """)
    checker = kefuqa.Checker(rb)
    sem_name = f"embed:{embedder.name}+test+1"
    r = checker.check(conv("A: 您好，请问有什么可以帮您", "C: 我想查一下订单", "C: 东西太差了，慢死了",
                           "C: 今天天气差，快递慢，东西烂", "A: 非常抱歉"))
    (e,) = fired(r, "X01")
    assert e.utterance == 2 and e.judge == sem_name and e.confidence > 0.9
    assert e.evidence == "东西太差了"  # the clause around the span the fast model pointed at
    assert sem_name in r.rulebook["models"]

    # utterance 3 says 差, 慢 and 烂 — the embedding head alone calls it a complaint — but the fast model scores
    # it below the candidate floor, so the cascade keeps the fast model's "no" and never asks the embedder
    texts = ["东西太差了，慢死了", "今天天气差，快递慢，东西烂", "我想查一下订单"]
    alone = EmbeddingJudge.load(_spec(head, folder)).judge_many(texts, "complaint")
    assert all(isinstance(j, Judgement) for j in alone)
    assert alone[1].score > 0.9
    sem = checker.judges.get("sem")
    assert sem.name == sem_name
    got = sem.judge_many(texts, "complaint")
    assert [j.judge for j in got] == [sem_name, "ngram:every+1", sem_name]
    assert got[1].score < 0.15 and got[0].score > 0.9 > 0.1 > got[2].score
    assert got[0].span == (3, 4)  # 差 in the key view 东西太差了慢死了: the fast model's evidence

    # a floor of 0.6: nothing is a candidate any more, the embedding judge decides nothing
    rb2 = rulebook("""
    - {id: X01, name: 客户不满, kind: intent, label: complaint, role: customer, judge: sem, severity: event,
       message: m}
    """, extra=f"""settings:
      judges:
        fast: {{type: ngram, path: '{fast}'}}
        sem: {{type: embedding, path: '{head}', model_dir: '{folder}', candidate_floor: 0.6}}
    """)
    assert not fired(kefuqa.check(conv("C: 东西太差了，慢死了"), rb2), "X01")
    assert {j.judge for j in kefuqa.Checker(rb2).judges.get("sem").judge_many(texts, "complaint")} == {
        "ngram:every+1"}


# ---- training a head on the ONNX model ----------------------------------------------------------------

def _examples() -> list[Example]:
    bad, calm = "差慢烂坏气", "查问好谢请您我的订单"
    out = []
    for k, industry in enumerate(["bank", "hotel", "telecom", "retail", "travel"]):
        split = "heldout" if industry == "travel" else "train"
        for i in range(6):
            # positives: mostly complaint characters among neutral ones; negatives: neutral (and unknown) only
            pos = calm[(i + k) % 10] + bad[i % 5] + bad[(i + k + 1) % 5] + "了" * (i % 3)
            neg = calm[(i + k) % 10] + calm[(2 * i + k + 3) % 10] + "一下" + "吧" * (i % 2)
            for y, text in ((1, pos), (0, neg)):
                out.append(Example(f"{industry}-{i}-{y}", text, "complaint", y, "customer", industry, "spoken",
                                   "authored:test", split))
    return out


@pytest.mark.slow
def test_train_head_on_the_onnx_model_separates_the_classes(tmp_path, folder, embedder):
    pytest.importorskip("sklearn")
    from kefuqa.judge.embed_train import train_head

    examples = _examples()
    out = tmp_path / "head.json.gz"
    logged: list[str] = []
    head = train_head(examples, model_dir=str(folder), out_path=out, log=logged.append)
    assert out.is_file() and not out.with_suffix(".gz.tmp").exists()
    assert head["embedder"] == embedder.name and head["dim"] == DIM and list(head["labels"]) == ["complaint"]
    assert any("complaint" in line for line in logged)
    judge = EmbeddingJudge.load(_spec(out, folder))
    for split in ("train", "heldout"):
        exs = [ex for ex in examples if ex.split == split]
        got = judge.judge_many([ex.text for ex in exs], "complaint")
        assert all(isinstance(j, Judgement) for j in got)
        for ex, j in zip(exs, got, strict=True):
            assert (j.score >= j.threshold) == bool(ex.y), (split, ex.text, j)
