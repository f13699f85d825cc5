"""RedisWebhookQueue against a real redis-server: receivers with ``queue=``, workers, the CLI."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio
import redis.exceptions
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import telnyx_msg
from telnyx_msg import RedisWebhookQueue, WebhookQueueUnavailableError
from telnyx_msg._convert import structure_event
from telnyx_msg.errors import ConfigurationError, TelnyxError
from telnyx_msg.models import Message, WebhookEvent
from telnyx_msg.receivers import AiohttpWebhookHandler, AsgiWebhookApp, aiohttp_handler, asgi_app
from telnyx_msg.webhooks import MemoryReplayStore, RedisReplayStore, WebhookVerifier
from tests.redis_proc import RedisProcess, unused_url

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

REPO = Path(__file__).resolve().parent.parent
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


def event_body(event_id: str = "evt-1", event_type: str = "message.finalized") -> bytes:
    return json.dumps(
        {
            "data": {
                "record_type": "event",
                "id": event_id,
                "event_type": event_type,
                "occurred_at": "2024-01-01T00:00:00Z",
                "payload": {
                    "id": f"msg-{event_id}",
                    "direction": "outbound",
                    "to": [{"phone_number": "+15550001111", "status": "delivered"}],
                },
            },
            "meta": {"attempt": 1, "delivered_to": "https://example.com/hooks"},
        }
    ).encode()


def verifier() -> WebhookVerifier:
    return WebhookVerifier(PUBLIC, clock=lambda: NOW)


def parsed(event_id: str) -> WebhookEvent:
    body = event_body(event_id)
    return verifier().unwrap(body, sign(body))


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[RedisWebhookQueue]:
    """A queue on a stream of its own, with short timings."""
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", claim_after=0.3, max_attempts=3, block=0.2
    )
    yield q
    await q.aclose()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server this test may kill or freeze."""
    proc = RedisProcess(tmp_path)
    yield proc
    proc.close()


async def raw(q: RedisWebhookQueue) -> Any:
    return q._redis


async def take_over(
    q: RedisWebhookQueue, entry_id: bytes, lease: str, px: int | None = None
) -> None:
    """What worker b's takeover does: the entry and the event's lease become b's."""
    r = await raw(q)
    await r.xclaim(q.stream, q.group, "b", 0, [entry_id], justid=True)
    await r.set(lease, b"b " + entry_id, px=px)


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Await ``predicate()`` (sync or async) until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def serve(handler: AiohttpWebhookHandler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hooks", handler)
    app.on_cleanup.append(handler.on_cleanup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    finally:
        await runner.cleanup()


class Recorder:
    """An async handler that records events, can be held, and can fail a number of times."""

    def __init__(self, *, failures: int = 0) -> None:
        self.events: list[WebhookEvent] = []
        self.calls = 0
        self.failures = failures
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, event: WebhookEvent) -> None:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ValueError(f"boom {self.calls}")
        self.events.append(event)


@asynccontextmanager
async def running(
    q: RedisWebhookQueue, handler: Any, consumer: str | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Run a worker in a task; stop it (bounded) on exit."""
    task = asyncio.get_running_loop().create_task(
        q.run({"message.finalized": handler}, consumer=consumer)
    )
    try:
        yield task
    finally:
        q.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)


# --- receivers ---------------------------------------------------------------------------------


async def test_receiver_appends_before_answering_2xx(queue: RedisWebhookQueue) -> None:
    """The 200 comes after XADD: the stream already holds the raw body when the answer arrives."""
    handler = aiohttp_handler(verifier(), {}, queue=queue)
    body = event_body("evt-q1")
    async with (
        serve(handler) as url,
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=sign(body)) as response,
    ):
        assert (response.status, await response.text()) == (200, "queued")
        entries = await (await raw(queue)).xrange(queue.stream)
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields[b"body"] == body
    assert fields[b"event_id"] == b"evt-q1"
    assert fields[b"event_type"] == b"message.finalized"


async def test_receiver_rejects_bad_signature_without_queueing(queue: RedisWebhookQueue) -> None:
    """A forged delivery gets 401 and nothing reaches the stream."""
    app = asgi_app(verifier(), {}, queue=queue)
    body = event_body()
    status, _ = await call_asgi(app, body, sign(body + b" "))
    assert status == 401
    assert await (await raw(queue)).exists(queue.stream) == 0


async def call_asgi(app: Any, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/hooks",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], sent[1]["body"]


async def test_asgi_receiver_queues(queue: RedisWebhookQueue) -> None:
    """The ASGI app with queue= answers 200 "queued" and the entry is in the stream."""
    app = asgi_app(verifier(), {}, queue=queue)
    body = event_body("evt-asgi")
    assert await call_asgi(app, body, sign(body)) == (200, b"queued")
    assert await (await raw(queue)).xlen(queue.stream) == 1


async def test_receiver_answers_503_when_redis_is_down() -> None:
    """Nothing listens on the Redis port: 503 (Telnyx retries) within about a second."""
    q = RedisWebhookQueue(unused_url(), timeout=0.5)
    try:
        app = asgi_app(verifier(), {}, queue=q)
        body = event_body()
        started = time.monotonic()
        status, text = await call_asgi(app, body, sign(body))
        assert (status, text) == (503, b"webhook queue unavailable")
        assert time.monotonic() - started < 1.5
    finally:
        await q.aclose()


async def test_receiver_answers_503_quickly_when_redis_is_frozen(
    redis_process: RedisProcess,
) -> None:
    """A SIGSTOPped Redis (accepts, never answers): 503 within the queue's 1 s timeout."""
    q = RedisWebhookQueue(redis_process.url, stream=f"test:{uuid.uuid4().hex}")
    try:
        app = asgi_app(verifier(), {}, queue=q)
        body = event_body()
        assert await call_asgi(app, body, sign(body)) == (200, b"queued")
        redis_process.freeze()
        started = time.monotonic()
        assert (await call_asgi(app, body, sign(body)))[0] == 503
        assert time.monotonic() - started < 1.6
        redis_process.thaw()
    finally:
        redis_process.thaw()
        await q.aclose()


async def test_queue_with_handlers_is_a_configuration_error(queue: RedisWebhookQueue) -> None:
    """With queue=, handlers belong to the workers: passing some is refused."""
    with pytest.raises(ConfigurationError, match="workers run the handlers"):
        aiohttp_handler(verifier(), {"message.finalized": Recorder()}, queue=queue)


def test_enqueue_error_is_a_telnyx_error() -> None:
    """WebhookQueueUnavailableError is a TelnyxError (callers catch one base class)."""
    assert issubclass(WebhookQueueUnavailableError, TelnyxError)


def test_bad_settings_are_configuration_errors() -> None:
    """Nonsense timings and counts fail at construction."""
    with pytest.raises(ConfigurationError):
        RedisWebhookQueue("redis://127.0.0.1:1/0", claim_after=0)
    with pytest.raises(ConfigurationError):
        RedisWebhookQueue("redis://127.0.0.1:1/0", max_attempts=0)
    with pytest.raises(ConfigurationError):
        RedisWebhookQueue(None)


# --- workers ----------------------------------------------------------------------------------


async def test_worker_acks_only_after_the_handler_succeeded(queue: RedisWebhookQueue) -> None:
    """While the handler runs the entry is pending; after it returns it is acked and deleted."""
    recorder = Recorder()
    recorder.gate.clear()
    await queue.enqueue(event_body("evt-a"), parsed("evt-a"))
    async with running(queue, recorder):
        await asyncio.wait_for(recorder.entered.wait(), 10)
        assert await queue.pending() == 1
        assert await (await raw(queue)).xlen(queue.stream) == 1
        recorder.gate.set()
        await wait_until(lambda: recorder.events)
        await wait_until(lambda: _zero_pending(queue))
    assert await (await raw(queue)).xlen(queue.stream) == 0
    assert [e.id for e in recorder.events] == ["evt-a"]
    assert isinstance(recorder.events[0].payload, Message)


async def _zero_pending(queue: RedisWebhookQueue) -> bool:
    return await queue.pending() == 0


async def test_failing_handler_is_retried_after_claim_after(queue: RedisWebhookQueue) -> None:
    """A handler that fails once runs again (after claim_after) and the entry is then acked."""
    recorder = Recorder(failures=1)
    await queue.enqueue(event_body("evt-r"), parsed("evt-r"))
    started = time.monotonic()
    async with running(queue, recorder):
        await wait_until(lambda: recorder.events)
        await wait_until(lambda: _zero_pending(queue))
    assert recorder.calls == 2
    assert time.monotonic() - started >= queue.claim_after
    assert await queue.dead_letters() == []


async def test_handler_failing_max_attempts_goes_to_dead_letters(queue: RedisWebhookQueue) -> None:
    """After max_attempts failures the entry moves to stream:dead with the reason."""
    recorder = Recorder(failures=100)
    body = event_body("evt-dead")
    await queue.enqueue(body, parsed("evt-dead"))
    async with running(queue, recorder):
        await wait_until(queue.dead_letters)
    assert recorder.calls == queue.max_attempts
    [letter] = await queue.dead_letters()
    assert letter["reason"] == "handler failed: ValueError('boom 3')"
    assert letter["attempts"] == "3"
    assert letter["event_id"] == "evt-dead"
    assert letter["body"] == body.decode()
    assert await queue.pending() == 0
    assert await (await raw(queue)).xlen(queue.stream) == 0


async def test_consumers_of_killed_workers_are_removed_by_the_next_start(redis_url: str) -> None:
    """Workers killed with -9 (OOM kills, a node lost) cannot leave the consumer group, and each
    start has a new default name: the group piled up a consumer per kill, for ever. A worker
    that starts removes the consumers that hold no pending entry and have not read for a while;
    one that holds an entry stays (deleting it would drop that entry)."""
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", claim_after=30, block=0.2, timeout=0.5
    )
    r = await raw(q)
    try:
        await q.enqueue(event_body("evt-held"), parsed("evt-held"))
        for dead in ("dead-1", "dead-2"):
            await r.xgroup_createconsumer(q.stream, q.group, dead)
        await r.xreadgroup(q.group, "busy", {q.stream: ">"}, count=1)  # killed holding it
        await asyncio.sleep(2 * (q.block + q.timeout) + 0.2)

        async def consumers() -> set[str]:
            return {c["name"].decode() for c in await r.xinfo_consumers(q.stream, q.group)}

        assert await consumers() == {"dead-1", "dead-2", "busy"}
        async with running(q, Recorder(), consumer="live"):
            await wait_until(lambda: _without(consumers, "dead-1", "dead-2"))
            assert await consumers() == {"busy", "live"}
        assert await q.pending() == 1  # busy's entry, for a takeover after claim_after
    finally:
        await q.aclose()


async def _without(consumers: Any, *names: str) -> bool:
    return not set(names) & await consumers()


async def test_a_dead_letter_key_of_another_type_loses_no_entry(queue: RedisWebhookQueue) -> None:
    """The dead-letter key holds another kind of data (a string left by something else): the
    failing entry stays in the stream (the dead-lettering acknowledges and deletes it, then
    copies it: the copy's refusal came after the deletion, and the event was gone with no dead
    letter), and once the key is freed it is dead-lettered."""
    r = await raw(queue)
    await r.set(queue.dead_stream, "not a stream")
    recorder = Recorder(failures=100)
    await queue.enqueue(event_body("evt-wt"), parsed("evt-wt"))
    async with running(queue, recorder):
        await wait_until(lambda: recorder.calls >= queue.max_attempts)
        await asyncio.sleep(4 * queue.claim_after)  # dead-lettering tried and refused
        assert await r.xlen(queue.stream) == 1
        await r.delete(queue.dead_stream)
        await wait_until(queue.dead_letters)
    [letter] = await queue.dead_letters()
    assert letter["event_id"] == "evt-wt"
    assert await r.xlen(queue.stream) == 0


async def test_stuck_handler_is_cancelled_after_handler_timeout(redis_url: str) -> None:
    """A handler over handler_timeout is cancelled and counts as a failed attempt."""
    q = RedisWebhookQueue(
        redis_url,
        stream=f"test:{uuid.uuid4().hex}",
        claim_after=0.3,
        max_attempts=2,
        block=0.2,
        handler_timeout=0.2,
    )
    cancelled = 0

    async def stuck(event: WebhookEvent) -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    try:
        await q.enqueue(event_body("evt-stuck"), parsed("evt-stuck"))
        async with running(q, stuck):
            await wait_until(q.dead_letters)
        [letter] = await q.dead_letters()
        assert letter["reason"] == (
            "handler failed: TimeoutError('handler exceeded handler_timeout=0.2 s')"
        )
        assert cancelled == 2
    finally:
        await q.aclose()


async def test_handlers_own_timeout_is_not_reported_as_the_limit(redis_url: str) -> None:
    """A handler whose own call timed out fails with that error, not "exceeded handler_timeout".

    Both are TimeoutError; the dead letter said the handler had run too long, sending its
    reader to raise handler_timeout instead of fixing the call.
    """
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", max_attempts=1, block=0.2, handler_timeout=5
    )

    async def upstream_times_out(event: WebhookEvent) -> None:
        raise TimeoutError("CRM API did not answer in 1 s")

    try:
        await q.enqueue(event_body("evt-own-timeout"), parsed("evt-own-timeout"))
        async with running(q, upstream_times_out):
            await wait_until(q.dead_letters)
        [letter] = await q.dead_letters()
        assert letter["reason"] == "handler failed: TimeoutError('CRM API did not answer in 1 s')"
    finally:
        await q.aclose()


