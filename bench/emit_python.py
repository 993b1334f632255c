"""The external emitter for the Python servers: python-socketio's write-only Redis manager
(what Roomcast's Celery workers use), publishing COUNT timestamped `tick` events to ROOM."""

import sys
import time

import socketio

redis_url, channel, room, count = sys.argv[1:]
emitter = socketio.RedisManager(redis_url, channel=channel, write_only=True)
for seq in range(int(count)):
    emitter.emit("tick", {"seq": seq, "sent": time.time() * 1000}, namespace="/bench", room=room)
