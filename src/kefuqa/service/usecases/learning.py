"""Learning from inspectors: what people decided about the findings of judgement (`intent`) rules, as labelled
utterances for retraining the model, and as each model version's precision.

A verdict is an inspector's review (confirm → the label applies, y=1; reject → a hard negative, y=0) or a
decided appeal (rejected → the finding stood, y=1; accepted → the finding was wrong, y=0). Only findings of
rules that are `intent` rules in the rulebook version that produced their score count; the label is that
rule's label in that version.

What counts for one finding site (call, utterance, rule — the same site keeps its verdicts across
re-scorings): a decided appeal is final and replaces the reviews; without one, each reviewer's latest
verdict counts (an inspector who changed their mind is not a conflict with themselves). Sites with the same
sentence (normalised: Traditional, width and punctuation folded) and label become one row; when their
verdicts disagree the sentence is a conflict, left out and counted.

The rows have the judgement corpus's shape (`data/intent/corpus.jsonl`: id, text, label, y, role, industry,
register, source, split) plus rule, call_id and utterance — the shape of the inspection pages' training
export (`usecases.missed.training_examples`), so one reader takes both.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ... import normalize
from ...judge.corpus import _register
from ...judge.labels import labels
from ...rules.rulebook import Rulebook
from ..models import Appeal, Conversation, Finding, Review, RulebookVersion, Score
from ..rulebooks import load_version
from ..scores import human_row
from .context import Ctx

EXPORTERS = ("admin", "qa")
NO_MODEL = "（未记录模型）"


@dataclass(frozen=True)
class Verdict:
    site: tuple[int, int, str]  # conversation id, utterance, rule
    finding_id: int
    score_id: int
    rulebook_id: int
    who: int | None  # reviewer (None: an appeal)
    at: datetime
    y: int  # 1: the finding was right; 0: it was wrong
    source: str  # review:<id> | appeal:<id>


def _reviews(since: datetime | None) -> Any:
    stmt = select(Review.id, Review.reviewer_id, Review.verdict, Review.created_at, Finding.id,
                  Finding.conversation_id, Finding.utterance, Finding.rule, Finding.score_id, Score.rulebook_id
                  ).join(Finding, Finding.id == Review.finding_id).join(Score, Score.id == Finding.score_id)
    return stmt.where(Review.created_at >= since) if since is not None else stmt


def _appeals(since: datetime | None) -> Any:
    stmt = select(Appeal.id, Appeal.status, Appeal.decided_at, Finding.id, Finding.conversation_id,
                  Finding.utterance, Finding.rule, Finding.score_id, Score.rulebook_id
                  ).join(Finding, Finding.id == Appeal.finding_id).join(Score, Score.id == Finding.score_id).where(
        Appeal.status.in_(("accepted", "rejected")), Appeal.decided_at.is_not(None))
    return stmt.where(Appeal.decided_at >= since) if since is not None else stmt


def intent_rules(db: DBSession) -> dict[int, dict[str, str]]:
    """Per stored rulebook version: its intent rules' ids and names (from the stored rule summaries)."""
    out: dict[int, dict[str, str]] = {}
    for rid, rules in db.execute(select(RulebookVersion.id, RulebookVersion.rules)):
        out[rid] = {str(r["id"]): str(r.get("name") or "") for r in rules or []
                    if isinstance(r, dict) and r.get("kind") == "intent"}
    return out


def verdicts(db: DBSession, since: datetime | None = None) -> list[Verdict]:
    """Every review and decided appeal of a finding of an intent rule, oldest first."""
    intent = intent_rules(db)
    out: list[Verdict] = []
    for rid, who, verdict, at, fid, cid, utt, rule, sid, rbid in db.execute(_reviews(since)):
        if rule in intent.get(rbid, {}):
            out.append(Verdict((cid, utt if utt is not None else -1, rule), fid, sid, rbid, who, at,
                               1 if verdict == "confirm" else 0, f"review:{rid}"))
    for aid, status, at, fid, cid, utt, rule, sid, rbid in db.execute(_appeals(since)):
        if rule in intent.get(rbid, {}):
            out.append(Verdict((cid, utt if utt is not None else -1, rule), fid, sid, rbid, None, at,
                               1 if status == "rejected" else 0, f"appeal:{aid}"))
    out.sort(key=lambda v: (v.at, v.source))
    return out


def standing(vs: list[Verdict], key: str = "site") -> dict[Any, list[Verdict]]:
    """The verdicts that count, per site (or per finding): the latest decided appeal alone when there is
    one, else each reviewer's latest."""
    by: dict[Any, list[Verdict]] = defaultdict(list)
    for v in vs:
        by[v.site if key == "site" else v.finding_id].append(v)
    out = {}
    for k, group in by.items():
        appeals = [v for v in group if v.who is None]
        if appeals:
            out[k] = [appeals[-1]]
        else:
            latest: dict[int | None, Verdict] = {}
            for v in group:  # oldest first: the last one of each reviewer stays
                latest[v.who] = v
            out[k] = list(latest.values())
    return out


# ---- export ----------------------------------------------------------------------------------------------------


