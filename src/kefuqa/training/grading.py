"""Grading: choice questions by their key, rewrites and typed replies by the rulebook itself.

No I/O: the caller gives a compiled `Checker` (kefuqa.checker_for) and gets feedback values back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import normalize
from ..engine.checker import Checker
from ..judge.labels import labels as load_labels
from ..judge.ngram import NgramModel
from ..model import Conversation, Finding
from .schema import MultipleChoice, Question, Rewrite, SingleChoice, TrueFalse, Turn

MAX_REPLY = 500  # characters: a reply on the phone is a sentence or three, never a page
_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!][^>]*>|&[A-Za-z]+;|&#\d+;")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ReplyError(ValueError):
    """A reply that cannot be graded: empty, too long, markup. The message says why, in Chinese."""


def clean_reply(text: str | None) -> str:
    """The reply as typed, checked: raises ReplyError with a clear reason; nothing is graded or stored."""
    t = (text or "").strip()
    if not t:
        raise ReplyError("回复为空：请输入您要对客户说的话")
    if len(t) > MAX_REPLY:
        raise ReplyError(f"回复过长：{len(t)} 字，一次回复最多 {MAX_REPLY} 字，请分句说")
    m = _MARKUP.search(t)
    if m:
        raise ReplyError(f"回复中含有标记「{m.group(0)[:20]}」：请只输入要对客户说的话，不要带 HTML 或代码")
    if _CONTROL.search(t):
        raise ReplyError("回复中含有控制字符：请只输入要对客户说的话")
    return t


@dataclass
class Feedback:
    """What the trainee sees after one attempt."""

    correct: bool
    findings: list[Finding] = field(default_factory=list)  # rule findings on the reply
    pending: list[Finding] = field(default_factory=list)  # omissions a later reply can still make good
    missing: list[str] = field(default_factory=list)  # required elements not present
    labels: list[str] = field(default_factory=list)  # judgement labels (names) that should not have fired
    suggestions: list[str] = field(default_factory=list)  # the prescribed wording (rule suggestions)
    model: str | None = None  # a reply to the standard
    explain: str = ""
    answer: Any = None  # the key for choice questions

    def messages(self) -> list[str]:
        out = [f"{f.rule} {f.message}" for f in self.findings]
        out += [f"缺少要素：{m}" for m in self.missing]
        out += [f"判断模型认为这句话属于「{n}」" for n in self.labels]
        out += [f"提醒：{f.rule} {f.message}（后面的回复还可以补上）" for f in self.pending]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"correct": self.correct, "findings": [f.to_dict() for f in self.findings],
                "pending": [f.to_dict() for f in self.pending], "missing": self.missing,
                "labels": self.labels, "suggestions": self.suggestions, "model": self.model,
                "explain": self.explain, "answer": self.answer, "messages": self.messages()}


_MODEL: list[NgramModel] = []


def judge_model() -> NgramModel:
    if not _MODEL:
        _MODEL.append(NgramModel.load())
    return _MODEL[0]


def label_names() -> dict[str, str]:
    return {k: v.name for k, v in load_labels().items()}


def labels_of(text: str) -> set[str]:
    """The judgement labels the fast model gives one utterance (score at or above its threshold)."""
    return {k for k, j in judge_model().judge_all(text).items() if j.score >= j.threshold}


def _contains(text: str, phrase: str) -> bool:
    return normalize.key(phrase) in normalize.key(text)


def contains_any(text: str, phrases: list[str]) -> bool:
    return any(_contains(text, p) for p in phrases)


SPEECH_CPS = 4.5  # characters a second when a typed practice is given times: 270 a minute, a calm pace
TURN_GAP = 0.5


def practice_conversation(turns: list[Turn] | list[tuple[str, str]], *, cid: str = "practice",
                          channel: str = "phone", direction: str = "inbound",
                          waits: dict[int, float] | None = None) -> Conversation:
    """The conversation a practice makes. With `waits` (turn index → seconds of hold after it) the turns get
    times — each as long as its text spoken calmly, half a second apart — so holds are real: a hold request
    followed by a wait is a hold, and the hold rules apply as on a recorded call."""
    utts: list[dict[str, object]] = [{"role": t.role, "text": t.text} if isinstance(t, Turn)
                                     else {"role": t[0], "text": t[1]} for t in turns]
    if waits is not None:
        at = 0.0
        for i, u in enumerate(utts):
            dur = max(1.0, len(str(u["text"])) / SPEECH_CPS)
            u["start"], u["end"] = round(at, 2), round(at + dur, 2)
            at += dur + TURN_GAP + waits.get(i, 0.0)
    return Conversation.model_validate({"id": cid, "channel": channel, "direction": direction, "utterances": utts})


def findings_on(checker: Checker, conv: Conversation, index: int, select: list[str] | None,
                skip: tuple[str, ...] = ()) -> tuple[list[Finding], list[Finding]]:
    """Findings on utterance `index` (and call-level ones) of the rules selected; (on reply, call-level)."""
    rep = checker.check(conv, select=select or None)
    on = [f for f in rep.findings if f.utterance == index and not f.rule.startswith(skip)]
    call = [f for f in rep.findings if f.utterance is None and not f.rule.startswith(skip)]
    return on, call


def _suggestions(findings: list[Finding]) -> list[str]:
    out: list[str] = []
    for f in findings:
        if f.suggestion and f.suggestion not in out:
            out.append(f.suggestion)
    return out


def sentence_rules(checker: Checker) -> list[str]:
    """The rules decided on a sentence by itself (forbidden sentences and words, 反问, refusals, 推诿 …)."""
    return [r.id for r in checker.rulebook.rules
            if (c := checker.compiled.get(r.id)) is not None and c.kind.decided == "utterance"]


def grade_rewrite(q: Rewrite, reply: str, checker: Checker) -> Feedback:
    """The forbidden wording gone, the required elements present, the judgement rules not firing. The reply is
    checked by the item's rules and by every rule decided on a sentence (as a scenario reply is), so one
    forbidden wording is not swapped for another."""
    text = clean_reply(reply)
    turns = [*q.context, Turn(role="agent", text=text)]
    conv = practice_conversation(turns)
    select = [*q.rules, *sentence_rules(checker)] if q.rules else None
    on, call = findings_on(checker, conv, len(turns) - 1, select)
    findings = on + call
    missing = [e.name for e in q.require if not contains_any(text, e.any)]
    names = label_names()
    bad_labels = sorted(labels_of(text) & set(q.labels))
    # the prescribed wording: what the rules say instead of the original sentence
    orig = practice_conversation([*q.context, Turn(role="agent", text=q.original)])
    o_on, o_call = findings_on(checker, orig, len(turns) - 1, select)
    sugg = _suggestions(findings + o_on + o_call)
    return Feedback(correct=not findings and not missing and not bad_labels, findings=findings, missing=missing,
                    labels=[names.get(lb, lb) for lb in bad_labels], suggestions=sugg, model=q.model,
                    explain=q.explain)


def grade_choice(q: SingleChoice | MultipleChoice | TrueFalse, answer: Any) -> Feedback:
    """`answer`: an option index (single), indexes (multiple), True/False (truefalse)."""
    if isinstance(q, TrueFalse):
        ok = isinstance(answer, bool) and answer == q.answer
        key: Any = q.answer
    elif isinstance(q, SingleChoice):
        ok = isinstance(answer, int) and not isinstance(answer, bool) and answer == q.answer
        key = q.answer
    else:
        ok = isinstance(answer, list | tuple | set) and sorted(set(answer)) == sorted(q.answer)
        key = sorted(q.answer)
    return Feedback(correct=ok, explain=q.explain, answer=key)


def grade(q: Question, answer: Any, checker: Checker) -> Feedback:
    if isinstance(q, Rewrite):
        return grade_rewrite(q, answer if isinstance(answer, str) else "", checker)
    return grade_choice(q, answer)


def parse_answer(q: Question, raw: str) -> Any:
    """A typed answer (terminal, web form) as the value `grade` expects: 对/错/+/-, A/B/C, AC, or text."""
    s = raw.strip()
    if isinstance(q, TrueFalse):
        if s.lower() in ("+", "对", "正确", "t", "true", "y", "yes", "√", "是"):
            return True
        if s.lower() in ("-", "错", "错误", "f", "false", "n", "no", "×", "x", "否"):
            return False
        raise ReplyError("请回答 + （正确）或 - （错误）")
    if isinstance(q, SingleChoice | MultipleChoice):
        letters = [c for c in s.upper() if not c.isspace() and c not in ",，、"]
        idx = [ord(c) - 65 for c in letters]
        if not idx or any(not 0 <= i < len(q.options) for i in idx):
            last = chr(64 + len(q.options))
            raise ReplyError(f"请用选项字母作答（A–{last}）")
        if isinstance(q, SingleChoice):
            if len(idx) != 1:
                raise ReplyError("单选题只能选一个选项")
            return idx[0]
        return sorted(set(idx))
    return s
