"""The telnyx-msg command: demo, send, bulk (with resume), mock-server, webhook verify."""

from __future__ import annotations

import argparse
import base64
import fcntl
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import telnyx_msg
from telnyx_msg.cli import build_parser, main
from telnyx_msg.cli._demo import OPTED_OUT, DemoReport, render, run_demo
from telnyx_msg.testing import FakeConfig, FakeTelnyx, Faults

SENDER = "+18005550101"


@pytest.mark.anyio
async def test_demo_report_adds_up() -> None:
    """Every requested message is accounted for, and every accepted one got its webhook."""
    report = await run_demo(count=60, concurrency=10, account_mps=200.0)
    assert sum(report.outcomes.values()) == 60
    assert report.outcomes["rejected"] == len(OPTED_OUT)
    assert report.outcomes["unknown"] == 0
    assert report.pending == 0
    assert sum(report.final.values()) == report.accepted
    assert report.final["delivery_failed"] == 1  # the fake's failing number is in the list
    assert report.webhooks_verified >= 2 * report.accepted  # message.sent + message.finalized
    assert report.webhooks_rejected == 0
    text = render(report)
    assert f"sent (accepted)       {report.accepted:>6}" in text
    assert "messages/s" in text


def test_demo_with_messages_not_sent_is_not_complete() -> None:
    """A demo whose own options left messages unsent (a client limit too low for the call
    timeout) fails (exit 1) and says why; it exited 0 with "not sent 40" and no reason."""
    report = DemoReport(requested=3)
    report.outcomes.update(sent=2, not_sent=1)
    report.not_sent_reason = "the client-side rate limit would hold this request longer"
    assert not report.complete
    assert "not sent                   1   (first: the client-side rate limit" in render(report)
    report.outcomes["not_sent"] = 0
    report.outcomes["sent"] = 3
    assert report.complete


def test_demo_command_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    """`telnyx-msg demo` prints the summary and exits 0 when every message is accounted for."""
    assert main(["demo", "--count", "30", "--concurrency", "5"]) == 0
    out = capsys.readouterr().out
    assert "telnyx-msg demo: 30 messages" in out
    assert "webhooks verified" in out


def test_output_piped_into_a_reader_that_stops_early() -> None:
    """`telnyx-msg demo | head -3`: once the reader is gone, the command stops quietly with
    the status a SIGPIPE gives (141), no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "telnyx_msg", "demo", "--count", "200", "--concurrency", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline().startswith(b"fake Telnyx API")
    proc.stdout.close()  # what `head -1` does once it has its line
    try:
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, err
    finally:
        proc.stderr.close()
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err
    assert "Exception ignored" not in err


def _send_argv(fake: FakeTelnyx, *extra: str) -> list[str]:
    return [
        "send",
        "--api-key",
        fake.api_key,
        "--base-url",
        fake.base_url,
        "--from",
        SENDER,
        "--to",
        "+13125550001",
        "--text",
        "hello",
        "--json",
        *extra,
    ]


@pytest.mark.anyio
async def test_send_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`send` sends one message with the given key and prints its id and status."""
    async with FakeTelnyx() as fake:
        code = await anyio.to_thread.run_sync(main, _send_argv(fake))
        assert code == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["to"][0]["phone_number"] == "+13125550001"
        assert fake.message(printed["id"]) is not None


@pytest.mark.anyio
async def test_send_command_reports_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong key exits 1 with the API error on stderr, not a traceback."""
    async with FakeTelnyx() as fake:
        code = await anyio.to_thread.run_sync(main, _send_argv(fake, "--api-key", "wrong"))
    assert code == 1
    assert "401" in capsys.readouterr().err


def test_send_command_without_a_key_names_the_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No key: a usage error naming --api-key (it named the Python argument api_key=...)."""
    monkeypatch.delenv("TELNYX_API_KEY", raising=False)
    argv = ["send", "--from", SENDER, "--to", "+13125550001", "--text", "hi"]
    assert main([*argv, "--base-url", "http://127.0.0.1:9/v2"]) == 2
    err = capsys.readouterr().err
    assert "no API key: pass --api-key or set the TELNYX_API_KEY" in err
    assert "api_key=" not in err


