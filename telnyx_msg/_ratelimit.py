"""Client-side rate limiting: hierarchical, fair, adaptive token buckets (one event loop).

How it works (the public contract is in :class:`RateLimits` and ``docs/rate-limits.md``):

- Every ``acquire`` becomes a ``_Waiter`` appended to its sender lane (FIFO). A lane whose head
  could take the lane's token now sits in the round-robin ring of the head's account lane
  ("ready"); otherwise it sits in a heap keyed by the time its own bucket will have a token
  ("timed"). A waiter therefore never holds an account token while it waits for its lane.
- ``_pump(now)`` moves due lanes from the heap to the rings, then serves each ring round-robin
  while its account bucket (and, after a 429 ``10011``, the request bucket all account lanes
  share) has a token: it takes one token from each bucket, marks the head granted and resolves
  its future. Account lanes take turns at the shared bucket. It leaves ``_next_event``: the
  earliest time more could be granted.
- There are no background tasks. Waiters take turns as the timer: a waiter that cannot be
  granted either parks on a future, or, if no waiter is already sleeping until ``_next_event``,
  sleeps (with the injected ``sleep``) until then and pumps when it wakes. A waiter that leaves
  (granted or cancelled) hands the timer role to a parked waiter when it is needed.
- Callers of one lane proceed in grant order: a pump grants other heads only while they are
  parked on their futures (futures wake tasks in the order they were resolved); a head whose
  task is busy (asleep, or already woken) holds its lane until that task pumps itself; and a
  task granted by its own pump yields once if it granted earlier waiters too, while its lane
  waits ("passing") so that later waiters cannot overtake it.

Amortised cost per acquire: O(log L) heap work for L lanes with waiters, O(1) otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import inspect
import itertools
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from heapq import heappop, heappush
from typing import Any, Generic, TypeVar

from telnyx_msg._bucket import (
    BETA,
    DECREASE_COOLDOWN,
    DEFAULT_QUEUE_FRACTION,
    DRAIN_FRACTION,
    IN_USE_SECONDS,
    QUEUE_SECONDS,
    AccountSpec,
    LimitConfig,
    RateMeter,
    RequestSpec,
    TokenBucket,
    cubic_rate,
    drain_tokens,
    reset_pause,
    resolve_config,
    sender_kind,
)
from telnyx_msg.errors import QUEUE_FULL_CODE, ConfigurationError, ErrorDetail, RateLimitError

__all__ = ["LoopOwner", "RateLimits", "sender_kind", "wait_too_long"]

T = TypeVar("T")
# How much longer than the caller's timeout a call forwarded to the owner loop may take before
# the caller stops waiting (the owner enforces the timeout itself; this only guards against an
# owner loop that is blocked).
_FORWARD_GRACE = 1.0
# How many times a forwarded call follows the ownership when owner loops stop under it.
_HANDOVERS = 3
# How often a caller waiting on the owner loop checks that the loop still runs.
_OWNER_POLL = 0.25
# How long a call without a timeout (a send_many item) waits for the owner loop to start it
# before calling that loop blocked: a running loop starts a posted call at its next turn.
_OWNER_START = 5.0


def _left(deadline: float | None) -> float | None:
    """The seconds left until ``deadline`` on the running loop's clock (None: no deadline)."""
    if deadline is None:
        return None
    return max(0.0, deadline - asyncio.get_running_loop().time())


class _HandedOver(Exception):
    """A waiter's loop lost the limiter to another loop while it waited (see ``acquire``)."""


def _go_on_if_granted(waiter: _Waiter) -> None:
    """For a waiter another loop dropped (see ``RateLimits._drop_waiters``): its tokens were
    taken if it was granted, so it goes on; else it must ask again."""
    if not waiter.granted:
        raise _HandedOver


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def wait_too_long(retry_after: float | None, timeout: float, waited: float = 0.0) -> RateLimitError:
    """The error for a client-side rate-limit wait longer than the call's timeout.

    ``retry_after`` is the wait from now; ``waited`` how long the call has already waited
    (the message quotes the whole hold, which is what exceeds the timeout).
    """
    when = "" if retry_after is None else f" (about {waited + retry_after:.3g} s)"
    detail = (
        f"the client-side rate limit would hold this request longer than its timeout "
        f"({timeout:g} s){when}; nothing was sent"
    )
    return RateLimitError(
        429,
        errors=[ErrorDetail(title="Client-side rate limit", detail=detail)],
        retry_after=retry_after,
    )


