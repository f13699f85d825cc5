"""`telnyx-msg bulk`: never twice, never lost, for the files people have.

In-process runs go through ``main`` in a worker thread while FakeTelnyx serves in the test's
loop; the interruption tests run the real command in a subprocess and signal it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import hashlib
import io
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from telnyx_msg.cli import build_parser, main
from telnyx_msg.cli._bulk import BulkRun, _resume_command
from telnyx_msg.cli._claim import CLAIM_TTL, RECORD_TTL
from telnyx_msg.cli._journal import (
    RESULT_FIELDS,
    STATUSES,
    CompactionError,
    Journal,
    Results,
    RunHeader,
    StatusTable,
    idempotency_key,
    stamp,
    unstamp,
)
from telnyx_msg.cli._progress import Progress
from telnyx_msg.cli._table import TableError, fingerprint, open_table
from telnyx_msg.testing import (
    FakeConfig,
    FakeTelnyx,
    Faults,
    serve_in_thread,
)
from tests.conftest import ApiServer, Handler, json_response, message_json

SENDER = "+18005550101"
HOUR = 3600.0


def write_rows(path: Path, count: int, *, start: int = 0, header: str = "from,to,text") -> None:
    lines = [header] + [f"{SENDER},+1312555{n:04d},hello {n}" for n in range(start, start + count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def crash_after(out: Path, kept: list[dict[str, str]], journaled: tuple[int, ...]) -> None:
    """Leave the files as a kill -9 would: RESULTS holding only ``kept``, and ``journaled``
    rows in the journal without an outcome."""
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    with out.with_name(out.name + ".journal").open("a") as journal:
        journal.write("".join(f"w {row}\n" for row in journaled))


def per_recipient(fake: FakeTelnyx) -> Counter[str]:
    return Counter(m["to"][0]["phone_number"] for m in fake.messages())


def server_argv(source: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    """``telnyx-msg bulk`` arguments for a run against a per-test server (API key ``k``)."""
    return [
        "bulk",
        str(source),
        "--out",
        str(out),
        "--api-key",
        "k",
        "--base-url",
        base_url,
        "--no-progress",
        *extra,
    ]


async def bulk(fake: FakeTelnyx, *args: str) -> int:
    argv = ["bulk", *args, "--api-key", fake.api_key, "--base-url", fake.base_url, "--no-progress"]
    code: int = await anyio.to_thread.run_sync(main, argv)
    return code


# --- results, resume, overwrite -----------------------------------------------------------------


# Row numbers as RESULTS holds them: small, around the table's growth steps, far (a mistyped
# cell), in any order (a spreadsheet sorts the file as it likes).
_ROWS = st.one_of(
    st.integers(0, 300),
    st.integers(0, 3 * 65_536),
    st.integers(0, 10**7),
    st.sampled_from([65_535, 65_536, 65_537, 2 * 1024 + 65_536, 10**8]),
)
_LINES = st.lists(st.tuples(_ROWS, st.sampled_from(STATUSES)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_LINES)
def test_the_status_table_agrees_with_a_dict_in_any_row_order(lines: list[tuple[int, str]]) -> None:
    """What --resume decides from (sent: never again; unknown: only with --retry-unknown; no
    line: send) is each row's LATEST status, whatever the order and spread of the rows: the
    table keeps far rows apart and moves them in as it grows, and must agree with a dict."""
    table, model = StatusTable(), {}
    for row, status in lines:
        table.set(row, status)
        model[row] = status
    for row in [*model, 0, 65_536, 10**9]:
        assert table.get(row) == model.get(row)
    for status in STATUSES:
        assert table.count(status) == sum(1 for s in model.values() if s == status)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_ROWS, st.sampled_from(STATUSES)), max_size=30))
def test_compacted_results_keep_the_latest_line_of_each_row_in_row_order(
    lines: list[tuple[int, str]],
) -> None:
    """Rewriting RESULTS keeps one line per row, the latest, in row order, for rows in any
    order and spread (far rows kept apart included)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, RESULT_FIELDS)
            writer.writeheader()
            for n, (row, status) in enumerate(lines):
                writer.writerow({"row": row, "status": status, "to": f"x{n}"})
        Results(path).compact()
        kept = [(int(r["row"]), r["status"], r["to"]) for r in results(path)]
    latest = {row: (row, status, f"x{n}") for n, (row, status) in enumerate(lines)}
    assert kept == [latest[row] for row in sorted(latest)]


def test_rows_in_descending_order_take_a_byte_per_row() -> None:
    """A RESULTS sorted by row descending (Z to A in a spreadsheet) costs about a byte per
    row, as ascending: every line above the first table's reach was kept in a dict (about
    130 bytes a line: 485 MB more for 3,000,000 rows, MemoryError near 10^7)."""
    count = 300_000
    tracemalloc.start()
    try:
        table = StatusTable()
        for row in range(count + 1, 1, -1):
            table.set(row, "sent")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert table.count("sent") == count
    assert peak < 4 * count, f"{peak / count:.0f} bytes a row"


@pytest.mark.anyio
async def test_resume_of_results_with_a_mistyped_row_number_stays_small(tmp_path: Path) -> None:
    """A 4-row run whose RESULTS had one ``row`` cell mistyped into 5,000,000 resumes with
    a few MB at most (it peaked at 87 MB here, and at 1.2 GB then MemoryError for 10^8), and
    keeps the mistyped line."""
    far_row = 5_000_000  # 87 MB peak before the fix, ~1 MB after
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 4)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        records = results(out)
        assert [r["row"] for r in records] == ["2", "3", "4", "5"]
        records[1]["row"] = str(far_row)  # the spreadsheet edit
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, list(records[0]))
            writer.writeheader()
            writer.writerows(records)
        sent_before = len(fake.messages())

        tracemalloc.start()
        try:
            code = await bulk(fake, str(source), "--out", str(out), "--resume")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert code == 0
        assert peak < 8_000_000, f"--resume of a 4-row run peaked at {peak / 1e6:.1f} MB"
        # Row 3 has no line: resent under its own Idempotency-Key, so nothing new is sent.
        assert len(fake.messages()) == sent_before
        assert [r["row"] for r in results(out)] == ["2", "3", "4", "5", str(far_row)]


@pytest.mark.anyio
async def test_one_result_per_row_numbered_as_a_spreadsheet(tmp_path: Path) -> None:
    """Rows are numbered as a spreadsheet shows them (header = 1); each gets its key."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 12)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out), "--concurrency", "4") == 0
        records = results(out)
        assert [int(r["row"]) for r in records] == list(range(2, 14))
        assert {r["status"] for r in records} == {"sent"}
        run_id = records[0]["idempotency_key"].split(":")[1]
        assert [r["idempotency_key"] for r in records] == [
            idempotency_key(run_id, row) for row in range(2, 14)
        ]
        keys = [
            r.headers.get("Idempotency-Key", "")
            for r in fake.stats.requests
            if r.path.endswith("/messages")
        ]
        assert sorted(keys) == sorted(r["idempotency_key"] for r in records)


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["out.csv", "out.jsonl"])
async def test_a_file_with_only_a_header_leaves_the_results_file_it_names(
    tmp_path: Path, name: str
) -> None:
    """The summary's "results in RESULTS" is true with no row to send (RESULTS was never
    created, and a second run was told that missing file "already holds results")."""
    source, out = tmp_path / "in.csv", tmp_path / name
    source.write_bytes(b"from,to,text\r\n")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        assert out.is_file()
        assert oct(out.stat().st_mode & 0o777) == "0o600"  # was 0644: later runs append to it
        assert results(out) == []
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 0
        assert fake.messages() == []


@pytest.mark.anyio
async def test_a_resume_summary_also_counts_every_run(tmp_path: Path, capsys: Any) -> None:
    """A --resume with nothing left printed "0 rows: 0 sent, ..." alone, as if the file had
    sent nothing: it also says what RESULTS records over every run."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        capsys.readouterr()
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 0
    assert capsys.readouterr().out.splitlines() == [
        "this run: 0 rows: 0 sent, 0 rejected, 0 unknown, 0 not_sent",
        f"all runs: 3 rows: 3 sent, 0 rejected, 0 unknown, 0 not_sent; results in {out}",
    ]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ((), "no API key: pass --api-key or set"),
        (("--api-key", "k", "--base-url", "ftp://x"), "base_url must be"),
    ],
)
def test_a_run_that_cannot_send_stops_before_creating_results(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch, extra: tuple[str, ...], says: str
) -> None:
    """No API key (or an unusable --base-url): exit 2 before RESULTS exists, so the corrected
    command runs as it is, without --resume."""
    monkeypatch.delenv("TELNYX_API_KEY", raising=False)
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    assert main(["bulk", str(source), "--out", str(out), "--no-progress", *extra]) == 2
    assert says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.anyio
async def test_existing_results_are_never_overwritten_without_a_flag(
    tmp_path: Path, capsys: Any
) -> None:
    """A second run without --resume/--overwrite exits 2 and sends nothing."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        before = out.read_bytes()
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out)) == 2
        assert "--resume" in capsys.readouterr().err
        assert out.read_bytes() == before
        assert fake.stats.count("POST", "/messages") == 0
        assert await bulk(fake, str(source), "--out", str(out), "--overwrite") == 0
        assert fake.stats.count("POST", "/messages") == 3
        assert len(results(out)) == 3
        assert per_recipient(fake).most_common(1)[0][1] == 2  # --overwrite is a new run


@pytest.mark.anyio
async def test_resume_sends_only_what_is_left_and_never_twice(tmp_path: Path) -> None:
    """--resume sends unattempted and not_sent rows (same keys); sent/unknown/rejected stay."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 10)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        records = {int(r["row"]): r for r in results(out)}
        # As if the run had stopped: row 8 unattempted, row 9 not_sent, row 10 unknown.
        del records[8]
        records[9]["status"] = "not_sent"
        records[10]["status"] = "unknown"
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, list(records[2]))
            writer.writeheader()
            writer.writerows(records.values())
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 1  # 1 unknown
        sent = sorted(r.json["to"] for r in fake.stats.requests if r.json)
        assert sent == ["+13125550006", "+13125550007"]
        # Both had really been sent: their original keys made Telnyx answer, not resend.
        assert fake.stats.idempotent_replays == 2
        latest = {int(r["row"]): r["status"] for r in results(out)}
        assert latest[8] == latest[9] == "sent"
        assert latest[10] == "unknown"
        assert len(results(out)) == 10
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 0
        assert fake.stats.idempotent_replays == 3
        assert max(per_recipient(fake).values()) == 1


@pytest.mark.anyio
async def test_crash_recovery_marks_journaled_rows_unknown(tmp_path: Path) -> None:
    """Rows journaled without an outcome (a kill -9) become unknown; --retry-unknown sends
    them exactly once."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 6)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        run_id = results(out)[0]["idempotency_key"].split(":")[1]
        # The crash: rows 6 and 7 were journaled (maybe sent: row 6 was), no outcome recorded.
        crash_after(out, [r for r in results(out) if int(r["row"]) < 6], journaled=(6, 7))
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 1
        assert fake.stats.count("POST", "/messages") == 0
        latest = {int(r["row"]): r for r in results(out)}
        assert latest[6]["status"] == latest[7]["status"] == "unknown"
        assert latest[6]["idempotency_key"] == idempotency_key(run_id, 6)
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 0
        assert fake.stats.idempotent_replays == 2
        assert max(per_recipient(fake).values()) == 1
        assert {r["status"] for r in results(out)} == {"sent"}


@pytest.mark.anyio
async def test_crash_recovery_records_the_recipient_of_unknown_rows(tmp_path: Path) -> None:
    """A journaled row without an outcome is recorded unknown with its row's ``to`` (as every
    other outcome is), read from the input file the resume checked is unchanged. The journal
    is the one a run writes (``w ROW`` lines): nothing more is needed in it."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 6)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        sent = {int(r["row"]): r for r in results(out)}
        # The crash: rows 4 and 6 were journaled, no outcome recorded; 7 was not reached.
        kept = [r for row, r in sent.items() if row not in (4, 6, 7)]
        crash_after(out, kept, journaled=(4, 6))
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 1
        latest = {int(r["row"]): r for r in results(out)}
        assert latest[4]["status"] == latest[6]["status"] == "unknown"
        assert latest[7]["status"] == "sent"
        # Every row, whatever its status, names its recipient as the first run did.
        assert {row: r["to"] for row, r in latest.items()} == {
            row: r["to"] for row, r in sent.items()
        }
        assert latest[4]["to"] == "+13125550002"
        assert latest[4]["idempotency_key"] == sent[4]["idempotency_key"]


def sent_keys(fake: FakeTelnyx) -> list[str]:
    return [
        r.headers.get("Idempotency-Key", "")
        for r in fake.stats.requests
        if r.path.endswith("/messages")
    ]


@pytest.mark.anyio
async def test_retry_unknown_never_resends_a_row_past_the_idempotency_window(
    tmp_path: Path, capsys: Any
) -> None:
    """Telnyx keeps an Idempotency-Key 24 h. --retry-unknown resends an unknown row first
    attempted within 23 h (Telnyx answers with the message it has) but not one attempted
    earlier, which a resend could send twice: that row stays unknown and says why and when. A
    time a spreadsheet rewrote counts as too old."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 5)
    async with FakeTelnyx() as fake:
        before = time.time()
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        after = time.time()
        records = {int(r["row"]): r for r in results(out)}
        for record in records.values():
            at = unstamp(record["first_attempt"])
            assert at is not None, record
            assert int(before) <= at <= after, record
        # Rows 3-6 accepted but recorded unknown: row 3 by an older telnyx-msg (no time),
        # row 4 first attempted 25 h ago, row 5 one hour ago, row 6 saved by Excel.
        old, recent = time.time() - 25 * HOUR, time.time() - HOUR
        excel = "12/5/2026 10:00"
        for row, when in ((3, ""), (4, stamp(old)), (5, stamp(recent)), (6, excel)):
            records[row] |= {"status": "unknown", "message_id": "", "first_attempt": when}
        crash_after(out, list(records.values()), journaled=())
        fake.stats.reset()
        capsys.readouterr()
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 1
        assert sorted(sent_keys(fake)) == [
            records[3]["idempotency_key"],
            records[5]["idempotency_key"],
        ]
        assert fake.stats.idempotent_replays == 2
        assert max(per_recipient(fake).values()) == 1
        latest = {int(r["row"]): r for r in results(out)}
        assert latest[5]["status"] == "sent"
        assert latest[5]["first_attempt"] == stamp(recent)  # the key's 24 h run from then
        assert latest[4]["status"] == "unknown"
        assert latest[4]["first_attempt"] == stamp(old)
        assert latest[4]["error"].startswith(f"not resent: first attempted {stamp(old)}")
        assert latest[3]["status"] == "sent"
        assert latest[6]["status"] == "unknown"
        assert latest[6]["first_attempt"] == "unknown"
        assert latest[6]["error"].startswith("not resent: first attempted at an unknown time")
        err = capsys.readouterr().err
        assert "1 unknown row(s) resent had no first-attempt time" in err
        assert err.count("2 unknown row(s) may be past Telnyx's 24 h") == 2
        assert "--retry-unknown (within" not in err  # no "resend safely" hint for rows 4, 6
        # Asked again, they are still not resent.
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 1
        assert sent_keys(fake) == []
        latest = {int(r["row"]): r for r in results(out)}
        assert (latest[4]["status"], latest[6]["status"]) == ("unknown", "unknown")


@pytest.mark.anyio
async def test_results_saved_by_a_spreadsheet_resume_or_stop_never_resend(
    tmp_path: Path, capsys: Any
) -> None:
    """RESULTS opened and saved by Excel: as "CSV UTF-8" (a BOM) it is read as before; with
    ';' between columns (European locales) it cannot be read, so --resume stops (exit 2)
    instead of taking every row for unsent. A file of someone else's is never appended to."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 4)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        written = out.read_text(encoding="utf-8")
        fake.stats.reset()
        out.write_text("\ufeff" + written, encoding="utf-8")
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 0
        assert sent_keys(fake) == []
        assert {r["status"] for r in results(out)} == {"sent"}
        semicolons = written.replace(",", ";")
        out.write_text(semicolons, encoding="utf-8")
        capsys.readouterr()
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 2
        err = capsys.readouterr().err
        assert "its columns are separated by ';'" in err
        assert "--overwrite" not in err  # it would start a new run: every row sent again
        assert sent_keys(fake) == []
        assert out.read_text(encoding="utf-8") == semicolons
        foreign = "name,phone\nAda,+13125550000\n"
        other = tmp_path / "contacts.csv"
        other.write_text(foreign, encoding="utf-8")
        assert await bulk(fake, str(source), "--out", str(other)) == 2
        err = capsys.readouterr().err
        assert "not telnyx-msg's header" in err
        assert "give --out another name" in err
        assert "--overwrite" not in err  # a spreadsheet-saved RESULTS must not be overwritten
        assert await bulk(fake, str(source), "--out", str(other), "--resume") == 2
        assert "not telnyx-msg's header" in capsys.readouterr().err
        assert other.read_text(encoding="utf-8") == foreign
        assert sent_keys(fake) == []


@pytest.mark.anyio
async def test_first_attempt_comes_from_the_journal_and_a_resend_keeps_the_first(
    tmp_path: Path,
) -> None:
    """After a crash, a journaled row's first attempt is the time its journal line was
    written; a crashed --retry-unknown resend of an unknown row keeps that row's first time
    (the key's 24 h run from the first attempt, not the resend)."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        records = {int(r["row"]): r for r in results(out)}
        old, recent = time.time() - 30 * HOUR, time.time() - 2 * HOUR
        # Row 3: unknown since 2 h ago, its resend journaled just now; row 4: journaled 30 h
        # ago (a run killed then); neither has an outcome since.
        records[3] |= {"status": "unknown", "message_id": "", "first_attempt": stamp(recent)}
        crash_after(out, [records[2], records[3]], journaled=())
        with out.with_name(out.name + ".journal").open("a") as journal:
            journal.write(f"t {int(old)}\nw 4\nt {int(time.time())}\nw 3\n")
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 1
        assert sent_keys(fake) == [records[3]["idempotency_key"]]
        latest = {int(r["row"]): r for r in results(out)}
        assert (latest[3]["status"], latest[3]["first_attempt"]) == ("sent", stamp(recent))
        assert (latest[4]["status"], latest[4]["first_attempt"]) == ("unknown", stamp(int(old)))
        assert "not resent" in latest[4]["error"]


@pytest.mark.anyio
@pytest.mark.parametrize("slow_disk", [False, True])
async def test_each_row_is_journaled_before_its_request_arrives(
    tmp_path: Path,
    api_server: Callable[[Handler], Awaitable[ApiServer]],
    monkeypatch: pytest.MonkeyPatch,
    slow_disk: bool,
) -> None:
    """When a request reaches the server, its row is already in the journal on disk; also on
    a slow disk (each write 50 ms late), where a request not waiting for its line would be
    out first (on a fast disk the write usually wins anyway)."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 30)
    journal = Journal(tmp_path / "out.csv.journal")
    missing: list[str] = []
    if slow_disk:
        write = Journal._write

        def slow_write(self: Journal, data: bytes) -> None:
            time.sleep(0.05)
            write(self, data)

        monkeypatch.setattr(Journal, "_write", slow_write)

    async def handler(request: Any) -> Any:
        key = request.headers["Idempotency-Key"]
        row = int(key.rsplit(":", 1)[1])
        if row not in {journaled for journaled, _ in journal.read()[1]}:
            missing.append(key)
        return json_response({"data": message_json(id=key.replace(":", "-"))})

    server = await api_server(handler)
    argv = server_argv(source, out, server.base_url, "--concurrency", "8")
    code = await anyio.to_thread.run_sync(main, argv)
    assert code == 0
    assert len(server.requests) == 30
    assert missing == []


