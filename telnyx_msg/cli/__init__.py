"""The ``telnyx-msg`` command (also ``python -m telnyx_msg``).

Commands: ``send``, ``bulk FILE.csv``, ``mock-server``, ``webhook verify``, ``webhook worker``,
``demo``. Every
command that talks to Telnyx reads ``TELNYX_API_KEY`` / ``TELNYX_BASE_URL`` (or ``--api-key`` /
``--base-url``); point ``--base-url`` at ``telnyx-msg mock-server`` to try it without an account.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import io
import json
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from telnyx_msg._config import resolve_api_key, resolve_base_url
from telnyx_msg._version import __version__
from telnyx_msg.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    ConfigurationError,
    TelnyxError,
    ValidationError,
    printable,
)

#: Seconds within which a repeated signal is the same stop request: a terminal's Ctrl-C
#: reaches the whole process group, so under a wrapper that forwards it (``timeout``) the
#: command receives it twice, a millisecond apart, and took the echo for a second request.
SIGNAL_ECHO = 0.2


class StopSignals:
    """The stop requests a command received by signal (echoes not counted)."""

    def __init__(self) -> None:
        self.count = 0
        self._last = 0.0

    def received(self) -> bool:
        """Count a signal now; False when it echoes the last one counted."""
        now = time.monotonic()
        if self.count and now - self._last < SIGNAL_ECHO:
            return False
        self.count += 1
        self._last = now
        return True


BULK_CONCURRENCY = 50  # bulk's default --concurrency
BULK_ACCOUNT_MPS = 50.0  # bulk's default --account-mps
#: `send`'s exit status when the message may or may not have been accepted (or was, but its
#: answer could not be read): rerun with the printed key to settle it.
EXIT_UNKNOWN = 3

#: Mock-server's default port: stable, so a second terminal's exports keep working.
MOCK_PORT = 8765


class _Formatter(argparse.HelpFormatter):
    """Shows an option's default when it has a real one (not for flags and unset options)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.option_strings
            and "%(default)" not in text
            and action.default is not None
            and action.default is not False
            and action.default is not argparse.SUPPRESS
        ):
            text += " (default: %(default)s)"
        return text


_FORMATTER = _Formatter
#: Request fields (as ValidationError names them) -> the send command's options.
_SEND_FLAGS = {
    "from": "--from",
    "to": "--to",
    "text": "--text",
    "media_urls": "--media-url",
    "messaging_profile_id": "--messaging-profile-id",
    "webhook_url": "--webhook-url",
    "idempotency_key": "--idempotency-key",
}


