"""Rulebook versions in the database: loading them (bundled, from a path, or from the YAML text of an
upload, held in the database), compiling each once a process, which one is active, and checking uploads.

Scoring itself is the core's (`kefuqa.scoring`); this module only hands it the right `Rulebook`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session as DBSession

from ..engine import Checker
from ..errors import RuleError
from ..rules.rulebook import Rulebook, bundled_names, load_rulebook, load_rulebook_text
from ..scoring import rule_terms
from .config import Settings
from .errors import Conflict, RulebookProblem
from .models import RulebookVersion, utcnow

MAX_RULEBOOK_BYTES = 1024 * 1024
UPLOAD_NAME = "rulebook.yaml"  # the name an uploaded rulebook's text is loaded under (part of its version digest)
ACTIVE_TTL = 2.0  # seconds a worker trusts its idea of the active rulebook


# ---- loading a rulebook from YAML text ---------------------------------------------------------------------


# ---- compiled versions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """A stored rulebook version, loaded and compiled for checking."""

    id: int
    name: str
    version: str
    rulebook: Rulebook
    checker: Checker

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def load_version(rec: RulebookVersion) -> Rulebook:
    """The rulebook of a stored version: an upload from its text, a bundled one by name, else its path."""
    if rec.origin == "upload":
        return load_rulebook_text(rec.content or "")
    return load_rulebook(rec.source_ref)


class Rulebooks:
    """Compiled rulebook versions by id, and which one is active. Loading parses YAML and builds the phrase
    automaton, so each version is loaded once a process (versions never change; an upload is a new id)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: dict[int, Loaded] = {}
        self._lock = threading.Lock()
        self._active: tuple[int | None, float] = (None, 0.0)

    def get(self, db: DBSession, rulebook_id: int) -> Loaded:
        hit = self._loaded.get(rulebook_id)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._loaded.get(rulebook_id)
            if hit is None:
                rec = db.get(RulebookVersion, rulebook_id)
                if rec is None:
                    raise LookupError(f"no rulebook version {rulebook_id}")
                rb = load_version(rec)
                hit = Loaded(rec.id, rec.name, rec.version, rb, Checker(rb))
                self._loaded[rulebook_id] = hit
        return hit

    def active(self, db: DBSession) -> Loaded:
        """The active version, compiled. Which version is active is looked up again after ACTIVE_TTL seconds
        (another worker may have activated one), at once after `forget_active`."""
        now = time.monotonic()
        rid, at = self._active
        if rid is None or now - at > ACTIVE_TTL:
            rid = active_id(db)
            if rid is None:
                rid = ensure_active(db, self.settings).id
            self._active = (rid, now)
        return self.get(db, rid)

    def forget_active(self) -> None:
        self._active = (None, 0.0)