async def test_a_handlers_own_cancelled_error_fails_the_attempt_not_the_worker(
    queue: RedisWebhookQueue, caplog: pytest.LogCaptureFixture
) -> None:
    """A CancelledError the handler raises (an operation it awaited was cancelled) ended
    ``run`` silently, and the events behind it were never handled; it is one failed attempt."""
    handled: list[str | None] = []

    async def handler(event: WebhookEvent) -> None:
        if event.id == "evt-bad" and "evt-bad" not in handled:
            handled.append("evt-bad")
            raise asyncio.CancelledError  # e.g. a gather whose child was cancelled
        handled.append(event.id)

    for event_id in ("evt-bad", "evt-good"):
        await queue.enqueue(event_body(event_id), parsed(event_id))
    with caplog.at_level(logging.ERROR, "telnyx_msg.webhooks"):
        async with running(queue, handler) as task:
            await wait_until(lambda: handled.count("evt-bad") == 2 and "evt-good" in handled)
            await wait_until(lambda: _zero_pending(queue))
            assert not task.done()
    assert "CancelledError without being cancelled" in caplog.text
    assert await queue.dead_letters() == []


async def test_a_plain_function_handler_runs_once_and_is_acknowledged(
    queue: RedisWebhookQueue,
) -> None:
    """``queue.run`` with a plain function (``DeliveryTracker.record``): it ran, then awaiting
    its None failed the attempt, so it ran max_attempts times and was dead-lettered."""
    tracker = telnyx_msg.DeliveryTracker()
    calls: list[str | None] = []

    def record(event: WebhookEvent) -> None:
        calls.append(event.id)
        tracker.record(event)

    await queue.enqueue(event_body("evt-plain"), parsed("evt-plain"))
    async with running(queue, record):
        await wait_until(lambda: calls)
        await wait_until(lambda: _zero_pending(queue))
    assert calls == ["evt-plain"]
    assert await queue.dead_letters() == []
    assert (await tracker.final_status("msg-evt-plain", timeout=1)).id == "msg-evt-plain"


async def test_unparseable_entry_goes_to_dead_letters(queue: RedisWebhookQueue) -> None:
    """An entry whose body is not a webhook event is dead-lettered without running handlers."""
    recorder = Recorder()
    await queue.enqueue(event_body("evt-ok"), parsed("evt-ok"))  # creates the group
    await (await raw(queue)).xadd(queue.stream, {"body": b"not json", "event_id": b"x"})
    async with running(queue, recorder):
        await wait_until(queue.dead_letters)
        await wait_until(lambda: recorder.events)
    [letter] = await queue.dead_letters()
    assert letter["reason"].startswith("not a webhook event:")
    assert [e.id for e in recorder.events] == ["evt-ok"]


async def test_duplicate_event_is_handled_once(queue: RedisWebhookQueue) -> None:
    """Two entries of one event id (a redelivery) run the handler once; both are acked."""
    recorder = Recorder()
    for _ in range(2):
        await queue.enqueue(event_body("evt-dup"), parsed("evt-dup"))
    await queue.enqueue(event_body("evt-last"), parsed("evt-last"))
    async with running(queue, recorder):
        await wait_until(lambda: len(recorder.events) == 2)
        await wait_until(lambda: _zero_pending(queue))
    assert [e.id for e in recorder.events] == ["evt-dup", "evt-last"]
    assert await (await raw(queue)).xlen(queue.stream) == 0


