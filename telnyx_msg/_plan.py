"""``plan_bulk``: how long a bulk send will take per lane, and whether Telnyx can queue it.

Telnyx queues a sender's messages beyond its rate for at most 4 hours; anything still queued
then fails with 40014 ("expired in queue"). A plan computed before sending shows, per sender
lane, how many messages and segments it carries, how long the lane needs at its rate (or at its
share of the account rate, whichever is slower), and flags a lane whose backlog would outlive
the 4-hour queue validity, so the run can be split or spread over more senders first.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from attrs import frozen

from telnyx_msg._bucket import QUEUE_SECONDS, sender_kind
from telnyx_msg._bulk import pick_method
from telnyx_msg._ratelimit import RateLimits
from telnyx_msg._resources import Messages
from telnyx_msg._segments import MAX_PARTS, segments
from telnyx_msg.errors import ValidationError

__all__ = ["BulkPlan", "LanePlan", "plan_bulk"]


@frozen
class LanePlan:
    """One sender lane of a bulk send.

    ``seconds`` is the time Telnyx needs to send the lane's messages at ``rate`` (None: the lane
    has no rate of its own); ``exceeds_queue`` is True when they cannot all leave Telnyx's queue
    within the 4-hour validity.
    """

    sender: str | None
    kind: str | None
    messages: int
    segments: int
    rate: float | None
    seconds: float | None
    exceeds_queue: bool


@frozen
class BulkPlan:
    """The estimate for a whole bulk send.

    ``seconds`` is how long the run itself takes at the client's limits: the account lanes
    (after their burst) and each sender lane beyond what Telnyx queues for it (the limiter lets
    a lane's queue allowance through at once). ``delivery_seconds`` is when Telnyx will have
    sent the last message at the lanes' rates (it drains its sender queues after the run).
    Neither counts network latency, which bounds a run at ``concurrency / latency`` msg/s.
    """

    lanes: tuple[LanePlan, ...]
    messages: int
    segments: int
    account_rate: float | None
    seconds: float
    warnings: tuple[str, ...]
    delivery_seconds: float = 0.0


def plan_bulk(
    requests: Iterable[Mapping[str, Any]], rate_limits: RateLimits | None = None
) -> BulkPlan:
    """Estimate a ``send_many`` run over ``requests`` under ``rate_limits`` (default limits).

    Reads every request once (pass a list, or a fresh iterable); does no I/O. An item it
    cannot read (not a mapping, or a sender that is not a string) raises ``ValidationError``.
    """
    limits = rate_limits if rate_limits is not None else RateLimits()
    config = limits._config
    counts: Counter[str | None] = Counter()
    parts: Counter[str | None] = Counter()
    by_type: Counter[str] = Counter()
    total_parts = 0
    too_long = 0
    for index, request in enumerate(requests):
        if not isinstance(request, Mapping):  # (from untyped callers)
            kind = type(request).__name__  # type: ignore[unreachable]
            raise ValidationError("requests", f"item {index} is a {kind}, not a mapping")
        for name in ("from_", "messaging_profile_id"):
            if request.get(name) and not isinstance(request[name], str):
                kind = type(request[name]).__name__
                raise ValidationError(name, f"item {index}: must be a string, got {kind}")
        text = request.get("text")
        # The lanes of the method send_many picks, as the request pipeline reads them: MMS for
        # media or a group MMS; no sender lane for WhatsApp.
        lane = getattr(Messages, pick_method(request, "auto")).endpoint.lane
        message_type, sender = lane.of(
            {
                "from": request.get("from_"),
                "messaging_profile_id": request.get("messaging_profile_id"),
                "media_urls": request.get("media_urls"),
                "type": getattr(request.get("type"), "value", request.get("type")),
            }
        )
        mms = message_type == "MMS"
        requested = request.get("encoding")
        encoding: Literal["auto", "gsm7", "ucs2"] = (
            requested if requested in ("gsm7", "ucs2") else "auto"
        )
        # MMS text is UTF-8 and not split into parts.
        part_count = segments(text, encoding).parts if isinstance(text, str) and not mms else 1
        if part_count > MAX_PARTS:
            too_long += 1
        counts[sender] += 1
        parts[sender] += part_count
        total_parts += part_count
        # The client's account lanes are per message type, as in the request pipeline.
        by_type["MMS" if mms else "SMS"] += 1
    account_spec = config.accounts.get("SMS")
    account_rate = None if account_spec is None else account_spec.rate
    total = sum(counts.values())
    seconds = 0.0
    for message_type, messages in by_type.items():
        account = config.accounts.get(config.account_key(message_type))
        if account is not None:
            seconds = max(seconds, max(0.0, messages - account.burst) / account.rate)
    delivery = 0.0
    lanes: list[LanePlan] = []
    warnings: list[str] = []
    for sender, messages in counts.most_common():
        spec = config.lane_spec(sender) if sender is not None else None
        rate = None if spec is None else spec.rate
        lane_seconds = None if rate is None else messages / rate
        # How many the queue holds, in whole messages: 0.7 msg/s x 4 h is 10,080 exactly,
        # though the float product is 10079.999...
        queued = 0 if rate is None else math.floor(rate * QUEUE_SECONDS + 1e-6)
        exceeds = rate is not None and messages > queued
        lanes.append(
            LanePlan(
                sender,
                None if sender is None else sender_kind(sender),
                messages,
                parts[sender],
                rate,
                lane_seconds,
                exceeds,
            )
        )
        if spec is not None and lane_seconds is not None:
            seconds = max(seconds, max(0.0, messages - spec.capacity) / spec.rate)
            delivery = max(delivery, lane_seconds)
        if exceeds and rate is not None and lane_seconds is not None:
            warnings.append(
                f"{sender}: {messages} messages at {rate:g} msg/s need "
                f"{lane_seconds / 3600:.1f} h, more than Telnyx's 4 h queue validity; about "
                f"{messages - queued} would expire (40014). Split the run or "
                f"use more senders."
            )
    if too_long:
        warnings.append(
            f"{too_long} message(s) need more than {MAX_PARTS} parts, the most Telnyx sends as "
            "one SMS (developers.telnyx.com/docs/messaging/messages/message-encoding): "
            "shorten them or send them as MMS."
        )
    return BulkPlan(
        tuple(lanes),
        total,
        total_parts,
        account_rate,
        seconds,
        tuple(warnings),
        max(delivery, seconds),
    )
