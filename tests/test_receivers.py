"""Webhook receivers (a real aiohttp server on 127.0.0.1, the ASGI app called directly) and
DeliveryTracker."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import gzip
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from telnyx_msg import RedisWebhookQueue
from telnyx_msg._tracker import DeliveryTracker
from telnyx_msg.errors import ConfigurationError
from telnyx_msg.models import (
    LinkClick,
    Message,
    MessageStatus,
    Recipient,
    WebhookEvent,
    WebhookEventType,
)
from telnyx_msg.receivers import (
    AiohttpWebhookHandler,
    AsgiWebhookApp,
    Handler,
    aiohttp_handler,
    asgi_app,
)
from telnyx_msg.webhooks import MemoryReplayStore, WebhookVerifier
from tests.redis_proc import unused_url

NOW = 1_700_000_000
KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def sign(body: bytes, timestamp: int = NOW) -> dict[str, str]:
    signature = KEY.sign(f"{timestamp}|".encode() + body)
    return {
        "Telnyx-Signature-Ed25519": base64.b64encode(signature).decode(),
        "Telnyx-Timestamp": str(timestamp),
        "Content-Type": "application/json",
    }


def event_body(
    event_type: str = "message.finalized",
    event_id: str = "evt-1",
    *,
    message_id: str = "msg-1",
    status: str = "delivered",
) -> bytes:
    return json.dumps(
        {
            "data": {
                "record_type": "event",
                "id": event_id,
                "event_type": event_type,
                "occurred_at": "2024-01-01T00:00:00Z",
                "payload": {
                    "id": message_id,
                    "direction": "outbound",
                    "to": [{"phone_number": "+15550001111", "status": status}],
                },
            },
            "meta": {"attempt": 1, "delivered_to": "https://example.com/hooks"},
        }
    ).encode()


LINK_CLICK = json.dumps(
    {
        "data": {
            "record_type": "link_clicked",
            "url": "https://x.test",
            "to": "15550001111",
            "message_id": "msg-1",
            "time_clicked": "2024-01-01T00:00:00Z",
        }
    }
).encode()


class Recorder:
    """A handler that records events, can be held at a gate, and can fail on purpose."""

    def __init__(self, *, failures: int = 0, gated: bool = False) -> None:
        self.events: list[WebhookEvent] = []
        self.started = 0
        self.failures = failures
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.log: list[str] | None = None

    async def __call__(self, event: WebhookEvent) -> None:
        self.started += 1
        if self.log is not None:
            self.log.append("handler")
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("handler failed on purpose")
        self.events.append(event)


def make_verifier(store: Any = None) -> WebhookVerifier:
    return WebhookVerifier(
        PUBLIC, clock=lambda: NOW, replay_store=MemoryReplayStore() if store is None else store
    )


# --- aiohttp -----------------------------------------------------------------------------------


@asynccontextmanager
async def serve(
    handler: AiohttpWebhookHandler, *, handler_cancellation: bool = False
) -> AsyncIterator[str]:
    """Serve ``handler`` on a real TCP port of 127.0.0.1; yields the webhook URL.
    ``handler_cancellation``: aiohttp cancels a request whose client hung up."""
    app = web.Application()
    app.router.add_route("*", "/hooks", handler)
    app.on_cleanup.append(handler.on_cleanup)
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        await runner.cleanup()


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout | None = None,
) -> tuple[int, str]:
    async with session.post(url, data=body, headers=headers, timeout=timeout) as response:
        return response.status, await response.text()


@pytest.mark.anyio
async def test_aiohttp_accepts_and_dispatches() -> None:
    """A signed delivery gets 200 and its handler receives the typed event."""
    recorder = Recorder()
    handler = aiohttp_handler(make_verifier(), {"message.finalized": recorder})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (200, "handled")
        await handler.drain()
    assert [e.id for e in recorder.events] == ["evt-1"]
    assert isinstance(recorder.events[0].payload, Message)


@pytest.mark.anyio
async def test_aiohttp_answers_after_the_handler_returned() -> None:
    """No answer while the handler runs; the 200 comes once it returned (and marked seen)."""
    store = MemoryReplayStore()
    recorder = Recorder(gated=True)
    handler = aiohttp_handler(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        answer = asyncio.ensure_future(post(session, url, body, sign(body)))
        await _started(recorder)
        await asyncio.sleep(0.05)
        assert not answer.done()
        assert handler.pending == 1
        recorder.gate.set()
        assert await asyncio.wait_for(answer, 5) == (200, "handled")
        assert len(recorder.events) == 1
        assert store.seen("evt-1")
    assert handler.pending == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mutate", "status", "text"),
    [
        (lambda h: h.pop("Telnyx-Timestamp"), 401, "missing"),
        (lambda h: h.update({"Telnyx-Timestamp": str(NOW - 301)}), 401, "too old"),
        (lambda h: h.update({"Telnyx-Signature-Ed25519": "A" * 86 + "=="}), 401, "signature"),
    ],
)
async def test_aiohttp_rejects_unverified(mutate: Any, status: int, text: str) -> None:
    """Missing headers, stale timestamps and bad signatures get 401; no handler runs."""
    recorder = Recorder()
    handler = aiohttp_handler(make_verifier(), {"message.finalized": recorder})
    body = event_body()
    headers = sign(body)
    mutate(headers)
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        got_status, got_text = await post(session, url, body, headers)
    assert got_status == status
    assert text in got_text
    assert recorder.started == 0


@pytest.mark.anyio
async def test_aiohttp_bad_payload_is_400() -> None:
    """A correctly signed body that is not a webhook document gets 400."""
    handler = aiohttp_handler(make_verifier(), {})
    body = b"[1, 2, 3]"
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        status, text = await post(session, url, body, sign(body))
    assert status == 400
    assert "not an object" in text


@pytest.mark.anyio
async def test_a_signed_event_refused_as_unreadable_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A delivery only Telnyx could sign, answered 400 because this SDK cannot read it (Telnyx
    drops it after its retries: the event is lost), is logged at ERROR by both receivers,
    without the body; it left no trace but the server's access log."""
    unreadable = json.loads(event_body(event_id="evt-unreadable"))
    unreadable["data"]["payload"] = None
    body = json.dumps(unreadable).encode()
    handler = aiohttp_handler(make_verifier(), {"message.finalized": Recorder()})
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        status, _ = await post(session, url, body, sign(body))
    app = asgi_app(make_verifier(), {"message.finalized": Recorder()})
    asgi_status, _, _ = await call_asgi(app, body, sign(body))
    await app.aclose()
    assert (status, asgi_status) == (400, 400)
    errors = [r for r in caplog.records if r.name == "telnyx_msg.webhooks" and r.levelno >= 40]
    assert len(errors) == 2
    assert all("answered 400" in r.getMessage() for r in errors)
    assert all(body.decode() not in r.getMessage() for r in errors)


@pytest.mark.anyio
async def test_refused_deliveries_are_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong public key (or a clock off by more than the tolerance) refuses every genuine
    delivery with 401, and Telnyx drops them after its retries: the receiver logs a warning
    with the reason, once a minute however many are refused (a forged flood does not flood
    the log). The reason reached only Telnyx, in the 401's text."""
    wrong_key = base64.b64encode(
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    app = asgi_app(WebhookVerifier(wrong_key, clock=lambda: NOW), {"message.finalized": Recorder()})
    body = event_body()
    stale = sign(body, timestamp=NOW - 3600)
    with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
        answers = [(await call_asgi(app, body, headers))[0] for headers in [sign(body)] * 3]
        answers.append((await call_asgi(app, body, stale))[0])
    await app.aclose()
    assert answers == [401] * 4
    warnings = [r.getMessage() for r in caplog.records if r.name == "telnyx_msg.webhooks"]
    assert len(warnings) == 1, warnings
    assert "401" in warnings[0]
    assert "signature" in warnings[0]


@pytest.mark.anyio
async def test_handlers_that_are_not_a_mapping_are_a_configuration_error() -> None:
    """``asgi_app(verifier, None)`` (the handlers left out, a queue meant) raised a bare
    AttributeError from inside the receiver; a list of handlers did too."""
    for handlers in (None, [Recorder()]):
        with pytest.raises(ConfigurationError, match="handlers must be a mapping"):
            asgi_app(make_verifier(), handlers)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="handlers must be a mapping"):
            aiohttp_handler(make_verifier(), handlers)  # type: ignore[arg-type]