@pytest.mark.anyio
async def test_a_refused_api_key_stops_the_run_and_resume_sends_every_row_once(
    tmp_path: Path, capsys: Any
) -> None:
    """A wrong API key: the run stops at the first 401 (it sent every row to be refused and
    recorded them all `rejected`, which --resume never resends), the rows in flight are
    `not_sent`, and --resume with the right key sends every row exactly once."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 60)
    async with FakeTelnyx() as fake:
        argv = ["bulk", str(source), "--out", str(out), "--concurrency", "5"]
        argv += ["--api-key", "wrong", "--base-url", fake.base_url, "--no-progress"]
        assert await anyio.to_thread.run_sync(main, argv) == 1
        assert "check the API key" in capsys.readouterr().err
        first = results(out)
        assert 0 < len(first) <= 5
        assert {r["status"] for r in first} == {"not_sent"}
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 0
        final = results(out)
        assert sorted(int(r["row"]) for r in final) == list(range(2, 62))
        assert {r["status"] for r in final} == {"sent"}
        assert len(fake.messages()) == 60


@pytest.mark.anyio
async def test_unreachable_api_stops_the_run_and_resume_sends_every_row_once(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telnyx (or the network) down: after a run of sends that could not even connect, the run
    stops instead of marking the whole file not_sent while hammering a dead endpoint; the rows
    it tried are not_sent, the rest untouched, and --resume later sends every row once."""
    from telnyx_msg.cli import _bulk

    monkeypatch.setattr(_bulk, "UNREACHABLE_STOP", 4)  # 100 in production; each try is ~1.5 s
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 40)
    with socket.socket() as sock:  # a port nothing listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    argv = ["bulk", str(source), "--out", str(out), "--concurrency", "1", "--api-key", "k"]
    argv += ["--base-url", f"http://127.0.0.1:{dead}/v2", "--no-progress"]
    assert await anyio.to_thread.run_sync(main, argv) == 1
    assert "could not connect" in capsys.readouterr().err
    tried = results(out)
    assert 4 <= len(tried) <= 5
    assert {r["status"] for r in tried} == {"not_sent"}
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 0
        final = results(out)
        assert {r["status"] for r in final} == {"sent"}
        assert len(final) == len(fake.messages()) == 40


_PORTAL_PAGE = "<html><body>Sign in to the network to continue</body></html>"


@contextlib.asynccontextmanager
async def portal_answering(status: int) -> AsyncIterator[tuple[str, list[str]]]:
    """A 127.0.0.1 server answering every request ``status`` with an HTML page (a 3xx also
    with a Location to its sign-in page); yields its /v2 base URL and the paths it was sent."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request.path)
        headers = {"Location": "http://portal.invalid/login"} if 300 <= status < 400 else None
        return web.Response(
            status=status, text=_PORTAL_PAGE, content_type="text/html", headers=headers
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v2", seen
    finally:
        await runner.cleanup()


async def run_bulk(source: Path, out: Path, base_url: str, api_key: str, *extra: str) -> int:
    argv = ["bulk", str(source), "--out", str(out), "--api-key", api_key]
    argv += ["--base-url", base_url, "--no-progress", *extra]
    code: int = await anyio.to_thread.run_sync(main, argv)
    return code


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "recorded", "resume"),
    [
        (200, "unknown", ("--resume", "--retry-unknown")),
        (302, "not_sent", ("--resume",)),
        (303, "unknown", ("--resume", "--retry-unknown")),
        (407, "not_sent", ("--resume",)),
        (511, "not_sent", ("--resume",)),
    ],
    ids=["200-page", "302-to-sign-in", "303-to-sign-in", "407-proxy-login", "511-network-login"],
)
async def test_a_captive_portal_or_proxy_stops_the_run_and_resume_sends_every_row_once(
    tmp_path: Path, capsys: Any, status: int, recorded: str, resume: tuple[str, ...]
) -> None:
    """Behind a captive portal or a proxy that answers every request itself (its HTML
    sign-in page with 200, a redirect to it, 407 Proxy Authentication Required, 511 Network
    Authentication Required) the run stops after 100 such rows in a row (or twice
    --concurrency) instead of marking the whole file, says what is in the way and exits 1.
    A 200 page or a 303 (See Other, sent after acting on a POST) may have come after the
    request went on, so their rows are ``unknown`` (the hint names --retry-unknown; a 303
    portal never stopped the run); the others never reached Telnyx: ``not_sent`` (a 407 was
    ``rejected``, never resent). Once Telnyx is reachable, resuming sends every row once."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 300)
    async with portal_answering(status) as (base_url, seen):
        assert await run_bulk(source, out, base_url, "k", "--concurrency", "50") == 1
    err = capsys.readouterr().err
    assert "captive portal" in err
    assert ("--retry-unknown" in err) == (recorded == "unknown")
    tried = results(out)
    assert {r["status"] for r in tried} == {recorded}
    assert 100 <= len(tried) <= 150, f"{len(tried)} of 300 rows were tried"
    if status != 511:  # retried (keyed sends): not once per row
        assert len(seen) == len(tried)
    async with FakeTelnyx() as fake:
        assert await run_bulk(source, out, fake.base_url, fake.api_key, *resume) == 0
        final = results(out)
        assert {r["status"] for r in final} == {"sent"}
        assert len(final) == len(fake.messages()) == 300


@pytest.mark.anyio
async def test_resume_refuses_a_changed_file(tmp_path: Path, capsys: Any) -> None:
    """Rows are identified by number, so resuming over an edited file stops (exit 2)."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        write_rows(source, 3, start=100)
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 2
        assert "changed since this run began" in capsys.readouterr().err
        assert fake.stats.count("POST", "/messages") == 0


@pytest.mark.anyio
async def test_resume_of_a_results_file_that_does_not_exist_sends_nothing(
    tmp_path: Path, capsys: Any
) -> None:
    """`--resume` with a RESULTS that is not there (a typo, or the default name guessed wrong)
    stops with exit 2: starting a new run instead sent every row of the finished run again."""
    source = tmp_path / "in.csv"
    write_rows(source, 3)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source)) == 0
        assert (tmp_path / "in.results.csv").is_file()  # the default: FILE's stem
        fake.stats.reset()
        typo = tmp_path / "in.csv.results.csv"
        assert await bulk(fake, str(source), "--out", str(typo), "--resume") == 2
        err = capsys.readouterr().err
        assert "nothing to resume" in err
        assert "drop --resume" in err
        assert fake.stats.count("POST", "/messages") == 0
        assert not typo.exists()


def test_flag_combinations_are_usage_errors(tmp_path: Path) -> None:
    """--retry-unknown needs --resume; --resume and --overwrite exclude each other."""
    source = tmp_path / "in.csv"
    write_rows(source, 1)
    assert main(["bulk", str(source), "--retry-unknown", "--api-key", "k"]) == 2
    assert main(["bulk", str(source), "--resume", "--overwrite", "--api-key", "k"]) == 2


def test_results_path_problems_stop_before_anything(tmp_path: Path, capsys: Any) -> None:
    """RESULTS in a missing folder, or RESULTS being FILE itself: exit 2, no file touched."""
    source = tmp_path / "in.csv"
    write_rows(source, 1)
    before = source.read_bytes()
    base = ["--api-key", "k", "--base-url", "http://127.0.0.1:9/v2"]
    assert main(["bulk", str(source), "--out", str(tmp_path / "no" / "r.csv"), *base]) == 2
    assert "the folder of" in capsys.readouterr().err
    same = str(tmp_path / "." / "in.csv")
    assert main(["bulk", str(source), "--out", same, *base]) == 2
    assert "is FILE itself" in capsys.readouterr().err
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_main_gives_the_callers_signal_handlers_back(tmp_path: Path) -> None:
    """`main()` called from a program (here pytest's main thread) leaves SIGINT and SIGTERM as
    it found them, after a run that stopped early and after a whole run. It used to leave its
    SIGTERM handler in place (a later SIGTERM then raised inside whatever ran) or asyncio's
    defaults (the caller's own handlers were gone)."""
    from telnyx_msg.testing import serve_in_thread

    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not called")

    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    previous = signal.signal(signal.SIGTERM, mine)
    try:
        sigint = signal.getsignal(signal.SIGINT)
        base = ["--api-key", "k", "--base-url", "http://127.0.0.1:9/v2"]
        assert main(["bulk", str(source), "--out", str(tmp_path / "no" / "r.csv"), *base]) == 2
        assert signal.getsignal(signal.SIGTERM) is mine
        with serve_in_thread() as fake:
            argv = ["bulk", str(source), "--out", str(out), "--api-key", fake.api_key]
            assert main([*argv, "--base-url", fake.base_url]) == 0
        assert len(out.read_text().splitlines()) == 4  # the header and three rows
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.anyio
async def test_jsonl_results(tmp_path: Path) -> None:
    """A .jsonl RESULTS gets one JSON object per row."""
    source, out = tmp_path / "in.csv", tmp_path / "out.jsonl"
    write_rows(source, 3)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in records] == [2, 3, 4]
    assert {r["status"] for r in records} == {"sent"}


@pytest.mark.anyio
async def test_a_sync_left_running_by_a_stopped_send_is_drained_before_the_journal_is_reset(
    tmp_path: Path,
) -> None:
    """A send stopped while it waits for the journal leaves that sync running; the journal
    refuses to be closed or replaced under it (its write could land in another file) until
    ``drain()``, after which the new journal holds none of the old rows."""
    journal = Journal(tmp_path / "out.csv.journal")
    header = RunHeader("ab", "src", results_at=0)
    journal.start(header)
    waiting = asyncio.ensure_future(journal.record(7))
    await asyncio.sleep(0)  # the flush task exists, it has not written yet
    waiting.cancel()
    with pytest.raises(RuntimeError, match="drain"):
        journal.start(header)
    await journal.drain()
    assert [row for row, _ in journal.read()[1]] == [7]
    journal.start(header)
    for _ in range(3):
        await asyncio.sleep(0)
    assert journal.read()[0] == header
    assert list(journal.read()[1]) == []
    journal.close()


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    """A line cut short by a crash is not read as an outcome."""
    out = Results(tmp_path / "out.csv")
    out.append({"row": 2, "to": "+1", "status": "sent", "idempotency_key": "telnyx-msg:ab:2"})
    out.close()
    with (tmp_path / "out.csv").open("a") as handle:
        handle.write("3,+13125550001,se")
    table, _, run_id, _ = out.load()
    assert table.get(2) == "sent"
    assert table.get(3) is None
    assert run_id == "ab"
    # The next outcome starts on a line of its own, not glued to the torn one.
    out.append({"row": 4, "to": "+1", "status": "sent", "idempotency_key": "telnyx-msg:ab:4"})
    out.close()
    table = out.load().statuses
    assert table.get(4) == "sent"
    assert table.get(3) is None


# --- files as people have them ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "content", "encoding_args"),
    [
        ("bom.csv", "\ufefffrom,to,text\r\n{s},+13125550001,Caf\u00e9\r\n", ()),
        ("semicolon.csv", "From;To;Text\n{s};+13125550001;hello, world\n", ()),
        ("tab.tsv", "from\tto\ttext\n{s}\t+13125550001\thello\n", ()),
        ("cp1252.csv", "from,to,text\n{s},+13125550001,Caf\u00e9\n", ("--encoding", "cp1252")),
    ],
)
async def test_spreadsheet_variants_are_read(
    tmp_path: Path, name: str, content: str, encoding_args: tuple[str, ...]
) -> None:
    """BOM, ';' and tab delimiters, header case and other encodings all just work."""
    source, out = tmp_path / name, tmp_path / "out.csv"
    encoding = encoding_args[1] if encoding_args else "utf-8"
    source.write_bytes(content.format(s=SENDER).encode(encoding))
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out), *encoding_args) == 0
        sent = [r.json for r in fake.stats.requests if r.json]
    assert len(sent) == 1
    assert sent[0]["from"] == SENDER
    assert results(out)[0]["row"] == "2"


@pytest.mark.anyio
async def test_utf16_unicode_text_from_excel(tmp_path: Path) -> None:
    """Excel's "Unicode Text" (UTF-16 with BOM, tab-separated) is recognised by its BOM."""
    source, out = tmp_path / "in.txt", tmp_path / "out.csv"
    source.write_text(f"from\tto\ttext\r\n{SENDER}\t+13125550001\tn\u00e4\r\n", encoding="utf-16")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        assert [r.json["text"] for r in fake.stats.requests if r.json] == ["n\u00e4"]


@pytest.mark.anyio
async def test_classic_mac_line_endings(tmp_path: Path) -> None:
    """Files saved as "CSV (Macintosh)" end lines with a lone CR; rows and cells are read.

    It crashed with a csv traceback: split on LF only, the whole file was one line.
    """
    source, out = tmp_path / "mac.csv", tmp_path / "out.csv"
    source.write_bytes(
        f'from,to,text\r{SENDER},+13125550001,one\r{SENDER},+13125550002,"two\nlines"\r'
        f"\r{SENDER},+13125550003,Caf\u00e9".encode("cp1252")
    )
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out), "--encoding", "cp1252") == 0
        texts = sorted(r.json["text"] for r in fake.stats.requests if r.json)
    assert texts == ["Caf\u00e9", "one", "two\nlines"]
    assert sorted((r["row"], r["to"]) for r in results(out)) == [
        ("2", "+13125550001"),
        ("3", "+13125550002"),
        ("5", "+13125550003"),
    ]


