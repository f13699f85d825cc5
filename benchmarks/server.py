"""The benchmark server process: fast canned Telnyx answers, rate-limited fakes, CPU stats.

Run by ``benchmarks.run`` as ``python -m benchmarks.server``; it prints one JSON line with its
URLs, then serves on 127.0.0.1 until its standard input closes. It serves:

- one *fast* API per ``--latency-ms`` value: aiohttp's low-level server answering
  ``POST /v2/messages*`` with a real ~1 KB send response (fresh id each time) and
  ``GET /v2/messaging_optouts`` with precomputed pages, after the given latency;
- ``--fakes`` ``FakeTelnyx`` instances limiting the API at ``--rate-limit`` requests/s (10011);
- a control API: ``GET /stats`` gives this process's CPU seconds and the request counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import sys
import threading
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from benchmarks.payloads import optout_pages, send_body_parts

__all__ = ["API_KEY", "FastApi", "main"]

API_KEY = "bench-key"


def process_cpu() -> float:
    """User + system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class FastApi:
    """The low-level aiohttp handler of one fast API (fixed latency, canned bodies)."""

    def __init__(self, latency: float, records: int, page_size: int) -> None:
        self.latency = latency
        self.requests = 0
        self._head, self._tail = send_body_parts()
        self._pages = optout_pages(records, page_size)
        self._page_size = page_size
        self._ids = itertools.count()
        self._empty = json.dumps(
            {
                "data": [],
                "meta": {
                    "page_number": len(self._pages) + 1,
                    "page_size": page_size,
                    "total_pages": len(self._pages),
                    "total_results": records,
                },
            }
        ).encode()

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if request.method == "POST" and request.path.startswith("/v2/messages"):
            await request.read()
            ident = f"{next(self._ids):08x}-5f0e-4c3a-9d2b-7a1e3c5b9d0f"
            return web.Response(
                body=self._head + ident.encode() + self._tail,
                headers={"Content-Type": "application/json", "X-Request-ID": ident},
            )
        if request.method == "GET" and request.path == "/v2/messaging_optouts":
            query = request.query
            size = int(query.get("page[size]", "20"))
            if size != self._page_size:
                return _error(400, f"this server only serves page[size]={self._page_size}")
            body = self._pages.get(int(query.get("page[number]", "1")), self._empty)
            return web.Response(body=body, headers={"Content-Type": "application/json"})
        return _error(404, f"no route for {request.method} {request.path}")


def _error(status: int, detail: str) -> web.Response:
    body = {"errors": [{"code": "10005", "title": "Resource not found", "detail": detail}]}
    return web.json_response(body, status=status)


async def _serve(args: argparse.Namespace) -> None:
    from telnyx_msg.testing import ApiRateLimit, FakeConfig, FakeTelnyx

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_eof() -> None:
        with contextlib.suppress(Exception):
            sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)

    servers: list[asyncio.Server] = []
    fast: dict[str, FastApi] = {}
    urls: dict[str, str] = {}

    async def listen(handler: Any) -> str:
        server = await loop.create_server(web.Server(handler, access_log=None), "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    for ms in args.latency_ms:
        api = FastApi(ms / 1000.0, args.records, args.page_size)
        fast[str(ms)] = api
        urls[str(ms)] = await listen(api) + "/v2"

    config = FakeConfig(
        throughput=None, api_rate_limit=ApiRateLimit(limit=args.rate_limit, window=1.0)
    )
    fakes = [FakeTelnyx(api_key=API_KEY, config=config) for _ in range(args.fakes)]
    for fake in fakes:
        await fake.start()

    async def stats(request: web.BaseRequest) -> web.StreamResponse:
        return web.json_response(
            {
                "cpu": process_cpu(),
                "fast": {ms: api.requests for ms, api in fast.items()},
                "fakes": [
                    {
                        "posts": fake.stats.count("POST", "/messages"),
                        "sent": fake.stats.messages_sent,
                        "rate_limited": fake.stats.rate_limited,
                    }
                    for fake in fakes
                ],
            }
        )

    control = await listen(stats)
    info = {
        "pid": os.getpid(),
        "fast": urls,
        "fakes": [f.base_url for f in fakes],
        "control": control,
        "api_key": API_KEY,
        "cpu": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    print(json.dumps(info), flush=True)
    threading.Thread(target=wait_for_eof, daemon=True).start()
    try:
        await stop.wait()
    finally:
        for fake in fakes:
            await fake.close()
        for server in servers:
            server.close()
            await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, pin to ``--cpu`` and serve until stdin closes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 20])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=250)
    parser.add_argument("--fakes", type=int, default=3)
    parser.add_argument("--rate-limit", type=int, default=200)
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
