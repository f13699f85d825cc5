"""RedisDeliveryTracker: the DeliveryTracker interface with its state in Redis.

A final status is stored as the message's JSON under ``{key_prefix}final:{message id}``
(``SET NX EX ttl``: the first final status wins, as in :class:`DeliveryTracker`), and its id is
published on one channel, ``{key_prefix}final``. Each tracker keeps one pub/sub connection and
fans the notifications out to its local waiters, so ``await final_status(id)`` in a sender
process resolves when any receiver or worker process records the webhook. A waiter subscribes
before it reads the stored value, so a status recorded in between is never missed. Redis docs:
https://redis.io/docs/latest/develop/interact/pubsub/
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

from telnyx_msg._config import positive_seconds, wait_seconds
from telnyx_msg._convert import structure
from telnyx_msg._redis_common import (
    MAX_CONNECTIONS,
    bounded,
    close_client,
    make_client,
    time_limit,
)
from telnyx_msg._tracker import _is_final, unreadable_error, unreadable_final
from telnyx_msg.errors import ConfigurationError, DeliveryTrackerUnavailableError
from telnyx_msg.models import Message, WebhookEvent

__all__ = ["DEFAULT_FINAL_STATUS_TIMEOUT", "RedisDeliveryTracker"]

#: An idle subscription is PINGed after this many ``timeout`` s without a message.
_IDLE_PINGS = 5

logger = logging.getLogger("telnyx_msg.webhooks")

#: Seconds ``final_status`` waits unless told otherwise. Carriers usually confirm delivery
#: within seconds to minutes; a message that stays unconfirmed longer is better polled with
#: ``messages.retrieve`` than waited on.
DEFAULT_FINAL_STATUS_TIMEOUT = 600.0

_RECORD = "SET + PUBLISH of a final status"

#: Stored instead of the message's JSON (which starts with ``{``) for a ``message.finalized``
#: whose payload could not be read: waiting for it raises at once rather than timing out.
_UNREADABLE = "unreadable"


class RedisDeliveryTracker:
    """Resolves ``await tracker.final_status(message_id)`` from webhooks recorded in any process.

    Register :meth:`handle` for ``message.sent`` and ``message.finalized`` (in a receiver's
    handlers or a :class:`~telnyx_msg.RedisWebhookQueue` worker's), or call :meth:`record` from
    a blocking view (Flask, Django). What counts as final is the same as for
    :class:`~telnyx_msg.DeliveryTracker`: ``message.finalized``, or a ``message.sent`` whose
    recipients are all in a terminal status.

    ``url``: a ``redis://`` URL (or ``client``, a ``redis.asyncio.Redis`` this object does not
    close). ``ttl``: seconds a final status is kept. ``timeout``: bound of each Redis call;
    a call that fails or takes longer raises :class:`DeliveryTrackerUnavailableError`. Call
    :meth:`aclose` when done (it also ends the pub/sub listener).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        key_prefix: str = "telnyx_msg:dt:",
        ttl: float = 86_400.0,
        timeout: float = 2.0,
        client: Any = None,
    ) -> None:
        self.ttl = positive_seconds("ttl", ttl)
        self.timeout = positive_seconds("timeout", timeout)
        self.key_prefix = key_prefix
        self.channel = key_prefix + "final"
        self._owns_client = client is None
        self._redis: Any = make_client(
            url, client, owner="RedisDeliveryTracker", socket_timeout=self.timeout
        )
        # For record() from a blocking app; redis-py's blocking pool is thread-safe and
        # reconnects in a forked worker. Connects on first use only.
        self._blocking: Any = None
        if client is None:
            self._blocking = make_client(
                url, None, owner="RedisDeliveryTracker", socket_timeout=self.timeout, blocking=True
            )
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._subscribed: asyncio.Future[None] | None = None
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # of the first use
        self._closed = False
        self._no_answers = 0  # calls Redis did not answer (timeouts, lost connections)
        self._no_answer = DeliveryTrackerUnavailableError("Redis did not answer")

    def __repr__(self) -> str:
        return f"RedisDeliveryTracker(key_prefix={self.key_prefix!r})"

    async def __aenter__(self) -> RedisDeliveryTracker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening and close the Redis client if this tracker created it.

        ``final_status`` calls still waiting raise :class:`DeliveryTrackerUnavailableError`,
        and so do later ones (a closed tracker starts no new listener).
        """
        self._closed = True
        listener, self._listener = self._listener, None
        for task in [*self._closing, *([listener] if listener is not None else [])]:
            await _stop(task, self.timeout)
        self._fail_waiters(DeliveryTrackerUnavailableError("the delivery tracker was closed"))
        if self._owns_client:
            self._blocking.close()
            await close_client(self._redis)

    def _key(self, message_id: str) -> str:
        return f"{self.key_prefix}final:{message_id}"

    async def _call(self, call: Any, what: str, within: float | None = None) -> Any:
        """``call`` bounded by ``timeout`` once it has a connection slot; ``within`` (a caller's
        own, shorter timeout) raises ``TimeoutError`` when it runs out first.

        Calls beyond the pool's connections (thousands of waiters woken together) queue here,
        outside the bound: only time on a connection counts as Redis not answering. A call
        that gets no answer fails those queued behind it at once, so a frozen Redis costs each
        caller about one ``timeout``, not one per round of the queue.
        """
        try:
            loop = self._bind(what)
        except ConfigurationError:
            _discard(call)
            raise
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(MAX_CONNECTIONS))
        slots = self._slots[1]
        seen = self._no_answers
        # The caller's own timeout covers its wait for a connection too: behind a frozen Redis
        # the calls ahead of it each hold theirs for their own (shorter) timeouts, which Redis
        # not answering does not count, so the queue moves one round per such timeout.
        deadline = None if within is None else loop.time() + within
        try:
            if within is None:
                await slots.acquire()
            else:
                async with time_limit(within):
                    await slots.acquire()
        except BaseException:
            _discard(call)  # cancelled (or out of time) while queued: the coroutine never runs
            raise
        try:
            if self._no_answers != seen:  # Redis stopped answering while this call waited
                _discard(call)
                raise DeliveryTrackerUnavailableError(str(self._no_answer))
            try:
                if deadline is None:
                    return await bounded(call, self.timeout, DeliveryTrackerUnavailableError, what)
                async with time_limit(max(0.0, deadline - loop.time())):
                    return await bounded(call, self.timeout, DeliveryTrackerUnavailableError, what)
            except DeliveryTrackerUnavailableError as exc:
                if _unanswered(exc):  # not an error reply: Redis answers those
                    self._no_answers += 1
                    self._no_answer = exc
                raise
        finally:
            slots.release()

    async def handle(self, event: WebhookEvent) -> None:
        """Webhook handler: store a final status and wake every process waiting for it.

        Events without a :class:`Message` payload, non-final updates and repeats of an
        already-final message are ignored. Raises :class:`DeliveryTrackerUnavailableError`
        when Redis fails (a receiver then answers 5xx, a queue worker retries).
        """
        pipe = self._record(self._redis, event)
        if pipe is not None:
            await self._call(pipe.execute(), _RECORD)

    def record(self, event: WebhookEvent) -> None:
        """Blocking form of :meth:`handle`, for a Flask or Django view or any other thread
        (a tracker built from a ``url``; with ``client=``, use :meth:`handle`).

        Redis failures raise :class:`DeliveryTrackerUnavailableError` (the view then answers
        5xx and Telnyx delivers the event again); each call is bounded by ``timeout``.
        """
        if self._blocking is None:
            raise ConfigurationError(
                "record() needs a RedisDeliveryTracker built from a URL (this one was given "
                "an asyncio client): use `await tracker.handle(event)`"
            )
        pipe = self._record(self._blocking, event)
        if pipe is None:
            return
        from redis.exceptions import RedisError

        try:
            pipe.execute()
        except (RedisError, OSError) as exc:
            raise DeliveryTrackerUnavailableError(f"Redis failed {_RECORD}: {exc}") from exc

    def _record(self, redis: Any, event: WebhookEvent) -> Any:
        """The pipeline that stores a final status and announces it, or None when ``event``
        does not carry one."""
        message = event.payload
        if isinstance(message, Message):
            if not _is_final(event.event_type, message):
                return None
            message_id, body = message.id, json.dumps(message.to_dict(), separators=(",", ":"))
        else:
            unreadable = unreadable_final(event)
            if unreadable is None:
                return None
            message_id, body = unreadable, _UNREADABLE
        pipe = redis.pipeline(transaction=True)
        pipe.set(self._key(message_id), body, nx=True, ex=max(1, round(self.ttl)))
        pipe.publish(self.channel, message_id)
        return pipe

    async def result(self, message_id: str) -> Message | None:
        """The final :class:`Message` if recorded (and not expired), else None (also when it
        arrived unreadable: ``final_status`` then raises ``LookupError``)."""
        try:
            return await self._result(message_id, None)
        except LookupError:
            return None

    async def _result(self, message_id: str, within: float | None) -> Message | None:
        raw = await self._call(
            self._redis.get(self._key(message_id)), "GET of a final status", within
        )
        if raw is None:
            return None
        if raw in (_UNREADABLE, _UNREADABLE.encode()):
            raise unreadable_error(message_id)
        return structure(json.loads(raw), Message)

    async def final_status(
        self, message_id: str, *, timeout: float | None = DEFAULT_FINAL_STATUS_TIMEOUT
    ) -> Message:
        """Wait for the final :class:`Message` of ``message_id``.

        Raises ``TimeoutError`` after ``timeout`` seconds (default 600; ``None``: no bound, as
        for :class:`DeliveryTracker`), :class:`DeliveryTrackerUnavailableError` when Redis
        fails or the notification connection is lost while waiting, and ``LookupError`` at once
        when the status arrived as a ``message.finalized`` whose payload could not be read.
        """
        if timeout is not None:
            timeout = wait_seconds("timeout", timeout)
        loop = asyncio.get_running_loop()
        deadline = math.inf if timeout is None else loop.time() + timeout
        # Only a bounded wait times out: with timeout=None the deadline is inf, and _subscribe
        # is bounded by Redis's own timeout (DeliveryTrackerUnavailableError).
        late = (
            ""
            if timeout is None
            else f"no final status for message {message_id} within {timeout:g} s"
        )
        try:
            confirmed = await self._subscribe(timeout)
        except TimeoutError:  # the caller's timeout ran out before Redis confirmed
            raise TimeoutError(late) from None
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.setdefault(message_id, set()).add(waiter)
        if self._subscribed is not confirmed:
            # The listener failed while this call resumed from the confirmation: it failed the
            # waiters it knew, not this one, which nothing would ever wake.
            waiter.set_exception(
                DeliveryTrackerUnavailableError("lost the Redis subscription while waiting")
            )
        try:
            # Subscribed and registered first: a status stored after this read still wakes us.
            while True:
                # A caller's timeout shorter than Redis's bound also bounds the read.
                remaining = deadline - loop.time()
                short = 0 < remaining < self.timeout
                try:
                    known = await self._result(message_id, remaining if short else None)
                except TimeoutError:  # the caller's own timeout, before Redis's bound
                    raise TimeoutError(late) from None
                if known is not None:
                    return known
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(late)
                try:
                    await asyncio.wait_for(
                        asyncio.shield(waiter), None if timeout is None else remaining
                    )
                except asyncio.TimeoutError:
                    raise TimeoutError(late) from None
                waiter = self._rearm(message_id, waiter)
        finally:
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # a failure that reached it while this call left otherwise
            pending = self._waiters.get(message_id)
            if pending is not None:
                pending.discard(waiter)
                if not pending:
                    del self._waiters[message_id]

    def _bind(self, what: str) -> asyncio.AbstractEventLoop:
        """The running loop, which must be the loop of the tracker's first use: its
        connections and its listener belong to that loop. Checked up front: a call from
        another loop failed inside redis-py, which dropped the connection, so every other
        ``asyncio.run`` worked and the ones between failed."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise ConfigurationError(
                f"{what}: this RedisDeliveryTracker was first used in another event loop (e.g. "
                "an earlier asyncio.run() that has ended), whose Redis connections and listener "
                "it keeps; create it inside the loop that uses it, or run every wait in one "
                "asyncio.run (a blocking view records with tracker.record(event))"
            )
        return loop

    @property
    def waiting(self) -> int:
        """Number of ``final_status`` calls of this tracker currently waiting."""
        return sum(len(w) for w in self._waiters.values())

    # -- notifications ----------------------------------------------------------------------------

    def _rearm(self, message_id: str, used: asyncio.Future[None]) -> asyncio.Future[None]:
        used.result()  # raises the listener's failure, if that is what woke us
        fresh: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self._waiters.setdefault(message_id, set())
        pending.discard(used)
        pending.add(fresh)
        return fresh

    async def _subscribe(self, timeout: float | None) -> asyncio.Future[None]:
        """Start the listener (once) and wait until its SUBSCRIBE is confirmed; return that
        confirmation (the listener replaces it when it fails)."""
        if self._closed:  # a listener started now would outlive aclose(): nothing stops it
            raise DeliveryTrackerUnavailableError("the delivery tracker was closed")
        self._bind("SUBSCRIBE")
        if self._listener is None or self._listener.done() or self._subscribed is None:
            if self._listener is not None and not self._listener.done():
                # A dead listener still closing its connection: kept until it ends.
                self._closing.add(self._listener)
                self._listener.add_done_callback(self._closing.discard)
            self._subscribed = asyncio.get_running_loop().create_future()
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(self._subscribed), name="telnyx_msg delivery tracker"
            )
        assert self._subscribed is not None
        confirmed = self._subscribed
        # A caller's timeout shorter than Redis's own bound raises TimeoutError, not "Redis down".
        short = timeout is not None and 0 < timeout < self.timeout
        try:
            await asyncio.wait_for(
                asyncio.shield(self._subscribed), timeout if short else self.timeout
            )
        except asyncio.TimeoutError:
            if short:
                raise TimeoutError from None
            raise DeliveryTrackerUnavailableError(
                f"Redis did not confirm SUBSCRIBE within {self.timeout:g} s"
            ) from None
        return confirmed

    async def _listen(self, subscribed: asyncio.Future[None]) -> None:
        pubsub = self._redis.pubsub()
        try:
            try:
                await bounded(
                    self._confirm(pubsub),
                    self.timeout,
                    DeliveryTrackerUnavailableError,
                    "SUBSCRIBE",
                )
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, DeliveryTrackerUnavailableError)
                    else DeliveryTrackerUnavailableError(f"Redis SUBSCRIBE failed: {exc}")
                )
                if error is not exc:
                    error.__cause__ = exc
                if not subscribed.done():
                    subscribed.set_exception(error)
                    subscribed.exception()  # retrieved here; the waiters raise it
                self._fail_waiters(error)
                return
            subscribed.set_result(None)
            loop = asyncio.get_running_loop()
            heard, pinged = loop.time(), None
            try:
                while True:
                    # A read bounded below the socket timeout, so an idle channel is not
                    # mistaken for a dead connection; this is a blocking read, not a poll.
                    item = await pubsub.get_message(timeout=self.timeout / 2)
                    now = loop.time()
                    if item is not None:
                        heard, pinged = now, None
                    elif pinged is not None and now - pinged > self.timeout:
                        # A frozen Redis or a half-open connection carries nothing, with no
                        # error: without this, every waiter of the process would wait on.
                        raise ConnectionError(f"no answer to PING within {self.timeout:g} s")
                    elif pinged is None and now - heard >= _IDLE_PINGS * self.timeout:
                        await bounded(
                            pubsub.ping(), self.timeout, DeliveryTrackerUnavailableError, "PING"
                        )
                        pinged = now
                    kind = None if item is None else item.get("type")
                    if kind == "subscribe":
                        # A client= that reconnects by itself has subscribed again: what was
                        # published meanwhile was missed, so every waiter reads its key again.
                        self._wake_all()
                    if item is None or kind != "message":
                        continue
                    data = item["data"]
                    message_id = data.decode() if isinstance(data, bytes) else str(data)
                    for waiter in self._waiters.get(message_id, ()):
                        if not waiter.done():
                            waiter.set_result(None)
            except Exception as exc:
                logger.warning("telnyx delivery tracker lost its Redis subscription: %s", exc)
                error = DeliveryTrackerUnavailableError(
                    f"lost the Redis subscription while waiting: {exc}"
                )
                error.__cause__ = exc
                # Dead from here on, though still closing its connection: the next call
                # (a caller retrying at once) starts a new listener.
                if self._subscribed is subscribed:
                    self._subscribed = None
                self._fail_waiters(error)
        finally:
            await asyncio.shield(_close_pubsub(pubsub))

    async def _confirm(self, pubsub: Any) -> None:
        """Subscribe and wait for Redis's confirmation: from then on no publish is missed."""
        await pubsub.subscribe(self.channel)
        while (await pubsub.get_message(timeout=self.timeout)) is None:
            pass  # each read waits up to timeout; the caller bounds the whole wait

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _fail_waiters(self, error: BaseException) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)