def test_a_handler_for_an_event_type_telnyx_does_not_send_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A misspelt event type (``message.finalised``) is a handler that never runs: every
    ``message.finalized`` is answered 200 "no handler" and dropped, silently. The receivers and
    the queue workers warn at construction, naming the types Telnyx sends (a type this SDK
    does not know yet still reaches its handler)."""
    with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
        asgi_app(make_verifier(), {"message.finalised": Recorder(), "message.sent": Recorder()})
    [warning] = [r.getMessage() for r in caplog.records if r.name == "telnyx_msg.webhooks"]
    assert "'message.finalised'" in warning
    assert "message.finalized" in warning
    assert "'message.sent'" not in warning


@pytest.mark.anyio
async def test_a_signed_event_looser_than_the_model_reaches_its_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Telnyx's schema requires none of a message payload's fields. A correctly signed event
    whose payload this SDK cannot read as a Message (no ``id``, a recipient without its
    number), or whose ``occurred_at`` or ``meta`` it cannot read, reaches the handler with
    the raw payload mapping (and None for what it could not read), logged at WARNING. It was
    answered 400, and Telnyx dropped the event after its retries."""
    loose = json.loads(event_body(event_id="evt-loose"))
    del loose["data"]["payload"]["id"]
    loose["data"]["payload"]["to"] = [{"status": "delivered"}]
    loose["data"]["occurred_at"] = "yesterday"
    loose["meta"]["attempt"] = "first"
    body = json.dumps(loose).encode()
    recorder = Recorder()
    app = asgi_app(make_verifier(), {"message.finalized": recorder})
    with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
        status, text, _ = await call_asgi(app, body, sign(body))
    await app.aclose()
    assert (status, text) == (200, b"handled")
    [event] = recorder.events
    assert (event.id, event.event_type) == ("evt-loose", WebhookEventType.MESSAGE_FINALIZED)
    assert event.payload == loose["data"]["payload"]
    assert (event.occurred_at, event.meta) == (None, None)
    assert event.raw == loose
    warnings = [r.getMessage() for r in caplog.records if r.name == "telnyx_msg.webhooks"]
    assert any("evt-loose" in w and "payload" in w for w in warnings), warnings


@pytest.mark.anyio
async def test_aiohttp_duplicate_gets_200_and_is_skipped() -> None:
    """A second delivery of a handled event id gets 200 without running the handler."""
    recorder = Recorder()
    handler = aiohttp_handler(make_verifier(), {"message.finalized": recorder})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert (await post(session, url, body, sign(body)))[0] == 200
        await handler.drain()
        assert await post(session, url, body, sign(body, NOW - 10)) == (200, "duplicate, skipped")
        await handler.drain()
    assert recorder.started == 1


