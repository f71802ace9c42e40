"""Precision and recall of a rulebook on the held-out conversations in data/heldout/, per rule and split.

    python bench/eval_heldout.py                   # both halves, the bundled standard rulebook
    python bench/eval_heldout.py --split dev -v    # and every disagreement of the dev half
    python bench/eval_heldout.py --rulebook my-rules/ --json out.json
    python bench/eval_heldout.py --data data/heldout2   # the second, blind set (split test2)

data/heldout/EXPECTED.yaml says, for each conversation, what an inspector applying the standards marks:
``RULE@N`` (a finding on utterance N) or ``RULE`` (call level). A produced finding matches an expected one
when the rule and the utterance agree; for the rules in CALL_LEVEL, whose place is a convention (the first
or last turn, a whole-call omission, a call field, the turn after a complaint, an event), when the rule
agrees — at most once per call. Several findings of one rule on one utterance count once. EVT events are
scored like findings.

The conversations are split by industry. Fix rules against ``dev``; ``test`` is never tuned on, so its
figures are the honest ones. The script prints; it asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

import kefuqa
from kefuqa.errors import InputError
from kefuqa.readers import read_path

HELDOUT = Path(__file__).resolve().parent.parent / "data" / "heldout"

# rules matched by rule alone: openings/closings, whole-call omissions, call fields, complaint handling
# (placed after the first complaint, itself an event), speech measures, events
CALL_LEVEL = {
    "OPN001", "OPN002", "OPN003", "OPN004", "OPN005", "LNG003", "LNG005", "LST002", "INF002",
    "CLS001", "CLS002", "CLS003", "SIL002", "SLA001", "VOC001", "VOC002", "VOC003", "VOC004", "VOC005",
    "CMP001", "CMP002", "CMP003", "EVT001", "EVT002", "EVT003", "EVT004",
}

Key = tuple[str, "int | None"]


def parse_expected(items: list[str], where: str) -> set[Key]:
    out: set[Key] = set()
    for item in items or []:
        rule, _, at = str(item).partition("@")
        if rule in CALL_LEVEL or not at:
            if rule not in CALL_LEVEL:
                raise SystemExit(f"{where}: {item!r} needs @utterance ({rule} is matched by utterance)")
            out.add((rule, None))
        else:
            out.add((rule, int(at)))
    return out


def produced(report: kefuqa.Report) -> tuple[set[Key], dict[Key, str]]:
    keys: set[Key] = set()
    evidence: dict[Key, str] = {}
    for f in [*report.findings, *report.events]:
        key: Key = (f.rule, None) if f.rule in CALL_LEVEL else (f.rule, f.utterance)
        keys.add(key)
        evidence.setdefault(key, getattr(f, "evidence", None) or getattr(f, "message", "") or "")
    return keys, evidence


def load(path: Path = HELDOUT) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    doc = yaml.safe_load((path / "EXPECTED.yaml").read_text(encoding="utf-8"))
    return doc["splits"], doc["conversations"]


def evaluate(checker: kefuqa.Checker, splits_wanted: list[str], verbose: bool = False,
             path: Path = HELDOUT,
             transform: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """``transform`` (a Conversation → Conversation) is applied to each call before it is checked, with the
    same expected findings (bench/eval_robust.py)."""
    splits, convs = load(path)
    industry_split = {ind: s for s, inds in splits.items() for ind in inds}
    counts: dict[str, dict[str, list[int]]] = {s: defaultdict(lambda: [0, 0, 0]) for s in splits_wanted}
    calls = defaultdict(int)
    for name, spec in convs.items():
        split = industry_split[spec["industry"]]
        if split not in splits_wanted:
            continue
        items = list(read_path(path / name))
        if len(items) != 1 or isinstance(items[0], InputError):
            raise SystemExit(f"{name}: cannot be read as one conversation: {items}")
        conv = items[0]
        if transform is not None:
            conv = transform(conv)
        report = checker.check(conv)
        exp = parse_expected(spec.get("expected") or [], name)
        got, evidence = produced(report)
        for key in exp & got:
            counts[split][key[0]][0] += 1
        for key in got - exp:
            counts[split][key[0]][1] += 1
        for key in exp - got:
            counts[split][key[0]][2] += 1
        calls[split] += 1
        if verbose and (got ^ exp):
            print(f"\n[{split}] {name}")
            for key in sorted(got - exp, key=str):
                print(f"  FP {key[0]}@{key[1]}  {evidence.get(key, '')[:60]}")
            for key in sorted(exp - got, key=str):
                where = "" if key[1] is None else f"  「{conv.utterances[key[1]].text[:50]}」"
                print(f"  FN {key[0]}@{key[1]}{where}")
    result: dict[str, Any] = {}
    for split in splits_wanted:
        rows = {}
        for rule, (tp, fp, fn) in sorted(counts[split].items()):
            rows[rule] = {"tp": tp, "fp": fp, "fn": fn,
                          "precision": tp / (tp + fp) if tp + fp else None,
                          "recall": tp / (tp + fn) if tp + fn else None}
        tp = sum(r["tp"] for r in rows.values())
        fp = sum(r["fp"] for r in rows.values())
        fn = sum(r["fn"] for r in rows.values())
        result[split] = {"calls": calls[split], "rules": rows,
                         "total": {"tp": tp, "fp": fp, "fn": fn,
                                   "precision": tp / (tp + fp) if tp + fp else None,
                                   "recall": tp / (tp + fn) if tp + fn else None}}
    return result


def _f(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def print_table(result: dict[str, Any]) -> None:
    for split, r in result.items():
        t = r["total"]
        print(f"\n== {split}: {r['calls']} calls — precision {_f(t['precision'])}, recall {_f(t['recall'])} "
              f"(TP {t['tp']}, FP {t['fp']}, FN {t['fn']})")
        print(f"{'rule':<8}{'expected':>9}{'found':>7}{'TP':>5}{'FP':>5}{'FN':>5}{'P':>8}{'R':>8}")
        for rule, row in r["rules"].items():
            print(f"{rule:<8}{row['tp'] + row['fn']:>9}{row['tp'] + row['fp']:>7}{row['tp']:>5}{row['fp']:>5}"
                  f"{row['fn']:>5}{_f(row['precision']):>8}{_f(row['recall']):>8}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rulebook", default=None, help="a bundled rulebook name or a path (default: standard)")
    ap.add_argument("--data", type=Path, default=HELDOUT,
                    help="folder with EXPECTED.yaml and the conversations (default: data/heldout)")
    ap.add_argument("--split", default="both", help="a split of that folder's EXPECTED.yaml, or both (all of them)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list each conversation's disagreements")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    checker = kefuqa.checker_for(args.rulebook)
    splits, _ = load(args.data)
    if args.split not in ("both", *splits):
        ap.error(f"{args.data}: no split {args.split!r} (splits: {', '.join(splits)})")
    wanted = list(splits) if args.split == "both" else [args.split]
    result = evaluate(checker, wanted, verbose=args.verbose, path=args.data)
    print(f"rulebook {checker.rulebook.name} {checker.rulebook.version}")
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
