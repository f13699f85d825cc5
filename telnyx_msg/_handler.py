"""What a webhook handler is, and how the receivers and the queue workers call one."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from telnyx_msg.models import WebhookEvent

#: An async function of the event, or a plain one (called on the event loop, so keep it quick:
#: ``DeliveryTracker.record`` is; wrap blocking work in ``asyncio.to_thread``).
Handler = Callable[[WebhookEvent], "Awaitable[None] | None"]


async def call_handler(handler: Handler, event: WebhookEvent) -> None:
    """``handler(event)``, awaited when it returns an awaitable."""
    # A plain function has already run when it returns; awaiting its None raised TypeError,
    # which failed every delivery of an event that was in fact handled.
    result = handler(event)
    if inspect.isawaitable(result):
        await result


def cancelled_by_handler() -> RuntimeError:
    """The error a handler's own ``CancelledError`` counts as: a failure of that handler (the
    receiver or worker did not cancel it), not a reason to stop."""
    return RuntimeError(
        "the handler raised asyncio.CancelledError without being cancelled (an operation it "
        "awaited was cancelled)"
    )
