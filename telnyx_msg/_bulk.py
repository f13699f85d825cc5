"""``messages.send_many``: bounded, lazy, rate-limited bulk sending that never double-sends.

Shape of a run: the input (any iterable or async iterable of keyword mappings) is pulled one item
at a time, only while fewer than ``concurrency`` items sit between the input and the consumer
(sends in flight plus outcomes not yet consumed), so memory stays bounded by ``concurrency``
whatever the input size and however slowly the outcomes are consumed. Each item becomes one
send task (rate limited by the client's limiter, retried by the client's safe-retry policy)
and outcomes are yielded in completion order. Every input item the run pulled gets exactly
one outcome:

- ``sent``: Telnyx accepted it (2xx); ``message`` is the result. When the fields of Telnyx's
  2xx answer could not be read (``APIResponseValidationError`` with ``accepted``) the message
  was still accepted: ``sent`` with ``message=None`` and that error in ``error``. A 2xx that
  is not Telnyx's envelope (an HTML page from a proxy) is ``unknown``.
- ``rejected``: refused for good: a 4xx (after retries) or a ``ValidationError`` before I/O.
- ``unknown``: it may have reached Telnyx (timeout or drop after sending, 500/502/504, a 2xx
  that is not Telnyx's answer); it is never resent — reconcile with delivery webhooks or
  ``messages.retrieve``.
- ``not_sent``: provably not accepted: connection refused, 408/429/503 after retries, queue full,
  the API key refused (401, which also stops the run), a redirect (3xx: a wrong ``base_url``; a
  303 is ``unknown``), a proxy's or captive portal's sign-in (407, 511), the recipient opted
  out of this sender (with ``skip_optouts=True``: the account's opt-outs are listed once, page
  by page, before the first send), or the run was stopped before the request was written.

An input that raises (a malformed row, a dropped database cursor) ends the pulling: the items
already pulled are still sent and yielded, then the iteration raises the input's exception. An
async input's read is awaited alongside the sends in flight: a slow input does not hold back
their outcomes (a producer waiting for one would deadlock). Reads start only while the consumer
asks for an outcome; stopping cancels one still pending (an item it produced anyway is reported
``not_sent``).

Stopping: no new item is pulled once the consumer stops iterating. Closing the iterator
(``await outcomes.aclose()``, ``contextlib.aclosing``, or cancelling the consuming task) cancels
the sends still waiting for a rate-limit token (they were never written, so they are
``not_sent``) and the ones on the wire (``unknown``); their outcomes can be read with
``on_stop=`` since the iteration itself has ended.

Closing the client stops the run: the item that met ``ClientClosedError`` is yielded
``not_sent``, the iteration then raises it, no further item is pulled, and the sends still in
flight are stopped as above (``on_stop``). When the rate limiter's Redis is unavailable
(``RateLimiterUnavailableError``) or Telnyx refuses the API key (401, ``AuthenticationError``),
every further send would fail the same way, so no further item is pulled either, but the sends
in flight finish and are yielded before the iteration raises it: those already past the
limiter get Telnyx's answer (a ``sent`` stays ``sent``, not ``unknown``), the others meet the
same outage (``not_sent``). Items not pulled were never touched: resume with the rest of the
input once the dependency is back.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from telnyx_msg._outcome import (
    SEND_METHODS,
    NotSentError,
    OutcomeStatus,
    SendGate,
    SendMethod,
    SendOutcome,
    send_gate,
)
from telnyx_msg.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    ClientClosedError,
    RateLimitError,
    RateLimiterUnavailableError,
    TelnyxError,
    ValidationError,
)

log = logging.getLogger("telnyx_msg")

__all__ = ["run_send_many", "send_many"]


class OptedOutError(TelnyxError):
    """Skipped: the recipient opted out (STOP) of messages from this sender."""


def send_many(
    client: Any,
    grow_pool: Callable[[int], int],
    requests: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
    *,
    concurrency: int,
    method: SendMethod,
    on_stop: Callable[[SendOutcome], None] | None,
    skip_optouts: bool,
    reserve: Callable[[int], Callable[[], None]] | None = None,
) -> AsyncIterator[SendOutcome]:
    """``client.messages.send_many`` for an ``AsyncClient``: check the settings before any
    I/O, size the pool (``grow_pool(n)`` returns the connections available), then run (with
    ``reserve``: see :func:`run_send_many`)."""
    if isinstance(requests, (str, bytes, bytearray, Mapping)) or not isinstance(
        requests, (Iterable, AsyncIterable)
    ):
        # A str or a dict is iterable too: each character or key would become a rejected item.
        raise ValidationError(
            "requests",
            "must be an iterable of send-argument dicts (a list, a generator, ...), got "
            f"{type(requests).__name__}; for a single message, pass [item]",
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError("concurrency", f"must be an int >= 1, got {concurrency!r}")
    if not isinstance(method, str) or (method != "auto" and method not in SEND_METHODS):
        raise ValidationError(
            "method", f"{method!r} is not 'auto' or one of {', '.join(sorted(SEND_METHODS))}"
        )
    check_on_stop(on_stop)
    # The client's own pool grows to the concurrency: more sends than pooled connections would
    # queue for a connection, and a wait longer than the connect timeout ends a send not_sent
    # for no fault of Telnyx's.
    pool = grow_pool(concurrency)
    if concurrency > pool:
        raise ValidationError(
            "concurrency",
            f"{concurrency} exceeds the {pool} connections of "
            "the aiohttp session you passed in (its connector's limit)",
        )

    async def load_optouts() -> set[tuple[str, str]]:
        # Every (from, to) opt-out pair of the account, one request per page.
        return {
            (o.from_ or "", o.to or "") async for o in client.messaging_optouts.list(page_size=250)
        }

    return run_send_many(
        {name: getattr(client.messages, name) for name in SEND_METHODS},
        requests,
        concurrency=concurrency,
        method=method,
        on_stop=on_stop,
        load_optouts=load_optouts if skip_optouts else None,
        reserve=reserve,
    )


def check_on_stop(on_stop: object) -> None:
    """Refuse an ``on_stop`` that cannot receive outcomes: it is called, never awaited, so an
    ``async def`` one would get none of them (only a "never awaited" warning)."""
    if on_stop is None:
        return
    target = on_stop
    while isinstance(target, functools.partial):
        target = target.func
    # An object whose __call__ is async def is no more awaited than an async def function.
    call = (
        None if isinstance(target, type) else inspect.getattr_static(type(target), "__call__", None)
    )
    if isinstance(call, (staticmethod, classmethod)):  # (its function is what is called)
        call = call.__func__
    if (
        not callable(on_stop)
        or inspect.iscoroutinefunction(target)
        or inspect.iscoroutinefunction(call)
    ):
        raise ValidationError(
            "on_stop",
            "must be a plain function taking a SendOutcome (it is called, not awaited), got "
            f"{'an async function' if callable(on_stop) else type(on_stop).__name__}",
        )


# What stops the run at once (the sends in flight cannot finish), and what ends the pulling
# but lets them finish (every further send would fail the same way).
_STOPS_THE_RUN = (ClientClosedError,)
_ENDS_THE_PULLING = (AuthenticationError, RateLimiterUnavailableError)


def classify(error: BaseException, gate: SendGate) -> OutcomeStatus:
    """Map a send's exception to an outcome status (see the module docstring)."""
    if isinstance(error, ValidationError):
        return "rejected"
    if isinstance(error, APIResponseValidationError):
        # Telnyx's envelope: accepted, only its fields were unreadable; else maybe not Telnyx's
        return "sent" if error.accepted else "unknown"
    if isinstance(error, RateLimiterUnavailableError):
        # The limiter is consulted before a request is written; a retry's earlier attempt
        # may have reached Telnyx, though.
        return "unknown" if error.outcome_unknown else "not_sent"
    if isinstance(error, (NotSentError, asyncio.CancelledError)):
        return "unknown" if gate.written else "not_sent"
    if isinstance(error, APIConnectionError):
        return "unknown" if error.outcome_unknown else "not_sent"
    if isinstance(error, AuthenticationError) and not error.outcome_unknown:
        return "not_sent"  # the key was refused, not the message: send it once the key works
    if isinstance(error, APIStatusError):
        if error.outcome_unknown:
            return "unknown"
        if error.status < 400 or error.status == 407:
            # A redirect (not followed), or a proxy asking for its own login: the URL was
            # refused, not the message
            return "not_sent"
        if isinstance(error, RateLimitError) or error.status >= 500 or error.status == 408:
            return "not_sent"  # Telnyx said it did not process it (or it is a 503)
        return "rejected"
    # Anything else happened after the request may have been written, or before.
    return "unknown" if gate.written else "not_sent"


