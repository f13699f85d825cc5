"""Webhook intake with and without RedisWebhookQueue, and worker throughput (informational).

``python -m benchmarks.webhook_queue [-n 2000] [--redis URL] [--json PATH]``

One process, no HTTP: the ASGI receiver is called directly with real Ed25519-signed bodies
(~0.5 KB), so the numbers are the receiver's own cost per delivery:

- ``verify``: ``WebhookVerifier.unwrap`` alone (Ed25519 verification + parsing);
- ``inline``: the receiver without a queue, running a no-op handler before it answers;
- ``enqueue``: ``queue.enqueue`` alone (one ``XADD`` round trip to Redis on 127.0.0.1): the
  queue's cost per event, which should stay below ``verify``'s;
- ``xadd``: the same ``XADD`` through a plain ``redis.asyncio`` client (its default pool, no
  timeout): the floor ``enqueue`` is measured against;
- ``queued``: the receiver with a queue (verify + enqueue, no handler);
- ``burst``: the same, ``BURST`` deliveries at a time (``asyncio.gather``), as Telnyx sends them
  during a campaign: appends waiting together share a pipelined round trip;
- ``worker``: one ``queue.run`` worker with a no-op handler draining the stream
  (``XREADGROUP``, a pipeline of ``EXISTS`` + ``SET NX``, one ``MULTI``: three round trips).

Each case runs ``--reps`` times, interleaved, and the run with the least CPU is reported (the
machine's other load only ever adds). Without ``--redis`` a throwaway ``redis-server`` (no
persistence) is started on a free port. Nothing here asserts: it is a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from telnyx_msg import RedisWebhookQueue
from telnyx_msg.models import WebhookEvent
from telnyx_msg.receivers import AsgiWebhookApp, asgi_app
from telnyx_msg.webhooks import WebhookVerifier

NOW = 1_700_000_000
BURST = 50  # deliveries in flight at once in the burst case


def _body(i: int) -> bytes:
    return json.dumps(
        {
            "data": {
                "record_type": "event",
                "id": f"evt-{uuid.uuid4().hex}-{i}",
                "event_type": "message.finalized",
                "occurred_at": "2024-01-01T00:00:00Z",
                "payload": {
                    "id": f"msg-{i}",
                    "direction": "outbound",
                    "type": "SMS",
                    "text": "Hello from the benchmark",
                    "from": {"phone_number": "+18005550101"},
                    "to": [{"phone_number": "+15550001111", "status": "delivered"}],
                },
            },
            "meta": {"attempt": 1, "delivered_to": "https://example.com/hooks"},
        }
    ).encode()


def _deliveries(n: int) -> tuple[str, list[tuple[bytes, list[tuple[bytes, bytes]]]]]:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    out = []
    for i in range(n):
        body = _body(i)
        signature = base64.b64encode(key.sign(f"{NOW}|".encode() + body))
        out.append(
            (
                body,
                [
                    (b"telnyx-signature-ed25519", signature),
                    (b"telnyx-timestamp", str(NOW).encode()),
                ],
            )
        )
    return public, out


async def _call(app: AsgiWebhookApp, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # pragma: no cover - the app reads the body once
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app({"type": "http", "method": "POST", "headers": headers}, receive, send)
    return status


def _cpu() -> float:
    usage = os.times()
    return usage.user + usage.system


async def _measure(label: str, n: int, step: Callable[[int], Any]) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), _cpu()
    for i in range(n):
        result = step(i)
        if asyncio.iscoroutine(result):
            result = await result
        if result not in (None, 200):
            raise RuntimeError(f"{label}: delivery {i} answered {result}")
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return {
        "case": label,
        "n": n,
        "per_s": n / wall,
        "us_per_event": 1e6 * wall / n,
        "cpu_us_per_event": 1e6 * cpu / n,
    }


async def run(n: int, url: str, reps: int = 3) -> list[dict[str, Any]]:
    """Every case ``reps`` times, interleaved; one row per case, its best (least CPU) run."""
    public, deliveries = _deliveries(n)
    verifier = WebhookVerifier(public, clock=lambda: NOW)
    plain = [(b, {k.decode(): v.decode() for k, v in h}) for b, h in deliveries]
    events = [verifier.unwrap(*d) for d in plain]

    async def noop(event: WebhookEvent) -> None:
        return None

    best: dict[str, dict[str, Any]] = {}

    def keep(row: dict[str, Any]) -> None:
        known = best.get(row["case"])
        if known is None or row["cpu_us_per_event"] < known["cpu_us_per_event"]:
            best[row["case"]] = row

    for _ in range(reps):
        keep(await _measure("verify", n, lambda i: verifier.unwrap(*plain[i]) and None))
        inline = asgi_app(verifier, {"message.finalized": noop})
        keep(await _measure("inline", n, _caller(inline, deliveries)))
        await inline.aclose()
        async with RedisWebhookQueue(url, stream=f"bench:{uuid.uuid4().hex}") as queue:
            keep(
                await _measure("enqueue", n, lambda i: _none(queue.enqueue(plain[i][0], events[i])))
            )
            await queue._redis.delete(queue.stream)
        keep(await _plain_xadd(url, n, [(body, events[i]) for i, (body, _) in enumerate(plain)]))
        async with RedisWebhookQueue(url, stream=f"bench:{uuid.uuid4().hex}") as queue:
            keep(
                await _measure(
                    "queued", n, _caller(asgi_app(verifier, {}, queue=queue), deliveries)
                )
            )
            keep(await _drain(queue, n))
            await queue._redis.delete(queue.stream)
        async with RedisWebhookQueue(url, stream=f"bench:{uuid.uuid4().hex}") as queue:
            app = asgi_app(verifier, {}, queue=queue)
            keep(await _measure_bursts("burst", n, _caller(app, deliveries)))
            await queue._redis.delete(queue.stream)
    cases = ("verify", "inline", "enqueue", "xadd", "queued", "burst", "worker")
    return [best[c] for c in cases]


async def _measure_bursts(
    label: str, n: int, call: Callable[[int], Awaitable[int]]
) -> dict[str, Any]:
    async def burst(start: int) -> None:
        statuses = await asyncio.gather(*(call(i) for i in range(start, min(start + BURST, n))))
        if set(statuses) != {200}:
            raise RuntimeError(f"{label}: answers {sorted(set(statuses))}")

    row = await _measure(label, (n + BURST - 1) // BURST, lambda k: burst(k * BURST))
    bursts = row["n"]
    row.update(
        n=n,
        per_s=row["per_s"] * n / bursts,
        us_per_event=row["us_per_event"] * bursts / n,
        cpu_us_per_event=row["cpu_us_per_event"] * bursts / n,
    )
    return row


async def _plain_xadd(url: str, n: int, items: list[tuple[bytes, WebhookEvent]]) -> dict[str, Any]:
    """The fields ``enqueue`` writes, through redis-py alone."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    stream = f"bench:{uuid.uuid4().hex}"

    async def add(i: int) -> None:
        body, event = items[i]
        fields = {
            "body": body,
            "event_id": event.id or "",
            "event_type": str(event.event_type or ""),
            "received_at": repr(time.time()),
        }
        await client.xadd(stream, fields)  # type: ignore[arg-type]

    try:
        return await _measure("xadd", n, add)
    finally:
        await client.delete(stream)
        await client.aclose()