@pytest.mark.anyio
async def test_undecodable_byte_stops_before_any_send(tmp_path: Path, capsys: Any) -> None:
    """A cp1252 byte in a UTF-8 run names its row and the fix; nothing is sent."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(
        f"from,to,text\n{SENDER},+13125550001,ok\n"
        f'{SENDER},+13125550002,"two\nlines"\n'
        f"{SENDER},+13125550003,Caf\u00e9\n".encode("cp1252")
    )
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 2
        assert fake.stats.count("POST", "/messages") == 0
    err = capsys.readouterr().err
    assert "row 4 (file line 5): byte 0xe9 is not valid utf-8" in err
    assert "--encoding" in err
    assert not out.exists()


@pytest.mark.anyio
async def test_unknown_column_stops_the_run_unless_ignored(tmp_path: Path, capsys: Any) -> None:
    """An extra column (e.g. 'name') stops before any send, naming it and the known ones."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(f"from,to,text,name\n{SENDER},+13125550001,hi,Ann\n")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 2
        err = capsys.readouterr().err
        assert "unknown column(s) 'name'" in err
        assert "messaging_profile_id" in err
        assert fake.stats.count("POST", "/messages") == 0
        assert await bulk(fake, str(source), "--out", str(out), "--ignore-unknown-columns") == 0
        assert [sorted(r.json) for r in fake.stats.requests if r.json] == [["from", "text", "to"]]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("from,text", "no 'to' column"),
        ("to,text", "'from' or a 'messaging_profile_id'"),
        ("from,to,to,text", "appears twice"),
        ("", "header row"),
    ],
)
def test_header_problems_are_usage_errors(
    tmp_path: Path, capsys: Any, header: str, message: str
) -> None:
    """A header that cannot work exits 2 with a reason, before any connection."""
    source = tmp_path / "in.csv"
    source.write_text(header + "\n")
    assert main(["bulk", str(source), "--api-key", "k", "--base-url", "http://127.0.0.1:9/v2"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_stdin_or_a_pipe_is_refused_before_reading(tmp_path: Path, capsys: Any) -> None:
    """`-` and a named pipe (or bash's <(...)) can be read once; a run reads FILE again to send
    and to resume, so it says to save the input to a file (it crashed with a traceback)."""
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    for source in ("-", str(fifo)):
        argv = ["bulk", source, "--out", str(tmp_path / "out.csv")]
        assert main([*argv, "--api-key", "k", "--base-url", "http://127.0.0.1:9/v2"]) == 2
        assert "is not a regular file" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_results_that_is_not_a_file_is_refused(tmp_path: Path, capsys: Any) -> None:
    """--out /dev/stdout (a terminal or a pipe), `-`, a pipe or a folder: RESULTS is read back
    to resume, so the run stops with exit 2 before anything (reading a terminal would wait for
    input forever), and leaves no lock file next to it."""
    source = tmp_path / "in.csv"
    source.write_text(f"from,to,text\n{SENDER},+13125550001,hi\n")
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    for out in ("-", str(fifo), str(tmp_path)):
        argv = ["bulk", str(source), "--out", out, "--api-key", "k"]
        assert main([*argv, "--base-url", "http://127.0.0.1:9/v2"]) == 2
        assert "is not a regular file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.fifo"]


@pytest.mark.anyio
async def test_ragged_blank_and_multiline_rows(tmp_path: Path) -> None:
    """Short rows read as a spreadsheet does, long rows are rejected with their row number,
    blank rows are skipped and multi-line quoted text is one row."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(
        "from,to,text,media_urls\n"
        f'{SENDER},+13125550001,"line one\nline two"\n'  # row 2: short (no media_urls)
        f"{SENDER},+13125550002,a,https://x.test/a.png,extra\n"  # row 3: one cell too many
        ",,,\n"  # row 4: blank
        f"{SENDER},+13125550003\n"  # row 5: no text, no media
        f"{SENDER},+13125550004,ok,,\n"  # row 6: empty extra cell: fine
    )
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 1
        texts = sorted(r.json["text"] for r in fake.stats.requests if r.json)
    assert texts == ["line one\nline two", "ok"]
    by_row = {int(r["row"]): r for r in results(out)}
    assert sorted(by_row) == [2, 3, 5, 6]
    assert by_row[2]["status"] == by_row[6]["status"] == "sent"
    assert by_row[3]["status"] == "rejected"
    assert "row 3: row has 5 cells but the header has 4" in by_row[3]["error"]
    assert by_row[3]["to"] == "+13125550002"
    assert by_row[5]["status"] == "rejected"
    assert "text" in by_row[5]["error"]


def write_mixed_rows(source: Path) -> None:
    """Two rows that can be sent and three that the send refuses without a request."""
    source.write_text(
        "from,to,text\n"
        f"{SENDER},+13125550001,one\n"  # row 2
        f"{SENDER},555-0123,two\n"  # row 3: not E.164
        f"{SENDER},+13125550003,\n"  # row 4: no text
        f"{SENDER},+13125550004,four,extra\n"  # row 5: a cell too many
        f"{SENDER},+13125550005,five\n"  # row 6
    )


@pytest.mark.anyio
async def test_the_plan_names_the_rows_that_will_be_rejected(tmp_path: Path, capsys: Any) -> None:
    """Before anything is sent, the plan names the rows the send will refuse without a
    request (found only in RESULTS afterwards), and does not count them as messages."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_mixed_rows(source)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 1
        assert sorted(per_recipient(fake)) == ["+13125550001", "+13125550005"]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("plan: 2 messages (2 segments)")
    assert err[1] == "warning: 3 rows will be rejected without a request (recorded `rejected`):"
    assert err[2].startswith("  row 3: to: '555-0123' is not a valid E.164 number")
    assert err[3] == "  row 4: text: a message needs text or media_urls"
    assert err[4].startswith("  row 5: row has 4 cells but the header has 3")
    assert {r["row"]: r["status"] for r in results(out)} == {
        "2": "sent",
        "3": "rejected",
        "4": "rejected",
        "5": "rejected",
        "6": "sent",
    }


@pytest.mark.anyio
async def test_a_dry_run_sends_nothing_writes_no_results_and_needs_no_key(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--dry-run prints the plan and the rows that would be rejected, sends nothing, leaves no
    RESULTS (a later run is a new run, not a --resume), needs no API key, and exits 1 while a
    row would be rejected, 0 once none would."""
    monkeypatch.delenv("TELNYX_API_KEY", raising=False)
    monkeypatch.delenv("TELNYX_BASE_URL", raising=False)
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_mixed_rows(source)
    argv = ["bulk", str(source), "--out", str(out), "--dry-run", "--no-progress"]
    assert await anyio.to_thread.run_sync(main, argv) == 1
    captured = capsys.readouterr()
    assert captured.out == "dry run: nothing sent; 2 rows to send, 3 to be rejected\n"
    assert "warning: 3 rows will be rejected" in captured.err
    assert not out.exists()
    assert not out.with_name(out.name + ".journal").exists()
    write_rows(source, 3)
    async with FakeTelnyx() as fake:
        dry = [*argv, "--api-key", fake.api_key, "--base-url", fake.base_url]
        assert await anyio.to_thread.run_sync(main, dry) == 0
        assert list(fake.stats.requests) == []
        assert (
            capsys.readouterr().out == "dry run: nothing sent; 3 rows to send, 0 to be rejected\n"
        )
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        assert len(per_recipient(fake)) == 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "what"),
    [("recipients.xlsx", "an Excel workbook (.xlsx)"), ("recipients.xls", "Excel 97-2003")],
)
async def test_a_workbook_given_as_the_csv_says_to_save_it_as_csv(
    tmp_path: Path, capsys: Any, name: str, what: str
) -> None:
    """An Excel workbook passed as FILE is named as one (not "pass --encoding"), exit 2."""
    source, out = tmp_path / name, tmp_path / "out.csv"
    buffer = io.BytesIO()
    if name.endswith(".xlsx"):
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("xl/worksheets/sheet1.xml", "<sheetData/>")
    else:
        buffer.write(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    source.write_bytes(buffer.getvalue())
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 2
        assert fake.messages() == []
    err = capsys.readouterr().err
    assert what in err
    assert "CSV UTF-8" in err
    assert "--encoding" not in err


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["header", "row"])
async def test_a_line_no_csv_has_is_refused_without_reading_it_whole(
    tmp_path: Path, capsys: Any, where: str
) -> None:
    """A file with a line over 4 MiB (a JSON export, a dump without line breaks) is refused,
    exit 2, before anything is sent, instead of being read into memory whole."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    huge = "x" * (5 << 20)
    if where == "header":
        source.write_text(f"[{huge}]", encoding="utf-8")
    else:
        source.write_text(f"from,to,text\n{SENDER},+13125550001,{huge}\n", encoding="utf-8")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 2
        assert fake.messages() == []
    assert "a line longer than 4 MiB" in capsys.readouterr().err


_STRAY_QUOTES = {
    "left open to the end of the file": (
        'from,to,text\n{s},+13125550001,"hi there\n{s},+13125550002,second\n',
        "never closed",
    ),
    "closed at the end of a later row": (
        'from,to,text\n{s},+13125550001,"hi there\n{s},+13125550002,second"\n'
        "{s},+13125550003,third\n",
        "reads like a row of this file",
    ),
    "closed inside a later cell": (
        'from,to,text\n{s},+13125550001,"hi there\n{s},+13125550002,she said "ok"\n',
        "more text follows",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(_STRAY_QUOTES))
async def test_a_stray_quote_is_refused_before_anything_is_sent(
    tmp_path: Path, capsys: Any, case: str
) -> None:
    """A quote that opens a cell and is not closed where the cell ends would make the rows after
    it the text of one message, sent to the first row's recipient: the file is refused (exit 2,
    naming the row) before anything is sent."""
    template, complaint = _STRAY_QUOTES[case]
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(template.format(s=SENDER), encoding="utf-8")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 2
        assert fake.messages() == []
    err = capsys.readouterr().err
    assert "row 2:" in err
    assert complaint in err
    assert not out.exists()


@pytest.mark.anyio
async def test_quoted_cells_with_lines_commas_and_quotes_are_sent_as_written(
    tmp_path: Path,
) -> None:
    """A well-quoted text over several lines, with commas and doubled quotes, is one message."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(
        f'from,to,text\n{SENDER},+13125550001,"Hi,\nyour code is 1,2,3\n""Bye"""\n',
        encoding="utf-8",
    )
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        (message,) = fake.messages()
    assert message["text"] == 'Hi,\nyour code is 1,2,3\n"Bye"'


# --- output -------------------------------------------------------------------------------------


def test_progress_line_fits_the_terminal() -> None:
    """The progress text never reaches the last column, however narrow the terminal."""
    progress = Progress(2000, enabled=False)
    for status in ["sent"] * 440 + ["unknown"] * 3 + ["not_sent"] * 12:
        progress.update(status)
    for width in (20, 40, 60, 80, 200):
        line = progress.line(progress.started + 10, width)
        assert len(line) < width
        assert "455/2000" in line or width < 30


@pytest.mark.anyio
async def test_redirected_output_has_no_progress_frames(tmp_path: Path) -> None:
    """With stderr not a terminal, no carriage-return frames: the plan and a summary."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 40)
    async with FakeTelnyx() as fake:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "telnyx_msg",
            "bulk",
            str(source),
            "--out",
            str(out),
            "--api-key",
            fake.api_key,
            "--base-url",
            fake.base_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert b"\r" not in stderr
    assert stderr.decode().startswith("plan: 40 messages")
    assert b"40 rows: 40 sent" in stdout
    assert len(stderr) + len(stdout) < 600


# --- interrupted by signals (real processes) ----------------------------------------------------


async def start_bulk(
    fake: FakeTelnyx, source: Path, out: Path, *extra: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "telnyx_msg",
        "bulk",
        str(source),
        "--out",
        str(out),
        "--api-key",
        fake.api_key,
        "--base-url",
        fake.base_url,
        "--concurrency",
        "20",
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_for_journal(out: Path, rows: int, proc: asyncio.subprocess.Process) -> None:
    """Wait (at most 30 s) until ``rows`` rows were journaled or the process ended."""
    journal = Journal(out.with_name(out.name + ".journal"))
    for _ in range(3000):
        if proc.returncode is not None:
            return
        if journal.exists() and sum(1 for _ in journal.read()[1]) >= rows:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the bulk run made no progress")


def slow_fake(latency: float) -> FakeTelnyx:
    return FakeTelnyx(
        config=FakeConfig(
            faults=Faults(latency=latency, match=("POST *",)),
            request_log_size=20_000,
            max_messages=20_000,
        )
    )


@pytest.mark.anyio
async def test_a_signal_while_the_file_is_read_stops_before_the_first_request(
    tmp_path: Path,
) -> None:
    """Ctrl-C while a big file is planned: no row is sent (the plan was read on the event
    loop's thread, so the signal was handled only once sending had begun: 20 rows went out and
    were recorded unknown), RESULTS exists, and --resume continues the run."""
    source, out = tmp_path / "big.csv", tmp_path / "out.csv"
    write_rows(source, 200_000)  # about 1.5 s to read and plan
    async with slow_fake(0.3) as fake:
        proc = await start_bulk(fake, source, out)
        lock = out.with_name(out.name + ".lock")
        for _ in range(3000):
            if lock.exists() or proc.returncode is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # past start-up: the signal handlers are in place
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 130, stderr
        assert "interrupted while reading" in stderr.decode(), stderr
        assert fake.messages() == []
        assert results(out) == []  # its header only
        resume = await start_bulk(fake, source, out, "--resume")
        await wait_for_journal(out, 5, resume)
        resume.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(resume.communicate(), 60)
        assert resume.returncode == 130, stderr
    assert results(out)[0]["row"] == "2"


# The bulk command as on Windows: the event loop cannot install signal handlers, so Ctrl-C
# reaches asyncio.run, which cancels the main task.
WITHOUT_LOOP_SIGNAL_HANDLERS = """
import signal, sys
from asyncio import unix_events

def unsupported(*args, **kwargs):
    raise NotImplementedError

unix_events._UnixSelectorEventLoop.add_signal_handler = unsupported
signal.signal(signal.SIGINT, signal.default_int_handler)
from telnyx_msg.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.anyio
async def test_ctrl_c_while_the_file_is_read_without_loop_signal_handlers(
    tmp_path: Path,
) -> None:
    """Where the loop cannot handle signals (Windows), Ctrl-C during the plan also stops the
    plan's thread: the process read the rest of the file (and printed its plan) before it
    could exit, and a second Ctrl-C did nothing."""
    source, out = tmp_path / "big.csv", tmp_path / "out.csv"
    write_rows(source, 200_000)
    async with FakeTelnyx() as fake:
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-c", WITHOUT_LOOP_SIGNAL_HANDLERS, "bulk", str(source)],
            *["--out", str(out), "--api-key", fake.api_key, "--base-url", fake.base_url],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        lock = out.with_name(out.name + ".lock")
        for _ in range(3000):
            if lock.exists() or proc.returncode is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 130, stderr
        assert b"plan:" not in stderr, stderr
        assert fake.messages() == []


@pytest.mark.anyio
async def test_a_signal_echoed_by_a_wrapper_is_one_graceful_stop(tmp_path: Path) -> None:
    """Ctrl-C under ``timeout 120 telnyx-msg bulk ...`` reaches the command twice, a millisecond
    apart (the terminal signals the process group; timeout forwards it): the echo was taken
    for a second Ctrl-C and the run exited at once, without its summary or resume command."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 150)
    async with slow_fake(0.3) as fake:
        proc = await start_bulk(fake, source, out)
        await wait_for_journal(out, 20, proc)
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.005)  # delivered apart (not merged by the kernel), as echoes are
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    # -2: the stop was over (handlers given back) before the echo came; it ended the exit.
    assert proc.returncode in (130, -signal.SIGINT), stderr
    assert "in flight were recorded" in stderr.decode(), stderr
    assert "resume with: " in stderr.decode(), stderr


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
async def test_signal_records_rows_in_flight_then_resume_is_exact(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    """Ctrl-C / SIGTERM / SIGHUP (a dropped ssh session, which killed the run silently):
    in-flight rows recorded, exit 130/143/129, and the resume command it prints (quoted, with
    the options that read the file) finishes the run exactly once."""
    source, out = tmp_path / "my campaign.csv", tmp_path / "out.csv"
    write_rows(source, 150)
    source.write_bytes(source.read_text().replace("hello", "h\u00e9llo").encode("cp1252"))
    async with slow_fake(0.3) as fake:
        proc = await start_bulk(fake, source, out, "--encoding", "cp1252")
        await wait_for_journal(out, 40, proc)
        proc.send_signal(signum)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == code, stderr
        text = stderr.decode()
        assert "in flight were recorded" in text
        flight = re.search(r"the (\d+) row\(s\) in flight were recorded \(([^)]*)\)", text)
        assert flight is not None, text
        counted = {
            w: int(n) for n, w in re.findall(r"(\d+) (sent|rejected|unknown|not sent)", flight[2])
        }
        assert sum(counted.values()) == int(flight[1]), text  # the rows answered count too
        printed = re.search(r"resume with: (.*?)(?: \(add --retry-unknown|$)", text, re.M)
        assert printed is not None, text
        command = shlex.split(printed[1])
        assert command[:3] == ["telnyx-msg", "bulk", str(source)]
        # --base-url too: pasted with a real key exported, a run against a fake or staging
        # API resumed against Telnyx.
        assert command[-7:] == [
            *("--encoding", "cp1252", "--concurrency", "20"),
            *("--base-url", fake.base_url, "--resume"),
        ]
        records = results(out)
        assert len({r["row"] for r in records}) == len(records)
        assert max(per_recipient(fake).values()) == 1
        assert {r["status"] for r in records} <= {"sent", "unknown", "not_sent"}
        assert len(records) >= 40
        assert fake.stats.idempotent_replays == 0
        stopped = [r for r in records if r["status"] != "sent"]
        assert stopped, "no row was in flight at the signal"
        for record in stopped:  # each says why it is not sent
            assert record["error"].startswith("the run was stopped "), record
        credentials = ["--api-key", fake.api_key]
        resume = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "telnyx_msg", *command[1:], "--retry-unknown", *credentials],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(resume.communicate(), 60)
        assert resume.returncode == 0, stderr
        assert fake.messages()[0]["text"].startswith("h\u00e9llo")
    final = results(out)
    assert sorted(int(r["row"]) for r in final) == list(range(2, 152))
    assert {r["status"] for r in final} == {"sent"}
    counts = per_recipient(fake)
    assert len(counts) == 150
    assert set(counts.values()) == {1}


@pytest.mark.anyio
async def test_a_second_invocation_on_the_same_results_is_refused_while_one_runs(
    tmp_path: Path, capsys: Any
) -> None:
    """An overlapping --resume (a cron job, a second terminal) stops with exit 2 before
    sending anything; once the first has ended (or been killed -9) the lock is free."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 150)  # at 0.5 s a request: the first run lasts > 3 s
    async with slow_fake(0.5) as fake:
        proc = await start_bulk(fake, source, out)
        await wait_for_journal(out, 10, proc)
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another telnyx-msg bulk (pid {proc.pid})" in err
        proc.kill()
        await asyncio.wait_for(proc.communicate(), 30)
        # The refused run asked nothing: no row was requested twice (same run, same keys).
        assert fake.stats.idempotent_replays == 0
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 0
    assert {r["status"] for r in results(out)} == {"sent"}
    counts = per_recipient(fake)
    assert len(counts) == 150
    assert set(counts.values()) == {1}


@pytest.mark.anyio
async def test_kill_9_then_resume_records_unknown_rows_with_their_recipient(
    tmp_path: Path,
) -> None:
    """kill -9 mid-run: --resume records the rows in flight unknown, each with its ``to``."""
    rows = 60
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, rows)
    started = time.time()
    async with slow_fake(0.3) as fake:
        proc = await start_bulk(fake, source, out)
        await wait_for_journal(out, 30, proc)
        proc.kill()
        await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == -signal.SIGKILL  # not a run that had ended on its own
        resume = await start_bulk(fake, source, out, "--resume")
        _, stderr = await asyncio.wait_for(resume.communicate(), 60)
        assert resume.returncode == 1, stderr  # the unknown rows are left for --retry-unknown
        assert b"recorded as unknown" in stderr
    ended = time.time()
    records = results(out)
    assert sorted(int(r["row"]) for r in records) == list(range(2, rows + 2))
    unknown = [r for r in records if r["status"] == "unknown"]
    assert unknown, "no row was in flight at the kill"
    assert {r["status"] for r in records} == {"sent", "unknown"}
    # Each row says when it was first attempted; for the unknown ones the journal's times.
    for record in records:
        at = unstamp(record["first_attempt"])
        assert at is not None, record
        assert started - 1 <= at <= ended, record
    # write_rows: row N goes to +1312555 followed by N - 2 on four digits.
    assert [r["to"] for r in records] == [f"+1312555{int(r['row']) - 2:04d}" for r in records]


@pytest.mark.anyio
async def test_kill_9_while_a_not_sent_row_is_resent_records_it_unknown(
    tmp_path: Path, api_server: Callable[[Handler], Awaitable[ApiServer]]
) -> None:
    """A row one run left ``not_sent`` and a later run had on the wire when it was killed -9
    may have reached Telnyx: the next --resume records it unknown instead of sending it again
    (its earlier ``not_sent`` line is from before that run's journal began)."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 6)
    phase = ["refuse"]
    arrived = asyncio.Event()
    hold = asyncio.Event()  # row 6 stays on the wire until the kill
    row_6: list[str] = []

    async def handler(request: Any) -> Any:
        key = request.headers["Idempotency-Key"]
        if key.endswith(":6"):
            row_6.append(phase[0])
            if phase[0] == "refuse":  # 503 (after the retries): provably not sent
                error = {"errors": [{"code": "10011", "title": "Service unavailable"}]}
                return json_response(error, status=503)
            if phase[0] == "hold":
                arrived.set()
                await hold.wait()
        return json_response({"data": message_json(id=key.replace(":", "-"))})

    server = await api_server(handler)

    def cli(*extra: str) -> list[str]:
        return server_argv(source, out, server.base_url, *extra)

    assert await anyio.to_thread.run_sync(main, cli()) == 1
    assert {int(r["row"]): r["status"] for r in results(out)}[6] == "not_sent"
    phase[0] = "hold"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telnyx_msg", *cli("--resume"), stderr=asyncio.subprocess.PIPE
    )
    await asyncio.wait_for(arrived.wait(), 30)
    proc.kill()
    await asyncio.wait_for(proc.communicate(), 30)
    hold.set()
    phase[0] = "accept"
    assert await anyio.to_thread.run_sync(main, cli("--resume")) == 1
    assert row_6.count("hold") == 1
    assert "accept" not in row_6  # not asked again
    assert {int(r["row"]): r["status"] for r in results(out)}[6] == "unknown"
    assert await anyio.to_thread.run_sync(main, cli("--resume", "--retry-unknown")) == 0
    assert row_6.count("accept") == 1
    assert {r["status"] for r in results(out)} == {"sent"}


@pytest.mark.anyio
async def test_an_unknown_row_whose_resend_is_not_sent_stays_unknown(
    tmp_path: Path, api_server: Callable[[Handler], Awaitable[ApiServer]]
) -> None:
    """A 500 leaves a row unknown (it may have been accepted, key or not). If the
    --retry-unknown resend is refused unprocessed (503), the row is still unknown: a plain
    --resume must not send it, since the first attempt may have gone out."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 4)
    answer = [500]
    row_4: list[int] = []

    async def handler(request: Any) -> Any:
        key = request.headers["Idempotency-Key"]
        if key.endswith(":4"):
            row_4.append(answer[0])
            if answer[0] != 200:
                error = {"errors": [{"code": "10001", "title": "Server error"}]}
                return json_response(error, status=answer[0])
        return json_response({"data": message_json(id=key.replace(":", "-"))})

    server = await api_server(handler)

    async def run(*extra: str) -> int:
        argv = server_argv(source, out, server.base_url, *extra)
        code: int = await anyio.to_thread.run_sync(main, argv)
        return code

    def status_of_row_4() -> dict[str, str]:
        return {r["row"]: r for r in results(out)}["4"]

    assert await run() == 1
    assert status_of_row_4()["status"] == "unknown"  # a 500 after the retries
    answer[0] = 503
    assert await run("--resume", "--retry-unknown") == 1
    record = status_of_row_4()
    assert record["status"] == "unknown"
    assert "an earlier attempt may have been" in record["error"]
    asked = len(row_4)
    assert await run("--resume") == 1
    assert len(row_4) == asked  # not sent again without --retry-unknown
    answer[0] = 200
    assert await run("--resume", "--retry-unknown") == 0
    assert status_of_row_4()["status"] == "sent"
    assert row_4[-1] == 200


@pytest.mark.anyio
async def test_a_run_never_empties_a_journal_listing_a_row_without_outcome(tmp_path: Path) -> None:
    """Whatever cut a run short, its end records a journaled row that got no outcome as
    unknown before the journal is emptied (else the next --resume would send it again)."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 5)
    args = build_parser().parse_args(["bulk", str(source), "--out", str(out), "--api-key", "k"])
    run = BulkRun(args, open_table(source))
    run.prepare()
    run.begin()
    await run.journal.record(4)  # its request may have been written; no outcome came back
    run.finish()
    run.lock.release()
    assert list(run.journal.read()[1]) == []
    (record,) = results(out)
    assert record["row"] == "4"
    assert record["status"] == "unknown"
    assert record["to"] == "+13125550002"
    assert record["idempotency_key"] == idempotency_key(run.run_id, 4)


def test_the_printed_resume_command_hides_a_redis_password(tmp_path: Path) -> None:
    """The resume command goes to stderr (and logs): a password in --redis is masked."""
    source = tmp_path / "in.csv"
    write_rows(source, 3)
    url = "redis://:s3cret@127.0.0.1:6379/0"
    argv = ["bulk", str(source), "--shard", "2/3", "--redis", url, "--api-key", "k"]
    command = _resume_command(BulkRun(build_parser().parse_args(argv), open_table(source)))
    assert "s3cret" not in command
    assert shlex.split(command)[-5:] == [
        "--shard",
        "2/3",
        "--redis",
        "redis://:***@127.0.0.1:6379/0",
        "--resume",
    ]


def test_the_printed_resume_command_keeps_the_shared_limits_without_shards(
    tmp_path: Path,
) -> None:
    """--redis without --shard shares the limits with other senders: resuming without it
    would send at this process's limits alone, so the printed command keeps it."""
    source = tmp_path / "in.csv"
    write_rows(source, 3)
    argv = ["bulk", str(source), "--redis", "redis://127.0.0.1:6379/0", "--api-key", "k"]
    command = _resume_command(BulkRun(build_parser().parse_args(argv), open_table(source)))
    words = shlex.split(command)
    assert "--shard" not in words
    assert words[-3:] == ["--redis", "redis://127.0.0.1:6379/0", "--resume"]


def test_resume_of_a_journal_without_its_start_offset_counts_not_sent_as_unsettled(
    tmp_path: Path,
) -> None:
    """A journal written before the header recorded where RESULTS stood cannot tell an older
    ``not_sent`` line from one of the run that died: such a journaled row is recovered as
    unknown (it may have been resent), while sent/rejected/unknown lines settle theirs."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 6)
    results_file = Results(out)
    for row, status in ((2, "sent"), (3, "not_sent"), (5, "rejected"), (6, "not_sent")):
        key = idempotency_key("ab", row)
        results_file.append({"row": row, "to": "+1", "status": status, "idempotency_key": key})
    results_file.close()
    table = open_table(source)
    header = RunHeader("ab", fingerprint(table.path))
    assert b"results=" not in header.line()
    journal = out.with_name(out.name + ".journal")
    journal.write_bytes(header.line() + b"w 2\nw 3\nw 4\nw 5\n")
    args = build_parser().parse_args(["bulk", str(source), "--out", str(out), "--resume"])
    run = BulkRun(args, table)
    run.prepare()
    run.lock.release()
    assert run.recovered == [3, 4]
    assert run.run_id == "ab"


@pytest.mark.anyio
async def test_results_that_cannot_be_written_lose_no_row_and_send_none_twice(
    tmp_path: Path,
) -> None:
    """RESULTS stops taking writes mid-run (a full disk: here a file-size limit, EFBIG): the
    run stops with exit 1 and a message, the rows in flight stay journaled, and --resume
    records them unknown instead of sending them again."""
    rows = 120
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, rows)

    # The child limits itself, then runs the command (no preexec_fn in a threaded parent).
    # SIGXFSZ ignored: a write past the limit fails with EFBIG instead of killing the process.
    small_disk = (
        "import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000)); "
        "sys.argv = ['telnyx-msg', *sys.argv[1:]]; "
        "runpy.run_module('telnyx_msg', run_name='__main__')"
    )
    async with slow_fake(0.05) as fake:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", small_disk, "bulk", str(source), "--out", str(out)),
            *("--api-key", fake.api_key, "--base-url", fake.base_url, "--concurrency", "20"),
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 1, stderr
        text = stderr.decode()
        assert "File too large" in text
        assert "Traceback" not in text
        assert "--resume" in text
        assert max(per_recipient(fake).values()) == 1
        accepted = len(fake.messages())
        assert accepted < rows  # the limit stopped the run part-way
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 1
        assert fake.stats.idempotent_replays == 0  # nothing asked twice
        unknown = [r for r in results(out) if r["status"] == "unknown"]
        assert unknown
        code = await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown")
        assert code == 0
    records = results(out)
    assert sorted(int(r["row"]) for r in records) == list(range(2, rows + 2))
    assert {r["status"] for r in records} == {"sent"}
    assert set(per_recipient(fake).values()) == {1}
    assert len(per_recipient(fake)) == rows


@pytest.mark.slow
@pytest.mark.anyio
async def test_chaos_random_signals_never_twice_then_exactly_once(tmp_path: Path) -> None:
    """Random SIGINT/SIGTERM/SIGKILL mid-run, resumed until done: no recipient ever gets a
    message twice, and with --retry-unknown every row is sent exactly once.
    ``TNX_CHAOS_SEED`` replays one sequence of choices (the seed is printed)."""
    seed = int(os.environ.get("TNX_CHAOS_SEED") or int.from_bytes(os.urandom(4), "big"))
    print(f"\nchaos seed {seed} (TNX_CHAOS_SEED={seed} replays these choices)")
    rng = random.Random(seed)
    rows = 400
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, rows)
    async with slow_fake(0.15) as fake:
        journal = out.with_name(out.name + ".journal")
        for _ in range(12):  # bounded: at most 12 interrupted runs
            # As the CLI asks: --resume once a run has left something to resume (a run killed
            # while starting leaves nothing, and --resume then stops with exit 2).
            started = out.exists() or journal.exists()
            proc = await start_bulk(fake, source, out, *(("--resume",) if started else ()))
            with contextlib.suppress(asyncio.TimeoutError):  # any moment, startup included
                await asyncio.wait_for(proc.wait(), rng.uniform(0.1, 2.5))
            signum = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
            if proc.returncode is None:
                proc.send_signal(signum)
            await asyncio.wait_for(proc.communicate(), 60)
            # -2/-15: the signal came before Python had started the command (nothing done).
            assert proc.returncode in (0, 1, 130, 143, -9, -2, -15), proc.returncode
            assert max(per_recipient(fake).values(), default=1) == 1, f"seed {seed}"
            # Not even asked twice: only --retry-unknown may repeat an accepted request.
            assert fake.stats.idempotent_replays == 0, f"seed {seed}"
        final = await start_bulk(fake, source, out, "--resume", "--retry-unknown")
        _, stderr = await asyncio.wait_for(final.communicate(), 120)
        assert final.returncode == 0, stderr
    records = results(out)
    assert sorted(int(r["row"]) for r in records) == list(range(2, rows + 2))
    assert {r["status"] for r in records} == {"sent"}
    counts = per_recipient(fake)
    assert len(counts) == rows
    assert set(counts.values()) == {1}


# --- shards sharing limits through Redis ---------------------------------------------------------


@pytest.mark.anyio
async def test_shards_send_every_row_once_and_resume_alone(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """N shards together send each row exactly once; a shard resumes only as itself."""
    source = tmp_path / "in.csv"
    write_rows(source, 31)
    outs = [tmp_path / f"out_{i}.csv" for i in (1, 2, 3)]
    async with FakeTelnyx() as fake:
        codes = [
            await bulk(
                fake,
                str(source),
                "--out",
                str(outs[i - 1]),
                "--shard",
                f"{i}/3",
                "--redis",
                redis_url,
            )
            for i in (1, 2, 3)
        ]
        assert codes == [0, 0, 0]
        rows = sorted(int(r["row"]) for out in outs for r in results(out))
        assert rows == list(range(2, 33))
        assert [int(r["row"]) for r in results(outs[1])] == list(range(3, 33, 3))
        assert max(per_recipient(fake).values()) == 1
        assert len(per_recipient(fake)) == 31
        assert (
            await bulk(
                fake,
                str(source),
                "--out",
                str(outs[0]),
                "--shard",
                "2/3",
                "--redis",
                redis_url,
                "--resume",
            )
            == 2
        )
        assert "records shard 1/3" in capsys.readouterr().err
    assert main(["bulk", str(source), "--shard", "1/3", "--api-key", "k"]) == 2
    assert "--shard needs --redis" in capsys.readouterr().err


@pytest.mark.anyio
async def test_a_shard_another_process_sends_is_refused_before_anything_is_sent(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """Host A sends shard 2/3; host B (its own --out and disk: RESULTS' lock cannot see A)
    starts shard 2/3 too, or splits the same file in 2: B stops with exit 2 before sending,
    saying why. B sent every row of its shard again (each of those recipients got the message
    twice), or, split otherwise, sent some rows twice and others never; all exited 0."""
    source = tmp_path / "in.csv"
    write_rows(source, 300, start=7000)
    (tmp_path / "b").mkdir()
    async with slow_fake(0.3) as fake:
        first = await start_bulk(
            fake, source, tmp_path / "a.csv", "--shard", "2/3", "--redis", redis_url
        )
        try:
            await wait_for_journal(tmp_path / "a.csv", 1, first)
            for shard, says in (("2/3", "is being sent by another"), ("2/2", "split it in 3")):
                out = tmp_path / "b" / f"{shard.replace('/', '-')}.csv"
                argv = [str(source), "--out", str(out), "--shard", shard, "--redis", redis_url]
                assert await bulk(fake, *argv) == 2
                assert says in capsys.readouterr().err
                assert not out.exists()
        finally:
            _, stderr = await asyncio.wait_for(first.communicate(), 60)
        assert first.returncode == 0, stderr
        assert len(per_recipient(fake)) == 100
        assert max(per_recipient(fake).values()) == 1
        # The run went through its shard: nothing refuses a later campaign of the same file.
        again = tmp_path / "b" / "later.csv"
        argv = [str(source), "--out", str(again), "--shard", "2/3", "--redis", redis_url]
        assert await bulk(fake, *argv) == 0, capsys.readouterr().err
        assert len(results(again)) == 100


@pytest.mark.anyio
async def test_a_killed_shard_is_resumed_at_once_and_not_restarted_anew(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """kill -9 of a shard: a new run of that shard (another --out) is refused while its claim
    lasts, naming --resume; the --resume of its RESULTS takes the claim over at once and the
    shard's rows are each sent once."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 200, start=8000)
    async with slow_fake(0.3) as fake:
        await stop_shard_run(fake, source, out, "1/2", redis_url)
        argv = [str(source), "--shard", "1/2", "--redis", redis_url]
        assert await bulk(fake, *argv, "--out", str(tmp_path / "new.csv")) == 2
        assert "resume it with --resume" in capsys.readouterr().err
        assert await bulk(fake, *argv, "--out", str(out), "--resume", "--retry-unknown") == 0
        assert len(per_recipient(fake)) == 100
        assert max(per_recipient(fake).values()) == 1


async def stop_shard_run(
    fake: FakeTelnyx,
    source: Path,
    out: Path,
    shard: str,
    redis_url: str,
    *extra: str,
    rows: int = 20,
    signum: int | None = None,
    lapse: bool = False,
) -> tuple[int | None, str]:
    """Run shard ``shard`` of ``source`` until ``rows`` rows were journaled, then stop it with
    ``signum`` (kill -9 when None): its exit status and stderr. ``lapse``: then make its claim
    lapsed, as 30 s after a kill, once the requests it had on the wire (0.3 s each) were
    answered."""
    proc = await start_bulk(fake, source, out, "--shard", shard, "--redis", redis_url, *extra)
    await wait_for_journal(out, rows, proc)
    if signum is None:
        proc.kill()
    else:
        proc.send_signal(signum)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    # The requests it had on the wire reach the fake's store only after its latency (0.3 s),
    # however soon the run exited: count them before anything compares message counts.
    await asyncio.sleep(0.5)
    if lapse:
        await lapse_claims(redis_url, source)
        await asyncio.sleep(0.5)
    return proc.returncode, stderr.decode()


async def lapse_claims(url: str, source: Path) -> None:
    """Make every shard claim of ``source`` lapsed, as 30 s after its run was killed."""
    found = await claims(url, source)
    lapsed = {f: v.split("|")[0] + "|1" for f, v in found.items() if f != "n"}
    await set_claims(url, source, **lapsed)


@pytest.mark.anyio
async def test_a_killed_shard_is_not_sent_again_by_a_new_run_once_its_claim_lapsed(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """kill -9 of host A's shard after it sent some rows; 30 s later its claim lapsed, and an
    operator starts that shard again on host B (or beside a deleted RESULTS), as the refusal
    once advised ("or start again after 30 s"). B has no RESULTS of A's run, so it sent every
    row A had sent a second time (exit 0). It must be refused (exit 2, before any request),
    naming --resume and --overwrite; A's --resume then sends each row once and frees the
    shard."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 120, start=3000)
    async with slow_fake(0.3) as fake:
        await stop_shard_run(fake, source, out, "1/2", redis_url, lapse=True)
        sent_by_a = len(fake.messages())
        argv = [str(source), "--shard", "1/2", "--redis", redis_url]
        new = tmp_path / "host-b.csv"
        assert await bulk(fake, *argv, "--out", str(new)) == 2
        said = capsys.readouterr().err
        assert "stopped before the end of the shard" in said, said
        assert "--resume" in said, said
        assert "--overwrite" in said, said
        assert (len(fake.messages()), new.exists()) == (sent_by_a, False)
        assert await bulk(fake, *argv, "--out", str(out), "--resume", "--retry-unknown") == 0
        assert len(per_recipient(fake)) == 60
        assert max(per_recipient(fake).values()) == 1


@pytest.mark.anyio
async def test_an_interrupted_shard_is_kept_for_its_resume_and_overwrite_sends_it_again(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """Ctrl-C of a shard run (exit 130) gives its claim up: at once, a new run of that shard
    elsewhere sent the rows the interrupted run had sent again. The interrupted run keeps the
    shard (its --resume takes it at once; a new run is refused), and ``--overwrite`` is the
    explicit way to send the whole shard again."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 120, start=3200)
    async with slow_fake(0.3) as fake:
        code, said = await stop_shard_run(fake, source, out, "2/2", redis_url, signum=signal.SIGINT)
        assert code == 130, said
        argv = [str(source), "--shard", "2/2", "--redis", redis_url]
        sent = len(fake.messages())
        assert await bulk(fake, *argv, "--out", str(tmp_path / "b.csv")) == 2
        assert "stopped before the end of the shard" in capsys.readouterr().err
        assert len(fake.messages()) == sent
        again = tmp_path / "again.csv"
        assert await bulk(fake, *argv, "--out", str(again), "--overwrite") == 0
        assert {r["status"] for r in results(again)} == {"sent"}
        assert len(results(again)) == 60
        assert len(per_recipient(fake)) == 60


def write_cp1252_rows(path: Path, count: int, *, start: int, accented: int) -> None:
    """``count`` rows saved as cp1252, as Excel on Windows does; row ``accented`` (numbered as a
    spreadsheet shows it) has an "é", the only byte that is not valid UTF-8."""
    lines = ["from,to,text"] + [
        f"{SENDER},+1312555{n:04d},hello {n}" for n in range(start, start + count)
    ]
    lines[accented - 1] = lines[accented - 1] + " café"
    path.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))


@pytest.mark.anyio
async def test_a_shard_run_that_failed_before_sending_anything_does_not_block_the_shard(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """A user starts shard 1/2 of a cp1252 file without --encoding: the run stops reading the
    file ("pass --encoding"), exit 2, before any request (there is no RESULTS and no journal).
    Run again with --encoding cp1252, as told, it must send the shard. The failed run kept
    its shard for a week as one "which stopped before the end of the shard": the new run was
    refused ("Resume it with --resume on its RESULTS"), and --resume then said "nothing to
    resume ... drop --resume to start a new run": each message pointed at the other, and only
    --overwrite ("send the whole shard again") or a week's wait got the shard sent."""
    source, out = tmp_path / "contacts.csv", tmp_path / "out.csv"
    write_cp1252_rows(source, 40, start=5100, accented=31)
    argv = [str(source), "--out", str(out), "--shard", "1/2", "--redis", redis_url]
    async with FakeTelnyx() as fake:
        assert await bulk(fake, *argv) == 2
        said = capsys.readouterr().err
        assert "pass --encoding" in said, said
        assert list(fake.stats.requests) == []
        assert not out.exists()
        code = await bulk(fake, *argv, "--encoding", "cp1252")
        said = capsys.readouterr().err
        assert code == 0, said
        assert "stopped before the end of the shard" not in said, said
        assert len(per_recipient(fake)) == 20
        assert max(per_recipient(fake).values()) == 1
    assert {r["status"] for r in results(out)} == {"sent"}


@pytest.mark.anyio
async def test_a_stopped_run_replaced_by_overwrite_does_not_resend_the_shard_on_resume(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """Host A's run of shard 1/2 is killed after sending some rows. Host B's new run of the
    shard is refused (A stopped before the end of it) and B's operator follows the refusal's
    advice, ``--overwrite``: B sends the whole shard and ends (exit 0). Later A's operator,
    finding the crash, resumes A's run as the docs say to finish a stopped shard. A's run was
    replaced: its --resume must not send any row again (it is refused, as it is while B is
    sending, or when B stopped). It took the freed shard and sent every row A had not reached,
    each of which B had sent: those recipients got the message twice, and A exited 0."""
    source, out_a, out_b = tmp_path / "in.csv", tmp_path / "a.csv", tmp_path / "b.csv"
    write_rows(source, 120, start=5300)  # shard 1/2: 60 rows
    argv = [str(source), "--shard", "1/2", "--redis", redis_url]
    async with slow_fake(0.3) as fake:
        await stop_shard_run(fake, source, out_a, "1/2", redis_url, lapse=True)
        assert await bulk(fake, *argv, "--out", str(out_b)) == 2
        assert "--overwrite" in capsys.readouterr().err
        assert await bulk(fake, *argv, "--out", str(out_b), "--overwrite") == 0
        assert len(per_recipient(fake)) == 60
        capsys.readouterr()
        sent = len(fake.messages())
        code = await bulk(fake, *argv, "--out", str(out_a), "--resume")
        said = capsys.readouterr().err
        assert (code, len(fake.messages())) == (2, sent), said
        assert "was sent by run" in said, said


@pytest.mark.anyio
async def test_a_new_run_that_failed_before_sending_keeps_the_record_that_refuses_a_resume(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """Host A's run of shard 1/2 (a cp1252 export, read with --encoding cp1252) is killed after
    sending some rows. Host B sends the whole shard again with --overwrite (exit 0): A's
    --resume is now refused. Then someone on host C starts the same shard and forgets
    --encoding: C stops reading the file (exit 2, "pass --encoding") before any request.
    A's operator then finds the crash and resumes A, as the docs say to finish a stopped shard.
    It must still be refused (exit 2, "was sent by run", no request): B sent every row.
    Today C's failed start deletes B's record ("a new run that sent nothing leaves the shard
    as it found it" removes the field instead of restoring B's), so A's --resume is accepted
    and sends every row A had not reached a second time, under A's Idempotency-Keys (Telnyx
    cannot tell them from B's): those recipients get the message twice."""
    source = tmp_path / "contacts.csv"
    out_a, out_b, out_c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_cp1252_rows(source, 120, start=5600, accented=110)  # shard 1/2: 60 rows
    shard = [str(source), "--shard", "1/2", "--redis", redis_url]
    cp1252 = ["--encoding", "cp1252"]
    async with slow_fake(0.3) as fake:
        proc = await start_bulk(fake, source, out_a, *shard[1:], *cp1252)
        await wait_for_journal(out_a, 20, proc)
        proc.kill()
        await asyncio.wait_for(proc.communicate(), 60)
        await lapse_claims(redis_url, source)  # as 30 s after the kill
        await asyncio.sleep(1.0)  # the requests A had on the wire are answered
        assert await bulk(fake, *shard, "--out", str(out_b), "--overwrite", *cp1252) == 0
        assert len(per_recipient(fake)) == 60
        capsys.readouterr()
        sent = len(fake.messages())
        assert await bulk(fake, *shard, "--out", str(out_c)) == 2
        said = capsys.readouterr().err
        assert "pass --encoding" in said, said
        assert len(fake.messages()) == sent
        code = await bulk(fake, *shard, "--out", str(out_a), "--resume", *cp1252)
        said = capsys.readouterr().err
        resent = len(fake.messages()) - sent
        assert (code, resent) == (2, 0), f"A's --resume sent {resent} row(s) B had sent: {said}"
        assert "was sent by run" in said, said


@pytest.mark.anyio
async def test_a_resplit_that_failed_before_sending_keeps_the_records_of_the_old_split(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """The file was sent in 2 shards (run-b and run-c went through theirs, after an earlier
    run of shard 1 stopped). A new run splitting it in 3 fails before any request (no
    --encoding for a cp1252 file). The records of the 2-way split must still be there, as
    that run found them: they are what refuses the stopped run's --resume (its remaining rows
    were sent by run-b). Today the new split's claim deletes them and its failed start removes
    its own field, leaving nothing: the stopped run's --resume would send its rows again."""
    source, out = tmp_path / "contacts.csv", tmp_path / "c.csv"
    write_cp1252_rows(source, 30, start=5800, accented=25)
    records = {"n": "2", "shard:1": "run-b|done", "shard:2": "run-c|done"}
    await set_claims(redis_url, source, **records)
    async with FakeTelnyx() as fake:
        argv = [str(source), "--out", str(out), "--shard", "1/3", "--redis", redis_url]
        assert await bulk(fake, *argv) == 2
        said = capsys.readouterr().err
        assert "pass --encoding" in said, said
        assert list(fake.stats.requests) == []
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        left = await client.hgetall(claim_key(source))
    finally:
        await client.aclose()
    assert left == records


@pytest.mark.anyio
async def test_a_stopped_run_of_a_file_resplit_since_does_not_resume(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """Host A's run of shard 1/2 is killed; the operator re-splits the file in 3 with
    --overwrite (as the refusal offers) and those runs go through. A's --resume found the hash
    split in 3 with every run done, took it as free and sent the rows of its shard it had not
    reached, which the 3-way split had sent. It must be refused, naming the other split."""
    source, out_a = tmp_path / "in.csv", tmp_path / "a.csv"
    write_rows(source, 90, start=5900)
    async with slow_fake(0.3) as fake:
        await stop_shard_run(fake, source, out_a, "1/2", redis_url, rows=10, lapse=True)
        for i in (1, 2, 3):
            out = tmp_path / f"c{i}.csv"
            argv = [str(source), "--out", str(out), "--shard", f"{i}/3", "--redis", redis_url]
            assert await bulk(fake, *argv, "--overwrite") == 0, capsys.readouterr().err
        assert len(per_recipient(fake)) == 90
        capsys.readouterr()
        sent = len(fake.messages())
        argv = [str(source), "--out", str(out_a), "--shard", "1/2", "--redis", redis_url]
        code = await bulk(fake, *argv, "--resume")
        said = capsys.readouterr().err
        assert (code, len(fake.messages()) - sent) == (2, 0), said
        assert "has been split in 3" in said, said


async def claims(url: str, source: Path) -> dict[str, str]:
    """The claim hash of ``source``'s content, as text."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    try:
        found = await client.hgetall(claim_key(source))
        return {str(k): str(v) for k, v in found.items()}
    finally:
        await client.aclose()


async def interrupted_while_reading(
    fake: FakeTelnyx, source: Path, out: Path, *extra: str
) -> tuple[int | None, str]:
    """Start the command, SIGINT it while it reads FILE; its exit status and stderr."""
    proc = await start_bulk(fake, source, out, "--no-progress", *extra)
    lock = out.with_name(out.name + ".lock")
    for _ in range(3000):
        if lock.exists() or proc.returncode is not None:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # past start-up: the signal handlers are in place, FILE is read
    proc.send_signal(signal.SIGINT)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, stderr.decode()


async def interrupted_while_claiming(
    fake: FakeTelnyx, proxy: SlowRedis, source: Path, out: Path, *extra: str
) -> tuple[int | None, str]:
    """Start the command, SIGINT it while its shard claim is held up by ``proxy``; its exit
    status and stderr."""
    proc = await start_bulk(fake, source, out, *extra)
    try:
        await asyncio.wait_for(proxy.evaluating.wait(), 30)  # the claim is on its way
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, stderr.decode()


def quick_fake() -> FakeTelnyx:
    return FakeTelnyx(config=FakeConfig(faults=Faults(latency=0.0), max_messages=20_000))


@pytest.mark.anyio
async def test_ctrl_c_while_reading_leaves_the_shard_record_as_it_was(
    tmp_path: Path, redis_url: str
) -> None:
    """Shard 1/2 of a file was sent by run A (its record: done). Today an operator starts a
    new run of the shard, and presses Ctrl-C while the big file is still being read: exit 130,
    "interrupted while reading", no request. That run sent nothing, so, as the docs say, it
    "leaves the shard as it found it": A's done record, and a new run of the shard elsewhere
    is accepted.

    It claimed the shard after the signal anyway (the read returns early, and the flow goes
    on to the claim and begin()), and gave it up as "stopped before the end of the shard":
    A's record is replaced by the interrupted run's, and for a week every new run of the
    shard is refused ("a new run would send again every row it sent": it sent none) unless
    given --overwrite."""
    source, out = tmp_path / "big.csv", tmp_path / "out.csv"
    write_rows(source, 200_000)  # about 1.5 s to read and plan
    found = {"n": "2", "shard:1": "run-a|done"}
    await set_claims(redis_url, source, **found)
    shard = ["--shard", "1/2", "--redis", redis_url]
    async with quick_fake() as fake:
        code, said = await interrupted_while_reading(fake, source, out, *shard)
        assert code == 130, said
        assert "interrupted while reading" in said, said
        assert fake.messages() == []
        left = await claims(redis_url, source)
        assert left == found, f"the run that sent nothing left {left}, not {found}: {said}"


@pytest.mark.anyio
async def test_ctrl_c_while_reading_beside_a_live_shard_exits_as_interrupted(
    tmp_path: Path, redis_url: str
) -> None:
    """Another host is sending shard 1/2; here the operator starts the same shard by mistake
    and, seeing the plan take long, presses Ctrl-C while the file is read. The run sends
    nothing and says it was interrupted (exit 130, as without --redis), not a refusal
    found by a claim made after the Ctrl-C (exit 2, "is being sent by another")."""
    source, out = tmp_path / "big.csv", tmp_path / "out.csv"
    write_rows(source, 200_000, start=1)
    await set_claims(redis_url, source, n="2", **{"shard:1": "run-b|{future}"})
    async with quick_fake() as fake:
        code, said = await interrupted_while_reading(
            fake, source, out, "--shard", "1/2", "--redis", redis_url
        )
        assert fake.messages() == []
        assert (code, "interrupted while reading" in said) == (130, True), said


@pytest.mark.anyio
async def test_ctrl_c_while_reading_with_overwrite_keeps_the_old_results(tmp_path: Path) -> None:
    """``--overwrite`` over an earlier run's RESULTS, then Ctrl-C while the big FILE is still
    read (the operator changed their mind): nothing is sent, and the earlier RESULTS (the
    record of what that run sent) must stay as it was. It was deleted, with its journal,
    while the run said "no row was sent"."""
    small, big, out = tmp_path / "small.csv", tmp_path / "big.csv", tmp_path / "out.csv"
    write_rows(small, 5, start=6100)
    write_rows(big, 200_000, start=100_000)  # about 1.5 s to read and plan
    async with quick_fake() as fake:
        assert await bulk(fake, str(small), "--out", str(out)) == 0
        before = out.read_bytes()
        out.with_name(out.name + ".lock").unlink()  # so the signal waits for this run's lock
        code, said = await interrupted_while_reading(fake, big, out, "--overwrite")
        assert (code, "interrupted while reading" in said) == (130, True), said
        assert len(fake.messages()) == 5
    assert out.read_bytes() == before, said


class SlowRedis:
    """A TCP proxy in front of a real redis-server that holds each script call (the shard
    claim's EVAL) for ``delay`` seconds, and says when one arrived."""

    def __init__(self, target: str, delay: float) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.delay = delay
        self.evaluating = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        down = asyncio.ensure_future(self._pipe(up_reader, writer, hold=False))
        self.tasks.add(down)
        try:
            await self._pipe(reader, up_writer, hold=True)
        finally:
            down.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await down
            writer.close()
            up_writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hold: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                if hold and b"EVAL" in chunk.upper():
                    self.evaluating.set()
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()


@pytest.mark.anyio
async def test_ctrl_c_while_the_shard_is_claimed_with_overwrite_keeps_the_old_results(
    tmp_path: Path, redis_url: str
) -> None:
    """An earlier run sent 5 rows (its RESULTS say so). The operator starts ``--overwrite``
    of the shard, then changes their mind and presses Ctrl-C while the run claims the shard
    (before any request): nothing is sent, and the earlier RESULTS must stay as they were,
    as they do when the Ctrl-C comes while FILE is read."""
    first, again, out = tmp_path / "first.csv", tmp_path / "again.csv", tmp_path / "out.csv"
    write_rows(first, 5, start=6100)
    write_rows(again, 5, start=7100)
    proxy = SlowRedis(redis_url, delay=2.0)
    slow_url = await proxy.start()
    try:
        async with quick_fake() as fake:
            assert await bulk(fake, str(first), "--out", str(out)) == 0
            before = out.read_bytes()
            shard = ["--overwrite", "--no-progress", "--shard", "1/1", "--redis", slow_url]
            returncode, said = await interrupted_while_claiming(fake, proxy, again, out, *shard)
            assert len(fake.messages()) == 5, said  # the second run sent nothing
            assert returncode == 130, said
    finally:
        await proxy.close()
    assert out.read_bytes() == before, (said, out.read_text())


@pytest.mark.anyio
async def test_ctrl_c_while_an_overwrite_resplit_claims_keeps_the_stopped_runs_records(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """Run A sent part of shard 1/2 of a file and was interrupted (its record: stopped). An
    operator starts ``--overwrite --shard 1/3`` of the file, then presses Ctrl-C while the run
    claims its shard: exit 130, "nothing sent; RESULTS left as it was". The claim had already
    dropped the file's records (the split changed) and the release of a run that "sent
    nothing" deleted the rest, so A's stopped record was gone: a new run of shard 1/2 on host B
    (no --overwrite) was accepted and sent every row A had sent a second time. As before the
    Ctrl-C, it must be refused (exit 2, "stopped before the end of the shard"), before any
    request."""
    source, out_a = tmp_path / "in.csv", tmp_path / "a.csv"
    write_rows(source, 120, start=5200)
    async with slow_fake(0.3) as fake:
        code, said = await stop_shard_run(
            fake, source, out_a, "1/2", redis_url, signum=signal.SIGINT
        )
        assert code == 130, said
    argv = [str(source), "--shard", "1/2", "--redis", redis_url]
    async with quick_fake() as fake:
        # Before: a new run of shard 1/2 elsewhere is refused.
        assert await bulk(fake, *argv, "--out", str(tmp_path / "b0.csv")) == 2
        assert "stopped before the end of the shard" in capsys.readouterr().err
        # The --overwrite resplit, interrupted while it claims its shard.
        proxy = SlowRedis(redis_url, delay=2.0)
        slow_url = await proxy.start()
        try:
            extra = ["--overwrite", "--no-progress", "--shard", "1/3", "--redis", slow_url]
            returncode, said = await interrupted_while_claiming(
                fake, proxy, source, tmp_path / "c.csv", *extra
            )
        finally:
            await proxy.close()
        assert returncode == 130, said
        assert "nothing sent" in said, said
        assert fake.messages() == [], said
        # After: host B's new run of shard 1/2 must still be refused.
        code = await bulk(fake, *argv, "--out", str(tmp_path / "b1.csv"))
        err = capsys.readouterr().err
        assert (code, len(fake.messages())) == (2, 0), (
            f"exit {code}; sent again {len(per_recipient(fake))} of the rows; {err}"
        )


def journaled(out: Path) -> set[int]:
    """The rows whose request the run at ``out`` was about to write."""
    journal = Journal(out.with_name(out.name + ".journal"))
    return {row for row, _ in journal.read()[1]} if journal.exists() else set()


@pytest.mark.anyio
async def test_a_host_whose_clock_runs_ahead_does_not_take_a_live_shard(
    tmp_path: Path, redis_url: str, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host B's clock is a minute ahead of host A's (no NTP on one of them): B starting the
    shard A is sending this very second must be refused (exit 2, "being sent by another"),
    as it is when the clocks agree. The claim's expiry is written and judged with each
    host's own clock, so B saw A's fresh claim as lapsed, took the shard and sent its rows a
    second time (exit 0)."""
    source = tmp_path / "in.csv"
    write_rows(source, 200, start=7000)
    async with slow_fake(0.3) as fake:
        first = await start_bulk(
            fake, source, tmp_path / "a.csv", "--shard", "1/2", "--redis", redis_url
        )
        try:
            await wait_for_journal(tmp_path / "a.csv", 1, first)  # A holds its claim
            real = time.time
            with monkeypatch.context() as patched:  # this process is host B
                patched.setattr(time, "time", lambda: real() + 60.0)
                out = tmp_path / "b.csv"
                argv = [str(source), "--out", str(out), "--shard", "1/2", "--redis", redis_url]
                code = await bulk(fake, *argv)
        finally:
            _, stderr = await asyncio.wait_for(first.communicate(), 60)
        assert first.returncode == 0, stderr
        twice = sorted(to for to, n in per_recipient(fake).items() if n > 1)
        assert (code, twice[:3], len(twice)) == (2, [], 0)
        assert "is being sent by another" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_run_whose_claim_was_taken_over_sends_nothing_more(
    tmp_path: Path, redis_url: str
) -> None:
    """Host A's run is paused past the claim's 30 s (Ctrl-Z, a suspended VM, Redis out of
    reach for a while): host B then takes the shard (--overwrite). When A resumes it must
    not write another request of the shard B now sends (it should stop, the rows it has not
    sent recorded not_sent). A's refresh found its claim held by B and ignored that: A went
    on sending every remaining row of the shard, which B sent too, and exited 0."""
    source, out_a, out_b = tmp_path / "in.csv", tmp_path / "a.csv", tmp_path / "b.csv"
    write_rows(source, 200, start=6000)
    async with slow_fake(0.3) as fake:
        first = await start_bulk(fake, source, out_a, "--shard", "1/2", "--redis", redis_url)
        try:
            await wait_for_journal(out_a, 20, first)
            first.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.5)
            before = journaled(out_a)
            await asyncio.sleep(CLAIM_TTL + 1.5)  # A's claim lapses
            # B sends the shard again, as --overwrite asks (a new run without it is refused).
            argv = [str(source), "--out", str(out_b), "--shard", "1/2", "--redis", redis_url]
            argv.append("--overwrite")
            second = asyncio.ensure_future(bulk(fake, *argv))
            for _ in range(1000):  # B took the shard and is sending
                if journaled(out_b) or second.done():
                    break
                await asyncio.sleep(0.01)
            assert journaled(out_b), "B did not start"
        finally:
            first.send_signal(signal.SIGCONT)
            _, stderr = await asyncio.wait_for(first.communicate(), 60)
        assert await asyncio.wait_for(second, 60) == 0
        # Rows A wrote after B took the shard (the ones in flight at the pause excepted).
        later = {int(r["row"]) for r in results(out_a) if r["status"] != "not_sent"} - before
        assert (len(later), sorted(later)[:3]) == (0, []), stderr.decode()[-2000:]
        assert first.returncode != 0


async def shard_after_a_claim_change(
    source: Path, out: Path, redis_url: str, change: Awaitable[None]
) -> tuple[int | None, str, float]:
    """Run shard 1/2 of ``source`` at 5/s; once it sends, await ``change`` (to its claim in
    Redis): the exit status, stderr, and the seconds the run went on after the change."""
    async with FakeTelnyx() as fake:
        proc = await start_bulk(
            *(fake, source, out, "--no-progress", "--account-mps", "5", "--shard", "1/2"),
            *("--redis", redis_url),
        )
        try:
            for _ in range(1000):  # the run holds its claim and sends
                if len(fake.messages()) >= 3 or proc.returncode is not None:
                    break
                await asyncio.sleep(0.01)
            await change
            changed = time.monotonic()
            _, stderr = await asyncio.wait_for(proc.communicate(), 90)
            return proc.returncode, stderr.decode(), time.monotonic() - changed
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def steal_the_claim(url: str, source: Path) -> None:
    """Make another run (``intruder``) the holder of shard 1 of ``source``, for ten minutes of
    Redis time."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        key = claim_key(source)
        assert await client.exists(key)
        seconds, micros = await client.time()
        until = seconds * 1000 + micros // 1000 + 600_000
        await client.hset(key, "shard:1", f"intruder|{until}")
    finally:
        await client.aclose()


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_run_whose_claim_was_taken_over_stops_promptly_and_says_why(
    tmp_path: Path, redis_url: str
) -> None:
    """Another run takes the shard over while this one is sending (docs/cli.md: such a run
    "writes no further request"). The user must be told, and the run must end once it
    knows: within a refresh (10 s) plus a few seconds, exit non-zero, naming the shard.
    Today it carries on through every remaining row of the shard at the rate limit (taking
    tokens from the shared account limit the new owner sends with), recording each
    ``not_sent``, and ends with only the usual tally (exit 1, no reason, no hint)."""
    source, out = tmp_path / "in.csv", tmp_path / "a.csv"
    write_rows(source, 400, start=5000)  # shard 1/2: 200 rows, 40 s at 5 messages/s
    code, said, ended = await shard_after_a_claim_change(
        source, out, redis_url, steal_the_claim(redis_url, source)
    )
    assert code not in (0, None), said
    assert "no longer this run's" in said, said
    assert ended < 16.0, f"the run went on for {ended:.0f} s after losing its shard:\n{said}"


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_run_whose_claim_lapsed_while_another_sent_the_shard_sends_nothing_more(
    tmp_path: Path, redis_url: str
) -> None:
    """Host A's run is paused past the claim's 30 s (Ctrl-Z, a suspended VM) with requests on
    the wire; host B then takes the shard (--overwrite), sends all of it and ends (releasing
    the claim) before A wakes. docs/cli.md: "A run whose own claim lapsed (suspended for
    longer, Redis out of reach) or was taken over writes no further request: it stops (exit 1,
    saying so)". When A wakes, its refresher re-claims the shard (B's claim is gone, so Redis
    says ok) before anything looks at the lapse, and A goes on sending the rest of the shard,
    every row of which B had sent: each of those recipients gets the message twice, and A
    exits 0."""
    source, out_a, out_b = tmp_path / "in.csv", tmp_path / "a.csv", tmp_path / "b.csv"
    write_rows(source, 80, start=4000)  # shard 1/2: 40 rows; A sends 20 at a time
    latency = CLAIM_TTL + 6.0  # A's answers come after it wakes
    async with slow_fake(latency) as fake_a, FakeTelnyx() as fake_b:
        first = await start_bulk(fake_a, source, out_a, "--shard", "1/2", "--redis", redis_url)
        try:
            await wait_for_journal(out_a, 20, first)  # 20 requests on the wire
            first.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.5)
            before = journaled(out_a)
            await asyncio.sleep(CLAIM_TTL + 1.0)  # A's claim lapses
            argv = [str(source), "--out", str(out_b), "--shard", "1/2", "--redis", redis_url]
            argv.append("--overwrite")  # a new run without it is refused
            # B sends the whole shard and ends while A is still paused.
            assert await asyncio.wait_for(bulk(fake_b, *argv), 30) == 0
            assert len(per_recipient(fake_b)) == 40
        finally:
            first.send_signal(signal.SIGCONT)
            _, stderr = await asyncio.wait_for(first.communicate(), 150)
    said = stderr.decode()[-2000:]
    # Rows A wrote after it woke: B had sent each of them already.
    later = {int(r["row"]) for r in results(out_a) if r["status"] != "not_sent"} - before
    assert (len(later), sorted(later)[:3]) == (0, []), said
    assert first.returncode not in (0, None), said
    assert "no longer this run's" in said, said


def claim_key(source: Path) -> str:
    """The Redis hash that holds the shard claims of ``source``'s content."""
    return "telnyx-msg:bulk:" + hashlib.sha256(fingerprint(source).encode()).hexdigest()[:32]


async def set_claims(url: str, source: Path, **fields: str) -> None:
    """Write ``fields`` into ``source``'s claim hash; ``{past}`` / ``{future}`` in a value
    become a Redis-clock time a minute ago / ten minutes ahead (milliseconds)."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        seconds, micros = await client.time()
        now = seconds * 1000 + micros // 1000
        values = {
            name: value.format(past=now - 60_000, future=now + 600_000)
            for name, value in fields.items()
        }
        key = claim_key(source)
        await client.hset(key, mapping=values)  # type: ignore[arg-type]
        await client.pexpire(key, 600_000)
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_a_campaign_resplit_after_its_runs_stopped_is_refused_unless_overwritten(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """The hosts that sent a file in 2 shards were killed (kill -9, a reboot) and their claims
    lapsed. Split in 3, the file's rows those runs sent would be sent again: a run of shard 1/3
    is refused (exit 2, naming --resume and --overwrite) rather than told the other shards are
    live ("split it in 2"), and ``--overwrite`` sends it in 3 shards, as asked; the only way
    out must not be to wait for the records to expire or delete them by hand."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 9, start=4000)
    await set_claims(redis_url, source, n="2", **{"shard:1": "old-run|{past}"})
    async with FakeTelnyx() as fake:
        argv = [str(source), "--out", str(out), "--shard", "1/3", "--redis", redis_url]
        assert await bulk(fake, *argv) == 2
        err = capsys.readouterr().err
        assert "stopped before the end of their shard" in err, err
        assert "--overwrite" in err, err
        assert "split it in 2" not in err, err
        assert list(fake.stats.requests) == []
        code = await bulk(fake, *argv, "--overwrite")
        assert code == 0, capsys.readouterr().err
        assert len(per_recipient(fake)) == 3
    assert [r["status"] for r in results(out)] == ["sent"] * 3


@pytest.mark.anyio
async def test_a_dry_run_beside_a_live_shard_is_not_refused(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """``--dry-run`` sends nothing, so it neither needs nor takes the shard: a dry run of the
    shard another host is sending right now prints its plan (exit 0) instead of failing with
    "is being sent by another", and it leaves that host's claim as it was."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 6, start=4100)
    await set_claims(redis_url, source, n="2", **{"shard:1": "other-host|{future}"})
    async with FakeTelnyx() as fake:
        argv = [str(source), "--out", str(out), "--shard", "1/2", "--redis", redis_url]
        code = await bulk(fake, *argv, "--dry-run")
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "being sent by another" not in captured.err
        assert captured.out.startswith("dry run: nothing sent")
        assert list(fake.stats.requests) == []
    import redis

    admin = redis.Redis.from_url(redis_url)
    try:
        held = admin.hget(claim_key(source), "shard:1")
        assert isinstance(held, bytes)
        assert held.startswith(b"other-host|")
    finally:
        admin.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_run_whose_file_another_run_resplit_stops_promptly_and_says_why(
    tmp_path: Path, redis_url: str
) -> None:
    """While shard 1/2 is sending, another run re-splits the file (the claim hash now says 3
    shards). Rows of this shard are now another run's too: the run must stop within a refresh
    (10 s) plus a few seconds, say that the file was split otherwise, and must not print a
    "Resume with" command (resuming would send rows the other split's shard sends)."""
    source, out = tmp_path / "in.csv", tmp_path / "a.csv"
    write_rows(source, 400, start=5500)  # shard 1/2: 200 rows, 40 s at 5 messages/s
    code, said, ended = await shard_after_a_claim_change(
        source, out, redis_url, set_claims(redis_url, source, n="3")
    )
    assert code not in (0, None), said
    assert "split the file in 3" in said, said
    assert "Resume with" not in said, said
    assert ended < 16.0, f"the run went on for {ended:.0f} s after its file was re-split:\n{said}"


# The child ignores SIGHUP as nohup makes it, then runs the command.
_NOHUP = (
    "import runpy, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); "
    "sys.argv = ['telnyx-msg', *sys.argv[1:]]; "
    "runpy.run_module('telnyx_msg', run_name='__main__')"
)


@pytest.mark.anyio
async def test_a_run_started_under_nohup_goes_on_after_a_hangup(tmp_path: Path) -> None:
    """``nohup telnyx-msg bulk ...`` is how a long run is made to survive the ssh session
    that started it: the hangup it then gets must not stop it (SIGHUP stops only a run that
    did not ask to ignore it). It sends every row and exits 0."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 80, start=4200)
    async with slow_fake(0.3) as fake:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", _NOHUP, "bulk", str(source), "--out", str(out)),
            *("--api-key", fake.api_key, "--base-url", fake.base_url, "--concurrency", "20"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_for_journal(out, 10, proc)
            proc.send_signal(signal.SIGHUP)
            _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, stderr.decode()
        assert len(per_recipient(fake)) == 80
    assert {r["status"] for r in results(out)} == {"sent"}


@pytest.mark.anyio
async def test_a_killed_runs_claim_does_not_stay_in_redis_for_ever(
    tmp_path: Path, redis_url: str
) -> None:
    """kill -9 of a shard leaves its claim in the shared Redis: the claim's hash must carry
    an expiry, so a crashed campaign leaves nothing behind in that Redis for ever (one more
    key for every crashed run, never removed, otherwise). It outlives the claim's 30 s: it is
    what refuses a new run that would send the killed run's rows again."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 200, start=4300)
    async with slow_fake(0.3) as fake:
        proc = await start_bulk(fake, source, out, "--shard", "1/2", "--redis", redis_url)
        try:
            await wait_for_journal(out, 5, proc)
        finally:
            proc.kill()
            await proc.wait()
    import redis

    admin = redis.Redis.from_url(redis_url)
    try:
        key = claim_key(source)
        assert admin.exists(key)
        left = admin.pttl(key)
        assert isinstance(left, int)
        assert CLAIM_TTL * 1000 < left <= RECORD_TTL * 1000, left
    finally:
        admin.close()


@pytest.mark.slow
@pytest.mark.anyio
async def test_shards_share_the_account_limit(
    tmp_path: Path, redis_url: str, api_server: Callable[[Handler], Awaitable[ApiServer]]
) -> None:
    """Three shards at once stay under one account limit (20/s, burst 20) at the server."""
    source = tmp_path / "in.csv"
    write_rows(source, 120)

    async def ok(request: Any) -> Any:
        return json_response({"data": message_json(id=request.headers["Idempotency-Key"])})

    server = await api_server(ok)

    def shard(index: int) -> int:
        return main(
            [
                "bulk",
                str(source),
                "--out",
                str(tmp_path / f"o{index}.csv"),
                "--shard",
                f"{index}/3",
                "--redis",
                redis_url,
                "--account-mps",
                "20",
                "--api-key",
                "k",
                "--base-url",
                server.base_url,
                "--no-progress",
                "--concurrency",
                "10",
            ]
        )

    async with anyio.create_task_group() as group:
        codes: list[int] = []

        async def run(index: int) -> None:
            codes.append(await anyio.to_thread.run_sync(shard, index))

        for index in (1, 2, 3):
            group.start_soon(run, index)
    assert codes == [0, 0, 0]
    times = sorted(r.at for r in server.requests)
    assert len(times) == 120
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 20 + 20 + 2  # the rate plus the burst (+2 for clock granularity)


@pytest.mark.redis
def test_unusable_redis_stops_before_results_exist(
    tmp_path: Path, redis_url: str, capsys: Any
) -> None:
    """A --redis that is down, refuses the password or is not a Redis URL exits 2 before
    RESULTS exists (it made RESULTS, sent nothing and needed --resume), password masked."""
    import redis

    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(
        "bulk-user", enabled=True, passwords=["+right"], keys=["*"], commands=["+@all"]
    )
    admin.close()
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(f"from,to,text\n{SENDER},+13125550001,hi\n")
    host = redis_url.removeprefix("redis://")
    argv = ["bulk", str(source), "--out", str(out), "--api-key", "k"]
    argv += ["--base-url", "http://127.0.0.1:9/v2"]
    for url, reason in [
        (f"redis://bulk-user:wrong@{host}", "invalid username-password"),
        ("redis://127.0.0.1:9/0", "PING failed"),
        (host, "scheme"),
    ]:
        assert main([*argv, "--redis", url]) == 2
        err = capsys.readouterr().err
        assert reason in err
        assert "wrong" not in err  # the password is masked
        assert not out.exists()


# --- found by adversarial testing ---------------------------------------------------------------


@pytest.mark.anyio
async def test_ctrl_c_stops_the_run_when_the_reader_of_its_output_has_gone(
    tmp_path: Path,
) -> None:
    """`telnyx-msg bulk ... 2>&1 | tee log`, and Ctrl-C kills tee too: the stop message meets
    a broken pipe. It raised before the stop, so every remaining row was sent (exit 141)."""
    rows = 300
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, rows)
    reader, writer = os.pipe()
    async with slow_fake(0.5) as fake:
        try:
            proc = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "telnyx_msg", "bulk", str(source), "--out", str(out)],
                *["--api-key", fake.api_key, "--base-url", fake.base_url, "--concurrency", "20"],
                stdout=writer,
                stderr=writer,
            )
        finally:
            os.close(writer)
        await wait_for_journal(out, 40, proc)
        os.close(reader)  # tee is gone
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
        assert proc.returncode == 130
        sent = len(fake.messages())
    assert sent < rows
    records = results(out)
    assert len({r["row"] for r in records}) == len(records) >= sent
    assert {r["status"] for r in records} <= {"sent", "unknown", "not_sent"}
    assert list(Journal(out.with_name(out.name + ".journal")).read()[1]) == []
    recorded = {r["to"] for r in records if r["status"] in ("sent", "unknown")}
    assert set(per_recipient(fake)) <= recorded


@pytest.mark.anyio
async def test_utf16_without_a_byte_order_mark_is_a_usage_error(
    tmp_path: Path, capsys: Any
) -> None:
    """--encoding utf-16 needs a BOM to know the byte order: a file without one crashed with
    a traceback (UnicodeError, exit 1). It names the encodings that read it; they do."""
    source, out = tmp_path / "in.txt", tmp_path / "out.csv"
    source.write_bytes(f"from\tto\ttext\r\n{SENDER}\t+13125550001\tn\u00e4\r\n".encode("utf-16-le"))
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out), "--encoding", "utf-16") == 2
        err = capsys.readouterr().err
        assert "byte order mark" in err
        assert "--encoding utf-16-le" in err
        assert "Traceback" not in err
        assert not out.exists()
        assert await bulk(fake, str(source), "--out", str(out), "--encoding", "utf-16-le") == 0
        assert [r.json["text"] for r in fake.stats.requests if r.json] == ["n\u00e4"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_read_as_utf8_names_the_encoding(tmp_path: Path, capsys: Any, codec: str) -> None:
    """Without --encoding, a UTF-16 file without a BOM said "unknown column(s)
    'f\\x00r\\x00o\\x00m\\x00'"; it names the encoding that reads it."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(f"from,to,text\n{SENDER},+13125550001,hi\n".encode(codec))
    assert main(server_argv(source, out, "http://127.0.0.1:9")) == 2
    err = capsys.readouterr().err
    assert (
        f"looks like {codec[:6].upper()} without a byte order mark; pass --encoding {codec}" in err
    )
    assert not out.exists()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("bom", "codec", "encoding_args"),
    [
        ("utf-8-sig", "utf-8", ("--encoding", "cp1252")),
        ("utf-32", "utf-32-le", ()),
        ("utf-32", "utf-32-le", ("--encoding", "utf-32")),
        ("utf-32-be", "utf-32-be", ()),
    ],
)
async def test_a_byte_order_mark_says_the_encoding_whatever_encoding_says(
    tmp_path: Path, bom: str, codec: str, encoding_args: tuple[str, ...]
) -> None:
    """A UTF-8 BOM with --encoding cp1252 sent mojibake ("h\u00c3\u00a9llo"), and a UTF-32 LE
    BOM was taken for UTF-16 LE (columns full of NULs): a BOM decides, as UTF-16's did."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    text = f"from,to,text\r\n{SENDER},+13125550001,h\u00e9llo \u2603\r\n"
    data = text.encode(codec)
    if bom == "utf-32-be":
        data = codecs.BOM_UTF32_BE + data
    elif bom == "utf-32":
        data = codecs.BOM_UTF32_LE + data
    else:
        data = codecs.BOM_UTF8 + data
    source.write_bytes(data)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out), *encoding_args) == 0
        assert [r.json["text"] for r in fake.stats.requests if r.json] == ["h\u00e9llo \u2603"]
    assert results(out)[0]["row"] == "2"


@pytest.mark.anyio
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
async def test_a_utf16_decoding_error_names_its_row(
    tmp_path: Path, capsys: Any, codec: str
) -> None:
    """UTF-16 was decoded in 8 KiB chunks ahead of the line count: an error at row 300 was
    reported at row 2xx."""
    source, out = tmp_path / "in.txt", tmp_path / "out.csv"
    lines = ["from\tto\ttext"] + [f"{SENDER}\t+1312555{n:04d}\thello {n}" for n in range(400)]
    lines[299] += " \ud800!"  # row 300: a lone surrogate
    bom = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    source.write_bytes(bom + "\r\n".join(lines).encode(codec, "surrogatepass"))
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 2
        assert fake.stats.count("POST", "/messages") == 0
    err = capsys.readouterr().err
    assert f"{source}: row 300: " in err, err
    unit = " ".join(f"0x{b:02x}" for b in "\ud800".encode(codec, "surrogatepass"))
    assert f"bytes {unit} are not valid {codec}" in err


@pytest.mark.anyio
async def test_results_are_locked_and_compacted_as_the_file_not_the_name(
    tmp_path: Path, capsys: Any
) -> None:
    """A run via a symlink to the RESULTS another run holds ran alongside it (the lock was
    the name's), and compaction replaced the symlink with a file, leaving its target stale."""
    source, out, link = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "link.csv"
    write_rows(source, 150)
    link.symlink_to(out.name)
    async with slow_fake(0.5) as fake:
        proc = await start_bulk(fake, source, out)
        await wait_for_journal(out, 10, proc)
        assert await bulk(fake, str(source), "--out", str(link), "--resume") == 2
        assert f"in use by another telnyx-msg bulk (pid {proc.pid})" in capsys.readouterr().err
        proc.kill()
        await asyncio.wait_for(proc.communicate(), 30)
        assert fake.stats.idempotent_replays == 0
        argv = ("--out", str(link), "--resume", "--retry-unknown")
        assert await bulk(fake, str(source), *argv) == 0
    assert link.is_symlink()
    assert {r["status"] for r in results(out)} == {"sent"}
    assert len(results(out)) == 150
    assert set(per_recipient(fake).values()) == {1}
    assert sorted(os.listdir(tmp_path)) == [
        "in.csv",
        "link.csv",
        "out.csv",
        "out.csv.journal",
        "out.csv.lock",
    ]


@pytest.mark.anyio
async def test_a_torn_outcome_line_leaves_its_row_unknown_not_sent(tmp_path: Path) -> None:
    """A line a crash (or a full disk) cut short after its status cell was kept as the row's
    outcome, through compaction: ``7,+13125550005,sent,33e4d08d`` (message id cut, no key). It
    is skipped, so the journal makes the row unknown; --retry-unknown settles it with its key."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 6)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        sent = {int(r["row"]): r for r in results(out)}
        run_id = sent[2]["idempotency_key"].split(":")[1]
        # The crash: row 7 journaled, sent, and its line cut short while written.
        crash_after(out, [r for row, r in sent.items() if row < 7], journaled=())
        header = RunHeader(run_id, fingerprint(source), results_at=out.stat().st_size)
        journal = Journal(out.with_name(out.name + ".journal"))
        journal.start(header)
        journal.close()
        with journal.path.open("a") as handle:
            handle.write(f"t {int(time.time())}\nw 7\n")
        with out.open("a", newline="") as handle:
            handle.write(f"7,+13125550005,sent,{sent[7]['message_id'][:8]}")
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 1
        assert fake.stats.count("POST", "/messages") == 0
        latest = {int(r["row"]): r for r in results(out)}
        assert len(results(out)) == 6
        assert latest[7]["status"] == "unknown"
        assert latest[7]["idempotency_key"] == idempotency_key(run_id, 7)
        assert unstamp(latest[7]["first_attempt"]) is not None
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 0
        assert fake.stats.idempotent_replays == 1
        assert max(per_recipient(fake).values()) == 1
    final = {int(r["row"]): r for r in results(out)}
    assert final[7]["status"] == "sent"
    assert final[7]["message_id"] == sent[7]["message_id"]


def test_a_line_missing_cells_is_not_an_outcome(tmp_path: Path) -> None:
    """Only a line with every cell of the header counts (a torn one has fewer); lines written
    under an older header with fewer columns still count."""
    out = tmp_path / "out.csv"
    fields = "row,to,status,message_id,code,error,idempotency_key"
    out.write_text(
        f"{fields}\r\n2,+1,sent,m2,,,telnyx-msg:ab:2\r\n3,+1,sent,m3\r\n"
        "4,+1,unknown,,,,telnyx-msg:ab:4,2026-12-05T12:40:18Z\r\n5,+1,sent,m5,,\r\n"
    )
    statuses = Results(out).load().statuses
    assert [statuses.get(row) for row in (2, 3, 4, 5)] == ["sent", None, "unknown", None]
    # A row cell of other digits (a spreadsheet's superscript) is no outcome either: int()
    # refused what str.isdigit() let through, and --resume ended in a ValueError traceback.
    with out.open("a", encoding="utf-8") as handle:
        handle.write("\u00b2,+1,sent,m6,,,telnyx-msg:ab:6,2026-12-05T12:40:18Z\r\n")
    assert Results(out).load().statuses.count("sent") == 1
    jsonl = Results(tmp_path / "out.jsonl")
    jsonl.append({"row": 2, "status": "sent"})
    jsonl.close()
    with jsonl.path.open("a") as handle:
        handle.write('{"row": 3, "to": "+1", "status": "sent", "message_id": "m')
    statuses = jsonl.load().statuses
    assert [statuses.get(2), statuses.get(3)] == ["sent", None]


@pytest.mark.anyio
async def test_media_urls_cell_is_split_on_bars(tmp_path: Path) -> None:
    """A media_urls cell lists URLs separated by '|' (spaces around them and empty entries
    ignored): each URL is sent as its own list item."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(
        f"from,to,media_urls\n{SENDER},+13125550001,https://x.test/a.png | https://x.test/b.png|\n"
    )
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        sent = [r.json for r in fake.stats.requests if r.json]
    assert [s["media_urls"] for s in sent] == [["https://x.test/a.png", "https://x.test/b.png"]]


@pytest.mark.anyio
async def test_boolean_cells_are_read_whatever_their_case(tmp_path: Path) -> None:
    """Excel writes booleans as TRUE/FALSE: they mean true/false, in any case."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(
        "from,to,text,use_profile_webhooks,auto_detect\n"
        f"{SENDER},+13125550001,one,TRUE,False\n"
        f"{SENDER},+13125550002,two,false,True\n"
    )
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        sent = {r.json["to"]: r.json for r in fake.stats.requests if r.json}
    assert (sent["+13125550001"]["use_profile_webhooks"], sent["+13125550001"]["auto_detect"]) == (
        True,
        False,
    )
    assert (sent["+13125550002"]["use_profile_webhooks"], sent["+13125550002"]["auto_detect"]) == (
        False,
        True,
    )


@pytest.mark.anyio
async def test_a_value_under_an_empty_header_rejects_its_row(tmp_path: Path) -> None:
    """A column without a header is ignored while empty; a value in it rejects that row (the
    cells are probably shifted), naming the column; the other rows are sent."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(
        f"from,to,text,\n{SENDER},+13125550001,fine,\n{SENDER},+13125550002,shifted,oops\n"
    )
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 1
        assert [r.json["to"] for r in fake.stats.requests if r.json] == ["+13125550001"]
    by_row = {int(r["row"]): r for r in results(out)}
    assert by_row[2]["status"] == "sent"
    assert by_row[3]["status"] == "rejected"
    assert "column 4, which has no header" in by_row[3]["error"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "header",
    ["from_,to,text", " From , To ,Text ", "from_ ;to; text"],
    ids=["alias", "spaces", "semi"],
)
async def test_header_names_are_trimmed_and_from_underscore_means_from(
    tmp_path: Path, header: str
) -> None:
    """Header names are matched after trimming spaces, and 'from_' (the keyword's name) is
    'from'."""
    delimiter = ";" if ";" in header else ","
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(f"{header}\n{delimiter.join([SENDER, '+13125550001', 'hi'])}\n")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        sent = [r.json for r in fake.stats.requests if r.json]
    assert sent == [{"from": SENDER, "to": "+13125550001", "text": "hi"}]


@pytest.mark.anyio
async def test_a_header_without_text_or_media_urls_is_a_usage_error(
    tmp_path: Path, capsys: Any
) -> None:
    """A header with neither 'text' nor 'media_urls' stops with exit 2 before any send, rather
    than rejecting every row one by one."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(f"from,to,subject\n{SENDER},+13125550001,hello\n")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 2
        assert fake.stats.count("POST", "/messages") == 0
    assert "needs a 'text' or a 'media_urls' column" in capsys.readouterr().err
    assert not out.exists()


def test_results_saved_with_a_bom_and_an_added_column_are_read(tmp_path: Path) -> None:
    """RESULTS saved by Excel as "CSV UTF-8" (a BOM) after someone added a column of notes:
    its rows are still read, so a resume does not take them for unsent."""
    path = tmp_path / "out.csv"
    header = ",".join([*RESULT_FIELDS, "note"])
    row = dict.fromkeys(RESULT_FIELDS, "")
    row.update(row="2", to="+13125550001", status="sent", idempotency_key="telnyx-msg:ab:2")
    line = ",".join([*(row[k] for k in RESULT_FIELDS), "called back"])
    path.write_text("\ufeff" + header + "\r\n" + line + "\r\n", encoding="utf-8")
    loaded = Results(path).load()
    assert loaded.statuses.get(2) == "sent"
    assert loaded.run_id == "ab"


def test_a_row_sent_after_being_unknown_has_no_first_attempt_left(tmp_path: Path) -> None:
    """A row recorded unknown (with its first attempt), then sent on a later line, is no longer
    unknown: it must not keep an unknown first-attempt time."""
    out = Results(tmp_path / "out.csv")
    key = "telnyx-msg:ab:2"
    out.append(
        {
            "row": 2,
            "to": "+1",
            "status": "unknown",
            "idempotency_key": key,
            "first_attempt": stamp(time.time() - 60),
        }
    )
    out.append({"row": 2, "to": "+1", "status": "sent", "idempotency_key": key})
    out.close()
    loaded = out.load()
    assert loaded.statuses.get(2) == "sent"
    assert loaded.unknown_since == {}


def test_progress_line_shows_counts_rate_eta_and_bar() -> None:
    """Half done in 10 s: 5.0/s, 10 s left, a half-filled bar, and no zero counts."""
    progress = Progress(100, enabled=False)
    for status in ["sent"] * 40 + ["rejected"] * 10:
        progress.update(status)
    line = progress.line(progress.started + 10, 120)
    assert line == f"[{'#' * 15}{'.' * 15}] 50/100 sent 40 rejected 10  5.0/s  ETA 10s"


def test_progress_line_when_done_has_a_full_bar_and_no_eta() -> None:
    progress = Progress(4, enabled=False)
    for status in ["sent", "unknown", "not_sent", "sent"]:
        progress.update(status)
    line = progress.line(progress.started + 2, 120)
    assert line.startswith(f"[{'#' * 30}] 4/4 sent 2 unknown 1 not_sent 1  2.0/s  ETA -")


def test_finish_draws_the_final_state(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, finish() redraws the final counts (not a stale frame) and ends the line."""
    monkeypatch.setenv("COLUMNS", "120")
    progress = Progress(3, enabled=True)
    progress.update("sent")
    progress.counts["sent"] += 2  # counted since the last frame was drawn
    progress.finish()
    err = capsys.readouterr().err
    assert err.endswith("\x1b[K\n")
    last_frame = _COLOURS.sub("", err.rsplit("\r", 1)[1])
    assert " 3/3 sent 3 " in last_frame


_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def test_a_rich_that_fails_to_import_leaves_the_progress_line_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``telnyx-msg bulk`` on a terminal with a ``rich`` whose import raises something other
    than ImportError (here AttributeError, as a rich built for another Python can): the run
    starts and draws its plain progress line, instead of dying with a traceback before the
    first send (only ``--no-progress`` or a redirected stderr got past it)."""
    package = tmp_path / "rich"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "console.py").write_text("raise AttributeError('broken rich install')\n")
    (package / "text.py").write_text("")
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)

    try:
        progress = Progress(2, enabled=True)
        progress.update("sent")
        progress.update("sent")
        progress.finish()
    finally:
        # The broken modules go (monkeypatch then puts back a real rich that was imported).
        for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
            del sys.modules[name]

    frame = capsys.readouterr().err.rsplit("\r", 1)[1]
    assert " 2/2 sent 2 " in frame
    assert "\x1b[3" not in frame  # plain: no colour codes


def test_the_progress_line_is_coloured_with_rich_unless_no_color(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the ``rich`` extra on a colour terminal, the progress line's bar and counts are
    coloured (sent green, unknown yellow, not_sent red), its text unchanged; ``NO_COLOR``
    keeps it plain."""
    pytest.importorskip("rich")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    frames = []
    for no_color in (False, True):
        if no_color:
            monkeypatch.setenv("NO_COLOR", "1")
        progress = Progress(4, enabled=True)
        progress.counts.update(["sent", "sent", "unknown"])
        progress.update("not_sent")
        progress.finish()
        frames.append(capsys.readouterr().err.rsplit("\r", 1)[1])
    coloured, plain = frames
    assert "\x1b[32msent 2\x1b[0m" in coloured
    assert "\x1b[33munknown 1\x1b[0m" in coloured
    assert "\x1b[31mnot_sent 1\x1b[0m" in coloured
    assert _COLOURS.sub("", coloured).split("  ")[0] == plain.split("  ")[0]
    assert _COLOURS.search(plain) is None


def test_trailing_empty_cells_and_untitled_columns_are_accepted(tmp_path: Path) -> None:
    """A header and rows ending in delimiters (two untitled, empty columns) read fine; only
    a value under an untitled column, or a non-empty extra cell, rejects the row."""
    source = tmp_path / "in.csv"
    source.write_text(
        f"from,to,text,,\n{SENDER},+13125550001,one,,\n{SENDER},+13125550002,two,,,,\n"
        f"{SENDER},+13125550003,three,,x\n{SENDER},+13125550004,four,,,,y\n"
    )
    table = open_table(source)
    parsed = list(table.rows())
    assert table.request(parsed[0][1]) == {"from_": SENDER, "to": "+13125550001", "text": "one"}
    assert table.request(parsed[1][1]) == {"from_": SENDER, "to": "+13125550002", "text": "two"}
    with pytest.raises(ValueError, match="column 5, which has no header"):
        table.request(parsed[2][1])
    with pytest.raises(ValueError, match="7 cells but the header has 5"):
        table.request(parsed[3][1])


def test_swallowed_row_to_a_short_code_is_refused(tmp_path: Path) -> None:
    """A stray quote that swallows rows sent to 6-digit short codes is still caught."""
    source = tmp_path / "in.csv"
    source.write_text(
        f'from,to,text\n{SENDER},+13125550001,"oops\n{SENDER},123456,second\n'
        f'{SENDER},654321,third"\n'
    )
    with pytest.raises(TableError, match="row 2: the text cell runs over several lines"):
        list(open_table(source).rows())


def test_a_redis_password_in_the_query_is_masked_too(tmp_path: Path) -> None:
    """redis-py also reads ``?password=`` (the usual form with a unix socket): masked as well."""
    source = tmp_path / "in.csv"
    write_rows(source, 3)
    url = "unix:///run/redis.sock?db=0&password=s3cret"
    argv = ["bulk", str(source), "--redis", url, "--api-key", "k"]
    command = _resume_command(BulkRun(build_parser().parse_args(argv), open_table(source)))
    assert "s3cret" not in command
    assert "unix:///run/redis.sock?db=0&password=***" in shlex.split(command)


@pytest.mark.anyio
async def test_results_cells_a_spreadsheet_would_run_are_quoted(tmp_path: Path) -> None:
    """A recipient cell such as ``=HYPERLINK(...)`` or ``@SUM(...)`` (a list filled from a web
    form) is written to RESULTS as text (a leading ``'``), so opening RESULTS in Excel does not
    run it; a phone number stays as it is."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    hostile = ['=HYPERLINK("http://x/?"&A1)', "@SUM(1+1)", "-2+3", "+1844=cmd|' /C calc'!A0"]
    rows = ["+18445550001", *hostile]
    source.write_text(
        "from,to,text\n"
        + "".join(f'+18005550101,"{to.replace(chr(34), 2 * chr(34))}",hi\n' for to in rows),
        encoding="utf-8",
    )
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 1
    records = results(out)
    assert records[0]["to"] == "+18445550001"
    assert [r["to"] for r in records[1:]] == [f"'{to}" for to in hostile]
    for record in records:
        assert record["error"][:1] not in ("=", "+", "-", "@"), record


@pytest.mark.anyio
@pytest.mark.parametrize("planted", [".lock", ".tmp", ".journal.tmp"])
async def test_a_symlink_planted_beside_results_is_not_followed(
    tmp_path: Path, planted: str
) -> None:
    """Someone who can write to the output directory plants a symlink where the run creates
    its lock or temporary files: the file it points to is never written."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 5)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / f"out.csv{planted}").symlink_to(victim)
    async with FakeTelnyx() as fake:
        code = await bulk(fake, str(source), "--out", str(out))
    assert victim.read_text() == "precious\n"
    assert code in (0, 2)


@pytest.mark.anyio
async def test_results_and_journal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """RESULTS holds phone numbers and message ids: created 0600, as are the run's journal and
    lock (whatever the umask)."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 5)
    old = os.umask(0o022)
    try:
        async with FakeTelnyx() as fake:
            assert await bulk(fake, str(source), "--out", str(out)) == 0
    finally:
        os.umask(old)
    made = [p for p in sorted(os.listdir(tmp_path)) if p.startswith("out.csv")]
    assert made == ["out.csv", "out.csv.journal", "out.csv.lock"]
    modes = {name: oct(os.stat(tmp_path / name).st_mode & 0o777) for name in made}
    assert modes == dict.fromkeys(made, "0o600")


# --- what a fifth user review found ---------------------------------------------------------------


@pytest.mark.anyio
async def test_a_resume_without_its_journal_is_refused(tmp_path: Path, capsys: Any) -> None:
    """The journal alone records FILE's fingerprint and --shard. Without it, a resume made its
    header up from today's FILE: another file "resumed" (200 rows recorded sent, none of the
    new file sent), or an edited one sent rows to the wrong recipients."""
    first, other, out = tmp_path / "feb.csv", tmp_path / "march.csv", tmp_path / "out.csv"
    write_rows(first, 5)
    other.write_text(first.read_text().replace("+1312555", "+1415555"))
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(first), "--out", str(out)) == 0
        out.with_name(out.name + ".journal").unlink()
        fake.stats.reset()
        capsys.readouterr()
        assert await bulk(fake, str(other), "--out", str(out), "--resume") == 2
        assert fake.stats.count("POST", "/messages") == 0
    assert "journal is missing" in capsys.readouterr().err


@pytest.mark.anyio
async def test_a_resume_reading_the_file_otherwise_is_refused(tmp_path: Path, capsys: Any) -> None:
    """--resume --encoding latin-1 of a run that read cp1252 sent 'CafÃ©' where the first rows
    had said 'Café', and --retry-unknown's resends (same keys, other bodies) were refused."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    source.write_bytes(source.read_text().replace("hello", "caf\u00e9").encode("cp1252"))
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out), "--encoding", "cp1252") == 0
        capsys.readouterr()
        resume = ("--out", str(out), "--resume")
        assert await bulk(fake, str(source), *resume, "--encoding", "latin-1") == 2
        assert "with --encoding cp1252" in capsys.readouterr().err
        assert await bulk(fake, str(source), *resume, "--encoding", "cp1252") == 0


