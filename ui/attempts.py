"""The shared-password gate's attempt limit (ui/auth.py): per client address, the first
``FREE_ATTEMPTS`` wrong passwords cost nothing; after that each wrong password doubles the wait
before the next attempt is even checked (2 s, 4 s, 8 s ... at most 15 minutes), and an attempt made
while the wait runs is refused unchecked with a lockout message. The right password clears the count.

Per address, not per browser session: a new tab or a script that opens fresh sessions gets no new
attempts. Every client behind one reverse proxy shares the proxy's address (see docs/deploy.md).
One limiter per server process, in memory: a restart forgets the counts.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

FREE_ATTEMPTS = 5
BASE_DELAY_S = 2.0
MAX_DELAY_S = 900.0
MAX_CLIENTS = 10_000  # addresses remembered at most (the oldest failures are forgotten first)


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class AttemptLimiter:
    def __init__(self, *, free: int = FREE_ATTEMPTS, base_delay_s: float = BASE_DELAY_S,
                 max_delay_s: float = MAX_DELAY_S, clock=time.monotonic):
        self.free, self.base, self.max_delay, self.clock = free, base_delay_s, max_delay_s, clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds before ``client``'s next attempt will be checked (0: now)."""
        with self._lock:
            record = self._records.get(client)
            return max(0.0, record.locked_until - self.clock()) if record else 0.0

    def failed(self, client: str) -> float:
        """Count a wrong password; returns the wait it starts (0 while attempts are free)."""
        now = self.clock()
        with self._lock:
            self._forget_old(now)
            record = self._records.setdefault(client, _Record())
            record.failures += 1
            record.last = now
            over = record.failures - self.free - 1  # the first failure past the free ones waits base_delay_s
            delay = 0.0 if over < 0 else min(self.max_delay, self.base * 2.0 ** over)
            record.locked_until = now + delay
            return delay

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._records.pop(client, None)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def _forget_old(self, now: float) -> None:
        stale = [c for c, r in self._records.items() if now - r.last > 2 * self.max_delay and now >= r.locked_until]
        for client in stale:
            del self._records[client]
        while len(self._records) >= MAX_CLIENTS:
            del self._records[min(self._records, key=lambda c: self._records[c].last)]


def lockout_message(wait_s: float) -> str:
    return (f"Too many wrong passwords from your address: the next attempt is accepted in "
            f"{_duration(wait_s)}.")


def _duration(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    return f"{math.ceil(seconds / 60)} min"


LIMITER = AttemptLimiter()  # the server process's one limiter
