"""The job kinds, and the state changes every role makes (dispatch, finish, announce): committed, then emitted."""

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import redis
from flask import current_app
from sqlalchemy import case, update

from extensions import db
from models import BOT_USERNAME, Job, User, utcnow
from services import chat
from services.channels import CHAT, JOBS, chat_room, emit, job_room

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its Celery task, its params schema, and who may ask for it."""

    task: object
    params: dict
    authorize: object = None  # authorize(owner, params) raises ProtocolError to refuse


KINDS: dict[str, JobKind] = {}  # filled by @job_task in tasks.py


def progress_event(job_id, version, progress, detail):
    """Build a progress event; `at` (an extension) is when it was sent, to the microsecond."""
    at = utcnow().isoformat(timespec="microseconds") + "Z"
    return {"job_id": job_id, "version": version, "progress": progress, "detail": detail, "at": at}


def dispatch(job):
    """Queue the job's current attempt on Celery; while the broker is away, the sweeper queues it later."""
    try:
        KINDS[job.kind].task.apply_async(args=(job.id, job.attempt), task_id=task_id(job.id, job.attempt))
    except Exception as error:  # the broker is down: the job stays queued, marked for the sweeper
        log.warning("job %s: the job queue is unavailable (%s: %s); queued again when it is back",
                    job.id, type(error).__name__, error, extra={"job_id": job.id})  # fmt: skip
        db.session.rollback()
        db.session.execute(update(Job).where(Job.id == job.id).values(dispatch_pending=True))
        db.session.commit()
        return False
    if job.dispatch_pending:
        db.session.execute(update(Job).where(Job.id == job.id).values(dispatch_pending=False))
        db.session.commit()
    log.info("job queued", extra={"job_id": job.id, "attempt": job.attempt})
    return True


def task_id(job_id, attempt):
    """Return the Celery task id of one attempt of a job, unique per deployment."""
    # Workers share revoked ids with every worker on the broker (revoke
    # broadcasts, mingle syncs), so ids must not collide across deployments.
    return f"{current_app.config['REDIS_KEY_PREFIX']}job-{job_id}-{attempt}"


def finish(
    job_id, status, result=None, error=None, attempt=None, statuses=("running",), stale_before=None, run_seconds=None
):
    """End the job if it is still in one of `statuses` (and this attempt's); emit done; tell its room."""
    conditions = [Job.id == job_id, Job.status.in_(statuses)]
    if attempt is not None:
        conditions.append(Job.attempt == attempt)
    if stale_before is not None:
        conditions.append(Job.heartbeat_at < stale_before)
    values = {"status": status, "result": result, "error": error, "heartbeat_at": None, "version": Job.version + 1}
    if status == "succeeded":
        values["progress"] = 100
    if run_seconds is not None:
        values["run_seconds"] = run_seconds
    ended = db.session.execute(update(Job).where(*conditions).values(**values)).rowcount == 1
    db.session.commit()
    if not ended:
        return False
    job = db.session.get(Job, job_id)
    db.session.refresh(job)
    done = {"job_id": job_id, "version": job.version, "status": status, "result": result, "error": error}
    log.info("job %s", status, extra={"job_id": job_id, "attempt": job.attempt, "status": status})
    emit("done", done, job_room(job_id), JOBS)
    if job.room is not None:
        announce_outcome(job)
    return True


def announce_outcome(job):
    """Post how the job ended into its chat room, as the bot (once, whatever retries happen)."""
    bot = db.session.scalar(db.select(User).filter_by(username=BOT_USERNAME))
    message = chat.post_message(job.room, bot, outcome_text(job), client_id=f"job-{job.id}")
    emit("message", message.to_json(), chat_room(job.room.name), CHAT)


def outcome_text(job):
    """Describe a finished job in one sentence."""
    what = f"{job.owner.username}'s {job.kind} job #{job.id}"
    if job.status == "succeeded" and job.kind == "export":
        rows = job.result.get("rows", 0)
        return f"{what} exported {rows} messages of {job.params['room']} ({job.params['format']})."
    if job.status == "succeeded":
        return f"{what} finished."
    if job.status == "cancelled":
        return f"{what} was cancelled."
    return f"{what} failed: {job.error}"


def export_file(job_id, fmt):
    """Return the path of an export's file, in EXPORT_DIR (shared by workers and web processes)."""
    return Path(current_app.config["EXPORT_DIR"]) / f"job-{job_id}.{fmt}"


def durations_by_kind(column, bounds):
    """Return {kind: (jobs at or under each bound, jobs, total seconds)} of a timing column, for /metrics."""
    seconds = getattr(Job, column)
    under = [db.func.sum(case((seconds <= bound, 1), else_=0)) for bound in bounds]
    query = db.select(Job.kind, db.func.count(seconds), db.func.sum(seconds), *under).group_by(Job.kind)
    return {
        kind: ([int(n or 0) for n in counts], count, float(total or 0))
        for kind, count, total, *counts in db.session.execute(query.where(seconds.is_not(None)))
    }


def queue_length():
    """Return how many job tasks wait in the Celery queue on a Redis broker (None for another broker)."""
    celery = current_app.config["CELERY"]
    url = celery["broker_url"]
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    # kombu's Redis transport keeps a queue as one list per priority step: the queue's
    # name for step 0, then name + "\x06\x16" + step (kombu/transport/redis.py, _q_for_pri).
    options = celery.get("broker_transport_options", {})
    queue = options.get("global_keyprefix", "") + celery["task_default_queue"]
    steps = options.get("priority_steps", (0, 3, 6, 9))
    pipeline = broker_client(url).pipeline(transaction=False)
    for step in steps:
        pipeline.llen(f"{queue}\x06\x16{step}" if step else queue)
    return sum(pipeline.execute())


@cache
def broker_client(url):
    """Return a Redis client of the Celery broker (which may be another Redis than REDIS_URL's)."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def count_by_kind_and_status():
    """Return {(kind, status): count} over every job, for /metrics."""
    query = db.select(Job.kind, Job.status, db.func.count()).group_by(Job.kind, Job.status)
    return {(kind, status): count for kind, status, count in db.session.execute(query)}
