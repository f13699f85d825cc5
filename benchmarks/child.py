"""Fresh-interpreter workloads for peak RSS (VmHWM / ``ru_maxrss``), run by ``benchmarks.cases``.

``python -m benchmarks.child MODE --url URL --key KEY -n N`` prints one JSON line. Modes:
``idle`` (telnyx_msg client, one send), ``send_many`` (``n`` lazy requests through
``send_many``), ``raw_idle`` (aiohttp session, one post).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from benchmarks.payloads import FROM, TEXT, TO
from telnyx_msg import SendItem


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB.

    ``VmHWM`` from ``/proc/self/status`` where available: Linux carries ``ru_maxrss`` over
    ``exec`` from the (v)forking parent, so a small child would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _telnyx_msg(args: argparse.Namespace) -> dict[str, Any]:
    import telnyx_msg
    from benchmarks.cases import generous_limits

    async with telnyx_msg.AsyncClient(
        args.key, base_url=args.url, rate_limits=generous_limits(), pool_size=200
    ) as client:
        await client.messages.send(from_=FROM, to=TO, text=TEXT)
        if args.mode == "idle":
            return {"sent": 1}
        t0 = time.perf_counter()
        deadline = t0 + args.time_limit
        cpu0 = _cpu()

        def requests() -> Iterator[SendItem]:
            for _ in range(args.n):
                if time.perf_counter() > deadline:
                    return
                yield {"from_": FROM, "to": TO, "text": TEXT}

        sent = other = 0
        async for outcome in client.messages.send_many(requests(), concurrency=args.concurrency):
            if outcome.status == "sent":
                sent += 1
            else:
                other += 1
        return {
            "sent": sent,
            "errors": other,
            "wall": time.perf_counter() - t0,
            "cpu": _cpu() - cpu0,
        }


async def _raw(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            args.url + "/messages",
            json={"from": FROM, "to": TO, "text": TEXT},
            headers={"Authorization": f"Bearer {args.key}"},
        ) as resp,
    ):
        json.loads(await resp.read())
    return {"sent": 1}


def main(argv: Sequence[str] | None = None) -> None:
    """Run one workload and print its report (peak RSS as ``maxrss_kb``) as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["idle", "send_many", "raw_idle"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--time-limit", type=float, default=120.0)
    args = parser.parse_args(argv)
    work = _raw(args) if args.mode == "raw_idle" else _telnyx_msg(args)
    report = asyncio.run(work)
    report["maxrss_kb"] = peak_rss_kb()
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
