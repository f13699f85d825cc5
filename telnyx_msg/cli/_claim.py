"""A sharded bulk run's claim on its shard, in the Redis the shards share.

Each host has its own RESULTS and lock, so only that Redis can see a second process on the same
shard of the same file (it would send the shard's rows twice) or one splitting the file into
another number of shards (rows sent twice, others never). The claim is one hash per file
content (its fingerprint): field ``n`` holds the shard count, field ``shard:I`` the run id of
the last run of shard I and its state: live until a time (a run refreshes its claim while it
lasts; a killed one's lapses after ``CLAIM_TTL`` seconds), ``0`` (stopped before the end of the
shard) or ``done``. The hash lasts ``RECORD_TTL`` seconds after the last refresh.

A stopped run's own ``--resume`` (its RESULTS keep the run id) takes the shard at once; a new
run of it is refused unless ``--overwrite`` says to send it again, since it would resend every
row the stopped run sent (on another host, or beside a deleted RESULTS, nothing else can tell).
A done shard may be sent again by a new run (the same campaign, another day). A run whose
shard another run has sent since (``--overwrite``, or a new run after it was done) may not
resume: its remaining rows were sent by that run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from typing import Any

from telnyx_msg._redis_common import bounded, make_client
from telnyx_msg.errors import RedisUnavailableError

__all__ = ["CLAIM_TTL", "RECORD_TTL", "ShardClaim", "ShardTaken"]

#: Seconds a shard's claim outlives its last refresh.
CLAIM_TTL = 30.0
#: Seconds Redis keeps the claims of a file after the last refresh: the record of a run that
#: stopped before the end of its shard (a week: a crash found after a weekend is still caught).
RECORD_TTL = 7 * 24 * 3600.0


def _clock() -> float:
    """Seconds that keep counting while the host is suspended (Linux's CLOCK_BOOTTIME; the
    monotonic clock stops then), as Redis's clock does, which lapses the claim."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)
_ROUND_TRIP = 5.0

# KEYS[1] the file's hash; ARGV: shard count, shard field, run id, claim ttl (ms), record ttl
# (ms), "1" to send again a shard another run stopped before its end (--overwrite), "1" for the
# --resume of the run id (refused once the file was split otherwise since: that split's runs
# sent its rows). A field's state: its time (live until then, or lapsed: stopped) or
# "done" (read as -1). Never taken while another run's claim is live. The time is Redis's own:
# the hosts' clocks need not agree.
_CLAIM = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function parse(value)
  local sep = string.find(value, '|', 1, true)
  if not sep then return value, 0 end
  local state = string.sub(value, sep + 1)
  if state == 'done' then return string.sub(value, 1, sep - 1), -1 end
  return string.sub(value, 1, sep - 1), tonumber(state) or 0
end
local n = redis.call('HGET', KEYS[1], 'n')
if n and n ~= ARGV[1] then
  if ARGV[7] == '1' then return {'resplit', n} end
  local fields = redis.call('HGETALL', KEYS[1])
  local stopped = false
  for i = 1, #fields, 2 do
    if fields[i] ~= 'n' then
      local _, lease = parse(fields[i + 1])
      if lease >= now then return {'n', n} end
      if lease >= 0 then stopped = true end
    end
  end
  if stopped and ARGV[6] ~= '1' then return {'n-stopped', n} end
  redis.call('DEL', KEYS[1])
end
local held = redis.call('HGET', KEYS[1], ARGV[2])
if held then
  local holder, lease = parse(held)
  if holder ~= ARGV[3] then
    if lease >= now then return {'held', holder} end
    if ARGV[7] == '1' then return {'replaced', holder} end
    if lease >= 0 and ARGV[6] ~= '1' then return {'stopped', holder} end
  end
