"""DeliveryTracker: await the final delivery status of a sent message from its webhooks."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from telnyx_msg.models import Message, MessageStatus, WebhookEvent, WebhookEventType

__all__ = ["TERMINAL_STATUSES", "DeliveryTracker"]

#: Recipient statuses after which Telnyx sends no further delivery update (WIRE.md §10.4).
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


def _is_final(event_type: object, message: Message) -> bool:
    if event_type == WebhookEventType.MESSAGE_FINALIZED:
        return True
    # A message.sent whose recipients are all terminal already (e.g. sending_failed).
    statuses = [str(r.status) for r in message.to if r.status is not None]
    return bool(statuses) and len(statuses) == len(message.to) and all(
        s in TERMINAL_STATUSES for s in statuses
    )


class DeliveryTracker:
    """Resolves ``await tracker.final_status(message_id)`` from delivery webhooks.

    Register :meth:`handle` for ``message.sent`` and ``message.finalized`` (e.g. in a receiver's
    handlers). A final status that arrives before anyone awaits it is kept, up to ``max_size``
    messages (oldest dropped first), so ``final_status`` called late still returns it.
    """

    def __init__(self, *, max_size: int = 10_000) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self._final: OrderedDict[str, Message] = OrderedDict()
        self._waiters: dict[str, list[asyncio.Future[Message]]] = {}

    async def handle(self, event: WebhookEvent) -> None:
        """Webhook handler: record ``event`` (see :meth:`record`)."""
        self.record(event)

    def record(self, event: WebhookEvent) -> None:
        """Record a delivery event; resolves waiters when it carries the final status.

        Events without a :class:`Message` payload, non-final updates and repeats of an
        already-final message are ignored.
        """
        message = event.payload
        if not isinstance(message, Message) or message.id is None:
            return
        if message.id in self._final or not _is_final(event.event_type, message):
            return
        self._final[message.id] = message
        while len(self._final) > self.max_size:
            self._final.popitem(last=False)
        for waiter in self._waiters.pop(message.id, ()):
            if not waiter.done():
                waiter.set_result(message)

    def result(self, message_id: str) -> Message | None:
        """The final :class:`Message` if already known (and not evicted), else None."""
        return self._final.get(message_id)

    async def final_status(self, message_id: str, *, timeout: float | None = None) -> Message:
        """Wait for the final :class:`Message` of ``message_id`` (terminal ``to[].status``).

        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: wait indefinitely).
        """
        known = self._final.get(message_id)
        if known is not None:
            return known
        waiter: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(message_id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            # asyncio.TimeoutError is not the builtin before Python 3.11.
            raise TimeoutError(
                f"no final status for message {message_id} within {timeout} s"
            ) from None
        finally:
            _discard(self._waiters, message_id, waiter)

    @property
    def waiting(self) -> int:
        """Number of ``final_status`` calls currently waiting."""
        return sum(len(w) for w in self._waiters.values())


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
