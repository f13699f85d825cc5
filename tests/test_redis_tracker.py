"""RedisDeliveryTracker against a real redis-server, across processes."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from telnyx_msg import (
    ConfigurationError,
    DeliveryTrackerUnavailableError,
    Message,
    RedisDeliveryTracker,
    TelnyxError,
)
from telnyx_msg.models import Recipient, WebhookEvent, WebhookEventType
from tests.redis_proc import RedisProcess, unused_url
from tests.test_tracker import bytes_kept_by_timed_out_waits, unreadable_finalized

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

REPO = Path(__file__).resolve().parent.parent


def event(event_type: str, message_id: str, *statuses: str, text: str = "hi") -> WebhookEvent:
    message = Message(
        id=message_id,
        text=text,
        to=tuple(
            Recipient(phone_number=f"+1555000{i:04d}", status=s) for i, s in enumerate(statuses)
        ),
    )
    return WebhookEvent(
        event_type=WebhookEventType(event_type),
        id=f"evt-{uuid.uuid4().hex}",
        occurred_at=None,
        payload=message,
    )


@pytest.fixture
async def tracker(redis_url: str) -> AsyncIterator[RedisDeliveryTracker]:
    """A tracker with a key prefix of its own."""
    t = RedisDeliveryTracker(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    yield t
    await t.aclose()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server this test may freeze."""
    proc = RedisProcess(tmp_path)
    yield proc
    proc.close()


async def test_final_status_returns_the_typed_message(tracker: RedisDeliveryTracker) -> None:
    """A finalized event stored by handle() comes back as a Message from result/final_status."""
    await tracker.handle(event("message.finalized", "m1", "delivered", text="héllo"))
    message = await tracker.final_status("m1", timeout=5)
    assert isinstance(message, Message)
    assert (message.id, message.text, message.to[0].status) == ("m1", "héllo", "delivered")
    assert await tracker.result("m1") == message
    assert await tracker.result("unknown") is None


async def test_non_final_updates_are_ignored(tracker: RedisDeliveryTracker) -> None:
    """message.sent with a recipient still queued is not final; all terminal is."""
    await tracker.handle(event("message.sent", "m2", "sent", "delivered"))
    assert await tracker.result("m2") is None
    await tracker.handle(event("message.sent", "m2", "delivery_failed", "delivered"))
    result = await tracker.result("m2")
    assert result is not None
    assert [r.status for r in result.to] == ["delivery_failed", "delivered"]


async def test_first_final_status_wins(tracker: RedisDeliveryTracker) -> None:
    """A repeat of an already-final message does not overwrite it (as DeliveryTracker)."""
    await tracker.handle(event("message.finalized", "m3", "delivered", text="first"))
    await tracker.handle(event("message.finalized", "m3", "delivery_failed", text="second"))
    result = await tracker.result("m3")
    assert result is not None
    assert result.text == "first"


async def test_waiter_is_woken_by_another_tracker(
    redis_url: str, tracker: RedisDeliveryTracker
) -> None:
    """A final_status waiting before the webhook arrives resolves when another tracker (on its
    own connections) records it."""
    other = RedisDeliveryTracker(redis_url, key_prefix=tracker.key_prefix)
    try:
        waiting = asyncio.get_running_loop().create_task(tracker.final_status("m4", timeout=10))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        started = time.monotonic()
        await other.handle(event("message.finalized", "m4", "delivered"))
        message = await asyncio.wait_for(waiting, 5)
        assert message.id == "m4"
        assert time.monotonic() - started < 1.0
        assert tracker.waiting == 0
    finally:
        await other.aclose()


async def test_timeout_none_waits_without_a_bound_as_the_in_memory_tracker(
    redis_url: str, tracker: RedisDeliveryTracker
) -> None:
    """``timeout=None`` means no bound, as for ``DeliveryTracker``: a service swapping one
    tracker for the other keeps working (it was a ValidationError), and a status recorded later
    still wakes the waiter."""
    other = RedisDeliveryTracker(redis_url, key_prefix=tracker.key_prefix)
    try:
        waiting = asyncio.get_running_loop().create_task(
            tracker.final_status("m-none", timeout=None)
        )
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await other.handle(event("message.finalized", "m-none", "delivered"))
        message = await asyncio.wait_for(waiting, 5)
        assert message.to[0].status == "delivered"
        assert tracker.waiting == 0
    finally:
        await other.aclose()


WAITER = """
import asyncio, sys
from telnyx_msg import RedisDeliveryTracker

async def main():
    async with RedisDeliveryTracker(sys.argv[1], key_prefix=sys.argv[2]) as tracker:
        message = await tracker.final_status(sys.argv[3], timeout=20)
        print(message.id, message.to[0].status, flush=True)

asyncio.run(main())
"""