async def test_link_click_without_id_is_handled(queue: RedisWebhookQueue) -> None:
    """A link click (no event id on the wire) goes through the queue to the default handler."""
    body = json.dumps(
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
    app = asgi_app(verifier(), {}, queue=queue)
    assert await call_asgi(app, body, sign(body)) == (200, b"queued")
    recorder = Recorder()
    task = asyncio.get_running_loop().create_task(queue.run({}, default=recorder))
    try:
        await wait_until(lambda: recorder.events)
        await wait_until(lambda: _zero_pending(queue))
    finally:
        queue.stop()
        await asyncio.wait_for(task, 10)
    [clicked] = recorder.events
    assert (clicked.id, clicked.event_type) == (None, "message.link_click")


async def test_stop_finishes_the_handler_in_flight(queue: RedisWebhookQueue) -> None:
    """stop() during a handler: run returns after it, and its entry is acknowledged."""
    recorder = Recorder()
    recorder.gate.clear()
    await queue.enqueue(event_body("evt-s"), parsed("evt-s"))
    task = asyncio.get_running_loop().create_task(queue.run({}, default=recorder))
    await asyncio.wait_for(recorder.entered.wait(), 10)
    queue.stop()
    await asyncio.sleep(0.1)
    assert not task.done()
    recorder.gate.set()
    await asyncio.wait_for(task, 10)
    assert [e.id for e in recorder.events] == ["evt-s"]
    assert await queue.pending() == 0


async def test_cancelled_worker_leaves_its_entry_for_another(queue: RedisWebhookQueue) -> None:
    """Cancelling run mid-handler never acks: another worker takes the entry over."""
    first = Recorder()
    first.gate.clear()
    await queue.enqueue(event_body("evt-c"), parsed("evt-c"))
    task = asyncio.get_running_loop().create_task(queue.run({}, default=first, consumer="one"))
    await asyncio.wait_for(first.entered.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await queue.pending() == 1
    second = Recorder()
    async with running(queue, second, consumer="two"):
        await wait_until(lambda: second.events)
        await wait_until(lambda: _zero_pending(queue))
    assert first.events == []
    assert [e.id for e in second.events] == ["evt-c"]


async def test_all_entries_of_a_dead_consumer_are_taken_over(queue: RedisWebhookQueue) -> None:
    """A consumer that read 40 entries and died: a worker takes every one of them over."""
    ids = [f"evt-ghost-{i}" for i in range(40)]
    for event_id in ids:
        await queue.enqueue(event_body(event_id), parsed(event_id))
    redis = await raw(queue)
    read = await redis.xreadgroup(queue.group, "ghost", {queue.stream: ">"}, count=40)
    assert len(read[0][1]) == 40
    recorder = Recorder()
    async with running(queue, recorder):
        await wait_until(lambda: len(recorder.events) == 40, timeout=20)
        await wait_until(lambda: _zero_pending(queue))
    assert sorted(e.id or "" for e in recorder.events) == sorted(ids)


async def test_long_handler_is_not_taken_over(queue: RedisWebhookQueue) -> None:
    """A handler running for several claim_after periods keeps its entry (heartbeat)."""
    slow = Recorder()
    slow.gate.clear()
    other = Recorder()
    await queue.enqueue(event_body("evt-long"), parsed("evt-long"))
    async with running(queue, slow, consumer="slow"):
        await asyncio.wait_for(slow.entered.wait(), 10)
        async with running(queue, other, consumer="other"):
            await asyncio.sleep(queue.claim_after * 4)
            assert other.calls == 0
            slow.gate.set()
            await wait_until(lambda: _zero_pending(queue))
    assert [e.id for e in slow.events] == ["evt-long"]


async def test_worker_backs_off_and_resumes_when_redis_restarts(
    redis_process: RedisProcess,
) -> None:
    """Redis killed under a running worker: it keeps retrying, then handles new entries."""
    q = RedisWebhookQueue(
        redis_process.url, stream="resume", claim_after=0.3, block=0.2, timeout=0.5
    )
    recorder = Recorder()
    try:
        async with running(q, recorder) as task:
            await q.enqueue(event_body("evt-before"), parsed("evt-before"))
            await wait_until(lambda: recorder.events)
            redis_process.kill()
            await asyncio.sleep(1.0)
            assert not task.done()
            redis_process.start()  # empty: the worker recreates the group it lost
            await wait_until(lambda: _enqueued(q, "evt-after"))
            await wait_until(lambda: len(recorder.events) == 2)
        assert [e.id for e in recorder.events] == ["evt-before", "evt-after"]
    finally:
        await q.aclose()


async def _enqueued(q: RedisWebhookQueue, event_id: str) -> bool:
    try:
        await q.enqueue(event_body(event_id), parsed(event_id))
    except WebhookQueueUnavailableError:
        return False
    return True


# --- worker processes -------------------------------------------------------------------------


def worker_process(
    url: str,
    stream: str,
    prefix: str,
    *extra: str,
    slow: float = 1.0,
    jitter: float = 0.0,
    handler: str = "record",
) -> subprocess.Popen[bytes]:
    """``telnyx-msg webhook worker`` in a subprocess, with a recording test handler."""
    env = {
        "TNX_TEST_REDIS": url,
        "TNX_TEST_PREFIX": prefix,
        "TNX_TEST_SLOW": str(slow),
        "TNX_TEST_JITTER": str(jitter),
    }
    return webhook_worker(url, stream, f"tests.webhook_worker_handlers:{handler}", env, *extra)


def webhook_worker(
    url: str, stream: str, handler: str, env: dict[str, str], *extra: str
) -> subprocess.Popen[bytes]:
    """``telnyx-msg webhook worker --handler HANDLER`` in a subprocess (``env`` added to ours);
    stderr is piped for :func:`finish`."""
    command = ["webhook", "worker", "--redis", url, "--handler", handler, "--stream", stream]
    return subprocess.Popen(
        [sys.executable, "-m", "telnyx_msg", *command, *extra],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def finish(proc: subprocess.Popen[bytes], signum: int = signal.SIGKILL) -> str:
    """Send ``signum`` (if still running), wait (bounded) and return its stderr."""
    if proc.poll() is None:
        proc.send_signal(signum)
    try:
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    return stderr.decode(errors="replace")


async def recorded(redis: Any, key: str) -> list[str]:
    return [v.decode() for v in await redis.lrange(key, 0, -1)]


@pytest.mark.parametrize("echoed", [False, True], ids=["once", "echoed"])
async def test_cli_worker_handles_then_stops_on_sigterm(
    queue: RedisWebhookQueue, redis_url: str, echoed: bool
) -> None:
    """The CLI worker runs module:function; SIGTERM finishes the handler in flight, acks it,
    exits 0, and leaves no entry pending. Also when the signal arrives twice a millisecond
    apart (a wrapper such as ``timeout`` forwarding it): that echo was taken for a second
    signal and cancelled the handler."""
    redis = await raw(queue)
    prefix = f"rec:{uuid.uuid4().hex}"
    await queue.enqueue(event_body("evt-1"), parsed("evt-1"))
    proc = worker_process(redis_url, queue.stream, prefix, slow=1.0)
    try:
        await wait_until(lambda: _has(redis, f"{prefix}:handled", "evt-1"), timeout=30)
        await queue.enqueue(event_body("slow-1"), parsed("slow-1"))
        await wait_until(lambda: _has(redis, f"{prefix}:started", "slow-1"))
        if echoed:
            proc.send_signal(signal.SIGTERM)  # and its echo, 20 ms later, below
            await asyncio.sleep(0.02)
        stderr = await finish(proc, signal.SIGTERM)
        assert proc.returncode == 0, stderr
    finally:
        await finish(proc)
    assert await recorded(redis, f"{prefix}:handled") == ["evt-1", "slow-1"]
    assert await queue.pending() == 0
    assert await redis.xlen(queue.stream) == 0


async def _has(redis: Any, key: str, value: str) -> bool:
    return value in await recorded(redis, key)


async def test_cli_worker_stops_on_sigterm_when_its_log_reader_is_gone(
    queue: RedisWebhookQueue, redis_url: str
) -> None:
    """``... webhook worker 2>&1 | tee worker.log`` and ``tee`` is gone (the same Ctrl-C killed
    it, a log collector restarted): the first SIGTERM still finishes the handler in flight,
    acks it and exits 0. Its "stopping" notice failed with a broken pipe before the stop was
    requested: the worker ran on until a second signal aborted the handler (exit 130)."""
    redis = await raw(queue)
    prefix = f"rec:{uuid.uuid4().hex}"
    proc = worker_process(redis_url, queue.stream, prefix, slow=1.5)
    try:
        assert proc.stderr is not None
        assert b"worker handling" in await asyncio.to_thread(proc.stderr.readline)
        await queue.enqueue(event_body("slow-pipe"), parsed("slow-pipe"))
        await wait_until(lambda: _has(redis, f"{prefix}:started", "slow-pipe"), timeout=30)
        proc.stderr.close()  # whatever read the worker's stderr is gone
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(proc.wait, 15)
        assert proc.returncode == 0, "the first SIGTERM did not stop the worker"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(20)
    assert await recorded(redis, f"{prefix}:handled") == ["slow-pipe"]
    assert await queue.pending() == 0


async def test_cli_worker_finishes_the_handler_in_flight_on_sighup(
    queue: RedisWebhookQueue, redis_url: str
) -> None:
    """The terminal, tmux window or ssh session a worker runs in closes (SIGHUP): as on
    SIGTERM, it finishes the handler in flight, acks the entry, leaves the group and exits 0.
    It was killed mid-handler (side effects half done, the entry run again after
    --claim-after, its consumer left in the group)."""
    redis = await raw(queue)
    prefix = f"rec:{uuid.uuid4().hex}"
    proc = worker_process(redis_url, queue.stream, prefix, slow=1.5)
    try:
        await queue.enqueue(event_body("slow-hup"), parsed("slow-hup"))
        await wait_until(lambda: _has(redis, f"{prefix}:started", "slow-hup"), timeout=30)
        stderr = await finish(proc, signal.SIGHUP)
        assert proc.returncode == 0, stderr
    finally:
        await finish(proc)
    assert await recorded(redis, f"{prefix}:handled") == ["slow-hup"]
    assert await queue.pending() == 0
    assert await redis.xinfo_consumers(queue.stream, queue.group) == []


async def test_handlers_that_cannot_take_the_event_are_refused_up_front(
    queue: RedisWebhookQueue,
) -> None:
    """A handler that cannot be called with one argument, the event (``def handle():``, a
    two-parameter function), is a ConfigurationError when the receiver is built or
    ``queue.run`` starts, before any delivery: found out per event, every delivery failed (the
    receiver answered 500 until Telnyx gave up; the queue dead-lettered its whole backlog)."""

    def no_event() -> None:
        pass

    async def two(event: WebhookEvent, context: object) -> None:
        pass

    await queue.enqueue(event_body("evt-arity"), parsed("evt-arity"))
    for handlers, default in (({"message.sent": no_event}, None), ({}, two)):
        with pytest.raises(ConfigurationError, match="must take one argument, the event"):
            aiohttp_handler(verifier(), handlers, default=default)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="must take one argument, the event"):
            await queue.run(handlers, default=default)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="is not callable"):
        await queue.run({"message.sent": "handle"})  # type: ignore[dict-item]
    assert await queue.dead_letters() == []
    assert await queue.pending() == 0


async def test_worker_killed_mid_handler_is_taken_over_once(
    queue: RedisWebhookQueue, redis_url: str
) -> None:
    """kill -9 of a worker mid-handler: after claim_after another worker takes the entry over
    and the handler completes exactly once."""
    redis = await raw(queue)
    prefix = f"rec:{uuid.uuid4().hex}"
    await queue.enqueue(event_body("slow-k"), parsed("slow-k"))
    victim = worker_process(redis_url, queue.stream, prefix, "--claim-after", "0.5", slow=30.0)
    try:
        await wait_until(lambda: _has(redis, f"{prefix}:started", "slow-k"), timeout=30)
    finally:
        await finish(victim)
    assert await queue.pending() == 1
    rescuer = worker_process(redis_url, queue.stream, prefix, "--claim-after", "0.5", slow=0.1)
    try:
        await wait_until(lambda: _has(redis, f"{prefix}:handled", "slow-k"), timeout=30)
        await wait_until(lambda: _zero_pending(queue))
        await asyncio.sleep(1.0)  # time for a wrong second run to show up
    finally:
        await finish(rescuer, signal.SIGTERM)
    assert await recorded(redis, f"{prefix}:started") == ["slow-k", "slow-k"]
    assert await recorded(redis, f"{prefix}:handled") == ["slow-k"]


async def test_cli_worker_runs_a_plain_function(queue: RedisWebhookQueue, redis_url: str) -> None:
    """--handler may name a plain (blocking) function; the worker runs it and acks."""
    redis = await raw(queue)
    prefix = f"rec:{uuid.uuid4().hex}"
    await queue.enqueue(event_body("evt-sync"), parsed("evt-sync"))
    proc = worker_process(redis_url, queue.stream, prefix, handler="record_sync")
    try:
        await wait_until(lambda: _has(redis, f"{prefix}:handled", "sync:evt-sync"), timeout=30)
        await wait_until(lambda: _zero_pending(queue))
    finally:
        stderr = await finish(proc, signal.SIGTERM)
    assert proc.returncode == 0, stderr


async def test_cli_worker_never_overlaps_a_plain_function_past_its_timeout(
    queue: RedisWebhookQueue, redis_url: str
) -> None:
    """A plain function cannot be stopped: past --handler-timeout the worker holds the entry
    until its thread returns, so the next attempt never starts while the last one runs; the
    entry ends in the dead letters with the timeout as its reason."""
    redis = await raw(queue)
    prefix = f"rec:{uuid.uuid4().hex}"
    await queue.enqueue(event_body("evt-thread"), parsed("evt-thread"))
    options = ("--handler-timeout", "0.3", "--claim-after", "0.5", "--max-attempts", "2")
    proc = worker_process(
        redis_url, queue.stream, prefix, *options, slow=1.5, handler="record_sync_slow"
    )
    try:
        await wait_until(lambda: _dead_count(queue, 1), timeout=30)
    finally:
        stderr = await finish(proc, signal.SIGTERM)
    assert await recorded(redis, f"{prefix}:runs") == ["start:evt-thread", "end:evt-thread"] * 2
    [letter] = await queue.dead_letters()
    assert "handler_timeout=0.3 s" in letter["reason"], letter
    assert "a thread cannot be stopped" in stderr


async def _dead_count(queue: RedisWebhookQueue, count: int) -> bool:
    return len(await queue.dead_letters()) == count


async def test_receiver_answers_503_when_redis_is_out_of_memory(
    redis_process: RedisProcess,
) -> None:
    """maxmemory reached with noeviction: XADD is refused, the receiver answers 503."""
    q = RedisWebhookQueue(redis_process.url, stream=f"test:{uuid.uuid4().hex}")
    try:
        app = asgi_app(verifier(), {}, queue=q)
        body = event_body()
        assert await call_asgi(app, body, sign(body)) == (200, b"queued")
        await q._redis.config_set("maxmemory-policy", "noeviction")
        await q._redis.config_set("maxmemory", "1")
        assert await call_asgi(app, body, sign(body)) == (503, b"webhook queue unavailable")
        with pytest.raises(WebhookQueueUnavailableError, match="maxmemory"):
            await q.enqueue(body, parsed("evt-1"))
    finally:
        await q.aclose()


async def test_a_redis_at_maxmemory_still_drains_the_backlog_each_event_once(
    redis_process: RedisProcess,
) -> None:
    """A backlog filled Redis to maxmemory (noeviction). Workers must still drain it, each event
    handled once, a second copy skipped, a failing one dead-lettered: every step of a worker
    writes, and a Redis at maxmemory refused the lease, the acknowledgement (a transaction with
    the "handled" mark) and the dead letter, and a newly started worker's group creation. The
    backlog then never shrank, every new delivery was answered 503 until someone added memory,
    and the handler whose acknowledgement was refused ran again once they did."""
    stream = f"test:{uuid.uuid4().hex}"
    filler = RedisWebhookQueue(redis_process.url, stream=stream)
    events = [f"evt-{n}" for n in range(8)]
    try:
        for event_id in [*events, "evt-0"]:  # evt-0 delivered twice
            await filler.enqueue(event_body(event_id), parsed(event_id))
        await filler.enqueue(event_body("evt-bad", "message.sent"), parsed("evt-bad"))
        await filler._redis.config_set("maxmemory-policy", "noeviction")
        await filler._redis.config_set("maxmemory", "1")
        with pytest.raises(WebhookQueueUnavailableError, match="maxmemory"):
            await filler.enqueue(event_body("evt-late"), parsed("evt-late"))

        # A worker started now (its queue has not created the group yet).
        q = RedisWebhookQueue(
            redis_process.url, stream=stream, claim_after=0.3, max_attempts=1, block=0.2
        )
        recorder = Recorder()

        async def failing(event: WebhookEvent) -> None:
            raise ValueError("cannot handle it")

        task = asyncio.get_running_loop().create_task(
            q.run({"message.finalized": recorder, "message.sent": failing})
        )
        try:
            await wait_until(lambda: _zero_pending(q))
            await wait_until(lambda: _dead_count(q, 1))
            assert await filler._redis.xlen(stream) == 0
        finally:
            q.stop()
            await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
            await q.aclose()
        assert sorted(e.id for e in recorder.events if e.id) == events
        [letter] = await filler.dead_letters()
        assert letter["event_id"] == "evt-bad"
    finally:
        await filler._redis.config_set("maxmemory", "0")
        await filler.aclose()


def test_cli_worker_rejects_a_bad_handler_spec(tmp_path: Path) -> None:
    """--handler without ':', naming nothing importable, in a module that fails to import
    (a SyntaxError, an exception at import: a bare traceback and exit 1 before), or a function
    that cannot take one argument, the event (it started, failed every event with a TypeError
    and dead-lettered the whole backlog while looking healthy) exits 2 with a clear error."""
    (tmp_path / "broken_syntax.py").write_text("def handle(event):\n    return 1 +\n")
    (tmp_path / "broken_import.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "wrong_arity.py").write_text(
        "def none():\n    pass\n\nasync def two(event, context):\n    pass\n"
    )
    for spec, says in (
        ("nocolon", "MODULE:FUNCTION"),
        ("tests.webhook_worker_handlers:missing", "missing"),
        ("broken_syntax:handle", "SyntaxError"),
        ("broken_import:handle", "RuntimeError: boom at import"),
        ("wrong_arity:none", "handler 'wrong_arity:none' must take one argument, the event"),
        ("wrong_arity:two", "handler 'wrong_arity:two' must take one argument, the event"),
    ):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "telnyx_msg",
                "webhook",
                "worker",
                "--redis",
                "redis://127.0.0.1:1/0",
                "--handler",
                spec,
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2  # a usage error, before Redis is contacted
        assert "error: cannot import handler" in result.stderr or "import" not in says
        assert says in result.stderr


async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(
    queue: RedisWebhookQueue, redis_url: str
) -> None:
    """300 webhooks at once (3x the 100 connections one client opens): every one is queued
    (a receiver would otherwise answer 503 to 200 of them); the same for a replay store and a
    tracker shared by that many tasks."""
    from telnyx_msg import RedisDeliveryTracker
    from telnyx_msg.webhooks import RedisReplayStore

    names = [f"burst-{i}" for i in range(300)]
    ids = await asyncio.gather(*(queue.enqueue(event_body(n), parsed(n)) for n in names))
    assert len(set(ids)) == 300
    assert await (await raw(queue)).xlen(queue.stream) == 300
    store = RedisReplayStore(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    try:
        new = await asyncio.gather(*(store.amark_if_new(n, 60) for n in names))
        assert new == [True] * 300
    finally:
        await store.aclose()
    async with RedisDeliveryTracker(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:") as tracker:
        results = await asyncio.gather(*(tracker.result(f"m-{i}") for i in range(300)))
        assert results == [None] * 300


async def test_a_burst_is_pipelined_and_each_receiver_gets_its_own_entry(
    queue: RedisWebhookQueue,
) -> None:
    """Deliveries arriving together are appended in shared round trips; each caller still gets
    the id of the entry holding its own event."""
    await queue.enqueue(event_body("first"), parsed("first"))  # the group exists
    names = [f"pipe-{i}" for i in range(250)]
    ids = await asyncio.gather(*(queue.enqueue(event_body(n), parsed(n)) for n in names))
    client = await raw(queue)
    stored = {i.decode(): f[b"event_id"].decode() for i, f in await client.xrange(queue.stream)}
    assert [stored[entry_id] for entry_id in ids] == names
    assert len(stored) == 251


async def test_a_failed_pipelined_append_fails_every_caller_in_it(
    queue: RedisWebhookQueue,
) -> None:
    """Redis refusing a batch (here the stream key holds a string: WRONGTYPE) fails each of its
    callers (their receivers answer 503); the next append works once the key is fixed."""
    await queue.enqueue(event_body("first"), parsed("first"))
    client = await raw(queue)
    await client.delete(queue.stream)
    await client.set(queue.stream, "not a stream")
    names = [f"refused-{i}" for i in range(20)]
    results = await asyncio.wait_for(
        asyncio.gather(
            *(queue.enqueue(event_body(n), parsed(n)) for n in names), return_exceptions=True
        ),
        10,
    )
    assert all(isinstance(r, WebhookQueueUnavailableError) for r in results), results
    # Each carries Redis's refusal; redis-py 6.x words it for the first command of the batch
    # only (the others read "... of pipeline caused error: {exception.args}").
    assert all(
        isinstance(r, WebhookQueueUnavailableError)
        and isinstance(r.__cause__, redis.exceptions.ResponseError)
        for r in results
    )
    assert any("WRONGTYPE" in str(r) for r in results)
    await client.delete(queue.stream)
    assert await queue.enqueue(event_body("after"), parsed("after"))


async def test_a_receiver_that_gave_up_is_not_appended_later(
    redis_process: RedisProcess,
) -> None:
    """Redis frozen: an append goes out and hangs, the next waits its turn and its caller gives
    up (its delivery dropped). After the thaw the one on the wire is stored (it had been
    written; workers skip the copy Telnyx sends again), the one never sent is not."""
    q = RedisWebhookQueue(redis_process.url, stream=f"test:{uuid.uuid4().hex}", timeout=0.5)
    try:
        await q.enqueue(event_body("before"), parsed("before"))
        redis_process.freeze()
        try:
            on_wire = asyncio.ensure_future(q.enqueue(event_body("on-wire"), parsed("on-wire")))
            await asyncio.sleep(0.1)
            waiting = asyncio.ensure_future(q.enqueue(event_body("waiting"), parsed("waiting")))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            with pytest.raises(WebhookQueueUnavailableError):
                await on_wire
        finally:
            redis_process.thaw()
        client = await raw(q)
        for _ in range(100):
            entries = await client.xrange(q.stream)
            if len(entries) > 1:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # time enough for a wrong append of "waiting" to land
        stored = [f[b"event_id"].decode() for _, f in await client.xrange(q.stream)]
        assert stored == ["before", "on-wire"]
        assert await q.enqueue(event_body("after"), parsed("after"))
    finally:
        redis_process.thaw()
        await q.aclose()


@pytest.mark.redis
@pytest.mark.anyio
async def test_worker_with_refused_credentials_stops(redis_url: str) -> None:
    """A worker whose Redis refuses its credentials (a wrong password, or an ACL without the
    stream commands) raises ConfigurationError at once (the CLI exits 2) instead of logging
    retries forever while looking healthy to its supervisor."""
    admin = redis.asyncio.Redis.from_url(redis_url)
    await admin.acl_setuser(
        "worker-user",
        enabled=True,
        passwords=["+right"],
        keys=["*"],
        commands=["+@all", "-xgroup", "-xreadgroup"],
    )
    await admin.aclose()
    host = redis_url.removeprefix("redis://")
    stream = f"creds-{uuid.uuid4().hex}"
    for url, reason in [
        (f"redis://worker-user:wrong@{host}", "username-password"),
        (f"redis://worker-user:right@{host}", "no permissions"),
    ]:
        queue = RedisWebhookQueue(url, stream=stream, timeout=1.0)
        try:
            with pytest.raises(ConfigurationError, match="refused this worker's credentials") as e:
                await asyncio.wait_for(queue.run({}), 10)
            assert reason in str(e.value)
        finally:
            await queue.aclose()


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_stream_name_taken_by_another_kind_of_key_stops_the_worker(
    redis_url: str,
) -> None:
    """A worker whose stream name is already a plain key (another app's, a typo) raises
    ConfigurationError (the CLI exits 2); it logged WRONGTYPE and retried forever."""
    admin = redis.asyncio.Redis.from_url(redis_url)
    stream = f"taken-{uuid.uuid4().hex}"
    await admin.set(stream, "someone else's value")
    queue = RedisWebhookQueue(redis_url, stream=stream, timeout=1.0)
    try:
        with pytest.raises(ConfigurationError, match="holds another kind of data"):
            await asyncio.wait_for(queue.run({}), 10)
        assert await admin.get(stream) == b"someone else's value"
    finally:
        await queue.aclose()
        await admin.delete(stream)
        await admin.aclose()


async def lifespan_startup(app: Any) -> dict[str, Any]:
    """Run the ASGI lifespan startup as a server does; return the app's answer."""
    messages = [{"type": "lifespan.startup"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # a server sends shutdown only much later
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    task = asyncio.get_running_loop().create_task(app({"type": "lifespan"}, receive, send))
    await wait_until(lambda: sent)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return sent[0]


async def test_receiver_with_refused_credentials_fails_its_startup(redis_url: str) -> None:
    """A receiver whose queue's Redis refuses the credentials does not start (ASGI: lifespan
    startup failed; aiohttp: on_startup raises), instead of answering every delivery 503 until
    Telnyx gives up on the events."""
    admin = redis.asyncio.Redis.from_url(redis_url)
    await admin.acl_setuser(
        "receiver-user", enabled=True, passwords=["+right"], keys=["*"], commands=["+@all"]
    )
    await admin.aclose()
    host = redis_url.removeprefix("redis://")
    q = RedisWebhookQueue(f"redis://receiver-user:wrong@{host}", stream=f"c-{uuid.uuid4().hex}")
    try:
        answer = await lifespan_startup(asgi_app(verifier(), {}, queue=q))
        assert answer["type"] == "lifespan.startup.failed"
        assert "refused this webhook queue's credentials" in answer["message"]
        handler = aiohttp_handler(verifier(), {}, queue=q)
        app = web.Application()
        app.on_startup.append(handler.on_startup)
        runner = web.AppRunner(app)
        with pytest.raises(ConfigurationError, match="username-password"):
            await runner.setup()
        await runner.cleanup()
    finally:
        await q.aclose()


async def test_receiver_with_refused_replay_store_fails_its_startup(redis_url: str) -> None:
    """The same for a Redis replay store with a wrong password."""
    from telnyx_msg.webhooks import RedisReplayStore

    host = redis_url.removeprefix("redis://")
    store = RedisReplayStore(f"redis://nobody:wrong@{host}")
    try:
        checked = WebhookVerifier(verifier()._key, replay_store=store)
        answer = await lifespan_startup(asgi_app(checked, {"message.finalized": Recorder()}))
        assert answer["type"] == "lifespan.startup.failed"
        assert "refused this replay store's credentials" in answer["message"]
    finally:
        await store.aclose()


async def test_receiver_starts_when_redis_is_down_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unreachable Redis does not stop the receiver (Redis may start later): the startup
    completes with a warning, and deliveries are answered 503 meanwhile."""
    q = RedisWebhookQueue(unused_url(), timeout=0.5)
    try:
        app = asgi_app(verifier(), {}, queue=q)
        with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
            assert (await lifespan_startup(app))["type"] == "lifespan.startup.complete"
        assert "webhook queue is unavailable at startup" in caplog.text
        body = event_body()
        assert (await call_asgi(app, body, sign(body)))[0] == 503
    finally:
        await q.aclose()


async def test_receiver_startup_prepares_the_queue(queue: RedisWebhookQueue) -> None:
    """A healthy Redis: the startup completes and has created the stream's consumer group."""
    app = asgi_app(verifier(), {}, queue=queue)
    assert (await lifespan_startup(app))["type"] == "lifespan.startup.complete"
    groups = await (await raw(queue)).xinfo_groups(queue.stream)
    assert [g["name"] for g in groups] == [queue.group.encode()]


def flask_intake(q: RedisWebhookQueue) -> Any:
    """A Flask view that verifies each delivery and appends it to the queue (the pattern
    docs/deployment.md shows)."""
    from flask import Flask, request

    from telnyx_msg import WebhookVerificationError

    app = Flask(__name__)
    checker = verifier()

    @app.post("/hooks")
    def intake() -> tuple[str, int]:
        body = request.get_data()
        try:
            event = checker.unwrap(body, request.headers)
        except WebhookVerificationError as exc:
            return str(exc), 401
        try:
            q.append(body, event)
        except WebhookQueueUnavailableError:
            return "webhook queue unavailable", 503  # Telnyx delivers it again
        return "queued", 200

    return app


async def test_blocking_view_appends_and_workers_handle_each_event_once(
    queue: RedisWebhookQueue,
) -> None:
    """A Flask view (blocking, in a thread as under gunicorn) appends verified deliveries with
    append(); a worker runs the handler once per event, a redelivery included."""
    http = flask_intake(queue).test_client()
    bodies = [event_body(f"evt-f{i}") for i in range(3)]
    for body in [*bodies, bodies[0]]:  # the last one: Telnyx's redelivery of the first
        answer = await asyncio.to_thread(http.post, "/hooks", data=body, headers=sign(body))
        assert (answer.status_code, answer.text) == (200, "queued")
    tampered = bodies[1] + b" "
    forged = await asyncio.to_thread(http.post, "/hooks", data=tampered, headers=sign(bodies[1]))
    assert forged.status_code == 401
    assert await (await raw(queue)).xlen(queue.stream) == 4
    recorder = Recorder()
    async with running(queue, recorder):
        await wait_until(lambda: len(recorder.events) == 3)
        await wait_until(lambda: _drained(queue))  # each entry acknowledged and deleted
    assert sorted(e.id or "" for e in recorder.events) == ["evt-f0", "evt-f1", "evt-f2"]
    assert recorder.calls == 3


async def _drained(q: RedisWebhookQueue) -> bool:
    return bool(await (await raw(q)).xlen(q.stream) == 0)


async def test_blocking_append_failures_are_typed(redis_url: str) -> None:
    """Redis unreachable: append raises WebhookQueueUnavailableError (the view answers 503).
    Redis refusing the credentials: ConfigurationError. A queue given an asyncio client has no
    blocking connection and says to use enqueue."""
    body = event_body()
    down = RedisWebhookQueue(unused_url(), timeout=0.5)
    http = flask_intake(down).test_client()
    answer = await asyncio.to_thread(http.post, "/hooks", data=body, headers=sign(body))
    assert answer.status_code == 503
    with pytest.raises(WebhookQueueUnavailableError, match="XADD"):
        await asyncio.to_thread(down.append, body, parsed("evt-1"))
    await down.aclose()
    host = redis_url.removeprefix("redis://")
    refused = RedisWebhookQueue(f"redis://nobody:wrong@{host}", stream=f"r-{uuid.uuid4().hex}")
    with pytest.raises(ConfigurationError, match="refused this webhook queue's credentials"):
        await asyncio.to_thread(refused.append, body, parsed("evt-1"))
    await refused.aclose()
    client = redis.asyncio.Redis.from_url(redis_url)
    borrowed = RedisWebhookQueue(client=client, stream=f"b-{uuid.uuid4().hex}")
    with pytest.raises(ConfigurationError, match="enqueue"):
        borrowed.append(body, parsed("evt-1"))
    await borrowed.aclose()
    await client.aclose()


async def test_second_copy_of_a_running_event_is_not_dead_lettered(
    queue: RedisWebhookQueue,
) -> None:
    """Two entries of one event id (a Telnyx redelivery), the first failing once after running
    longer than claim_after: the second copy is acknowledged as a duplicate instead of gathering
    deliveries behind the lease until it was dead-lettered as "delivered N times without
    finishing"; the first is retried and the handler succeeds once."""
    calls = 0
    handled: list[WebhookEvent] = []

    async def slow_fail_once(event: WebhookEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(queue.claim_after * 6)
            raise ValueError("first attempt fails")
        handled.append(event)

    for _ in range(2):
        await queue.enqueue(event_body("evt-twice"), parsed("evt-twice"))
    async with (
        running(queue, slow_fail_once, consumer="one"),
        running(queue, slow_fail_once, consumer="two"),
    ):
        await wait_until(lambda: handled)
        await wait_until(lambda: _zero_pending(queue))
        await asyncio.sleep(queue.claim_after * 2)  # room for a wrong late dead letter
    assert [e.id for e in handled] == ["evt-twice"]
    assert calls == 2
    assert await queue.dead_letters() == []
    assert await queue.pending() == 0
    assert await (await raw(queue)).xlen(queue.stream) == 0


async def test_an_entry_whose_own_lease_is_held_stays_pending(queue: RedisWebhookQueue) -> None:
    """A lease held for this very entry (a worker still running it, or one written by an older
    version without an entry id) is not a duplicate: the entry stays pending, unhandled."""
    entry_id = await queue.enqueue(event_body("evt-held"), parsed("evt-held"))
    redis = await raw(queue)
    lease = f"{queue.stream}:lease:evt-held"
    recorder = Recorder()
    for holder in (f"other worker {entry_id}", "old-worker"):
        await redis.set(lease, holder, px=60_000)
        async with running(queue, recorder):
            await asyncio.sleep(queue.claim_after * 2)
        assert recorder.calls == 0
        assert await queue.pending() == 1
        assert await queue.dead_letters() == []


async def test_an_event_id_that_is_not_utf8_is_a_bad_payload(
    queue: RedisWebhookQueue, redis_url: str
) -> None:
    """A signed body whose event id is a lone surrogate escape (JSON "ev\\ud800") cannot be a
    Redis key or stream field: the receiver answers 400 (Telnyx does not retry it) instead of
    503 "webhook queue unavailable" on every redelivery, and unwrap with a RedisReplayStore
    raises WebhookPayloadError instead of UnicodeEncodeError."""
    from telnyx_msg import RedisReplayStore, WebhookPayloadError

    body = event_body("ev\ud800")
    assert b'"ev\\ud800"' in body
    app = asgi_app(verifier(), {}, queue=queue)
    status, reply = await call_asgi(app, body, sign(body))
    assert (status, b"event id" in reply) == (400, True)
    assert await (await raw(queue)).exists(queue.stream) == 0
    store = RedisReplayStore(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    try:
        checked = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)
        with pytest.raises(WebhookPayloadError, match="event id"):
            checked.unwrap(body, sign(body))
    finally:
        await store.aclose()


async def test_a_dead_letter_is_acknowledged_in_the_same_transaction(redis_url: str) -> None:
    """Moving an entry to the dead stream acknowledges it at once: nothing stays pending for a
    takeover (claim_after is long here, so only the dead-letter transaction can clear it)."""
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", claim_after=30, max_attempts=1, block=0.2
    )
    try:
        await q.enqueue(event_body("evt-dl"), parsed("evt-dl"))
        async with running(q, Recorder(failures=1)):
            await wait_until(q.dead_letters)
            assert await q.pending() == 0
            assert await q._redis.xlen(q.stream) == 0
    finally:
        await q.aclose()


async def test_redis_refusing_the_lease_counts_no_attempt_and_dead_letters_nothing(
    redis_process: RedisProcess,
) -> None:
    """Redis serves the worker's reads but refuses what comes next (here an ACL without the
    scripts, granted later; a Redis at maxmemory no longer refuses it): the worker backs off,
    the refused deliveries do not count as attempts (max_attempts would dead-letter the
    backlog as "never finishing"), and once Redis takes them again every event is handled
    once, none dead."""
    admin = redis.asyncio.Redis.from_url(redis_process.url)
    await admin.acl_setuser(
        "worker", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-eval"]
    )
    url = redis_process.url.replace("redis://", "redis://worker:pw@")
    q = RedisWebhookQueue(
        url, stream=f"test:{uuid.uuid4().hex}", claim_after=0.3, max_attempts=2, block=0.1
    )
    try:
        ids = [f"evt-refused-{n}" for n in range(5)]
        for event_id in ids:
            await q.enqueue(event_body(event_id), parsed(event_id))
        recorder = Recorder()
        async with running(q, recorder):
            await asyncio.sleep(2.5)  # ~8 claim_after periods: far past max_attempts
            assert recorder.calls == 0
            rows = await admin.xpending_range(q.stream, q.group, "-", "+", 100)
            assert {row["times_delivered"] for row in rows} <= {0, 1}  # no attempt counted
            await admin.acl_setuser("worker", enabled=True, commands=["+eval"])
            await wait_until(lambda: len(recorder.events) == len(ids), timeout=30)
            await wait_until(lambda: _zero_pending(q))
        assert sorted(e.id or "" for e in recorder.events) == ids
        assert recorder.calls == len(ids)
        assert await q.dead_letters() == []
    finally:
        await q.aclose()
        await admin.aclose()


async def _blocked_in_read(q: RedisWebhookQueue) -> bool:
    return any(c.get("cmd") == "xreadgroup" for c in await q._redis.client_list())


async def test_stop_during_the_blocking_read_starts_no_handler(
    redis_url: str,
) -> None:
    """stop() while the worker waits for new entries: an entry that arrives in that wait is
    not started (stop promises only to finish the handler in flight). It stays pending, with
    no delivery counted, and another worker handles it."""
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", claim_after=0.3, max_attempts=1, block=2.0
    )
    try:
        first = Recorder()
        task = asyncio.get_running_loop().create_task(q.run({}, default=first, consumer="one"))
        await wait_until(lambda: _blocked_in_read(q))
        q.stop()
        await q.enqueue(event_body("evt-late"), parsed("evt-late"))
        await asyncio.wait_for(task, 10)
        assert first.calls == 0
        assert await q.pending() == 1
        second = Recorder()
        async with running(q, second, consumer="two"):
            await wait_until(lambda: second.events)
            await wait_until(lambda: _zero_pending(q))
        assert [e.id for e in second.events] == ["evt-late"]
        assert await q.dead_letters() == []  # max_attempts=1: the unstarted read did not count
    finally:
        await q.aclose()


async def test_cli_worker_second_signal_leaves_a_plain_handler_at_once(
    queue: RedisWebhookQueue, redis_url: str
) -> None:
    """A plain handler's thread cannot be cancelled: a second signal exits (130) at once instead
    of waiting for it and then dropping its result; the entry stays pending for another worker."""
    redis = await raw(queue)
    prefix = f"rec:{uuid.uuid4().hex}"
    await queue.enqueue(event_body("evt-thread"), parsed("evt-thread"))
    proc = worker_process(redis_url, queue.stream, prefix, slow=60.0, handler="record_sync_slow")
    try:
        await wait_until(lambda: _has(redis, f"{prefix}:runs", "start:evt-thread"), timeout=30)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)  # not an echo of the first (cli.SIGNAL_ECHO)
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)  # the handler would sleep for 60 s
    finally:
        stderr = await finish(proc)
    assert proc.returncode == 130, stderr
    assert "cannot be stopped" in stderr, stderr
    assert await queue.pending() == 1
    assert await recorded(redis, f"{prefix}:runs") == ["start:evt-thread"]


async def test_clean_stop_removes_the_consumer_without_pending_entries(
    queue: RedisWebhookQueue,
) -> None:
    """A worker that stops cleanly leaves no consumer behind in the group (default names are
    new on every start, so restarts would pile them up); one with a pending entry stays."""
    recorder = Recorder()
    await queue.enqueue(event_body("evt-gone"), parsed("evt-gone"))
    async with running(queue, recorder, consumer="leaving"):
        await wait_until(lambda: recorder.events)
        await wait_until(lambda: _zero_pending(queue))
    redis = await raw(queue)
    assert await redis.xinfo_consumers(queue.stream, queue.group) == []
    failing = Recorder(failures=1)  # its entry stays pending for a retry
    await queue.enqueue(event_body("evt-held"), parsed("evt-held"))
    task = asyncio.get_running_loop().create_task(
        queue.run({}, default=failing, consumer="staying")
    )
    await wait_until(lambda: failing.calls == 1)
    await asyncio.sleep(0.05)  # the failure is logged and the lease released
    queue.stop()
    await asyncio.wait_for(task, 10)
    consumers = await redis.xinfo_consumers(queue.stream, queue.group)
    assert [c["name"] for c in consumers] in (["staying"], [b"staying"])
    assert await queue.pending() == 1  # deleting the consumer would have dropped it


async def test_takeovers_while_another_holds_the_lease_count_no_attempt(
    queue: RedisWebhookQueue,
) -> None:
    """A worker whose claim_after is shorter than the lease of the worker that died running an
    entry (settings differ across a rollout) takes it over again and again while the lease
    lasts: those takeovers ran no handler, so they are not attempts. Once the lease expires the
    handler runs; the entry is never dead-lettered as "delivered N times without finishing"."""
    entry_id = await queue.enqueue(event_body("evt-lease"), parsed("evt-lease"))
    redis = await raw(queue)
    await redis.set(f"{queue.stream}:lease:evt-lease", f"dead-worker {entry_id}", px=2_500)
    recorder = Recorder()
    async with running(queue, recorder):  # claim_after 0.3 s, max_attempts 3
        await wait_until(lambda: recorder.events, timeout=20)
        await wait_until(lambda: _zero_pending(queue))
    assert [e.id for e in recorder.events] == ["evt-lease"]
    assert await queue.dead_letters() == []


async def test_a_worker_that_reached_redis_keeps_retrying_when_its_credentials_are_refused(
    redis_url: str,
) -> None:
    """Credentials refused *after* the worker has talked to Redis (a password rotated, a user
    disabled for a moment) are an outage like any other: the worker logs and retries, and
    resumes once Redis takes them again. Only a worker refused before it ever reached Redis
    stops with ConfigurationError."""
    user = f"rotating-{uuid.uuid4().hex[:8]}"
    admin = redis.asyncio.Redis.from_url(redis_url)
    await admin.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all"])
    host = redis_url.removeprefix("redis://")
    q = RedisWebhookQueue(
        f"redis://{user}:pw@{host}",
        stream=f"test:{uuid.uuid4().hex}",
        claim_after=0.3,
        block=0.2,
        timeout=0.5,
    )
    recorder = Recorder()
    try:
        async with running(q, recorder) as task:
            await q.enqueue(event_body("evt-before"), parsed("evt-before"))
            await wait_until(lambda: recorder.events)
            await admin.acl_setuser(user, enabled=False)  # AUTH now fails: WRONGPASS
            await admin.client_kill_filter(user=user)  # its connections must log in again
            await asyncio.sleep(1.5)
            assert not task.done(), task.exception() if task.done() else None
            await admin.acl_setuser(user, enabled=True)
            fields = {
                "body": event_body("evt-after"),
                "event_id": "evt-after",
                "event_type": "message.finalized",
                "received_at": "0",
            }
            await admin.xadd(q.stream, fields)  # type: ignore[arg-type]  # bytes and str values
            await wait_until(lambda: len(recorder.events) == 2, timeout=20)
        assert [e.id for e in recorder.events] == ["evt-before", "evt-after"]
    finally:
        await q.aclose()
        await admin.acl_deluser(user)
        await admin.aclose()


async def test_a_restarted_worker_retries_its_own_failed_entry_after_claim_after(
    queue: RedisWebhookQueue,
) -> None:
    """A worker restarted under its old name first runs the entries still pending with that
    name; one whose handler fails is retried after claim_after (the documented pause before a
    retry), not re-read from the worker's history at once (which also counted a delivery per
    read and dead-lettered it within milliseconds)."""
    calls: list[float] = []

    async def fail_once(event: object) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ValueError("first attempt fails")

    await queue.enqueue(event_body("evt-own"), parsed("evt-own"))
    redis = await raw(queue)
    read = await redis.xreadgroup(queue.group, "same", {queue.stream: ">"}, count=1)
    assert len(read[0][1]) == 1  # pending with "same", as if that worker had died
    async with running(queue, fail_once, consumer="same"):
        await wait_until(lambda: len(calls) == 2)
        await wait_until(lambda: _zero_pending(queue))
    assert calls[1] - calls[0] >= queue.claim_after * 0.9
    assert await queue.dead_letters() == []


async def test_handled_event_ids_are_remembered_for_handled_ttl(redis_url: str) -> None:
    """The "done" key of a handled event id expires after handled_ttl *seconds* (a redelivery
    within that window is skipped; milliseconds would forget it at once)."""
    q = RedisWebhookQueue(
        redis_url,
        stream=f"test:{uuid.uuid4().hex}",
        claim_after=0.3,
        block=0.2,
        handled_ttl=3600,
    )
    try:
        recorder = Recorder()
        await q.enqueue(event_body("evt-ttl"), parsed("evt-ttl"))
        async with running(q, recorder):
            await wait_until(lambda: recorder.events)
            await wait_until(lambda: _zero_pending(q))
        ttl = await q._redis.ttl(f"{q.stream}:done:evt-ttl")
        assert 3500 <= ttl <= 3600
    finally:
        await q.aclose()


async def test_the_dead_stream_is_trimmed_to_about_dead_maxlen(redis_url: str) -> None:
    """dead_maxlen caps the dead stream (approximately: Redis trims whole nodes of 100)."""
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", claim_after=0.3, block=0.2, dead_maxlen=10
    )
    try:
        await q.prepare()
        pipe = q._redis.pipeline(transaction=False)
        for n in range(300):
            pipe.xadd(q.stream, {"body": b"not json", "event_id": f"bad-{n}".encode()})
        await pipe.execute()
        async with running(q, Recorder()):
            await wait_until(lambda: _zero_pending(q), timeout=30)
            await wait_until(lambda: _stream_empty(q), timeout=30)
        assert 10 <= await q._redis.xlen(q.dead_stream) <= 200
    finally:
        await q.aclose()


async def _stream_empty(q: RedisWebhookQueue) -> bool:
    return bool(await q._redis.xlen(q.stream) == 0)


async def test_entries_appended_before_the_group_existed_are_delivered(
    queue: RedisWebhookQueue,
) -> None:
    """The consumer group starts at id 0: an entry already in the stream when the first worker
    creates the group (appended by another producer, or before a group was destroyed) runs."""
    recorder = Recorder()
    redis = await raw(queue)
    await redis.xadd(
        queue.stream,
        {
            "body": event_body("evt-early"),
            "event_id": "evt-early",
            "event_type": "message.finalized",
            "received_at": "0",
        },
    )
    async with running(queue, recorder):
        await wait_until(lambda: recorder.events)
        await wait_until(lambda: _zero_pending(queue))
    assert [e.id for e in recorder.events] == ["evt-early"]


async def test_an_idle_worker_whose_block_outlasts_timeout_reads_without_errors(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """block longer than timeout (a long poll with short Redis calls), and block below one
    second: each read blocks ``block`` seconds on the server, not longer (BLOCK is in
    milliseconds; 0 would block forever) and not into the socket timeout, so an idle worker
    logs no failure and no backoff, and an entry appended meanwhile is handled."""
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", claim_after=0.3, block=0.5, timeout=0.25
    )
    recorder = Recorder()
    try:
        with caplog.at_level("WARNING", logger="telnyx_msg.webhooks"):
            async with running(q, recorder):
                await asyncio.sleep(2.5)
                await q.enqueue(event_body("evt-idle"), parsed("evt-idle"))
                await wait_until(lambda: recorder.events)
        assert "retrying" not in caplog.text, caplog.text
        assert [e.id for e in recorder.events] == ["evt-idle"]
    finally:
        await q.aclose()


async def test_skipping_an_already_handled_event_leaves_no_lease(
    queue: RedisWebhookQueue,
) -> None:
    """A redelivery of a handled event takes the lease (one pipelined round trip) and then
    skips the entry: the lease it took is released in the acknowledging transaction."""
    recorder = Recorder()
    redis = await raw(queue)
    async with running(queue, recorder):
        await queue.enqueue(event_body("evt-again"), parsed("evt-again"))
        await wait_until(lambda: recorder.events)
        await wait_until(lambda: _zero_pending(queue))
        await queue.enqueue(event_body("evt-again"), parsed("evt-again"))
        await wait_until(lambda: _stream_empty(queue))
        assert await redis.exists(f"{queue.stream}:lease:evt-again") == 0
    assert recorder.calls == 1


async def test_a_failed_handler_is_retried_only_after_claim_after(redis_url: str) -> None:
    """claim_after is also the pause before a failed handler runs again: the retry comes when
    the entry has been idle that long, not at the next takeover scan."""
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", claim_after=1.0, max_attempts=3, block=0.2
    )
    calls: list[float] = []

    async def fail_once(event: object) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ValueError("first attempt fails")

    try:
        await q.enqueue(event_body("evt-pause"), parsed("evt-pause"))
        async with running(q, fail_once):
            await wait_until(lambda: len(calls) == 2)
            await wait_until(lambda: _zero_pending(q))
        assert calls[1] - calls[0] >= 0.9 * q.claim_after
        assert await q.dead_letters() == []
    finally:
        await q.aclose()


