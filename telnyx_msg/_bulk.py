"""``messages.send_many``: bounded, lazy, rate-limited bulk sending that never double-sends.

Shape of a run: the input (any iterable or async iterable of keyword mappings) is pulled one item
at a time, only while fewer than ``concurrency`` items sit between the input and the consumer
(sends in flight plus outcomes not yet consumed), so memory stays bounded by ``concurrency``
whatever the input size and however slowly the outcomes are consumed. Each item becomes one
send task (rate limited by the client's limiter, retried by the client's safe-retry policy)
and outcomes are yielded in completion order. Every input item the run pulled gets exactly
one outcome:

- ``sent``: Telnyx accepted it (2xx); ``message`` is the result. When the 2xx body could not be
  read (``APIResponseValidationError``) the message was still accepted: ``sent`` with
  ``message=None`` and that error in ``error``.
- ``rejected``: refused for good: a 4xx (after retries) or a ``ValidationError`` before I/O.
- ``unknown``: it may have reached Telnyx (timeout or drop after sending, 500/502/504); it is
  never resent — reconcile with delivery webhooks or ``messages.retrieve``.
- ``not_sent``: provably not accepted: connection refused, 429/503 after retries, queue full,
  the recipient opted out of this sender (with ``skip_optouts=True``: the account's opt-outs
  are listed once, page by page, before the first send), or the run was stopped before the
  request was written.

Stopping: no new item is pulled once the consumer stops iterating. Closing the iterator
(``await outcomes.aclose()``, ``contextlib.aclosing``, or cancelling the consuming task) cancels
the sends still waiting for a rate-limit token (they were never written, so they are
``not_sent``) and the ones on the wire (``unknown``); their outcomes can be read with
``on_stop=`` since the iteration itself has ended.

Outages stop the run: when the client is closed (``ClientClosedError``) or the rate limiter's
Redis is unavailable (``RateLimiterUnavailableError``), the item that hit it is yielded
``not_sent``, the iteration then raises that error, no further item is pulled, and the sends
still in flight are stopped as above (``on_stop``). Items not pulled were never touched: resume
with the rest of the input once the dependency is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

from attrs import frozen

from telnyx_msg.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    ClientClosedError,
    RateLimitError,
    RateLimiterUnavailableError,
    TelnyxError,
    ValidationError,
)
from telnyx_msg.models import Message, WhatsAppMessage

__all__ = ["SendGate", "SendOutcome", "run_send_many", "send_gate"]

OutcomeStatus = Literal["sent", "rejected", "unknown", "not_sent"]
SendMethod = Literal[
    "auto",
    "send",
    "send_long_code",
    "send_short_code",
    "send_number_pool",
    "send_with_alphanumeric_sender",
    "send_group_mms",
    "send_whatsapp",
]
SEND_METHODS = frozenset(SendMethod.__args__) - {"auto"}  # type: ignore[attr-defined]


@frozen
class SendOutcome:
    """The fate of one input item of ``send_many``.

    ``index`` is its position in the input, ``request`` the mapping as given, ``status`` one of
    ``sent`` / ``rejected`` / ``unknown`` / ``not_sent``, ``message`` the accepted message (for
    ``sent``), ``error`` the exception behind any other status.
    """

    index: int
    request: Mapping[str, Any]
    status: OutcomeStatus
    message: Message | WhatsAppMessage | None = None
    error: BaseException | None = None

    @property
    def reason(self) -> str:
        """A one-line explanation (the error text, or ``"accepted"``)."""
        return "accepted" if self.error is None else str(self.error)


class NotSentError(TelnyxError):
    """The request was not written because the bulk run was stopped first."""


class OptedOutError(TelnyxError):
    """Skipped: the recipient opted out (STOP) of messages from this sender."""


class SendGate:
    """Per-send flag the client checks just before writing a request (see ``send_gate``)."""

    __slots__ = ("stopped", "written")

    def __init__(self) -> None:
        self.stopped = False
        self.written = False


#: Set inside each send task: the client's request pipeline checks it after the rate limiter
#: and before the network, so a stopped run never writes a request it has not written yet.
send_gate: contextvars.ContextVar[SendGate | None] = contextvars.ContextVar(
    "telnyx_msg_send_gate", default=None
)


_STOPS_THE_RUN = (ClientClosedError, RateLimiterUnavailableError)


def classify(error: BaseException, gate: SendGate) -> OutcomeStatus:
    """Map a send's exception to an outcome status (see the module docstring)."""
    if isinstance(error, ValidationError):
        return "rejected"
    if isinstance(error, APIResponseValidationError):
        return "sent"  # Telnyx answered 2xx: accepted, only its answer was unreadable
    if isinstance(error, RateLimiterUnavailableError):
        return "not_sent"  # the limiter is consulted before anything is written
    if isinstance(error, (NotSentError, asyncio.CancelledError)):
        return "unknown" if gate.written else "not_sent"
    if isinstance(error, APIConnectionError):
        return "unknown" if error.outcome_unknown else "not_sent"
    if isinstance(error, APIStatusError):
        if error.outcome_unknown:
            return "unknown"
        if isinstance(error, RateLimitError) or error.status >= 500:
            return "not_sent"
        return "rejected"
    # Anything else happened after the request may have been written, or before.
    return "unknown" if gate.written else "not_sent"


