"""What the Redis helpers share: how they build a client, one client per event loop
(:class:`LoopClients`), and one bounded way to make a Redis call.

Every call is bounded twice: by the client's socket timeouts (a dead peer) and by
:func:`time_limit` (a frozen server whose socket still accepts bytes). Any failure becomes
the caller's ``RedisUnavailableError`` subclass, with the Redis exception as its ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import re
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from telnyx_msg._fork import on_fork_disown
from telnyx_msg.errors import ConfigurationError, RedisUnavailableError

__all__ = [
    "MAX_CONNECTIONS",
    "LoopClients",
    "bounded",
    "check_redis_version",
    "client_from_url",
    "close_client",
    "config_error",
    "make_client",
    "misconfigured",
    "time_limit",
]

#: Connections one Redis client of ours opens at most. More simultaneous calls (a burst of
#: webhooks, a send_many at concurrency 200) wait for a free one, within the call's timeout;
#: redis-py's default pool would fail them at once ("Too many connections").
MAX_CONNECTIONS = 100

#: The lowest redis-py the ``redis`` extra allows (pyproject.toml): earlier 5.0.x releases hang
#: on a frozen server past their socket timeouts, and 4.x builds no blocking client from a pool.
MIN_REDIS = (5, 0, 4)

T = TypeVar("T")

if sys.version_info >= (3, 11):
    from asyncio import timeout as time_limit
else:

    class _Expiry:
        """What ``asyncio.timeout`` yields, as far as we use it: whether the limit fired."""

        __slots__ = ("_scope",)

        def __init__(self, scope: Any) -> None:
            self._scope = scope

        def expired(self) -> bool:
            # The scope is only ever cancelled by its deadline.
            return bool(self._scope.cancel_called)

    @contextlib.asynccontextmanager
    async def time_limit(seconds: float | None) -> AsyncIterator[_Expiry]:
        """``asyncio.timeout`` for Python 3.10, from anyio's cancel scope; raises TimeoutError.

        Not ``asyncio.wait_for``: it runs the call in a task of its own, whose failure is lost
        ("Task exception was never retrieved") when the caller is cancelled, and it can drop a
        result that lands together with the timeout (a lock acquired, then never released).
        """
        import anyio

        with anyio.fail_after(seconds) as scope:
            yield _Expiry(scope)


def make_client(
    url: str | None, client: Any, *, owner: str, socket_timeout: float, blocking: bool = False
) -> Any:
    """``client`` as given, or a new ``redis.asyncio.Redis`` (``blocking``: ``redis.Redis``,
    for Flask, Django and other threads) for ``url`` with socket timeouts."""
    if client is not None:
        return client
    if not url:
        raise ConfigurationError(f"{owner} needs a redis:// URL or a client")
    try:
        module = importlib.import_module("redis" if blocking else "redis.asyncio")
    except ImportError as exc:
        raise ConfigurationError(
            f"{owner} needs the redis package: pip install 'telnyx_msg[redis]'"
        ) from exc
    check_redis_version(owner)
    try:
        return client_from_url(module, url, socket_timeout)
    except ValueError as exc:
        raise url_error(url, exc, f" for {owner}") from None


def check_redis_version(owner: str) -> None:
    """A ``ConfigurationError`` naming the extra when the imported redis-py is older than it
    allows (another package may have installed it): not a ``TypeError`` from redis-py, nor a
    client that can hang past its timeouts."""
    version = getattr(sys.modules.get("redis"), "__version__", None)
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version) if isinstance(version, str) else None
    if found is not None and tuple(int(part or 0) for part in found.groups()) < MIN_REDIS:
        raise ConfigurationError(
            f"{owner} needs redis-py {'.'.join(map(str, MIN_REDIS))} or later (found {version}): "
            "pip install 'telnyx_msg[redis]'"
        )


def url_error(url: str, exc: ValueError, owner: str = "") -> ConfigurationError:
    """``invalid Redis URL`` for ``exc``, never quoting the URL's credentials: a password with
    an unescaped ``/``, ``?`` or ``#`` ends the URL's authority early, and urllib then names
    the part of it before that character as the port."""
    text = str(exc)
    _, sep, rest = url.partition("://")
    userinfo = rest.rpartition("@")[0] if sep else ""
    secrets = [part for part in re.split(r"[:/?#]", userinfo) if part]
    if any(secret in text for secret in secrets):
        text = (
            "it does not parse (a password holding /, ?, # or @ must be percent-encoded, "
            "e.g. / as %2F)"
        )
    return ConfigurationError(f"invalid Redis URL{owner}: {text}")


def client_from_url(aioredis: Any, url: str, timeout: float) -> Any:
    """A ``redis.asyncio.Redis`` (or, given the ``redis`` module, a blocking ``redis.Redis``)
    for ``url`` whose pool waits (``timeout`` at most) for a free connection; socket timeouts
    bound what ``wait_for`` cannot see (a half-open connection)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    _POOLS.add(pool)
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


