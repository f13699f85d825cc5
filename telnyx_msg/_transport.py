"""The only module that talks to the network: one aiohttp session, errors mapped once.

Failures are classified for the retry policy by whether the request can have reached Telnyx.
The client's own connector reports the moment a connection is handed to a request: before it
(waiting for a free pooled connection, DNS, TCP/TLS set-up) nothing was written, so a failure
or timeout there is ``reached=False`` and follows the *connect* timeout; from then on the
request may be on the wire (``reached=True``) and the *total* timeout runs. A pooled keep-alive
connection the server closed while idle is detected before anything is written to it and
replaced by a fresh one. With a session passed in by the caller (whose connector is not ours)
every failure after DNS/connect errors is conservatively ``reached=True``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import math
import platform
import re
import select
import sys
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from telnyx_msg._config import DEFAULT_MAX_RESPONSE_SIZE, DEFAULT_POOL_SIZE, Timeout
from telnyx_msg._fork import on_fork_disown
from telnyx_msg._version import __version__
from telnyx_msg._wire import HttpResponse, TransportError

USER_AGENT = (
    f"telnyx_msg/{__version__} python/{platform.python_version()} aiohttp/{aiohttp.__version__}"
)

#: Seconds an idle pooled connection is kept. Servers close idle keep-alive connections after
#: a few seconds (nginx and most load balancers: 5 s or more; some 2 s); a client that keeps
#: them longer than the server writes requests into connections the server is closing, and a
#: POST that fails that way cannot be told apart from one the server received. aiohttp's
#: default is 15 s.
KEEPALIVE_TIMEOUT = 1.5

_URL_CACHE_SIZE = 256
_TIMEOUT_CACHE_SIZE = 64
_UNBOUNDED = 1 << 30  # a pool size no concurrency reaches
# Never sent through a proxy: a proxy for this machine itself is a misconfiguration (a
# corporate HTTPS_PROXY without NO_PROXY=localhost would break local fakes and tests).
_LOOPBACK = frozenset({"localhost", "::1", "[::1]"})
_READ_CHUNK = 64 * 1024


def _without_request(exc: BaseException) -> BaseException | None:
    """``exc`` as a cause, unless it carries the request (aiohttp's ``request_info``, whose
    headers hold the API key): error trackers serialize a whole exception chain."""
    return None if getattr(exc, "request_info", None) is not None else exc


def fixed_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Mapping[str, str]:
    """Read-only, case-insensitive headers (those sent on every request are in the form aiohttp
    merges without a copy)."""
    return CIMultiDictProxy(CIMultiDict(headers))


class Transport(Protocol):
    """The client's only I/O seam: send one request, return the whole response.

    :class:`AiohttpTransport` is the default; ``telnyx_msg.testing.MockTransport`` answers
    in-process. ``send`` raises :class:`TransportError` when no response came, saying whether
    the request may have reached the server.
    """

    @property
    def pool_size(self) -> int: ...
    @property
    def max_response_size(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def other_loop(self) -> bool: ...
    def grow_pool(self, size: int) -> int: ...
    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeout,
    ) -> HttpResponse: ...
    async def aclose(self) -> None: ...


class _Attempt:
    """One request in flight: whether it got a connection, and its total-timeout deadline."""

    __slots__ = ("acquired", "clock", "deadline", "done", "expired", "queue", "task", "total")

    def __init__(self, task: asyncio.Task[Any] | None, total: float, clock: _Deadlines) -> None:
        self.task = task
        self.total = total
        self.clock = clock
        self.acquired = False
        self.expired = False
        self.done = False
        self.deadline = math.inf
        self.queue: collections.deque[_Attempt] | None = None

    def on_acquired(self) -> None:
        """The connection is ours: from now on bytes may reach the server; start the clock."""
        self.acquired = True
        if self.task is not None and self.total != math.inf and self.deadline == math.inf:
            self.clock.start(self)

    def expire(self) -> None:
        self.expired = True
        if self.task is not None:
            self.task.cancel()

    def stop(self) -> None:
        self.done = True
        queue = self.queue
        if queue is not None:
            self.queue = None
            self.clock.forget(self.total, queue)


class _Deadlines:
    """The total-timeout deadlines of one transport's requests, on a single loop timer.

    A timer per request (``call_later`` plus its ``cancel``) cost about 3 % of a send's CPU.
    Requests with the same total timeout have deadlines in the order they got their
    connection, so each timeout value keeps a FIFO of requests; the one timer is armed for
    the earliest live deadline, and a request that finishes only marks itself done.
    """

    __slots__ = ("handle", "loop", "queues", "running", "when")

    def __init__(self) -> None:
        self.queues: dict[float, collections.deque[_Attempt]] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.when = math.inf
        self.loop: asyncio.AbstractEventLoop | None = None
        self.running = 0  # requests in the queues not done yet

    def start(self, attempt: _Attempt) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # first use, or what an ended loop left behind
            self.loop, self.handle, self.when, self.queues = loop, None, math.inf, {}
            self.running = 0
        deadline = attempt.deadline = loop.time() + attempt.total
        queue = self.queues.get(attempt.total)
        if queue is None:
            queue = self.queues[attempt.total] = collections.deque()
        queue.append(attempt)
        attempt.queue = queue
        self.running += 1
        if deadline < self.when:
            self._arm(deadline)

    def forget(self, total: float, queue: collections.deque[_Attempt]) -> None:
        """A request of ``queue`` finished: drop finished ones from its front (usually all)."""
        self.running -= 1
        while queue and queue[0].done:
            queue.popleft()
        if not queue:
            if len(self.queues) > _KEEP_QUEUES and self.queues.get(total) is queue:
                del self.queues[total]  # per-call timeouts need not repeat
            return
        if len(queue) > _COMPACT_AT and len(queue) > 2 * self.running:
            # A slow request at the front holds finished ones behind it: keep memory bounded
            # by the requests in flight (amortised: the queue has doubled since the last).
            live = [a for a in queue if not a.done]
            queue.clear()
            queue.extend(live)

    def close(self) -> None:
        """Cancel the timer: armed for a finished request's deadline, it kept a closed
        transport's state alive on the loop until then (the request timeout, 60 s)."""
        if self.handle is not None:
            self.handle.cancel()
        self.handle, self.when, self.queues, self.running = None, math.inf, {}, 0

    def _arm(self, when: float) -> None:
        assert self.loop is not None
        if self.handle is not None:
            self.handle.cancel()
        self.when = when
        self.handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        assert self.loop is not None
        self.handle, self.when = None, math.inf
        # uvloop's millisecond timers may fire a hair before the deadline.
        now = self.loop.time() + _TIMER_SLACK
        earliest = math.inf
        for total, queue in list(self.queues.items()):
            while queue and (queue[0].done or queue[0].deadline <= now):
                attempt = queue.popleft()
                if not attempt.done:
                    attempt.queue = None
                    self.running -= 1
                    attempt.expire()
            if queue:
                earliest = min(earliest, queue[0].deadline)
            else:
                del self.queues[total]
        if earliest != math.inf:
            self._arm(earliest)


