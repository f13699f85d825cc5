"""``AsyncClient``: build → rate-limit → send with safe retries → parse, for every endpoint.

The retry rules are in :mod:`telnyx_msg._retry` (with the policy table); request mapping is in
:mod:`telnyx_msg._spec`; the network is in :mod:`telnyx_msg._transport`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar
from urllib.parse import quote

import attrs

from telnyx_msg._config import (
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POOL_SIZE,
    RequestOptions,
    Timeout,
    check_retries,
    positive_int,
    resolve_api_key,
    resolve_base_url,
    to_timeout,
)
from telnyx_msg._events import EventHooks, Hook, RequestEvent, ResponseEvent, call_hooks
from telnyx_msg._outcome import NotSentError, SendGate, SendMethod, SendOutcome, send_gate
from telnyx_msg._pagination import AsyncPager
from telnyx_msg._raw import RawResponse
from telnyx_msg._resources import AsyncMode, ResourceTree
from telnyx_msg._retry import (
    BULK_THROTTLE_RETRIES,
    Backoff,
    check_backoff,
    free_retry,
    next_delay,
    parse_seconds,
    server_hint,
)
from telnyx_msg._spec import (
    IDEMPOTENT_METHODS,
    Endpoint,
    Lane,
    describe,
    describe_raw,
)
from telnyx_msg._transport import (
    USER_AGENT,
    AiohttpTransport,
    SendWindow,
    Transport,
    fixed_headers,
    send_window,
)
from telnyx_msg._wire import (
    HttpResponse,
    Operation,
    TransportError,
    WireRequest,
    build_request,
    decode,
    encode_pairs,
    failure,
    finisher,
    json_body,
    page_parser,
    reached_earlier,
    request_id,
    status_error,
    too_large,
    transport_error,
)
from telnyx_msg.errors import (
    APIStatusError,
    ClientClosedError,
    ConfigurationError,
    TelnyxError,
    ValidationError,
)

if TYPE_CHECKING:
    import aiohttp

    from telnyx_msg.models import Page, WebhookEvent
    from telnyx_msg.webhooks import WebhookHeaders, WebhookVerifier

__all__ = ["AsyncClient", "Core", "Limiter", "Webhooks"]

log = logging.getLogger("telnyx_msg")
T = TypeVar("T")


class Limiter(Protocol):
    """What the client needs from a rate limiter (``RateLimits`` or ``RedisRateLimits``)."""

    async def acquire(
        self, sender: str | None, message_type: str = "SMS", *, timeout: float | None = None
    ) -> None:
        """Wait for a token; raise ``RateLimitError`` (with ``retry_after``) at once when the
        wait would exceed ``timeout`` seconds (None: no bound)."""

    def on_response(
        self, sender: str | None, *, status: int, code: str | None, reset_after: float | None
    ) -> None: ...


class _Default:
    """Sentinel: "use the documented default" (distinct from an explicit None)."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()


class Webhooks:
    """``client.webhooks``: verify and parse webhooks with the client's public key.

    The key is ``webhook_public_key=`` or ``$TELNYX_PUBLIC_KEY``; the verifier is built on first
    use (so ``cryptography`` is imported only by code that receives webhooks).
    """

    def __init__(self, public_key: str | bytes | None) -> None:
        self._public_key = public_key
        self._verifier: WebhookVerifier | None = None

    @property
    def verifier(self) -> WebhookVerifier:
        """The :class:`~telnyx_msg.WebhookVerifier` for the configured key."""
        if self._verifier is None:
            from telnyx_msg.webhooks import WebhookVerifier

            key = self._public_key or os.environ.get("TELNYX_PUBLIC_KEY")
            if not key:
                raise ConfigurationError(
                    "no webhook public key: pass webhook_public_key=... to the client or set "
                    "TELNYX_PUBLIC_KEY (Mission Control > Keys & Credentials > Public Key)"
                )
            self._verifier = WebhookVerifier(key)
        return self._verifier

    def unwrap(
        self, raw_body: bytes | bytearray | memoryview | str, headers: WebhookHeaders
    ) -> WebhookEvent:
        """Verify the signature and timestamp, then parse the event. No I/O."""
        event: WebhookEvent = self.verifier.unwrap(raw_body, headers)
        return event

    async def aunwrap(
        self, raw_body: bytes | bytearray | memoryview | str, headers: WebhookHeaders
    ) -> WebhookEvent:
        """Same as :meth:`unwrap`, for symmetry in async code."""
        event: WebhookEvent = await self.verifier.aunwrap(raw_body, headers)
        return event


