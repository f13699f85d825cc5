"""The benchmark harness runs end to end (smallest counts) and writes complete JSON.

Never asserts timings: the numbers of a smoke run are noise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

TOP_KEYS = {
    "schema",
    "meta",
    "server",
    "sends",
    "blocking",
    "paging",
    "webhook",
    "import",
    "rss",
    "goodput",
    "bulk",
    "targets",
    "all_met",
}
TARGET_IDS = {
    "send_cpu_c50",
    "send_many_cpu_c50",
    "blocking_cpu_c1",
    "blocking_cpu_threads",
    "webhook_unwrap",
    "paging",
    "goodput",
    "goodput_429",
    "import_time",
    "rss_send_many",
    "bulk_rate",
}
SEND_KEYS = {
    "client",
    "latency_ms",
    "concurrency",
    "n",
    "errors",
    "cpu_ms_per_1000",
    "sends_per_s",
    "cpu_ratio_vs_raw",
    "rate_ratio_vs_raw",
    "client_cpu_util",
    "server_cpu_util",
    "reps",
}
GOODPUT_KEYS = {
    "limit_rps",
    "duration_s",
    "goodput_rps",
    "goodput_ratio",
    "requests",
    "rate_limited",
    "r429_per_100",
    "failed",
}


@pytest.mark.slow
@pytest.mark.skipif(
    not (REPO / "benchmarks" / "run.py").exists(), reason="benchmarks/ is not shipped in the sdist"
)
def test_smoke_run_writes_every_key(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "### Targets" in proc.stdout

    results = json.loads(out.read_text())
    assert set(results) >= TOP_KEYS
    assert results["meta"]["profile"] == "smoke"
    assert {t["id"] for t in results["targets"]} == TARGET_IDS
    for target in results["targets"]:
        assert set(target) == {"id", "description", "target", "measured", "met"}
        assert target["measured"] is not None, target
    assert isinstance(results["all_met"], bool)

    combos = {(r["client"], r["latency_ms"], r["concurrency"]) for r in results["sends"]}
    for client in ("raw", "send", "send_many"):
        for latency in (0, 20):
            for conc in (1, 50, 200):
                assert (client, latency, conc) in combos
    for row in results["sends"]:
        assert set(row) >= SEND_KEYS
        assert row["n"] > 0, row
        assert row["errors"] == 0, row
    assert {(b["latency_ms"], b["threads"]) for b in results["blocking"]} == {
        (0, 1),
        (20, 1),
        (0, 50),
    }
    assert {"ratio", "raw", "telnyx_msg"} <= set(results["paging"])
    assert {"ratio", "raw", "telnyx_msg", "body_bytes"} <= set(results["webhook"])
    assert {"aiohttp", "telnyx_msg", "(none)"} <= set(results["import"]["seconds"])
    assert {"idle_kb", "send_many_kb", "ratio"} <= set(results["rss"])
    for name in ("send_many", "raw"):
        assert set(results["goodput"][name]) >= GOODPUT_KEYS
    assert results["server"]["max_cpu_util"] is not None
    assert results["bulk"]["bulk"]["errors"] == results["bulk"]["send_many"]["errors"] == 0
