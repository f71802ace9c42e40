"""`kefuqa practice lint`: question and scenario files checked against the rulebook, with file:line.

Unknown rule IDs, modules and judgement labels; steps that lead nowhere, cannot be reached or never end;
cycles; and (with `play`) the model answer must score ≥ 90 with no findings and the poor answer must make
the expected rules fire."""

from __future__ import annotations

from collections.abc import Callable

from ..engine.checker import Checker
from ..errors import RuleError
from ..judge.labels import labels as all_labels
from .grading import ReplyError, grade_rewrite
from .loader import Bank
from .scenario import ScenarioError, play
from .schema import Rewrite, Scenario

PASS_SCORE = 90.0


def _known(rule: str, ids: set[str]) -> bool:
    return rule in ids or any(i.startswith(rule) for i in ids)  # an ID or a prefix (LNG)


def _err(bank: Bank, key: tuple[str, ...], what: str, reason: str) -> RuleError:
    src, line = bank.place(*key)
    if line is None and len(key) > 1:
        src, line = bank.place(key[0])
    return RuleError(src, line, what, reason)


def _cycle(s: Scenario) -> list[str] | None:
    """One cycle among the steps (as a path of step ids), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        node = s.nodes[n]
        for t in [b.next for b in node.branches] + ([node.next] if node.next else []):
            if t not in s.nodes:
                continue
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in s.nodes:
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def lint_scenario(bank: Bank, s: Scenario, ids: set[str], labels: set[str]) -> list[RuleError]:
    out: list[RuleError] = []
    sid = s.id
    if s.module not in bank.modules:
        out.append(_err(bank, (sid,), "module", f"未定义的模块 {s.module}"))
    for r in s.rules + s.poor.expect:
        if not _known(r, ids):
            out.append(_err(bank, (sid,), "rules", f"未知的规则编号 {r}"))
    if s.start not in s.nodes:
        out.append(_err(bank, (sid, "start"), "start", f"起始步骤 {s.start} 不存在"))
    for n in s.poor.replies:
        if n not in s.nodes:
            out.append(_err(bank, (sid, "poor"), "poor.replies", f"步骤 {n} 不存在"))
    for nid, node in s.nodes.items():
        if not node.end and not node.next:
            out.append(_err(bank, (sid, nid), nid, "没有 next：当所有分支都不满足时无路可走"))
        for j, b in enumerate(node.branches):
            key = (sid, nid, str(j))
            if b.next not in s.nodes:
                out.append(_err(bank, key, f"{nid}.branches[{j}]", f"下一步 {b.next} 不存在"))
            for r in b.when.fired + b.when.not_fired:
                if not _known(r, ids):
                    out.append(_err(bank, key, f"{nid}.branches[{j}]", f"未知的规则编号 {r}"))
            for lb in b.when.label + b.when.not_label:
                if lb not in labels:
                    out.append(_err(bank, key, f"{nid}.branches[{j}]", f"未知的判断标签 {lb}"))
        if node.hold_seconds and not s.timed:
            out.append(_err(bank, (sid, nid), nid, "hold_seconds 只用于有时间的场景（timed: true）"))
        if node.next and node.next not in s.nodes:
            out.append(_err(bank, (sid, nid), nid, f"下一步 {node.next} 不存在"))
    if s.start not in s.nodes:
        return out
    reach: set[str] = set()
    todo = [s.start]
    while todo:
        n = todo.pop()
        if n in reach or n not in s.nodes:
            continue
        reach.add(n)
        node = s.nodes[n]
        todo += [b.next for b in node.branches] + ([node.next] if node.next else [])
    for nid in s.nodes:
        if nid not in reach:
            out.append(_err(bank, (sid, nid), nid, "从起始步骤无法到达这一步"))
    if not any(s.nodes[n].end for n in reach):
        out.append(_err(bank, (sid,), "nodes", "场景没有结束步骤（end: true）"))
    cyc = _cycle(s)
    if cyc:
        out.append(_err(bank, (sid, cyc[0]), cyc[0], "步骤之间循环：" + " → ".join(cyc)))
    return out


def play_scenario(bank: Bank, s: Scenario, checker: Checker) -> list[RuleError]:
    """The model answer scores ≥ 90 with no findings; the poor answer makes every expected rule fire."""
    out: list[RuleError] = []
    try:
        good = play(s, checker)
        rep = good.report()
        if rep.score < PASS_SCORE or rep.findings:
            got = "、".join(f"{f.rule}（{f.message}）" for f in rep.findings[:4])
            out.append(_err(bank, (s.id,), "model", f"参考回答只得 {rep.score:g} 分"
                            + (f"，有问题：{got}" if got else "")))
        poor = play(s, checker, s.poor.replies)
        fired = {f.rule for f in poor.report().findings}
        for st in poor.steps:  # a pending reminder (an omission a later reply made good) did not fire
            fired |= {f.rule for f in st.feedback.findings}
        missing = [r for r in s.poor.expect if not any(f.startswith(r) for f in fired)]
        if missing:
            out.append(_err(bank, (s.id, "poor"), "poor.expect", f"差的回答没有触发 {'、'.join(missing)}"
                            f"（实际触发：{'、'.join(sorted(fired)) or '无'}）"))
    except (ScenarioError, ReplyError) as exc:
        out.append(_err(bank, (s.id,), "nodes", str(exc)))
    return out


def lint_question(bank: Bank, q: object, ids: set[str], labels: set[str], checker: Checker | None) -> list[RuleError]:
    out: list[RuleError] = []
    qid = q.id  # type: ignore[attr-defined]
    if q.module not in bank.modules:  # type: ignore[attr-defined]
        out.append(_err(bank, (qid,), "module", f"未定义的模块 {q.module}"))  # type: ignore[attr-defined]
    for r in q.rules:  # type: ignore[attr-defined]
        if not _known(r, ids):
            out.append(_err(bank, (qid,), "rules", f"未知的规则编号 {r}"))
    if isinstance(q, Rewrite):
        for lb in q.labels:
            if lb not in labels:
                out.append(_err(bank, (qid,), "labels", f"未知的判断标签 {lb}"))
        if checker is not None and not out:
            try:
                fb = grade_rewrite(q, q.model, checker)
                if not fb.correct:
                    out.append(_err(bank, (qid,), "model", "参考回答未通过：" + "；".join(fb.messages())))
                orig = grade_rewrite(q, q.original, checker)
                if orig.correct:
                    out.append(_err(bank, (qid,), "original", "原句没有触发任何所列规则、要素或判断标签，练不到东西"))
            except ReplyError as exc:
                out.append(_err(bank, (qid,), "model", str(exc)))
    return out


def lint_bank(bank: Bank, checker: Checker, *, play_answers: bool = True,
              only: Callable[[str], bool] | None = None) -> list[RuleError]:
    """Every question and scenario of `bank` (with `only`: those whose id it accepts)."""
    ids = {r.id for r in checker.rulebook.rules}
    labels = set(all_labels())
    out: list[RuleError] = []
    for q in bank.questions.values():
        if only is not None and not only(q.id):
            continue
        out += lint_question(bank, q, ids, labels, checker if play_answers else None)
    for s in bank.scenarios.values():
        if only is not None and not only(s.id):
            continue
        errs = lint_scenario(bank, s, ids, labels)
        if not errs and play_answers:
            errs = play_scenario(bank, s, checker)
        out += errs
    return out
