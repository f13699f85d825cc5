"""What the fake records for tests: requests, webhook attempts and counters (all bounded)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen
class RecordedRequest:
    """One API request as the fake saw it, and the fake's answer.

    ``path`` is percent-decoded, as the fake routed it (``/v2/phone_numbers/+13125550100/
    messaging`` for a request to ``.../%2B13125550100/...``); ``status`` is None when the fake
    dropped the request; ``answer`` is the response body it sent (None when it sent none).
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    json: Any
    status: int | None
    request_id: str
    answer: bytes | None = None


@attrs.frozen
class WebhookAttempt:
    """One webhook POST: ``status`` is the receiver's HTTP status, None on a connection error
    or timeout (then ``error`` says which). ``event_id`` is None for link clicks."""

    event_id: str | None
    event_type: str
    url: str
    attempt: int
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        """True when the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


@attrs.define
class Stats:
    """Counters for tests. Reset them with :meth:`reset`.

    - ``request_counts``: requests per ``(method, route)``, route as the path template without
      ``/v2`` (e.g. ``("GET", "/messages/{id}")``).
    - ``in_flight`` / ``max_in_flight``: API requests being handled now / at most so far.
    - ``requests``: the latest requests (``FakeConfig.request_log_size``).
    - ``webhook_attempts``: the latest webhook POSTs (``FakeConfig.webhook_log_size``).

    ``requests``, ``webhook_attempts`` and ``request_counts`` are copies taken when read, so a
    test thread can iterate them while a fake served in another thread (``serve_in_thread``,
    the ``telnyx_fake`` fixture) keeps recording.
    - ``messages_sent``: messages accepted by the send endpoints (idempotent replays excluded).
    - ``rate_limited`` (10011), ``queue_full`` (40318), ``faults`` (injected faults),
      ``idempotent_replays``, ``webhooks_delivered``, ``webhooks_failed`` (events whose every
      URL and attempt failed).
    """

    request_log_size: int = 1_000
    webhook_log_size: int = 1_000
    _counts: Counter[tuple[str, str]] = attrs.field(init=False, factory=Counter, repr=False)
    in_flight: int = 0
    max_in_flight: int = 0
    _requests: deque[RecordedRequest] = attrs.field(init=False, repr=False)
    _attempts: deque[WebhookAttempt] = attrs.field(init=False, repr=False)
    messages_sent: int = 0
    rate_limited: int = 0
    queue_full: int = 0
    faults: int = 0
    idempotent_replays: int = 0
    webhooks_delivered: int = 0
    webhooks_failed: int = 0

    def __attrs_post_init__(self) -> None:
        self._requests = deque(maxlen=self.request_log_size)
        self._attempts = deque(maxlen=self.webhook_log_size)

    # Copies made in one C call each: the GIL keeps the fake's thread from appending midway
    # (iterating the deque itself from another thread raised "deque mutated during iteration").
    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        """The latest requests, oldest first."""
        return tuple(self._requests)

    @property
    def webhook_attempts(self) -> tuple[WebhookAttempt, ...]:
        """The latest webhook POSTs, oldest first."""
        return tuple(self._attempts)

    @property
    def request_counts(self) -> Counter[tuple[str, str]]:
        """Requests per ``(method, route)``."""
        return self._counts.copy()

    def count(self, method: str, route: str) -> int:
        """Requests seen for ``method`` and ``route`` (e.g. ``count("POST", "/messages")``)."""
        return self._counts[(method.upper(), route)]

    def record_request(self, request: RecordedRequest) -> None:
        """Log one API request (the fake's HTTP layer calls this)."""
        self._requests.append(request)

    def record_route(self, method: str, route: str) -> None:
        """Count one API request (the fake's HTTP layer calls this)."""
        self._counts[(method, route)] += 1

    def record_attempt(self, attempt: WebhookAttempt) -> None:
        """Log one webhook POST (the fake's dispatcher calls this)."""
        self._attempts.append(attempt)

    def reset(self) -> None:
        """Zero every counter and clear the logs (``in_flight`` is left alone)."""
        self._counts.clear()
        self._requests.clear()
        self._attempts.clear()
        self.max_in_flight = self.in_flight
        self.messages_sent = self.rate_limited = self.queue_full = self.faults = 0
        self.idempotent_replays = self.webhooks_delivered = self.webhooks_failed = 0
