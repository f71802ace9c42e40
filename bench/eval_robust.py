"""Precision and recall of a rulebook on transformed copies of the held-out conversations (register robustness).

    python bench/eval_robust.py --split dev              # data/heldout, dev half, every transform
    python bench/eval_robust.py --data data/heldout2     # a blind set: summary figures only, no per-rule rows
    python bench/eval_robust.py --split dev --only homophone --rate 0.05 --seed 2

Each conversation is checked as it is (the baseline) and after each transform, with the same expected findings
(loading and scoring are bench/eval_heldout.py's):

- ``s2t`` / ``s2twp``: Simplified → Traditional with OpenCC (``s2twp``: Taiwan characters and phrases);
- ``nopunct``: every punctuation mark and space removed (ASR output often has none);
- ``spaced``: a space between every two characters (some ASR engines and tokenised exports);
- ``homophone``: a share (``--rate``, 3 %) of the CJK characters replaced by another character with the same
  toneless reading (pypinyin), drawn from the characters of the rulebook and the data;
- ``fillers``: 嗯 / 呃 / 那个 / 就是 / 然后 inserted at the start of a share of the clauses;
- ``num2zh`` / ``zh2num``: Arabic digits written as Chinese numerals (short numbers as values, 15 → 十五; long
  ones digit by digit, as they are read out) and Chinese numerals as digits (三天 → 3天).

Only utterance texts change: roles, times and every other field are kept. Everything is seeded (``--seed``) and
deterministic: the random choices of a conversation depend on the seed, the transform, the call id and the
utterance index only. Per rule, the rows where a transform lowers precision or recall are printed (not for
the blind sets, ``--summary``, which is the default for folders other than data/heldout).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import opencc

import kefuqa
from kefuqa.model import Conversation
from kefuqa.normalize import syllable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_heldout import HELDOUT, evaluate, load  # noqa: E402

FILLERS = ("嗯", "呃", "那个", "就是", "然后")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_DIGITS = "零一二三四五六七八九"
_ZH_DIGIT = {c: i for i, c in enumerate(_DIGITS)} | {"两": 2, "〇": 0}


# ---- text transforms ----------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _opencc(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def s2t(text: str, rng: random.Random | None = None) -> str:
    return str(_opencc("s2t").convert(text))


def s2twp(text: str, rng: random.Random | None = None) -> str:
    return str(_opencc("s2twp").convert(text))


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PZ" or ch in " \t~～"


def nopunct(text: str, rng: random.Random | None = None) -> str:
    return "".join(ch for ch in text if not _is_punct(ch))


def spaced(text: str, rng: random.Random | None = None) -> str:
    return " ".join(ch for ch in text if not ch.isspace())


def homophone_table(chars: Iterable[str]) -> dict[str, list[str]]:
    """For each CJK character of ``chars``, the other characters of ``chars`` with its toneless reading."""
    by_syllable: dict[str, list[str]] = {}
    for ch in sorted(set(chars)):
        s = syllable(ch) if _CJK.match(ch) else None
        if s:
            by_syllable.setdefault(s, []).append(ch)
    table: dict[str, list[str]] = {}
    for group in by_syllable.values():
        for ch in group:
            others = [c for c in group if c != ch]
            if others:
                table[ch] = others
    return table


def make_homophone(table: dict[str, list[str]], rate: float) -> Callable[[str, random.Random], str]:
    def homophone(text: str, rng: random.Random) -> str:
        out = []
        for ch in text:
            alts = table.get(ch)
            out.append(rng.choice(alts) if alts and rng.random() < rate else ch)
        return "".join(out)
    return homophone


_CLAUSE = re.compile(r"(?<=[，。！？；、,.!?;])")


def make_fillers(rate: float) -> Callable[[str, random.Random], str]:
    def fillers(text: str, rng: random.Random) -> str:
        parts = [p for p in _CLAUSE.split(text) if p]
        return "".join((rng.choice(FILLERS) + "，" + p) if rng.random() < rate and _CJK.search(p) else p
                       for p in parts)
    return fillers


def _value_zh(n: int) -> str:
    """0 ≤ n < 10000 as spoken: 15 → 十五, 205 → 二百零五, 2000 → 两千."""
    if n == 0:
        return "零"
    units = [(1000, "千"), (100, "百"), (10, "十")]
    out, zero = "", False
    for value, unit in units:
        d, n = divmod(n, value)
        if d:
            if zero:
                out += "零"
            out += ("两" if d == 2 and value >= 1000 else _DIGITS[d]) + unit
            zero = False
        elif out:
            zero = True
    if n:
        if zero:
            out += "零"
        out += _DIGITS[n]
    return out[1:] if out.startswith("一十") else out


def num2zh(text: str, rng: random.Random | None = None) -> str:
    def one(m: re.Match[str]) -> str:
        ascii_digits = unicodedata.normalize("NFKC", m.group(0))
        if len(ascii_digits) <= 4 and not ascii_digits.startswith("0"):
            return _value_zh(int(ascii_digits))
        return "".join("幺" if d == "1" else _DIGITS[int(d)] for d in ascii_digits)
    return re.sub(r"[0-9０-９]+", one, text)


_ZH_NUM = re.compile(r"[零〇一二两三四五六七八九十百千]+(?=[个天号点分元块秒月年小周次位岁张楼层期万])"
                     r"|[零〇一二三四五六七八九幺]{3,}")


def _zh_value(s: str) -> int | None:
    if all(c in _ZH_DIGIT or c == "幺" for c in s):
        return None
    total, cur = 0, 0
    for c in s:
        if c in _ZH_DIGIT:
            cur = _ZH_DIGIT[c]
        elif c in "十百千":
            total += (cur or 1) * {"十": 10, "百": 100, "千": 1000}[c]
            cur = 0
        else:
            return None
    return total + cur


def zh2num(text: str, rng: random.Random | None = None) -> str:
    def one(m: re.Match[str]) -> str:
        s = m.group(0)
        if all(c in _ZH_DIGIT or c == "幺" for c in s):
            return "".join("1" if c == "幺" else str(_ZH_DIGIT[c]) for c in s)
        v = _zh_value(s)
        return m.group(0) if v is None else str(v)
    return _ZH_NUM.sub(one, text)


# ---- conversations ------------------------------------------------------------------------------------

TextFn = Callable[[str, random.Random], str]


def transform_conversation(conv: Conversation, fn: TextFn, name: str, seed: int) -> Conversation:
    """A copy of ``conv`` with each utterance's text passed through ``fn``; nothing else changes."""
    utts = []
    for i, u in enumerate(conv.utterances):
        rng = random.Random(f"{seed}:{name}:{conv.id}:{i}")
        utts.append(u.model_copy(update={"text": fn(u.text or "", rng)}) if u.text else u)
    return conv.model_copy(update={"utterances": utts})