@pytest.mark.anyio
async def test_a_rejected_resend_of_an_unknown_row_stays_unknown(tmp_path: Path) -> None:
    """A --retry-unknown resend refused with a 4xx was recorded "rejected" (fix it, then send
    it again), although the first attempt may have been accepted: Telnyx may have refused the
    repeat, not the message. It stays unknown."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 4)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        crash_after(out, [r for r in results(out) if int(r["row"]) < 5], journaled=(5,))
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 1
        fake.configure(faults=Faults(script=[422], match=("POST *",)))
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 1
    latest = {int(r["row"]): r for r in results(out)}
    assert latest[5]["status"] == "unknown"
    assert latest[5]["code"] == "10015"


@pytest.mark.anyio
async def test_a_lock_that_cannot_be_created_is_not_another_run(
    tmp_path: Path, capsys: Any
) -> None:
    """RESULTS in a read-only folder (here: its lock cannot be created) was reported as "in
    use by another telnyx-msg bulk ...; wait for it to end", for a run that does not exist."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 2)
    (tmp_path / "out.csv.lock").mkdir()
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "cannot create or open" in err, err
    assert "in use by another" not in err


@pytest.mark.anyio
async def test_overwrite_never_deletes_a_file_that_is_not_results(
    tmp_path: Path, capsys: Any
) -> None:
    """--overwrite with --out naming an unrelated file (contacts.txt) deleted it; without
    --overwrite the same command is refused as "not a results file"."""
    source, other = tmp_path / "in.csv", tmp_path / "contacts.txt"
    write_rows(source, 2)
    other.write_text("name,phone\nAda,+13125550000\n")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(other), "--overwrite") == 2
        assert fake.messages() == []
    assert other.read_text() == "name,phone\nAda,+13125550000\n"
    assert "--overwrite replaces only a results file" in capsys.readouterr().err