@dataclass
class Export:
    rows: list[dict[str, Any]] = field(default_factory=list)
    verdicts: int = 0  # verdicts read (reviews and decided appeals of intent findings)
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # (text, label) judged both ways: left out
    skipped: int = 0  # sites whose utterance is gone or of the other role


def _labels_of(db: DBSession, ids: set[int]) -> dict[int, Rulebook]:
    out = {}
    for rid in ids:
        rec = db.get(RulebookVersion, rid)
        if rec is not None:
            out[rid] = load_version(rec)
    return out


def _industry(data: dict[str, Any]) -> str:
    for where in (data, data.get("customer"), data.get("agent")):
        if isinstance(where, dict) and isinstance(where.get("industry"), str) and where["industry"].strip():
            return str(where["industry"]).strip()
    return "reviews"


def export_reviews(ctx: Ctx, since: datetime | None = None) -> Export:
    """Labelled utterances from the verdicts on intent findings given at or after `since` (all when None)."""
    ctx.require(EXPORTERS, "只有质检员和管理员可以导出复核样本")
    db = ctx.db
    vs = verdicts(db, since)
    out = Export(verdicts=len(vs))
    sites = standing(vs)
    books = _labels_of(db, {v.rulebook_id for v in vs})
    calls: dict[int, tuple[str, dict[str, Any]]] = {}
    ids = sorted({s[0] for s in sites})
    for i in range(0, len(ids), 500):
        for cid, call_id, data in db.execute(select(Conversation.id, Conversation.call_id, Conversation.data)
                                             .where(Conversation.id.in_(ids[i:i + 500]))):
            calls[cid] = (call_id, data or {})
    known = labels()
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], Verdict]]] = defaultdict(list)
    for (cid, index, rule), standing_vs in sorted(sites.items(), key=lambda kv: kv[1][0].at):
        call_id, data = calls.get(cid, ("", {}))
        utts = data.get("utterances") or []
        rb = books.get(standing_vs[0].rulebook_id)
        r = rb.by_id.get(rule) if rb is not None else None
        label = getattr(r, "label", None)
        if not 0 <= index < len(utts) or not isinstance(utts[index], dict) or label not in known:
            out.skipped += 1
            continue
        u = utts[index]
        text = str(u.get("text") or "").strip()
        if not text or u.get("role") != known[label].role:
            out.skipped += 1
            continue
        row = {"id": f"review-{call_id}-{index}-{rule}", "text": text, "label": label, "role": u["role"],
               "industry": _industry(data), "register": _register(text), "split": "train",
               "rule": rule, "call_id": call_id, "utterance": index}
        for v in standing_vs:
            groups[(normalize.key(text), label)].append((row, v))
    for group in groups.values():
        ys = {v.y for _, v in group}
        row, first = group[0]
        if len(ys) > 1:
            out.conflicts.append((row["text"], row["label"]))
            continue
        out.rows.append({**row, "y": first.y, "source": first.source, "verdicts": len(group)})
    order = ["id", "text", "label", "y", "role", "industry", "register", "source", "split"]
    out.rows = [{k: r[k] for k in order} | {k: v for k, v in r.items() if k not in order} for r in out.rows]
    return out


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    """The rows as JSON Lines, written through a temporary file (nothing half-written is left)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


# ---- precision per model version -------------------------------------------------------------------------------


def precision_by_model(db: DBSession) -> list[dict[str, Any]]:
    """Per intent rule and model version (the `models` the score's report names), the findings people judged
    and how many were right: precision before and after a retraining, side by side. One verdict per finding
    (a decided appeal, else the latest review); carried-over verdicts of a re-scoring are not counted again."""
    intent = intent_rules(db)
    per_finding = standing(verdicts(db), key="finding")
    ids = sorted(per_finding)
    for i in range(0, len(ids), 500):  # an inspector's added finding (appealed) is no verdict on the model
        for fid in db.scalars(select(Finding.id).where(Finding.id.in_(ids[i:i + 500]), human_row())):
            del per_finding[fid]
    score_ids = sorted({v.score_id for vs in per_finding.values() for v in vs})
    model_of: dict[int, tuple[str, datetime]] = {}
    models = Score.report["rulebook"]["models"].as_string()
    for i in range(0, len(score_ids), 500):
        for sid, model, at in db.execute(select(Score.id, models, Score.created_at)
                                         .where(Score.id.in_(score_ids[i:i + 500]))):
            model_of[sid] = (model or NO_MODEL, at)
    agg: dict[tuple[str, str], dict[str, Any]] = {}
    for vs in per_finding.values():
        v = max(vs, key=lambda x: (x.at, x.source))
        model, at = model_of.get(v.score_id, (NO_MODEL, v.at))
        rule = v.site[2]
        a = agg.setdefault((rule, model), {"rule": rule, "name": intent.get(v.rulebook_id, {}).get(rule) or None,
                                          "model": model, "reviewed": 0, "right": 0, "wrong": 0, "since": at})
        a["reviewed"] += 1
        a["right" if v.y else "wrong"] += 1
        a["since"] = min(a["since"], at)
    out = sorted(agg.values(), key=lambda a: (a["rule"], a["since"], a["model"]))
    for a in out:
        a["precision"] = round(a["right"] / a["reviewed"], 3) if a["reviewed"] else None
    return out
