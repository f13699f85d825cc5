"""DeliveryTracker: await the final delivery status of a sent message from its webhooks."""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from telnyx_msg._config import positive_int, wait_seconds
from telnyx_msg.models import Message, MessageStatus, WebhookEvent, WebhookEventType

__all__ = ["DEFAULT_FINAL_STATUS_TIMEOUT", "TERMINAL_STATUSES", "DeliveryTracker"]

#: Seconds ``final_status`` waits by default. Most delivery receipts arrive within seconds to
#: minutes; a wait that must be longer says so with ``timeout=`` (``None``: no bound).
DEFAULT_FINAL_STATUS_TIMEOUT = 600.0

#: Recipient statuses after which Telnyx sends no further delivery update (docs/wire.md §10.4).
TERMINAL_STATUSES: frozenset[str] = frozenset(
    s.value
    for s in (
        MessageStatus.DELIVERED,
        MessageStatus.DELIVERY_FAILED,
        MessageStatus.SENDING_FAILED,
        MessageStatus.DELIVERY_UNCONFIRMED,
        MessageStatus.EXPIRED,
        MessageStatus.CANCELLED,
    )
)


def unreadable_final(event: WebhookEvent) -> str | None:
    """The message id of a ``message.finalized`` whose payload this SDK could not read (the
    handlers got it as a raw mapping, with a WARNING saying why), else None."""
    payload = event.payload
    if event.event_type != WebhookEventType.MESSAGE_FINALIZED or not isinstance(payload, Mapping):
        return None
    message_id = payload.get("id")
    return message_id if isinstance(message_id, str) and message_id else None


def unreadable_error(message_id: str) -> LookupError:
    """What waiting for a final status that arrived unreadable raises, at once: the webhook
    was acknowledged, so Telnyx will not send it again, and waiting on would only time out."""
    return LookupError(
        f"the final status of message {message_id} arrived, but its payload is not one this "
        "SDK reads (a WARNING on the telnyx_msg.webhooks logger says why; your handlers got "
        "it as a raw mapping); look the message up with messages.retrieve"
    )


def _is_final(event_type: object, message: Message) -> bool:
    if event_type == WebhookEventType.MESSAGE_FINALIZED:
        return True
    # A message.sent whose recipients (``to`` and ``cc``: each has a delivery status of its
    # own) are all terminal already (e.g. sending_failed).
    recipients = (*message.to, *message.cc)
    statuses = [str(r.status) for r in recipients if r.status is not None]
    return (
        bool(statuses)
        and len(statuses) == len(recipients)
        and all(s in TERMINAL_STATUSES for s in statuses)
    )