class _Forwarded(Generic[T]):
    """A call run as a task on the owner loop (``run_coroutine_threadsafe``, keeping the task).

    The coroutine is made in the owner's thread, so a start the owner never runs leaves no
    coroutine behind; the task is kept so an abandoned one can be let go quietly.
    """

    def __init__(
        self, owner: asyncio.AbstractEventLoop, make: Callable[[], Coroutine[Any, Any, T]]
    ) -> None:
        self.owner = owner
        self.result: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._task: asyncio.Task[T] | None = None
        owner.call_soon_threadsafe(self._start, make)  # RuntimeError once the owner closed

    def _start(self, make: Callable[[], Coroutine[Any, Any, T]]) -> None:
        if not self.result.cancelled():
            self._task = self.owner.create_task(make())
            self._task.add_done_callback(self._settle)

    @property
    def started(self) -> bool:
        """Whether the owner loop has run the call at all (read from the caller's thread)."""
        return self._task is not None

    def _settle(self, task: asyncio.Task[T]) -> None:
        try:
            if task.cancelled():
                self.result.cancel()
            elif (error := task.exception()) is not None:
                self.result.set_exception(error)
            else:
                self.result.set_result(task.result())
        except concurrent.futures.InvalidStateError:  # cancelled by the caller meanwhile
            pass

    def cancel(self) -> None:
        """Cancel it from the caller's thread: before it starts, or its task."""
        self.result.cancel()
        if not self.owner.is_closed():
            with contextlib.suppress(RuntimeError):  # closed just now
                self.owner.call_soon_threadsafe(self._cancel_task)

    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def abandon(self) -> None:
        """The owner loop stopped with the task unfinished, and the call goes to the next
        owner. A task started while that loop shut down is never cancelled by it, so it would
        be garbage-collected pending, and logged as lost; it is not lost, only superseded."""
        task = self._task
        if task is not None and not task.done():
            # asyncio's own flag, which run_until_complete clears the same way for the future
            # of a loop stopped early.
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            # A task that never ran would also warn "coroutine ... was never awaited" when
            # collected. Once collected nothing can run it, so closing it then is safe from
            # any thread (closing a never-started coroutine runs none of its code).
            weakref.finalize(task, _close_unstarted, task.get_coro())
        self.cancel()


def _close_unstarted(coro: Any) -> None:
    if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        coro.close()


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _blocked_owner(seconds: float) -> str:
    return (
        "the rate limiter's event loop (the first one that used it) did "
        f"not run this call within {seconds:g} s: it is blocked, "
        "e.g. by a blocking telnyx_msg.Client called from code on that "
        "loop; use the AsyncClient there, or give the Client a RateLimits "
        "of its own. Nothing was sent."
    )


async def _await_owner(
    call: _Forwarded[T], deadline: float | None, timeout: float | None
) -> tuple[T] | None:
    """Wait for a call forwarded to its owner loop: ``(result,)``, or None when the owner loop
    stopped without running it to the end (hand it over).

    Polls the owner while waiting because a call scheduled while that loop shuts down may
    never run: its future would stay pending forever.
    """
    here = asyncio.get_running_loop()
    owner = call.owner
    future = asyncio.wrap_future(call.result)
    # Given up on (deadline, owner gone), it may still end with an error nobody reads.
    future.add_done_callback(_retrieved)
    # Without a deadline, a blocked owner loop must still be noticed: it never starts the call.
    start_by = here.time() + _OWNER_START if deadline is None else None
    try:
        while True:
            wait = _OWNER_POLL
            if start_by is not None and not call.started and here.time() >= start_by:
                call.cancel()
                if not call.started:
                    raise ConfigurationError(_blocked_owner(_OWNER_START))
            if deadline is not None:
                wait = min(wait, deadline - here.time())
                if wait <= 0:
                    call.cancel()
                    if not call.started:
                        # Not the rate limit: that loop never ran the call. This is what a
                        # blocking Client called from code on the limiter's loop looks like.
                        raise ConfigurationError(_blocked_owner(timeout or 0.0))
                    raise wait_too_long(None, timeout or 0.0)
            await asyncio.wait((future,), timeout=wait)
            if future.done():
                if future.cancelled():  # the owner loop cancelled it while stopping
                    return None
                return (future.result(),)
            if owner.is_closed() or not owner.is_running():
                call.abandon()
                return None
    except asyncio.CancelledError:  # our caller was cancelled: so is the forwarded call
        call.cancel()
        raise