_POOLS: weakref.WeakSet[Any] = weakref.WeakSet()


def _pool_sockets() -> Iterator[Any]:
    """The sockets of the connections in the pools we made (see ``_fork``). redis-py keeps
    them in private attributes; if those change, this finds none (no worse than without)."""
    for pool in list(_POOLS):
        for name in ("_available_connections", "_in_use_connections"):
            for connection in list(getattr(pool, name, ())):
                writer = getattr(connection, "_writer", None)
                transport = getattr(writer, "transport", None)
                if transport is not None:
                    yield transport.get_extra_info("socket")


on_fork_disown(_pool_sockets)


async def close_client(client: Any) -> None:
    """Close a client this package created (redis-py 5 names it ``aclose``).

    Connections opened in an event loop that has ended (a queue or tracker used in one
    ``asyncio.run``, closed in the next) cannot be closed from another: they are dropped,
    and their sockets go with the garbage, rather than ``aclose`` raising "Event loop is
    closed".
    """
    close = getattr(client, "aclose", None) or client.close
    try:
        await close()
    except RuntimeError as exc:
        if "loop" not in str(exc):  # "Event loop is closed", "... attached to a different loop"
            raise


class LoopClients:
    """One ``redis.asyncio`` client per event loop: its connections belong to the loop that
    opened them, and a helper built once (at import, shared by blocking ``Client`` objects,
    used through ``asyncio.run`` per request or a test client per test) meets several loops.

    ``first`` goes to the first loop that asks, ``make()`` builds one for each other loop.
    A loop's client is closed when ``asyncio.run`` (or anyio) shuts that loop down (a client
    per call would leak its connections otherwise; a loop closed by hand without
    ``loop.shutdown_asyncgens()`` leaves it to the garbage collector), by :meth:`release` (a
    blocking ``Client`` whose loop is about to stop), or by :meth:`aclose`. ``on_drop(loop)``
    runs, under ``lock``, whenever a loop's client is dropped.
    """

    def __init__(
        self,
        first: Any,
        make: Callable[[], Any],
        *,
        lock: threading.Lock | None = None,
        on_drop: Callable[[asyncio.AbstractEventLoop], None] | None = None,
    ) -> None:
        self._unbound: Any = first
        self._make = make
        self._lock = lock if lock is not None else threading.Lock()
        self._on_drop = on_drop
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        # Clients aclose() asked another (running) loop to close: that loop's guard closes
        # one still here when it shuts down (it may cancel the close it was asked for).
        self._closing: dict[asyncio.AbstractEventLoop, Any] = {}
        # Each loop's shutdown guard, with the client it closes.
        self._guards: dict[
            asyncio.AbstractEventLoop, tuple[AsyncIterator[None], asyncio.Future[None], Any]
        ] = {}

    def get(self) -> Any:
        """The running loop's client."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            with self._lock:
                client = self._clients.get(loop)
                if client is None:
                    if self._unbound is not None:
                        client, self._unbound = self._unbound, None
                    else:
                        client = self._make()
                    self._clients[loop] = client
                    guard = self._close_at_shutdown(loop, client)
                    # Held here: the loop keeps only weak references to both.
                    # (A guard this replaces, of a client aclose() closed, ends with it.)
                    self._guards[loop] = (
                        guard,
                        asyncio.ensure_future(guard.__anext__()),
                        client,
                    )
        return client

    def _drop(self, loop: asyncio.AbstractEventLoop, client: Any | None = None) -> Any:
        """Forget ``loop``'s client (only if it is ``client``, when given); return it."""
        with self._lock:
            if client is not None:  # the loop's guard, ending: nothing need hold it any more
                guarded = self._guards.get(loop)
                # Only its own: a replaced guard (its client closed by aclose(), the loop
                # used again) ends after the new one is in place, and must leave it there.
                if guarded is not None and guarded[2] is client:
                    del self._guards[loop]
            mine = self._clients.get(loop)
            if mine is None or (client is not None and mine is not client):
                return None
            del self._clients[loop]
            if self._on_drop is not None:
                self._on_drop(loop)
        return mine

    async def _close_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, client: Any
    ) -> AsyncIterator[None]:
        """Suspended for the loop's life: a loop's async generators are closed before it is."""
        try:
            yield
        finally:
            mine = self._drop(loop, client) is not None
            if not mine:
                with self._lock:
                    mine = self._closing.get(loop) is client
                    if mine:
                        del self._closing[loop]
            if mine:
                await close_client(client)

    async def _close_here(self, loop: asyncio.AbstractEventLoop, client: Any) -> None:
        """Close ``loop``'s client in ``loop`` (which runs this), for :meth:`aclose`."""
        await close_client(client)
        with self._lock:
            if self._closing.get(loop) is client:
                del self._closing[loop]

    async def release(self) -> None:
        """Close the running loop's client (its loop is about to stop)."""
        client = self._drop(asyncio.get_running_loop())
        if client is not None:
            await close_client(client)

    async def aclose(self) -> None:
        """Close every client: the running loop's here, a running loop's in that loop."""
        here = asyncio.get_running_loop()
        with self._lock:
            clients = dict(self._clients)
            self._clients.clear()  # (each loop's guard ends with its loop, finding none)
            unbound, self._unbound = self._unbound, None
            if self._on_drop is not None:
                for loop in clients:
                    self._on_drop(loop)
        if unbound is not None:
            await close_client(unbound)
        for loop, client in clients.items():
            if loop is here:
                await close_client(client)
            elif loop.is_running():
                with self._lock:
                    self._closing[loop] = client
                closing = asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(self._close_here(loop, client), loop)
                )
                # That loop may cancel the close as it shuts down, or stop before running it:
                # neither is this task's cancellation (its own still propagates from wait).
                done, _ = await asyncio.wait({closing}, timeout=_CLOSE_ELSEWHERE)
                if done and not closing.cancelled():
                    closing.result()
            # A client of a closed loop cannot be closed any more; its loop's shutdown (or a
            # blocking Client's release) closed it. A loop closed without
            # ``loop.shutdown_asyncgens()`` (not by asyncio.run or anyio) leaves its client to
            # the garbage collector.