async def test_a_copy_arriving_while_a_long_handler_runs_is_not_run_alongside(
    queue: RedisWebhookQueue,
) -> None:
    """A handler running for several claim_after periods keeps its event's lease alive (the
    heartbeat renews it with the entry): a second copy of the event that arrives meanwhile is
    acknowledged as a duplicate, never run at the same time as the first."""
    slow = Recorder()
    slow.gate.clear()
    await queue.enqueue(event_body("evt-overlap"), parsed("evt-overlap"))
    async with (
        running(queue, slow, consumer="one"),
        running(queue, slow, consumer="two"),
    ):
        await asyncio.wait_for(slow.entered.wait(), 10)
        await asyncio.sleep(queue.claim_after * 3)  # far past the first lease's own expiry
        await queue.enqueue(event_body("evt-overlap"), parsed("evt-overlap"))
        await asyncio.sleep(queue.claim_after * 2)
        assert slow.calls == 1
        slow.gate.set()
        await wait_until(lambda: _zero_pending(queue))
        await wait_until(lambda: _stream_empty(queue))
    assert slow.calls == 1
    assert [e.id for e in slow.events] == ["evt-overlap"]


async def test_stop_before_any_run_makes_the_next_run_return_at_once(
    queue: RedisWebhookQueue,
) -> None:
    """stop() called before run() (a supervisor's signal that lands during startup): the next
    run returns at once instead of starting to handle entries."""
    recorder = Recorder()
    await queue.enqueue(event_body("evt-unstarted"), parsed("evt-unstarted"))
    queue.stop()
    await asyncio.wait_for(queue.run({"message.finalized": recorder}), 5)
    assert recorder.calls == 0
    assert await queue.pending() == 0  # nothing was even read


