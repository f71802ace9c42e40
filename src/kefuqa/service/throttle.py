"""Login throttling: failed logins slow down who fails, with growing waits, and never lock anyone out.

Three counters of recent failures, each with its own rule:

- a client (its address) that keeps failing, whatever names it tries: after `per_client` failures every
  further attempt waits 1 s, 2 s, 4 s … up to `cap_s` — a password-guessing run from one place crawls;
- an account tried from one client: after `per_pair` failures the same growing waits, for that client only —
  the account's owner, from anywhere else, is not affected;
- an account tried from many clients: after `per_account` failures, at most one attempt every
  `account_spacing_s` seconds — distributed guessing is slowed, while the owner waits seconds at worst.

Known and unknown user names are counted alike and get the same answers, so the answers tell nothing
about which accounts exist. Counters live in the process (each worker of `kefuqa serve --workers N` keeps
its own) and are forgotten after `forget_s` without failures; a successful login clears the client's and
the pair's counters."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Count:
    failures: int = 0
    last: float = 0.0


class LoginThrottle:
    def __init__(self, *, per_pair: int = 5, per_client: int = 20, per_account: int = 50, cap_s: float = 900.0,
                 account_spacing_s: float = 2.0, forget_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_pair, self.per_client, self.per_account = per_pair, per_client, per_account
        self.cap_s, self.account_spacing_s, self.forget_s = cap_s, account_spacing_s, forget_s
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, ...], _Count] = {}

    def _keys(self, client: str | None, username: str) -> tuple[tuple[str, ...], ...]:
        name = username.strip()
        ip = client or "?"
        return ("client", ip), ("pair", ip, name), ("account", name)

    def _backoff(self, count: _Count, threshold: int) -> float:
        if count.failures < threshold:
            return 0.0
        return min(self.cap_s, 2.0 ** (count.failures - threshold))

    def wait(self, client: str | None, username: str) -> int:
        """Seconds this client must wait before trying `username` again (0: it may try now)."""
        now = self.clock()
        with self._lock:
            c, p, a = (self._counts.get(k) for k in self._keys(client, username))
            waits = [0.0]
            for count, threshold in ((c, self.per_client), (p, self.per_pair)):
                if count is not None and now - count.last < self.forget_s:
                    waits.append(count.last + self._backoff(count, threshold) - now)
            if a is not None and a.failures >= self.per_account and now - a.last < self.forget_s:
                waits.append(a.last + self.account_spacing_s - now)
        return max(0, math.ceil(max(waits)))

    def failed(self, client: str | None, username: str) -> None:
        now = self.clock()
        with self._lock:
            for key in self._keys(client, username):
                count = self._counts.get(key)
                if count is None or now - count.last >= self.forget_s:
                    count = self._counts[key] = _Count()
                count.failures += 1
                count.last = now
            if len(self._counts) > 50_000:
                self._counts = {k: v for k, v in self._counts.items() if now - v.last < self.forget_s}

    def succeeded(self, client: str | None, username: str) -> None:
        with self._lock:
            for key in self._keys(client, username)[:2]:
                self._counts.pop(key, None)
