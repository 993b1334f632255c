"""Background jobs, one module per role.

- state.py: the kinds, and the state changes every role makes (dispatch, finish), each committed then emitted
- web.py: what a web process does: start, find, cancel and list a user's jobs
- worker.py: what a Celery worker does: @job_task, claim an attempt, heartbeat, progress, the end
- sweeper.py: what every web process does in the background: find jobs the broker or a worker lost
- redis_transport.py: kombu's Redis transport, fixed so a worker survives Redis restarting

Every state change is a conditional UPDATE committed before its event is
emitted, so the database always holds the truth and two processes racing on
one job (a worker and a cancel, a redelivered task and the sweeper) cannot
both win.
"""
