"""The blocking facade: plain code, inside a running loop, lifecycle and cleanup."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

import telnyx_msg
import telnyx_msg.testing
from telnyx_msg.testing import MockRequest, MockResponse, MockTransport
from tests.conftest import json_response, message_json


@pytest.fixture
def threaded_server() -> Iterator[str]:
    """An API server on its own loop thread, so a blocking caller cannot starve it."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    hits = {"unavailable": 0}
    release = asyncio.Event()  # set at teardown, so a slow request does not hold the cleanup

    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith("/messages/slow"):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(release.wait(), 5)
        if request.path.endswith("/messages/unavailable"):  # its request id counts the hits
            hits["unavailable"] += 1
            return json_response(
                {"errors": [{"code": "10001", "title": "Unavailable"}]},
                status=503,
                headers={"x-request-id": f"hit-{hits['unavailable']}"},
            )
        if request.method == "GET" and request.path.endswith("/messaging_optouts"):
            return json_response(
                {
                    "data": [{"from": "+1800", "to": "+1844"}],
                    "meta": {"page_number": 1, "total_pages": 1},
                }
            )
        return json_response({"data": message_json()})

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/v2"
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert ready.wait(10)
    yield state["url"]
    loop.call_soon_threadsafe(release.set)
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "telnyx_msg-client"]


def test_blocking_calls_from_plain_code(threaded_server: str) -> None:
    """Sends, lists and with_options work from ordinary blocking code."""
    with telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None) as client:
        message = client.messages.send(from_="+18005550101", to="+18445550001", text="Hi")
        assert isinstance(message, telnyx_msg.Message)
        assert message.to[0].phone_number == "+18445550001"
        assert [o.to for o in client.messaging_optouts.list()] == ["+1844"]
        fast = client.with_options(timeout=5.0, max_retries=0)
        assert fast.messages.retrieve("m").id == message.id
        fast.close()  # a view's close leaves the client running
        assert client.messages.retrieve("m").id == message.id
    assert _portal_threads() == []


def test_with_options_sets_the_views_retries(threaded_server: str) -> None:
    """A view's max_retries applies to its calls, not to the client's (503 is retried)."""
    fast = telnyx_msg.Backoff(initial=0.001, max=0.002)
    with telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None, backoff=fast) as client:
        view = client.with_options(max_retries=0)
        assert view.max_retries == 0
        with pytest.raises(telnyx_msg.APIStatusError) as once:
            view.messages.retrieve("unavailable")
        with pytest.raises(telnyx_msg.APIStatusError) as thrice:
            client.messages.retrieve("unavailable")
    assert once.value.request_id == "hit-1"
    assert thrice.value.request_id == "hit-4"  # the client's default: 2 retries


@pytest.mark.anyio
async def test_blocking_client_inside_running_loop(threaded_server: str) -> None:
    """Called from a coroutine (as in Jupyter), the facade still works: it has its own loop."""
    with telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None) as client:
        message = client.messages.retrieve("m")
    assert message.id is not None
    assert asyncio.get_running_loop().is_running()


def test_close_is_idempotent_and_final(threaded_server: str) -> None:
    """close() stops the loop thread; a second close is harmless; later calls raise."""
    client = telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None)
    client.messages.retrieve("m")
    assert len(_portal_threads()) == 1
    client.close()
    client.close()
    assert _portal_threads() == []
    # The same error as the AsyncClient's: nothing was written (an APIConnectionError too).
    with pytest.raises(telnyx_msg.ClientClosedError, match="closed"):
        client.messages.retrieve("m")
    with pytest.raises(telnyx_msg.ClientClosedError):
        client.messages.send_many([{"from_": "+18005550101", "to": "+18445550001", "text": "x"}])


def test_send_many_pulls_its_input_in_the_callers_thread(
    threaded_server: str, request: pytest.FixtureRequest
) -> None:
    """The blocking send_many reads its input in the thread iterating the outcomes: a
    sqlite3 cursor (which refuses other threads) works, a generator runs in that thread, and
    a slow input does not hold up another thread's call on the same client."""
    import sqlite3

    database = sqlite3.connect(":memory:")
    request.addfinalizer(database.close)  # Python 3.13 warns about an unclosed connection
    database.execute("CREATE TABLE r (sender TEXT, recipient TEXT)")
    database.executemany(
        "INSERT INTO r VALUES (?, ?)", [("+18005550101", f"+1844555{n:04d}") for n in range(20)]
    )
    pulled_in: set[int] = set()
    other_call_finished: list[bool] = []

    with telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None) as client:

        def rows() -> Iterator[telnyx_msg.SendItem]:
            for sender, recipient in database.execute("SELECT sender, recipient FROM r"):
                pulled_in.add(threading.get_ident())
                if recipient.endswith("0003"):  # a slow input while another thread calls
                    worker = threading.Thread(target=client.messages.retrieve, args=("m",))
                    worker.start()
                    worker.join(10)
                    other_call_finished.append(not worker.is_alive())
                yield {"from_": sender, "to": recipient, "text": "hi"}

        statuses = [o.status for o in client.messages.send_many(rows(), concurrency=4)]
    assert statuses == ["sent"] * 20
    assert pulled_in == {threading.get_ident()}
    assert other_call_finished == [True]  # it completed while this thread held the input


def test_validation_happens_in_caller_thread() -> None:
    """Bad arguments raise ValidationError directly, before any thread hop or I/O."""
    with (
        telnyx_msg.Client("k", base_url="http://127.0.0.1:9/v2", rate_limits=None) as client,
        pytest.raises(telnyx_msg.ValidationError) as caught,
    ):
        client.messages.send(from_="+18005550101", to="555-0001", text="Hi")
    assert caught.value.field == "to"


def test_unclosed_client_warns_and_cleans_up() -> None:
    """A Client dropped without close() emits ResourceWarning and stops its thread."""
    client = telnyx_msg.Client(
        "k", base_url="http://127.0.0.1:9/v2", rate_limits=None, max_retries=0
    )
    assert _portal_threads() == []  # the thread starts with the first call
    with pytest.raises(telnyx_msg.APIConnectionError):
        client.messages.retrieve("m1")  # nothing listens on port 9
    assert len(_portal_threads()) == 1
    with pytest.warns(ResourceWarning, match="not closed"):  # noqa: PT031 - del may or may not
        del client  # collect it at once (cycles), so both steps belong in the block
        gc.collect()
    assert _portal_threads() == []


def test_session_argument_rejected() -> None:
    """A foreign aiohttp session cannot serve the facade's own loop: clear error."""
    with pytest.raises(telnyx_msg.ConfigurationError, match="session"):
        telnyx_msg.Client("k", session=object())  # type: ignore[arg-type]


