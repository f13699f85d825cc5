"""Blocking ``Client``: calls queued behind a busy loop when ``close()`` or Ctrl-C arrives.

Deterministic: the client's loop is held by a plain-function request hook blocking on a
``threading.Event``; the tests wait (bounded) for the state they need (a caller queued on the
loop, a handle posted to it) before they release it. No sleeps decide an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, cast

import pytest
from aiohttp import web

import telnyx_msg
import telnyx_msg._sync
from telnyx_msg._pagination import SyncPager
from telnyx_msg.models import OptOut
from telnyx_msg.testing import DEFAULT_TOLL_FREE, serve_in_thread
from tests.conftest import json_response, serving_in_thread

BOUND = 10.0  # every wait for a state is bounded by this


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _ready(client: telnyx_msg.Client) -> int:
    """Handles posted to the client's loop and not run yet (the loop is held meanwhile)."""
    return len(cast(Any, client._owner._loop)._ready)


def _waiting_in_call(client: telnyx_msg.Client, ident: int) -> bool:
    """Whether thread ``ident`` is blocked in ``_Portal.call``'s wait for its call."""
    if ident not in client._owner._inside:
        return False
    frame = sys._current_frames().get(ident)
    lines, first = inspect.getsourcelines(telnyx_msg._sync._Portal.call)
    wait_line = next(first + n for n, line in enumerate(lines) if "while not (done.acquire" in line)
    return frame is not None and frame.f_code.co_name == "call" and frame.f_lineno == wait_line


