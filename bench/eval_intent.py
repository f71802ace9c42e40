"""Quality of the judgement layer (issue 8), measured on data the models never trained on.

    python bench/eval_intent.py [--data data/intent] [--semantic] [--examples examples]

1. Per label: precision, recall and F1 on the held-out industries of the corpus (data/intent/splits.yaml:
   the models are trained on other industries only), for the fast n-gram model and — with --semantic and
   kefuqa[semantic] installed — the embedding head and the cascade (fast model → embedding head on its
   candidates). Figures for authored utterances and for all registers (with ASR-noise and Traditional
   variants).
2. Per rule, on the held-out corpus utterances as one-utterance conversations: how often the bundled
   rule fires on the label's positives (recall) and stays quiet on its hard negatives, with the phrase
   lists alone ("before": judges switched off) and with the default model ("after").
3. Per rule, on the example conversations (examples/ with the inspector's EXPECTED.yaml): precision,
   recall and F1 of the fired rule IDs, before and after.

This is a measurement, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import kefuqa  # noqa: E402
from kefuqa.judge import Judgement  # noqa: E402
from kefuqa.judge.corpus import Example, build_corpus  # noqa: E402
from kefuqa.judge.ngram import NgramModel  # noqa: E402
from kefuqa.judge.train import Scores, evaluate, ngram_decider  # noqa: E402
from kefuqa.model import Conversation  # noqa: E402
from kefuqa.readers import read_path  # noqa: E402

# which bundled rule reads which label (role and rule kind as in rulebooks/standard)
RULE_OF_LABEL = {"complaint": "EVT001", "anger": "EVT004", "blame_shift": "RSP001", "flat_refusal": "RSP002",
                 "reproach": "LNG004", "hedge": "LNG006"}


class _Off:
    """A judge that says no to everything: the rules with their phrase lists alone."""

    name = "off"

    def judge_many(self, texts: list[str], label: str) -> list[Judgement]:
        return [Judgement(label, 0.0, 0.5, None, self.name) for _ in texts]


def _checker(judges_on: bool) -> kefuqa.Checker:
    checker = kefuqa.Checker(kefuqa.load_rulebook("standard"))
    if not judges_on:
        checker.judges._made = {name: _Off() for name in checker.judges.names()}  # type: ignore[assignment]
    return checker


def _table(title: str, rows: dict[str, Scores]) -> None:
    print(f"\n{title}")
    print(f"{'label':20s} {'P':>6s} {'R':>6s} {'F1':>6s} {'pos':>5s} {'neg':>5s}")
    f1s = []
    for k, s in sorted(rows.items()):
        f1s.append(s.f1)
        print(f"{k:20s} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} {s.tp + s.fn:5d} {s.fp + s.tn:5d}")
    if f1s:
        print(f"{'macro F1':20s} {'':6s} {'':6s} {sum(f1s) / len(f1s):6.3f}")


def label_quality(examples: list[Example], semantic: bool) -> None:
    held = [e for e in examples if e.split == "heldout"]
    authored = [e for e in held if e.source.startswith("authored")]
    fast = NgramModel.load()
    print(f"fast model {fast.name}; held-out industries: {', '.join(sorted({e.industry for e in held}))}")
    _table("fast n-gram model — held-out, authored utterances", evaluate(ngram_decider(fast), authored))
    _table("fast n-gram model — held-out, all registers (spoken, ASR noise, Traditional)",
           evaluate(ngram_decider(fast), held))
    if not semantic:
        return
    from kefuqa.judge.embed import EmbeddingJudge
    from kefuqa.judge.registry import Cascade, FastJudge
    from kefuqa.rules.schema import JudgeSpec

    head = EmbeddingJudge.load(JudgeSpec(type="embedding"))
    cascade = Cascade(FastJudge(fast), head, JudgeSpec(type="embedding").candidate_floor)

    def decider(judge: object) -> object:
        def decide(text: str, label: str) -> bool:
            (j,) = judge.judge_many([text], label)  # type: ignore[attr-defined]
            return isinstance(j, Judgement) and j.score >= j.threshold
        return decide

    t = time.perf_counter()
    _table(f"embedding head {head.name} — held-out, authored", evaluate(decider(head), authored))  # type: ignore[arg-type]
    _table("cascade fast → embedding head — held-out, authored", evaluate(decider(cascade), authored))  # type: ignore[arg-type]
    _table("cascade fast → embedding head — held-out, all registers", evaluate(decider(cascade), held))  # type: ignore[arg-type]
    print(f"(semantic evaluation took {time.perf_counter() - t:.0f} s)")


def rules_on_utterances(examples: list[Example]) -> None:
    held = [e for e in examples if e.split == "heldout" and e.label in RULE_OF_LABEL]
    print("\nbundled rules on held-out corpus utterances (each a one-utterance conversation)")
    print(f"{'rule':8s} {'label':14s} {'before R':>9s} {'before P':>9s} {'after R':>8s} {'after P':>8s} {'after F1':>9s}")
    for name, on in (("before", False), ("after", True)):
        checker = _checker(on)
        got: dict[str, Scores] = defaultdict(Scores)
        for e in held:
            rule = RULE_OF_LABEL[e.label]
            conv = Conversation.model_validate({"id": e.id, "utterances": [{"role": e.role, "text": e.text}]})
            r = checker.check(conv)
            hit = any(f.rule == rule for f in r.findings) or any(x.rule == rule for x in r.events)
            s = got[e.label]
            s.tp += hit and e.y == 1
            s.fp += hit and e.y == 0
            s.fn += (not hit) and e.y == 1
            s.tn += (not hit) and e.y == 0
        if name == "before":
            before = got
        else:
            for label, s in sorted(got.items()):
                b = before[label]
                print(f"{RULE_OF_LABEL[label]:8s} {label:14s} {b.recall:9.3f} {b.precision:9.3f} {s.recall:8.3f} "
                      f"{s.precision:8.3f} {s.f1:9.3f}")


def rules_on_examples(folder: Path) -> None:
    expected = {k: set(v or []) for k, v in yaml.safe_load((folder / "EXPECTED.yaml").read_text()).items()}
    convs = {}
    # the top-level files EXPECTED.yaml speaks of (a subfolder such as telephony/ has its own)
    for p in sorted(x for x in folder.iterdir() if x.is_file() and x.name in expected):
        for item in read_path(p):
            if isinstance(item, Conversation):
                convs[Path(p).name] = item
    print(f"\nbundled rules on the {len(convs)} example conversations (inspector's EXPECTED.yaml)")
    print(f"{'rule':8s} {'before P':>9s} {'before R':>9s} {'after P':>8s} {'after R':>8s} {'after F1':>9s}")
    res = {}
    for name, on in (("before", False), ("after", True)):
        checker = _checker(on)
        per: dict[str, Scores] = defaultdict(Scores)
        for fname, conv in convs.items():
            r = checker.check(conv)
            fired = {f.rule for f in r.findings} | {e.rule for e in r.events}
            want = expected.get(fname, set())
            for rule in fired | want:
                s = per[rule]
                s.tp += rule in fired and rule in want
                s.fp += rule in fired and rule not in want
                s.fn += rule not in fired and rule in want
        res[name] = per
    for rule in sorted(set(res["before"]) | set(res["after"])):
        b, a = res["before"][rule], res["after"][rule]
        if (b.fp, b.fn, a.fp, a.fn) == (0, 0, 0, 0):
            continue  # perfect either way: listed in the total only
        print(f"{rule:8s} {b.precision:9.3f} {b.recall:9.3f} {a.precision:8.3f} {a.recall:8.3f} {a.f1:9.3f}")
    for name in ("before", "after"):
        tot = Scores()
        for s in res[name].values():
            tot.tp += s.tp
            tot.fp += s.fp
            tot.fn += s.fn
        print(f"{'all':8s} {name}: P {tot.precision:.3f}  R {tot.recall:.3f}  F1 {tot.f1:.3f}  "
              f"(false findings {tot.fp}, missed {tot.fn})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "intent")
    ap.add_argument("--examples", type=Path, default=ROOT / "examples")
    ap.add_argument("--semantic", action="store_true", help="also the embedding head and the cascade")
    args = ap.parse_args()
    # the examples first, in a process that has seen nothing else, as `kefuqa check` scores them (a guard:
    # models once depended on the order a process met pinyin syllables; see features.py)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rules_on_examples(args.examples)
    examples = build_corpus(args.data, [])
    label_quality(examples, args.semantic)
    rules_on_utterances(examples)
    print(buf.getvalue(), end="")


if __name__ == "__main__":
    main()
