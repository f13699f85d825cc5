"""The benchmark cases. Each returns :class:`~benchmarks.harness.Sample` objects or plain dicts.

Every loop is bounded twice: by a count and by a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import compileall
import contextlib
import gc
import importlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

import aiohttp

from benchmarks.harness import REPO, Sample, ServerProcess, child_env, cpu_seconds, drive, timed
from benchmarks.payloads import FROM, TEXT, TO, webhook_body
from telnyx_msg import SendItem, SendMessageItem

__all__ = [
    "ASYNC_CLIENTS",
    "MockServer",
    "bulk_case",
    "OFFICIAL_PIN",
    "blocking_case",
    "generous_limits",
    "goodput_case",
    "import_case",
    "official_sdk",
    "paging_case",
    "rss_case",
    "send_case",
    "webhook_case",
]

POOL = 200  # connections for every client: at least the highest concurrency
OFFICIAL_PIN = "telnyx==4.189.0"
#: Names of the async send clients, in table order (official ones only with --with-official).
ASYNC_CLIENTS = ("raw", "send", "send_many", "official_httpx", "official_aiohttp")

Runner = Callable[[int, int, float], Awaitable[tuple[int, int]]]


def generous_limits() -> Any:
    """Limiter on, but never the bottleneck (the issue's "generous limits")."""
    from telnyx_msg import RateLimits

    fast = 1e6
    return RateLimits(
        account_mps=fast,
        per_kind_mps={
            "long_code": fast,
            "toll_free": fast,
            "short_code": fast,
            "alphanumeric": fast,
        },
    )


def official_sdk() -> Any | None:
    """The official ``telnyx`` module if importable (never installed by the benchmark)."""
    try:
        return importlib.import_module("telnyx")
    except ImportError:
        return None


# --- sends ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _raw(url: str, key: str) -> AsyncIterator[Runner]:
    connector = aiohttp.TCPConnector(limit=POOL)
    headers = {"Authorization": f"Bearer {key}"}
    payload = {"from": FROM, "to": TO, "text": TEXT}
    target = url + "/messages"
    async with aiohttp.ClientSession(connector=connector) as session:

        async def op() -> None:
            async with session.post(target, json=payload, headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                json.loads(body)

        yield lambda n, c, d: drive(op, n, c, d)


@contextlib.asynccontextmanager
async def _sdk(url: str, key: str, *, bulk: bool) -> AsyncIterator[Runner]:
    import telnyx_msg

    limits = generous_limits() if bulk else None
    async with telnyx_msg.AsyncClient(
        key, base_url=url, rate_limits=limits, pool_size=POOL
    ) as client:
        send = client.messages.send

        async def op() -> None:
            await send(from_=FROM, to=TO, text=TEXT)

        async def many(n: int, concurrency: int, deadline: float) -> tuple[int, int]:
            def requests() -> Iterator[SendItem]:
                for _ in range(n):
                    if time.perf_counter() > deadline:
                        return
                    yield {"from_": FROM, "to": TO, "text": TEXT}

            done = errors = 0
            async for outcome in client.messages.send_many(requests(), concurrency=concurrency):
                if outcome.status == "sent":
                    done += 1
                else:
                    errors += 1
            return done, errors

        yield many if bulk else (lambda n, c, d: drive(op, n, c, d))


@contextlib.asynccontextmanager
async def _official(url: str, key: str, *, transport: str) -> AsyncIterator[Runner]:
    telnyx = official_sdk()
    if telnyx is None:
        raise RuntimeError("the official telnyx package is not importable")
    httpx = importlib.import_module("httpx")
    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    factory = (
        telnyx.DefaultAioHttpClient if transport == "aiohttp" else (telnyx.DefaultAsyncHttpxClient)
    )
    client = telnyx.AsyncTelnyx(api_key=key, base_url=url, http_client=factory(limits=limits))
    try:

        async def op() -> None:
            await client.messages.send(from_=FROM, to=TO, text=TEXT)

        yield lambda n, c, d: drive(op, n, c, d)
    finally:
        await client.close()


def _client(name: str, url: str, key: str) -> contextlib.AbstractAsyncContextManager[Runner]:
    if name == "raw":
        return _raw(url, key)
    if name in ("send", "send_many"):
        return _sdk(url, key, bulk=name == "send_many")
    if name in ("official_httpx", "official_aiohttp"):
        return _official(url, key, transport=name.removeprefix("official_"))
    raise ValueError(f"unknown client {name!r}")


def send_case(
    server: ServerProcess, name: str, latency_ms: int, concurrency: int, n: int, time_limit: float
) -> Sample:
    """Client CPU and sends/s of ``n`` sends through client ``name`` (after a warm-up)."""

    async def main() -> Sample:
        async with _client(name, server.fast_url(latency_ms), server.api_key) as runner:
            warm = min(n, max(2 * concurrency, 20))
            await runner(warm, concurrency, time.perf_counter() + time_limit)
            return await timed(
                server, lambda: runner(n, concurrency, time.perf_counter() + time_limit)
            )

    return asyncio.run(main())


def blocking_case(
    server: ServerProcess, latency_ms: int, n: int, time_limit: float, threads: int = 1
) -> Sample:
    """The blocking facade ``telnyx_msg.Client``: ``n`` sends from ``threads`` threads sharing
    one client (sequential sends when 1)."""
    import telnyx_msg

    with telnyx_msg.Client(
        server.api_key, base_url=server.fast_url(latency_ms), rate_limits=None, pool_size=POOL
    ) as client:
        send = client.messages.send

        def run(count: int, deadline: float) -> tuple[int, int]:
            tickets = iter(range(count))
            lock = threading.Lock()
            tally = [0, 0]  # done, errors

            def worker() -> None:
                while True:
                    with lock:
                        if next(tickets, None) is None:
                            return
                    if time.perf_counter() > deadline:
                        return
                    try:
                        send(from_=FROM, to=TO, text=TEXT)
                        ok = True
                    except Exception:
                        ok = False
                    with lock:
                        tally[0 if ok else 1] += 1

            if threads == 1:
                worker()
            else:
                pool = [threading.Thread(target=worker) for _ in range(threads)]
                for thread in pool:
                    thread.start()
                for thread in pool:
                    thread.join()
            return tally[0], tally[1]

        run(min(n, 20), time.perf_counter() + time_limit)
        gc.collect()
        server_before = server.cpu()
        cpu0 = cpu_seconds()
        t0 = time.perf_counter()
        done, errors = run(n, t0 + time_limit)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds() - cpu0
        return Sample(done, wall, cpu, errors, server.cpu() - server_before)


# --- paging ---------------------------------------------------------------------------------------


def paging_case(server: ServerProcess, name: str, page_size: int) -> Sample:
    """Every opt-out record, page by page: raw aiohttp + ``json.loads`` or typed models."""
    url = server.fast_url(0)
    key = server.api_key

    async def raw() -> tuple[int, int]:
        count = 0
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession() as session:
            number = 1
            for _ in range(100_000):  # bounded: stops on the last page long before
                params = {"page[number]": str(number), "page[size]": str(page_size)}
                async with session.get(
                    url + "/messaging_optouts", params=params, headers=headers
                ) as resp:
                    doc = json.loads(await resp.read())
                for _record in doc["data"]:
                    count += 1
                meta = doc["meta"]
                if not doc["data"] or meta["page_number"] >= meta["total_pages"]:
                    break
                number += 1
        return count, 0

    async def sdk() -> tuple[int, int]:
        import telnyx_msg

        count = 0
        async with telnyx_msg.AsyncClient(key, base_url=url, rate_limits=None) as client:
            async for _record in client.messaging_optouts.list(page_size=page_size):
                count += 1
        return count, 0

    async def main() -> Sample:
        body = raw if name == "raw" else sdk
        return await timed(server, body)

    return asyncio.run(main())


# --- webhooks -------------------------------------------------------------------------------------


def webhook_case(name: str, n: int, time_limit: float) -> Sample:
    """Verify + parse one signed ~1.2 KB ``message.finalized`` delivery ``n`` times."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = webhook_body()
    stamp = str(int(time.time()))
    signature = base64.b64encode(private.sign(stamp.encode() + b"|" + body)).decode()
    headers = {"telnyx-signature-ed25519": signature, "telnyx-timestamp": stamp}

    once: Callable[[], object]
    if name == "raw":
        key = Ed25519PublicKey.from_public_bytes(public_raw)

        def raw_once() -> object:
            key.verify(
                base64.b64decode(headers["telnyx-signature-ed25519"]),
                headers["telnyx-timestamp"].encode() + b"|" + body,
            )
            return json.loads(body)

        once = raw_once
    else:
        import telnyx_msg

        verifier = telnyx_msg.WebhookVerifier(base64.b64encode(public_raw).decode())
        event = verifier.unwrap(body, headers)
        if event.event_type != "message.finalized" or not isinstance(
            event.payload, telnyx_msg.Message
        ):
            raise RuntimeError(f"unexpected event: {event!r}")

        def sdk_once() -> object:
            return verifier.unwrap(body, headers)

        once = sdk_once
    for _ in range(min(n, 50)):
        once()
    gc.collect()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    done = 0
    for _ in range(n):
        once()
        done += 1
        if time.perf_counter() > deadline:
            break
    return Sample(
        done, time.perf_counter() - t0, cpu_seconds() - cpu0, extra={"body_bytes": len(body)}
    )


# --- subprocess cases -----------------------------------------------------------------------------


# What a user pays: the package loads the client (and aiohttp) on first use of AsyncClient, so
# "telnyx_msg" is measured as the import a sending service does.
IMPORT_CODE = {
    "(none)": "pass",
    "telnyx_msg": "from telnyx_msg import AsyncClient",
    "telnyx_msg.webhooks": "import telnyx_msg.webhooks",
}


def import_case(modules: list[str], runs: int) -> dict[str, float]:
    """Best wall seconds of ``python -c "import M"`` per module (fresh interpreters).

    The package is byte-compiled first, as ``pip install`` does: the children import it from
    the source tree, and with ``PYTHONDONTWRITEBYTECODE`` set (or a read-only tree) every run
    would otherwise compile our modules from source while aiohttp loads its cached bytecode.
    """
    compileall.compile_dir(str(REPO / "telnyx_msg"), quiet=1)
    env = child_env()
    best = {m: float("inf") for m in modules}
    for round_ in range(runs + 1):  # round 0 only warms the OS file cache
        for module in modules:
            code = IMPORT_CODE.get(module, f"import {module}")
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code],
                check=True,
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
            )
            if round_:
                best[module] = min(best[module], time.perf_counter() - t0)
    return best


def rss_case(
    server: ServerProcess, mode: str, n: int, concurrency: int, time_limit: float
) -> dict[str, Any]:
    """Run ``benchmarks.child`` in a fresh interpreter; return its JSON report."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.child",
        mode,
        "--url",
        server.fast_url(0),
        "--key",
        server.api_key,
        "-n",
        str(n),
        "--concurrency",
        str(concurrency),
        "--time-limit",
        str(time_limit),
    ]
    proc = subprocess.run(
        cmd,
        check=True,
        env=child_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=time_limit + 120,
    )
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


# --- rate-limited goodput -------------------------------------------------------------------------


def goodput_case(
    server: ServerProcess,
    name: str,
    fake_index: int,
    limit: int,
    duration: float,
    concurrency: int = 50,
) -> dict[str, Any]:
    """Sends accepted per second within ``duration`` against a fake limiting at ``limit``/s.

    ``send_many`` uses ``RateLimits(account_mps=limit)`` (the account's limit, as documented;
    ``send_many_burst1`` adds ``burst=1``, a diagnostic); ``raw`` has no limiter and resends a
    429 at once; ``official_httpx`` relies on its own retries.
    """
    url = server.fakes[fake_index]
    key = server.api_key
    cap = int(limit * duration * 1.5) + concurrency

    async def sdk_run(deadline: float, burst: float | None = None) -> tuple[int, int]:
        import telnyx_msg

        limits = telnyx_msg.RateLimits(account_mps=float(limit), burst=burst)
        in_window = failed = 0
        async with telnyx_msg.AsyncClient(
            key, base_url=url, rate_limits=limits, pool_size=concurrency
        ) as client:

            def requests() -> Iterator[SendItem]:
                for _ in range(cap):
                    if time.perf_counter() > deadline:
                        return
                    yield {"from_": FROM, "to": TO, "text": TEXT}

            async for outcome in client.messages.send_many(requests(), concurrency=concurrency):
                if outcome.status != "sent":
                    failed += 1
                elif time.perf_counter() <= deadline:
                    in_window += 1
        return in_window, failed

    async def workers(op: Callable[[], Awaitable[bool]], deadline: float) -> tuple[int, int]:
        in_window = failed = 0
        issued = 0

        async def worker() -> None:
            nonlocal in_window, failed, issued
            while time.perf_counter() <= deadline and issued < cap:
                issued += 1
                ok = await op()
                if not ok:
                    failed += 1
                elif time.perf_counter() <= deadline:
                    in_window += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return in_window, failed

    async def raw_run(deadline: float) -> tuple[int, int]:
        headers = {"Authorization": f"Bearer {key}"}
        payload = {"from": FROM, "to": TO, "text": TEXT}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def op() -> bool:
                for _ in range(1_000):  # resend a 429 at once, as a loop without a limiter does
                    async with session.post(
                        url + "/messages", json=payload, headers=headers
                    ) as resp:
                        await resp.read()
                    if resp.status != 429 or time.perf_counter() > deadline:
                        return resp.status == 200
                return False

            return await workers(op, deadline)

    async def official_run(deadline: float) -> tuple[int, int]:
        telnyx = official_sdk()
        assert telnyx is not None
        client = telnyx.AsyncTelnyx(api_key=key, base_url=url)
        try:

            async def op() -> bool:
                try:
                    await client.messages.send(from_=FROM, to=TO, text=TEXT)
                except Exception:
                    return False
                return True

            return await workers(op, deadline)
        finally:
            await client.close()

    runs: dict[str, Callable[[float], Coroutine[Any, Any, tuple[int, int]]]] = {
        "send_many": sdk_run,
        "send_many_burst1": lambda d: sdk_run(d, 1.0),
        "raw": raw_run,
        "official_httpx": official_run,
    }
    before = server.stats()["fakes"][fake_index]
    t0 = time.perf_counter()
    in_window, failed = asyncio.run(runs[name](t0 + duration))
    elapsed = time.perf_counter() - t0
    after = server.stats()["fakes"][fake_index]
    posts = after["posts"] - before["posts"]
    limited = after["rate_limited"] - before["rate_limited"]
    goodput = in_window / duration
    return {
        "limit_rps": limit,
        "duration_s": duration,
        "elapsed_s": elapsed,
        "accepted_in_window": in_window,
        "goodput_rps": goodput,
        "goodput_ratio": goodput / limit,
        "requests": posts,
        "accepted_total": after["sent"] - before["sent"],
        "rate_limited": limited,
        "r429_per_100": 100.0 * limited / posts if posts else float("nan"),
        "failed": failed,
    }


# --- the bulk command vs plain send_many ----------------------------------------------------------


class MockServer:
    """``telnyx-msg mock-server`` (FakeTelnyx) in a child process, with per-request latency."""

    def __init__(self, latency: float) -> None:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "telnyx_msg",
                "mock-server",
                "--port",
                "0",
                "--quiet",
                "--latency",
                str(latency),
            ],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=child_env(),
            cwd=REPO,
        )
        settings: dict[str, str] = {}
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 60
        while len(settings) < 3 and time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            if "=" in line:
                name, value = line.strip().removeprefix("export ").split("=", 1)
                settings[name] = value
        if len(settings) < 3:
            self.close()
            raise RuntimeError("telnyx-msg mock-server did not start")
        self.base_url = settings["TELNYX_BASE_URL"]
        self.api_key = settings["TELNYX_API_KEY"]

    def close(self) -> None:
        """Stop the server (SIGTERM, then kill)."""
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def bulk_case(
    server: MockServer, name: str, rows: int, concurrency: int, workdir: str, first_number: int
) -> Sample:
    """Rows/s of ``telnyx-msg bulk`` (journal, results, keys) or of plain ``send_many``."""
    import os
    from pathlib import Path

    import telnyx_msg
    from telnyx_msg.cli import build_parser
    from telnyx_msg.cli._bulk import run_bulk

    numbers = [f"+1312{first_number + i:07d}" for i in range(rows)]
    source = Path(workdir) / f"in-{first_number}.csv"
    source.write_text("from,to,text\n" + "".join(f"{FROM},{n},{TEXT}\n" for n in numbers))
    fast = 1e6

    sink = open(os.devnull, "w")  # noqa: SIM115  # closed below, after the run

    async def bulk() -> int:
        # The command's own parser: its defaults follow every option the command gains.
        args = build_parser().parse_args(
            [
                *("bulk", str(source), "--out", str(Path(workdir) / f"out-{first_number}.csv")),
                *("--account-mps", str(fast), "--concurrency", str(concurrency)),
                *("--api-key", server.api_key, "--base-url", server.base_url, "--no-progress"),
            ]
        )
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            code = await run_bulk(args)
        return rows if code == 0 else 0

    async def many() -> int:
        sent = 0
        async with telnyx_msg.AsyncClient(
            server.api_key,
            base_url=server.base_url,
            rate_limits=telnyx_msg.RateLimits(account_mps=fast),
            pool_size=POOL,
        ) as client:
            requests = (SendMessageItem(from_=FROM, to=n, text=TEXT) for n in numbers)
            async for outcome in client.messages.send_many(requests, concurrency=concurrency):
                sent += outcome.status == "sent"
        return sent

    started, cpu = time.perf_counter(), cpu_seconds()
    try:
        done = asyncio.run(bulk() if name == "bulk" else many())
    finally:
        sink.close()
    return Sample(done, time.perf_counter() - started, cpu_seconds() - cpu, errors=rows - done)