end
redis.call('HSET', KEYS[1], 'n', ARGV[1], ARGV[2], ARGV[3] .. '|' .. (now + tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {'ok', held or ''}
"""

# KEYS[1] the file's hash; ARGV: shard field, run id, the run's end: "done" (it went through
# the shard), "0" (stopped before: only its --resume may go on) or "" (a new run that sent
# nothing: the field is put back as the run found it, ARGV[4], or goes if it had none).
_RELEASE = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
local sep = held and (string.find(held, '|', 1, true) or (#held + 1))
if held and string.sub(held, 1, sep - 1) == ARGV[2] then
  if ARGV[3] == '' and ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  elseif ARGV[3] == '' then
    redis.call('HDEL', KEYS[1], ARGV[1])
  else
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
  end
end
if redis.call('HLEN', KEYS[1]) <= 1 then redis.call('DEL', KEYS[1]) end
return 0
"""


class ShardTaken(Exception):
    """Another process holds this shard, or splits the file into another number of shards."""


class ShardClaim:
    """Run ``run_id``'s claim on shard ``index``/``count`` of the file ``source`` (its
    fingerprint), in the Redis at ``url`` (``shown``: the URL as error messages show it).
    ``overwrite``: take a shard another run stopped before finishing (``--overwrite``);
    ``resume``: the run is a ``--resume``."""

    def __init__(
        self,
        url: str,
        shown: str,
        source: str,
        index: int,
        count: int,
        run_id: str,
        *,
        overwrite: bool = False,
        resume: bool = False,
    ) -> None:
        self._client: Any = make_client(
            url, None, owner=f"--redis {shown}", socket_timeout=_ROUND_TRIP
        )
        self._key = "telnyx-msg:bulk:" + hashlib.sha256(source.encode()).hexdigest()[:32]
        self._field = f"shard:{index}"
        self._index, self._count, self._run_id = index, count, run_id
        self._overwrite, self._resume = overwrite, resume
        self._refresher: asyncio.Task[None] | None = None
        # Until when (_clock()) the claim surely holds, and why it no longer does.
        self._until = 0.0
        self._lost: str | None = None
        # The shard's record as the claim found it (another run's, done or stopped), put
        # back by a new run that sent nothing: that run's records still hold.
        self._found = ""

    async def _claim(self, overwrite: bool = False, resume: bool = True) -> tuple[str, str]:
        started = _clock()
        answer = await bounded(
            self._client.eval(
                _CLAIM,
                1,
                self._key,
                str(self._count),
                self._field,
                self._run_id,
                str(int(CLAIM_TTL * 1000)),
                str(int(RECORD_TTL * 1000)),
                "1" if overwrite else "0",
                "1" if resume else "0",
            ),
            _ROUND_TRIP,
            RedisUnavailableError,
            "the shard claim",
        )
        what, value = (v.decode() if isinstance(v, bytes) else str(v) for v in answer)
        if what == "ok":  # Redis set the expiry after `started`: it holds at least this long
            self._until = started + CLAIM_TTL
        return what, value

    @property
    def lost(self) -> str | None:
        """Why the claim no longer holds (taken over, lapsed), or None while it does."""
        if self._lost is None and self._refresher is not None and _clock() >= self._until:
            self._lost = f"its claim lapsed (not refreshed for {CLAIM_TTL:g} s)"
        return self._lost

    def check(self) -> None:
        """Raise :class:`ShardTaken` unless the claim still holds: called before each request,
        so a run whose claim lapsed (paused, Redis out of reach) or was taken over writes no
        further row of a shard another process may be sending."""
        lost = self.lost
        if lost is not None:
            raise ShardTaken(
                f"not sent: shard {self._index}/{self._count} is no longer this run's "
                f"({lost}); another process may be sending it"
            )

    async def acquire(self, file: str) -> None:
        """Claim the shard (and keep it claimed), or raise :class:`ShardTaken` saying why."""
        try:
            what, value = await self._claim(self._overwrite, self._resume)
            if what == "ok":
                self._found = value
        except BaseException:
            await self.release()  # closes the connection
            raise
        shard = f"shard {self._index}/{self._count} of {file}"
        if what == "n":
            await self.release()
            raise ShardTaken(
                f"the other shards sending {file} split it in {value} (--shard I/{value}), "
                f"not {self._count}: rows would be sent twice and others never; use the same "
                "N on every host"
            )
        if what == "n-stopped":
            await self.release()
            raise ShardTaken(
                f"{file} was split in {value} (--shard I/{value}) by runs that stopped before "
                "the end of their shard (killed, interrupted or failed): split in "
                f"{self._count}, the rows they sent would be sent again. Resume those runs "
                "(--resume on each shard's RESULTS), or pass --overwrite to send the whole "
                f"file again in {self._count} shards"
            )
        if what == "resplit":
            await self.release()
            raise ShardTaken(
                f"{file} has been split in {value} (--shard I/{value}) since this run's claim: "
                "resuming it would send rows that split sends. See those runs' RESULTS for "
                "what they sent"
            )
        if what == "held":
            await self.release()
            raise ShardTaken(
                f"{shard} is being sent by another telnyx-msg bulk (run {value}, perhaps on "
                "another host): two processes on one shard send its rows twice. If that run "
                "was killed, resume it with --resume on its RESULTS (which takes its claim "
                "over at once)"
            )
        if what == "replaced":
            await self.release()
            raise ShardTaken(
                f"{shard} was sent by run {value} after this run stopped (--overwrite, or a "
                "new run once this one was done): resuming would send this run's remaining "
                "rows a second time. See that run's RESULTS for what it sent"
            )
        if what == "stopped":
            await self.release()
            raise ShardTaken(
                f"{shard} was started by run {value}, which stopped before the end of the "
                "shard (killed, interrupted or failed): a new run would send again every row "
                "it sent. Resume it with --resume on its RESULTS (on the host that has them), "
                "or pass --overwrite to send the whole shard again"
            )
        self._refresher = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(CLAIM_TTL / 3)
            if self.lost is not None:
                # Lapsed meanwhile (the process paused, its loop blocked): another run may have
                # sent the shard and let it go since, so claiming it again would resend rows.
                return
            # Redis down: the shared rate limiter stops the run; the claim then lapses.
            with contextlib.suppress(Exception):
                what, value = await self._claim()
                if what in ("held", "stopped", "replaced"):
                    self._lost = f"run {value} took it over"
                elif what in ("n", "n-stopped", "resplit"):
                    self._lost = f"another run split the file in {value}"

    async def release(self, *, finished: bool = False, unused: bool = False) -> None:
        """Give the shard up and close the connection. ``finished``: the run went through it
        (a new run may send it again); ``unused``: a new run that sent nothing (the shard is
        free again); otherwise the run stopped before its end: only its --resume goes on."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
            with contextlib.suppress(Exception):  # it lapses by itself
                await bounded(
                    self._client.eval(
                        _RELEASE,
                        1,
                        *(self._key, self._field, self._run_id),
                        "done" if finished else "" if unused else "0",
                        self._found,
                    ),
                    _ROUND_TRIP,
                    RedisUnavailableError,
                    "the shard claim",
                )
        with contextlib.suppress(Exception):
            await self._client.aclose()