class _BusyHook:
    """A plain-function request hook (the docs allow blocking work in one) that holds the
    client's loop thread while a request to ``/messages/busy`` is about to go out, until
    ``release`` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, event: telnyx_msg.RequestEvent) -> None:
        if event.path.endswith("/messages/busy"):
            self.entered.set()
            self.release.wait(BOUND)


def _recipients(fake: Any) -> set[str]:
    return {m["to"][0]["phone_number"] for m in fake.messages()}


def _in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``fn`` in a new thread; its result or exception lands in the returned list."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # what reaches the caller's thread, whatever it is
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


@pytest.fixture
def loop_thread_errors() -> Iterator[list[str]]:
    """What a thread, asyncio or an unraisable hook would print as a traceback meanwhile."""
    seen: list[str] = []
    old_thread, old_unraisable = threading.excepthook, sys.unraisablehook

    def on_thread(args: threading.ExceptHookArgs) -> None:
        seen.append(f"thread {args.thread}: {args.exc_type.__name__}: {args.exc_value}")

    def on_unraisable(args: Any) -> None:
        seen.append(f"unraisable: {args.exc_type.__name__}: {args.exc_value}")

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"log {record.name}: {record.getMessage()}")

    handler = Recorder(logging.ERROR)
    logging.getLogger("asyncio").addHandler(handler)
    logging.getLogger("telnyx_msg").addHandler(handler)
    threading.excepthook, sys.unraisablehook = on_thread, on_unraisable
    try:
        yield seen
    finally:
        threading.excepthook, sys.unraisablehook = old_thread, old_unraisable
        logging.getLogger("asyncio").removeHandler(handler)
        logging.getLogger("telnyx_msg").removeHandler(handler)


# --- 1. close() from another thread while a send waits behind a busy loop -----------------------


def test_a_send_queued_behind_a_busy_loop_when_another_thread_closes_is_not_sent(
    loop_thread_errors: list[str],
) -> None:
    """Thread A's call holds the loop (a blocking request hook); thread B's send is queued on
    the loop behind it; thread C calls ``close()``; then A's hook returns. B gets
    ``ClientClosedError`` saying "not sent" (``outcome_unknown`` False) at once, and the server
    never sees B's message; A ends as a call in flight at close does (an
    ``APIConnectionError``, or its answer if that came first); ``close()`` returns and
    the loop thread ends; nothing is printed from the loop thread."""
    hook = _BusyHook()
    with serve_in_thread() as fake:
        client = telnyx_msg.Client(
            fake.api_key, base_url=fake.base_url, event_hooks={"request": [hook]}
        )
        client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="warm up")
        owner = client._owner

        a, a_box = _in_thread(lambda: client.request("GET", "/messages/busy"))
        assert hook.entered.wait(BOUND)
        b, b_box = _in_thread(
            lambda: client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550002", text="B")
        )
        _until(lambda: b.ident in owner._inside, "B's send queued on the loop")
        posted = _ready(client)
        c, c_box = _in_thread(client.close)
        _until(lambda: _ready(client) > posted, "close()'s first step posted to the loop")
        released = time.monotonic()
        hook.release.set()
        b.join(BOUND)
        b_took = time.monotonic() - released
        a.join(BOUND)
        c.join(BOUND)
        assert not a.is_alive(), "A hung"
        assert not b.is_alive(), "B hung"
        assert not c.is_alive(), "close() hung"
        assert _recipients(fake) == {"+18445550001"}, "B's message reached the server"
    (b_result,) = b_box
    assert isinstance(b_result, telnyx_msg.ClientClosedError), repr(b_result)
    assert "not sent" in str(b_result)
    assert b_result.outcome_unknown is False
    assert b_took < 2.0, f"B waited {b_took:.1f} s"
    (a_result,) = a_box
    # A's request was on the wire (or about to be) at the close: it was answered (the fake has
    # no such message: NotFoundError) or cut off (an APIConnectionError), whichever came first.
    assert isinstance(a_result, (telnyx_msg.APIConnectionError, telnyx_msg.NotFoundError)), repr(
        a_result
    )
    assert c_box == [None]
    assert owner.stopped
    assert not owner._thread_handle.is_alive()  # the loop thread ended
    assert loop_thread_errors == []


# --- 2. Ctrl-C while the send waits behind a busy loop ------------------------------------------


def test_ctrl_c_on_a_send_queued_behind_a_busy_loop_is_prompt_and_sends_nothing(
    loop_thread_errors: list[str],
) -> None:
    """The main thread's send is queued behind another thread's call that holds the loop (a
    blocking request hook); Ctrl-C (a real SIGINT) arrives; then the hook returns. The
    KeyboardInterrupt reaches the caller as soon as the loop is free (it waited the whole 5 s
    close bound when the cancelled call had never started), the server never sees the send,
    and the client stays usable."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the SIGINT targets the main thread")
    main = threading.get_ident()
    hook = _BusyHook()
    released: list[float] = []
    with serve_in_thread() as fake:
        client = telnyx_msg.Client(
            fake.api_key, base_url=fake.base_url, event_hooks={"request": [hook]}
        )
        with client:
            client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="warm up")
            a, a_box = _in_thread(lambda: client.request("GET", "/messages/busy"))
            assert hook.entered.wait(BOUND)

            def interrupt_then_free_the_loop() -> None:
                _until(lambda: _waiting_in_call(client, main), "the send waiting")
                posted = _ready(client)  # the send's start
                signal.pthread_kill(main, signal.SIGINT)
                _until(lambda: _ready(client) > posted, "the cancel posted to the loop")
                released.append(time.monotonic())
                hook.release.set()

            helper = threading.Thread(target=interrupt_then_free_the_loop, daemon=True)
            helper.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550002", text="x")
                raised = time.monotonic()
            finally:
                hook.release.set()  # never leave the loop held, whatever failed
                helper.join(BOUND)
                a.join(BOUND)
            assert released, "the helper did not get as far as freeing the loop"
            waited = raised - released[0]
            assert waited < 2.0, f"KeyboardInterrupt came {waited:.1f} s after the loop freed"
            assert isinstance(a_box[0], telnyx_msg.NotFoundError), repr(a_box)
            assert client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550003", text="after").id
            assert _recipients(fake) == {"+18445550001", "+18445550003"}
    assert loop_thread_errors == []


# --- 3. send_many while another thread closes the client ---------------------------------------