@pytest.mark.anyio
async def test_send_command_retries_a_lost_answer_without_sending_twice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Telnyx accepts the message but the answer is lost: `send` (no key given) retries with
    its own key and gets the same message back; one message exists, exit 0."""
    faults = Faults(script=("drop_after",), match=("POST /messages",))
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake:
        code = await anyio.to_thread.run_sync(main, _send_argv(fake))
        assert code == 0
        printed = json.loads(capsys.readouterr().out)
        assert [m["id"] for m in fake.messages()] == [printed["id"]]


@pytest.mark.anyio
async def test_send_command_unknown_outcome_exits_3_with_a_key_that_settles_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every answer lost: exit 3 and the key to rerun with; the rerun returns the message
    Telnyx accepted the first time instead of sending another."""
    faults = Faults(script=("drop_after",) * 3, match=("POST /messages",))
    async with FakeTelnyx(config=FakeConfig(faults=faults)) as fake:
        code = await anyio.to_thread.run_sync(main, _send_argv(fake))
        assert code == 3
        err = capsys.readouterr().err
        key = re.search(r"--idempotency-key (\S+)", err)
        assert key is not None, err
        [accepted] = fake.messages()
        code = await anyio.to_thread.run_sync(
            main, _send_argv(fake, "--idempotency-key", key.group(1))
        )
        assert code == 0
        assert json.loads(capsys.readouterr().out)["id"] == accepted["id"]
        assert len(fake.messages()) == 1