#: Seconds ``LoopClients.aclose`` waits for another loop to close its client.
_CLOSE_ELSEWHERE = 5.0


async def bounded(
    call: Awaitable[T], timeout: float, error: type[RedisUnavailableError], what: str
) -> T:
    """Await one Redis call for at most ``timeout`` seconds; failures raise ``error``."""
    try:
        async with time_limit(timeout):
            return await call
    except TimeoutError:  # before OSError: on Python 3.10 the builtin TimeoutError is one
        # The wait includes getting one of the pool's connections: with more concurrent
        # calls than connections, a healthy Redis can be "slow" here too.
        raise error(
            f"Redis did not answer {what} within {timeout:g} s (waiting for a pooled "
            "connection included: a frozen Redis, or more concurrent calls than the pool holds)"
        ) from None
    except OSError as exc:
        raise error(f"Redis unreachable during {what}: {exc}") from exc
    except RuntimeError as exc:
        if "loop" not in str(exc):  # "Event loop is closed", "... attached to a different loop"
            raise
        raise ConfigurationError(
            f"{what}: its Redis connections belong to another event loop (e.g. an earlier "
            "asyncio.run() that has ended); create the Redis queue or tracker inside the "
            "loop that uses it"
        ) from exc
    except Exception as exc:
        from redis.exceptions import RedisError  # imported already by any client we were given

        if isinstance(exc, RedisError):
            raise error(f"Redis failed {what}: {exc}") from exc
        raise