def test_send_many_closed_from_another_thread_reports_each_item_once_truthfully(
    loop_thread_errors: list[str],
) -> None:
    """A blocking ``send_many`` runs; one item's request hook holds the loop; another thread
    calls ``close()``; the hook returns. The run ends with ``ClientClosedError`` (no hang), every
    item pulled from the input is reported exactly once (yielded or to ``on_stop``), and each
    status is true: "sent" only for messages the server has, "not_sent" only for ones it never
    got."""
    hold = threading.Event()
    entered = threading.Event()

    def hook(event: telnyx_msg.RequestEvent) -> None:
        if event.method == "POST" and not entered.is_set() and yielded:
            entered.set()
            hold.wait(BOUND)

    yielded: list[telnyx_msg.SendOutcome] = []
    stops: list[telnyx_msg.SendOutcome] = []
    pulled: list[int] = []

    def items() -> Iterator[telnyx_msg.SendItem]:
        for n in range(12):
            pulled.append(n)
            yield {"from_": DEFAULT_TOLL_FREE, "to": f"+1844555{n:04d}", "text": "x"}

    with serve_in_thread() as fake:
        client = telnyx_msg.Client(
            fake.api_key, base_url=fake.base_url, event_hooks={"request": [hook]}
        )
        outcomes = client.messages.send_many(items(), concurrency=3, on_stop=stops.append)
        closer: list[threading.Thread] = []

        def close_once_held() -> None:
            assert entered.wait(BOUND)
            posted = _ready(client)
            thread, _ = _in_thread(client.close)
            closer.append(thread)
            _until(lambda: _ready(client) > posted, "close()'s first step posted")
            hold.set()

        helper = threading.Thread(target=close_once_held, daemon=True)
        helper.start()
        try:
            with pytest.raises(telnyx_msg.ClientClosedError):  # noqa: PT012 - the run
                for outcome in outcomes:
                    yielded.append(outcome)
        finally:
            hold.set()
            helper.join(BOUND)
            for thread in closer:
                thread.join(BOUND)
        assert closer
        assert not closer[0].is_alive(), "close() hung"
        received = _recipients(fake)
    reported = [*yielded, *stops]
    indexes = sorted(o.index for o in reported)
    assert indexes == sorted(set(indexes)), f"an item was reported twice: {indexes}"
    assert indexes == pulled, (indexes, pulled)
    for outcome in reported:
        to = f"+1844555{outcome.index:04d}"
        if outcome.status == "sent":
            assert to in received, f"item {outcome.index} reported sent, never received"
        elif outcome.status == "not_sent":
            assert to not in received, f"item {outcome.index} reported not_sent, was received"
        else:
            assert outcome.status == "unknown", outcome
    assert loop_thread_errors == []


# --- 4. a raw list's pager while another thread closes the client -------------------------------


@contextlib.contextmanager
def _paged_server(pages: int) -> Iterator[tuple[str, threading.Event, threading.Event]]:
    """An opt-outs list of ``pages`` one-item pages on its own loop thread. Page 2's request is
    held on the server (on the wire) until the first event is set; the second is set once it
    arrived."""
    release = threading.Event()
    arrived = threading.Event()

    async def handler(request: web.Request) -> web.Response:
        number = int(request.query.get("page[number]", "1"))
        if number == 2:
            arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, BOUND)
        data = [{"from": "+18005550101", "to": f"+1844555{number:04d}"}]
        return json_response({"data": data, "meta": {"page_number": number, "total_pages": pages}})

    with serving_in_thread(handler) as url:
        try:
            yield url, release, arrived
        finally:
            release.set()  # before the server's cleanup, which waits for a held page


