"""RateLimits and sender_kind, on a virtual clock (no real sleeping)."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telnyx_msg import RateLimits
from telnyx_msg._bucket import (
    MIN_DT,
    QUEUE_SECONDS,
    TokenBucket,
    cubic_rate,
    drain_tokens,
    resolve_config,
)
from telnyx_msg._ratelimit import LoopOwner, sender_kind
from telnyx_msg.errors import ConfigurationError, RateLimitError
from tests.conftest import examples

T = TypeVar("T")

# ---------------------------------------------------------------------- virtual clock
# Time moves only when every task is blocked: ``clock.sleep(d)`` parks the caller on a timer;
# ``await clock.run(coro)`` jumps to the earliest timer whenever the loop has nothing to run.


class DeadlockError(RuntimeError):
    """Every task is blocked and no virtual timer is pending."""


class VirtualClock:
    """Virtual ``time()`` and ``sleep()`` driven by :meth:`run`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.sleeps = 0

    def time(self) -> float:
        """The current virtual time in seconds."""
        return self.now

    async def sleep(self, delay: float) -> None:
        """Sleep ``delay`` virtual seconds."""
        self.sleeps += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, delay), next(self._seq), future))
        await future

    async def _settle(self) -> None:
        """Yield until the loop has no ready callbacks (CPython's ``BaseEventLoop._ready``)."""
        loop = asyncio.get_running_loop()
        for _ in range(100_000):
            await asyncio.sleep(0)
            if not getattr(loop, "_ready", None):
                return
        raise RuntimeError("the event loop never settled")

    async def advance(self) -> bool:
        """Settle, then jump to the earliest timer and wake the due ones; False if none."""
        await self._settle()
        timers = self._timers
        while timers and timers[0][2].done():
            heapq.heappop(timers)
        if not timers:
            return False
        self.now = max(self.now, timers[0][0])
        while timers and timers[0][0] <= self.now:
            _, _, future = heapq.heappop(timers)
            if not future.done():
                future.set_result(None)
        await self._settle()
        return True

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on virtual time."""
        task = asyncio.ensure_future(coro)
        try:
            while not task.done():
                if not await self.advance() and not task.done():
                    raise DeadlockError("all tasks are blocked and no virtual timer is pending")
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


T0 = 1000.0
TOLL_FREE = "+18005550101"
TOLL_FREE_2 = "+18445550002"
LONG_CODE = "+447700900123"
PROFILE_ID = "16fd2706-8baf-433b-82eb-8c7fada847da"


@pytest.fixture
def anyio_backend() -> str:
    """Asyncio's own loop, also under ``nox -s uvloop``: VirtualClock reads its ready queue."""
    return "asyncio"


@pytest.fixture
def clock() -> VirtualClock:
    """A virtual clock starting at T0."""
    return VirtualClock(T0)


def limits(clock: VirtualClock, *args: object, **kwargs: object) -> RateLimits:
    """RateLimits on the virtual clock."""
    return RateLimits(*args, clock=clock.time, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


def window_max(times: list[float], width: float, *, after: float = -math.inf) -> int:
    """The most grants in any closed window [t, t + width] with t a grant time > ``after``."""
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        if start > after:
            best = max(best, bisect.bisect_right(times, start + width + 1e-9) - i)
    return best


async def demand(
    clock: VirtualClock, lim: RateLimits, until: float, sender: str | None = None
) -> list[float]:
    """Keep 30 callers acquiring until ``until``; return the grant times up to ``until``."""
    grants: list[float] = []

    async def worker() -> None:
        while clock.now <= until:
            await lim.acquire(sender)
            if clock.now <= until + 1e-9:
                grants.append(clock.now)

    await asyncio.gather(*(worker() for _ in range(30)))
    return grants


# ---------------------------------------------------------------------- sender_kind and config


@pytest.mark.parametrize(
    ("sender", "kind"),
    [
        ("12345", "short_code"),
        ("123", "short_code"),
        ("12345678", "short_code"),
        ("+18005550101", "toll_free"),
        ("+18335550101", "toll_free"),
        ("+18885550101", "toll_free"),
        ("18775550101", "toll_free"),
        ("+18015550101", "long_code"),
        ("+447700900123", "long_code"),
        ("+12", "long_code"),
        ("+1800555010", "long_code"),
        ("16fd2706-8baf-433b-82eb-8c7fada847da", "number_pool"),
        ("MyBrand", "alphanumeric"),
        ("12", "alphanumeric"),
        ("+0123456", "alphanumeric"),
        ("١٢٣٤٥", "alphanumeric"),
    ],
)
def test_sender_kind(sender: str, kind: str) -> None:
    """Senders are classified by the documented rules."""
    assert sender_kind(sender) == kind


@pytest.mark.parametrize(
    "kwargs",
    [
        {"account_mps": 0},
        {"account_mps": -1.0},
        {"account_mps": math.inf},
        {"account_mps": True},
        {"per_kind_mps": {"longcode": 1.0}},
        # Not a message type: it would never be used, and SMS stay at the default 50/s.
        {"account_mps": {"SMS ": 5.0}},
        {"account_mps": {"WHATSAPP": 5.0}},
        {"per_kind_mps": {"long_code": math.nan}},
        {"per_sender_mps": {"+18005550101": 0}},
        {"per_sender_mps": {"": 1.0}},
        {"burst": 0.5},
        {"queue_fraction": 0},
        {"queue_fraction": 1.5},
    ],
)
def test_bad_settings_raise_configuration_error(kwargs: dict[str, object]) -> None:
    """Invalid rates, unknown kinds or message types, burst < 1 and bad fractions fail at
    construction."""
    with pytest.raises(ConfigurationError):
        RateLimits(**kwargs)  # type: ignore[arg-type]


def test_formulas() -> None:
    """CUBIC starts at 0.7 x W_max and is back at W_max after K; drain is 1 % of 4 h x rate."""
    assert cubic_rate(50.0, 0.0) == pytest.approx(35.0)
    assert cubic_rate(50.0, (50.0 * 0.3 / 0.4) ** (1 / 3)) == pytest.approx(50.0)
    assert drain_tokens(0.1) == pytest.approx(14.4)
    assert drain_tokens(1e-6) == 1.0
    assert QUEUE_SECONDS == 14_400


# ---------------------------------------------------------------------- accuracy (G11)


@pytest.mark.anyio
async def test_ten_per_second_for_ten_seconds(clock: VirtualClock) -> None:
    """10/s, burst 10, 10 s of demand: at most 110 grants, at most 11 in any later 1 s window."""
    lim = limits(clock, account_mps=10.0, burst=10)
    grants = await clock.run(demand(clock, lim, T0 + 10))
    assert 105 <= len(grants) <= 110
    assert grants.count(T0) == 10
    assert window_max(grants, 1.0, after=T0) <= 11
    assert window_max(grants, 1.0) <= 10 + 10


@pytest.mark.anyio
async def test_rate_over_sixty_seconds_within_two_percent(clock: VirtualClock) -> None:
    """Over 60 s of demand the rate after the initial burst is 10/s within 2 %."""
    lim = limits(clock, account_mps=10.0, burst=10)
    grants = await clock.run(demand(clock, lim, T0 + 60))
    after_burst = [t for t in grants if t > T0]
    assert len(after_burst) / 60 == pytest.approx(10.0, rel=0.02)


@pytest.mark.anyio
async def test_fairness_across_three_lanes(clock: VirtualClock) -> None:
    """Lanes of 0.1, 20 and 1,000/s under a 50/s account get min(lane, fair share), FIFO each."""
    rates = {"A": 0.1, "B": 20.0, "C": 1000.0}
    counts = {"A": 10, "B": 900, "C": 1090}  # 2,000 queued messages
    lim = limits(clock, account_mps=50.0, per_sender_mps=rates)
    log: list[tuple[float, str, int]] = []

    async def send(sender: str, index: int) -> None:
        await lim.acquire(sender)
        log.append((clock.now, sender, index))

    async def body() -> None:
        await asyncio.gather(*(send(s, i) for s, n in counts.items() for i in range(n)))

    await clock.run(body())
    assert len(log) == 2000
    for sender in rates:
        assert [i for _, s, i in log if s == sender] == list(range(counts[sender]))
    # A is always below its fair share: 1 at once, then one per 10 s.
    a_times = [t for t, s, _ in log if s == "A"]
    assert (len(a_times) - 1) / (a_times[-1] - a_times[0]) == pytest.approx(0.1, rel=0.05)
    # While all three lanes are backlogged (2 s .. 30 s): B gets 20/s, C the rest of 50/s.
    window = [(t, s) for t, s, _ in log if T0 + 2 <= t < T0 + 30]
    assert sum(1 for _, s in window if s == "B") / 28 == pytest.approx(20.0, rel=0.05)
    assert sum(1 for _, s in window if s == "C") / 28 == pytest.approx(29.9, rel=0.05)
    assert window_max([t for t, _, _ in log], 1.0, after=T0) <= 51


@pytest.mark.anyio
async def test_slow_lane_does_not_delay_fast_lane(clock: VirtualClock) -> None:
    """Waiters queued on a 0.1/s lane do not hold account tokens other lanes need."""
    lim = limits(clock, account_mps=10.0, burst=1, per_sender_mps={"slow": 0.1, "fast": 10.0})
    fast: list[float] = []

    async def body() -> None:
        slow = [asyncio.ensure_future(lim.acquire("slow")) for _ in range(5)]
        await clock.sleep(0.05)
        for _ in range(10):
            await lim.acquire("fast")
            fast.append(clock.now)
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)

    await clock.run(body())
    # The account's only token went to the first slow waiter at T0; fast then gets 10/s.
    assert fast == pytest.approx([T0 + 0.1 * k for k in range(1, 11)])


