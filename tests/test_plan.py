"""plan_bulk: per-lane duration estimates and the 4-hour queue warning."""

from __future__ import annotations

import asyncio
from typing import Any

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


def test_whatsapp_items_are_planned_on_no_sender_lane() -> None:
    """WhatsApp sends wait for the account lane only (as the client sends them): 2,000 from a
    long code are not 20,000 s in its 0.1/s SMS queue, with a warning that they expire."""
    whatsapp = {"type": "text", "text": {"body": "hi"}}
    requests = [{"from_": LONG_CODE, "to": "+13125550001", "whatsapp_message": whatsapp}] * 2000
    plan = plan_bulk(requests)
    assert [lane.sender for lane in plan.lanes] == [None]
    assert plan.seconds == pytest.approx((2000 - 50) / 50)  # the SMS account lane: 50/s
    assert plan.warnings == ()


def test_segments_follow_the_encoding_and_the_message_type() -> None:
    """A forced UCS-2 text counts 70/67 per part; MMS text is one part whatever its length
    (Telnyx does not split it); over 10 parts gets a warning. The plan counted 1 part for 100
    letters sent as UCS-2, 4 parts for a 500-character MMS, and never warned."""
    to = "+13125550002"
    plan = plan_bulk(
        [
            {"from_": TOLL_FREE, "to": to, "text": "a" * 100, "encoding": "ucs2"},
            {"from_": TOLL_FREE, "to": to, "text": "a" * 500, "media_urls": ["https://x.test/a"]},
            {"from_": TOLL_FREE, "to": [to, "+13125550003"], "text": "a" * 500},
            {"from_": TOLL_FREE, "to": to, "text": "a" * 1530},
            {"from_": TOLL_FREE, "to": to, "text": "a" * 500, "type": "MMS"},  # (was 4 parts)
        ]
    )
    assert plan.segments == 2 + 1 + 1 + 10 + 1
    assert plan.warnings == ()
    plan = plan_bulk([{"from_": TOLL_FREE, "to": to, "text": "a" * 1531}] * 2)
    assert plan.segments == 22
    assert plan.warnings == (
        "2 message(s) need more than 10 parts, the most Telnyx sends as one SMS "
        "(developers.telnyx.com/docs/messaging/messages/message-encoding): shorten them or "
        "send them as MMS.",
    )


@pytest.mark.parametrize(("messages", "exceeds"), [(10_080, False), (10_081, True)])
def test_a_queue_filled_exactly_does_not_overflow(messages: int, exceeds: bool) -> None:
    """0.7 msg/s for 4 h is 10,080 messages: one more overflows the queue by one. (The float
    product rounding down is pinned by the 1.13 msg/s case below: 0.7 x 14,400 is exact.)"""
    limits = RateLimits(per_sender_mps={LONG_CODE: 0.7})
    plan = plan_bulk([{"from_": LONG_CODE, "to": "+13125550002", "text": "hi"}] * messages, limits)
    assert plan.lanes[0].exceeds_queue is exceeds
    assert plan.warnings == (() if not exceeds else plan.warnings)
    if exceeds:
        assert "about 1 would expire" in plan.warnings[0]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("a" * 152 + "[" + "a" * 152, "auto"),
        ("ж" * 66 + "😀" + "ж" * 66, "auto"),
        ("Price 5€" * 30, "auto"),
        ("\x1b" * 3, "auto"),
        ("a" * 100, "ucs2"),
        ("a" * 1530, "gsm7"),
    ],
)
@pytest.mark.anyio
async def test_the_fake_counts_parts_as_segments_does(text: str, encoding: str) -> None:
    """FakeTelnyx answers the parts and encoding ``telnyx_msg.segments`` computes (it had a
    rule of its own that split escape pairs and emoji across parts)."""
    from telnyx_msg.testing import FakeTelnyx

    async with FakeTelnyx() as fake, fake.client() as client:
        message = await client.messages.send(
            from_=TOLL_FREE,
            to="+13125550002",
            text=text,
            encoding=encoding,  # type: ignore[arg-type]
        )
    expected = telnyx_msg.segments(text, encoding)  # type: ignore[arg-type]
    assert (message.parts, message.encoding) == (expected.parts, expected.encoding)


