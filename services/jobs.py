"""Jobs: who may start and see them, their state changes, and the events those changes emit.

Every state change is a conditional UPDATE committed before its event is
emitted, so the database always holds the truth and two processes racing on
one job (a worker and a cancel, a redelivered task and the sweeper) cannot
both win.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import and_, or_, update

from errors import ProtocolError
from extensions import db, socketio
from models import BOT_USERNAME, Job, User, utcnow
from services import chat
from validation import MAX_ID, validate

log = logging.getLogger(__name__)
NAMESPACE = "/jobs"


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its Celery task, its params schema, and who may ask for it."""

    task: object
    params: dict
    authorize: object = None  # authorize(owner, params) raises ProtocolError to refuse


KINDS: dict[str, JobKind] = {}  # filled by @job_task in tasks.py


def channel(job_id):
    """Return the Socket.IO room that follows a job."""
    return f"job:{job_id}"


def emit(event, data, room, namespace=NAMESPACE):
    """Emit through this process's Socket.IO server, or the worker's write-only emitter."""
    sender = current_app.extensions.get("socketio_emitter") or socketio
    sender.emit(event, data, to=room, namespace=namespace)


# --- asking for jobs (web process) ---


def progress_event(job_id, version, progress, detail):
    """Build a progress event; `at` (an extension) is when it was sent, to the microsecond."""
    at = utcnow().isoformat(timespec="microseconds") + "Z"
    return {"job_id": job_id, "version": version, "progress": progress, "detail": detail, "at": at}


def create_job(owner, kind, params, room_name=None):
    """Validate and store a queued job; the caller dispatches it once it follows its room."""
    if kind not in KINDS:
        raise ProtocolError("invalid", f"kind must be one of {', '.join(sorted(KINDS))}")
    spec = KINDS[kind]
    params = validate(params, spec.params)
    limit = current_app.config["JOBS_PER_USER"]
    unfinished = db.select(db.func.count()).select_from(Job).filter_by(owner_id=owner.id)
    if limit and db.session.scalar(unfinished.where(Job.status.in_(("queued", "running")))) >= limit:
        raise ProtocolError("rate_limited", f"you have {limit} jobs queued or running; wait for one to end")
    if spec.authorize:
        spec.authorize(owner, params)
    room = chat.readable_room(room_name, owner) if room_name else None
    job = Job(kind=kind, params=params, owner=owner, room=room)
    db.session.add(job)
    db.session.commit()
    return job


def dispatch(job):
    """Queue the job's current attempt on Celery; while the broker is away, the sweeper queues it later."""
    try:
        KINDS[job.kind].task.apply_async(args=(job.id, job.attempt), task_id=task_id(job.id, job.attempt))
    except Exception as error:  # the broker is down: the job stays queued, marked for the sweeper
        log.warning("job %s: the job queue is unavailable (%s: %s); queued again when it is back",
                    job.id, type(error).__name__, error)  # fmt: skip
        db.session.rollback()
        db.session.execute(update(Job).where(Job.id == job.id).values(dispatch_pending=True))
        db.session.commit()
        return False
    if job.dispatch_pending:
        db.session.execute(update(Job).where(Job.id == job.id).values(dispatch_pending=False))
        db.session.commit()
    return True


def task_id(job_id, attempt):
    """Return the Celery task id of one attempt of a job, unique per deployment."""
    # Workers share revoked ids with every worker on the broker (revoke
    # broadcasts, mingle syncs), so ids must not collide across deployments.
    return f"{current_app.config['REDIS_KEY_PREFIX']}job-{job_id}-{attempt}"


def owned_job(job_id, user):
    """Return the user's job; someone else's answers not_found, as a missing one does."""
    job = db.session.get(Job, job_id) if job_id <= MAX_ID else None  # a URL may hold any number
    if job is None or job.owner_id != user.id:
        raise ProtocolError("not_found", f"no job {job_id}")
    return job


def cancel_job(job):
    """Cancel a queued job at once, or ask a running one to stop at its next checkpoint."""
    if job.finished:
        return job
    current_app.extensions["celery"].control.revoke(task_id(job.id, job.attempt))
    if not finish(job.id, "cancelled", statuses=("queued",)):
        # queued too: the sweeper may have queued it again since; its next run stops at once.
        unfinished = Job.status.in_(("queued", "running"))
        db.session.execute(update(Job).where(Job.id == job.id, unfinished).values(cancel_requested=True))
        db.session.commit()
    db.session.refresh(job)
    return job


def export_file(job_id, fmt):
    """Return the path of an export's file, in EXPORT_DIR (shared by workers and web processes)."""
    return Path(current_app.config["EXPORT_DIR"]) / f"job-{job_id}.{fmt}"


def recent_jobs(user, limit=50):
    """Return the user's latest jobs, newest first."""
    query = db.select(Job).filter_by(owner_id=user.id).order_by(Job.id.desc()).limit(limit)
    return db.session.scalars(query).all()


# --- running jobs (Celery workers) ---


def claim(job_id, attempt, fresh_seconds):
    """Mark the job running for this attempt; False if it is finished, superseded or alive elsewhere."""
    now = utcnow()
    alive_since = now - timedelta(seconds=fresh_seconds)
    claimable = or_(
        Job.status == "queued",
        # A task put back after its process died finds the job running, with a stale heartbeat.
        and_(Job.status == "running", or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < alive_since)),
    )
    statement = update(Job).where(Job.id == job_id, Job.attempt == attempt, claimable)
    values = {"status": "running", "heartbeat_at": now, "version": Job.version + 1}
    claimed = db.session.execute(statement.values(**values)).rowcount == 1
    db.session.commit()
    return claimed


