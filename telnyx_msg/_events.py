"""Request/response event hooks (like httpx's ``event_hooks``), for metrics and tracing.

``AsyncClient(event_hooks={"request": [on_request], "response": [on_response]})``: each hook is
called with a :class:`RequestEvent` before every attempt is sent, and with a
:class:`ResponseEvent` after every attempt (a response or a transport failure). Hooks may be
plain functions or coroutine functions; an exception in a hook propagates to the caller. With
no hooks the cost is one empty-tuple check per attempt. Events never carry the API key.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from attrs import frozen

from telnyx_msg.errors import ConfigurationError

__all__ = ["EventHooks", "RequestEvent", "ResponseEvent"]


@frozen
class RequestEvent:
    """One attempt about to be sent: ``attempt`` counts from 0."""

    method: str
    path: str
    url: str
    attempt: int
    idempotency_key: str | None = None


@frozen
class ResponseEvent:
    """The end of one attempt: ``status`` (None when no response came), time taken, request id,
    and, when there was no response, the ``error`` it ended with (``APIConnectionError`` or
    ``APITimeoutError``; a ``CancelledError``, or what a transport or request hook raised)."""

    request: RequestEvent
    status: int | None
    elapsed: float
    request_id: str | None = None
    error: BaseException | None = None


Hook = Callable[[Any], Awaitable[None] | None]


class EventHooks(NamedTuple):
    """The validated hooks of a client."""

    request: tuple[Hook, ...] = ()
    response: tuple[Hook, ...] = ()

    @classmethod
    def from_mapping(cls, hooks: Mapping[str, Sequence[Hook]] | None) -> EventHooks:
        """Validate ``{"request": [...], "response": [...]}``."""
        if not hooks:
            return cls()
        unknown = set(hooks) - {"request", "response"}
        if unknown:
            raise ConfigurationError(
                f"event_hooks keys are 'request' and 'response', not {sorted(unknown)}"
            )
        checked: dict[str, tuple[Hook, ...]] = {}
        for name, given in hooks.items():
            entries: object = given  # what callers pass, whatever the annotation says
            # One callable instead of a list, a str, or anything not iterable is refused; a
            # generator is read once, here (checking it first would use it up).
            listed = (
                tuple(entries)
                if isinstance(entries, Iterable) and not isinstance(entries, (str, bytes))
                else None
            )
            if listed is None or callable(entries) or not all(callable(h) for h in listed):
                raise ConfigurationError(f"event_hooks[{name!r}] must be a list of callables")
            checked[name] = listed
        return cls(checked.get("request", ()), checked.get("response", ()))


async def call_hooks(hooks: tuple[Hook, ...], event: Any) -> None:
    """Call each hook with ``event``, awaiting the ones that return an awaitable."""
    for hook in hooks:
        result = hook(event)
        if inspect.isawaitable(result):
            await result