@pytest.mark.anyio
async def test_newcomer_lane_queues_behind_lanes_waiting_for_the_account(
    clock: VirtualClock,
) -> None:
    """An acquire from an idle lane never takes an account token a waiting lane is owed."""
    lim = limits(
        clock, account_mps=1.0, burst=1, per_sender_mps={"a": None, "b": None, "c": None, "d": None}
    )
    order: list[str] = []

    async def send(sender: str) -> None:
        await lim.acquire(sender)
        order.append(f"{sender}@{clock.now - T0:g}")

    async def newcomer() -> None:
        await clock.sleep(1.0)  # wakes at 1 s before the limiter's own timer does
        await send("b")

    async def body() -> None:
        late = asyncio.ensure_future(newcomer())
        await asyncio.sleep(0)
        await asyncio.gather(late, *(send(s) for s in "acd"))

    await clock.run(body())
    # c and d waited for the account since 0 s; b arrives at 1 s, when a token is free, and
    # must not take it from them.
    assert order[:2] == ["a@0", "d@1"]
    assert len(order) == 4
    assert "b@1" not in order


@pytest.mark.anyio
async def test_fifo_within_a_lane(clock: VirtualClock) -> None:
    """Waiters of one lane are granted in arrival order."""
    lim = limits(clock, account_mps=5.0)
    order: list[int] = []

    async def send(index: int) -> None:
        await lim.acquire(TOLL_FREE)
        order.append(index)

    async def body() -> None:
        await asyncio.gather(*(send(i) for i in range(40)))

    await clock.run(body())
    assert order == list(range(40))


# ---------------------------------------------------------------------- sender lanes


@pytest.mark.anyio
async def test_long_code_lane_models_the_server_queue(clock: VirtualClock) -> None:
    """A 0.1/s long code sends half its 1,440 queue at once, then paces at 0.1/s."""
    lim = limits(clock, account_mps=None)
    times: list[float] = []

    async def body() -> None:
        for _ in range(722):
            await lim.acquire(LONG_CODE)
            times.append(clock.now)

    await clock.run(body())
    assert times[:720] == [T0] * 720
    assert times[720:] == pytest.approx([T0 + 10, T0 + 20])


@pytest.mark.anyio
async def test_server_queue_estimate_drains_at_the_lane_rate(clock: VirtualClock) -> None:
    """After 100 s idle the estimated backlog is 10 lower: 10 more sends go through at once."""
    lim = limits(clock, account_mps=None, queue_fraction=0.01)  # H = 14.4 for 0.1/s
    times: list[float] = []

    async def body() -> None:
        for _ in range(14):
            await lim.acquire(LONG_CODE)
        await clock.sleep(100)
        for _ in range(11):
            await lim.acquire(LONG_CODE)
            times.append(clock.now)

    await clock.run(body())
    assert times[:10] == [T0 + 100] * 10
    assert times[10] > T0 + 100


@pytest.mark.anyio
async def test_explicit_sender_rate_is_a_strict_bucket(clock: VirtualClock) -> None:
    """per_sender_mps makes a strict token bucket (burst = rate rounded up)."""
    lim = limits(clock, account_mps=None, per_sender_mps={LONG_CODE: 2.0})
    grants = await clock.run(demand(clock, lim, T0 + 5, sender=LONG_CODE))
    assert grants.count(T0) == 2
    assert len(grants) == 2 + 10


@pytest.mark.anyio
async def test_per_kind_override_keeps_the_queue_model(clock: VirtualClock) -> None:
    """per_kind_mps changes the kind's rate and so its queue allowance (0.5 x 4 h x rate)."""
    lim = limits(clock, account_mps=None, per_kind_mps={"long_code": 0.01})
    times: list[float] = []

    async def body() -> None:
        for _ in range(73):
            await lim.acquire(LONG_CODE)
            times.append(clock.now)

    await clock.run(body())
    assert times[:72] == [T0] * 72
    assert times[72] == pytest.approx(T0 + 100)


@pytest.mark.anyio
async def test_mms_account_lane_defaults_to_fifteen(clock: VirtualClock) -> None:
    """MMS uses its own 15/s account lane; SMS keeps its 50/s."""
    lim = limits(clock)
    mms: list[float] = []
    sms: list[float] = []

    async def body() -> None:
        for _ in range(16):
            await lim.acquire(None, "MMS")
            mms.append(clock.now)
        for _ in range(50):
            await lim.acquire(None, "SMS")
            sms.append(clock.now)

    await clock.run(body())
    assert mms[:15] == [T0] * 15
    assert mms[15] == pytest.approx(T0 + 1 / 15)
    assert sms == [mms[15]] * 50


@pytest.mark.anyio
async def test_unknown_message_type_uses_the_sms_lane(clock: VirtualClock) -> None:
    """A message type without its own lane shares the SMS account lane."""
    lim = limits(clock, account_mps=2.0)

    async def body() -> float:
        await lim.acquire(None, "SMS")
        await lim.acquire(None, "WHATSAPP")
        await lim.acquire(None, "sms")
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 0.5)


@pytest.mark.anyio
async def test_account_mapping_sets_each_type(clock: VirtualClock) -> None:
    """account_mps may map message types to rates; None removes that lane."""
    lim = limits(clock, account_mps={"SMS": None, "MMS": 1.0})

    async def body() -> float:
        for _ in range(500):
            await lim.acquire(None, "SMS")
        assert clock.now == T0
        await lim.acquire(None, "MMS")
        await lim.acquire(None, "MMS")
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 1)


# ---------------------------------------------------------------------- cancellation


@pytest.mark.anyio
async def test_cancelling_the_sleeping_waiter_hands_over(clock: VirtualClock) -> None:
    """Cancelling the waiter that sleeps for the others lets the next one in on time."""
    lim = limits(clock, account_mps=1.0)
    times: dict[str, float] = {}

    async def get(name: str) -> None:
        await lim.acquire(None)
        times[name] = clock.now

    async def body() -> None:
        await lim.acquire(None)
        tasks = {n: asyncio.ensure_future(get(n)) for n in "bcd"}
        await clock.sleep(0.5)
        tasks["b"].cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    await clock.run(body())
    assert times == pytest.approx({"c": T0 + 1, "d": T0 + 2})
    assert not lim._parked


@pytest.mark.anyio
async def test_cancelled_waiter_gives_back_nothing_it_did_not_take(clock: VirtualClock) -> None:
    """A waiter cancelled before its grant takes no token and returns none."""
    lim = limits(clock, account_mps=1.0)
    times: dict[str, float] = {}

    async def get(name: str) -> None:
        await lim.acquire(None)
        times[name] = clock.now

    async def body() -> None:
        await lim.acquire(None)
        tasks = {n: asyncio.ensure_future(get(n)) for n in "bcd"}
        await clock.sleep(0.5)
        tasks["c"].cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)

    await clock.run(body())
    assert times == pytest.approx({"b": T0 + 1, "d": T0 + 2})


@pytest.mark.anyio
@pytest.mark.parametrize("timed_out", [False, True])
async def test_a_cancelled_mms_wait_does_not_hold_the_senders_sms(
    clock: VirtualClock, timed_out: bool
) -> None:
    """An MMS waiting for the MMS account lane, cancelled (or timed out), leaves its sender's
    next SMS to the SMS lane: it waited for an MMS token it would not use (5 s here)."""
    lim = limits(clock, account_mps={"SMS": 50.0, "MMS": 0.2})
    times: dict[str, float] = {}

    async def body() -> None:
        await lim.acquire(TOLL_FREE, "MMS")
        if timed_out:
            with pytest.raises(RateLimitError):
                await lim.acquire(TOLL_FREE, "MMS", timeout=1.0)
        else:
            mms = asyncio.ensure_future(lim.acquire(TOLL_FREE, "MMS"))
            await clock.sleep(0.5)
            mms.cancel()
            await asyncio.gather(mms, return_exceptions=True)
        start = clock.now
        await lim.acquire(TOLL_FREE, "SMS", timeout=2.0)
        times["sms"] = clock.now - start

    await clock.run(body())
    assert times["sms"] == pytest.approx(0.0)