async def test_a_database_the_server_does_not_have_is_a_configuration_error(
    redis_url: str,
) -> None:
    """``redis://host/99`` on a Redis with 16 databases: the worker logged "DB index is out of
    range; retrying" forever and the receiver started, answering every delivery 503."""
    url = redis_url.rsplit("/", 1)[0] + "/99"
    q = RedisWebhookQueue(url, stream=f"db-{uuid.uuid4().hex}", timeout=0.5, block=0.2)
    try:
        with pytest.raises(ConfigurationError, match="no database") as caught:
            await asyncio.wait_for(q.run({}), 10)
        assert "DB index is out of range" in str(caught.value)
        answer = await lifespan_startup(asgi_app(verifier(), {}, queue=q))
        assert answer["type"] == "lifespan.startup.failed"
        assert "no database for this webhook queue" in answer["message"]
    finally:
        await q.aclose()


async def test_entries_another_producer_wrote_badly_are_dead_lettered_and_listed(
    queue: RedisWebhookQueue,
) -> None:
    """An entry whose event_id is not UTF-8 (another producer, or a dead letter re-added by
    hand with XADD) made run() raise UnicodeDecodeError, and each worker that took it over
    died the same way; a dead letter whose body is not UTF-8 made every dead_letters() raise."""
    r = await raw(queue)
    await queue.prepare()
    await r.xadd(queue.stream, {"body": event_body("evt-x"), "event_id": b"\xffevt-x"})
    await r.xadd(queue.stream, {"body": b"\xff\xfe garbage", "event_id": b"evt-bin"})
    await queue.enqueue(event_body("evt-ok"), parsed("evt-ok"))
    handled: list[str] = []

    async def handler(event: WebhookEvent) -> None:
        handled.append(str(event.id))

    async with running(queue, handler) as task:
        await wait_until(lambda: handled or task.done())
        assert not task.done(), task.exception()
    assert handled == ["evt-ok"]
    letters = await queue.dead_letters()
    assert [letter["reason"].split(":")[0] for letter in letters] == ["not a webhook event"] * 2
    assert letters[1]["event_id"] == "evt-bin"
    assert await queue.pending() == 0


