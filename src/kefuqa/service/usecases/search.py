"""Full-text search of transcripts, combined with the call list's filters, and saved searches.

The index is the database's own (migration 0003): SQLite's FTS5 trigram tokenizer, PostgreSQL's pg_trgm GIN
index on `call_texts.body`. A query is split at spaces into terms that must all occur (AND). A trigram index
can only look up a term of three characters or more. A Chinese word of one or two characters (退款, 慢) is
looked up too (migration 0010): on PostgreSQL in a second index of each transcript's characters and character
pairs, on SQLite by the range of indexed trigrams that begin with it (the index is padded at the end of each
transcript so that every occurrence begins one); the candidates are then checked for the word itself. Only a
short word whose case folding is not plain lower-casing is still matched by a scan (LIKE) on SQLite; the
result says which terms went that way (`Hits.scanned`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import Select, and_, column, delete, func, literal_column, or_, select, table

from .. import repository as repo
from ..errors import Invalid, NotFound
from ..models import CallText, Conversation, SavedSearch, utcnow
from .context import Ctx

MAX_TERMS = 5
MAX_TERM = 50
TRIGRAM = 3
SNIPPETS = 3
MAX_SAVED = 50
COUNT_CAP = 1000
PREFETCH = 5000  # matches read from the index before the filters

_fts = table("call_texts_fts", column("rowid"), column("body"))
_vocab = table("call_texts_fts_vocab", column("term"), column("doc"))


def _foldable(term: str) -> bool:
    """Whether FTS5's case folding of the term is plain lower-casing (CJK, ASCII): else it is scanned."""
    return all(c.isascii() or "\u3000" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" for c in term)


def terms_of(text: str | None) -> list[str]:
    """The query's terms: split at whitespace (ASCII or full-width), duplicates dropped, at most five."""
    out: list[str] = []
    for raw in re.split(r"[\s\u3000]+", (text or "").strip()):
        term = raw.strip()[:MAX_TERM]
        if term and term.casefold() not in {t.casefold() for t in out}:
            out.append(term)
    if len(out) > MAX_TERMS:
        raise Invalid(f"搜索词最多 {MAX_TERMS} 个（用空格分隔）")
    return out


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _like(term: str) -> str:
    return "%" + term.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


def matching_ids(dialect: str, terms: list[str], *, lookup: bool = True) -> Select[Any]:
    """The ids of the calls whose transcript contains every term (at least one term). `lookup`: a short term is
    looked up in its index (migration 0010) — the way to list matches; without it the statement only compares
    substrings, the cheap check of a given call (the grams condition, were the planner to test it call by call
    instead of using the index, would build each transcript's grams again)."""
    long_terms = [t for t in terms if len(t) >= TRIGRAM]
    short = [t for t in terms if len(t) < TRIGRAM]
    if dialect == "sqlite":
        if not long_terms and GRAMS and lookup:
            # the calls with an indexed trigram that begins with the (longest) short term: every occurrence
            # begins one, the index being padded at the end (migration 0010); then the substring check
            first = max(short, key=len)
            lo = first.lower()
            if _foldable(first):
                found = select(_vocab.c.doc).where(_vocab.c.term >= lo, _vocab.c.term < lo + "\U0010ffff") \
                    .distinct().subquery()
                stmt = select(CallText.conversation_id).join(found, CallText.conversation_id == found.c.doc)
                return stmt.where(*(CallText.body.like(_like(t), escape="/") for t in short))  # type: ignore[return-value]
        if long_terms:
            query = " AND ".join(_fts_phrase(t) for t in long_terms)
            stmt = select(_fts.c.rowid).where(_fts.c.body.match(query))
            if short:
                stmt = select(CallText.conversation_id).where(CallText.conversation_id.in_(stmt))
            else:
                return stmt  # type: ignore[return-value]
        else:
            stmt = select(CallText.conversation_id)
        return stmt.where(*(CallText.body.like(_like(t), escape="/") for t in short))  # type: ignore[return-value]
    # PostgreSQL: LIKE on the pg_trgm GIN index; ILIKE only for a term with Latin letters (Chinese has no case,
    # and ILIKE's recheck costs more). A term under three characters, which no trigram can look up, is looked
    # up by its characters and pair in the grams index (migration 0010), the LIKE then checks the candidates.
    # (a short term is checked with strpos: a LIKE of one or two characters would tempt the planner into the
    # trigram index, whose scan for it returns every call)
    conds = [_contains(t) if len(t) < TRIGRAM else CallText.body.ilike(_like(t), escape="/")
             if re.search("[A-Za-z]", t) else CallText.body.like(_like(t), escape="/") for t in terms]
    if GRAMS and lookup and short:
        conds.append(_grams(short))
    return select(CallText.conversation_id).where(*conds)


def _contains(term: str) -> Any:
    """PostgreSQL: the transcript contains `term` (Latin letters in either case), by strpos."""
    if re.search("[A-Za-z]", term):
        return func.strpos(func.lower(CallText.body), term.lower()) > 0
    return func.strpos(CallText.body, term) > 0


GRAMS = True  # short terms by an index (migration 0010); the benchmark turns it off to measure the scan


def _grams(terms: list[str]) -> Any:
    """`kefuqa_grams(body) @@ <every term's characters and pair>`: the expression of the index of migration 0010,
    one condition for all the short terms (one index scan; never one of them tested call by call)."""
    text_: Any = func.kefuqa_gram_text(terms[0])
    for t in terms[1:]:
        text_ = text_.op("||")(" ").op("||")(func.kefuqa_gram_text(t))
    query = func.plainto_tsquery(literal_column("'simple'::regconfig"), text_)
    return func.kefuqa_grams(CallText.body).op("@@")(query)


WALK_CHUNK = 2000  # newest calls checked per step of the walk (doubling up to WALK_MAX)
WALK_MAX = 32000


def _walk(db: Any, stmt: Select[Any], terms: list[str], want: int) -> list[int]:
    """PostgreSQL, for a frequent match: the ids of the `want` newest calls of `stmt` whose transcript contains
    every term, found by walking the calls newest first (the call_at index) and checking each step's calls'
    transcripts by primary key; it stops as soon as the page is full, instead of reading every match from the
    trigram index first (25,000 rechecked rows for a phrase in 2.5 % of a million calls)."""
    # strpos, not LIKE: LIKE would let the planner read every match from the trigram index again (25,000 rows
    # for a frequent phrase) instead of checking the step's calls by primary key; a term with Latin letters is
    # compared in lower case, as ILIKE does elsewhere
    conds = [func.strpos(func.lower(CallText.body), t.lower()) > 0 if re.search("[A-Za-z]", t)
             else func.strpos(CallText.body, t) > 0 for t in terms]
    base = stmt.with_only_columns(Conversation.id, Conversation.call_at).order_by(
        Conversation.call_at.desc(), Conversation.id.desc())
    found: list[int] = []
    cursor: tuple[Any, int] | None = None
    chunk = WALK_CHUNK
    while len(found) < want:
        q = base if cursor is None else base.where(  # after the last call seen (call_at, then id)
            Conversation.call_at <= cursor[0], or_(Conversation.call_at < cursor[0],
                                                   and_(Conversation.call_at == cursor[0], Conversation.id < cursor[1])))
        batch = [(i, at) for i, at in db.execute(q.limit(chunk)).all()]
        if not batch:
            break
        ids = [i for i, _ in batch]
        hit = set(db.scalars(select(CallText.conversation_id).where(CallText.conversation_id.in_(ids), *conds)))
        found.extend(i for i in ids if i in hit)
        cursor = (batch[-1][1], batch[-1][0])
        chunk = min(chunk * 2, WALK_MAX)
    return found[:want]


def _unrestricted(user: Any, f: repo.CallFilter) -> bool:
    """No filter and no role scope: every call is a candidate."""
    if user.role not in ("admin", "qa"):
        return False
    keep = ("sort", "page", "page_size")
    return all(v is None or v == "" or k in keep for k, v in f.__dict__.items())


@dataclass
class Snippet:
    utterance: int
    role: str
    start: float | None
    html: Markup


@dataclass
class Hit:
    call: Conversation
    snippets: list[Snippet]
    matches: int  # utterances that contain a term


@dataclass
class Hits:
    terms: list[str]
    total: int
    rows: list[Hit]
    scanned: list[str] = field(default_factory=list)  # terms matched without the index (under 3 characters)
    more: bool = False  # more than `total` (= COUNT_CAP) calls match


def mark(text: str, terms: list[str]) -> Markup:
    """`text` escaped, each occurrence of a term (ASCII case ignored) in <mark>."""
    if not terms:
        return Markup(escape(text))
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        out.append(str(escape(text[last:m.start()])))
        out.append(f"<mark>{escape(m.group(0))}</mark>")
        last = m.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def snippets(data: dict[str, Any], terms: list[str], limit: int = SNIPPETS) -> tuple[list[Snippet], int]:
    """The utterances of a conversation that contain a term, highlighted (the first `limit`), and how many."""
    folded = [t.casefold() for t in terms]
    found: list[Snippet] = []
    count = 0
    for i, u in enumerate(data.get("utterances") or []):
        text = str(u.get("text") or "") if isinstance(u, dict) else ""
        if any(t in text.casefold() for t in folded):
            count += 1
            if len(found) < limit:
                start = u.get("start")
                found.append(Snippet(i, str(u.get("role") or ""), start if isinstance(start, (int, float)) else None,
                                     mark(text, terms)))
    return found, count


def search(ctx: Ctx, text: str | None, f: repo.CallFilter) -> Hits:
    """Calls in the user's scope whose transcript contains every term, within the filter; newest first."""
    user = ctx.acting()
    terms = terms_of(text)
    stmt = repo.filtered_calls(user, f, ctx.settings.timezone)
    db = ctx.db
    exact = True
    if terms:
        # The matching calls first, from the index alone: when they are few (a selective query) the filters,
        # count and order work on that list; when they are many, the newest calls are walked and checked step by
        # step until the page is full (_walk, PostgreSQL), and the count stops at COUNT_CAP (not counted at all
        # when nothing narrows the search: more than PREFETCH match). Left to itself the planner may walk a
        # million calls for a rare pair of words, or recheck every match of a frequent one.
        ids_q = matching_ids(ctx.wb.dialect, terms)
        ids = list(db.scalars(ids_q.limit(PREFETCH + 1)))
        exact = len(ids) <= PREFETCH
        # more matches than prefetched: the count (capped) checks the filtered calls' text, call by call or by
        # the trigram index as the planner sees fit, not by the grams of every match
        counted = stmt.where(Conversation.id.in_(ids) if exact else Conversation.id.in_(
            matching_ids(ctx.wb.dialect, terms, lookup=False)))
        walk = not exact and ctx.wb.dialect == "postgresql"  # issue 13: a frequent match is walked
        base, stmt = stmt, counted
    else:
        counted, base, walk = stmt, stmt, False
    size = max(1, min(repo.PAGE_MAX, f.page_size))
    if not exact and PREFETCH >= COUNT_CAP and _unrestricted(user, f):
        total = COUNT_CAP + 1  # more than PREFETCH calls match and nothing narrows them: no need to count
    else:
        counted = counted.order_by(None) if exact else counted.order_by(None).limit(COUNT_CAP + 1)
        total = db.scalar(select(func.count()).select_from(counted.subquery())) or 0
    more = not exact and total > COUNT_CAP
    # the page's ids first (only the columns the order needs), then their rows
    skip = (max(1, f.page) - 1) * size
    if walk:
        page_ids = _walk(db, base, terms, skip + size)[skip:]
    else:
        page_ids = list(db.scalars(stmt.with_only_columns(Conversation.id).order_by(
            Conversation.call_at.desc(), Conversation.id.desc()).offset(skip).limit(size)))
    by_id = {c.id: c for c in db.scalars(select(Conversation).where(Conversation.id.in_(page_ids)))} \
        if page_ids else {}
    rows = [by_id[i] for i in page_ids if i in by_id]
    datas: dict[int, Any] = dict(db.execute(select(Conversation.id, Conversation.data).where(
        Conversation.id.in_([c.id for c in rows]))).all()) if rows and terms else {}
    hits = []
    for conv in rows:
        snips, n = snippets(datas.get(conv.id) or {}, terms) if terms else ([], 0)
        hits.append(Hit(conv, snips, n))
    db.commit()
    scanned = [] if GRAMS and (ctx.wb.dialect == "postgresql" or any(len(t) >= TRIGRAM for t in terms)
                               or any(_foldable(t) for t in terms)) else [t for t in terms if len(t) < TRIGRAM]
    return Hits(terms, min(total, COUNT_CAP) if more else total, hits, scanned, more)


# ---- saved searches ---------------------------------------------------------------------------------------------


def saved(ctx: Ctx) -> list[SavedSearch]:
    user = ctx.acting()
    return list(ctx.db.scalars(select(SavedSearch).where(SavedSearch.user_id == user.id)
                               .order_by(SavedSearch.name, SavedSearch.id)))


def save(ctx: Ctx, name: str | None, query: str | None) -> SavedSearch:
    """Save the search page's query string under a name (the user's own list; a name saved again is replaced)."""
    user = ctx.acting()
    name = (name or "").strip()
    query = (query or "").strip().lstrip("?")
    if not name:
        raise Invalid("请给保存的搜索起个名字")
    if len(name) > 100:
        raise Invalid("名称不能超过 100 字")
    if not query or len(query) > 2000:
        raise Invalid("没有可保存的搜索条件" if not query else "搜索条件过长")
    with ctx.transaction() as db:
        old = db.scalar(select(SavedSearch).where(SavedSearch.user_id == user.id, SavedSearch.name == name))
        if old is not None:
            old.query, old.created_at = query, utcnow()
            return old
        count = db.scalar(select(func.count(SavedSearch.id)).where(SavedSearch.user_id == user.id)) or 0
        if count >= MAX_SAVED:
            raise Invalid(f"最多保存 {MAX_SAVED} 个搜索，请先删除不用的")
        rec = SavedSearch(user_id=user.id, name=name, query=query, created_at=utcnow())
        db.add(rec)
    return rec


def delete_saved(ctx: Ctx, saved_id: int) -> None:
    """Delete one of the user's own saved searches (another user's is missing)."""
    user = ctx.acting()
    with ctx.transaction() as db:
        gone = db.execute(delete(SavedSearch).where(SavedSearch.id == saved_id, SavedSearch.user_id == user.id))
        if not gone.rowcount:  # type: ignore[attr-defined]
            raise NotFound("保存的搜索不存在")
