"""RedisReplayStore against a real redis-server started on a free 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from telnyx_msg.errors import ConfigurationError, DuplicateWebhookError
from telnyx_msg.receivers import asgi_app
from telnyx_msg.webhooks import RedisReplayStore, WebhookVerifier

NOW = 1_700_000_000
KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisReplayStore]:
    """A store with a unique key prefix, closed after the test."""
    replay_store = RedisReplayStore(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    yield replay_store
    await replay_store.aclose()


def sign(body: bytes, timestamp: int = NOW) -> dict[str, str]:
    signature = KEY.sign(f"{timestamp}|".encode() + body)
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": str(timestamp),
    }


def event_body(event_id: str = "evt-1") -> bytes:
    return json.dumps(
        {
            "data": {
                "record_type": "event",
                "id": event_id,
                "event_type": "message.finalized",
                "payload": {"id": "msg-1", "to": []},
            }
        }
    ).encode()


@pytest.mark.redis
@pytest.mark.anyio
async def test_mark_if_new_is_atomic_set_nx(store: RedisReplayStore) -> None:
    """amark_if_new stores a new id once and reports repeats."""
    assert await store.amark_if_new("a", 601)
    assert not await store.amark_if_new("a", 601)
    assert await store.aseen("a")
    assert not await store.aseen("b")


@pytest.mark.redis
@pytest.mark.anyio
async def test_keys_carry_prefix_and_expiry(store: RedisReplayStore) -> None:
    """Keys are key_prefix + id with an EX of the ttl rounded up."""
    await store.amark_if_new("a", 600.2)
    await store.amark("b", 0.1)
    client: Any = store._asyncio()
    assert await client.ttl(store.key_prefix + "a") == 601  # rounded up, never down
    assert await client.ttl(store.key_prefix + "b") == 1
    assert await client.get(store.key_prefix + "a") == b"1"


@pytest.mark.redis
@pytest.mark.anyio
async def test_ids_expire(store: RedisReplayStore) -> None:
    """An id is forgotten after its ttl."""
    await store.amark("short", 1)
    assert await store.aseen("short")
    client: Any = store._asyncio()
    await client.pexpire(store.key_prefix + "short", 50)
    deadline = time.monotonic() + 2
    while await store.aseen("short"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


@pytest.mark.redis
@pytest.mark.anyio
async def test_store_ttl_override(redis_url: str) -> None:
    """RedisReplayStore(ttl=...) wins over the verifier's ttl."""
    replay_store = RedisReplayStore(redis_url, key_prefix=f"t:{uuid.uuid4().hex}:", ttl=86_400)
    try:
        await replay_store.amark_if_new("a", 601)
        client: Any = replay_store._asyncio()
        assert await client.ttl(replay_store.key_prefix + "a") > 86_000
    finally:
        await replay_store.aclose()


@pytest.mark.redis
@pytest.mark.anyio
async def test_aunwrap_detects_duplicates_across_verifiers(store: RedisReplayStore) -> None:
    """Two verifiers (think: two processes) sharing Redis see each other's event ids."""
    first = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)
    second = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)
    body = event_body()
    await first.aunwrap(body, sign(body))
    with pytest.raises(DuplicateWebhookError) as info:
        await second.aunwrap(body, sign(body, NOW - 3))
    assert info.value.event_id == "evt-1"


@pytest.mark.redis
@pytest.mark.anyio
async def test_two_phase_with_redis(store: RedisReplayStore) -> None:
    """mark_seen=False leaves the id free until amark_seen records it."""
    verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)
    body = event_body()
    event = await verifier.aunwrap(body, sign(body), mark_seen=False)
    await verifier.aunwrap(body, sign(body), mark_seen=False)
    await verifier.amark_seen(event)
    with pytest.raises(DuplicateWebhookError):
        await verifier.aunwrap(body, sign(body), mark_seen=False)


