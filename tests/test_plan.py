"""plan_bulk: per-lane duration estimates and the 4-hour queue warning."""

from __future__ import annotations

import asyncio

import pytest

import telnyx_msg
from telnyx_msg import RateLimits, plan_bulk
from tests.test_ratelimit import VirtualClock

LONG_CODE = "+13125550100"
TOLL_FREE = "+18005550101"


def test_lane_estimates_and_queue_warning() -> None:
    """A long code with 2,000 messages (0.1/s) outlives the 4 h queue; toll-free does not."""
    requests = [{"from_": LONG_CODE, "to": "+13125550001", "text": "hi"}] * 2000 + [
        {"from_": TOLL_FREE, "to": "+13125550002", "text": "x" * 161}
    ] * 2000
    plan = plan_bulk(requests)
    assert plan.messages == 4000
    assert plan.segments == 2000 + 2 * 2000
    lanes = {lane.sender: lane for lane in plan.lanes}
    assert lanes[LONG_CODE].kind == "long_code"
    assert lanes[LONG_CODE].seconds == pytest.approx(20_000)
    assert lanes[LONG_CODE].exceeds_queue
    assert lanes[TOLL_FREE].seconds == pytest.approx(100)
    assert not lanes[TOLL_FREE].exceeds_queue
    # The client sends the long code's queue allowance (720) at once and paces the rest.
    assert plan.seconds == pytest.approx((2000 - 720) / 0.1)
    assert plan.delivery_seconds == pytest.approx(20_000)
    assert len(plan.warnings) == 1
    assert LONG_CODE in plan.warnings[0]
    assert "560 would expire" in plan.warnings[0]


def test_account_rate_bounds_the_duration() -> None:
    """With fast lanes, the account rate sets the total duration."""
    requests = [{"from_": TOLL_FREE, "to": "+13125550002", "text": "hi"}] * 1000
    plan = plan_bulk(requests, RateLimits(account_mps=10.0))
    assert plan.account_rate == 10.0
    assert plan.seconds == pytest.approx((1000 - 10) / 10)  # the first burst goes at once
    assert plan.warnings == ()


def test_exported() -> None:
    """plan_bulk and BulkPlan are public."""
    assert telnyx_msg.plan_bulk is plan_bulk
    assert isinstance(plan_bulk([]), telnyx_msg.BulkPlan)


@pytest.mark.parametrize(
    "rows",
    [
        [{"from_": TOLL_FREE, "to": "+13125550002", "text": "hi"}] * 1962,
        [{"from_": LONG_CODE, "to": "+13125550002", "text": "hi"}] * 800
        + [
            {
                "from_": TOLL_FREE,
                "to": "+13125550003",
                "text": "hi",
                "media_urls": ["https://x/y.png"],
            }
        ]
        * 300,
    ],
)
@pytest.mark.anyio
async def test_estimate_matches_the_limiter(rows: list[dict[str, object]]) -> None:
    """The plan's seconds are what the client's own limiter then takes (virtual clock)."""
    clock = VirtualClock(start=0.0)
    limits = RateLimits(clock=clock.time, sleep=clock.sleep)
    plan = plan_bulk(rows, limits)

    async def run() -> None:
        async def one(row: dict[str, object]) -> None:
            kind = "MMS" if row.get("media_urls") else "SMS"
            await limits.acquire(str(row["from_"]), kind)

        await asyncio.gather(*(one(row) for row in rows))

    await clock.run(run())
    assert clock.now == pytest.approx(plan.seconds, abs=0.2)
