"""What a Celery worker does with jobs: @job_task; claim an attempt, heartbeat, report progress, record the end."""

import logging
import time
from datetime import timedelta

from celery import shared_task
from flask import current_app
from sqlalchemy import and_, case, or_, update

from core.errors import ProtocolError
from core.logs import log_context
from extensions import db
from models import Job, utcnow
from services.channels import JOBS, emit, job_room
from services.jobs import state

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The owner cancelled the job; raised at a checkpoint."""


class JobLost(Exception):
    """Another attempt owns the job now (or it ended); this one must stop quietly."""


class JobRun:
    """What a job body gets: its params, progress reporting and cooperative checkpoints."""

    def __init__(self, job, attempt):
        self.job_id, self.attempt = job.id, attempt
        self.owner = job.owner
        # Progress already reported by an earlier attempt; a body may resume from it.
        self.resumed_progress = job.progress
        self.heartbeat_every = current_app.config["JOB_HEARTBEAT_SECONDS"]
        self.last_heartbeat = time.monotonic()

    def progress(self, percent, detail=""):
        """Report progress (0 to 100); stored, then emitted to the job's room if it moved forward."""
        self.checkpoint()
        record_progress(self.job_id, self.attempt, percent, detail)

    def checkpoint(self, force=False):
        """Heartbeat every few seconds; raise JobCancelled or JobLost when the job must stop.

        A body calls this (or progress, or sleep) at least every few seconds:
        a job silent for JOB_STALE_SECONDS is taken for dead and run again.
        """
        if not force and time.monotonic() - self.last_heartbeat < self.heartbeat_every:
            return
        self.last_heartbeat = time.monotonic()
        cancel_requested = heartbeat(self.job_id, self.attempt)
        if cancel_requested is None:
            raise JobLost()
        if cancel_requested:
            raise JobCancelled()

    def sleep(self, seconds):
        """Sleep, checkpointing every quarter second so a cancel stops it promptly."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))
            self.checkpoint()


def job_task(kind, authorize=None, **params):
    """Make `body(run, **params)` the Celery task of a job kind; its return value is the result."""

    def register(body):
        @shared_task(name=f"roomcast.jobs.{kind}")
        def task(job_id, attempt):
            with log_context(job_id=job_id, attempt=attempt):  # on every line the run writes
                run_job(body, job_id, attempt)

        task.__doc__ = body.__doc__

        state.KINDS[kind] = state.JobKind(task=task, params=params, authorize=authorize)
        return task

    return register


def run_job(body, job_id, attempt):
    """Run one attempt of a job and record how it ended; never leave it running."""
    job = db.session.get(Job, job_id)
    if job is None or not claim(job, attempt):
        log.info("job %s attempt %s: nothing to do (finished, superseded or running elsewhere)", job_id, attempt)
        return
    log.info("job running", extra={"kind": job.kind})
    run = JobRun(job, attempt)
    running = state.progress_event(job_id, job.version, job.progress, "running")
    emit("progress", running, job_room(job_id), JOBS)
    started = time.monotonic()

    def end(status, **outcome):
        state.finish(job_id, status, attempt=attempt, run_seconds=time.monotonic() - started, **outcome)

    try:
        result = body(run, **job.params)
    except JobLost:
        db.session.rollback()
        log.warning("job %s attempt %s: superseded by another attempt; stopping", job_id, attempt)
    except JobCancelled:
        db.session.rollback()
        end("cancelled")
    except ProtocolError as error:  # a refusal the owner should read, e.g. no longer a member
        db.session.rollback()
        end("failed", error=error.message)
    except Exception as error:
        db.session.rollback()
        log.exception("job %s (%s) failed", job_id, job.kind)
        end("failed", error=f"{type(error).__name__}: {error}"[:500])
    else:
        # Clients that draw only progress events see the bar reach 100 before done.
        record_progress(job_id, attempt, 100, "finished")
        end("succeeded", result=result)


def claim(job, attempt):
    """Take the job for this attempt, telling a dead runner's returned task from a duplicate."""
    fresh = 2 * current_app.config["JOB_HEARTBEAT_SECONDS"]
    if claim_attempt(job.id, attempt, fresh, job.queued_at):
        db.session.refresh(job)
        return True
    db.session.refresh(job)
    if job.status != "running" or job.attempt != attempt:
        return False
    # This attempt's task is back while the job still looks alive: either the
    # process running it just died (acks_late put the task back at once) or the
    # broker delivered it twice. A dead runner's heartbeat stops; wait to see.
    time.sleep(fresh)
    claimed = claim_attempt(job.id, attempt, fresh, job.queued_at)
    db.session.refresh(job)
    return claimed


def claim_attempt(job_id, attempt, fresh_seconds, queued_at=None):
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
    if queued_at is not None:  # a running job taken over (its runner died) keeps the wait it had
        waited = max(0.0, (now - queued_at).total_seconds())
        values["queue_seconds"] = case((Job.status == "queued", waited), else_=Job.queue_seconds)
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
        emit("progress", state.progress_event(job_id, version, percent, detail), job_room(job_id), JOBS)
    return version is not None
