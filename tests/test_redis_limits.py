"""RedisRateLimits against a real redis-server started by the fixture (skipped without one)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web

import telnyx_msg
from telnyx_msg import _redis_limits
from telnyx_msg._redis_limits import RedisRateLimits
from telnyx_msg.errors import ConfigurationError, RateLimitError, RateLimiterUnavailableError
from telnyx_msg.testing import serve_in_thread
from tests.conftest import ApiServer, Handler, json_response, message_json, telnyx_error
from tests.redis_proc import RedisProcess

TOLL_FREE = "+18005550101"
TOLL_FREE_2 = "+18445550002"
PROFILE_ID = "16fd2706-8baf-433b-82eb-8c7fada847da"


class Stop(Exception):
    """Raised by the recording sleep to end an acquire instead of waiting."""


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test."""
    return f"test:{uuid.uuid4().hex}:"


class Sleeps:
    """A sleep that records the delay, then waits for real or raises Stop."""

    def __init__(self, *, stop: bool) -> None:
        self.delays: list[float] = []
        self.stop = stop

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.stop:
            raise Stop
        await asyncio.sleep(delay)


@pytest.fixture
async def make(redis_url: str, prefix: str) -> AsyncIterator[Any]:
    """Build RedisRateLimits on the test server; all are closed at the end."""
    made: list[RedisRateLimits] = []

    def factory(**kwargs: Any) -> RedisRateLimits:
        kwargs.setdefault("key_prefix", prefix)
        limits = RedisRateLimits(redis_url, **kwargs)
        made.append(limits)
        return limits

    yield factory
    for limits in made:
        await limits.aclose()


def test_missing_redis_package_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the redis package the constructor says how to install the extra."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"telnyx_msg\[redis\]"):
        RedisRateLimits("redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    "make_one",
    [
        lambda url: telnyx_msg.RedisRateLimits(url),
        lambda url: telnyx_msg.RedisReplayStore(url),
        lambda url: telnyx_msg.RedisWebhookQueue(url),
        lambda url: telnyx_msg.RedisDeliveryTracker(url),
    ],
    ids=["RedisRateLimits", "RedisReplayStore", "RedisWebhookQueue", "RedisDeliveryTracker"],
)
def test_a_redis_older_than_the_extra_allows_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, make_one: Any
) -> None:
    """``pip install telnyx_msg`` next to a redis-py 4.6 another package pinned: every
    Redis-backed class says what to install, typed and before connecting (port 1: nothing
    listens). The blocking clients raised a bare TypeError from redis-py's constructor, and
    RedisRateLimits was accepted with a client that can hang past its timeouts."""
    import redis

    monkeypatch.setattr(redis, "__version__", "4.6.0")
    with pytest.raises(ConfigurationError, match=r"4\.6\.0.*telnyx_msg\[redis\]"):
        make_one("redis://127.0.0.1:1/0")


def test_url_or_client_is_required() -> None:
    """A missing or malformed URL is a configuration error."""
    with pytest.raises(ConfigurationError):
        RedisRateLimits(None)
    with pytest.raises(ConfigurationError):
        RedisRateLimits("http://example.invalid/")
    with pytest.raises(ConfigurationError):
        RedisRateLimits("redis://127.0.0.1:1/0", per_kind_mps={"nope": 1.0})


