"""What a webhook handler is, and how the receivers and the queue workers call one."""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from telnyx_msg.errors import ConfigurationError
from telnyx_msg.models import WebhookEvent, WebhookEventType

logger = logging.getLogger("telnyx_msg.webhooks")

Handler = Callable[[WebhookEvent], "Awaitable[None] | None"]
"""An async function of the event, or a plain one (called on the event loop, so keep it quick:
``DeliveryTracker.record`` is; wrap blocking work in ``asyncio.to_thread``)."""


def handler_table(handlers: Mapping[Any, Handler], default: Handler | None) -> dict[str, Handler]:
    """``handlers`` keyed by plain event type strings (``WebhookEventType`` members hash by
    name, not value), each of them and ``default`` checked by :func:`check_handler`."""
    if not isinstance(handlers, Mapping):
        raise ConfigurationError(
            "handlers must be a mapping of event type to handler ({} for none: with default= "
            f"or queue=), got {handlers!r}"
        )
    table = {
        (key.value if isinstance(key, enum.Enum) else str(key)): value
        for key, value in handlers.items()
    }
    for name, handler in table.items():
        check_handler(handler, f"the handler for {name!r}")
    known = {member.value for member in WebhookEventType}
    unknown = [name for name in table if name not in known]
    if unknown:
        # Not an error: a type Telnyx adds later reaches its handler. A misspelt one would
        # never run, and its events would be answered 200 and dropped without a word.
        logger.warning(
            "telnyx webhook: handlers for %s, which is not a messaging event type this SDK "
            "knows (%s); check the spelling",
            ", ".join(map(repr, unknown)),
            ", ".join(sorted(known)),
        )
    if default is not None:
        check_handler(default, "the default handler")
    return table


def check_handler(handler: object, what: str) -> None:
    """Refuse, before any event, a handler that cannot be called with the event: found out
    per event, every delivery would fail (and a queue would dead-letter its whole backlog)."""
    if not callable(handler):
        raise ConfigurationError(f"{what} is not callable: {handler!r}")
    try:
        # The callable's own signature: a decorator's wrapper (functools.wraps) may take the
        # event alone and supply what the function it wraps takes besides.
        signature = inspect.signature(handler, follow_wrapped=False)
    except (TypeError, ValueError):  # no signature to read (some builtins): found out per event
        return
    try:
        signature.bind(None)
    except TypeError as exc:
        raise ConfigurationError(f"{what} must take one argument, the event ({exc})") from None


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
