"""Training in the workbench: quizzes, scenario runs and drills from real calls, graded by the active rulebook
(what is practised is what is inspected) and stored as attempts. An attempt is stored in one transaction after
everything was graded; a bad answer (empty, too long, markup) is refused with the reason and stores nothing.

A scenario run keeps no state on the server between replies: the page sends the replies so far and the
scenario is replayed (deterministic, a millisecond a step), so an abandoned run leaves nothing behind."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select, update

from ...engine.checker import Checker
from ...errors import RuleError
from ...judge.labels import labels as all_labels
from ...training import Bank, Feedback, ReplyError, Session, clean_reply, grade, load_bank, parse_answer
from ...training.grading import MAX_REPLY
from ...training.lint import lint_question, lint_scenario, play_scenario
from ...training.schema import AGENT_FAULT_LABELS, Question, Rewrite, Scenario, Turn
from ...training.speech import SpeechError, configured_spec, transcribe_bytes, transcriber_for
from .. import repository as repo
from ..errors import Invalid, NotFound
from ..models import Conversation, Finding, TrainingAssignment, TrainingAttempt, utcnow
from .context import Ctx

SCENARIO_PASS = 90.0
DRILL_PASS = 80.0
MAX_REPLIES = 60


_LOADED: dict[str, tuple[Any, Bank, list[RuleError]]] = {}
_LOCK = threading.Lock()


def company_dir(ctx: Ctx) -> Path:
    """A company's own question and scenario files: `<data dir>/training/` (YAML, as in docs/training.md)."""
    return Path(ctx.settings.data_dir) / "training"


def loaded(ctx: Ctx) -> tuple[Bank, list[RuleError]]:
    """The bundled bank plus the company's files, reloaded when a file there or the active rulebook changes. Bad
    files are errors; the company's questions and scenarios are also linted against the active rulebook (unknown
    rule IDs or labels, steps that lead nowhere, cycles, a model answer that does not pass, `kefuqa practice
    lint`): an item with a lint error is left out of the bank and its errors are listed with the load errors."""
    folder = company_dir(ctx)
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml")) if folder.is_dir() else []
    chk = checker(ctx) if files else None
    key = (tuple((str(f), f.stat().st_mtime_ns) for f in files), id(chk))
    hit = _LOADED.get(str(folder))
    if hit is None or hit[0] != key:
        with _LOCK:
            b, errors = load_bank([folder] if files else None)
            if chk is not None:
                errors = errors + _lint_company(b, folder, chk)
            hit = _LOADED[str(folder)] = (key, b, errors)
    return hit[1], hit[2]


def _lint_company(b: Bank, folder: Path, chk: Checker) -> list[RuleError]:
    """Lint the company's own items (those loaded from `folder`) and drop the ones with errors from `b`."""
    root = str(folder)
    ids = {r.id for r in chk.rulebook.rules}
    labels = set(all_labels())
    out: list[RuleError] = []
    for qid, q in list(b.questions.items()):
        if b.place(qid)[0].startswith(root):
            errs = lint_question(b, q, ids, labels, chk)
            if errs:
                del b.questions[qid]
                out += errs
    for sid, sc in list(b.scenarios.items()):
        if b.place(sid)[0].startswith(root):
            errs = lint_scenario(b, sc, ids, labels) or play_scenario(b, sc, chk)
            if errs:
                del b.scenarios[sid]
                out += errs
    return out


def bank(ctx: Ctx) -> Bank:
    return loaded(ctx)[0]


def checker(ctx: Ctx) -> Checker:
    return ctx.wb.rulebooks.active(ctx.db).checker


def module_name(ctx: Ctx, mid: str | None) -> str:
    m = bank(ctx).modules.get(mid or "")
    return m.name if m else (mid or "")


# ---- storing attempts ---------------------------------------------------------------------------------------


def _own_assignment(ctx: Ctx, assignment_id: int | None, kind: str, ref: str) -> TrainingAssignment | None:
    if assignment_id is None:
        return None
    user = ctx.acting()
    a = ctx.db.get(TrainingAssignment, assignment_id)
    if a is None or a.agent_id != user.agent_id or a.kind != kind or (a.ref != ref and kind != "drill"):
        raise NotFound("练习任务不存在或不是分配给您的")
    return a


