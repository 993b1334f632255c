"""The asyncio peer: python-socketio's AsyncServer on uvicorn with the Redis manager,
serving the same /bench handlers as Roomcast's bench/namespace.py.
PORT, REDIS_URL and CHANNEL from the environment."""

import os

import socketio
import uvicorn

INVALID = {"ok": False, "error": {"code": "invalid", "message": "bad payload"}}

manager = socketio.AsyncRedisManager(os.environ["REDIS_URL"], channel=os.environ["CHANNEL"])
sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)


class Bench(socketio.AsyncNamespace):
    """Join a room; echo with an ack."""

    async def on_join(self, sid, payload):
        if not isinstance(payload, dict) or not isinstance(payload.get("room"), str):
            return INVALID
        await self.enter_room(sid, payload["room"])
        return {"ok": True, "room": payload["room"]}

    async def on_echo(self, sid, payload):
        if not isinstance(payload, dict) or not isinstance(payload.get("sent"), int | float):
            return INVALID
        return {"ok": True, "sent": payload["sent"], "data": payload.get("data")}


async def health(scope, receive, send):
    """Answer /healthz (and 404 anything else that is not Socket.IO)."""
    if scope["type"] != "http":
        return
    status = 200 if scope["path"] == "/healthz" else 404
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


sio.register_namespace(Bench("/bench"))
app = socketio.ASGIApp(sio, other_asgi_app=health)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", backlog=4096)