_COMPACT_AT = 256
_KEEP_QUEUES = 8
_TIMER_SLACK = 0.001


_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar(
    "telnyx_msg_attempt", default=None
)


class SendWindow:
    """What the sends under one caller's ``send`` did: whether any got a connection (the
    request may have been written), and whether one was cancelled before it had one.

    Sticky, and decided by the caller once its ``send`` ended: a transport wrapping this one
    may send more than once (a failover), in either order (a first try given up while it
    connected, a second one written; or the reverse), and tasks started under it share it.
    """

    __slots__ = ("acquired", "stopped_unconnected")

    def __init__(self) -> None:
        self.acquired = False
        self.stopped_unconnected = False

    @property
    def unwritten(self) -> bool:
        """True when a send was cancelled before its connection and none ever had one."""
        return self.stopped_unconnected and not self.acquired


#: Set by a caller around one ``send`` (see :class:`SendWindow`).
send_window: contextvars.ContextVar[SendWindow | None] = contextvars.ContextVar(
    "telnyx_msg_send_window", default=None
)


def _readable(protocol: Any) -> bool:
    """True when an idle pooled connection has something to read: the server's FIN or RST.

    An idle HTTP/1.1 connection carries nothing until we send a request, so readable means
    the server closed it (for TLS it may also be a session ticket; the caller checks again).
    """
    transport = getattr(protocol, "transport", None)
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        fd = sock.fileno()
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class _Connector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that tells the request when it got its connection, and never hands
    it a pooled connection the server has already closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.protocols: weakref.WeakSet[Any] = weakref.WeakSet()  # every connection it made
        _CONNECTORS.add(self)

    async def connect(self, *args: Any, **kwargs: Any) -> aiohttp.connector.Connection:
        # Bounded: each extra pass closed one pooled connection; then a fresh one is made.
        for _ in range(self.limit or 100):
            conn = await super().connect(*args, **kwargs)
            protocol = conn.protocol
            if protocol is None or not _readable(protocol):
                break  # the usual case, checked without a coroutine
            try:
                if await _usable(protocol):
                    break
            except BaseException:
                conn.close()
                raise
            # Closed by the server while idle, and nothing written to it yet: drop it and
            # take another (safe for any method, a send included).
            conn.close()
        else:
            conn = await super().connect(*args, **kwargs)
        attempt = _ATTEMPT.get()
        if attempt is not None:
            attempt.on_acquired()
            window = send_window.get()
            if window is not None:
                window.acquired = True  # from now on the request may be written
        return conn

    async def _create_connection(self, *args: Any, **kwargs: Any) -> Any:
        protocol = await super()._create_connection(*args, **kwargs)
        self.protocols.add(protocol)
        return protocol

    def grow(self, limit: int) -> None:
        """Allow ``limit`` simultaneous connections from now on (never fewer than before)."""
        self._limit = max(self._limit, limit)


