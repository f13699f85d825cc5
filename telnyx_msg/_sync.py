"""``Client``: the blocking facade. One event loop thread per client, running the async core.

Nothing here re-implements an operation: each method validates its arguments in the caller's
thread (so bad input fails before any hop), then runs the :class:`AsyncClient`'s coroutine on
the client's own loop through an anyio ``BlockingPortal``. Because that loop lives in its own
thread, the facade also works where a loop is already running (Jupyter, async frameworks).
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import os
import queue
import sys
import threading
import time
import warnings
import weakref
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
from anyio.from_thread import BlockingPortal

from telnyx_msg._client import DEFAULT, AsyncClient, Core, Limiter, make_request
from telnyx_msg._config import (
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POOL_SIZE,
    RequestOptions,
    Timeout,
)
from telnyx_msg._events import Hook
from telnyx_msg._fork import in_forked_child
from telnyx_msg._outcome import SendMethod, SendOutcome
from telnyx_msg._pagination import AsyncPager, SyncPager, _iterate
from telnyx_msg._raw import RawResponse
from telnyx_msg._resources import ResourceTree, SyncMode
from telnyx_msg._retry import Backoff
from telnyx_msg._spec import Endpoint, describe, describe_raw
from telnyx_msg._transport import Transport, quiet_inherited
from telnyx_msg.errors import (
    APIConnectionError,
    ClientClosedError,
    ConfigurationError,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Client", "SyncPager"]

_log = logging.getLogger("telnyx_msg")

T = TypeVar("T")

#: Seconds ``close()`` from another thread gives the calls running then to end before it
#: stops the loop (see ``_Portal.settle``).
CLOSE_SETTLE = 5.0


class _Portal:
    """Owns the loop thread (an anyio blocking portal); stopped by ``close()`` or, as a last
    resort, at collection. ``call`` runs the client's coroutines on that loop.

    The thread starts with the first call, not before: a client created at import in a process
    that forks before using it (``gunicorn --preload``, Celery's prefork pool) starts its
    thread in each child that uses it.
    """

    def __init__(self) -> None:
        self.stopped = False
        self.started = False
        self.closing = False
        self.pid = os.getpid()
        self._starting = threading.Lock()
        self._calls: set[asyncio.Task[None]] = set()  # running on the loop (its thread only)
        self._inside: dict[int, int] = {}  # thread id -> how many calls it is waiting in
        #: A thread that called ``close()`` while inside a call (its send_many input, a signal
        #: handler): the loop stops when that call ends.
        self.close_after: int | None = None
        #: Set once ``stop()`` finished (the loop thread ended): what a ``close()`` racing the
        #: one that does the work waits for.
        self.closed = threading.Event()
        #: The thread whose ``close()`` does the work: a ``close()`` from a signal handler that
        #: interrupted it runs on top of it, so must not wait for it.
        self.closer: int | None = None
        _PORTALS.add(self)

    def _start(self) -> None:
        with self._starting:
            if self.started:
                return
            if self.stopped or self.closing:
                raise ClientClosedError("this client is closed; create a new one")
            self._spawn()
            self.started = True

    def begin_close(self) -> bool:
        """From now on the loop thread never starts; True if it already runs.

        Decided under the start lock: a call racing ``close()`` either started the thread
        first (so ``close()`` closes the session it may open) or finds the client closed.
        """
        with self._starting:
            self.closing = True
            return self.started

    def _spawn(self) -> None:
        # Our own thread rather than anyio's start_blocking_portal: that is a generator context
        # manager, and a forked child collecting it at exit would wait forever for the parent's
        # loop (its cleanup calls into the portal).
        started: concurrent.futures.Future[BlockingPortal] = concurrent.futures.Future()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                started.set_result(portal)
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(serve)
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        thread = threading.Thread(target=run, name="telnyx_msg-client", daemon=True)
        try:
            thread.start()
            portal = started.result()
            loop, ident = portal.call(_loop_and_thread)
        except BaseException:
            # Interrupted (Ctrl-C) while the thread starts: stop it, or it runs for the life
            # of the process while the next call starts another one.
            if thread.ident is not None:
                threading.Thread(target=_stop_started, args=(started, thread), daemon=True).start()
            raise
        self._thread_handle = thread
        self.portal = portal
        self.pid = os.getpid()
        self._loop, self._thread = loop, ident

    @property
    def forked(self) -> bool:
        """True in a child process forked after this portal started: its loop thread (and
        the connections it owns) stayed in the parent, so nothing here may wait for it."""
        return self.started and os.getpid() != self.pid

    def refuse_own_thread(self) -> None:
        """A call from the loop thread itself would wait for that thread forever."""
        if self.started and threading.get_ident() == self._thread:
            raise RuntimeError(
                "the blocking Client was called from its own event loop thread (e.g. in an "
                "event hook); use the AsyncClient (client.async_client) there"
            )

    def _refuse_stopped(self) -> None:
        if self.stopped:  # a call posted now would be cut off by the stopping loop
            raise ClientClosedError("this client is closed; create a new one")

    async def settle(self, within: float) -> None:
        """Wait up to ``within`` s for the calls running now to end: ``close()`` from another
        thread lets them finish as the closed client has them end (a send_many step reports
        its items, a pager step raises ``ClientClosedError``) rather than cut them off with
        the loop."""
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=within)

    def inside_call(self) -> bool:
        """Whether this thread is waiting in a call (running its send_many input, or a
        signal handler): a ``close()`` from it must not wait for that call."""
        return threading.get_ident() in self._inside

    def finish_close(self) -> None:
        """Let the running calls end (``settle``), then stop the loop thread."""
        try:
            with contextlib.suppress(Exception):
                self.portal.call(self.settle, CLOSE_SETTLE)
        finally:
            self.stop()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            try:
                if self.started and not self.forked:  # a forked child must not wait for the parent
                    with contextlib.suppress(RuntimeError):  # the portal already stopped
                        self.portal.call(self.portal.stop)
                    self._thread_handle.join()
            finally:
                self.closed.set()

    def wait_closed(self) -> None:
        """For a ``close()`` that found another one under way: wait (bounded) until that one
        stopped the loop thread, unless this thread is one the closing waits for."""
        if self.forked or self.inside_call() or threading.get_ident() == self.closer:
            return
        if self.started and threading.get_ident() == self._thread:
            return
        self.closed.wait(2 * CLOSE_SETTLE + 5.0)

    def _await_cancelled(
        self,
        done: _thread.LockType,
        inbox: Inbox | None,
        loop: asyncio.AbstractEventLoop,
        outcome: list[Any],
    ) -> None:
        """Wait (up to ``CLOSE_SETTLE`` s) for a call just cancelled to end."""
        deadline = time.monotonic() + CLOSE_SETTLE
        while time.monotonic() < deadline:
            if outcome:  # it had ended (the interrupt came as its wait took ``done``)
                return
            if loop.is_closed() or (self.stopped and not loop.is_running()):
                return
            if done.acquire(timeout=0.1) if inbox is None else _serve(inbox, done):
                done.release()  # (the caller's bookkeeping does not read it again)
                return

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, inbox: Inbox | None = None) -> T:
        """Run ``fn(*args)`` on the loop thread and wait for its result (or exception).

        What ``BlockingPortal.call`` does, with one task and one lock per call instead of a
        task-group hop and a ``concurrent.futures.Future``: about 100 µs less CPU per call.
        A caller interrupted while waiting (Ctrl-C) cancels the call. With an ``inbox``, the
        caller's thread runs the jobs the call posts there while it waits (see
        :class:`_PulledInCaller`).
        """
        self._refuse_stopped()
        if not self.started:
            self._start()
        elif self.forked:
            raise ConfigurationError(
                "this telnyx_msg.Client was used before the process forked; its event loop "
                "thread is in the parent process. Create the Client in each process after the "
                "fork, or at least use it there first (gunicorn --preload: create it at import "
                "and use it only in requests, or in a post_fork hook; multiprocessing: in the "
                "worker function)"
            )
        self.refuse_own_thread()
        done = _thread.allocate_lock()
        done.acquire()
        outcome: list[Any] = []
        tasks: list[asyncio.Task[None]] = []
        ran: list[bool] = []

        box = _CallerBox(inbox) if inbox is not None else None

        async def run() -> None:
            ran.append(True)
            if box is not None:
                _CALLER.set(box)  # this task's context: what it calls can post to the caller
            try:
                outcome.append((True, await fn(*args)))
            except BaseException as exc:  # handed to the caller's thread, raised there
                outcome.append((False, exc))
            finally:
                done.release()
                if inbox is not None:
                    inbox.put(_wake)

        loop = self._loop
        calls = self._calls

        def start() -> None:
            task = loop.create_task(run())
            tasks.append(task)
            calls.add(task)
            task.add_done_callback(calls.discard)
            task.add_done_callback(unstarted)

        def unstarted(task: asyncio.Task[None]) -> None:
            # Cancelled before its coroutine ran (Ctrl-C while the loop was busy, the loop
            # stopping): run()'s finally never ran, so the caller is told here.
            if not ran:
                done.release()
                if inbox is not None:
                    inbox.put(_wake)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop closed
            raise ClientClosedError("this client is closed; create a new one") from None
        me = threading.get_ident()
        inside = self._inside
        inside[me] = inside.get(me, 0) + 1
        try:
            try:
                while not (done.acquire(timeout=1.0) if inbox is None else _serve(inbox, done)):
                    if loop.is_closed() or (self.stopped and not loop.is_running()):
                        if not tasks:  # queued as the loop stopped: it never ran
                            raise ClientClosedError("not sent: the client was closed")
                        raise _closed_during_call()
            except BaseException:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(lambda: [task.cancel() for task in tasks])
                # Let the cancelled call end before the interrupt reaches the caller: a
                # send_many step stops its sends and reports them to on_stop as it ends.
                # Bounded; a second interrupt ends the wait.
                self._await_cancelled(done, inbox, loop, outcome)
                raise
            if not outcome:  # cancelled before it ran: nothing was sent
                raise ClientClosedError("not sent: the client was closed")
            ok, value = outcome.pop()
            if ok:
                return cast(T, value)
            if isinstance(value, asyncio.CancelledError):  # the loop stopped under the call
                raise _closed_during_call() from None
            try:
                raise value
            finally:
                del value  # no reference cycle through the traceback
        finally:
            if box is not None:
                box.close_and_run()  # what the call posted for this thread as it ended
            depth = inside.pop(me) - 1
            if depth:
                inside[me] = depth
            elif self.close_after == me:  # close() ran inside this call: finish it now
                self.close_after = None
                self.finish_close()


#: Jobs a call posts for its caller's thread to run.
Inbox = queue.SimpleQueue[Callable[[], None]]


class _CallerBox:
    """The inbox of a caller waiting in ``_Portal.call``, while it waits: code running in
    that call's task posts jobs for the caller's thread through it (``post``); once the caller
    stopped waiting, ``post`` refuses and the job runs where it is."""

    __slots__ = ("_inbox", "_lock", "_open")

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._lock = threading.Lock()
        self._open = True

    def post(self, job: Callable[[], None]) -> bool:
        with self._lock:
            if self._open:
                self._inbox.put(job)
            return self._open

    def close_and_run(self) -> None:
        """In the caller's thread as its call ends: no more posts; run what is left."""
        with self._lock:
            self._open = False
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                return
            job()


