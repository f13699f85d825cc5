"""Run the telnyx_msg benchmark suite: ``python -m benchmarks.run [--quick] [--out PATH]``.

One run, one local server process (pinned to one core, the client to another): sends at
concurrency 1/50/200 with 0 and 20 ms of server latency, the blocking facade, paging, webhook
verification, cold import time, peak RSS and rate-limited goodput. Prints Markdown tables with
ratios to raw aiohttp and the issue-7 targets, and writes JSON (``bench-results.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cases
from benchmarks.harness import REPO, Sample, ServerProcess, pick_cores
from benchmarks.report import evaluate_targets, render

SECTIONS = ("sends", "blocking", "paging", "webhook", "import", "rss", "goodput", "bulk")
RATE_LIMIT = 200
OFFICIAL_REPS = 2  # the official SDK is slow: fewer repetitions keep the full run short
PAGE_SIZE = 250


@dataclass(frozen=True)
class Profile:
    """Counts for one run size. ``sends`` maps ``(latency_ms, concurrency)`` to a count."""

    name: str
    reps: int
    sends: dict[tuple[int, int], int]
    records: int
    paging_reps: int
    webhook_n: int
    import_runs: int
    rss_n: int
    goodput_s: float
    goodput_reps: int
    time_limit: float
    official_scale: float = 0.25
    bulk_rows: int = 2000


PROFILES = {
    "full": Profile(
        "full",
        reps=7,
        sends={
            (0, 1): 2000,
            (0, 50): 5000,
            (0, 200): 5000,
            (20, 1): 100,
            (20, 50): 3000,
            (20, 200): 4000,
        },
        records=10_000,
        paging_reps=7,
        webhook_n=5000,
        import_runs=7,
        rss_n=100_000,
        goodput_s=10.0,
        goodput_reps=3,
        time_limit=20.0,
    ),
    "quick": Profile(
        "quick",
        reps=2,
        sends={
            (0, 1): 300,
            (0, 50): 1000,
            (0, 200): 1000,
            (20, 1): 40,
            (20, 50): 600,
            (20, 200): 1000,
        },
        records=10_000,
        paging_reps=2,
        webhook_n=1000,
        import_runs=3,
        rss_n=5_000,
        goodput_s=3.0,
        goodput_reps=1,
        time_limit=10.0,
        bulk_rows=1000,
    ),
    "smoke": Profile(
        "smoke",
        reps=1,
        sends={(0, 1): 20, (0, 50): 60, (0, 200): 200, (20, 1): 5, (20, 50): 60, (20, 200): 200},
        records=1_000,
        paging_reps=1,
        webhook_n=50,
        import_runs=1,
        rss_n=200,
        goodput_s=1.0,
        goodput_reps=1,
        time_limit=5.0,
        bulk_rows=60,
    ),
}


def _log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def _median(values: list[float]) -> float | None:
    clean = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(clean) if clean else None


def _paired(
    samples: list[Sample], baseline: list[Sample], metric: Callable[[Sample], float]
) -> float | None:
    """Median over repetitions of ``metric(sample) / metric(baseline)`` of the same repetition.

    Each pair was measured back to back, so the ratio cancels most of the machine's drift.
    """
    return _median(
        [
            metric(a) / metric(b)
            for a, b in zip(samples, baseline, strict=False)
            if a.n and b.n and metric(b)
        ]
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the selected sections and return the JSON-ready results."""
    profile = PROFILES[args.profile]
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    started = time.perf_counter()
    server_core, client_core = pick_cores()
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})
    official = cases.official_sdk() if args.with_official else None
    if args.with_official and official is None:
        print(
            f"--with-official: `telnyx` is not importable; install it first with "
            f"`pip install '{cases.OFFICIAL_PIN}'` (skipped)",
            file=sys.stderr,
        )
    clients = ["raw", "send", "send_many"]
    if official is not None:
        clients += ["official_httpx", "official_aiohttp"]

    results: dict[str, Any] = {
        "schema": 1,
        "meta": {
            "profile": profile.name,
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "python": f"Python {platform.python_version()}",
            "platform": platform.platform(),
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "git_rev": _git("rev-parse", "--short", "HEAD"),
            "git_dirty": bool(_git("status", "--porcelain", "--", "telnyx_msg")),
            "versions": {
                d: _version(d)
                for d in (
                    "telnyx_msg",
                    "aiohttp",
                    "cattrs",
                    "attrs",
                    "cryptography",
                    "anyio",
                    "telnyx",
                    "httpx",
                )
            },
            "reps": profile.reps,
            "sections": sorted(only),
        },
        "server": {"core": server_core, "client_core": client_core},
        "sends": [],
        "blocking": [],
        "paging": None,
        "webhook": None,
        "import": None,
        "rss": None,
        "goodput": None,
        "bulk": None,
    }

    with ServerProcess(
        cpu=server_core,
        records=profile.records,
        rate_limit=RATE_LIMIT,
        fakes=profile.goodput_reps + 3,
    ) as server:
        results["server"]["pid"] = server.pid
        send_samples: dict[tuple[str, int, int], list[Sample]] = {}
        blocking_samples: dict[tuple[int, int], list[Sample]] = {}
        for rep in range(profile.reps if only & {"sends", "blocking"} else 0):
            order = clients if rep % 2 == 0 else clients[::-1]  # cancel out order effects
            for (latency, conc), n in profile.sends.items():
                # Without "sends", only the baselines of the blocking cases (1 and 50 threads).
                if "sends" not in only and (latency, conc) not in ((0, 1), (20, 1), (0, 50)):
                    continue
                for name in order:
                    if "sends" not in only and name not in ("send", "raw"):
                        continue
                    count = n
                    if name.startswith("official"):
                        if rep >= OFFICIAL_REPS:
                            continue
                        count = max(10, int(n * profile.official_scale))
                    sample = cases.send_case(server, name, latency, conc, count, profile.time_limit)
                    send_samples.setdefault((name, latency, conc), []).append(sample)
                    _log(
                        started,
                        f"rep {rep + 1} sends {latency} ms c={conc} {name}: "
                        f"{sample.cpu_ms_per_1000:.0f} ms/1k, {sample.rate:,.0f}/s"
                        + (f", {sample.errors} errors" if sample.errors else ""),
                    )
            if "blocking" in only:
                for latency, threads in ((0, 1), (20, 1), (0, 50)):
                    n = profile.sends[(latency, threads)]
                    sample = cases.blocking_case(server, latency, n, profile.time_limit, threads)
                    blocking_samples.setdefault((latency, threads), []).append(sample)
                    _log(
                        started,
                        f"rep {rep + 1} blocking {latency} ms, {threads} thread(s): "
                        f"{sample.cpu_ms_per_1000 / 1000:.3f} ms/call",
                    )

        rows = []
        for (name, latency, conc), samples in send_samples.items():
            raw = send_samples.get(("raw", latency, conc), [])
            rows.append(
                {
                    "client": name,
                    "latency_ms": latency,
                    "concurrency": conc,
                    "n": int(statistics.median([s.n for s in samples])),
                    "errors": sum(s.errors for s in samples),
                    "cpu_ms_per_1000": _median([s.cpu_ms_per_1000 for s in samples]),
                    "sends_per_s": _median([s.rate for s in samples]),
                    "cpu_ratio_vs_raw": _paired(samples, raw, lambda s: s.cpu_ms_per_1000),
                    "cpu_ratio_reps": [
                        a.cpu_ms_per_1000 / b.cpu_ms_per_1000
                        for a, b in zip(samples, raw, strict=False)
                        if a.n and b.n
                    ],
                    "rate_ratio_vs_raw": _paired(samples, raw, lambda s: s.rate),
                    "client_cpu_util": _median([s.cpu / s.wall for s in samples if s.wall]),
                    "server_cpu_util": _median([u for s in samples if (u := s.server_util)]),
                    "reps": [
                        {"n": s.n, "wall_s": s.wall, "cpu_s": s.cpu, "server_cpu_s": s.server_cpu}
                        for s in samples
                    ],
                }
            )
        if "sends" in only:
            rows.sort(
                key=lambda r: (r["latency_ms"], r["concurrency"], clients.index(str(r["client"])))
            )
            results["sends"] = rows
        for (latency, threads), samples in blocking_samples.items():
            async_samples = send_samples.get(("send", latency, threads), [])
            raw_samples = send_samples.get(("raw", latency, threads), [])
            results["blocking"].append(
                {
                    "latency_ms": latency,
                    "threads": threads,
                    "ratio_vs_raw": _paired(samples, raw_samples, lambda s: s.cpu_ms_per_1000),
                    "n": int(statistics.median([s.n for s in samples])),
                    "errors": sum(s.errors for s in samples),
                    "cpu_ms_per_call": _median([s.cpu_ms_per_1000 / 1000 for s in samples]),
                    "async_cpu_ms_per_call": _median(
                        [s.cpu_ms_per_1000 / 1000 for s in async_samples]
                    ),
                    "ratio_vs_async": _paired(samples, async_samples, lambda s: s.cpu_ms_per_1000),
                    "calls_per_s": _median([s.rate for s in samples]),
                    "server_cpu_util": _median([u for s in samples if (u := s.server_util)]),
                }
            )
        utils = [
            u
            for s in [*send_samples.values(), *blocking_samples.values()]
            for x in s
            if (u := x.server_util) is not None
        ]
        results["server"]["max_cpu_util"] = max(utils) if utils else None
        results["server"]["bottleneck"] = (max(utils) > 0.9) if utils else None

        if "paging" in only:
            page_samples: dict[str, list[Sample]] = {"raw": [], "telnyx_msg": []}
            for _ in range(profile.paging_reps):
                for name in page_samples:
                    page_samples[name].append(cases.paging_case(server, name, PAGE_SIZE))
            paging: dict[str, Any] = {
                "records": profile.records,
                "page_size": PAGE_SIZE,
                "reps": profile.paging_reps,
            }
            for name, samples in page_samples.items():
                paging[name] = {
                    "n": samples[0].n,
                    "per_s": _median([s.rate for s in samples]),
                    "cpu_us_per_record": _median([s.cpu / s.n * 1e6 for s in samples if s.n]),
                    "server_cpu_util": _median([u for s in samples if (u := s.server_util)]),
                }
            paging["ratio"] = _paired(
                page_samples["telnyx_msg"], page_samples["raw"], lambda s: s.rate
            )
            results["paging"] = paging
            _log(started, f"paging: ratio {paging['ratio']:.2f}")

        if "webhook" in only:
            hook_samples: dict[str, list[Sample]] = {"raw": [], "telnyx_msg": []}
            for _ in range(profile.reps):
                for name in hook_samples:
                    hook_samples[name].append(
                        cases.webhook_case(name, profile.webhook_n, profile.time_limit)
                    )
            webhook: dict[str, Any] = {
                "body_bytes": hook_samples["raw"][0].extra["body_bytes"],
                "reps": profile.reps,
            }
            for name, samples in hook_samples.items():
                webhook[name] = {
                    "n": samples[0].n,
                    "per_s": _median([s.rate for s in samples]),
                    "cpu_us_per_event": _median([s.cpu / s.n * 1e6 for s in samples]),
                }
            webhook["ratio"] = _paired(
                hook_samples["telnyx_msg"], hook_samples["raw"], lambda s: s.rate
            )
            results["webhook"] = webhook
            _log(started, f"webhook: ratio {webhook['ratio']:.2f}")

        if "import" in only:
            modules = ["(none)", "aiohttp", "telnyx_msg", "telnyx_msg.webhooks"] + (
                ["telnyx"] if official else []
            )
            seconds = cases.import_case(modules, profile.import_runs)
            results["import"] = {
                "runs": profile.import_runs,
                "seconds": seconds,
                "ratio": _ratio(seconds["telnyx_msg"], seconds["aiohttp"]),
            }
            _log(started, f"import: ratio {results['import']['ratio']:.2f}")

        if "rss" in only:
            limit = max(profile.time_limit, 120.0)
            idle = cases.rss_case(server, "idle", 1, 50, limit)
            bulk = cases.rss_case(server, "send_many", profile.rss_n, 50, limit)
            raw_idle = cases.rss_case(server, "raw_idle", 1, 50, limit)
            results["rss"] = {
                "n": profile.rss_n,
                "concurrency": 50,
                "sent": bulk["sent"],
                "idle_kb": idle["maxrss_kb"],
                "send_many_kb": bulk["maxrss_kb"],
                "raw_idle_kb": raw_idle["maxrss_kb"],
                "ratio": _ratio(bulk["maxrss_kb"], idle["maxrss_kb"]),
                "send_many_cpu_ms_per_1000": bulk["cpu"] / bulk["sent"] * 1e6
                if bulk["sent"]
                else None,
                "send_many_per_s": bulk["sent"] / bulk["wall"] if bulk["wall"] else None,
            }
            _log(started, f"rss: ratio {results['rss']['ratio']:.2f}")

        if "goodput" in only:
            goodput: dict[str, Any] = {}
            names = ["send_many", "send_many_burst1", "raw"] + (
                ["official_httpx"] if official else []
            )
            fake = 0
            for name in names:
                runs = []
                for _ in range(profile.goodput_reps if name == "send_many" else 1):
                    runs.append(
                        cases.goodput_case(server, name, fake, RATE_LIMIT, profile.goodput_s)
                    )
                    fake += 1  # a fresh fake (and rate window) for every run
                    _log(
                        started,
                        f"goodput {name}: {runs[-1]['goodput_ratio']:.2f} of the "
                        f"limit, {runs[-1]['r429_per_100']:.1f} 429s/100",
                    )
                runs.sort(key=lambda r: float(r["goodput_ratio"]))
                goodput[name] = dict(runs[len(runs) // 2])  # the median run
                goodput[name]["runs"] = [
                    {"goodput_ratio": r["goodput_ratio"], "r429_per_100": r["r429_per_100"]}
                    for r in runs
                ]
            results["goodput"] = goodput

    if "bulk" in only:
        results["bulk"] = _bulk_section(profile, started)

    results["targets"] = evaluate_targets(results)
    measured = [t["met"] for t in results["targets"] if t["met"] is not None]
    results["all_met"] = bool(measured) and all(measured)
    results["meta"]["duration_s"] = time.perf_counter() - started
    return results


def _bulk_section(profile: Profile, started: float) -> dict[str, Any]:
    """``telnyx-msg bulk`` against FakeTelnyx (10 ms latency) vs ``send_many`` of the same rows."""
    import tempfile

    samples: dict[str, list[Sample]] = {"bulk": [], "send_many": []}
    server = cases.MockServer(latency=0.01)
    try:
        with tempfile.TemporaryDirectory(prefix="telnyx_msg-bench-") as workdir:
            first = 0
            for rep in range(profile.reps):
                for name in ("bulk", "send_many") if rep % 2 == 0 else ("send_many", "bulk"):
                    samples[name].append(
                        cases.bulk_case(server, name, profile.bulk_rows, 50, workdir, first)
                    )
                    first += profile.bulk_rows
                    _log(
                        started, f"rep {rep + 1} bulk {name}: {samples[name][-1].rate:,.0f} rows/s"
                    )
    finally:
        server.close()
    section: dict[str, Any] = {
        "rows": profile.bulk_rows,
        "concurrency": 50,
        "latency_ms": 10,
        "reps": profile.reps,
    }
    for name, runs in samples.items():
        section[name] = {
            "per_s": _median([s.rate for s in runs]),
            "errors": sum(s.errors for s in runs),
        }
    section["ratio"] = _paired(samples["bulk"], samples["send_many"], lambda s: s.rate)
    return section


def _clean(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0 even when targets are missed)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="profile",
        action="store_const",
        const="quick",
        help="CI-sized counts (well under 2 minutes)",
    )
    size.add_argument(
        "--smoke",
        dest="profile",
        action="store_const",
        const="smoke",
        help="the smallest counts (for the harness's own test; numbers are noise)",
    )
    parser.set_defaults(profile="full")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results.json"),
        help="where to write the JSON results (default: bench-results.json)",
    )
    parser.add_argument(
        "--with-official",
        action="store_true",
        help=f"also measure the official SDK if importable (it is never "
        f"installed by this script: `pip install '{cases.OFFICIAL_PIN}'`)",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    args = parser.parse_args(argv)
    results = _clean(run(args))
    print(render(results))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
