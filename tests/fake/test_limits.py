"""Rate limits of the fake: the account request window (10011) and sender queues (40318)."""

from __future__ import annotations

import asyncio

import pytest

from telnyx_msg.testing import (
    DEFAULT_LONG_CODE,
    DEFAULT_TOLL_FREE,
    ApiRateLimit,
    FakeConfig,
    FakeTelnyx,
    Faults,
    Throughput,
)
from telnyx_msg.testing._limits import QueueFull, RequestWindow, SenderQueues

from .helpers import Api, connect

pytestmark = pytest.mark.anyio

TO = "+18445550001"


async def test_account_limit_gives_10011_with_headers() -> None:
    """Request limit+1 in a window gets 429/10011; every answer carries x-ratelimit-*."""
    config = FakeConfig(api_rate_limit=ApiRateLimit(limit=3, window=60))
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        replies = [await api.get("/messaging_optouts") for _ in range(4)]
        assert [r.status for r in replies] == [200, 200, 200, 429]
        assert [r.headers["x-ratelimit-remaining"] for r in replies] == ["2", "1", "0", "0"]
        assert all(r.headers["x-ratelimit-limit"] == "3" for r in replies)
        reset = int(replies[-1].headers["x-ratelimit-reset"])
        assert 1 <= reset <= 60
        assert replies[-1].body["errors"][0]["code"] == "10011"
        assert replies[-1].body["errors"][0]["title"] == "Too many requests"
        assert "Retry-After" not in replies[-1].headers
        assert fake.stats.rate_limited == 1


async def test_account_window_resets() -> None:
    """After the window passes, requests are allowed again."""
    config = FakeConfig(api_rate_limit=ApiRateLimit(limit=1, window=0.1))
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        assert (await api.get("/messaging_optouts")).status == 200
        assert (await api.get("/messaging_optouts")).status == 429
        await asyncio.sleep(0.15)
        assert (await api.get("/messaging_optouts")).status == 200


async def test_unauthenticated_requests_do_not_use_the_limit() -> None:
    """401s are answered before the account limit and do not consume it."""
    config = FakeConfig(api_rate_limit=ApiRateLimit(limit=1, window=60))
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        assert (await api.get("/messaging_optouts", key="bad")).status == 401
        assert (await api.get("/messaging_optouts")).status == 200


async def test_retry_after_option_applies_to_rate_limits() -> None:
    """Faults(retry_after=...) adds Retry-After to real 429 answers."""
    config = FakeConfig(
        api_rate_limit=ApiRateLimit(limit=1, window=60), faults=Faults(retry_after=2)
    )
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        await api.get("/messaging_optouts")
        reply = await api.get("/messaging_optouts")
        assert reply.status == 429
        assert reply.headers["Retry-After"] == "2"


async def test_tiny_sender_queue_fills_with_40318() -> None:
    """With rate 1/s and depth 2, three sends queue (wait 0, 1, 2 s) and the fourth gets 40318."""
    config = FakeConfig(
        throughput=Throughput(per_sender_mps={DEFAULT_TOLL_FREE: 1.0}, queue_depth=2)
    )
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        replies = [await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="q") for _ in range(4)]
        assert [r.status for r in replies] == [200, 200, 200, 429]
        waits = [r.body["data"]["wait_seconds"] for r in replies[:3]]
        assert waits == pytest.approx([0.0, 1.0, 2.0], abs=0.05)
        error = replies[3].body["errors"][0]
        assert error["code"] == "40318"
        assert fake.stats.queue_full == 1
        other = await api.send(from_=DEFAULT_LONG_CODE, to=TO, text="other lane")
        assert other.status == 200
        await fake.settle()


async def test_long_code_default_rate_reports_wait_seconds(api: Api) -> None:
    """The default long-code rate (0.1 msg/s) queues a second message for ~10 s."""
    first = await api.send(from_=DEFAULT_LONG_CODE, to=TO, text="1")
    second = await api.send(from_=DEFAULT_LONG_CODE, to=TO, text="2")
    assert first.body["data"]["wait_seconds"] == 0.0
    assert second.body["data"]["wait_seconds"] == pytest.approx(10.0, abs=0.05)


async def test_no_throughput_means_no_wait() -> None:
    """throughput=None turns sender queues off."""
    async with FakeTelnyx(config=FakeConfig(throughput=None)) as fake, connect(fake) as api:
        waits = [
            (await api.send(from_=DEFAULT_LONG_CODE, to=TO, text="x")).body["data"]["wait_seconds"]
            for _ in range(3)
        ]
        assert waits == [0.0, 0.0, 0.0]
        await fake.settle()


