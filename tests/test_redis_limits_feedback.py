"""RedisRateLimits bookkeeping against real redis-servers started by the tests: the success
count and the 429 feedback a process owes the shared state survive a failed round trip, only
2xx answers count as successes, a reset_after ages while it waits to be written, and every
round trip is bounded even on a borrowed client without socket timeouts."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis
from aiohttp import web

import telnyx_msg
from telnyx_msg._redis_limits import RedisRateLimits
from telnyx_msg.errors import RateLimiterUnavailableError
from tests.conftest import ApiServer, Handler, json_response, message_json, telnyx_error
from tests.redis_proc import RedisProcess

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

SENDER = "+18005550101"


class Stop(Exception):
    """Raised by the recording sleep: the acquire was told to wait."""


class Sleeps:
    """A sleep that records the delay it was asked for, then raises Stop."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        raise Stop


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server this test may freeze, kill or restart."""
    proc = RedisProcess(tmp_path)
    yield proc
    proc.close()


@pytest.fixture
def prefix() -> str:
    return f"found:{uuid.uuid4().hex}:"


async def meter_count(limits: RedisRateLimits, prefix: str) -> float:
    """Successes in the shared meter's current slot (written by the last round trip)."""
    value = await limits._redis.hget(f"{prefix}meter", "count")
    return float(value or 0)


async def test_successes_reported_around_a_timed_out_round_trip_all_reach_the_meter(
    redis_process: RedisProcess, prefix: str
) -> None:
    """2xx answers counted before and during an acquire whose call timeout ran out against a
    frozen (then lost) Redis are all added by the next round trip: none is dropped (which
    would let a 429 set W_max from a success rate lower than every process really achieved)."""
    limits = RedisRateLimits(redis_process.url, key_prefix=prefix, redis_timeout=2.0)
    try:
        await limits.acquire(SENDER)  # scripts loaded, no success yet
        for _ in range(3):
            limits.on_response(SENDER, status=200, code=None, reset_after=None)
        redis_process.freeze()
        try:
            waiting = asyncio.ensure_future(limits.acquire(SENDER, timeout=0.4))
            await asyncio.sleep(0.1)
            for _ in range(2):  # answers of other sends while that round trip hangs
                limits.on_response(SENDER, status=201, code=None, reset_after=None)
            with pytest.raises(RateLimiterUnavailableError, match="this call's timeout"):
                await waiting
        finally:
            # Killed while frozen: the script it was sent never ran (a thawed Redis would
            # run it late and count those successes too).
            redis_process.kill()
        redis_process.start()
        await limits.acquire(SENDER)
        assert await meter_count(limits, prefix) == 5
    finally:
        await limits.aclose()


async def test_successes_reported_before_redis_failed_reach_the_meter_later(
    redis_process: RedisProcess, prefix: str
) -> None:
    """An acquire that fails with RateLimiterUnavailableError (Redis frozen past
    redis_timeout, then lost) keeps the successes it was carrying: the next acquire, on the
    restarted Redis, adds them."""
    limits = RedisRateLimits(redis_process.url, key_prefix=prefix, redis_timeout=0.3)
    try:
        await limits.acquire(SENDER)
        for _ in range(4):
            limits.on_response(SENDER, status=200, code=None, reset_after=None)
        redis_process.freeze()
        try:
            with pytest.raises(RateLimiterUnavailableError):
                await limits.acquire(SENDER)
        finally:
            redis_process.kill()  # the script sent to the frozen server never runs
        redis_process.start()
        await limits.acquire(SENDER)
        assert await meter_count(limits, prefix) == 4
    finally:
        await limits.aclose()


async def test_only_2xx_answers_count_as_successes(redis_url: str, prefix: str) -> None:
    """A 400, 404 or 500 answer is not a success: the shared meter counts the 2xx only."""
    limits = RedisRateLimits(redis_url, key_prefix=prefix)
    try:
        await limits.acquire(SENDER)
        for status in (200, 202, 400, 404, 500, 503, 302):
            limits.on_response(SENDER, status=status, code=None, reset_after=None)
        await limits.acquire(SENDER)
        assert await meter_count(limits, prefix) == 2
    finally:
        await limits.aclose()


async def test_a_429_reset_ages_until_it_is_written(redis_url: str, prefix: str) -> None:
    """A 10011 with reset_after=5 recorded 3 s before the next acquire blocks the account only
    for what is left of it (about 1.1 s), not another full 4.1 s."""
    now = [100.0]
    sleeps = Sleeps()
    limits = RedisRateLimits(
        redis_url, key_prefix=prefix, account_mps=10.0, clock=lambda: now[0], sleep=sleeps
    )
    try:
        await limits.acquire(None)
        limits.on_response(None, status=429, code="10011", reset_after=5.0)
        now[0] += 3.0
        with pytest.raises(Stop):
            await limits.acquire(None)
        assert 0.9 < sleeps.delays[0] < 1.1 + 1 / 7 + 0.05
    finally:
        await limits.aclose()