def _discard(call: Any) -> None:
    """Close a Redis client coroutine that will not be awaited (no "never awaited" warning)."""
    close = getattr(call, "close", None)
    if close is not None:
        close()


def _unanswered(error: DeliveryTrackerUnavailableError) -> bool:
    """Whether ``error`` means Redis did not answer (a timeout, a lost connection), rather
    than an error reply such as OOM, which shows Redis answering."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    cause = error.__cause__
    return cause is None or isinstance(cause, (OSError, RedisConnectionError, RedisTimeoutError))


async def _stop(task: asyncio.Task[None], within: float) -> None:
    """Cancel ``task`` and wait for it, at most about ``within`` seconds.

    redis-py can swallow a cancellation that lands while a SUBSCRIBE is being confirmed (the
    listener then keeps reading): cancel again until it ends, and give up rather than hang.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            logger.warning("telnyx delivery tracker: its listener did not stop; left running")
            return
        await asyncio.wait({task}, timeout=min(0.05, remaining))
    if not task.cancelled():
        task.exception()  # retrieved: the listener reports its own failures to the waiters


async def _close_pubsub(pubsub: Any) -> None:
    close = getattr(pubsub, "aclose", None) or pubsub.close
    try:
        await close()
    except Exception:  # closing a broken connection may fail again; nothing is left to free
        logger.debug("telnyx delivery tracker: pub/sub close failed", exc_info=True)
