"""Socket.IO: the namespaces, BaseSocket under them, and the internals that make the stack hold.

Namespaces: base.py (BaseSocket: auth, validation, acks, errors, limits, the DB
session), chat.py (/chat), jobs.py (/jobs). Internals: manager.py (rooms indexed,
the Redis channel without silent gaps), outbox.py (each client's bounded queue),
packets.py (every packet answered or dropped with a log line), contexts.py
(cheap per-event request contexts), gunicorn_worker.py (a worker's start, idle
connections, SIGTERM, GC tuning).
"""