@pytest.mark.redis
@pytest.mark.anyio
async def test_burst_then_wait(make: Any) -> None:
    """A 20/s strict lane grants its burst of 20 at once, then asks to wait about 1/20 s."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=None, per_sender_mps={TOLL_FREE: 20.0}, sleep=sleeps)
    for _ in range(20):
        await limits.acquire(TOLL_FREE)
    assert sleeps.delays == []
    with pytest.raises(Stop):
        await limits.acquire(TOLL_FREE)
    assert 0 < sleeps.delays[0] <= 0.05 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_account_lane_is_shared_between_instances(make: Any) -> None:
    """Two limiters with one key prefix share the account bucket."""
    sleeps = Sleeps(stop=True)
    first = make(account_mps=5.0, sleep=sleeps)
    second = make(account_mps=5.0, sleep=sleeps)
    for _ in range(3):
        await first.acquire(None)
    for _ in range(2):
        await second.acquire(None)
    with pytest.raises(Stop):
        await second.acquire(None)
    assert 0 < sleeps.delays[0] <= 0.2 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_10011_blocks_all_processes_until_reset(make: Any) -> None:
    """A 10011 with reset 5 s recorded by one limiter blocks the account lane of another."""
    sleeps = Sleeps(stop=True)
    first = make(account_mps=10.0, sleep=sleeps)
    second = make(account_mps=10.0, sleep=sleeps)
    await first.acquire(None)
    first.on_response(None, status=429, code="10011", reset_after=5.0)
    with pytest.raises(Stop):
        await first.acquire(None)  # writes the feedback, then must wait
    with pytest.raises(Stop):
        await second.acquire(None)
    # A whole-second reset of 5 blocks 4.1 s (as the local limiter), then one token at 0.7 x 10/s.
    assert all(4.0 < delay <= 4.1 + 1 / 7 + 1e-6 for delay in sleeps.delays)


@pytest.mark.redis
@pytest.mark.anyio
async def test_10011_decreases_the_rate(make: Any) -> None:
    """Without a reset time, a throttle leaves the next token 1/(0.7 x rate) away."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=10.0, burst=1, sleep=sleeps)
    await limits.acquire(None)
    limits.on_response(None, status=429, code="10011", reset_after=None)
    limits.on_response(None, status=429, code=None, reset_after=None)
    with pytest.raises(Stop):
        await limits.acquire(None)
    assert 0.1 < sleeps.delays[0] <= 1 / 7 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_after_a_10011_sms_and_mms_share_one_request_rate(make: Any) -> None:
    """Telnyx's 10011 limit counts every message type: after it, an MMS waits for the token an
    SMS just took (1/7 s at 0.7 x 10/s). When each type's lane adapted on its own, the MMS lane
    had refilled meanwhile and the two together went at twice the learnt rate."""
    limits = make(account_mps=10.0, burst=1)
    await limits.acquire(None)
    limits.on_response(None, status=429, code="10011", reset_after=None)
    await limits.acquire(None)  # writes the throttle, waits ~1/7 s for the request token
    sleeps = Sleeps(stop=True)
    other = make(account_mps=10.0, burst=1, sleep=sleeps)
    with pytest.raises(Stop):
        await other.acquire(None, "MMS")
    assert 0.1 < sleeps.delays[0] <= 1 / 7 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_request_bucket_stays_blocked_until_the_reset(make: Any) -> None:
    """``account_mps=1`` (SMS and MMS 1/s, so the request rate's ceiling is 2/s). A 10011 says
    the window resets in 30.5 s. 2.5 s later no process may send yet: the request rate's
    CUBIC curve (evaluated with time in Redis) has passed its 2/s ceiling, but the bucket is
    still blocked for about 28 s (the script took the curve alone as "recovered" and granted
    the send at once, into the window the 429 said was used up)."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=1.0, sleep=sleeps)
    await limits.acquire(None)
    limits.on_response(None, status=429, code="10011", reset_after=30.5)
    with pytest.raises(Stop):
        await limits.acquire(None)  # writes the throttle, then must wait ~30.5 s
    assert 30.0 < sleeps.delays[0] <= 30.5 + 1 / 0.7 + 1e-6
    await asyncio.sleep(2.5)
    other = make(account_mps=1.0, sleep=sleeps)
    with pytest.raises(Stop):
        await other.acquire(None, "MMS")
    assert 27.0 < sleeps.delays[1] <= 28.0 + 1 / 0.7 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
@pytest.mark.parametrize(("sent", "pause"), [(15, 0.0), (1, 0.2)], ids=["burst", "one-mms"])
async def test_mms_alone_slows_to_seven_tenths_of_its_rate_after_a_10011(
    make: Any, sent: int, pause: float
) -> None:
    """Defaults (SMS 50/s, MMS 15/s), only MMS sent (a burst of 15, or one MMS 0.2 s before,
    its bucket full again): the first 10011, before any success was measured, sets the
    request rate to 0.7 x 15 = 10.5/s (the MMS lane took a token within 2 s: it is in use), so
    the next MMS waits about 1/10.5 s. (Starting from SMS's 50/s gave 35/s, which never holds
    back 15/s of MMS.)"""
    limits = make()
    for _ in range(sent):
        await limits.acquire(None, "MMS")
    await asyncio.sleep(pause)
    sleeps = Sleeps(stop=True)
    other = make(sleep=sleeps)
    other.on_response(None, status=429, code="10011", reset_after=None)
    with pytest.raises(Stop):
        await other.acquire(None, "MMS")
    assert 0.075 < sleeps.delays[0] <= 1 / 10.5 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_10011_decreases_from_the_successes_of_every_process(make: Any, prefix: str) -> None:
    """Two processes succeeding at about 10/s each under a 100/s setting: a 429 sets W_max to
    the shared success rate (about 20/s), not the 100/s the buckets allowed, as the local
    limiter's meter does. Without a shared meter the rate only fell to 70/s, far above the
    limit the server enforced, and every process tripped it again within seconds."""
    first = make(account_mps=100.0)
    second = make(account_mps=100.0)

    async def succeed(limits: RedisRateLimits) -> None:
        deadline = time.monotonic() + 2.2
        while time.monotonic() < deadline:
            await limits.acquire(None)
            limits.on_response(None, status=200, code=None, reset_after=None)
            await asyncio.sleep(0.1)

    await asyncio.gather(succeed(first), succeed(second))
    first.on_response(None, status=429, code="10011", reset_after=None)
    await first.acquire(None)  # writes the throttle
    wmax = float(await first._redis.hget(f"{prefix}requests", "wmax"))
    assert 12.0 < wmax < 26.0
    assert 59_000 < await first._redis.pttl(f"{prefix}meter") <= 60_500
    # The new rate (0.7 x W_max) holds for every process: the next token is about 1/14 s away.
    sleeps = Sleeps(stop=True)
    third = make(account_mps=100.0, sleep=sleeps)
    with pytest.raises(Stop):
        await third.acquire(None)
    # Above 1/70 s (what 0.7 x 100/s would give), at most 1/(0.7 x 12): time passing
    # before this acquire (a loaded machine) only shortens it; W_max is above 12 (asserted).
    assert 1 / (0.7 * 100.0) < sleeps.delays[0] <= 1 / (0.7 * 12.0)


@pytest.mark.redis
@pytest.mark.anyio
async def test_40318_pauses_only_that_lane(make: Any) -> None:
    """A full queue pauses its sender for 144 s; another sender is not delayed."""
    sleeps = Sleeps(stop=True)
    limits = make(sleep=sleeps)
    await limits.acquire(TOLL_FREE)
    limits.on_response(TOLL_FREE, status=429, code="40318", reset_after=None)
    limits.on_response(TOLL_FREE, status=200, code=None, reset_after=None)
    await limits.acquire(TOLL_FREE_2)
    assert sleeps.delays == []
    with pytest.raises(Stop):
        await limits.acquire(TOLL_FREE)
    assert 143 < sleeps.delays[0] <= 144 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_40318_pauses_a_lane_without_rate(make: Any) -> None:
    """A number-pool lane has no rate, but a full queue still pauses it 144 s."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=None, sleep=sleeps)
    await limits.acquire(PROFILE_ID)
    limits.on_response(PROFILE_ID, status=429, code="40318", reset_after=None)
    with pytest.raises(Stop):
        await limits.acquire(PROFILE_ID)
    assert 143 < sleeps.delays[0] <= 144 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_scripts_are_reloaded_after_a_flush(make: Any, redis_url: str) -> None:
    """After SCRIPT FLUSH (or a server restart) EVALSHA falls back to SCRIPT LOAD."""
    limits = make(account_mps=100.0)
    await limits.acquire(TOLL_FREE)
    await limits._redis.script_flush()
    await limits.acquire(TOLL_FREE)
    assert await limits._redis.script_exists(_redis_limits._TAKE_SCRIPT.sha) == [True]