class LoopOwner:
    """Pins a limiter's state to one event loop, so several loops (threads) can share it.

    The first loop that uses the limiter owns it; a call from another loop is forwarded to
    the owner (as ``run_coroutine_threadsafe`` does) and awaited from the caller's loop, so all
    state changes and future wake-ups happen in the owner's thread. When the owner loop has
    stopped or closed (its client was closed), the next caller's loop takes over after
    ``on_switch`` drops the waiters the old loop left behind.

    A loop that stopped may run again after the takeover (asyncio cancels the tasks left when
    it closes; a user may run a loop they stopped): code it resumes must not touch the state.
    So everything that runs after a suspension checks :meth:`owns` with :attr:`lock` held,
    which a takeover holds while it switches.
    """

    def __init__(self, on_switch: Callable[[], None] | None = None) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._on_switch = on_switch
        self._pid = self._lock_pid = os.getpid()

    @property
    def lock(self) -> threading.Lock:
        """Held by a takeover: hold it while checking :meth:`owns` and changing the state."""
        if self._lock_pid != os.getpid():
            # A forked child: a thread of the parent may have held it, and never releases it
            # here (the loop itself may go on in the child when it forked from a task).
            self._lock_pid = os.getpid()
            self._lock = threading.Lock()
        return self._lock

    def owns(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether ``loop`` still owns the state (call with :attr:`lock` held)."""
        return self._loop is loop

    def other(self) -> asyncio.AbstractEventLoop | None:
        """The owner loop when it is not the caller's (forward to it), else None."""
        loop = asyncio.get_running_loop()
        owner = self._loop
        if owner is loop:
            return None
        if self._pid != os.getpid():
            # A forked child: the owner loop looks alive but its thread stayed in the parent
            # (as may a thread that held the lock). Start over here, without its waiters.
            self._pid = os.getpid()
            if owner is not None and self._on_switch is not None:
                self._on_switch()
            self._loop = owner = None
        with self.lock:
            owner = self._loop
            if owner is None or owner is loop or owner.is_closed() or not owner.is_running():
                if owner is not None and owner is not loop and self._on_switch is not None:
                    self._on_switch()
                self._loop = loop
                return None
            return owner

    def post(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` in the owner's thread (now, when the caller is the owner)."""
        try:
            owner = self.other()
        except RuntimeError:  # no running loop: called from plain code
            owner = self._loop
            if owner is None or owner.is_closed() or not owner.is_running():
                with self.lock:
                    callback()
                return
        if owner is None:
            callback()
            return
        try:
            owner.call_soon_threadsafe(self._run_posted, callback)
        except RuntimeError:
            # The owner loop closed since other() saw it running (its client closed): this
            # loop takes over, or the feedback is dropped. Never an error: on_response runs
            # after Telnyx answered, and a send that raised would be sent again.
            owner = self.other()
            if owner is None:
                callback()
            else:
                with contextlib.suppress(RuntimeError):
                    owner.call_soon_threadsafe(self._run_posted, callback)

    def _run_posted(self, callback: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        with self.lock:
            if self._loop is loop:
                callback()
                return
        # This loop stopped while the callback was queued, and another took over: hand it on.
        self.post(callback)

    async def forward(
        self,
        owner: asyncio.AbstractEventLoop,
        make: Callable[[float | None], Coroutine[Any, Any, T]],
        timeout: float | None,
    ) -> T:
        """Run ``make(timeout)`` on ``owner`` and wait for it here (cancelling it if this call
        is).

        When the owner loop stops meanwhile (its client closed), its tasks are cancelled, or
        a call posted while it shut down never runs (the wait polls the owner to notice): the
        call then waits for that loop to stop and runs again under the next owner, with the
        rest of ``timeout``.
        """
        here = asyncio.get_running_loop()
        ends = None if timeout is None else here.time() + timeout
        deadline = None if ends is None else ends + _FORWARD_GRACE
        for _ in range(_HANDOVERS):
            left = _left(ends)
            try:
                call = _Forwarded(owner, functools.partial(make, left))
            except RuntimeError:  # the owner loop closed just now
                pass
            else:
                outcome = await _await_owner(call, deadline, timeout)
                if outcome is not None:
                    return outcome[0]
            for _ in range(500):  # bounded (5 s): the owner loop is shutting down
                if not owner.is_running():
                    break
                await asyncio.sleep(0.01)
            next_owner = self.other()
            if next_owner is None:
                return await make(_left(ends))
            owner = next_owner
        raise RuntimeError("rate limiter: its event loop kept changing; giving up")


# Where a lane is: no live waiter / in its head's account ring / in the heap of lanes waiting
# for their own bucket / held: grantable, but its head's task is busy (asleep, or woken and
# not yet run), so only that task may grant it / passing: its last grant went to the running
# task, which releases the lane once it is sure to resume before the lane's next grantee.
_IDLE, _READY, _TIMED, _HELD, _PASSING = 0, 1, 2, 3, 4
_TIME_EPS = 1e-9
# A lane without a rate of its own that reports a full queue pauses for 1 % of the 4 h window.
_UNRATED_PAUSE = DRAIN_FRACTION * QUEUE_SECONDS


class _Account:
    """The account lane of one message type: its bucket plus the ring of ready lanes."""

    __slots__ = ("bucket", "granted_at", "ring")

    def __init__(self, spec: AccountSpec | None, now: float) -> None:
        self.bucket = None if spec is None else TokenBucket(spec.rate, spec.burst, now)
        self.ring: collections.deque[_Lane] = collections.deque()
        self.granted_at = -math.inf  # its last grant (see _rate_in_use)


class _Adaptive:
    """The request rate learnt from 429 ``10011``; its bucket is ``RateLimits._shared``."""

    __slots__ = ("cooldown_until", "decreased_at", "spec", "wmax")

    def __init__(self, spec: RequestSpec) -> None:
        self.spec = spec
        self.wmax = 0.0
        self.decreased_at = 0.0
        self.cooldown_until = -math.inf


class _Lane:
    """One sender's FIFO of waiters and its bucket (None: no rate of its own)."""

    __slots__ = ("bucket", "key", "passer", "paused_until", "seq", "waiters", "where")

    def __init__(self, key: str | None, bucket: TokenBucket | None) -> None:
        self.key = key
        self.bucket = bucket
        self.waiters: collections.deque[_Waiter] = collections.deque()
        self.where = _IDLE
        self.seq = 0
        self.paused_until = -math.inf
        self.passer: _Waiter | None = None


class _Waiter:
    """One pending ``acquire`` call."""

    __slots__ = (
        "account",
        "cancelled",
        "future",
        "granted",
        "lane",
        "order",
        "shared",
        "sleep_until",
    )

    def __init__(self, lane: _Lane, account: _Account) -> None:
        self.lane = lane
        self.account = account
        self.shared: TokenBucket | None = None  # the request bucket it took a token from
        self.granted = False
        self.order = 0  # the grant's sequence number
        self.cancelled = False
        self.future: asyncio.Future[None] | None = None
        self.sleep_until: float | None = None


class RateLimits:
    """Client-side rate limits for sends: account lanes per message type, one lane per sender.

    ``await acquire(sender, message_type)`` returns when one message may be sent. Each send
    takes one token from the account lane of its message type (``"SMS"``, ``"MMS"``) and one
    from the lane of its sender (the ``from`` value, or the messaging profile id of a
    number-pool send; ``sender=None`` has no sender rate, but such calls share one FIFO lane).

    **Account lanes** are token buckets: ``account_mps`` messages/s (SMS; MMS defaults to
    ``min(account_mps, 15)``; pass a mapping such as ``{"SMS": 200, "MMS": 50}`` to set each
    type) and ``burst`` tokens (``None``: the rate rounded up, at least 1). ``account_mps=None``
    removes the account lanes.

    **Sender lanes model Telnyx's queue.** Telnyx queues a sender's messages beyond its rate
    for up to 4 hours (queue depth = 4 h x rate: 1,440 messages for a 0.1 MPS long code) and
    answers 429/40318 only when that queue is full. So a lane whose rate comes from its kind
    (``per_kind_mps``, defaults below) lets sends through at once while the estimated server
    backlog ``B(t) = max(0, B(t0) + sends - rate x (t - t0))`` would stay at or under
    ``H = queue_fraction x 4 h x rate`` (at least 1), and paces at ``rate`` beyond that.
    This is exactly a token bucket of rate ``rate`` and capacity ``H``, with
    ``tokens = H - B``. With the defaults a long code sends 720 messages at once, then one
    every 10 s. **A rate set for one sender in** ``per_sender_mps`` **is a strict token bucket**
    (capacity ``burst``, default the rate rounded up), for senders that must not be queued.

    ============  ===============  ===================  =====================
    kind          default msg/s    Telnyx queue depth   sent at once (H)
    ============  ===============  ===================  =====================
    long_code     0.1              1,440                720
    toll_free     20               288,000              144,000
    short_code    1,000            14,400,000           7,200,000
    alphanumeric  0.1              1,440                720
    number_pool   none (no lane limit; keyed by messaging profile id)
    ============  ===============  ===================  =====================

    :func:`sender_kind` classifies senders. A kind or sender mapped to ``None`` has no lane
    limit. ``per_kind_mps`` entries replace the defaults of their kinds (and so their queue
    allowance); ``queue_fraction`` (default 0.5, in (0, 1]) sets ``H``. Bad values raise
    :class:`~telnyx_msg.errors.ConfigurationError`.

    **Feedback** (``on_response`` after each response):

    - 429 code ``10011`` (or any other 429 but ``40318``): Telnyx's request limit counts
      every message type, so all sends of limited types (an account lane that is not
      ``None``) now also take a token from one shared **request bucket**. Its rate is
      multiplied by 0.7 (not below ``min(0.5, R)``; at most once per ``max(1 s, the block
      below)``), ``R`` being the highest account rate; ``W_max`` = the rate before (for the
      first decrease: the highest rate of the account lanes that sent within 2 s, else ``R``),
      or the measured success rate of all sends if lower (EWMA over 0.5 s slots, weight 0.8).
      The bucket is emptied and blocked for ``reset_after`` seconds (``x-ratelimit-reset``;
      capped at 300 s), less 0.9 s when it is a whole number, since whole seconds are rounded
      up and the window resets within the last second before the stated time. Its size is
      ``burst x rate / R``, at least 1. The account lanes take turns at it.
    - 2xx: the request rate recovers (CUBIC): ``rate = 0.4 (t - K)^3 + W_max``,
      ``K = cbrt(W_max x 0.3 / 0.4)``, ``t`` = seconds since the last decrease; at the sum of
      the account rates it can no longer bind and the request bucket is dropped (once its
      block and cooldown are over).
    - 429 code ``40318`` (the sender's queue is full): that lane alone pauses until the server
      has drained ``m = max(1, 1 % x 4 h x rate)`` messages, i.e. for ``m / rate`` seconds
      (``max(1/rate, 144 s)``), then paces at ``rate``; a lane without a rate pauses 144 s.

    ``acquire`` waits instead of failing, is FIFO within a lane, serves ready lanes round-robin
    so a slow lane never blocks another, and is cancellation-safe: a cancelled call gives back
    tokens only if it had been granted them. It uses ``clock`` (default ``time.monotonic``)
    and ``sleep`` (default ``asyncio.sleep``) and starts no tasks. One instance may be shared
    by several clients, also blocking ``Client`` objects whose loops run in other threads: the
    first loop that uses it owns its state and the others forward their calls to that loop
    (when the owner loop stops, the next one takes over).
    """

    def __init__(
        self,
        account_mps: float | Mapping[str, float | None] | None = 50.0,
        per_kind_mps: Mapping[str, float | None] | None = None,
        per_sender_mps: Mapping[str, float | None] | None = None,
        burst: float | None = None,
        *,
        queue_fraction: float = DEFAULT_QUEUE_FRACTION,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        self._config: LimitConfig = resolve_config(
            account_mps, per_kind_mps, per_sender_mps, burst, queue_fraction
        )
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._sleep: Callable[[float], Awaitable[object]] = (
            sleep if sleep is not None else asyncio.sleep
        )
        self._unlimited = False
        now = self._clock()
        self._accounts = {key: _Account(spec, now) for key, spec in self._config.accounts.items()}
        self._account_list = list(self._accounts.values())
        self._turn = 0  # the account lane served first at the shared request bucket
        requests = self._config.requests
        self._adaptive = None if requests is None else _Adaptive(requests)
        # The request bucket every limited account lane shares: None until the first 10011,
        # and again once it has recovered to the sum of the account rates.
        self._shared: TokenBucket | None = None
        self._by_type: dict[str, _Account] = {}  # message type as given -> its account lane
        self._lanes: dict[str | None, _Lane] = {}
        self._prune_at = 1024
        self._timed: list[tuple[float, int, _Lane]] = []
        self._sleepers: list[tuple[float, int, _Waiter]] = []
        self._parked: dict[_Waiter, None] = {}
        self._seq = itertools.count(1)
        self._next_event: float | None = None
        self._goodput = RateMeter()
        self._grants = 0
        self._owner = LoopOwner(self._drop_waiters)

    @classmethod
    def unlimited(cls) -> RateLimits:
        """Limits that never wait: ``acquire`` returns at once and feedback is ignored."""
        limits = cls(account_mps=None)
        limits._unlimited = True
        return limits

    def __repr__(self) -> str:
        if self._unlimited:
            return "RateLimits.unlimited()"
        accounts = {k: None if s is None else s.rate for k, s in self._config.accounts.items()}
        return (
            f"RateLimits(account_mps={accounts!r}, per_kind_mps={dict(self._config.kind_mps)!r}, "
            f"per_sender_mps={dict(self._config.sender_mps)!r}, burst={self._config.burst!r}, "
            f"queue_fraction={self._config.queue_fraction!r})"
        )

    # ------------------------------------------------------------------ public API

    async def acquire(
        self, sender: str | None, message_type: str = "SMS", *, timeout: float | None = None
    ) -> None:
        """Wait until one message of ``message_type`` may be sent from ``sender``.

        ``sender`` is the ``from`` value, or the messaging profile id for number-pool sends;
        ``None`` uses only the account lane. Call once before every attempt. With ``timeout``
        (seconds), a wait that would be longer raises
        :class:`~telnyx_msg.RateLimitError` (``retry_after``: the expected wait, when known)
        at once when the buckets already show it, else when ``timeout`` has passed; nothing
        is taken then.
        """
        if self._unlimited:
            return
        owner = self._owner.other()
        if owner is not None:
            await self._owner.forward(
                owner, lambda left: self.acquire(sender, message_type, timeout=left), timeout
            )
            return
        lane = self._lanes.get(sender)
        if lane is None:
            lane = self._new_lane(sender)
        account = self._by_type.get(message_type)
        if account is None:
            account = self._by_type[message_type] = self._accounts[
                self._config.account_key(message_type)
            ]
        now = self._clock()
        bucket = account.bucket
        if bucket is None and lane.bucket is None and not lane.waiters and now >= lane.paused_until:
            return
        shared = self._shared if bucket is not None else None
        if (
            lane.where == _IDLE
            and not lane.waiters
            and not account.ring
            and now >= lane.paused_until
            and not (self._timed and self._timed[0][0] <= now)
            and (shared is None or not any(other.ring for other in self._account_list))
        ):
            # Nobody this call could overtake (no waiter in its lane, no lane waiting for the
            # account or the shared request bucket, no lane due from the heap): take the tokens
            # without queueing, exactly what a pump would grant, minus the bookkeeping.
            lane_bucket = lane.bucket
            if (
                (lane_bucket is None or lane_bucket.available(now))
                and (bucket is None or bucket.available(now))
                and (shared is None or shared.available(now))
            ):
                # available() brought them up to date at `now`: taking is a subtraction.
                if lane_bucket is not None:
                    lane_bucket.tokens -= 1.0
                if bucket is not None:
                    bucket.tokens -= 1.0
                    account.granted_at = now
                if shared is not None:
                    shared.tokens -= 1.0
                self._grants += 1
                return
        waiter = _Waiter(lane, account)
        lane.waiters.append(waiter)
        if lane.where == _IDLE:
            self._place(lane, now)
        before = self._grants
        self._pump(now, waiter)
        if not waiter.granted:
            deadline = None
            if timeout is not None:
                eta = self._eta(lane, account, now)
                if eta > timeout:
                    self._abandon(waiter)
                    raise wait_too_long(eta, timeout)
                deadline = asyncio.get_running_loop().time() + timeout
            try:
                if timeout is None:
                    await self._wait(waiter)
                else:
                    await self._wait_at_most(waiter, timeout)
            except _HandedOver:
                # This loop stopped while the call waited, another loop took the limiter over
                # and forgot the waiter, and this loop runs again: ask anew.
                await self.acquire(sender, message_type, timeout=_left(deadline))
            return
        if waiter.order > before + 1:
            await self._let_earlier_go_first(waiter)
            return
        self._release(waiter)

    def on_response(
        self,
        sender: str | None,
        *,
        status: int,
        code: str | None,
        reset_after: float | None,
    ) -> None:
        """Feed back one response: 2xx recovers, 429 ``10011`` slows the account, ``40318``
        pauses ``sender``'s lane. Other statuses are ignored."""
        if (
            self._unlimited
            or (200 <= status < 300 and self._adaptive is None)
            or (status >= 300 and status != 429)
        ):
            return
        self._owner.post(lambda: self._feedback(sender, status, code, reset_after))

    def _feedback(
        self, sender: str | None, status: int, code: str | None, reset_after: float | None
    ) -> None:
        now = self._clock()
        if 200 <= status < 300:
            self._goodput.add(now)
            if not self._recover(now):
                return
        elif status == 429 and code == QUEUE_FULL_CODE:
            if sender is None:
                return
            self._queue_full(sender, now)
        elif status == 429:
            self._throttle(now, reset_after)
        else:
            return
        self._pump(now)
        self._cover()

    async def _wait_at_most(self, waiter: _Waiter, timeout: float) -> None:
        """``_wait``, cancelled (and undone) after ``timeout`` seconds, in the caller's task."""
        task = asyncio.current_task()
        # The caller's own cancellations so far (as asyncio.timeout counts them): one that
        # comes due in the turn this wait times out is the caller's, and wins.
        cancels = 0
        if sys.version_info >= (3, 11) and task is not None:
            cancels = task.cancelling()
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            if task is not None:
                task.cancel()

        handle = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            await self._wait(waiter)
        except asyncio.CancelledError:
            if not expired:
                raise
            if sys.version_info >= (3, 11) and task is not None and task.uncancel() > cancels:
                raise
            raise wait_too_long(None, timeout) from None
        finally:
            handle.cancel()

    def _eta(self, lane: _Lane, account: _Account, now: float) -> float:
        """Seconds until every bucket of a waiter could grant: a lower bound of its wait."""
        at = max(now, lane.paused_until)
        shared = self._shared if account.bucket is not None else None
        for bucket in (lane.bucket, account.bucket, shared):
            if bucket is not None and not bucket.available(now):
                at = max(at, bucket.ready_at(now))
        return at - now

    def _drop_waiters(self) -> None:
        """Forget the waiters of a loop that stopped (see :class:`LoopOwner`)."""
        for lane in self._lanes.values():
            for waiter in lane.waiters:
                waiter.cancelled = True
            lane.waiters.clear()
            lane.where = _IDLE
            lane.passer = None
        for account in self._account_list:
            account.ring.clear()
        self._timed.clear()
        self._sleepers.clear()
        # A parked waiter is woken only by this state: wake it in its own loop's thread (when
        # that loop runs again), so that it notices it was dropped and asks anew.
        for waiter in self._parked:
            future = waiter.future
            if future is not None:
                with contextlib.suppress(RuntimeError):  # its loop closed: so did its task
                    future.get_loop().call_soon_threadsafe(_wake, future)
        self._parked.clear()

    # ------------------------------------------------------------------ feedback

    def _recover(self, now: float) -> bool:
        adaptive = self._adaptive
        bucket = self._shared
        if adaptive is None or bucket is None:
            return False
        rate = cubic_rate(adaptive.wmax, now - adaptive.decreased_at)
        if rate >= adaptive.spec.ceiling:
            if bucket.stamp <= now and now >= adaptive.cooldown_until:
                # The account lanes together cannot exceed it now: nothing left to learn.
                self._shared = None
                return True
            # Still blocked until the window resets (x-ratelimit-reset), or a 429 answering a
            # request already in flight may still come: keep the bucket (and its cooldown).
            rate = adaptive.spec.ceiling
        if rate > bucket.rate:
            bucket.set_rate(now, rate, adaptive.spec.capacity_for(rate))
            return True
        return False

    def _throttle(self, now: float, reset_after: float | None) -> None:
        adaptive = self._adaptive
        if adaptive is None:
            return
        pause = reset_pause(reset_after)
        spec = adaptive.spec
        bucket = self._shared
        if bucket is None or now >= adaptive.cooldown_until:
            current = self._rate_in_use(now, spec) if bucket is None else bucket.rate
            goodput = self._goodput.measure(now)
            if goodput > 0:
                current = min(current, goodput)
            rate = max(spec.floor, current * BETA)
            adaptive.wmax = current
            adaptive.decreased_at = now
            adaptive.cooldown_until = now + max(DECREASE_COOLDOWN, pause)
            if bucket is None:
                bucket = self._shared = TokenBucket(rate, spec.capacity_for(rate), now)
            else:
                bucket.set_rate(now, rate, spec.capacity_for(rate))
        bucket.block(now, now + pause)

    def _rate_in_use(self, now: float, spec: RequestSpec) -> float:
        """The request rate before the first decrease: the highest rate of the account lanes
        in use (that granted within ``IN_USE_SECONDS``), else the highest account rate."""
        rates = [
            account.bucket.rate
            for account in self._account_list
            if account.bucket is not None and now - account.granted_at <= IN_USE_SECONDS
        ]
        return max(rates) if rates else spec.rate

    def _queue_full(self, sender: str, now: float) -> None:
        lane = self._lanes.get(sender)
        if lane is None:
            lane = self._new_lane(sender)
        if lane.bucket is not None:
            lane.bucket.limit_tokens(now, 1.0 - drain_tokens(lane.bucket.rate))
        else:
            lane.paused_until = max(lane.paused_until, now + _UNRATED_PAUSE)
        if lane.where == _TIMED:  # its heap entry is now too early: re-place it
            lane.where = _IDLE
            self._place(lane, now)

    # ------------------------------------------------------------------ lanes

    def _new_lane(self, sender: str | None) -> _Lane:
        if len(self._lanes) >= self._prune_at:
            self._prune()
        bucket = None
        if sender is not None:
            spec = self._config.lane_spec(sender)
            if spec is not None:
                bucket = TokenBucket(spec.rate, spec.capacity, self._clock())
        lane = _Lane(sender, bucket)
        self._lanes[sender] = lane
        return lane

    def _prune(self) -> None:
        """Forget idle lanes that are indistinguishable from new ones (amortised O(1))."""
        now = self._clock()
        for key, lane in list(self._lanes.items()):
            if lane.where != _IDLE or lane.waiters or now < lane.paused_until:
                continue
            bucket = lane.bucket
            if bucket is not None:
                bucket.refill(now)
                if bucket.stamp > now or bucket.tokens < bucket.capacity:
                    continue
            del self._lanes[key]
        self._prune_at = max(1024, 2 * len(self._lanes))

    @staticmethod
    def _head(lane: _Lane) -> _Waiter | None:
        waiters = lane.waiters
        while waiters and waiters[0].cancelled:
            waiters.popleft()
        return waiters[0] if waiters else None

    def _place(self, lane: _Lane, now: float) -> _Account | None:
        """Put an idle lane where its head belongs: a ring if the lane can grant, else the heap.

        Returns the account whose ring the lane joined, if it joined one.
        """
        head = self._head(lane)
        if head is None:
            lane.where = _IDLE
            return None
        bucket = lane.bucket
        if now < lane.paused_until:
            ready: float | None = lane.paused_until
        elif bucket is None or bucket.available(now):
            ready = None
        else:
            ready = bucket.ready_at(now)
        if ready is None:
            head.account.ring.append(lane)
            lane.where = _READY
            return head.account
        lane.seq = next(self._seq)
        heappush(self._timed, (ready, lane.seq, lane))
        lane.where = _TIMED
        return None

    # ------------------------------------------------------------------ granting

    def _pump(self, now: float, me: _Waiter | None = None) -> None:
        """Grant everything that can be granted at ``now``; set ``_next_event``.

        ``me`` is the waiter of the running task, if any. Any other head is granted only while
        it is parked on its future, so that tasks resume in the order they were granted: a
        head that is asleep or already woken holds its lane until its own task pumps.
        """
        timed = self._timed
        due: list[_Lane] = []
        while timed and timed[0][0] <= now:
            _, seq, lane = heappop(timed)
            if lane.seq == seq and lane.where == _TIMED:
                lane.where = _IDLE
                due.append(lane)
        for lane in due:
            self._place(lane, now)

        accounts = self._account_list
        shared_bucket = self._shared
        progress = True
        while progress:
            progress = False
            start = self._turn
            for step in range(len(accounts)):
                account = accounts[(start + step) % len(accounts)]
                ring = account.ring
                bucket = account.bucket
                shared = shared_bucket if bucket is not None else None
                while (
                    ring
                    and (bucket is None or bucket.available(now))
                    and (shared is None or shared.available(now))
                ):
                    lane = ring.popleft()
                    lane.where = _IDLE
                    head = self._head(lane)
                    if head is None:
                        continue
                    lane_bucket = lane.bucket
                    if (
                        head.account is not account
                        or now < lane.paused_until
                        or (lane_bucket is not None and not lane_bucket.available(now))
                    ):
                        # It may join a ring this pass has already served: pass again.
                        progress = self._place(lane, now) is not None or progress
                        continue
                    if head is not me and (head.future is None or head.future.done()):
                        lane.where = _HELD
                        continue
                    lane.waiters.popleft()
                    if lane_bucket is not None:
                        lane_bucket.take(now)
                    if bucket is not None:
                        bucket.take(now)
                        account.granted_at = now
                    if shared is not None:
                        shared.take(now)
                        head.shared = shared
                    self._grant(head)
                    # The lane stays closed until the granted caller's task runs (_release):
                    # a caller arriving meanwhile would otherwise take the fast path, or be
                    # granted, and proceed before it (FIFO within a lane).
                    lane.where = _PASSING
                    lane.passer = head
                    if shared is not None:
                        # One grant per account lane per turn at the shared bucket: the next
                        # token goes to the next account lane with waiters.
                        self._turn = (start + step + 1) % len(accounts)
                        progress = True
                        break

        next_event: float | None = None
        while timed and (timed[0][2].seq != timed[0][1] or timed[0][2].where != _TIMED):
            heappop(timed)
        if timed:
            next_event = timed[0][0]
        for account in accounts:
            if account.ring and account.bucket is not None:
                at = account.bucket.ready_at(now)
                if shared_bucket is not None:
                    at = max(at, shared_bucket.ready_at(now))
                if next_event is None or at < next_event:
                    next_event = at
        self._next_event = next_event

    def _grant(self, waiter: _Waiter) -> None:
        self._grants += 1
        waiter.order = self._grants
        waiter.granted = True
        future = waiter.future
        if future is not None and not future.done():
            future.set_result(None)
        self._parked.pop(waiter, None)

    # ------------------------------------------------------------------ waiting

    def _covered(self, at: float) -> bool:
        """True when some waiter sleeps until ``at`` or earlier (stale heap entries dropped)."""
        sleepers = self._sleepers
        while sleepers and sleepers[0][2].sleep_until != sleepers[0][0]:
            heappop(sleepers)
        return bool(sleepers) and sleepers[0][0] <= at + _TIME_EPS

    def _cover(self) -> None:
        """Make sure a waiter will wake at ``_next_event``: wake a parked one to sleep."""
        at = self._next_event
        if at is None or self._covered(at):
            return
        while self._parked:
            waiter, _ = self._parked.popitem()
            future = waiter.future
            if future is None or future.done():
                continue
            waiter.sleep_until = at  # reserve the role until it runs
            heappush(self._sleepers, (at, next(self._seq), waiter))
            future.set_result(None)
            return

    def _role(self, waiter: _Waiter) -> float | None:
        """Pump, then say until when ``waiter`` must sleep (None: park, or done if granted)."""
        now = self._clock()
        self._unhold(waiter.lane, now)
        self._pump(now, waiter)
        if waiter.granted:
            return None
        at = self._next_event
        if at is None or self._covered(at):
            return None
        return at

    async def _wait(self, waiter: _Waiter) -> None:
        """Wait until ``waiter`` is granted; raise :class:`_HandedOver` if it was dropped."""
        loop = asyncio.get_running_loop()
        owner = self._owner
        try:
            before = self._grants
            until = self._role(waiter)
            while not waiter.granted:
                if until is None:
                    future: asyncio.Future[None] = loop.create_future()
                    waiter.future = future
                    self._parked[waiter] = None
                    try:
                        await future
                    finally:
                        waiter.future = None
                else:
                    waiter.sleep_until = until
                    heappush(self._sleepers, (until, next(self._seq), waiter))
                    await self._sleep(max(0.0, until - self._clock()))
                with owner.lock:
                    # Dropped: by a takeover, even if this loop has taken the limiter back since.
                    if not owner.owns(loop) or waiter.cancelled:
                        _go_on_if_granted(waiter)
                        return
                    self._parked.pop(waiter, None)
                    waiter.sleep_until = None
                    before = self._grants
                    until = self._role(waiter)
            if waiter.order > before + 1:
                await asyncio.sleep(0)  # see _let_earlier_go_first
        except BaseException:
            with owner.lock:
                if owner.owns(loop):
                    self._abandon(waiter)
            raise
        self._release_owned(waiter, loop)

    async def _let_earlier_go_first(self, waiter: _Waiter) -> None:
        """Yield once when the pump that granted this waiter granted others before it.

        Their tasks resume in grant order (FIFO); without the yield this caller, which is
        running, would proceed before them. Its lane is ``_PASSING`` meanwhile, so none of
        the waiters behind it is granted (and resumed) before it.
        """
        loop = asyncio.get_running_loop()
        owner = self._owner
        try:
            await asyncio.sleep(0)
        except BaseException:
            with owner.lock:
                if owner.owns(loop):
                    self._abandon(waiter)
            raise
        self._release_owned(waiter, loop)

    def _release_owned(self, waiter: _Waiter, loop: asyncio.AbstractEventLoop) -> None:
        """``_release`` after a suspension: only while ``loop`` still owns the state."""
        owner = self._owner
        with owner.lock:
            if owner.owns(loop):
                self._release(waiter)
                return
        _go_on_if_granted(waiter)

    def _release(self, waiter: _Waiter) -> None:
        """A granted waiter returns: let its lane serve the next waiter."""
        lane = waiter.lane
        if lane.where == _PASSING and lane.passer is waiter:
            lane.passer = None
            lane.where = _IDLE
            now = self._clock()
            self._place(lane, now)
            if lane.where != _IDLE:
                self._pump(now)
        self._cover()

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter leaves by an exception (cancellation): undo exactly what it took."""
        waiter.sleep_until = None
        self._parked.pop(waiter, None)
        now = self._clock()
        lane = waiter.lane
        if waiter.granted:
            if lane.bucket is not None:
                lane.bucket.give_back(now)
            if waiter.account.bucket is not None:
                waiter.account.bucket.give_back(now)
            if waiter.shared is not None and waiter.shared is self._shared:
                waiter.shared.give_back(now)
            if lane.where == _PASSING and lane.passer is waiter:
                lane.passer = None
                lane.where = _IDLE
                self._place(lane, now)
            elif lane.where == _TIMED:  # the refund may make it ready sooner
                lane.where = _IDLE
                self._place(lane, now)
        else:
            was_head = lane.where == _READY and self._head(lane) is waiter
            waiter.cancelled = True
            if was_head:
                # The lane waits in the ring of this waiter's account (MMS, say) while the
                # next waiter may need another (SMS): place it anew, or that waiter waits for
                # a token it will not use.
                with contextlib.suppress(ValueError):
                    waiter.account.ring.remove(lane)
                lane.where = _IDLE
                self._place(lane, now)
            self._unhold(lane, now)
        self._pump(now)
        self._cover()

    def _unhold(self, lane: _Lane, now: float) -> None:
        """Put a held lane back in play (its head's task is running now, or gone)."""
        if lane.where == _HELD:
            lane.where = _IDLE
            self._place(lane, now)
