"""Ready-made webhook endpoints: an aiohttp handler and a pure ASGI 3 app.

They never lose an event. Telnyx redelivers only what was not answered 2xx, so a receiver
answers 2xx only once the event is safe: after its handler returned. Each delivery is verified
(headers and timestamp before its body is read, then the signature and the replay store), then
the handler for ``event.event_type`` runs (in a task the receiver tracks; an async function, or
a plain one called on the event loop), and the answer says how it went:

- 200: handled (the event id is then marked seen in the replay store), queued (with
  ``queue=``, below), a duplicate of an event already handled, or no handler for the event type;
- 400: signed correctly but not a webhook JSON document (``WebhookPayloadError``; logged
  on ``telnyx_msg.webhooks`` at ERROR, as Telnyx drops the event after its retries);
- 401: missing/repeated header, bad timestamp or bad signature (retrying cannot fix these);
- 405: not a POST; 413: body over ``max_body_size`` (ASGI; aiohttp uses ``client_max_size``);
  415: a ``Content-Encoding`` other than ``identity`` (a compressed body);
- 500: the handler raised (a ``CancelledError`` of its own too; logged on
  ``telnyx_msg.webhooks``; not marked seen, so Telnyx's redelivery runs it again);
- 503: the handler ran longer than ``handler_timeout`` (it is cancelled, not marked seen; also
  when the server gave up on the delivery before, as on a client hang-up), the
  receiver is closed, ``max_pending`` handlers are already running, the replay store failed,
  or (with ``queue=``) Redis did not store the event in time.

A redelivery that arrives while the same event is still being handled (from the start of its
replay-store check) waits for that outcome, at most ``handler_timeout``: 200 if the first
copy's handler succeeded, else it runs the handler itself. Telnyx expects an
answer within about 2 seconds and retries otherwise, so keep handlers short (hand slow work to
a queue); a slow handler costs a redelivery, never an event.

With ``queue=`` (a :class:`~telnyx_msg.RedisWebhookQueue`) the receiver runs no handler: it
appends each verified delivery to the queue and answers 200 once Redis has stored it, or 503
when Redis did not within the queue's ``timeout`` (fail closed: Telnyx retries, nothing is
acknowledged unstored). Workers (``await queue.run(handlers)``) run the handlers and skip
events already handled; the verifier's replay store, if any, still rejects ids marked seen but is
not updated by the queue path.

Call ``await receiver.aclose()`` on shutdown: it stops accepting deliveries and waits for the
running handlers (cancelling them after ``timeout``). Tasks use asyncio, so run the ASGI app on
an asyncio server.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, NamedTuple

from telnyx_msg._config import positive_int, positive_seconds
from telnyx_msg._handler import Handler, call_handler, cancelled_by_handler, handler_table
from telnyx_msg._redis_common import config_error, misconfigured
from telnyx_msg.errors import (
    ConfigurationError,
    DuplicateWebhookError,
    MissingHeaderError,
    WebhookPayloadError,
    WebhookVerificationError,
)
from telnyx_msg.models import WebhookEvent
from telnyx_msg.webhooks import WebhookVerifier

if TYPE_CHECKING:
    from aiohttp import web

    from telnyx_msg._redis_queue import RedisWebhookQueue

__all__ = [
    "AiohttpWebhookHandler",
    "AsgiWebhookApp",
    "Handler",
    "WebhookReceiver",
    "aiohttp_handler",
    "asgi_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

logger = logging.getLogger("telnyx_msg.webhooks")

DEFAULT_MAX_PENDING = 1000
DEFAULT_MAX_BODY_SIZE = 1024 * 1024
#: Seconds a handler may run before the delivery is answered 503 (Telnyx then redelivers).
DEFAULT_HANDLER_TIMEOUT = 10.0


class _Reply(NamedTuple):
    status: int
    text: str


class WebhookReceiver:
    """Verification, deduplication and handler dispatch shared by both receivers."""

    def __init__(
        self,
        verifier: WebhookVerifier,
        handlers: Mapping[str, Handler],
        *,
        default: Handler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
        queue: RedisWebhookQueue | None = None,
    ) -> None:
        if queue is not None and (handlers or default is not None):
            raise ConfigurationError(
                "with queue=, workers run the handlers (queue.run(handlers)): pass handlers={}"
            )
        positive_int("max_pending", max_pending)
        positive_seconds("handler_timeout", handler_timeout, infinite=True)
        self.verifier = verifier
        self._handlers = handler_table(handlers, default)
        self._default = default
        self.queue = queue
        self.max_pending = max_pending
        self.handler_timeout = float(handler_timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        # Event id -> the outcome (handled or not) of the delivery now running its handler.
        self._in_flight: dict[str, asyncio.Future[bool]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        # Refusals are logged once a minute, a request without Telnyx's headers (a probe, a
        # scanner) apart from the others: it must not hide why Telnyx's own deliveries fail.
        self._quiet_until = {True: -math.inf, False: -math.inf}

    @property
    def pending(self) -> int:
        """Number of handlers running now."""
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called; new deliveries get 503."""
        return self._closed

    async def startup(self) -> None:
        """Check, before the first delivery, the Redis this receiver depends on (the
        ``queue=`` and a Redis replay store): one bounded round trip each.

        Credentials Redis refuses raise ``ConfigurationError``, so the app fails to start
        instead of answering every delivery 503 until Telnyx gives up on the events. An
        unreachable Redis is only logged: Redis may start after the app, and deliveries are
        answered 503 (Telnyx delivers them again) until it answers. The ASGI app runs this on
        the ``lifespan`` startup; aiohttp: ``app.on_startup.append(handler.on_startup)``. A
        receiver closed by :meth:`aclose` (a shutdown) accepts deliveries again after it.
        """
        checks: list[tuple[str, str, Callable[[], Awaitable[object]]]] = []
        if self.queue is not None:
            checks.append(("webhook queue", "the stream commands", self.queue.prepare))
        store = self.verifier.replay_store
        if store is not None:
            probe = "telnyx_msg-startup-check"
            checks.append(("replay store", "SET and EXISTS", lambda: store.aseen(probe)))
        for who, commands, check in checks:
            await _startup_check(who, commands, check)
        if self._closed and not self._tasks:
            # Served again after a shutdown (a test client per test, an in-process restart):
            # it answered every delivery 503 "shutting down". Its event may belong to the
            # loop that served it last.
            self._closed = False
            self._idle = asyncio.Event()
            self._idle.set()

    async def drain(self) -> None:
        """Wait until every running handler has finished."""
        await self._idle.wait()

    async def aclose(self, timeout: float | None = None) -> None:
        """Refuse new deliveries (503), then wait for running handlers.

        After ``timeout`` seconds the remaining handlers are cancelled: their deliveries are
        answered 503 and not marked seen, so Telnyx redelivers them. A handler that ignores its
        cancellation is waited for ``timeout`` more seconds at most, then left running.
        """
        self._closed = True
        if timeout is None:
            await self._idle.wait()
            return
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

    def _shutdown_timeout(self) -> float | None:
        # A handler running longer than handler_timeout has had its delivery answered 503
        # already: a shutdown waits no longer for it (uvicorn waited on a handler that
        # ignored its cancellation, and never exited).
        return None if math.isinf(self.handler_timeout) else self.handler_timeout

    def _handler_for(self, event: WebhookEvent) -> Handler | None:
        event_type = event.event_type
        if event_type is None:
            return self._default
        key = event_type.value if isinstance(event_type, enum.Enum) else event_type
        return self._handlers.get(key, self._default)

    def _unauthorized(self, exc: WebhookVerificationError) -> _Reply:
        """A 401, logged at most once a minute: a wrong public key or a skewed clock refuses
        every genuine delivery (Telnyx drops them after its retries), and the answer's text
        reaches only Telnyx."""
        now = time.monotonic()
        unsigned = isinstance(exc, MissingHeaderError)
        if now >= self._quiet_until[unsigned]:
            self._quiet_until[unsigned] = now + 60.0
            if unsigned:
                logger.warning(
                    "telnyx webhook: request refused (401): %s (not signed as Telnyx signs "
                    "its deliveries; the next such refusals are not logged for 60 s)",
                    exc,
                )
            else:
                logger.warning(
                    "telnyx webhook: delivery refused (401): %s (a wrong public key or a "
                    "clock off by more than the tolerance refuses every delivery; the next "
                    "refusals are not logged for 60 s)",
                    exc,
                )
        return _Reply(401, str(exc))

    def _refuse(self, headers: Mapping[str, str]) -> _Reply | None:
        """The answer for a delivery refused on its headers alone, before its body is read: the
        receiver is closed, or a header or the timestamp is bad (an unsigned flood costs no
        buffered bodies)."""
        if self._closed:
            return _Reply(503, "receiver is shutting down")
        try:
            self.verifier._check_headers(headers)
        except WebhookVerificationError as exc:
            return self._unauthorized(exc)
        getall = getattr(headers, "getall", None)  # (every header line: aiohttp, ASGI)
        lines = getall("content-encoding", []) if getall else [headers.get("content-encoding", "")]
        codings = {part.strip().lower() for line in lines for part in line.split(",")}
        if codings - {"", "identity"}:
            # Which bytes did the signature cover? aiohttp would verify the decoded ones and an
            # ASGI server the encoded ones: one delivery accepted by one receiver and refused
            # by the other. Neither is guessed.
            return _Reply(415, "Content-Encoding is not accepted: send the signed body as is")
        return None

    async def _answer(self, body: bytes, headers: Mapping[str, str]) -> _Reply:
        """Verify a delivery, run its handler, and say what to answer."""
        if self._closed:
            return _Reply(503, "receiver is shutting down")
        try:
            if self.queue is not None:
                event = await self.verifier.aunwrap(body, headers, mark_seen=False)
                return await self._enqueue(self.queue, body, event)
            # The replay store is asked in _dispatch, once this delivery holds the event id.
            event = self.verifier._event(body, headers)
        except DuplicateWebhookError:
            return _Reply(200, "duplicate, skipped")
        except WebhookPayloadError as exc:
            # Correctly signed, so it came from Telnyx: an event this SDK cannot read, which
            # Telnyx drops after its retries. Say so (never with the body).
            logger.error(
                "telnyx webhook: a correctly signed delivery is not an event this SDK can "
                "read; answered 400 (Telnyx retries it, then drops it): %s",
                exc,
            )
            return _Reply(400, str(exc))
        except WebhookVerificationError as exc:
            return self._unauthorized(exc)
        except Exception:  # the replay store is down: let Telnyx retry later
            logger.exception("telnyx webhook: replay store check failed")
            return _Reply(503, "replay store unavailable")
        handler = self._handler_for(event)
        if handler is None:
            return _Reply(200, "no handler for this event type")
        return await self._dispatch(handler, event)

    async def _enqueue(self, queue: RedisWebhookQueue, body: bytes, event: WebhookEvent) -> _Reply:
        """Store the verified delivery for the workers; 2xx only once it is stored."""
        try:
            await queue.enqueue(body, event)
        except Exception:
            logger.exception("telnyx webhook: could not queue event %s; answering 503", event.id)
            return _Reply(503, "webhook queue unavailable")
        return _Reply(200, "queued")

    async def _dispatch(self, handler: Handler, event: WebhookEvent) -> _Reply:
        """Run ``handler`` for ``event`` (one delivery per event id at a time)."""
        event_id = event.id
        while event_id is not None and event_id in self._in_flight:
            # A redelivery while the first copy is being handled: its outcome decides, within
            # handler_timeout (a handler that ignores its cancellation holds no copy forever).
            first = self._in_flight[event_id]
            done, _ = await asyncio.wait({first}, timeout=self.handler_timeout)
            if not done:
                return _Reply(503, "an earlier delivery of this event is still being handled")
            if first.result():
                return _Reply(200, "duplicate, handled by an earlier delivery")
            if self._closed:
                return _Reply(503, "receiver is shutting down")
        if len(self._tasks) >= self.max_pending:
            return _Reply(503, "too many webhook handlers running")
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if event_id is None:
            return await self._start(handler, event, outcome)
        # Held from before the replay store is asked: a copy whose store check started before
        # this one's handler marked the id (a slower Redis round trip) would otherwise find
        # neither the mark nor this delivery, and run the handler again.
        self._in_flight[event_id] = outcome
        try:
            seen = await self.verifier._aseen(event_id)
        except BaseException as exc:
            self._settle(event_id, outcome, handled=False)
            if not isinstance(exc, Exception):
                raise
            logger.exception("telnyx webhook: replay store check failed")
            return _Reply(503, "replay store unavailable")
        if seen or self._closed:
            self._settle(event_id, outcome, handled=seen)
            if seen:
                return _Reply(200, "duplicate, skipped")
            return _Reply(503, "receiver is shutting down")
        return await self._start(handler, event, outcome)

    def _settle(self, event_id: str, outcome: asyncio.Future[bool], *, handled: bool) -> None:
        """Release ``event_id`` held by a delivery that ran no handler."""
        if self._in_flight.get(event_id) is outcome:
            del self._in_flight[event_id]
        outcome.set_result(handled)

    async def _start(
        self, handler: Handler, event: WebhookEvent, outcome: asyncio.Future[bool]
    ) -> _Reply:
        event_id = event.id
        # Set once the handler returned: handler_timeout bounds the handler, not the replay
        # store's mark that follows it (a slow mark of a handled event is no timeout).
        returned: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Handled once the handler returned: a redelivery meanwhile is a duplicate at once.
        returned.add_done_callback(lambda _: _handled(outcome))
        # Its own task: a client that hangs up cannot cancel a handler half-way, and the
        # receiver can still wait for it on shutdown.
        task = asyncio.get_running_loop().create_task(
            self._run(handler, event, returned), name=f"telnyx_msg webhook {event_id}"
        )
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(lambda done: self._finished(done, event_id, outcome))
        loop = task.get_loop()
        deadline = loop.time() + self.handler_timeout
        # asyncio.wait neither cancels the handler if this delivery is cancelled nor re-raises
        # its exception (a handler's own TimeoutError is not the receiver's timeout).
        try:
            done, _ = await asyncio.wait({task}, timeout=self.handler_timeout)
        except asyncio.CancelledError:
            # The server gave up on this delivery (the client hung up, as Telnyx does after
            # about 2 s): the handler goes on, but still no longer than handler_timeout.
            if not task.done() and not math.isinf(deadline):
                timer = loop.call_at(deadline, self._overran, task, event, returned)
                task.add_done_callback(lambda _: timer.cancel())
            raise
        if not done:
            if returned.done():  # handled; only the mark is still running (it goes on)
                return _Reply(200, "handled")
            self._overran(task, event, returned)
            return _Reply(503, f"handler timed out after {self.handler_timeout:g} s")
        if task.cancelled():
            if self._closed:  # by aclose(timeout)
                return _Reply(503, "receiver is shutting down")
            logger.error(
                "telnyx webhook handler failed for %s event %s; not marked seen",
                event.event_type,
                event_id,
                exc_info=cancelled_by_handler(),
            )
            return _Reply(500, "handler failed")
        if task.exception() is not None:
            return _Reply(500, "handler failed")
        return _Reply(200, "handled")

    def _overran(
        self, task: asyncio.Task[None], event: WebhookEvent, returned: asyncio.Future[None]
    ) -> None:
        if returned.done():  # the handler returned in time: let its mark finish
            return
        task.cancel()
        logger.error(
            "telnyx webhook handler for %s event %s exceeded handler_timeout (%g s); "
            "cancelled it (not marked seen unless it finishes anyway)",
            event.event_type,
            event.id,
            self.handler_timeout,
        )

    def _finished(
        self, task: asyncio.Task[None], event_id: str | None, outcome: asyncio.Future[bool]
    ) -> None:
        self._tasks.discard(task)
        if event_id is not None and self._in_flight.get(event_id) is outcome:
            del self._in_flight[event_id]
        if not outcome.done():
            outcome.set_result(not task.cancelled() and task.exception() is None)
        if not self._tasks:
            self._idle.set()

    async def _run(
        self, handler: Handler, event: WebhookEvent, returned: asyncio.Future[None]
    ) -> None:
        try:
            await call_handler(handler, event)
        except Exception:
            logger.exception(
                "telnyx webhook handler failed for %s event %s; not marked seen",
                event.event_type,
                event.id,
            )
            raise
        returned.set_result(None)
        try:
            await self.verifier.amark_seen(event)
        except Exception:
            # Handled is handled: answering 5xx now would only make Telnyx redeliver it.
            logger.exception("telnyx webhook: could not mark event %s seen", event.id)