async def test_pending_before_any_worker_created_the_group_is_zero(redis_url: str) -> None:
    """A fresh deployment (or a Redis restarted without persistence): no group yet. pending()
    raised "Redis failed XPENDING: NOGROUP", which a monitor reads as an outage."""
    q = RedisWebhookQueue(redis_url, stream=f"fresh-{uuid.uuid4().hex}")
    try:
        assert await q.pending() == 0
        assert await q.dead_letters() == []
    finally:
        await q.aclose()


async def test_a_stop_while_no_run_is_going_applies_to_the_next_run_every_time(
    queue: RedisWebhookQueue, caplog: pytest.LogCaptureFixture
) -> None:
    """A shutdown that calls stop() before the worker task's first step stops that run, in
    every lifecycle of the queue (a flag that ignored such a stop once any run had ended left
    the second lifecycle's `await task` hanging), and the run says why it returned at once."""
    with caplog.at_level(logging.INFO, logger="telnyx_msg.webhooks"):
        for _ in range(2):
            task = asyncio.get_running_loop().create_task(queue.run({}))
            queue.stop()  # before the task ran: never lost
            await asyncio.wait_for(task, 5)
    assert caplog.text.count("stop() was called while no run was going") == 2


async def test_a_handler_failing_late_is_retried_claim_after_after_its_failure(
    redis_url: str,
) -> None:
    """claim_after is the pause before a failed handler is retried. The idle time XAUTOCLAIM
    reads restarted at the last heartbeat (every claim_after / 3), so a handler failing after
    most of claim_after was retried that much too early."""
    q = RedisWebhookQueue(
        redis_url, stream=f"pause-{uuid.uuid4().hex}", claim_after=1.5, block=0.1, max_attempts=3
    )
    failed_at: list[float] = []
    retried_at: list[float] = []

    async def fail_late(event: WebhookEvent) -> None:
        if not failed_at:
            await asyncio.sleep(1.4)  # after two heartbeats, before the third
            failed_at.append(time.monotonic())
            raise ValueError("the first attempt fails late")
        retried_at.append(time.monotonic())

    try:
        await q.enqueue(event_body("evt-late"), parsed("evt-late"))
        async with running(q, fail_late) as task:
            await wait_until(lambda: retried_at or task.done())
        pause = retried_at[0] - failed_at[0]
        assert pause >= 0.95 * q.claim_after, f"retried {pause:.2f} s after the failure"
    finally:
        await q.aclose()


def idless(n: int) -> tuple[bytes, WebhookEvent]:
    document = json.loads(event_body(f"evt-{n}"))
    del document["data"]["id"]
    document["data"]["payload"]["id"] = f"msg-{n}"
    body = json.dumps(document).encode()
    return body, structure_event(document)


async def test_events_without_an_id_are_each_handled(queue: RedisWebhookQueue) -> None:
    """Events without an id are never deduplicated against each other: each is handled.
    Guards against dropping `or None` from the event id read (every id-less
    event then shares the lease and "done" key of the empty id, and all but one are skipped)."""
    recorder = Recorder()
    for n in range(3):
        body, event = idless(n)
        assert event.id is None
        await queue.enqueue(body, event)
    async with running(queue, recorder):
        await wait_until(lambda: len(recorder.events) == 3, timeout=5)
    ids = sorted(e.payload.id for e in recorder.events if isinstance(e.payload, Message))
    assert ids == ["msg-0", "msg-1", "msg-2"]


async def test_the_event_lease_expires_before_claim_after(queue: RedisWebhookQueue) -> None:
    """The lease a worker takes on an event id lives less than claim_after, so the entry of a
    worker that died can be run by the worker taking it over (not refused for a lease that
    outlives the takeover).
    Guards against _redis_worker.py _lease_ms `claim_after * 900` -> `claim_after * 1100`."""
    recorder = Recorder()
    recorder.gate.clear()
    await queue.enqueue(event_body("evt-lease"), parsed("evt-lease"))
    async with running(queue, recorder):
        await asyncio.wait_for(recorder.entered.wait(), 5)
        ttl = await queue._redis.pttl(f"{queue.stream}:lease:evt-lease")
        recorder.gate.set()
        await wait_until(lambda: len(recorder.events) == 1, timeout=5)
    assert 0 < ttl < queue.claim_after * 1000


async def test_a_failed_handler_is_retried_about_claim_after_later(
    queue: RedisWebhookQueue,
) -> None:
    """A handler that failed is retried once claim_after has passed (the worker looks for
    idle entries every claim_after / 4), not several claim_after later.
    Guards against _redis_worker.py `next_claim = now + max(0.05, claim_after / 4)` ->
    `now + claim_after * 4`."""
    calls: list[float] = []

    async def flaky(event: WebhookEvent) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ValueError("first attempt fails")

    await queue.enqueue(event_body("evt-retry"), parsed("evt-retry"))
    async with running(queue, flaky):
        await wait_until(lambda: len(calls) >= 2, timeout=5)
    assert calls[1] - calls[0] >= queue.claim_after - 0.05
    assert calls[1] - calls[0] < 1.15  # (the mutant: no sooner than 4 * claim_after = 1.2 s)


async def test_dead_letters_returns_at_most_count(queue: RedisWebhookQueue) -> None:
    """dead_letters(count) lists only the oldest ``count`` letters.
    Guards against _redis_queue.py `xrange(self.dead_stream, count=count)` -> without count."""
    for n in range(3):
        await queue._redis.xadd(queue.dead_stream, {"reason": f"r{n}", "body": b"{}"})
    letters = await queue.dead_letters(count=2)
    assert [letter["reason"] for letter in letters] == ["r0", "r1"]
    assert len(await queue.dead_letters()) == 3


