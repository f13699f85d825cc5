"""Measurement plumbing: the server process, CPU pinning, bounded drivers and samples."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "REPO",
    "Sample",
    "ServerProcess",
    "child_env",
    "cpu_seconds",
    "drive",
    "pick_cores",
    "timed",
]

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds() -> float:
    """User + system CPU seconds of this process, all threads (``getrusage``)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pick_cores() -> tuple[int | None, int | None]:
    """``(server_core, client_core)``: two distinct cores, or ``(None, None)`` if impossible."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return cores[0], cores[-1]


def child_env() -> dict[str, str]:
    """The environment for child interpreters: this one, with the repo on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@dataclass
class Sample:
    """One measured run: ``n`` operations in ``wall`` s using ``cpu`` client CPU seconds."""

    n: int
    wall: float
    cpu: float
    errors: int = 0
    server_cpu: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_ms_per_1000(self) -> float:
        """Client CPU milliseconds per 1,000 operations."""
        return self.cpu / self.n * 1e6 if self.n else float("nan")

    @property
    def rate(self) -> float:
        """Operations per second (wall clock)."""
        return self.n / self.wall if self.wall > 0 else float("nan")

    @property
    def server_util(self) -> float | None:
        """Server CPU seconds per wall second (1.0 = its whole core)."""
        if self.server_cpu is None or self.wall <= 0:
            return None
        return self.server_cpu / self.wall


class ServerProcess:
    """``python -m benchmarks.server`` in a child process, pinned to its own core."""

    def __init__(
        self,
        *,
        cpu: int | None,
        records: int,
        rate_limit: int,
        fakes: int = 4,
        latencies_ms: Sequence[int] = (0, 20),
    ) -> None:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.server",
            "--records",
            str(records),
            "--rate-limit",
            str(rate_limit),
            "--fakes",
            str(fakes),
            "--latency-ms",
            *map(str, latencies_ms),
        ]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env(), cwd=REPO
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], 60.0)
        line = self._proc.stdout.readline() if ready else b""
        if not line:
            self.close()
            raise RuntimeError("the benchmark server did not start (see its stderr above)")
        self.info: dict[str, Any] = json.loads(line)
        self.pid: int = self.info["pid"]
        self.api_key: str = self.info["api_key"]
        self.fakes: list[str] = self.info["fakes"]

    def fast_url(self, latency_ms: int) -> str:
        """The base URL (``.../v2``) of the fast API with that latency."""
        url: str = self.info["fast"][str(latency_ms)]
        return url

    def stats(self) -> dict[str, Any]:
        """The server's CPU seconds and counters (a tiny local HTTP call)."""
        with urllib.request.urlopen(self.info["control"] + "/stats", timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def cpu(self) -> float:
        """The server process's CPU seconds so far."""
        return float(self.stats()["cpu"])

    def close(self) -> None:
        """Close its stdin (it exits), then wait; kill it if it lingers."""
        proc = self._proc
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def drive(
    op: Callable[[], Awaitable[object]], n: int, concurrency: int, deadline: float
) -> tuple[int, int]:
    """Run ``op`` ``n`` times, at most ``concurrency`` at once; none starts after ``deadline``.

    The usual semaphore pattern, with tasks created as permits free up: at most
    ``concurrency`` tasks exist at a time (like ``send_many``), so thousands of parked tasks
    do not inflate the garbage collector's work for whichever client allocates more.
    Returns ``(completed, errors)``.
    """
    sem = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    done = 0
    errors = 0

    async def one() -> None:
        nonlocal done, errors
        try:
            await op()
        except Exception:
            errors += 1
        else:
            done += 1
        finally:
            sem.release()

    for _ in range(n):
        await sem.acquire()
        if time.perf_counter() > deadline:
            sem.release()
            break
        task = asyncio.create_task(one())
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)
    return done, errors


async def timed(
    server: ServerProcess | None, body: Callable[[], Awaitable[tuple[int, int]]]
) -> Sample:
    """Run ``body`` (returning ``(done, errors)``) between client and server CPU readings."""
    gc.collect()  # start every measurement from the same collector state
    server_before = server.cpu() if server is not None else None
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    done, errors = await body()
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    server_cpu = None
    if server is not None and server_before is not None:
        server_cpu = server.cpu() - server_before
    return Sample(done, wall, cpu, errors, server_cpu)