@pytest.mark.redis
def test_blocking_unwrap_shares_the_window_across_processes(redis_url: str) -> None:
    """A Flask/Django app in several processes: each builds its own store from the URL, and a
    redelivery reaching another process is a duplicate there (also for aunwrap: same keys)."""
    prefix = f"sync:{uuid.uuid4().hex}:"
    first = RedisReplayStore(redis_url, key_prefix=prefix)
    second = RedisReplayStore(redis_url, key_prefix=prefix)
    try:
        body = event_body()
        event = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=first).unwrap(
            body, sign(body)
        )
        assert event.id == "evt-1"
        other = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=second)
        with pytest.raises(DuplicateWebhookError):
            other.unwrap(body, sign(body, NOW - 3))

        async def from_async_code() -> None:
            with pytest.raises(DuplicateWebhookError):
                await other.aunwrap(body, sign(body))
            await second.aclose()

        asyncio.run(from_async_code())
    finally:
        first.close()
        second.close()


@pytest.mark.redis
def test_blocking_two_phase_with_redis(redis_url: str) -> None:
    """unwrap(mark_seen=False) only checks; mark_seen records the id for every process."""
    replay_store = RedisReplayStore(redis_url, key_prefix=f"sync:{uuid.uuid4().hex}:", ttl=50)
    try:
        verifier = WebhookVerifier(
            PUBLIC, clock=lambda: NOW, tolerance=20, replay_store=replay_store
        )  # its window, 41 s, within the ttl of 50 s
        body = event_body()
        event = verifier.unwrap(body, sign(body), mark_seen=False)
        verifier.unwrap(body, sign(body), mark_seen=False)  # processing failed: still new
        assert not replay_store.seen("evt-1")
        verifier.mark_seen(event)
        assert replay_store.seen("evt-1")
        with pytest.raises(DuplicateWebhookError):
            verifier.unwrap(body, sign(body), mark_seen=False)
        assert replay_store._sync_client.ttl(replay_store.key_prefix + "evt-1") in (49, 50)
    finally:
        replay_store.close()


def _unwrap_in_child(url: str, prefix: str, inherited: RedisReplayStore, out: Any) -> None:
    body = event_body("evt-child")
    WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=inherited).unwrap(body, sign(body))
    out.put(inherited.seen("evt-parent"))


@pytest.mark.redis
def test_blocking_store_survives_fork(redis_url: str) -> None:
    """A store built and used before a fork (gunicorn --preload) works in the worker, and the
    worker's use leaves the parent's connection working."""
    import multiprocessing

    prefix = f"fork:{uuid.uuid4().hex}:"
    replay_store = RedisReplayStore(redis_url, key_prefix=prefix)
    try:
        assert replay_store.mark_if_new("evt-parent", 60)  # the parent holds a connection now
        context = multiprocessing.get_context("fork")
        out = context.Queue()
        child = context.Process(
            target=_unwrap_in_child, args=(redis_url, prefix, replay_store, out)
        )
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert out.get(timeout=5) is True
        assert replay_store.seen("evt-child")
        assert not replay_store.mark_if_new("evt-parent", 60)
    finally:
        replay_store.close()


@pytest.mark.redis
def test_blocking_unwrap_with_redis_down_raises_and_marks_nothing(redis_url: str) -> None:
    """Redis unreachable: unwrap raises Redis's own error (the app answers 5xx and Telnyx
    delivers again), and the event is not lost: it is new once Redis answers."""
    import redis

    from tests.redis_proc import unused_url

    prefix = f"down:{uuid.uuid4().hex}:"
    down = RedisReplayStore(unused_url(), key_prefix=prefix, timeout=0.5)
    up = RedisReplayStore(redis_url, key_prefix=prefix)
    try:
        body = event_body()
        with pytest.raises(redis.exceptions.ConnectionError):
            WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=down).unwrap(body, sign(body))
        verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=up)
        assert verifier.unwrap(body, sign(body)).id == "evt-1"
    finally:
        down.close()
        up.close()