def _caller(
    app: AsgiWebhookApp, deliveries: list[tuple[bytes, list[tuple[bytes, bytes]]]]
) -> Callable[[int], Awaitable[int]]:
    return lambda i: _call(app, *deliveries[i])


async def _none(call: Awaitable[object]) -> None:
    await call


async def _drain(queue: RedisWebhookQueue, n: int) -> dict[str, Any]:
    """One worker with a no-op handler handles the ``n`` entries in the stream."""
    handled = 0

    async def count(event: WebhookEvent) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            queue.stop()

    wall, cpu = time.perf_counter(), _cpu()
    await asyncio.wait_for(queue.run({}, default=count), 300)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return {
        "case": "worker",
        "n": n,
        "per_s": n / wall,
        "us_per_event": 1e6 * wall / n,
        "cpu_us_per_event": 1e6 * cpu / n,
    }


@contextmanager
def _redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: install it or pass --redis URL")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def render(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows, plus the queue's cost next to verification's."""
    lines = ["| case | events/s | µs/event (wall) | CPU µs/event |", "|---|---:|---:|---:|"]
    lines += [
        f"| {r['case']} | {r['per_s']:,.0f} | {r['us_per_event']:.0f} | "
        f"{r['cpu_us_per_event']:.0f} |"
        for r in rows
    ]
    by = {r["case"]: r for r in rows}
    lines.append(
        f"\nqueue CPU cost per event: {by['enqueue']['cpu_us_per_event']:.0f} µs alone "
        f"(enqueue; redis-py's own XADD: {by['xadd']['cpu_us_per_event']:.0f} µs), "
        f"{by['burst']['cpu_us_per_event'] - by['inline']['cpu_us_per_event']:.0f} µs in "
        f"bursts of {BURST} (burst - inline); Ed25519 verify + parse: "
        f"{by['verify']['cpu_us_per_event']:.0f} µs"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the cases, print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=2000, help="deliveries per case")
    parser.add_argument("--redis", help="redis:// URL (default: start a throwaway server)")
    parser.add_argument("--reps", type=int, default=3, help="runs per case (best is kept)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.redis:
        rows = asyncio.run(run(args.n, args.redis, args.reps))
    else:
        with _redis_server() as url:
            rows = asyncio.run(run(args.n, url, args.reps))
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