@attrs.define(eq=False)  # mutable state: identity, like any service object
class _Shared:
    """State shared by a client and its ``with_options`` views."""

    api_key: str = attrs.field(repr=False)  # never in a repr
    base_url: str
    headers: Mapping[str, str] = attrs.field(repr=False)  # carries the Authorization header
    transport: Transport
    limiter: Limiter | None
    webhooks: Webhooks
    hooks: EventHooks
    closed: bool = False
    #: Tasks waiting for the rate limiter or a retry: ``aclose`` cancels them (they raise
    #: ClientClosedError).
    waiting: dict[asyncio.Task[Any], None] = attrs.Factory(dict)
    closing: set[asyncio.Task[Any]] = attrs.Factory(set)
    #: Whether ``limiter.acquire`` takes ``timeout=`` (limiters written before it was added
    #: still work, with unbounded waits).
    limiter_timeout: bool = True
    #: The key as it would appear in a body echoing the request (a proxy's or gateway's page,
    #: a misdirected base_url): masked before anything reads the body. Empty for a key shorter
    #: than any real one (a test's "k"), which would mangle bodies instead.
    echoed_key: bytes = attrs.field(default=b"", repr=False)
    #: Pooled connections the running ``send_many`` runs hold between them (their concurrency).
    bulk_connections: int = 0
    #: The largest 2xx body read (``max_response_size``), also for a transport passed in.
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE


class AsyncClient(ResourceTree[AsyncMode]):
    """The asyncio client for the Telnyx Messaging API.

    ``api_key`` falls back to ``$TELNYX_API_KEY`` and ``base_url`` to ``$TELNYX_BASE_URL``, then
    ``https://api.telnyx.com/v2``. ``timeout`` is seconds (total per attempt, with a 5 s connect
    limit) or a :class:`Timeout`. ``max_retries`` (default 2) and ``backoff`` follow the retry
    policy in ``docs/errors.md``: sends are never retried when they may have reached Telnyx,
    unless the call carries an idempotency key. ``rate_limits`` defaults to ``RateLimits()``;
    ``None`` turns client-side limiting off. ``session`` reuses your ``aiohttp.ClientSession``
    (then the client never closes it). ``event_hooks`` (``{"request": [...], "response":
    [...]}``) observe every attempt, see :class:`RequestEvent` and :class:`ResponseEvent`
    (docs/configuration.md). ``max_response_size`` (bytes, default 10 MB, after
    decompression) caps a response body; a bigger 2xx raises
    :class:`~telnyx_msg.APIResponseValidationError`. ``transport`` replaces the network (the
    I/O seam; e.g. ``telnyx_msg.testing.MockTransport(handler)`` in unit tests): everything
    else (validation, rate limits, retries, parsing, errors) runs as in production. Use as
    ``async with`` or call ``aclose()``; a closed client raises
    :class:`~telnyx_msg.ClientClosedError`.
    """

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
        key = resolve_api_key(api_key)
        if transport is not None and session is not None:
            raise ConfigurationError(
                "pass session= or transport=, not both (a transport owns its connections)"
            )
        url = resolve_base_url(base_url)
        positive_int("pool_size", pool_size)
        positive_int("max_response_size", max_response_size)
        if rate_limits is DEFAULT:
            from telnyx_msg._ratelimit import RateLimits

            rate_limits = RateLimits()
        self._shared = _Shared(
            api_key=key,
            base_url=url,
            headers=fixed_headers(
                {
                    "Authorization": f"Bearer {key}",
                    "Accept": "application/json",
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                }
            ),
            transport=transport
            if transport is not None
            else AiohttpTransport(
                session, pool_size=pool_size, max_response_size=max_response_size
            ),
            limiter=rate_limits,
            webhooks=Webhooks(webhook_public_key),
            hooks=EventHooks.from_mapping(event_hooks),
            limiter_timeout=_takes_timeout(rate_limits),
            echoed_key=key.encode() if len(key) >= 8 else b"",
            max_response_size=max_response_size,
        )
        self._configure(to_timeout(timeout), check_retries(max_retries), check_backoff(backoff))

    def _configure(self, timeout: Timeout, max_retries: int, backoff: Backoff) -> None:
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._is_view = False
        self.webhooks = self._shared.webhooks
        self._attach_resources(self)

    # --- public ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root every path is joined to."""
        return self._shared.base_url

    @property
    def timeout(self) -> Timeout:
        """The default timeout of this client (or view)."""
        return self._timeout

    @property
    def max_retries(self) -> int:
        """The default number of retries of this client (or view)."""
        return self._max_retries

    @property
    def rate_limits(self) -> Limiter | None:
        """The client-side rate limiter (None when limiting is off)."""
        return self._shared.limiter

    def with_options(
        self,
        *,
        timeout: float | Timeout = DEFAULT,
        max_retries: int = DEFAULT,
        backoff: Backoff | None = DEFAULT,
    ) -> AsyncClient:
        """A cheap view with other defaults, sharing this client's session and rate limiter.

        Closing a view does nothing; close the client it came from.
        """
        view = AsyncClient.__new__(AsyncClient)
        view._shared = self._shared
        view._configure(
            self._timeout if timeout is DEFAULT else to_timeout(timeout),
            self._max_retries if max_retries is DEFAULT else check_retries(max_retries),
            self._backoff if backoff is DEFAULT else check_backoff(backoff),
        )
        view._is_view = True
        return view

    async def aclose(self) -> None:
        """Close the HTTP session this client created (a session you passed in stays open).

        Await it in the event loop that used the client (``async with`` does): awaited in
        another one (a later ``asyncio.run(client.aclose())``), the client is closed but its
        connections, which belong to the first loop, are left to the garbage collector.
        """
        if self._is_view:
            return
        shared = self._shared
        shared.closed = True
        for task in list(shared.waiting):  # nothing written now: stop waiting for a token/retry
            if task in shared.closing:  # an aclose() racing this one cancelled it already
                continue
            shared.closing.add(task)
            task.cancel()
        await shared.transport.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        options: RequestOptions | None = None,
    ) -> Any:
        """Call any Telnyx path (relative to ``base_url``) and return the decoded JSON body.

        For what this SDK does not model yet. The call goes through the same pipeline as the
        methods: auth, retries (by method; a POST only with an idempotency key), the rate limits
        when ``path`` is a send endpoint, the error mapping. ``params`` are encoded like the
        methods' query arguments (``{"filter": {"from": ...}}`` -> ``filter[from]=...``).
        """
        call = _raw_call(method, path, json, params, options)
        response = await self._call(call.endpoint, call)
        return decode(response, call.endpoint)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        # Never the API key.
        return (
            f"AsyncClient(base_url={self._shared.base_url!r}, "
            f"timeout={self._timeout.total:g}, max_retries={self._max_retries})"
        )

    # --- binding endpoint specs to methods (see _resources.Op) --------------------------------

    def _send_many(
        self,
        requests: Any,
        concurrency: int,
        method: SendMethod,
        on_stop: Callable[[SendOutcome], None] | None,
        skip_optouts: bool,
    ) -> AsyncIterator[SendOutcome]:
        return Core(self).send_many(requests, concurrency, method, on_stop, skip_optouts)

    def _bind(self, endpoint: Endpoint[Any, Any], name: str) -> Callable[..., Any]:
        if endpoint.paged:
            pager = Core(self).pager(endpoint)

            def list_method(*args: Any, **kwargs: Any) -> AsyncPager[Any]:
                return AsyncPager(pager(make_request(endpoint, args, kwargs, name)))

            method: Callable[..., Any] = list_method
        else:
            call = self._call
            finish = finisher(endpoint)

            # One coroutine per call on top of _call: each layer is an object the garbage
            # collector must track for the whole round trip.
            async def call_method(*args: Any, **kwargs: Any) -> Any:
                request = make_request(endpoint, args, kwargs, name)
                return finish(await call(endpoint, request), request)

            method = call_method
        describe(method, endpoint, name, "AsyncPager")
        return method

    def _bind_raw(self, endpoint: Endpoint[Any, Any], name: str) -> Callable[..., Any]:
        """The ``with_raw_response`` form of a method: same pipeline, a :class:`RawResponse`."""
        run = Core(self).raw_runner(endpoint)

        async def raw_method(*args: Any, **kwargs: Any) -> RawResponse[Any]:
            return await run(make_request(endpoint, args, kwargs, name))

        describe_raw(raw_method, endpoint, name, "AsyncPager")
        return raw_method

    # --- the request pipeline: build (_wire) -> limit -> send (transport) -> retry (_retry) ----

    async def _call(
        self, op: Operation, request: Any, attempts: list[int] | None = None
    ) -> HttpResponse:
        """Send one validated request with the retry policy; return the 2xx response.

        ``attempts``, when given, receives the number of retries the call took.
        """
        shared = self._usable(op)
        timeout, max_retries = self._settings(request.options)
        limiter = shared.limiter
        wire = build_request(op, request, shared.base_url, shared.headers, limiter is not None)
        if wire.message_type is None:  # not a send: not rate limited
            limiter = None
        gate = send_gate.get()  # a send_many item's: this call is that item's send
        if gate is not None:
            send_gate.set(None)  # a call an event hook makes meanwhile is not the item
        attempt = 0
        reached = False  # whether an attempt so far may have taken effect
        free = 0  # a send_many item's 429s not counted against max_retries (see _retry)
        while True:
            try:
                if limiter is not None:
                    lane, kind = wire.sender, wire.message_type or "SMS"
                    await self._acquire(limiter, lane, kind, timeout, bounded=gate is None)
                _check_writable(shared, wire, gate)
            except TelnyxError as exc:  # the limiter failed, or the client closed meanwhile
                if reached:
                    reached_earlier(exc)
                raise
            response, error = await self._attempt(wire, attempt, timeout, gate)
            if limiter is not None:
                _report(limiter, wire, response, error)
            if error is None:
                if attempts is not None:
                    attempts.append(attempt)
                return response  # type: ignore[return-value]  # no error: a 2xx response
            failed = failure(response, error)
            free += free_retry(failed, gate is not None, max_retries, free)
            # The free 429s extend the allowance; the backoff still grows with every retry.
            delay = next_delay(failed, attempt, max_retries + free, wire.retry_safe, self._backoff)
            if delay is None:
                raise reached_earlier(error) if reached else error
            reached = reached or getattr(error, "outcome_unknown", False)
            if gate is not None:  # a send stopped before its retry was never processed
                gate.written = reached  # unless an attempt so far may have been
            what = type(error).__name__ if response is None else response.status
            log.info(
                "retrying %s %s after %s in %.2f s (retry %d of %d%s)",
                *(wire.method, wire.path, what, delay, attempt + 1, max_retries),
                f" + up to {BULK_THROTTLE_RETRIES} for 429s" if free else "",
            )
            await self._sleep_to_retry(delay, wire, reached)
            attempt += 1

    async def _attempt(
        self, wire: WireRequest, attempt: int, timeout: Timeout, gate: SendGate | None
    ) -> tuple[HttpResponse | None, TelnyxError | None]:
        """One round trip, observed by the event hooks and the debug log: the response and,
        unless it is a readable 2xx, the mapped error."""
        shared = self._shared
        hooks = shared.hooks
        event = None
        if hooks.request or hooks.response:
            event = RequestEvent(wire.method, wire.path, wire.url, attempt, wire.idempotency_key)
            try:
                await call_hooks(hooks.request, event)
            except (asyncio.CancelledError, Exception) as exc:
                # Nothing was sent; the hooks that saw the event see it end (also when the call
                # was cancelled while a hook ran).
                if hooks.response:
                    await call_hooks(hooks.response, ResponseEvent(event, None, 0.0, None, exc))
                raise
        if shared.transport.other_loop():
            # Another loop opened the session while this call waited (in a request hook, for
            # the rate limiter): checked again here, where nothing awaits before the send.
            wrong_loop = _other_loop_error(wire.method, wire.path)
            if event is not None and hooks.response:
                await call_hooks(hooks.response, ResponseEvent(event, None, 0.0, None, wrong_loop))
            raise wrong_loop
        unwritten_token = window = None
        if gate is not None:
            # From here on the request may reach Telnyx; not before: a request hook that
            # raised (the bulk CLI's journal write on a full disk) stopped it unwritten. A
            # cancel before the transport had a connection (waiting for a pooled one, TCP/TLS
            # set-up) still wrote nothing: the transport records that in the SendWindow.
            earlier = gate.written
            gate.written = True
            window = SendWindow()
            unwritten_token = send_window.set(window)
        started = time.perf_counter()
        response: HttpResponse | None = None
        error: TelnyxError | None = None
        try:
            try:
                response = await shared.transport.send(
                    wire.method, wire.url, wire.headers, wire.data, timeout
                )
            except asyncio.CancelledError:
                if gate is not None and window is not None and window.unwritten:
                    gate.written = earlier  # stopped before any send under it connected
                raise
            finally:
                if unwritten_token is not None:
                    send_window.reset(unwritten_token)
        except TransportError as exc:
            if shared.echoed_key and shared.echoed_key.decode() in str(exc):
                # A reply aiohttp could not parse, echoing the request's headers: its text
                # (here and in the aiohttp error it came from) holds the key.
                exc = _masked_error(exc, shared.echoed_key.decode())
            error = transport_error(exc, wire)
            error.__cause__ = exc
            cause: Exception | None = exc
        except (asyncio.CancelledError, Exception) as exc:
            # The caller gave up (a timeout around the call, a cancelled handler), or a
            # transport failed in a way of its own (a MockTransport handler's bug): the attempt
            # still ends for the log and the hooks, so a gauge or span the request hook opened
            # closes. The request may have been written: the outcome is unknown.
            if log.isEnabledFor(logging.DEBUG):
                _log_attempt(wire, None, attempt, started, exc)
            if event is not None and hooks.response:
                elapsed = time.perf_counter() - started
                await call_hooks(hooks.response, ResponseEvent(event, None, elapsed, None, exc))
            raise
        else:
            cause = None
            if shared.echoed_key:  # never in an error, a log, an event or a model
                response = _mask_key(response, shared.echoed_key)
            if not response.too_large and len(response.body) > shared.max_response_size:
                # A transport passed in (MockTransport) reads whatever it is given: the
                # client's limit still applies, as with its own aiohttp transport (which
                # drops the body, of any status).
                response = response._replace(body=b"", too_large=True)
            if response.status >= 300:  # Telnyx does not redirect: a 3xx is not acceptance
                error = status_error(response, wire)
            elif response.too_large:
                error = too_large(response, wire, shared.max_response_size)
        if log.isEnabledFor(logging.DEBUG):
            _log_attempt(wire, response, attempt, started, cause)
        if event is not None and hooks.response:
            status = None if response is None else response.status
            rid = None if response is None else request_id(response.headers)
            elapsed = time.perf_counter() - started
            # A transport failure reaches the hooks as the public error the call raises
            # (APIConnectionError, APITimeoutError), not the transport's internal one.
            ended = error if cause is not None else None
            await call_hooks(hooks.response, ResponseEvent(event, status, elapsed, rid, ended))
        return response, error

    def _settings(self, options: RequestOptions | None) -> tuple[Timeout, int]:
        """The call's timeout and retries: its options', else this client's."""
        if options is None:
            return self._timeout, self._max_retries
        timeout = self._timeout if options.timeout is None else to_timeout(options.timeout)
        retries = self._max_retries if options.max_retries is None else options.max_retries
        return timeout, retries

    def _usable(self, op: Operation) -> _Shared:
        shared = self._shared
        if shared.closed:
            raise ClientClosedError(
                "this client is closed; create a new one", method=op.method, path=op.path
            )
        if shared.transport.other_loop():
            raise _other_loop_error(op.method, op.path)
        return shared

    async def _acquire(
        self,
        limiter: Limiter,
        lane: str | None,
        message_type: str,
        timeout: Timeout,
        *,
        bounded: bool,
    ) -> None:
        """Wait for the rate limiter, at most the call's total timeout (``bounded``), or until
        ``aclose``.

        A ``send_many`` item waits as long as the limiter says: a bulk run paces itself
        through a 429's pause (a full sender queue pauses its lane 144 s, past the default
        timeout) rather than writing off the rest of its input as ``not_sent`` in a second.
        """
        if self._shared.limiter_timeout and bounded:
            total = None if timeout.total == math.inf else timeout.total
            waiting = limiter.acquire(lane, message_type, timeout=total)
        else:
            waiting = limiter.acquire(lane, message_type)
        await self._wait(
            waiting,
            lambda: ClientClosedError(
                "not sent: the client was closed while this call waited for the rate limiter"
            ),
        )

    async def _sleep_to_retry(self, delay: float, wire: WireRequest, reached: bool) -> None:
        """Sleep before a retry, or until ``aclose``: a closing client neither waits out a
        long Retry-After nor has the call cancelled as if its request were on the wire."""

        def closed() -> TelnyxError:
            method, path = wire.method, wire.path
            error = ClientClosedError(
                f"{method} {path}: not sent, the client was closed while this call waited to retry",
                method=method,
                path=path,
            )
            return reached_earlier(error) if reached else error

        await self._wait(asyncio.sleep(delay), closed)

    async def _wait(self, waiting: Awaitable[None], closed: Callable[[], TelnyxError]) -> None:
        """Await ``waiting`` (nothing is written meanwhile); ``aclose`` ends it with the
        ``closed()`` error, while another cancellation (the caller's own) propagates."""
        shared = self._shared
        if shared.closed:  # closed since this call began (its attempt failed as the
            # session closed under it): no backoff to wait out, no token to take
            if inspect.iscoroutine(waiting):
                waiting.close()
            raise closed()
        task = asyncio.current_task()
        cancels = 0
        if task is not None:
            shared.waiting[task] = None
            if sys.version_info >= (3, 11):
                cancels = task.cancelling()
        try:
            await waiting
        except asyncio.CancelledError:
            if task is None or task not in shared.closing:
                raise
            shared.closing.discard(task)
            # aclose()'s cancel is withdrawn; one the caller made in the same loop turn (its
            # own timeout, a task.cancel()) still stands and wins.
            if sys.version_info >= (3, 11) and task.uncancel() > cancels:
                raise
            raise closed() from None
        finally:
            if task is not None:
                shared.waiting.pop(task, None)