def _shard(text: str) -> tuple[int, int]:
    """``I/N`` with 1 <= I <= N."""
    index, _, count = text.partition("/")
    digits = index.isascii() and count.isascii() and index.isdigit() and count.isdigit()
    if not (digits and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 1 <= I <= N (e.g. 2/3)")
    return int(index), int(count)


def _count(text: str) -> int:
    """An int >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive(text: str, *, zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``zero``): seconds or messages/s (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise argparse.ArgumentTypeError(
            f"must be a finite number {'>=' if zero else '>'} 0, got {text}"
        )
    return value


def _non_negative(text: str) -> float:
    """A finite number >= 0 (argparse type)."""
    return _positive(text, zero=True)


def _port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {value}")
    return value


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", metavar="KEY", help="API key (default: $TELNYX_API_KEY)")
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="API root (default: $TELNYX_BASE_URL, else https://api.telnyx.com/v2)",
    )
    parser.add_argument(
        "--timeout", type=_positive, default=60.0, metavar="SECONDS", help="seconds per attempt"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``telnyx-msg``."""
    parser = argparse.ArgumentParser(
        prog="telnyx-msg",
        description="Send and receive messages with the Telnyx Messaging API.",
        epilog="Try it with no account: telnyx-msg demo",
    )
    parser.add_argument("--version", action="version", version=f"telnyx_msg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = commands.add_parser(
        "send",
        help="send one message",
        formatter_class=_FORMATTER,
        description="Send one SMS/MMS and print the accepted message. "
        "Give --from, or --messaging-profile-id to let the "
        "profile's number pool pick the sender.",
    )
    send.add_argument(
        "--from",
        dest="from_",
        metavar="SENDER",
        help="E.164 number, short code or alphanumeric sender ID",
    )
    send.add_argument(
        "--to",
        required=True,
        metavar="NUMBER",
        help="recipient: E.164 (e.g. +13125550001) or a short code",
    )
    send.add_argument(
        "--text",
        help="message body (--text or --media-url is needed); '-' reads it from stdin "
        "(UTF-8, trailing newlines dropped)",
    )
    send.add_argument(
        "--media-url",
        action="append",
        dest="media_urls",
        metavar="URL",
        help="media to attach (makes it an MMS); repeat for several",
    )
    send.add_argument(
        "--messaging-profile-id", metavar="ID", help="send from this profile's number pool"
    )
    send.add_argument(
        "--webhook-url", metavar="URL", help="where Telnyx posts this message's delivery webhooks"
    )
    send.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="Telnyx sends a key's message at most once; default: a new key for this "
        "command, so its own retries never send twice (exit 3 prints it for a rerun)",
    )
    send.add_argument("--json", action="store_true", help="print the whole message as JSON")
    _client_args(send)

    bulk = commands.add_parser(
        "bulk",
        help="send every row of a CSV file, resumably",
        formatter_class=_FORMATTER,
        description="Send one message per row of a CSV file (header row of send fields: from, "
        "to, text, media_urls separated by '|', messaging_profile_id, subject, "
        "type, webhook_url, ...; ',' ';' or tab). Every row gets exactly one "
        "outcome in RESULTS (sent, rejected, unknown, not_sent), whatever happens "
        "to the process; nothing is ever sent twice.",
    )
    bulk.add_argument("file", type=Path, help="CSV file with a header row")
    bulk.add_argument(
        "--out",
        type=Path,
        metavar="RESULTS",
        help="results file, .csv or .jsonl (default: FILE with .results.csv for its extension)",
    )
    bulk.add_argument(
        "--concurrency", type=_count, default=BULK_CONCURRENCY, help="sends in flight at most"
    )
    bulk.add_argument(
        "--resume",
        action="store_true",
        help="continue the run recorded in RESULTS: rows sent, unknown or "
        "rejected are never sent again",
    )
    bulk.add_argument(
        "--retry-unknown",
        action="store_true",
        help="with --resume: resend unknown rows with their original "
        "Idempotency-Key, so Telnyx does not send them twice (only rows first attempted "
        "less than 23 h ago: Telnyx keeps a key 24 h)",
    )
    bulk.add_argument(
        "--overwrite",
        action="store_true",
        help="discard an existing RESULTS and start a new run, sending every row again (with "
        "--redis, also a shard another run stopped before finishing)",
    )
    bulk.add_argument(
        "--encoding",
        default="utf-8",
        help="text encoding of FILE, e.g. cp1252 (a byte-order mark overrides it)",
    )
    bulk.add_argument(
        "--ignore-unknown-columns",
        action="store_true",
        help="send without the columns that are not send fields",
    )
    bulk.add_argument(
        "--account-mps",
        type=_positive,
        default=BULK_ACCOUNT_MPS,
        metavar="MPS",
        help="client-side account rate limit in messages/s",
    )
    bulk.add_argument(
        "--shard",
        type=_shard,
        default="1/1",  # argparse passes a string default through type=
        metavar="I/N",
        help="send only shard I of N (rows spread round-robin); run N such "
        "processes, each with its own --out, sharing limits via --redis",
    )
    bulk.add_argument(
        "--redis",
        metavar="URL",
        help="share the rate limits with other processes through this Redis (needed with --shard)",
    )
    bulk.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress line (it is drawn only on a terminal anyway)",
    )
    bulk.add_argument(
        "--dry-run",
        action="store_true",
        help="read FILE, print the plan and the rows that would be rejected, send nothing "
        "(exit 0: every row can be sent, 1: some would be rejected)",
    )
    _client_args(bulk)

    mock = commands.add_parser(
        "mock-server",
        help="run the embedded fake Telnyx API",
        formatter_class=_FORMATTER,
        description="Serve FakeTelnyx until interrupted. Prints export "
        "lines (base URL, the API key it accepts, its webhook "
        "public key) to paste in another terminal, then one "
        "access-log line per request on stderr.",
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to listen on")
    mock.add_argument("--port", type=_port, default=MOCK_PORT, help="port; 0 picks a free one")
    mock.add_argument(
        "--api-key", default="test-key", metavar="KEY", help="the only API key the fake accepts"
    )
    mock.add_argument(
        "--latency",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="added to every response, to try interrupting and resuming a bulk run",
    )
    mock.add_argument(
        "--api-rate-limit",
        type=_count,
        default=None,
        metavar="N",
        help="answer 429 (code 10011) beyond N requests per 1-second window, as an account "
        "request limit does, to watch the client adapt (default: no limit)",
    )
    mock.add_argument("--quiet", action="store_true", help="no access log")

    webhook = commands.add_parser(
        "webhook", help="webhook tools", description="Tools for Telnyx webhooks."
    )
    webhook_commands = webhook.add_subparsers(
        dest="webhook_command", required=True, metavar="COMMAND"
    )
    verify = webhook_commands.add_parser(
        "verify",
        help="verify a saved webhook",
        formatter_class=_FORMATTER,
        description="Verify a saved webhook body against its telnyx-timestamp and "
        "telnyx-signature-ed25519 headers; exit 0 if valid.",
    )
    verify.add_argument(
        "body_file",
        type=Path,
        metavar="BODY_FILE",
        help="the raw request body, byte for byte ('-' reads it from stdin)",
    )
    verify.add_argument(
        "--timestamp",
        required=True,
        metavar="TS",
        help="the telnyx-timestamp header (Unix seconds)",
    )
    verify.add_argument(
        "--signature",
        required=True,
        metavar="SIG",
        help="the telnyx-signature-ed25519 header (base64)",
    )
    verify.add_argument(
        "--public-key",
        metavar="KEY",
        help="public key, base64 or PEM (default: $TELNYX_PUBLIC_KEY)",
    )
    verify.add_argument(
        "--tolerance",
        type=_non_negative,
        default=300,
        metavar="SECONDS",
        help="max clock skew (raise it to check a delivery saved long ago)",
    )

    worker = webhook_commands.add_parser(
        "worker",
        help="run webhook handlers from a Redis queue",
        formatter_class=_FORMATTER,
        description="Handle the webhooks that receivers queued with RedisWebhookQueue: every "
        "event is passed to the --handler function (an async function taking a WebhookEvent; "
        "dispatch on event.event_type inside it; a plain function runs in a thread). Run as "
        "many workers as you like; SIGINT or SIGTERM finishes the handler in flight, then "
        "exits.",
    )
    worker.add_argument("--redis", required=True, metavar="URL", help="redis:// URL")
    worker.add_argument(
        "--handler",
        required=True,
        metavar="MODULE:FUNCTION",
        help="handler to import, e.g. myapp.hooks:handle (the current directory is importable)",
    )
    worker.add_argument("--stream", default="telnyx_msg:webhooks", help="stream key")
    worker.add_argument("--group", default="telnyx_msg", help="consumer group")
    worker.add_argument(
        "--consumer",
        default=None,
        help="this worker's name in the group (default: host-pid-random)",
    )
    worker.add_argument(
        "--claim-after",
        type=_positive,
        default=30.0,
        metavar="SECONDS",
        help="take over entries left unacknowledged this long",
    )
    worker.add_argument(
        "--max-attempts",
        type=_count,
        default=5,
        help="deliveries before an entry moves to STREAM:dead",
    )
    worker.add_argument(
        "--handler-timeout",
        type=_positive,
        default=300.0,
        metavar="SECONDS",
        help="a handler running longer is cancelled and counts as failed (a plain "
        "function's thread cannot be stopped: its entry is held until it returns)",
    )

    demo = commands.add_parser(
        "demo",
        help="the whole flow against a local fake, no account",
        formatter_class=_FORMATTER,
        description="Start the embedded fake Telnyx, send messages "
        "concurrently, verify delivery webhooks, summarise.",
    )
    demo.add_argument("--count", type=_count, default=300, help="messages to send")
    demo.add_argument("--concurrency", type=_count, default=50, help="sends in flight at most")
    demo.add_argument(
        "--account-mps",
        type=_positive,
        default=100.0,
        metavar="MPS",
        help="client-side account rate limit, messages/s",
    )
    return parser


class _Terminated(BaseException):
    """SIGTERM (or, for ``send``, SIGHUP: a closed terminal, a dropped ssh session) outside the
    bulk run's own handling (e.g. while starting up)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


#: A closed terminal or a dropped ssh session ends ``send`` like SIGTERM: with the key printed.
_SIGHUP: int | None = getattr(signal, "SIGHUP", None)  # not on Windows


class _Interrupted(BaseException):
    """SIGINT while ``send``'s request is out, turned from the task's cancellation: a
    KeyboardInterrupt raised inside a task is left "never retrieved" by Python 3.10's asyncio,
    which then logs it with a traceback."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _signals_restored() -> Iterator[None]:
    """Give SIGINT, SIGTERM and SIGHUP back their handlers afterwards: ``main()`` called from a
    program (a test, a notebook, a service's job) must not leave ours, or asyncio's defaults,
    in charge of that program's signals."""
    signums = [signal.SIGINT, signal.SIGTERM] + ([] if _SIGHUP is None else [_SIGHUP])
    saved = [(signum, signal.getsignal(signum)) for signum in signums]
    try:
        yield
    finally:
        for signum, handler in saved:
            if handler is not None:  # None: set outside Python, cannot be put back
                with contextlib.suppress(ValueError):  # not the main thread: never changed
                    signal.signal(signum, handler)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; its usage errors are raised for ``main`` to report."""
    if args.command == "send":
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGTERM, _terminated)  # as Ctrl-C: print the key if sending
            if _SIGHUP is not None and signal.getsignal(_SIGHUP) != signal.SIG_IGN:  # nohup
                signal.signal(_SIGHUP, _terminated)
        if args.text == "-":  # read before the loop runs: Ctrl-C must reach a blocked read
            args.text = _stdin_text()
        return asyncio.run(_send(args))
    if args.command == "bulk":
        from telnyx_msg.cli._bulk import check_redis, run_bulk

        if args.retry_unknown and not args.resume:
            print("error: --retry-unknown needs --resume", file=sys.stderr)
            return 2
        if args.resume and args.overwrite:
            print("error: --resume and --overwrite exclude each other", file=sys.stderr)
            return 2
        if args.shard[1] > 1 and not args.redis:
            print(
                "error: --shard needs --redis URL: shards must share one account's rate limits",
                file=sys.stderr,
            )
            return 2
        # Before RESULTS exists: a run that cannot send must not leave one behind (the
        # next try would then need --resume). A dry run sends nothing: no key needed.
        if not args.dry_run:
            resolve_api_key(args.api_key, "--api-key")
            resolve_base_url(args.base_url)
            if args.redis:
                asyncio.run(check_redis(args.redis))
        # Until the run installs its own handlers, SIGTERM ends it like Ctrl-C does.
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGTERM, _terminated)
        return asyncio.run(run_bulk(args))
    if args.command == "mock-server":
        return asyncio.run(_mock_server(args))
    if args.command == "webhook" and args.webhook_command == "worker":
        return asyncio.run(_webhook_worker(args))
    if args.command == "webhook":
        return _webhook_verify(args)
    if args.command == "demo":
        return asyncio.run(_demo_command(args))
    return 2  # pragma: no cover - argparse enforces a command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``telnyx-msg`` console script."""
    args = build_parser().parse_args(argv)
    try:
        with _signals_restored(), _escaped_output():
            return _run(args)
    except ValidationError as exc:
        flag = _SEND_FLAGS.get(exc.field, exc.field) if args.command == "send" else exc.field
        print(safe_lines(f"error: {flag}: {exc.message}"), file=sys.stderr)
        return 2
    except ConfigurationError as exc:  # a missing key, a bad --handler: a usage error
        print(safe_lines(f"error: {exc}"), file=sys.stderr)
        return 2
    except TelnyxError as exc:
        print(safe_lines(f"error: {exc}"), file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Interrupted):
        print(f"\ninterrupted{_in_flight(args)}", file=sys.stderr)
        return 130
    except _Terminated as exc:
        with contextlib.suppress(OSError):  # after a hangup the terminal may be gone
            what = "hung up" if exc.signum == _SIGHUP else "terminated"
            print(f"\n{what}{_in_flight(args)}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:  # stdout closed early (`telnyx-msg demo | head`): stop quietly
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except OSError as exc:  # writing the output failed (a full disk: `> /dev/full`)
        _silence_stdout()
        print(f"error: {exc}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _escaped_output() -> Iterator[None]:
    """Ids, texts and numbers are printed as they are: a terminal or pipe that cannot show a
    character (LANG=C, PYTHONIOENCODING=ascii) gets an escape, not a traceback after the work
    is done (a valid webhook reported as failing, a sent message as an error). The streams'
    own setting comes back afterwards: ``main()`` may be called from a program."""
    saved = []
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError):  # a closed stream
                saved.append((stream, stream.errors))
                stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        for stream, errors in saved:
            with contextlib.suppress(ValueError):
                stream.reconfigure(errors=errors)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no descriptor, or no stdout
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def _terminated_by_cancelling() -> Iterator[None]:
    """SIGINT and SIGTERM cancel the running task, which then raises ``_Interrupted`` or
    ``_Terminated`` here: raised from the signal handler itself, the error could land inside
    asyncio's socket write, which takes it for a write error (and logs "Fatal write error"),
    or inside a task step (Python 3.10 then logs the task's KeyboardInterrupt as never
    retrieved), instead of just ending the command."""
    # Only where ``send`` took SIGHUP over (``nohup`` ignores it, and then so do we).
    hangup = (_SIGHUP,) if _SIGHUP and signal.getsignal(_SIGHUP) is _terminated else ()
    fired: list[int] = []
    try:
        with _cancelled_by(signal.SIGINT, signal.SIGTERM, *hangup) as fired:
            yield
    except asyncio.CancelledError:
        if fired:
            if fired[0] == signal.SIGINT:
                raise _Interrupted from None
            raise _Terminated(fired[0]) from None
        raise
    finally:
        # Back to the handler outside the loop; but once a signal is ending the command, a
        # repeat (`timeout` and a closing terminal send SIGHUP twice) is ignored: raised from
        # the handler, it landed in asyncio's shutdown callbacks as a traceback.
        after = signal.SIG_IGN if fired else _terminated
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGTERM, after)
            for signum in hangup:
                signal.signal(signum, after)


@contextlib.contextmanager
def _cancelled_by(*signums: int) -> Iterator[list[int]]:
    """These signals cancel the running task, on every Python version (3.10's asyncio.run
    lets Ctrl-C raise KeyboardInterrupt wherever the loop is instead). Yields the signals
    received, so a caller can tell a signal's cancellation from another."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    fired: list[int] = []

    def cancel(signum: int) -> None:
        fired.append(signum)
        if task is not None:
            task.cancel()

    handled = []
    for signum in signums:
        try:
            loop.add_signal_handler(signum, cancel, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, not the main thread
            continue
        handled.append(signum)
    try:
        yield fired
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def _in_flight(args: argparse.Namespace) -> str:
    """What a signal that ended ``send`` while its request was out leaves to do."""
    accepted = getattr(args, "accepted_id", None)
    if accepted is not None:  # before its id reached stdout: the id must not be lost
        return printable(
            f" after Telnyx accepted message {accepted}; it was sent: do not run the "
            "command again (that would send it twice)"
        )
    key = getattr(args, "in_flight_key", None)
    return "" if key is None else f" while sending.\n{_settle(key, accepted=False)}"


async def _send(args: argparse.Namespace) -> int:
    from telnyx_msg._client import AsyncClient
    from telnyx_msg._config import RequestOptions

    resolve_api_key(args.api_key, "--api-key")
    if args.from_ is None and args.messaging_profile_id is None:
        raise ValidationError("from", "give a sender (--from) or --messaging-profile-id")
    if args.text is None and not args.media_urls:
        raise ValidationError("text", "give --text or --media-url")

    fields: dict[str, Any] = {
        k: v
        for k, v in {
            "from_": args.from_,
            "to": args.to,
            "text": args.text,
            "media_urls": args.media_urls,
            "messaging_profile_id": args.messaging_profile_id,
            "webhook_url": args.webhook_url,
        }.items()
        if v is not None
    }
    # Always keyed: the client then retries a timeout or a 5xx safely, and an outcome still
    # unknown after that can be settled by running the command again with the same key.
    if args.idempotency_key is not None and not args.idempotency_key.strip():
        # An unset variable ($KEY) while following the rerun advice: a new key would send twice.
        raise ValidationError("idempotency_key", "is empty; pass the key printed before")
    key = args.idempotency_key or f"telnyx-msg:send:{uuid.uuid4()}"
    fields["options"] = RequestOptions(idempotency_key=key)
    async with AsyncClient(args.api_key, base_url=args.base_url, timeout=args.timeout) as client:
        args.in_flight_key = key  # main() prints it if a signal ends the command meanwhile
        try:
            with _terminated_by_cancelling():
                message = await client.messages.send(**fields)
            args.accepted_id = message.id  # until it is written, a signal prints it instead
        except (APIConnectionError, APIStatusError, APIResponseValidationError) as exc:
            args.in_flight_key = None
            if isinstance(exc, APIResponseValidationError):
                found = f"Its id: {printable(exc.resource_id)}\n" if exc.resource_id else ""
                print(
                    safe_lines(f"error: {exc}\n{found}{_settle(key, accepted=exc.accepted)}"),
                    file=sys.stderr,
                )
                return EXIT_UNKNOWN
            if not exc.outcome_unknown:
                raise
            print(safe_lines(f"error: {exc}\n{_settle(key, accepted=False)}"), file=sys.stderr)
            return EXIT_UNKNOWN
        args.in_flight_key = None
    if args.json:
        text = json.dumps(message.to_dict(), indent=2, default=str)
    else:
        statuses = ", ".join(f"{r.phone_number} {r.status}" for r in message.to)
        text = printable(f"{message.id}  {statuses}")
    out = sys.stdout
    try:
        if out is None:  # started with stdout closed
            raise OSError("stdout is closed")
        out.write(text + "\n")
        out.flush()
    except OSError as exc:  # a full disk, a closed pipe: the id must not be lost silently
        if out is not None:
            with contextlib.suppress(OSError):  # nothing more may reach it, not even at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        print(
            printable(
                f"error: message {message.id} was sent, but writing it to stdout failed: {exc}"
            ),
            file=sys.stderr,
        )
        # Not 1, which says "not accepted: rerun it", and a rerun would send it again.
        if isinstance(exc, BrokenPipeError):
            return 128 + signal.SIGPIPE  # the reader stopped early
        return EXIT_UNKNOWN
    return 0


def _settle(key: str, *, accepted: bool) -> str:
    """How to learn a send's outcome (or, ``accepted``, its answer) without sending twice."""
    if accepted:
        first = "Telnyx accepted the message, but its answer could not be read. To get it"
    else:
        first = "The message may have been accepted. To find out"
    return (
        f"{first} without sending it twice, run the same command again within 24 hours with\n"
        f"  --idempotency-key {key}\n"
        "(if Telnyx accepted it, it answers with that message instead of sending another)."
    )


def _stdin_text() -> str:
    """``--text -``: the body piped in (``fortune | telnyx-msg send ...``), without the final
    newlines ``echo`` and editors add, as a shell's ``$(...)`` drops them."""
    if sys.stdin is None:  # started with stdin closed
        raise ValidationError("text", "--text - reads stdin, which is closed")
    raw = sys.stdin.buffer.read()
    try:
        # utf-8-sig: Notepad and PowerShell begin "UTF-8" files with a BOM, which would be
        # sent as an invisible character (and make the whole message UCS-2)
        text = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            "text", f"stdin is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    if "\x00" in text:
        raise ValidationError("text", "stdin has NUL characters (UTF-16 text?); give it as UTF-8")
    return text


async def _mock_server(args: argparse.Namespace) -> int:
    from telnyx_msg.testing import DEFAULT_API_KEY, ApiRateLimit, FakeConfig, FakeTelnyx, Faults

    limit = None if args.api_rate_limit is None else ApiRateLimit(limit=args.api_rate_limit)
    config = FakeConfig(
        faults=Faults(latency=args.latency), max_messages=1_000_000, api_rate_limit=limit
    )
    access = None
    if not args.quiet:
        access = logging.getLogger("telnyx_msg.mock_server")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
    fake = FakeTelnyx(
        host=args.host,
        port=args.port,
        config=config,
        api_key=args.api_key or DEFAULT_API_KEY,
        access_log=access,
    )
    try:
        await fake.start()
    except UnicodeError as exc:  # a --host that is not UTF-8 (or not a valid IDNA name)
        raise ConfigurationError(f"cannot listen on {args.host!r}:{args.port} ({exc})") from None
    except OSError as exc:
        hint = "; pass --port 0 for any free port" if exc.errno == errno.EADDRINUSE else ""
        raise ConfigurationError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}){hint}"
        ) from None
    try:
        print(f"export TELNYX_BASE_URL={fake.base_url}")
        print(f"export TELNYX_API_KEY={fake.api_key}")
        print(f"export TELNYX_PUBLIC_KEY={fake.public_key}")
        print("# serving the fake Telnyx Messaging API; Ctrl-C to stop", flush=True)
        # Ctrl-C or SIGTERM (a service manager's stop) ends the serve loop; the server then
        # closes as usual, finishing its answers and their access-log lines: exit 0.
        with (
            contextlib.suppress(asyncio.CancelledError),
            _cancelled_by(signal.SIGINT, signal.SIGTERM),
        ):
            await asyncio.Event().wait()
    finally:
        await fake.close()
    return 0


