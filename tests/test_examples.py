"""Every script in examples/ runs against FakeTelnyx, and does what its docstring says.

Scripts that finish on their own run as real subprocesses (``python -W error examples/X.py``)
with ``TELNYX_BASE_URL`` / ``TELNYX_API_KEY`` / ``TELNYX_PUBLIC_KEY`` pointing at a fake on
127.0.0.1, so their ``__main__`` path is covered and any warning (an unclosed session) fails them.
The aiohttp webhook server is built in-process and served on a 127.0.0.1 port; the FastAPI
example runs as a subprocess under uvicorn, and its receiver also through ASGI directly.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import telnyx_msg
from examples import (
    bulk_from_csv,
    delivery_tracking,
    send_one_async,
    setup_sender,
    webhooks_aiohttp,
    webhooks_django,
    webhooks_fastapi,
    webhooks_flask,
)
from telnyx_msg.receivers import AsgiWebhookApp
from telnyx_msg.testing import (
    DEFAULT_LONG_CODE,
    DEFAULT_PROFILE_ID,
    DEFAULT_TOLL_FREE,
    FAILING_NUMBER,
    FakeTelnyx,
)
from tests.redis_proc import _free_port

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 20.0
RECIPIENT = "+18445550001"
InboundHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelnyx]:
    """A started FakeTelnyx on 127.0.0.1."""
    async with FakeTelnyx() as server:
        yield server


async def run_script(fake: FakeTelnyx, name: str, *args: str) -> tuple[int, str, str]:
    """Run ``examples/<name>`` against ``fake``; return exit code, stdout and stderr."""
    env = {
        **os.environ,
        "TELNYX_BASE_URL": fake.base_url,
        "TELNYX_API_KEY": fake.api_key,
        "TELNYX_PUBLIC_KEY": fake.public_key,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "error",
        str(EXAMPLES / name),
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free 127.0.0.1 port; return the runner and the base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def test_every_example_is_tested() -> None:
    """Each script in examples/ is imported by this module (so none is left untested)."""
    scripts = {p.stem for p in EXAMPLES.glob("*.py")} - {"__init__"}
    tested = {"send_one_blocking"} | {
        m.__name__.rsplit(".", 1)[1]
        for m in (
            bulk_from_csv,
            delivery_tracking,
            send_one_async,
            setup_sender,
            webhooks_aiohttp,
            webhooks_django,
            webhooks_fastapi,
            webhooks_flask,
        )
    }
    assert scripts == tested


# --- sending ------------------------------------------------------------------------------------


async def test_send_one_async_script(fake: FakeTelnyx) -> None:
    """The async script sends one message, reads it back, and exits cleanly."""
    code, out, err = await run_script(
        fake, "send_one_async.py", "--to", RECIPIENT, "--text", "Hello from the tests"
    )
    assert (code, err) == (0, "")
    message_id = out.split()[1].rstrip(":")
    stored = fake.message(message_id)
    assert stored["text"] == "Hello from the tests"
    assert stored["to"][0]["phone_number"] == RECIPIENT
    assert "1 part(s), GSM-7" in out.splitlines()[1]
    assert fake.stats.count("POST", "/messages") == 1
    assert fake.stats.count("GET", "/messages/{id}") == 1


async def test_send_one_async_reports_an_opt_out(
    fake: FakeTelnyx, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused send surfaces Telnyx's status, code and request id, and is not retried."""
    await fake.inject_inbound(from_=RECIPIENT, to=DEFAULT_TOLL_FREE, text="STOP")
    with pytest.raises(telnyx_msg.ConflictError) as caught:
        await send_one_async.main(
            DEFAULT_TOLL_FREE, RECIPIENT, "Hi", api_key=fake.api_key, base_url=fake.base_url
        )
    assert caught.value.code == "40300"
    assert caught.value.request_id is not None
    assert "not sent: 409 [40300]" in capsys.readouterr().out
    assert fake.stats.count("POST", "/messages") == 1
    assert fake.stats.messages_sent == 0