async def test_a_full_queue_reported_while_redis_is_down_still_pauses_the_sender(
    redis_process: RedisProcess, prefix: str
) -> None:
    """A 40318 (the sender's queue is full) whose feedback could not be written because Redis
    was down is written by the first acquire after Redis is back: that sender waits about
    144 s instead of sending into the full queue."""
    sleeps = Sleeps()
    limits = RedisRateLimits(redis_process.url, key_prefix=prefix, redis_timeout=0.5, sleep=sleeps)
    try:
        await limits.acquire(SENDER)
        limits.on_response(SENDER, status=429, code="40318", reset_after=None)
        redis_process.kill()
        with pytest.raises(RateLimiterUnavailableError):
            await limits.acquire(SENDER)
        redis_process.start()
        with pytest.raises(Stop):
            await limits.acquire(SENDER)
        assert 100 < sleeps.delays[0] <= 144 + 1e-6
    finally:
        await limits.aclose()


async def test_the_longer_of_two_429s_survives_a_failed_write(
    redis_process: RedisProcess, prefix: str
) -> None:
    """A 10011 with reset 5 s is being written when Redis freezes, and a shorter one (reset
    1 s) arrives meanwhile: after the failed write the longer block is what the next acquire
    writes, as if both had been recorded together."""
    sleeps = Sleeps()
    limits = RedisRateLimits(
        redis_process.url, key_prefix=prefix, account_mps=10.0, redis_timeout=0.3, sleep=sleeps
    )
    try:
        await limits.acquire(None)
        limits.on_response(None, status=429, code="10011", reset_after=5.0)
        redis_process.freeze()
        try:
            failing = asyncio.ensure_future(limits.acquire(None))
            await asyncio.sleep(0.1)
            limits.on_response(None, status=429, code="10011", reset_after=1.0)
            with pytest.raises(RateLimiterUnavailableError):
                await failing
        finally:
            redis_process.thaw()
        with pytest.raises(Stop):
            await limits.acquire(None)
        assert sleeps.delays[0] > 3.0
    finally:
        await limits.aclose()


async def test_a_frozen_redis_behind_a_borrowed_client_fails_within_redis_timeout(
    redis_process: RedisProcess, prefix: str
) -> None:
    """With client= (a redis.asyncio.Redis built without socket timeouts), a frozen Redis
    still fails the acquire with RateLimiterUnavailableError after about redis_timeout,
    instead of holding the send for as long as Redis stays frozen."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_process.url)
    limits = RedisRateLimits(client=client, key_prefix=prefix, redis_timeout=0.3)
    try:
        await limits.acquire(SENDER)
        redis_process.freeze()
        try:
            with pytest.raises(RateLimiterUnavailableError):
                await asyncio.wait_for(limits.acquire(SENDER), 3.0)
        finally:
            redis_process.thaw()
    finally:
        await limits.aclose()
        await client.aclose()


SENDER = "+18005550101"
RECIPIENT = "+18445550002"
REDIS_TIMEOUT = 3.0
CALL_TIMEOUT = 0.5


def pause_redis(url: str, seconds: float) -> None:
    """``CLIENT PAUSE``: Redis holds every client's commands for ``seconds`` (a stall)."""
    admin = redis.Redis.from_url(url)
    try:
        admin.client_pause(int(seconds * 1000), all=True)
    finally:
        admin.close()


@pytest.mark.parametrize(
    ("code", "title"), [("40318", "Message queue full"), ("10011", "Too many requests")]
)
async def test_a_short_send_timeout_bounds_the_write_of_an_earlier_429_feedback(
    api_server: Callable[[Handler], Awaitable[ApiServer]],
    redis_process: RedisProcess,
    code: str,
    title: str,
) -> None:
    """A send got a 429 (its sender's queue full, or the account throttled); Redis then stalls
    and the next send, with ``timeout=0.5``, must end within about its own timeout with
    ``RateLimiterUnavailableError`` and nothing sent (docs/rate-limits.md: "A timeout shorter
    than redis_timeout also bounds the round trip"). It was held for the whole
    ``redis_timeout`` (3 s) while the limiter wrote the 429's feedback, and the error blamed a
    3 s Redis bound the caller never asked for."""
    answers = iter([telnyx_error(429, code, title)])

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return next(answers, None) or json_response({"data": message_json()})

    server = await api_server(handler)
    limits = telnyx_msg.RedisRateLimits(
        redis_process.url, redis_timeout=REDIS_TIMEOUT, key_prefix=f"found:{uuid.uuid4().hex}:"
    )
    no_retry = telnyx_msg.RequestOptions(max_retries=0)
    short = telnyx_msg.RequestOptions(timeout=CALL_TIMEOUT, max_retries=0)
    try:
        async with telnyx_msg.AsyncClient(
            "secret-key", base_url=server.base_url, rate_limits=limits
        ) as client:
            with pytest.raises(telnyx_msg.APIStatusError):
                await client.messages.send(
                    from_=SENDER, to=RECIPIENT, text="refused", options=no_retry
                )
            pause_redis(redis_process.url, REDIS_TIMEOUT + 1.0)
            started = time.monotonic()
            with pytest.raises(telnyx_msg.RateLimiterUnavailableError) as caught:
                await client.messages.send(
                    from_=SENDER, to=RECIPIENT, text="stalled", options=short
                )
            elapsed = time.monotonic() - started
    finally:
        await limits.aclose()
    assert len(server.requests) == 1  # only the refused one: nothing sent while Redis stalled
    assert elapsed < CALL_TIMEOUT + 0.75, (
        f"send(timeout={CALL_TIMEOUT}) took {elapsed:.2f} s: {caught.value}"
    )
