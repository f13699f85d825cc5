"""``telnyx-msg bulk FILE --out RESULTS``: one message per row, never twice, never lost.

Guarantees (``docs/cli.md`` states them for users):

- Every row gets exactly one final outcome in RESULTS (``sent``, ``rejected``, ``unknown``,
  ``not_sent``): outcomes are appended as they arrive; Ctrl-C or SIGTERM stops the run, records
  the rows in flight (``unknown`` if their request may have been written, else ``not_sent``)
  and exits 130 / 143; after a crash, ``--resume`` records the journaled rows that have no
  outcome as ``unknown`` (see :mod:`telnyx_msg.cli._journal`).
- Nothing is sent twice: ``--resume`` never resends a ``sent``, ``unknown`` or ``rejected`` row.
  Each row carries the ``Idempotency-Key`` ``telnyx-msg:RUN:ROW``; ``--retry-unknown`` resends
  ``unknown`` rows with their original key, so Telnyx answers with the message it already has
  instead of sending it again. Telnyx keeps a key 24 h, so a row first attempted longer ago than
  ``RESEND_WINDOW`` (23 h) is not resent: it stays ``unknown``, and the run says so.
- An existing RESULTS is never overwritten without ``--overwrite``; a resumed run must read the
  same file (size and SHA-256 are checked), since rows are identified by their row numbers.
- ``--shard I/N --redis URL``: this process sends only the rows whose position among the data
  rows is ``I`` modulo ``N`` (row 2 is shard 1's, row 3 shard 2's, ...), under rate limits shared
  through Redis with the other shards. Each shard has its own RESULTS, journal and run id, and
  resumes on its own (with the same ``--shard``).
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import os
import re
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from attrs import evolve

from telnyx_msg._config import RequestOptions
from telnyx_msg._events import RequestEvent
from telnyx_msg._items import SendItem
from telnyx_msg._outcome import SendOutcome
from telnyx_msg._redis_common import bounded, make_client
from telnyx_msg.cli import BULK_ACCOUNT_MPS, BULK_CONCURRENCY, StopSignals, safe_lines
from telnyx_msg.cli._journal import (
    RESEND_WINDOW,
    STATUSES,
    UNREADABLE,
    CompactionError,
    Journal,
    JournalError,
    Results,
    ResultsError,
    RunHeader,
    RunLock,
    StatusTable,
    idempotency_key,
    stamp,
)
from telnyx_msg.cli._progress import Progress
from telnyx_msg.cli._table import Table, TableError, fingerprint, open_table
from telnyx_msg.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    ConfigurationError,
    RedisUnavailableError,
    TelnyxError,
    ValidationError,
)

if TYPE_CHECKING:
    from telnyx_msg.cli._claim import ShardClaim

__all__ = ["UsageError", "run_bulk"]

_DONE = frozenset({"sent", "unknown", "rejected"})


def _unreachable(error: BaseException | None) -> str | None:
    """How a send's error shows Telnyx is out of reach, or None (see ``UNREACHABLE_STOP``)."""
    if isinstance(error, APIConnectionError) and not error.outcome_unknown:
        return "could not connect; Telnyx or the network looks down"
    if isinstance(error, APIResponseValidationError) and not error.accepted:
        return (
            "were answered by something other than Telnyx; a captive portal, a proxy or a "
            "wrong --base-url is in the way"
        )
    if isinstance(error, APIStatusError) and (
        error.status < 400 or (error.status in (407, 511) and not error.outcome_unknown)
    ):
        # A redirect (to a portal's sign-in page; Telnyx never redirects, so a 303, unknown
        # as it is, is not Telnyx either), a proxy's or a captive portal's login.
        return (
            "were answered by a redirect, a proxy or a captive portal asking to sign in; "
            "something other than Telnyx is in the way"
        )
    return None


#: A run stops after this many sends in a row (or twice --concurrency, if more) could not
#: connect at all, each after its retries (every row is then not_sent, which --resume resends),
#: or got a 2xx that is not Telnyx's answer (unknown: --resume --retry-unknown resends them
#: with their idempotency keys).
UNREACHABLE_STOP = 100
#: Seconds between the plain progress lines of a run whose stderr is not a terminal.
_LOG_EVERY = 60.0
_SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
_SIGHUP: int | None = getattr(signal, "SIGHUP", None)  # not on Windows
if _SIGHUP is not None:  # a closed terminal or dropped ssh session: stop as on SIGTERM
    _SIGNAL_EXIT[signal.Signals(_SIGHUP)] = 129
_STOPPED = {  # the error cell of a row the run stopped in flight
    "unknown": "the run was stopped while this request may have been written",
    "not_sent": "the run was stopped before this request was written",
}


class UsageError(Exception):
    """A problem with the command line or the files: exit 2 before anything is sent."""


def _say(text: str) -> None:
    _emit(text, sys.stderr)