def pick_method(item: Mapping[str, Any], method: SendMethod) -> str:
    """The ``messages`` method for one item: explicit, or inferred from its keys."""
    if method != "auto":
        return method
    if "whatsapp_message" in item:
        return "send_whatsapp"
    if isinstance(item.get("to"), (list, tuple)):
        return "send_group_mms"
    return "send"


async def run_send_many(
    senders: Mapping[str, Callable[..., Awaitable[Any]]],
    requests: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
    *,
    concurrency: int,
    method: SendMethod,
    on_stop: Callable[[SendOutcome], None] | None,
    load_optouts: Callable[[], Awaitable[set[tuple[str, str]]]] | None = None,
) -> AsyncIterator[SendOutcome]:
    """The engine behind ``messages.send_many`` (see the module docstring).

    ``load_optouts`` (when skipping opted-out recipients) returns ``(from, to)`` pairs; it is
    awaited once, before the first send.
    """
    if isinstance(requests, AsyncIterable):
        source: Any = requests.__aiter__()
        is_async = True
    else:
        source = iter(requests)
        is_async = False
    loop = asyncio.get_running_loop()
    # Outcomes in completion order, and the consumer's wake-up future while it waits for one.
    ready: collections.deque[SendOutcome] = collections.deque()
    wake: list[asyncio.Future[None]] = []
    running: dict[int, tuple[Mapping[str, Any], SendGate, asyncio.Task[None]]] = {}
    index = 0
    exhausted = False
    fatal: list[BaseException] = []  # an outage that stops the run (see the module docstring)

    def report(idx: int, outcome: SendOutcome) -> None:
        # Leaving `running` and queueing the outcome happen together, so a consumer woken by
        # an outcome always finds a free slot to refill.
        del running[idx]
        ready.append(outcome)
        if wake:
            waiter = wake.pop()
            if not waiter.done():
                waiter.set_result(None)

    optouts: set[tuple[str, str]] = set()

    async def send_one(idx: int, item: Mapping[str, Any], gate: SendGate) -> None:
        send_gate.set(gate)  # this task runs in its own copy of the context
        try:
            if type(item) is not dict and not isinstance(item, Mapping):
                raise ValidationError(
                    "request", f"must be a mapping of send arguments, got {type(item).__name__}"
                )
            if optouts and (item.get("from_"), item.get("to")) in optouts:
                outcome = SendOutcome(
                    idx,
                    item,
                    "not_sent",
                    error=OptedOutError(
                        f"{item.get('to')} opted out of messages from {item.get('from_')}; skipped"
                    ),
                )
            else:
                result = await senders[pick_method(item, method)](**item)
                outcome = SendOutcome(idx, item, "sent", message=result)
        except TypeError as exc:
            if gate.written:
                outcome = SendOutcome(idx, item, "unknown", error=exc)
            else:  # an unknown or missing keyword: the caller's mistake, caught before any I/O
                error = ValidationError("request", str(exc))
                outcome = SendOutcome(idx, item, "rejected", error=error)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, _STOPS_THE_RUN) and not fatal:
                fatal.append(exc)
            outcome = SendOutcome(idx, item, classify(exc, gate), error=exc)
        report(idx, outcome)

    if load_optouts is not None:
        optouts.update(await load_optouts())
    try:
        while True:
            # Finished outcomes count against the window too: a slow consumer slows the input.
            while not exhausted and not fatal and len(running) + len(ready) < concurrency:
                try:
                    item = await source.__anext__() if is_async else next(source)
                except (StopIteration, StopAsyncIteration):
                    exhausted = True
                    break
                gate = SendGate()
                # A task per send (not a worker pool): the pull above happens only when the
                # consumer asks for more, which is what bounds a stalled run.
                running[index] = (item, gate, loop.create_task(send_one(index, item, gate)))
                index += 1
            if not ready:
                if fatal:
                    raise fatal[0]
                if not running:
                    return
                waiter = loop.create_future()
                wake.append(waiter)
                await waiter
            outcome = ready.popleft()
            yield outcome
            if fatal and outcome.error is fatal[0]:
                raise fatal[0]
    finally:
        for _item, gate, _task in running.values():
            gate.stopped = True
        tasks = [task for _item, _gate, task in running.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # A task cancelled before it first ran never reported: nothing was written.
        for idx, (item, _gate, _task) in list(running.items()):
            report(idx, SendOutcome(idx, item, "not_sent", error=asyncio.CancelledError()))
        while ready:
            outcome = ready.popleft()
            if on_stop is not None:
                on_stop(outcome)