@pytest.mark.anyio
async def test_cancelled_after_grant_returns_its_tokens(clock: VirtualClock) -> None:
    """A waiter granted but cancelled before it resumed gives its lane token back."""
    lim = limits(clock, account_mps=None, per_sender_mps={"S": 1.0, "T": 1.0})
    times: dict[str, float] = {}
    c_task: asyncio.Future[None] | None = None

    async def get_c() -> None:
        await lim.acquire("T")
        times["c"] = clock.now

    async def get_b() -> None:
        await lim.acquire("S")
        times["b"] = clock.now
        assert c_task is not None
        c_task.cancel()  # c was granted in the same pump; it has not resumed yet

    async def body() -> None:
        nonlocal c_task
        await lim.acquire("S")
        await lim.acquire("T")
        b_task = asyncio.ensure_future(get_b())
        await clock.sleep(0)
        c_task = asyncio.ensure_future(get_c())
        await asyncio.gather(b_task, c_task, return_exceptions=True)
        await lim.acquire("T")
        times["d"] = clock.now

    await clock.run(body())
    assert times == pytest.approx({"b": T0 + 1, "d": T0 + 1})


# ---------------------------------------------------------------------- adaptive


@pytest.mark.anyio
@pytest.mark.parametrize("code", ["10011", None])
@pytest.mark.parametrize(("reset", "blocked"), [(2.5, 2.5), (2.0, 1.1)])
async def test_10011_decreases_rate_and_blocks_until_reset(
    clock: VirtualClock, reset: float, blocked: float, code: str | None
) -> None:
    """429 10011 (or a 429 without a code): no grant until the reset (a whole-second value less
    its 0.9 s rounding slack), then 0.7 x the rate."""
    lim = limits(clock, account_mps=10.0)
    times: list[float] = []

    async def body() -> None:
        for _ in range(10):
            await lim.acquire(None)
        lim.on_response(None, status=429, code=code, reset_after=reset)
        for _ in range(3):
            await lim.acquire(None)
            times.append(clock.now)

    await clock.run(body())
    assert times == pytest.approx([T0 + blocked + k / 7 for k in (1, 2, 3)])


@pytest.mark.anyio
async def test_repeated_10011_within_cooldown_decreases_once(clock: VirtualClock) -> None:
    """Throttles answered to requests already in flight do not compound the decrease."""
    lim = limits(clock, account_mps=10.0, burst=1)

    async def body() -> float:
        await lim.acquire(None)
        for _ in range(5):
            lim.on_response(None, status=429, code="10011", reset_after=None)
        await lim.acquire(None)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 1 / 7)


@pytest.mark.anyio
async def test_after_a_10011_sms_and_mms_share_one_request_rate(clock: VirtualClock) -> None:
    """Telnyx's 10011 limit counts requests of every message type: after it, SMS and MMS go at
    0.7 x the rate together, taking turns (not 0.7 x the rate each, which together aimed above
    the limit)."""
    lim = limits(clock, account_mps=10.0, burst=1)
    order: list[tuple[float, str]] = []

    async def send(kind: str) -> None:
        for _ in range(7):
            await lim.acquire(None, kind)
            order.append((clock.now, kind))

    async def body() -> None:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        await asyncio.gather(send("SMS"), send("MMS"))

    await clock.run(body())
    assert [at for at, _ in order] == pytest.approx([T0 + k / 7 for k in range(1, 15)])
    kinds = [kind for _, kind in order]
    assert all(a != b for a, b in itertools.pairwise(kinds)), kinds


@pytest.mark.anyio
async def test_the_request_rate_recovers_to_the_sum_of_the_account_rates(
    clock: VirtualClock,
) -> None:
    """Once recovered, the request rate no longer binds: SMS and MMS each send at their own
    10/s again (20/s together), as before the 429."""
    lim = limits(clock, account_mps=10.0, burst=1)
    times: dict[str, list[float]] = {"SMS": [], "MMS": []}

    async def send(kind: str, until: float) -> None:
        while clock.now < until:
            await lim.acquire(None, kind)
            times[kind].append(clock.now)
            lim.on_response(None, status=200, code=None, reset_after=None)

    async def body() -> None:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        await asyncio.gather(send("SMS", T0 + 10), send("MMS", T0 + 10))

    await clock.run(body())
    for kind in ("SMS", "MMS"):
        late = [t for t in times[kind] if t > T0 + 6]
        assert [b - a for a, b in itertools.pairwise(late)] == pytest.approx(
            [0.1] * (len(late) - 1), rel=1e-6
        ), kind


@pytest.mark.anyio
async def test_a_late_success_does_not_lift_a_10011_block_before_the_reset(
    clock: VirtualClock,
) -> None:
    """Defaults (SMS 50/s, MMS 15/s). A 429 10011 says the window resets in 30.5 s; 7 s later a
    request that was already in flight answers 201. The request rate's CUBIC curve has then
    passed the sum of the account rates (65/s), but the window has not reset: a send must
    still wait until T0 + 30.5, so ``acquire(timeout=5)`` raises RateLimitError with that
    wait. (The bucket was dropped with its block and the send went out into the window.)"""
    lim = limits(clock)

    async def body() -> None:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=30.5)
        await clock.sleep(7.0)
        lim.on_response(None, status=201, code=None, reset_after=None)  # in flight before
        with pytest.raises(RateLimitError) as info:
            await lim.acquire(None, timeout=5.0)
        assert info.value.retry_after is not None
        assert 23.5 - 1e-6 <= info.value.retry_after <= 24.0

    await clock.run(body())


@pytest.mark.anyio
async def test_successes_of_an_unlimited_type_do_not_lift_the_block(clock: VirtualClock) -> None:
    """``account_mps={"SMS": 20, "MMS": None}``: MMS sends are not limited and keep
    succeeding. A 10011 with a 30.5 s reset keeps SMS sends blocked for all of it (the MMS
    2xx recovered the request rate to its 20/s ceiling within seconds, and dropping the
    bucket then let SMS sends resume about 5 s after the 429)."""
    lim = limits(clock, account_mps={"SMS": 20.0, "MMS": None})
    sms_times: list[float] = []

    async def body() -> None:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=30.5)
        while clock.now < T0 + 10:
            await lim.acquire(None, "MMS")
            lim.on_response(None, status=200, code=None, reset_after=None)
            await clock.sleep(0.1)
        await lim.acquire(None, "SMS")
        sms_times.append(clock.now)

    await clock.run(body())
    assert sms_times[0] >= T0 + 30.5 - 1e-6


@pytest.mark.anyio
async def test_a_429_in_the_cooldown_after_a_fast_recovery_does_not_decrease_again(
    clock: VirtualClock,
) -> None:
    """``{"SMS": 1, "MMS": None}``: after a 10011 the request rate (0.7/s) is back at its
    1/s ceiling within 0.95 s, inside the 1 s cooldown. A 429 answering a request already in
    flight (0.97 s) must not decrease it again: the next token is 1 s after that 429 (at
    1/s), not 1/0.7 s (a new bucket at 0.7/s, as if it were a fresh throttle)."""
    lim = limits(clock, account_mps={"SMS": 1.0, "MMS": None}, burst=1)

    async def body() -> float:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        await clock.sleep(0.95)
        lim.on_response(None, status=200, code=None, reset_after=None)
        await clock.sleep(0.02)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        await lim.acquire(None)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 0.97 + 1.0)


@pytest.mark.anyio
async def test_rate_recovers_on_successes(clock: VirtualClock) -> None:
    """After a decrease, successes bring the rate back to 10/s along the CUBIC curve."""
    lim = limits(clock, account_mps=10.0, burst=1)
    times: list[float] = []

    async def body() -> None:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        while clock.now < T0 + 6:
            await lim.acquire(None)
            times.append(clock.now)
            lim.on_response(None, status=201, code=None, reset_after=None)

    await clock.run(body())
    gaps = [(a, b - a) for a, b in itertools.pairwise(times)]
    assert times[0] == pytest.approx(T0 + 1 / 7)
    assert gaps[0][1] > 0.12  # ~7/s right after the decrease
    late = [gap for start, gap in gaps if start > T0 + 2.5]
    assert len(late) >= 30
    assert late == pytest.approx([0.1] * len(late), rel=1e-6)


@pytest.mark.anyio
async def test_40318_pauses_only_that_sender(clock: VirtualClock) -> None:
    """A full queue pauses its lane for max(1/rate, 144 s); other lanes go on at once."""
    lim = limits(clock)
    times: dict[str, float] = {}

    async def other() -> None:
        await lim.acquire(TOLL_FREE_2)
        times["other"] = clock.now

    async def body() -> None:
        await lim.acquire(TOLL_FREE)
        lim.on_response(TOLL_FREE, status=429, code="40318", reset_after=None)
        paused = asyncio.ensure_future(lim.acquire(TOLL_FREE))
        await other()
        await paused
        times["paused"] = clock.now
        await lim.acquire(TOLL_FREE)
        times["next"] = clock.now

    await clock.run(body())
    assert times == pytest.approx({"other": T0, "paused": T0 + 144, "next": T0 + 144 + 1 / 20})


