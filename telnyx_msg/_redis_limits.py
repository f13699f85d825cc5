"""Rate limits shared by many processes or machines through Redis.

Each limit is a Redis hash updated by an atomic Lua script (``EVALSHA``, loaded with
``SCRIPT LOAD`` on ``NOSCRIPT``) that reads the Redis server's ``TIME``, so the clocks of the
client machines play no part. ``redis`` is imported only when a :class:`RedisRateLimits` is
built (``pip install 'telnyx_msg[redis]'``).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from telnyx_msg._bucket import (
    DEFAULT_QUEUE_FRACTION,
    DRAIN_FRACTION,
    IN_USE_SECONDS,
    QUEUE_SECONDS,
    LimitConfig,
    drain_tokens,
    reset_pause,
    resolve_config,
)
from telnyx_msg._config import positive_seconds
from telnyx_msg._fork import in_forked_child
from telnyx_msg._ratelimit import wait_too_long
from telnyx_msg._redis_common import (
    LoopClients,
    check_redis_version,
    client_from_url,
    misconfigured,
    time_limit,
    url_error,
)
from telnyx_msg.errors import (
    QUEUE_FULL_CODE,
    ConfigurationError,
    RateLimiterUnavailableError,
)

__all__ = ["DEFAULT_REDIS_TIMEOUT", "RedisRateLimits"]

#: Seconds one Redis round trip (or connecting) may take before the limiter reports Redis
#: unavailable. A healthy Redis answers in about a millisecond.
DEFAULT_REDIS_TIMEOUT = 1.0

# Shared by both scripts: server time, the bucket refill and the adaptive (CUBIC) request rate.
# Numbers are stored with %.17g: Lua's default conversion keeps only 14 digits.
_PRELUDE = """
local BETA, C, EPS, MIN_DT, MIN_RATE, COOLDOWN = 0.7, 0.4, 1e-6, 1e-6, 0.5, 1.0
local MARGIN, MAX_TTL = 60.0, 2592000.0
if redis.replicate_commands then pcall(redis.replicate_commands) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000

local function fmt(x) return string.format('%.17g', x) end

-- The shared request bucket's rate (RequestSpec in _bucket): nil before the first 429 10011
-- and once recovered to the ceiling (the sum of the account rates), when it cannot bind.
local function request_rate(key, ref, ceiling)
  local v = redis.call('HMGET', key, 'wmax', 'tdec', 'ts', 'cool')
  local wmax, tdec = tonumber(v[1]), tonumber(v[2])
  if wmax == nil or tdec == nil then return nil end
  local k = (wmax * (1 - BETA) / C) ^ (1 / 3)
  local rate = C * (now - tdec - k) ^ 3 + wmax
  if rate >= ceiling then
    -- Dropped only once its block (until the window resets) and its cooldown are over.
    local ts, cool = tonumber(v[3]), tonumber(v[4])
    if (ts == nil or ts <= now) and (cool == nil or cool <= now) then return nil end
    rate = ceiling
  end
  return math.max(math.min(MIN_RATE, ref), rate)
end

local function load(key, rate, cap)
  local v = redis.call('HMGET', key, 'tok', 'ts')
  local tok, ts = tonumber(v[1]), tonumber(v[2])
  if tok == nil or ts == nil then return cap, now end
  if now > ts then
    tok = math.min(cap, tok + (now - ts) * rate)
    ts = now
  end
  return tok, ts
end

local function wait_for(tok, ts, rate)
  if ts <= now and tok >= 1 - EPS then return 0 end
  return math.max(MIN_DT, math.max(now, ts) - now + math.max(0, 1 - tok) / rate)
end

local function expire(key, seconds)
  redis.call('PEXPIRE', key, math.ceil(math.min(MAX_TTL, seconds + MARGIN) * 1000))
end

local function store(key, tok, ts, rate, cap)
  redis.call('HSET', key, 'tok', fmt(tok), 'ts', fmt(ts))
  expire(key, math.max(0, ts - now) + math.max(0, cap - tok) / rate)
end

