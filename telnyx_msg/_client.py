"""``AsyncClient``: build → rate-limit → send with safe retries → parse, for every endpoint.

The retry rules are in :mod:`telnyx_msg._retry` (with the policy table); request mapping is in
:mod:`telnyx_msg._spec`; the network is in :mod:`telnyx_msg._transport`.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

import attrs

from telnyx_msg._bulk import (
    SEND_METHODS,
    NotSentError,
    SendMethod,
    SendOutcome,
    run_send_many,
    send_gate,
)
from telnyx_msg._config import (
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POOL_SIZE,
    RequestOptions,
    Timeout,
    check_retries,
    resolve_api_key,
    resolve_base_url,
    to_timeout,
)
from telnyx_msg._events import EventHooks, Hook, RequestEvent, ResponseEvent, call_hooks
from telnyx_msg._pagination import AsyncPager
from telnyx_msg._raw import RawResponse
from telnyx_msg._resources import AsyncMode, ResourceTree
from telnyx_msg._retry import (
    Backoff,
    parse_seconds,
    server_hint,
    status_outcome_unknown,
    status_retryable,
)
from telnyx_msg._spec import IDEMPOTENT_METHODS, Endpoint, describe, encode_query, json_value
from telnyx_msg._transport import (
    USER_AGENT,
    AiohttpTransport,
    HttpResponse,
    Transport,
    TransportError,
    fixed_headers,
)
from telnyx_msg.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    ErrorDetail,
    ValidationError,
    status_error_class,
)
from telnyx_msg.models import Page, PageMeta, WebhookEvent

if TYPE_CHECKING:
    import aiohttp

    from telnyx_msg.webhooks import WebhookVerifier

__all__ = ["AsyncClient", "Limiter", "Webhooks"]

log = logging.getLogger("telnyx_msg")
T = TypeVar("T")

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "telnyx-request-id")
_JSON_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_JSON_DECODE = json.JSONDecoder().decode


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


class _Operation(Protocol):
    """What the request pipeline needs of an operation (an :class:`Endpoint`, or the ad-hoc
    one of :meth:`AsyncClient.request`)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def send(self) -> bool: ...
    @property
    def idempotent(self) -> bool: ...
    def build(self, request: Any, /) -> tuple[str, str, dict[str, Any] | None]: ...


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
        self, raw_body: bytes | bytearray | memoryview | str, headers: Mapping[str, str]
    ) -> WebhookEvent:
        """Verify the signature and timestamp, then parse the event. No I/O."""
        event: WebhookEvent = self.verifier.unwrap(raw_body, headers)
        return event

    async def aunwrap(
        self, raw_body: bytes | bytearray | memoryview | str, headers: Mapping[str, str]
    ) -> WebhookEvent:
        """Same as :meth:`unwrap`, for symmetry in async code."""
        event: WebhookEvent = await self.verifier.aunwrap(raw_body, headers)
        return event