def _webhook_verify(args: argparse.Namespace) -> int:
    from telnyx_msg.errors import InvalidSignatureError, TimestampError
    from telnyx_msg.webhooks import WebhookVerifier

    key = args.public_key or os.environ.get("TELNYX_PUBLIC_KEY")
    if not key:
        raise ConfigurationError("give --public-key or set TELNYX_PUBLIC_KEY")
    verifier = WebhookVerifier(key, tolerance=args.tolerance)
    if str(args.body_file) == "-":
        if sys.stdin is None:  # started with stdin closed
            raise ConfigurationError("reading the body from stdin (-), which is closed")
        body = sys.stdin.buffer.read()
    else:
        try:
            body = args.body_file.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {args.body_file}: {exc.strerror or exc}"
            ) from None
    headers = {"telnyx-timestamp": args.timestamp, "telnyx-signature-ed25519": args.signature}
    try:
        event = verifier.unwrap(body, headers)
    except TimestampError as exc:
        if "too old" in str(exc) and args.timestamp.isascii() and args.timestamp.isdigit():
            age = math.ceil(time.time() - int(args.timestamp)) + 60
            print(
                f"note: to check the signature of a delivery saved earlier, add --tolerance {age}",
                file=sys.stderr,
            )
        raise
    except InvalidSignatureError:
        # A saved body often gains a final newline (an editor, `echo`) or Windows line
        # endings (a copy through Windows, git's autocrlf): say so, but stay strict: the
        # signed bytes are what the file must hold.
        bom = "without the UTF-8 byte order mark at its start"
        plain = body.removeprefix(b"\xef\xbb\xbf")  # an editor such as Notepad adds one
        stripped = plain.rstrip(b"\r\n")
        unix = plain.replace(b"\r\n", b"\n")
        changes = [
            (
                stripped,
                "without the file's final newline, which is not part of what Telnyx "
                "signed (an editor or `echo` adds one)",
            ),
            (
                unix,
                "with its CRLF line endings turned back into LF: the file was converted "
                "after it was received (a copy through Windows, git's autocrlf)",
            ),
            (
                unix.rstrip(b"\n"),
                "with its CRLF line endings turned back into LF and without its final newline",
            ),
        ]
        if plain != body:  # Windows PowerShell and some editors add a final newline too
            changes = [
                (
                    plain,
                    f"{bom}, which is not part of what Telnyx signed (an editor such as "
                    "Notepad adds one)",
                ),
                *[(changed, f"{bom} and {what}") for changed, what in changes],
            ]
        for changed, what in changes:
            if changed == body:
                continue
            with contextlib.suppress(TelnyxError):
                verifier.unwrap(changed, headers)
                print(
                    f"note: the body verifies {what}; save the exact bytes received, e.g. "
                    "with printf '%s'",
                    file=sys.stderr,
                )
                break
        raise
    kind, event_id = printable(str(event.event_type)), printable(str(event.id))
    print(f"valid: {kind} id={event_id} occurred_at={event.occurred_at}")
    return 0


