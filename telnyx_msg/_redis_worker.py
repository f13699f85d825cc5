"""The worker loop of :class:`~telnyx_msg.RedisWebhookQueue` (see that module for the protocol):
read, take over, skip, run, acknowledge or dead-letter one entry at a time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from typing import TYPE_CHECKING, Any

from telnyx_msg._convert import structure_event
from telnyx_msg._handler import Handler, call_handler, cancelled_by_handler
from telnyx_msg._redis_common import config_error, misconfigured
from telnyx_msg._redis_queue import _fields, _text
from telnyx_msg.errors import WebhookQueueUnavailableError
from telnyx_msg.models import WebhookEvent

if TYPE_CHECKING:
    from telnyx_msg._redis_queue import RedisWebhookQueue

__all__ = ["Worker"]

logger = logging.getLogger("telnyx_msg.webhooks")

#: Longest pause between attempts while Redis is unreachable.
MAX_BACKOFF = 5.0

_LEAVE = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

# Delete the group's consumers other than ARGV[3] that hold no pending entry and have not read
# for ARGV[2] ms: workers killed with -9 (a stopped one leaves by itself). Harmless to a live
# one that is only idle: Redis creates a consumer again at its next read, even one it was
# blocked in. Atomic, so nothing becomes pending between the check and the deletion.
_REAP = """
local removed = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do
    info[consumer[i]] = consumer[i + 1]
  end
  if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[2]) and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
"""

# After a failed attempt: restart the entry's idle time (the pause before the retry counts from
# the failure) and release the event's lease, each only while this worker still holds it (a
# worker that took the entry over meanwhile keeps both).
_RELEASE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 1 and p[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
end
if #KEYS > 1 and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
end
return 0
"""

# Returns 0 unless the entry ARGV[3] is pending for consumer ARGV[2] (in group ARGV[1]).
_IF_STILL_OURS = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then
  return 0
end
"""

# While a handler runs: keep its entry from looking idle and renew the event's lease, each only
# while this worker still holds it. Returns 0 once another worker took the entry over (this
# worker's heartbeat could not reach Redis for claim_after): claiming it back would make the
# entry change hands while both run.
_BEAT = (
    _IF_STILL_OURS
    + """
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
if #KEYS > 1 and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return 1
"""
)

# Each script below that may add to Redis's memory writes something that cannot (XACK, XDEL,
# XCLAIM) first: at maxmemory (noeviction) Redis refuses a script's first write that may grow
# memory, never a later one (it cannot undo the earlier writes). So a backlog that filled Redis
# still drains: entries are taken, handled, marked handled, acknowledged and deleted, while the
# receivers' XADDs are refused (503, Telnyx delivers again later).

# Take an entry just read: unless it was taken over meanwhile (then returns 0), restart its
# idle time, read whether its event was handled, take the event's lease (a second copy or a
# takeover may hold it) and read whose the lease is.
_TAKE = (
    _IF_STILL_OURS
    + """
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
local done = redis.call('EXISTS', KEYS[2])
local leased = redis.call('SET', KEYS[3], ARGV[4], 'NX', 'PX', ARGV[5])
return {done, leased and 1 or 0, redis.call('GET', KEYS[3])}
"""
)

# Acknowledge and delete an entry, release the event's lease (ARGV[3] == '1': KEYS[2]) and mark
# the event handled for ARGV[4] seconds (when given: the last key).
_FINISH = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[2])
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[#KEYS], '1', 'EX', ARGV[4])
end
return 1
"""

# Dead-letter an entry this worker holds: acknowledge and delete it, release the event's lease
# if it is this worker's, copy the entry to the dead stream. Returns 0, changing nothing, when
# the entry is no longer this worker's (taken over, or already acknowledged by its new holder).
_DEAD = (
    _IF_STILL_OURS
    + """
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'none' and kind ~= 'stream' then
  -- Before any write: the entry stays as it was rather than be deleted with no dead letter.
  return redis.error_reply('WRONGTYPE the dead-letter key ' .. KEYS[2] .. ' holds a ' .. kind)
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
if #KEYS > 2 and redis.call('GET', KEYS[3]) == ARGV[4] then
  redis.call('DEL', KEYS[3])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
return 1
"""
)

# Hand an entry this worker read while stopping (it ran no handler) to consumer ARGV[4], idle
# for ARGV[5] ms so the next takeover scan of any worker takes it at once, its delivery count
# kept (ARGV[6]); only while it is still this worker's.
_HAND_OVER = (
    _IF_STILL_OURS
    + """
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[4], 0, ARGV[3], 'IDLE', ARGV[5], 'RETRYCOUNT',
           ARGV[6], 'JUSTID')
return 1
"""
)