@pytest.mark.anyio
async def test_40318_on_a_lane_without_rate_pauses_144_seconds(clock: VirtualClock) -> None:
    """A number-pool lane (no rate of its own) pauses 144 s after a full queue."""
    lim = limits(clock, account_mps=None)

    async def body() -> float:
        await lim.acquire(PROFILE_ID)
        lim.on_response(PROFILE_ID, status=429, code="40318", reset_after=None)
        await lim.acquire(PROFILE_ID)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 144)


@pytest.mark.anyio
async def test_other_statuses_change_nothing(clock: VirtualClock) -> None:
    """400, 500 and a 2xx before any decrease leave the buckets alone."""
    lim = limits(clock, account_mps=1.0)

    async def body() -> float:
        await lim.acquire(None)
        for status in (400, 500, 503, 200):
            lim.on_response(TOLL_FREE, status=status, code=None, reset_after=5.0)
        await lim.acquire(None)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 1)


@pytest.mark.anyio
@pytest.mark.parametrize("mms_share", [0, 2, 5], ids=["sms", "half-mms", "one-in-five-mms"])
async def test_adaptive_converges_under_a_20_per_second_server(
    clock: VirtualClock, mms_share: int
) -> None:
    """Against a server allowing 20 req/s, 2,000 sends: < 5 % throttled, >= 85 % of 20/s.

    The server's limit counts requests of every message type, so a mix of SMS and MMS must
    settle as well as one type does (it settled at 7-11 % throttled and ~75 % of 20/s when
    each type's account lane adapted on its own to the whole measured success rate).
    """
    lim = limits(clock, account_mps=50.0)
    count = itertools.count()
    window = {"start": T0, "used": 0}
    sent = throttled = 0
    remaining = 2000

    def server(now: float) -> float | None:
        start = T0 + math.floor(now - T0)
        if start != window["start"]:
            window["start"], window["used"] = start, 0
        if window["used"] < 20:
            window["used"] += 1
            return None
        return start + 1 - now

    async def worker() -> None:
        nonlocal sent, throttled, remaining
        while remaining > 0:
            remaining -= 1
            kind = "MMS" if mms_share and next(count) % mms_share == 0 else "SMS"
            while True:
                await lim.acquire(None, kind)
                await clock.sleep(0.025)
                reset = server(clock.now)
                await clock.sleep(0.025)
                sent += 1
                if reset is None:
                    lim.on_response(None, status=200, code=None, reset_after=None)
                    break
                throttled += 1
                lim.on_response(None, status=429, code="10011", reset_after=reset)

    async def body() -> None:
        await asyncio.gather(*(worker() for _ in range(50)))

    await clock.run(body())
    assert throttled / sent < 0.05
    assert 2000 / (clock.now - T0) >= 0.85 * 20


# ---------------------------------------------------------------------- unlimited and upkeep


@pytest.mark.anyio
async def test_unlimited_never_waits(clock: VirtualClock) -> None:
    """RateLimits.unlimited() grants at once and ignores feedback."""
    lim = RateLimits.unlimited()

    async def body() -> None:
        for _ in range(10_000):
            await lim.acquire(TOLL_FREE)
        lim.on_response(TOLL_FREE, status=429, code="40318", reset_after=None)
        lim.on_response(None, status=429, code="10011", reset_after=9.0)
        await lim.acquire(TOLL_FREE)

    await clock.run(body())
    assert clock.now == T0
    assert clock.sleeps == 0
    assert repr(lim) == "RateLimits.unlimited()"


@pytest.mark.anyio
async def test_idle_lanes_are_forgotten(clock: VirtualClock) -> None:
    """Lanes that are back to their initial state are pruned: memory stays bounded."""
    lim = limits(clock, account_mps=None)

    async def body() -> None:
        for i in range(5000):
            await lim.acquire(f"{i:08x}-8baf-433b-82eb-8c7fada847da")

    await clock.run(body())
    assert len(lim._lanes) <= 1024


def test_default_clock_and_sleep() -> None:
    """Without injection it uses time.monotonic and asyncio.sleep (smoke test, no timing)."""

    async def main() -> None:
        lim = RateLimits(account_mps=1000.0)
        for _ in range(1003):  # the last two wait about 1 ms each
            await lim.acquire(TOLL_FREE)

    asyncio.run(main())


# ---------------------------------------------------------------------- properties

Op = tuple[str | None, float, str, str]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", None]),
        st.sampled_from([0.0, 0.0, 0.05, 0.3, 1.0]),
        st.sampled_from(["send", "send", "send", "cancel0", "cancel", "ok", "10011", "40318"]),
        st.sampled_from(["SMS", "MMS"]),
    ),
    min_size=1,
    max_size=40,
)


def _run_schedule(ops: list[Op]) -> None:
    clock = VirtualClock(T0)
    rates = {"a": 2.0, "b": 0.5, "c": 5.0}
    lim = RateLimits(
        account_mps={"SMS": 3.0, "MMS": 1.0},
        per_sender_mps=rates,
        clock=clock.time,
        sleep=clock.sleep,
    )
    granted: list[tuple[float, str | None, str, int]] = []
    sends: set[int] = set()

    async def send(index: int, sender: str | None, kind: str) -> None:
        await lim.acquire(sender, kind)
        granted.append((clock.now, sender, kind, index))

    async def body() -> None:
        tasks: list[Awaitable[None]] = []
        for index, (sender, delay, action, kind) in enumerate(ops):
            await clock.sleep(delay)
            if action in {"ok", "10011", "40318"}:
                status, code = (200, None) if action == "ok" else (429, action)
                lim.on_response(sender, status=status, code=code, reset_after=delay or None)
                continue
            task = asyncio.ensure_future(send(index, sender, kind))
            tasks.append(task)
            if action == "send":
                sends.add(index)
            else:
                if action == "cancel":
                    await clock.sleep(0.01)
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(clock.run(body()))
    assert {g[3] for g in granted} >= sends  # nobody starves
    assert not lim._parked
    for sender, rate in [*rates.items(), (None, math.inf)]:
        times = [t for t, s, _, _ in granted if s == sender]
        indexes = [i for _, s, _, i in granted if s == sender]
        assert indexes == sorted(indexes)  # FIFO per lane
        if rate < math.inf:
            assert window_max(times, 2.0) <= math.ceil(rate) + 2.0 * rate + 1e-9
    for kind, rate in (("SMS", 3.0), ("MMS", 1.0)):
        times = [t for t, _, k, _ in granted if k == kind]
        assert window_max(times, 2.0) <= math.ceil(rate) + 2.0 * rate + 1e-9


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_random_schedules_keep_fifo_rates_and_progress(ops: list[Op]) -> None:
    """Random arrivals, cancellations and feedback: FIFO per lane, rates kept, none starves."""
    _run_schedule(ops)


def test_a_caller_never_overtakes_one_granted_before_it_in_its_lane() -> None:
    """Found by the property above: an MMS waiter of sender a is granted by another task's
    pump and has not run yet when a new SMS call of a arrives; the lane was open again, so the
    new call took the fast path and proceeded first (same instant, order swapped). The lane
    now stays closed until the granted caller's task has run."""
    a_sms, a_mms, b_sms = (
        ("a", 0.0, "send", "SMS"),
        ("a", 1.0, "send", "MMS"),
        ("b", 1.0, "send", "SMS"),
    )
    _run_schedule(
        [
            *[a_sms] * 5,
            ("a", 0.0, "ok", "SMS"),
            ("a", 1.0, "send", "SMS"),
            a_mms,
            ("b", 0.0, "40318", "SMS"),
            ("a", 0.0, "10011", "SMS"),
            a_mms,
            ("a", 0.0, "cancel", "SMS"),
            ("b", 0.0, "send", "SMS"),
            b_sms,
            ("a", 0.0, "10011", "SMS"),
            b_sms,
            ("a", 1.0, "send", "SMS"),
        ]
    )


@pytest.mark.parametrize(
    ("reset_after", "pause"),
    [
        (None, 0.0),
        (0, 0.0),
        (-3, 0.0),
        (math.nan, 0.0),
        (2, 1.1),
        (2.0, 1.1),
        (1.5, 1.5),
        (1e9, 300.0),
        (math.inf, 300.0),
    ],
)
def test_reset_pause_is_one_formula_for_both_limiters(
    reset_after: float | None, pause: float
) -> None:
    """x-ratelimit-reset → the account block, as the local and the Redis limiter compute it."""
    pytest.importorskip("redis")
    from telnyx_msg import _bucket
    from telnyx_msg._redis_limits import RedisRateLimits

    assert _bucket.reset_pause(reset_after) == pytest.approx(pause)
    assert RateLimits._throttle.__globals__["reset_pause"] is _bucket.reset_pause
    # The Redis limiter records the same pause (written to Redis at its next acquire).
    limits = RedisRateLimits("redis://127.0.0.1:9", clock=lambda: 100.0)  # no I/O here
    limits.on_response(None, status=429, code="10011", reset_after=reset_after)
    assert limits._throttle is not None
    assert limits._throttle[0] == 100.0
    assert limits._throttle[1] == pytest.approx(pause)