def test_close_while_a_raw_lists_next_page_is_in_flight_raises_client_closed(
    loop_thread_errors: list[str],
) -> None:
    """``raw = client.messaging_optouts.with_raw_response.list()``, then iterating
    ``raw.parse()``: while page 2 is on the wire, another thread calls ``close()``. The loop
    raises ``ClientClosedError`` (no hang, nothing printed from the loop thread), ``close()``
    returns, and iterating ``raw.parse()`` again after the close yields the first page's item
    and then raises ``ClientClosedError``."""
    with _paged_server(pages=3) as (url, release, arrived):
        client = telnyx_msg.Client("k", base_url=url, rate_limits=None)
        raw = client.messaging_optouts.with_raw_response.list()
        seen: list[str | None] = []
        closer: list[threading.Thread] = []

        def close_when_page_2_is_on_the_wire() -> None:
            assert arrived.wait(BOUND)
            thread, _ = _in_thread(client.close)
            closer.append(thread)
            thread.join(BOUND)
            release.set()  # the server answers page 2 only after the close

        helper = threading.Thread(target=close_when_page_2_is_on_the_wire, daemon=True)
        helper.start()
        try:
            with pytest.raises(telnyx_msg.ClientClosedError):  # noqa: PT012 - the iteration
                for optout in raw.parse():
                    seen.append(optout.to)
        finally:
            release.set()
            helper.join(BOUND)
        assert closer
        assert not closer[0].is_alive(), "close() hung"
        assert seen == ["+18445550001"]
        assert not client._owner._thread_handle.is_alive()  # the loop thread ended

        again: list[str | None] = []
        with pytest.raises(telnyx_msg.ClientClosedError):  # noqa: PT012 - the iteration
            for optout in raw.parse():
                again.append(optout.to)
        assert again == ["+18445550001"]
    assert loop_thread_errors == []


def test_a_raw_lists_first_page_stays_readable_while_another_thread_closes(
    loop_thread_errors: list[str],
) -> None:
    """The first page of a raw list "came with the call, so it stays readable once the client
    is closed". While another thread's ``close()`` is still stopping the loop thread (here: a
    task of the loop that takes its time to finish when cancelled at shutdown), reading
    ``raw.parse()`` must yield that first page too, then raise ``ClientClosedError``."""
    stopping = threading.Event()
    go_on = threading.Event()

    async def slow_to_cancel() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopping.set()
            go_on.wait(BOUND)  # holds the loop thread's shutdown
            raise

    with _paged_server(pages=3) as (url, release, _):
        release.set()
        client = telnyx_msg.Client("k", base_url=url, rate_limits=None)
        raw = client.messaging_optouts.with_raw_response.list()
        loop = client._owner._loop
        background: list[asyncio.Task[None]] = []
        # A task of the loop that is not one of the client's calls (as a library's background
        # task on a shared loop would be): it is cancelled as the loop thread stops.
        client._owner.portal.call(lambda: background.append(loop.create_task(slow_to_cancel())))
        closer, close_box = _in_thread(client.close)
        try:
            assert stopping.wait(BOUND)
            assert client._owner.stopped  # close() is stopping the loop thread
            assert client._owner._thread_handle.is_alive()  # its loop thread still runs
            during: list[str | None] = []
            with pytest.raises(telnyx_msg.ClientClosedError):  # noqa: PT012 - the iteration
                for optout in raw.parse():
                    during.append(optout.to)
        finally:
            go_on.set()
            closer.join(BOUND)
        assert close_box == [None]
        assert during == ["+18445550001"], f"the first page was not readable: {during}"
    assert loop_thread_errors == []


def _read(
    raw: telnyx_msg.RawResponse[SyncPager[OptOut]],
) -> tuple[list[str | None], BaseException | None]:
    """The items a raw list's pager yields, and what it raised."""
    items: list[str | None] = []
    try:
        for optout in raw.parse():
            items.append(optout.to)
    except BaseException as exc:  # what reaches the caller, whatever it is
        return items, exc
    return items, None


