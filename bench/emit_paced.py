"""Publish timestamped `tick` events through Roomcast's write-only manager (as Celery does) at a steady
total RATE a second for SECONDS, spread in turn over the comma-separated ROOMS (bench/ceiling.py).

Each room gets the same number of ticks, seq 0, 1, 2...; it prints how many it sent and how long it took.
Run from the checkout: python -m bench.emit_paced REDIS_URL CHANNEL ROOMS RATE SECONDS
"""

import json
import sys
import time

from resources.socket.manager import emitter_manager
from services.channels import ROOM_CHANNEL_KINDS

redis_url, channel, rooms, rate, seconds = sys.argv[1:]
rooms, rate, seconds = rooms.split(","), float(rate), float(seconds)
emitter = emitter_manager(redis_url, channel, room_channel_kinds=ROOM_CHANNEL_KINDS)
per_room = int(rate * seconds) // len(rooms)
started = time.monotonic()
for sent in range(per_room * len(rooms)):
    # Paced against the clock, not by sleeping a fixed step: a slow publish does not lower the rate.
    delay = started + sent / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    data = {"seq": sent // len(rooms), "sent": time.time() * 1000}
    emitter.emit("tick", data, namespace="/bench", room=rooms[sent % len(rooms)])
print(json.dumps({"per_room": per_room, "sent": per_room * len(rooms), "seconds": time.monotonic() - started}))