@attrs.define
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
    #: Tasks waiting in the rate limiter: ``aclose`` cancels them (they raise ClientClosedError).
    waiting: dict[asyncio.Task[Any], None] = attrs.Factory(dict)
    closing: set[asyncio.Task[Any]] = attrs.Factory(set)
    #: Whether ``limiter.acquire`` takes ``timeout=`` (limiters written before it was added
    #: still work, with unbounded waits).
    limiter_timeout: bool = True


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
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError(f"pool_size must be an int >= 1, got {pool_size!r}")
        if (
            isinstance(max_response_size, bool)
            or not isinstance(max_response_size, int)
            or max_response_size < 1
        ):
            raise ConfigurationError(
                f"max_response_size must be an int >= 1 (bytes), got {max_response_size!r}"
            )
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
        )
        self._configure(to_timeout(timeout), check_retries(max_retries), backoff or Backoff())

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
        backoff: Backoff = DEFAULT,
    ) -> AsyncClient:
        """A cheap view with other defaults, sharing this client's session and rate limiter.

        Closing a view does nothing; close the client it came from.
        """
        view = AsyncClient.__new__(AsyncClient)
        view._shared = self._shared
        view._configure(
            self._timeout if timeout is DEFAULT else to_timeout(timeout),
            self._max_retries if max_retries is DEFAULT else check_retries(max_retries),
            self._backoff if backoff is DEFAULT else backoff,
        )
        view._is_view = True
        return view

    async def aclose(self) -> None:
        """Close the HTTP session this client created (a session you passed in stays open)."""
        if self._is_view:
            return
        shared = self._shared
        shared.closed = True
        for task in list(shared.waiting):  # nothing written yet: stop waiting for a token
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
        return _decode(response, call.endpoint)

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
        senders = check_send_many(self, concurrency, method)
        return run_send_many(
            senders,
            requests,
            concurrency=concurrency,
            method=method,
            on_stop=on_stop,
            load_optouts=self._load_optouts if skip_optouts else None,
        )

    async def _load_optouts(self) -> set[tuple[str, str]]:
        """Every ``(from, to)`` opt-out pair of the account (one request per page)."""
        return {
            (o.from_ or "", o.to or "") async for o in self.messaging_optouts.list(page_size=250)
        }

    def _bind(self, endpoint: Endpoint[Any, Any], name: str) -> Callable[..., Any]:
        if endpoint.paged:
            pager = self._pager_factory(endpoint)

            def list_method(*args: Any, **kwargs: Any) -> AsyncPager[Any]:
                return AsyncPager(pager(make_request(endpoint, args, kwargs, name)))

            method: Callable[..., Any] = list_method
        else:
            call = self._call
            finish = _finisher(endpoint)

            # One coroutine per call on top of _call: each layer is an object the garbage
            # collector must track for the whole round trip.
            async def call_method(*args: Any, **kwargs: Any) -> Any:
                return finish(await call(endpoint, make_request(endpoint, args, kwargs, name)))

            method = call_method
        describe(method, endpoint, name, "AsyncPager")
        return method

    def _bind_raw(self, endpoint: Endpoint[Any, Any], name: str) -> Callable[..., Any]:
        """The ``with_raw_response`` form of a method: same pipeline, a :class:`RawResponse`."""
        run = self._raw_runner(endpoint)

        async def raw_method(*args: Any, **kwargs: Any) -> RawResponse[Any]:
            return await run(make_request(endpoint, args, kwargs, name))

        describe(raw_method, endpoint, name, "AsyncPager")
        raw_method.__signature__ = raw_method.__signature__.replace(  # type: ignore[attr-defined]
            return_annotation=f"RawResponse[{_annotation(raw_method)}]"
        )
        return raw_method

    def _raw_runner(
        self, endpoint: Endpoint[Any, Any]
    ) -> Callable[[Any], Awaitable[RawResponse[Any]]]:
        """``run(request) -> RawResponse`` for one endpoint (the blocking facade calls this)."""
        call = self._call
        if endpoint.paged:
            fetcher = self._pager_factory(endpoint)
            parse_page = self._page_parser(endpoint)

            def finish(request: Any, response: HttpResponse) -> Callable[[], Any]:
                def parse() -> AsyncPager[Any]:
                    fetch = fetcher(request)
                    first = parse_page(request, response, None)  # the page already fetched

                    async def seeded(number: int | None) -> tuple[Page[Any], list[Any]]:
                        return first if number is None else await fetch(number)

                    return AsyncPager(seeded)

                return parse
        else:
            finish_one = _finisher(endpoint)

            def finish(request: Any, response: HttpResponse) -> Callable[[], Any]:
                return lambda: finish_one(response)

        async def run(request: Any) -> RawResponse[Any]:
            started = time.perf_counter()
            attempts: list[int] = []
            response = await call(endpoint, request, attempts)
            return RawResponse(
                status=response.status,
                headers=response.headers,
                body=response.body,
                request_id=_request_id(response.headers),
                retries_taken=attempts[0],
                elapsed=time.perf_counter() - started,
                parse=finish(request, response),
            )

        return run

    def _runner(self, endpoint: Endpoint[Any, T]) -> Callable[[Any], Awaitable[T]]:
        """``run(request) -> result`` for one endpoint (the blocking facade calls this)."""
        call = self._call
        finish = _finisher(endpoint)

        async def run(request: Any) -> T:
            return finish(await call(endpoint, request))

        return run

    def _pager_factory(
        self, endpoint: Endpoint[Any, T]
    ) -> Callable[[Any], Callable[[int | None], Awaitable[tuple[Page[T], list[Any]]]]]:
        """``fetcher(request)`` → ``fetch(page_number)`` for a paged endpoint."""

        call = self._call
        parse_page = self._page_parser(endpoint)

        def fetcher(request: Any) -> Callable[[int | None], Awaitable[tuple[Page[T], list[Any]]]]:
            async def fetch(number: int | None) -> tuple[Page[T], list[Any]]:
                req = request if number is None else attrs.evolve(request, page_number=number)
                return parse_page(request, await call(endpoint, req), number)

            return fetch

        return fetcher

    @staticmethod
    def _page_parser(
        endpoint: Endpoint[Any, T],
    ) -> Callable[[Any, HttpResponse, int | None], tuple[Page[T], list[Any]]]:
        """``parse(request, response, page_number) -> (page, raw data)`` for a paged endpoint."""
        from telnyx_msg._convert import converter

        item_type = endpoint.response
        hook = converter.get_structure_hook(item_type)
        meta_hook = converter.get_structure_hook(PageMeta)

        def parse(
            request: Any, response: HttpResponse, number: int | None
        ) -> tuple[Page[T], list[Any]]:
            doc = _decode(response, endpoint)
            raw = doc.get("data") if isinstance(doc, dict) else None
            raw_list: list[Any] = raw if isinstance(raw, list) else []
            meta_raw = doc.get("meta") if isinstance(doc, dict) else None
            try:
                meta = meta_hook(meta_raw, PageMeta) if isinstance(meta_raw, dict) else PageMeta()
                items = [hook(x, item_type) for x in raw_list]
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise _invalid(
                    response,
                    endpoint,
                    f"unexpected response shape: {exc}",
                    field=getattr(exc, "path", None),
                ) from exc
            return Page(items, meta, number or request.page_number or 1), raw_list

        return parse

    # --- the request pipeline --------------------------------------------------------------

    async def _acquire(
        self, limiter: Limiter, lane: str | None, message_type: str, timeout: Timeout
    ) -> None:
        """Wait for the rate limiter, at most the call's total timeout, or until ``aclose``."""
        shared = self._shared
        task = asyncio.current_task()
        if task is not None:
            shared.waiting[task] = None
        try:
            if shared.limiter_timeout:
                await limiter.acquire(
                    lane, message_type, timeout=None if timeout.total == math.inf else timeout.total
                )
            else:
                await limiter.acquire(lane, message_type)
        except asyncio.CancelledError:
            if task is None or task not in shared.closing:
                raise
            shared.closing.discard(task)
            if sys.version_info >= (3, 11):
                task.uncancel()
            raise ClientClosedError(
                "not sent: the client was closed while this call waited for the rate limiter"
            ) from None
        finally:
            if task is not None:
                shared.waiting.pop(task, None)

    async def _call(
        self, endpoint: _Operation, request: Any, attempts: list[int] | None = None
    ) -> HttpResponse:
        """Send one validated request with the retry policy; return the 2xx response.

        ``attempts``, when given, receives the number of retries the call took.
        """
        shared = self._shared
        if shared.closed:
            raise ClientClosedError(
                "this client is closed; create a new one",
                method=endpoint.method,
                path=endpoint.path,
            )
        if shared.transport.other_loop():
            raise ConfigurationError(
                f"{endpoint.method} {endpoint.path}: this AsyncClient was first used in another "
                "event loop (e.g. an earlier asyncio.run() that has ended); its connections "
                "belong to that loop. Create the client inside the loop that uses it (in "
                "your async main()), or use the blocking telnyx_msg.Client, which keeps its "
                "own loop"
            )
        timeout = self._timeout
        max_retries = self._max_retries
        headers = shared.headers
        key: str | None = None
        options = request.options
        if options is not None:
            if options.timeout is not None:
                timeout = to_timeout(options.timeout)
            if options.max_retries is not None:
                max_retries = options.max_retries
            key = options.idempotency_key
            if key is not None or options.extra_headers:
                headers = {**headers, **(options.extra_headers or {})}
                if key is not None:
                    headers["Idempotency-Key"] = key
        path, query, body = endpoint.build(request)
        if options is not None and (options.extra_body or options.extra_query):
            query, body = _with_extras(options, query, body)
        url = shared.base_url + path + ("?" + query if query else "")
        data = _JSON_DUMPS(body).encode() if body is not None else None
        retry_safe = endpoint.idempotent or key is not None
        limiter = shared.limiter if endpoint.send else None
        lane: str | None = None
        message_type = "SMS"
        if limiter is not None and body is not None:
            lane = body.get("from") or body.get("messaging_profile_id")
            if body.get("media_urls") or endpoint.path.endswith("group_mms"):
                message_type = "MMS"
        method = endpoint.method
        attempt = 0
        while True:
            if limiter is not None:
                await self._acquire(limiter, lane, message_type, timeout)
            if shared.closed:  # closed while this call waited for the limiter or a backoff
                raise ClientClosedError(
                    f"{method} {path}: not sent, the client was closed", method=method, path=path
                )
            gate = send_gate.get()
            if gate is not None:
                if gate.stopped:
                    raise NotSentError(f"{method} {path}: not sent, the bulk run was stopped")
                gate.written = True
            hooks = shared.hooks
            if hooks.request or hooks.response:
                event = RequestEvent(method, path, url, attempt, key)
                await call_hooks(hooks.request, event)
            started = time.perf_counter()
            try:
                response = await shared.transport.send(method, url, headers, data, timeout)
            except TransportError as exc:
                may_retry = (not exc.reached or retry_safe) and attempt < max_retries
                _log_attempt(method, path, None, attempt, started, None, exc)
                if hooks.response:
                    await call_hooks(
                        hooks.response,
                        ResponseEvent(event, None, time.perf_counter() - started, None, exc),
                    )
                if exc.closed:
                    raise ClientClosedError(
                        f"{method} {path}: not sent, the client was closed",
                        method=method,
                        path=path,
                    ) from exc
                if may_retry:
                    await asyncio.sleep(self._backoff.delay(attempt))
                    attempt += 1
                    continue
                error_cls = APITimeoutError if exc.timeout else APIConnectionError
                note = (
                    " The request may have reached Telnyx, so it was not retried; pass "
                    "options=RequestOptions(idempotency_key=...) to make it retryable."
                    if exc.reached and not retry_safe
                    else ""
                )
                raise error_cls(
                    f"{method} {path}: {exc}.{note}",
                    method=method,
                    path=path,
                    outcome_unknown=exc.reached,
                ) from exc
            status = response.status
            if hooks.response:
                await call_hooks(
                    hooks.response,
                    ResponseEvent(
                        event, status, time.perf_counter() - started, _request_id(response.headers)
                    ),
                )
            if status < 400:
                if limiter is not None:
                    limiter.on_response(lane, status=status, code=None, reset_after=None)
                _log_attempt(method, path, status, attempt, started, response, None)
                if response.too_large:
                    raise APIResponseValidationError(
                        f"the body exceeds max_response_size "
                        f"({shared.transport.max_response_size} bytes) and was not read",
                        status=status,
                        request_id=_request_id(response.headers),
                        method=method,
                        path=path,
                    )
                if attempts is not None:
                    attempts.append(attempt)
                return response
            error = _status_error(response, method, path, retry_safe)
            _log_attempt(method, path, status, attempt, started, response, None)
            if limiter is not None:
                reset = response.headers.get("x-ratelimit-reset")
                limiter.on_response(
                    lane,
                    status=status,
                    code=error.code,
                    reset_after=None if reset is None else parse_seconds(reset),
                )
            if attempt >= max_retries or not status_retryable(
                status, error.code, retry_safe, response.headers.get("x-should-retry")
            ):
                raise error
            hint = error.retry_after
            if hint is not None and hint > self._backoff.max_wait:
                raise error  # a long server hint is reported, never cut short (retry_after set)
            delay = hint if hint else self._backoff.delay(attempt)
            log.info(
                "retrying %s %s after %s in %.2f s (retry %d of %d)",
                method,
                path,
                status,
                delay,
                attempt + 1,
                max_retries,
            )
            await asyncio.sleep(delay)
            attempt += 1