@pytest.mark.redis
@pytest.mark.anyio
async def test_keys_expire_when_idle(make: Any, prefix: str) -> None:
    """Bucket keys carry a TTL of about the time to refill plus a minute."""
    limits = make(account_mps=10.0, per_sender_mps={TOLL_FREE: 1.0})
    await limits.acquire(TOLL_FREE)
    account_ttl = await limits._redis.pttl(f"{prefix}acct:SMS")
    lane_ttl = await limits._redis.pttl(f"{prefix}lane:{TOLL_FREE}")
    assert 60_000 < account_ttl <= 60_100
    assert 60_900 < lane_ttl <= 61_000


@pytest.mark.redis
@pytest.mark.anyio
async def test_fifo_within_a_process_and_cancellation(make: Any) -> None:
    """Callers of one lane are served in order; a cancelled caller leaves nothing behind."""
    limits = make(account_mps=None, per_sender_mps={TOLL_FREE: 50.0}, burst=1)
    order: list[int] = []

    async def send(index: int) -> None:
        await limits.acquire(TOLL_FREE)
        order.append(index)

    tasks = [asyncio.ensure_future(send(i)) for i in range(6)]
    await asyncio.sleep(0.01)
    tasks[-1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == list(range(5))
    assert limits._local == {}


@pytest.mark.redis
@pytest.mark.anyio
async def test_callers_waiting_for_the_account_line_up_instead_of_polling(
    make: Any, redis_url: str
) -> None:
    """100 senders waiting for one account lane: a grant costs a few Redis round trips, not
    one per waiter (they all woke together and all but one lost: with 1,000 senders about 90
    round trips per token, which exhausted the Redis pool and failed healthy sends)."""
    import redis.asyncio

    limits = make(account_mps=100.0, burst=1)
    observer = redis.asyncio.Redis.from_url(redis_url)

    async def evalsha_calls() -> int:
        stats = await observer.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    try:
        await limits.acquire(TOLL_FREE)  # scripts loaded, connections made
        before = await evalsha_calls()
        senders = [f"+1800555{i:04d}" for i in range(100)]
        await asyncio.wait_for(asyncio.gather(*(limits.acquire(s) for s in senders)), 20)
        calls = await evalsha_calls() - before
    finally:
        await observer.aclose()
    assert calls <= 5 * len(senders), calls
    assert limits._local == {}


@pytest.mark.redis
@pytest.mark.anyio
async def test_borrowed_client_is_not_closed(redis_url: str, prefix: str) -> None:
    """A client passed in stays open after aclose()."""
    import redis.asyncio

    client = redis.asyncio.from_url(redis_url)
    try:
        async with RedisRateLimits(client=client, key_prefix=prefix) as limits:
            await limits.acquire(TOLL_FREE)
        assert await client.ping()
    finally:
        await client.aclose()


_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from telnyx_msg._redis_limits import RedisRateLimits

    async def main():
        url, prefix = sys.argv[1], sys.argv[2]
        start, duration = float(sys.argv[3]), float(sys.argv[4])
        limits = RedisRateLimits(url, account_mps=None, per_sender_mps={"+18005550101": 20.0},
                                 key_prefix=prefix)
        await asyncio.sleep(max(0.0, start - time.time()))
        grants = []

        async def worker():
            while time.time() < start + duration:
                await limits.acquire("+18005550101")
                grants.append(time.time())

        await asyncio.gather(*(worker() for _ in range(4)))
        await limits.aclose()
        print(json.dumps(grants))

    asyncio.run(main())
    """
)


@pytest.mark.slow
@pytest.mark.redis
def test_two_processes_share_one_lane(redis_url: str, prefix: str, tmp_path: Path) -> None:
    """Two OS processes on one 20/s lane (burst 20) for 2 s get at most 20 + 20 x 2 together."""
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    start, duration = time.time() + 1.5, 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), redis_url, prefix, repr(start), repr(duration)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    grants: list[list[float]] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        grants.append(json.loads(out))
    combined = sorted(t for times in grants for t in times if t <= start + duration)
    assert all(len(times) >= 5 for times in grants)  # both processes got a share
    assert 30 <= len(combined) <= 20 + 20 * duration + 1


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files via /proc")
def test_one_shared_limiter_across_many_asyncio_runs_keeps_no_connection_open(
    redis_url: str, prefix: str
) -> None:
    """A sync app calling asyncio.run per request with one module-level RedisRateLimits: each
    run's Redis connections are closed when its loop shuts down (they stayed open, one more
    per call, until the process ran out of file descriptors), and the limiter keeps working."""
    limits = RedisRateLimits(redis_url, key_prefix=prefix, account_mps=1000.0)

    async def one_send() -> None:
        await limits.acquire("+18005550101")

    def open_files() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    asyncio.run(one_send())
    before = open_files()
    for _ in range(30):
        asyncio.run(one_send())
    assert open_files() <= before + 1
    asyncio.run(limits.aclose())


@pytest.mark.redis
@pytest.mark.anyio
async def test_an_idle_bucket_refills_only_up_to_its_burst(make: Any) -> None:
    """After 0.4 s idle a 10/s bucket of burst 1 holds one token, not four."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=10.0, burst=1, sleep=sleeps)
    await limits.acquire(None)
    await asyncio.sleep(0.4)
    await limits.acquire(None)
    with pytest.raises(Stop):
        await limits.acquire(None)
    assert 0 < sleeps.delays[0] <= 0.1 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_longest_throttle_of_several_429s_wins(make: Any) -> None:
    """Two 10011s before the next acquire: a 5 s reset then a 1 s one blocks about 4.1 s (the
    longer), and so does the reverse order."""
    for resets in ((5.0, 1.0), (1.0, 5.0)):
        sleeps = Sleeps(stop=True)
        limits = make(account_mps=10.0, sleep=sleeps, key_prefix=f"t:{time.monotonic_ns()}:")
        await limits.acquire(None)
        for reset in resets:
            limits.on_response(None, status=429, code="10011", reset_after=reset)
        with pytest.raises(Stop):
            await limits.acquire(None)
        assert 4.0 < sleeps.delays[0] <= 4.1 + 1 / 7 + 1e-6, resets


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_recovered_account_rate_never_exceeds_the_configured_rate(
    make: Any, prefix: str
) -> None:
    """4 s after a 10011 the request bucket's CUBIC curve has passed W_max (~13/s, below its
    20/s ceiling, so it still exists): the SMS rate stays capped at account_mps (10/s, burst 1:
    the next token 0.1 s away), never the curve's value."""
    # The wait is 0.1 s less the time between the two acquires: a try that took 10 ms or more
    # (this process or Redis paused on a loaded machine) cannot tell 0.1 s from 1/14 s, and
    # is made again on fresh keys.
    for attempt in range(50):
        keys = f"{prefix}{attempt}:"
        sleeps = Sleeps(stop=True)
        limits = make(account_mps=10.0, burst=1, sleep=sleeps, key_prefix=keys)
        started = time.monotonic()
        await limits.acquire(None)
        seconds, _ = await limits._redis.time()
        await limits._redis.hset(
            f"{keys}requests", mapping={"wmax": "10", "tdec": str(seconds - 4)}
        )
        with pytest.raises(Stop):
            await limits.acquire(None)
        if time.monotonic() - started < 0.01:
            break
    else:
        pytest.fail("no try ran within 10 ms")
    assert 0.09 < sleeps.delays[0] <= 0.1 + 1e-6


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_caller_waiting_for_its_own_lane_leaves_the_account_line(make: Any) -> None:
    """A caller that lined up for the account token but then waits for its own (slow) lane
    gives its place up: a caller of another sender behind it gets the account token at once
    instead of waiting for the slow lane (5 s here)."""
    limits = make(account_mps=2.0, burst=1, per_sender_mps={TOLL_FREE: 0.2})
    other_process = make(account_mps=None, per_sender_mps={TOLL_FREE: 0.2}, burst=1)
    await limits.acquire(None)  # the account bucket is empty: the next token in 0.5 s
    slow = asyncio.ensure_future(limits.acquire(TOLL_FREE))  # lines up for the account
    await asyncio.sleep(0.1)
    await other_process.acquire(TOLL_FREE)  # meanwhile another process drains its lane
    started = time.monotonic()
    try:
        await asyncio.wait_for(limits.acquire(None), 2.0)
        assert time.monotonic() - started < 1.5
        assert not slow.done()
    finally:
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_wait_longer_than_the_timeout_raises_at_once(make: Any) -> None:
    """acquire(timeout=...) raises RateLimitError without sleeping when Redis says the wait is
    longer than the timeout (the client passes the call's timeout)."""
    sleeps = Sleeps(stop=False)
    limits = make(account_mps=None, per_sender_mps={TOLL_FREE: 1.0}, burst=1.0, sleep=sleeps)
    await limits.acquire(TOLL_FREE)
    started = time.monotonic()
    with pytest.raises(RateLimitError):
        await limits.acquire(TOLL_FREE, timeout=0.1)
    assert sleeps.delays == []
    assert time.monotonic() - started < 0.5


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_429_whose_feedback_redis_failed_to_store_is_written_later(
    tmp_path: Path, prefix: str
) -> None:
    """A 429 10011 recorded while Redis is down is not lost with the failed round trip: the
    next acquire after Redis is back still blocks for the reset_after."""
    proc = RedisProcess(tmp_path)
    limits = RedisRateLimits_(proc.url, prefix)
    try:
        await limits.acquire(TOLL_FREE)  # scripts loaded, buckets exist
        limits.on_response(TOLL_FREE, status=429, code="10011", reset_after=5.0)
        proc.kill()
        with pytest.raises(RateLimiterUnavailableError):
            await limits.acquire(TOLL_FREE)
        proc.start()
        with pytest.raises(RateLimitError):
            await limits.acquire(TOLL_FREE, timeout=1.0)
    finally:
        await limits.aclose()
        proc.close()