def safe_lines(text: str) -> str:
    """``text`` (a message that may quote the API: an error's title and detail, a message id)
    with its lines kept and any other control character escaped: whatever answers at the
    base URL must not retitle, clear or rewrite the terminal."""
    return "\n".join(printable(line) for line in text.split("\n"))


def _import_handler(spec: str) -> Any:
    import importlib

    from telnyx_msg._handler import check_handler

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"--handler must be MODULE:FUNCTION, got {spec!r}")
    if os.getcwd() not in sys.path:  # as uvicorn and gunicorn do: the app's own directory
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import handler {spec!r}: {exc}") from exc
    except Exception as exc:  # the module itself failed (a SyntaxError, an error at import)
        import traceback

        traceback.print_exc()  # the user's own code: where it failed is the useful part
        raise ConfigurationError(
            f"cannot import handler {spec!r}: {type(exc).__name__}: {exc}"
        ) from exc
    check_handler(target, f"handler {spec!r}")
    return target


async def _in_thread(function: Callable[[Any], object], event: Any) -> object:
    """``function(event)`` in a thread; cancelled (the handler timeout, a second signal), it
    still returns only once the thread has, so the entry and its lease stay held meanwhile.

    A thread cannot be stopped: released earlier, the entry would run again in another worker
    while this copy is still running.
    """
    future = asyncio.ensure_future(asyncio.to_thread(function, event))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        logging.getLogger("telnyx_msg.webhooks").warning(
            "telnyx webhook handler %s for event %s is past its time; a thread cannot be "
            "stopped, so the worker waits for it to return (the attempt then counts as failed)",
            getattr(function, "__qualname__", function),
            getattr(event, "id", None),
        )
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({future})
        future.exception()  # retrieved: the timeout is what the worker reports
        raise


