"""Learning from inspectors, the model side: review rows read from an export, added to the training split only,
the gate that keeps a worse candidate out, activation in the deployment's model folder, and which model file
the fast judge loads. Training runs on a small corpus fixture (two labels, four training industries, two held
out; a few seconds) and is marked slow."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from tests.conftest import conv, fired
from typer.testing import CliRunner

import kefuqa
from kefuqa.cli import app
from kefuqa.judge.corpus import CorpusError, Example, build_corpus
from kefuqa.judge.deploy import MODEL_DIR_ENV, deployed_model_path, target_model_path
from kefuqa.judge.ngram import DEFAULT_MODEL, FORMAT, NgramModel
from kefuqa.judge.retrain import (
    activate,
    add_reviews,
    candidate_path,
    compare,
    read_review_rows,
    retrain,
)

SMALL = Path(__file__).parent / "fixtures" / "intent_small"
FAST_GRID = (1.0,)  # one regularisation strength: cross-validation fits a quarter as many models


def tiny(version: str, complaint_weight: float = 4.0) -> dict:  # type: ignore[type-arg]
    """A hand-written model: 压扁 says complaint with `complaint_weight`, 厂家 says blame_shift."""
    return {"format": FORMAT, "version": version, "labels": ["blame_shift", "complaint"], "bias": [-3.0, -3.0],
            "thresholds": [0.5, 0.5], "weights": {"c压扁": [[1, complaint_weight]], "c厂家": [[0, 4.0]]}}


def write_model(path: Path, data: dict) -> Path:  # type: ignore[type-arg]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(data).encode()))
    return path


def ex(text: str, label: str, y: int, split: str = "heldout", industry: str = "hotel") -> Example:
    role = "customer" if label == "complaint" else "agent"
    return Example(f"{label}-{text}", text, label, y, role, industry, "spoken", "authored:t", split)


HELD = [ex("箱子都压扁了", "complaint", 1), ex("盒子压扁了你们怎么送的", "complaint", 1),
        ex("我想查快递到哪了", "complaint", 0), ex("这个您得问厂家", "blame_shift", 1),
        ex("我帮您联系一下", "blame_shift", 0)]


# ---- the gate (no training) ------------------------------------------------------------------------------------


def test_gate_compares_both_models_on_the_same_heldout_rows() -> None:
    good = NgramModel(tiny("good"))
    worse = NgramModel(tiny("worse", complaint_weight=0.0))  # never says complaint
    g = compare(good, worse, HELD)
    by = {c.label: c for c in g.labels}
    assert by["complaint"].current == 1.0 and by["complaint"].candidate == 0.0 and by["complaint"].worse
    assert by["blame_shift"].delta == 0.0 and not by["blame_shift"].worse
    assert g.macro_dropped and not g.passed
    assert g.reasons() == ["标签 complaint 的留出 F1 从 1.000 降到 0.000（降幅超过 0.01）",
                           "宏平均 F1 从 1.000 降到 0.500"]
    assert compare(worse, good, HELD).passed  # better: passes
    assert compare(good, good, HELD).passed  # equal: passes (not worse)
    assert compare(None, worse, HELD).passed  # nothing to compare with: the first model passes


def test_review_rows_are_read_with_file_and_line_errors(tmp_path: Path) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"id": "review-c1-3-XTR001", "text": " 这个您得问厂家 ", "label": "blame_shift", "y": 1,
                             "role": "agent", "industry": "reviews", "register": "spoken", "source": "review:7",
                             "split": "heldout", "rule": "XTR001", "call_id": "c1", "utterance": 3},
                            ensure_ascii=False) + "\n\n", encoding="utf-8")
    (row,) = read_review_rows(p)
    assert (row.text, row.label, row.y, row.source, row.split) == ("这个您得问厂家", "blame_shift", 1, "review:7", "train")
    for line, reason in [('{"text": "x", "label": "grumpy", "y": 1}', "未知标签 'grumpy'"),
                         ('{"text": "x", "label": "complaint", "y": 2}', "y 应为 0 或 1"),
                         ('{"text": "x", "label": "complaint"}', "缺少字段 y"),
                         ("{not json", "")]:
        p.write_text('{"text": "好的", "label": "complaint", "y": 0}\n' + line + "\n", encoding="utf-8")
        with pytest.raises(CorpusError, match=rf"r\.jsonl:2: .*{reason}"):
            read_review_rows(p)
    with pytest.raises(CorpusError, match="无法读取"):
        read_review_rows(tmp_path / "missing.jsonl")
    # the inspection pages' export labels a phrase rule's rows with the rule id: left out, said why
    p.write_text('{"text": "我怎么知道", "label": "LNG001", "y": 1, "rule": "LNG001"}\n'
                 '{"text": "这个您得问厂家", "label": "blame_shift", "y": 1, "rule": "XTR001"}\n', encoding="utf-8")
    skipped: list[str] = []
    assert [r.text for r in read_review_rows(p, skipped)] == ["这个您得问厂家"]
    assert skipped == [f"{p}:1: 规则 LNG001 不是判断规则，已跳过"]
    with pytest.raises(CorpusError, match=r"r\.jsonl:1: 未知标签 'LNG001'"):
        read_review_rows(p)


def test_review_rows_only_ever_join_the_training_split() -> None:
    corpus = [*HELD, ex("你们这服务太差了", "complaint", 1, "train", "bank")]
    reviews = [ex("箱子都壓扁了！", "complaint", 0, "train", "reviews"),  # a held-out sentence (Traditional, "！")
               ex("你们这服务太差了", "complaint", 1, "train", "reviews"),  # already a training row
               ex("说好上午来修，这都下午三点了", "complaint", 1, "train", "reviews"),
               ex("说好上午来修这都下午三点了", "complaint", 1, "train", "reviews")]  # the same, twice
    got = add_reviews(corpus, reviews)
    assert (got.added, got.duplicates, got.heldout) == (1, 2, 1)
    assert [e.text for e in got.rows if e.industry == "reviews"] == ["说好上午来修，这都下午三点了"]
    assert [e for e in got.rows if e.split == "heldout"] == HELD  # the held-out split is untouched


def test_activation_keeps_the_replaced_model_and_refuses_a_broken_file(tmp_path: Path) -> None:
    target = write_model(tmp_path / "m" / "intent-ngram.json.gz", tiny("v1"))
    cand = write_model(candidate_path(target, "v2"), tiny("v2"))
    kept = activate(cand, target, NgramModel.load(target))
    assert NgramModel.load(target).version == "v2"
    assert kept == tmp_path / "m" / "candidates" / "intent-ngram-v1.json.gz" and NgramModel.load(kept).version == "v1"
    broken = tmp_path / "broken.json.gz"
    broken.write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(kefuqa.judge.ModelError):
        activate(broken, target, NgramModel.load(target))
    assert NgramModel.load(target).version == "v2"  # untouched
    assert not list(target.parent.glob("*.tmp"))


def test_the_fast_judge_loads_the_deployments_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    rulebook) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    assert deployed_model_path() == DEFAULT_MODEL == target_model_path()
    folder = tmp_path / "models"
    monkeypatch.setenv(MODEL_DIR_ENV, str(folder))
    assert target_model_path() == folder / "intent-ngram.json.gz"
    assert deployed_model_path() == DEFAULT_MODEL  # nothing trained there yet: the bundled model
    write_model(folder / "intent-ngram.json.gz", tiny("deployed+1"))
    assert deployed_model_path() == folder / "intent-ngram.json.gz"
    info = CliRunner().invoke(app, ["model", "info"])
    assert info.exit_code == 0 and info.output.startswith("ngram:deployed+1 ")
    rule = "- {id: X01, name: 推诿, kind: intent, label: blame_shift, points: 3, dimension: 礼貌, message: m}"
    r = kefuqa.check(conv("A: 这个您得问厂家"), rulebook(rule))
    assert r.rulebook["models"] == "ngram:deployed+1" and fired(r, "X01")[0].judge == "ngram:deployed+1"
    # a rulebook that names its model file keeps it
    pinned = write_model(tmp_path / "pinned.json.gz", tiny("pinned+1"))
    extra = f"settings:\n  judges:\n    fast: {{type: ngram, path: '{pinned}'}}\n"
    assert kefuqa.check(conv("A: 这个您得问厂家"), rulebook(rule, extra=extra)).rulebook["models"] == "ngram:pinned+1"


# ---- retraining on the small corpus (slow: trains models) -------------------------------------------------------


@pytest.fixture(scope="module")
def small_corpus() -> list[Example]:
    return build_corpus(SMALL)


def _jsonl(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_worse_candidate_is_kept_out(small_corpus: list[Example], tmp_path: Path) -> None:
    target = tmp_path / "intent-ngram.json.gz"
    first = retrain(small_corpus, [], target, force=True, log=lambda _: None, c_grid=FAST_GRID)  # the first here
    assert first.activated and NgramModel.load(target).version == first.version
    # inspectors' "verdicts" that contradict the corpus: every training complaint row with the other answer
    poison = [ex(e.text, e.label, 1 - e.y, "train", "reviews") for e in small_corpus
              if e.split == "train" and e.label == "complaint"]
    got = retrain(small_corpus, poison, target, log=lambda _: None, c_grid=FAST_GRID)
    assert not got.activated and not got.gate.passed and got.added.added > 100
    worse = {c.label for c in got.gate.labels if c.worse}
    assert "complaint" in worse
    assert NgramModel.load(target).version == first.version  # the current model stays
    assert NgramModel.load(got.candidate).version == got.version  # the candidate is kept for a look
    forced = retrain(small_corpus, poison, target, force=True, log=lambda _: None, c_grid=FAST_GRID)
    assert forced.activated and forced.forced and NgramModel.load(target).version == forced.version
    assert forced.kept is not None and NgramModel.load(forced.kept).version == first.version


@pytest.mark.slow
def test_a_candidate_that_is_not_worse_is_activated(small_corpus: list[Example], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployment's model was trained on a sliver of the corpus; retraining with the whole corpus and the
    inspectors' rows does better on the held-out industries and replaces it in KEFUQA_MODEL_DIR."""
    folder = tmp_path / "models"
    monkeypatch.setenv(MODEL_DIR_ENV, str(folder))
    sliver = [e for e in small_corpus if e.split == "heldout" or (e.industry in ("bank", "telecom") and
                                                                     e.source.startswith("authored")
                                                                     and e.id[-2:] in ("00", "01", "02"))]
    old = retrain(sliver, [], target_model_path(), force=True, log=lambda _: None, c_grid=FAST_GRID)
    assert old.activated and deployed_model_path() == folder / "intent-ngram.json.gz"
    reviews = [ex("你们这快递怎么送的，箱子都压扁了", "complaint", 1, "train", "reviews"),
               ex("打了半天才打进来", "complaint", 1, "train", "reviews"),
               ex("这块是第三方负责的，跟我们这边没关系", "blame_shift", 1, "train", "reviews")]
    got = retrain(small_corpus, reviews, target_model_path(), log=lambda _: None, c_grid=FAST_GRID)
    assert got.gate.passed and got.activated and not got.forced and got.added.added == 3
    assert got.gate.candidate_macro > got.gate.current_macro
    new = NgramModel.load(deployed_model_path())
    assert new.version == got.version and new.meta["reviews"]["added"] == 3
    assert new.meta["reviews"]["replaces"] == old.version
    assert got.kept == folder / "candidates" / f"intent-ngram-{old.version}.json.gz"