-- The shared success meter (RateMeter in _bucket): successes/s of every process, an EWMA over
-- SLOT-second slots weighting the newest SMOOTH; the slot in progress is not counted. Adds
-- ``add`` successes now and returns the rate.
local SLOT, SMOOTH = 0.5, 0.8
local function meter(key, add)
  local v = redis.call('HMGET', key, 'slot', 'count', 'rate')
  local slot, count, rate = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0
  local cur = math.floor(now / SLOT)
  if slot == nil then
    slot = cur
  elseif cur > slot then
    rate = SMOOTH * count / SLOT + (1 - SMOOTH) * rate
    rate = rate * (1 - SMOOTH) ^ math.min(cur - slot - 1, 64)
    slot, count = cur, 0
  end
  if add > 0 then
    redis.call('HSET', key, 'slot', fmt(slot), 'count', fmt(count + add), 'rate', fmt(rate))
    expire(key, SLOT)
  end
  return rate
end
"""

# KEYS: [account hash, request hash if ARGV[1] == '1'] [lane hash if ARGV[4] == '1']
#   [the meter, last]
# ARGV: has_account, account rate, account burst, has_lane, lane rate (0: none), lane capacity,
#   successes to add to the meter, then the request bucket's reference rate, burst and ceiling
# Returns {1, '0'} after taking a token from each bucket, else {0, seconds to wait, 1 if the
# account or request bucket is what it waits for}: nothing is taken while waiting. The
# successes are added either way.
_TAKE = (
    _PRELUDE
    + """
