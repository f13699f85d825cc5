"""Send one message per row of a CSV file with ``send_many``; report each outcome.

    export TELNYX_API_KEY=KEY...   # or paste what telnyx-msg mock-server prints
    python examples/bulk_from_csv.py examples/recipients.csv

Columns: ``from``, ``to``, ``text`` (and optionally ``media_urls``, separated by
``|``), in any letter case; Excel's "CSV UTF-8" (with a byte order mark) works.
Outcomes name rows as a spreadsheet numbers them (the header is row 1), which stays
right when a quoted cell spans several lines. The sample file's row 6 (its fifth
message) has a malformed number, to show a ``rejected`` outcome: it is refused
before any request is made. The rows are read lazily, so the file may be any size.
``telnyx-msg bulk FILE.csv`` does the same with a progress line and a resumable
results file.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import telnyx_msg


def read_rows(path: Path) -> Iterator[telnyx_msg.SendMessageItem]:
    """Yield one ``send`` request per CSV row (``from`` becomes ``from_``)."""
    # utf-8-sig: Excel starts a "CSV UTF-8" file with a byte order mark, which would
    # otherwise become part of the first column's name.
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = {
            (name or "").strip().lower(): name for name in reader.fieldnames or ()
        }
        missing = {"from", "to"} - set(columns)
        if missing:
            raise SystemExit(f"{path}: no column {', '.join(sorted(missing))}")
        for raw in reader:
            row = {key: raw.get(name) or "" for key, name in columns.items()}
            request: telnyx_msg.SendMessageItem = {
                "from_": row["from"],
                "to": row["to"],
            }
            if row.get("text"):
                request["text"] = row["text"]
            if row.get("media_urls"):
                request["media_urls"] = row["media_urls"].split("|")
            yield request


async def main(
    path: Path,
    *,
    concurrency: int = 20,
    api_key: str | None = None,
    base_url: str | None = None,
) -> Counter[str]:
    """Send every row of ``path``; print one line per outcome; return the count per
    status.
    """
    plan = telnyx_msg.plan_bulk(read_rows(path))
    print(f"{plan.messages} messages, {plan.segments} parts, ~{plan.seconds:.0f} s")
    for warning in plan.warnings:
        print(f"warning: {warning}")

    counts: Counter[str] = Counter()
    async with telnyx_msg.AsyncClient(api_key, base_url=base_url) as client:
        outcomes = client.messages.send_many(
            read_rows(path), concurrency=concurrency
        )
        async for outcome in outcomes:
            counts[outcome.status] += 1
            row = outcome.index + 2  # the header is row 1
            if outcome.status == "sent" and outcome.message is not None:
                print(f"row {row}: sent {outcome.message.id}")
            else:
                # "unknown" may have reached Telnyx: reconcile before resending it.
                print(f"row {row}: {outcome.status}: {outcome.reason}")
    print(", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument(
        "csv",
        type=Path,
        nargs="?",
        default=Path(__file__).with_name("recipients.csv"),
    )
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.csv, concurrency=args.concurrency))
