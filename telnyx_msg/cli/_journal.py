"""The bulk command's state on disk: the RESULTS file and its write-ahead journal.

RESULTS (CSV, or JSON Lines for a ``.jsonl`` name) gets one line per final outcome, appended and
flushed as outcomes arrive; at the end of every invocation it is compacted (atomically) to one
line per row. The journal, ``RESULTS.journal``, says which rows may have reached Telnyx: its
first line names the run (the id every ``Idempotency-Key`` derives from) and the input file's
fingerprint, and RESULTS's size when the journal began, then one ``w ROW`` line per row, written
and ``fdatasync``-ed *before* that row's request can be written (each batch of them after a
``t SECONDS`` line: the Unix time it was written). After a crash (``kill -9``, power
loss) a journaled row without an outcome recorded *since the journal began* may have been sent,
so ``--resume`` records it ``unknown``. An older line does not count: a row an earlier run left
``not_sent`` is pending again, and the crashed run may have written it.

Each outcome line carries ``first_attempt``: when the first request for the row that may have
reached Telnyx was about to be written (UTC). Telnyx keeps an ``Idempotency-Key`` for 24 hours,
so an ``unknown`` row is resent with its key (``--retry-unknown``) only within
:data:`RESEND_WINDOW` of that time: later, the resend could be a second message.

Journal writes are grouped: every request waiting for the journal is covered by the next sync,
so a run at concurrency 50 costs one sync per batch of rows, not one per row. A sync that takes
under 2 ms runs in the event loop; slower disks sync in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import json
import os
import time
import uuid
from array import array
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, NamedTuple

from attrs import frozen

__all__ = [
    "CompactionError",
    "RESEND_WINDOW",
    "RESULT_FIELDS",
    "STATUSES",
    "UNREADABLE",
    "Journal",
    "JournalError",
    "Loaded",
    "Results",
    "ResultsError",
    "RunHeader",
    "RunLock",
    "StatusTable",
    "idempotency_key",
    "stamp",
    "unstamp",
]

RESULT_FIELDS = (
    "row",
    "to",
    "status",
    "message_id",
    "code",
    "error",
    "idempotency_key",
    "first_attempt",
)
STATUSES = ("sent", "rejected", "unknown", "not_sent")
_MAGIC = "telnyx-msg bulk journal v1"
_INLINE_SYNC_LIMIT = 0.002  # seconds
# Telnyx keeps an Idempotency-Key 24 h; an hour less leaves room for clock error between this
# machine and Telnyx's (docs/cli.md).
RESEND_WINDOW = 23 * 3600.0
UNREADABLE = 0.0  # the first attempt of a row whose first_attempt cell cannot be read
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def stamp(at: float) -> str:
    """``at`` (Unix time) as RESULTS writes it: ISO 8601 UTC to the second."""
    return datetime.fromtimestamp(int(at), timezone.utc).strftime(_STAMP)


def unstamp(text: str) -> float | None:
    """The Unix time of a ``first_attempt`` cell, or None when empty or unreadable."""
    try:
        return datetime.strptime(text, _STAMP).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def idempotency_key(run_id: str, row: int) -> str:
    """The ``Idempotency-Key`` of one row of one run (Telnyx's format ``[A-Za-z0-9_:-]``)."""
    return f"telnyx-msg:{run_id}:{row}"


class ResultsError(Exception):
    """RESULTS is not in the format this command writes: nothing may be sent."""


class CompactionError(OSError):
    """RESULTS holds every outcome but could not be rewritten to one line per row."""


class JournalError(Exception):
    """The journal could not be written: nothing more may be sent."""


@frozen
class RunHeader:
    """What identifies a run: its id, the fingerprint of the file it reads, and its shard.

    ``results_at`` is RESULTS's size in bytes when the journal began: lines from that offset on
    are outcomes of the invocation the journal covers (None in a journal written without it).
    """

    run_id: str
    source: str
    shard: str = "1/1"
    results_at: int | None = None
    reading: str | None = None
    """How FILE is decoded: its codec, ``+ignore`` with --ignore-unknown-columns (None in a
    journal written without it)."""

    @classmethod
    def new(cls, source: str, shard: str = "1/1", reading: str | None = None) -> RunHeader:
        """A fresh run over a file with fingerprint ``source``."""
        return cls(uuid.uuid4().hex[:16], source, shard, None, reading)

    def line(self) -> bytes:
        """The journal's first line."""
        at = "" if self.results_at is None else f" results={self.results_at}"
        reading = "" if self.reading is None else f" reading={self.reading}"
        return (
            f"{_MAGIC} run={self.run_id} source={self.source} shard={self.shard}{at}{reading}\n"
        ).encode()

    @classmethod
    def parse(cls, line: str) -> RunHeader | None:
        """The header in ``line``, or None if it is not one."""
        if not line.startswith(_MAGIC + " "):
            return None
        fields = dict(part.split("=", 1) for part in line.split()[4:] if "=" in part)
        if "run" not in fields or "source" not in fields:
            return None
        at = fields.get("results", "")
        results_at = int(at) if _digits(at) else None
        shard = fields.get("shard", "1/1")
        return cls(fields["run"], fields["source"], shard, results_at, fields.get("reading"))


class StatusTable:
    """The latest status of each row, one byte per row (bounded memory for big files).

    Rows come in about ascending order; a row number far beyond those seen (a ``row`` cell
    mistyped in a spreadsheet) is kept apart, so memory follows the rows recorded, not the
    largest number written."""

    def __init__(self) -> None:
        self._codes = bytearray()
        self._far: dict[int, int] = {}
        self._top = -1  # the highest row in _far (-1: none)

    def get(self, row: int) -> str | None:
        """The row's latest status, or None."""
        code = self._codes[row] if row < len(self._codes) else self._far.get(row, 0)
        return STATUSES[code - 1] if code else None

    def set(self, row: int, status: str) -> None:
        """Record the row's latest status."""
        code = STATUSES.index(status) + 1
        if row < len(self._codes):
            self._codes[row] = code
        else:
            self._far[row] = code
            self._top = _settle(self._codes, self._far, row, max(self._top, row), b"\0")

    def count(self, status: str) -> int:
        """How many rows have ``status`` now."""
        code = STATUSES.index(status) + 1
        return self._codes.count(code) + sum(1 for c in self._far.values() if c == code)


def _settle(table: Any, far: dict[int, int], row: int, top: int, blank: Any) -> int:
    """After ``row`` was put in ``far`` (the rows kept apart from a per-row ``table``): grow
    ``table`` when ``row``, or the highest row kept apart, is near enough for what it and
    ``far`` hold, and move in the rows kept apart that it then covers. Rows in descending
    order (a RESULTS sorted by a spreadsheet) end in the table after a few of them, not each
    one in ``far``. ``top`` is the highest row in ``far``; returns it after the move (-1 when
    none is left: the rows left are above every moved one)."""
    size = len(table)
    reach = top if _near(top, size, len(far)) else row if _near(row, size, len(far)) else -1
    if reach < 0:
        return top
    table.extend(blank * (_grown(reach, size) - size))
    for moved in [r for r in far if r < len(table)]:
        table[moved] = far.pop(moved)
    return top if far else -1


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes ``²`` and other digits ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _near(row: int, size: int, held: int) -> bool:
    """Whether growing a per-row table of ``size`` slots to ``row`` stays within a small
    multiple of what it holds and of the ``held`` rows kept apart (else ``row`` is kept apart,
    in a dict, which costs as much as some tens of slots)."""
    return row < 2 * size + _DENSE_SLACK + _HELD_SLOTS * held


def _grown(row: int, size: int) -> int:
    """The new size of a per-row table of ``size`` slots that must hold ``row``: doubled at
    least, so rows kept apart are moved in only a logarithmic number of times."""
    return max(row + 1 + 1024, 2 * size)


#: Slots a per-row table may grow by beyond twice its size for one row.
_DENSE_SLACK = 1 << 16
#: Slots a per-row table may grow by for each row kept apart.
_HELD_SLOTS = 32


class Loaded(NamedTuple):
    """What RESULTS records (:meth:`Results.load`)."""

    statuses: StatusTable
    """The latest status of each row."""
    recent: StatusTable
    """The latest status of each row among the lines from the given offset on."""
    run_id: str | None
    """The run id found in the recorded keys."""
    unknown_since: dict[int, float]
    """The first attempt (Unix time) of each row whose latest line is ``unknown`` with one
    (:data:`UNREADABLE` when the cell is not in the format RESULTS writes)."""


class Results:
    """The RESULTS file: appended as outcomes arrive, compacted to one line per row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._jsonl = path.suffix.lower() == ".jsonl"
        self._handle: IO[str] | None = None
        self._writer: Any = None

    def exists(self) -> bool:
        """True when the file holds anything (a header alone counts as empty); a file in
        another format counts as holding something, so it is never appended to."""
        try:
            return any(True for _ in self.records())
        except ResultsError:
            return True

    def check(self) -> None:
        """Raise :class:`ResultsError` when the file is not in the format this command writes."""
        for _ in self._scan():
            return

    def records(self) -> Iterator[dict[str, str]]:
        """Every valid line in file order; a torn line (a crash or a full disk mid-write: fewer
        cells than the header, or JSON that does not parse) or a foreign one is skipped."""
        for _offset, record in self._scan():
            yield record

    def _scan(self) -> Iterator[tuple[int, dict[str, str]]]:
        # Line by line with byte offsets (every record is one line: values hold no newlines).
        if not self.path.exists():
            return
        with self.path.open("rb") as handle:
            header: list[str] | None = None
            offset = 0
            for raw in handle:
                start, offset = offset, offset + len(raw)
                line = raw.decode("utf-8", "replace")
                if not line.strip():
                    continue
                if self._jsonl:
                    record = _json_or_none(line)
                else:
                    cells = next(csv.reader([line]), [])
                    if header is None:
                        header = _header(line, cells, self.path)
                        continue
                    if len(cells) < len(header):
                        # Cut short by a crash or a full disk: its status may be whole while its
                        # key and message id are not. Skipped, the row has no outcome, and the
                        # journal (which lists it until its outcome is synced) makes it unknown.
                        # (A line written under an older, narrower header has more cells.)
                        continue
                    record = dict(zip(header, cells, strict=False))
                if (
                    isinstance(record, dict)
                    and record.get("status") in STATUSES
                    and _digits(str(record.get("row", "")))
                ):
                    yield start, {k: str(record.get(k) or "") for k in RESULT_FIELDS}

    def load(self, since: int | None = None) -> Loaded:
        """What the file records; ``recent`` counts the lines from byte offset ``since`` on
        (every line when None). Memory: a byte per row, plus an entry per ``unknown`` row."""
        table, recent = StatusTable(), StatusTable()
        unknown_since: dict[int, float] = {}
        run_id = None
        for offset, record in self._scan():
            row, status = int(record["row"]), record["status"]
            table.set(row, status)
            if since is None or offset >= since:
                recent.set(row, status)
            cell = record["first_attempt"] if status == "unknown" else ""
            if cell:
                # A cell a spreadsheet rewrote says nothing of the age: older than any window.
                unknown_since[row] = unstamp(cell) or UNREADABLE
            else:
                unknown_since.pop(row, None)
            key = record["idempotency_key"]
            if run_id is None and key.count(":") == 2:
                run_id = key.split(":")[1]
        return Loaded(table, recent, run_id, unknown_since)

    def size(self) -> int:
        """The file's size in bytes (0 when it does not exist)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one outcome line and flush it to the OS."""
        if self._handle is None:
            size = self.size()
            fresh = size == 0
            torn = not fresh and _last_byte(self.path) != b"\n"
            self._handle = open(  # noqa: SIM115  # kept open across appends
                _private(self.path, os.O_WRONLY | os.O_APPEND), "a", newline="", encoding="utf-8"
            )
            if torn:  # a crash cut the last line short: it must not swallow this one
                self._handle.write("\n")
            if not self._jsonl:
                self._writer = csv.DictWriter(self._handle, RESULT_FIELDS)
                if fresh:
                    self._writer.writeheader()
        line = {k: record.get(k, "") for k in RESULT_FIELDS}
        if not self._jsonl:
            line.update({k: _inert(line[k]) for k in _FREE_TEXT})
        if self._jsonl:
            self._handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            self._writer.writerow(line)
        self._handle.flush()

    def close(self) -> None:
        """Flush, sync and close the file."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def compact(self) -> None:
        """Rewrite the file with the latest line of each row, in row order (atomic replace)."""
        self.close()
        latest = array("q")
        far: dict[int, int] = {}  # rows far beyond the others (see StatusTable)
        top = -1
        for offset, record in self._scan():
            row = int(record["row"])
            if row < len(latest):
                latest[row] = offset
            else:
                far[row] = offset
                top = _settle(latest, far, row, max(top, row), array("q", [-1]))
        if not latest and not far:
            if not self.path.exists():  # no row had an outcome: "results in RESULTS" holds
                with open(_private(self.path, os.O_WRONLY), "w", encoding="utf-8") as out:
                    out.write("" if self._jsonl else ",".join(RESULT_FIELDS) + "\r\n")
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with self.path.open("rb") as source, open(_private_new(tmp), "wb") as out:
                if not self._jsonl:
                    out.write((",".join(RESULT_FIELDS) + "\r\n").encode())
                offsets = itertools.chain(latest, (far[row] for row in sorted(far)))
                for offset in offsets:
                    if offset >= 0:
                        source.seek(offset)
                        line = source.readline()
                        out.write(line if line.endswith(b"\n") else line + b"\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # a partial copy would keep a full disk full
            raise CompactionError(
                f"every row's outcome is in {self.path}, but rewriting it to one line per row "
                f"failed: {exc.strerror or exc} (it needs about {self.path.stat().st_size:,} "
                "bytes free); run the same command with --resume to finish it, nothing is "
                "sent again"
            ) from exc
        _sync_dir(self.path)

    def remove(self) -> None:
        """Delete the file (``--overwrite``)."""
        self.close()
        self.path.unlink(missing_ok=True)


def _header(line: str, cells: list[str], path: Path) -> list[str]:
    """The column names of RESULTS's first line, or ResultsError if they are not ours."""
    text = line.strip().lstrip("\ufeff")  # a BOM: saved by a spreadsheet as "CSV UTF-8"
    cells = [cell.lstrip("\ufeff") for cell in cells]
    if {"row", "status"} <= set(cells):
        return cells
    if ",".join(RESULT_FIELDS).startswith(text):  # cut short by a crash while first written
        return list(RESULT_FIELDS)
    found = next((d for d in ";\t" if {"row", "status"} <= set(text.split(d))), None)
    how = (
        f"its columns are separated by {found!r}, not ','"
        if found
        else "its first line is not telnyx-msg's header (row,to,status,...)"
    )
    raise ResultsError(
        f"cannot read {path}: {how}. Was it saved by a spreadsheet? Restore the file telnyx-msg "
        "wrote (or save it as comma-separated CSV) before resuming, so no row is sent twice"
    )


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


class Journal:
    """``RESULTS.journal``: the run header, then one durable ``w ROW`` line per row sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pending: list[bytes] = []
        self._batch: asyncio.Future[None] | None = None
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        self._slow_sync = False
        self.failed: BaseException | None = None

    def exists(self) -> bool:
        """True when a journal is on disk."""
        return self.path.exists()

    def read(self) -> tuple[RunHeader | None, Iterator[tuple[int, float | None]]]:
        """The header, and each journaled row with the time it was journaled (None in a journal
        written without times); a torn last line is ignored."""
        if not self.path.exists():
            return None, iter(())
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            header = RunHeader.parse(handle.readline())

        def rows() -> Iterator[tuple[int, float | None]]:
            at: float | None = None
            with self.path.open(encoding="utf-8", errors="replace") as handle:
                handle.readline()
                for line in handle:
                    parts = line.split()
                    if len(parts) != 2 or not _digits(parts[1]):
                        continue
                    if parts[0] == "w":
                        yield int(parts[1]), at
                    elif parts[0] == "t":
                        at = float(parts[1])

        return header, rows()

    def start(self, header: RunHeader) -> None:
        """Write a journal holding only ``header`` (atomically), then open it for appending."""
        self.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(_private_new(tmp), "wb") as out:
                out.write(header.line())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        _sync_dir(self.path)
        self.open()

    def open(self) -> None:
        """Open the journal for appending."""
        if self._fd is None:
            self._fd = _private(self.path, os.O_WRONLY | os.O_APPEND)

    async def record(self, row: int) -> None:
        """Return once the line for ``row`` is on stable storage (shared with other rows)."""
        if self.failed is not None:
            raise JournalError(f"the journal {self.path} cannot be written: {self.failed}")
        loop = asyncio.get_running_loop()
        self._pending.append(b"w %d\n" % row)
        if self._batch is None:
            self._batch = loop.create_future()
        batch = self._batch
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush())
        # Shielded: a send cancelled while it waits must not cancel the others' sync.
        await asyncio.shield(batch)

    async def drain(self) -> None:
        """Wait for the sync in progress (sends stopped while waiting for it leave it running)."""
        if self._flusher is not None and not self._flusher.done():
            with contextlib.suppress(Exception):  # a failure is kept in ``failed``
                await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        try:
            while self._pending:
                # An older reader skips the time line and still finds every row.
                data = b"t %d\n" % time.time() + b"".join(self._pending)
                self._pending = []
                batch, self._batch = self._batch, None
                assert batch is not None
                try:
                    if self._slow_sync:
                        await asyncio.to_thread(self._write, data)
                    else:
                        self._write(data)
                except Exception as exc:
                    self.failed = exc
                    error = JournalError(f"cannot write the journal {self.path}: {exc}")
                    # The rows queued while a slow write ran in its thread fail too: else they
                    # would wait for a flush that never comes.
                    for waiting in (batch, self._batch):
                        if waiting is not None and not waiting.done():
                            waiting.set_exception(error)
                            waiting.exception()  # retrieved here: waiters may all be gone
                    self._batch, self._pending = None, []
                    return
                batch.set_result(None)
        finally:
            self._flushing = False

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        started = time.perf_counter()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        getattr(os, "fdatasync", os.fsync)(self._fd)
        # A fast disk syncs in a fraction of a millisecond: cheaper in the event loop than a
        # hand-off to a thread. A slow one would stall the loop, so it moves to a thread.
        self._slow_sync = time.perf_counter() - started > _INLINE_SYNC_LIMIT

    def close(self) -> None:
        """Close the file descriptor."""
        if self._flushing:
            # Its write would land in whatever file reuses the descriptor's number next.
            raise RuntimeError(f"{self.path} is being synced: await drain() first")
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Delete the journal (``--overwrite``)."""
        self.close()
        self.path.unlink(missing_ok=True)


class RunLock:
    """``RESULTS.lock``: held while a process works on RESULTS, so two invocations (an
    overlapping cron job, a second terminal) cannot both send its pending rows.

    An advisory ``flock``: the kernel drops it when the process ends, however it ends, so a
    ``kill -9`` leaves no stale lock. The file itself stays (deleting it would race).
    Where ``fcntl`` is missing (Windows) nothing is locked.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock; return None, or what the holder wrote (its pid) when it is taken."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return None
        try:
            fd = _private(self.path, os.O_RDWR)
        except OSError as exc:  # a read-only folder; a symlink planted there (ELOOP), say
            # Not "in use by another run": that sends its reader waiting for a run that is not.
            raise ResultsError(f"cannot create or open {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip()
            os.close(fd)
            return holder or "another process"
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd
        return None

    def release(self) -> None:
        """Let another invocation take RESULTS."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _sync_dir(path: Path) -> None:
    # The rename itself must survive a power loss, not just the file's contents.
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: Refuses to open through a symlink where the platform can (POSIX).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

#: RESULTS columns whose text comes from the input file or the server.
_FREE_TEXT = ("to", "message_id", "code", "error")


def _private(path: Path, flags: int) -> int:
    """Open (creating it readable by its owner only: it holds phone numbers) ``path``, never
    through a symlink someone planted there."""
    return os.open(path, flags | os.O_CREAT | _NOFOLLOW, 0o600)


def _private_new(path: Path) -> int:
    """A new owner-only file at ``path``; whatever was there (a stale temporary file, a planted
    symlink) is removed, not followed."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)


def _inert(value: Any) -> Any:
    """A cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first)
    made text with a leading ``'``; a phone number (``+`` and digits) stays as it is. Anything
    but a str is written as it was (the CSV writer turns None into an empty cell)."""
    if not isinstance(value, str):
        return value
    number = value[:1] == "+" and value[1:].isascii() and value[1:].isdigit()
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not number:
        return "'" + value
    return value
