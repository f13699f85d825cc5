"""Chaos (slow): two receivers with a queue, three worker processes killed at random."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
import pytest

from telnyx_msg import RedisDeliveryTracker, RedisWebhookQueue
from telnyx_msg.receivers import aiohttp_handler
from tests.test_webhook_queue import (
    event_body,
    finish,
    recorded,
    serve,
    sign,
    verifier,
    worker_process,
)

pytestmark = [pytest.mark.redis, pytest.mark.anyio, pytest.mark.slow]

EVENTS = 300
DUPLICATES = 20  # deliveries Telnyx repeats (as if our 2xx was lost)
KILLS = 4
CLAIM_AFTER = "1.0"


async def post_all(urls: list[str], bodies: list[tuple[str, bytes]]) -> dict[str, list[int]]:
    """POST every body (alternating receivers, 20 at a time), retrying a non-2xx answer up to
    5 times as Telnyx would; statuses per event id."""
    statuses: dict[str, list[int]] = {}
    limit = asyncio.Semaphore(20)

    async def one(i: int, event_id: str, body: bytes, session: aiohttp.ClientSession) -> None:
        for attempt in range(5):
            async with (
                limit,
                session.post(
                    urls[(i + attempt) % len(urls)], data=body, headers=sign(body)
                ) as response,
            ):
                statuses.setdefault(event_id, []).append(response.status)
                if response.status == 200:
                    return
            await asyncio.sleep(0.2)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(i, eid, body, session) for i, (eid, body) in enumerate(bodies)))
    return statuses


async def test_chaos_every_accepted_webhook_is_handled(redis_url: str) -> None:
    """Every delivery answered 2xx is handled (exactly once, except at most one repeat per
    kill -9 that lands between a handler's return and its acknowledgement); the poison event
    ends in the dead-letter stream; a tracker in this process sees the final statuses that the
    worker processes recorded."""
    stream = f"chaos:{uuid.uuid4().hex}"
    prefix = f"rec:{uuid.uuid4().hex}"
    queues = [RedisWebhookQueue(redis_url, stream=stream) for _ in range(2)]
    receivers = [aiohttp_handler(verifier(), {}, queue=q) for q in queues]
    tracker = RedisDeliveryTracker(redis_url, key_prefix=prefix + ":dt:")
    extra = ("--claim-after", CLAIM_AFTER, "--max-attempts", "3")
    workers = [
        worker_process(redis_url, stream, prefix, *extra, jitter=0.02, handler="record_and_track")
        for _ in range(3)
    ]
    rng = random.Random(17)
    killed = 0
    try:
        async with serve(receivers[0]) as url_a, serve(receivers[1]) as url_b:
            ids = [f"evt-{i}" for i in range(EVENTS)] + ["poison-1"]
            bodies = [(eid, event_body(eid)) for eid in ids]
            bodies += [bodies[rng.randrange(EVENTS)] for _ in range(DUPLICATES)]
            rng.shuffle(bodies)
            watched = [f"msg-evt-{i}" for i in rng.sample(range(EVENTS), 5)]
            waits = [
                asyncio.get_running_loop().create_task(tracker.final_status(m, timeout=120))
                for m in watched
            ]

            async def chaos() -> None:
                nonlocal killed
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.2, 0.8))
                    victim = rng.randrange(len(workers))
                    await finish(workers[victim], signal.SIGKILL)
                    killed += 1
                    workers[victim] = worker_process(
                        redis_url, stream, prefix, *extra, jitter=0.02, handler="record_and_track"
                    )

            chaos_task = asyncio.get_running_loop().create_task(chaos())
            statuses = await post_all([url_a, url_b], bodies)
            await asyncio.wait_for(chaos_task, 60)

        accepted = {eid for eid, codes in statuses.items() if 200 in codes}
        assert accepted == set(ids)  # Redis was up: every delivery was stored
        redis: Any = queues[0]._redis
        expected = accepted - {"poison-1"}
        deadline = time.monotonic() + 120
        while True:
            handled = await recorded(redis, f"{prefix}:handled")
            letters = await queues[0].dead_letters()
            if expected <= set(handled) and letters and await queues[0].pending() == 0:
                break
            assert time.monotonic() < deadline, (
                f"missing {sorted(expected - set(handled))[:10]}, dead {len(letters)}"
            )
            await asyncio.sleep(0.2)

        counts = Counter(handled)
        assert set(counts) == expected
        repeats = sum(n - 1 for n in counts.values())
        assert repeats <= killed, counts.most_common(5)
        [letter] = letters
        assert letter["event_id"] == "poison-1"
        assert letter["reason"] == "handler failed: RuntimeError('poison event poison-1')"
        assert json.loads(letter["body"])["data"]["id"] == "poison-1"
        finals = await asyncio.wait_for(asyncio.gather(*waits), 30)
        assert [m.id for m in finals] == watched
        assert await redis.xlen(stream) == 0
    finally:
        for proc in workers:
            await finish(proc, signal.SIGTERM)
        await tracker.aclose()
        for q in queues:
            await q.aclose()
