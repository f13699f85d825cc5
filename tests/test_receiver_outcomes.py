"""Webhook receivers: what a redelivery is answered while the first copy is still being
checked, what a queue that cannot store an event answers to every copy, and how long a handler
may run by default. The ASGI app is called directly on the running loop."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from telnyx_msg import RedisWebhookQueue
from telnyx_msg.models import WebhookEvent
from telnyx_msg.receivers import AsgiWebhookApp, asgi_app
from telnyx_msg.webhooks import MemoryReplayStore, WebhookVerifier
from tests.redis_proc import unused_url

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000
KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def sign(body: bytes) -> dict[str, str]:
    signature = KEY.sign(f"{NOW}|".encode() + body)
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": str(NOW),
        "content-type": "application/json",
    }


def event_body(event_id: str = "evt-1") -> bytes:
    return json.dumps(
        {
            "data": {
                "record_type": "event",
                "id": event_id,
                "event_type": "message.finalized",
                "occurred_at": "2024-01-01T00:00:00Z",
                "payload": {"id": "msg-1", "direction": "outbound", "to": []},
            },
            "meta": {"attempt": 1, "delivered_to": "https://hooks.test/telnyx"},
        }
    ).encode()


async def deliver(app: AsgiWebhookApp, body: bytes) -> tuple[int, bytes]:
    """One POST through the ASGI app: (status, response body)."""
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/hooks",
        "raw_path": b"/hooks",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in sign(body).items()],
    }
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


class HeldCheck:
    """A replay store whose ``aseen`` answers only once released (a slow Redis round trip)."""

    def __init__(self) -> None:
        self.inner = MemoryReplayStore()
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def aseen(self, event_id: str) -> bool:
        self.asked.set()
        await self.release.wait()
        return await self.inner.aseen(event_id)

    async def amark(self, event_id: str, ttl: float) -> None:
        await self.inner.amark(event_id, ttl)

    async def amark_if_new(self, event_id: str, ttl: float) -> bool:
        return await self.inner.amark_if_new(event_id, ttl)


async def test_a_redelivery_behind_a_duplicate_check_is_answered_at_once() -> None:
    """An event already handled arrives twice at once while the replay store is slow: the
    first copy finds it seen (200), and the copy waiting behind it is answered 200 as soon as
    that is known, not left waiting handler_timeout and then answered 503 (which makes Telnyx
    deliver the already handled event yet again)."""
    store = HeldCheck()
    await store.inner.amark("evt-1", 3600)
    calls: list[str] = []

    async def handler(event: WebhookEvent) -> None:
        calls.append(str(event.id))

    verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)
    app = asgi_app(verifier, {"message.finalized": handler}, handler_timeout=5.0)
    body = event_body()
    first = asyncio.ensure_future(deliver(app, body))
    await asyncio.wait_for(store.asked.wait(), 2)
    second = asyncio.ensure_future(deliver(app, body))
    await asyncio.sleep(0.05)  # the second copy is now waiting for the first one's outcome
    store.release.set()
    assert await asyncio.wait_for(first, 2) == (200, b"duplicate, skipped")
    status, _ = await asyncio.wait_for(second, 1.0)
    assert status == 200
    assert calls == []
    await app.aclose()


async def test_every_copy_is_refused_while_the_queue_cannot_store_the_event() -> None:
    """With queue= and a replay store, a delivery the queue could not store is answered 503,
    and so is its redelivery: the event is not remembered as seen on arrival, so a redelivery
    is never acknowledged 200 "duplicate" while nothing holds the event (it would be lost)."""
    verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=MemoryReplayStore())
    queue = RedisWebhookQueue(unused_url(), timeout=0.5)
    app = asgi_app(verifier, {}, queue=queue)
    body = event_body("evt-queued")
    try:
        first = await asyncio.wait_for(deliver(app, body), 5)
        again = await asyncio.wait_for(deliver(app, body), 5)
    finally:
        await app.aclose()
        await queue.aclose()
    assert first == (503, b"webhook queue unavailable")
    assert again == (503, b"webhook queue unavailable")
    assert not await verifier.replay_store.aseen("evt-queued")  # type: ignore[union-attr]


async def test_the_default_handler_timeout_lets_a_handler_run_a_few_seconds() -> None:
    """Without handler_timeout, a handler taking 2.5 s (a slow database write) is not
    cancelled: the receiver waits up to its documented 10 s default and answers 200."""
    done: list[str] = []

    async def slow(event: WebhookEvent) -> None:
        await asyncio.sleep(2.5)
        done.append(str(event.id))

    app = asgi_app(WebhookVerifier(PUBLIC, clock=lambda: NOW), {"message.finalized": slow})
    assert app.handler_timeout == 10.0
    assert await asyncio.wait_for(deliver(app, event_body("evt-slow")), 8) == (200, b"handled")
    assert done == ["evt-slow"]
    await app.aclose()