async def test_wait_scale_delays_the_sent_status() -> None:
    """wait_scale=1 really waits wait_seconds before the message is sent."""
    throughput = Throughput(per_sender_mps={DEFAULT_TOLL_FREE: 5.0}, wait_scale=1.0)
    config = FakeConfig(throughput=throughput, delivery_delay=0.0)
    async with FakeTelnyx(config=config) as fake, connect(fake) as api:
        await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="1")
        second = await api.send(from_=DEFAULT_TOLL_FREE, to=TO, text="2")
        message_id = second.body["data"]["id"]
        await asyncio.sleep(0.05)
        assert fake.message(message_id)["to"][0]["status"] == "queued"
        await fake.settle()
        assert fake.message(message_id)["to"][0]["status"] == "delivered"


async def test_changing_limits_at_runtime() -> None:
    """configure(api_rate_limit=...) takes effect for the next request."""
    async with FakeTelnyx() as fake, connect(fake) as api:
        assert "x-ratelimit-limit" not in (await api.get("/messaging_optouts")).headers
        fake.configure(api_rate_limit=ApiRateLimit(limit=1, window=60))
        assert (await api.get("/messaging_optouts")).status == 200
        assert (await api.get("/messaging_optouts")).status == 429
        fake.configure(api_rate_limit=None)
        assert (await api.get("/messaging_optouts")).status == 200


def test_request_window_counts_per_window() -> None:
    """RequestWindow allows `limit` hits per window and reports whole seconds to reset."""
    window = RequestWindow(ApiRateLimit(limit=2, window=10))
    assert window.hit(100.0) == (True, 1, 10)
    assert window.hit(101.5) == (True, 0, 9)
    assert window.hit(102.0) == (False, 0, 8)
    assert window.hit(110.0) == (True, 1, 10)


def test_sender_queues_drain_over_time() -> None:
    """A lane's backlog drains at its rate; a full lane raises QueueFull."""
    queues = SenderQueues(Throughput(per_sender_mps={"+1": 2.0}, queue_depth=1))
    assert queues.admit("+1", "long_code", "SMS", 1, now=0.0) == 0.0
    assert queues.admit("+1", "long_code", "SMS", 1, now=0.0) == pytest.approx(0.5)
    with pytest.raises(QueueFull):
        queues.admit("+1", "long_code", "SMS", 1, now=0.0)
    assert queues.admit("+1", "long_code", "SMS", 1, now=1.0) == 0.0


def test_account_lane_caps_all_senders() -> None:
    """The account lane queues messages across senders at its own rate."""
    throughput = Throughput(
        per_kind_mps={
            "long_code": 100.0,
            "toll_free": 100.0,
            "short_code": 100.0,
            "alphanumeric": 100.0,
        },
        account_mps={"SMS": 1.0},
    )
    queues = SenderQueues(throughput)
    waits = [queues.admit(f"+1{i}", "long_code", "SMS", 1, now=0.0) for i in range(3)]
    assert waits == [0.0, 1.0, 2.0]


def test_default_queue_depth_is_four_hours() -> None:
    """Without queue_depth a lane holds queue_seconds * rate messages (1,440 for 0.1/s)."""
    queues = SenderQueues(Throughput())
    assert queues.depth(queues.rate("+13125550100", "long_code")) == pytest.approx(1440)
    assert queues.depth(queues.rate("+18005550101", "toll_free")) == pytest.approx(288_000)


LONG_CODE = "+13125550100"


def test_a_group_send_takes_one_slot_per_recipient() -> None:
    """A group MMS to 3 recipients is 3 messages in its sender's lane."""
    queues = SenderQueues(Throughput(per_sender_mps={LONG_CODE: 2.0}, account_mps={}))
    assert queues.admit(LONG_CODE, "long_code", "MMS", 3, now=0.0) == 0.0
    assert queues.admit(LONG_CODE, "long_code", "MMS", 1, now=0.0) == pytest.approx(1.5)


def test_pruning_drained_lanes_keeps_a_busy_lane() -> None:
    """Past 10,000 lanes the drained ones are dropped; a lane still backlogged is kept."""
    queues = SenderQueues(Throughput(per_sender_mps={LONG_CODE: 1.0}, account_mps={}))
    for _ in range(5):
        queues.admit(LONG_CODE, "long_code", "SMS", 1, now=0.0)  # busy until t=5
    for i in range(10_001):
        queues.admit(f"+1{i:010d}", "short_code", "SMS", 1, now=1.0)
    assert queues.admit(LONG_CODE, "long_code", "SMS", 1, now=1.0) == pytest.approx(4.0)