#: The box of the caller waiting for the current task (set in ``_Portal.call``'s task).
_CALLER: contextvars.ContextVar[_CallerBox | None] = contextvars.ContextVar(
    "telnyx_msg_caller", default=None
)


def _serve(inbox: Inbox, done: _thread.LockType) -> bool:
    """Run the next job posted for this thread (waiting up to a second for one); True once
    the call is done."""
    with contextlib.suppress(queue.Empty):
        inbox.get(timeout=1.0)()
    return done.acquire(blocking=False)


def _wake() -> None:
    """Posted when a call ends, so its caller stops waiting for jobs (a no-op when run by a
    later call sharing the inbox)."""


class _PulledInCaller:
    """An async iterator over a plain iterator that is advanced in the caller's thread.

    The blocking ``send_many`` hands its input to the async engine through this: each item is
    pulled by the thread iterating the outcomes (which waits in ``_Portal.call`` meanwhile), so
    an input tied to its thread (a ``sqlite3`` cursor) works, and a slow input never blocks the
    client's loop, which other threads' calls share.
    """

    #: Tells the engine to await each read in its step (this thread cannot take an outcome
    #: while it reads, so reading alongside the sends would only let a step end mid-read).
    read_in_caller = True

    def __init__(
        self, source: Iterable[Any], inbox: Inbox, orphan: Callable[[int, Any], None]
    ) -> None:
        self._source = source
        self._items: Iterator[Any] | None = None
        self._inbox = inbox
        self._orphan = orphan
        self._pulled = 0

    def __aiter__(self) -> _PulledInCaller:
        return self

    def _deliver(
        self, future: asyncio.Future[tuple[bool, Any, int]], result: tuple[bool, Any, int]
    ) -> None:
        """Hand a pulled item to the engine (on the loop); if the engine stopped waiting (the
        client closed meanwhile), it is reported here, not dropped."""
        if not future.done():
            future.set_result(result)
        elif result[0]:
            self._orphan(result[2], result[1])

    async def __anext__(self) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, Any, int]] = loop.create_future()

        def pull() -> None:  # in the caller's thread
            if future.done():  # nobody waits for it any more (cancelled): pull nothing
                return
            index = self._pulled
            try:
                if self._items is None:
                    self._items = iter(self._source)
                result: tuple[bool, Any, int] = (True, next(self._items), index)
                self._pulled += 1
            except StopIteration:
                result = (False, None, index)
            except Exception as exc:  # the input failed: the engine reports it as such
                result = (False, exc, index)
            try:
                loop.call_soon_threadsafe(self._deliver, future, result)
            except RuntimeError:  # the client closed (its loop too) while the input was read
                if result[0]:  # pulled, so owed an outcome, which the engine cannot give now
                    self._orphan(index, result[1])

        self._inbox.put(pull)
        try:
            more, value, index = await future
        except asyncio.CancelledError:
            # Delivered in the very loop turn this read was cancelled in: still owed.
            if future.done() and not future.cancelled() and future.result()[0]:
                _, item, index = future.result()
                self._orphan(index, item)
            raise
        if more:
            return value
        if value is not None:
            raise value
        raise StopAsyncIteration


