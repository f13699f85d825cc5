"""Handlers that queue-worker subprocesses import (``tests.webhook_worker_handlers:record``).

They record into Redis so the test process can see what ran: ``{prefix}:started`` and
``{prefix}:handled`` lists of event ids. Settings come from the environment:
``TNX_TEST_REDIS`` (URL), ``TNX_TEST_PREFIX`` (key prefix), ``TNX_TEST_SLOW`` (seconds an event
whose id starts with ``slow`` takes). An event whose id starts with ``poison`` always fails.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from telnyx_msg.models import WebhookEvent

_client: Any = None


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
    if event_id.startswith("poison"):
        raise RuntimeError(f"poison event {event_id}")
    await _redis().rpush(f"{prefix}:handled", event_id)