@pytest.mark.anyio
async def test_send_command_accepted_but_unreadable_exits_3_with_the_key(
    api_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 200 whose body is not JSON (a proxy's page?): the message may have been accepted, so
    exit 3 with the key to settle it, never 1 ("not accepted, a plain rerun is safe", which
    sent it twice), and never "Telnyx accepted the message" (nothing says it did)."""

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>ok</html>", content_type="text/html")

    server = await api_server(html)
    argv = ["send", "--api-key", "k", "--base-url", server.base_url]
    argv += ["--from", SENDER, "--to", "+13125550001", "--text", "hello"]
    code = await anyio.to_thread.run_sync(main, argv)
    err = capsys.readouterr().err
    assert code == 3, err
    key = re.search(r"--idempotency-key (\S+)", err)
    assert key is not None, err
    assert "The message may have been accepted" in err
    assert "Telnyx accepted the message" not in err
    assert [r.headers["Idempotency-Key"] for r in server.requests] == [key.group(1)]


@pytest.mark.anyio
async def test_send_command_accepted_with_an_odd_answer_names_the_message(
    api_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Telnyx answers 200 naming the message, with a field the SDK cannot read: the error
    says the message's id (to look it up or match its webhooks), as well as the key."""

    async def odd(request: web.Request) -> web.Response:
        await request.read()
        body = {"data": {"id": "m-accepted", "to": [{"status": "queued"}]}}
        return web.json_response(body)

    server = await api_server(odd)
    argv = ["send", "--api-key", "k", "--base-url", server.base_url]
    argv += ["--from", SENDER, "--to", "+13125550001", "--text", "hello"]
    code = await anyio.to_thread.run_sync(main, argv)
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Its id: m-accepted" in err


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["", "  "])
async def test_send_command_refuses_an_empty_key(
    key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--idempotency-key "$KEY"`` with KEY unset: exit 2, nothing sent. A fresh key took its
    place, so following the rerun advice sent the message twice."""
    async with FakeTelnyx() as fake:
        code = await anyio.to_thread.run_sync(main, _send_argv(fake, "--idempotency-key", key))
        assert code == 2
        assert "--idempotency-key: is empty" in capsys.readouterr().err
        assert fake.messages() == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
async def test_send_command_ended_while_sending_prints_the_key(
    api_server: Any, signum: signal.Signals, code: int
) -> None:
    """Ctrl-C, SIGTERM or a hangup (a closed terminal, a dropped ssh session) once the request
    is out: the outcome is unknown, so the key to settle it is printed (it was only
    "interrupted"; SIGTERM printed nothing; SIGHUP killed it silently, so a rerun could send
    the message twice)."""
    arrived, done = anyio.Event(), anyio.Event()

    async def stall(request: web.Request) -> web.Response:
        arrived.set()
        with anyio.move_on_after(30):
            await done.wait()
        return web.json_response({})

    server = await api_server(stall)
    command = [sys.executable, "-m", "telnyx_msg", "send", "--api-key", "k"]
    command += ["--base-url", server.base_url, "--from", SENDER, "--to", "+13125550001"]
    command += ["--text", "hello"]
    async with await anyio.open_process(command) as proc:
        with anyio.fail_after(20):
            await arrived.wait()
        proc.send_signal(signum)
        with anyio.fail_after(20):
            assert await proc.wait() == code
        assert proc.stderr is not None
        err = (await proc.stderr.receive()).decode()
    done.set()
    key = re.search(r"--idempotency-key (\S+)", err)
    assert key is not None, err
    assert [r.headers["Idempotency-Key"] for r in server.requests] == [key.group(1)]
    assert "Traceback" not in err


@pytest.mark.anyio
@pytest.mark.parametrize(("redirect", "code"), [(">/dev/full", 3), (">&-", 3), ("| true", 141)])
async def test_send_command_output_failure_names_the_sent_message(redirect: str, code: int) -> None:
    """stdout on a full disk, closed (the interpreter starts without file descriptor 1), or a
    pipe whose reader left: the sent message's id on stderr, and not exit 1 ("not accepted, a
    plain rerun is safe"), which it was: a script retrying on 1 sent the message twice.

    It was a traceback, and the only record of the message's id was gone.
    """
    async with FakeTelnyx() as fake:
        command = [sys.executable, "-m", "telnyx_msg", *_send_argv(fake)]
        # pipefail: the pipeline's status is the command's (`true` ends long before it writes).
        argv = ["bash", "-c", f'set -o pipefail; "$@" {redirect}', "bash", *command]
        result = await anyio.run_process(argv, check=False)
        (sent,) = fake.messages()
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert f"message {sent['id']} was sent, but writing it to stdout failed" in err
    assert "Traceback" not in err


@pytest.mark.anyio
async def test_send_command_reads_the_text_from_stdin() -> None:
    """`--text -` sends what is piped in, without its final newlines; bytes that are not
    UTF-8 exit 2 before anything is sent (it used to send the text "-")."""
    async with FakeTelnyx() as fake:
        command = [sys.executable, "-m", "telnyx_msg", *_send_argv(fake, "--text", "-")]
        piped = "line one\nline two 😀\r\n\n".encode()
        result = await anyio.run_process(command, input=piped, check=False)
        assert result.returncode == 0, result.stderr.decode()
        (sent,) = fake.messages()
        assert sent["text"] == "line one\nline two 😀"
        assert json.loads(result.stdout)["id"] == sent["id"]

        result = await anyio.run_process(command, input=b"\xff\xfeh\x00i\x00", check=False)
        assert result.returncode == 2
        assert "stdin is not UTF-8 text (byte 0xff at offset 0)" in result.stderr.decode()
        assert len(fake.messages()) == 1


@pytest.mark.anyio
async def test_send_command_not_sent_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """Refused before anything was processed (connection refused): exit 1, not 3."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["send", "--api-key", "k", "--base-url", f"http://127.0.0.1:{port}/v2"]
    argv += ["--from", SENDER, "--to", "+13125550001", "--text", "hello"]
    code = await anyio.to_thread.run_sync(main, argv)
    assert code == 1
    assert "--idempotency-key" not in capsys.readouterr().err


def _start_mock_server(*options: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`telnyx-msg mock-server --port 0 *options` in a child process, and the settings its
    export lines give (waits at most 20 s for them)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "telnyx_msg", "mock-server", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    settings: dict[str, str] = {}
    deadline = time.monotonic() + 20
    while len(settings) < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break  # it exited (a usage error): the caller's asserts say so
        if "=" in line:
            name, value = line.strip().removeprefix("export ").split("=", 1)
            settings[name] = value
    return proc, settings


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_mock_server_serves_both_clients(signum: int) -> None:
    """`mock-server` prints a base URL, key and public key that the blocking client works with;
    Ctrl-C and SIGTERM (a service manager's stop) both shut it down cleanly, exit 0."""
    proc, settings = _start_mock_server()
    try:
        assert settings["TELNYX_BASE_URL"].startswith("http://127.0.0.1:")
        assert len(base64.b64decode(settings["TELNYX_PUBLIC_KEY"])) == 32
        with telnyx_msg.Client(
            settings["TELNYX_API_KEY"], base_url=settings["TELNYX_BASE_URL"]
        ) as client:
            message = client.messages.send(from_=SENDER, to="+13125550001", text="hi")
            assert client.messages.retrieve(str(message.id)).id == message.id
    finally:
        # The server finishes what it answered, access log lines included (SIGTERM killed it
        # at once, possibly between a response and its log line).
        proc.send_signal(signum)
        _, log = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in log
    assert '"POST /v2/messages HTTP/1.1" 200' in log  # the access log, one line per request
    assert f'"GET /v2/messages/{message.id} HTTP/1.1" 200' in log


def test_mock_server_api_rate_limit_answers_10011_beyond_it() -> None:
    """`mock-server --api-rate-limit 3`: a burst of requests gets 429 code 10011 with the
    `x-ratelimit-reset` header beyond 3 per second, as an account request limit does, so
    several `telnyx-msg bulk` processes can be watched sharing one limit (it had no option for
    that: only a script of your own could configure the fake's limit)."""
    proc, settings = _start_mock_server("--quiet", "--api-rate-limit", "3")
    try:
        with telnyx_msg.Client(
            settings["TELNYX_API_KEY"],
            base_url=settings["TELNYX_BASE_URL"],
            max_retries=0,
            rate_limits=None,
        ) as client:
            answers: list[int | str] = []
            for _ in range(12):  # within about a second: at least 3 beyond 3 per window
                try:
                    client.messaging_profiles.list().first_page()
                    answers.append(200)
                except telnyx_msg.RateLimitError as exc:
                    reset = "reset" if "x-ratelimit-reset" in exc.headers else "no reset"
                    answers.append(f"{exc.code} {reset}")
    finally:
        proc.send_signal(signal.SIGINT)
        _, log = proc.communicate(timeout=10)
    assert proc.returncode == 0, log
    assert answers.count("10011 reset") >= 3, answers
    assert set(answers) == {200, "10011 reset"}, answers


def _signed(
    tmp_path: Path, body: bytes, *, tamper: bytes = b"", age: int = 0
) -> tuple[list[str], str]:
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    timestamp = str(int(time.time()) - age)
    signature = base64.b64encode(key.sign(timestamp.encode() + b"|" + body)).decode()
    path = tmp_path / "body.json"
    path.write_bytes(body + tamper)
    return [
        "webhook",
        "verify",
        str(path),
        "--timestamp",
        timestamp,
        "--signature",
        signature,
        "--public-key",
        public,
    ], public


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("host", "prefix"), [("::1", "http://[::1]:"), ("0.0.0.0", "http://127.0.0.1:")]
)
async def test_fake_base_url_is_usable_for_any_listening_host(host: str, prefix: str) -> None:
    """`mock-server --host ::1` printed ``http://::1:PORT/v2`` (no brackets), and ``0.0.0.0``
    an address a client cannot connect to on every system; the printed URL now works."""
    if host == "::1":
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
    async with FakeTelnyx(host=host) as fake:
        assert fake.base_url.startswith(prefix)
        async with telnyx_msg.AsyncClient(fake.api_key, base_url=fake.base_url) as client:
            message = await client.messages.send(from_=SENDER, to="+13125550001", text="hi")
        assert fake.message(message.id) is not None


def _received_event(event_id: str) -> bytes:
    """A message.received event body with ``event_id``."""
    event = {
        "record_type": "event",
        "id": event_id,
        "event_type": "message.received",
        "occurred_at": "2024-01-01T00:00:00Z",
        "payload": {"id": "m1", "direction": "inbound"},
    }
    return json.dumps({"data": event}).encode()


def test_webhook_verify_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`webhook verify` exits 0 for a valid signature and 1 for a tampered body."""
    body = _received_event("e1")
    args, _ = _signed(tmp_path, body)
    assert main(args) == 0
    assert "message.received" in capsys.readouterr().out
    tampered, _ = _signed(tmp_path, body, tamper=b" ")
    assert main(tampered) == 1
    err = capsys.readouterr().err
    assert "error:" in err
    assert "newline" not in err
    # An editor's final newline: still invalid (the signed bytes are what counts), but the
    # command says what happened.
    saved, _ = _signed(tmp_path, body, tamper=b"\n")
    assert main(saved) == 1
    err = capsys.readouterr().err
    assert "verifies without the file's final newline" in err


def test_webhook_verify_escapes_control_characters_of_the_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A signed body is the sender's text: an id with a newline or a terminal escape printed
    as is forged a second "valid:" line or recoloured the terminal."""
    body = _received_event("e1\x1b[31m\nvalid: forged")
    args, _ = _signed(tmp_path, body)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "\x1b" not in out
    assert "id=e1\\x1b[31m\\nvalid: forged" in out


@pytest.mark.parametrize("ending", [b"", b"\r\n"])
def test_webhook_verify_names_crlf_line_endings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ending: bytes
) -> None:
    """A body saved through Windows (CRLF line endings, perhaps a final one): still invalid,
    but the note says what changed (it said only "signature does not match")."""
    body = json.dumps({"data": {"id": "e1", "payload": {"id": "m1"}}}, indent=2).encode()
    args, _ = _signed(tmp_path, body)
    Path(args[2]).write_bytes(body.replace(b"\n", b"\r\n") + ending)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "verifies with its CRLF line endings turned back into LF" in err
    assert ("without its final newline" in err) == bool(ending)


def test_webhook_verify_names_a_byte_order_mark_and_a_delivery_saved_long_ago(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body saved by an editor that adds a UTF-8 byte order mark, and a delivery saved a day
    ago (past the 300 s window): both still fail, but the note says what to do (the first
    said only that the signature does not match, the second only "too old")."""
    body = _received_event("e1")
    args, _ = _signed(tmp_path, body)
    Path(args[2]).write_bytes(b"\xef\xbb\xbf" + body)
    assert main(args) == 1
    assert "verifies without the UTF-8 byte order mark" in capsys.readouterr().err
    old, _ = _signed(tmp_path, body, age=86_400)
    assert main(old) == 1
    err = capsys.readouterr().err
    assert "too old" in err
    hint = re.search(r"--tolerance (\d+)", err)
    assert hint is not None, err
    assert main([*old, "--tolerance", hint.group(1)]) == 0


def test_webhook_verify_reads_stdin_and_names_an_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-` reads the body from stdin (a pasted or piped delivery); a file that cannot be read
    is a usage error (exit 2) naming it, not a traceback."""
    body = json.dumps(
        {"data": {"id": "e2", "event_type": "message.sent", "payload": {"id": "m2"}}}
    ).encode()
    args, _ = _signed(tmp_path, body)
    stdin = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main([*args[:2], "-", *args[3:]]) == 0
    assert "valid: message.sent id=e2" in capsys.readouterr().out
    missing = tmp_path / "missing.json"
    assert main([*args[:2], str(missing), *args[3:]]) == 2
    assert f"error: cannot read {missing}: No such file or directory" in capsys.readouterr().err
    assert main([*args[:2], str(tmp_path), *args[3:]]) == 2
    assert f"error: cannot read {tmp_path}: Is a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("shell", "env", "code", "expected"),
    [
        # A terminal that cannot show the id's "é": an escape, exit 0 (it was a traceback and
        # exit 1, which reads as "did not verify").
        ('"$@"', {"PYTHONIOENCODING": "ascii"}, 0, "valid: message.received id=\\xe9vent-1"),
        ('"$@" >/dev/full', {}, 1, "error: [Errno 28] No space left on device"),
        ('"$@" <&-', {}, 2, "error: reading the body from stdin (-), which is closed"),
    ],
    ids=["ascii-terminal", "full-disk", "stdin-closed"],
)
def test_webhook_verify_output_problems_are_not_tracebacks(
    tmp_path: Path, shell: str, env: dict[str, str], code: int, expected: str
) -> None:
    """What the terminal or the shell did to the streams ends in a status and one line."""
    body = json.dumps(
        {"data": {"id": "évent-1", "event_type": "message.received", "payload": {"id": "m"}}},
        ensure_ascii=False,
    ).encode()
    args, _ = _signed(tmp_path, body)
    if "<&-" in shell:
        args[2] = "-"
    command = [sys.executable, "-m", "telnyx_msg", *args]
    result = subprocess.run(
        ["sh", "-c", shell, "sh", *command],
        capture_output=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == code, output
    assert expected in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--count", "0"], "--count: must be at least 1, got 0"),
        (["demo", "--concurrency", "0"], "--concurrency: must be at least 1"),
        (["demo", "--account-mps", "nan"], "--account-mps: must be a finite number > 0"),
        (["bulk", "in.csv", "--account-mps", "inf"], "--account-mps: must be a finite number"),
        (["bulk", "in.csv", "--concurrency", "-3"], "--concurrency: must be at least 1"),
        (["send", "--to", "+13125550001", "--timeout", "0"], "--timeout: must be a finite"),
        (["mock-server", "--port", "70000"], "--port: must be 0-65535"),
        (["mock-server", "--latency", "-1"], "--latency: must be a finite number >= 0"),
        (["mock-server", "--api-rate-limit", "0"], "--api-rate-limit: must be at least 1"),
        (["mock-server", "--api-rate-limit", "2.5"], "--api-rate-limit: '2.5' is not a whole"),
        (
            ["webhook", "worker", "--redis", "r", "--handler", "m:f", "--max-attempts", "0"],
            "at least 1",
        ),
        (["demo", "--count", "many"], "--count: 'many' is not a whole number"),
    ],
)
def test_numeric_options_are_checked_before_anything_runs(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A count of 0, a NaN rate or a negative delay is a usage error naming the option (the
    demo ran with --count 0 and exited 1; --account-mps nan crashed with a traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command answers --help."""
    for command in (
        ["--help"],
        ["send", "--help"],
        ["bulk", "--help"],
        ["mock-server", "--help"],
        ["webhook", "verify", "--help"],
        ["demo", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(command)
        assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_python_dash_m(tmp_path: Path) -> None:
    """`python -m telnyx_msg --version` runs the same command."""
    result = subprocess.run(
        [sys.executable, "-m", "telnyx_msg", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert telnyx_msg.__version__ in result.stdout


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _subparsers(sub)
    return found


def test_every_option_has_help_and_a_cli_name() -> None:
    """Every option of every command has help text, and none shows a Python name."""
    for parser in _subparsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, (parser.prog, action.option_strings or action.dest)
            assert not str(action.metavar or "").endswith("_"), action.metavar
        usage = parser.format_help()
        assert "FROM_" not in usage, parser.prog
        assert "(default: None)" not in usage, parser.prog


def test_send_errors_name_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad or missing send argument is reported with its option name, exit 2, no I/O."""
    dead = ["--api-key", "k", "--base-url", "http://127.0.0.1:9/v2"]
    assert main(["send", "--to", "+13125550001", "--text", "hi", *dead]) == 2
    assert "error: --from: give a sender (--from) or --messaging-profile-id" in (
        capsys.readouterr().err
    )
    assert main(["send", "--from", SENDER, "--to", "312-555-0001", "--text", "hi", *dead]) == 2
    assert "error: --to: '312-555-0001' is not a valid" in capsys.readouterr().err


def test_mock_server_port_in_use_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A taken port is reported with the way out (--port 0), not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["mock-server", "--port", str(port), "--quiet"]) == 2  # pick another --port
    assert "pass --port 0" in capsys.readouterr().err


def test_main_escapes_what_stdout_cannot_encode_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process ``main()`` (a program calling it) escapes what an ASCII stdout cannot show
    and gives the stream its own error handling back afterwards."""
    body = json.dumps(
        {"data": {"id": "évent-2", "event_type": "message.received", "payload": {"id": "m"}}},
        ensure_ascii=False,
    ).encode()
    args, _ = _signed(tmp_path, body)
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(args) == 0
    stdout.flush()
    assert b"id=\\xe9vent-2" in raw.getvalue()
    assert stdout.errors == "strict"


def test_webhook_verify_honours_tolerance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A delivery signed an hour ago: exit 1 with the default 300 s tolerance, exit 0 with
    --tolerance 7200 (checking a saved delivery later is what the flag is for)."""
    body = json.dumps(
        {
            "data": {
                "record_type": "event",
                "id": "e1",
                "event_type": "message.received",
                "payload": {"id": "m1", "direction": "inbound"},
            }
        }
    ).encode()
    args, _ = _signed(tmp_path, body, age=3600)
    assert main(args) == 1
    assert "error:" in capsys.readouterr().err
    assert main([*args, "--tolerance", "7200"]) == 0
    assert "valid: message.received id=e1" in capsys.readouterr().out


def test_a_signal_echo_is_not_a_second_stop() -> None:
    """A signal repeated within SIGNAL_ECHO seconds (a wrapper such as ``timeout`` forwarding
    the terminal's Ctrl-C) is the same stop request; one after it is a second request."""
    from telnyx_msg.cli import SIGNAL_ECHO, StopSignals

    stops = StopSignals()
    assert stops.received()
    assert not stops.received()  # the echo
    assert stops.count == 1
    time.sleep(SIGNAL_ECHO * 1.5)
    assert stops.received()
    assert stops.count == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("stdin", "error"),
    [(b"\xef\xbb\xbfhello\r\n", None), ("hi".encode("utf-16-le"), "NUL characters")],
)
async def test_send_text_from_stdin_as_editors_save_it(stdin: bytes, error: str | None) -> None:
    """`--text -` fed a file saved as "UTF-8 with BOM" (Notepad, PowerShell) sent U+FEFF as
    the first character: invisible, but it made a GSM-7 message UCS-2 (70 characters a part
    instead of 160). UTF-16 without a BOM decoded as UTF-8 with NULs and was sent so."""
    async with FakeTelnyx() as fake:
        command = [
            sys.executable, "-m", "telnyx_msg", "send", "--api-key", fake.api_key,
            "--base-url", fake.base_url, "--from", SENDER, "--to", "+13125550001",
            "--text", "-", "--json",
        ]  # fmt: skip
        result = await anyio.run_process(command, input=stdin, check=False)
        if error is not None:
            assert result.returncode == 2
            assert error in result.stderr.decode()
            assert fake.messages() == []
            return
        assert result.returncode == 0, result.stderr.decode()
        (sent,) = fake.messages()
        assert sent["text"] == "hello"
        assert json.loads(result.stdout)["encoding"] == "GSM-7"