def test_delivery_is_never_before_the_run_ends() -> None:
    """When the account rate (10/s) is the bottleneck, the last message leaves Telnyx when the
    run ends (99 s), not when its fast toll-free lane alone would have drained it."""
    requests = [{"from_": TOLL_FREE, "to": "+13125550002", "text": "hi"}] * 1000
    plan = plan_bulk(requests, RateLimits(account_mps=10.0))
    assert plan.seconds == pytest.approx(99)
    assert plan.delivery_seconds == pytest.approx(99)


TOLL_FREE = "+18005550101"


def test_mms_items_are_timed_on_the_mms_account_lane() -> None:
    """1,000 MMS from a fast toll-free lane: the MMS account lane (15/s, burst 15) sets the
    run, not the SMS one (50/s): (1000 - 15) / 15 s. Guards against: MMS counted as SMS."""
    requests = [
        {"from_": TOLL_FREE, "to": "+13125550002", "text": "hi", "media_urls": ["https://x/y.png"]}
    ] * 1000
    plan = plan_bulk(requests)
    assert plan.seconds == pytest.approx((1000 - 15) / 15)


def test_account_rate_is_the_sms_account_rate() -> None:
    """``account_rate`` reports the SMS account lane (50/s by default; MMS is 15/s).
    Guards against: account_rate read from the MMS lane."""
    assert plan_bulk([]).account_rate == 50.0
    assert plan_bulk([], RateLimits(account_mps={"SMS": 200, "MMS": 20})).account_rate == 200


LONG_CODE = "+13125550100"


@pytest.mark.parametrize(("messages", "exceeds"), [(16_272, False), (16_273, True)])
def test_a_queue_filled_exactly_does_not_overflow_when_the_product_rounds_down(
    messages: int, exceeds: bool
) -> None:
    """1.13 msg/s x 4 h is 16,272 messages but the float product is 16271.999...; the
    existing 0.7 msg/s case multiplies to exactly 10080.0, so it never exercised the fix.
    Guards against: ``+ 1e-6`` removed."""
    limits = RateLimits(per_sender_mps={LONG_CODE: 1.13})
    plan = plan_bulk([{"from_": LONG_CODE, "to": "+13125550002", "text": "hi"}] * messages, limits)
    assert plan.lanes[0].exceeds_queue is exceeds
    assert bool(plan.warnings) is exceeds


def test_lane_segments_count_parts_not_messages() -> None:
    """A lane's ``segments`` sums the parts of its messages (161 GSM-7 chars: 2 parts).
    Guards against: per-lane parts counted as messages."""
    plan = plan_bulk(
        [{"from_": TOLL_FREE, "to": "+13125550002", "text": "x" * 161}] * 3
        + [{"from_": LONG_CODE, "to": "+13125550002", "text": "hi"}] * 2
    )
    lanes = {lane.sender: lane for lane in plan.lanes}
    assert (lanes[TOLL_FREE].messages, lanes[TOLL_FREE].segments) == (3, 6)
    assert (lanes[LONG_CODE].messages, lanes[LONG_CODE].segments) == (2, 2)


def test_lanes_are_listed_busiest_first() -> None:
    """Lanes come most messages first, whatever the input order.
    Guards against: ``most_common()`` replaced by insertion order."""
    plan = plan_bulk(
        [{"from_": LONG_CODE, "to": "+13125550002", "text": "hi"}]
        + [{"from_": TOLL_FREE, "to": "+13125550002", "text": "hi"}] * 3
    )
    assert [lane.sender for lane in plan.lanes] == [TOLL_FREE, LONG_CODE]


@pytest.mark.parametrize(
    ("requests", "field", "says"),
    [
        (["+13125550002"], "requests", "item 0 is a str, not a mapping"),
        ([{"from_": 18005550101, "to": "+13125550002", "text": "hi"}], "from_", "got int"),
    ],
)
def test_an_item_the_plan_cannot_read_is_a_validation_error(
    requests: list[Any], field: str, says: str
) -> None:
    """A non-mapping item or a numeric sender raised a bare AttributeError or TypeError."""
    with pytest.raises(telnyx_msg.ValidationError) as caught:
        plan_bulk(requests)
    assert caught.value.field == field
    assert says in str(caught.value)