async def _webhook_worker(args: argparse.Namespace) -> int:
    import inspect
    import logging

    from telnyx_msg._redis_queue import RedisWebhookQueue
    from telnyx_msg.models import WebhookEvent

    # Operators see takeovers, retries and dead letters (logged on telnyx_msg.webhooks).
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    function = _import_handler(args.handler)
    is_async = inspect.iscoroutinefunction(function)

    in_thread = False

    async def handler(event: WebhookEvent) -> None:
        # A plain function runs in a thread, so the claim heartbeat keeps running meanwhile.
        nonlocal in_thread
        if is_async:
            result = await function(event)
        else:
            in_thread = True
            try:
                result = await _in_thread(function, event)
            finally:
                in_thread = False
        if inspect.isawaitable(result):
            await result

    queue = RedisWebhookQueue(
        args.redis,
        stream=args.stream,
        group=args.group,
        claim_after=args.claim_after,
        max_attempts=args.max_attempts,
        handler_timeout=args.handler_timeout,
    )
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stops = StopSignals()

    def notice(text: str) -> None:
        # Whatever read stderr may be gone (a pipe to a killed `tee`, a hung-up terminal):
        # the signal must still act.
        with contextlib.suppress(OSError, ValueError):
            print(text, file=sys.stderr, flush=True)

    def on_signal() -> None:
        if not stops.received():
            return
        if stops.count == 1:
            queue.stop()
            notice("stopping after the handler in flight (signal again to abort it)")
        elif in_thread:
            # Cancelling would only wait for the thread and then drop its result: leave now.
            # The entry stays pending (its lease expires): another worker takes it over.
            notice(
                "aborting: a plain handler's thread cannot be stopped; its entry stays pending "
                "for another worker"
            )
            os._exit(130)
        else:  # the entry in flight stays pending: another worker takes it over
            task.cancel()

    # A hangup (the terminal or ssh session closed) stops it as SIGTERM does, unless ignored
    # (nohup).
    hangup = (_SIGHUP,) if _SIGHUP and signal.getsignal(_SIGHUP) != signal.SIG_IGN else ()
    signums = (signal.SIGINT, signal.SIGTERM, *hangup)
    for signum in signums:
        loop.add_signal_handler(signum, on_signal)
    print(
        f"worker handling {args.stream} (group {args.group}) with {args.handler}",
        file=sys.stderr,
        flush=True,
    )
    try:
        await queue.run({}, consumer=args.consumer, default=handler)
    except asyncio.CancelledError:
        return 130
    finally:
        for signum in signums:
            loop.remove_signal_handler(signum)
        await queue.aclose()
    return 0


async def _demo_command(args: argparse.Namespace) -> int:
    from telnyx_msg.cli._demo import render, run_demo

    report = await run_demo(
        count=args.count, concurrency=args.concurrency, account_mps=args.account_mps, out=sys.stdout
    )
    print(render(report))
    return 0 if report.complete else 1