async def test_blocking_append_to_a_frozen_redis_fails_within_its_timeout(
    redis_process: RedisProcess,
) -> None:
    """append() (the blocking form, for Flask/Django) raises WebhookQueueUnavailableError when
    Redis accepts connections but never answers: it is bounded by the socket timeout only.
    Guards against client_from_url without `socket_timeout=timeout`."""
    q = RedisWebhookQueue(redis_process.url, stream=f"gaps:{uuid.uuid4().hex}", timeout=0.3)
    try:
        redis_process.freeze()
        started = time.monotonic()
        with pytest.raises(WebhookQueueUnavailableError):
            await asyncio.wait_for(
                asyncio.to_thread(q.append, event_body("evt-f"), parsed("evt-f")), 3
            )
        assert time.monotonic() - started < 2
    finally:
        redis_process.thaw()
        await q.aclose()


async def test_a_failure_leaves_the_lease_and_entry_of_a_worker_that_took_them_over(
    redis_url: str,
) -> None:
    """A worker whose handler fails after another worker took its entry over (its heartbeat
    stalled past claim_after) released the other worker's lease and claimed the entry back:
    a third worker could then run the event while the second still did."""
    q = RedisWebhookQueue(
        redis_url, stream=f"takeover-{uuid.uuid4().hex}", claim_after=30, block=0.1
    )
    recorder = Recorder(failures=1)
    recorder.gate.clear()
    try:
        await q.enqueue(event_body("evt-t"), parsed("evt-t"))
        r = await raw(q)
        async with running(q, recorder, consumer="a"):
            await asyncio.wait_for(recorder.entered.wait(), 10)
            ((entry_id, _),) = await r.xrange(q.stream)
            lease = f"{q.stream}:lease:evt-t"
            await take_over(q, entry_id, lease)
            recorder.gate.set()  # a's handler now fails (the stop waits for its aftermath)
        assert await r.get(lease) == b"b " + entry_id
        (pending,) = await r.xpending_range(q.stream, q.group, entry_id, entry_id, 1)
        assert pending["consumer"] == b"b"
    finally:
        await q.aclose()


async def test_a_heartbeat_does_not_claim_back_an_entry_another_worker_took_over(
    queue: RedisWebhookQueue,
) -> None:
    """A worker whose entry was taken over (its heartbeat stalled past claim_after, then Redis
    came back) kept claiming the entry back and renewing the other worker's lease every
    claim_after / 3: the entry changed hands while both ran. Its heartbeat now renews only what
    is still its own."""
    slow = Recorder()
    slow.gate.clear()
    await queue.enqueue(event_body("evt-hb"), parsed("evt-hb"))
    r = await raw(queue)
    async with running(queue, slow, consumer="a"):
        await asyncio.wait_for(slow.entered.wait(), 10)
        ((entry_id, _),) = await r.xrange(queue.stream)
        lease = f"{queue.stream}:lease:evt-hb"
        await take_over(queue, entry_id, lease, px=5_000)
        await asyncio.sleep(queue.claim_after)  # three of a's heartbeat periods
        (pending,) = await r.xpending_range(queue.stream, queue.group, entry_id, entry_id, 1)
        assert pending["consumer"] == b"b"
        assert await r.pttl(lease) < 5_000 - queue.claim_after * 900
        slow.gate.set()


async def test_a_last_failure_after_a_takeover_leaves_the_entry_to_the_new_worker(
    redis_url: str,
) -> None:
    """A worker whose last allowed attempt fails after another worker took the entry over
    (and may still be running it) does not dead-letter it: that deleted the entry and the other
    worker's lease from under it, and listed as dead an event the other worker then handled."""
    q = RedisWebhookQueue(
        redis_url, stream=f"takeover-{uuid.uuid4().hex}", claim_after=30, max_attempts=1, block=0.1
    )
    recorder = Recorder(failures=1)
    recorder.gate.clear()
    try:
        await q.enqueue(event_body("evt-d"), parsed("evt-d"))
        r = await raw(q)
        async with running(q, recorder, consumer="a"):
            await asyncio.wait_for(recorder.entered.wait(), 10)
            ((entry_id, _),) = await r.xrange(q.stream)
            lease = f"{q.stream}:lease:evt-d"
            await take_over(q, entry_id, lease)
            recorder.gate.set()  # a's one attempt fails (the stop waits for its aftermath)
        assert await q.dead_letters() == []
        assert await r.get(lease) == b"b " + entry_id
        assert [e for e, _ in await r.xrange(q.stream)] == [entry_id]
        (pending,) = await r.xpending_range(q.stream, q.group, entry_id, entry_id, 1)
        assert pending["consumer"] == b"b"
    finally:
        await q.aclose()


# --- the Redis webhook worker -------------------------------------------------------------------


@pytest.mark.redis
async def test_a_dead_lettered_event_enqueued_again_is_handled_at_once(
    redis_url: str,
) -> None:
    """Guards against _DEAD keeping the event's lease: a copy of a dead-lettered event enqueued
    again (the app replaying its dead letters, or a Telnyx redelivery) within the lease's life
    was acknowledged as a "duplicate of a running entry" and never handled, although nothing
    ran it any more."""
    q = RedisWebhookQueue(
        redis_url, stream=f"m-{uuid.uuid4().hex}", claim_after=5, max_attempts=1, block=0.1
    )
    handler = Recorder(failures=1)
    try:
        async with running(q, handler):
            await q.enqueue(event_body("evt-replay"), parsed("evt-replay"))

            async def one_letter() -> bool:
                return len(await q.dead_letters()) == 1

            await wait_until(one_letter, 3)
            assert await q._redis.exists(f"{q.stream}:lease:evt-replay") == 0
            await q.enqueue(event_body("evt-replay"), parsed("evt-replay"))
            await wait_until(lambda: handler.events, 3)  # well before the 4.5 s lease would expire
            assert [e.id for e in handler.events] == ["evt-replay"]
    finally:
        await q.aclose()


@pytest.mark.redis
async def test_a_copy_of_a_failed_event_runs_without_waiting_for_claim_after(
    redis_url: str,
) -> None:
    """Guards against _RELEASE keeping the lease after a failed attempt: a second copy of the
    event (a Telnyx redelivery) arriving after the failure was acknowledged as a duplicate and
    the event waited for the first entry's retry, claim_after later."""
    q = RedisWebhookQueue(
        redis_url, stream=f"m-{uuid.uuid4().hex}", claim_after=5, max_attempts=3, block=0.1
    )
    handler = Recorder(failures=1)
    try:
        async with running(q, handler):
            await q.enqueue(event_body("evt-copy"), parsed("evt-copy"))
            await wait_until(lambda: handler.calls == 1, 3)

            async def released() -> bool:
                return bool(await q._redis.exists(f"{q.stream}:lease:evt-copy") == 0)

            await wait_until(released, 2)
            await q.enqueue(event_body("evt-copy"), parsed("evt-copy"))
            await wait_until(lambda: handler.events, 3)
            assert [e.id for e in handler.events] == ["evt-copy"]
    finally:
        await q.aclose()


@pytest.mark.redis
async def test_a_last_failure_keeps_a_lease_another_entry_took(
    redis_url: str,
) -> None:
    """Guards against _DEAD deleting the event's lease without comparing its holder: a worker
    whose lease expired (its heartbeat stalled) while its handler ran, and whose last attempt
    then failed, deleted the lease another worker had since taken for a second copy of the
    event, so a third copy could run alongside that one."""
    q = RedisWebhookQueue(
        redis_url, stream=f"m-{uuid.uuid4().hex}", claim_after=30, max_attempts=1, block=0.1
    )
    handler = Recorder(failures=1)  # its last attempt fails, once let through
    handler.gate.clear()
    try:
        async with running(q, handler):
            await q.enqueue(event_body("evt-lease2"), parsed("evt-lease2"))
            await asyncio.wait_for(handler.entered.wait(), 10)
            lease = f"{q.stream}:lease:evt-lease2"
            # What happens when this worker's lease expires and worker b takes it for a second
            # copy of the event (another entry), which it is now running:
            await q._redis.set(lease, b"b 9999999999999-0")
            handler.gate.set()

            async def one_letter() -> bool:
                return len(await q.dead_letters()) == 1

            await wait_until(one_letter, 5)
            assert await q._redis.get(lease) == b"b 9999999999999-0"
    finally:
        await q.aclose()


@pytest.mark.redis
async def test_a_heartbeat_survives_a_redis_stall_shorter_than_claim_after(
    redis_process: Any,
) -> None:
    """Guards against the heartbeat ending at its first failed beat: after a Redis stall
    much shorter than claim_after (a failover, a slow fork), the running entry stopped being
    renewed, looked idle and was taken over by another worker, which ran the event a second
    time alongside the first."""
    q = RedisWebhookQueue(
        redis_process.url,
        stream=f"m-{uuid.uuid4().hex}",
        claim_after=2.0,
        timeout=0.2,
        block=0.1,
    )
    gate = asyncio.Event()
    entered = asyncio.Event()
    calls = 0

    async def slow(event: WebhookEvent) -> None:
        nonlocal calls
        calls += 1
        entered.set()
        await gate.wait()

    first = asyncio.get_running_loop().create_task(q.run({"message.finalized": slow}, consumer="a"))
    second: asyncio.Task[None] | None = None
    try:
        await q.enqueue(event_body("evt-stall"), parsed("evt-stall"))
        await asyncio.wait_for(entered.wait(), 10)
        second = asyncio.get_running_loop().create_task(
            q.run({"message.finalized": slow}, consumer="b")
        )
        await asyncio.sleep(0.3)
        redis_process.freeze()
        try:
            await asyncio.sleep(0.8)  # longer than a heartbeat period (claim_after / 3)
        finally:
            redis_process.thaw()
        await asyncio.sleep(3.0)  # past claim_after after the last renewal before the stall
        assert calls == 1
        gate.set()

        async def handled() -> bool:
            return await q.pending() == 0

        await wait_until(handled, 10)
        assert calls == 1
    finally:
        gate.set()
        q.stop()
        await asyncio.wait_for(
            asyncio.gather(first, *([second] if second else []), return_exceptions=True), 10
        )
        await q.aclose()


async def _consumers(q: RedisWebhookQueue) -> list[str]:
    rows: list[dict[str, Any]] = await q._redis.xinfo_consumers(q.stream, q.group)
    return [
        name.decode() if isinstance(name, bytes) else str(name)
        for name in (row["name"] for row in rows)
    ]


async def test_a_stop_under_traffic_leaves_no_consumer_behind(redis_url: str) -> None:
    """On SIGTERM the worker (docs/deployment.md) "leaves the consumer group if it holds no
    pending entry, so restarts under new names do not pile consumers up". A worker stopped
    while it waits in its blocking read, with webhooks still arriving, reads one more entry
    that it does not run: it kept that entry and so stayed in the group for good (a ghost
    consumer per such restart, `XINFO CONSUMERS` growing), and the event waited a full
    ``claim_after`` (30 s by default) although another worker was live and idle. The entry
    must go to a live worker, and the stopped worker must leave the group."""
    stream = f"test:{uuid.uuid4().hex}"
    live_q = RedisWebhookQueue(redis_url, stream=stream, claim_after=10.0, block=0.2)
    old_q = RedisWebhookQueue(redis_url, stream=stream, claim_after=10.0, block=1.0)
    live = Recorder()
    live.gate.clear()  # the live worker is busy with a first event while the other stops
    old = Recorder()
    loop = asyncio.get_running_loop()
    live_task = old_task = None
    try:
        await live_q.enqueue(event_body("evt-busy"), parsed("evt-busy"))
        live_task = loop.create_task(live_q.run({}, default=live, consumer="live"))
        await asyncio.wait_for(live.entered.wait(), 10)
        old_task = loop.create_task(old_q.run({}, default=old, consumer="old"))
        await wait_until(lambda: _has_consumer(old_q, "old"))
        await asyncio.sleep(0.2)  # in its blocking XREADGROUP now
        old_q.stop()  # SIGTERM
        await live_q.enqueue(event_body("evt-late"), parsed("evt-late"))  # still arriving
        await asyncio.wait_for(old_task, 10)
        assert old.calls == 0  # stop() starts no new handler (documented)
        assert "old" not in await _consumers(old_q)
        live.gate.set()
        # Not lost, and not held back for claim_after while a worker was free.
        await wait_until(
            lambda: [e.id for e in live.events] == ["evt-busy", "evt-late"],
            timeout=8,
        )
        await wait_until(lambda: _zero_pending(live_q))
    finally:
        live_q.stop()
        old_q.stop()
        live.gate.set()
        tasks = [t for t in (live_task, old_task) if t is not None]
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        await live_q.aclose()
        await old_q.aclose()


async def _has_consumer(q: RedisWebhookQueue, name: str) -> bool:
    return name in await _consumers(q)


