"""Finding jobs the broker or a worker lost: every web process sweeps in the background (started by app.py)."""

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import update

from extensions import db, socketio
from models import Job, utcnow
from services.channels import JOBS, emit, job_room
from services.jobs.state import dispatch, finish, progress_event

log = logging.getLogger(__name__)


def sweep_stale_jobs():
    """Queue jobs the broker missed; re-dispatch running jobs whose heartbeat stopped, failing them after a few."""
    pending = db.select(Job).where(Job.status == "queued", Job.dispatch_pending).order_by(Job.id)
    for job in db.session.scalars(pending).all():
        if not dispatch(job):
            break  # still away; next sweep
        log.info("job %s: queued now that the job queue is back", job.id, extra={"job_id": job.id})
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
                log.error("job %s failed: %s", job.id, error, extra={"job_id": job.id})
        elif requeue(job, cutoff):
            log.warning(
                "job %s: its worker stopped responding; queued attempt %s", job.id, job.attempt,
                extra={"job_id": job.id, "attempt": job.attempt},
            )  # fmt: skip
            emit("progress", progress_event(job.id, job.version, job.progress, "retrying"), job_room(job.id), JOBS)
            dispatch(job)


def requeue(job, cutoff):
    """Move a stale running job to its next attempt; False if something else moved it first."""
    statement = update(Job).where(
        Job.id == job.id, Job.attempt == job.attempt, Job.status == "running", Job.heartbeat_at < cutoff
    )
    values = {"status": "queued", "attempt": job.attempt + 1, "heartbeat_at": None, "version": Job.version + 1}
    values["queued_at"] = utcnow()
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