def RedisRateLimits_(url: str, key_prefix: str) -> Any:
    from telnyx_msg._redis_limits import RedisRateLimits

    return RedisRateLimits(url, key_prefix=key_prefix, account_mps=50.0, redis_timeout=0.5)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server this test may freeze or restart."""
    proc = RedisProcess(tmp_path)
    yield proc
    proc.close()


@pytest.mark.redis
def test_a_send_with_a_short_timeout_is_not_held_by_a_frozen_limiter_redis(
    redis_process: RedisProcess,
) -> None:
    """A blocking Client send with ``timeout=0.5`` whose limiter Redis froze (SIGSTOP) ends
    within its own timeout, nothing sent: the rate limiter waits "never longer than its
    timeout". It waited out the limiter's whole ``redis_timeout`` (3 s here) instead."""
    limits = telnyx_msg.RedisRateLimits(
        redis_process.url, redis_timeout=3.0, key_prefix="review:frozen:"
    )
    with (
        serve_in_thread() as fake,
        telnyx_msg.Client(fake.api_key, base_url=fake.base_url, rate_limits=limits) as client,
    ):
        client.messages.send(from_=TOLL_FREE, to=TOLL_FREE_2, text="warm-up")
        redis_process.freeze()
        try:
            started = time.monotonic()
            with pytest.raises(telnyx_msg.RateLimiterUnavailableError, match="this call's timeout"):
                client.messages.send(
                    from_=TOLL_FREE,
                    to=TOLL_FREE_2,
                    text="frozen",
                    options=telnyx_msg.RequestOptions(timeout=0.5),
                )
            elapsed = time.monotonic() - started
        finally:
            redis_process.thaw()
        assert fake.stats.messages_sent == 1  # only the warm-up
    assert elapsed < 0.5 + 0.75, f"send(timeout=0.5) took {elapsed:.2f} s"