def _emit(text: str, stream: Any) -> None:
    """Print a line of the run's messages, never raising.

    The reader may be gone (``2>&1 | tee log`` with tee killed by the same Ctrl-C) or the disk
    full: RESULTS and the exit status say what happened, and a message that cannot be shown
    must not turn a stop into a run that goes on, or an interrupted run into a crash.
    """
    if stream is None:  # started with the stream closed
        return
    try:
        print(safe_lines(text), file=stream, flush=True)
    except (OSError, ValueError):
        # Pointed at /dev/null: the text left in the buffer and every later message (and the
        # interpreter's last flush) then go nowhere instead of failing again.
        with contextlib.suppress(OSError, ValueError):  # a stream without a descriptor
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())
            finally:
                os.close(devnull)


def _record(
    row: int,
    outcome: SendOutcome | None,
    *,
    status: str,
    to: str = "",
    key: str = "",
    error: BaseException | str | None = None,
    first_attempt: float | None = None,
) -> dict[str, Any]:
    err = outcome.error if outcome is not None else error
    message = outcome.message if outcome is not None else None
    return {
        "row": row,
        "to": " ".join(to.split()),
        "status": status,
        "message_id": message.id if message is not None and message.id else _accepted_id(err),
        "code": (err.code or "") if isinstance(err, APIStatusError) else "",
        "error": "" if err is None else " ".join(str(err).split()),
        "idempotency_key": key,
        "first_attempt": _first_attempt_cell(first_attempt),
    }


def _accepted_id(error: BaseException | str | None) -> str:
    """The id of a message Telnyx accepted with an answer that could not be read: the row's
    only link to its delivery webhooks and ``messages.retrieve``."""
    found = getattr(error, "resource_id", None)
    return found if isinstance(found, str) else ""


def _first_attempt_cell(at: float | None) -> str:
    if at is None:
        return ""
    # Kept unreadable (not empty, which means "not recorded"), so it is never resent.
    return "unknown" if at == UNREADABLE else stamp(at)


def default_results(source: Path) -> Path:
    """RESULTS without ``--out``: FILE's name with its extension replaced (``a.csv`` ->
    ``a.results.csv``)."""
    return source.with_name(source.stem + ".results.csv")