@pytest.mark.anyio
async def test_aiohttp_handler_failure_is_500_and_the_redelivery_is_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler that raises gets 500 and stays unseen, so Telnyx's redelivery runs it again."""
    store = MemoryReplayStore()
    recorder = Recorder(failures=1)
    handler = aiohttp_handler(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (500, "handler failed")
        assert not store.seen("evt-1")
        assert "not marked seen" in caplog.text
        assert await post(session, url, body, sign(body)) == (200, "handled")
    assert store.seen("evt-1")
    assert recorder.started == 2
    assert len(recorder.events) == 1


@pytest.mark.anyio
async def test_aiohttp_handler_timeout_is_503_and_cancels_it() -> None:
    """A handler over handler_timeout is cancelled and answered 503; the retry is handled."""
    store = MemoryReplayStore()
    recorder = Recorder(gated=True)
    handler = aiohttp_handler(
        make_verifier(store), {"message.finalized": recorder}, handler_timeout=0.1
    )
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (503, "handler timed out after 0.1 s")
        await handler.drain()
        assert handler.pending == 0
        assert not store.seen("evt-1")
        recorder.gate.set()
        assert await post(session, url, body, sign(body)) == (200, "handled")
    assert recorder.started == 2
    assert len(recorder.events) == 1


class SlowMarkStore(MemoryReplayStore):
    """A replay store of the user's own whose write is slow, as a remote one's can be."""

    async def amark(self, event_id: str, ttl: float) -> None:
        await asyncio.sleep(0.4)
        await super().amark(event_id, ttl)


@pytest.mark.anyio
async def test_handler_timeout_bounds_the_handler_not_the_mark_after_it() -> None:
    """A handler that returns within handler_timeout, followed by a slow replay-store write
    (a Redis stall just then), is answered 200 "handled" and runs once: the timeout had
    cancelled the write, answered 503 "handler timed out" (logging that the handler overran),
    left the event unmarked and run the handler again on Telnyx's redelivery."""
    store = SlowMarkStore()
    recorder = Recorder()
    handler = aiohttp_handler(
        make_verifier(store), {"message.finalized": recorder}, handler_timeout=0.2
    )
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (200, "handled")
        assert await post(session, url, body, sign(body)) == (
            200,
            "duplicate, handled by an earlier delivery",
        )
        await handler.drain()
        assert store.seen("evt-1")
        assert await post(session, url, body, sign(body)) == (200, "duplicate, skipped")
    assert len(recorder.events) == 1


@pytest.mark.anyio
async def test_a_slow_mark_after_a_hang_up_still_marks_the_handled_event() -> None:
    """The client hangs up (aiohttp cancels the request) while a handler that returns in time
    is followed by a replay-store write slower than ``handler_timeout``: the write still
    completes, so Telnyx's redelivery is answered as a duplicate and the handler runs once.
    Cancelled at the timeout as if the handler overran, it left the event unmarked."""
    store = SlowMarkStore()
    recorder = Recorder()
    handler = aiohttp_handler(
        make_verifier(store), {"message.finalized": recorder}, handler_timeout=0.2
    )
    body = event_body()
    async with (
        serve(handler, handler_cancellation=True) as url,
        aiohttp.ClientSession() as session,
    ):
        hang_up = aiohttp.ClientTimeout(total=0.1)
        with pytest.raises(asyncio.TimeoutError):
            await post(session, url, body, sign(body), timeout=hang_up)
        await asyncio.wait_for(handler.drain(), 5)
        assert store.seen("evt-1")
        assert await post(session, url, body, sign(body)) == (200, "duplicate, skipped")
    assert len(recorder.events) == 1


@pytest.mark.anyio
async def test_handler_timeout_holds_after_the_client_hangs_up() -> None:
    """aiohttp cancels a request whose client hung up (``handler_cancellation=True``; Telnyx
    hangs up after about 2 s): the handler ran on unbounded, holding a ``max_pending`` slot
    and its event id (every redelivery then waited and got 503), and a shutdown waited for it."""
    store = MemoryReplayStore()
    recorder = Recorder(gated=True)
    handler = aiohttp_handler(
        make_verifier(store), {"message.finalized": recorder}, handler_timeout=0.3
    )
    body = event_body()
    async with (
        serve(handler, handler_cancellation=True) as url,
        aiohttp.ClientSession() as session,
    ):
        hang_up = aiohttp.ClientTimeout(total=0.1)
        with pytest.raises(asyncio.TimeoutError):
            await post(session, url, body, sign(body), timeout=hang_up)
        assert recorder.started == 1
        await asyncio.wait_for(handler.drain(), 5)  # cancelled at its timeout
        assert not store.seen("evt-1")
        recorder.gate.set()
        assert await post(session, url, body, sign(body)) == (200, "handled")
    assert len(recorder.events) == 1


@pytest.mark.anyio
async def test_asgi_handler_timeout_holds_when_the_server_cancels_the_request() -> None:
    """The same for an ASGI server that cancels the app when the client disconnects."""
    recorder = Recorder(gated=True)
    app = asgi_app(make_verifier(), {"message.finalized": recorder}, handler_timeout=0.3)
    body = event_body()
    request = asyncio.ensure_future(call_asgi(app, body, sign(body)))
    for _ in range(200):  # bounded (2 s)
        if recorder.started:
            break
        await asyncio.sleep(0.01)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert app.pending == 1
    await asyncio.wait_for(app.drain(), 5)
    assert app.pending == 0
    assert recorder.events == []


@pytest.mark.anyio
async def test_both_receivers_refuse_an_encoded_body_alike() -> None:
    """A gzip body signed over its plain JSON: aiohttp decoded it before verifying (200), an
    ASGI server passed it encoded (401): one delivery, two verdicts. Both now answer 415,
    before the body is read."""
    body = event_body()
    headers = {**sign(body), "Content-Encoding": "gzip"}
    encoded = gzip.compress(body)
    recorder = Recorder()
    handler = aiohttp_handler(make_verifier(), {"message.finalized": recorder})
    async with serve(handler) as url, aiohttp.ClientSession(auto_decompress=False) as session:
        status, text = await post(session, url, encoded, headers)
    assert (status, "Content-Encoding" in text) == (415, True)
    app = asgi_app(make_verifier(), {"message.finalized": recorder})
    assert (await call_asgi(app, encoded, headers))[0] == 415
    assert recorder.started == 0
    for coding in ("identity", "Identity , ", "identity,identity"):  # (all mean "none")
        headers = {**sign(body), "Content-Encoding": coding}
        assert (await call_asgi(app, body, headers))[0] == 200, coding
    repeated = [*sign(body).items(), ("Content-Encoding", "identity"), ("Content-Encoding", "gzip")]
    assert (await call_asgi(app, encoded, repeated))[0] == 415


@pytest.mark.anyio
async def test_aiohttp_redelivery_during_handling_waits_for_success() -> None:
    """A redelivery during handling waits; the first copy succeeded, so it gets 200 unrun."""
    recorder = Recorder(gated=True)
    handler = aiohttp_handler(make_verifier(), {"message.finalized": recorder})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        first = asyncio.ensure_future(post(session, url, body, sign(body)))
        await _started(recorder)
        second = asyncio.ensure_future(post(session, url, body, sign(body)))
        await asyncio.sleep(0.05)
        assert not second.done()
        recorder.gate.set()
        assert await first == (200, "handled")
        assert await second == (200, "duplicate, handled by an earlier delivery")
    assert recorder.started == 1


@pytest.mark.anyio
async def test_aiohttp_redelivery_during_handling_runs_it_when_the_first_fails() -> None:
    """If the first copy's handler fails, the waiting redelivery runs the handler itself."""
    store = MemoryReplayStore()
    recorder = Recorder(gated=True, failures=1)
    handler = aiohttp_handler(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        first = asyncio.ensure_future(post(session, url, body, sign(body)))
        await _started(recorder)
        second = asyncio.ensure_future(post(session, url, body, sign(body)))
        await asyncio.sleep(0.05)
        recorder.gate.set()
        assert await first == (500, "handler failed")
        assert await second == (200, "handled")
    assert recorder.started == 2
    assert len(recorder.events) == 1
    assert store.seen("evt-1")


@pytest.mark.anyio
async def test_aiohttp_unknown_type_and_default_handler() -> None:
    """Unknown types get 200 and are ignored, or go to ``default`` when given."""
    body = json.dumps(
        {"data": {"event_type": "call.initiated", "id": "c1", "payload": {}}}
    ).encode()
    ignored = aiohttp_handler(make_verifier(), {})
    fallback = Recorder()
    defaulted = aiohttp_handler(make_verifier(), {}, default=fallback)
    async with aiohttp.ClientSession() as session:
        async with serve(ignored) as url:
            assert await post(session, url, body, sign(body)) == (
                200,
                "no handler for this event type",
            )
        async with serve(defaulted) as url:
            assert await post(session, url, body, sign(body)) == (200, "handled")
            await defaulted.drain()
    assert [e.event_type for e in fallback.events] == ["call.initiated"]


@pytest.mark.anyio
async def test_aiohttp_enum_keys_and_link_clicks() -> None:
    """WebhookEventType keys work, and link clicks (no id) are dispatched every time."""
    recorder = Recorder()
    handler = aiohttp_handler(make_verifier(), {WebhookEventType.MESSAGE_LINK_CLICK: recorder})
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        for _ in range(2):
            assert (await post(session, url, LINK_CLICK, sign(LINK_CLICK)))[0] == 200
        await handler.drain()
    assert len(recorder.events) == 2
    assert isinstance(recorder.events[0].payload, LinkClick)


@pytest.mark.anyio
async def test_aiohttp_get_is_405() -> None:
    """Only POST is accepted."""
    handler = aiohttp_handler(make_verifier(), {})
    async with (
        serve(handler) as url,
        aiohttp.ClientSession() as session,
        session.get(url) as response,
    ):
        assert response.status == 405
        assert response.headers["Allow"] == "POST"


@pytest.mark.anyio
async def test_aiohttp_cleanup_waits_for_handlers() -> None:
    """Shutting the app down waits for a running handler, whose delivery still gets 200."""
    recorder = Recorder(gated=True)
    handler = aiohttp_handler(make_verifier(), {"message.finalized": recorder})
    body = event_body()
    async with aiohttp.ClientSession() as session:
        async with serve(handler) as url:
            answer = asyncio.ensure_future(post(session, url, body, sign(body)))
            await _started(recorder)
            asyncio.get_running_loop().call_later(0.05, recorder.gate.set)
        assert await answer == (200, "handled")
    assert handler.closed
    assert handler.pending == 0
    assert len(recorder.events) == 1


@pytest.mark.anyio
async def test_aiohttp_closed_receiver_is_503() -> None:
    """After aclose() deliveries get 503 so Telnyx retries elsewhere or later."""
    handler = aiohttp_handler(make_verifier(), {})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        await handler.aclose()
        status, text = await post(session, url, body, sign(body))
    assert (status, text) == (503, "receiver is shutting down")


@pytest.mark.anyio
async def test_aclose_timeout_cancels_stuck_handlers() -> None:
    """aclose(timeout) cancels handlers that do not finish: 503, and the event stays unseen."""
    store = MemoryReplayStore()
    recorder = Recorder(gated=True)
    handler = aiohttp_handler(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        answer = asyncio.ensure_future(post(session, url, body, sign(body)))
        await _started(recorder)
        await handler.aclose(timeout=0.05)
        assert await answer == (503, "receiver is shutting down")
    assert handler.pending == 0
    assert recorder.events == []
    assert not store.seen("evt-1")


async def _started(recorder: Recorder, count: int = 1) -> None:
    """Wait (bounded) until the handler has started ``count`` times."""
    for _ in range(500):
        if recorder.started >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the handler did not start")


@pytest.mark.anyio
async def test_aiohttp_max_pending_is_503() -> None:
    """With max_pending handlers running, further deliveries get 503."""
    recorder = Recorder(gated=True)
    handler = aiohttp_handler(make_verifier(), {"message.finalized": recorder}, max_pending=1)
    first, second = event_body(event_id="a"), event_body(event_id="b")
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        running = asyncio.ensure_future(post(session, url, first, sign(first)))
        await _started(recorder)
        assert (await post(session, url, second, sign(second)))[0] == 503
        recorder.gate.set()
        assert (await running)[0] == 200
        assert (await post(session, url, second, sign(second)))[0] == 200
    assert [e.id for e in recorder.events] == ["a", "b"]


class BrokenStore:
    """A replay store whose backend is down."""

    def __init__(self, *, check_fails: bool) -> None:
        self.check_fails = check_fails

    async def aseen(self, event_id: str) -> bool:
        if self.check_fails:
            raise ConnectionError("store down")
        return False

    async def amark(self, event_id: str, ttl: float) -> None:
        raise ConnectionError("store down")

    async def amark_if_new(self, event_id: str, ttl: float) -> bool:
        raise ConnectionError("store down")


@pytest.mark.anyio
async def test_replay_store_outage_is_503(caplog: pytest.LogCaptureFixture) -> None:
    """If the replay store cannot be checked the answer is 503 (Telnyx retries)."""
    recorder = Recorder()
    handler = aiohttp_handler(
        make_verifier(BrokenStore(check_fails=True)), {"message.finalized": recorder}
    )
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (503, "replay store unavailable")
    assert recorder.started == 0
    assert "replay store check failed" in caplog.text


@pytest.mark.anyio
async def test_mark_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A failure to mark a handled event seen is logged, not raised from a task."""
    recorder = Recorder()
    app = asgi_app(make_verifier(BrokenStore(check_fails=False)), {"message.finalized": recorder})
    body = event_body()
    status, _, _ = await call_asgi(app, body, sign(body))
    await app.aclose()
    assert status == 200
    assert len(recorder.events) == 1
    assert "could not mark event evt-1 seen" in caplog.text


# --- ASGI --------------------------------------------------------------------------------------


def http_scope(
    headers: dict[str, str] | list[tuple[str, str]], method: str = "POST"
) -> dict[str, Any]:
    items = headers.items() if isinstance(headers, dict) else headers
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/hooks",
        "raw_path": b"/hooks",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def call_asgi(
    app: AsgiWebhookApp,
    body: bytes,
    headers: dict[str, str] | list[tuple[str, str]],
    *,
    method: str = "POST",
    chunks: list[bytes] | None = None,
    log: list[str] | None = None,
    disconnect: bool = False,
) -> tuple[int | None, bytes, list[MutableMapping[str, Any]]]:
    """Invoke the ASGI app once; returns (status, body, sent messages)."""
    parts = chunks if chunks is not None else [body]
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    if disconnect:
        incoming = [{"type": "http.disconnect"}]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        await asyncio.sleep(0)  # let any prematurely started task run, so order shows it
        if log is not None:
            log.append(message["type"])
        sent.append(message)

    await app(http_scope(headers, method), receive, send)
    status = sent[0]["status"] if sent else None
    return status, b"".join(m.get("body", b"") for m in sent[1:]), sent


@pytest.mark.anyio
async def test_asgi_runs_the_handler_before_the_response() -> None:
    """The ASGI app runs the handler to completion, then sends the 200 response."""
    log: list[str] = []
    recorder = Recorder()
    recorder.log = log
    app = asgi_app(make_verifier(), {"message.finalized": recorder})
    body = event_body()
    status, text, sent = await call_asgi(app, body, sign(body), log=log)
    assert (status, text) == (200, b"handled")
    assert log == ["handler", "http.response.start", "http.response.body"]
    assert (b"content-type", b"text/plain; charset=utf-8") in sent[0]["headers"]
    assert len(recorder.events) == 1
    await app.aclose()


@pytest.mark.anyio
async def test_asgi_chunked_body() -> None:
    """A body streamed in several receive() messages is reassembled before verification."""
    recorder = Recorder()
    app = asgi_app(make_verifier(), {"message.finalized": recorder})
    body = event_body()
    chunks = [body[:10], body[10:50], b"", body[50:]]
    status, _, _ = await call_asgi(app, body, sign(body), chunks=chunks)
    await app.aclose()
    assert status == 200
    assert len(recorder.events) == 1


@pytest.mark.anyio
async def test_asgi_status_codes() -> None:
    """ASGI answers 401 for bad signatures, 400 for bad payloads and 200 for duplicates."""
    app = asgi_app(make_verifier(), {"message.finalized": Recorder()})
    body = event_body()
    bad = {**sign(body), "Telnyx-Signature-Ed25519": sign(b"other")["Telnyx-Signature-Ed25519"]}
    assert (await call_asgi(app, body, bad))[0] == 401
    junk = b"not json"
    assert (await call_asgi(app, junk, sign(junk)))[0] == 400
    assert (await call_asgi(app, body, sign(body)))[0] == 200
    assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"duplicate, skipped")
    await app.aclose()


@pytest.mark.anyio
async def test_asgi_repeated_header_is_401() -> None:
    """A repeated timestamp header in the raw ASGI headers is rejected as repeated."""
    app = asgi_app(make_verifier(), {})
    body = event_body()
    headers = [*sign(body).items(), ("telnyx-timestamp", str(NOW))]
    status, text, _ = await call_asgi(app, body, headers)
    assert status == 401
    assert b"repeated" in text


@pytest.mark.anyio
async def test_asgi_method_not_allowed() -> None:
    """A GET gets 405 with an Allow header."""
    app = asgi_app(make_verifier(), {})
    status, _, sent = await call_asgi(app, b"", {}, method="GET")
    assert status == 405
    assert (b"allow", b"POST") in sent[0]["headers"]


@pytest.mark.anyio
async def test_asgi_body_too_large() -> None:
    """Bodies above max_body_size get 413, by declared length or while streaming."""
    app = asgi_app(make_verifier(), {}, max_body_size=100)
    body = b"x" * 101
    declared = {**sign(body), "Content-Length": "101"}
    assert (await call_asgi(app, body, declared))[0] == 413
    streamed = await call_asgi(app, body, sign(body), chunks=[body[:60], body[60:]])
    assert streamed[0] == 413


@pytest.mark.anyio
async def test_asgi_client_disconnect_sends_nothing() -> None:
    """If the client disconnects before the body arrives nothing is sent or run."""
    recorder = Recorder()
    app = asgi_app(make_verifier(), {"message.finalized": recorder})
    status, _, sent = await call_asgi(app, b"", sign(b"{}"), disconnect=True)
    assert status is None
    assert sent == []
    assert app.pending == 0


@pytest.mark.anyio
async def test_asgi_handler_failure_then_retry() -> None:
    """Through ASGI too, a failed handler leaves the event unseen and the retry is handled."""
    store = MemoryReplayStore()
    recorder = Recorder(failures=1)
    app = asgi_app(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    assert (await call_asgi(app, body, sign(body)))[:2] == (500, b"handler failed")
    assert not store.seen("evt-1")
    assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"handled")
    await app.aclose()
    assert store.seen("evt-1")
    assert len(recorder.events) == 1


async def _handler_running() -> tuple[Any, Recorder, asyncio.Future[Any]]:
    """An ASGI receiver whose (gated) handler is running one delivery."""
    recorder = Recorder(gated=True)
    app = asgi_app(make_verifier(), {"message.finalized": recorder})
    body = event_body()
    delivery = asyncio.ensure_future(call_asgi(app, body, sign(body)))
    await _started(recorder)
    return app, recorder, delivery


async def _lifespan(app: AsgiWebhookApp, started: Callable[[], object] | None = None) -> None:
    """One ASGI lifespan: startup (then ``started()``), then shutdown."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete" and started is not None:
            started()

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.anyio
async def test_asgi_lifespan_shutdown_drains_handlers() -> None:
    """The ASGI lifespan shutdown closes the receiver after its handlers finish."""
    app, recorder, delivery = await _handler_running()
    await _lifespan(app, lambda: asyncio.get_running_loop().call_later(0.02, recorder.gate.set))
    assert (await delivery)[0] == 200
    assert len(recorder.events) == 1
    assert app.closed


@pytest.mark.anyio
async def test_asgi_websocket_is_closed() -> None:
    """A websocket connection is refused with a close message."""
    app = asgi_app(make_verifier(), {})
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app({"type": "websocket", "path": "/hooks", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.anyio
async def test_asgi_unknown_scope_type_raises() -> None:
    """An unknown ASGI scope type is an error, as the ASGI spec allows."""
    app = asgi_app(make_verifier(), {})

    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(message: MutableMapping[str, Any]) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="scope type"):
        await app({"type": "mystery"}, receive, send)


def test_bad_max_pending_rejected() -> None:
    """max_pending must be at least 1."""
    with pytest.raises(ValueError, match="max_pending"):
        asgi_app(make_verifier(), {}, max_pending=0)


# --- DeliveryTracker ---------------------------------------------------------------------------


def delivery(message_id: str, status: str, event_type: str = "message.finalized") -> WebhookEvent:
    message = Message(id=message_id, to=(Recipient(phone_number="+15550001111", status=status),))
    known = {e.value: e for e in WebhookEventType}
    return WebhookEvent(
        event_type=known.get(event_type, event_type),
        id=f"evt-{message_id}",
        occurred_at=None,
        payload=message,
    )


@pytest.mark.anyio
async def test_tracker_resolves_when_finalized_arrives_later() -> None:
    """final_status waits for the message.finalized event and returns its Message."""
    tracker = DeliveryTracker()
    waiter = asyncio.ensure_future(tracker.final_status("m1", timeout=5))
    await asyncio.sleep(0)
    await tracker.handle(delivery("m1", "sent", "message.sent"))
    await asyncio.sleep(0)
    assert not waiter.done()
    await tracker.handle(delivery("m1", "delivered"))
    message = await waiter
    assert message.to[0].status == MessageStatus.DELIVERED
    assert tracker.waiting == 0


@pytest.mark.anyio
async def test_tracker_finalized_before_call_returns_at_once() -> None:
    """A final status recorded before final_status is called is returned immediately."""
    tracker = DeliveryTracker()
    await tracker.handle(delivery("m1", "delivery_failed"))
    message = await tracker.final_status("m1", timeout=0)
    assert message.to[0].status == "delivery_failed"
    assert tracker.result_nowait("m1") is message


@pytest.mark.anyio
async def test_tracker_timeout_raises_builtin_timeout_error() -> None:
    """Without a final event, final_status raises TimeoutError and forgets the waiter."""
    tracker = DeliveryTracker()
    with pytest.raises(TimeoutError, match="m1"):
        await tracker.final_status("m1", timeout=0.01)
    assert tracker.waiting == 0


@pytest.mark.anyio
async def test_tracker_sent_with_terminal_status_is_final() -> None:
    """A message.sent whose recipients are all terminal (sending_failed) resolves too."""
    tracker = DeliveryTracker()
    await tracker.handle(delivery("m1", "sending_failed", "message.sent"))
    assert (await tracker.final_status("m1", timeout=0)).to[0].status == "sending_failed"


@pytest.mark.anyio
async def test_tracker_several_waiters_and_first_final_wins() -> None:
    """All waiters of one id get the first final Message; later repeats are ignored."""
    tracker = DeliveryTracker()
    waiters = [asyncio.ensure_future(tracker.final_status("m1", timeout=5)) for _ in range(3)]
    await asyncio.sleep(0)
    assert tracker.waiting == 3
    tracker.record(delivery("m1", "delivered"))
    tracker.record(delivery("m1", "expired"))
    results = await asyncio.gather(*waiters)
    assert {r.to[0].status for r in results} == {MessageStatus.DELIVERED}
    assert (await tracker.final_status("m1")).to[0].status == MessageStatus.DELIVERED


@pytest.mark.anyio
async def test_tracker_bounded_memory() -> None:
    """Un-awaited final results are bounded by max_size, oldest evicted first."""
    tracker = DeliveryTracker(max_size=2)
    for message_id in ("a", "b", "c"):
        tracker.record(delivery(message_id, "delivered"))
    assert tracker.result_nowait("a") is None
    assert tracker.result_nowait("b") is not None
    assert tracker.result_nowait("c") is not None


@pytest.mark.anyio
async def test_tracker_ignores_other_payloads() -> None:
    """Events without a Message payload (link clicks, unknown types) are ignored."""
    tracker = DeliveryTracker()
    click = WebhookEvent(
        event_type=WebhookEventType.MESSAGE_LINK_CLICK,
        id=None,
        occurred_at=None,
        payload=LinkClick(message_id="m1"),
    )
    tracker.record(click)
    tracker.record(WebhookEvent(event_type="x", id="1", occurred_at=None, payload={"id": "m1"}))
    assert tracker.result_nowait("m1") is None


@pytest.mark.anyio
async def test_tracker_behind_asgi_receiver() -> None:
    """End to end: deliveries through the ASGI app resolve final_status."""
    tracker = DeliveryTracker()
    handlers: dict[str, Handler] = {
        "message.sent": tracker.handle,
        "message.finalized": tracker.handle,
    }
    app = asgi_app(make_verifier(), handlers)
    waiter = asyncio.ensure_future(tracker.final_status("msg-7", timeout=5))
    sent = event_body("message.sent", "e1", message_id="msg-7", status="sent")
    final = event_body("message.finalized", "e2", message_id="msg-7", status="delivered")
    for body in (sent, final):
        assert (await call_asgi(app, body, sign(body)))[0] == 200
    message = await waiter
    await app.aclose()
    assert message.id == "msg-7"
    assert message.to[0].status == MessageStatus.DELIVERED


def test_tracker_bad_max_size() -> None:
    """max_size must be at least 1."""
    with pytest.raises(ValueError, match="max_size"):
        DeliveryTracker(max_size=0)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "status",
    [
        "delivered",
        "delivery_failed",
        "sending_failed",
        "delivery_unconfirmed",
        "expired",
        "cancelled",
    ],
)
async def test_tracker_every_terminal_status_on_message_sent_is_final(status: str) -> None:
    """Each documented terminal recipient status ends the wait, even on a message.sent."""
    tracker = DeliveryTracker()
    await tracker.handle(delivery("m1", status, "message.sent"))
    assert (await tracker.final_status("m1", timeout=0)).to[0].status == status


@pytest.mark.anyio
async def test_tracker_group_with_a_recipient_without_status_is_not_final() -> None:
    """A group message.sent is final only when every recipient is terminal: one recipient
    without a status yet keeps the wait open."""
    tracker = DeliveryTracker()
    message = Message(
        id="g1",
        to=(
            Recipient(phone_number="+15550001111", status="delivered"),
            Recipient(phone_number="+15550002222", status=None),
        ),
    )
    tracker.record(
        WebhookEvent(
            event_type=WebhookEventType.MESSAGE_SENT, id="evt-g1", occurred_at=None, payload=message
        )
    )
    assert tracker.result_nowait("g1") is None
    with pytest.raises(TimeoutError):
        await tracker.final_status("g1", timeout=0.01)


@pytest.mark.anyio
async def test_asgi_body_of_exactly_max_body_size_is_accepted() -> None:
    """max_body_size is the largest body accepted, declared or streamed."""
    recorder = Recorder()
    first, second = event_body(event_id="evt-1"), event_body(event_id="evt-2")
    app = asgi_app(make_verifier(), {"message.finalized": recorder}, max_body_size=len(first))
    declared = {**sign(first), "Content-Length": str(len(first))}
    assert (await call_asgi(app, first, declared))[:2] == (200, b"handled")
    chunks = [second[:10], second[10:]]
    assert (await call_asgi(app, second, sign(second), chunks=chunks))[:2] == (200, b"handled")
    await app.aclose()
    assert [e.id for e in recorder.events] == ["evt-1", "evt-2"]


@pytest.mark.anyio
async def test_infinite_handler_timeout_is_accepted() -> None:
    """handler_timeout=math.inf opts out of the timeout, as for every other duration."""
    recorder = Recorder()
    handler = aiohttp_handler(make_verifier(), {}, handler_timeout=math.inf)
    assert handler.handler_timeout == math.inf
    app = asgi_app(make_verifier(), {"message.finalized": recorder}, handler_timeout=math.inf)
    body = event_body()
    assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"handled")
    await app.aclose()


@pytest.mark.anyio
async def test_queue_with_a_default_handler_is_refused() -> None:
    """With queue=, a default handler would never run: refused like handlers={...}."""
    queue = RedisWebhookQueue("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(ConfigurationError, match="handlers"):
            asgi_app(make_verifier(), {}, default=Recorder(), queue=queue)
    finally:
        await queue.aclose()


@pytest.mark.anyio
async def test_event_without_a_type_goes_to_the_default_handler() -> None:
    """An event that names no event_type is handled by ``default``."""
    fallback = Recorder()
    app = asgi_app(make_verifier(), {"message.finalized": Recorder()}, default=fallback)
    body = json.dumps({"data": {"id": "untyped-1", "payload": {}}}).encode()
    assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"handled")
    await app.aclose()
    assert [(e.id, e.event_type) for e in fallback.events] == [("untyped-1", None)]


@pytest.mark.anyio
async def test_aclose_without_timeout_waits_for_the_running_handler() -> None:
    """aclose() returns only once the running handler has finished (its event is safe)."""
    app, recorder, delivery = await _handler_running()
    closing = asyncio.ensure_future(app.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()
    recorder.gate.set()
    await asyncio.wait_for(closing, 5)
    assert (await delivery)[:2] == (200, b"handled")
    assert len(recorder.events) == 1


@pytest.mark.anyio
async def test_drain_waits_for_every_running_handler() -> None:
    """drain() waits for all handlers, not just until the first one finishes."""
    slow, quick = Recorder(gated=True), Recorder(gated=True)
    app = asgi_app(make_verifier(), {"message.finalized": slow, "message.sent": quick})
    bodies = [event_body(event_id="a"), event_body("message.sent", event_id="b")]
    deliveries = [asyncio.ensure_future(call_asgi(app, b, sign(b))) for b in bodies]
    await _started(slow)
    await _started(quick)
    quick.gate.set()
    assert (await deliveries[1])[:2] == (200, b"handled")
    draining = asyncio.ensure_future(app.drain())
    await asyncio.sleep(0.05)
    assert not draining.done()
    assert app.pending == 1
    slow.gate.set()
    await asyncio.wait_for(draining, 5)
    assert (await deliveries[0])[:2] == (200, b"handled")
    await app.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("declared", ["\xb2", "\xb9\xb2"])
async def test_a_content_length_of_non_ascii_digits_is_not_a_crash(declared: str) -> None:
    """A Content-Length of "²" (the header's Latin-1 byte 0xb2) passed isdigit(), then int()
    raised ValueError out of the ASGI app. It is no length: the body is checked as it arrives."""
    app = asgi_app(make_verifier(), {"message.finalized": Recorder()}, max_body_size=50_000)
    body = event_body()
    status, text, _ = await call_asgi(app, body, {**sign(body), "Content-Length": declared})
    await app.aclose()
    assert (status, text) == (200, b"handled")


@pytest.mark.anyio
async def test_content_length_counts_bytes_of_a_non_ascii_answer() -> None:
    """The ASGI answer's Content-Length is its UTF-8 byte count, also when the reply text
    echoes non-ASCII header bytes."""
    app = asgi_app(make_verifier(), {})
    body = event_body()
    headers = {**sign(body), "Telnyx-Timestamp": "17000000\xe9"}
    status, text, sent = await call_asgi(app, body, headers)
    assert status == 401
    assert "\xe9".encode() in text
    assert (b"content-length", str(len(text)).encode()) in sent[0]["headers"]


@pytest.mark.anyio
async def test_tracker_remembers_only_max_size_evicted_ids() -> None:
    """The ids of dropped final statuses are remembered up to another max_size (oldest
    forgotten first): memory stays bounded, and a forgotten one is waited for again."""
    tracker = DeliveryTracker(max_size=1)
    for message_id in ("a", "b", "c"):
        tracker.record(delivery(message_id, "delivered"))
    with pytest.raises(LookupError, match="max_size"):
        await tracker.final_status("b", timeout=0)
    with pytest.raises(TimeoutError):
        await tracker.final_status("a", timeout=0.01)
    assert tracker.waiting == 0


# --- handlers and copies that misbehave ---------------------------------------------------------


@pytest.mark.anyio
async def test_a_plain_function_handler_is_called_once_and_answered_200() -> None:
    """``tracker.record`` (a plain function) ran, then awaiting its None answered 500: every
    redelivery ran it again. It is called on the loop and the delivery is handled."""
    tracker = DeliveryTracker()
    calls: list[str | None] = []

    def record(event: WebhookEvent) -> None:
        calls.append(event.id)
        tracker.record(event)

    app = asgi_app(make_verifier(), {"message.finalized": record})
    body = event_body()
    assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"handled")
    assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"duplicate, skipped")
    assert calls == ["evt-1"]
    assert (await tracker.final_status("msg-1", timeout=1)).id == "msg-1"


@pytest.mark.anyio
async def test_a_handlers_own_cancelled_error_is_a_failure_not_a_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler raising CancelledError by itself was answered "503 receiver is shutting down"
    with nothing logged; it is a failed handler (500, logged, not marked seen)."""
    calls = 0

    async def handler(event: WebhookEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncio.CancelledError

    app = asgi_app(make_verifier(), {"message.finalized": handler})
    body = event_body()
    with caplog.at_level("ERROR", "telnyx_msg.webhooks"):
        assert (await call_asgi(app, body, sign(body)))[:2] == (500, b"handler failed")
    assert "CancelledError without being cancelled" in caplog.text
    assert not app.closed
    assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"handled")
    assert calls == 2


@pytest.mark.anyio
async def test_a_receiver_serves_again_after_a_shutdown_and_startup() -> None:
    """A test client per test (startup, shutdown, startup) left the receiver answering every
    delivery "503 receiver is shutting down" after the first shutdown."""
    recorder = Recorder()
    app = asgi_app(make_verifier(), {"message.finalized": recorder})
    await _lifespan(app)
    assert app.closed
    incoming = [{"type": "lifespan.startup"}]
    sent: list[str] = []
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(math.inf)  # the server runs until shut down
        raise AssertionError

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])
        started.set()

    lifespan = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    )
    try:
        await asyncio.wait_for(started.wait(), 5)
        assert sent == ["lifespan.startup.complete"]
        body = event_body()
        assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"handled")
        assert len(recorder.events) == 1
    finally:
        lifespan.cancel()


class SlowSecondCheck:
    """A replay store whose second ``aseen`` answers only when released, with what it read
    when asked (a slower Redis round trip)."""

    def __init__(self) -> None:
        self.inner = MemoryReplayStore()
        self.release = asyncio.Event()
        self.checks = 0

    async def aseen(self, event_id: str) -> bool:
        self.checks += 1
        seen = await self.inner.aseen(event_id)
        if self.checks == 2:
            await self.release.wait()
        return seen

    async def amark(self, event_id: str, ttl: float) -> None:
        await self.inner.amark(event_id, ttl)

    async def amark_if_new(self, event_id: str, ttl: float) -> bool:
        return await self.inner.amark_if_new(event_id, ttl)


@pytest.mark.anyio
async def test_a_copy_whose_store_check_lags_does_not_run_the_handler_again() -> None:
    """Copy B asked the store before copy A's handler marked the id, and got its answer after
    A had finished: B found neither the mark nor A in flight and ran the handler again (seen
    with a Redis store behind a jittery link). A copy now holds the id during its check."""
    store = SlowSecondCheck()
    recorder = Recorder()
    app = asgi_app(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    first = asyncio.ensure_future(call_asgi(app, body, sign(body)))
    second = asyncio.ensure_future(call_asgi(app, body, sign(body)))
    assert (await first)[:2] == (200, b"handled")
    store.release.set()
    assert (await asyncio.wait_for(second, 5))[0] == 200
    assert recorder.started == 1


@pytest.mark.anyio
async def test_a_redelivery_waits_for_a_stubborn_first_copy_at_most_handler_timeout() -> None:
    """A handler that ignores its cancellation held every redelivery until it ended; a
    redelivery now gets 503 after handler_timeout, and 200 once the first copy succeeded."""
    finish = asyncio.Event()
    calls = 0

    async def stubborn(event: WebhookEvent) -> None:
        nonlocal calls
        calls += 1
        while not finish.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await finish.wait()

    app = asgi_app(make_verifier(), {"message.finalized": stubborn}, handler_timeout=0.2)
    body = event_body()
    assert (await call_asgi(app, body, sign(body)))[0] == 503
    try:
        status, text, _ = await asyncio.wait_for(call_asgi(app, body, sign(body)), 5)
    finally:
        finish.set()  # else the handler outlives the test
    assert (status, text) == (503, b"an earlier delivery of this event is still being handled")
    await asyncio.wait_for(app.drain(), 5)
    assert (await call_asgi(app, body, sign(body)))[:2] == (200, b"duplicate, skipped")
    assert calls == 1


@pytest.mark.anyio
async def test_asgi_refuses_an_unsigned_delivery_before_reading_its_body() -> None:
    """Without the signature headers (or with a stale timestamp) the answer is 401 before the
    body is read: a flood of unsigned near-1 MiB bodies was buffered in full first."""
    app = asgi_app(make_verifier(), {})
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    for headers in ({"content-length": "1000000"}, sign(b"{}", timestamp=NOW - 10_000)):
        await app(http_scope(headers, "POST"), receive, send)
    assert [m["status"] for m in sent if "status" in m] == [401, 401]
    assert reads == 0


@pytest.mark.anyio
async def test_aiohttp_refuses_an_unsigned_delivery_before_reading_its_body() -> None:
    """The aiohttp handler answers an unsigned POST whose body never comes at once."""
    async with serve(aiohttp_handler(make_verifier(), {})) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                b"POST /hooks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                b"Content-Type: application/json\r\n\r\n{"
            )
            status = await asyncio.wait_for(reader.readline(), 5)
        finally:
            writer.close()
            await writer.wait_closed()
    assert status.startswith(b"HTTP/1.1 401")


@pytest.mark.parametrize("size", [None, 0, -1, "1048576", 1.5, True])
def test_a_bad_max_body_size_is_refused_at_construction(size: Any) -> None:
    """max_body_size=None (or a str from the environment) failed every delivery with a
    TypeError; 0 or -1 answered every one 413."""
    with pytest.raises(ConfigurationError, match="max_body_size"):
        asgi_app(make_verifier(), {}, max_body_size=size)


@pytest.mark.anyio
async def test_a_shutdown_waits_for_a_stubborn_handler_at_most_handler_timeout() -> None:
    """A handler that ignores its cancellation kept the ASGI lifespan shutdown (and uvicorn's
    exit) waiting forever; its delivery had been answered 503 at handler_timeout already."""
    finish = asyncio.Event()

    async def stubborn(event: WebhookEvent) -> None:
        while not finish.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await finish.wait()

    app = asgi_app(make_verifier(), {"message.finalized": stubborn}, handler_timeout=0.2)
    body = event_body()
    try:
        assert (await call_asgi(app, body, sign(body)))[0] == 503
        assert app.pending == 1
        await asyncio.wait_for(_lifespan(app), 5)
    finally:
        finish.set()  # else the handler outlives the test
    assert app.closed


class HeldCheck:
    """A replay store whose ``aseen`` answers only once released."""

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


@pytest.mark.anyio
async def test_a_shutdown_during_the_replay_store_check_runs_no_handler() -> None:
    """aclose() while a delivery waits for its replay-store answer: that delivery is answered
    503 (Telnyx redelivers) and its handler never starts after the shutdown returned.
    Guards against receivers.py `if seen or self._closed:` -> `if seen:`."""
    store = HeldCheck()
    recorder = Recorder()
    app = asgi_app(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    delivery = asyncio.ensure_future(call_asgi(app, body, sign(body)))
    await asyncio.wait_for(store.asked.wait(), 2)
    await asyncio.wait_for(app.aclose(), 2)
    store.release.set()
    status, text, _ = await asyncio.wait_for(delivery, 2)
    assert (status, text) == (503, b"receiver is shutting down")
    assert recorder.started == 0
    assert app.pending == 0


@pytest.mark.anyio
async def test_a_closed_receiver_answers_503_before_reading_the_body() -> None:
    """After aclose(), a delivery is refused on its headers alone: 503, body never read.
    Guards against receivers.py _refuse `if self._closed:` -> `if False:`."""
    app = asgi_app(make_verifier(), {"message.finalized": Recorder()})
    await app.aclose()
    body = event_body()
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(http_scope(sign(body), "POST"), receive, send)
    assert sent[0]["status"] == 503
    assert sent[1]["body"] == b"receiver is shutting down"
    assert reads == 0


@pytest.mark.anyio
async def test_aclose_timeout_waits_for_cancelled_handlers_to_unwind() -> None:
    """aclose(timeout) cancels a handler still running after ``timeout`` and then waits for it
    to unwind (its cleanup runs before the shutdown returns).
    Guards against receivers.py aclose `if tasks: await asyncio.wait(...)` removed."""
    entered = asyncio.Event()
    cleaned = False

    async def slow(event: WebhookEvent) -> None:
        nonlocal cleaned
        entered.set()
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)  # e.g. a rollback over the network
            cleaned = True

    app = asgi_app(make_verifier(), {"message.finalized": slow})
    body = event_body()
    delivery = asyncio.ensure_future(call_asgi(app, body, sign(body)))
    await asyncio.wait_for(entered.wait(), 2)
    await asyncio.wait_for(app.aclose(timeout=0.1), 2)
    assert cleaned
    assert app.pending == 0
    assert (await asyncio.wait_for(delivery, 2))[:2] == (503, b"receiver is shutting down")


@pytest.mark.anyio
async def test_startup_does_not_reopen_a_receiver_whose_handler_still_runs() -> None:
    """A shutdown that gave up on a handler ignoring its cancellation leaves it running: a
    startup then keeps the receiver closed (and drain() still waits for that handler), rather
    than losing track of it.
    Guards against startup() reopening on `if self._closed:` alone."""
    finish = asyncio.Event()
    entered = asyncio.Event()

    async def stubborn(event: WebhookEvent) -> None:
        entered.set()
        while not finish.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await finish.wait()

    app = asgi_app(make_verifier(), {"message.finalized": stubborn}, handler_timeout=5)
    body = event_body()
    delivery = asyncio.ensure_future(call_asgi(app, body, sign(body)))
    try:
        await asyncio.wait_for(entered.wait(), 2)
        await asyncio.wait_for(app.aclose(timeout=0.05), 2)
        assert app.pending == 1
        await app.startup()
        assert app.closed
        drained = asyncio.ensure_future(app.drain())
        await asyncio.sleep(0.05)
        assert not drained.done()
    finally:
        finish.set()
    await asyncio.wait_for(drained, 2)
    await asyncio.wait_for(delivery, 2)
    await app.startup()
    assert not app.closed


async def _posted(app: AsgiWebhookApp, body: bytes) -> tuple[int | None, bytes]:
    """One signed POST through the ASGI app: (status, response body)."""
    status, text, _ = await call_asgi(app, body, sign(body))
    return status, text


@pytest.mark.anyio
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
    first = asyncio.ensure_future(_posted(app, body))
    await asyncio.wait_for(store.asked.wait(), 2)
    second = asyncio.ensure_future(_posted(app, body))
    await asyncio.sleep(0.05)  # the second copy is now waiting for the first one's outcome
    store.release.set()
    assert await asyncio.wait_for(first, 2) == (200, b"duplicate, skipped")
    status, _ = await asyncio.wait_for(second, 1.0)
    assert status == 200
    assert calls == []
    await app.aclose()


@pytest.mark.anyio
async def test_every_copy_is_refused_while_the_queue_cannot_store_the_event() -> None:
    """With queue= and a replay store, a delivery the queue could not store is answered 503,
    and so is its redelivery: the event is not remembered as seen on arrival, so a redelivery
    is never acknowledged 200 "duplicate" while nothing holds the event (it would be lost)."""
    verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=MemoryReplayStore())
    queue = RedisWebhookQueue(unused_url(), timeout=0.5)
    app = asgi_app(verifier, {}, queue=queue)
    body = event_body(event_id="evt-queued")
    try:
        first = await asyncio.wait_for(_posted(app, body), 5)
        again = await asyncio.wait_for(_posted(app, body), 5)
    finally:
        await app.aclose()
        await queue.aclose()
    assert first == (503, b"webhook queue unavailable")
    assert again == (503, b"webhook queue unavailable")
    assert not await verifier.replay_store.aseen("evt-queued")  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_the_default_handler_timeout_lets_a_handler_run_a_few_seconds() -> None:
    """Without handler_timeout, a handler taking 2.5 s (a slow database write) is not
    cancelled: the receiver waits up to its documented 10 s default and answers 200."""
    done: list[str] = []

    async def slow(event: WebhookEvent) -> None:
        await asyncio.sleep(2.5)
        done.append(str(event.id))

    app = asgi_app(WebhookVerifier(PUBLIC, clock=lambda: NOW), {"message.finalized": slow})
    assert app.handler_timeout == 10.0
    assert await asyncio.wait_for(_posted(app, event_body(event_id="evt-slow")), 8) == (
        200,
        b"handled",
    )
    assert done == ["evt-slow"]
    await app.aclose()


Injected = Callable[[WebhookEvent, list[str]], Awaitable[None]]


def with_log(log: list[str]) -> Callable[[Injected], Callable[[WebhookEvent], Awaitable[None]]]:
    """A dependency-injecting decorator, as apps write them: the wrapper takes the event and
    passes its own ``log`` on; ``functools.wraps`` keeps the name, docstring (and
    ``__wrapped__``) of the function it wraps."""

    def decorate(fn: Injected) -> Callable[[WebhookEvent], Awaitable[None]]:
        @functools.wraps(fn)
        async def wrapper(event: WebhookEvent) -> None:
            await fn(event, log)

        return wrapper

    return decorate


@pytest.mark.anyio
async def test_a_decorated_handler_that_injects_an_argument_is_accepted_and_runs() -> None:
    """``aiohttp_handler(verifier, {"message.finalized": on_finalized})`` where
    ``on_finalized`` is a decorated handler (the decorator supplies a second argument) builds
    the receiver, and a signed delivery reaches the handler (200 "handled"). The up-front
    check read the signature of the wrapped function (``inspect.signature`` follows
    ``__wrapped__``) and refused a handler that works: ConfigurationError "must take one
    argument, the event (missing a required argument: 'log')"."""
    log: list[str] = []

    @with_log(log)
    async def on_finalized(event: WebhookEvent, log: list[str]) -> None:
        log.append(str(event.id))

    handler = aiohttp_handler(make_verifier(), {"message.finalized": on_finalized})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (200, "handled")
        await handler.drain()
    assert log == ["evt-1"]


@pytest.mark.anyio
async def test_a_link_click_whose_time_clicked_cannot_be_read_reaches_its_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Telnyx's schema requires none of an event's fields, and a correctly signed event
    answered 400 is dropped by Telnyx after its retries; so a message event whose payload,
    occurred_at or meta this SDK cannot read now reaches its handler (the raw mapping / None,
    logged at WARNING). A link click got none of that: one whose ``time_clicked`` is not the
    ISO 8601 this SDK reads (or whose ``to`` is not a string) is still answered 400 "not a
    Telnyx webhook event", and the click is lost. It must reach the ``message.link_click``
    handler, its unreadable part logged."""
    click = {
        "record_type": "link_clicked",
        "message_id": "7ee4241c-f127-47e5-9c34-3aac291f8058",
        "to": "+18445550001",
        "url": "https://example.com/offer",
        "time_clicked": "2019-04-01 14:45:45.450 UTC",
    }
    body = json.dumps({"data": click}).encode()
    recorder = Recorder()
    app = asgi_app(make_verifier(), {"message.link_click": recorder})
    with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
        status, answer, _ = await call_asgi(app, body, sign(body))
    await app.aclose()
    assert status == 200, answer
    [event] = recorder.events
    assert event.event_type == WebhookEventType.MESSAGE_LINK_CLICK
    assert event.record_type == "link_clicked"
    assert event.to_dict() == click  # a click's data object, as for every link click
    assert any("time_clicked" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


@pytest.mark.anyio
async def test_an_unsigned_probe_does_not_hide_why_telnyx_deliveries_are_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The receiver is configured with the wrong public key, so every delivery Telnyx signs is
    refused 401 ("signature does not match"). The warning that is logged once a minute exists
    to say exactly that. But the minute's one warning goes to whatever 401 comes first: an
    unsigned POST (a scanner, an uptime probe, someone trying the URL with curl) took it, the
    log said only "missing required header telnyx-signature-ed25519" (with the advice to check
    the public key or the clock), and the refusals of every genuine delivery in that minute
    were not logged at all. A probe each minute hides the real cause for good, while Telnyx
    drops the events after its retries."""
    wrong_key = base64.b64encode(
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    recorder = Recorder()
    app = asgi_app(WebhookVerifier(wrong_key, clock=lambda: NOW), {"message.finalized": recorder})
    body = event_body()
    with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
        probe, _, _ = await call_asgi(app, b"{}", {"Content-Type": "application/json"})
        genuine = [(await call_asgi(app, body, sign(body)))[0] for _ in range(3)]
    await app.aclose()
    assert probe == 401
    assert genuine == [401] * 3
    assert recorder.events == []
    warnings = [r.getMessage() for r in caplog.records if r.name == "telnyx_msg.webhooks"]
    assert any("signature does not match" in w for w in warnings), warnings
    assert len(warnings) <= 2, warnings  # still no flood


# --- found by a mutation round: handlers, redeliveries, the replay store, shutdown ----------


@pytest.mark.anyio
async def test_a_builtin_method_without_a_signature_is_accepted_as_a_handler() -> None:
    """Kills the mutants of ``check_handler`` that refuse a callable whose signature cannot
    be read (``except (TypeError, ValueError): return`` turned into a ConfigurationError, or
    narrowed to ``except TypeError`` so the ValueError escapes). ``recent.append`` of a
    ``collections.deque`` (keep the last events for a debug page) is a valid one-argument
    handler, but ``inspect.signature`` cannot read it (ValueError on CPython 3.10-3.12): the
    receiver must still be built and run it, not refuse it at construction."""
    recent: collections.deque[WebhookEvent] = collections.deque(maxlen=10)
    handler = aiohttp_handler(make_verifier(), {}, default=recent.append)
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (200, "handled")
    assert [event.id for event in recent] == ["evt-1"]


@pytest.mark.anyio
async def test_a_plain_handler_returning_an_awaitable_that_is_no_coroutine_is_awaited() -> None:
    """Kills the mutant of ``call_handler`` that awaits only coroutines
    (``inspect.iscoroutine`` for ``inspect.isawaitable``). A plain function that hands the
    event to a thread with ``loop.run_in_executor`` returns an ``asyncio.Future``: the answer
    must wait for it, and its failure must be a 500 with the event not marked seen (Telnyx
    redelivers it). Not awaited, the delivery was answered 200 while the work still ran, and a
    failure of that work lost the event."""
    store = MemoryReplayStore()
    attempts: list[str | None] = []

    def save(event: WebhookEvent) -> None:  # blocking work, in a thread
        attempts.append(event.id)
        if len(attempts) == 1:
            raise RuntimeError("database unavailable (on purpose)")

    def handle(event: WebhookEvent) -> Awaitable[None]:
        return asyncio.get_running_loop().run_in_executor(None, save, event)

    handler = aiohttp_handler(make_verifier(store), {"message.finalized": handle})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (500, "handler failed")
        assert not store.seen("evt-1")
        assert await post(session, url, body, sign(body)) == (200, "handled")
        assert store.seen("evt-1")
    assert attempts == ["evt-1", "evt-1"]


@pytest.mark.anyio
async def test_two_redeliveries_waiting_on_a_failed_first_copy_run_the_handler_once() -> None:
    """Kills the mutant of ``WebhookReceiver._dispatch`` that checks for a copy in flight
    once (``if``) instead of until none is (``while``). Telnyx retries a slow delivery, so two
    redeliveries can wait on the first copy; when its handler fails, one of them runs the
    handler and the other must wait for *that* run and be answered 200 without running it:
    checked once, both ran the handler at the same time, and the event was handled twice."""
    store = MemoryReplayStore()
    recorder = Recorder(gated=True, failures=1)
    handler = aiohttp_handler(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        first = asyncio.ensure_future(post(session, url, body, sign(body)))
        await _started(recorder)
        copies = [asyncio.ensure_future(post(session, url, body, sign(body))) for _ in range(2)]
        await asyncio.sleep(0.1)
        assert not any(copy.done() for copy in copies)
        recorder.gate.set()
        assert await asyncio.wait_for(first, 5) == (500, "handler failed")
        answers = sorted(await asyncio.wait_for(asyncio.gather(*copies), 5))
    assert answers == [(200, "duplicate, handled by an earlier delivery"), (200, "handled")]
    assert recorder.started == 2
    assert len(recorder.events) == 1
    assert store.seen("evt-1")


class StoreDownOnce(MemoryReplayStore):
    """A replay store whose first check fails (a Redis blip), then answers."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    async def aseen(self, event_id: str) -> bool:
        self.checks += 1
        if self.checks == 1:
            raise ConnectionError("store down (on purpose)")
        return await super().aseen(event_id)


@pytest.mark.anyio
async def test_a_failed_replay_store_check_does_not_hold_the_event_for_its_redelivery() -> None:
    """Kills the mutant of ``WebhookReceiver._dispatch`` that, when the replay-store check
    raises, answers 503 without releasing the event id it holds (``_settle`` dropped). The
    delivery is answered 503 so that Telnyx redelivers it once the store is back; that
    redelivery must run the handler (200), not wait ``handler_timeout`` for a copy that ran
    nothing and be answered 503 "still being handled", on every retry, until Telnyx drops the
    event."""
    store = StoreDownOnce()
    recorder = Recorder()
    handler = aiohttp_handler(
        make_verifier(store), {"message.finalized": recorder}, handler_timeout=2
    )
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        assert await post(session, url, body, sign(body)) == (503, "replay store unavailable")
        answer = await asyncio.wait_for(post(session, url, body, sign(body)), 1.5)
        assert answer == (200, "handled")
    assert len(recorder.events) == 1
    assert store.seen("evt-1")


@pytest.mark.anyio
async def test_a_link_click_whose_body_arrives_during_shutdown_runs_no_handler() -> None:
    """Kills the mutant of ``WebhookReceiver._answer`` without its ``self._closed`` check.
    The receiver was open when the request's headers arrived and was shut down (``aclose``
    returned) while its body was still being read. A link click has no event id, so no
    replay-store check catches the shutdown later: without the check its handler started
    after the shutdown had returned (a handler using resources already closed) and the
    delivery was answered 200. It must be answered 503 (Telnyx redelivers) and run nothing."""
    recorder = Recorder()
    app = asgi_app(make_verifier(), {"message.link_click": recorder})
    incoming = [{"type": "http.request", "body": LINK_CLICK, "more_body": False}]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            await app.aclose()  # the shutdown, while the body is on its way
            return incoming.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(http_scope(sign(LINK_CLICK)), receive, send)
    assert sent[0]["status"] == 503
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"receiver is shutting down"
    await asyncio.sleep(0.05)
    assert recorder.started == 0
    assert app.pending == 0


@pytest.mark.anyio
async def test_a_delivery_cancelled_during_its_replay_store_check_stays_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Kills the mutant of ``WebhookReceiver._dispatch`` that treats every exception of the
    replay-store check alike (the ``if not isinstance(exc, Exception): raise`` dropped). A
    server cancels a request whose client hung up, or on shutdown: cancelled while it waits
    for the store, the delivery must end cancelled, release its event id, and log nothing.
    Swallowed, the cancellation turned into a 503 sent to a client that was gone, the server
    waited on a request that would not stop, and an ERROR "replay store check failed" blamed
    a store that had not failed."""
    store = HeldCheck()
    recorder = Recorder()
    app = asgi_app(make_verifier(store), {"message.finalized": recorder})
    body = event_body()
    with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
        delivery = asyncio.ensure_future(call_asgi(app, body, sign(body)))
        await asyncio.wait_for(store.asked.wait(), 2)
        delivery.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(delivery, 2)
    assert [r.getMessage() for r in caplog.records if r.name == "telnyx_msg.webhooks"] == []
    assert recorder.started == 0
    store.release.set()
    assert (await asyncio.wait_for(call_asgi(app, body, sign(body)), 2))[:2] == (200, b"handled")
    await app.aclose()
    assert len(recorder.events) == 1


class HeldMarkStore(MemoryReplayStore):
    """A replay store whose write (the mark after a handled event) waits until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def amark(self, event_id: str, ttl: float) -> None:
        await self.release.wait()
        await super().amark(event_id, ttl)


@pytest.mark.anyio
async def test_a_redelivery_during_a_slow_mark_is_a_duplicate_at_once() -> None:
    """Kills the mutant of ``WebhookReceiver._start`` without the callback that settles the
    outcome once the handler returned. The handler returned (the delivery was answered 200),
    but the replay-store write after it is slow: a redelivery meanwhile is handled already and
    must be answered 200 at once. Without it, the redelivery waited for the write, up to
    ``handler_timeout``, and was answered 503 "still being handled" for an event that was."""
    store = HeldMarkStore()
    recorder = Recorder()
    handler = aiohttp_handler(
        make_verifier(store), {"message.finalized": recorder}, handler_timeout=0.3
    )
    body = event_body()
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        try:
            assert await post(session, url, body, sign(body)) == (200, "handled")
            assert await post(session, url, body, sign(body)) == (
                200,
                "duplicate, handled by an earlier delivery",
            )
        finally:
            store.release.set()
        await asyncio.wait_for(handler.drain(), 5)
    assert store.seen("evt-1")
    assert recorder.started == 1


@pytest.mark.anyio
async def test_a_handler_that_fails_after_a_hang_up_is_not_logged_as_overrunning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Kills the mutant of ``WebhookReceiver._start`` that leaves the ``handler_timeout``
    timer of a hung-up delivery running after its handler finished. The client hung up
    (aiohttp cancels the request), then the handler failed at once: the failure is logged, and
    nothing else. With the timer left running, ``handler_timeout`` later an ERROR said the
    handler "exceeded handler_timeout" and was cancelled: a wrong reason in the log of an
    event Telnyx will redeliver."""
    recorder = Recorder(gated=True, failures=1)
    handler = aiohttp_handler(make_verifier(), {"message.finalized": recorder}, handler_timeout=0.3)
    body = event_body()
    async with (
        serve(handler, handler_cancellation=True) as url,
        aiohttp.ClientSession() as session,
    ):
        with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
            hang_up = aiohttp.ClientTimeout(total=0.1)
            with pytest.raises(asyncio.TimeoutError):
                await post(session, url, body, sign(body), timeout=hang_up)
            await asyncio.sleep(0.05)  # the server sees the hang-up
            assert handler.pending == 1
            recorder.gate.set()
            await asyncio.wait_for(handler.drain(), 5)
            await asyncio.sleep(0.5)  # past handler_timeout
        assert await post(session, url, body, sign(body)) == (200, "handled")
    logged = [r.getMessage() for r in caplog.records if r.name == "telnyx_msg.webhooks"]
    assert len(logged) == 1, logged
    assert "handler failed" in logged[0]
    assert len(recorder.events) == 1


class PrefixedKeyStore:
    """A replay store of the user's own, keyed like ``RedisReplayStore``
    (``key_prefix + event_id``): it takes the ``str`` ids the protocol promises."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def aseen(self, event_id: str) -> bool:
        return "wh:" + event_id in self.keys

    async def amark(self, event_id: str, ttl: float) -> None:
        self.keys.add("wh:" + event_id)

    async def amark_if_new(self, event_id: str, ttl: float) -> bool:
        new = "wh:" + event_id not in self.keys
        self.keys.add("wh:" + event_id)
        return new


@pytest.mark.anyio
async def test_a_link_click_never_reaches_the_replay_store() -> None:
    """Kills the mutant of ``WebhookReceiver._dispatch`` that sends an event without an id
    (a link click) through the replay-store check like the others. A store keyed by
    ``key_prefix + event_id``, as ``RedisReplayStore`` is, raised TypeError on the ``None`` id:
    every link click was answered 503 "replay store unavailable" until Telnyx gave up on it.
    Link clicks are never deduplicated: each one runs its handler (200 "handled")."""
    store = PrefixedKeyStore()
    recorder = Recorder()
    handler = aiohttp_handler(make_verifier(store), {"message.link_click": recorder})
    async with serve(handler) as url, aiohttp.ClientSession() as session:
        for _ in range(2):
            assert await post(session, url, LINK_CLICK, sign(LINK_CLICK)) == (200, "handled")
    assert len(recorder.events) == 2
    assert store.keys == set()