_PORTALS: weakref.WeakSet[_Portal] = weakref.WeakSet()


def _quiet_inherited_loops() -> None:
    """In a forked child: the parent's client loops never run here, and what they own (an open
    aiohttp session) is collected at exit. Their reports of it ("Unclosed client session") are
    about the parent's resources, so they are not printed in the child."""
    inherited: set[asyncio.AbstractEventLoop] = set()
    for portal in list(_PORTALS):
        if portal.started:
            portal._loop.set_exception_handler(lambda loop, context: None)
            inherited.add(portal._loop)
        else:  # another thread may have held the lock at the fork: it never releases it here
            portal._starting = threading.Lock()
            portal.pid = os.getpid()
    quiet_inherited(inherited)


in_forked_child(_quiet_inherited_loops)


def _closed_during_call() -> APIConnectionError:
    # Not ClientClosedError: that one promises nothing was written.
    return APIConnectionError(
        "the client was closed while this call ran; it may have reached Telnyx",
        outcome_unknown=True,
    )


def _on_stop_in_caller(
    on_stop: Callable[[SendOutcome], None], errors: list[Exception]
) -> Callable[[SendOutcome], None]:
    """``on_stop`` run in the thread iterating the outcomes (as the input is read there), not
    in the client's loop thread, whenever that thread is waiting for the run; its errors are
    kept for ``_raising``. When nobody waits (a stop that could not wait), it runs where the
    engine calls it, as before."""

    def in_caller(outcome: SendOutcome) -> None:
        try:
            on_stop(outcome)
        except Exception as exc:
            errors.append(exc)

    def posted(outcome: SendOutcome) -> None:
        box = _CALLER.get()
        if box is None:
            on_stop(outcome)
        elif not box.post(functools.partial(in_caller, outcome)):
            # The caller stopped waiting (a second Ctrl-C, the 5 s bound): nobody reads what
            # this call ends with any more, so an error here is logged, not lost.
            try:
                on_stop(outcome)
            except Exception:
                _log.exception("on_stop raised for the outcome of item %d", outcome.index)

    return posted