async def test_send_one_blocking_script(fake: FakeTelnyx) -> None:
    """The blocking script sends once with an idempotency key; a bad number exits 1 unsent."""
    code, out, err = await run_script(fake, "send_one_blocking.py", "--to", RECIPIENT)
    assert (code, err) == (0, "")
    message_id = out.split()[1].rstrip(":")
    assert fake.message(message_id)["text"] == "Hello from telnyx_msg"
    (request,) = [r for r in fake.stats.requests if r.method == "POST"]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert len(headers["idempotency-key"]) == 36  # a UUID4

    code, out, err = await run_script(fake, "send_one_blocking.py", "--to", "555-0100")
    assert (code, err) == (1, "")
    assert out.startswith("invalid to:")
    assert fake.stats.messages_sent == 1


# --- bulk ---------------------------------------------------------------------------------------


async def test_bulk_from_csv_script(fake: FakeTelnyx) -> None:
    """Every valid row of recipients.csv is sent once; the malformed one is rejected unsent."""
    code, out, err = await run_script(fake, "bulk_from_csv.py")
    assert (code, err) == (0, "")
    with (EXAMPLES / "recipients.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    valid = {row["to"] for row in rows if row["to"].startswith("+")}
    assert len(valid) == len(rows) - 1
    sent_to = {
        r.json["to"] for r in fake.stats.requests if r.method == "POST" and isinstance(r.json, dict)
    }
    assert sent_to == valid
    assert fake.stats.messages_sent == len(valid)
    assert out.splitlines()[-1] == f"rejected 1, sent {len(valid)}"
    assert "row 6: rejected: to: '555-0105'" in out


async def test_bulk_from_csv_reads_an_excel_export(fake: FakeTelnyx, tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" (a byte order mark), capitalised headers and a quoted cell over
    two lines: every row is sent, and outcomes name spreadsheet rows (a KeyError: 'from'
    before, and line numbers that drifted after the multi-line cell)."""
    source = tmp_path / "excel.csv"
    text = (
        "From,To,Text\r\n"
        f'{DEFAULT_TOLL_FREE},{RECIPIENT},"two\r\nlines"\r\n'
        f"{DEFAULT_TOLL_FREE},555-0105,bad number\r\n"
    )
    source.write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, out, err = await run_script(fake, "bulk_from_csv.py", str(source))
    assert (code, err) == (0, "")
    [sent] = [r.json for r in fake.stats.requests if r.method == "POST"]
    assert sent["text"] == "two\r\nlines"
    assert "row 2: sent" in out
    assert "row 3: rejected: to: '555-0105'" in out


async def test_bulk_from_csv_counts_not_sent(fake: FakeTelnyx, tmp_path: Path) -> None:
    """Rows refused by Telnyx after the retries are counted as such, not as sent."""
    source = tmp_path / "optout.csv"
    source.write_text(f"from,to,text\n{DEFAULT_TOLL_FREE},{RECIPIENT},Hi\n", encoding="utf-8")
    await fake.inject_inbound(from_=RECIPIENT, to=DEFAULT_TOLL_FREE, text="STOP")
    counts = await bulk_from_csv.main(source, api_key=fake.api_key, base_url=fake.base_url)
    assert counts == {"rejected": 1}
    assert fake.stats.messages_sent == 0


# --- webhooks -----------------------------------------------------------------------------------


async def test_webhooks_aiohttp_receives_verified_events(
    fake: FakeTelnyx, capsys: pytest.CaptureFixture[str]
) -> None:
    """The aiohttp app verifies and handles delivery and inbound webhooks; forgeries get 401."""
    app = webhooks_aiohttp.create_app(fake.public_key)
    runner, url = await serve(app)
    try:
        fake.set_webhook_url(url + webhooks_aiohttp.PATH)
        async with fake.client() as client:
            sent = await client.messages.send(from_=DEFAULT_TOLL_FREE, to=RECIPIENT, text="Hi")
        await fake.inject_inbound(from_=RECIPIENT, to=DEFAULT_TOLL_FREE, text="hello back 😀")
        await fake.settle()
        await app[webhooks_aiohttp.RECEIVER].drain()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url + webhooks_aiohttp.PATH,
                data=b'{"data": {}}',
                headers={"telnyx-timestamp": "1", "telnyx-signature-ed25519": "x"},
            ) as forged,
        ):
            assert forged.status == 401
    finally:
        await runner.cleanup()
    events = app[webhooks_aiohttp.EVENTS]
    kinds = sorted(str(e.event_type) for e in events)
    assert kinds == ["message.finalized", "message.received", "message.sent"]
    final = next(e for e in events if e.event_type == "message.finalized")
    assert isinstance(final.payload, telnyx_msg.Message)
    assert final.payload.id == sent.id
    assert final.payload.to[0].status == "delivered"
    assert all(attempt.ok for attempt in fake.stats.webhook_attempts)
    # Escaped: printable on a terminal of any encoding (a print that raised failed the
    # delivery, and Telnyx would redeliver it forever).
    assert f"inbound from {RECIPIENT}: 'hello back \\U0001f600'" in capsys.readouterr().out


def asgi_bridge(app: AsgiWebhookApp) -> InboundHandler:
    """An aiohttp handler that passes each request to an ASGI app (an ASGI server in small)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": request.path,
            "raw_path": request.raw_path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.raw_headers],
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        answer: dict[str, Any] = {"body": b""}

        async def receive() -> MutableMapping[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await app(scope, receive, send)
        return web.Response(status=answer["status"], body=answer["body"])

    return handle


async def test_webhooks_fastapi_receiver_over_asgi(fake: FakeTelnyx) -> None:
    """The FastAPI example's receiver handles the fake's signed webhooks through ASGI."""
    events: list[telnyx_msg.WebhookEvent] = []
    receiver = webhooks_fastapi.create_receiver(fake.public_key, events)
    app = web.Application()
    app.router.add_route("*", webhooks_fastapi.PATH, asgi_bridge(receiver))
    runner, url = await serve(app)
    try:
        fake.set_webhook_url(url + webhooks_fastapi.PATH)
        async with fake.client() as client:
            sent = await client.messages.send(from_=DEFAULT_TOLL_FREE, to=FAILING_NUMBER, text="Hi")
        await fake.inject_inbound(from_=RECIPIENT, to=DEFAULT_TOLL_FREE, text="inbound")
        await fake.settle()
        await receiver.drain()
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + webhooks_fastapi.PATH) as wrong_method,
        ):
            assert wrong_method.status == 405
    finally:
        await runner.cleanup()
    # The ASGI lifespan protocol closes the receiver on shutdown, as a server would.
    lifespan = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    replies: list[str] = []

    async def receive() -> MutableMapping[str, Any]:
        return lifespan.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        replies.append(message["type"])

    await receiver({"type": "lifespan"}, receive, send)
    assert replies == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert receiver.closed
    by_type = {str(e.event_type): e for e in events}
    assert sorted(by_type) == ["message.finalized", "message.received", "message.sent"]
    final = by_type["message.finalized"].payload
    assert isinstance(final, telnyx_msg.Message)
    assert (final.id, final.to[0].status) == (sent.id, "delivery_failed")
    inbound = by_type["message.received"].payload
    assert isinstance(inbound, telnyx_msg.Message)
    assert inbound.text == "inbound"


