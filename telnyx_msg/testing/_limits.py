"""Pure rate-limit bookkeeping: the account request window and per-sender message queues.

Both take ``now`` (seconds on any monotonic clock) as an argument, so they are tested without
sleeping.
"""

from __future__ import annotations

import math

from telnyx_msg.testing._config import ApiRateLimit, Throughput


class RequestWindow:
    """Fixed-window request counter for the account API limit (error ``10011``)."""

    __slots__ = ("_count", "_end", "limit", "window")

    def __init__(self, config: ApiRateLimit) -> None:
        self.limit = config.limit
        self.window = config.window
        self._count = 0
        self._end = -math.inf

    def hit(self, now: float) -> tuple[bool, int, int]:
        """Count one request; return ``(allowed, remaining, reset_seconds)``."""
        if now >= self._end:
            self._end = now + self.window
            self._count = 0
        self._count += 1
        remaining = max(0, self.limit - self._count)
        return self._count <= self.limit, remaining, max(1, math.ceil(self._end - now))


class QueueFull(Exception):
    """A sender's (or the account's) message queue has no room; carries the lane's name."""


class SenderQueues:
    """Virtual per-sender message queues: O(1) per message, nothing sleeps.

    Each lane remembers when it is next free. A message starts at the latest of now, its
    sender lane's and its account lane's next free time; the difference is ``wait_seconds``.
    The backlog ahead of a message is ``(next_free - now) * rate`` messages; more than the
    lane's depth means the queue is full.
    """

    _PRUNE_AT = 10_000

    def __init__(self, config: Throughput) -> None:
        self.config = config
        self._next: dict[str, float] = {}

    def rate(self, sender: str, kind: str) -> float:
        """Messages per second for this sender."""
        return self.config.per_sender_mps.get(sender) or self.config.per_kind_mps[kind]

    def depth(self, rate: float) -> float:
        """Messages a sender lane may hold waiting."""
        if self.config.queue_depth is not None:
            return float(self.config.queue_depth)
        return max(1.0, self.config.queue_seconds * rate)

    def admit(self, sender: str, kind: str, message_type: str, count: int, now: float) -> float:
        """Queue ``count`` messages; return their ``wait_seconds`` or raise :class:`QueueFull`.

        ``count`` is the number of recipients (a group MMS is one message per recipient).
        """
        rate = self.rate(sender, kind)
        start = max(now, self._next.get(sender, now))
        if (start - now) * rate > self.depth(rate) + 1e-9:
            raise QueueFull(sender)
        account_rate = self.config.account_mps.get(message_type)
        account_key = f"account:{message_type}"
        if account_rate is not None:
            account_start = max(now, self._next.get(account_key, now))
            if (account_start - now) * account_rate > self.config.queue_seconds * account_rate:
                raise QueueFull(f"account {message_type}")
            start = max(start, account_start)
            self._next[account_key] = start + count / account_rate
        self._next[sender] = start + count / rate
        if len(self._next) > self._PRUNE_AT:
            self._prune(now)
        return start - now

    def _prune(self, now: float) -> None:
        # Lanes whose queue has drained carry no information; dropping them bounds memory.
        for key in [k for k, t in self._next.items() if t <= now]:
            del self._next[key]