class BulkRun:
    """One invocation of the bulk command over a checked table."""

    def __init__(self, args: argparse.Namespace, table: Table) -> None:
        self.args = args
        self.table = table
        self.out: Path = args.out or default_results(table.path)
        # The file, not its spelling: two names for one RESULTS (a symlink, ../dir/x) must
        # share its lock and journal, and compaction replaces the file, not a symlink to it.
        real = Path(os.path.realpath(self.out))
        self.results = Results(real)
        self.journal = Journal(real.with_name(real.name + ".journal"))
        self.lock = RunLock(real.with_name(real.name + ".lock"))
        self.statuses = StatusTable()
        self.counts: Counter[str] = Counter()
        self.blank = 0
        self.header = RunHeader("", "")
        self.recovered: list[int] = []
        # The first attempt of each unknown row (Unix time), and of each row sent now.
        self.unknown_since: dict[int, float] = {}
        self.attempted: dict[int, float] = {}
        self.expired: set[int] = set()  # unknown rows too old to resend with their key
        self.undated = 0  # unknown rows resent whose first attempt RESULTS does not say
        self.recorded = StatusTable()  # outcomes written by this invocation
        self.in_flight: Counter[str] = Counter()
        self.stopped: list[int] = []
        self.signals = StopSignals()
        self.sending = False
        self.claim: ShardClaim | None = None  # a --redis run's, checked before each request
        self.completed = False  # went through every row (a --redis run then frees its shard)
        self.began = False  # send() began: a request may have been written
        self.planned = False  # every row read; False after a signal while reading the file
        self.rejectable = 0  # pending rows the plan found the send would refuse before I/O
        # The task awaiting the plan was cancelled (Ctrl-C without loop signal handlers, as on
        # Windows): the plan's thread must stop too, or the interpreter waits for it at exit.
        self.abandoned = False
        self.shard_index: int = args.shard[0]
        self.shard_count: int = args.shard[1]

    # -- before anything is sent ---------------------------------------------------------------

    def _refuse_foreign(self) -> None:
        """Refuse a RESULTS (or a symlink to it) that belongs to another user: it would get
        this run's phone numbers and message ids (a link planted in a shared folder such as
        /tmp)."""
        uid = getattr(os, "geteuid", lambda: None)()
        if uid is None:  # (Windows)
            return
        for path, stat in ((self.out, os.lstat), (self.results.path, os.stat)):
            try:
                owner = stat(path).st_uid
            except OSError:
                continue  # not there yet
            if owner != uid:
                raise UsageError(
                    f"--out {path} belongs to another user (uid {owner}): RESULTS gets every "
                    "row's number and message id; give a path of your own"
                )

    def prepare(self) -> None:
        """Lock RESULTS, then check --resume / --overwrite against the files on disk (nothing
        else is written yet)."""
        args = self.args
        if str(self.out) == "-" or (self.out.exists() and not self.out.is_file()):
            # /dev/stdout, a terminal or a pipe: RESULTS is read back (and locked, and
            # journaled next to it) to resume, so it must be a file (reading a terminal waits).
            raise UsageError(
                f"--out {self.out} is not a regular file: RESULTS is read back to resume; give "
                "a file name (the run prints its summary on the terminal)"
            )
        if not self.results.path.parent.is_dir():
            raise UsageError(f"the folder of {self.out} does not exist")
        self._refuse_foreign()
        if self.out.resolve() == self.table.path.resolve():
            raise UsageError(f"--out {self.out} is FILE itself; results need a file of their own")
        holder = self.lock.acquire()
        if holder is not None:
            raise UsageError(
                f"{self.out} is in use by another telnyx-msg bulk ({holder}); wait for it to "
                "end (or stop it) before resuming, so no row is sent by both"
            )
        existing = self.results.exists() or self.journal.exists()
        if (
            not existing
            and not args.dry_run  # which writes nothing but the lock
            and self.results.path.exists()
            and _shared_mode(self.results.path)
        ):
            # A header alone (no records), readable by others (planted in a shared folder, a
            # 022 umask): replaced by an owner-only file, not appended to.
            self.results.path.unlink()
        if existing:
            try:
                self.results.check()
            except ResultsError as exc:
                # Not --overwrite: if this is a run's RESULTS, a new run would send every row
                # again. With it: a file that is no RESULTS (contacts.csv) is not ours to delete.
                if args.overwrite:
                    raise UsageError(
                        f"{exc}; --overwrite replaces only a results file: delete it yourself "
                        "if it is not needed, or give --out another name"
                    ) from None
                raise UsageError(
                    f"{exc}; if it is not a results file, give --out another name"
                ) from None
        if existing and not (args.resume or args.overwrite):
            raise UsageError(
                f"{self.out} already holds results of a run; pass --resume to continue it "
                "(rows already sent or of unknown outcome are never sent again) or --overwrite "
                "to start a new run"
            )
        if args.resume and not existing:
            # A mistyped --out would otherwise start a new run: every row sent again.
            raise UsageError(
                f"nothing to resume: neither {self.out} nor its journal exists (check --out; "
                f"without it RESULTS is {default_results(self.table.path)}); drop --resume "
                "to start a new run"
            )
        source = fingerprint(self.table.path)
        shard = f"{self.shard_index}/{self.shard_count}"
        reading = self.table.codec + ("+ignore" if args.ignore_unknown_columns else "")
        if not existing or args.overwrite:
            self.header = RunHeader.new(source, shard, reading)
            return
        header, journaled = self.journal.read()
        since = header.results_at if header is not None else None
        loaded = self.results.load(since)
        self.statuses, self.unknown_since = loaded.statuses, loaded.unknown_since
        if header is None:
            # Only the journal records FILE's fingerprint and --shard: made up from today's
            # FILE, they would let a changed file (or another shard) resume, sending rows to
            # the wrong recipients and recording them as sent.
            raise UsageError(
                f"cannot resume: {self.journal.path} is missing (or unreadable); it records "
                f"{self.table.path}'s size and SHA-256 and the --shard of the run, without which "
                "resuming could send the wrong rows. Restore it next to "
                f"{self.out}, or start a new run (another --out) over the rows {self.out} does "
                "not record as sent"
            )
        if header.shard != shard:
            raise UsageError(
                f"{self.out} records shard {header.shard}; resume it with --shard {header.shard}"
            )
        if header.reading is not None and header.reading != reading:
            # Another decoding gives other texts: rows sent twice with different words, and
            # --retry-unknown's resends refused (their keys used with another body).
            encoding, _, ignore = header.reading.partition("+")
            options = f"--encoding {encoding}" + (" --ignore-unknown-columns" if ignore else "")
            raise UsageError(
                f"{self.out} was begun reading {self.table.path} with {options}: resume it with "
                "the same options, so every row reads as in the rows already sent"
            )
        if header.source != source:
            raise UsageError(
                f"{self.table.path} changed since this run began (rows are identified by their "
                f"row numbers, so resuming could send the wrong rows); restore the file, or "
                f"start a new run with a new --out"
            )
        # A journal begun without it (an older telnyx-msg) gets today's reading from now on.
        self.header = header if header.reading is not None else evolve(header, reading=reading)
        # Journaled before its request could be written, and no outcome recorded since the
        # journal began: the process died with it in flight, so it may have reached Telnyx.
        # A journal without its start offset (written by an older version) cannot tell a
        # not_sent line of an earlier run from one of the run that died, so it counts neither.
        exact = since is not None
        for row, at in journaled:
            status = loaded.recent.get(row)
            if not (status is None or (status == "not_sent" and not exact)):
                continue
            self.recovered.append(row)
            if self.statuses.get(row) == "unknown":  # an unknown row's resend: the first counts
                at = self.unknown_since.get(row)
            if at is not None:
                self.unknown_since[row] = at
            self.statuses.set(row, "unknown")
        # Past Telnyx's 24 h the original key no longer protects a resend: an unknown row
        # that had in fact been accepted would go out twice. It stays unknown.
        now = time.time()
        self.expired = {
            row
            for row, at in self.unknown_since.items()
            if now - at > RESEND_WINDOW and self.statuses.get(row) == "unknown" and self._mine(row)
        }

    @property
    def run_id(self) -> str:
        """The id every row's Idempotency-Key derives from (kept across resumes)."""
        return self.header.run_id

    def begin(self) -> None:
        """Write what ``prepare`` decided: a fresh run's files, or a crash's unknown rows."""
        if self.args.overwrite:
            self.results.remove()
            self.journal.remove()
        self._record_unknown(
            self.recovered,
            "the run stopped while this request may have been written (found in the journal "
            "by --resume)",
        )
        if self.recovered:
            _say(
                f"resume: {len(self.recovered)} row(s) were in flight when the last run "
                "stopped; recorded as unknown"
                + ("" if self.args.retry_unknown else " (--retry-unknown resends them safely)")
            )
        if self.args.retry_unknown:
            self._record_expired()
        self._restart_journal()

    def _record_expired(self) -> None:
        if not self.expired:
            return
        rows = sorted(self.expired)

        def why(row: int) -> str:
            at = self.unknown_since[row]
            when = (
                "at an unknown time (its first_attempt cell is not in the format "
                "telnyx-msg writes, e.g. 2026-12-05T12:40:18Z)"
                if at == UNREADABLE
                else f"{stamp(at)}, more than {RESEND_WINDOW / 3600:.0f} h ago"
            )
            return (
                f"not resent: first attempted {when}, and Telnyx keeps an Idempotency-Key "
                "24 h, so a resend could send it twice; look it up in Telnyx's message records "
                "and send it again yourself only if it was not sent"
            )

        self._record_unknown(rows, why)
        _say(
            f"resume: {len(rows)} unknown row(s) may be past Telnyx's 24 h Idempotency-Key "
            f"window (first attempted more than {RESEND_WINDOW / 3600:.0f} h ago, or at a time "
            f"RESULTS no longer shows), so --retry-unknown does not resend them (first: row "
            f"{rows[0]}); their lines in {self.out} say why, check them in Telnyx's message "
            "records"
        )

    def _record_unknown(self, rows: list[int], why: str | Callable[[int], str]) -> None:
        recipients = self._recipients(rows)
        for row in rows:
            record = _record(
                row,
                None,
                status="unknown",
                to=recipients.get(row, ""),
                key=self._key(row),
                error=why if isinstance(why, str) else why(row),
                first_attempt=self.unknown_since.get(row),
            )
            self._write(record)

    def _restart_journal(self) -> None:
        # RESULTS must be on disk before the journal that covered its rows is emptied; the
        # new journal notes where this invocation's outcomes begin.
        self.results.close()
        self.header = evolve(self.header, results_at=self.results.size())
        self.journal.start(self.header)

    def _recipients(self, rows: list[int]) -> dict[int, str]:
        """The ``to`` cell of each of ``rows``, read from the input file.

        The journal names rows only; ``prepare`` checked that the file is the one the run
        began with, so a row's cells are those its request was built from (``to`` as sent).
        """
        wanted = set(rows)
        found: dict[int, str] = {}
        if not wanted:
            return found
        last = max(wanted)
        for row, cells in self.table.rows():
            if row in wanted:
                found[row] = self.table.cell(cells, "to")
            if row >= last:
                break
        return found

    def _key(self, row: int) -> str:
        return idempotency_key(self.run_id, row)

    def _mine(self, row: int) -> bool:
        return (row - 2) % self.shard_count == self.shard_index - 1

    def _pending(self, row: int) -> bool:
        if not self._mine(row):
            return False  # another shard's row
        status = self.statuses.get(row)
        if status == "unknown" and self.args.retry_unknown:
            return row not in self.expired
        return status not in _DONE

    def plan(self) -> int:
        """Read the whole file once (decoding errors stop here), print the plan and the rows
        that will be rejected without a request, count rows."""
        from telnyx_msg._bulk import pick_method
        from telnyx_msg._client import make_request
        from telnyx_msg._plan import plan_bulk
        from telnyx_msg._resources import Messages

        pending = 0
        examples: list[str] = []  # the first few rejected rows, "row N: why"

        def reject(row: int, why: Exception) -> None:
            self.rejectable += 1
            if len(examples) < _REJECTED_SHOWN:
                examples.append(f"row {row}: {why}")

        def requests() -> Iterator[dict[str, Any]]:
            nonlocal pending
            for row, cells in self.table.rows():
                if self.stopped or self.abandoned:  # Ctrl-C while a big file is read
                    return
                if not self._pending(row):
                    continue
                try:
                    request = self.table.request(cells)
                except ValueError as exc:
                    pending += 1
                    reject(row, exc)
                    continue
                if request is not None:
                    pending += 1
                    # The checks the send runs before any I/O, run now: a row they refuse is
                    # not planned, and is shown before anything is sent.
                    method = pick_method(request, "auto")
                    endpoint = getattr(Messages, method).endpoint
                    try:
                        make_request(endpoint, (), dict(request), f"messages.{method}")
                    except ValidationError as exc:
                        reject(row, exc)
                        continue
                    yield request

        from telnyx_msg._ratelimit import RateLimits

        plan = plan_bulk(requests(), RateLimits(account_mps=self.args.account_mps))
        if self.stopped or self.abandoned:
            return pending  # a partial plan would mislead; send() returns at once
        self.planned = True
        lanes = len(plan.lanes)
        text = (
            f"plan: {_counted(plan.messages, 'message')} ({_counted(plan.segments, 'segment')}) "
            f"over {_counted(lanes, 'sender lane')}, about {_duration(plan.seconds)} at the "
            "client's rate limits"
        )
        if self.shard_count > 1:
            # The account limit is shared with the other shards: alone is the best case.
            text += (
                f" if this shard ran alone (it shares the account limit with "
                f"{self.shard_count - 1} other shard(s): up to {self.shard_count} times longer)"
            )
        if plan.delivery_seconds > plan.seconds + 1:
            text += (
                "; Telnyx's sender queues deliver the last after "
                f"{_duration(plan.delivery_seconds)}"
            )
        _say(text)
        for warning in plan.warnings:
            _say(f"warning: {warning}")
        if self.rejectable:
            more = self.rejectable - len(examples)
            _say(
                f"warning: {_counted(self.rejectable, 'row')} will be rejected without a request "
                "(recorded `rejected`):"
            )
            for example in examples:
                _say(f"  {example}")
            if more:
                _say(f"  and {more} more")
        if self.table.ignored:
            _say(f"ignoring column(s): {', '.join(self.table.ignored)}")
        return pending

    def limits(self) -> Any:
        """The client's rate limits: shared through Redis with ``--redis``, else local."""
        mps = self.args.account_mps
        if self.args.redis:
            from telnyx_msg._redis_limits import RedisRateLimits

            return RedisRateLimits(self.args.redis, account_mps=mps)
        from telnyx_msg._ratelimit import RateLimits

        return RateLimits(account_mps=mps)

    # -- sending ---------------------------------------------------------------------------------

    def _write(self, record: dict[str, Any]) -> None:
        self.results.append(record)
        self.statuses.set(int(record["row"]), record["status"])
        self.recorded.set(int(record["row"]), record["status"])

    def _outcome(
        self, row: int, outcome: SendOutcome, progress: Progress, stopped: bool = False
    ) -> str:
        status = outcome.status
        resent = self.statuses.get(row) == "unknown"
        if status in ("not_sent", "rejected") and resent:
            # A --retry-unknown resend that did not go out says nothing of the first attempt,
            # which may have been accepted: still unknown, or a later plain --resume (past the
            # key's 24 h) could send it twice. A rejected one neither: Telnyx may have refused
            # the repeat (its key already used with another body), not the message.
            status = "unknown"
        # The key's 24 h run from the first attempt that may have reached Telnyx.
        at = self.attempted.pop(row, None)
        if resent:
            at = self.unknown_since.pop(row, None)
            if at is None:
                self.undated += 1
        elif status == "not_sent":
            at = None
        to = str(outcome.request.get("to", ""))
        record = _record(row, outcome, status=status, to=to, key=self._key(row), first_attempt=at)
        if stopped and not record["error"]:
            record["error"] = _STOPPED.get(outcome.status, "")
        if status != outcome.status:
            record["error"] += " (this resend was not sent; an earlier attempt may have been)"
        self._write(record)
        self.counts[status] += 1
        progress.update(status)
        return status

    def catch_signals(self) -> list[int]:
        """Turn SIGINT/SIGTERM/SIGHUP into a graceful stop (in the main thread); returns the
        handled."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()

        def on_signal(signum: int) -> None:
            if not self.signals.received():
                return
            if self.stopped:  # a second signal: leave now; the journal covers what is in flight
                os._exit(_SIGNAL_EXIT.get(signal.Signals(signum), 1))
            self.stopped.append(signum)
            # The stop first: an exception here is lost in the event loop, and the run would go on.
            if self.sending and main is not None:
                main.cancel()
            doing = "recording the rows in flight" if self.sending else "before the first request"
            _say(f"\n{signal.Signals(signum).name}: stopping; {doing} ...")

        handled: list[int] = []
        for signum in _SIGNAL_EXIT:
            if signum == _SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                continue  # nohup: a hangup is not a stop
            # Only the main thread can handle signals (not, e.g., a caller's worker thread).
            with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
                loop.add_signal_handler(signum, on_signal, signum)
                handled.append(signum)
        return handled

    async def send(self, progress: Progress) -> int | None:
        """Send every pending row; return the signal number that stopped the run, if any."""
        from telnyx_msg._client import AsyncClient

        if self.stopped:  # a signal arrived while planning or claiming: nothing was sent
            return self.stopped[0]
        self.began = True
        self.sending = True

        rows_by_index: dict[int, int] = {}
        rows_by_key: dict[str, int] = {}
        journal = self.journal

        async def journal_first(event: RequestEvent) -> None:
            # A request hook runs after the rate limiter and before the request is written.
            if self.claim is not None:
                self.claim.check()  # raises (the row is not_sent) once the shard is not ours
            row = rows_by_key.get(event.idempotency_key or "")
            if row is not None and event.attempt == 0:
                self.attempted[row] = time.time()
                await journal.record(row)

        down: list[str] = []  # set when Telnyx looks unreachable: no further row is pulled

        def requests() -> Iterator[SendItem]:
            index = 0
            for row, cells in self.table.rows():
                if down:
                    return
                if not self._pending(row):
                    continue
                try:
                    request = self.table.request(cells)
                except ValueError as exc:  # a bad cell: rejected without any I/O
                    self._write(
                        _record(
                            row,
                            None,
                            status="rejected",
                            to=self.table.cell(cells, "to"),
                            error=f"row {row}: {exc}",
                        )
                    )
                    self.counts["rejected"] += 1
                    progress.update("rejected")
                    continue
                if request is None:
                    self.blank += 1
                    continue
                key = self._key(row)
                request["options"] = RequestOptions(idempotency_key=key)
                rows_by_index[index] = row
                rows_by_key[key] = row
                index += 1
                # The keys come from the checked header (send fields), as the type says.
                yield cast(SendItem, request)

        def finished(outcome: SendOutcome, stopped: bool = False) -> str:
            row = rows_by_index.pop(outcome.index)
            rows_by_key.pop(self._key(row), None)
            return self._outcome(row, outcome, progress, stopped)

        def stopped_in_flight(outcome: SendOutcome) -> None:
            self.in_flight[finished(outcome, stopped=True)] += 1

        args = self.args
        limits = self.limits()
        try:
            async with AsyncClient(
                args.api_key,
                base_url=args.base_url,
                timeout=args.timeout,
                rate_limits=limits,
                event_hooks={"request": [journal_first]},
            ) as client:
                outcomes = client.messages.send_many(
                    requests(), concurrency=args.concurrency, on_stop=stopped_in_flight
                )
                unreachable = 0  # outcomes in a row that could not even connect
                give_up_after = max(UNREACHABLE_STOP, 2 * args.concurrency)
                try:
                    async for outcome in outcomes:
                        finished(outcome)
                        lost = None if self.claim is None else self.claim.lost
                        if lost is not None:
                            # Every further row would be not_sent (and take a token of the
                            # account limit the shard's new owner sends with): stop now; the
                            # rows in flight are recorded by on_stop.
                            raise ShardLost(
                                f"shard {self.shard_index}/{self.shard_count} is no longer this "
                                f"run's ({lost}); another process may be sending it: this run "
                                "sends no further row (RESULTS records the rows it sent or had "
                                "in flight); check which rows that process sent before "
                                "resuming this run"
                            )
                        if journal.failed is not None:
                            raise JournalError(
                                f"cannot write the journal {journal.path}: {journal.failed}"
                            )
                        error = outcome.error
                        why = _unreachable(error)
                        unreachable = 0 if why is None else unreachable + 1
                        if why is not None and not down and unreachable >= give_up_after:
                            # Telnyx (or the network) is down: going on would only mark the rest
                            # of the file not_sent (or unknown, behind a captive portal), for
                            # hours. The rows in flight finish; no more are pulled.
                            down.append(f"{unreachable} sends in a row {why} ({error})")
                    if down:
                        raise APIConnectionError(down[0])
                finally:
                    # Stops the sends in flight now; their outcomes reach on_stop.
                    await outcomes.aclose()
        except asyncio.CancelledError:
            if not self.stopped:
                raise
            task = asyncio.current_task()
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+: the stop is handled
            if uncancel is not None:
                uncancel()
        finally:
            self.sending = False
            await journal.drain()
            closer = getattr(limits, "aclose", None)
            if closer is not None:
                await closer()
        return self.stopped[0] if self.stopped else None

    def finish(self) -> None:
        """Leave the files clean: an outcome for every journaled row, an empty journal, and
        RESULTS synced and compacted to one line per row."""
        # A stop reports the rows in flight, so normally each journaled row has its outcome.
        # If an error cut that short, the journal is about to be emptied: record them here
        # (and if that fails too, the journal stays for --resume).
        _, journaled = self.journal.read()
        missing = [row for row, _ in journaled if self.recorded.get(row) is None]
        for row in missing:
            at = self.attempted.get(row)
            if at is not None and self.statuses.get(row) != "unknown":  # else: its first try
                self.unknown_since[row] = at
        self._record_unknown(
            missing, "the run ended while this request may have been written (an error stopped it)"
        )
        self.counts["unknown"] += len(missing)
        self._restart_journal()
        # Compacted after the journal is emptied: a journal's start offset must stay true
        # while it lists rows.
        self.results.compact()
        self._restart_journal()
        self.journal.close()

    def unfinished(self) -> int:
        """Rows of the file whose outcome is not ``sent`` after this run."""
        return sum(self.statuses.count(s) for s in ("rejected", "unknown", "not_sent"))


#: Rejected rows the plan names (the rest are counted).
_REJECTED_SHOWN = 5


def _tally(rows: int, count: Callable[[str], int]) -> str:
    """``2 rows: 2 sent, 0 rejected, 0 unknown, 0 not_sent``."""
    return f"{_counted(rows, 'row')}: " + ", ".join(f"{count(s):,} {s}" for s in STATUSES)


def _resume_command(run: BulkRun) -> str:
    """The command that continues ``run``, with the options that decide which rows are read
    and how fast they go (quoted for a POSIX shell); the API key stays in the environment."""
    args = run.args
    words = ["telnyx-msg", "bulk", str(args.file), "--out", str(run.out)]
    if codecs.lookup(args.encoding).name != "utf-8":
        words += ["--encoding", args.encoding]
    if args.ignore_unknown_columns:
        words.append("--ignore-unknown-columns")
    if args.account_mps != BULK_ACCOUNT_MPS:
        words += ["--account-mps", f"{args.account_mps:g}"]
    if args.concurrency != BULK_CONCURRENCY:
        words += ["--concurrency", str(args.concurrency)]
    if run.shard_count > 1:
        words += ["--shard", f"{run.shard_index}/{run.shard_count}"]
    if args.redis:  # the limits it shares with other processes, sharded or not
        words += ["--redis", _masked(args.redis)]
    if args.base_url:  # a run against a fake or staging API must not resume against Telnyx
        words += ["--base-url", args.base_url]
    return shlex.join([*words, "--resume"])


async def check_redis(url: str, timeout: float = 5.0) -> None:
    """Raise ``ConfigurationError`` unless the Redis at ``url`` answers a PING: checked before
    RESULTS exists, so a wrong URL or password does not leave a run that needs ``--resume``."""
    client = make_client(url, None, owner=f"--redis {_masked(url)}", socket_timeout=timeout)
    try:
        await bounded(client.ping(), timeout, RedisUnavailableError, "PING")
    except RedisUnavailableError as exc:
        raise ConfigurationError(
            f"--redis {_masked(url)}: Redis PING failed ({exc.__cause__ or exc})"
        ) from None
    finally:
        await client.aclose()


def _masked(url: str) -> str:
    """``url`` with its password (if any, also as redis-py's ``?password=``) shown as ``***``:
    the command goes to logs."""
    base, mark, query = url.partition("?")
    if mark:
        url = base + mark + re.sub(r"(?i)(^|&)(password=)[^&#]*", r"\1\2***", query)
    # Split by hand, at the last "@": a password holding an unescaped /, ? or # ends
    # urlsplit's netloc early, and the URL would then be shown as it is.
    scheme, sep, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    if not (sep and at):
        return url
    user, colon, _ = userinfo.partition(":")
    if not colon and not re.search(r"[/?#]", userinfo):
        return url  # a user name alone
    return f"{scheme}://{user if colon else ''}:***@{after}"


def _shared_mode(path: Path) -> bool:
    """Whether ``path`` is readable or writable by its group or others."""
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


def _counted(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


async def run_bulk(args: argparse.Namespace) -> int:
    """The ``bulk`` command; returns the exit status."""
    try:
        table = open_table(
            args.file, args.encoding, ignore_unknown_columns=args.ignore_unknown_columns
        )
        run = BulkRun(args, table)
    except (TableError, UsageError) as exc:
        _say(f"error: {exc}")
        return 2
    try:
        run.prepare()
    except (TableError, UsageError, ResultsError, OSError) as exc:  # OSError: folder unwritable
        run.lock.release()
        _say(f"error: {exc}")
        return 2
    claim = None
    if args.redis and not args.dry_run:
        from telnyx_msg.cli._claim import ShardClaim

        # Claimed once FILE was read (_run): a run that cannot read it claims nothing.
        claim = run.claim = ShardClaim(
            args.redis,
            _masked(args.redis),
            run.header.source,
            run.shard_index,
            run.shard_count,
            run.run_id,
            overwrite=args.overwrite,
            resume=args.resume,
        )
    handled = run.catch_signals()
    try:
        return await _run(run)
    finally:
        if claim is not None:
            # A new run that stopped before send() sent nothing: the shard is as it found it.
            # Not --overwrite's, even unbegun: its claim may have dropped another split's
            # records, which protected rows sent; its own stopped record stands for them.
            unused = not (args.resume or args.overwrite or run.began)
            await claim.release(finished=run.completed, unused=unused)
        run.lock.release()
        loop = asyncio.get_running_loop()
        for signum in handled:
            loop.remove_signal_handler(signum)
        if run.stopped:
            # Ending on a signal: a repeat now (an echo through `timeout`) would be raised as
            # KeyboardInterrupt wherever asyncio's shutdown is, which can end it in
            # "Event loop stopped before Future completed" (exit 1). main() puts the handlers
            # back once the command has returned.
            with contextlib.suppress(ValueError):  # not the main thread
                for signum in handled:
                    signal.signal(signum, signal.SIG_IGN)


class ShardLost(TelnyxError):
    """A ``--redis`` run's shard claim was taken over or lapsed while it was sending."""


async def _run(run: BulkRun) -> int:
    args = run.args
    try:
        # In a thread, so a signal while a big file is read is handled at once (on_signal runs
        # on the loop) and the run stops before its first request.
        try:
            total = await asyncio.to_thread(run.plan)
        except asyncio.CancelledError:
            run.abandoned = True
            raise
        if args.dry_run:
            if run.planned:
                _emit(
                    f"dry run: nothing sent; {_counted(total - run.rejectable, 'row')} to send, "
                    f"{run.rejectable:,} to be rejected",
                    sys.stdout,
                )
                return 1 if run.rejectable else 0
            _say("interrupted while reading FILE: nothing sent")
            return _SIGNAL_EXIT.get(signal.Signals(run.stopped[0]), 1) if run.stopped else 130
        if run.stopped and args.overwrite:
            # Stopped before anything was decided: the RESULTS --overwrite would discard (the
            # record of what an earlier run sent) stays as it was.
            _say(f"interrupted while reading {args.file}: nothing sent; {run.out} left as it was")
            return _SIGNAL_EXIT.get(signal.Signals(run.stopped[0]), 1)
        if run.claim is not None and not run.stopped:  # a signal while reading: no claim
            from telnyx_msg.cli._claim import ShardTaken

            try:
                await run.claim.acquire(str(run.table.path))
            except (ShardTaken, TelnyxError) as exc:  # nothing claimed, nothing sent
                _say(f"error: {exc}")
                return 2
            if run.stopped and args.overwrite:  # a signal while claiming: as while reading
                _say(f"interrupted: nothing sent; {run.out} left as it was")
                return _SIGNAL_EXIT.get(signal.Signals(run.stopped[0]), 1)
        run.begin()
    except (TableError, UsageError, OSError) as exc:  # nothing sent yet
        _say(f"error: {exc}")
        return 2
    # stderr is None when the command was started with it closed (2>&-).
    tty = sys.stderr is not None and sys.stderr.isatty()
    progress = Progress(
        total,
        enabled=not args.no_progress and tty,
        log_every=None if args.no_progress or tty else _LOG_EVERY,
    )
    stopped: int | None = None
    failure: BaseException | None = None
    finished = False
    try:
        stopped = await run.send(progress)
    except (TelnyxError, JournalError, TableError, OSError) as exc:
        failure = exc  # OSError: RESULTS (or FILE) cannot be written (read); e.g. a full disk
    finally:
        progress.finish()
        try:
            run.finish()
            finished = True
        except OSError as exc:  # RESULTS cannot be written: the journal keeps what is in flight
            failure = failure or exc
    stopped = stopped if stopped is not None else (run.stopped[0] if run.stopped else None)
    counts = run.counts
    done = sum(counts.values())
    summary = _tally(done, counts.__getitem__)
    if run.blank:
        summary += f"; {run.blank} blank row(s) skipped"
    if args.resume:
        # This run's counts alone read "0 rows" when nothing was left: say what RESULTS holds.
        every = sum(run.statuses.count(s) for s in STATUSES)
        _emit(f"this run: {summary}", sys.stdout)
        summary = f"all runs: {_tally(every, run.statuses.count)}"
    _emit(f"{summary}; results in {run.out}", sys.stdout)
    resume = _resume_command(run)
    unknown_hint = (
        " (add --retry-unknown to resend the unknown rows with their original Idempotency-Key)"
        if run.statuses.count("unknown")
        else ""
    )
    if failure is not None:
        _say(f"error: {failure}")
        if isinstance(failure, ShardLost) and finished:
            _say("stopped; the rows in flight were recorded (another process has the shard)")
        elif finished:
            _say(f"stopped; the rows in flight were recorded. Resume with: {resume}{unknown_hint}")
        elif isinstance(failure, CompactionError):  # said what happened and what to do
            _say(f"Resume with: {resume}")
        else:
            _say(
                f"stopped; {run.out} could not be finished: the rows in flight are in the "
                f"journal, and --resume records them once it can write. Resume with: {resume}"
            )
        return 1
    if stopped is not None:
        flight = run.in_flight
        # Every status counted: rows answered while the run stopped are recorded sent too.
        recorded = ", ".join(
            f"{flight[s]} {s.replace('_', ' ')}"
            for s in ("sent", "rejected", "unknown", "not_sent")
            if flight[s]
        )
        _say(
            f"interrupted while reading {args.file}: no row was sent"
            if not run.planned
            else f"interrupted: the {sum(flight.values())} row(s) in flight were recorded "
            f"({recorded or 'none'}); {max(total - done, 0):,} row(s) not attempted yet"
        )
        _say(f"resume with: {resume}{unknown_hint}")
        return _SIGNAL_EXIT.get(signal.Signals(stopped), 1)
    run.completed = True  # every row of the shard has its line
    if run.undated:
        _say(
            f"warning: {run.undated} unknown row(s) resent had no first-attempt time in "
            f"{run.out} (written by an older telnyx-msg): they were resent on the assumption "
            "that their first attempt was within Telnyx's 24 h Idempotency-Key window"
        )
    unknown = run.statuses.count("unknown")
    expired = len(run.expired)
    if unknown > expired:
        _say(
            f"{unknown - expired} row(s) have an unknown outcome (they may have been sent); "
            f"resend them safely with: {resume} --retry-unknown (within 24 h of their first "
            "attempt, recorded in first_attempt: Telnyx keeps Idempotency-Keys that long)"
        )
    if expired:
        _say(
            f"{expired} unknown row(s) may be past Telnyx's 24 h Idempotency-Key window, so "
            "--retry-unknown does not resend them; check them in Telnyx's message records "
            f"(their lines in {run.out} say when they were first attempted)"
        )
    return 1 if run.unfinished() else 0
