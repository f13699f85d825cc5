"""RedisWebhookQueue: durable webhook intake on a Redis Stream, handled by worker processes.

Receivers given ``queue=`` append each verified delivery (``XADD``) before answering 2xx;
``await queue.run(handlers)`` in any number of processes reads the stream through one
consumer group (``XREADGROUP ... BLOCK``). Redis docs: https://redis.io/docs/latest/develop/data-types/streams/

Per entry, a worker:

1. skips it (``XACK``) when its event id is already recorded as handled
   (``{stream}:done:{event id}``, kept ``handled_ttl`` seconds): a redelivery Telnyx made
   because our 2xx was lost, or an entry a dead worker finished but did not acknowledge;
2. moves it to ``{stream}:dead`` when it was delivered more than ``max_attempts`` times, or its
   body is not a webhook event;
3. takes a short lease on the event id (``SET NX``) so two copies of one event never run at
   once, runs the handler, then records the id as handled and acknowledges and deletes the entry
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
import enum
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from telnyx_msg._convert import structure_event
from telnyx_msg._redis_common import (
    WebhookQueueUnavailableError,
    bounded,
    close_client,
    make_client,
)
from telnyx_msg.errors import ConfigurationError
from telnyx_msg.models import WebhookEvent

__all__ = ["RedisWebhookQueue", "WebhookQueueUnavailableError"]

Handler = Callable[[WebhookEvent], Awaitable[None]]

logger = logging.getLogger("telnyx_msg.webhooks")

#: Longest pause between attempts while Redis is unreachable.
MAX_BACKOFF = 5.0


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        self.claim_after = _positive("claim_after", claim_after)
        self.timeout = _positive("timeout", timeout)
        self.block = _positive("block", block)
        self.handler_timeout = _positive("handler_timeout", handler_timeout)
        self.handled_ttl = _positive("handled_ttl", handled_ttl)
        for name, number in (("max_attempts", max_attempts), ("dead_maxlen", dead_maxlen)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {number!r}")
        if not stream or not group:
            raise ConfigurationError("stream and group must be non-empty")
        self.max_attempts = max_attempts
        self.dead_maxlen = dead_maxlen
        self.stream = stream
        self.group = group
        self.dead_stream = stream + ":dead"
        self._owns_client = client is None
        # The socket timeout must outlast a blocking XREADGROUP.
        self._redis: Any = make_client(url, client, owner="RedisWebhookQueue",
                                       socket_timeout=self.block + self.timeout)
        self._group_ready = False
        self._workers: set[_Worker] = set()
        self._stop_next = False  # stop() before any run: the next run returns at once

    def __repr__(self) -> str:
        return f"RedisWebhookQueue(stream={self.stream!r}, group={self.group!r})"

    async def __aenter__(self) -> RedisWebhookQueue:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis client if this queue created it."""
        if self._owns_client:
            await close_client(self._redis)

    # -- intake ---------------------------------------------------------------------------------

    async def enqueue(self, body: bytes, event: WebhookEvent) -> str:
        """Append a verified delivery; return its stream entry id.

        Raises :class:`WebhookQueueUnavailableError` when Redis did not store it within
        ``timeout`` seconds (it may still have been stored: workers skip a duplicate).
        """
        return await bounded(self._append(body, event), self.timeout,
                             WebhookQueueUnavailableError, "XADD of a webhook")

    async def _append(self, body: bytes, event: WebhookEvent) -> str:
        if not self._group_ready:
            await self._create_group()
        entry_id = await self._redis.xadd(self.stream, {
            "body": body,
            "event_id": event.id or "",
            "event_type": str(getattr(event.event_type, "value", event.event_type) or ""),
            "received_at": repr(time.time()),
        })
        return _text(entry_id)

    async def _create_group(self) -> None:
        from redis.exceptions import ResponseError

        try:
            # From id 0: entries appended before the group existed are delivered too.
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def _call(self, call: Awaitable[Any], what: str, extra: float = 0.0) -> Any:
        return await bounded(call, self.timeout + extra, WebhookQueueUnavailableError, what)

    # -- inspection -------------------------------------------------------------------------------

    async def pending(self) -> int:
        """Entries delivered to a worker and not yet acknowledged."""
        summary = await self._call(self._redis.xpending(self.stream, self.group), "XPENDING")
        return int(summary["pending"])

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The oldest ``count`` dead letters: the entry's fields plus ``reason``, ``attempts``,
        ``entry_id`` and ``failed_at`` (all as text; ``body`` is the raw webhook JSON)."""
        entries = await self._call(
            self._redis.xrange(self.dead_stream, count=count), "XRANGE of dead letters")
        return [{_text(k): _text(v) for k, v in fields.items()} for _, fields in entries]

    # -- workers ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask every :meth:`run` of this queue to return after its handler in flight (at most
        ``block`` s later); called before any ``run``, the next one returns at once."""
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
        first finishes its own pending entries. When Redis is unreachable the worker logs, backs
        off (up to 5 s) and retries. Cancelling ``run`` cancels the handler in flight: its entry
        stays pending and is taken over after ``claim_after``. It is never acknowledged unfinished.
        """
        table = {(k.value if isinstance(k, enum.Enum) else str(k)): v for k, v in handlers.items()}
        worker = _Worker(self, table, default, consumer or default_consumer())
        if self._stop_next:
            self._stop_next = False
            return
        self._workers.add(worker)
        try:
            await worker.loop()
        finally:
            self._workers.discard(worker)


class _Worker:
    """One ``run``: the read/claim loop and the handling of each entry."""

    def __init__(self, queue: RedisWebhookQueue, handlers: dict[str, Handler],
                 default: Handler | None, consumer: str) -> None:
        self.q = queue
        self.redis = queue._redis
        self.handlers = handlers
        self.default = default
        self.consumer = consumer
        self.history: str | None = "0"  # own pending entries first (restart under one name)
        self.claim_cursor = "0-0"
        self.next_claim = 0.0
        self.failures = 0
        self.stopping = False
        self.wake = asyncio.Event()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake early on :meth:`stop`."""
        if not self.stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), seconds)

    async def loop(self) -> None:
        while not self.stopping:
            try:
                entry = await self._next()
            except WebhookQueueUnavailableError as exc:
                # A Redis that restarted without persistence has lost the group (NOGROUP):
                # create it again before the next read.
                self.q._group_ready = False
                self.failures += 1
                delay = min(MAX_BACKOFF, 0.1 * 2 ** min(self.failures, 8)) * random.uniform(0.5, 1)
                logger.warning("telnyx webhook worker %s: %s; retrying in %.1f s",
                               self.consumer, exc, delay)
                await self._pause(delay)
                continue
            self.failures = 0
            if entry is not None:
                await self._handle_entry(*entry)

    async def _next(self) -> tuple[str, dict[str, Any], int] | None:
        """The next entry and its delivery count: own history, then taken over, then new."""
        q = self.q
        if not q._group_ready:
            await q._call(q._create_group(), "XGROUP CREATE")
        if self.history is not None:
            found = await self._read(self.history, block=None)
            if found is not None:
                self.history = found[0]
                return found[0], found[1], await self._deliveries(found[0])
            self.history = None
        now = asyncio.get_running_loop().time()
        if now >= self.next_claim:
            claimed = await self._claim()
            if claimed is not None:
                return claimed
            self.next_claim = now + max(0.05, q.claim_after / 4)
        found = await self._read(">", block=q.block)
        return None if found is None else (found[0], found[1], 1)

    async def _read(self, start: str, block: float | None) -> tuple[str, dict[str, Any]] | None:
        q = self.q
        reply = await q._call(
            self.redis.xreadgroup(q.group, self.consumer, {q.stream: start}, count=1,
                                  block=None if block is None else int(block * 1000)),
            "XREADGROUP", extra=block or 0.0)
        for _, entries in reply or ():
            for entry_id, fields in entries:
                if fields:  # an id whose entry was deleted comes back without fields
                    return _text(entry_id), _fields(fields)
                await q._call(self.redis.xack(q.stream, q.group, entry_id), "XACK")
        return None

    async def _claim(self) -> tuple[str, dict[str, Any], int] | None:
        """Take over one entry idle for ``claim_after``, scanning on from the last cursor.

        One XAUTOCLAIM with COUNT 1 looks at up to 10 pending entries; up to 100 calls here
        cover 1000 before the read of new entries gets its turn.
        """
        q = self.q
        for _ in range(100):
            reply = await q._call(self.redis.xautoclaim(
                q.stream, q.group, self.consumer, int(q.claim_after * 1000), self.claim_cursor,
                count=1), "XAUTOCLAIM")
            self.claim_cursor = _text(reply[0])
            for entry_id, fields in reply[1]:
                if fields:
                    entry_id = _text(entry_id)
                    logger.info("telnyx webhook worker %s took over entry %s", self.consumer,
                                entry_id)
                    return entry_id, _fields(fields), await self._deliveries(entry_id)
            if self.claim_cursor == "0-0":  # the whole pending list was scanned
                break
        return None

    async def _deliveries(self, entry_id: str) -> int:
        q = self.q
        rows = await q._call(self.redis.xpending_range(q.stream, q.group, entry_id, entry_id, 1),
                             "XPENDING")
        return int(rows[0]["times_delivered"]) if rows else 1

    # -- one entry ------------------------------------------------------------------------------

    async def _handle_entry(self, entry_id: str, fields: dict[str, Any], attempts: int) -> None:
        q = self.q
        event_id = _text(fields.get("event_id", b"")) or None
        try:
            try:
                event = _parse(fields.get("body"))
            except ValueError as exc:
                await self._dead(entry_id, fields, attempts, f"not a webhook event: {exc}",
                                 leased=False)
                return
            done, leased = False, True
            if event_id is not None:
                # One round trip: already handled? and take the lease on this event id.
                pipe = self.redis.pipeline(transaction=False)
                pipe.exists(self._key("done", event_id))
                pipe.set(self._key("lease", event_id), self.consumer, nx=True,
                         px=self._lease_ms())
                done, leased = (bool(x) for x in await q._call(pipe.execute(), "EXISTS + SET NX"))
            if done:
                await self._finish(entry_id, None, release=event_id if leased else None)
                logger.info("telnyx webhook event %s already handled; entry %s skipped",
                            event_id, entry_id)
                return
            if not leased:
                # Another copy of this event is being handled now: once it is done, this entry
                # is taken over after claim_after and skipped.
                return
            if attempts > q.max_attempts:
                await self._dead(entry_id, fields, attempts,
                                 f"delivered {attempts} times without finishing (the worker "
                                 "died or lost Redis each time)", leased=True)
                return
        except WebhookQueueUnavailableError as exc:
            logger.warning("telnyx webhook worker %s: %s; entry %s left pending",
                           self.consumer, exc, entry_id)
            return
        await self._run_handler(entry_id, fields, attempts, event)

    async def _run_handler(self, entry_id: str, fields: dict[str, Any], attempts: int,
                           event: WebhookEvent) -> None:
        q = self.q
        key = getattr(event.event_type, "value", event.event_type)
        handler = self.handlers.get(key, self.default) if key is not None else self.default
        error: BaseException | None = None
        if handler is not None:
            beat = asyncio.get_running_loop().create_task(self._heartbeat(entry_id, event.id))
            try:
                await asyncio.wait_for(handler(event), q.handler_timeout)
            except asyncio.TimeoutError:
                error = TimeoutError(f"handler exceeded handler_timeout={q.handler_timeout:g} s")
            except Exception as exc:
                error = exc
            finally:
                beat.cancel()
                await asyncio.gather(beat, return_exceptions=True)
        if error is None:
            await self._finish_handled(entry_id, event.id)
            return
        logger.error("telnyx webhook handler failed for %s event %s (entry %s, attempt %d of %d)",
                     event.event_type, event.id, entry_id, attempts, q.max_attempts,
                     exc_info=error)
        try:
            if attempts >= q.max_attempts:
                await self._dead(entry_id, fields, attempts, f"handler failed: {error!r}",
                                 leased=True)
            elif event.id is not None:
                await q._call(self.redis.delete(self._key("lease", event.id)), "DEL lease")
        except WebhookQueueUnavailableError as exc:
            logger.warning("telnyx webhook worker %s: %s", self.consumer, exc)

    async def _heartbeat(self, entry_id: str, event_id: str | None) -> None:
        """Keep a running entry from looking idle (and its lease alive)."""
        q = self.q
        interval = q.claim_after / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await q._call(self.redis.xclaim(q.stream, q.group, self.consumer, 0, [entry_id],
                                                justid=True), "XCLAIM heartbeat")
                if event_id is not None:
                    await q._call(self.redis.pexpire(self._key("lease", event_id),
                                                     self._lease_ms()), "PEXPIRE")
            except WebhookQueueUnavailableError as exc:
                logger.warning("telnyx webhook worker %s: heartbeat failed: %s",
                               self.consumer, exc)

    async def _finish_handled(self, entry_id: str, event_id: str | None) -> None:
        """Record success; keeps trying (bounded) so a Redis blip does not cause a rerun."""
        q = self.q
        deadline = asyncio.get_running_loop().time() + q.claim_after
        delay = 0.05
        while True:
            try:
                await self._finish(entry_id, event_id, release=event_id)
                return
            except WebhookQueueUnavailableError as exc:  # noqa: PERF203  # a retry loop
                if asyncio.get_running_loop().time() + delay > deadline:
                    logger.error("telnyx webhook worker %s: could not acknowledge handled entry "
                                 "%s (%s); another worker will take it over", self.consumer,
                                 entry_id, exc)
                    return
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _finish(self, entry_id: str, event_id: str | None, *,
                      release: str | None) -> None:
        """Mark ``event_id`` handled (if given), release the lease we hold on ``release`` (if
        given), acknowledge and delete the entry, in one transaction."""
        q = self.q
        pipe = self.redis.pipeline(transaction=True)
        if event_id is not None:
            pipe.set(self._key("done", event_id), b"1", ex=max(1, round(q.handled_ttl)))
        if release is not None:
            pipe.delete(self._key("lease", release))
        pipe.xack(q.stream, q.group, entry_id)
        pipe.xdel(q.stream, entry_id)
        await q._call(pipe.execute(), "MULTI ack")

    async def _dead(self, entry_id: str, fields: dict[str, Any], attempts: int,
                    reason: str, *, leased: bool) -> None:
        q = self.q
        letter = {**fields, "reason": reason, "attempts": str(attempts), "entry_id": entry_id,
                  "failed_at": repr(time.time())}
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(q.dead_stream, letter, maxlen=q.dead_maxlen, approximate=True)
        event_id = _text(fields.get("event_id", b""))
        if event_id and leased:
            pipe.delete(self._key("lease", event_id))
        pipe.xack(q.stream, q.group, entry_id)
        pipe.xdel(q.stream, entry_id)
        await q._call(pipe.execute(), "MULTI dead letter")
        logger.error("telnyx webhook entry %s (event %s) moved to %s after %d attempt(s): %s",
                     entry_id, event_id or "-", q.dead_stream, attempts, reason)

    def _lease_ms(self) -> int:
        # Shorter than claim_after: the lease of a dead worker has expired by the time its entry
        # can be taken over (the heartbeat renews both every claim_after / 3).
        return max(1, int(self.q.claim_after * 900))

    def _key(self, kind: str, event_id: str) -> str:
        return f"{self.q.stream}:{kind}:{event_id}"


def _parse(body: Any) -> WebhookEvent:
    """The typed event of a stored body (verified at intake, so not verified again: its
    timestamp may be older than the verifier's tolerance by the time a worker runs it)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, bytes):
        raise ValueError("entry has no body")
    try:
        document = json.loads(body.decode("utf-8"))
        if not isinstance(document, dict):
            raise TypeError("body is not a JSON object")
        return structure_event(document)
    except (TypeError, ValueError, LookupError, AttributeError, ArithmeticError,
            RecursionError) as exc:
        raise ValueError(str(exc)) from exc