def _raising(outcomes: Iterator[SendOutcome], errors: list[Exception]) -> Iterator[SendOutcome]:
    """``outcomes``, then the first error ``on_stop`` raised in the caller's thread (raised from
    the stop, as the engine does; never in place of an exception already on its way)."""
    try:
        yield from outcomes
    finally:
        active = sys.exc_info()[1]
        if errors and (active is None or isinstance(active, GeneratorExit)):
            raise errors[0]
        for error in errors:  # another exception is on its way (Ctrl-C): not lost silently
            _log.error(
                "on_stop raised for a stopped send",
                exc_info=(type(error), error, error.__traceback__),
            )


def _stop_started(
    started: concurrent.futures.Future[BlockingPortal], thread: threading.Thread
) -> None:
    """Stop a loop thread whose start-up its caller gave up waiting for."""
    with contextlib.suppress(BaseException):
        portal = started.result()
        portal.call(portal.stop)
    thread.join()


def _loop_and_thread() -> tuple[asyncio.AbstractEventLoop, int]:
    return asyncio.get_running_loop(), threading.get_ident()


def _finalize(
    portal: _Portal, close: Callable[[], Awaitable[None]], limiter: Limiter | None
) -> None:
    """``Client`` collected unclosed: close its connections and stop its thread. Given what
    that takes (``Core.release``), not the ``AsyncClient``: that holds the event hooks, and a
    hook bound to an object holding the Client (``self.client = Client(event_hooks=...
    [self.on_x])``) made the Client reachable from its own finalizer: never collected."""
    if portal.stopped or portal.forked:  # a forked child has no loop thread to stop
        return
    try:
        if not portal.started:  # never used: no thread, no connections
            portal.stopped = True
        elif threading.get_ident() == portal._thread:
            # Collected by a garbage collection that ran in the loop thread, which cannot wait
            # for itself: another thread closes it.
            threading.Thread(
                target=_close_abandoned, args=(portal, close, limiter), daemon=True
            ).start()
        else:
            _close_abandoned(portal, close, limiter)
    finally:
        # Warned after cleaning up: under -W error (pytest's filterwarnings = error) the
        # warning raises, and the thread and session must not stay open because of it.
        warnings.warn(
            "telnyx_msg.Client was not closed; use `with Client() as client:` or client.close() "
            "(closing a with_options() copy does not close the client it came from)",
            ResourceWarning,
            stacklevel=1,
        )


