"""A Redis in cluster mode behind the webhook queue: refused at startup, never half-working.

docs/deployment.md says Redis Cluster is not supported (the queue's ``MULTI`` and scripts span
keys in several hash slots) and promises that misconfiguration shows at startup. A managed
Redis with cluster mode on and a single shard accepts every single-key command the startup
checks send, so before these tests the receivers started, answered Telnyx 200 "queued", and the
workers then ran each event's handler ``max_attempts`` times (none of them could be
acknowledged: ``CROSSSLOT``) and spun on its dead letter forever.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import telnyx_msg
from telnyx_msg import RedisWebhookQueue
from telnyx_msg.errors import ConfigurationError
from telnyx_msg.models import WebhookEvent
from telnyx_msg.receivers import asgi_app
from tests.redis_proc import _free_port, _ping
from tests.test_webhook_queue import event_body, parsed, verifier

pytestmark = [pytest.mark.redis, pytest.mark.anyio]


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (10,000 above it, so at most 55535) is free too: an
    ephemeral port above that made redis-server refuse to start ("port number too high")."""
    for _ in range(200):  # bounded: about one ephemeral port in six is above 55535
        port = _free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port
    pytest.fail("no free port pair for a cluster-mode redis-server")


def _start_cluster_node(binary: str, workdir: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """Start one cluster-mode redis-server; a few tries (a free port can be taken meanwhile)."""
    for attempt in range(3):
        port = _free_cluster_port()
        conf = workdir / f"nodes-{attempt}.conf"
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += [
            "--dir",
            str(workdir),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(conf),
        ]
        proc = subprocess.Popen(
            [binary, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            if _ping(port):
                return port, proc
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    pytest.fail("redis-server (cluster mode) did not start")


@pytest.fixture
def cluster_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server in cluster mode that owns every hash slot (one shard, as a managed Redis
    with cluster mode enabled): every single-key command works, multi-slot ones do not."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not found")
    port, proc = _start_cluster_node(binary, tmp_path)
    try:
        deadline = time.monotonic() + 10
        admin = redis.Redis(port=port)
        command: Any = admin.execute_command
        command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        while b"cluster_state:ok" not in command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                pytest.fail("the one-node cluster did not become ready")
            time.sleep(0.05)
        admin.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def queue(cluster_url: str) -> AsyncIterator[RedisWebhookQueue]:
    q = RedisWebhookQueue(
        cluster_url,
        stream=f"cluster:{uuid.uuid4().hex}",
        claim_after=0.3,
        max_attempts=3,
        block=0.2,
    )
    yield q
    await q.aclose()


async def test_receiver_startup_refuses_a_redis_in_cluster_mode(queue: RedisWebhookQueue) -> None:
    """The receiver's startup check refuses a Redis the queue cannot work on (cluster mode),
    as it refuses wrong credentials: the app does not start, instead of answering Telnyx 200
    "queued" for events that no worker can ever acknowledge."""
    receiver = asgi_app(verifier(), {}, queue=queue)
    with pytest.raises(ConfigurationError, match=r"(?i)cluster"):
        await receiver.startup()


async def test_a_receiver_on_a_cluster_mode_redis_does_not_answer_200(
    queue: RedisWebhookQueue,
) -> None:
    """Past a startup that only logged (or without one), a delivery is not acknowledged 2xx
    into a queue whose workers cannot finish it: the append fails (the receiver answers 5xx)."""
    event_id = f"evt-{uuid.uuid4().hex}"
    with pytest.raises((ConfigurationError, telnyx_msg.WebhookQueueUnavailableError)):
        await queue.enqueue(event_body(event_id), parsed(event_id))


async def test_a_worker_on_a_cluster_mode_redis_stops_without_running_handlers(
    queue: RedisWebhookQueue, cluster_url: str
) -> None:
    """A worker whose Redis is in cluster mode stops with ConfigurationError (the CLI exits 2:
    a supervisor sees it), before running any handler. Before, it ran the handler of an event
    ``max_attempts`` times (duplicate side effects: three SMS replies to one inbound message)
    and then retried its dead letter forever."""
    admin = redis.Redis.from_url(cluster_url)
    event_id = f"evt-{uuid.uuid4().hex}"
    fields = {"body": event_body(event_id), "event_id": event_id, "event_type": "message.finalized"}
    admin.xadd(queue.stream, fields)  # type: ignore[arg-type]
    admin.close()
    runs: list[str | None] = []

    async def handler(event: WebhookEvent) -> None:
        runs.append(event.id)

    run = asyncio.ensure_future(queue.run({"message.finalized": handler}))
    try:
        done, _ = await asyncio.wait({run}, timeout=5)
        assert run in done, f"the worker kept going on a cluster-mode Redis; handler ran {runs}"
        assert isinstance(run.exception(), ConfigurationError)
        assert runs == []
    finally:
        queue.stop()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