def test_ctrl_c_in_close_behind_a_busy_loop_leaves_raw_lists_raising_client_closed() -> None:
    """The loop is held by another thread's call (a blocking request hook); the main thread's
    ``close()`` waits behind it and gets Ctrl-C, so the client is stopped while its
    ``aclose`` has not run yet. Meanwhile a third thread reads a raw list fetched before: it
    yields the first page, then must raise ``ClientClosedError`` (as every other call on the
    stopped client does), not ``RuntimeError: no running event loop`` from the next page's
    request being started in the reader's thread."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the SIGINT targets the main thread")
    main = threading.get_ident()
    hook = _BusyHook()
    read: list[tuple[list[str | None], BaseException | None]] = []
    with _paged_server(pages=3) as (url, release, _):
        release.set()
        client = telnyx_msg.Client(
            "k", base_url=url, rate_limits=None, event_hooks={"request": [hook]}
        )
        raw = client.messaging_optouts.with_raw_response.list()
        owner = client._owner
        busy, _ = _in_thread(lambda: client.request("GET", "/messages/busy"))
        assert hook.entered.wait(BOUND)
        posted = _ready(client)

        def interrupt_close_then_read() -> None:
            _until(lambda: _ready(client) > posted, "close()'s aclose posted to the loop")
            signal.pthread_kill(main, signal.SIGINT)
            _until(lambda: owner.stopped, "close() stopping the client after Ctrl-C")
            read.append(_read(raw))
            hook.release.set()

        helper = threading.Thread(target=interrupt_close_then_read, daemon=True)
        helper.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                client.close()
        finally:
            hook.release.set()
            helper.join(BOUND)
            busy.join(BOUND)
    ((items, error),) = read
    assert items == ["+18445550001"]
    assert isinstance(error, telnyx_msg.ClientClosedError), repr(error)


PAGES = 3


async def _three_optout_pages(request: web.Request) -> web.Response:
    """``GET /messaging_optouts``: ``PAGES`` pages of one opt-out each."""
    number = int(request.query.get("page[number]", "1"))
    data = [{"from": "+18005550101", "to": f"+1844555{number:04d}"}]
    meta = {"page_number": number, "total_pages": PAGES, "total_results": PAGES}
    return json_response({"data": data, "meta": meta})


@pytest.fixture
def three_pages_url() -> Iterator[str]:
    with serving_in_thread(_three_optout_pages) as base_url:
        yield base_url


def _walk(items: Iterator[str | None], on_first: Callable[[], None]) -> list[str | None]:
    seen: list[str | None] = []
    for to in items:
        seen.append(to)
        if len(seen) == 1:
            on_first()
    return seen


def test_raw_list_walk_cut_by_close_raises_instead_of_ending_short(three_pages_url: str) -> None:
    """Iterating ``raw.parse()`` (a raw list), the client is closed after the first page's
    item: the next page must raise ``ClientClosedError``. The walk instead ended normally with
    one of the three opt-outs, so the caller takes a truncated listing for the whole one."""
    client = telnyx_msg.Client("k", base_url=three_pages_url, rate_limits=None)
    raw = client.messaging_optouts.with_raw_response.list()
    with pytest.raises(telnyx_msg.ClientClosedError):
        _walk((o.to for o in raw.parse()), client.close)


def test_raw_list_pages_cut_by_close_in_another_thread_raise(three_pages_url: str) -> None:
    """The same through ``.pages()`` with the close in another thread (an app's shutdown
    while a worker thread pages through the opt-outs): after page 1 the walk must raise
    ``ClientClosedError``, as the plain ``list().pages()`` walk does (checked first)."""
    outcomes: dict[str, BaseException | list[int]] = {}
    for kind in ("plain", "raw"):
        client = telnyx_msg.Client("k", base_url=three_pages_url, rate_limits=None)
        if kind == "raw":
            pages = client.messaging_optouts.with_raw_response.list().parse().pages()
        else:
            pages = client.messaging_optouts.list().pages()
        numbers: list[int] = []

        def close_in_other_thread(client: telnyx_msg.Client = client) -> None:
            closer = threading.Thread(target=client.close)
            closer.start()
            closer.join(BOUND)
            assert not closer.is_alive(), "close() hung"

        try:
            for page in pages:
                numbers.append(page.page_number)
                if len(numbers) == 1:
                    close_in_other_thread()
        except telnyx_msg.TelnyxError as exc:
            outcomes[kind] = exc
        else:
            outcomes[kind] = numbers
    assert isinstance(outcomes["plain"], telnyx_msg.ClientClosedError), outcomes
    assert isinstance(outcomes["raw"], telnyx_msg.ClientClosedError), (
        f"raw pager ended quietly after pages {outcomes['raw']} of {PAGES}"
    )


ROUNDS = 20


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "telnyx_msg-client"]


def test_every_concurrent_close_returns_only_once_the_client_is_closed() -> None:
    """Two threads call ``close()`` together (20 rounds): each must return only once the
    client's loop thread has stopped. The second one returned at once while the first was
    still closing, with the ``telnyx_msg-client`` thread still running."""
    early: list[str] = []
    with serve_in_thread() as fake:
        for round_ in range(ROUNDS):
            before = set(_loop_threads())  # another test's, if any: not this client's
            client = telnyx_msg.Client(fake.api_key, base_url=fake.base_url)
            client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="hi")
            barrier = threading.Barrier(2)

            def closer(
                client: telnyx_msg.Client = client,
                round_: int = round_,
                barrier: threading.Barrier = barrier,
                before: set[threading.Thread] = before,
            ) -> None:
                barrier.wait(BOUND)
                client.close()
                alive = [t for t in _loop_threads() if t not in before]
                if alive:
                    early.append(f"round {round_}: close() returned, {alive} still running")

            threads = [threading.Thread(target=closer) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(BOUND)
            assert not any(t.is_alive() for t in threads), "close() hung"
            deadline = time.monotonic() + BOUND
            while _loop_threads() and time.monotonic() < deadline:
                time.sleep(0.01)
    assert early == []


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs SIGALRM / setitimer")
def test_close_in_a_signal_handler_during_close_returns_at_once() -> None:
    """The main thread is in ``close()`` (held by a call from another thread: a plain request
    hook keeps the loop busy for a second) when SIGALRM arrives; the handler calls
    ``close()`` again. The handler's ``close()`` must return at once, and the first
    ``close()`` must finish as soon as the loop is free (about 1 s). Instead the handler's
    ``close()`` waits for the ``close()`` it interrupted: it sits out its whole 15 s bound,
    and the shutdown takes 15 s instead of 1 s."""
    release = threading.Event()
    entered = threading.Event()

    def hold_loop(event: telnyx_msg.RequestEvent) -> None:
        # A plain-function hook (the docs allow blocking work in one): the loop thread is
        # busy with this request until ``release``.
        if not release.is_set():
            entered.set()
            release.wait(BOUND)

    handler_took: list[float] = []

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        started = time.monotonic()
        client.close()
        handler_took.append(time.monotonic() - started)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        with serve_in_thread() as fake:
            client = telnyx_msg.Client(
                fake.api_key, base_url=fake.base_url, event_hooks={"request": [hold_loop]}
            )
            errors: list[BaseException] = []

            def send() -> None:
                try:
                    client.messages.send(from_=DEFAULT_TOLL_FREE, to="+18445550001", text="hi")
                except telnyx_msg.TelnyxError as exc:
                    errors.append(exc)

            sender = threading.Thread(target=send)
            sender.start()
            assert entered.wait(BOUND), "the request never reached the hook"
            freer = threading.Timer(1.0, release.set)
            freer.start()
            signal.setitimer(signal.ITIMER_REAL, 0.3)  # arrives while close() below runs
            started = time.monotonic()
            client.close()
            close_took = time.monotonic() - started
            signal.setitimer(signal.ITIMER_REAL, 0)
            freer.join(BOUND)
            sender.join(BOUND)
            assert not sender.is_alive()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        release.set()
    assert len(handler_took) == 1, "the signal did not arrive during close()"
    assert handler_took[0] < 2.0, (
        f"close() in the signal handler took {handler_took[0]:.1f} s (waiting for the close() "
        "it interrupted, in its own thread)"
    )
    assert close_took < 5.0, f"the interrupted close() took {close_took:.1f} s"
