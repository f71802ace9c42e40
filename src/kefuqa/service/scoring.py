"""The service's bridge to the core: rulebook versions in the database, scoring, and the effective score
of a call once inspectors or appeals have voided some of its findings."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session as DBSession

from ..errors import RuleError
from .config import Settings
from .models import RulebookVersion, utcnow

MAX_RULEBOOK_BYTES = 1024 * 1024


class RulebookProblem(Exception):
    """An uploaded rulebook cannot be accepted; `errors` lists {file, line, key, reason}."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(e["reason"] for e in errors))


def _core() -> Any:
    import kefuqa

    return kefuqa


def bundled_names() -> list[str]:
    from ..rules.rulebook import bundled_names as names

    return names()


def summarize(rb: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rules and scorecard of a loaded rulebook, as stored with its version."""
    card = rb.scorecard
    rules = []
    for r in rb.rules:
        score = card.rules.get(r.id) if hasattr(card, "rules") else None
        dim = (score.dimension if score and score.dimension else None) or getattr(r, "dimension", None)
        points = score.points if score and score.points is not None else getattr(r, "points", None)
        rules.append({
            "id": r.id, "name": getattr(r, "name", r.id), "kind": getattr(r, "kind", None),
            "severity": getattr(r, "severity", None), "dimension": dim, "points": points,
            "enabled": getattr(r, "enabled", True),
            "message": getattr(r, "message", None),
        })
    scorecard = {
        "name": card.name,
        "dimensions": [{"name": d.name, "max": d.max} for d in card.dimensions],
        "grades": sorted(({"name": g.name, "min": g.min} for g in card.grades), key=lambda g: -g["min"]),
        "fatal": list(card.fatal),
    }
    return rules, scorecard


def grade_for(score: float, scorecard: dict[str, Any], fallback: str) -> str:
    for g in scorecard.get("grades") or []:
        if score >= g["min"]:
            return str(g["name"])
    return fallback


@dataclass(frozen=True)
class Loaded:
    """A stored rulebook version, compiled for checking."""

    id: int
    name: str
    version: str
    scorecard: dict[str, Any]
    checker: Any  # kefuqa.Checker

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


class RulebookCache:
    """Compiled rulebook versions by id: loading parses YAML and builds the phrase automaton, so each
    version is loaded once a process (versions never change; a new upload is a new id)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: dict[int, Loaded] = {}
        self._lock = threading.Lock()

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
                hit = Loaded(rec.id, rec.name, rec.version, dict(rec.scorecard or {}),
                             _core().Checker(self._load(rec)))
                self._loaded[rulebook_id] = hit
        return hit

    def _load(self, rec: RulebookVersion) -> Any:
        load = _core().load_rulebook
        if rec.origin == "upload":
            folder = self.settings.rulebook_dir / str(int(rec.id))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "rulebook.yaml"
            if not path.is_file() or path.read_text(encoding="utf-8") != rec.content:
                path.write_text(rec.content or "", encoding="utf-8")
            return load(path)
        return load(rec.source_ref)


def register(db: DBSession, rb: Any, *, origin: str, source_ref: str | None = None, content: str | None = None,
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
        raise ValueError("规则集未通过校验，不能启用")
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
    rb = _core().load_rulebook(source)
    if source in bundled_names():
        rec = register(db, rb, origin="bundled", source_ref=source)
    else:
        rec = register(db, rb, origin="path", source_ref=str(Path(source).expanduser().resolve()))
    if rec.status != "active":
        activate(db, rec)
    return rec


def _error_dict(err: RuleError, filename: str) -> dict[str, Any]:
    return {"file": filename, "line": err.line, "key": err.key, "reason": err.reason}


def check_upload_text(text: str, filename: str) -> None:
    """Refuse what would make the loader read files of the server: paths in `extends`, rule-file globs and
    scorecards by path. An uploaded rulebook is one self-contained YAML file that may extend a bundled one."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise RulebookProblem([{"file": filename, "line": line, "key": None,
                                "reason": f"YAML 语法错误：{getattr(exc, 'problem', exc)}"}]) from None
    if not isinstance(data, dict):
        raise RulebookProblem([{"file": filename, "line": 1, "key": None, "reason": "规则集文件必须是 YAML 映射"}])
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


def lint_upload(data: bytes, filename: str) -> tuple[Any, str]:
    """Validate an uploaded rulebook; returns (loaded rulebook, text) or raises RulebookProblem."""
    if len(data) > MAX_RULEBOOK_BYTES:
        raise RulebookProblem([{"file": filename, "line": None, "key": None, "reason": "规则集文件超过 1 MB"}])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RulebookProblem([{"file": filename, "line": None, "key": None,
                                "reason": "规则集文件须为 UTF-8 编码的 YAML"}]) from None
    check_upload_text(text, filename)
    with tempfile.TemporaryDirectory(prefix="kefuqa-rb-") as tmp:
        path = Path(tmp) / "rulebook.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            rb = _core().load_rulebook(path)
        except RuleError as err:
            raise RulebookProblem([_error_dict(err, filename)]) from None
    return rb, text


# ---- effective score ---------------------------------------------------------------------------------------


def _deductions(findings: list[dict[str, Any]], kept: set[int], dims: dict[str, float]) -> dict[str, float]:
    """Points lost per dimension by the findings at the indexes in `kept`.

    A rule that deducts once (or up to a cap) charged only its first findings; when one of those is
    withdrawn, a remaining finding of the same rule is charged instead: a rule costs
    min(what it cost in all, remaining findings × its largest single deduction).
    """
    per_rule: dict[str, list[tuple[int, float, str | None]]] = {}
    for i, f in enumerate(findings):
        per_rule.setdefault(str(f.get("rule")), []).append((i, abs(float(f.get("points") or 0)), f.get("dimension")))
    out = dict.fromkeys(dims, 0.0)
    for items in per_rule.values():
        total = sum(p for _, p, _ in items)
        largest = max(p for _, p, _ in items)
        n = sum(1 for i, _, _ in items if i in kept)
        dim = next((d for _, p, d in items if p and d), None) or items[0][2]
        if dim in out:
            out[dim] += min(total, n * largest)
    return out


def effective_score(report: dict[str, Any], voided: set[int], scorecard: dict[str, Any]) -> tuple[float, str, bool]:
    """Score, grade and fatal flag of a report whose findings at the indexes in `voided` were withdrawn.

    The engine's figures stand when nothing is voided. Otherwise each dimension gets back the points of
    its withdrawn findings, as the scorecard's arithmetic (maximum minus deductions, at least 0) gives
    them; a fatal call stops being fatal (and scores its dimensions) when every finding of a fatal rule
    was withdrawn.
    """
    score = float(report.get("score") or 0.0)
    grade = str(report.get("grade") or "")
    fatal = bool(report.get("fatal"))
    findings = list(report.get("findings") or [])
    if not voided:
        return score, grade, fatal
    dims = {k: float(v) for k, v in (report.get("dimensions") or {}).items()}
    dmax = {d["name"]: float(d["max"]) for d in scorecard.get("dimensions") or []}
    kept_idx = {i for i in range(len(findings)) if i not in voided}
    kept = [findings[i] for i in sorted(kept_idx)]
    before = _deductions(findings, set(range(len(findings))), dims)
    after = _deductions(findings, kept_idx, dims)
    new_dims = {}
    for d, value in dims.items():
        top = dmax.get(d)
        if top is None:
            new_dims[d] = value + before[d] - after[d]
            continue
        # what the arithmetic gives before and after; apply its change to the engine's figure
        delta = max(0.0, top - after[d]) - max(0.0, top - before[d])
        new_dims[d] = min(top, value + delta)
    fatal_rules = set(report.get("fatal_rules") or scorecard.get("fatal") or [])
    still_fatal = fatal and any(f.get("rule") in fatal_rules for f in kept)
    if still_fatal:
        return score, grade, True
    # A fatal call scored 0; once its fatal findings are all withdrawn it scores its dimensions.
    new_score = sum(new_dims.values()) if fatal else score + sum(new_dims.values()) - sum(dims.values())
    top_total = sum(dmax.values()) or 100.0
    new_score = round(max(0.0, min(top_total, new_score)), 1)
    return new_score, grade_for(new_score, scorecard, grade), still_fatal
