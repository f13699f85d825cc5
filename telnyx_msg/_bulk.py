"""``messages.send_many``: bounded, lazy, rate-limited bulk sending that never double-sends.

Shape of a run: the input (any iterable or async iterable of keyword mappings) is pulled one item
at a time, only when fewer than ``concurrency`` sends are in flight, so memory stays bounded by
``concurrency`` whatever the input size. Each item becomes one send task (rate limited by the
client's limiter, retried by the client's safe-retry policy) and outcomes are yielded in
completion order. Every input item the run pulled gets exactly one outcome:

- ``sent``: Telnyx accepted it (2xx); ``message`` is the result.
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
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal

from attrs import frozen

from telnyx_msg.errors import (
    APIConnectionError,
    APIStatusError,
    RateLimitError,
    TelnyxError,
    ValidationError,
)
from telnyx_msg.models import Message, WhatsAppMessage

__all__ = ["SendGate", "SendOutcome", "run_send_many", "send_gate"]

OutcomeStatus = Literal["sent", "rejected", "unknown", "not_sent"]
SendMethod = Literal["auto", "send", "send_long_code", "send_short_code", "send_number_pool",
                     "send_with_alphanumeric_sender", "send_group_mms", "send_whatsapp"]
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
    "telnyx_msg_send_gate", default=None)


def classify(error: BaseException, gate: SendGate) -> OutcomeStatus:
    """Map a send's exception to an outcome status (see the module docstring)."""
    if isinstance(error, ValidationError):
        return "rejected"
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
    # Anything else (e.g. an unparseable 2xx body) happened after the request was written.
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
    done: asyncio.Queue[SendOutcome] = asyncio.Queue()
    running: dict[asyncio.Task[SendOutcome], tuple[int, Mapping[str, Any], SendGate]] = {}
    index = 0
    exhausted = False

    def finished(task: asyncio.Task[SendOutcome]) -> None:
        # Leaving `running` and queueing the outcome happen together, so a consumer woken by
        # an outcome always finds a free slot to refill.
        idx, item, _ = running.pop(task)
        if task.cancelled():  # cancelled before it ever ran: nothing was written
            done.put_nowait(SendOutcome(idx, item, "not_sent", error=asyncio.CancelledError()))
        else:
            done.put_nowait(task.result())

    optouts: set[tuple[str, str]] = set()

    async def send_one(idx: int, item: Mapping[str, Any], gate: SendGate) -> SendOutcome:
        send_gate.set(gate)  # this task runs in its own copy of the context
        try:
            if not isinstance(item, Mapping):
                raise ValidationError("request", f"must be a mapping of send arguments, "
                                      f"got {type(item).__name__}")
            if optouts and (item.get("from_"), item.get("to")) in optouts:
                return SendOutcome(idx, item, "not_sent", error=OptedOutError(
                    f"{item.get('to')} opted out of messages from {item.get('from_')}; skipped"))
            name = pick_method(item, method)
            result = await senders[name](**item)
        except TypeError as exc:
            if gate.written:
                outcome = SendOutcome(idx, item, "unknown", error=exc)
            else:  # an unknown or missing keyword: the caller's mistake, caught before any I/O
                error = ValidationError("request", str(exc))
                outcome = SendOutcome(idx, item, "rejected", error=error)
        except (Exception, asyncio.CancelledError) as exc:
            outcome = SendOutcome(idx, item, classify(exc, gate), error=exc)
        else:
            outcome = SendOutcome(idx, item, "sent", message=result)
        return outcome

    if load_optouts is not None:
        optouts.update(await load_optouts())
    try:
        while True:
            while not exhausted and len(running) < concurrency:
                try:
                    item = await source.__anext__() if is_async else next(source)
                except (StopIteration, StopAsyncIteration):
                    exhausted = True
                    break
                gate = SendGate()
                task = asyncio.ensure_future(send_one(index, item, gate))
                running[task] = (index, item, gate)
                task.add_done_callback(finished)
                index += 1
            if not running and done.empty():
                return
            yield await done.get()
    finally:
        for _idx, _item, gate in running.values():
            gate.stopped = True
        tasks = list(running)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0)  # let their done-callbacks queue the outcomes
        while not done.empty():
            outcome = done.get_nowait()
            if on_stop is not None:
                on_stop(outcome)
