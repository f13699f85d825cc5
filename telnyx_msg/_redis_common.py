"""What the Redis webhook queue and the Redis delivery tracker share: how they
build a client, and one bounded way to make a Redis call.

Every call is bounded twice: by the client's socket timeouts (a dead peer) and by
:func:`time_limit` (a frozen server whose socket still accepts bytes). Any failure becomes
the caller's ``RedisUnavailableError`` subclass, with the Redis exception as its ``__cause__``.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

from telnyx_msg._fork import on_fork_disown
from telnyx_msg.errors import ConfigurationError, RedisUnavailableError

__all__ = [
    "MAX_CONNECTIONS",
    "bounded",
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
    try:
        return client_from_url(module, url, socket_timeout)
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL for {owner}: {exc}") from exc


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
    from_pool = getattr(aioredis.Redis, "from_pool", None)  # redis-py >= 5.0.1
    if from_pool is not None:
        return from_pool(pool)  # closing the client closes the pool
    return aioredis.Redis(connection_pool=pool, auto_close_connection_pool=True)


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
    """Close a client this package created (redis-py 5 names it ``aclose``)."""
    close = getattr(client, "aclose", None) or client.close
    await close()


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
    if _NO_DATABASE in reason:
        return ConfigurationError(
            f"Redis has no database for this {who} ({reason}): the URL's /N must be below "
            "the server's `databases` setting (16 by default)"
        )
    return ConfigurationError(
        f"Redis refused this {who}'s credentials ({str(exc).rstrip('.')}): check the user "
        f"and password in the URL, and that the user's ACL allows {commands}"
    )