def _opted_out(item: Mapping[str, Any], optouts: set[tuple[str, str]]) -> str | None:
    """The item's opted-out recipients (a group MMS skips if any one has), or None."""
    sender, to = item.get("from_"), item.get("to")
    if not isinstance(sender, str):
        return None
    recipients = to if isinstance(to, (list, tuple)) else [to]
    hits = [r for r in recipients if isinstance(r, str) and (sender, r) in optouts]
    return ", ".join(hits) or None


def pick_method(item: Mapping[str, Any], method: SendMethod) -> str:
    """The ``messages`` method for one item: explicit, or inferred from its keys."""
    if method != "auto":
        return method
    if "whatsapp_message" in item:
        return "send_whatsapp"
    if isinstance(item.get("to"), (list, tuple)):
        return "send_group_mms"
    return "send"


def _snapshot(item: dict[Any, Any]) -> dict[Any, Any]:
    """``item`` with its mappings (as dicts) and lists copied, all the way down (the rest is
    immutable or not the SDK's to copy)."""
    copy = item.copy()
    for key, value in copy.items():
        if type(value) is not str and isinstance(value, (Mapping, list)):  # (most are strings)
            copy[key] = _copied_value(value)
    return copy


def _copied_value(value: Any) -> Any:
    # Any mapping, not only a dict: a whatsapp_message (a Mapping) given as a ChainMap or a
    # read-only view over a body the input refills is read now, as the row itself is.
    if isinstance(value, dict):
        return _snapshot(value)
    if isinstance(value, Mapping):
        return _snapshot(dict(value))
    return _copied(value) if isinstance(value, list) else value


