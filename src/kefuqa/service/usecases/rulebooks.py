"""Rulebook versions: upload one (linted, kept as a draft) and activate one (new calls are scored with it)."""

from __future__ import annotations

from .. import rulebooks as store
from ..errors import NotFound, RulebookProblem
from ..ingest import safe_filename
from ..models import RulebookVersion
from ..repository import audit
from .context import Ctx

ADMIN = ("admin",)
READERS = ("admin", "qa")


def get_rulebook(ctx: Ctx, rulebook_id: int) -> RulebookVersion:
    ctx.require(READERS)
    rec = ctx.db.get(RulebookVersion, rulebook_id)
    if rec is None:
        raise NotFound("规则集不存在")
    return rec


def upload_rulebook(ctx: Ctx, name: str, data: bytes) -> RulebookVersion:
    """Lint an uploaded rulebook (one YAML file that may extend a bundled one) and keep it as a draft
    version; RulebookProblem lists what is wrong (the failed attempt is audited)."""
    ctx.require(ADMIN, "只有管理员可以上传规则集")
    filename = safe_filename(name)
    with ctx.transaction() as db:
        try:
            rb, text = store.lint_upload(data, filename)
        except RulebookProblem as exc:
            audit(db, ctx.user, "rulebook.lint_failed", "rulebook", filename, ctx.ip, errors=exc.errors)
            db.commit()  # the audit entry stays although this raises
            raise
        rec = store.register(db, rb, origin="upload", content=text, filename=filename, user_id=ctx.user_id)
        audit(db, ctx.user, "rulebook.upload", "rulebook", rec.id, ctx.ip, name=rec.name, version=rec.version)
    return rec


def activate_rulebook(ctx: Ctx, rulebook_id: int) -> RulebookVersion:
    """Make a version the one new calls are scored with: it must load first, or nothing changes."""
    ctx.require(ADMIN, "只有管理员可以启用规则集")
    with ctx.transaction() as db:
        rec = get_rulebook(ctx, rulebook_id)
        ctx.wb.rulebooks.get(db, rec.id)  # it loads, or this raises before anything changes
        store.activate(db, rec)
        audit(db, ctx.user, "rulebook.activate", "rulebook", rec.id, ctx.ip, name=rec.name, version=rec.version)
    ctx.wb.rulebooks.forget_active()
    return rec