@pytest.mark.redis
def test_send_many_right_after_a_redis_restart_sends_everything(
    redis_process: RedisProcess,
) -> None:
    """Redis restarted (and is answering again) between two bulk jobs of one process: the
    next send_many sends every item. The limiter's first round trip used a pooled connection
    the old Redis had closed, raised RateLimiterUnavailableError ("Connection closed by
    server"), and send_many stopped with it although Redis was up."""
    limits = telnyx_msg.RedisRateLimits(redis_process.url, key_prefix="review:restart:")
    items = [
        telnyx_msg.SendMessageItem(from_=TOLL_FREE, to=TOLL_FREE_2, text=f"m{i}") for i in range(5)
    ]

    async def main(base_url: str, api_key: str) -> list[str]:
        async with telnyx_msg.AsyncClient(api_key, base_url=base_url, rate_limits=limits) as c:
            await c.messages.send(from_=TOLL_FREE, to=TOLL_FREE_2, text="before the restart")
            redis_process.kill()
            redis_process.start()  # Redis is back before the next job starts
            statuses: list[str] = [
                o.status async for o in c.messages.send_many(items, concurrency=1)
            ]
        await limits.aclose()
        return statuses

    with serve_in_thread() as fake:
        statuses = asyncio.run(asyncio.wait_for(main(fake.base_url, fake.api_key), 30))
        assert fake.stats.messages_sent == 1 + len(items)
    assert statuses == ["sent"] * len(items)