def _copied(values: list[Any]) -> list[Any]:
    return [_copied_value(v) for v in values]


def _as_pulled(item: Mapping[str, Any], args: Any) -> Mapping[str, Any]:
    """An outcome's ``request``: a mapping item as it was pulled, i.e. what was sent (its
    snapshot), since an input refilling one row per item changes it again after the outcome
    was made; anything else (rejected: not a mapping) is the item itself."""
    return args if isinstance(args, dict) else item


def _read_item(item: Any) -> Any:
    """The send arguments of a pulled item, read now: a dict, or any other mapping (a
    ``ChainMap`` over defaults, a ``MappingProxyType``), copied all the way down; anything
    else as it is (its send rejects it, or meets what reading it raises)."""
    if not isinstance(item, Mapping):
        return item
    try:
        return _snapshot(item if isinstance(item, dict) else dict(item))
    except Exception:  # cannot be read, or copied (it contains itself): its send fails on it
        return item


def _call_with(fn: Callable[[int], None], idx: int, _done: object) -> None:
    """A done-callback calling ``fn(idx)``."""
    fn(idx)


def _read(loop: asyncio.AbstractEventLoop, source: Any) -> asyncio.Task[Any]:
    """A task reading ``source``'s next item; on 3.12+ started eagerly, so an input with an
    item at hand answers without a loop iteration."""

    async def read() -> Any:
        return await source.__anext__()

    if sys.version_info >= (3, 12):
        return asyncio.Task(read(), loop=loop, eager_start=True)
    return loop.create_task(read())


