"""End to end: FakeTelnyx signs deliveries, our receivers verify them, the tracker reports."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
from aiohttp import web

import telnyx_msg
from telnyx_msg.receivers import aiohttp_handler, asgi_app
from telnyx_msg.testing import FAILING_NUMBER, FakeConfig, FakeTelnyx

pytestmark = pytest.mark.anyio
SENDER = "+18005550101"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelnyx]:
    """A fake with fast delivery status changes."""
    async with FakeTelnyx(config=FakeConfig(delivery_delay=0.02)) as instance:
        yield instance


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"


async def test_aiohttp_receiver_tracks_final_delivery(fake: FakeTelnyx) -> None:
    """Sends through the real client; signed finalized events resolve tracker.final_status."""
    tracker = telnyx_msg.DeliveryTracker()
    inbound: list[telnyx_msg.WebhookEvent] = []

    async def on_received(event: telnyx_msg.WebhookEvent) -> None:
        inbound.append(event)

    verifier = telnyx_msg.WebhookVerifier(
        fake.public_key, replay_store=telnyx_msg.MemoryReplayStore()
    )
    receiver = aiohttp_handler(
        verifier,
        {
            "message.sent": tracker.handle,
            "message.finalized": tracker.handle,
            "message.received": on_received,
        },
    )
    app = web.Application()
    app.router.add_post("/hooks", receiver)
    runner, url = await _serve(app)
    try:
        fake.set_webhook_url(url)
        async with fake.client(rate_limits=None) as client:
            ok = await client.messages.send(from_=SENDER, to="+13125550001", text="hi")
            bad = await client.messages.send(from_=SENDER, to=FAILING_NUMBER, text="hi")
            assert ok.id is not None
            assert bad.id is not None
            delivered = await tracker.final_status(ok.id, timeout=5)
            failed = await tracker.final_status(bad.id, timeout=5)
            await fake.inject_inbound(from_="+13125550009", to=SENDER, text="hello back")
            await fake.settle()
            await receiver.drain()
        assert delivered.to[0].status == "delivered"
        assert failed.to[0].status == "delivery_failed"
        assert failed.errors
        assert [e.payload.text for e in inbound if isinstance(e.payload, telnyx_msg.Message)] == [
            "hello back"
        ]
        assert all(a.ok for a in fake.stats.webhook_attempts)
    finally:
        await receiver.aclose()
        await runner.cleanup()


async def test_asgi_receiver_rejects_forgeries_and_accepts_fake(fake: FakeTelnyx) -> None:
    """The ASGI app verifies the fake's deliveries and answers 401 to a forged copy."""
    seen: list[str] = []

    async def on_any(event: telnyx_msg.WebhookEvent) -> None:
        seen.append(str(event.event_type))

    app = asgi_app(telnyx_msg.WebhookVerifier(fake.public_key), {}, default=on_any)

    async def bridge(request: web.Request) -> web.Response:
        """Serve the ASGI app from aiohttp: a real HTTP hop, then a real ASGI call."""
        body = await request.read()
        sent: list[MutableMapping[str, Any]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "path": request.path,
            "raw_path": b"/hooks",
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 1),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        return web.Response(status=status)

    web_app = web.Application()
    web_app.router.add_post("/hooks", bridge)
    runner, url = await _serve(web_app)
    try:
        fake.set_webhook_url(url)
        async with fake.client(rate_limits=None) as client:
            await client.messages.send(from_=SENDER, to="+13125550002", text="hi")
            await fake.settle()
            await app.drain()
        assert "message.finalized" in seen
        attempt = next(a for a in fake.stats.webhook_attempts if a.ok)
        assert attempt.status == 200
        # A forged delivery (right headers, wrong key) is refused with 401.
        forged = await _post_forged(url)
        assert forged == 401
    finally:
        await app.aclose()
        await runner.cleanup()


async def _post_forged(url: str) -> int:
    import base64
    import time

    import aiohttp
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    body = b'{"data":{"record_type":"event","id":"x","event_type":"message.sent","payload":{}}}'
    timestamp = str(int(time.time()))
    signature = base64.b64encode(
        Ed25519PrivateKey.generate().sign(timestamp.encode() + b"|" + body)
    ).decode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url,
            data=body,
            headers={"telnyx-timestamp": timestamp, "telnyx-signature-ed25519": signature},
        ) as resp,
    ):
        return resp.status