# ---------------------------------------------------------------------- TokenBucket


@pytest.mark.parametrize("rate", [0.1, 0.3, 3.0, 7.0, 20.0, 49.0, 1000.0])
def test_a_bucket_grants_at_the_time_ready_at_names(rate: float) -> None:
    """ready_at(now) is the earliest time a token can be taken: the bucket grants then (float
    round-off of tokens + elapsed * rate lands just under 1: TOKEN_EPS absorbs it), not one
    MIN_DT later, at the magnitudes of the default clock (time.monotonic: up to 30 days)."""
    for start in (T0, 12_345.6789, 30 * 86_400 + 0.123):
        bucket = TokenBucket(rate, 1.0, start)
        now = start
        for _ in range(50):
            bucket.take(now)
            now = bucket.ready_at(now)
            assert bucket.available(now), (rate, start, now)


def test_ready_at_is_later_than_now_when_no_token_is_available() -> None:
    """A bucket a hair short of a token (here at Unix-epoch times, where float steps are
    ~2.4e-7 s) reports a wait of at least MIN_DT: a wait of 0 would wake the waiter to find
    no token, again and again, and a virtual clock would never move."""
    now = 1_700_000_000.0
    bucket = TokenBucket(10.0, 1.0, now)
    bucket.limit_tokens(now, 1.0 - 1.1e-6)
    assert not bucket.available(now)
    assert bucket.ready_at(now) >= now + MIN_DT


def test_give_back_never_fills_a_bucket_beyond_its_capacity() -> None:
    """A token given back to a full bucket (a waiter cancelled after its grant, once the
    bucket refilled) is dropped: the burst stays the configured capacity."""
    bucket = TokenBucket(1.0, 2.0, T0)
    bucket.take(T0)
    bucket.give_back(T0 + 5)
    assert bucket.tokens == 2.0
    for _ in range(2):
        assert bucket.available(T0 + 5)
        bucket.take(T0 + 5)
    assert not bucket.available(T0 + 5)


def test_set_rate_lowers_the_tokens_to_the_new_capacity() -> None:
    """After a decrease (10011) the bucket holds at most the new, smaller burst."""
    bucket = TokenBucket(50.0, 50.0, T0)
    bucket.set_rate(T0, 10.0, 10.0)
    assert bucket.tokens == 10.0
    granted = 0
    while bucket.available(T0):
        bucket.take(T0)
        granted += 1
    assert granted == 10


def test_block_keeps_a_debt_and_never_shortens_an_earlier_block() -> None:
    """block() empties the bucket but does not forgive tokens owed (taken beyond it), and a
    second, shorter block does not end the first one early."""
    bucket = TokenBucket(1.0, 1.0, T0)
    for _ in range(4):
        bucket.take(T0)  # 3 tokens of debt
    bucket.block(T0, T0 + 10)
    assert bucket.tokens == -3.0
    assert bucket.ready_at(T0) == pytest.approx(T0 + 10 + 4)
    bucket.block(T0 + 1, T0 + 5)
    assert bucket.stamp == T0 + 10
    assert not bucket.available(T0 + 9)
    assert bucket.ready_at(T0 + 1) == pytest.approx(T0 + 10 + 4)


# ---------------------------------------------------------------------- configuration


def test_a_queue_modelled_lane_holds_at_least_one_message() -> None:
    """A sender lane's queue capacity is at least one message, however small its rate and
    queue_fraction: below 1 the bucket could never hold a whole token and never grant."""
    config = resolve_config(None, {"long_code": 0.0001}, None, None, 0.5)
    spec = config.lane_spec(LONG_CODE)
    assert spec is not None
    assert spec.capacity == 1.0


def test_queue_fraction_may_be_the_whole_queue() -> None:
    """queue_fraction is in (0, 1]: 1 lets the client fill the whole 4 h server queue."""
    config = resolve_config(None, None, None, None, 1)
    spec = config.lane_spec(LONG_CODE)
    assert spec is not None
    assert spec.capacity == pytest.approx(0.1 * 4 * 3600)


async def grant_times(
    clock: VirtualClock, lim: RateLimits, count: int, message_type: str = "SMS"
) -> list[float]:
    """The virtual times at which ``count`` account-lane acquires were granted."""
    times: list[float] = []

    async def body() -> None:
        for _ in range(count):
            await lim.acquire(None, message_type)
            times.append(clock.now)

    await clock.run(body())
    return times


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mps", "message_type", "burst"),
    [(2.5, "SMS", 3), (10.0, "MMS", 10)],
    ids=["fractional-rate-burst-rounds-up", "single-rate-caps-mms"],
)
async def test_an_account_rate_sets_the_burst_and_caps_every_type(
    clock: VirtualClock, mps: float, message_type: str, burst: int
) -> None:
    """Without burst=, a lane's burst is its rate rounded up (2.5/s grants 3 at once). A single
    account_mps is the account's limit for every type: MMS get min(10, 15) = 10/s at
    account_mps=10, not their 15/s default on top of it."""
    times = await grant_times(clock, limits(clock, account_mps=mps), burst + 1, message_type)
    assert times[:burst] == [T0] * burst
    assert times[burst] == pytest.approx(T0 + 1 / mps)


@pytest.mark.anyio
async def test_message_types_are_matched_case_insensitively(
    clock: VirtualClock,
) -> None:
    """ "mms" uses the MMS account lane, as "MMS" does (not the SMS one)."""
    lim = limits(clock, account_mps={"SMS": 100.0, "MMS": 1.0})

    async def body() -> float:
        await lim.acquire(None, "mms")
        await lim.acquire(None, "mms")
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 1.0)


def test_a_stopped_but_open_owner_loop_is_taken_over() -> None:
    """The loop that first used the limiter was stopped (``run_until_complete`` returned) but
    never closed: the next loop takes over instead of forwarding to a loop nobody runs.
    Guards against: ``or not owner.is_running()`` dropped (forwarded three times to the
    stopped loop, then RuntimeError "its event loop kept changing")."""
    limits = RateLimits(account_mps=1000.0)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(limits.acquire("+18005550101"))
        assert not first.is_running()
        assert not first.is_closed()

        async def second() -> None:
            await asyncio.wait_for(limits.acquire("+18005550101"), 5)

        asyncio.run(second())
    finally:
        first.close()


class _ClosingLoop(asyncio.SelectorEventLoop):
    """An event loop that closes in the instant between a caller seeing it run and posting to
    it (what a blocking Client closing in another thread does): the post raises "closed"."""

    closing = False

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.closing:
            raise RuntimeError("Event loop is closed")
        return super().call_soon_threadsafe(*args, **kwargs)