@pytest.mark.slow
def test_train_cli_with_reviews_prints_the_comparison_and_keeps_a_worse_model(tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(SMALL, data)
    model = tmp_path / "m" / "intent-ngram.json.gz"
    runner = CliRunner()
    retrain(build_corpus(SMALL), [], model, force=True, log=lambda _: None, c_grid=FAST_GRID)
    before = NgramModel.load(model).version
    rows = [e.__dict__ for e in build_corpus(SMALL)]
    poison = _jsonl(tmp_path / "bad.jsonl", [{**row, "y": 1 - row["y"]} for row in rows
                                            if row["split"] == "train" and row["label"] == "complaint"])
    r = runner.invoke(app, ["model", "train", "--data", str(data), "--model", str(model), "--reviews", str(poison)])
    assert r.exit_code == 1, r.output
    assert "留出行业上的比较" in r.output and "complaint" in r.output and "下降超过 0.01" in r.output
    assert "未启用" in r.output and "继续使用当前模型" in r.output and "--force" in r.output
    assert NgramModel.load(model).version == before
    bad = _jsonl(tmp_path / "broken.jsonl", [{"text": "x", "label": "grumpy", "y": 1}])
    r = runner.invoke(app, ["model", "train", "--data", str(data), "--model", str(model), "--reviews", str(bad)])
    assert r.exit_code == 2 and "broken.jsonl:1" in r.output and "未知标签" in r.output