@pytest.mark.parametrize("encoding", ["hex", "base64", "zlib", "rot13"])
def test_a_codec_that_is_not_a_text_encoding_is_refused(tmp_path: Path, encoding: str) -> None:
    """--encoding hex (a codec Python knows, but not of text) failed later with a traceback."""
    source = tmp_path / "in.csv"
    write_rows(source, 2)
    with pytest.raises(TableError, match=f"unknown encoding '{encoding}'"):
        open_table(source, encoding)


def test_a_json_input_is_named_as_such(tmp_path: Path) -> None:
    """A .jsonl input was refused as "unknown column(s) '{\"from\": ...'"."""
    source = tmp_path / "in.jsonl"
    source.write_text('{"from": "+18005550101", "to": "+13125550001", "text": "hi"}\n')
    with pytest.raises(TableError, match="looks like JSON, not CSV"):
        open_table(source)


def test_bulk_runs_with_stderr_closed(tmp_path: Path) -> None:
    """Started with stderr closed (``2>&-``, cron), bulk died on ``sys.stderr.isatty()`` with
    no message, leaving a journal and no RESULTS."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    with serve_in_thread() as fake:
        argv = [sys.executable, "-m", "telnyx_msg", "bulk", str(source), "--out", str(out)]
        argv += ["--api-key", fake.api_key, "--base-url", fake.base_url]  # no --no-progress
        done = subprocess.run(
            ["sh", "-c", 'exec "$@" 2>&-', "sh", *argv], capture_output=True, timeout=60
        )
    assert done.returncode == 0, done
    assert b"3 rows: 3 sent" in done.stdout
    assert {r["status"] for r in results(out)} == {"sent"}


@pytest.mark.anyio
async def test_a_run_begun_by_an_older_version_is_pinned_at_its_first_resume(
    tmp_path: Path, capsys: Any
) -> None:
    """A journal written before ``reading=`` existed kept none through every later resume, so
    such a run could be resumed with any --encoding forever."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 3)
    journal = out.with_name(out.name + ".journal")
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        first, rest = journal.read_text().split("\n", 1)
        journal.write_text(re.sub(r" reading=\S+", "", first) + "\n" + rest)  # an older one's
        assert await bulk(fake, str(source), "--out", str(out), "--resume") == 0
        assert " reading=utf-8" in journal.read_text().split("\n", 1)[0]
        capsys.readouterr()
        resume = ("--out", str(out), "--resume", "--encoding", "latin-1")
        assert await bulk(fake, str(source), *resume) == 2
    assert "with --encoding utf-8" in capsys.readouterr().err