def waiter_process(url: str, key_prefix: str, message_id: str) -> subprocess.Popen[bytes]:
    """A subprocess that prints the final status of ``message_id`` once it has it."""
    return subprocess.Popen(
        [sys.executable, "-c", WAITER, url, key_prefix, message_id],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def test_waiter_in_another_process_is_woken(
    tracker: RedisDeliveryTracker, redis_url: str
) -> None:
    """A final_status awaited in a subprocess resolves when this process records the webhook."""
    proc = waiter_process(redis_url, tracker.key_prefix, "m5")
    try:
        redis: Any = tracker._redis
        deadline = time.monotonic() + 20
        # The subprocess is subscribed once the channel has a subscriber.
        while (await redis.pubsub_numsub(tracker.channel))[0][1] < 1:
            assert time.monotonic() < deadline, "subprocess never subscribed"
            await asyncio.sleep(0.05)
        await tracker.handle(event("message.finalized", "m5", "delivered"))
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=20)
        assert proc.returncode == 0, stderr.decode()
        assert stdout.decode().split() == ["m5", "delivered"]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


async def test_final_status_times_out(tracker: RedisDeliveryTracker) -> None:
    """No final status: TimeoutError after the given timeout, and no waiter is left."""
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no final status for message m6 within 0\.3 s"):
        await tracker.final_status("m6", timeout=0.3)
    # Not returned early (uvloop's timers have millisecond resolution: up to 1 ms early).
    assert 0.29 <= time.monotonic() - started < 1.5
    assert tracker.waiting == 0


async def test_redis_down_raises_a_clear_error() -> None:
    """Nothing listens on the Redis port: handle/result/final_status raise
    DeliveryTrackerUnavailableError (a TelnyxError) quickly."""
    tracker = RedisDeliveryTracker(unused_url(), timeout=0.5)
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: tracker.handle(event("message.finalized", "m7", "delivered")),
            lambda: tracker.result("m7"),
            lambda: tracker.final_status("m7", timeout=30),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(DeliveryTrackerUnavailableError) as info:
                await call()
            assert time.monotonic() - started < 2.0
            assert "Redis" in str(info.value)
            assert isinstance(info.value, TelnyxError)
    finally:
        await tracker.aclose()


async def test_frozen_redis_does_not_hang(redis_process: RedisProcess) -> None:
    """A SIGSTOPped Redis: calls fail with DeliveryTrackerUnavailableError within the timeout."""
    tracker = RedisDeliveryTracker(redis_process.url, timeout=0.5)
    try:
        await tracker.handle(event("message.finalized", "m8", "delivered"))
        redis_process.freeze()
        started = time.monotonic()
        with pytest.raises(DeliveryTrackerUnavailableError):
            await tracker.result("m8")
        with pytest.raises(DeliveryTrackerUnavailableError):
            await tracker.final_status("m9", timeout=30)
        assert time.monotonic() - started < 3.0
    finally:
        redis_process.thaw()
        await tracker.aclose()


async def test_lost_subscription_fails_waiters_and_the_next_call_subscribes_again(
    redis_process: RedisProcess,
) -> None:
    """Redis dies while a final_status waits: it raises instead of waiting out its timeout.
    Once Redis is back, a final_status called afterwards subscribes again, so it is woken by a
    status recorded elsewhere."""
    tracker = RedisDeliveryTracker(redis_process.url, timeout=0.5)
    other = RedisDeliveryTracker(redis_process.url, timeout=0.5)
    try:
        waiting = asyncio.get_running_loop().create_task(tracker.final_status("m10", timeout=60))
        await asyncio.sleep(0.3)
        redis_process.kill()
        with pytest.raises(DeliveryTrackerUnavailableError):
            await asyncio.wait_for(waiting, 10)
        redis_process.start()
        for _ in range(2):  # redis-py 5 (no retries) fails one call on a stale pooled connection
            waiting = asyncio.get_running_loop().create_task(
                tracker.final_status("m11", timeout=10)
            )
            await asyncio.sleep(0.5)
            if not waiting.done():
                break
            with pytest.raises(DeliveryTrackerUnavailableError):
                await waiting
        assert not waiting.done()
        await other.handle(event("message.finalized", "m11", "delivered"))
        assert (await asyncio.wait_for(waiting, 5)).id == "m11"
    finally:
        await tracker.aclose()
        await other.aclose()