class _Held:
    """The portal's ``call`` for what outlives a method call (a page iterator, the outcomes of
    ``send_many``), holding the :class:`Client` it came from: dropping the client would
    otherwise close it under them (``Client(...).messages.send_many(items)``)."""

    __slots__ = ("_client", "call")

    def __init__(self, portal: _Portal, client: Client) -> None:
        self.call = portal.call
        self._client = client


class _FetchedFirst:
    """The portal of a raw list's pager: its first page came with the call, so it stays
    readable once the client is closed (``raw.parse()`` after ``with Client()``, as for the
    ``AsyncClient``); a later page raises ``ClientClosedError``, as any call would."""

    __slots__ = ("_client", "_portal")

    def __init__(self, portal: _Portal, client: Client) -> None:
        self._portal = portal
        self._client = client  # held, as by _Held

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, inbox: Inbox | None = None) -> T:
        # Stopped (by close(), maybe still stopping its loop thread in another thread): no
        # call reaches that loop any more, so the first page is read here, as once it ended.
        if self._portal.stopped:
            coro = fn(*args)
            try:
                coro.send(None)  # type: ignore[attr-defined]  # runs until it would wait
            except StopIteration as finished:
                return cast("T", finished.value)
            coro.close()  # type: ignore[attr-defined]
            raise ClientClosedError("this client is closed; create a new one")
        return self._portal.call(fn, *args, inbox=inbox)


def _first_page_only_once_stopped(pager: AsyncPager[T], portal: _Portal) -> AsyncPager[T]:
    """``pager`` (a raw list's, seeded with its first page) whose later pages raise
    ``ClientClosedError`` once the client is stopped: such a step runs in the caller's thread
    (``_FetchedFirst``), where starting a request (its hooks, the transport's loop check) would
    fail with another error, or run beside the loop thread still stopping."""
    fetch = pager._fetch

    async def guarded(number: int | None) -> Any:
        if number is not None and portal.stopped:
            raise ClientClosedError("this client is closed; create a new one")
        return await fetch(number)

    return AsyncPager(guarded)