def test_a_blocking_call_from_an_event_hook_raises_instead_of_deadlocking(
    threaded_server: str,
) -> None:
    """Hooks run in the client's loop thread: a blocking call there cannot wait for that loop,
    so it raises at once and the outer call completes."""
    errors: list[BaseException] = []

    def hook(_: object) -> None:
        try:
            client.messages.retrieve("m1")
        except RuntimeError as exc:
            errors.append(exc)

    client = telnyx_msg.Client(
        "k", base_url=threaded_server, rate_limits=None, event_hooks={"request": [hook]}
    )
    with client:
        assert client.messages.retrieve("m0").id
    assert len(errors) == 1
    assert "own event loop thread" in str(errors[0])


def test_ctrl_c_while_waiting_cancels_the_call(threaded_server: str) -> None:
    """KeyboardInterrupt in the waiting thread reaches the caller at once and cancels the
    request on the client's loop; the client stays usable."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main targets the main thread")

    def tasks() -> int:  # every task on the client's loop but this one
        return len(asyncio.all_tasks()) - 1

    with telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None) as client:
        assert client.messages.retrieve("m0").id  # the loop thread runs from the first call
        idle = client._owner.portal.call(tasks)
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            client.messages.retrieve("slow")  # the server takes 5 s
        assert time.monotonic() - started < 2.5
        for _ in range(100):
            if client._owner.portal.call(tasks) == idle:
                break
            time.sleep(0.02)
        assert client._owner.portal.call(tasks) == idle  # the request was cancelled
        assert client.messages.retrieve("m1").id


def _sigint_main_thread() -> None:
    """A real SIGINT, delivered to the main thread (as a terminal's Ctrl-C usually is)."""
    main = threading.main_thread().ident
    assert main is not None
    signal.pthread_kill(main, signal.SIGINT)


def test_ctrl_c_while_the_loop_is_busy_reaches_the_caller_when_the_loop_frees() -> None:
    """A blocking send interrupted (Ctrl-C) while the client's shared loop is busy with another
    thread's call (a plain-function event hook doing blocking work, which the docs allow) must
    raise KeyboardInterrupt as soon as the loop can cancel it, send nothing, and leave the
    client usable. The send's task was cancelled before its coroutine ever ran, so nothing
    told the waiting caller it had ended: Ctrl-C took the whole 5 s close bound to arrive."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the SIGINT targets the main thread")

    def slow_hook(event: telnyx_msg.RequestEvent) -> None:
        if event.path.endswith("/busy"):
            time.sleep(1.0)  # a slow, blocking metrics sink: holds the loop for 1 s

    with telnyx_msg.testing.serve_in_thread() as fake:
        client = telnyx_msg.Client(
            fake.api_key, base_url=fake.base_url, event_hooks={"request": [slow_hook]}
        )
        with client:
            client.messages.send(
                from_=telnyx_msg.testing.DEFAULT_TOLL_FREE, to="+18445550001", text="warm up"
            )

            def busy() -> None:
                with pytest.raises(telnyx_msg.NotFoundError):  # the fake has no such message
                    client.request("GET", "/messages/busy")

            other = threading.Thread(target=busy)
            other.start()
            time.sleep(0.2)  # the loop now runs the hook
            timer = threading.Timer(0.2, _sigint_main_thread)
            timer.start()
            started = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                client.messages.send(
                    from_=telnyx_msg.testing.DEFAULT_TOLL_FREE, to="+18445550002", text="x"
                )
            waited = time.monotonic() - started
            other.join(10)
            # The loop is free about 0.8 s after the call started.
            assert waited < 2.5, f"KeyboardInterrupt reached the caller after {waited:.1f} s"
            assert fake.stats.count("POST", "/messages") == 1  # the interrupted send never ran
            assert client.messages.send(
                from_=telnyx_msg.testing.DEFAULT_TOLL_FREE, to="+18445550003", text="y"
            ).id


def test_ctrl_c_landing_as_the_call_ends_reaches_the_caller_at_once() -> None:
    """A KeyboardInterrupt that is raised just as a blocking call's result arrives (the
    interrupt was pending while the caller waited, and Python raises it when the wait
    returns) must reach the caller at once. The caller had already taken the call's "done"
    signal, then waited for it again after cancelling the finished call: the 5 s close bound,
    on every such Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main targets the main thread")
    config = telnyx_msg.testing.FakeConfig(
        faults=telnyx_msg.testing.Faults(latency=0.5, match=["POST /messages"])
    )
    with (
        telnyx_msg.testing.serve_in_thread(config=config) as fake,
        telnyx_msg.Client(fake.api_key, base_url=fake.base_url) as client,
    ):
        client.messaging_hosted_numbers.list().first_page()  # the loop thread runs
        timer = threading.Timer(0.1, _thread.interrupt_main)
        timer.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            client.messages.send(
                from_=telnyx_msg.testing.DEFAULT_TOLL_FREE, to="+18445550002", text="x"
            )
        waited = time.monotonic() - started
        assert waited < 2.0, f"KeyboardInterrupt reached the caller after {waited:.1f} s"
        assert client.messages.send(
            from_=telnyx_msg.testing.DEFAULT_TOLL_FREE, to="+18445550003", text="y"
        ).id


def test_close_while_threads_call_never_strands_a_caller(threaded_server: str) -> None:
    """Closing a shared Client while other threads are calling it: every call returns or raises
    a TelnyxError (a call posted as the loop stops is never left waiting), 20 rounds."""
    for round_ in range(20):
        client = telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None)
        runs: list[list[str]] = [[] for _ in range(4)]

        def caller(mine: list[str], client: telnyx_msg.Client = client) -> None:
            for _ in range(50):
                try:
                    client.messages.retrieve("m1")
                except telnyx_msg.TelnyxError:
                    mine.append("closed")
                    return
                mine.append("ok")

        threads = [threading.Thread(target=caller, args=(run,)) for run in runs]
        for thread in threads:
            thread.start()
        time.sleep(0.002 * round_)
        client.close()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads), f"round {round_}: a caller hung"
        for run in runs:  # all 50 answered, or answered until the close stopped it
            assert run == ["ok"] * 50 or run == ["ok"] * (len(run) - 1) + ["closed"], run


def test_a_call_reaching_a_closed_loop_raises_client_closed(threaded_server: str) -> None:
    """The loop-thread entry itself refuses work once the loop is gone (the race the public
    check cannot close: a thread that passed it just before another thread closed)."""
    client = telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None)
    entry = client._owner
    client.close()

    async def work() -> int:
        return 1

    with pytest.raises(telnyx_msg.ClientClosedError):
        entry.call(work)


