"""Short-lived caches of figures that are expensive at scale and fine a few seconds old (issue 13): the review
badge's count of open findings, and the overview's trend alerts.

A cache belongs to one database engine (so two workbenches in one process, as in the tests, never share
values) and lives in this process only. A value is served for at most `ttl` seconds after it was computed;
after that the next caller computes it again. So what a page shows is never older than the window, on every
worker; a change made through this process can also drop the values at once (`invalidate`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

T = TypeVar("T")


class TTLCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._values: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        now = self.clock()
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._values[key] = (now, value)
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._values.clear()


_caches: WeakKeyDictionary[Any, dict[str, TTLCache]] = WeakKeyDictionary()
_lock = threading.Lock()


def for_engine(engine: Any, name: str, ttl: float) -> TTLCache:
    """The cache `name` of this engine (created with `ttl` on first use)."""
    with _lock:
        named = _caches.setdefault(engine, {})
        cache = named.get(name)
        if cache is None:
            cache = named[name] = TTLCache(ttl)
        return cache


def invalidate(engine: Any) -> None:
    """Drop every cached value of this engine (after a change made in this process)."""
    with _lock:
        named = list(_caches.get(engine, {}).values())
    for cache in named:
        cache.invalidate()


def drop_on_commit(session_class: Any, watched: tuple[type, ...]) -> None:
    """Drop the engine's cached values when a transaction that added, changed or deleted an instance of one of
    `watched`, or ran a bulk INSERT, UPDATE or DELETE on its table, commits: the reviewer who confirms a finding sees the badge go
    down at once, an upload shows on the overview at once; changes made by other processes show within the
    window."""
    from sqlalchemy import event

    def after_flush(session: Any, _ctx: Any) -> None:
        if any(isinstance(o, watched) for o in (*session.new, *session.dirty, *session.deleted)):
            session.info["kefuqa_cache_stale"] = True

    tables = {getattr(cls, "__table__", None) for cls in watched}

    def on_execute(state: Any) -> None:
        if (state.is_insert or state.is_update or state.is_delete) and \
                getattr(state.statement, "table", None) in tables:
            state.session.info["kefuqa_cache_stale"] = True

    def after_commit(session: Any) -> None:
        if session.info.pop("kefuqa_cache_stale", False):
            bind = session.get_bind()
            invalidate(getattr(bind, "engine", bind))

    event.listen(session_class, "after_flush", after_flush)
    event.listen(session_class, "do_orm_execute", on_execute)
    event.listen(session_class, "after_commit", after_commit)