def _reading_stdin(pid: int) -> bool:
    """Whether the process is blocked in read(0, ...) (Linux /proc/PID/syscall: "0 0x0 ...")."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().startswith("0 0x0 ")
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/syscall").exists(), reason="needs Linux /proc")
def test_ctrl_c_while_send_waits_for_stdin_stops_it_and_claims_nothing_was_sent() -> None:
    """`telnyx-msg send ... --text -` typed without a pipe waits for stdin. Ctrl-C there was
    swallowed (asyncio.run only cancelled the task, blocked in a plain read); once the input
    ended, it said "interrupted while sending. The message may have been accepted" and printed
    a key, though no request had been made."""
    env = {**os.environ, "TELNYX_API_KEY": "k", "TELNYX_BASE_URL": "http://127.0.0.1:9/v2"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "telnyx_msg",
            "send",
            "--from",
            SENDER,
            "--to",
            "+13125550001",
            "--text",
            "-",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 30
        while not _reading_stdin(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _reading_stdin(proc.pid), "never blocked reading stdin"
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.stdin.write(b"hello\n")  # what the user types next, then Ctrl-D
            proc.stdin.close()
            proc.wait(timeout=30)
            pytest.fail(f"Ctrl-C did not stop the command; then: {proc.stderr.read()!r}")
        err = proc.stderr.read().decode()
        assert code == 130, err
        assert "may have been accepted" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.mark.anyio
@pytest.mark.parametrize("count", [1, 2, 3])
async def test_demo_with_a_small_count_succeeds(count: int) -> None:
    """`telnyx-msg demo --count 1` (or 2) sent only to the two opted-out recipients and exited
    1 with a summary in which nothing had failed."""
    report = await run_demo(count=count, out=io.StringIO())
    assert report.accepted >= 1
    assert report.complete, report


@pytest.mark.parametrize(
    "base_url",
    [
        "http://ex\u00e4mple..com/v2".encode(),  # a non-ASCII host IDNA cannot encode
        b"http://\xff/v2",  # a byte that is not UTF-8 (a variable from a Latin-1 file)
    ],
)
def test_send_base_url_with_an_unencodable_host_is_a_one_line_usage_error(
    base_url: bytes,
) -> None:
    """`--base-url` (or TELNYX_BASE_URL) whose host cannot be encoded: a one-line error and
    exit 2 before anything is sent, like every other malformed base URL. It was a Python
    traceback (UnicodeError from deep in the transport) with exit 1."""
    command = [sys.executable.encode(), b"-m", b"telnyx_msg", b"send", b"--api-key", b"k"]
    command += [b"--base-url", base_url, b"--from", SENDER.encode(), b"--to", b"+13125550001"]
    command += [b"--text", b"hello"]
    result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert result.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: "), err


def test_mock_server_host_that_is_not_utf8_is_a_one_line_usage_error() -> None:
    """`mock-server --host` with a byte that is not UTF-8: a one-line `cannot listen on`
    error and exit 2, as for a host that does not resolve. It was a traceback (exit 1)."""
    command = [sys.executable.encode(), b"-m", b"telnyx_msg", b"mock-server", b"--quiet"]
    command += [b"--port", b"0", b"--host", b"\xff"]
    result = subprocess.run(command, capture_output=True, timeout=60, check=False)
    err = result.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert result.returncode == 2, err
    assert err.startswith("error: cannot listen on"), err


def _writing_stdout(pid: int) -> bool:
    """Whether the process is blocked in write(1, ...) (Linux /proc/PID/syscall)."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == "1" and fields[1] == "0x1"