@pytest.mark.redis
def test_blocking_unwrap_with_frozen_redis_raises_within_timeout() -> None:
    """A Redis that accepts connections and never answers: unwrap raises Redis's timeout error
    (bounded by the store's timeout) instead of holding the request past Telnyx's 2 s."""
    import socket

    import redis

    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(8)  # the kernel completes connections nobody ever reads from
        port = frozen.getsockname()[1]
        replay_store = RedisReplayStore(f"redis://127.0.0.1:{port}/0", timeout=0.3)
        try:
            verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=replay_store)
            body = event_body()
            with pytest.raises(redis.exceptions.TimeoutError):
                verifier.unwrap(body, sign(body))
        finally:
            replay_store.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_unwrap_with_borrowed_async_client_says_use_aunwrap(redis_url: str) -> None:
    """A store given a redis.asyncio client is async only: unwrap says what to do instead."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        replay_store = RedisReplayStore(client=client, key_prefix=f"b:{uuid.uuid4().hex}:")
        verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=replay_store)
        body = event_body()
        with pytest.raises(ConfigurationError, match=r"aunwrap.*URL"):
            verifier.unwrap(body, sign(body))
        assert (await verifier.aunwrap(body, sign(body))).id == "evt-1"
    finally:
        await client.aclose()


@pytest.mark.redis
@pytest.mark.anyio
async def test_receiver_with_redis_store(store: RedisReplayStore) -> None:
    """The ASGI receiver marks the event in Redis only after the handler succeeded."""
    seen: list[str | None] = []

    async def handler(event: Any) -> None:
        assert not await store.aseen("evt-1")  # still unmarked while the handler runs
        seen.append(event.id)

    app = asgi_app(
        WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store),
        {"message.finalized": handler},
    )
    body = event_body()
    statuses = []
    for _ in range(2):
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any, sent: list[Any] = sent) -> None:
            sent.append(message)

        headers = [(k.encode(), v.encode()) for k, v in sign(body).items()]
        await app({"type": "http", "method": "POST", "headers": headers}, receive, send)
        statuses.append(sent[0]["status"])
        await app.drain()
    await app.aclose()
    assert statuses == [200, 200]
    assert seen == ["evt-1"]
    assert await store.aseen("evt-1")


@pytest.mark.redis
@pytest.mark.anyio
async def test_borrowed_client_is_not_closed(redis_url: str) -> None:
    """aclose() leaves a client passed in by the caller open."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    try:
        replay_store = RedisReplayStore(client=client, key_prefix=f"b:{uuid.uuid4().hex}:")
        assert await replay_store.amark_if_new("a", 10)
        await replay_store.aclose()
        assert await client.ping()
    finally:
        await client.aclose()


def test_needs_url_or_client() -> None:
    """Without a URL or a client the store cannot be built."""
    with pytest.raises(ConfigurationError, match="URL or a client"):
        RedisReplayStore()


def test_bad_url_is_configuration_error() -> None:
    """A URL redis-py cannot parse raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="Redis URL"):
        RedisReplayStore("http://not-redis")


def test_missing_redis_package_is_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the redis extra installed the error says how to install it."""
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"telnyx_msg\[redis\]"):
        RedisReplayStore("redis://127.0.0.1:1/0")


@pytest.mark.redis
def test_borrowed_blocking_client_works_with_unwrap_and_stays_open(redis_url: str) -> None:
    """Given a blocking redis.Redis (a Flask app's own client), the store works with unwrap,
    says so clearly when awaited, and close() leaves the borrowed client open."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        replay_store = RedisReplayStore(client=client, key_prefix=f"bb:{uuid.uuid4().hex}:")
        verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=replay_store)
        body = event_body()
        assert verifier.unwrap(body, sign(body)).id == "evt-1"
        with pytest.raises(DuplicateWebhookError):
            verifier.unwrap(body, sign(body))
        with pytest.raises(ConfigurationError, match=r"blocking redis\.Redis client"):
            asyncio.run(verifier.aunwrap(body, sign(body)))
        replay_store.close()
        asyncio.run(replay_store.aclose())
        assert client.ping()
    finally:
        client.close()


@pytest.mark.redis
def test_receiver_startup_refuses_a_store_it_cannot_await(redis_url: str) -> None:
    """A receiver (async) given a store built on a blocking client fails at startup with the
    reason, rather than answering 503 to every delivery."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        replay_store = RedisReplayStore(client=client)
        app = asgi_app(WebhookVerifier(PUBLIC, replay_store=replay_store), {})
        with pytest.raises(ConfigurationError, match=r"blocking redis\.Redis client"):
            asyncio.run(app.startup())
    finally:
        client.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_fractional_ttl_is_rounded_up_never_down(redis_url: str) -> None:
    """EX takes whole seconds: 600.2 s (verifier ttl) and 2.5 s (store ttl) become 601 and 3,
    in both the async and the blocking form, so an id is never forgotten early."""
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisReplayStore(redis_url, key_prefix=prefix)
    own = RedisReplayStore(redis_url, key_prefix=prefix + "own:", ttl=2.5)
    try:
        await store.amark_if_new("a", 600.2)
        store.mark("b", 600.2)
        await own.amark("c", 601)
        client: Any = store._asyncio()
        assert await client.ttl(prefix + "a") == 601
        assert await client.ttl(prefix + "b") == 601
        assert await client.ttl(prefix + "own:c") == 3
    finally:
        await store.aclose()
        await own.aclose()