@pytest.mark.parametrize(
    "swallowed",
    [
        "{s},+13125550002,Hi Bob your code is 2222",  # a short row (no subject)
        "{s},+13125550002",  # only up to its recipient
        "MyShop,+13125550002,Hi Bob",  # the row's own (alphanumeric) sender
    ],
)
def test_a_stray_quote_swallowing_short_rows_is_refused(tmp_path: Path, swallowed: str) -> None:
    """Rows may leave trailing columns out (an optional subject): a stray quote swallowing such
    rows went unnoticed (the check wanted as many cells as the header), and the first row's
    recipient got the others' texts while they got nothing, exit 0."""
    sender = "MyShop" if swallowed.startswith("MyShop") else SENDER
    source = tmp_path / "in.csv"
    source.write_text(
        f'from,to,text,subject\n{sender},+13125550001,"Hi Ann your code is 1111\n'
        f"{swallowed.format(s=SENDER)}\n"
        f'{sender},+13125550003,Hi Cy: pizza 12"\n{sender},+13125550004,Hi Dee,Promo\n'
    )
    with pytest.raises(TableError, match="row 2: the text cell runs over several lines"):
        list(open_table(source).rows())


def test_a_multi_line_text_with_a_delimiter_and_a_number_is_text(tmp_path: Path) -> None:
    """A text line such as "Questions, +18005550100" splits into a short row with a number under
    `to`, but its sender cell is neither a number nor the row's sender: it is text."""
    source = tmp_path / "in.csv"
    source.write_text(
        f'from,to,text,subject\n{SENDER},+13125550001,"Your order shipped.\n'
        'Questions, +18005550100"\n'
    )
    ((row, cells),) = list(open_table(source).rows())
    assert row == 2
    assert cells[2] == "Your order shipped.\nQuestions, +18005550100"