def _store(ctx: Ctx, *, kind: str, ref: str, module: str | None, title: str, score: float, passed: bool,
           correct: int, total: int, rules: list[str], detail: dict[str, Any],
           assignment: TrainingAssignment | None) -> TrainingAttempt:
    user = ctx.acting()
    with ctx.transaction() as db:
        att = TrainingAttempt(user_id=user.id, agent_id=user.agent_id, assignment_id=assignment.id if assignment else None,
                              kind=kind, ref=ref, module=module, title=title, score=round(score, 1), passed=passed,
                              correct=correct, total=total, rules=sorted(set(rules)), detail=detail,
                              created_at=utcnow())
        db.add(att)
        db.flush()
        repo.audit(db, user, "training.attempt", "training_attempt", att.id, ctx.ip, kind=kind, ref=ref,
                   score=round(score, 1), passed=passed)
        if assignment is not None:
            # Two submissions of one assignment at once (two tabs, a double click): both are attempts, but the
            # assignment is completed once — a conditional UPDATE that only the first commit can win (the row
            # lock makes the second wait and then see status 'done'), so done_at and its audit line are single.
            res: Any = db.execute(update(TrainingAssignment)
                             .where(TrainingAssignment.id == assignment.id, TrainingAssignment.status == "open")
                             .values(status="done", done_at=utcnow())
                             .execution_options(synchronize_session=False))
            if res.rowcount:
                repo.audit(db, user, "training.assignment_done", "training_assignment", assignment.id, ctx.ip,
                           kind=kind, ref=ref, attempt=att.id)
    if assignment is not None:
        ctx.db.refresh(assignment)
    return att


def _fb(fb: Feedback) -> dict[str, Any]:
    return fb.to_dict()


# ---- quiz --------------------------------------------------------------------------------------------------


def questions(ctx: Ctx, module: str) -> list[Question]:
    if module not in bank(ctx).modules:
        raise NotFound("没有这个培训模块")
    qs = bank(ctx).questions_of(module)
    if not qs:
        raise NotFound("这个模块没有题目")
    return qs


@dataclass
class QuizResult:
    attempt: TrainingAttempt
    items: list[dict[str, Any]] = field(default_factory=list)


def submit_quiz(ctx: Ctx, module: str, answers: dict[str, Any], assignment_id: int | None = None) -> TrainingAttempt:
    """`answers`: question id → raw answer ('+'/'-', 'A', 'AC' or a list of indexes, or text). Every question must
    be answered; all are checked before anything is graded or stored."""
    qs = questions(ctx, module)
    asg = _own_assignment(ctx, assignment_id, "quiz", module)
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    for i, q in enumerate(qs, 1):
        raw = answers.get(q.id)
        if raw is None or raw == "" or raw == []:
            problems.append(f"第 {i} 题未作答")
            continue
        try:
            parsed[q.id] = raw if isinstance(raw, list) else parse_answer(q, str(raw))
            if isinstance(q, Rewrite):
                clean_reply(str(raw))
        except ReplyError as exc:
            problems.append(f"第 {i} 题：{exc}")
    if problems:
        raise Invalid("；".join(problems[:5]) + ("……" if len(problems) > 5 else "") + "（未保存）")
    chk = checker(ctx)
    items: list[dict[str, Any]] = []
    rules: list[str] = []
    right = 0
    for q in qs:
        fb = grade(q, parsed[q.id], chk)
        right += fb.correct
        if not fb.correct:
            rules += list(q.rules) + [f.rule for f in fb.findings]
        items.append({"id": q.id, "answer": parsed[q.id], "feedback": _fb(fb)})
    score = 100.0 * right / len(qs)
    mark = bank(ctx).modules[module].pass_mark
    return _store(ctx, kind="quiz", ref=module, module=module, title=module_name(ctx, module), score=score,
                  passed=score >= mark, correct=right, total=len(qs), rules=rules, detail={"items": items},
                  assignment=asg)


# ---- scenario ---------------------------------------------------------------------------------------------


def scenario(ctx: Ctx, sid: str) -> Scenario:
    s = bank(ctx).scenarios.get(sid)
    if s is None:
        raise NotFound("没有这个练习场景")
    return s