_ENTRY_ID = re.compile(r"[0-9]+-[0-9]+", re.ASCII)


class Worker:
    """One ``run``: the read/claim loop and the handling of each entry."""

    def __init__(
        self,
        queue: RedisWebhookQueue,
        handlers: dict[str, Handler],
        default: Handler | None,
        consumer: str,
    ) -> None:
        self.q = queue
        self.redis = queue._redis
        self.handlers = handlers
        self.default = default
        self.consumer = consumer
        self.history: str | None = "0"  # own pending entries first (restart under one name)
        self.claim_cursor = "0-0"
        self.next_claim = 0.0
        self.next_reap = 0.0  # first at the first step, then every reap_every()
        self.failures = 0
        self.stopping = False
        self.wake = asyncio.Event()
        # Entries read while stopping (no handler ran): handed to another worker on leaving.
        self.returned: list[tuple[str, int]] = []
        # (entry id, event id) of handlers that succeeded while Redis did not answer the
        # acknowledgement: finished before anything else once Redis answers again.
        self.unfinished: list[tuple[str, str | None]] = []

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake early on :meth:`stop`."""
        if not self.stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), seconds)

    async def loop(self) -> None:
        reached = False  # whether Redis ever answered this worker
        while not self.stopping:
            try:
                await self._finish_owed()
                entry = await self._next()
                self.failures, reached = 0, True
                now = asyncio.get_running_loop().time()
                if now >= self.next_reap:
                    # Not only at the start: a worker killed with an entry in flight holds it
                    # until it is taken over (claim_after later), and a worker stopped with
                    # deliveries arriving may be handed one; both hold nothing only then.
                    self.next_reap = now + self._reap_every()
                    await self._reap()
                if entry is not None:
                    await self._handle_entry(*entry)
            except WebhookQueueUnavailableError as exc:  # noqa: PERF203  # the retry loop
                if not reached and misconfigured(exc):
                    # A worker that only logs would look healthy to its supervisor.
                    raise config_error(exc, "worker") from exc
                # A Redis that restarted without persistence has lost the group (NOGROUP):
                # create it again before the next read. (At maxmemory Redis refuses to create
                # a group; one it still has is found in its listing, and the worker goes on.)
                self.q._group_ready = False
                self.failures += 1
                delay = min(MAX_BACKOFF, 0.1 * 2 ** min(self.failures, 8)) * random.uniform(0.5, 1)
                logger.warning(
                    "telnyx webhook worker %s: %s; retrying in %.1f s", self.consumer, exc, delay
                )
                await self._pause(delay)
        if reached:
            await self._leave()

    async def _leave(self) -> None:
        """Remove this consumer from the group if it holds no pending entry (default names are
        new on every start, so restarts would pile consumers up); with one, it stays (deleting
        a consumer drops its pending entries, which would then never run)."""
        q = self.q
        try:
            await self._finish_owed()
        except WebhookQueueUnavailableError as exc:
            # Stopping is bounded: no waiting for Redis here. The entries stay pending, and
            # another worker takes them over after claim_after and runs them again.
            logger.error(
                "telnyx webhook worker %s: stopped owing the acknowledgement of handled "
                "entries %s (%s); another worker will run them again",
                self.consumer,
                ", ".join(entry for entry, _ in self.unfinished),
                exc,
            )
        with contextlib.suppress(WebhookQueueUnavailableError):
            await self._hand_over()
        with contextlib.suppress(WebhookQueueUnavailableError):
            # One script: nothing can become pending between the check and the deletion.
            await q._call(
                self.redis.eval(_LEAVE, 1, q.stream, q.group, self.consumer), "XGROUP DELCONSUMER"
            )

    def _reap_every(self) -> float:
        q = self.q
        return max(q.claim_after, 2 * (q.block + q.timeout))

    async def _reap(self) -> None:
        """Remove consumers left by workers killed with -9 (they cannot leave; default names
        are new on every start, so restarts after kills would pile them up) or stopped holding
        an entry handed to them, once they hold none."""
        q = self.q
        # Redis 7.0 counts idle time from a consumer's last read that returned entries: a live
        # but quiet worker may be removed too, which is harmless (its next read, even one it
        # is blocked in, creates it again; it holds no entry to lose).
        idle_ms = int(2 * (q.block + q.timeout) * 1000)
        try:
            removed = await q._call(
                self.redis.eval(_REAP, 1, q.stream, q.group, idle_ms, self.consumer),
                "XGROUP DELCONSUMER of idle consumers",
            )
        except WebhookQueueUnavailableError as exc:  # tidying only: the loop goes on
            logger.info("telnyx webhook worker %s: %s", self.consumer, exc)
            return
        if removed:
            logger.info(
                "telnyx webhook worker %s removed %d idle consumer(s) holding no entry",
                self.consumer,
                removed,
            )

    async def _hand_over(self) -> None:
        """Give the entries read while stopping to the most recently active other consumer of
        the group, idle for ``claim_after``: a live worker takes them over at its next scan
        (not ``claim_after`` later), and this consumer, holding none, can leave the group.
        With no other consumer they stay this one's, ready to be taken over at once."""
        q = self.q
        if not self.returned:
            return
        consumers = await q._call(self.redis.xinfo_consumers(q.stream, q.group), "XINFO CONSUMERS")
        others = [c for c in consumers if _text(c.get("name", b"")) != self.consumer]
        target = (
            _text(min(others, key=lambda c: int(c.get("idle", 0)))["name"])
            if others
            else self.consumer
        )
        idle = str(max(1, int(q.claim_after * 1000)))
        for entry_id, attempts in self.returned:
            args = [q.group, self.consumer, entry_id, target, idle, str(max(0, attempts - 1))]
            await q._call(self.redis.eval(_HAND_OVER, 1, q.stream, *args), "XCLAIM hand-over")
        self.returned.clear()

    async def _unread(self, entry_id: str, attempts: int) -> None:
        """Leave a read entry pending without counting the delivery: no handler ran for it."""
        q = self.q
        with contextlib.suppress(WebhookQueueUnavailableError):
            await q._call(
                self.redis.xclaim(
                    q.stream,
                    q.group,
                    self.consumer,
                    0,
                    [entry_id],
                    retrycount=max(0, attempts - 1),
                    justid=True,
                ),
                "XCLAIM RETRYCOUNT",
            )

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
            self.redis.xreadgroup(
                q.group,
                self.consumer,
                {q.stream: start},
                count=1,
                block=None if block is None else int(block * 1000),
            ),
            "XREADGROUP",
            extra=block or 0.0,
        )
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
            reply = await q._call(
                self.redis.xautoclaim(
                    q.stream,
                    q.group,
                    self.consumer,
                    int(q.claim_after * 1000),
                    self.claim_cursor,
                    count=1,
                ),
                "XAUTOCLAIM",
            )
            self.claim_cursor = _text(reply[0])
            for entry_id, fields in reply[1]:
                if fields:
                    entry_id = _text(entry_id)
                    logger.info(
                        "telnyx webhook worker %s took over entry %s", self.consumer, entry_id
                    )
                    return entry_id, _fields(fields), await self._deliveries(entry_id)
            if self.claim_cursor == "0-0":  # the whole pending list was scanned
                break
        return None

    async def _deliveries(self, entry_id: str) -> int:
        q = self.q
        rows = await q._call(
            self.redis.xpending_range(q.stream, q.group, entry_id, entry_id, 1), "XPENDING"
        )
        return int(rows[0]["times_delivered"]) if rows else 1

    # -- one entry ------------------------------------------------------------------------------

    async def _handle_entry(self, entry_id: str, fields: dict[str, Any], attempts: int) -> None:
        q = self.q
        if self.stopping:  # stopped while reading: stop() promises only the handler in flight
            await self._unread(entry_id, attempts)
            self.returned.append((entry_id, attempts))  # handed to another worker on leaving
            return
        raw_id = fields.get("event_id", b"")
        try:
            try:
                event_id = _text(raw_id, errors="strict") or None
                event = _parse(fields.get("body"))
            except ValueError as exc:  # (a UnicodeDecodeError of event_id too)
                await self._dead(
                    entry_id, fields, attempts, f"not a webhook event: {exc}", leased=False
                )
                return
            done, leased, holder = False, True, None
            if event_id is not None:
                # One round trip: already handled? take the lease on this event id, and read
                # whose it is (the entry id in it tells a second copy from a takeover).
                keys = [q.stream, self._key("done", event_id), self._key("lease", event_id)]
                args = [q.group, self.consumer, entry_id, self._holder(entry_id), self._lease_ms()]
                taken = await q._call(
                    self.redis.eval(_TAKE, len(keys), *keys, *args), "EXISTS + SET NX lease"
                )
                if taken == 0:
                    logger.info(
                        "telnyx webhook entry %s was taken over by another worker after this "
                        "one read it; left to it",
                        entry_id,
                    )
                    return
                found, created, value = taken
                done, leased = bool(found), bool(created)
                holder = None if leased else _lease_entry(value)
            if done:
                await self._finish(entry_id, None, release=event_id if leased else None)
                logger.info(
                    "telnyx webhook event %s already handled; entry %s skipped", event_id, entry_id
                )
                return
            if not leased:
                if holder is not None and holder != entry_id:
                    # A second copy of an event whose first copy is running: that copy stays
                    # pending until it succeeds or is dead-lettered, so this one adds nothing.
                    # Left pending, every takeover would count a delivery against it until it
                    # was dead-lettered as never finishing.
                    await self._finish(entry_id, None, release=None)
                    logger.info(
                        "telnyx webhook event %s is being handled from entry %s; duplicate "
                        "entry %s acknowledged",
                        event_id,
                        holder,
                        entry_id,
                    )
                # Otherwise another worker is running this very entry (or died running it and
                # its lease has not expired): it is taken over after claim_after if it is still
                # pending. This read ran no handler, so it is not an attempt (a worker with a
                # shorter claim_after would dead-letter the entry before the lease expires).
                await self._unread(entry_id, attempts)
                return
            if attempts > q.max_attempts:
                await self._dead(
                    entry_id,
                    fields,
                    attempts,
                    f"delivered {attempts} times without finishing (the worker "
                    "died or lost Redis each time)",
                    leased=True,
                )
                return
        except WebhookQueueUnavailableError as exc:
            # Redis may serve reads while refusing the lease (an outage mid-step, an ACL): each
            # read counts a delivery, so one that ran no handler is uncounted, and the loop
            # backs off rather than reading on (which would dead-letter the backlog as "never
            # finishing").
            logger.warning(
                "telnyx webhook worker %s: %s; entry %s left pending", self.consumer, exc, entry_id
            )
            await self._unread(entry_id, attempts)
            raise
        await self._run_handler(entry_id, fields, attempts, event)

    async def _run_handler(
        self, entry_id: str, fields: dict[str, Any], attempts: int, event: WebhookEvent
    ) -> None:
        q = self.q
        key = getattr(event.event_type, "value", event.event_type)
        handler = self.handlers.get(key, self.default) if key is not None else self.default
        error: BaseException | None = None
        if handler is not None:
            done = asyncio.Event()
            loop = asyncio.get_running_loop()
            beat = loop.create_task(self._heartbeat(entry_id, event.id, done))
            # Its own task, so this worker tells its own cancellation (stop the run, entry left
            # pending) and time limit from a CancelledError or TimeoutError the handler raised
            # (a failure of this attempt, like any other exception).
            task = loop.create_task(call_handler(handler, event))
            try:
                finished, _ = await asyncio.wait({task}, timeout=q.handler_timeout)
                if not finished:
                    error = TimeoutError(
                        f"handler exceeded handler_timeout={q.handler_timeout:g} s"
                    )
                    task.cancel()
                    await asyncio.wait({task})  # it unwinds before the entry is released
                elif task.cancelled():
                    error = cancelled_by_handler()
                else:
                    error = task.exception()
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.wait({task})  # no orphan: it ends with the run
                raise
            finally:
                # Stopped between calls, never cancelled in one: a Redis command cancelled
                # mid-reply can leave its pooled connection out of step for the next command.
                done.set()
                await asyncio.wait({beat}, timeout=2 * q.timeout)
                beat.cancel()
        if error is None:
            await self._finish_handled(entry_id, event.id)
            return
        logger.error(
            "telnyx webhook handler failed for %s event %s (entry %s, attempt %d of %d)",
            event.event_type,
            event.id,
            entry_id,
            attempts,
            q.max_attempts,
            exc_info=error,
        )
        try:
            if attempts >= q.max_attempts:
                await self._dead(
                    entry_id, fields, attempts, f"handler failed: {error!r}", leased=True
                )
            else:
                keys = [q.stream] if event.id is None else [q.stream, self._key("lease", event.id)]
                args = [q.group, self.consumer, entry_id, self._holder(entry_id)]
                await q._call(
                    self.redis.eval(_RELEASE, len(keys), *keys, *args), "XCLAIM + DEL lease"
                )
        except WebhookQueueUnavailableError as exc:
            logger.warning("telnyx webhook worker %s: %s", self.consumer, exc)

    async def _heartbeat(self, entry_id: str, event_id: str | None, done: asyncio.Event) -> None:
        """Keep a running entry from looking idle (and its lease alive) until ``done``."""
        q = self.q
        interval = q.claim_after / 3
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), interval)
            if done.is_set():
                return
            keys = [q.stream] if event_id is None else [q.stream, self._key("lease", event_id)]
            args = [q.group, self.consumer, entry_id, self._holder(entry_id), self._lease_ms()]
            try:
                ours = await q._call(
                    self.redis.eval(_BEAT, len(keys), *keys, *args), "XCLAIM + PEXPIRE heartbeat"
                )
            except WebhookQueueUnavailableError as exc:
                logger.warning("telnyx webhook worker %s: heartbeat failed: %s", self.consumer, exc)
                continue
            if not ours:
                logger.warning(
                    "telnyx webhook worker %s: entry %s (event %s) was taken over by another "
                    "worker while its handler ran here (this worker could not reach Redis for "
                    "claim_after); the event may be handled twice",
                    self.consumer,
                    entry_id,
                    event_id or "-",
                )
                return

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
                    # Not dropped: this worker's own next XAUTOCLAIM would take the handled
                    # entry back and run it again. Finished first once Redis answers.
                    self.unfinished.append((entry_id, event_id))
                    logger.error(
                        "telnyx webhook worker %s: could not acknowledge handled entry "
                        "%s yet (%s); it is acknowledged before anything else once Redis "
                        "answers (a worker that took it over meanwhile may run it again)",
                        self.consumer,
                        entry_id,
                        exc,
                    )
                    raise
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _finish_owed(self) -> None:
        """Acknowledge the handled entries whose acknowledgement Redis did not answer."""
        while self.unfinished:
            entry_id, event_id = self.unfinished[0]
            await self._finish(entry_id, event_id, release=event_id)
            del self.unfinished[0]
            logger.info(
                "telnyx webhook worker %s acknowledged handled entry %s after Redis answered again",
                self.consumer,
                entry_id,
            )

    async def _finish(self, entry_id: str, event_id: str | None, *, release: str | None) -> None:
        """Mark ``event_id`` handled (if given), release the lease we hold on ``release`` (if
        given), acknowledge and delete the entry, in one script (atomic)."""
        q = self.q
        keys = [q.stream]
        if release is not None:
            keys.append(self._key("lease", release))
        if event_id is not None:
            keys.append(self._key("done", event_id))
        ttl = "" if event_id is None else str(max(1, round(q.handled_ttl)))
        args = [q.group, entry_id, "0" if release is None else "1", ttl]
        await q._call(self.redis.eval(_FINISH, len(keys), *keys, *args), "XACK + XDEL")

    async def _dead(
        self, entry_id: str, fields: dict[str, Any], attempts: int, reason: str, *, leased: bool
    ) -> None:
        q = self.q
        letter = {
            **fields,
            "reason": reason,
            "attempts": str(attempts),
            "entry_id": entry_id,
            "failed_at": repr(time.time()),
        }
        event_id = _text(fields.get("event_id", b""))
        keys = [q.stream, q.dead_stream]
        if event_id and leased:
            keys.append(self._key("lease", event_id))
        args = [q.group, self.consumer, entry_id, self._holder(entry_id), q.dead_maxlen]
        pairs = [part for item in letter.items() for part in item]
        moved = await q._call(
            self.redis.eval(_DEAD, len(keys), *keys, *args, *pairs), "XADD dead letter + XACK"
        )
        if not moved:
            logger.warning(
                "telnyx webhook entry %s (event %s) was taken over by another worker; left to it "
                "rather than dead-lettered here: %s",
                entry_id,
                event_id or "-",
                reason,
            )
            return
        logger.error(
            "telnyx webhook entry %s (event %s) moved to %s after %d attempt(s): %s",
            entry_id,
            event_id or "-",
            q.dead_stream,
            attempts,
            reason,
        )

    def _lease_ms(self) -> int:
        # Shorter than claim_after: the lease of a dead worker has expired by the time its entry
        # can be taken over (the heartbeat renews both every claim_after / 3).
        return max(1, int(self.q.claim_after * 900))

    def _holder(self, entry_id: str) -> str:
        """The value of a lease this worker takes for ``entry_id``."""
        return f"{self.consumer} {entry_id}"

    def _key(self, kind: str, event_id: str) -> str:
        return f"{self.q.stream}:{kind}:{event_id}"


def _lease_entry(value: Any) -> str | None:
    """The stream entry id in a lease value (``"{consumer} {entry id}"``), or None when there is
    no lease or it carries no entry id (written by an older version: just the consumer)."""
    if value is None:
        return None
    entry_id = _text(value).rpartition(" ")[2]
    return entry_id if _ENTRY_ID.fullmatch(entry_id) else None


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
    except (
        TypeError,
        ValueError,
        LookupError,
        AttributeError,
        ArithmeticError,
        RecursionError,
    ) as exc:
        raise ValueError(str(exc)) from exc