def _full_pipe() -> tuple[int, int]:
    """A pipe whose buffer is already full: a write to it blocks until someone reads."""
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        while True:
            os.write(write_end, b"x" * 4096)
    except BlockingIOError:
        pass
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)
    return read_end, write_end


@pytest.mark.skipif(
    not Path("/proc/self/syscall").exists() or os.uname().machine != "x86_64",
    reason="needs Linux /proc and x86-64 syscall numbers",
)
@pytest.mark.anyio
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
async def test_signal_after_the_message_was_accepted_names_it(
    signum: signal.Signals, code: int
) -> None:
    """Ctrl-C, SIGTERM or a hangup that reaches `send` after Telnyx accepted the message but
    before its id was written (stdout slow to take it: a terminal paused with Ctrl-S, a
    stalled pipe, or just a signal landing while the client closes) must still tell the user
    the message was sent, naming it.

    It printed only "interrupted" / "terminated" / "hung up": no id, no idempotency key, the
    same words as a signal that came before anything was sent. The user, told neither that it
    was sent nor a key to settle it with, runs the command again: the message is sent twice.
    """
    async with FakeTelnyx() as fake:
        read_end, write_end = _full_pipe()
        command = [sys.executable, "-m", "telnyx_msg", "send", "--api-key", fake.api_key]
        command += ["--base-url", fake.base_url, "--from", SENDER, "--to", "+13125550001"]
        command += ["--text", "hello"]
        try:
            proc = await anyio.open_process(command, stdout=write_end)
        finally:
            os.close(write_end)
        async with proc:
            with anyio.fail_after(30):
                while not _writing_stdout(proc.pid):  # noqa: ASYNC110  # /proc, not an event
                    await anyio.sleep(0.05)
            (sent,) = fake.messages()  # accepted: only its id is left to write
            proc.send_signal(signum)
            with anyio.fail_after(20):
                returncode = await proc.wait()
            assert proc.stderr is not None
            err = (await proc.stderr.receive()).decode()
        os.close(read_end)
    assert returncode == code, err
    assert sent["id"] in err, err
    assert "Traceback" not in err
    assert len(fake.messages()) == 1