local i, wait, await_ = 1, 0, 0
if tonumber(ARGV[7]) > 0 then meter(KEYS[#KEYS], tonumber(ARGV[7])) end
local akey, atok, ats, arate, acap
local rkey, rtok, rts, rrate, rcap
if ARGV[1] == '1' then
  akey = KEYS[i]
  arate, acap = tonumber(ARGV[2]), tonumber(ARGV[3])
  atok, ats = load(akey, arate, acap)
  await_ = wait_for(atok, ats, arate)
  local ref, burst = tonumber(ARGV[8]), tonumber(ARGV[9])
  rrate = request_rate(KEYS[i + 1], ref, tonumber(ARGV[10]))
  if rrate ~= nil then
    rkey = KEYS[i + 1]
    rcap = math.max(1, burst * rrate / ref)
    rtok, rts = load(rkey, rrate, rcap)
    await_ = math.max(await_, wait_for(rtok, rts, rrate))
  end
  wait = await_
  i = i + 2
end
local lkey, ltok, lts, lrate, lcap
if ARGV[4] == '1' then
  lkey = KEYS[i]
  lrate, lcap = tonumber(ARGV[5]), tonumber(ARGV[6])
  if lrate > 0 then
    ltok, lts = load(lkey, lrate, lcap)
    wait = math.max(wait, wait_for(ltok, lts, lrate))
  else
    local pause = tonumber(redis.call('HGET', lkey, 'pause'))
    if pause ~= nil and pause > now then wait = math.max(wait, pause - now) end
  end
end
if wait > 0 then
  if await_ > 0 and await_ >= wait then return {0, fmt(wait), 1} end
  return {0, fmt(wait), 0}
end
if akey then store(akey, atok - 1, ats, arate, acap) end
if rkey then store(rkey, rtok - 1, rts, rrate, rcap) end
if lkey and lrate > 0 then store(lkey, ltok - 1, lts, lrate, lcap) end
return {1, '0'}
"""
)

# ARGV[1] == 'throttle': KEYS = the request hash, the meter, then the account hashes;
#   ARGV[2] = block seconds, ARGV[3] = successes to add to the meter first; ARGV[4..6] = the
#   request bucket's reference rate, burst and ceiling; then rate, burst per account hash
#   (the burst is not used); last, the seconds since the 429 came.
# ARGV[1] == 'queue_full': KEYS[1] = lane hash; ARGV[2] = rate (0: none), ARGV[3] = capacity,
#   ARGV[4] = messages to drain, ARGV[5] = pause of a lane without a rate.
_FEEDBACK = (
    _PRELUDE
    + f"local IN_USE = {IN_USE_SECONDS!r}\n"
    + """
if ARGV[1] == 'throttle' then
  local pause = tonumber(ARGV[2])
  -- Seconds since the 429 came (it is written at the next acquire): the lanes in use are
  -- those that took a token within IN_USE seconds of the 429, not of this write.
  local age = math.max(0, tonumber(ARGV[#ARGV]))
  local goodput = meter(KEYS[2], tonumber(ARGV[3]))
  local key = KEYS[1]
  local ref, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
  local rate = request_rate(key, ref, tonumber(ARGV[6]))
  local cool = tonumber(redis.call('HGET', key, 'cool'))
  if rate == nil then
    -- No request bucket yet (or it had recovered): a new one, at the highest rate of the
    -- account lanes in use (a token taken within IN_USE seconds: ts, which only a take
    -- writes), else the highest account rate.
    redis.call('DEL', key)
    rate, cool = 0, nil
    for j = 3, #KEYS do
      local taken = tonumber(redis.call('HGET', KEYS[j], 'ts'))
      if taken ~= nil and now - taken <= IN_USE + age then
        rate = math.max(rate, tonumber(ARGV[1 + 2 * j]))
      end
    end
    if rate == 0 then rate = ref end
  end
  local cap = math.max(1, burst * rate / ref)
  local tok, ts = load(key, rate, cap)
  if cool == nil or now >= cool then
    local wmax = rate
    if goodput > 0 then wmax = math.min(rate, goodput) end
    redis.call('HSET', key, 'wmax', fmt(wmax), 'tdec', fmt(now),
               'cool', fmt(now + math.max(COOLDOWN, pause)))
    rate = math.max(math.min(MIN_RATE, ref), wmax * BETA)
    cap = math.max(1, burst * rate / ref)
  end
  store(key, math.min(tok, 0, cap), math.max(ts, now + pause), rate, cap)
  return 1
end
local key = KEYS[1]
local rate, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
if rate > 0 then
  local tok, ts = load(key, rate, cap)
  store(key, math.min(tok, 1 - tonumber(ARGV[4])), ts, rate, cap)
else
  local until_ = now + tonumber(ARGV[5])
  local old = tonumber(redis.call('HGET', key, 'pause'))
  if old == nil or old < until_ then
    redis.call('HSET', key, 'pause', fmt(until_))
    expire(key, until_ - now)
  end
end
return 1
"""
)


class _Script:
    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


_TAKE_SCRIPT = _Script(_TAKE)
_FEEDBACK_SCRIPT = _Script(_FEEDBACK)


#: Marks an account's line among the per-sender ones (a sender is a str or None).
_ACCOUNT = "account"


def _num(value: float) -> str:
    return repr(float(value))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Turns:
    """The acquires of one sender in one event loop: they take turns (one Redis round trip
    at a time), and a failed round trip answers the callers already waiting behind it."""

    __slots__ = ("failure", "failures", "lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
        self.failures = 0
        # The last failure's message and Redis cause, as raised (the caller's retry loop may
        # add to that exception's message afterwards, about its own call).
        self.failure: tuple[str, BaseException | None] | None = None


class RedisRateLimits:
    """:class:`~telnyx_msg.RateLimits` whose buckets live in Redis, shared by every process
    that uses the same ``key_prefix``.

    Same arguments, lanes, defaults and feedback formulas as ``RateLimits`` (give every
    process the same settings). Differences, all because the state is remote:

    - Each ``acquire`` runs one atomic script that takes a token from the account lane (and the
      request bucket, after a ``10011``) and the sender lane together, or takes nothing and
      returns how long to wait; the caller sleeps that long and asks again. Within a process
      (per event loop), calls for one lane are FIFO; across processes there is no FIFO
      (whoever asks first after a refill wins).
    - The request rate after a 429 ``10011`` recovers with time (the CUBIC curve is evaluated
      at each ``acquire``), not per success. The success meter that can lower ``W_max`` is
      shared: each process counts its 2xx responses and adds them at its next round trip, so
      the decrease uses the successes/s of all processes together.
    - ``on_response`` does no I/O: the feedback is written by the next ``acquire`` of this
      process, before it takes a token (the ``reset_after`` block is shortened by the time
      elapsed meanwhile).
    - Every Redis round trip is bounded by ``redis_timeout`` seconds (default 1; also the
      socket and connect timeouts of a client built from ``url``). A Redis error or a round
      trip that takes longer raises :class:`~telnyx_msg.RateLimiterUnavailableError` from
      ``acquire`` (the redis exception is its ``__cause__``); nothing is sent then.
    - ``acquire(timeout=...)`` (the client passes the call's timeout) raises
      :class:`~telnyx_msg.RateLimitError` at once when Redis says the wait is longer.
    - One instance may be shared by clients on several event loops (blocking ``Client``
      objects): with ``url``, each loop gets its own Redis connection pool (the state is in
      Redis anyway); a blocking ``Client`` closes its loop's pool when it closes. A
      ``client=`` you pass is used as it is, so it must belong to the one loop that uses it.

    ``url`` is a ``redis://`` URL; or pass ``client`` (a ``redis.asyncio.Redis``), which is
    then not closed by :meth:`aclose`. ``clock`` (default ``time.monotonic``) only ages a
    recorded ``reset_after``; ``sleep`` (default ``asyncio.sleep``) waits between attempts.
    Keys: ``{key_prefix}acct:{SMS|MMS}``, ``{key_prefix}requests`` (the shared request bucket,
    after a ``10011``), ``{key_prefix}lane:{sender}`` and ``{key_prefix}meter``; each expires
    a minute after its bucket would be full again (the meter a minute after the last success
    was added).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        account_mps: float | Mapping[str, float | None] | None = 50.0,
        per_kind_mps: Mapping[str, float | None] | None = None,
        per_sender_mps: Mapping[str, float | None] | None = None,
        burst: float | None = None,
        queue_fraction: float = DEFAULT_QUEUE_FRACTION,
        key_prefix: str = "telnyx_msg:rl:",
        client: Any = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        redis_timeout: float = DEFAULT_REDIS_TIMEOUT,
    ) -> None:
        positive_seconds("redis_timeout", redis_timeout)
        try:
            import redis.asyncio as redis_asyncio
            from redis.exceptions import ConnectionError as RedisConnectionError
            from redis.exceptions import NoScriptError, RedisError
        except ImportError as exc:
            raise ConfigurationError(
                "RedisRateLimits needs the redis package: pip install 'telnyx_msg[redis]'"
            ) from exc
        check_redis_version("RedisRateLimits")
        self._config: LimitConfig = resolve_config(
            account_mps, per_kind_mps, per_sender_mps, burst, queue_fraction
        )
        make: Callable[[], Any] | None = None
        if client is None:
            if not url:
                raise ConfigurationError("RedisRateLimits needs a redis:// url or a client")
            redis_url = url

            def make() -> Any:
                return client_from_url(redis_asyncio, redis_url, redis_timeout)

            try:
                client = make()
            except ValueError as exc:
                raise url_error(redis_url, exc) from None
        self._state_lock = threading.Lock()
        _LIMITERS.add(self)
        # A client per event loop when built from a url; a client= is used as it is.
        self._clients = (
            LoopClients(client, make, lock=self._state_lock, on_drop=self._forget_loop)
            if make is not None
            else None
        )
        self._client: Any = None if make is not None else client
        self._no_script: type[Exception] = NoScriptError
        self._redis_error: type[Exception] = RedisError
        self._connection_error: type[Exception] = RedisConnectionError
        self._redis_timeout = float(redis_timeout)
        self._prefix = key_prefix
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._sleep: Callable[[float], Awaitable[object]] = (
            sleep if sleep is not None else asyncio.sleep
        )
        # The lines of this process, per loop: a sender's, or an account's (_ACCOUNT, key).
        self._local: dict[tuple[asyncio.AbstractEventLoop, Any], _Turns] = {}
        self._throttle: tuple[float, float] | None = None  # (local time, block seconds)
        self._queue_full: dict[str, None] = {}
        # 2xx responses not yet added to the shared success meter (by the next round trip).
        self._successes = 0
        requests = self._config.requests
        self._metered = requests is not None
        # The request bucket's reference rate, burst and ceiling, as both scripts take them.
        self._requests_args = (
            []
            if requests is None
            else [_num(requests.rate), _num(requests.burst), _num(requests.ceiling)]
        )

    def __repr__(self) -> str:
        return f"RedisRateLimits(key_prefix={self._prefix!r})"

    def _new_lock(self) -> None:
        """In a forked child: a thread of the parent may have held the lock, and never
        releases it here (the child's first acquire or response would block for ever)."""
        self._state_lock = threading.Lock()
        if self._clients is not None:
            self._clients._lock = self._state_lock

    async def __aenter__(self) -> RedisRateLimits:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis connection pools, if this object created them."""
        if self._clients is not None:
            await self._clients.aclose()

    async def _release_loop(self) -> None:
        """Close the running loop's Redis pool: its loop is about to stop (blocking Client)."""
        if self._clients is not None:
            await self._clients.release()

    def _forget_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The lines of a loop whose client was dropped (under ``_state_lock``)."""
        for key in [k for k in self._local if k[0] is loop]:
            del self._local[key]

    @property
    def _redis(self) -> Any:
        """The Redis client of the running loop."""
        return self._client if self._clients is None else self._clients.get()

    # ------------------------------------------------------------------ public API

    async def acquire(
        self, sender: str | None, message_type: str = "SMS", *, timeout: float | None = None
    ) -> None:
        """Wait until one message of ``message_type`` may be sent from ``sender``.

        Raises :class:`~telnyx_msg.RateLimitError` when the wait would exceed ``timeout``
        seconds, :class:`~telnyx_msg.RateLimiterUnavailableError` when Redis fails.
        """
        account_key = self._config.account_key(message_type)
        account = self._config.accounts[account_key]
        keys: list[str] = []
        args: list[str] = []
        if account is None:
            args += ["0", "0", "0"]
        else:
            keys += [f"{self._prefix}acct:{account_key}", f"{self._prefix}requests"]
            args += ["1", _num(account.rate), _num(account.burst)]
        if sender is None:
            args += ["0", "0", "0"]
        else:
            spec = self._config.lane_spec(sender)
            keys.append(f"{self._prefix}lane:{sender}")
            args += ["1", "0", "0"] if spec is None else ["1", _num(spec.rate), _num(spec.capacity)]
        if not keys:
            return
        requests = self._requests_args
        if self._metered:
            keys.append(f"{self._prefix}meter")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else self._clock() + timeout
        own_key = (loop, sender)
        own = self._turns(own_key)
        line_key = (loop, (_ACCOUNT, account_key))
        line: _Turns | None = None  # this caller's place in the account's line, while in it
        try:
            await self._enter(own, deadline, timeout)
            try:
                while True:
                    # A call timeout shorter than Redis's own bound also bounds the round trips
                    # (a frozen Redis held send(timeout=0.5) for the whole redis_timeout), the
                    # write of an earlier 429's feedback included.
                    remaining = None if deadline is None else deadline - self._clock()
                    short = remaining is not None and 0 < remaining < self._redis_timeout
                    successes = 0
                    try:
                        async with time_limit(remaining if short else None):
                            await self._flush()
                            successes = self._take_successes()
                            granted, wait, by_account = await self._run(
                                _TAKE_SCRIPT, keys, [*args, str(successes), *requests]
                            )
                    except TimeoutError as exc:
                        self._keep_successes(successes)
                        # Redis, not the rate limit, held the call: say so (an outage).
                        raise RateLimiterUnavailableError(
                            f"rate limiter: Redis did not answer within this call's timeout "
                            f"({timeout or 0.0:g} s); this request was not sent"
                        ) from exc
                    except BaseException:
                        self._keep_successes(successes)
                        raise
                    if granted:
                        return
                    if deadline is not None and self._clock() + wait > deadline:
                        waited = (timeout or 0.0) - (deadline - self._clock())
                        raise wait_too_long(wait, timeout or 0.0, max(0.0, waited))
                    if by_account and line is None:
                        # Callers of other senders waiting for the same account token would
                        # all wake together and all but one lose (with 1,000 senders, about
                        # 90 round trips per token, enough to exhaust the Redis pool): in this
                        # process they line up, and only the first asks Redis.
                        turns = self._turns(line_key)
                        started = self._clock()
                        try:
                            await self._enter(turns, deadline, timeout)
                        except BaseException:
                            self._leave(turns, line_key, held=False)
                            raise
                        line = turns
                        wait -= self._clock() - started  # after a wait in line: ask at once
                    elif not by_account and line is not None:
                        # Waiting for its own lane now: the next in line may have the account.
                        self._leave(line, line_key, held=True)
                        line = None
                    if wait > 0:
                        await self._sleep(wait)
            except RateLimiterUnavailableError as exc:  # this caller's own round trip
                for failed in (own, line):
                    if failed is not None:
                        failed.failures += 1
                        failed.failure = (str(exc), exc.__cause__)
                raise
            finally:
                if line is not None:
                    self._leave(line, line_key, held=True)
                own.lock.release()
        finally:
            own.users -= 1
            if not own.users:
                self._local.pop(own_key, None)

    def _turns(self, key: tuple[asyncio.AbstractEventLoop, Any]) -> _Turns:
        """The line of ``key`` in this process (a sender's, or an account's), counted in."""
        turns = self._local.get(key)
        if turns is None:
            turns = self._local[key] = _Turns()
        turns.users += 1
        return turns

    async def _enter(self, turns: _Turns, deadline: float | None, timeout: float | None) -> None:
        """Wait for the turn of ``turns`` (first come, first served). Redis failing a caller
        ahead meanwhile answers this one too: with 50 sends waiting on a frozen Redis, the
        last would otherwise wait 50 ``redis_timeout``; a call that starts waiting after it
        tries again."""
        failures = turns.failures
        if deadline is None:
            await turns.lock.acquire()
        else:
            try:
                async with time_limit(max(0.0, deadline - self._clock())):
                    await turns.lock.acquire()
            except TimeoutError:
                raise wait_too_long(None, timeout or 0.0) from None
        if turns.failures != failures and turns.failure is not None:
            turns.lock.release()
            message, cause = turns.failure
            raise RateLimiterUnavailableError(message) from cause

    def _leave(
        self, turns: _Turns, key: tuple[asyncio.AbstractEventLoop, Any], *, held: bool
    ) -> None:
        """Give up the turn (if ``held``) and count this caller out of the line."""
        if held:
            turns.lock.release()
        turns.users -= 1
        if not turns.users:
            self._local.pop(key, None)

    def on_response(
        self,
        sender: str | None,
        *,
        status: int,
        code: str | None,
        reset_after: float | None,
    ) -> None:
        """Record one response; the next ``acquire`` writes it to Redis (see the class doc)."""
        if status != 429:
            if 200 <= status < 300 and self._metered:
                with self._state_lock:
                    self._successes += 1
            return
        with self._state_lock:  # clients on other loops (threads) may report at the same time
            self._record(sender, code, reset_after)

    def _record(self, sender: str | None, code: str | None, reset_after: float | None) -> None:
        if code == QUEUE_FULL_CODE:
            if sender is not None:
                self._queue_full[sender] = None
            return
        pause = reset_pause(reset_after)
        now = self._clock()
        if self._throttle is None or now + pause > sum(self._throttle):
            self._throttle = (now, pause)

    # ------------------------------------------------------------------ internals

    async def _flush(self) -> None:
        """Write the feedback recorded by ``on_response`` since the last ``acquire``."""
        if self._throttle is not None:
            with self._state_lock:  # taken, so a report from another thread is not lost
                throttle, self._throttle = self._throttle, None
            if throttle is not None and self._metered:
                at, pause = throttle
                successes = self._take_successes()
                keys = [f"{self._prefix}requests", f"{self._prefix}meter"]
                age = max(0.0, self._clock() - at)
                block = _num(max(0.0, pause - age))
                args = ["throttle", block, str(successes), *self._requests_args]
                for key, spec in self._config.accounts.items():
                    if spec is not None:
                        keys.append(f"{self._prefix}acct:{key}")
                        args += [_num(spec.rate), _num(spec.burst)]
                args.append(_num(age))
                try:
                    await self._run(_FEEDBACK_SCRIPT, keys, args)
                except BaseException:
                    self._keep_throttle(throttle)
                    self._keep_successes(successes)
                    raise
        while self._queue_full:
            with self._state_lock:
                if not self._queue_full:
                    break
                sender = next(iter(self._queue_full))
            lane = self._config.lane_spec(sender)
            if lane is None:
                args = ["queue_full", "0", "0", "0", _num(DRAIN_FRACTION * QUEUE_SECONDS)]
            else:
                drain = drain_tokens(lane.rate)
                args = ["queue_full", _num(lane.rate), _num(lane.capacity), _num(drain), "0"]
            await self._run(_FEEDBACK_SCRIPT, [f"{self._prefix}lane:{sender}"], args)
            with self._state_lock:
                self._queue_full.pop(sender, None)

    def _take_successes(self) -> int:
        with self._state_lock:
            successes, self._successes = self._successes, 0
        return successes

    def _keep_successes(self, successes: int) -> None:
        """Successes that could not be written are added by the next round trip."""
        if successes:
            with self._state_lock:
                self._successes += successes

    def _keep_throttle(self, throttle: tuple[float, float]) -> None:
        """A throttle that could not be written stays for the next ``acquire``."""
        with self._state_lock:
            current = self._throttle
            if current is None or sum(throttle) > sum(current):
                self._throttle = throttle

    async def _run(
        self, script: _Script, keys: Sequence[str], args: Sequence[str]
    ) -> tuple[bool, float, bool]:
        """Run ``script``: (granted, seconds to wait, whether the account lane is the wait)."""
        redis = self._redis
        try:
            try:
                reply = await self._eval(redis, script, keys, args)
            except self._connection_error as exc:
                if misconfigured(exc):  # (AuthenticationError is a ConnectionError)
                    raise
                # A pooled connection that a restarted Redis closed (redis-py drops it): once
                # more, on a new connection, before calling Redis unavailable. At worst a token
                # the lost reply had taken is wasted; nothing is sent twice.
                reply = await self._eval(redis, script, keys, args)
        except TimeoutError as exc:  # before OSError: on Python 3.10 the builtin one is one
            raise RateLimiterUnavailableError(
                f"rate limiter: Redis did not answer within {self._redis_timeout:g} s; "
                f"this request was not sent"
            ) from exc
        except (self._redis_error, OSError) as exc:
            raise RateLimiterUnavailableError(
                f"rate limiter: Redis failed ({type(exc).__name__}: {exc}); this request was "
                "not sent"
            ) from exc
        if isinstance(reply, list):
            by_account = len(reply) > 2 and int(reply[2]) == 1
            return int(reply[0]) == 1, float(_text(reply[1])), by_account
        return True, 0.0, False

    async def _eval(
        self, redis: Any, script: _Script, keys: Sequence[str], args: Sequence[str]
    ) -> Any:
        """``EVALSHA``, loading the script on ``NOSCRIPT``; each round trip bounded."""
        try:
            async with time_limit(self._redis_timeout):
                return await redis.evalsha(script.sha, len(keys), *keys, *args)
        except self._no_script:
            async with time_limit(self._redis_timeout):
                await redis.script_load(script.source)
            async with time_limit(self._redis_timeout):
                return await redis.evalsha(script.sha, len(keys), *keys, *args)


_LIMITERS: weakref.WeakSet[RedisRateLimits] = weakref.WeakSet()


def _new_locks() -> None:
    for limits in list(_LIMITERS):
        limits._new_lock()


in_forked_child(_new_locks)
