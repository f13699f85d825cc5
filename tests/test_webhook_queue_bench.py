"""The webhook-queue benchmark runs end to end at the smallest size (numbers are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.redis
@pytest.mark.skipif(
    not (REPO / "benchmarks" / "webhook_queue.py").exists(),
    reason="benchmarks/ is not shipped in the sdist",
)
def test_benchmark_runs_every_case(redis_url: str, tmp_path: Path) -> None:
    """python -m benchmarks.webhook_queue prints the table and writes one row per case."""
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.webhook_queue",
            "-n",
            "20",
            "--reps",
            "1",
            "--redis",
            redis_url,
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "queue CPU cost per event" in proc.stdout
    rows = json.loads(out.read_text())
    assert [r["case"] for r in rows] == [
        "verify",
        "inline",
        "enqueue",
        "xadd",
        "queued",
        "burst",
        "worker",
    ]
    assert all(r["n"] == 20 and r["per_s"] > 0 for r in rows)
