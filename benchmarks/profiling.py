"""Profile one telnyx_msg workload against the benchmark server (cProfile, or plain for py-spy).

    python -m benchmarks.profiling send --concurrency 50 -n 20000
    python -m benchmarks.profiling paging --top 25
    py-spy record -o send.svg -- python -m benchmarks.profiling send --plain

Prints the top functions by own time with their share of the profiled time, and the share of
each package (telnyx_msg, aiohttp, asyncio, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cases
from benchmarks.harness import ServerProcess, drive, pick_cores
from benchmarks.payloads import FROM, TEXT, TO
from telnyx_msg import SendMessageItem

WORKLOADS = ("send", "send_many", "paging", "webhook", "raw")


def _workload(name: str, server: ServerProcess, n: int, concurrency: int) -> Callable[[], None]:
    import telnyx_msg

    url = server.fast_url(0)
    key = server.api_key
    if name == "webhook":
        return lambda: print(cases.webhook_case("telnyx_msg", n, 600.0))
    if name == "raw":
        return lambda: print(cases.send_case(server, "raw", 0, concurrency, n, 600.0))

    async def main() -> None:
        limits = cases.generous_limits() if name == "send_many" else None
        async with telnyx_msg.AsyncClient(
            key, base_url=url, rate_limits=limits, pool_size=cases.POOL
        ) as client:
            if name == "paging":
                for _ in range(max(1, n // 10_000)):
                    async for _record in client.messaging_optouts.list(page_size=250):
                        pass
                return
            if name == "send":

                async def op() -> None:
                    await client.messages.send(from_=FROM, to=TO, text=TEXT)

                await drive(op, n, concurrency, time.perf_counter() + 600)
                return
            requests = (SendMessageItem(from_=FROM, to=TO, text=TEXT) for _ in range(n))
            async for _outcome in client.messages.send_many(requests, concurrency=concurrency):
                pass

    return lambda: asyncio.run(main())


def _package(filename: str) -> str:
    if filename.startswith(("~", "<")):
        return "builtins/C"
    parts = Path(filename).parts
    for marker in (
        "telnyx_msg",
        "aiohttp",
        "asyncio",
        "cattrs",
        "attr",
        "attrs",
        "yarl",
        "multidict",
        "json",
        "benchmarks",
        "anyio",
        "cryptography",
    ):
        if marker in parts:
            return marker
    return parts[-2] if len(parts) > 1 else filename


def report(profile: cProfile.Profile, top: int) -> None:
    """Print the top own-time functions and the per-package split."""
    stats = pstats.Stats(profile)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)
    print(f"{'own %':>6} {'cum %':>6} {'calls':>9}  function")
    for (filename, line, func), (_cc, calls, own, cum, _callers) in rows[:top]:
        where = filename if filename.startswith("~") else f"{_short(filename)}:{line}"
        print(f"{100 * own / total:6.1f} {100 * cum / total:6.1f} {calls:9d}  {func} ({where})")
    shares: dict[str, float] = defaultdict(float)
    for (filename, _line, _func), value in entries.items():
        shares[_package(filename)] += value[2]
    print(
        "\nown time by package: "
        + ", ".join(
            f"{k} {100 * v / total:.1f} %" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])
        )
    )
    telnyx = sorted(
        ((k, v) for k, v in entries.items() if "telnyx_msg" in k[0]),
        key=lambda kv: kv[1][3],
        reverse=True,
    )
    print("\ntelnyx_msg functions by cumulative time:")
    for (filename, line, func), (_cc, calls, own, cum, _callers) in telnyx[:top]:
        print(
            f"{100 * own / total:6.1f} {100 * cum / total:6.1f} {calls:9d}  "
            f"{func} ({_short(filename)}:{line})"
        )


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for i, part in enumerate(parts):
        if part in ("telnyx_msg", "aiohttp", "asyncio", "cattrs", "benchmarks", "attr"):
            return "/".join(parts[i:])
    return "/".join(parts[-2:])


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("-n", type=int, default=10_000, help="operations (paging: records)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--plain", action="store_true", help="no cProfile (for py-spy)")
    args = parser.parse_args(argv)
    server_core, client_core = pick_cores()
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})
    with ServerProcess(cpu=server_core, records=10_000, rate_limit=200) as server:
        work = _workload(args.workload, server, args.n, args.concurrency)
        if args.plain:
            work()
            return
        profile = cProfile.Profile()
        profile.runcall(work)
    report(profile, args.top)


if __name__ == "__main__":
    main()