@attrs.frozen
class _RawEndpoint:
    """Enough of an :class:`Endpoint` for ``_call`` to send a ``client.request``."""

    method: str
    path: str
    query: str
    body: dict[str, Any] | None
    send: bool
    idempotent: bool

    def build(self, _: Any) -> tuple[str, str, dict[str, Any] | None]:
        return self.path, self.query, self.body


@attrs.frozen
class _RawCall:
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
    if json is not None and not isinstance(json, Mapping):
        raise ValidationError(
            "json", f"must be a JSON object (a mapping), got {type(json).__name__}"
        )
    if params is not None and not isinstance(params, Mapping):
        raise ValidationError("params", f"must be a mapping, got {type(params).__name__}")
    if options is not None and not isinstance(options, RequestOptions):
        raise ValidationError("options", "must be telnyx_msg.RequestOptions(...)")
    pairs: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        encode_query(name, value, pairs)
    query = "&".join(quote(k, safe="") + "=" + quote(v, safe="") for k, v in pairs)
    # A send endpoint's path takes the account's and the sender's rate limits, as its method.
    send = any(
        e.send and e.method == verb and e.path == path
        for e in vars(endpoints).values()
        if isinstance(e, Endpoint)
    )
    return _RawCall(
        _RawEndpoint(
            verb,
            path,
            query,
            None if json is None else json_value(dict(json)),
            send,
            verb in IDEMPOTENT_METHODS,
        ),
        options,
    )


