"""Handlers that queue-worker subprocesses import (``tests.webhook_worker_handlers:record``).

They record into Redis so the test process can see what ran: ``{prefix}:started`` and
``{prefix}:handled`` lists of event ids. Settings come from the environment:
``TNX_TEST_REDIS`` (URL), ``TNX_TEST_PREFIX`` (key prefix), ``TNX_TEST_SLOW`` (seconds an event
whose id starts with ``slow`` takes), ``TNX_TEST_JITTER`` (up to this many seconds for every
event). An event whose id starts with ``poison`` always fails. ``record_and_track`` first records
the event in a ``RedisDeliveryTracker`` with key prefix ``{prefix}:dt:``.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from telnyx_msg import RedisDeliveryTracker
from telnyx_msg.models import WebhookEvent

_client: Any = None
_tracker: RedisDeliveryTracker | None = None


def _redis() -> Any:
    global _client
    if _client is None:
        import redis.asyncio as aioredis

        _client = aioredis.from_url(os.environ["TNX_TEST_REDIS"])
    return _client


async def record(event: WebhookEvent) -> None:
    """Record the start, take a while for ``slow*`` ids, fail ``poison*``, record the end."""
    prefix = os.environ["TNX_TEST_PREFIX"]
    event_id = event.id or ""
    await _redis().rpush(f"{prefix}:started", event_id)
    if event_id.startswith("slow"):
        await asyncio.sleep(float(os.environ.get("TNX_TEST_SLOW", "1")))
    jitter = float(os.environ.get("TNX_TEST_JITTER", "0"))
    if jitter:
        await asyncio.sleep(random.uniform(0, jitter))
    if event_id.startswith("poison"):
        raise RuntimeError(f"poison event {event_id}")
    await _redis().rpush(f"{prefix}:handled", event_id)


async def record_and_track(event: WebhookEvent) -> None:
    """The delivery tracker's ``handle``, then :func:`record` (whose last step, the
    ``handled`` record, is then the handler's last step too)."""
    global _tracker
    if _tracker is None:
        _tracker = RedisDeliveryTracker(
            os.environ["TNX_TEST_REDIS"], key_prefix=os.environ["TNX_TEST_PREFIX"] + ":dt:"
        )
    await _tracker.handle(event)
    await record(event)


def record_sync(event: WebhookEvent) -> None:
    """A plain (blocking) handler: the worker runs it in a thread."""
    import redis

    client = redis.Redis.from_url(os.environ["TNX_TEST_REDIS"])
    try:
        client.rpush(os.environ["TNX_TEST_PREFIX"] + ":handled", f"sync:{event.id}")
    finally:
        client.close()


def record_sync_slow(event: WebhookEvent) -> None:
    """A plain handler that records ``start:ID`` and ``end:ID`` in ``{prefix}:runs`` around a
    blocking sleep of ``TNX_TEST_SLOW`` seconds."""
    import time

    import redis

    client = redis.Redis.from_url(os.environ["TNX_TEST_REDIS"])
    key = os.environ["TNX_TEST_PREFIX"] + ":runs"
    try:
        client.rpush(key, f"start:{event.id}")
        time.sleep(float(os.environ.get("TNX_TEST_SLOW", "1")))
        client.rpush(key, f"end:{event.id}")
    finally:
        client.close()