def transforms(chars: Iterable[str], rate: float, filler_rate: float) -> dict[str, TextFn]:
    return {
        "s2t": s2t, "s2twp": s2twp, "nopunct": nopunct, "spaced": spaced,
        "homophone": make_homophone(homophone_table(chars), rate),
        "fillers": make_fillers(filler_rate), "num2zh": num2zh, "zh2num": zh2num,
    }


def character_pool(checker: kefuqa.Checker, data: Path) -> set[str]:
    chars: set[str] = set()
    for source in checker.rulebook.sources:
        p = Path(source)
        if p.is_file():
            chars.update(p.read_text(encoding="utf-8"))
    for f in sorted(data.glob("*.json")):
        chars.update(f.read_text(encoding="utf-8"))
    return {c for c in chars if _CJK.match(c)}


def _f(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rulebook", default=None)
    ap.add_argument("--data", type=Path, default=HELDOUT)
    ap.add_argument("--split", default="both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=0.03, help="share of CJK characters replaced by a homophone")
    ap.add_argument("--filler-rate", type=float, default=0.3, help="share of clauses given a filler")
    ap.add_argument("--only", default="", help="comma-separated transforms (default: all)")
    ap.add_argument("--summary", action=argparse.BooleanOptionalAction, default=None,
                    help="totals only, no per-rule rows (default for folders other than data/heldout)")
    args = ap.parse_args(argv)
    summary = args.summary if args.summary is not None else args.data.resolve() != HELDOUT
    checker = kefuqa.checker_for(args.rulebook)
    splits, _ = load(args.data)
    if args.split not in ("both", *splits):
        ap.error(f"{args.data}: no split {args.split!r} (splits: {', '.join(splits)})")
    wanted = list(splits) if args.split == "both" else [args.split]
    fns = transforms(character_pool(checker, args.data), args.rate, args.filler_rate)
    if args.only:
        fns = {k: fns[k] for k in args.only.split(",")}
    print(f"rulebook {checker.rulebook.name} {checker.rulebook.version}  data {args.data}  seed {args.seed}  "
          f"homophone rate {args.rate}  filler rate {args.filler_rate}")
    base = evaluate(checker, wanted, path=args.data)
    results: dict[str, dict[str, Any]] = {}
    for name, fn in fns.items():
        results[name] = evaluate(checker, wanted, path=args.data,
                                 transform=lambda c, fn=fn, name=name: transform_conversation(c, fn, name, args.seed))
    for split in wanted:
        b = base[split]["total"]
        print(f"\n== {split}: {base[split]['calls']} calls")
        print(f"{'transform':<11}{'P':>7}{'R':>7}{'ΔP':>8}{'ΔR':>8}{'TP':>5}{'FP':>5}{'FN':>5}")
        print(f"{'baseline':<11}{_f(b['precision']):>7}{_f(b['recall']):>7}{'':>8}{'':>8}"
              f"{b['tp']:>5}{b['fp']:>5}{b['fn']:>5}")
        for name, r in results.items():
            t = r[split]["total"]
            dp = (t["precision"] or 0) - (b["precision"] or 0)
            dr = (t["recall"] or 0) - (b["recall"] or 0)
            print(f"{name:<11}{_f(t['precision']):>7}{_f(t['recall']):>7}{dp:>+8.3f}{dr:>+8.3f}"
                  f"{t['tp']:>5}{t['fp']:>5}{t['fn']:>5}")
        if summary:
            continue
        for name, r in results.items():
            rows = []
            for rule, row in r[split]["rules"].items():
                brow = base[split]["rules"].get(rule, {"tp": 0, "fp": 0, "fn": 0})
                if row["tp"] < brow["tp"] or row["fp"] > brow["fp"]:
                    rows.append(f"    {rule:<8} TP {brow['tp']}→{row['tp']}  FP {brow['fp']}→{row['fp']}  "
                                f"FN {brow['fn']}→{row['fn']}")
            if rows:
                print(f"  {name}: rules that drop")
                print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
