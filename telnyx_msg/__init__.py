"""telnyx_msg: an asyncio-first client for the Telnyx Messaging API, with a blocking facade.

::

    async with telnyx_msg.AsyncClient() as client:          # key from $TELNYX_API_KEY
        msg = await client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")

    with telnyx_msg.Client() as client:                      # same tree, blocking
        msg = client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")

What only some programs need (the blocking facade, webhook verification, Redis, the fake
server, the CLI) is imported on first use, so ``import telnyx_msg`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telnyx_msg._config import RequestOptions, Timeout
from telnyx_msg._events import RequestEvent, ResponseEvent
from telnyx_msg._items import (
    SendAlphanumericItem,
    SendGroupMmsItem,
    SendItem,
    SendLongCodeItem,
    SendMessageItem,
    SendNumberPoolItem,
    SendShortCodeItem,
    SendWhatsAppItem,
)
from telnyx_msg._outcome import SendOutcome
from telnyx_msg._raw import RawResponse
from telnyx_msg._retry import Backoff
from telnyx_msg._version import __version__
from telnyx_msg.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    DeliveryTrackerUnavailableError,
    DuplicateWebhookError,
    ErrorDetail,
    InternalServerError,
    InvalidSignatureError,
    MissingHeaderError,
    NotFoundError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    RateLimiterUnavailableError,
    RedisUnavailableError,
    TelnyxError,
    TimestampError,
    UnprocessableEntityError,
    ValidationError,
    WebhookPayloadError,
    WebhookQueueUnavailableError,
    WebhookVerificationError,
)

if TYPE_CHECKING:
    from telnyx_msg._client import AsyncClient
    from telnyx_msg._plan import BulkPlan, plan_bulk
    from telnyx_msg._ratelimit import RateLimits
    from telnyx_msg._redis_limits import RedisRateLimits
    from telnyx_msg._redis_queue import RedisWebhookQueue
    from telnyx_msg._redis_tracker import RedisDeliveryTracker
    from telnyx_msg._segments import Segments, segments
    from telnyx_msg._sync import Client
    from telnyx_msg._tracker import DeliveryTracker
    from telnyx_msg.models import (
        LinkClick,
        Message,
        Page,
        PageMeta,
        Recipient,
        Sender,
        WebhookEvent,
        WhatsAppMessage,
    )
    from telnyx_msg.webhooks import MemoryReplayStore, RedisReplayStore, WebhookVerifier

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "BulkPlan",
    "Client",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "DeliveryTracker",
    "DeliveryTrackerUnavailableError",
    "DuplicateWebhookError",
    "ErrorDetail",
    "InternalServerError",
    "InvalidSignatureError",
    "LinkClick",
    "MemoryReplayStore",
    "Message",
    "MissingHeaderError",
    "NotFoundError",
    "Page",
    "PageMeta",
    "PermissionDeniedError",
    "QueueFullError",
    "RateLimitError",
    "RateLimiterUnavailableError",
    "RateLimits",
    "RawResponse",
    "Recipient",
    "RedisDeliveryTracker",
    "RedisRateLimits",
    "RedisReplayStore",
    "RedisUnavailableError",
    "RedisWebhookQueue",
    "RequestEvent",
    "RequestOptions",
    "ResponseEvent",
    "Segments",
    "SendAlphanumericItem",
    "SendGroupMmsItem",
    "SendItem",
    "SendLongCodeItem",
    "SendMessageItem",
    "SendNumberPoolItem",
    "SendOutcome",
    "SendShortCodeItem",
    "SendWhatsAppItem",
    "Sender",
    "TelnyxError",
    "Timeout",
    "TimestampError",
    "UnprocessableEntityError",
    "ValidationError",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookQueueUnavailableError",
    "WebhookVerificationError",
    "WebhookVerifier",
    "WhatsAppMessage",
    "__version__",
    "plan_bulk",
    "segments",
]

# Loaded on first use, so `import telnyx_msg.webhooks` (a webhook-only service) and the CLI's
# start-up do not pay for aiohttp, and the client's import does not build every model.
_LAZY = {
    "LinkClick": "telnyx_msg.models",
    "Message": "telnyx_msg.models",
    "Page": "telnyx_msg.models",
    "PageMeta": "telnyx_msg.models",
    "Recipient": "telnyx_msg.models",
    "Sender": "telnyx_msg.models",
    "WebhookEvent": "telnyx_msg.models",
    "WhatsAppMessage": "telnyx_msg.models",
    "AsyncClient": "telnyx_msg._client",
    "Client": "telnyx_msg._sync",
    "BulkPlan": "telnyx_msg._plan",
    "plan_bulk": "telnyx_msg._plan",
    "DeliveryTracker": "telnyx_msg._tracker",
    "RateLimits": "telnyx_msg._ratelimit",
    "RedisRateLimits": "telnyx_msg._redis_limits",
    "RedisWebhookQueue": "telnyx_msg._redis_queue",
    "RedisDeliveryTracker": "telnyx_msg._redis_tracker",
    "Segments": "telnyx_msg._segments",
    "segments": "telnyx_msg._segments",
    "MemoryReplayStore": "telnyx_msg.webhooks",
    "RedisReplayStore": "telnyx_msg.webhooks",
    "WebhookVerifier": "telnyx_msg.webhooks",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'telnyx_msg' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
