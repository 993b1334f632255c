"""Who is in which room, across tabs and processes, kept in Redis."""

from extensions import redis_store

# Atomically add a connection; report "joined", or "online" when the user
# had dropped off (disconnected without leaving), on the user's first one.
ENTER = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return false end
if redis.call('SCARD', KEYS[1]) ~= 1 then return false end
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('DEL', KEYS[3]) == 1 then return 'online' end
return 'joined'
"""

# Atomically remove a connection; report ARGV[3] ("left" or "offline") when it
# was the user's last one. An "offline" user is remembered for ARGV[4] seconds.
EXIT = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return false end
if redis.call('SCARD', KEYS[1]) ~= 0 then return false end
redis.call('SREM', KEYS[2], ARGV[2])
if ARGV[3] == 'offline' then redis.call('SET', KEYS[3], 1, 'EX', ARGV[4]) end
return ARGV[3]
"""

AWAY_SECONDS = 24 * 3600


def _keys(room, user):
    return [
        redis_store.key("presence", room, user),
        redis_store.key("online", room),
        redis_store.key("away", room, user),
    ]


def enter(room, user, sid):
    """Count a connection of user in room; return the status to announce, or None."""
    return redis_store.client.eval(ENTER, 3, *_keys(room, user), sid, user)


def leave(room, user, sid, status):
    """Uncount a connection; return status ("left"/"offline") if it was the user's last."""
    return redis_store.client.eval(EXIT, 3, *_keys(room, user), sid, user, status, AWAY_SECONDS)


def online(room):
    """Return the users with at least one connection in the room, sorted."""
    return sorted(redis_store.client.smembers(redis_store.key("online", room)))