@pytest.mark.parametrize(
    ("saved", "also"),
    [
        (lambda body: b"\xef\xbb\xbf" + body + b"\r\n", "final newline"),
        (lambda body: b"\xef\xbb\xbf" + body + b"\n", "final newline"),
        (lambda body: b"\xef\xbb\xbf" + body.replace(b"\n", b"\r\n") + b"\r\n", "CRLF"),
    ],
    ids=["bom-crlf", "bom-lf", "bom-crlf-everywhere"],
)
def test_webhook_verify_names_a_byte_order_mark_with_a_final_newline(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    saved: Callable[[bytes], bytes],
    also: str,
) -> None:
    """A webhook body saved on Windows the usual ways (Windows PowerShell's
    `Out-File -Encoding utf8` / `Set-Content -Encoding UTF8`, an editor set to "UTF-8 with
    BOM") starts with a byte order mark *and* ends with a newline. The command has a note for
    each of those changes alone, but for the two together it printed only "signature does not
    match the body and timestamp (wrong public key, ...)": the user, told nothing about the
    file, goes hunting for a key problem that is not there. The note must name both."""
    body = _received_event("e1").replace(b", ", b",\n")  # several lines, as pretty-printed
    args, _ = _signed(tmp_path, body)
    Path(args[2]).write_bytes(saved(body))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "byte order mark" in err, err
    assert also in err, err


def test_webhook_verify_escapes_the_event_id_on_stderr_too(tmp_path: Path) -> None:
    """A signed body is the sender's text: `webhook verify` escapes the event id it prints on
    stdout, but when the payload is not one the SDK reads (no message id), the warning it
    prints on stderr carried the id raw: a terminal escape recoloured the terminal and a
    newline forged a second "valid:" line (in `2>&1` output, a log, a CI job)."""
    event = {
        "record_type": "event",
        "id": "e1\x1b[31m\nvalid: forged",
        "event_type": "message.received",
        "occurred_at": "2024-01-01T00:00:00Z",
        "payload": {"direction": "inbound"},  # no id: the SDK hands the raw mapping over
    }
    body = json.dumps({"data": event}).encode()
    proc = subprocess.run(
        [sys.executable, "-m", "telnyx_msg", *_signed(tmp_path, body)[0]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout
    assert "\x1b" not in proc.stderr, proc.stderr
    valid = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("valid:")]
    assert len(valid) == 1, valid