_CONNECTORS: weakref.WeakSet[_Connector] = weakref.WeakSet()


def _connector_sockets() -> Iterator[Any]:
    """The sockets of every connection our connectors made (see ``_fork``)."""
    for connector in list(_CONNECTORS):
        for protocol in list(connector.protocols):
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                yield transport.get_extra_info("socket")


on_fork_disown(_connector_sockets)


def quiet_inherited(loops: set[asyncio.AbstractEventLoop]) -> None:
    """In a forked child: the connectors of ``loops`` (which stayed in the parent, with their
    connections) are marked closed, so that collecting them here reports nothing ("Unclosed
    client session", "Unclosed connector": the parent's, not leaked by the child)."""
    for connector in list(_CONNECTORS):
        if connector._loop in loops:
            connector._closed = True  # aiohttp's own flag: what close() would set


async def _usable(protocol: Any) -> bool:
    """Whether a connection that has something to read (see ``_readable``) can still carry a
    request."""
    transport = protocol.transport
    if transport is not None and transport.get_extra_info("sslcontext") is not None:
        # TLS: the bytes may be a session ticket (TLS 1.3 sends them after the handshake) or
        # the server's close_notify. Let the TLS layer read them: a close shows within a few
        # loop turns. Every turn is watched, because the socket can look quiet before the
        # connection is marked closed (Python 3.10's TLS layer takes 3 turns after reading).
        for _ in range(_TLS_SETTLE_TURNS):
            await asyncio.sleep(0)
            if not protocol.is_connected():
                # Closed by the peer; closing our end too marks it so (Python 3.10's TLS
                # transport would otherwise warn "unclosed transport" when collected).
                transport.close()
                return False
        return not _readable(protocol)
    return False


_TLS_SETTLE_TURNS = 8


def _cancels(task: asyncio.Task[Any] | None) -> int:
    """How many cancellations of ``task`` are pending (unknown before Python 3.11: 0). Compared
    with its count when a request began, as ``asyncio.timeout`` does: a task may carry one it
    once caught without ``uncancel()``."""
    if sys.version_info >= (3, 11) and task is not None:
        return task.cancelling()
    return 0