def _handled(outcome: asyncio.Future[bool]) -> None:
    if not outcome.done():
        outcome.set_result(True)


async def _startup_check(who: str, commands: str, check: Callable[[], Awaitable[object]]) -> None:
    try:
        await check()
    except ConfigurationError:
        raise
    except Exception as exc:
        if misconfigured(exc):
            raise config_error(exc, who, commands) from exc
        logger.warning(
            "telnyx webhook receiver: the %s is unavailable at startup (%s); "
            "deliveries are answered 503 until it answers",
            *(who, exc),
        )


# --- aiohttp ----------------------------------------------------------------------------------


class AiohttpWebhookHandler(WebhookReceiver):
    """An ``aiohttp.web`` request handler: ``app.router.add_post(path, handler)``.

    Add ``app.on_startup.append(handler.on_startup)`` so a Redis that refuses the receiver's
    credentials stops the app at startup, and ``app.on_cleanup.append(handler.on_cleanup)`` so
    shutdown waits for running handlers.
    """

    def __init__(
        self,
        verifier: WebhookVerifier,
        handlers: Mapping[str, Handler],
        *,
        default: Handler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
        queue: RedisWebhookQueue | None = None,
    ) -> None:
        super().__init__(
            verifier,
            handlers,
            default=default,
            max_pending=max_pending,
            handler_timeout=handler_timeout,
            queue=queue,
        )
        import aiohttp.web  # noqa: F401  # fail here, not on the first delivery, if missing

        # aiohttp warns (DeprecationWarning) about handlers it does not see as coroutine
        # functions; mark this instance the way asgiref does.
        if sys.version_info >= (3, 12):
            inspect.markcoroutinefunction(self)
        else:
            self._is_coroutine = getattr(asyncio.coroutines, "_is_coroutine", None)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        """Handle one delivery: verify, run the handler, then answer."""
        from aiohttp import web  # lazily: the ASGI path must not need aiohttp

        if request.method != "POST":
            return web.Response(status=405, text="POST only", headers={"Allow": "POST"})
        refused = self._refuse(request.headers)
        if refused is not None:
            return web.Response(status=refused.status, text=refused.text)
        body = await request.read()
        reply = await self._answer(body, request.headers)
        return web.Response(status=reply.status, text=reply.text)

    async def on_startup(self, app: web.Application) -> None:
        """``aiohttp`` startup signal: :meth:`startup` (a refused Redis stops the app)."""
        await self.startup()

    async def on_cleanup(self, app: web.Application) -> None:
        """``aiohttp`` cleanup signal: close this receiver and wait for its handlers (at most
        ``handler_timeout``)."""
        await self.aclose(self._shutdown_timeout())