def _other_loop_error(method: str, path: str) -> ConfigurationError:
    return ConfigurationError(
        f"{method} {path}: this AsyncClient was first used in another "
        "event loop (e.g. an earlier asyncio.run() that has ended, or the parent "
        "process before a fork); its connections belong to that loop. Create the "
        "client inside the loop that uses it (in your async main()), or use the "
        "blocking telnyx_msg.Client, which keeps its own loop"
    )


def _check_writable(shared: _Shared, wire: WireRequest, gate: SendGate | None) -> None:
    """Last check before the request is written: the client may have closed, or a bulk run
    stopped (``gate``, a ``send_many`` item's, which ``_attempt`` marks written after the
    request hooks), while this call waited for the limiter or a backoff."""
    method, path = wire.method, wire.path
    if shared.closed:
        raise ClientClosedError(
            f"{method} {path}: not sent, the client was closed", method=method, path=path
        )
    if gate is not None and gate.stopped:
        raise NotSentError(f"{method} {path}: not sent, the bulk run was stopped")


def _report(
    limiter: Limiter, wire: WireRequest, response: HttpResponse | None, error: TelnyxError | None
) -> None:
    """Tell the limiter what Telnyx answered (a 429 pauses the lane; see ``_ratelimit``)."""
    if response is None:
        return
    if response.status < 300:
        limiter.on_response(wire.sender, status=response.status, code=None, reset_after=None)
        return
    reset = response.headers.get("x-ratelimit-reset")
    reset_after = None if reset is None else parse_seconds(reset)
    if reset_after is None and response.status == 429:
        # No x-ratelimit-reset: the wait the retry obeys (Retry-After, retry-after-ms) is the
        # account's pause too, or the other sends keep arriving in the closed window.
        hint = server_hint(response.headers, response.status)
        # Not rounded up as x-ratelimit-reset's whole seconds are: the whole wait is the pause
        # (nudged off a whole number, which the limiter would shorten by 0.9 s).
        reset_after = hint if hint is None or not hint > 0 else math.nextafter(hint, math.inf)
    limiter.on_response(
        wire.sender,
        status=response.status,
        code=error.code if isinstance(error, APIStatusError) else None,
        reset_after=reset_after,
    )