async def _consumer_names(q: RedisWebhookQueue) -> set[str]:
    rows: list[dict[str, Any]] = await q._redis.xinfo_consumers(q.stream, q.group)
    return {
        name.decode() if isinstance(name, bytes) else str(name)
        for name in (row["name"] for row in rows)
    }


async def test_a_worker_killed_holding_an_entry_is_removed_once_its_entry_is_taken_over(
    redis_url: str,
) -> None:
    """docs/deployment.md, kill -9: "A killed worker cannot leave the consumer group; the next
    worker to start removes it once it holds no entry". A worker is OOM-killed (kill -9) while
    its handler runs, the usual case, and the supervisor restarts one at once: the new worker
    looks for dead consumers only at its start, when the killed one still holds its entry in
    flight, and never again. It takes that entry over after claim_after and handles it; the
    dead consumer, now holding nothing, stayed in the group for good (until some later start,
    which a single long-running worker never has)."""
    q = RedisWebhookQueue(
        redis_url, stream=f"test:{uuid.uuid4().hex}", claim_after=1.0, block=0.2, timeout=0.5
    )
    recorder = Recorder()
    try:
        await q.enqueue(event_body("evt-inflight"), parsed("evt-inflight"))
        # The killed worker read it (its handler was running when kill -9 came).
        await q._redis.xreadgroup(q.group, "killed", {q.stream: ">"}, count=1)
        async with running(q, recorder, consumer="restarted"):
            await wait_until(lambda: [e.id for e in recorder.events] == ["evt-inflight"])
            # Twice block + timeout (1.4 s) after its last read, and holding no entry: the
            # killed consumer must go while the restarted worker runs.
            assert await _settled(q, {"restarted"}, timeout=6) == {"restarted"}
    finally:
        await q.aclose()


async def _settled(q: RedisWebhookQueue, expected: set[str], timeout: float) -> set[str]:
    """The group's consumers once they are ``expected``, or as they are after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await _consumer_names(q)
        if found == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_workers_stopped_together_under_traffic_leave_no_consumer_behind(
    redis_url: str,
) -> None:
    """docs/deployment.md, SIGTERM: the worker "leaves the consumer group if it holds no
    pending entry, so restarts under new names do not pile consumers up"; the changelog: a
    worker stopped while deliveries arrive hands the entry it read to another worker "and
    leaves the group". A deploy stops all workers at once (systemctl stop, a scale-down) while
    webhooks arrive: each reads one more entry and hands it to the other stopping worker, so
    neither leaves. The next workers take both entries over at once, as promised, but the two
    stopped consumers, holding nothing now, stayed in the group for good (the new workers
    tidy the group only at their start, when the entries were still held)."""
    stream = f"test:{uuid.uuid4().hex}"
    settings: dict[str, Any] = {"stream": stream, "claim_after": 5.0, "block": 1.0, "timeout": 0.5}
    first, second, after = (RedisWebhookQueue(redis_url, **settings) for _ in range(3))
    loop = asyncio.get_running_loop()
    old = Recorder()
    tasks = [
        loop.create_task(q.run({}, default=old, consumer=name))
        for q, name in ((first, "old-1"), (second, "old-2"))
    ]
    new = Recorder()
    try:
        await asyncio.sleep(0.3)  # both wait in their blocking XREADGROUP
        first.stop()  # SIGTERM to every worker of the deploy
        second.stop()
        for event_id in ("evt-late-1", "evt-late-2"):  # webhooks still arriving
            await first.enqueue(event_body(event_id), parsed(event_id))
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert old.calls == 0  # stop() starts no new handler (documented)
        async with running(after, new, consumer="new"):
            await wait_until(
                lambda: sorted(e.id or "" for e in new.events) == ["evt-late-1", "evt-late-2"],
                timeout=5,
            )
            # claim_after + twice block + timeout, and some margin.
            assert await _settled(after, {"new"}, timeout=10) == {"new"}
    finally:
        for q in (first, second):
            q.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        for q in (first, second, after):
            await q.aclose()


FROZEN_CLAIM_AFTER = 1.0
FROZEN_FOR = 2.5


async def test_a_handled_event_is_not_run_again_after_redis_froze_past_claim_after(
    redis_process: RedisProcess,
) -> None:
    """One worker; its handler returns, and Redis freezes (a stall, a partition, a failover)
    before the acknowledgement, for longer than ``claim_after``; then it answers again with the
    entry still pending. No worker died, so this is not "the one window" of docs/webhooks.md:
    the handler must run once. The worker gave up acknowledging after ``claim_after``, then
    took its own handled entry over with XAUTOCLAIM and ran the handler a second time (an
    auto-reply SMS sent twice)."""
    queue = RedisWebhookQueue(
        redis_process.url, claim_after=FROZEN_CLAIM_AFTER, timeout=0.3, block=0.3, max_attempts=5
    )
    calls: list[str | None] = []
    first_done = asyncio.Event()
    again = asyncio.Event()

    async def handler(event: WebhookEvent) -> None:
        calls.append(event.id)
        if len(calls) > 1:
            again.set()
        else:
            # Redis stops answering as this handler returns, for longer than claim_after.
            pause = redis.Redis.from_url(redis_process.url)
            pause.client_pause(int(FROZEN_FOR * 1000), all=True)
            pause.close()
            first_done.set()

    worker = asyncio.create_task(queue.run({"message.finalized": handler}))
    try:
        await queue.enqueue(event_body("evt-once"), parsed("evt-once"))
        await asyncio.wait_for(first_done.wait(), 10)
        # Redis is back after FROZEN_FOR; give the worker a few claim periods to settle.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(again.wait(), FROZEN_FOR + 4 * FROZEN_CLAIM_AFTER)
        assert calls == ["evt-once"], f"the handler ran {len(calls)} times for one event"
        assert await queue.pending() == 0  # and the handled entry was acknowledged
    finally:
        queue.stop()
        await asyncio.wait_for(worker, 10)
        await queue.aclose()


LATER_LOOP_SCRIPT = """
import asyncio, sys, uuid
sys.path.insert(0, sys.argv[2])
from telnyx_msg import RedisDeliveryTracker, RedisWebhookQueue
from tests.test_webhook_queue import event_body, parsed
prefix = f"later:{uuid.uuid4().hex}:"
queue = RedisWebhookQueue(sys.argv[1], stream=prefix + "stream")
tracker = RedisDeliveryTracker(sys.argv[1], key_prefix=prefix)

async def use():
    await queue.enqueue(event_body("evt-later"), parsed("evt-later"))
    assert await tracker.result("no-such-message") is None

asyncio.run(use())
for closable in (queue, tracker):
    asyncio.run(closable.aclose())
print("closed")
"""


def test_a_queue_or_tracker_closes_in_a_later_loop_than_the_one_it_ran_in(redis_url: str) -> None:
    """A script uses a module-level queue and tracker in one ``asyncio.run`` and closes them
    in the next (an exit hook): ``aclose`` drops the connections of the ended loop rather than
    raising ``RuntimeError: Event loop is closed``. (In a child process: the sockets the ended
    loop left open are the garbage collector's, with ResourceWarnings this suite makes errors.)"""
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", LATER_LOOP_SCRIPT, redis_url, root],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "closed"


# --- queue= with a replay store: a seen id is acknowledged, a failed store answers 503 -------

Reply = tuple[int, str]
Deliver = Callable[[bytes], Awaitable[Reply]]


@pytest.fixture
def store_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """The replay store's redis-server, which the test may kill or freeze."""
    proc = RedisProcess(tmp_path)
    yield proc
    proc.close()


async def stream_length(q: RedisWebhookQueue) -> int:
    """How many entries the queue's stream holds (0 when it does not exist)."""
    client: Any = q._redis
    length: int = await client.xlen(q.stream)
    return length


async def asgi_call(app: AsgiWebhookApp, body: bytes) -> Reply:
    """One signed POST through the ASGI app, as an ASGI server makes it."""
    headers = sign(body)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/hooks",
        "raw_path": b"/hooks",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    incoming: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status: int = sent[0]["status"]
    text = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    return status, text


@asynccontextmanager
async def receiver(
    kind: str, verifier: WebhookVerifier, q: RedisWebhookQueue
) -> AsyncIterator[Deliver]:
    """A receiver of ``kind`` ("aiohttp": a real server on 127.0.0.1; "asgi": the app) with
    ``queue=q``; yields a function that delivers one signed body and returns the answer."""
    if kind == "asgi":
        app = asgi_app(verifier, {}, queue=q)
        try:

            async def deliver_asgi(body: bytes) -> Reply:
                return await asgi_call(app, body)

            yield deliver_asgi
        finally:
            await app.aclose()
        return
    handler: AiohttpWebhookHandler = aiohttp_handler(verifier, {}, queue=q)
    web_app = web.Application()
    web_app.router.add_post("/hooks", handler)
    web_app.on_cleanup.append(handler.on_cleanup)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    try:
        async with aiohttp.ClientSession() as session:

            async def deliver_http(body: bytes) -> Reply:
                async with session.post(
                    url, data=body, headers=sign(body), timeout=aiohttp.ClientTimeout(total=10)
                ) as response:
                    return response.status, await response.text()

            yield deliver_http
    finally:
        await runner.cleanup()


RECEIVERS = pytest.mark.parametrize("kind", ["aiohttp", "asgi"])


# --- R22: an event id the replay store has already seen ---------------------------------------


@RECEIVERS
@pytest.mark.parametrize("store_kind", ["memory", "redis"])
async def test_a_delivery_already_seen_is_acknowledged_and_not_queued_again(
    kind: str, store_kind: str, queue: RedisWebhookQueue, redis_url: str
) -> None:
    """A delivery whose event id the replay store already holds is answered 200 ``duplicate,
    skipped`` (Telnyx stops redelivering it) and nothing is appended, so the workers do not
    run its handler a second time. A new event through the same receiver is still queued, and
    the queue path does not write the replay store."""
    store: MemoryReplayStore | RedisReplayStore = (
        MemoryReplayStore()
        if store_kind == "memory"
        else RedisReplayStore(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    )
    verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)
    seen = event_body("evt-seen")
    await verifier.amark_seen(verifier.unwrap(seen, sign(seen), mark_seen=False))
    try:
        async with receiver(kind, verifier, queue) as deliver:
            assert await deliver(seen) == (200, "duplicate, skipped")
            assert await stream_length(queue) == 0
            assert await deliver(seen) == (200, "duplicate, skipped")
            assert await stream_length(queue) == 0
            fresh = event_body("evt-fresh")
            assert await deliver(fresh) == (200, "queued")
            assert await stream_length(queue) == 1
        assert await store.aseen("evt-seen")
        assert not await store.aseen("evt-fresh")
    finally:
        if isinstance(store, RedisReplayStore):
            await store.aclose()


# --- R24: the replay store's Redis fails ----------------------------------------------------


@RECEIVERS
async def test_a_replay_store_whose_redis_is_down_is_answered_503_then_queued_on_redelivery(
    kind: str, queue: RedisWebhookQueue, store_redis: RedisProcess
) -> None:
    """The replay store's Redis is killed while the queue's is up: the delivery is answered
    503 ``replay store unavailable`` (Telnyx delivers again), not 200 with the event dropped
    and not a 500, and nothing is appended. Once that Redis is back, the redelivery is queued."""
    store = RedisReplayStore(store_redis.url, timeout=0.5)
    verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)
    body = event_body("evt-outage")
    try:
        async with receiver(kind, verifier, queue) as deliver:
            assert await deliver(event_body("evt-before")) == (200, "queued")
            store_redis.kill()
            started = time.monotonic()
            assert await deliver(body) == (503, "replay store unavailable")
            assert time.monotonic() - started < 3.0
            assert await stream_length(queue) == 1  # only evt-before
            store_redis.start()
            assert await deliver(body) == (200, "queued")
            assert await stream_length(queue) == 2
    finally:
        await store.aclose()


@RECEIVERS
async def test_a_frozen_replay_store_is_answered_503_within_its_timeout(
    kind: str, queue: RedisWebhookQueue, store_redis: RedisProcess
) -> None:
    """The replay store's Redis accepts connections but never answers (SIGSTOP): the delivery
    is answered 503 ``replay store unavailable`` about the store's ``timeout`` later (before
    Telnyx's own deadline), and nothing is appended."""
    store = RedisReplayStore(store_redis.url, timeout=0.5)
    verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)
    try:
        async with receiver(kind, verifier, queue) as deliver:
            assert await deliver(event_body("evt-warm")) == (200, "queued")
            store_redis.freeze()
            try:
                started = time.monotonic()
                reply = await deliver(event_body("evt-frozen"))
                elapsed = time.monotonic() - started
            finally:
                store_redis.thaw()
            assert reply == (503, "replay store unavailable")
            assert elapsed < 2.0
            assert await stream_length(queue) == 1
    finally:
        await store.aclose()