def _run_script(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script in a fresh interpreter (a fork test's own process)."""
    script = tmp_path / "script.py"
    script.write_text(source)
    # The code under test, not whatever copy of telnyx_msg the interpreter has installed.
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": path},
    )


FORK_SCRIPT = """
import os, sys, time
import telnyx_msg
import telnyx_msg.testing

url, mode = sys.argv[1], sys.argv[2]
client = telnyx_msg.Client("k", base_url=url, rate_limits=None)
client.messages.send(from_="+18005550101", to="+18445550001", text="before the fork")
pid = os.fork()
if pid == 0:
    for call in (
        lambda: client.messages.send(from_="+18005550101", to="+18445550001", text="child"),
        lambda: list(client.messaging_optouts.list()),
    ):
        try:
            call()
            print("child: call worked?!", flush=True)
        except telnyx_msg.ConfigurationError as exc:
            print("child: refused:", "before the process forked" in str(exc), flush=True)
    if mode == "close":
        client.close()
    else:
        del client
    sys.exit(0)  # a normal exit: finalizers and interpreter teardown run
deadline = time.monotonic() + 15
while os.waitpid(pid, os.WNOHANG) == (0, 0):
    if time.monotonic() > deadline:
        os.kill(pid, 9)
        print("parent: the child hung at exit", flush=True)
        sys.exit(3)
    time.sleep(0.01)
for n in range(5):
    client.messages.send(from_="+18005550101", to="+18445550001", text=f"after {n}")
client.close()
print("parent: ok", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("mode", ["close", "drop"])
def test_forked_child_refuses_the_parents_client_and_leaves_its_connections_alone(
    threaded_server: str, tmp_path: Path, mode: str
) -> None:
    """A Client used, then inherited by a fork (multiprocessing, gunicorn --preload): the
    child's calls raise ConfigurationError at once instead of waiting forever for a loop
    thread that stayed in the parent; the child exits normally (closing the client or not);
    and the parent's pooled connections keep working after the child cleaned up."""
    result = _run_script(tmp_path, FORK_SCRIPT, threaded_server, mode)
    assert result.stdout.splitlines() == [
        "child: refused: True",
        "child: refused: True",
        "parent: ok",
    ], result.stderr
    assert result.returncode == 0


FORK_UNUSED_SCRIPT = """
import os, sys, time
import telnyx_msg
import telnyx_msg.testing

url, mode = sys.argv[1], sys.argv[2]
client = telnyx_msg.Client("k", base_url=url)  # created at import, as under gunicorn --preload
children = []
for n in range(2):
    pid = os.fork()
    if pid == 0:
        for i in range(3):
            client.messages.send(from_="+18005550101", to="+18445550001", text=f"child {i}")
        os.write(1, b"child: sent 3\\n")  # one write: the two children's lines never interleave
        if mode == "close":
            client.close()
        sys.exit(0)  # a normal exit: finalizers and interpreter teardown run
    children.append(pid)
deadline = time.monotonic() + 30
for pid in children:
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            print("parent: a child hung", flush=True)
            sys.exit(3)
        time.sleep(0.01)
client.messages.send(from_="+18005550101", to="+18445550001", text="parent")
client.close()
print("parent: ok", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("mode", ["close", "drop"])
def test_a_client_created_before_a_fork_and_used_after_it_works_in_each_process(
    threaded_server: str, tmp_path: Path, mode: str
) -> None:
    """A Client created at import and first used after the fork (gunicorn --preload, Celery's
    prefork pool): each child starts its own loop thread and sends; the parent still can."""
    result = _run_script(tmp_path, FORK_UNUSED_SCRIPT, threaded_server, mode)
    assert result.stdout.splitlines() == ["child: sent 3", "child: sent 3", "parent: ok"], (
        result.stderr
    )
    assert result.returncode == 0
    assert "Traceback" not in result.stderr


FORK_LIMITS_SCRIPT = """
import asyncio, os, sys, time
import telnyx_msg
import telnyx_msg.testing

url, redis_url = sys.argv[1], sys.argv[2]
if redis_url == "memory":
    limits = telnyx_msg.RateLimits()
else:
    limits = telnyx_msg.RedisRateLimits(redis_url, redis_timeout=1.0)
client = telnyx_msg.Client("k", base_url=url, rate_limits=limits)
client.messages.send(from_="+18005550101", to="+18445550001", text="before the fork")
pid = os.fork()
if pid == 0:
    async def child() -> None:
        async with telnyx_msg.AsyncClient("k", base_url=url, rate_limits=limits, timeout=5) as own:
            await own.messages.send(from_="+18005550101", to="+18445550001", text="child")
    asyncio.run(child())
    print("child: sent", flush=True)
    sys.exit(0)  # a normal exit: the inherited Redis and HTTP connections are collected
os.waitpid(pid, 0)
for n in range(3):
    client.messages.send(from_="+18005550101", to="+18445550001", text=f"after {n}")
client.close()
print("parent: ok", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_forked_child_shares_the_limits_and_leaves_the_parents_connections_alone(
    threaded_server: str, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """A child forked after the parent used its limits can use the same limits object with a
    client of its own: RateLimits forwarded the child's calls to the parent's loop, which never
    runs in the child (RateLimitError after the timeout). And the child's normal exit does not
    break the parent's pooled Redis connections (its cleanup unregistered them from the shared
    epoll set: the parent's next acquire waited redis_timeout and raised
    RateLimiterUnavailableError)."""
    where = "memory" if kind == "memory" else request.getfixturevalue("redis_url")
    result = _run_script(tmp_path, FORK_LIMITS_SCRIPT, threaded_server, where)
    assert result.stdout.splitlines() == ["child: sent", "parent: ok"], result.stderr
    assert result.returncode == 0


def test_views_pagers_and_outcomes_keep_their_client_alive() -> None:
    """What a never-named client hands out keeps working: ``Client(...).with_options(...)``, a
    list's pager and ``send_many``'s outcomes raised ClientClosedError on first use, because
    the client was collected and its finalizer stopped the loop thread they share."""
    from telnyx_msg.testing import DEFAULT_TOLL_FREE, serve_in_thread

    send: telnyx_msg.SendMessageItem = {
        "from_": DEFAULT_TOLL_FREE,
        "to": "+13125550001",
        "text": "hi",
    }
    with serve_in_thread() as fake, warnings_ignored(ResourceWarning):
        key, url = fake.api_key, fake.base_url
        # (One collection for all four: each costs seconds in a long-running test process.)
        view = telnyx_msg.Client(key, base_url=url).with_options(max_retries=5)
        pager = telnyx_msg.Client(key, base_url=url).messaging_hosted_numbers.list()
        outcomes = telnyx_msg.Client(key, base_url=url).messages.send_many([send] * 3)
        raw = telnyx_msg.Client(key, base_url=url).messaging_hosted_numbers.with_raw_response
        gc.collect()
        assert view.messages.send(from_=DEFAULT_TOLL_FREE, to="+13125550001", text="hi").id
        assert [number.phone_number for number in pager]  # the fake's numbers
        assert [o.status for o in outcomes] == ["sent"] * 3
        pages = raw.list().parse()
        gc.collect()
        assert [number.phone_number for number in pages]
        del view, pager, outcomes, raw, pages
        gc.collect()
    assert _portal_threads() == []


def test_an_unclosed_client_is_cleaned_up_even_when_its_warning_is_an_error() -> None:
    """Under ``-W error`` (pytest's ``filterwarnings = error``) the "was not closed" warning
    raises in the finalizer; it came before the cleanup, so the loop thread and the session
    stayed open."""
    from telnyx_msg.testing import DEFAULT_TOLL_FREE, serve_in_thread

    with serve_in_thread() as fake:
        client = telnyx_msg.Client(fake.api_key, base_url=fake.base_url)
        client.messages.send(from_=DEFAULT_TOLL_FREE, to="+13125550001", text="hi")
        assert _portal_threads()
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            unraisable: list[Any] = []
            old_hook = sys.unraisablehook
            sys.unraisablehook = unraisable.append
            try:
                del client
                gc.collect()
            finally:
                sys.unraisablehook = old_hook
        assert _portal_threads() == []
        assert any(isinstance(u.exc_value, ResourceWarning) for u in unraisable)


@contextlib.contextmanager
def warnings_ignored(category: type[Warning]) -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield


def test_close_from_an_event_hook_is_refused_and_leaves_the_client_usable() -> None:
    """``close()`` from the loop thread (an event hook) raises the documented RuntimeError
    before tearing anything down. It raised "cannot join current thread" half-way: the
    thread and session leaked, and a later ``close()`` did nothing."""
    from telnyx_msg.testing import DEFAULT_TOLL_FREE, serve_in_thread

    refused: list[BaseException] = []
    holder: list[telnyx_msg.Client] = []

    async def on_response(event: telnyx_msg.ResponseEvent) -> None:
        try:
            holder[0].close()
        except RuntimeError as exc:
            refused.append(exc)

    with serve_in_thread() as fake:
        client = telnyx_msg.Client(
            fake.api_key, base_url=fake.base_url, event_hooks={"response": [on_response]}
        )
        holder.append(client)
        client.messages.send(from_=DEFAULT_TOLL_FREE, to="+13125550001", text="hi")
        assert len(refused) == 1
        assert "client.async_client" in str(refused[0])
        client.messages.send(from_=DEFAULT_TOLL_FREE, to="+13125550001", text="again")
        client.close()
    assert _portal_threads() == []
    assert (client.timeout, client.max_retries) == (
        client.async_client.timeout,
        client.async_client.max_retries,
    )
    assert client.rate_limits is client.async_client.rate_limits


_FORK_CHILD = """
import os, sys
import telnyx_msg
import telnyx_msg.testing

client = telnyx_msg.Client("k", base_url=sys.argv[1], rate_limits=None)
client.messages.retrieve("m-1")
pid = os.fork()
if pid == 0:
    sys.exit(0)  # the child never touches the client; its interpreter exits normally
_, status = os.waitpid(pid, 0)
client.messages.retrieve("m-1")
client.close()
print("child status", status)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.anyio
async def test_a_forked_child_does_not_report_the_parents_connections(api_server: Any) -> None:
    """A child forked from a process whose Client has connections exits without "Unclosed
    client session" / "Unclosed connector" reports (the parent's, not leaked by the child;
    under -X dev also "Non-thread-safe operation" from the connector's finalizer)."""

    async def ok(request: web.Request) -> web.Response:
        return json_response({"data": message_json(id="m-1")})

    server = await api_server(ok)
    command = [sys.executable, "-X", "dev", "-W", "default", "-c", _FORK_CHILD, server.base_url]
    result = await anyio.run_process(command, check=False)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert result.stdout.decode().strip() == "child status 0"
    assert "Unclosed" not in err
    assert "Exception ignored" not in err


def test_pickling_a_client_says_what_to_do() -> None:
    """multiprocessing (spawn) pickles arguments: a Client is refused with advice, not with
    "cannot pickle '_thread.lock' object"."""
    import pickle

    with (
        telnyx_msg.Client("k", rate_limits=None) as client,
        pytest.raises(TypeError, match="create one in each process"),
    ):
        pickle.dumps(client)


# --- close from another thread, collection with a hook cycle ------------------------------------


def _closed_run(
    client: telnyx_msg.Client, rows: Iterator[telnyx_msg.SendItem], concurrency: int
) -> tuple[list[telnyx_msg.SendOutcome], list[telnyx_msg.SendOutcome]]:
    """Run a blocking send_many that the client's closing ends (ClientClosedError); return
    the outcomes it yielded and those it reported to on_stop."""
    yielded: list[telnyx_msg.SendOutcome] = []
    stops: list[telnyx_msg.SendOutcome] = []
    outcomes = client.messages.send_many(rows, concurrency=concurrency, on_stop=stops.append)
    with pytest.raises(telnyx_msg.ClientClosedError):  # noqa: PT012 - the run is the statement
        for outcome in outcomes:
            yielded.append(outcome)
    return yielded, stops


def test_close_during_a_blocking_send_many_reports_every_pulled_item(threaded_server: str) -> None:
    """Another thread closes the client while send_many reads a slow input (a database cursor):
    the run raised ``RuntimeError: Event loop is closed`` from the input's thread and the item it
    had just pulled got no outcome. Now every pulled item is yielded or reported to on_stop,
    and the run ends with ClientClosedError, as the async client's does."""
    client = telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None)
    client.messages.retrieve("m1")  # the loop thread runs
    pulled: list[int] = []

    def rows() -> Iterator[telnyx_msg.SendItem]:
        for n in range(20):
            time.sleep(0.2)
            pulled.append(n)
            yield {"from_": "+18005550101", "to": f"+1844555{n:04d}", "text": "x"}

    closer = threading.Timer(0.5, client.close)
    closer.start()
    try:
        yielded, stops = _closed_run(client, rows(), concurrency=3)
    finally:
        closer.join(10)
    assert sorted(o.index for o in [*yielded, *stops]) == pulled
    # A send answered but not consumed yet is reported to on_stop too, as "sent".
    assert {o.status for o in stops} <= {"sent", "not_sent", "unknown"}


def test_a_client_whose_hook_holds_it_is_still_collected() -> None:
    """``self.client = Client(event_hooks={"response": [self.on_response]})``, never closed:
    the finalizer held the AsyncClient, which holds the hooks, which hold the object holding
    the Client, so it was never collected and its thread and sockets stayed until exit."""

    class Service:
        def __init__(self) -> None:
            self.client = telnyx_msg.Client(
                "k",
                base_url="http://127.0.0.1:9/v2",
                rate_limits=None,
                max_retries=0,
                event_hooks={"response": [self.on_response]},
            )
            self.responses = 0

        def on_response(self, event: telnyx_msg.ResponseEvent) -> None:
            self.responses += 1

    service = Service()
    with pytest.raises(telnyx_msg.APIConnectionError):
        service.client.messages.retrieve("m1")  # nothing listens on port 9
    assert service.responses == 1
    assert len(_portal_threads()) == 1
    with pytest.warns(ResourceWarning, match="not closed"):  # noqa: PT031 - del then collect
        del service
        gc.collect()
    assert _portal_threads() == []


def test_a_client_collected_in_its_own_loop_thread_is_closed() -> None:
    """A garbage collection that happens to run in the client's loop thread ran the finalizer
    there: waiting for that thread from itself failed (silently), and the thread and session
    were left behind. Another thread now closes it."""
    client = telnyx_msg.Client(
        "k", base_url="http://127.0.0.1:9/v2", rate_limits=None, max_retries=0
    )
    with pytest.raises(telnyx_msg.APIConnectionError):
        client.messages.retrieve("m1")
    finalizer = client._finalizer
    portal = client._owner.portal

    async def collect_here() -> None:
        with pytest.warns(ResourceWarning, match="not closed"):
            finalizer()  # what the collector runs, in this (the loop's) thread

    portal.call(collect_here)
    for _ in range(100):
        if not _portal_threads():
            break
        time.sleep(0.05)
    assert _portal_threads() == []


def test_a_blocking_client_on_the_limiters_own_loop_gets_a_clear_error() -> None:
    """One RateLimits shared by an AsyncClient (its loop owns the limiter) and a blocking
    Client called from code on that loop (a notebook cell): the loop waits for the call, which
    waits for the loop. It failed after its timeout as a 429 "the client-side rate limit would
    hold this request longer than its timeout", which no rate limit had done."""
    limits = telnyx_msg.RateLimits()
    sender = "+18005550101"

    async def main(base_url: str, key: str) -> None:
        async with telnyx_msg.AsyncClient(key, base_url=base_url, rate_limits=limits) as owner:
            await owner.messages.send(from_=sender, to="+18445550001", text="Hi")  # owns it
            blocking = telnyx_msg.Client(key, base_url=base_url, rate_limits=limits, timeout=0.5)
            with blocking, pytest.raises(telnyx_msg.ConfigurationError, match="it is blocked"):
                blocking.messages.send(from_=sender, to="+18445550002", text="Hi")

    with telnyx_msg.testing.serve_in_thread() as fake:
        asyncio.run(main(fake.base_url, fake.api_key))
        assert [m["to"][0]["phone_number"] for m in fake.messages()] == ["+18445550001"]


def test_close_from_inside_the_send_many_input_ends_the_run_as_closed(
    threaded_server: str,
) -> None:
    """The input generator closes the client (it runs in the thread iterating the outcomes,
    inside that thread's call): close() waited 5 s for the very call it was running in, then
    the run raised APIConnectionError "may have reached Telnyx" although nothing was in
    flight. It returns at once; the run reports every pulled item and raises
    ClientClosedError."""
    client = telnyx_msg.Client("k", base_url=threaded_server, rate_limits=None)
    pulled: list[int] = []

    def rows() -> Iterator[telnyx_msg.SendItem]:
        for n in range(5):
            if n == 2:
                client.close()
            pulled.append(n)
            yield {"from_": "+18005550101", "to": f"+1844555{n:04d}", "text": "x"}

    yielded, stops = _closed_run(client, rows(), concurrency=1)
    assert sorted(o.index for o in [*yielded, *stops]) == pulled == [0, 1, 2]
    assert [o.status for o in yielded] == ["sent", "sent", "not_sent"]
    assert _portal_threads() == []  # the loop stopped once the run ended


SENDER = "+18005550101"


def _items(n: int) -> list[telnyx_msg.SendItem]:
    return [{"from_": SENDER, "to": f"+1844555{i:04d}", "text": "x"} for i in range(n)]


def _ok(request: MockRequest) -> MockResponse:
    body = request.json()
    return MockResponse(
        json={
            "data": {
                "id": f"m-{body['to']}",
                "to": [{"phone_number": body["to"], "status": "queued"}],
            }
        }
    )


class _StuckSends:
    """A MockTransport handler whose sends hang until cancelled, then take ``stop`` seconds to
    stop (``blocking``: holding the loop thread, as a slow synchronous hook would), and a
    Ctrl-C (``times`` of them) for the main thread once ``count`` sends are on the wire."""

    def __init__(self, count: int, *, stop: float = 0.0, blocking: bool = False) -> None:
        self.count, self.stop, self.blocking = count, stop, blocking
        self.seen = 0
        self.in_flight = threading.Event()

    async def __call__(self, request: MockRequest) -> MockResponse:
        self.seen += 1
        if self.seen == self.count:
            self.in_flight.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if self.blocking:
                time.sleep(self.stop)  # noqa: ASYNC251 - a slow stop holding the loop
            elif self.stop:
                await asyncio.sleep(self.stop)
            raise
        return _ok(request)

    def interrupt_soon(self, times: int = 1) -> None:
        """Start the Ctrl-C(s) in a thread (they wait for the sends to be on the wire)."""

        def interrupt() -> None:
            if self.in_flight.wait(10):
                for n in range(times):
                    if n:
                        time.sleep(0.1)
                    _thread.interrupt_main()

        threading.Thread(target=interrupt, daemon=True).start()


def test_ctrl_c_reaches_the_caller_only_after_on_stop_got_the_stopped_sends() -> None:
    """Ctrl-C while a blocking send_many waits: the sends on the wire are cancelled and reported
    to on_stop before the KeyboardInterrupt reaches the caller. It reached ``except
    KeyboardInterrupt`` while on_stop was still empty when the sends took a moment to stop (a
    request hook, a limiter, a server-side close): a script saving on_stop's outcomes there
    and resending "the rest" would send those items twice."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main targets the main thread")
    stuck = _StuckSends(5, stop=0.3)  # sends that take a moment to stop
    stopped: list[telnyx_msg.SendOutcome] = []
    items = _items(5)
    with telnyx_msg.Client("k", transport=MockTransport(stuck), rate_limits=None) as client:
        stuck.interrupt_soon()
        with pytest.raises(KeyboardInterrupt):
            for _ in client.messages.send_many(items, concurrency=5, on_stop=stopped.append):
                pass
        reported_when_raised = len(stopped)
    assert reported_when_raised == 5


def test_a_runtime_error_raised_by_on_stop_is_not_swallowed_by_the_blocking_client() -> None:
    """The bulk guide: on_stop's first error "is then raised from the stop". The
    AsyncClient raises it; the blocking Client's iterator swallowed it when it was a
    RuntimeError (``_iterate`` suppresses RuntimeError around ``aclose``), e.g. the
    RuntimeError an on_stop gets when it calls the blocking client (it runs in the loop
    thread). The outcomes on_stop failed to record then vanish without a trace."""
    calls: list[int] = []

    def on_stop(outcome: telnyx_msg.SendOutcome) -> None:
        calls.append(outcome.index)
        raise RuntimeError("on_stop failed")

    with telnyx_msg.Client("k", transport=MockTransport(_ok), rate_limits=None) as client:
        outcomes = client.messages.send_many(_items(20), concurrency=10, on_stop=on_stop)
        next(outcomes)
        with pytest.raises(RuntimeError, match="on_stop failed"):
            outcomes.close()
    assert calls  # on_stop ran (and raised) for the outcomes left in the run


def test_blocking_send_many_calls_on_stop_in_the_callers_thread() -> None:
    """The blocking send_many reads its input in the caller's thread so that a thread-bound
    input (a sqlite3 cursor) works; its on_stop, where a script records what the stop left
    (often in that same database), runs in the client's hidden loop thread: sqlite3 refuses
    ("SQLite objects created in a thread can only be used in that same thread"), and a
    blocking-client call there raises RuntimeError. Nothing in the docs says so."""
    database = sqlite3.connect(":memory:")
    try:
        database.execute("CREATE TABLE outcome (idx INTEGER, status TEXT)")

        def record(outcome: telnyx_msg.SendOutcome) -> None:
            database.execute("INSERT INTO outcome VALUES (?, ?)", (outcome.index, outcome.status))

        with telnyx_msg.Client("k", transport=MockTransport(_ok), rate_limits=None) as client:
            outcomes = client.messages.send_many(_items(20), concurrency=10, on_stop=record)
            first = next(outcomes)
            record(first)
            outcomes.close()  # raised sqlite3.ProgrammingError
        (count,) = database.execute("SELECT count(*) FROM outcome").fetchone()
        assert count >= 2  # the consumed outcome plus those on_stop got
    finally:
        database.close()


class _InterruptingPolicy(asyncio.DefaultEventLoopPolicy):
    """Ctrl-C lands while the first call waits for the client's loop thread to start."""

    armed = True

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        if _InterruptingPolicy.armed and threading.current_thread().name == "telnyx_msg-client":
            _InterruptingPolicy.armed = False
            _thread.interrupt_main()
            time.sleep(0.3)  # the main thread is in Client's start-up wait meanwhile
        return super().new_event_loop()


def test_ctrl_c_while_the_loop_thread_starts_does_not_leak_a_loop_thread() -> None:
    """Ctrl-C during a Client's first call (while it waits for its new loop thread: the first
    anyio.run can take 100 ms) left that thread and its loop running for the life of the
    process: the next call started a second loop thread, and close() stopped only that one."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main targets the main thread")
    before = len(_portal_threads())
    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_InterruptingPolicy())
    try:
        client = telnyx_msg.Client("k", transport=MockTransport(_ok), rate_limits=None)
        with pytest.raises(KeyboardInterrupt):
            client.messages.send(from_=SENDER, to="+18445550001", text="x")
    finally:
        asyncio.set_event_loop_policy(old)
    assert client.messages.send(from_=SENDER, to="+18445550001", text="x").id
    client.close()
    for _ in range(50):
        if len(_portal_threads()) == before:
            break
        time.sleep(0.02)
    assert len(_portal_threads()) == before, "a loop thread outlived close()"


def test_a_second_ctrl_c_while_the_stop_runs_still_raises_keyboard_interrupt() -> None:
    """Guard for the fix above: Ctrl-C twice (the second while the cancelled run is still
    stopping) raises KeyboardInterrupt, not ``RuntimeError: aclose(): asynchronous generator
    is already running`` from closing the run under the stopping step."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("interrupt_main targets the main thread")
    stuck = _StuckSends(3, stop=0.2, blocking=True)  # the second Ctrl-C lands meanwhile
    stopped: list[telnyx_msg.SendOutcome] = []
    with telnyx_msg.Client("k", transport=MockTransport(stuck), rate_limits=None) as client:
        stuck.interrupt_soon(times=2)
        with pytest.raises(KeyboardInterrupt):
            for _ in client.messages.send_many(_items(3), concurrency=3, on_stop=stopped.append):
                pass
    assert sorted(o.index for o in stopped) == [0, 1, 2]  # reported, if late


def test_close_from_another_thread_says_the_client_closed_the_in_flight_call() -> None:
    """close() from another thread while a send is on the wire: the send fails with
    outcome_unknown=True as docs/errors.md says, but its message blames the server ("connection
    lost: Server disconnected", or "Can not write request body"), sending whoever reads the log
    to look for a Telnyx outage. The facade has the right message (``_closed_during_call``:
    "the client was closed while this call ran"), and ``CLOSE_SETTLE`` means to let running
    calls end first, but ``close()`` closes the transport before it settles."""
    from telnyx_msg.testing import DEFAULT_TOLL_FREE, FakeConfig, Faults, serve_in_thread

    with serve_in_thread(config=FakeConfig(throughput=None)) as fake:
        client = telnyx_msg.Client(fake.api_key, base_url=fake.base_url, rate_limits=None)
        client.messages.retrieve  # noqa: B018 - builds the method; nothing is sent
        fake.configure(faults=Faults(latency=2.0))
        errors: list[BaseException] = []

        def send() -> None:
            try:
                client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="x")
            except telnyx_msg.TelnyxError as exc:
                errors.append(exc)

        worker = threading.Thread(target=send)
        worker.start()
        for _ in range(100):
            if fake.stats.in_flight:
                break
            time.sleep(0.02)
        client.close()
        worker.join(10)
    assert len(errors) == 1
    assert isinstance(errors[0], telnyx_msg.APIConnectionError)
    assert errors[0].outcome_unknown
    assert "closed" in str(errors[0]), str(errors[0])


def _optouts_server() -> Any:

    from tests.conftest import json_response

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page[number]", "1"))
        data = [{"from": "+18005550101", "to": f"+1844555{number:04d}"}]
        return json_response({"data": data, "meta": {"page_number": number, "total_pages": 5}})

    return handler


@pytest.mark.anyio
async def test_closing_a_blocking_page_iterator_after_its_client_closed_is_quiet(
    api_server: Any,
) -> None:
    """Guards against a regression (``ClientClosedError`` no longer suppressed in ``_iterate``'s
    clean-up): a page iterator left half-read, closed (or collected) after its client was closed,
    raised ClientClosedError from ``close()``, or as an "Exception ignored" when collected."""
    import anyio.to_thread

    server = await api_server(_optouts_server())

    def run() -> str:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            pages = client.messaging_optouts.list(page_size=1).pages()
            first = next(pages)
        pages.close()  # after the client closed: nothing left to clean up, no error
        return str(first.items[0].to)

    assert await anyio.to_thread.run_sync(run) == "+18445550001"
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_closing_blocking_send_many_outcomes_stops_the_run_before_returning(
    api_server: Any,
) -> None:
    """Guards against a regression (``_iterate`` no longer acloses the async generator): closing the
    outcomes of a blocking send_many early (a ``break``, then ``close()``) must stop the run before
    it returns: the sends still in flight are reported to on_stop by then. Without the aclose the
    run was stopped only later, whenever the loop got to the collected generator."""
    import anyio.to_thread

    from tests.conftest import json_response, message_json

    release = threading.Event()
    # Both hanging sends must have reached the server before the run is closed: one still
    # opening its connection when stopped is rightly not_sent, not unknown.
    hanging: list[str] = []

    async def first_fast_others_hang(request: web.Request) -> web.Response:
        body = await request.json()
        if not body["to"].endswith("0"):
            hanging.append(body["to"])
            for _ in range(500):  # bounded: 5 s at most
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
        return json_response({"data": message_json(to=[{"phone_number": body["to"]}])})

    server = await api_server(first_fast_others_hang)
    items: list[telnyx_msg.SendMessageItem] = [
        {"from_": "+18005550101", "to": f"+1844555000{n}", "text": f"hi {n}"} for n in range(3)
    ]

    def run() -> tuple[int, list[tuple[int, str]]]:
        stopped: list[Any] = []
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            outcomes = client.messages.send_many(items, concurrency=3, on_stop=stopped.append)
            first = next(outcomes)
            for _ in range(500):  # bounded: 5 s at most
                if len(hanging) == 2:
                    break
                time.sleep(0.01)
            outcomes.close()
            reported = sorted((o.index, o.status) for o in stopped)  # at once, no waiting
            release.set()
        return first.index, reported

    try:
        first, reported = await anyio.to_thread.run_sync(run)
    finally:
        release.set()
    assert first == 0
    assert reported == [(1, "unknown"), (2, "unknown")]


_DISOWN_SCRIPT = r"""
import os, socket, sys
from telnyx_msg import _fork

def devnulls():
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == os.devnull
        except OSError:
            pass
    return n

ours, peer = socket.socketpair()          # "a connection the parent made", and its far end
before = devnulls()

def failing_provider():
    raise RuntimeError("a provider that fails")

_fork.on_fork_disown(failing_provider)    # registered before ours: must not stop ours
_fork.on_fork_disown(lambda: [None, ours])
_fork.in_forked_child(lambda: 1 / 0)      # a callback that fails: must not stop the next
_fork.in_forked_child(lambda: os.write(1, b"child: later callback ran\n"))

pid = os.fork()
if pid == 0:
    # What a child's cleanup may do to an inherited connection (a TLS close_notify, a write):
    # it must land in /dev/null, not in the parent's stream.
    try:
        os.write(ours.fileno(), b"child wrote this")
    except OSError:
        pass
    os.write(1, f"child: extra devnull fds {devnulls() - before}\n".encode())
    os._exit(0)
os.waitpid(pid, 0)
peer.setblocking(False)
try:
    got = peer.recv(100)
except BlockingIOError:
    got = b""
print("parent: received", got or b"nothing", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_after_a_fork_the_childs_copies_of_registered_sockets_go_to_dev_null(
    tmp_path: Any,
) -> None:
    """Guards against a regression (no dup2 / no _disown), F04 (a failing provider stops the
    others), F05 (the /dev/null fd leaks in the child) and F06 (a failing after-fork callback stops
    the others): the _fork contract, exercised directly. The suite's fork tests pass without any
    disowning in this environment (aiohttp's connectors are marked closed separately and redis-py
    does not close the inherited connections there), so nothing else checks it."""
    import subprocess
    import sys

    script = tmp_path / "disown.py"
    script.write_text(_DISOWN_SCRIPT)
    # The package under test (this checkout's), whatever the interpreter has installed.
    root = os.path.dirname(os.path.dirname(os.path.abspath(telnyx_msg.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert sorted(result.stdout.splitlines()) == [
        "child: extra devnull fds 1",
        "child: later callback ran",
        "parent: received b'nothing'",
    ], result.stderr
    assert result.returncode == 0


def _list_and_send_server() -> Any:

    from tests.conftest import json_response, message_json

    async def handler(request: web.Request) -> web.Response:
        if request.path.endswith("/messaging_optouts"):
            number = int(request.query.get("page[number]", "1"))
            data = [{"from": "+18005550101", "to": f"+1844555{number:04d}"}]
            return json_response({"data": data, "meta": {"page_number": number, "total_pages": 3}})
        if request.method == "GET":
            return json_response({"data": message_json(id=request.path.rsplit("/", 1)[-1])})
        body = await request.json()
        return json_response({"data": message_json(to=[{"phone_number": body["to"]}])})

    return handler


@pytest.mark.anyio
async def test_blocking_send_many_whose_input_lists_with_the_same_client(api_server: Any) -> None:
    """Guards against a regression (``_Portal.call`` no longer keeps the count of calls a thread is
    in): a blocking send_many whose input is read with the same client (send to every number a list
    returns) makes calls inside the send_many's own call; the inner call's bookkeeping dropped the
    outer one's, which then raised KeyError."""
    import anyio.to_thread

    server = await api_server(_list_and_send_server())

    def run() -> list[tuple[int, str]]:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            items = (
                telnyx_msg.SendMessageItem(
                    from_="+18005550101", to=optout.from_ or "", text=f"bye {optout.to}"
                )
                for optout in client.messaging_optouts.list(page_size=1)
            )
            outcomes = client.messages.send_many(items, concurrency=2)
            return sorted((o.index, o.status) for o in outcomes)

    assert await anyio.to_thread.run_sync(run) == [(0, "sent"), (1, "sent"), (2, "sent")]


@pytest.mark.anyio
async def test_a_call_cut_off_by_close_raises_apiconnectionerror_not_cancellederror(
    api_server: Any,
) -> None:
    """Guards against a regression (the ``CancelledError`` -> APIConnectionError translation
    dropped): a call still running when ``close()`` from another thread gives up waiting for it
    (after CLOSE_SETTLE, 5 s) is cancelled by the stopping loop; its caller must get the documented
    APIConnectionError(outcome_unknown=True), not a bare CancelledError (a BaseException that slips
    past ``except Exception`` in a worker thread). Takes about 5 s."""
    import anyio.to_thread

    server = await api_server(_list_and_send_server())
    hook_entered = threading.Event()

    async def slow_hook(event: Any) -> None:  # runs on the client's loop, before the attempt
        hook_entered.set()
        await asyncio.sleep(20)  # never finishes on its own within the test

    def run() -> BaseException | None:
        client = telnyx_msg.Client(
            "k", base_url=server.base_url, rate_limits=None, event_hooks={"request": [slow_hook]}
        )
        caught: list[BaseException] = []

        def caller() -> None:
            try:
                client.messages.retrieve("m-1")
            except BaseException as exc:  # what reaches the caller's thread, whatever it is
                caught.append(exc)

        thread = threading.Thread(target=caller)
        thread.start()
        assert hook_entered.wait(5)
        client.close()  # waits CLOSE_SETTLE for the call, then stops the loop under it
        thread.join(10)
        return caught[0] if caught else None

    error = await anyio.to_thread.run_sync(run)
    assert isinstance(error, telnyx_msg.APIConnectionError), repr(error)
    assert error.outcome_unknown is True


@pytest.mark.anyio
async def test_with_raw_response_of_a_raw_resource_is_still_raw(api_server: Any) -> None:
    """Guards against a regression (``RawRunner`` no longer unwraps a raw runner):
    ``with_raw_response`` asked again on a raw resource (e.g. a nested resource reached through a
    raw one) raised AttributeError on the first call instead of staying raw ("raw of raw is still
    raw")."""
    server = await api_server(_list_and_send_server())
    async with telnyx_msg.AsyncClient("k", base_url=server.base_url, rate_limits=None) as client:
        # (Not in the types: ``Raw[Raw[...]]`` has no methods for mypy; at run time it is raw.)
        twice: Any = client.messaging_optouts.with_raw_response.with_raw_response
        raw = await twice.list(page_size=1)
        assert isinstance(raw, telnyx_msg.RawResponse)
        assert raw.status == 200
        assert [o.to async for o in raw.parse()] == ["+18445550001", "+18445550002", "+18445550003"]


@pytest.mark.anyio
async def test_blocking_send_many_yields_each_outcome_without_a_one_second_stall(
    api_server: Any,
) -> None:
    """Guards against a regression (a call no longer posts ``_wake`` to its caller's inbox): the
    thread iterating a blocking send_many noticed each step's end only when its one-second wait for
    input jobs timed out, so every outcome came a second late (10 items: 10 s instead of a fraction
    of one). The bound here is loose (5 s for 10 items)."""
    import time

    import anyio.to_thread

    server = await api_server(_list_and_send_server())
    items: list[telnyx_msg.SendMessageItem] = [
        {"from_": "+18005550101", "to": f"+184455500{n:02d}", "text": "x"} for n in range(10)
    ]

    def run() -> tuple[int, float]:
        with telnyx_msg.Client("k", base_url=server.base_url, rate_limits=None) as client:
            client.messages.retrieve("m-0")  # the loop thread runs
            started = time.monotonic()
            outcomes = client.messages.send_many(items, concurrency=1)
            count = len([o for o in outcomes if o.status == "sent"])
            return count, time.monotonic() - started

    count, elapsed = await anyio.to_thread.run_sync(run)
    assert count == 10
    assert elapsed < 5.0, elapsed


def test_an_on_stop_error_during_ctrl_c_is_not_dropped_silently(caplog: Any) -> None:
    """The bulk guide: on_stop's first error "is then raised from the stop". On Ctrl-C the
    blocking client raises KeyboardInterrupt (right), but drops on_stop's errors without a log
    line or a chained exception: a script believes on_stop recorded every stopped send."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("SIGINT targets the main thread")
    stuck = _StuckSends(3)

    def on_stop(outcome: telnyx_msg.SendOutcome) -> None:
        raise ValueError(f"could not record item {outcome.index}")

    items = _items(3)
    caplog.set_level(logging.ERROR)
    with telnyx_msg.Client("k", transport=MockTransport(stuck), rate_limits=None) as client:
        stuck.interrupt_soon()
        with pytest.raises(KeyboardInterrupt) as info:
            for _ in client.messages.send_many(items, concurrency=3, on_stop=on_stop):
                pass
    chained = isinstance(info.value.__context__, ValueError)
    logged = any("could not record" in repr(r.exc_info) for r in caplog.records if r.exc_info)
    assert chained or logged


def test_blocking_send_many_on_the_limiters_own_loop_ends_instead_of_hanging() -> None:
    """One RateLimits shared by an AsyncClient (its loop owns the limiter) and a blocking
    Client whose ``send_many`` is called from code on that loop (a notebook cell): the
    limiter's loop waits for the call, which waits for the loop. ``messages.send`` gets the
    clear "it is blocked" ConfigurationError after its timeout, and so did each send_many item
    before 516b678; since then the item's limiter wait has no deadline at all and the run
    hangs until something closes the client (here a watchdog, after 12 s)."""
    limits = telnyx_msg.RateLimits()
    result: dict[str, Any] = {}

    async def main(base_url: str, key: str) -> None:
        async with telnyx_msg.AsyncClient(key, base_url=base_url, rate_limits=limits) as owner:
            await owner.messages.send(from_="+18005550101", to="+18445550001", text="Hi")  # owns it
            blocking = telnyx_msg.Client(key, base_url=base_url, rate_limits=limits, timeout=0.5)
            watchdog = threading.Timer(12.0, blocking.close)  # bounds the test, not the SDK
            watchdog.start()
            started = time.monotonic()
            try:
                with blocking:
                    item: telnyx_msg.SendItem = {
                        "from_": "+18005550101",
                        "to": "+18445550002",
                        "text": "Hi",
                    }
                    try:
                        outcomes = list(blocking.messages.send_many([item]))
                        result["errors"] = [o.error for o in outcomes]
                    except telnyx_msg.TelnyxError as exc:
                        result["errors"] = [exc]
            finally:
                watchdog.cancel()
            result["elapsed"] = time.monotonic() - started

    with telnyx_msg.testing.serve_in_thread() as fake:
        asyncio.run(main(fake.base_url, fake.api_key))
        assert [m["to"][0]["phone_number"] for m in fake.messages()] == ["+18445550001"]
    assert result["elapsed"] < 7.5, f"send_many waited {result['elapsed']:.1f} s"
    assert any(isinstance(e, telnyx_msg.ConfigurationError) for e in result["errors"]), result