SHORT_TIMEOUT = 1.2


async def _accept(request: web.Request) -> web.Response:
    await request.read()
    return json_response({"data": message_json()})


@pytest.mark.redis
@pytest.mark.anyio
async def test_queued_sends_do_not_quote_a_wait_shorter_than_their_timeout(
    api_server: Callable[[Handler], Awaitable[ApiServer]],
    redis_url: str,
) -> None:
    """Six sends at once through a 2/s account with ``timeout=1.2``: three go out, and the
    others fail with ``RateLimitError`` and nothing sent (docs/errors.md). The error says the
    limiter "would hold this request longer than its timeout (1.2 s)"; the wait it quotes
    beside that must not be shorter than that timeout (it is the wait left after the call
    already waited most of its timeout, which reads as a contradiction)."""
    server = await api_server(_accept)
    limits = telnyx_msg.RedisRateLimits(
        redis_url, account_mps=2.0, burst=1, key_prefix=f"tf:{uuid.uuid4().hex}:"
    )
    options = telnyx_msg.RequestOptions(timeout=SHORT_TIMEOUT)
    try:
        async with telnyx_msg.AsyncClient(
            "secret-key", base_url=server.base_url, rate_limits=limits
        ) as client:
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        client.messages.send(
                            from_="+18005550101", to="+18445550001", text="Hello", options=options
                        )
                        for _ in range(6)
                    ),
                    return_exceptions=True,
                ),
                30,
            )
    finally:
        await limits.aclose()
    errors = [r for r in results if isinstance(r, telnyx_msg.RateLimitError)]
    assert len(errors) == 6 - len(server.requests) >= 2
    for error in errors:
        quoted = re.search(r"\(about ([0-9.e+-]+) s\)", str(error))
        if quoted is not None:
            assert float(quoted.group(1)) >= SHORT_TIMEOUT, str(error)


ONE_SMS_TYPE = {"SMS": 1.0, "MMS": None}  # the request rate's ceiling is then 1/s


