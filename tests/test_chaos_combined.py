"""Chaos (slow): every "beyond one machine" piece at once, with kill -9s (issue 17).

One scenario, everything on 127.0.0.1:

- FakeTelnyx (served in a thread of this process) adds latency to every send and limits the
  sender's lane (``Throughput.per_sender_mps`` with a small queue: overflowing it answers 429
  ``40318``). It delivers the real ``message.sent`` / ``message.finalized`` webhooks of every
  message it accepts, signed, to the ``webhook_url`` (failover: the other receiver) each CSV
  row names.
- Two receivers (aiohttp servers in this process, like ``test_webhook_queue_chaos``), each with
  its own ``RedisWebhookQueue``, append the verified deliveries to one stream; three
  ``telnyx-msg webhook worker`` processes run :func:`chaos_handler` on them.
- Three ``telnyx-msg bulk --shard I/3 --redis URL`` processes share one account limit (below
  the fake's lane) and send a CSV of a few hundred rows.
- One worker (while it holds an entry) and one shard (mid-run) are killed with SIGKILL at moments
  a seeded RNG picks (the seed is printed; ``TNX_CHAOS_SEED`` replays one); the worker is
  restarted and the shard resumed (same command plus ``--resume``), then all shards run with
  ``--resume --retry-unknown`` as docs/cli.md says.
- A poison event (its handler always raises) is posted, signed, to a receiver.

Run alone: ``pytest tests/test_chaos_combined.py -m slow -p no:randomly -s`` (``-s`` shows the
seed and the summary line).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import random
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.exceptions import ResponseError

from telnyx_msg import RedisDeliveryTracker, RedisWebhookQueue
from telnyx_msg.models import Message, WebhookEvent
from telnyx_msg.receivers import aiohttp_handler
from telnyx_msg.testing import FakeConfig, FakeTelnyx, Faults, Throughput, serve_in_thread
from telnyx_msg.webhooks import WebhookVerifier
from tests.test_cli_bulk import SENDER, per_recipient, results, start_bulk, wait_for_journal
from tests.test_webhook_queue import KEY, event_body, finish, serve, sign, webhook_worker

pytestmark = [pytest.mark.redis, pytest.mark.anyio, pytest.mark.slow]

ROWS = 300
SHARDS = 3
WORKERS = 3
CLIENT_MPS = 10  # --account-mps the shards share through Redis
BURST = 10  # the documented default burst: the rate rounded up (docs/rate-limits.md)
WINDOW_SLACK = 5  # requests a 1 s window may gain from ~0.5 s of scheduling/fsync jitter
FAKE_MPS = 15.0  # the fake's lane for SENDER: above CLIENT_MPS, below 3 unshared shards
FAKE_DEPTH = 20  # messages that lane may queue before 429 40318
LATENCY = 0.015  # seconds the fake adds to every send
DELIVERY_DELAY = 0.3  # queued -> sent -> finalized, each step
CLAIM_AFTER = 2.0
MAX_ATTEMPTS = 3
GROUP = "telnyx_msg"  # the worker's default consumer group
POISON = "poison-1"

# The fake's access log line ('"%r" %s %Tfs'): request line, status, seconds taken.
_ACCESS = re.compile(
    r'"(?P<method>\S+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d+) (?P<took>[\d.]+)s'
)


# --- the workers' handler (runs in the `telnyx-msg webhook worker` processes) -------------------

_worker: dict[str, Any] = {}


async def chaos_handler(event: WebhookEvent) -> None:
    """``tests.test_chaos_combined:chaos_handler``: record the call, then apply the effect.

    Every invocation appends ``"PID EVENT_ID"`` to ``{prefix}:calls`` first (raw invocations,
    duplicates included). Then it takes 10-40 ms (so a kill -9 often lands mid-handler), raises
    for ``poison*`` ids, records the final status in a ``RedisDeliveryTracker`` and applies the
    idempotent effect: ``HSETNX {prefix}:effect EVENT_ID PID``; a repeat that finds the effect
    already there is appended to ``{prefix}:repeats``. Settings: ``TNX_CHAOS_REDIS`` and
    ``TNX_CHAOS_PREFIX``.
    """
    if not _worker:
        import redis.asyncio as aioredis

        url = os.environ["TNX_CHAOS_REDIS"]
        _worker["redis"] = aioredis.from_url(url)
        _worker["tracker"] = RedisDeliveryTracker(
            url, key_prefix=os.environ["TNX_CHAOS_PREFIX"] + ":dt:"
        )
    redis: Any = _worker["redis"]
    tracker: RedisDeliveryTracker = _worker["tracker"]
    prefix = os.environ["TNX_CHAOS_PREFIX"]
    event_id = event.id or ""
    await redis.rpush(f"{prefix}:calls", f"{os.getpid()} {event_id}")
    await asyncio.sleep(random.uniform(0.01, 0.04))
    if event_id.startswith("poison"):
        raise RuntimeError(f"poison event {event_id}")
    await tracker.handle(event)
    if not await redis.hsetnx(f"{prefix}:effect", event_id, str(os.getpid())):
        await redis.rpush(f"{prefix}:repeats", event_id)


# --- helpers --------------------------------------------------------------------------------------


class Arrivals(logging.Handler):
    """Collects, from the fake's access log, when each ``POST /v2/messages`` reached it
    (the line's time less the seconds the request took)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = _ACCESS.fullmatch(record.getMessage())
        if match and match["method"] == "POST" and match["path"] == "/v2/messages":
            self.times.append(record.created - float(match["took"]))


def busiest_second(times: list[float]) -> int:
    """The most requests in any window [t, t + 1 s) that starts at a request."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def recipient(row: int) -> str:
    """The ``to`` of a row (the header is row 1): a recovered unknown row records none."""
    return f"+1312555{row - 2:04d}"


def write_table(path: Path, urls: list[str]) -> None:
    """ROWS rows to distinct recipients; row n's webhooks go to receiver n % 2, failover to
    the other."""
    lines = ["from,to,text,webhook_url,webhook_failover_url"]
    for n in range(ROWS):
        primary, failover = urls[n % 2], urls[(n + 1) % 2]
        lines.append(f"{SENDER},{recipient(n + 2)},chaos {n},{primary},{failover}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def start_worker(redis_url: str, stream: str, prefix: str, name: str) -> subprocess.Popen[bytes]:
    """``telnyx-msg webhook worker`` with :func:`chaos_handler`, as consumer ``name``."""
    return webhook_worker(
        redis_url,
        stream,
        "tests.test_chaos_combined:chaos_handler",
        {"TNX_CHAOS_REDIS": redis_url, "TNX_CHAOS_PREFIX": prefix},
        *("--consumer", name, "--claim-after", str(CLAIM_AFTER)),
        *("--max-attempts", str(MAX_ATTEMPTS)),
    )


async def held_by(redis: Any, stream: str, consumer: str) -> list[str]:
    """Event ids of the entries ``consumer`` was delivered and has not acknowledged."""
    try:
        rows = await redis.xpending_range(stream, GROUP, "-", "+", 100, consumername=consumer)
    except ResponseError:  # NOGROUP: no worker has created the group yet
        return []
    held: list[str] = []
    for row in rows:
        for _, fields in await redis.xrange(stream, row["message_id"], row["message_id"]):
            held.append(fields[b"event_id"].decode())
    return held


async def ended(proc: asyncio.subprocess.Process, timeout: float) -> tuple[int, str]:
    """Wait (bounded) for a bulk process; its exit code and stderr."""
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode(errors="replace")


def latest(outs: dict[int, Path]) -> dict[int, dict[str, str]]:
    """Row -> its record, over every shard's RESULTS (each row must be in exactly one)."""
    rows: dict[int, dict[str, str]] = {}
    for out in outs.values():
        for record in results(out) if out.exists() else []:
            row = int(record["row"])
            assert row not in rows, f"row {row} is recorded twice"
            rows[row] = record
    return rows


@pytest.fixture
def chaos_fake() -> Iterator[tuple[FakeTelnyx, Arrivals]]:
    """The fake, served in a thread of its own (so the test's loop, busy with the receivers,
    cannot delay its arrival times), and the arrival times of its sends.
    """
    arrivals = Arrivals()
    # Not from getLogger: pytest would also capture (and print) a registered logger's lines.
    access = logging.Logger("chaos-fake-access", logging.INFO)
    access.addHandler(arrivals)
    config = FakeConfig(
        faults=Faults(latency=LATENCY, match=("POST /messages",)),
        throughput=Throughput(per_sender_mps={SENDER: FAKE_MPS}, queue_depth=FAKE_DEPTH),
        delivery_delay=DELIVERY_DELAY,
        request_log_size=20_000,
        webhook_log_size=20_000,
        max_messages=20_000,
    )
    with serve_in_thread(config=config, signing_key=KEY, access_log=access) as fake:
        yield fake, arrivals


# --- the scenario ---------------------------------------------------------------------------------


async def test_chaos_everything_at_once(
    redis_url: str, tmp_path: Path, chaos_fake: tuple[FakeTelnyx, Arrivals]
) -> None:
    """Sharded bulk + receivers + queue workers + tracker under kill -9s: rows accepted exactly
    once, the shared limit held at the server, every 2xx webhook's effect exactly once, final
    statuses visible across processes, the poison event dead-lettered."""
    seed = int(os.environ.get("TNX_CHAOS_SEED") or int.from_bytes(os.urandom(4), "big"))
    print(f"\nchaos seed {seed} (TNX_CHAOS_SEED={seed} replays these choices)")
    rng = random.Random(seed)
    shard_victim = rng.randint(1, SHARDS)
    shard_kill_rows = rng.randint(5, ROWS // SHARDS // 2)
    worker_victim = rng.randrange(WORKERS)
    worker_kill_after = rng.uniform(1.0, 6.0)
    started = time.monotonic()

    stream = f"chaos:{uuid.uuid4().hex}"
    prefix = f"chaosrec:{uuid.uuid4().hex}"
    fake, arrivals = chaos_fake
    queues = [RedisWebhookQueue(redis_url, stream=stream) for _ in range(2)]
    redis: Any = queues[0]._redis
    tracker = RedisDeliveryTracker(redis_url, key_prefix=prefix + ":dt:")
    names = [f"chaos-worker-{i}" for i in range(WORKERS)]
    workers = [start_worker(redis_url, stream, prefix, name) for name in names]
    shards: dict[int, asyncio.subprocess.Process] = {}
    source = tmp_path / "in.csv"
    outs = {i: tmp_path / f"out_{i}.csv" for i in range(1, SHARDS + 1)}
    killed_pids: list[int] = []
    held: list[str] = []
    waits: list[asyncio.Task[Message]] = []

    async def shard(index: int, *extra: str) -> asyncio.subprocess.Process:
        """``telnyx-msg bulk`` as shard ``index`` of SHARDS, sharing the limit via Redis."""
        return await start_bulk(
            fake,
            source,
            outs[index],
            "--shard",
            f"{index}/{SHARDS}",
            "--redis",
            redis_url,
            "--account-mps",
            str(CLIENT_MPS),
            "--no-progress",
            *extra,
        )

    try:
        verifier = WebhookVerifier(fake.public_key)
        receivers = [aiohttp_handler(verifier, {}, queue=q) for q in queues]
        async with serve(receivers[0]) as url_a, serve(receivers[1]) as url_b:
            write_table(source, [url_a, url_b])
            for i in outs:
                shards[i] = await shard(i)

            async def kill_a_worker() -> None:
                """After a random pause, SIGKILL one worker while it holds an entry;
                restart it; then post the poison event (no later kill can interrupt it)."""
                await asyncio.sleep(worker_kill_after)
                name = names[worker_victim]
                victim = workers[worker_victim]
                for _ in range(4000):  # bounded: about 20 s
                    if await held_by(redis, stream, name):
                        break
                    await asyncio.sleep(0.005)
                victim.kill()
                await finish(victim)
                killed_pids.append(victim.pid)
                held.extend(await held_by(redis, stream, name))
                workers[worker_victim] = start_worker(
                    redis_url, stream, prefix, name + "-restarted"
                )
                body = event_body(POISON)
                headers = sign(body, int(time.time()))
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(url_a, data=body, headers=headers) as response,
                ):
                    assert response.status == 200, await response.text()

            async def kill_a_shard() -> None:
                """SIGKILL one shard once it has journaled some rows; resume it."""
                proc = shards[shard_victim]
                await wait_for_journal(outs[shard_victim], shard_kill_rows, proc)
                if proc.returncode is not None:
                    _, stderr = await ended(proc, 30)
                    pytest.fail(f"shard {shard_victim} ended before its kill: {stderr}")
                proc.kill()
                code, _ = await ended(proc, 30)
                assert code == -signal.SIGKILL
                shards[shard_victim] = await shard(shard_victim, "--resume")

            await asyncio.wait_for(asyncio.gather(kill_a_worker(), kill_a_shard()), 60)
            # Messages accepted just now are not final yet: these waits see the status
            # arrive through the tracker's notification, from the worker processes.
            watched = [m["id"] for m in fake.messages()[-5:]]
            waits += [
                asyncio.get_running_loop().create_task(tracker.final_status(m, timeout=120))
                for m in watched
            ]
            for i, proc in shards.items():
                code, stderr = await ended(proc, 150)
                allowed = (0, 1) if i == shard_victim else (0,)  # 1: unknown rows remain
                assert code in allowed, f"shard {i}: {code}\n{stderr}"

            # -- before --retry-unknown: nothing accepted twice, nothing asked twice
            before = latest(outs)
            assert sorted(before) == list(range(2, ROWS + 2))
            unknown = {row for row, r in before.items() if r["status"] == "unknown"}
            assert {before[row]["status"] for row in before.keys() - unknown} == {"sent"}
            assert all((row - 2) % SHARDS == shard_victim - 1 for row in unknown)
            accepted_before = per_recipient(fake)
            assert max(accepted_before.values()) == 1, accepted_before.most_common(3)
            assert fake.stats.idempotent_replays == 0
            unknown_accepted = {row for row in unknown if recipient(row) in accepted_before}

            # -- --resume --retry-unknown, every shard, as the docs say
            for i in outs:
                shards[i] = await shard(i, "--resume", "--retry-unknown")
            for i, proc in shards.items():
                code, stderr = await ended(proc, 120)
                assert code == 0, f"shard {i} --retry-unknown: {code}\n{stderr}"
            sends_took = time.monotonic() - started

            # -- every row accepted exactly once, under the shared limit
            final = latest(outs)
            assert sorted(final) == list(range(2, ROWS + 2))
            assert {r["status"] for r in final.values()} == {"sent"}
            counts = per_recipient(fake)
            assert len(counts) == ROWS
            assert set(counts.values()) == {1}
            # An unknown row that had reached the fake is answered from its idempotency
            # cache (same key, same body); one that had not is sent now, once.
            assert fake.stats.idempotent_replays == len(unknown_accepted)
            await fake.settle(timeout=60)
            ids = {m["to"][0]["phone_number"]: m["id"] for m in fake.messages()}
            requests = [r for r in fake.stats.requests if r.path == "/v2/messages"]
            by_key: dict[str, set[str]] = {}
            for request in requests:
                if request.status == 200 and request.answer is not None:
                    key = request.headers.get("Idempotency-Key", "")
                    message_id = json.loads(request.answer)["data"]["id"]
                    by_key.setdefault(key, set()).add(message_id)
            assert set(by_key) == {r["idempotency_key"] for r in final.values()}
            for row, record in final.items():
                assert record["to"] == recipient(row), record
                assert by_key[record["idempotency_key"]] == {record["message_id"]}, record
                assert ids[record["to"]] == record["message_id"], record
            assert fake.stats.queue_full == 0  # the fake's sender lane never overflowed
            assert len(arrivals.times) == len(requests)
            assert len(requests) == fake.stats.count("POST", "/messages")
            busiest = busiest_second(arrivals.times)
            assert busiest <= CLIENT_MPS + BURST + WINDOW_SLACK, busiest

            # -- webhooks: every event answered 2xx is handled, its effect exactly once
            attempts = list(fake.stats.webhook_attempts)
            assert fake.stats.webhooks_failed == 0
            delivered = {a.event_id for a in attempts if a.ok and a.event_id}
            assert len(delivered) == 2 * ROWS  # message.sent + message.finalized each
            assert {a.url for a in attempts if a.ok} == {url_a, url_b}

        deadline = time.monotonic() + 90
        while True:
            effect = await redis.hgetall(f"{prefix}:effect")
            effects = {k.decode() for k in effect}
            letters = await queues[0].dead_letters()
            pending = await queues[0].pending()
            if delivered <= effects and letters and pending == 0:
                break
            assert time.monotonic() < deadline, (
                f"unhandled {sorted(delivered - effects)[:10]}, dead {len(letters)}, "
                f"pending {pending}"
            )
            await asyncio.sleep(0.2)
        assert effects == delivered  # the effect of each delivered event, and nothing else
        assert await redis.xlen(stream) == 0

        # Raw invocations: once per event, except an entry the killed worker held.
        assert held, "the killed worker held no entry: the takeover was not exercised"
        assert set(held) <= effects
        calls: Counter[str] = Counter()
        callers: dict[str, set[int]] = {}
        for line in await redis.lrange(f"{prefix}:calls", 0, -1):
            pid, event_id = line.decode().split(" ", 1)
            calls[event_id] += 1
            callers.setdefault(event_id, set()).add(int(pid))
        assert set(calls) == delivered | {POISON}
        duplicates = {e: n for e, n in calls.items() if n > 1 and e != POISON}
        assert set(duplicates) <= set(held), duplicates
        assert all(n <= 1 + len(killed_pids) for n in duplicates.values()), duplicates
        assert all(callers[e] & set(killed_pids) for e in duplicates), duplicates
        repeats = [v.decode() for v in await redis.lrange(f"{prefix}:repeats", 0, -1)]
        assert set(repeats) <= set(duplicates)

        # The poison event: max_attempts invocations, then the dead-letter stream with why.
        assert calls[POISON] == MAX_ATTEMPTS
        [letter] = letters
        assert letter["event_id"] == POISON
        assert letter["reason"] == f"handler failed: RuntimeError('poison event {POISON}')"
        assert letter["attempts"] == str(MAX_ATTEMPTS)
        assert json.loads(letter["body"])["data"]["id"] == POISON

        # Final statuses recorded by the worker processes, seen by this process's tracker.
        finals = await asyncio.wait_for(asyncio.gather(*waits), 60)
        assert [m.id for m in finals] == watched
        message_ids = sorted(ids.values())
        # In slices: one tracker's client pool holds 100 connections (redis-py's default),
        # and each waiting final_status uses one for its GET.
        stored: list[Message] = []
        for start in range(0, len(message_ids), 50):
            chunk = message_ids[start : start + 50]
            stored += await asyncio.wait_for(
                asyncio.gather(*(tracker.final_status(m, timeout=30) for m in chunk)), 60
            )
        assert [m.id for m in stored] == message_ids
        statuses = {str(getattr(m.to[0].status, "value", m.to[0].status)) for m in stored}
        assert statuses == {"delivered"}
        # SIGTERM: each worker finishes what it holds and exits 0 (docs/deployment.md).
        for index, worker in enumerate(workers):
            stderr = await finish(worker, signal.SIGTERM)
            assert worker.returncode == 0, f"worker {index}: {worker.returncode}\n{stderr[-3000:]}"
        print(
            f"chaos summary: seed {seed}; shard {shard_victim} killed after "
            f"{shard_kill_rows} journaled rows: {len(unknown)} unknown, "
            f"{len(unknown_accepted)} of them already accepted; worker {worker_victim} killed "
            f"after {worker_kill_after:.1f} s holding {held}; duplicate invocations "
            f"{duplicates}, effect repeats {len(repeats)}; busiest second {busiest} requests "
            f"(limit {CLIENT_MPS}/s, burst {BURST}); sends done after {sends_took:.1f} s, "
            f"all after {time.monotonic() - started:.1f} s"
        )
    finally:
        for proc in shards.values():
            if proc.returncode is None:
                proc.kill()
                await asyncio.wait_for(proc.communicate(), 30)
        for task in waits:
            task.cancel()
        for worker in workers:
            if worker.poll() is None:
                await finish(worker, signal.SIGTERM)
        await tracker.aclose()
        for q in queues:
            await q.aclose()