async def test_webhooks_fastapi_example_under_uvicorn(fake: FakeTelnyx) -> None:
    """``python examples/webhooks_fastapi.py``, as a user runs it (FastAPI under uvicorn),
    answers every signed webhook of the fake 200 and prints it, refuses a GET (405) and an
    unsigned POST (401), and shuts down cleanly on Ctrl-C."""
    port = _free_port()
    command = (sys.executable, "-W", "error", str(EXAMPLES / "webhooks_fastapi.py"))
    sent, code, out, err = await _serve_and_deliver(
        fake, port, webhooks_fastapi.PATH, *command, "--port", str(port)
    )
    _assert_printed(fake, sent, out, err)
    assert code == 0, err
    assert "Application shutdown complete" in err


async def _serve_and_deliver(
    fake: FakeTelnyx, port: int, path: str, *command: str
) -> tuple[telnyx_msg.Message, int | None, str, str]:
    """Run a receiver ``command`` serving ``path`` on ``port``, let the fake deliver its
    webhooks to it (a send and an inbound message), check a GET (405), an unsigned POST (401)
    and a signed non-event (400), then Ctrl-C it; return the message sent, the exit code,
    stdout and stderr."""
    url = f"http://127.0.0.1:{port}{path}"
    env = {**os.environ, "TELNYX_PUBLIC_KEY": fake.public_key, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _until_listening(port)
        fake.set_webhook_url(url)
        async with fake.client() as client:
            sent = await client.messages.send(from_=DEFAULT_TOLL_FREE, to=RECIPIENT, text="Hi")
        await fake.inject_inbound(from_=RECIPIENT, to=DEFAULT_TOLL_FREE, text="inbound")
        await fake.settle()
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as wrong_method:
                assert wrong_method.status == 405
            async with session.post(url, data=b"{}") as unsigned:
                assert unsigned.status == 401
            # Signed but not an event: 400 (the examples answered 401, as for a forgery).
            array = b'["not an event"]'
            async with session.post(url, data=array, headers=fake.sign_webhook(array)) as bad:
                assert bad.status == 400
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return sent, process.returncode, out.decode(), err.decode()


def _assert_printed(fake: FakeTelnyx, sent: telnyx_msg.Message, out: str, err: str) -> None:
    """Every webhook of the fake was answered 2xx, and the example printed each event."""
    attempts = list(fake.stats.webhook_attempts)
    assert len({a.event_id for a in attempts}) == 3  # sent, finalized, received
    assert all(a.ok for a in attempts), (attempts, err)
    printed = out.splitlines()
    assert f"message.sent {sent.id}: 'Hi' {RECIPIENT} sent" in printed
    assert f"message.finalized {sent.id}: 'Hi' {RECIPIENT} delivered" in printed
    assert any(line.startswith("message.received ") and "'inbound'" in line for line in printed)


WSGI_PATHS = {"flask": webhooks_flask.PATH, "django": "/" + webhooks_django.PATH}


@pytest.mark.parametrize(
    "command",
    [
        ("webhooks_flask.py", "--port", "{port}"),
        ("webhooks_django.py", "runserver", "127.0.0.1:{port}", "--noreload"),
    ],
    ids=["flask", "django"],
)
async def test_wsgi_webhook_examples_as_run(fake: FakeTelnyx, command: tuple[str, ...]) -> None:
    """``python examples/webhooks_flask.py`` and ``python examples/webhooks_django.py
    runserver``, as a user runs them: every signed webhook of the fake answered 200 and
    printed, a GET refused (405), an unsigned POST refused (401), Ctrl-C ends them."""
    port = _free_port()
    script, *args = (part.format(port=port) for part in command)
    path = WSGI_PATHS["flask" if "flask" in script else "django"]
    run = (sys.executable, "-W", "error", str(EXAMPLES / script), *args)
    sent, code, out, err = await _serve_and_deliver(fake, port, path, *run)
    _assert_printed(fake, sent, out, err)
    assert code in (0, -signal.SIGINT), err


@pytest.mark.parametrize("framework", ["flask", "django"])
async def test_wsgi_webhook_examples_process_a_failed_delivery_again(
    fake: FakeTelnyx, framework: str
) -> None:
    """When processing an event raises, the example answers 500 and has not marked the event
    seen: Telnyx's redelivery is processed (once), not refused as a duplicate and lost."""
    port = _free_port()
    helper = (sys.executable, str(ROOT / "tests" / "wsgi_receivers.py"), framework, str(port))
    _, code, out, err = await _serve_and_deliver(fake, port, WSGI_PATHS[framework], *helper)
    assert code in (0, -signal.SIGINT), err
    attempts = list(fake.stats.webhook_attempts)
    events = {a.event_id for a in attempts}
    assert len(events) == 3, (attempts, err)
    printed = out.splitlines()
    for event_id in events:
        statuses = [a.status for a in attempts if a.event_id == event_id]
        assert statuses == [500, 200], (event_id, statuses, err)
        assert printed.count(f"failed {event_id}") == 1
        assert printed.count(f"processed {event_id}") == 1


@pytest.mark.redis
@pytest.mark.parametrize("shared", [True, False], ids=["redis", "memory"])
@pytest.mark.parametrize("framework", ["flask", "django"])
async def test_wsgi_webhook_examples_share_the_replay_window_through_redis(
    redis_url: str, framework: str, shared: bool
) -> None:
    """Two processes of the example (think gunicorn -w 2) with REDIS_URL: an event processed by
    one and delivered again to the other is answered 200 there and not processed twice.
    Without REDIS_URL each process remembers only its own events (the second processes it)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from telnyx_msg.testing._webhooks import Signer

    signer = Signer(Ed25519PrivateKey.generate())
    env = {"TELNYX_PUBLIC_KEY": signer.public_key_b64, "PYTHONUNBUFFERED": "1"}
    if shared:
        env["REDIS_URL"] = redis_url
    ports = [_free_port(), _free_port()]
    script = "webhooks_flask.py" if framework == "flask" else "webhooks_django.py"
    processes = []
    for port in ports:
        args = (
            ["--port", str(port)]
            if framework == "flask"
            else ["runserver", f"127.0.0.1:{port}", "--noreload"]
        )
        processes.append(
            await asyncio.create_subprocess_exec(
                *(sys.executable, "-W", "error", str(EXAMPLES / script), *args),
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    event_id = f"evt-{os.urandom(8).hex()}"
    payload = {"id": "msg-redelivered", "text": "once", "to": [], "direction": "inbound"}
    data = {"record_type": "event", "id": event_id, "event_type": "message.received"}
    body = json.dumps({"data": {**data, "payload": payload}}).encode()
    statuses = []
    try:
        async with aiohttp.ClientSession() as session:
            for port in (*ports, ports[0]):  # delivered, redelivered elsewhere, and again
                await _until_listening(port)
                url = f"http://127.0.0.1:{port}{WSGI_PATHS[framework]}"
                async with session.post(url, data=body, headers=signer.headers(body)) as answer:
                    statuses.append(answer.status)
        outputs, errors = [], []
        for process in processes:
            if process.returncode is None:  # else its stderr below says why it ended
                process.send_signal(signal.SIGINT)
            out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
            outputs.append(out.decode())
            errors.append(err.decode())
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert statuses == [200, 200, 200], errors
    assert all(p.returncode in (0, -signal.SIGINT) for p in processes), errors
    line = "message.received msg-redelivered: 'once' "
    counts = [out.splitlines().count(line) for out in outputs]
    assert counts == ([1, 0] if shared else [1, 1]), outputs


async def _until_listening(port: int) -> None:
    for _ in range(int(TIMEOUT / 0.05)):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def test_webhooks_fastapi_without_fastapi_explains(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without FastAPI installed, building the app exits with an install hint."""
    receiver = webhooks_fastapi.create_receiver("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
    assert callable(webhooks_fastapi.create_app(receiver))
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what an uninstalled package looks like
    with pytest.raises(SystemExit, match="pip install fastapi"):
        webhooks_fastapi.create_app(receiver)


def test_webhook_examples_need_a_public_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key (argument or TELNYX_PUBLIC_KEY) the receivers say where to find one."""
    monkeypatch.delenv("TELNYX_PUBLIC_KEY", raising=False)
    with pytest.raises(SystemExit, match="TELNYX_PUBLIC_KEY"):
        webhooks_aiohttp.create_app()
    with pytest.raises(SystemExit, match="TELNYX_PUBLIC_KEY"):
        webhooks_fastapi.create_receiver()


# --- delivery tracking --------------------------------------------------------------------------


async def test_delivery_tracking_script(fake: FakeTelnyx) -> None:
    """The script waits for the verified final status: a failing number ends delivery_failed."""
    code, out, err = await run_script(
        fake, "delivery_tracking.py", "--to", FAILING_NUMBER, "--port", "0", "--timeout", "10"
    )
    assert (code, err) == (0, "")
    assert f"{FAILING_NUMBER}: delivery_failed" in out
    assert "error 40008" in out
    assert [a.event_type for a in fake.stats.webhook_attempts] == [
        "message.sent",
        "message.finalized",
    ]
    assert all(a.ok for a in fake.stats.webhook_attempts)


async def test_delivery_tracking_delivered(fake: FakeTelnyx) -> None:
    """In-process, the returned message is final and delivered, as Telnyx stores it."""
    final = await delivery_tracking.main(
        DEFAULT_TOLL_FREE,
        RECIPIENT,
        "Hi",
        port=0,
        timeout=10,
        api_key=fake.api_key,
        base_url=fake.base_url,
        public_key=fake.public_key,
    )
    assert final.to[0].status == "delivered"
    assert final.completed_at is not None
    assert fake.message(final.id or "")["to"][0]["status"] == "delivered"


async def test_setup_sender_script(fake: FakeTelnyx) -> None:
    """The script creates a profile, assigns the number and gets its webhooks at the profile URL."""
    code, out, err = await run_script(
        fake,
        "setup_sender.py",
        "--number",
        DEFAULT_LONG_CODE,
        "--to",
        RECIPIENT,
        "--port",
        "0",
        "--timeout",
        "10",
    )
    assert (code, err) == (0, "")
    assert f"{DEFAULT_LONG_CODE} assigned to " in out
    assert f"{RECIPIENT}: delivered" in out
    assert fake.stats.count("POST", "/messaging_profiles") == 1
    assert fake.stats.count("PATCH", "/phone_numbers/{id}/messaging") == 1
    attempts = list(fake.stats.webhook_attempts)
    assert [a.event_type for a in attempts] == ["message.sent", "message.finalized"]
    assert all(a.ok and a.url.endswith("/webhooks/telnyx") for a in attempts)


async def test_setup_sender_moves_the_number_to_the_new_profile(fake: FakeTelnyx) -> None:
    """In-process: the number belongs to the new profile, which owns the delivered message."""
    profile, final = await setup_sender.main(
        DEFAULT_TOLL_FREE,
        RECIPIENT,
        "Hi",
        name="Alerts",
        destinations=("*",),
        port=0,
        timeout=10,
        api_key=fake.api_key,
        base_url=fake.base_url,
        public_key=fake.public_key,
    )
    assert profile.name == "Alerts"
    assert profile.whitelisted_destinations == ("*",)
    assert profile.id != DEFAULT_PROFILE_ID
    assert final.to[0].status == "delivered"
    assert final.messaging_profile_id == profile.id
    async with fake.client() as client:
        number = await client.phone_numbers.messaging.retrieve(DEFAULT_TOLL_FREE)
    assert number.messaging_profile_id == profile.id


def test_flask_example_refuses_a_huge_body_unread() -> None:
    """Flask reads a whole body before the signature can be checked: the example caps it at
    1 MiB (413), so an unsigned 300 MiB POST cannot make each worker buffer it."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from telnyx_msg.testing._webhooks import Signer

    signer = Signer(Ed25519PrivateKey.generate())
    app = webhooks_flask.create_app(signer.public_key_b64)
    client = app.test_client()
    response = client.post(webhooks_flask.PATH, data=b"x" * (2 << 20))
    assert response.status_code == 413
    body = b'{"data": {}}'  # small: read and verified, not refused for its size
    assert (
        client.post(webhooks_flask.PATH, data=body, headers=signer.headers(body)).status_code != 413
    )


def test_flask_example_refuses_a_chunked_body_over_the_cap() -> None:
    """A chunked body (no Content-Length) over MAX_CONTENT_LENGTH: Werkzeug cut it at 1 MiB and
    the example answered a validly signed 2 MiB delivery "401 signature does not match"."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from telnyx_msg.testing._webhooks import Signer

    signer = Signer(Ed25519PrivateKey.generate())
    app = webhooks_flask.create_app(signer.public_key_b64)
    body = b"x" * (2 << 20)
    assert (
        wsgi_post(app, body, signer.headers(body), chunked=True) == "413 REQUEST ENTITY TOO LARGE"
    )


def wsgi_post(app: Any, body: bytes, headers: dict[str, str], *, chunked: bool) -> str:
    """POST ``body`` to the Flask example's WSGI app as gunicorn hands it over (a chunked body
    without Content-Length, ``wsgi.input_terminated``); returns the status line."""
    import io

    framing: dict[str, Any] = (
        {"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
        if chunked
        else {"CONTENT_LENGTH": str(len(body))}
    )
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": webhooks_flask.PATH,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "application/json",
        **framing,
        **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()},
    }
    statuses: list[str] = []
    b"".join(app.wsgi_app(environ, lambda status, headers: statuses.append(status)))
    return statuses[0]


def test_flask_example_answers_200_when_marking_seen_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Processed, then the replay store failed to mark it: the example answered 500, so
    Telnyx delivered the event again and it was processed twice."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from telnyx_msg.testing._webhooks import Signer

    class MarkFails(telnyx_msg.MemoryReplayStore):
        def mark(self, event_id: str, ttl: float) -> None:
            raise ConnectionError("Redis went away")

    monkeypatch.setattr(webhooks_flask, "replay_store", MarkFails)
    signer = Signer(Ed25519PrivateKey.generate())
    processed: list[str | None] = []
    app = webhooks_flask.create_app(signer.public_key_b64, process=lambda e: processed.append(e.id))
    event = {
        "record_type": "event",
        "id": "evt-1",
        "event_type": "message.sent",
        "occurred_at": "2024-01-01T00:00:00Z",
        "payload": {"id": "msg-1", "to": [{"phone_number": RECIPIENT, "status": "sent"}]},
    }
    body = json.dumps({"data": event}).encode()
    response = app.test_client().post(webhooks_flask.PATH, data=body, headers=signer.headers(body))
    assert response.status_code == 200
    assert processed == ["evt-1"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_flask_example_accepts_a_body_of_exactly_the_cap(chunked: bool) -> None:
    """A signed delivery of exactly MAX_BODY bytes is handled (under gunicorn it was answered
    413, with or without Content-Length: the example read one byte past the cap to tell a cut
    chunked body, and Werkzeug refuses that read); one byte more is still 413."""

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from telnyx_msg.testing._webhooks import Signer

    signer = Signer(Ed25519PrivateKey.generate())
    handled: list[str | None] = []
    app = webhooks_flask.create_app(signer.public_key_b64, process=lambda e: handled.append(e.id))

    def post(size: int, event_id: str) -> str:
        event = {
            "record_type": "event",
            "id": event_id,
            "event_type": "message.finalized",
            "occurred_at": "2024-01-01T00:00:00Z",
            "payload": {"id": "msg-1", "to": [{"phone_number": RECIPIENT, "status": "sent"}]},
        }
        compact = json.dumps({"data": event}).encode()
        body = compact[:-1] + b" " * (size - len(compact)) + compact[-1:]
        return wsgi_post(app, body, signer.headers(body), chunked=chunked)

    assert post(webhooks_flask.MAX_BODY, "evt-at-cap") == "200 OK"
    assert handled == ["evt-at-cap"]
    assert post(webhooks_flask.MAX_BODY + 1, "evt-over") == "413 REQUEST ENTITY TOO LARGE"
    assert handled == ["evt-at-cap"]