async def _seed_request_bucket(
    limits: Any, prefix: str, *, wmax: str, tok: str, tdec: float, ts: float, cool: float
) -> None:
    """Store the request bucket's state, its times as offsets (s) from Redis's clock now."""
    seconds, micros = await limits._redis.time()
    now = float(seconds) + float(micros) / 1e6
    await limits._redis.hset(
        f"{prefix}requests",
        mapping={
            "wmax": wmax,
            "tdec": repr(now + tdec),
            "tok": tok,
            "ts": repr(now + ts),
            "cool": repr(now + cool),
        },
    )


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_longer_reset_within_the_cooldown_keeps_every_process_blocked(
    make: Any,
) -> None:
    """A 10011 with a 2.5 s reset, then (within its 2.5 s cooldown) one saying the window resets
    in 30.5 s. 2.7 s later the cooldown is over and the CUBIC curve is past the 1/s ceiling,
    but the window is not: another process must still wait about 28 s, not send at once."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=ONE_SMS_TYPE, burst=1, sleep=sleeps)
    await limits.acquire(None)
    limits.on_response(None, status=429, code="10011", reset_after=2.5)
    with pytest.raises(Stop):
        await limits.acquire(None)  # writes the first throttle
    limits.on_response(None, status=429, code="10011", reset_after=30.5)
    with pytest.raises(Stop):
        await limits.acquire(None)  # writes the second: blocked ~30.5 s, cooldown unchanged
    assert 29.5 < sleeps.delays[1] <= 30.5 + 1 / 0.7 + 0.05
    await asyncio.sleep(2.7)
    other_sleeps = Sleeps(stop=True)
    other = make(account_mps=ONE_SMS_TYPE, burst=1, sleep=other_sleeps)
    with pytest.raises(Stop):
        await other.acquire(None)
    assert 26.5 < other_sleeps.delays[0] <= 30.0


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_429_within_the_cooldown_after_the_curve_passed_the_ceiling_decreases_nothing(
    make: Any, prefix: str
) -> None:
    """The request bucket's curve is far past its 1/s ceiling, its block is over, but its
    cooldown runs 5 s more: a 10011 answering a request already in flight must not start a
    new bucket at 0.7/s (next send 1/0.7 s away), only empty it at 1/s (1 s away)."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=ONE_SMS_TYPE, burst=1, sleep=sleeps)
    await limits.acquire(None)
    await _seed_request_bucket(limits, prefix, wmax="1", tok="0", tdec=-5, ts=-1, cool=5)
    limits.on_response(None, status=429, code="10011", reset_after=None)
    with pytest.raises(Stop):
        await limits.acquire(None)
    assert 0.9 < sleeps.delays[0] <= 1.05


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_decrease_while_blocked_starts_from_the_ceiling_not_the_curve(
    make: Any, prefix: str
) -> None:
    """The curve (10 s after the last decrease) is far past the 1/s ceiling but the bucket is
    still blocked for 0.3 s, and the cooldown is over: a 10011 decreases from the ceiling
    (0.7/s: the next send 0.3 + 1/0.7 s away), not from the curve's ~300/s (which would leave
    the request rate unlimited once the block ends)."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=ONE_SMS_TYPE, burst=1, sleep=sleeps)
    await limits.acquire(None)
    await _seed_request_bucket(limits, prefix, wmax="1", tok="0", tdec=-10, ts=0.3, cool=-1)
    limits.on_response(None, status=429, code="10011", reset_after=None)
    with pytest.raises(Stop):
        await limits.acquire(None)
    assert 1.5 < sleeps.delays[0] <= 0.3 + 1 / 0.7 + 0.05


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_request_bucket_still_binds_above_the_highest_account_rate(
    make: Any, prefix: str
) -> None:
    """SMS and MMS at 1/s each (ceiling 2/s). 1.5 s after a decrease from W_max = 1/s the
    curve is at about 1.08/s: above the highest account rate, below the sum. An MMS of another
    process waits for the request token an SMS just took (~0.92 s), not sends at once: the
    request bucket is dropped only at the sum of the account rates."""
    limits = make(account_mps=1.0, burst=1)
    await limits.acquire(None)
    await _seed_request_bucket(limits, prefix, wmax="1", tok="0", tdec=-1.5, ts=0, cool=-0.5)
    sleeps = Sleeps(stop=True)
    other = make(account_mps=1.0, burst=1, sleep=sleeps)
    with pytest.raises(Stop):
        await other.acquire(None, "MMS")
    assert 0.8 < sleeps.delays[0] <= 1 / 1.08 + 0.05


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_second_10011_within_the_cooldown_does_not_decrease_again(make: Any) -> None:
    """Two 10011 answers to requests sent together (written one after the other, within the
    1 s cooldown) decrease the request rate once: 0.7/s (the next send 1/0.7 s away), not
    0.7 x 0.7 (floored at 0.5/s: 2 s away)."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=1.0, burst=1, sleep=sleeps)
    await limits.acquire(None)
    limits.on_response(None, status=429, code="10011", reset_after=None)
    with pytest.raises(Stop):
        await limits.acquire(None)
    limits.on_response(None, status=429, code="10011", reset_after=None)
    with pytest.raises(Stop):
        await limits.acquire(None)
    assert sleeps.delays[1] <= 1 / 0.7 + 0.05


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_request_bucket_holds_burst_scaled_to_its_rate(make: Any, prefix: str) -> None:
    """``account_mps=10`` (burst 10). Right after a decrease to 7/s the request bucket holds at
    most 7 tokens (burst x 7 / 10), whatever was stored: 7 sends go at once, then they wait;
    not 9 (all the SMS account lane had left)."""
    sleeps = Sleeps(stop=True)
    limits = make(account_mps=10.0, sleep=sleeps)
    await limits.acquire(None)
    await _seed_request_bucket(limits, prefix, wmax="10", tok="100", tdec=0, ts=-0.001, cool=1)
    sent = 0
    for _ in range(20):
        try:
            await limits.acquire(None)
        except Stop:
            break
        sent += 1
    assert sent == 7


