"""The retry policy as pure functions: what may be retried, and how long to wait.

A retry must never send a message twice. So a request is retried only when it provably did not
reach Telnyx, when Telnyx said it did not process it, or when repeating it is harmless:

=============================================  ==========================  ======================
failure                                        GET / PUT / DELETE /        POST without
                                               PATCH (each sets absolute   Idempotency-Key
                                               values), or any call with
                                               an Idempotency-Key
=============================================  ==========================  ======================
connection refused / DNS / connect timeout     retried                     retried
read timeout, connection reset after sending   retried                     raised, outcome_unknown
429 code 10011 (or no code)                    retried, honouring hints    retried, honouring hints
429 code 40318 (queue full)                    QueueFullError, no retry    QueueFullError, no retry
408, 503                                       retried                     retried
500, 502, 504 and other 5xx but 511           retried                     raised, outcome_unknown
511 (a captive portal's, never Telnyx's)       retried                     raised
other 4xx                                      raised                      raised
3xx (redirects are not followed)               raised                      raised
=============================================  ==========================  ======================

A ``send_many`` item (with ``max_retries`` above 0) also retries up to
``BULK_THROTTLE_RETRIES`` answers 429 other than ``40318`` beyond ``max_retries``: Telnyx did
not process them, the client's rate limiter slows down and paces the retry, and a bulk run would
rather wait out a limit its limiter is converging to than end messages ``not_sent``.

When the retries run out, the last error is raised. ``outcome_unknown`` says whether the call
may have taken effect, whatever its retry safety: True after a 5xx other than 503 and 511 (or a
303) to anything but a GET, and after a connection lost once the request was written (see
``errors``), in the last attempt or any earlier one (``_wire.reached_earlier``).

A response header ``x-should-retry: true`` or ``false`` overrides the status rows (not the
transport rows): the server that saw the request knows whether repeating it is safe. This is the
directive the official SDK also checks first (docs/wire.md §1.6); any other value is ignored.

Waits: the server's hint when it sends a positive one (``retry-after-ms``, then ``Retry-After``
as seconds or an HTTP date, then Telnyx's ``x-ratelimit-reset`` on a 429), else exponential backoff
``min(initial * 2**n, max) * (1 - jitter * U[0,1))`` (0.5 s doubling to 8 s by default). A hint
longer than ``max_wait`` (60 s by default) is not slept through and not ignored either: the error
is raised at once with ``retry_after`` set.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Mapping
from datetime import timezone
from typing import NamedTuple

import attrs
from attrs import frozen

from telnyx_msg.errors import QUEUE_FULL_CODE, ConfigurationError


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"{attribute.name} must be a number >= 0, got {value!r}")


@frozen
class Backoff:
    """Exponential backoff between retries: ``initial`` doubling up to ``max``, minus jitter.

    ``jitter`` is the largest fraction taken off a delay at random (0.25 → 75-100 % of it), so
    many clients retrying together spread out. ``max_wait`` caps how long a server hint may make
    the client wait before it raises instead.
    """

    initial: float = attrs.field(default=0.5, validator=_non_negative)
    max: float = attrs.field(default=8.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.25, validator=_non_negative)
    max_wait: float = attrs.field(default=60.0, validator=_non_negative)

    def delay(self, retries_taken: int, rand: Callable[[], float] = random.random) -> float:
        """The backoff before retry number ``retries_taken + 1``."""
        base = min(self.initial * (2.0 ** min(retries_taken, 62)), self.max)
        return base * (1.0 - min(self.jitter, 1.0) * rand())


def check_backoff(value: Backoff | None) -> Backoff:
    """A ``backoff=`` argument: a :class:`Backoff`, or None for the default; anything else is
    a ConfigurationError now, not an AttributeError at the first retry."""
    if value is None:
        return Backoff()
    if not isinstance(value, Backoff):
        raise ConfigurationError(
            f"backoff must be a telnyx_msg.Backoff(initial=..., max=...), got {value!r}"
        )
    return value


class Failure(NamedTuple):
    """One failed attempt, as the policy sees it.

    ``status`` is None when no response came; ``reached`` then says whether the request may
    have reached Telnyx. ``code`` is the first Telnyx error code, ``hint`` the server's requested
    wait (:func:`server_hint`), ``should_retry`` the ``x-should-retry`` header. ``final`` marks
    a failure no retry can help (the client closed; a 2xx whose body was too large to read).
    """

    status: int | None
    reached: bool = True
    code: str | None = None
    hint: float | None = None
    should_retry: str | None = None
    final: bool = False


BULK_THROTTLE_RETRIES = 8


def free_retry(failure: Failure, bulk: bool, max_retries: int, free: int) -> bool:
    """Whether a failed attempt is one of the ``BULK_THROTTLE_RETRIES`` 429s (other than queue
    full) of a ``send_many`` item that do not count against ``max_retries``; ``free`` is how
    many it already had."""
    return (
        bulk
        and max_retries > 0
        and free < BULK_THROTTLE_RETRIES
        and failure.status == 429
        and failure.code != QUEUE_FULL_CODE
    )


def next_delay(
    failure: Failure, attempt: int, max_retries: int, retry_safe: bool, backoff: Backoff
) -> float | None:
    """Seconds to wait before retrying attempt number ``attempt`` (0-based), or None: give up.

    The module table decides whether the failure may be retried at all; the wait is the
    server's hint when it gave a positive one (a hint of 0 gets the backoff, so a server
    saying "now" is not hammered), else ``backoff``. A hint longer than ``backoff.max_wait``
    gives up (the error carries ``retry_after``), never cut short.
    """
    if failure.final or attempt >= max_retries:
        return None
    if failure.status is None:
        return backoff.delay(attempt) if retry_safe or not failure.reached else None
    if not status_retryable(failure.status, failure.code, retry_safe, failure.should_retry):
        return None
    if failure.hint is not None and failure.hint > backoff.max_wait:
        return None
    return failure.hint or backoff.delay(attempt)


def status_retryable(
    status: int, code: str | None, retry_safe: bool, should_retry: str | None = None
) -> bool:
    """Whether an HTTP error status may be retried (see the module table).

    ``should_retry`` is the response's ``x-should-retry`` header, which wins when it is
    ``true`` or ``false``.
    """
    if should_retry is not None:
        directive = should_retry.strip().lower()
        if directive in ("true", "false"):
            return directive == "true"
    if status == 429:
        return code != QUEUE_FULL_CODE
    if status in (408, 503):
        return True
    if status >= 500:
        return retry_safe
    return False


def status_outcome_unknown(status: int, method: str) -> bool:
    """A 5xx other than 503 to a call that changes something: Telnyx may have acted on it.
    Not a 511 (Network Authentication Required): a captive portal's answer, never Telnyx's.
    Also a 303 (See Other), which a server sends after it acted on a POST.

    Retry safety does not enter into it: an idempotency key makes a retry harmless, but when
    the last retry also failed the message may still have been accepted by an earlier attempt.
    """
    return ((status >= 500 and status not in (503, 511)) or status == 303) and method != "GET"


def server_hint(
    headers: Mapping[str, str], status: int, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the server asked us to wait, if it said so; ``None`` otherwise."""
    value = headers.get("retry-after-ms")
    if value is not None:
        parsed = parse_seconds(value)
        if parsed is not None:
            return parsed / 1000.0
    value = headers.get("retry-after")
    if value is not None:
        parsed = parse_seconds(value)
        if parsed is None:
            parsed = _http_date_delay(value, now)
        if parsed is not None:
            return parsed
    if status == 429:
        # Telnyx documents x-ratelimit-reset (seconds until the window resets) and no Retry-After.
        value = headers.get("x-ratelimit-reset")
        if value is not None:
            return parse_seconds(value)
    return None


_SECONDS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def parse_seconds(value: str) -> float | None:
    """A header value in seconds (>= 0): digits with an optional fraction (a negative one is
    0), else None. ``float()`` alone would also read ``1_0``, ``1e3`` or ``infinity``."""
    value = value.strip()
    if _SECONDS.fullmatch(value) is None:
        return None
    parsed = float(value)  # inf for 400 digits
    return max(parsed, 0.0) if math.isfinite(parsed) else None


def _http_date_delay(value: str, now: Callable[[], float]) -> float | None:
    import email.utils  # rare (Retry-After as a date), and ~10 ms to import

    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no zone information (RFC 5322)
        when = when.replace(tzinfo=timezone.utc)
    return max(when.timestamp() - now(), 0.0)