async def run_send_many(
    senders: Mapping[str, Callable[..., Awaitable[Any]]],
    requests: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
    *,
    concurrency: int,
    method: SendMethod,
    on_stop: Callable[[SendOutcome], None] | None,
    load_optouts: Callable[[], Awaitable[set[tuple[str, str]]]] | None = None,
    reserve: Callable[[int], Callable[[], None]] | None = None,
) -> AsyncIterator[SendOutcome]:
    """The engine behind ``messages.send_many`` (see the module docstring).

    ``load_optouts`` (when skipping opted-out recipients) returns ``(from, to)`` pairs; it is
    awaited once, before the first send. ``reserve(concurrency)`` holds that many pooled
    connections for the run (returning their release): runs sharing a client add up.
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
    # Each send's item, its arguments as pulled (see `start`), gate and task.
    running: dict[int, tuple[Mapping[str, Any], Any, SendGate, asyncio.Task[None] | None]] = {}
    late: list[bool] = []  # set when a stop cut short by a new cancellation could not wait
    index = 0
    exhausted = False
    fatal: list[BaseException] = []  # an outage that stops the run (see the module docstring)
    # What ends the pulling but lets the pulled items finish, raised once they have: the input
    # failing, Telnyx refusing the API key, or the limiter's Redis failing.
    drain: list[Exception] = []

    def report(idx: int, outcome: SendOutcome) -> None:
        # Leaving `running` and queueing the outcome happen together, so a consumer woken by
        # an outcome always finds a free slot to refill.
        del running[idx]
        if late:  # the stop could not wait for this send: it reports itself
            deliver_late(outcome)
            return
        ready.append(outcome)
        wake_up()

    def deliver_late(outcome: SendOutcome) -> None:
        if on_stop is not None:
            try:
                on_stop(outcome)
            except Exception:  # nobody is left to raise it to
                log.exception("on_stop raised for the outcome of item %d", outcome.index)

    def unreported(idx: int) -> None:
        if idx in running:  # its task was cancelled before it first ran: nothing was written
            request = _as_pulled(*running[idx][:2])
            report(idx, SendOutcome(idx, request, "not_sent", error=asyncio.CancelledError()))

    def read_unsent(read: asyncio.Future[Any], idx: int) -> None:
        if not read.cancelled() and read.exception() is None:  # read, never sent
            outcome = SendOutcome(idx, read.result(), "not_sent", error=asyncio.CancelledError())
            if late:
                deliver_late(outcome)
            else:
                ready.append(outcome)

    def wake_up(_: object = None) -> None:
        if wake:
            waiter = wake.pop()
            if not waiter.done():
                waiter.set_result(None)

    optouts: set[tuple[str, str]] = set()

    async def send_one(idx: int, item: Mapping[str, Any], args: Any, gate: SendGate) -> None:
        send_gate.set(gate)  # this task runs in its own copy of the context
        try:
            if type(args) is not dict and not isinstance(args, Mapping):
                raise ValidationError(
                    "request", f"must be a mapping of send arguments, got {type(args).__name__}"
                )
            opted_out = _opted_out(args, optouts) if optouts else None
            if opted_out:
                sender = args.get("from_")
                skipped = OptedOutError(f"{opted_out} opted out of messages from {sender}; skipped")
                outcome = SendOutcome(idx, _as_pulled(item, args), "not_sent", error=skipped)
            else:
                send = senders[pick_method(args, method)]
                try:
                    call = send(**args)  # binds the arguments only: nothing runs yet
                except TypeError as exc:  # keys that are not names: caught before any I/O
                    raise ValidationError("request", str(exc)) from None
                message = await call
                outcome = SendOutcome(idx, _as_pulled(item, args), "sent", message=message)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, _STOPS_THE_RUN) and not fatal:
                fatal.append(exc)
            elif isinstance(exc, _ENDS_THE_PULLING) and not drain:
                drain.append(exc)
            outcome = SendOutcome(idx, _as_pulled(item, args), classify(exc, gate), error=exc)
        report(idx, outcome)

    if load_optouts is not None:
        optouts.update(await load_optouts())
    release = reserve(concurrency) if reserve is not None else None
    # An async input's read that sends in flight are waited for alongside, so a slow input (a
    # queue consumer waiting for work) does not hold back their outcomes. Reads start only in
    # the consumer's steps: nothing new is read once it stops iterating.
    pull: asyncio.Task[Any] | None = None
    # The blocking facade's input is read in its caller's thread, which cannot take an
    # outcome while it reads: awaited in the step, as a plain iterator's `next()` is.
    inline = getattr(source, "read_in_caller", False)

    def start(item: Any) -> None:
        nonlocal index
        gate = SendGate()
        # Read now, not when its task starts: an input that refills one dict (or one list in
        # it: a group's `to`, `media_urls`) for every row would otherwise send its last row
        # several times. (The outcome keeps this copy, see `_as_pulled`.)
        args = _read_item(item)
        # A task per send (not a worker pool): items are pulled only when the consumer asks
        # for more, which is what bounds a stalled run. Entered before the task exists: an
        # eager task factory runs a send rejected before I/O to its report at creation.
        idx = index
        index += 1
        running[idx] = (item, args, gate, None)
        task = loop.create_task(send_one(idx, item, args, gate))
        if idx in running:
            running[idx] = (item, args, gate, task)

    def ended(exc: Exception) -> None:
        nonlocal exhausted
        exhausted = True
        if not isinstance(exc, (StopIteration, StopAsyncIteration)):
            # The input failed (a bad row, a lost database cursor): the sends already
            # started are healthy, so they finish and are yielded before this is raised.
            drain.append(exc)

    def take(read: asyncio.Task[Any]) -> None:
        nonlocal index
        error = read.exception()  # the input's own CancelledError propagates from here
        if isinstance(error, Exception):
            ended(error)
        elif error is not None:
            raise error
        elif fatal or drain:  # read as the run began to stop: it meets that outage
            ready.append(SendOutcome(index, read.result(), "not_sent", error=(fatal or drain)[0]))
            index += 1
        else:
            start(read.result())

    try:
        while True:
            if pull is not None and pull.done():
                read, pull = pull, None
                take(read)
            # Finished outcomes count against the window too: a slow consumer slows the input.
            while pull is None and not (exhausted or fatal or drain):
                if len(running) + len(ready) >= concurrency:
                    break
                if is_async and (running or ready) and not inline:
                    read = _read(loop, source)
                    if not read.done():  # the input is waiting: so do the sends, meanwhile
                        pull = read
                        read.add_done_callback(wake_up)
                        break
                    take(read)  # (3.12+: an input with an item at hand answered at once)
                    continue
                try:
                    item = await source.__anext__() if is_async else next(source)
                except (StopIteration, StopAsyncIteration, Exception) as exc:
                    ended(exc)
                    break
                start(item)
            if not ready:
                if fatal:
                    raise fatal[0]
                if not running and (pull is None or drain):
                    if drain:
                        raise drain[0]
                    return
                waiter = loop.create_future()
                wake.append(waiter)
                await waiter  # an outcome, or the input's next item
                continue
            outcome = ready.popleft()
            yield outcome
            if fatal and outcome.error is fatal[0]:
                raise fatal[0]
    finally:
        if release is not None:
            release()
        for _item, _args, gate, _task in running.values():
            gate.stopped = True
        waits: list[asyncio.Task[Any]] = [t for *_, t in running.values() if t is not None]
        if pull is not None:
            waits.append(pull)
        for waited in waits:
            waited.cancel()
        try:
            if waits:
                await asyncio.gather(*waits, return_exceptions=True)
        except asyncio.CancelledError:
            # Cancelled again while stopping (an anyio cancel scope cancels at every await):
            # what has not ended reports itself through on_stop when it does.
            late.append(True)
            for idx, (*_, sending) in running.items():
                if sending is not None:
                    sending.add_done_callback(functools.partial(_call_with, unreported, idx))
            if pull is not None:
                pull.add_done_callback(functools.partial(read_unsent, idx=index))
            for outcome in ready:
                deliver_late(outcome)
            ready.clear()
            raise
        # A task cancelled before it first ran never reported: nothing was written.
        for idx in list(running):
            unreported(idx)
        if pull is not None:
            read_unsent(pull, index)
        failed: list[Exception] = []
        while ready:
            outcome = ready.popleft()
            if on_stop is not None:
                try:
                    on_stop(outcome)
                except Exception as exc:  # the rest are still owed their call
                    failed.append(exc)
        if failed:
            raise failed[0]
