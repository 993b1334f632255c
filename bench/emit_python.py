"""The external emitter for the Python servers, publishing COUNT timestamped `tick` events to ROOM:
Roomcast's write-only manager, as its Celery workers use it (`--roomcast`: a chat room's events on the
room's own channel), or else python-socketio's write-only RedisManager (the asyncio peer's).

Run from the checkout: python -m bench.emit_python REDIS_URL CHANNEL ROOM COUNT [--roomcast]
"""

import sys
import time

import socketio

from resources.socket.manager import emitter_manager
from services.channels import ROOM_CHANNEL_KINDS

redis_url, channel, room, count = sys.argv[1:5]
if "--roomcast" in sys.argv[5:]:
    emitter = emitter_manager(redis_url, channel, room_channel_kinds=ROOM_CHANNEL_KINDS)
else:
    emitter = socketio.RedisManager(redis_url, channel=channel, write_only=True)
for seq in range(int(count)):
    emitter.emit("tick", {"seq": seq, "sent": time.time() * 1000}, namespace="/bench", room=room)