class Core:
    """The async core as the blocking facade and the resources use it (the one internal
    interface to a client's pipeline): per endpoint, a coroutine function that runs a
    validated request model through ``AsyncClient._call`` and parses the result."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def release(self) -> tuple[Callable[[], Awaitable[None]], Limiter | None]:
        """What closing an abandoned client takes: its transport's ``aclose`` and its limiter
        (not the client, whose event hooks may hold the object holding the facade)."""
        shared = self._client._shared
        return shared.transport.aclose, shared.limiter

    def runner(self, endpoint: Endpoint[Any, T]) -> Callable[[Any], Awaitable[T]]:
        """``run(request) -> result`` for a non-paged endpoint."""
        call = self._client._call
        finish = finisher(endpoint)

        async def run(request: Any) -> T:
            return finish(await call(endpoint, request), request)

        return run

    def pager(
        self, endpoint: Endpoint[Any, T]
    ) -> Callable[[Any], Callable[[int | None], Awaitable[tuple[Page[T], list[Any]]]]]:
        """``fetcher(request)`` -> ``fetch(page_number)`` for a paged endpoint."""
        call = self._client._call
        parse_page = page_parser(endpoint)

        def fetcher(request: Any) -> Callable[[int | None], Awaitable[tuple[Page[T], list[Any]]]]:
            async def fetch(number: int | None) -> tuple[Page[T], list[Any]]:
                req = request if number is None else attrs.evolve(request, page_number=number)
                return parse_page(request, await call(endpoint, req), number)

            return fetch

        return fetcher

    def raw_runner(
        self, endpoint: Endpoint[Any, Any]
    ) -> Callable[[Any], Awaitable[RawResponse[Any]]]:
        """``run(request) -> RawResponse``; its ``parse()`` gives what ``runner`` returns (for
        a paged endpoint, an AsyncPager seeded with the page already fetched)."""
        call = self._client._call
        if endpoint.paged:
            fetcher = self.pager(endpoint)
            parse_page = page_parser(endpoint)

            def finish(request: Any, response: HttpResponse) -> Callable[[], Any]:
                def parse() -> AsyncPager[Any]:
                    fetch = fetcher(request)
                    first = parse_page(request, response, None)

                    async def seeded(number: int | None) -> tuple[Page[Any], list[Any]]:
                        return first if number is None else await fetch(number)

                    return AsyncPager(seeded)

                return parse
        else:
            finish_one = finisher(endpoint)

            def finish(request: Any, response: HttpResponse) -> Callable[[], Any]:
                return lambda: finish_one(response, request)

        async def run(request: Any) -> RawResponse[Any]:
            started = time.perf_counter()
            attempts: list[int] = []
            response = await call(endpoint, request, attempts)
            return RawResponse(
                status=response.status,
                headers=response.headers,
                body=response.body,
                request_id=request_id(response.headers),
                retries_taken=attempts[0],
                elapsed=time.perf_counter() - started,
                parse=finish(request, response),
            )

        return run

    def send_many(
        self,
        requests: Any,
        concurrency: int,
        method: SendMethod,
        on_stop: Callable[[SendOutcome], None] | None,
        skip_optouts: bool,
    ) -> AsyncIterator[SendOutcome]:
        """``messages.send_many``: the bulk engine (``_bulk``, loaded on first use) over this
        client."""
        from telnyx_msg import _bulk  # the engine sits on top of the client, not under it

        shared = self._client._shared
        if shared.closed:  # refused at the call, as the blocking Client does: nothing pulled
            raise ClientClosedError("this client is closed; create a new one")

        def reserve(connections: int) -> Callable[[], None]:
            if shared.closed:  # closed since the call, before the run began: nothing pulled
                raise ClientClosedError("this client is closed; create a new one")
            # Runs at once on one client (threads sharing a blocking Client) add up: sized to
            # the largest alone, their sends waited for connections and some ended not_sent.
            shared.bulk_connections += connections
            shared.transport.grow_pool(shared.bulk_connections)

            def release() -> None:
                shared.bulk_connections -= connections

            return release

        return _bulk.send_many(
            self._client,
            shared.transport.grow_pool,
            requests,
            concurrency=concurrency,
            method=method,
            on_stop=on_stop,
            skip_optouts=skip_optouts,
            reserve=reserve,
        )


class _RawEndpoint(NamedTuple):
    """Enough of an :class:`Endpoint` for ``_call`` to send a ``client.request``."""

    method: str
    path: str
    query: str
    body: dict[str, Any] | None
    lane: Lane | None
    idempotent: bool
    accepts_idempotency_key: bool

    def build(self, _: Any) -> tuple[str, str, dict[str, Any] | None]:
        return self.path, self.query, self.body


class _RawCall(NamedTuple):
    endpoint: _RawEndpoint
    options: RequestOptions | None


_RAW_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def _raw_call(
    method: str,
    path: str,
    json: Any,
    params: Mapping[str, Any] | None,
    options: RequestOptions | None,
) -> _RawCall:
    """Check and encode ``client.request`` arguments before any I/O."""
    from telnyx_msg import endpoints

    verb = method.upper() if isinstance(method, str) else ""
    if verb not in _RAW_METHODS:
        raise ValidationError(
            "method", f"must be one of {', '.join(sorted(_RAW_METHODS))}, got {method!r}"
        )
    if not isinstance(path, str) or not path.startswith("/") or "?" in path:
        raise ValidationError(
            "path", f"must start with '/' and have no query (use params=), got {path!r}"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ValidationError("path", f"must not contain control characters, got {path!r}")
    # %2e is a dot too (RFC 3986 section 2.3): normalising proxies decode it first.
    segments = path.replace("%2e", ".").replace("%2E", ".").split("/")
    if "." in segments or ".." in segments:
        # Sent as is, but a proxy that normalises paths would resolve it outside base_url.
        raise ValidationError("path", f"must not have '.' or '..' segments, got {path!r}")
    # Characters a path cannot carry as they are (a space, non-ASCII) are percent-encoded;
    # existing %XX escapes and the path's own delimiters are kept.
    try:
        path = quote(path, safe="/%:@!$&'()*+,;=-._~")
    except UnicodeEncodeError:
        raise ValidationError("path", f"is not valid Unicode text, got {path!r}") from None
    if json is not None and not isinstance(json, Mapping):
        raise ValidationError(
            "json", f"must be a JSON object (a mapping), got {type(json).__name__}"
        )
    if params is not None and not isinstance(params, Mapping):
        raise ValidationError("params", f"must be a mapping, got {type(params).__name__}")
    if options is not None and not isinstance(options, RequestOptions):
        raise ValidationError("options", "must be telnyx_msg.RequestOptions(...)")
    # A send endpoint's path takes the account's and the sender's rate limits, as its method,
    # however it is spelled ("/messages/", "//messages").
    canonical = "/" + "/".join(segment for segment in segments if segment)
    known = next(
        (
            e
            for e in vars(endpoints).values()
            if isinstance(e, Endpoint) and e.method == verb and e.path == canonical
        ),
        None,
    )
    accepts_key = known is not None and known.accepts_idempotency_key  # the send paths
    if verb == "POST" and not accepts_key and options and options.idempotency_key is not None:
        # The key makes a POST retryable; where Telnyx does not deduplicate by it (a schedule,
        # a new profile), a retry could act twice. The methods refuse it there too.
        raise ValidationError(
            "idempotency_key",
            f"POST {canonical} does not accept an Idempotency-Key (Telnyx deduplicates sends "
            "only); to send the header anyway, without retries, use extra_headers",
        )
    return _RawCall(
        _RawEndpoint(
            verb,
            path,
            encode_pairs(params or {}),
            None if json is None else json_body(json),
            None if known is None else known.lane,
            verb in IDEMPOTENT_METHODS,
            accepts_key,
        ),
        options,
    )


def make_request(
    endpoint: Endpoint[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str = ""
) -> Any:
    """Build and validate an endpoint's request model from call arguments (no I/O).

    ``name`` is the public method (``messages.send``) that errors name.
    """
    try:
        request = endpoint.request(*args, **kwargs)
    except TypeError as exc:
        raise _bad_arguments(endpoint, name, exc) from None
    for plan in endpoint.required:
        if getattr(request, plan.name) is None:
            raise ValidationError(plan.wire, "is required")
    options = request.options
    if (
        options is not None
        and options.idempotency_key is not None
        and not endpoint.accepts_idempotency_key
    ):
        raise ValidationError(
            "idempotency_key",
            f"{endpoint.method} {endpoint.path} does not accept an Idempotency-Key",
        )
    return request


_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")
_MISSING = re.compile(r"missing \d+ required (?:keyword-only |positional )?arguments?: (.+)")


def _bad_arguments(endpoint: Endpoint[Any, Any], name: str, exc: TypeError) -> ValidationError:
    """A call's TypeError as a ValidationError naming the method and suggesting the fix."""
    method = f"{name or endpoint.method + ' ' + endpoint.path}()"
    parameters = inspect.signature(endpoint.request).parameters.values()
    known = [p.name for p in parameters]
    text = str(exc)
    unexpected = _UNEXPECTED.search(text)
    if unexpected is not None:
        import difflib  # only on this error path: not worth its import time for every client

        word = unexpected.group(1)
        close = difflib.get_close_matches(word, known, n=1)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else (f"; it takes {', '.join(k for k in known if k != 'options')} and options")
        )
        return ValidationError(word, f"{method} got an unexpected keyword argument {word!r}{hint}")
    missing = _MISSING.search(text)
    if missing is not None:
        names = re.findall(r"'(\w+)'", missing.group(1))
        return ValidationError(
            names[0] if names else "arguments",
            f"{method} needs {', '.join(n + '=' for n in names)}",
        )
    if "positional argument" in text:
        positional = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
        return ValidationError(
            "arguments",
            f"{method} takes {len(positional)} positional "
            f"argument(s) ({', '.join(positional) or 'none'}); pass the "
            "others by keyword",
        )
    return ValidationError("arguments", f"{method}: {text.split(') ', 1)[-1]}")