def test_a_file_changed_while_it_is_read_stops_the_read(tmp_path: Path) -> None:
    """A FILE rewritten during a run (an export job, an editor's save) was read on: rows sent
    twice, others skipped, rows stitched together across read chunks into a message with another
    customer's text, exit 0. Every read now stops at a change."""
    source = tmp_path / "in.csv"
    write_rows(source, 8_000)  # several read chunks
    table = open_table(source)
    rows = table.rows()
    assert next(rows)[0] == 2
    text = source.read_text()
    lines = text.splitlines(keepends=True)
    source.write_text(lines[0] + "".join(reversed(lines[1:])))  # same size, new content
    with pytest.raises(TableError, match="changed while this run read it"):
        list(rows)
    with pytest.raises(TableError, match="changed while this run read it"):
        list(table.rows())  # a later read (the resume pass, the recipients) too


def test_a_file_replaced_after_its_check_is_not_read(tmp_path: Path) -> None:
    """The check covers a file replaced (renamed over) after it was checked and before the
    rows are read."""
    source = tmp_path / "in.csv"
    write_rows(source, 5)
    table = open_table(source)
    replacement = tmp_path / "new.csv"
    write_rows(replacement, 5, start=100)
    replacement.replace(source)
    with pytest.raises(TableError, match="changed while this run read it"):
        list(table.rows())


def test_a_compaction_that_fails_leaves_results_whole_and_no_partial_copy(tmp_path: Path) -> None:
    """Rewriting RESULTS at the end of a run needs room for a second copy. On a full disk the
    partial copy stayed (keeping the disk full for every --resume) and the error named no
    file; now it is removed and the error says every outcome is kept and what to do."""
    import resource

    path = tmp_path / "out.csv"
    out = Results(path)
    for row in range(2, 400):
        key = idempotency_key("ab", row)
        out.append({"row": row, "to": "+13125550001", "status": "sent", "idempotency_key": key})
    out.close()
    before = path.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, hard))  # writes past it: EFBIG
    try:
        with pytest.raises(CompactionError, match=r"every row's outcome is in .*--resume"):
            out.compact()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == before
    assert not path.with_name("out.csv.tmp").exists()
    out.compact()  # with room again, it finishes
    assert Results(path).load().statuses.get(399) == "sent"


def test_a_progress_line_on_a_terminal_that_went_away_stops_drawing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A terminal gone (a closed ssh session: EIO on every write) made the progress line raise
    out of the send loop and out of the run's ending, so RESULTS was never compacted and the
    summary never printed. The line is only a view: it stops being drawn."""

    class GoneTerminal(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(sys, "stderr", GoneTerminal())
    progress = Progress(3, enabled=True)
    progress.update("sent")
    progress.finish()
    assert not progress.enabled


def test_a_cp1252_file_read_as_latin_1_is_rejected_per_row_not_sent_mangled(
    tmp_path: Path,
) -> None:
    """latin-1 decodes every byte, so a cp1252 file read with it sent U+0093/U+0094/U+0080 (C1
    control characters) where the curly quotes and the euro sign were, exit 0."""
    source = tmp_path / "in.csv"
    source.write_bytes(
        f"from,to,text\n{SENDER},+13125550001,\u201cHi\u201d 5\u20ac off\n".encode("cp1252")
    )
    ((_, cells),) = list(open_table(source, "latin-1").rows())
    with pytest.raises(ValueError, match=r"U\+0093: the file is probably cp1252"):
        open_table(source, "latin-1").request(cells)
    ((_, cells),) = list(open_table(source, "cp1252").rows())
    request = open_table(source, "cp1252").request(cells)
    assert request is not None
    assert request["text"] == "\u201cHi\u201d 5\u20ac off"


def test_excels_sep_line_is_named_not_read_as_a_header(tmp_path: Path) -> None:
    """Excel's "sep=;" first line was reported as an unknown column 'sep=', with a hint to
    ignore unknown columns."""
    source = tmp_path / "in.csv"
    source.write_text(f"sep=;\nfrom;to;text\n{SENDER};+13125550001;hi\n")
    with pytest.raises(TableError, match="Excel's delimiter hint, not a header row"):
        open_table(source)


def test_a_nul_in_the_header_is_a_table_error(tmp_path: Path) -> None:
    """Python 3.10's csv refuses a NUL in a line: a NUL in the header was a traceback there."""
    source = tmp_path / "in.csv"
    source.write_bytes(b"from,to\x00,text\n+18005550101,+13125550001,hi\n")
    with pytest.raises(TableError):
        open_table(source)


def test_a_control_character_in_a_cell_rejects_the_row(tmp_path: Path) -> None:
    """A NUL (Python 3.11's csv passes it through) or another C0 control character is no
    text: it was sent as it was."""
    source = tmp_path / "in.csv"
    source.write_bytes(f"from,to,text\n{SENDER},+13125550001,hi\x00there\n".encode())
    table = open_table(source)
    try:
        rows = list(table.rows())
    except TableError as exc:  # Python 3.10: the csv module refuses the line
        assert "NUL" in str(exc)  # noqa: PT017
        return
    with pytest.raises(ValueError, match="U\\+0000"):
        table.request(rows[0][1])


