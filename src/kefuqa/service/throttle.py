"""Login throttling: failed logins slow down who fails, with growing waits, and never lock anyone out.

Three counters of recent failures, each with its own rule:

- a client (its address) that keeps failing, whatever names it tries: after `per_client` failures every
  further attempt waits 1 s, 2 s, 4 s … up to `cap_s` — a password-guessing run from one place crawls;
- an account tried from one client: after `per_pair` failures the same growing waits, for that client only —
  the account's owner, from anywhere else, is not affected;
- an account tried from many clients: after `per_account` failures, at most one attempt every
  `account_spacing_s` seconds — distributed guessing is slowed, while the owner waits seconds at worst.

Known and unknown user names are counted alike and get the same answers, so the answers tell nothing
about which accounts exist. The counters are kept in the database (`DatabaseCounts`, table login_failures),
so every worker of `kefuqa serve --workers N` sees the same ones — a guesser gains nothing from landing on
several workers; `MemoryCounts` keeps them in one process. They are forgotten after `forget_s` without
failures; a successful login clears the client's and the pair's counters."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from sqlalchemy import Table, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from .models import LoginFailure

Key = str
Counts = dict[Key, tuple[int, float]]  # key → (failures, time of the last one)


class CountStore(Protocol):
    def read(self, keys: Sequence[Key]) -> Counts: ...

    def add_failure(self, keys: Sequence[Key], now: float, forget_s: float) -> None: ...

    def clear(self, keys: Sequence[Key]) -> None: ...


class MemoryCounts:
    """The counters of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counts = {}

    def read(self, keys: Sequence[Key]) -> Counts:
        with self._lock:
            return {k: self._counts[k] for k in keys if k in self._counts}

    def add_failure(self, keys: Sequence[Key], now: float, forget_s: float) -> None:
        with self._lock:
            for key in keys:
                failures, last = self._counts.get(key, (0, now))
                self._counts[key] = (1 if now - last >= forget_s else failures + 1, now)
            if len(self._counts) > 50_000:
                self._counts = {k: v for k, v in self._counts.items() if now - v[1] < forget_s}

    def clear(self, keys: Sequence[Key]) -> None:
        with self._lock:
            for key in keys:
                self._counts.pop(key, None)


class DatabaseCounts:
    """The counters in the workbench database, shared by all its processes. A failure is one atomic upsert
    per counter (INSERT … ON CONFLICT DO UPDATE), so failures on two workers at the same moment both count."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def read(self, keys: Sequence[Key]) -> Counts:
        with self.engine.connect() as conn:
            rows = conn.execute(select(LoginFailure.key, LoginFailure.failures, LoginFailure.last)
                                .where(LoginFailure.key.in_(list(keys))))
            return {r.key: (int(r.failures), float(r.last)) for r in rows}

    def add_failure(self, keys: Sequence[Key], now: float, forget_s: float) -> None:
        table = cast(Table, LoginFailure.__table__)
        with self.engine.begin() as conn:
            for key in sorted(keys):  # one lock order for every worker: no deadlock between two of them
                stmt = self._insert(table).values(key=key, failures=1, last=now)
                stale = table.c.last <= now - forget_s
                conn.execute(stmt.on_conflict_do_update(index_elements=[table.c.key], set_={
                    "failures": case((stale, 1), else_=table.c.failures + 1), "last": now}))
            if random.random() < 0.01:  # now and then, forget what has been forgotten
                conn.execute(delete(table).where(table.c.last < now - forget_s))

    def clear(self, keys: Sequence[Key]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(LoginFailure).where(LoginFailure.key.in_(list(keys))))


class LoginThrottle:
    def __init__(self, *, per_pair: int = 5, per_client: int = 20, per_account: int = 50, cap_s: float = 900.0,
                 account_spacing_s: float = 2.0, forget_s: float = 3600.0, store: CountStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_pair, self.per_client, self.per_account = per_pair, per_client, per_account
        self.cap_s, self.account_spacing_s, self.forget_s = cap_s, account_spacing_s, forget_s
        self.store: CountStore = store or MemoryCounts()
        self.clock = clock  # wall-clock seconds: the database's counters are compared across processes

    @staticmethod
    def _keys(client: str | None, username: str) -> tuple[Key, Key, Key]:
        name = username.strip()
        ip = client or "?"
        return f"client|{ip}", f"pair|{ip}|{name}", f"account|{name}"

    def _backoff(self, failures: int, threshold: int) -> float:
        if failures < threshold:
            return 0.0
        return min(self.cap_s, 2.0 ** (failures - threshold))

    def wait(self, client: str | None, username: str) -> int:
        """Seconds this client must wait before trying `username` again (0: it may try now)."""
        now = self.clock()
        ck, pk, ak = self._keys(client, username)
        counts = self.store.read((ck, pk, ak))
        waits = [0.0]
        for key, threshold in ((ck, self.per_client), (pk, self.per_pair)):
            if key in counts and now - counts[key][1] < self.forget_s:
                failures, last = counts[key]
                waits.append(last + self._backoff(failures, threshold) - now)
        if ak in counts:
            failures, last = counts[ak]
            if failures >= self.per_account and now - last < self.forget_s:
                waits.append(last + self.account_spacing_s - now)
        return max(0, math.ceil(max(waits)))

    def failed(self, client: str | None, username: str) -> None:
        self.store.add_failure(self._keys(client, username), self.clock(), self.forget_s)

    def succeeded(self, client: str | None, username: str) -> None:
        self.store.clear(self._keys(client, username)[:2])