def _close_abandoned(
    portal: _Portal, close: Callable[[], Awaitable[None]], limiter: Limiter | None
) -> None:
    with contextlib.suppress(Exception):
        portal.portal.call(close)
        _release_limiter(portal.portal, limiter)
    with contextlib.suppress(Exception):
        portal.stop()


def _release_limiter(portal: BlockingPortal, limiter: Limiter | None) -> None:
    """Let a shared limiter close what it opened in this client's loop before the loop stops
    (``RedisRateLimits`` keeps one Redis pool per loop)."""
    release = getattr(limiter, "_release_loop", None)
    if release is not None:
        portal.call(release)


class Client(ResourceTree[SyncMode]):
    """The blocking client: same arguments, resources and method names as :class:`AsyncClient`.

    Runs its own event loop in a background thread for its whole life; use ``with Client() as
    client:`` or call ``close()``. Page iterators are plain iterators. ``session=`` is not
    accepted, because an aiohttp session belongs to the loop that created it. Event hooks run
    in the client's loop thread.
    """

    _root: Client  # set on a view: the client whose loop thread it shares

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | Timeout = 60.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: Backoff | None = None,
        rate_limits: Limiter | None = DEFAULT,
        webhook_public_key: str | bytes | None = None,
        session: aiohttp.ClientSession | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        event_hooks: Mapping[str, Sequence[Hook]] | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        transport: Transport | None = None,
    ) -> None:
        if session is not None:
            raise ConfigurationError(
                "Client runs its own event loop and cannot use an aiohttp session from another "
                "loop; use AsyncClient(session=...) in async code"
            )
        # Built here, in the caller's thread, so configuration errors surface directly; the
        # aiohttp session itself is created lazily inside the portal's loop.
        async_client = AsyncClient(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            rate_limits=rate_limits,
            webhook_public_key=webhook_public_key,
            pool_size=pool_size,
            event_hooks=event_hooks,
            max_response_size=max_response_size,
            transport=transport,
        )
        self._setup(async_client, _Portal())
        self._finalizer = weakref.finalize(self, _finalize, self._owner, *self._core.release())

    def _setup(self, async_client: AsyncClient, owner: _Portal) -> None:
        self._owner = owner
        self._async = async_client
        self._core = Core(async_client)
        self._portal = owner
        self.webhooks = async_client.webhooks
        self._attach_resources(self)

    @property
    def async_client(self) -> AsyncClient:
        """The :class:`AsyncClient` this facade drives (its loop runs in the facade's thread)."""
        return self._async

    @property
    def base_url(self) -> str:
        """The API root every path is joined to."""
        return self._async.base_url

    @property
    def timeout(self) -> Timeout:
        """The default timeouts of every call (``RequestOptions(timeout=...)`` overrides)."""
        return self._async.timeout

    @property
    def max_retries(self) -> int:
        """How many times a failed call is retried by default."""
        return self._async.max_retries

    @property
    def rate_limits(self) -> Limiter | None:
        """The client-side rate limiter of the sends (None: no client-side limits)."""
        return self._async.rate_limits

    def with_options(
        self,
        *,
        timeout: float | Timeout = DEFAULT,
        max_retries: int = DEFAULT,
        backoff: Backoff | None = DEFAULT,
    ) -> Client:
        """A cheap view with other defaults sharing this client's thread, session and limits."""
        view = Client.__new__(Client)
        view._setup(
            self._async.with_options(timeout=timeout, max_retries=max_retries, backoff=backoff),
            self._owner,
        )
        # The client that owns the loop thread lives as long as its views: collected, it
        # would close the thread they share (``Client(...).with_options(...)``).
        view._root = getattr(self, "_root", self)
        return view

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        options: RequestOptions | None = None,
    ) -> Any:
        """Call any Telnyx path and return the decoded JSON (see ``AsyncClient.request``)."""
        self._check_open()
        return self._portal.call(
            functools.partial(
                self._async.request, method, path, json=json, params=params, options=options
            )
        )

    def close(self) -> None:
        """Close the HTTP session and stop the loop thread (a view's close does nothing)."""
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is None:
            return
        if not finalizer.alive:  # closed already, or another thread is closing it now
            self._owner.wait_closed()
            return
        self._owner.refuse_own_thread()  # before anything is torn down: the client stays usable
        finalizer.detach()
        owner = self._owner
        owner.closer = threading.get_ident()
        if not owner.begin_close() or owner.stopped or owner.forked:
            owner.stop()
            return
        try:
            owner.portal.call(self._async.aclose)
            _release_limiter(owner.portal, self._async.rate_limits)
        except BaseException:
            owner.stop()
            raise
        if owner.inside_call():
            # From inside one of this thread's calls (its send_many input): that call can only
            # end after this returns, so it ends first, as the closed client has it end (a
            # send_many reports its items, ClientClosedError), and then the loop stops.
            owner.close_after = threading.get_ident()
            return
        owner.finish_close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self._async.base_url!r})"

    def __reduce__(self) -> Any:
        # pickle (multiprocessing's spawn) met a lock deep inside and said only that.
        raise TypeError(
            "a telnyx_msg.Client cannot be pickled (it owns a thread and connections); "
            "create one in each process, e.g. in the worker function"
        )

    def _send_many(
        self,
        requests: Any,
        concurrency: int,
        method: SendMethod,
        on_stop: Callable[[SendOutcome], None] | None,
        skip_optouts: bool,
    ) -> Iterator[SendOutcome]:
        self._check_open()
        inbox: Inbox = queue.SimpleQueue()
        if isinstance(requests, Iterable) and not isinstance(
            requests, (str, bytes, bytearray, Mapping, AsyncIterable)
        ):  # (what is not a plain iterable goes as is, for the engine's own check)

            def orphan(index: int, item: Any) -> None:
                if on_stop is not None:
                    closed = ClientClosedError("not sent: the client was closed")
                    on_stop(SendOutcome(index, item, "not_sent", error=closed))

            requests = _PulledInCaller(requests, inbox, orphan)
        errors: list[Exception] = []
        if on_stop is not None:
            from telnyx_msg._bulk import check_on_stop

            check_on_stop(on_stop)  # before it is wrapped in a plain function
            on_stop = _on_stop_in_caller(on_stop, errors)
        return _raising(
            _iterate(
                _Held(self._portal, self),
                self._core.send_many(requests, concurrency, method, on_stop, skip_optouts),
                inbox,
            ),
            errors,
        )

    def _check_open(self) -> None:
        if self._owner.stopped:
            raise ClientClosedError("this client is closed; create a new one")

    # --- binding (see _resources.Op): validate here, run the async core in the portal ---------

    def _bind_raw(self, endpoint: Endpoint[Any, Any], name: str) -> Callable[..., Any]:
        portal = self._portal
        run = self._core.raw_runner(endpoint)

        def raw_method(*args: Any, **kwargs: Any) -> RawResponse[Any]:
            request = make_request(endpoint, args, kwargs, name)  # bad input: no portal hop
            self._check_open()
            raw: RawResponse[Any] = portal.call(run, request)
            if endpoint.paged:
                pager = raw.parse
                return raw._with_parse(
                    lambda: SyncPager(
                        _first_page_only_once_stopped(pager(), portal), _FetchedFirst(portal, self)
                    )
                )
            return raw

        describe_raw(raw_method, endpoint, name, "SyncPager")
        return raw_method

    def _bind(self, endpoint: Endpoint[Any, Any], name: str) -> Callable[..., Any]:
        portal = self._portal
        if endpoint.paged:
            fetcher = self._core.pager(endpoint)

            def list_method(*args: Any, **kwargs: Any) -> SyncPager[Any]:
                request = make_request(endpoint, args, kwargs, name)
                self._check_open()
                return SyncPager(AsyncPager(fetcher(request)), _Held(portal, self))

            method: Callable[..., Any] = list_method
        else:
            run: Callable[[Any], Awaitable[Any]] = self._core.runner(endpoint)

            def call_method(*args: Any, **kwargs: Any) -> Any:
                request = make_request(endpoint, args, kwargs, name)
                self._check_open()
                return portal.call(run, request)

            method = call_method
        describe(method, endpoint, name, "SyncPager")
        return method
