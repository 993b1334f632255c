"""The Socket.IO client managers: python-socketio's, with each client's rooms indexed.

python-socketio finds a client's rooms by testing every room of the namespace, and
every client has a room of its own: a disconnect costs time in proportion to all
connected clients, so N clients dropping at once cost N x N. With 20,000 clients
that blocked a worker past gunicorn's timeout, which then killed it and every
connection with it. Here a disconnect costs the client's own rooms.
"""

import socketio


class RoomIndex:
    """Keep (namespace, sid) -> room names beside the manager's own rooms."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sid_rooms = {}

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.sid_rooms.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        rooms = self.sid_rooms.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)

    def basic_disconnect(self, sid, namespace, **kwargs):
        # What python-socketio's basic_disconnect does, with the rooms from the index.
        for room in self.sid_rooms.pop((namespace, sid), ()):
            super().basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid, namespace):
        """Return the rooms a client is in (not the None room of all clients)."""
        return [room for room in self.sid_rooms.get((namespace, sid), ()) if room is not None]


class IndexedManager(RoomIndex, socketio.Manager):
    """The in-process manager, for a single process without a message queue (tests)."""


class IndexedRedisManager(RoomIndex, socketio.RedisManager):
    """The Redis manager every web process shares."""


def client_manager(message_queue, channel):
    """Return the manager for a Socket.IO server: on Redis when a message queue is set."""
    if message_queue:
        return IndexedRedisManager(message_queue, channel=channel)
    return IndexedManager()