@pytest.mark.anyio
@pytest.mark.parametrize("column", ["text", "media_urls"])
async def test_a_lone_surrogate_from_an_odd_encoding_rejects_the_row_in_the_dry_run_too(
    tmp_path: Path, capsys: Any, column: str
) -> None:
    """A codec given with --encoding (utf-7 here) can decode a lone surrogate, which no UTF-8
    request carries: the row is rejected without a request, and the dry run says so
    beforehand (it counted the row as one to send and exited 0, "every row can be sent")."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    # utf-7: "+-" is a literal "+", "+2AA-" decodes to the lone surrogate U+D800.
    cells = ["hi +2AA- there", ""] if column == "text" else ["hi", "https://e.com/a+2AA-.png"]
    source.write_bytes(
        (
            "from,to,text,media_urls\n"
            f"+-18005550101,+-13125550001,{cells[0]},{cells[1]}\n"
            "+-18005550101,+-13125550002,fine,\n"
        ).encode("ascii")
    )
    common = ["bulk", str(source), "--out", str(out), "--encoding", "utf-7", "--no-progress"]
    assert await anyio.to_thread.run_sync(main, [*common, "--dry-run"]) == 1
    printed = capsys.readouterr()
    assert printed.out == "dry run: nothing sent; 1 row to send, 1 to be rejected\n"
    assert f"  row 2: {column}: holds U+D800, half of a UTF-16 pair" in printed.err
    async with FakeTelnyx() as fake:
        assert await bulk(fake, *common[1:]) == 1
        assert sorted(per_recipient(fake)) == ["+13125550002"]
    assert {r["row"]: r["status"] for r in results(out)} == {"2": "rejected", "3": "sent"}


def test_a_cell_over_the_csv_field_limit_says_what_to_check(tmp_path: Path) -> None:
    """csv's own "field larger than field limit (131072)" is said in terms of the file."""
    source = tmp_path / "in.csv"
    source.write_text(f'from,to,text\n{SENDER},+13125550001,"{"x" * 140_000}"\n')
    with pytest.raises(TableError, match="row 2: a cell longer than 131,072 characters"):
        list(open_table(source).rows())


@pytest.mark.parametrize(
    "content",
    [
        # a brand signature under an alphanumeric sender
        'from,to,text\nMyShop,+13125550001,"Your appointment is tomorrow at 10am.\n'
        'MyShop, +18005550100"\n',
        # two phone numbers on one line
        'from,to,text\n+18005550101,+13125550001,"Our support lines:\n'
        '+18005550100, +18005550199"\n',
        # two order numbers on one line
        'from,to,text,subject\n+18005550101,+13125550001,"Your orders shipped:\n'
        '1234567, 7654321"\n',
    ],
)
def test_a_legitimate_multi_line_text_is_read(tmp_path: Path, content: str) -> None:
    source = tmp_path / "in.csv"
    source.write_text(content)
    ((row, cells),) = list(open_table(source).rows())
    assert row == 2
    assert "\n" in cells[2]


@pytest.mark.parametrize(
    "first_line",
    [
        "sep=\t",  # Excel's hint for a tab-separated file: strip() dropped the tab
        '"sep=;"',  # the hint as a spreadsheet writes it back, quoted
        "sep=;;;",  # ... or followed by the empty cells of its row
        "SEP=;",
    ],
)
def test_excel_sep_line_is_named_whatever_its_form(tmp_path: Path, first_line: str) -> None:
    """The CLI guide: "A first line `sep=;` (Excel's delimiter hint) stops it too: delete that
    line". The other forms of the same hint got "unknown column(s) 'sep='", which does not say what
    to do."""
    delimiter = "\t" if first_line == "sep=\t" else ";"
    path = tmp_path / "in.csv"
    path.write_text(
        f"{first_line}\n"
        + delimiter.join(["from", "to", "text"])
        + "\n"
        + delimiter.join(["+18005550101", "+18445550001", "Hi"])
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(TableError, match="delimiter hint"):
        open_table(path)


def test_a_real_sep_column_is_not_taken_for_the_hint(tmp_path: Path) -> None:
    """A header naming a column `sep` is a header (an unknown column), not the hint."""
    path = tmp_path / "in.csv"
    path.write_text("sep\nfrom,to,text\n", encoding="utf-8")
    with pytest.raises(TableError, match="unknown column"):
        open_table(path)


def test_a_run_logged_to_a_file_gets_plain_progress_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With stderr not a terminal (nohup, a log file) a multi-hour run printed nothing between
    its plan and its summary. It logs a plain line at most every ``log_every`` seconds."""
    progress = Progress(3, enabled=False, log_every=0.0)
    progress.update("sent")
    progress.update("rejected")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[-1].startswith("progress: 2/3 sent 1 rejected 1 ")
    assert "\r" not in "".join(lines)
    quiet = Progress(3, enabled=False, log_every=3600.0)
    quiet.update("sent")
    assert capsys.readouterr().err == ""
    silent = Progress(3, enabled=False)  # --no-progress
    silent.update("sent")
    assert capsys.readouterr().err == ""


CHUNK = 1 << 16  # how much the reader takes per read (telnyx_msg.cli._table._CHUNK)


def _rows_up_to(
    prefix_len: int, eol: str, *, encode: Callable[[str], bytes] = str.encode
) -> tuple[bytes, int]:
    """A from,to,text file whose line ending straddles byte ``prefix_len`` of the data
    (``eol``'s first byte/unit ends the first read chunk). Returns the bytes and the data row
    count."""
    header = "from,to,text" + eol
    rows: list[str] = []
    n = 0
    body = header
    # Fill with rows until the next row would pass the boundary, then pad one row's text so
    # that its line ending starts exactly at the end of the chunk.
    while True:
        line = f"{SENDER},+1312555{n % 10000:04d},hello {n}" + eol
        if len(encode(body + line)) > prefix_len - 200:
            break
        body += line
        rows.append(line)
        n += 1
    remaining = prefix_len - len(encode(body))
    base = f"{SENDER},+1312555{n % 10000:04d},pad "
    unit = len(encode("\n"))
    pad_units = remaining // unit - len(base) - 1  # the last unit of the chunk is eol's first
    body += base + "x" * pad_units + eol
    n += 1
    assert len(encode(body[: len(body) - len(eol)])) + unit == prefix_len
    for _ in range(5):
        body += f"{SENDER},+1312555{n % 10000:04d},after {n}" + eol
        n += 1
    return encode(body), n


def test_crlf_split_across_read_chunks_is_one_line_end(tmp_path: Path) -> None:
    """Guards against a CRLF whose CR ends one read chunk and whose LF starts the next being
    read as two line ends: the LF became an extra blank row and every later row number shifted
    by one (RESULTS and a --resume address rows by number, so row N's outcome would be filed
    under another recipient's number)."""
    data, count = _rows_up_to(CHUNK, "\r\n")
    assert data[CHUNK - 1 : CHUNK + 1] == b"\r\n"
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    rows = list(open_table(source).rows())
    assert [row for row, _ in rows] == list(range(2, count + 2))
    assert all(len(cells) == 3 for _, cells in rows)


def test_a_lone_cr_ending_a_read_chunk_still_ends_its_line(tmp_path: Path) -> None:
    """Guards against a "CSV (Macintosh)" line end (a lone CR) that is the last byte of a read
    chunk being missed once the next chunk shows no LF: two rows read as one (one recipient
    gets nothing, or the file is refused)."""
    data, count = _rows_up_to(CHUNK, "\r")
    assert data[CHUNK - 1 : CHUNK] == b"\r"
    assert data[CHUNK : CHUNK + 1] != b"\n"
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    rows = list(open_table(source).rows())
    assert [row for row, _ in rows] == list(range(2, count + 2))
    assert [cells[1] for _, cells in rows][-1] == f"+1312555{(count - 1) % 10000:04d}"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
@pytest.mark.parametrize("eol", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_wide_line_end_split_across_read_chunks(tmp_path: Path, codec: str, eol: str) -> None:
    """Guards against a UTF-16/UTF-32 ("Unicode Text" from Excel) line end at a read-chunk
    boundary being misread: a CR LF split in two gave an extra blank row (every later row
    number shifted), a lone CR at the end of a chunk was missed (two rows read as one)."""
    bom = {
        "utf-16-le": codecs.BOM_UTF16_LE,
        "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE,
    }[codec]
    unit = len("\n".encode(codec))
    # The first read starts after the BOM: the CR's unit must be the chunk's last unit.
    data, count = _rows_up_to(CHUNK, eol, encode=lambda s: s.encode(codec))
    cr = "\r".encode(codec)
    assert data[CHUNK - unit : CHUNK] == cr
    source = tmp_path / "in.csv"
    source.write_bytes(bom + data)
    table = open_table(source)
    assert table.codec == codec
    rows = list(table.rows())
    assert [row for row, _ in rows] == list(range(2, count + 2))
    assert all(len(cells) == 3 for _, cells in rows)


def test_a_file_replaced_by_one_of_the_same_size_and_mtime_is_not_read(tmp_path: Path) -> None:
    """Guards against a FILE swapped after its check for another of the same size whose
    modification time was kept (``cp -p``, ``rsync -a``, an archive restore) being read: only
    its inode tells it apart, and its rows would go to other recipients."""
    source = tmp_path / "in.csv"
    source.write_text(f"from,to,text\n{SENDER},+13125550001,hello\n")
    table = open_table(source)
    replacement = tmp_path / "new.csv"
    replacement.write_text(f"from,to,text\n{SENDER},+13125550009,hello\n")
    info = source.stat()
    os.utime(replacement, ns=(info.st_atime_ns, info.st_mtime_ns))
    replacement.replace(source)
    assert source.stat().st_size == info.st_size
    assert source.stat().st_mtime_ns == info.st_mtime_ns
    with pytest.raises(TableError, match="changed while this run read it"):
        list(table.rows())


def test_a_text_line_with_an_empty_sender_and_a_number_is_text(tmp_path: Path) -> None:
    """Guards against a legitimate multi-line text being refused as a stray quote when its
    line reads ",+1..." and the row itself has no sender (it sends with messaging_profile_id):
    an empty sender cell is no sender to match."""
    source = tmp_path / "in.csv"
    source.write_text(
        'from,to,text,messaging_profile_id\n,+13125550001,"Call us back on\n,+18005550100",prof-1\n'
    )
    ((row, cells),) = list(open_table(source).rows())
    assert row == 2
    assert cells[2] == "Call us back on\n,+18005550100"


def test_compaction_keeps_a_row_whose_line_lacks_its_final_newline(tmp_path: Path) -> None:
    """Guards against compaction gluing the next row onto a whole line that ends the file
    without a newline (an editor that drops the final newline): the glued row lost its outcome,
    so a --resume sent it again."""
    out = tmp_path / "out.csv"
    fields = ",".join(RESULT_FIELDS)
    out.write_text(
        f"{fields}\r\n"
        "3,+13125550003,sent,m3,,,telnyx-msg:ab:3,\r\n"
        "2,+13125550002,sent,m2,,,telnyx-msg:ab:2,",  # no final newline
        newline="",
    )
    Results(out).compact()
    with out.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    assert [(r["row"], r["message_id"]) for r in records] == [("2", "m2"), ("3", "m3")]
    statuses = Results(out).load().statuses
    assert [statuses.get(2), statuses.get(3)] == ["sent", "sent"]


def test_status_table_answers_for_any_row(tmp_path: Path) -> None:
    """Guards against looking up a row just past the table's current size crashing (IndexError)
    instead of answering "no outcome": a resume of a big file with few recorded outcomes asks
    for every row."""
    table = StatusTable()
    table.set(2, "sent")
    assert table.get(2) == "sent"
    assert all(table.get(row) is None for row in range(3, 5000))
    assert table.count("sent") == 1


def test_the_first_outcome_since_the_journal_began_counts_as_recent(tmp_path: Path) -> None:
    """Guards against the outcome line that starts exactly where the journal began (RESULTS's
    size then) being left out of ``recent``: after a crash, --resume would take that row, sent
    and recorded, for one in flight and report it ``unknown``."""
    results = Results(tmp_path / "out.csv")
    results.append({"row": 2, "to": "+13125550002", "status": "not_sent"})
    results.close()
    since = results.size()
    results.append({"row": 3, "to": "+13125550003", "status": "sent", "message_id": "m3"})
    results.append({"row": 2, "to": "+13125550002", "status": "sent", "message_id": "m2"})
    results.close()
    loaded = results.load(since)
    assert [loaded.recent.get(3), loaded.recent.get(2)] == ["sent", "sent"]
    assert loaded.recent.get(4) is None
    older = results.load(since + 1)
    assert older.recent.get(3) is None  # a line starting before the offset is not recent


def test_a_results_header_cut_short_by_a_crash_is_ours(tmp_path: Path) -> None:
    """Guards against RESULTS whose header line a crash cut short (the first write of a run)
    being taken for a foreign file: --resume refused ("saved by a spreadsheet?") a run that
    only needs finishing, and the next outcome is read under the full header."""
    results = Results(tmp_path / "out.csv")
    results.path.write_text("row,to,sta")
    results.check()
    assert not results.exists()
    results.append({"row": 2, "to": "+13125550002", "status": "sent", "message_id": "m2"})
    results.close()
    assert results.load().statuses.get(2) == "sent"


def test_the_journal_header_keeps_where_results_stood(tmp_path: Path) -> None:
    """Guards against the journal's record of RESULTS's size being lost when read back: without
    it a --resume cannot tell a ``not_sent`` line the crashed run wrote from an older one, and
    reports rows that were never sent as ``unknown``."""
    from telnyx_msg.cli._journal import Journal, RunHeader

    header = RunHeader("0123456789abcdef", "12:ab", "1/1", results_at=4096, reading="utf-8")
    journal = Journal(tmp_path / "out.csv.journal")
    journal.start(header)
    journal.close()
    read, rows = journal.read()
    assert read == header
    assert list(rows) == []


@pytest.mark.anyio
async def test_retry_unknown_never_resends_a_row_first_attempted_23_and_a_half_hours_ago(
    tmp_path: Path,
) -> None:
    """Guards against the resend window reaching Telnyx's 24 h Idempotency-Key life (less the
    hour kept for clock error): an unknown row first attempted 23.5 h ago that had reached
    Telnyx would be sent a second time by --retry-unknown."""
    import time

    from telnyx_msg.cli._journal import stamp
    from telnyx_msg.testing import FakeTelnyx
    from tests.test_cli_bulk import bulk, crash_after, results, write_rows

    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 2)
    async with FakeTelnyx() as fake:
        assert await bulk(fake, str(source), "--out", str(out)) == 0
        records = {int(r["row"]): r for r in results(out)}
        old = time.time() - 23.5 * 3600
        records[3] |= {"status": "unknown", "message_id": "", "first_attempt": stamp(old)}
        crash_after(out, list(records.values()), journaled=())
        fake.stats.reset()
        assert await bulk(fake, str(source), "--out", str(out), "--resume", "--retry-unknown") == 1
        assert fake.stats.count("POST", "/messages") == 0
    latest = {int(r["row"]): r for r in results(out)}
    assert latest[3]["status"] == "unknown"
    assert latest[3]["first_attempt"] == stamp(old)


def test_appending_to_results_writes_its_header_once(tmp_path: Path) -> None:
    """Guards against each invocation (every --resume) writing the column header again into
    RESULTS: after a crash, before compaction, the file a user opens has header lines among
    the outcomes, and a spreadsheet import reads them as rows."""
    results = Results(tmp_path / "out.csv")
    results.append({"row": 2, "to": "+13125550002", "status": "sent", "message_id": "m2"})
    results.close()
    again = Results(results.path)
    again.append({"row": 3, "to": "+13125550003", "status": "sent", "message_id": "m3"})
    again.close()
    lines = results.path.read_text(encoding="utf-8").splitlines()
    assert lines.count(",".join(RESULT_FIELDS)) == 1
    assert len(lines) == 3


# --- RESULTS that others could read ---------------------------------------------------------

NOBODY = 65534


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root to make the planted files another user's (lchown)",
)
def test_bulk_does_not_write_outcomes_through_another_users_symlink(tmp_path: Path) -> None:
    """Another user plants ``/tmp``-style ``common/run.results.csv`` -> a world-readable,
    header-only file in their own folder; ``bulk --out common/run.results.csv`` must not put
    one recipient's number into that file (refusing the path, or writing a new private file,
    both do)."""
    common, mallory = tmp_path / "common", tmp_path / "mallory"
    common.mkdir()
    mallory.mkdir()
    common.chmod(0o1777)  # sticky and world-writable, like /tmp
    mallory.chmod(0o777)
    planted = mallory / "r.csv"
    planted.write_text(",".join(RESULT_FIELDS) + "\r\n")
    planted.chmod(0o666)
    link = common / "run.results.csv"
    link.symlink_to(planted)
    for path in (mallory, planted):
        os.chown(path, NOBODY, NOBODY)
    os.lchown(link, NOBODY, NOBODY)
    source = tmp_path / "in.csv"
    source.write_text(f"from,to,text\n{SENDER},+13125550001,hi\n{SENDER},+13125550002,hi\n")
    spy = os.open(planted, os.O_RDONLY)  # the other user keeps the file open
    try:
        with serve_in_thread() as fake:
            argv = ["bulk", str(source), "--out", str(link), "--no-progress"]
            main([*argv, "--api-key", fake.api_key, "--base-url", fake.base_url])
        seen = os.read(spy, 1 << 16).decode("utf-8", "replace")
    finally:
        os.close(spy)
    assert "+13125550001" not in seen, seen
    assert "+13125550002" not in seen, seen


def test_bulk_does_not_append_outcomes_to_a_world_readable_header_only_file(
    tmp_path: Path, capsys: Any
) -> None:
    """A header-only RESULTS that others can read (planted in a shared folder, or made with a
    022 umask) is not where the outcomes go: RESULTS is owner-only, so the numbers must land in
    a file only its owner can read (a new one, or none: the run refused)."""
    out = tmp_path / "run.results.csv"
    out.write_text(",".join(RESULT_FIELDS) + "\r\n")
    out.chmod(0o644)
    source = tmp_path / "in.csv"
    source.write_text(f"from,to,text\n{SENDER},+13125550001,hi\n")
    spy = os.open(out, os.O_RDONLY)  # a reader who opened it while it was world-readable
    try:
        with serve_in_thread() as fake:
            argv = ["bulk", str(source), "--out", str(out), "--no-progress"]
            main([*argv, "--api-key", fake.api_key, "--base-url", fake.base_url])
        seen = os.read(spy, 1 << 16).decode("utf-8", "replace")
    finally:
        os.close(spy)
    assert "+13125550001" not in seen, seen


def test_a_dry_run_leaves_a_world_readable_header_only_results_alone(tmp_path: Path) -> None:
    """``--dry-run`` writes nothing but the lock: a header-only RESULTS others can read, which
    the real run replaces by a private file, is still there after the dry run."""
    out = tmp_path / "run.results.csv"
    out.write_text(",".join(RESULT_FIELDS) + "\r\n")
    out.chmod(0o644)
    source = tmp_path / "in.csv"
    source.write_text(f"from,to,text\n{SENDER},+13125550001,hi\n")
    assert main(["bulk", str(source), "--out", str(out), "--dry-run", "--no-progress"]) == 0
    assert out.read_bytes() == (",".join(RESULT_FIELDS) + "\r\n").encode()


@pytest.mark.anyio
async def test_a_sent_row_keeps_the_id_of_an_answer_it_could_not_fully_read(
    tmp_path: Path, api_server: Callable[[Handler], Awaitable[ApiServer]]
) -> None:
    """Telnyx accepted the row (``sent``, never resent) and its answer names the message, but
    one field of it is not what the SDK reads (a recipient without ``phone_number``). RESULTS
    still records ``message_id``, the row's only link to its delivery webhooks and
    ``messages.retrieve``; it was written empty, with the id in no cell."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    write_rows(source, 1)
    message_id = "40385f64-5717-4562-b3fc-2c963f66afa6"

    async def handler(request: Any) -> Any:
        await request.read()
        data = message_json(id=message_id)
        data["to"] = [{"status": "queued"}]
        return json_response({"data": data})

    server = await api_server(handler)
    assert await anyio.to_thread.run_sync(main, server_argv(source, out, server.base_url)) == 0
    (row,) = results(out)
    assert (row["status"], row["message_id"]) == ("sent", message_id)