async def test_aclose_releases_waiters(redis_url: str) -> None:
    """Closing the tracker ends its waiting final_status calls with a clear error."""
    tracker = RedisDeliveryTracker(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    waiting = asyncio.get_running_loop().create_task(tracker.final_status("m11", timeout=60))
    await asyncio.sleep(0.2)
    await tracker.aclose()
    with pytest.raises(DeliveryTrackerUnavailableError, match="closed"):
        await asyncio.wait_for(waiting, 5)


async def test_a_closed_tracker_starts_no_new_listener(redis_url: str) -> None:
    """final_status after aclose() raises at once that the tracker is closed; it started a new
    pub/sub listener (a task and a Redis connection) that nothing would ever stop."""
    tracker = RedisDeliveryTracker(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:")
    with pytest.raises(TimeoutError):
        await tracker.final_status("m12", timeout=0.1)  # subscribed once
    await tracker.aclose()
    before = {t for t in asyncio.all_tasks() if not t.done()}
    with pytest.raises(DeliveryTrackerUnavailableError, match="closed"):
        await asyncio.wait_for(tracker.final_status("m12", timeout=5), 5)
    assert {t for t in asyncio.all_tasks() if not t.done()} == before
    assert tracker._listener is None


# The first run ends without closing the tracker (the mistake under test): its connection is
# reported unclosed when collected.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_use_from_a_second_asyncio_run_is_a_configuration_error(redis_url: str) -> None:
    """A tracker used again after its first asyncio.run() ended says what to do, instead of
    a bare "RuntimeError: Event loop is closed" from redis-py."""
    tracker = RedisDeliveryTracker(redis_url, key_prefix=f"t-{uuid.uuid4().hex}:")
    assert asyncio.run(tracker.result("m-1")) is None
    # Every later run, not every other one: the failed call dropped the connection, and the
    # next run's call worked on a fresh one (a script sending one message per asyncio.run
    # failed on every second message).
    for _ in range(3):
        with pytest.raises(ConfigurationError, match="another event loop"):
            asyncio.run(tracker.result("m-1"))
        with pytest.raises(ConfigurationError, match="another event loop"):
            asyncio.run(tracker.final_status("m-1", timeout=1))
    del tracker
    gc.collect()  # its first loop's connection is reported here, under the filters above


async def test_record_from_a_blocking_view_wakes_a_waiter_elsewhere(redis_url: str) -> None:
    """A Flask or Django view records the webhook with the blocking record() (here in a
    thread, with a tracker of its own, as another process would): a final_status awaited
    through another tracker resolves with it; a non-final update records nothing."""
    prefix = f"test:{uuid.uuid4().hex}:"
    waiting = RedisDeliveryTracker(redis_url, key_prefix=prefix)
    view = RedisDeliveryTracker(redis_url, key_prefix=prefix)
    try:
        waiter = asyncio.create_task(waiting.final_status("mb", timeout=10))
        await asyncio.sleep(0.1)  # subscribed and waiting
        await asyncio.to_thread(view.record, event("message.sent", "mb", "sent"))
        assert await waiting.result("mb") is None
        assert not waiter.done()
        await asyncio.to_thread(view.record, event("message.finalized", "mb", "delivered"))
        message = await asyncio.wait_for(waiter, 10)
        assert (message.id, message.to[0].status) == ("mb", "delivered")
    finally:
        await waiting.aclose()
        await view.aclose()


async def test_record_with_redis_down_raises_unavailable() -> None:
    """Redis unreachable: record() raises DeliveryTrackerUnavailableError (the view answers
    5xx and Telnyx delivers the event again), a TelnyxError naming the command."""
    tracker = RedisDeliveryTracker(unused_url(), timeout=0.5)
    try:
        with pytest.raises(DeliveryTrackerUnavailableError, match="SET \\+ PUBLISH") as info:
            await asyncio.to_thread(tracker.record, event("message.finalized", "md", "delivered"))
        assert isinstance(info.value, TelnyxError)
    finally:
        await tracker.aclose()


async def test_record_needs_a_tracker_built_from_a_url(redis_url: str) -> None:
    """With a borrowed asyncio client there is no blocking connection: record() says to use
    handle() instead."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        tracker = RedisDeliveryTracker(client=client, key_prefix=f"test:{uuid.uuid4().hex}:")
        with pytest.raises(ConfigurationError, match="handle"):
            tracker.record(event("message.finalized", "mc", "delivered"))
        await tracker.handle(event("message.finalized", "mc", "delivered"))
        assert await tracker.result("mc") is not None
        await tracker.aclose()
    finally:
        await client.aclose()


async def test_a_timeout_shorter_than_subscribing_is_a_timeout(redis_url: str) -> None:
    """A first ``final_status`` whose timeout ends before Redis confirms the subscription
    raises TimeoutError naming that timeout. It raised DeliveryTrackerUnavailableError "Redis
    did not confirm SUBSCRIBE within 2 s" after 4 ms, with Redis healthy."""
    with anyio.fail_after(10):  # leaving the block closes the tracker (see the next test)
        async with RedisDeliveryTracker(redis_url, key_prefix=f"t:{uuid.uuid4().hex}:") as tracker:
            started = time.monotonic()
            with pytest.raises(TimeoutError, match=r"within 0\.001 s") as caught:
                await tracker.final_status("m-1", timeout=0.001)
            assert not isinstance(caught.value, DeliveryTrackerUnavailableError)
            assert time.monotonic() - started < 1.0


async def test_close_right_after_a_wait_that_gave_up_does_not_hang(redis_url: str) -> None:
    """``aclose()`` just after a ``final_status`` gave up while its SUBSCRIBE was in flight
    returns promptly. It hung forever: redis-py swallows a cancellation that lands while a
    subscription is being confirmed, and the close waited for the listener without a bound."""
    for delay in (0.0, 0.0005, 0.001, 0.002, 0.005, 0.02):
        tracker = RedisDeliveryTracker(redis_url, key_prefix=f"t:{uuid.uuid4().hex}:")
        waiting = asyncio.create_task(tracker.final_status("m-1", timeout=0.001))
        await asyncio.sleep(delay)
        with anyio.fail_after(5):
            await tracker.aclose()
        await asyncio.gather(waiting, return_exceptions=True)


async def test_a_burst_of_waiters_woken_together_all_get_their_status(
    redis_url: str, tracker: RedisDeliveryTracker
) -> None:
    """Thousands of final_status calls woken together, their statuses recorded in a burst by
    another tracker: every one returns. Waiting for one of the pool's connections is not Redis
    failing to answer (it raised DeliveryTrackerUnavailableError for about half of them)."""
    ids = [f"burst-{n}" for n in range(3000)]
    waiting = [
        asyncio.get_running_loop().create_task(tracker.final_status(i, timeout=120)) for i in ids
    ]
    other = RedisDeliveryTracker(redis_url, key_prefix=tracker.key_prefix)
    try:
        with anyio.fail_after(60):  # every waiter subscribed and registered
            while tracker.waiting < len(ids):  # noqa: ASYNC110  # a count, not an event
                await asyncio.sleep(0.05)
        await asyncio.gather(
            *(other.handle(event("message.finalized", i, "delivered")) for i in ids)
        )
        results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 120)
    finally:
        await other.aclose()
    failed = [r for r in results if not isinstance(r, Message)]
    assert failed == []
    assert [r.id for r in results if isinstance(r, Message)] == ids


async def test_a_timeout_shorter_than_redis_s_is_kept_when_redis_freezes(
    redis_process: RedisProcess,
) -> None:
    """Subscribed, then Redis freezes: final_status(timeout=0.3) raises TimeoutError at its own
    timeout, not DeliveryTrackerUnavailableError after the tracker's 3 s."""
    tracker = RedisDeliveryTracker(redis_process.url, timeout=3.0)
    try:
        await tracker.handle(event("message.finalized", "m-known", "delivered"))
        await tracker.final_status("m-known", timeout=5)  # subscribed from here on
        redis_process.freeze()
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await tracker.final_status("m-frozen", timeout=0.3)
        assert not isinstance(info.value, DeliveryTrackerUnavailableError)
        assert time.monotonic() - started < 2.0
    finally:
        redis_process.thaw()
        await tracker.aclose()


async def test_a_waiter_learns_of_a_redis_that_froze_while_it_waited(
    redis_process: RedisProcess,
) -> None:
    """Redis freezes (or the connection goes half-open) while final_status waits with no
    timeout: the idle subscription is PINGed, so the waiter raises instead of waiting forever."""
    tracker = RedisDeliveryTracker(redis_process.url, timeout=0.3)
    try:
        waiting = asyncio.get_running_loop().create_task(
            tracker.final_status("m-idle", timeout=None)
        )
        await asyncio.sleep(0.5)
        assert not waiting.done()
        redis_process.freeze()
        with pytest.raises(DeliveryTrackerUnavailableError, match="PING"):
            await asyncio.wait_for(waiting, 20)
    finally:
        redis_process.thaw()
        await tracker.aclose()


async def test_a_client_that_subscribes_again_by_itself_misses_no_status(redis_url: str) -> None:
    """A client= whose connections retry (redis-py reconnects and subscribes again on its own):
    a status published while it was disconnected still wakes the waiter."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = aioredis.from_url(
        redis_url, retry=Retry(NoBackoff(), 3), retry_on_error=[RedisConnectionError]
    )
    admin = aioredis.from_url(redis_url)
    prefix = f"test:{uuid.uuid4().hex}:"
    tracker = RedisDeliveryTracker(client=client, key_prefix=prefix)
    try:
        waiting = asyncio.get_running_loop().create_task(tracker.final_status("m-gap", timeout=10))
        await asyncio.sleep(0.3)
        assert tracker.waiting == 1
        message = event("message.finalized", "m-gap", "delivered").payload
        assert isinstance(message, Message)
        pipe = admin.pipeline(transaction=True)  # one step: the publish reaches no subscriber
        pipe.client_kill_filter(_type="pubsub")
        pipe.set(f"{prefix}final:m-gap", json.dumps(message.to_dict()))
        pipe.publish(tracker.channel, "m-gap")
        assert (await pipe.execute())[2] == 0
        assert (await asyncio.wait_for(waiting, 8)).id == "m-gap"
    finally:
        await tracker.aclose()
        await client.aclose()
        await admin.aclose()


async def test_an_error_reply_does_not_fail_the_calls_queued_behind_it(
    redis_process: RedisProcess,
) -> None:
    """A refused write (Redis out of memory answers an error) fails that call only: the reads
    queued behind it still reach Redis, which answers them."""
    tracker = RedisDeliveryTracker(redis_process.url)
    redis = tracker._redis
    try:
        await redis.config_set("maxmemory-policy", "noeviction")
        await redis.config_set("maxmemory", "1")
        reads = [tracker.result(f"m-oom-{n}") for n in range(1000)]
        outcomes = await asyncio.gather(
            tracker.handle(event("message.finalized", "m-oom", "delivered")),
            *reads,
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], DeliveryTrackerUnavailableError)
        assert "maxmemory" in str(outcomes[0])
        assert [o for o in outcomes[1:] if o is not None] == []
    finally:
        await redis.config_set("maxmemory", "0")
        await tracker.aclose()


async def test_calls_cancelled_while_queued_leave_no_coroutine_unawaited(
    tracker: RedisDeliveryTracker,
) -> None:
    """Callers cancelled while their call waits for a connection slot (their own timeouts, a
    closed request) leave no "coroutine was never awaited" behind."""
    tasks = [
        asyncio.get_running_loop().create_task(tracker.result(f"m-c-{n}")) for n in range(1000)
    ]
    await asyncio.sleep(0)  # every call is now running or queued
    for task in tasks[100:]:
        task.cancel()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await asyncio.gather(*tasks, return_exceptions=True)
        del tasks
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


async def test_a_wait_retried_at_once_after_a_lost_subscription_subscribes_again(
    redis_url: str,
) -> None:
    """The subscription's connection drops (Redis healthy): the waiter raises, and a call made
    at once after it (a caller retrying) subscribes anew and is woken by the status. It waited
    out its timeout: the dying listener, still closing its connection, passed for a live one."""
    import redis.asyncio as aioredis

    prefix = f"test:{uuid.uuid4().hex}:"
    tracker = RedisDeliveryTracker(redis_url, key_prefix=prefix, timeout=1.0)
    other = RedisDeliveryTracker(redis_url, key_prefix=prefix)
    admin = aioredis.from_url(redis_url)
    try:
        waiting = asyncio.get_running_loop().create_task(tracker.final_status("m-1", timeout=30))
        await asyncio.sleep(0.3)
        await admin.client_kill_filter(_type="pubsub")
        with pytest.raises(DeliveryTrackerUnavailableError):
            await asyncio.wait_for(waiting, 10)
        retry = asyncio.get_running_loop().create_task(tracker.final_status("m-2", timeout=8))
        await asyncio.sleep(0.3)
        await other.handle(event("message.finalized", "m-2", "delivered"))
        assert (await asyncio.wait_for(retry, 6)).id == "m-2"
    finally:
        await tracker.aclose()
        await other.aclose()
        await admin.aclose()


async def test_a_final_status_expires_after_ttl(redis_url: str) -> None:
    """A stored final status is kept ``ttl`` seconds, not forever (one key per message)."""
    t = RedisDeliveryTracker(redis_url, key_prefix=f"test:{uuid.uuid4().hex}:", ttl=3600)
    try:
        await t.handle(event("message.finalized", "m-ttl", "delivered"))
        assert await t.result("m-ttl") is not None
        ttl = await t._redis.ttl(t._key("m-ttl"))
        assert 3500 <= ttl <= 3600
    finally:
        await t.aclose()


async def test_timeout_zero_still_returns_a_stored_status(tracker: RedisDeliveryTracker) -> None:
    """final_status(id, timeout=0) on a fresh tracker still subscribes and reads once: a status
    already stored is returned, not a TimeoutError."""
    await tracker.handle(event("message.finalized", "m-zero", "delivered"))
    assert (await tracker.final_status("m-zero", timeout=0)).id == "m-zero"


async def test_a_notification_without_a_stored_status_does_not_spin(
    redis_process: RedisProcess,
) -> None:
    """A wake-up that finds no stored status (a stray publish, a status that expired) re-arms
    the waiter: it waits again instead of re-reading Redis in a loop."""
    import redis.asyncio as aioredis

    t = RedisDeliveryTracker(redis_process.url, timeout=0.5)
    admin = aioredis.from_url(redis_process.url)
    try:
        waiting = asyncio.get_running_loop().create_task(t.final_status("m-stray", timeout=10))
        await asyncio.sleep(0.3)
        before = (await admin.info("commandstats")).get("cmdstat_get", {}).get("calls", 0)
        await admin.publish(t.channel, "m-stray")
        await asyncio.sleep(0.5)
        after = (await admin.info("commandstats")).get("cmdstat_get", {}).get("calls", 0)
        assert after - before <= 3
        assert not waiting.done()
        await t.handle(event("message.finalized", "m-stray", "delivered"))
        assert (await asyncio.wait_for(waiting, 5)).id == "m-stray"
    finally:
        await t.aclose()
        await admin.aclose()


async def test_calls_queued_behind_a_frozen_redis_fail_together(
    redis_process: RedisProcess,
) -> None:
    """More calls than connections on a frozen Redis: the ones queued for a connection fail as
    soon as the first ones got no answer, so each caller waits about one timeout, not one per
    round of the queue."""
    import time

    t = RedisDeliveryTracker(redis_process.url, timeout=1.0)
    try:
        await t.result("warm-up")
        redis_process.freeze()
        started = time.monotonic()
        results = await asyncio.gather(
            *(t.result(f"m-{n}") for n in range(250)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
        assert all(isinstance(r, DeliveryTrackerUnavailableError) for r in results)
        assert elapsed < 1.7, elapsed
    finally:
        redis_process.thaw()
        await t.aclose()


async def test_many_short_waits_on_a_frozen_redis_each_end_at_their_own_timeout(
    redis_process: RedisProcess,
) -> None:
    """600 senders each wait ``final_status(id, timeout=0.3)`` (shorter than the tracker's
    3 s), and Redis freezes: each must get ``TimeoutError`` after about 0.3 s, as documented.
    The calls queued for one of the pool's 100 connections waited outside their timeout, and the
    ones ahead of them held their connections for a full 0.3 s each, so the last waiter gave up
    after six rounds (about 1.8 s): a caller's timeout stretched by every other waiter."""
    tracker = RedisDeliveryTracker(redis_process.url, timeout=3.0)
    loop = asyncio.get_running_loop()
    ended: list[float] = []

    async def wait(n: int) -> Exception | None:
        try:
            await tracker.final_status(f"m-{n}", timeout=0.3)
        except Exception as exc:  # collected and checked below
            return exc
        finally:
            ended.append(loop.time() - started)
        return None

    try:
        with pytest.raises(TimeoutError):
            await tracker.final_status("warm-up", timeout=0.2)  # subscribed from here on
        redis_process.freeze()
        started = loop.time()
        results = await asyncio.wait_for(asyncio.gather(*(wait(n) for n in range(600))), 30)
    finally:
        redis_process.thaw()
        await tracker.aclose()
    assert all(isinstance(r, TimeoutError) for r in results), {type(r) for r in results}
    assert not any(isinstance(r, DeliveryTrackerUnavailableError) for r in results)
    assert max(ended) < 1.2, f"the last waiter gave up after {max(ended):.2f} s, not 0.3 s"


@pytest.mark.slow
async def test_a_wait_started_as_the_subscription_drops_is_not_left_without_one(
    redis_process: RedisProcess,
) -> None:
    """The subscription's connection drops (Redis healthy: a restart, a proxy or ``timeout``
    closing it, ``CLIENT KILL``) while senders keep calling ``final_status``.

    Each call must either raise ``DeliveryTrackerUnavailableError`` (documented: "a
    subscription lost while waiting raises ... instead of hanging") or be woken once the
    status is recorded. A call that confirmed the (old) subscription, then registered its
    waiter just after the listener failed every registered waiter, is left with no listener
    at all: the status recorded a moment later never reaches it, and with ``timeout=None`` it
    waits forever (with a finite timeout: a TimeoutError although the status is stored).

    One tracker per sender (one waiter each, as a process waiting for its one message), each
    starting its wait one loop iteration later than the one before, so one of them starts in
    the instant the listener fails.
    """
    import redis as blocking_redis

    admin = blocking_redis.Redis.from_url(redis_process.url)
    left_behind: list[str] = []
    try:
        for round_ in range(3):
            prefix = f"race{round_}-{uuid.uuid4().hex}"
            trackers = [
                RedisDeliveryTracker(redis_process.url, key_prefix=f"{prefix}:{n}:", timeout=0.5)
                for n in range(80)
            ]
            recorder = [
                RedisDeliveryTracker(redis_process.url, key_prefix=t.key_prefix) for t in trackers
            ]
            try:
                # Every tracker subscribed (each warm-up wait times out on purpose).
                await asyncio.gather(
                    *(t.final_status("warm-up", timeout=0.3) for t in trackers),
                    return_exceptions=True,
                )
                assert all(t._listener is not None and not t._listener.done() for t in trackers)
                admin.client_kill_filter(_type="pubsub")  # every subscription drops, now
                waits = []
                for t in trackers:
                    waits.append(asyncio.create_task(t.final_status("m-1", timeout=None)))
                    await asyncio.sleep(0)
                await asyncio.sleep(0.5)
                for r in recorder:  # the webhook arrives: recorded by the receiver's tracker
                    await r.handle(event("message.finalized", "m-1", "delivered"))
                _done, pending = await asyncio.wait(waits, timeout=5)
                for n, w in enumerate(waits):
                    if w in pending:
                        left_behind.append(f"round {round_}, sender {n}")
                    elif w.exception() is not None:
                        assert isinstance(w.exception(), DeliveryTrackerUnavailableError)
                    else:
                        assert w.result().id == "m-1"
                for w in pending:
                    w.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
            finally:
                for t in trackers + recorder:
                    await t.aclose()
    finally:
        admin.close()
    assert left_behind == [], (
        f"{len(left_behind)} final_status calls neither raised nor returned though the status "
        f"was recorded (no listener left to wake them): {left_behind}"
    )


async def test_an_unreadable_final_status_fails_waiters_in_other_processes_at_once(
    redis_url: str, tracker: RedisDeliveryTracker
) -> None:
    """The receiver's tracker records a ``message.finalized`` whose payload could not be read
    (acknowledged: Telnyx never sends it again); a sender's tracker waiting for that message
    raises ``LookupError`` at once, and so does a later wait, instead of a ``TimeoutError``
    after the whole timeout. ``result`` has no message to give: None."""
    from tests.test_tracker import unreadable_finalized

    sender = RedisDeliveryTracker(redis_url, key_prefix=tracker.key_prefix)
    try:
        waiting = asyncio.ensure_future(sender.final_status("m-unreadable", timeout=60))
        with anyio.fail_after(10):
            while sender.waiting == 0:  # noqa: ASYNC110  # a count, not an event
                await asyncio.sleep(0.01)
        await tracker.handle(unreadable_finalized("m-unreadable"))
        with pytest.raises(LookupError, match="its payload is not one this SDK reads"):
            await asyncio.wait_for(waiting, 10)
        with pytest.raises(LookupError):
            await sender.final_status("m-unreadable", timeout=60)
        assert await sender.result("m-unreadable") is None
    finally:
        await sender.aclose()


@pytest.fixture
async def decoding_tracker(redis_url: str) -> AsyncIterator[RedisDeliveryTracker]:
    """A tracker given a ``client=`` that decodes replies to ``str`` (``decode_responses``)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
    tracker = RedisDeliveryTracker(client=client, key_prefix=f"t{uuid.uuid4().hex}:")
    try:
        yield tracker
    finally:
        await tracker.aclose()
        await client.aclose()


async def test_a_decoding_client_reads_statuses_and_unreadable_ones(
    decoding_tracker: RedisDeliveryTracker,
) -> None:
    """Guards against: the unreadable marker compared only as ``bytes``. With a ``client=``
    built with ``decode_responses=True`` (common in apps that share one client), Redis
    answers ``str``: a final status still comes back as a Message (woken by the published
    id, a ``str`` too), and an unreadable ``message.finalized`` still makes ``final_status``
    raise ``LookupError`` at once and ``result`` return None, rather than a
    ``JSONDecodeError`` from inside the tracker."""
    waiter = asyncio.ensure_future(decoding_tracker.final_status("m-dec", timeout=5))
    for _ in range(200):
        if decoding_tracker.waiting:
            break
        await asyncio.sleep(0.01)
    await decoding_tracker.handle(event("message.finalized", "m-dec", "delivered"))
    assert (await asyncio.wait_for(waiter, 5)).id == "m-dec"
    await decoding_tracker.handle(unreadable_finalized("m-dec-bad"))
    with pytest.raises(LookupError, match="not one this SDK reads"):
        await decoding_tracker.final_status("m-dec-bad", timeout=5)
    assert await decoding_tracker.result("m-dec-bad") is None


async def test_redis_waits_that_time_out_leave_no_memory_behind(
    tracker: RedisDeliveryTracker,
) -> None:
    """Guards against: ``final_status`` keeping an empty waiter set under the message id when
    its last waiter gives up (the twin of the in-memory tracker's guarded leak). ``waiting``
    still said 0, but every message whose wait timed out (a status that never came, or a
    ``timeout=0`` check) left an entry behind: a sender that checks each message it sends
    leaked without bound. Measured with tracemalloc, on the allocations made by the
    tracker's own module."""
    await tracker.result("warm-up")
    with pytest.raises(TimeoutError):
        await tracker.final_status("m-warm-up", timeout=0)  # subscribes
    grown = await bytes_kept_by_timed_out_waits(tracker, 500)
    assert tracker.waiting == 0
    assert grown < 20_000, f"{grown} bytes kept after 500 timed-out waits"


async def test_a_final_status_wakes_only_the_waiters_of_its_message(
    redis_url: str,
    tracker: RedisDeliveryTracker,
) -> None:
    """Guards against: the listener waking every waiter of the process on any published id.
    The notification names its message: with many sends in flight, one delivery webhook
    must cost one read of one key, not a GET from every waiting ``final_status`` (thousands
    of waiters made every webhook a burst of thousands of Redis calls). Counted with
    Redis's own command statistics."""
    import redis.asyncio

    waiters = [
        asyncio.ensure_future(tracker.final_status(f"m-crowd-{n}", timeout=10)) for n in range(50)
    ]
    try:
        for _ in range(500):
            if tracker.waiting == 50:
                break
            await asyncio.sleep(0.01)
        assert tracker.waiting == 50
        await asyncio.sleep(0.1)  # the 50 first reads are done
        async with redis.asyncio.Redis.from_url(redis_url) as admin:

            async def gets() -> int:
                stats = await admin.info("commandstats")
                return int(stats.get("cmdstat_get", {}).get("calls", 0))

            before = await gets()
            await tracker.handle(event("message.finalized", "m-crowd-7", "delivered"))
            assert (await asyncio.wait_for(waiters[7], 5)).id == "m-crowd-7"
            await asyncio.sleep(0.2)
            woken = await gets() - before
        assert woken <= 3, f"one final status made {woken} GETs"
        assert tracker.waiting == 49
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def test_a_first_wait_on_a_frozen_redis_ends_at_the_caller_s_timeout(
    redis_process: RedisProcess,
) -> None:
    """Guards against: ``_subscribe`` waiting for the SUBSCRIBE confirmation up to the
    tracker's own ``timeout`` even when the caller's is shorter. A tracker's first
    ``final_status(id, timeout=0.3)`` against a Redis that froze (process stopped, network
    black hole) must raise ``TimeoutError`` after about 0.3 s, as the caller asked, not
    ``DeliveryTrackerUnavailableError`` after the tracker's 3 s."""
    tracker = RedisDeliveryTracker(redis_process.url, timeout=3.0)
    redis_process.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"within 0\.3 s") as info:
            await tracker.final_status("m-frozen", timeout=0.3)
        assert not isinstance(info.value, DeliveryTrackerUnavailableError)
        assert time.monotonic() - started < 2.0
    finally:
        redis_process.thaw()
        await tracker.aclose()


async def test_aclose_closes_the_connection_record_opened(redis_url: str) -> None:
    """Guards against: ``aclose`` not closing the blocking client that ``record`` (a Flask or
    Django view's call) connects. The docs: ``aclose`` closes the clients the tracker
    created; a connection left open stays on the Redis server (counted against
    ``maxclients``) for every tracker an app creates and closes."""
    import redis.asyncio

    async with redis.asyncio.Redis.from_url(redis_url) as admin:

        async def clients() -> int:
            return len(await admin.client_list())

        before = await clients()
        tracker = RedisDeliveryTracker(redis_url, key_prefix=f"t{uuid.uuid4().hex}:")
        try:
            await asyncio.to_thread(
                tracker.record, event("message.finalized", "m-view", "delivered")
            )
            assert (await tracker.final_status("m-view", timeout=5)).id == "m-view"
        finally:
            await tracker.aclose()
        for _ in range(100):
            if await clients() == before:
                break
            await asyncio.sleep(0.02)
        assert await clients() == before
