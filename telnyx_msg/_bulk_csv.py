"""``telnyx-msg bulk FILE.csv``: one message per row through ``send_many``, resumable.

Columns are send fields (``from``, ``to``, ``text``, ``media_urls`` joined with ``|``,
``messaging_profile_id``, ``subject``, ``type``, ``webhook_url``, ``webhook_failover_url``,
``use_profile_webhooks``, ``auto_detect``, ``encoding``); empty cells are not sent. The results
file gets one line per attempted row (``row``, ``to``, ``status``, ``message_id``, ``code``,
``error``), written as outcomes arrive so an interrupted run loses nothing. ``--resume`` skips
every row whose latest result is ``sent``, ``unknown`` (it may have been delivered: never
resend) or ``rejected`` (it would fail again), so only ``not_sent`` and unattempted rows go out.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from telnyx_msg._bulk import SendOutcome
from telnyx_msg.errors import APIStatusError, ValidationError

RESULT_FIELDS = ("row", "to", "status", "message_id", "code", "error")
DONE_STATUSES = frozenset({"sent", "unknown", "rejected"})
_BOOL_FIELDS = frozenset({"use_profile_webhooks", "auto_detect"})


def row_to_request(row: dict[str, str]) -> dict[str, Any]:
    """Map one CSV row to send keyword arguments (raises ValidationError on a bad cell)."""
    request: dict[str, Any] = {}
    for column, raw in row.items():
        if column is None or raw is None:
            raise ValidationError("csv", "row has more cells than the header")
        value = raw.strip()
        if not value:
            continue
        name = column.strip()
        if name == "from":
            request["from_"] = value
        elif name == "media_urls":
            request["media_urls"] = [u.strip() for u in value.split("|") if u.strip()]
        elif name in _BOOL_FIELDS:
            if value.lower() not in ("true", "false"):
                raise ValidationError(name, f"{value!r} must be true or false")
            request[name] = value.lower() == "true"
        else:
            request[name] = value
    return request


def load_done_rows(path: Path) -> set[int]:
    """Row numbers whose latest result in ``path`` means "do not send again"."""
    latest: dict[int, str] = {}
    if not path.exists():
        return set()
    with path.open(newline="", encoding="utf-8") as handle:
        if path.suffix == ".jsonl":
            records: Iterator[dict[str, Any]] = (
                json.loads(line) for line in handle if line.strip())
        else:
            records = csv.DictReader(handle)
        for record in records:
            latest[int(record["row"])] = str(record["status"])
    return {row for row, status in latest.items() if status in DONE_STATUSES}


class ResultWriter:
    """Appends one result per outcome, flushed, in CSV or JSON Lines."""

    def __init__(self, path: Path, *, append: bool) -> None:
        self._jsonl = path.suffix == ".jsonl"
        new_file = not (append and path.exists() and path.stat().st_size > 0)
        self._handle: IO[str] = path.open("a" if append else "w", newline="", encoding="utf-8")
        self._csv = None if self._jsonl else csv.DictWriter(self._handle, RESULT_FIELDS)
        if self._csv is not None and new_file:
            self._csv.writeheader()

    def write(self, row: int, outcome: SendOutcome) -> None:
        """Record one outcome."""
        error = outcome.error
        record = {
            "row": row,
            "to": str(outcome.request.get("to", "")),
            "status": outcome.status,
            "message_id": outcome.message.id if outcome.message is not None else "",
            "code": (error.code or "") if isinstance(error, APIStatusError) else "",
            "error": "" if error is None else str(error).replace("\n", " "),
        }
        if self._csv is not None:
            self._csv.writerow(record)
        else:
            self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


class Progress:
    """A one-line progress display on stderr: done/total, statuses, rate and ETA."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.counts: Counter[str] = Counter()
        self.started = time.monotonic()
        self._shown = 0.0

    def update(self, status: str) -> None:
        """Count one outcome and redraw at most 4 times a second."""
        self.counts[status] += 1
        now = time.monotonic()
        if self.enabled and now - self._shown >= 0.25:
            self._shown = now
            self._draw(now, end="")

    def finish(self) -> None:
        """Draw the final line."""
        if self.enabled:
            self._draw(time.monotonic(), end="\n")

    def _draw(self, now: float, end: str) -> None:
        done = sum(self.counts.values())
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        left = max(self.total - done, 0)
        eta = f"{left / rate:.0f}s" if rate > 0 and left else "-"
        parts = " ".join(f"{k} {self.counts[k]}" for k in ("sent", "rejected", "unknown",
                                                           "not_sent") if self.counts[k])
        width = 24
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{self.total} {parts}  {rate:.1f} msg/s  ETA {eta} ")
        sys.stderr.write(end)
        sys.stderr.flush()


def _print_plan(source: Path, done_rows: set[int], limits: Any) -> int:
    """Estimate the run per sender lane before sending; warn when a lane outlives the queue.

    Returns the number of rows the run will attempt (valid or not), for the progress line.
    """
    from telnyx_msg._plan import plan_bulk

    pending = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal pending
        with source.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=1):
                if number not in done_rows:
                    pending += 1
                    with contextlib.suppress(ValidationError):
                        yield row_to_request(row)

    plan = plan_bulk(rows(), limits)
    print(f"plan: {plan.messages} messages ({plan.segments} segments) over {len(plan.lanes)} "
          f"sender lane(s), about {plan.seconds:.0f} s at the client's limits", file=sys.stderr)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return pending


async def run_bulk_file(args: argparse.Namespace) -> int:
    """The ``bulk`` command."""
    from telnyx_msg._client import AsyncClient
    from telnyx_msg._ratelimit import RateLimits

    source: Path = args.file
    out: Path = args.out or source.with_name(source.stem + ".results.csv")
    done_rows = load_done_rows(out) if args.resume else set()
    limits = RateLimits() if args.account_mps is None else RateLimits(account_mps=args.account_mps)
    total = _print_plan(source, done_rows, limits)  # one read plans and counts the rows
    progress = Progress(total, enabled=not args.no_progress)
    writer = ResultWriter(out, append=args.resume)
    rows_by_index: dict[int, int] = {}

    def requests() -> Iterator[dict[str, Any]]:
        index = 0
        with source.open(newline="", encoding="utf-8") as handle:
            for row_number, row in enumerate(csv.DictReader(handle), start=1):
                if row_number in done_rows:
                    continue
                try:
                    request = row_to_request(row)
                except ValidationError as exc:  # a bad cell: rejected without any I/O
                    writer.write(row_number, SendOutcome(-1, row, "rejected", error=exc))
                    progress.update("rejected")
                    continue
                rows_by_index[index] = row_number
                index += 1
                yield request

    try:
        async with AsyncClient(args.api_key, base_url=args.base_url, timeout=args.timeout,
                               rate_limits=limits) as client:
            async for outcome in client.messages.send_many(requests(),
                                                           concurrency=args.concurrency):
                writer.write(rows_by_index.pop(outcome.index), outcome)
                progress.update(outcome.status)
    finally:
        writer.close()
        progress.finish()
    counts = progress.counts
    print(f"{sum(counts.values())} rows: " + ", ".join(
        f"{counts[s]} {s}" for s in ("sent", "rejected", "unknown", "not_sent")) +
        f"; results in {out}")
    return 0 if counts["sent"] == sum(counts.values()) else 1