def aiohttp_handler(
    verifier: WebhookVerifier,
    handlers: Mapping[str, Handler],
    *,
    default: Handler | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
    handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
    queue: RedisWebhookQueue | None = None,
) -> AiohttpWebhookHandler:
    """An aiohttp handler that verifies deliveries and runs ``handlers[event_type]``.

    ``default`` handles event types missing from ``handlers`` (otherwise they get 200 and are
    ignored). The answer comes after the handler (see the module docs for every status).
    With ``queue=``, ``handlers`` must be empty: deliveries are queued for workers instead.
    Route it with ``app.router.add_post("/webhooks/telnyx", handler)``.
    """
    return AiohttpWebhookHandler(
        verifier,
        handlers,
        default=default,
        max_pending=max_pending,
        handler_timeout=handler_timeout,
        queue=queue,
    )


# --- ASGI -------------------------------------------------------------------------------------


class _AsgiHeaders(Mapping[str, str]):
    """Read-only, case-insensitive view of ASGI raw headers that keeps repeated values."""

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        values: dict[str, list[str]] = {}
        for name, value in raw:
            values.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        self._values = values

    def __getitem__(self, key: str) -> str:
        return self._values[key.lower()][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getall(self, key: str, default: list[str]) -> list[str]:
        """Every value of ``key`` (the verifier rejects a repeated signature or timestamp)."""
        return self._values.get(key.lower(), default)


class _BodyTooLarge(Exception):
    pass


class AsgiWebhookApp(WebhookReceiver):
    """A pure ASGI 3 app that receives Telnyx webhooks on any path it is routed to.

    Starlette/FastAPI: ``FastAPI(routes=[Route("/webhooks/telnyx", receiver,
    methods=["POST"])])`` (``starlette.routing.Route`` serves an endpoint that is not a
    function as an ASGI app); in the application's lifespan, call ``await receiver.startup()``
    before it serves and ``await receiver.aclose()`` on shutdown. Served on its own, it handles
    the ASGI ``lifespan`` protocol: startup checks (a refused Redis fails the startup) and
    closes itself on shutdown.
    """

    def __init__(
        self,
        verifier: WebhookVerifier,
        handlers: Mapping[str, Handler],
        *,
        default: Handler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
        queue: RedisWebhookQueue | None = None,
    ) -> None:
        super().__init__(
            verifier,
            handlers,
            default=default,
            max_pending=max_pending,
            handler_timeout=handler_timeout,
            queue=queue,
        )
        self.max_body_size = positive_int("max_body_size", max_body_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3 entry point."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        if kind != "http":
            raise ValueError(f"unsupported ASGI scope type {kind!r}")
        if scope.get("method") != "POST":
            await _respond(send, _Reply(405, "POST only"), [(b"allow", b"POST")])
            return
        headers = _AsgiHeaders(scope.get("headers") or ())
        refused = self._refuse(headers)
        if refused is not None:
            await _respond(send, refused)
            return
        try:
            body = await self._read_body(headers, receive)
        except _BodyTooLarge:
            await _respond(send, _Reply(413, "body too large"))
            return
        if body is None:  # client disconnected before sending the whole body
            return
        await _respond(send, await self._answer(body, headers))

    async def _read_body(self, headers: _AsgiHeaders, receive: Receive) -> bytes | None:
        declared = headers.get("content-length")
        # Only ASCII digits are a length ("²" passed isdigit(), then int() raised).
        if (
            declared is not None
            and declared.isascii()
            and declared.isdecimal()
            and int(declared) > self.max_body_size
        ):
            raise _BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except ConfigurationError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose(self._shutdown_timeout())
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _respond(
    send: Send, reply: _Reply, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = reply.text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def asgi_app(
    verifier: WebhookVerifier,
    handlers: Mapping[str, Handler],
    *,
    default: Handler | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
    queue: RedisWebhookQueue | None = None,
) -> AsgiWebhookApp:
    """A pure ASGI 3 app that verifies deliveries and runs ``handlers[event_type]``.

    The answer comes after the handler (see the module docs for every status); with
    ``queue=`` (and empty ``handlers``), after the delivery was queued for workers. No
    Starlette/FastAPI dependency; see :class:`AsgiWebhookApp` for mounting.
    """
    return AsgiWebhookApp(
        verifier,
        handlers,
        default=default,
        max_pending=max_pending,
        max_body_size=max_body_size,
        handler_timeout=handler_timeout,
        queue=queue,
    )