@dataclass
class Run:
    """A scenario run replayed from the replies so far."""

    scenario: Scenario
    session: Session
    error: str | None = None  # why the newest reply was refused (it is not part of the run)
    attempt: TrainingAttempt | None = None
    transcript: str | None = None  # the newest reply was spoken: what the ASR heard (graded like typed text)


def replay(ctx: Ctx, sid: str, replies: list[str]) -> Session:
    s = Session(scenario(ctx, sid), checker(ctx))
    if len(replies) > MAX_REPLIES:
        raise Invalid(f"练习超过 {MAX_REPLIES} 轮")
    for r in replies:
        if s.ended:
            raise Invalid("练习已结束，请重新开始")
        try:
            s.reply(r)
        except ReplyError as exc:
            raise Invalid(f"之前的回复无效：{exc}") from None
    return s


def scenario_step(ctx: Ctx, sid: str, replies: list[str], new: str | None,
                  assignment_id: int | None = None) -> Run:
    """Replay `replies`, then add `new` (None: just show the run). At the end the run is scored like a real call
    and stored as an attempt; a refused reply is reported in `error` and stores nothing."""
    asg = _own_assignment(ctx, assignment_id, "scenario", sid)
    s = replay(ctx, sid, replies)
    run = Run(s.scenario, s)
    if new is None:
        return run
    if s.ended:
        raise Invalid("练习已结束，请重新开始（这句回复未保存）")
    try:
        s.reply(new)
    except ReplyError as exc:
        run.error = str(exc)
        return run
    if s.ended:
        rep = s.report()
        fired = [f.rule for f in rep.findings] + [f.rule for st in s.steps for f in st.feedback.findings]
        steps = [{"node": st.node, "reply": st.reply, "customer": st.customer, "feedback": _fb(st.feedback)}
                 for st in s.steps]
        passed = rep.score >= SCENARIO_PASS and not rep.findings
        run.attempt = _store(ctx, kind="scenario", ref=sid, module=s.scenario.module, title=s.scenario.title,
                             score=rep.score, passed=passed, correct=int(passed), total=1, rules=fired,
                             detail={"steps": steps, "report": rep.to_dict(),
                                     "opening": s.opening_line()}, assignment=asg)
    return run


def speech_enabled() -> bool:
    """Spoken replies are offered when the server has an ASR backend (KEFUQA_TRAINING_ASR or KEFUQA_ASSIST_ASR)."""
    return configured_spec() is not None


def transcribe(data: bytes, filename: str) -> str:
    """The text of a spoken reply (an uploaded or recorded file); a bad recording or no ASR is `Invalid`."""
    spec = configured_spec()
    if spec is None:
        raise Invalid("服务端没有配置语音识别，请打字回复（管理员可设置 KEFUQA_TRAINING_ASR，"
                      "如 faster-whisper:/模型目录）")
    try:
        return transcribe_bytes(data, transcriber_for(spec), name=filename or "录音")
    except SpeechError as exc:
        raise Invalid(str(exc)) from None


def scenario_spoken(ctx: Ctx, sid: str, replies: list[str], data: bytes, filename: str,
                    assignment_id: int | None = None) -> Run:
    """`scenario_step` with the new reply spoken: transcribed first, then graded exactly like a typed reply. A
    recording that cannot be used is reported in `error` (nothing stored, the run unchanged)."""
    try:
        text = transcribe(data, filename)
    except Invalid as exc:
        run = scenario_step(ctx, sid, replies, None, assignment_id)
        run.error = str(exc)
        return run
    run = scenario_step(ctx, sid, replies, text, assignment_id)
    run.transcript = text
    return run


# ---- drills from real calls -------------------------------------------------------------------------------------