#: What Redis answers a connection's SELECT of a database number past its ``databases``.
_NO_DATABASE = "DB index is out of range"
_WRONG_TYPE = "WRONGTYPE"


def _cross_slot(exc: BaseException) -> bool:
    """Whether ``exc`` is a Redis in cluster mode refusing keys in several hash slots
    (redis-py's ``ClusterCrossSlotError``, whose text drops the ``CROSSSLOT`` code)."""
    from redis.exceptions import ClusterCrossSlotError, ResponseError

    if isinstance(exc, ClusterCrossSlotError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith("CROSSSLOT")


def misconfigured(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is Redis refusing this connection's configuration: its
    credentials or ACL, a database number the server does not have, or a key of ours that
    holds another kind of data (no retry heals these, unlike an outage)."""
    try:
        from redis.exceptions import (
            AuthenticationError,
            AuthenticationWrongNumberOfArgsError,
            NoPermissionError,
            ResponseError,
        )
    except ImportError:  # then nothing raised a redis-py error
        return False

    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, ResponseError) and _NO_DATABASE in str(cause):
        return True  # (SELECT on connect, for a URL's /N past the server's `databases`)
    if isinstance(cause, ResponseError) and str(cause).startswith(_WRONG_TYPE):
        return True  # the stream's name taken by another kind of key: waiting never heals it
    if _cross_slot(cause):
        return True  # Redis Cluster: the queue's transactions span slots, always refused
    return isinstance(
        cause, (AuthenticationError, AuthenticationWrongNumberOfArgsError, NoPermissionError)
    )


def config_error(
    exc: BaseException, who: str, commands: str = "the stream commands"
) -> ConfigurationError:
    """The error for Redis refusing ``who``'s configuration (see :func:`misconfigured`): no
    retry heals it (callers raise it ``from exc``)."""
    reason = str(exc.__cause__ if exc.__cause__ is not None else exc).rstrip(".")
    if reason.startswith(_WRONG_TYPE):
        return ConfigurationError(
            f"a Redis key this {who} uses holds another kind of data ({reason}): give the "
            "queue a stream name nothing else in this Redis uses (stream=, --stream)"
        )
    if _cross_slot(exc.__cause__ if exc.__cause__ is not None else exc):
        return ConfigurationError(
            f"this {who}'s Redis is in cluster mode ({reason}): Redis Cluster is not supported "
            "(the queue updates keys in several hash slots at once); use a standalone Redis "
            "primary (with replicas and Sentinel if needed)"
        )
    if _NO_DATABASE in reason:
        return ConfigurationError(
            f"Redis has no database for this {who} ({reason}): the URL's /N must be below "
            "the server's `databases` setting (16 by default)"
        )
    return ConfigurationError(
        f"Redis refused this {who}'s credentials ({str(exc).rstrip('.')}): check the user "
        f"and password in the URL, and that the user's ACL allows {commands}"
    )