def heartbeat(job_id, attempt):
    """Record that the attempt is alive; return whether a cancel was asked, or None if it lost the job."""
    statement = update(Job).where(Job.id == job_id, Job.attempt == attempt, Job.status == "running")
    alive = db.session.execute(statement.values(heartbeat_at=utcnow())).rowcount == 1
    db.session.commit()
    if not alive:
        return None
    return db.session.scalar(db.select(Job.cancel_requested).filter_by(id=job_id))


def record_progress(job_id, attempt, percent, detail):
    """Store progress if it moved forward, then emit it; a re-run never moves a bar back."""
    percent = max(0, min(100, int(percent)))
    statement = update(Job).where(
        Job.id == job_id, Job.attempt == attempt, Job.status == "running", Job.progress < percent
    )
    values = {"progress": percent, "heartbeat_at": utcnow(), "version": Job.version + 1}
    version = db.session.execute(statement.values(**values).returning(Job.version)).scalar()
    db.session.commit()
    if version is not None:
        emit("progress", progress_event(job_id, version, percent, detail), channel(job_id))
    return version is not None


def finish(job_id, status, result=None, error=None, attempt=None, statuses=("running",), stale_before=None):
    """End the job if it is still in one of `statuses` (and this attempt's); emit done; tell its room."""
    conditions = [Job.id == job_id, Job.status.in_(statuses)]
    if attempt is not None:
        conditions.append(Job.attempt == attempt)
    if stale_before is not None:
        conditions.append(Job.heartbeat_at < stale_before)
    values = {"status": status, "result": result, "error": error, "heartbeat_at": None, "version": Job.version + 1}
    if status == "succeeded":
        values["progress"] = 100
    ended = db.session.execute(update(Job).where(*conditions).values(**values)).rowcount == 1
    db.session.commit()
    if not ended:
        return False
    job = db.session.get(Job, job_id)
    db.session.refresh(job)
    done = {"job_id": job_id, "version": job.version, "status": status, "result": result, "error": error}
    emit("done", done, channel(job_id))
    if job.room is not None:
        announce_outcome(job)
    return True


def announce_outcome(job):
    """Post how the job ended into its chat room, as the bot (once, whatever retries happen)."""
    bot = db.session.scalar(db.select(User).filter_by(username=BOT_USERNAME))
    message = chat.post_message(job.room, bot, outcome_text(job), client_id=f"job-{job.id}")
    emit("message", message.to_json(), f"room:{job.room.name}", namespace="/chat")


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


# --- finding jobs whose worker vanished (every web process, see gunicorn.conf.py) ---


def sweep_stale_jobs():
    """Queue jobs the broker missed; re-dispatch running jobs whose heartbeat stopped, failing them after a few."""
    pending = db.select(Job).where(Job.status == "queued", Job.dispatch_pending).order_by(Job.id)
    for job in db.session.scalars(pending).all():
        if not dispatch(job):
            break  # still away; next sweep
        log.info("job %s: queued now that the job queue is back", job.id)
    config = current_app.config
    cutoff = utcnow() - timedelta(seconds=config["JOB_STALE_SECONDS"])
    query = db.select(Job).where(Job.status == "running", Job.heartbeat_at < cutoff)
    for job in db.session.scalars(query).all():
        guard = {"attempt": job.attempt, "stale_before": cutoff}
        if job.cancel_requested:
            finish(job.id, "cancelled", **guard)
        elif job.attempt >= config["JOB_MAX_ATTEMPTS"]:
            error = f"its worker stopped responding, {job.attempt} times"
            if finish(job.id, "failed", error=error, **guard):
                log.error("job %s failed: %s", job.id, error)
        elif requeue(job, cutoff):
            log.warning("job %s: its worker stopped responding; queued attempt %s", job.id, job.attempt)
            emit("progress", progress_event(job.id, job.version, job.progress, "retrying"), channel(job.id))
            dispatch(job)


def requeue(job, cutoff):
    """Move a stale running job to its next attempt; False if something else moved it first."""
    statement = update(Job).where(
        Job.id == job.id, Job.attempt == job.attempt, Job.status == "running", Job.heartbeat_at < cutoff
    )
    values = {"status": "queued", "attempt": job.attempt + 1, "heartbeat_at": None, "version": Job.version + 1}
    moved = db.session.execute(statement.values(**values)).rowcount
    db.session.commit()
    db.session.refresh(job)
    return moved == 1


def supervise(app):
    """Sweep stale jobs every JOB_SWEEP_SECONDS, forever (a background greenlet)."""
    while True:
        socketio.sleep(app.config["JOB_SWEEP_SECONDS"])
        with app.app_context():
            try:
                sweep_stale_jobs()
            except Exception:  # keep sweeping; the next round may succeed
                log.exception("sweeping stale jobs failed")
            finally:
                db.session.remove()


def count_by_kind_and_status():
    """Return {(kind, status): count} over every job, for /metrics."""
    query = db.select(Job.kind, Job.status, db.func.count()).group_by(Job.kind, Job.status)
    return {(kind, status): count for kind, status, count in db.session.execute(query)}