def summarize(rb: Rulebook) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rules (with what each costs under the scorecard) and scorecard of a rulebook, as stored with its
    version for the pages."""
    rules = []
    for r in rb.rules:
        terms = rule_terms(rb, r.id)
        rules.append({"id": r.id, "name": r.name, "kind": r.kind, "severity": r.severity,
                      "dimension": terms.dimension, "points": terms.points, "enabled": r.enabled,
                      "message": r.message})
    card = rb.scorecard
    scorecard = {
        "name": card.name,
        "dimensions": [{"name": d.name, "max": d.max} for d in card.dimensions],
        "grades": [{"name": g.name, "min": g.min} for g in sorted(card.grades, key=lambda g: -g.min)],
        "fatal": list(card.fatal),
    }
    return rules, scorecard


def register(db: DBSession, rb: Rulebook, *, origin: str, source_ref: str | None = None, content: str | None = None,
             filename: str | None = None, user_id: int | None = None) -> RulebookVersion:
    """The stored version of a loaded rulebook, created on first sight (name + version identify it)."""
    rec = db.scalar(select(RulebookVersion).where(RulebookVersion.name == rb.name,
                                                  RulebookVersion.version == rb.version))
    if rec is not None:
        return rec
    rules, scorecard = summarize(rb)
    rec = RulebookVersion(name=rb.name, version=rb.version, origin=origin, source_ref=source_ref, content=content,
                          filename=filename, status="draft", lint_errors=[], rules=rules, scorecard=scorecard,
                          uploaded_by=user_id)
    db.add(rec)
    db.flush()
    return rec


def activate(db: DBSession, rec: RulebookVersion) -> None:
    if rec.status == "invalid":
        raise Conflict("规则集未通过校验，不能启用")
    db.execute(update(RulebookVersion).where(RulebookVersion.status == "active", RulebookVersion.id != rec.id)
               .values(status="archived"))
    rec.status = "active"
    rec.activated_at = utcnow()


def active(db: DBSession) -> RulebookVersion | None:
    return db.scalar(select(RulebookVersion).where(RulebookVersion.status == "active")
                     .order_by(RulebookVersion.activated_at.desc()).limit(1))


def active_id(db: DBSession) -> int | None:
    return db.scalar(select(RulebookVersion.id).where(RulebookVersion.status == "active")
                     .order_by(RulebookVersion.activated_at.desc()).limit(1))


def ensure_active(db: DBSession, settings: Settings) -> RulebookVersion:
    """On start: the rulebook named by settings (or, on a fresh database, the bundled standard) is active."""
    current = active(db)
    if settings.rulebook is None and current is not None:
        return current
    source = settings.rulebook or "standard"
    rb = load_rulebook(source)
    if source in bundled_names():
        rec = register(db, rb, origin="bundled", source_ref=source)
    else:
        rec = register(db, rb, origin="path", source_ref=str(Path(source).expanduser().resolve()))
    if rec.status != "active":
        activate(db, rec)
    return rec


# ---- uploads -----------------------------------------------------------------------------------------------


def _problem(filename: str, reason: str, line: int | None = None, key: str | None = None) -> RulebookProblem:
    return RulebookProblem([{"file": filename, "line": line, "key": key, "reason": reason}])


def check_upload_text(text: str, filename: str) -> None:
    """Refuse what would make the loader read files of the server: paths in `extends`, rule-file globs and
    scorecards by path, reporting every such place at once. An uploaded rulebook is one self-contained YAML
    file that may extend a bundled one."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _problem(filename, f"YAML 语法错误：{getattr(exc, 'problem', exc)}",
                       mark.line + 1 if mark is not None else None) from None
    if not isinstance(data, dict):
        raise _problem(filename, "规则集文件必须是 YAML 映射", 1)
    problems: list[dict[str, Any]] = []
    names = bundled_names()

    def bundled_only(key: str, value: object) -> None:
        if value is not None and (not isinstance(value, str) or value not in names):
            problems.append({"file": filename, "line": None, "key": key,
                             "reason": f"只能继承内置规则集（{', '.join(names)}），不能引用文件路径"})

    bundled_only("extends", data.get("extends"))
    for item in data.get("rules") or []:
        if isinstance(item, str):
            problems.append({"file": filename, "line": None, "key": "rules",
                             "reason": f"上传的规则集须内联规则，不能引用规则文件 {item!r}"})
    card = data.get("scorecard")
    if isinstance(card, str):
        problems.append({"file": filename, "line": None, "key": "scorecard", "reason": "评分卡须内联，不能引用文件"})
    elif isinstance(card, dict):
        bundled_only("scorecard.extends", card.get("extends"))
    if problems:
        raise RulebookProblem(problems)


def lint_upload(data: bytes, filename: str) -> tuple[Rulebook, str]:
    """Validate an uploaded rulebook; returns (loaded rulebook, text) or raises RulebookProblem."""
    if len(data) > MAX_RULEBOOK_BYTES:
        raise _problem(filename, "规则集文件超过 1 MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _problem(filename, "规则集文件须为 UTF-8 编码的 YAML") from None
    check_upload_text(text, filename)
    try:
        rb = load_rulebook_text(text)
    except RuleError as err:
        raise _problem(filename, err.reason, err.line, err.key) from None
    return rb, text