def drill_items(ctx: Ctx, agent_id: int, *, rules: int = 3, per_rule: int = 3) -> dict[str, Any]:
    """The rules this agent violates most (their current scored calls) and rewrite items built from their own
    flagged utterances with the customer's words before them; plus the scenarios that exercise those rules."""
    user = ctx.acting()
    top = repo.top_rules(ctx.db, user, agent_id=agent_id, limit=rules)
    wanted = [t["rule"] for t in top]
    items: list[dict[str, Any]] = []
    if wanted:
        rows = ctx.db.execute(repo.scope_calls(
            select(Finding, Conversation.id).join(Conversation, and_(
                Conversation.id == Finding.conversation_id, Conversation.current_score_id == Finding.score_id))
            .where(Conversation.agent_id == agent_id, Finding.rule.in_(wanted), Finding.kind == "finding",
                   Finding.utterance.is_not(None), Finding.status.not_in(("rejected", "overturned")))
            .order_by(Conversation.call_at.desc(), Finding.id), user)).all()
        per: dict[str, int] = {}
        seen: set[str] = set()
        for f, conv_id in rows:
            if per.get(f.rule, 0) >= per_rule:
                continue
            conv = ctx.db.get(Conversation, conv_id)
            utts = (conv.data or {}).get("utterances") or [] if conv else []
            if f.utterance is None or f.utterance >= len(utts):
                continue
            said = str(utts[f.utterance].get("text") or "").strip()
            if utts[f.utterance].get("role") != "agent" or not said or said in seen or len(said) > MAX_REPLY:
                continue
            seen.add(said)
            before = [{"role": str(u.get("role")), "text": str(u.get("text") or "")}
                      for u in utts[max(0, f.utterance - 2):f.utterance]
                      if u.get("role") in ("agent", "customer") and str(u.get("text") or "").strip()]
            per[f.rule] = per.get(f.rule, 0) + 1
            items.append({"id": f"drill-{f.id}", "rule": f.rule, "name": f.name, "context": before,
                          "original": said, "suggestion": f.suggestion or "", "call_id": conv.call_id if conv else "",
                          "message": f.message})
    scen = [s.id for s in bank(ctx).scenarios.values() if set(s.rules) & set(wanted)]
    return {"rules": top, "items": items, "scenarios": scen}


def drill_question(item: dict[str, Any]) -> Rewrite:
    """Graded (grade_rewrite) by the item's rule and every rule decided on a sentence."""
    return Rewrite(type="rewrite", id=str(item["id"]), module="drill", prompt="按标准重说您在真实通话中说过的这句话",
                   context=[Turn(role=t["role"], text=t["text"]) for t in item.get("context") or []],
                   original=str(item["original"]), rules=[str(item["rule"])], labels=list(AGENT_FAULT_LABELS),
                   model=str(item.get("suggestion") or "（请参考规范话术）"))


def submit_drill(ctx: Ctx, items: list[dict[str, Any]], answers: dict[str, str],
                 assignment_id: int | None = None) -> TrainingAttempt:
    if not items:
        raise Invalid("没有可练习的题目：您最近的通话没有可改写的扣分语句")
    asg = _own_assignment(ctx, assignment_id, "drill", "")
    problems: list[str] = []
    for i, it in enumerate(items, 1):
        try:
            clean_reply(answers.get(str(it["id"])))
        except ReplyError as exc:
            problems.append(f"第 {i} 题：{exc}")
    if problems:
        raise Invalid("；".join(problems[:5]) + "（未保存）")
    chk = checker(ctx)
    out: list[dict[str, Any]] = []
    rules: list[str] = []
    right = 0
    for it in items:
        q = drill_question(it)
        fb = grade(q, answers[str(it["id"])], chk)
        right += fb.correct
        if not fb.correct:
            rules.append(str(it["rule"]))
        out.append({"id": it["id"], "item": it, "answer": answers[str(it["id"])], "feedback": _fb(fb)})
    score = 100.0 * right / len(items)
    return _store(ctx, kind="drill", ref="", module=None, title="真实通话改写练习", score=score,
                  passed=score >= DRILL_PASS, correct=right, total=len(items), rules=rules, detail={"items": out},
                  assignment=asg)


# ---- reading attempts -------------------------------------------------------------------------------------------


def get_attempt(ctx: Ctx, attempt_id: int) -> TrainingAttempt:
    """One attempt: an agent sees only their own; a leader their team's agents'; admin and qa all."""
    ctx.acting()
    a = ctx.db.get(TrainingAttempt, attempt_id)
    if a is None or not visible(ctx, a):
        raise NotFound("练习记录不存在或无权查看")
    return a


def visible(ctx: Ctx, a: TrainingAttempt) -> bool:
    user = ctx.acting()
    if user.role in ("admin", "qa"):
        return True
    if user.role == "agent":
        return a.user_id == user.id
    if user.role == "leader" and a.agent_id is not None:
        return a.agent_id in {ag.id for ag in repo.visible_agents(ctx.db, user)}
    return False