class AiohttpTransport:
    """Sends requests through one ``aiohttp.ClientSession``: its own, or one it was given.

    A session it creates is created lazily inside the running loop and closed by ``aclose``;
    a given session is never closed here. Once closed, it refuses to send (and never opens a
    new session). Response bodies are read incrementally up to ``max_response_size`` bytes
    (after decompression).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._pool_size = pool_size
        self._max_response_size = max_response_size
        self._closed = False
        self._deadlines = _Deadlines()
        self._timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}
        # (scheme, host) -> (proxy, proxy headers), read from the environment on first use.
        self._proxies: dict[tuple[str, str], tuple[URL | None, Mapping[str, str] | None]] = {}

    @property
    def pool_size(self) -> int:
        """Maximum simultaneous connections (aiohttp's connector limit; a given session whose
        connector has ``limit=0``, aiohttp's "no limit", counts as unbounded)."""
        if self._session is not None and not self._owns_session:
            connector = self._session.connector
            if connector is None:
                return self._pool_size
            return connector.limit or _UNBOUNDED
        return self._pool_size

    def grow_pool(self, size: int) -> int:
        """Raise the pool of a session this transport owns to ``size``; return the pool size.

        ``send_many(concurrency=N)`` calls this, so N sends never wait for a connection (a wait
        longer than the connect timeout would end a send ``not_sent`` for no fault of
        Telnyx's). A session you passed in keeps its own connector's limit.
        """
        if self._owns_session and size > self._pool_size:
            self._pool_size = size
            connector = None if self._session is None else self._session.connector
            if isinstance(connector, _Connector):
                connector.grow(size)
        return self.pool_size

    @property
    def max_response_size(self) -> int:
        """The largest response body read, in bytes (after decompression)."""
        return self._max_response_size

    @property
    def closed(self) -> bool:
        """True once ``aclose`` ran, or a given session was closed by its owner."""
        return self._closed or (self._session is not None and self._session.closed)

    def _new_session(self) -> aiohttp.ClientSession:
        connector = _Connector(
            limit=self._pool_size,
            limit_per_host=0,
            ttl_dns_cache=300,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )
        session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, raise_for_status=False
        )
        # aiohttp silently repeats a GET/PUT/DELETE once when a pooled connection fails; our
        # retry loop already does that (and counts it), and the connector above replaces
        # closed pooled connections before writing. Off, so every wire request is an attempt.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False
        return session

    def _client_timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        cached = self._timeouts.get(timeout)
        if cached is None:
            connect = None if timeout.connect == float("inf") else timeout.connect
            total = None if timeout.total == float("inf") else timeout.total
            if self._owns_session:
                # Our connector starts the total clock once the request has a connection;
                # waiting for one (pool, DNS, TCP, TLS) is bounded by the connect timeout.
                cached = aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect)
            else:
                cached = aiohttp.ClientTimeout(total=total, sock_connect=connect)
            if len(self._timeouts) < _TIMEOUT_CACHE_SIZE:  # per-call deadlines never repeat
                self._timeouts[timeout] = cached
        return cached

    def other_loop(self) -> bool:
        """True when the session belongs to an event loop other than the running one.

        An aiohttp session (and its pooled connections) lives and dies with the loop that made
        it: a client used again from a second ``asyncio.run`` would fail deep inside aiohttp.
        """
        session = self._session
        if session is None:
            return False
        loop = getattr(session, "_loop", None)
        return loop is not None and loop is not asyncio.get_running_loop()

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeout,
    ) -> HttpResponse:
        """Send one request and read the response, or raise :class:`TransportError`."""
        if self._closed:
            raise TransportError("the client is closed", reached=False, timeout=False, closed=True)
        session = self._session
        if session is None:
            session = self._session = self._new_session()
        elif session.closed:  # a given session its owner closed (aiohttp: RuntimeError)
            raise TransportError("the session is closed", reached=False, timeout=False, closed=True)
        target = self._urls.get(url)
        if target is None:
            target = URL(url, encoded=True)
            if len(self._urls) < _URL_CACHE_SIZE:  # send paths repeat; ids mostly do not
                self._urls[url] = target
        proxy = proxy_headers = None
        if self._owns_session:
            proxy, proxy_headers = self._proxy_for(target)
            if proxy_headers and target.scheme == "http":
                # aiohttp sends proxy_headers on the CONNECT of an https:// request only; a
                # plain http:// request carries its proxy credentials itself.
                headers = {**headers, **proxy_headers}
        task = asyncio.current_task()
        cancels = _cancels(task)
        attempt = _Attempt(task, timeout.total, self._deadlines) if self._owns_session else None
        token = _ATTEMPT.set(attempt)
        try:
            async with session.request(
                method,
                target,
                data=body,
                headers=headers,
                timeout=self._client_timeout(timeout),
                allow_redirects=False,
                proxy=proxy,
                proxy_headers=proxy_headers,
                # A session passed in may raise on 4xx/5xx (read as a lost connection: a 422
                # would look like an unknown outcome) or keep bodies compressed (unreadable).
                raise_for_status=False,
                auto_decompress=True,
            ) as resp:
                payload, too_large = await self._read(resp)
                if attempt is not None:
                    attempt.stop()
                return HttpResponse(resp.status, resp.headers, payload, too_large)
        except asyncio.CancelledError:
            if attempt is not None and not attempt.acquired:
                window = send_window.get()
                if window is not None:
                    window.stopped_unconnected = True
            if attempt is None or not attempt.expired:
                if (
                    self.closed
                    and not (attempt is not None and attempt.acquired)
                    and _cancels(task) <= cancels
                ):
                    # aclose() closed the pool: aiohttp cancels the waits for a connection.
                    raise TransportError(
                        "the client is closed", reached=False, timeout=False, closed=True
                    ) from None
                raise
            # Our deadline's cancel is withdrawn; one the caller made in the same loop turn
            # (its own timeout, a task.cancel()) still stands and wins.
            if sys.version_info >= (3, 11) and task is not None and task.uncancel() > cancels:
                raise
            raise TransportError(
                f"timed out after {timeout.total:g} s waiting for the response",
                reached=True,
                timeout=True,
            ) from None
        except aiohttp.ConnectionTimeoutError as exc:
            raise TransportError(
                f"no connection within {timeout.connect:g} s (connection pool full, or the "
                f"server did not accept): {exc}",
                reached=False,
                timeout=True,
            ) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            raise TransportError(
                f"cannot connect: {exc}. The server's TLS certificate did not verify against "
                "this machine's trust store: install the system CA certificates (on a "
                "python.org macOS build, run 'Install Certificates.command'), or point "
                "SSL_CERT_FILE at a CA bundle",
                reached=False,
                timeout=False,
                final=True,  # the same certificate fails the same way on a retry
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(f"cannot connect: {exc}", reached=False, timeout=False) from exc
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            reached = attempt is None or attempt.acquired
            raise TransportError(
                f"timed out after {timeout.total:g} s waiting for the response"
                if reached
                else f"no connection within {timeout.connect:g} s",
                reached=reached,
                timeout=True,
            ) from exc
        except (aiohttp.ClientError, HttpProcessingError, OSError) as exc:
            # HttpProcessingError: a response aiohttp could not parse or decompress, which some
            # versions raise as is instead of wrapping it in a ClientError.
            reached = attempt is None or attempt.acquired
            if self._closed or session.closed:
                if not reached:
                    raise TransportError(
                        "the client is closed", reached=False, timeout=False, closed=True
                    ) from exc
                # Not the server: closing the client closed the connection under the request.
                raise TransportError(
                    "the client was closed while the request was on the wire",
                    reached=True,
                    timeout=False,
                ) from _without_request(exc)
            raise TransportError(
                f"connection lost: {_plain(exc)}", reached=reached, timeout=False
            ) from _without_request(exc)
        finally:
            if attempt is not None:
                attempt.stop()
            _ATTEMPT.reset(token)

    def _proxy_for(self, url: URL) -> tuple[URL | None, Mapping[str, str] | None]:
        """The proxy for ``url`` from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (as httpx
        and the official SDK honour them), read once per host; never for a loopback host.
        Credentials (in the proxy URL or ``~/.netrc``) go in a ``Proxy-Authorization`` header
        (aiohttp deprecates its ``proxy_auth`` argument)."""
        host = url.host or ""
        key = (url.scheme, host)
        found = self._proxies.get(key)
        if found is None:
            found = None, None
            if host and host not in _LOOPBACK and not host.startswith("127."):
                _refuse_https_proxy(url)
                with contextlib.suppress(LookupError):
                    proxy, auth = get_env_proxy_for_url(url)
                    found = proxy, None if auth is None else {"Proxy-Authorization": auth.encode()}
            self._proxies[key] = found
        return found

    async def _read(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        """The body, read in chunks so an oversized (or decompression-bomb) body is cut off."""
        limit = self._max_response_size
        length = resp.content_length
        if length is not None and resp.headers.get("Content-Encoding") is None:
            if length > limit:
                resp.close()
                return b"", True
            return await resp.read(), False  # the declared size is the size read
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await resp.content.read(_READ_CHUNK)
            if not chunk:
                return b"".join(chunks), False
            size += len(chunk)
            if size > limit:
                resp.close()  # drops the connection instead of reading the rest
                return b"", True
            chunks.append(chunk)

    async def aclose(self) -> None:
        """Refuse new requests and close the session if this transport created it."""
        self._closed = True
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._deadlines.close()


def _refuse_https_proxy(url: URL) -> None:
    """aiohttp drops an ``https://`` proxy URL with a log warning and connects directly,
    around the proxy the environment names: refuse instead, before anything is sent."""
    from urllib.request import getproxies, proxy_bypass

    proxy = getproxies().get(url.scheme, "")
    if proxy.lower().startswith("https://") and not proxy_bypass(url.host or ""):
        raise TransportError(
            f"not sent: the {url.scheme.upper()}_PROXY environment variable names an https:// "
            "proxy, which aiohttp cannot use (it would connect around the proxy). Use the "
            "proxy's http:// URL (HTTPS still goes through it encrypted, with CONNECT), or "
            "exclude the host with NO_PROXY",
            reached=False,
            timeout=False,
            final=True,
        )


# aiohttp's parser errors print as "<ContentLengthError: 400, message='...'>": the 400 is the
# parser's own code, which read as if the server had answered 400.
_PARSER_ERROR = re.compile(r"<\w+: \d{3}, message=(['\"])(.*?)\1>")


def _plain(exc: BaseException) -> str:
    """``exc``'s text for a "connection lost" message, without aiohttp's parser codes."""
    return _PARSER_ERROR.sub(r"\2", str(exc)) or type(exc).__name__