@pytest.mark.redis
def test_one_store_serves_aunwrap_from_successive_event_loops(redis_url: str) -> None:
    """A verifier and its RedisReplayStore built once, at import, and ``aunwrap`` awaited
    from one event loop after another (``asyncio.run`` per delivery, a Django async view under
    WSGI): every delivery verifies, and each loop's connections close with it. Every second
    one failed with ``RuntimeError: Event loop is closed`` (the pooled connection belonged to
    the loop before), which the app answered 500."""
    store = RedisReplayStore(redis_url, key_prefix=f"loops:{uuid.uuid4().hex}:")
    verifier = WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store)

    async def deliver(event_id: str) -> str:
        body = event_body(event_id)
        try:
            event = await verifier.aunwrap(body, sign(body))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return f"ok {event.id}"

    try:
        outcomes = [asyncio.run(deliver(f"evt-loop-{i}")) for i in range(4)]
        assert outcomes == [f"ok evt-loop-{i}" for i in range(4)]
        assert store._clients is not None
        assert not store._clients._clients  # each loop's client closed with its loop
    finally:
        store.close()


@pytest.mark.redis
def test_an_asgi_receiver_with_a_redis_store_serves_a_second_event_loop(redis_url: str) -> None:
    """The ASGI receiver served by one event loop, then another (a test client per test, an
    in-process restart) with a module-level verifier and RedisReplayStore: the first delivery
    on the second loop is handled (200), not answered 503 "replay store unavailable"."""
    store = RedisReplayStore(redis_url, key_prefix=f"loops:{uuid.uuid4().hex}:")
    handled: list[str | None] = []

    async def on_finalized(event: Any) -> None:
        handled.append(event.id)

    app = asgi_app(
        WebhookVerifier(PUBLIC, clock=lambda: NOW, replay_store=store),
        {"message.finalized": on_finalized},
    )

    async def one_delivery(event_id: str) -> int:
        body = event_body(event_id)
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        headers = [(k.encode(), v.encode()) for k, v in sign(body).items()]
        await app({"type": "http", "method": "POST", "headers": headers}, receive, send)
        await app.drain()
        status: int = sent[0]["status"]
        return status

    try:
        assert [asyncio.run(one_delivery(f"evt-serve-{i}")) for i in range(2)] == [200, 200]
    finally:
        store.close()
    assert handled == ["evt-serve-0", "evt-serve-1"]


@pytest.mark.redis
def test_aclose_returns_when_another_threads_loop_ends_meanwhile(redis_url: str) -> None:
    """An app's shutdown awaits ``store.aclose()`` while a background thread's event loop that
    used the same store is finishing (its last step still running). ``aclose`` must return:
    that loop's client is closed in that loop, and when the loop cancels the close as it shuts
    down, the CancelledError of that other loop's task came out of ``aclose`` in the caller's
    (uncancelled) task, aborting the rest of its shutdown."""
    store = RedisReplayStore(redis_url, key_prefix=f"found:{uuid.uuid4().hex}:")
    used = threading.Event()
    failures: list[BaseException] = []

    def last_step() -> None:
        time.sleep(0.3)  # blocking work: the loop is running, busy

    def background() -> None:
        async def work() -> None:
            await store.aseen("evt-bg")
            used.set()
            last_step()

        try:
            asyncio.run(work())
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=background)
    thread.start()
    try:
        assert used.wait(10)
        time.sleep(0.05)

        async def shutdown() -> str:
            try:
                await asyncio.wait_for(store.aclose(), 10)
            except BaseException as exc:
                return f"{type(exc).__name__}: {exc}"
            return "closed"

        assert asyncio.run(shutdown()) == "closed"
    finally:
        thread.join(10)
        store.close()
    assert not failures