def _takes_timeout(limiter: Limiter | None) -> bool:
    if limiter is None:
        return False
    try:
        parameters = inspect.signature(limiter.acquire).parameters
    except (TypeError, ValueError):
        return False
    return "timeout" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _mask_key(response: HttpResponse, key: bytes) -> HttpResponse:
    """``response`` with the API key shown as ``***`` wherever a proxy or gateway echoed it
    (the body, a header such as the request id)."""
    if key in response.body:
        response = response._replace(body=response.body.replace(key, b"***"))
    text = key.decode()
    if any(text in value for value in response.headers.values()):
        headers = [(name, value.replace(text, "***")) for name, value in response.headers.items()]
        response = response._replace(headers=fixed_headers(headers))
    return response


def _masked_error(exc: TransportError, key: str) -> TransportError:
    """``exc`` with the key shown as ``***``, and without the chain that also holds it."""
    masked = TransportError(
        str(exc).replace(key, "***"),
        reached=exc.reached,
        timeout=exc.timeout,
        closed=exc.closed,
        final=exc.final,
    )
    masked.__suppress_context__ = True
    return masked


def _log_attempt(
    wire: WireRequest,
    response: HttpResponse | None,
    attempt: int,
    started: float,
    exc: BaseException | None,
) -> None:
    log.debug(
        "%s %s -> %s attempt=%d elapsed=%.1fms request_id=%s",
        wire.method,
        wire.path,
        type(exc).__name__ if response is None else response.status,
        attempt,
        (time.perf_counter() - started) * 1000,
        None if response is None else request_id(response.headers),
    )