class DeliveryTracker:
    """Resolves ``await tracker.final_status(message_id)`` from delivery webhooks.

    Register :meth:`handle` for ``message.sent`` and ``message.finalized`` (e.g. in a receiver's
    handlers). A final status that arrives before anyone awaits it is kept, up to ``max_size``
    messages (oldest dropped first), so ``final_status`` called late still returns it; the ids
    of dropped ones are remembered (another ``max_size``), so awaiting one raises ``LookupError``
    at once instead of waiting. :meth:`record` may be called from any thread (e.g. a WSGI
    receiver) and wakes waiters in their own event loops.
    """

    def __init__(self, *, max_size: int = 10_000) -> None:
        self.max_size = positive_int("max_size", max_size)
        self._final: OrderedDict[str, Message] = OrderedDict()
        self._evicted: OrderedDict[str, None] = OrderedDict()
        self._unreadable: OrderedDict[str, None] = OrderedDict()  # (up to max_size ids)
        self._waiters: dict[str, list[asyncio.Future[Message]]] = {}
        self._lock = threading.Lock()

    async def handle(self, event: WebhookEvent) -> None:
        """Webhook handler: record ``event`` (see :meth:`record`)."""
        self.record(event)

    def record(self, event: WebhookEvent) -> None:
        """Record a delivery event; resolves waiters when it carries the final status.

        Non-final updates, repeats of an already-final message and events without a
        :class:`Message` payload are ignored, except a ``message.finalized`` whose payload could
        not be read: waiting for that message raises ``LookupError`` instead of timing out.
        """
        message = event.payload
        if not isinstance(message, Message):
            unreadable = unreadable_final(event)
            if unreadable is not None:
                self._fail(unreadable)
            return
        if not _is_final(event.event_type, message):
            return
        with self._lock:
            if message.id in self._final or message.id in self._unreadable:
                return  # the first final status wins, as in Redis
            self._final[message.id] = message
            self._evicted.pop(message.id, None)
            while len(self._final) > self.max_size:
                old, _ = self._final.popitem(last=False)
                self._evicted[old] = None
                if len(self._evicted) > self.max_size:
                    self._evicted.popitem(last=False)
            waiters = self._waiters.pop(message.id, ())
        _wake(waiters, _resolve, message)

    def _fail(self, message_id: str) -> None:
        """A final status arrived unreadable: its waiters (and later ones) raise at once."""
        with self._lock:
            if message_id in self._final or message_id in self._unreadable:
                return
            if message_id in self._evicted:  # a readable one came first (and was dropped)
                return
            self._unreadable[message_id] = None
            if len(self._unreadable) > self.max_size:
                self._unreadable.popitem(last=False)
            waiters = self._waiters.pop(message_id, ())
        _wake(waiters, _reject, unreadable_error(message_id))

    async def result(self, message_id: str) -> Message | None:
        """The final :class:`Message` if already known (and not evicted), else None, without
        waiting (awaited, as ``RedisDeliveryTracker.result`` is; blocking code:
        :meth:`result_nowait`)."""
        return self.result_nowait(message_id)

    def result_nowait(self, message_id: str) -> Message | None:
        """:meth:`result` for blocking code (any thread)."""
        with self._lock:
            return self._final.get(message_id)

    async def final_status(
        self, message_id: str, *, timeout: float | None = DEFAULT_FINAL_STATUS_TIMEOUT
    ) -> Message:
        """Wait for the final :class:`Message` of ``message_id`` (terminal ``to[].status``).

        Raises ``TimeoutError`` after ``timeout`` seconds (default 600; ``None``: no bound),
        and ``LookupError`` at once when that status arrived but was dropped by ``max_size``,
        or arrived as a ``message.finalized`` whose payload this SDK could not read.
        """
        if timeout is not None:
            timeout = wait_seconds("timeout", timeout)
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        with self._lock:
            known = self._final.get(message_id)
            if known is not None:
                return known
            if message_id in self._unreadable:
                raise unreadable_error(message_id)
            if message_id in self._evicted:
                raise LookupError(
                    f"the final status of message {message_id} arrived but was dropped to stay "
                    f"within max_size={self.max_size}; raise max_size or await it sooner"
                )
            self._waiters.setdefault(message_id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            # asyncio.TimeoutError is not the builtin before Python 3.11.
            raise TimeoutError(
                f"no final status for message {message_id} within {timeout} s"
            ) from None
        finally:
            with self._lock:
                _discard(self._waiters, message_id, waiter)

    @property
    def waiting(self) -> int:
        """Number of ``final_status`` calls currently waiting."""
        with self._lock:
            return sum(len(w) for w in self._waiters.values())


def _wake(
    waiters: Iterable[asyncio.Future[Message]],
    settle: Callable[[asyncio.Future[Message], Any], None],
    value: Any,
) -> None:
    """``settle(waiter, value)`` for each waiter, in the waiter's own loop (``record`` may run
    in another thread: a WSGI view's)."""
    for waiter in waiters:
        loop = waiter.get_loop()
        if not loop.is_closed():
            loop.call_soon_threadsafe(settle, waiter, value)


def _resolve(waiter: asyncio.Future[Message], message: Message) -> None:
    if not waiter.done():
        waiter.set_result(message)


def _reject(waiter: asyncio.Future[Message], error: BaseException) -> None:
    if not waiter.done():
        waiter.set_exception(error)


def _discard(
    waiters: dict[str, list[asyncio.Future[Message]]],
    message_id: str,
    waiter: asyncio.Future[Message],
) -> None:
    pending = waiters.get(message_id)
    if pending is None:
        return
    remaining = [w for w in pending if w is not waiter]
    if remaining:
        waiters[message_id] = remaining
    else:
        del waiters[message_id]