def test_feedback_posted_as_the_owner_loop_closes_never_raises() -> None:
    """``on_response`` runs after Telnyx answered: when the loop that owns the limiter (a
    blocking Client's, closing in another thread) closes just as the feedback is posted to it,
    the feedback is applied here or dropped, never raised (a 2xx send that raised
    RuntimeError "Event loop is closed" would be sent again by its caller)."""
    limits = RateLimits(account_mps=1000.0)
    owner = _ClosingLoop()
    thread = threading.Thread(target=owner.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(limits.acquire(None), owner).result(5)
        owner.closing = True

        async def report() -> None:
            limits.on_response(None, status=200, code=None, reset_after=None)
            limits.on_response(None, status=429, code="10011", reset_after=None)

        asyncio.run(report())
    finally:
        owner.closing = False
        owner.call_soon_threadsafe(owner.stop)
        thread.join(5)
        owner.close()


def _close_left(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on ``loop`` (as asyncio.run does), then close it."""
    left = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    loop.close()


@pytest.mark.parametrize(
    ("calls", "take_back"),
    [(1, False), (2, False), (1, True)],
    ids=["sleeping", "sleeping-and-parked", "loop-took-it-back"],
)
def test_calls_waiting_on_a_loop_that_lost_the_limiter_end_when_it_runs_again(
    calls: int, take_back: bool
) -> None:
    """A loop that owned the limiter stopped (``run_until_complete`` returned) with calls
    still waiting (one sleeps until the next token, a second is parked behind it); another
    loop took the limiter over, which forgets their waiters. When the first loop runs again
    (after taking the limiter back with a new call, or not), the calls ask anew and are
    granted (at 20/s, within a second) instead of waiting for a grant nobody will give.
    Guards against: a dropped waiter woken by its sleep parking for ever; a parked one, whose
    wake-up only the old state could give, never woken; a dropped waiter taken for a live
    one because its loop owns the limiter again."""
    limits = RateLimits(account_mps=20.0, burst=1)
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(limits.acquire(None))  # the only token
        waiting = [first.create_task(limits.acquire(None)) for _ in range(calls)]
        first.run_until_complete(asyncio.sleep(0))  # they wait for the next token
        assert not any(task.done() for task in waiting)
        asyncio.run(asyncio.wait_for(limits.acquire(None), 5))  # takes over; granted
        if take_back:
            first.run_until_complete(asyncio.wait_for(limits.acquire(None), 5))
        _, pending = first.run_until_complete(asyncio.wait(waiting, timeout=3))
        assert not pending, f"{len(pending)} call(s) still wait 3 s after their loop resumed"
        assert all(task.exception() is None for task in waiting)
    finally:
        _close_left(first)


def test_a_grant_given_before_its_loop_stopped_is_kept_after_a_takeover() -> None:
    """A waiter was granted its token just before its loop stopped, so its task had not run
    yet; another loop took the limiter over meanwhile. When the first loop runs again, the call
    returns with the token it was granted (it is not charged a second one: that sender's next
    token comes 5 s later). Guards against: a granted call asking anew after a takeover."""
    pacing = {LONG_CODE: 0.2, "+447700900124": 0.2}
    limits = RateLimits(account_mps=None, per_sender_mps=pacing, burst=1)
    first = asyncio.new_event_loop()
    try:
        for sender in pacing:
            first.run_until_complete(limits.acquire(sender))  # each lane's only token

        async def stop_when_granted() -> None:
            await limits.acquire(LONG_CODE)
            asyncio.get_running_loop().stop()  # before the other grant's task resumes

        woken = first.create_task(stop_when_granted())
        parked = first.create_task(limits.acquire("+447700900124"))
        first.run_forever()  # about 5 s: one wake grants both lanes' next tokens
        assert woken.done()
        assert not parked.done()
        asyncio.run(limits.acquire(None))  # another loop takes the limiter over
        first.run_until_complete(asyncio.wait_for(parked, 2))
    finally:
        first.close()


def test_feedback_queued_on_a_loop_that_stops_is_applied_by_the_next_owner() -> None:
    """Feedback posted to the owner loop from another thread is still queued when that loop
    stops; another loop, running in its own thread, takes the limiter over. When the first
    loop runs again, the feedback is handed to the new owner's thread instead of changing
    the state from this one while the owner uses it (the clock is read where it is applied).
    Guards against: a posted callback run on whatever loop it was queued on."""
    threads: list[int] = []

    def clock() -> float:
        threads.append(threading.get_ident())
        return time.monotonic()

    limits = RateLimits(account_mps=1000.0, clock=clock)
    first = asyncio.new_event_loop()
    owner_up = threading.Event()
    owner_done = threading.Event()
    owner_thread: list[int] = []

    def post_then_stop() -> None:
        reporter = threading.Thread(
            target=limits.on_response, args=(None,), kwargs=_THROTTLED, daemon=True
        )
        reporter.start()
        reporter.join(5)
        first.stop()  # the posted feedback is queued behind this turn: it has not run

    async def own() -> None:
        await limits.acquire(None)
        owner_thread.append(threading.get_ident())
        owner_up.set()
        await asyncio.to_thread(owner_done.wait, 5)

    try:
        first.run_until_complete(limits.acquire(None))
        first.call_soon(post_then_stop)
        first.run_forever()
        second = threading.Thread(target=asyncio.run, args=(own(),), daemon=True)
        second.start()
        assert owner_up.wait(5)
        handed_over = len(threads)
        first.run_until_complete(asyncio.sleep(0.1))
        owner_done.set()
        second.join(5)
        assert threads[handed_over:], "the feedback was not applied"
        assert set(threads[handed_over:]) == set(owner_thread)
    finally:
        owner_done.set()
        first.close()


def test_a_call_forwarded_again_after_a_handover_gets_only_the_rest_of_its_timeout() -> None:
    """A call forwarded to an owner loop that stops before running it runs under the next
    owner with what is left of its timeout (the wait already counts against it), not the
    whole timeout again. Guards against: ``make()`` re-run with the caller's full timeout."""
    owner = LoopOwner()
    stopped = asyncio.new_event_loop()
    timeouts: list[float | None] = []

    async def call(timeout: float | None) -> str:
        timeouts.append(timeout)
        return "ran"

    async def own() -> None:
        assert owner.other() is None

    async def forward() -> str:
        return await owner.forward(stopped, call, 2.0)

    try:
        stopped.run_until_complete(own())  # owns it, then stops without closing
        assert asyncio.run(forward()) == "ran"
    finally:
        stopped.close()
    assert len(timeouts) == 1
    left = timeouts[0]
    assert left is not None
    assert left <= 2.0 - 0.25  # it waited at least one poll of the stopped owner


FORK_IN_A_TASK_SCRIPT = r"""
import asyncio, os, sys, threading, time
from telnyx_msg import RateLimits

limits = RateLimits(account_mps=20.0, burst=1)


async def main() -> None:
    await limits.acquire(None)  # the only token
    waiting = asyncio.create_task(limits.acquire(None))
    await asyncio.sleep(0)  # it sleeps until the next token
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another thread inside the limiter's lock as the process forks
        with limits._owner.lock:
            held.set()
            release.wait(10)

    threading.Thread(target=hold, daemon=True).start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the loop goes on here (asyncio only forgets that it runs: no wait_for)
        await waiting
        os.write(1, b"child: granted\n")
        os._exit(0)
    release.set()
    await waiting
    deadline = time.monotonic() + 10
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            print("parent: the child hung", flush=True)
            break
        await asyncio.sleep(0.01)
    print("parent: ok", flush=True)


asyncio.run(main())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_from_a_task_goes_on_waiting_in_the_child() -> None:
    """A process forks from a task while a call waits on the limiter and another thread is
    inside the limiter's lock (a takeover); the child's loop goes on, and its call is granted
    (that thread, and its hold on the lock, stayed in the parent). Guards against: the child
    blocking for ever on the parent's lock when its waiter wakes."""
    done = subprocess.run(
        [sys.executable, "-c", FORK_IN_A_TASK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "child: granted" in done.stdout, done.stdout + done.stderr
    assert "parent: ok" in done.stdout
    assert "hung" not in done.stdout


_THROTTLED: dict[str, Any] = {"status": 429, "code": "10011", "reset_after": None}


@pytest.mark.anyio
async def test_a_caller_arriving_as_a_paused_unrated_lane_resumes_queues_behind_its_waiter() -> (
    None
):
    """A number-pool lane (no bucket) with no account lane, paused 144 s by a 40318: the caller
    that arrives the instant the pause ends, before the waiter's own task woke, goes after it
    (FIFO within a lane). Guards against: ``and not lane.waiters`` dropped from the
    no-bucket fast path (the newcomer returned at once, ahead of the waiter)."""
    clock = VirtualClock(T0)
    lim = limits(clock, account_mps=None)
    order: list[str] = []

    async def send(name: str) -> None:
        await lim.acquire(PROFILE_ID)
        order.append(name)

    async def body() -> None:
        lim.on_response(PROFILE_ID, status=429, code="40318", reset_after=None)
        first = asyncio.create_task(send("first"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert order == []  # waiting out the pause, as the timer
        clock.now = T0 + 144  # the pause is over; the waiter's sleep has not been woken yet
        second = asyncio.create_task(send("second"))
        await asyncio.gather(first, second)

    await clock.run(body())
    assert order == ["first", "second"]


@pytest.mark.anyio
async def test_a_wait_exactly_as_long_as_the_timeout_is_waited() -> None:
    """``timeout``: only a wait *longer* than it fails at once; one second of wait with a
    one-second timeout is granted. Guards against: ``eta > timeout`` -> ``>=``."""
    clock = VirtualClock(T0)
    lim = limits(clock, account_mps=1.0, burst=1.0)

    async def body() -> float:
        await lim.acquire(None)
        await lim.acquire(None, timeout=1.0)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 1.0)


@pytest.mark.anyio
async def test_a_caller_whose_pump_grants_a_parked_waiter_first_resumes_after_it() -> None:
    """Account 1/s, burst 2, both tokens taken. A (no sender) sleeps as the timer, B (another
    lane) parks. Two seconds later, before A wakes, C arrives: its pump grants B, then C. C yields
    once so B, granted first, resumes first. Guards against: the yield skipped when the
    pump granted only one earlier waiter (``> before + 2``)."""
    clock = VirtualClock(T0)
    lim = limits(clock, account_mps=1.0, burst=2.0)
    order: list[str] = []

    async def send(name: str, sender: str | None) -> None:
        await lim.acquire(sender)
        order.append(name)

    async def body() -> None:
        await lim.acquire(None)
        await lim.acquire(None)
        a = asyncio.create_task(send("A", None))
        for _ in range(3):
            await asyncio.sleep(0)
        b = asyncio.create_task(send("B", PROFILE_ID))
        for _ in range(3):
            await asyncio.sleep(0)
        assert order == []
        clock.now = T0 + 2.0  # two tokens; A's sleep is not woken yet
        c = asyncio.create_task(send("C", "16fd2706-8baf-433b-82eb-8c7fada847db"))
        await asyncio.gather(a, b, c)

    await clock.run(body())
    assert order.index("B") < order.index("C")


@pytest.mark.anyio
async def test_a_429_never_raises_an_account_rate_configured_below_the_floor() -> None:
    """Account 0.2/s: the decrease floor is min(0.5, configured), so a 10011 keeps it at 0.2/s
    (5 s apart), never lifts it to 0.5/s. Guards against: floor = MIN_RATE."""
    clock = VirtualClock(T0)
    lim = limits(clock, account_mps=0.2, burst=1.0)

    async def body() -> list[float]:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        times = []
        for _ in range(3):
            await lim.acquire(None)
            times.append(clock.now)
        return times

    times = await clock.run(body())
    assert times[2] - times[1] == pytest.approx(5.0)


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@pytest.mark.anyio
async def test_a_paused_lane_is_not_forgotten_when_lanes_are_pruned() -> None:
    """A number-pool lane paused 144 s by a 40318 keeps its pause when 1,024 other lanes make
    the limiter prune idle ones. Guards against: pruning a lane still paused."""
    clock = VirtualClock(T0)
    lim = limits(clock, account_mps=None)

    async def body() -> float:
        lim.on_response(PROFILE_ID, status=429, code="40318", reset_after=None)
        for n in range(1100):
            await lim.acquire(_uuid(n))
        assert clock.now == T0
        await lim.acquire(PROFILE_ID)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 144)


@pytest.mark.anyio
async def test_a_lane_that_spent_its_tokens_is_not_forgotten_when_lanes_are_pruned() -> None:
    """A strict 1 msg/s sender that just sent keeps its empty bucket when 1,024 other lanes make
    the limiter prune idle ones: its next send waits 1 s. Guards against: pruning a
    lane whose bucket is not full."""
    sender = "+13125550100"
    clock = VirtualClock(T0)
    lim = limits(clock, account_mps=None, per_sender_mps={sender: 1.0})

    async def body() -> float:
        await lim.acquire(sender)
        for n in range(1100):
            await lim.acquire(_uuid(n))
        await lim.acquire(sender)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 1.0)


@pytest.mark.anyio
async def test_a_waiter_cancelled_after_its_grant_gives_the_account_token_back() -> None:
    """Account 1/s, burst 2, both tokens spent; W1 sleeps as the timer, W2 parks. At T0+2 (two
    tokens) W1 is granted, then W2; W2's task is cancelled before it resumes: its token goes
    back, so the next caller is served at once, at T0+2. Guards against: the account
    token not given back."""
    clock = VirtualClock(T0)
    lim = limits(clock, account_mps=1.0, burst=2.0)
    tasks: dict[str, asyncio.Task[None]] = {}

    async def w1() -> None:
        await lim.acquire(None)
        tasks["w2"].cancel()  # granted by now, not yet resumed

    async def w2() -> None:
        await lim.acquire(None)

    async def body() -> float:
        await lim.acquire(None)
        await lim.acquire(None)
        tasks["w1"] = asyncio.create_task(w1())
        for _ in range(3):
            await asyncio.sleep(0)
        tasks["w2"] = asyncio.create_task(w2())
        for _ in range(3):
            await asyncio.sleep(0)
        clock.now = T0 + 2.0
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert tasks["w2"].cancelled()
        await lim.acquire(None)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 2.0)


# ---------------------------------------------------------------------- the shared request bucket

SMS_1, SMS_2 = "+13125550101", "+13125550102"
MMS_1, MMS_2 = "+13125550201", "+13125550202"


@pytest.mark.anyio
async def test_sms_and_mms_of_different_senders_take_turns_at_the_request_bucket(
    clock: VirtualClock,
) -> None:
    """After a 10011, an SMS sender and an MMS sender kept busy share the request rate in
    turns: MMS is not starved while SMS keeps a caller waiting (one sender each, so the turn
    comes from the account lanes, not from FIFO within one lane)."""
    lim = limits(clock, account_mps=10.0, burst=1, per_sender_mps={SMS_1: None, MMS_1: None})
    kinds: list[str] = []

    async def send(sender: str, kind: str) -> None:
        for _ in range(6):
            await lim.acquire(sender, kind)
            kinds.append(kind)

    async def body() -> None:
        await lim.acquire(SMS_1)
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        await asyncio.gather(send(SMS_1, "SMS"), send(MMS_1, "MMS"))

    await clock.run(body())
    assert kinds[:8].count("MMS") == 4, kinds


@pytest.mark.anyio
async def test_lanes_due_together_alternate_sms_and_mms_at_the_request_bucket(
    clock: VirtualClock,
) -> None:
    """Two SMS and two MMS senders become due at the same moment while the request bucket
    holds several tokens: the tokens go SMS, MMS, SMS, MMS (one per account lane per turn),
    not first to every SMS sender."""
    senders = {SMS_1: 1.0, SMS_2: 1.0, MMS_1: 1.0, MMS_2: 1.0}
    lim = limits(clock, account_mps=10.0, per_sender_mps=senders)
    order: list[str] = []

    async def one(sender: str, kind: str) -> None:
        await lim.acquire(sender, kind)
        order.append(kind)

    async def body() -> None:
        for sender in senders:  # each strict 1/s lane spends its token: due again at T0 + 1
            await lim.acquire(sender, "MMS" if sender in (MMS_1, MMS_2) else "SMS")
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        await asyncio.gather(
            one(SMS_1, "SMS"), one(SMS_2, "SMS"), one(MMS_1, "MMS"), one(MMS_2, "MMS")
        )

    await clock.run(body())
    assert clock.now == pytest.approx(T0 + 1.0)
    assert all(a != b for a, b in itertools.pairwise(order)), order


@pytest.mark.anyio
async def test_sends_that_find_a_token_waiting_still_count_against_the_request_rate(
    clock: VirtualClock,
) -> None:
    """After a 10011 cut the request rate to 7/s and a 2 s lull filled the request bucket
    (7 tokens), a sender sending every 0.1 s for 5 s gets 7 + 5 x 7 = 42 sends, not 50: a
    send that finds a token waiting (nobody queued) takes it, so the learnt rate still holds
    once the bucket is drained."""
    lim = limits(clock, account_mps=10.0, per_sender_mps={SMS_1: None})
    grants: list[float] = []

    async def body() -> None:
        await lim.acquire(SMS_1)
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        await clock.sleep(2.0)
        while clock.now < T0 + 7 - 1e-9:
            await lim.acquire(SMS_1)
            grants.append(clock.now)
            await clock.sleep(0.1)

    await clock.run(body())
    assert len(grants) <= 7 + 5 * 7 + 1, len(grants)


@pytest.mark.anyio
async def test_a_grant_cancelled_before_it_resumed_gives_the_request_token_back(
    clock: VirtualClock,
) -> None:
    """After a 10011 (7/s, empty), W1 and W2 are granted the two tokens there are at
    T0 + 2/7; W2 is cancelled before it resumes, so its request token goes back and the next
    caller is served at once, not 1/7 s later."""
    lim = limits(clock, account_mps=10.0)
    tasks: dict[str, asyncio.Task[None]] = {}

    async def w1() -> None:
        await lim.acquire(None)
        tasks["w2"].cancel()  # granted by now, not yet resumed

    async def w2() -> None:
        await lim.acquire(None)

    async def body() -> float:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        tasks["w1"] = asyncio.create_task(w1())
        for _ in range(3):
            await asyncio.sleep(0)
        tasks["w2"] = asyncio.create_task(w2())
        for _ in range(3):
            await asyncio.sleep(0)
        clock.now = T0 + 2 / 7 + 1e-9
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert tasks["w2"].cancelled()
        await lim.acquire(None)
        return clock.now

    assert await clock.run(body()) == pytest.approx(T0 + 2 / 7)


@pytest.mark.anyio
async def test_the_request_rate_still_binds_between_the_highest_and_the_summed_rate(
    clock: VirtualClock,
) -> None:
    """SMS and MMS at 10/s each; a 10011 with no measured success rate sets W_max = 10/s. From
    T0 + 2 to T0 + 4 the CUBIC request rate climbs from 10 to about 13/s: SMS and MMS together
    stay near that (about 23 sends), not 10/s each (40): the bucket is dropped only at the sum
    of the account rates (20/s), not at the highest one."""
    lim = limits(clock, account_mps=10.0, burst=1, per_sender_mps={SMS_1: None, MMS_1: None})
    grants: list[float] = []

    async def send(sender: str, kind: str) -> None:
        while clock.now < T0 + 4:
            await lim.acquire(sender, kind)
            grants.append(clock.now)
            lim.on_response(sender, status=200, code=None, reset_after=None)

    async def body() -> None:
        await lim.acquire(SMS_1)
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        await asyncio.gather(send(SMS_1, "SMS"), send(MMS_1, "MMS"))

    await clock.run(body())
    window = [t for t in grants if T0 + 2 <= t <= T0 + 4]
    assert len(window) <= 30, len(window)


@pytest.mark.anyio
async def test_a_longer_reset_in_the_cooldown_is_not_lifted_by_a_late_success(
    clock: VirtualClock,
) -> None:
    """A 10011 with a 2.5 s reset (cooldown 2.5 s), then, within the cooldown, another 10011
    saying the window resets in 30.5 s. A request already in flight answers 201 at T0 + 7,
    past the cooldown, when the CUBIC rate has passed the sum of the account rates: sends must
    still wait for T0 + 2 + 30.5 (the bucket is kept while blocked), so ``acquire(timeout=5)``
    raises RateLimitError."""
    lim = limits(clock)

    async def body() -> None:
        await lim.acquire(None)
        lim.on_response(None, status=429, code="10011", reset_after=2.5)
        await clock.sleep(2.0)
        lim.on_response(None, status=429, code="10011", reset_after=30.5)
        await clock.sleep(5.0)
        lim.on_response(None, status=201, code=None, reset_after=None)  # in flight before
        with pytest.raises(RateLimitError) as info:
            await lim.acquire(None, timeout=5.0)
        assert info.value.retry_after is not None
        assert info.value.retry_after == pytest.approx(T0 + 32.5 - clock.now, abs=0.1)

    await clock.run(body())


@pytest.mark.anyio
async def test_a_10011_decreases_from_the_highest_account_rate(clock: VirtualClock) -> None:
    """Defaults (SMS 50/s, MMS 15/s): the first 10011, with no success rate measured yet,
    lowers the request rate to 0.7 x 50 = 35/s, so SMS alone goes on at 35/s, not at
    0.7 x 15 = 10.5/s (the lowest account rate)."""
    lim = limits(clock, per_sender_mps={SMS_1: None})
    grants: list[float] = []

    async def body() -> None:
        await lim.acquire(SMS_1)
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        while clock.now < T0 + 2:
            await lim.acquire(SMS_1)
            grants.append(clock.now)

    await clock.run(body())
    assert len(grants) == pytest.approx(70, abs=2)


@pytest.mark.anyio
async def test_mms_alone_slows_to_seven_tenths_of_its_rate_after_a_10011(
    clock: VirtualClock,
) -> None:
    """Defaults (MMS 15/s). An app sending only MMS starts with its burst of 15 and gets a 429
    10011 0.1 s later (before a 0.5 s slot of successes was measured): its sends then go at
    0.7 x 15 = 10.5/s, as the MMS lane alone adapted. (Starting from the highest account rate,
    SMS's 50/s, gave 35/s, which never binds MMS: they kept going at the throttled 15/s.)"""
    lim = limits(clock)
    times: list[float] = []

    async def body() -> None:
        for _ in range(15):
            await lim.acquire(None, "MMS")
        await clock.sleep(0.1)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        for _ in range(10):
            await lim.acquire(None, "MMS")
            times.append(clock.now)

    await clock.run(body())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([1 / 10.5] * len(gaps), rel=1e-6)


@pytest.mark.anyio
async def test_after_a_10011_the_request_bucket_holds_its_burst_scaled_to_the_rate(
    clock: VirtualClock,
) -> None:
    """Defaults (SMS 50/s, burst 50). After a 10011 (35/s) and a 10 s lull with no answers
    (so no recovery), 60 SMS sends at once: 35 go at once (burst x 35 / 50), not 50."""
    lim = limits(clock, per_sender_mps={SMS_1: None})
    at_once = 0

    async def one() -> None:
        nonlocal at_once
        await lim.acquire(SMS_1)
        if clock.now == T0 + 10:
            at_once += 1

    async def body() -> None:
        await lim.acquire(SMS_1)
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        await clock.sleep(10.0)
        await asyncio.gather(*(one() for _ in range(60)))

    await clock.run(body())
    assert at_once == 35


@pytest.mark.anyio
async def test_a_10011_under_half_a_message_per_second_still_binds_both_types(
    clock: VirtualClock,
) -> None:
    """``account_mps=0.2`` (SMS and MMS 0.2/s each). After a 10011 the request rate cannot go
    below 0.2/s, and it holds SMS and MMS together to 0.2/s (about 4 sends in 20 s), not to a
    0.5/s floor above the 0.4/s the two lanes allow (8 sends)."""
    lim = limits(clock, account_mps=0.2, burst=1, per_sender_mps={SMS_1: None, MMS_1: None})
    grants: list[float] = []

    async def send(sender: str, kind: str) -> None:
        while clock.now < T0 + 20:
            await lim.acquire(sender, kind)
            grants.append(clock.now)

    async def body() -> None:
        await lim.acquire(SMS_1)
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        await asyncio.gather(send(SMS_1, "SMS"), send(MMS_1, "MMS"))

    await clock.run(body())
    assert len([t for t in grants if t <= T0 + 20]) <= 5, grants


@pytest.mark.anyio
async def test_an_unlimited_type_paced_by_its_sender_lane_ignores_the_request_bucket(
    clock: VirtualClock,
) -> None:
    """``account_mps={"SMS": 10, "MMS": None}``: MMS is not account-limited, so after a 10011
    an MMS sender with a strict 5/s lane keeps its 5/s (about 20 sends in 4 s) while SMS sends
    keep the request bucket busy; it does not queue for request tokens with them."""
    lim = limits(
        clock,
        account_mps={"SMS": 10.0, "MMS": None},
        burst=1,
        per_sender_mps={SMS_1: None, MMS_1: 5.0},
    )
    mms: list[float] = []

    async def send(sender: str, kind: str, out: list[float]) -> None:
        while clock.now < T0 + 4:
            await lim.acquire(sender, kind)
            out.append(clock.now)

    async def body() -> None:
        await lim.acquire(SMS_1)
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        await asyncio.gather(send(SMS_1, "SMS", []), send(MMS_1, "MMS", mms))

    await clock.run(body())
    assert len(mms) >= 19, len(mms)


@pytest.mark.anyio
async def test_an_unlimited_type_takes_no_request_tokens_from_the_limited_one(
    clock: VirtualClock,
) -> None:
    """``account_mps={"SMS": 10, "MMS": None}``. After a 10011 and a 1 s lull the request
    bucket holds 7 tokens. 20 MMS sends (not account-limited, a 100/s sender lane) then 7 SMS
    sends, all at T0 + 1: the 7 SMS go at once, the MMS having taken none of their tokens."""
    lim = limits(
        clock,
        account_mps={"SMS": 10.0, "MMS": None},
        per_sender_mps={SMS_1: None, MMS_1: 100.0},
    )
    sms: list[float] = []

    async def body() -> None:
        await lim.acquire(SMS_1)
        lim.on_response(SMS_1, status=429, code="10011", reset_after=None)
        await clock.sleep(1.0)
        for _ in range(20):
            await lim.acquire(MMS_1, "MMS")
        for _ in range(7):
            await lim.acquire(SMS_1)
            sms.append(clock.now)

    await clock.run(body())
    assert sms == pytest.approx([T0 + 1] * 7)


@pytest.mark.anyio
async def test_an_mms_sent_a_fifth_of_a_second_before_a_10011_is_in_use(
    clock: VirtualClock,
) -> None:
    """Defaults (SMS 50/s, MMS 15/s). docs/rate-limits.md: before the first decrease the request
    rate is "the highest rate of the account lanes in use (those whose bucket is not full:
    they sent within about a second)", so "one type sending alone adapts as its own lane did
    (MMS alone from 15/s to 10.5/s, not from 50/s to 35/s, which would not hold it back)".
    An app that sent one MMS and got its 429 10011 0.2 s later (no success measured yet) sent
    within the last second, yet its MMS bucket (15 tokens, one taken) had refilled after 1/15 s:
    no lane counts as in use, the request rate drops from 50/s to 35/s, and the next MMS go
    out at 35/s (then the MMS lane's 15/s), not at 10.5/s."""
    lim = limits(clock)
    times: list[float] = []

    async def body() -> None:
        await lim.acquire(None, "MMS")
        await clock.sleep(0.2)
        lim.on_response(None, status=429, code="10011", reset_after=None)
        for _ in range(10):
            await lim.acquire(None, "MMS")
            times.append(clock.now)

    await clock.run(body())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([1 / 10.5] * len(gaps), rel=1e-6)
