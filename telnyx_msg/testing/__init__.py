"""An embedded fake of the Telnyx Messaging API for tests, demos and benchmarks.

``FakeTelnyx`` serves every operation of ``telnyx_msg`` from memory on 127.0.0.1 (aiohttp.web),
with Telnyx's response shapes, error bodies, pagination, rate limits, sender queues, injected
faults and Ed25519-signed webhooks. See ``docs/testing.md``.

    from telnyx_msg.testing import FakeTelnyx

    async with FakeTelnyx() as fake:
        fake.base_url, fake.api_key, fake.public_key
"""

from __future__ import annotations

from telnyx_msg.testing._config import (
    DEFAULT_API_KEY,
    DEFAULT_LONG_CODE,
    DEFAULT_ORGANIZATION_ID,
    DEFAULT_PROFILE_ID,
    DEFAULT_SHORT_CODE,
    DEFAULT_TOLL_FREE,
    FAILING_NUMBER,
    ApiRateLimit,
    FakeConfig,
    Faults,
    FaultStep,
    SeedNumber,
    SeedProfile,
    Throughput,
    WebhookSettings,
)
from telnyx_msg.testing._fake import FakeTelnyx
from telnyx_msg.testing._mock import MockRequest, MockResponse, MockTransport, MockTransportError
from telnyx_msg.testing._records import RecordedRequest, Stats, WebhookAttempt
from telnyx_msg.testing._thread import serve_in_thread

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_LONG_CODE",
    "DEFAULT_ORGANIZATION_ID",
    "DEFAULT_PROFILE_ID",
    "DEFAULT_SHORT_CODE",
    "DEFAULT_TOLL_FREE",
    "FAILING_NUMBER",
    "ApiRateLimit",
    "FakeConfig",
    "FakeTelnyx",
    "FaultStep",
    "Faults",
    "MockRequest",
    "MockResponse",
    "MockTransport",
    "MockTransportError",
    "RecordedRequest",
    "SeedNumber",
    "SeedProfile",
    "Stats",
    "Throughput",
    "WebhookAttempt",
    "WebhookSettings",
    "serve_in_thread",
]