def _with_extras(
    options: RequestOptions, query: str, body: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """Merge ``extra_query`` / ``extra_body`` into a built request (the same encoding rules)."""
    if options.extra_body:
        body = {**(body or {}), **json_value(dict(options.extra_body))}
    if options.extra_query:
        pairs: list[tuple[str, str]] = []
        for name, value in options.extra_query.items():
            encode_query(name, value, pairs)
        extra = "&".join(quote(k, safe="") + "=" + quote(v, safe="") for k, v in pairs)
        query = f"{query}&{extra}" if query and extra else (query or extra)
    return query, body


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


def check_send_many(
    client: AsyncClient, concurrency: int, method: str
) -> dict[str, Callable[..., Awaitable[Any]]]:
    """Validate ``send_many`` settings before any I/O; return the send methods by name."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError("concurrency", f"must be an int >= 1, got {concurrency!r}")
    # The client's own pool grows to the concurrency: more sends than pooled connections would
    # queue for a connection, and a wait longer than the connect timeout ends a send not_sent
    # for no fault of Telnyx's.
    pool = client._shared.transport.grow_pool(concurrency)
    if concurrency > pool:
        raise ValidationError(
            "concurrency",
            f"{concurrency} exceeds the {pool} connections of "
            "the aiohttp session you passed in (its connector's limit)",
        )
    if method != "auto" and method not in SEND_METHODS:
        raise ValidationError(
            "method", f"{method!r} is not 'auto' or one of {', '.join(sorted(SEND_METHODS))}"
        )
    return {name: getattr(client.messages, name) for name in SEND_METHODS}


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


def _annotation(method: Callable[..., Any]) -> str:
    """The return annotation ``describe`` gave ``method``, as text."""
    ret = inspect.signature(method).return_annotation
    return ret if isinstance(ret, str) else getattr(ret, "__name__", repr(ret))


def _finisher(endpoint: Endpoint[Any, T]) -> Callable[[HttpResponse], T]:
    """``finish(response) -> result``: decode and structure one endpoint's 2xx response."""
    envelope = endpoint.envelope
    if envelope == "none":
        return lambda _: None  # type: ignore[return-value]  # T is None for these endpoints
    from telnyx_msg._convert import converter  # cattrs loads on first use, not at import

    item_type = endpoint.response
    hook = converter.get_structure_hook(item_type)
    many = endpoint.many

    def finish(response: HttpResponse) -> Any:
        doc = _decode(response, endpoint)
        data = doc.get("data") if envelope == "data" and isinstance(doc, dict) else doc
        try:
            if many:
                return [hook(x, item_type) for x in (data or ())]
            return hook(data, item_type)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise _invalid(
                response,
                endpoint,
                f"unexpected response shape: {exc}",
                field=getattr(exc, "path", None),
            ) from exc

    return finish


def _decode(response: HttpResponse, endpoint: _Operation) -> Any:
    if not response.body:
        return {}
    try:
        # Telnyx answers UTF-8 JSON objects; json.loads would first sniff every body's encoding.
        body = response.body
        if body[:1] in (b"{", b"["):
            try:
                return _JSON_DECODE(body.decode("utf-8"))
            except ValueError:
                pass  # e.g. UTF-16 without a BOM: json.loads below knows those
        return json.loads(body)
    except ValueError as exc:
        raise _invalid(
            response, endpoint, f"the body is not JSON: {response.body[:200]!r}"
        ) from exc


def _invalid(
    response: HttpResponse, endpoint: _Operation, message: str, field: str | None = None
) -> APIResponseValidationError:
    """The error for a 2xx whose body cannot be read (the request was accepted).

    ``field`` is the model path the structuring blamed (``Message.to.phone_number``).
    """
    return APIResponseValidationError(
        message,
        status=response.status,
        request_id=_request_id(response.headers),
        body=response.body[:1000].decode("utf-8", "replace"),
        method=endpoint.method,
        path=endpoint.path,
        field=field,
    )


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def _status_error(
    response: HttpResponse, method: str, path: str, retry_safe: bool
) -> APIStatusError:
    body: Any
    try:
        body = json.loads(response.body) if response.body else None
    except ValueError:
        body = response.body.decode("utf-8", "replace")
    raw_errors = body.get("errors") if isinstance(body, dict) else None
    errors = [ErrorDetail.from_json(e) for e in raw_errors] if isinstance(raw_errors, list) else []
    status = response.status
    code = errors[0].code if errors else None
    error_cls = status_error_class(status, code)
    return error_cls(
        status,
        errors=errors,
        request_id=_request_id(response.headers),
        body=body,
        method=method,
        path=path,
        retry_after=server_hint(response.headers, status),
        outcome_unknown=status_outcome_unknown(status, retry_safe),
    )


def _log_attempt(
    method: str,
    path: str,
    status: int | None,
    attempt: int,
    started: float,
    response: HttpResponse | None,
    exc: Exception | None,
) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    elapsed_ms = (time.perf_counter() - started) * 1000
    request_id = _request_id(response.headers) if response is not None else None
    log.debug(
        "%s %s -> %s attempt=%d elapsed=%.1fms request_id=%s",
        method,
        path,
        status if exc is None else type(exc).__name__,
        attempt,
        elapsed_ms,
        request_id,
    )
