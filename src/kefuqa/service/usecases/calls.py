"""Actions on stored calls: score again with the active rulebook, export the filtered list as CSV, the
recording of a call. Every lookup is scoped by role: another agent's call is missing (NotFound), whether it
exists or not, before any question of what the role may do."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from .. import repository as repo
from .. import views
from ..errors import NotFound
from ..models import Conversation, Finding, Score
from ..scores import ADDED, VOIDED, rescore_conversation
from .context import Ctx

REVIEWERS = ("admin", "qa")


def find_call(ctx: Ctx, ref: int | str) -> Conversation:
    """A call in the acting user's scope, by numeric id (an int) or by its id or call id (a string)."""
    user = ctx.acting()
    return repo.get_call(ctx.db, user, ref) if isinstance(ref, int) else repo.get_call_by_ref(ctx.db, user, ref[:200])


def rescore(ctx: Ctx, ref: int | str) -> Score:
    """Score a call again with the active rulebook (a new score; the old ones stay as history)."""
    with ctx.transaction() as db:
        conv = find_call(ctx, ref)
        ctx.require(REVIEWERS, "只有质检员和管理员可以重新评分")
        score = rescore_conversation(db, ctx.wb.rulebooks, conv, user_id=ctx.user_id)
        repo.audit(db, ctx.user, "conversation.rescore", "conversation", conv.id, ctx.ip,
                   rulebook=f"{score.rulebook.name} {score.rulebook.version}")
    return score


def export_csv(ctx: Ctx, f: repo.CallFilter) -> str:
    """The calls of the filter in the user's scope as CSV (UTF-8 with BOM, cells safe from formulas)."""
    tz = ctx.settings.timezone
    with ctx.transaction() as db:
        user = ctx.acting()
        calls = repo.iter_calls(db, user, f, tz)
        score_ids = [c.current_score_id for c in calls if c.current_score_id]
        rules: dict[int, list[str]] = {}
        added: dict[int, list[str]] = {}
        for chunk in range(0, len(score_ids), 5000):
            for cid, rule, status in db.execute(select(Finding.conversation_id, Finding.rule, Finding.status).where(
                    Finding.score_id.in_(score_ids[chunk:chunk + 5000]), Finding.kind == "finding",
                    Finding.status.not_in(VOIDED)).order_by(Finding.id)):
                rules.setdefault(cid, []).append(rule)
                if status == ADDED:
                    added.setdefault(cid, []).append(rule)
        repo.audit(db, user, "export.csv", None, None, ctx.ip, count=len(calls), filters=f.params())
    return views.calls_csv(calls, rules, tz, added)


def recording(ctx: Ctx, call_id: int) -> Path:
    """The stored recording of a call in scope."""
    conv = find_call(ctx, call_id)
    if not conv.audio_file:
        raise NotFound("该会话没有录音")
    path = ctx.wb.audio.find(conv.audio_file)
    if path is None:
        raise NotFound("录音文件不存在")
    return path
