"""RedisWebhookQueue: durable webhook intake on a Redis Stream, handled by worker processes.

Receivers given ``queue=`` append each verified delivery (``XADD``) before answering 2xx
(deliveries arriving while one is on the wire share the next, pipelined round trip; a blocking
Flask or Django view does the same with ``queue.append(body, event)``);
``await queue.run(handlers)`` in any number of processes reads the stream through one
consumer group (``XREADGROUP ... BLOCK``). Redis docs: https://redis.io/docs/latest/develop/data-types/streams/

Per entry, a worker (``_redis_worker.py``):

1. skips it (``XACK``) when its event id is already recorded as handled
   (``{stream}:done:{event id}``, kept ``handled_ttl`` seconds): a redelivery Telnyx made
   because our 2xx was lost, or an entry a dead worker finished but did not acknowledge;
2. moves it to ``{stream}:dead`` when it was delivered more than ``max_attempts`` times, or its
   body is not a webhook event;
3. takes a short lease on the event id (``SET NX``, holding the entry id) so two copies of one
   event never run at once (a second entry of an event whose first entry runs is acknowledged
   as a duplicate: the first stays pending until it succeeds or is dead-lettered), runs the
   handler, then records the id as handled and acknowledges and deletes the entry
   in one ``MULTI`` transaction. A handler that raises leaves the entry pending; after
   ``claim_after`` seconds a worker takes it over (``XAUTOCLAIM``, which counts the delivery)
   and runs it again, and the attempt that reaches ``max_attempts`` moves it to the dead stream
   with the reason. While a handler runs, a heartbeat (``XCLAIM ... JUSTID``) keeps its entry
   from looking idle, so only the entries of a dead or stuck worker are taken over.

Handlers see each event at least once. They see it twice only if a worker dies between the
handler's return and the acknowledgement (milliseconds), so make side effects idempotent on
``event.id`` if that matters.

Memory: an entry is deleted once handled (``XDEL`` with its ``XACK``), so the stream holds only
the backlog; nothing trims unacknowledged entries. The stream and group are this queue's own:
do not attach other consumer groups. Each handled event id costs one small key for
``handled_ttl`` seconds; the dead stream is trimmed to about ``dead_maxlen`` entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from telnyx_msg._config import positive_int, positive_seconds
from telnyx_msg._handler import Handler, handler_table
from telnyx_msg._redis_common import (
    bounded,
    close_client,
    config_error,
    make_client,
    misconfigured,
)
from telnyx_msg.errors import ConfigurationError, WebhookQueueUnavailableError
from telnyx_msg.models import WebhookEvent

if TYPE_CHECKING:
    from telnyx_msg._redis_worker import Worker

__all__ = ["RedisWebhookQueue", "WebhookQueueUnavailableError"]

_BATCH = 100  # appends per pipelined round trip at most


def _entry(body: bytes, event: WebhookEvent) -> dict[str, Any]:
    """The stream entry of one verified delivery."""
    return {
        "body": body,
        "event_id": event.id or "",
        "event_type": str(getattr(event.event_type, "value", event.event_type) or ""),
        "received_at": repr(time.time()),
    }


logger = logging.getLogger("telnyx_msg.webhooks")


def _existing_group(exc: Exception) -> None:
    """Re-raise an ``XGROUP CREATE`` failure unless the group already exists (BUSYGROUP).

    The group starts at id 0 (``id="0"`` in both creators): entries appended before it existed
    are delivered too.
    """
    if "BUSYGROUP" not in str(exc):
        raise exc


def _text(value: Any, errors: str = "replace") -> str:
    # Tolerant by default: an entry written by another producer (or re-added by hand) must not
    # make a worker or a listing raise; the worker reads event_id with errors="strict".
    return value.decode(errors=errors) if isinstance(value, bytes) else str(value)


def _fields(raw: Mapping[Any, Any]) -> dict[str, Any]:
    return {_text(k): v for k, v in raw.items()}


def default_consumer() -> str:
    """A consumer name unique to this process: ``host-pid-random``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class RedisWebhookQueue:
    """Durable webhook intake on a Redis Stream; workers run the handlers.

    ``url``: a ``redis://`` URL (or pass ``client``, a ``redis.asyncio.Redis`` this object does
    not close). ``stream``/``group``: the stream key and its consumer group (created with
    ``MKSTREAM`` on first use); the dead letters go to ``stream + ":dead"``. ``claim_after``:
    seconds an entry may sit unacknowledged with a worker before another takes it over (also the
    pause before a failed handler is retried). ``max_attempts``: deliveries before an entry is
    dead-lettered.

    ``timeout`` bounds each Redis call (receivers answer 503 within it when Redis stalls);
    ``block``: seconds one ``XREADGROUP`` waits for new entries (also the longest a ``stop()``
    waits for it); ``handler_timeout``: a handler running longer is cancelled and counts as a
    failure; ``handled_ttl``: how long handled event ids are remembered; ``dead_maxlen``:
    approximate cap of the dead stream. See the module docs for the full protocol.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        stream: str = "telnyx_msg:webhooks",
        group: str = "telnyx_msg",
        claim_after: float = 30.0,
        max_attempts: int = 5,
        client: Any = None,
        timeout: float = 1.0,
        block: float = 1.0,
        handler_timeout: float = 300.0,
        handled_ttl: float = 86_400.0,
        dead_maxlen: int = 100_000,
    ) -> None:
        # Finite: they become Redis milliseconds and expiries.
        self.claim_after = positive_seconds("claim_after", claim_after)
        self.timeout = positive_seconds("timeout", timeout)
        self.block = positive_seconds("block", block)
        self.handler_timeout = positive_seconds("handler_timeout", handler_timeout, infinite=True)
        self.handled_ttl = positive_seconds("handled_ttl", handled_ttl)
        positive_int("max_attempts", max_attempts)
        positive_int("dead_maxlen", dead_maxlen)
        if not stream or not group:
            raise ConfigurationError("stream and group must be non-empty")
        self.max_attempts = max_attempts
        self.dead_maxlen = dead_maxlen
        self.stream = stream
        self.group = group
        self.dead_stream = stream + ":dead"
        self._owns_client = client is None
        # The socket timeout must outlast a blocking XREADGROUP.
        self._redis: Any = make_client(
            url, client, owner="RedisWebhookQueue", socket_timeout=self.block + self.timeout
        )
        # For append() from a blocking app; connects on first use only.
        self._blocking: Any = None
        if client is None:
            self._blocking = make_client(
                url, None, owner="RedisWebhookQueue", socket_timeout=self.timeout, blocking=True
            )
        self._group_ready = False
        self._appends: list[tuple[dict[str, Any], asyncio.Future[str]]] = []
        self._appender: asyncio.Task[None] | None = None
        self._on_wire = False  # an append's round trip is in progress
        self._workers: set[Worker] = set()
        self._stop_next = False  # stop() with no run going: the next run returns at once

    def __repr__(self) -> str:
        return f"RedisWebhookQueue(stream={self.stream!r}, group={self.group!r})"

    async def __aenter__(self) -> RedisWebhookQueue:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis client if this queue created it (appends in flight fail: their
        receivers answer 503)."""
        appender = self._appender
        if appender is not None:
            appender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await appender
        if self._owns_client:
            self.close()
            await close_client(self._redis)

    def close(self) -> None:
        """Close the blocking Redis client of :meth:`append` if this queue created it."""
        if self._owns_client:
            self._blocking.close()

    async def prepare(self) -> None:
        """Create the stream and its consumer group now (otherwise on first use), in one
        round trip bounded by ``timeout``: a startup check that Redis is reachable and takes
        these credentials. Raises :class:`WebhookQueueUnavailableError` when it did not."""
        await self._call(self._create_group(), "XGROUP CREATE")

    # -- intake ---------------------------------------------------------------------------------

    async def enqueue(self, body: bytes, event: WebhookEvent) -> str:
        """Append a verified delivery; return its stream entry id.

        Raises :class:`WebhookQueueUnavailableError` when Redis did not store it within
        ``timeout`` seconds (it may still have been stored: workers skip a duplicate).
        """
        return await bounded(
            self._append(body, event),
            self.timeout,
            WebhookQueueUnavailableError,
            "XADD of a webhook",
        )

    def append(self, body: bytes, event: WebhookEvent) -> str:
        """Blocking form of :meth:`enqueue`, for a Flask or Django view or any other thread
        (a queue built from a URL): append a verified delivery, return its entry id.

        Raises :class:`WebhookQueueUnavailableError` when Redis fails or does not answer
        within ``timeout`` (answer 503: Telnyx delivers again), and ``ConfigurationError``
        when Redis refuses the credentials.
        """
        redis = self._blocking
        if redis is None:
            raise ConfigurationError(
                "append() needs a RedisWebhookQueue built from a URL (this one was given an "
                "asyncio client): use `await queue.enqueue(body, event)`"
            )
        from redis.exceptions import RedisError, ResponseError

        try:
            if not self._group_ready:
                pipe = redis.pipeline(transaction=False)
                self._group_commands(pipe)
                self._group_created(pipe.execute(raise_on_error=False), ResponseError)
            return _text(redis.xadd(self.stream, _entry(body, event)))
        except (RedisError, OSError) as exc:
            if misconfigured(exc):
                raise config_error(exc, "webhook queue") from exc
            raise WebhookQueueUnavailableError(f"Redis failed XADD of a webhook: {exc}") from exc

    async def _append(self, body: bytes, event: WebhookEvent) -> str:
        if not self._group_ready:
            await self._create_group()
        fields = _entry(body, event)
        # Deliveries that arrive while an XADD is on the wire wait for the next one and go out
        # together, pipelined: a burst costs a fraction of a round trip each
        # (benchmarks/README.md). Each receiver still answers only once its own entry is stored.
        loop = asyncio.get_running_loop()
        if self._on_wire:
            waiter: asyncio.Future[str] = loop.create_future()
            self._appends.append((fields, waiter))
            return await waiter
        self._on_wire = True
        try:
            return _text(await self._redis.xadd(self.stream, fields))
        finally:
            self._on_wire = False
            if self._appends and self._appender is None:
                self._appender = loop.create_task(self._append_batches())

    async def _append_batches(self) -> None:
        batch: list[tuple[dict[str, Any], asyncio.Future[str]]] = []
        self._on_wire = True
        try:
            while self._appends:
                batch = [item for item in self._appends[:_BATCH] if not item[1].done()]
                del self._appends[:_BATCH]  # a receiver that gave up (503) is not appended
                if not batch:
                    continue
                try:
                    if len(batch) == 1:
                        ids = [await self._redis.xadd(self.stream, batch[0][0])]
                    else:
                        pipe = self._redis.pipeline(transaction=False)
                        for fields, _ in batch:
                            pipe.xadd(self.stream, fields)
                        ids = await pipe.execute()
                except Exception as exc:
                    for _, waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                for (_, waiter), entry_id in zip(batch, ids, strict=True):
                    if not waiter.done():
                        waiter.set_result(_text(entry_id))
        finally:
            self._on_wire = False
            self._appender = None
            # Cancelled (aclose, loop shutdown): no receiver waits for an append never made.
            for _, waiter in [*batch, *self._appends]:
                if not waiter.done():
                    waiter.set_exception(WebhookQueueUnavailableError("the queue was closed"))
            self._appends.clear()

    async def _create_group(self) -> None:
        from redis.exceptions import ResponseError

        pipe = self._redis.pipeline(transaction=False)
        self._group_commands(pipe)
        self._group_created(await pipe.execute(raise_on_error=False), ResponseError)

    def _group_commands(self, pipe: Any) -> None:
        # EXISTS of two of the queue's keys first: a Redis in cluster mode refuses it
        # (CROSSSLOT) as it would refuse every acknowledgement later, so a receiver's startup
        # and a worker's first step fail (ConfigurationError) instead of queueing events no
        # worker can finish. (A stream name with a hash tag keeps every key in one slot.)
        pipe.exists(self.stream, self.dead_stream)
        pipe.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        # A Redis at maxmemory refuses XGROUP CREATE even for a group it has: the listing says
        # so, and a worker started then can drain the backlog (its own steps still run).
        pipe.xinfo_groups(self.stream)

    def _group_created(self, results: list[Any], response_error: type[Exception]) -> None:
        probe, created, groups = results
        if isinstance(probe, Exception):
            raise probe
        if isinstance(created, Exception):
            if not isinstance(created, response_error):
                raise created
            if not self._listed(groups):
                _existing_group(created)
        self._group_ready = True

    def _listed(self, groups: Any) -> bool:
        """Whether an ``XINFO GROUPS`` reply (or its error: no stream, no ACL) has ours."""
        if isinstance(groups, Exception):
            return False
        return any(_text(group.get("name", b"")) == self.group for group in groups)

    async def _call(self, call: Awaitable[Any], what: str, extra: float = 0.0) -> Any:
        return await bounded(call, self.timeout + extra, WebhookQueueUnavailableError, what)

    # -- inspection -------------------------------------------------------------------------------

    async def pending(self) -> int:
        """Entries delivered to a worker and not yet acknowledged."""
        try:
            summary = await self._call(self._redis.xpending(self.stream, self.group), "XPENDING")
        except WebhookQueueUnavailableError as exc:
            if "NOGROUP" in str(exc.__cause__):  # no worker or receiver has created it yet
                return 0
            raise
        return int(summary["pending"])

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The oldest ``count`` dead letters: the entry's fields plus ``reason``, ``attempts``,
        ``entry_id`` and ``failed_at`` (all as text; ``body`` is the raw webhook JSON)."""
        entries = await self._call(
            self._redis.xrange(self.dead_stream, count=count), "XRANGE of dead letters"
        )
        return [{_text(k): _text(v) for k, v in fields.items()} for _, fields in entries]

    # -- workers ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask every :meth:`run` of this queue to return after its handler in flight (at most
        ``block`` s later). Called while no ``run`` is going (before a run task's first step,
        or again after a run returned), it applies to the next ``run``, which returns at once:
        a stop that races a worker's start is never lost."""
        if not self._workers:
            self._stop_next = True
        for worker in self._workers:
            worker.stop()

    async def run(
        self,
        handlers: Mapping[str, Handler],
        *,
        consumer: str | None = None,
        default: Handler | None = None,
    ) -> None:
        """Handle entries until :meth:`stop` (or cancellation).

        ``handlers`` maps event types to async handlers; ``default`` gets the other types (with
        neither, the entry is acknowledged unhandled). ``consumer`` names this worker in the
        group (default: host, pid and a random suffix); a worker restarted under the same name
        first looks at its own pending entries (one whose lease from the last run has not
        expired yet is taken over after ``claim_after``). After :meth:`stop` it starts no new
        handler, and leaves the group if it holds no pending entry. When Redis is unreachable
        the worker logs, backs off (up to 5 s) and retries; if Redis refuses its credentials
        before ever answering it (or has no database of the URL's number), ``run`` raises
        ``ConfigurationError`` (no retry would help), as it does at once for a handler that
        cannot be called with one argument, the event. Cancelling ``run`` cancels the handler
        in flight: its entry stays pending and is taken over after ``claim_after``. It is never
        acknowledged unfinished.
        """
        from telnyx_msg._redis_worker import Worker

        table = handler_table(handlers, default)
        worker = Worker(self, table, default, consumer or default_consumer())
        if self._stop_next:
            self._stop_next = False
            logger.info(
                "telnyx webhook queue %s: run() returns at once: stop() was called while no "
                "run was going",
                self.stream,
            )
            return
        self._workers.add(worker)
        try:
            await worker.loop()
        finally:
            self._workers.discard(worker)