MMS_FROM, MMS_TO, MMS_MEDIA = "+18445550001", "+13125550001", ["https://example.com/a.png"]


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_mms_alone_adapts_from_15_per_s_when_the_retry_waits_the_reset(
    api_server: Any, redis_url: str
) -> None:
    """CHANGELOG / docs/rate-limits.md: the first decrease after a 429 10011 starts from the
    highest rate of the account lanes "that sent within the last 2 s" (MMS alone: 15/s to
    10.5/s), local and Redis. With ``RedisRateLimits`` the 429 is written to Redis only at the
    process's next ``acquire``, and the 2 s are counted from that moment: an app sending MMS
    alone whose 429 came 10 ms after its send, with ``x-ratelimit-reset: 3``, retries (and so
    writes the 429) 3 s later, its MMS lane no longer counts as in use and the request rate
    starts from SMS's 50/s: 35/s, which never holds 15/s of MMS back (the next MMS go out
    1/35 s apart, not 1/10.5 s). ``RateLimits`` gives 10.5/s for the same exchange."""
    arrivals: list[float] = []

    async def answer(_: web.Request) -> web.StreamResponse:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return telnyx_error(429, "10011", headers={"x-ratelimit-reset": "3"})
        return json_response({"data": message_json(type="MMS")})

    handler: Handler = answer
    server: ApiServer = await api_server(handler)
    limits = RedisRateLimits(redis_url, key_prefix=f"found:{uuid.uuid4().hex}:")
    try:
        async with telnyx_msg.AsyncClient(
            "KEY0123456789", base_url=server.base_url, rate_limits=limits
        ) as client:
            await client.messages.send(
                from_=MMS_FROM, to=MMS_TO, media_urls=MMS_MEDIA
            )  # 429, then the retry 3 s later: 200
            for _ in range(4):
                await client.messages.send(from_=MMS_FROM, to=MMS_TO, media_urls=MMS_MEDIA)
    finally:
        await limits.aclose()
    assert len(arrivals) == 6
    gaps = [b - a for a, b in itertools.pairwise(arrivals[2:])]
    # From 10.5/s (recovering along its CUBIC curve) the request bucket, emptied by the 429,
    # lets one MMS out every 80-95 ms; from 35/s, every 25-29 ms.
    assert min(gaps) > 0.06, [round(gap, 3) for gap in gaps]


FORK_WHILE_HELD_SCRIPT = r"""
import asyncio, os, sys, threading, time
from telnyx_msg import RedisRateLimits

limits = RedisRateLimits(sys.argv[1], key_prefix=sys.argv[2], account_mps=100.0)
held, release = threading.Event(), threading.Event()


def hold() -> None:  # a parent thread inside the limiter (recording a response) as it forks
    with limits._state_lock:
        held.set()
        release.wait(10)


threading.Thread(target=hold, daemon=True).start()
held.wait(5)
pid = os.fork()
if pid == 0:  # a pre-forked worker: its own event loop, the limiter made before the fork
    asyncio.run(limits.acquire("+18005550101"))
    os.write(1, b"child: granted\n")
    os._exit(0)
release.set()
deadline = time.monotonic() + 10
while os.waitpid(pid, os.WNOHANG) == (0, 0):
    if time.monotonic() > deadline:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print("parent: the child hung", flush=True)
        break
    time.sleep(0.01)
asyncio.run(limits.acquire("+18005550101"))
print("parent: ok", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_while_a_parent_thread_was_inside_the_limiter_can_use_it(
    redis_process: RedisProcess, prefix: str
) -> None:
    """A RedisRateLimits made before a fork (gunicorn --preload) while another thread of the
    parent was inside it (clients on other threads report their responses under its lock):
    the child's first acquire, on the child's own event loop, is granted. Guards against:
    the child blocking for ever on the lock that parent thread held (it never releases it in
    the child), as RateLimits did before its lock was replaced in forked children."""
    done = subprocess.run(
        [sys.executable, "-c", FORK_WHILE_HELD_SCRIPT, redis_process.url, prefix],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.splitlines() == ["child: granted", "parent: ok"], done.stdout + done.stderr


def test_a_limiter_used_again_after_aclose_in_the_same_loop_closes_its_connections(
    redis_process: RedisProcess, prefix: str
) -> None:
    """``async with limits:`` twice in one event loop (a long-running worker closing the
    limiter after each job): once the second block has closed it, no connection of the
    limiter stays open. The loop's new Redis client was forgotten right after it was made
    (the first client's shutdown guard, replaced, took the new one's guard with it), so the
    connection it opened was never closed by ``aclose()``."""
    limits = RedisRateLimits(redis_process.url, key_prefix=prefix)
    check = redis.Redis(port=redis_process.port)
    check.client_setname("check")

    def open_connections() -> int:
        return sum(1 for client in check.client_list() if client.get("name") != "check")

    async def main() -> list[int]:
        left: list[int] = []
        for _ in range(2):
            async with limits:
                await limits.acquire(TOLL_FREE)
                await asyncio.sleep(0.05)  # what the loop runs meanwhile has run
            await asyncio.sleep(0.05)
            left.append(open_connections())
        return left

    try:
        assert asyncio.run(asyncio.wait_for(main(), 20)) == [0, 0]
    finally:
        check.close()
