"""Limits every process shares, counted in Redis: logins, registrations, events, connections.

Each limit is a fixed window: at most `limit` hits per `seconds` for one subject
(a username, a client address, a user id). Over it, the caller gets `rate_limited`
with the seconds until the window ends (HTTP `Retry-After`). If Redis cannot be
reached, limits are not enforced (logged once per outage) rather than refusing
everyone: the per-connection event bucket in BaseSocket still holds. The limit on
every Socket.IO event is counted in shares a process takes at once (hit_shared).
"""

import logging
import math
import time
import uuid

from redis.exceptions import RedisError

from core.errors import ProtocolError
from extensions import redis_store

log = logging.getLogger(__name__)

# Count a hit; answer 0 when within the limit, else the milliseconds the window has left.
HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
    local left = redis.call('PTTL', KEYS[1])
    if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); left = tonumber(ARGV[2]) end
    return left
end
return 0
"""

_redis_down = False  # per process: log an outage once


def _count(script, key, *args):
    """Run a counting script on key; None while Redis is unavailable (the limits are then off, logged once)."""
    global _redis_down
    try:
        answer = redis_store.client.eval(script, 1, key, *args)
    except RedisError as error:
        if not _redis_down:
            log.error("throttles are off while Redis is unavailable (%s)", error)
        _redis_down = True
        return None
    _redis_down = False
    return answer


def hit(kind, subject, limit, seconds, what="attempts"):
    """Count one hit of `kind` by `subject`; raise rate_limited past `limit` per `seconds` (0 means no limit)."""
    if not limit:
        return
    left_ms = _count(HIT, redis_store.key("throttle", kind, subject), limit, seconds * 1000)
    if left_ms:
        raise over_limit(what, left_ms)


# Take a share of a limit's window: count ARGV[3] hits at once; answer the count and the window's ms left.
SHARE = """
local count = redis.call('INCRBY', KEYS[1], ARGV[3])
if count == tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); left = tonumber(ARGV[2]) end
return {count, left}
"""
SHARES_PER_LIMIT = 32  # a process takes 1/32 of a limit at a time (at least one hit)
MAX_SHARES = 10_000  # shares held per process before expired ones are swept
_shares = {}  # Redis key -> [hits left to spend here, monotonic end of the window, window full]


def hit_shared(kind, subject, limit, seconds, what="attempts"):
    """Count a hit as hit() does, from a share of the limit this process took from Redis: one round trip per share.

    For limits hit at every Socket.IO event (USER_EVENTS_PER_10S): hit() costs a Redis round
    trip each, a third of an event's CPU (docs/benchmarks.md, "Event and connect paths"). Hits
    are counted in Redis before they are spent, so the limit still holds across processes; a
    share a process has not spent counts too, so a user spread over several processes may be
    refused up to a share (limit / 32) per process early. A limit under 64 has shares of one hit:
    hit()'s exact count. A full window is refused here, without Redis, until it ends.
    """
    if not limit:
        return
    key = redis_store.key("throttle", kind, subject)
    now = time.monotonic()
    share = _shares.get(key)
    if share is not None and now < share[1]:
        if share[0] > 0:
            share[0] -= 1
            return
        if share[2]:
            raise over_limit(what, (share[1] - now) * 1000)
    size = max(1, limit // SHARES_PER_LIMIT)
    counted = _count(SHARE, key, limit, seconds * 1000, size)
    if counted is None:
        return
    count, left_ms = counted
    if len(_shares) >= MAX_SHARES:
        for stale in [stale for stale, (_, ends, _) in _shares.items() if ends <= now]:
            del _shares[stale]
    granted = min(size, limit - (count - size))  # the hits of this share within the limit
    _shares[key] = [max(0, granted - 1), now + left_ms / 1000, granted <= 0]
    if granted <= 0:
        raise over_limit(what, left_ms)


def forget_shares():
    """Forget the shares this process holds (when the counts in Redis were deleted under it, as tests do)."""
    _shares.clear()


def over_limit(what, left_ms):
    """Return the rate_limited error of a full window with left_ms to go."""
    retry_after = max(1, math.ceil(left_ms / 1000))
    return ProtocolError("rate_limited", f"too many {what}; try again in {retry_after} s", retry_after=retry_after)


def clear(kind, subject):
    """Forget the hits of `kind` by `subject` (a successful login clears its failures)."""
    _shares.pop(redis_store.key("throttle", kind, subject), None)
    try:
        redis_store.client.delete(redis_store.key("throttle", kind, subject))
    except RedisError:
        pass


# Admit a connection if the user has fewer than ARGV[1] live ones. A connection
# counts while the process holding it is alive (its key KEYS[2] exists): a killed
# process's connections stop counting when its key expires.
ADMIT = """
local live = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
    if redis.call('EXISTS', entries[i + 1]) == 1 then live = live + 1
    else redis.call('HDEL', KEYS[1], entries[i]) end
end
if live >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], 1, 'EX', ARGV[3])
redis.call('HSET', KEYS[1], ARGV[2], KEYS[2])
redis.call('EXPIRE', KEYS[1], 86400)
return 1
"""
PROCESS_KEY_SECONDS = 60  # a process refreshes its key every PROCESS_KEY_SECONDS / 3
PROCESS_ID = uuid.uuid4().hex  # this process's, for the connections it holds


def admit_connection(user_id, sid, limit, process_id):
    """Record a connection of the user; raise rate_limited when they already have `limit` (0: no limit)."""
    if not limit:
        return
    try:
        admitted = queue_admission(redis_store.client, user_id, sid, limit, process_id)
    except RedisError as error:
        log.warning("not counting connections while Redis is unavailable (%s)", error)
        return
    check_admitted(admitted, limit)


def queue_admission(client, user_id, sid, limit, process_id):
    """Run ADMIT for a connection on a Redis client, or queue it on a pipeline; check_admitted reads its reply."""
    keys = [redis_store.key("connections", user_id), redis_store.key("process", process_id)]
    return client.eval(ADMIT, 2, *keys, limit, sid, PROCESS_KEY_SECONDS)


def check_admitted(admitted, limit):
    """Raise rate_limited unless ADMIT admitted the connection."""
    if not admitted:
        raise ProtocolError("rate_limited", f"too many connections; at most {limit} per user")


def release_connection(user_id, sid):
    """Forget a connection of the user."""
    try:
        redis_store.client.hdel(redis_store.key("connections", user_id), sid)
    except RedisError:
        pass  # a stale entry stops counting when its process's key expires


def keep_process_alive(process_id):
    """Refresh this process's key, so the connections it holds keep counting."""
    try:
        redis_store.client.set(redis_store.key("process", process_id), 1, ex=PROCESS_KEY_SECONDS)
    except RedisError:
        pass


def keep_process_alive_forever():
    """Refresh this process's key every PROCESS_KEY_SECONDS / 3, forever (a background greenlet)."""
    while True:
        keep_process_alive(PROCESS_ID)
        time.sleep(PROCESS_KEY_SECONDS / 3)
