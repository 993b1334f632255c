"""What a web process does with jobs: start one, find the caller's, cancel, list."""

import logging

from flask import current_app
from sqlalchemy import update

from core.errors import ProtocolError
from core.validation import MAX_ID, validate
from extensions import db
from models import Job
from services import chat
from services.jobs.state import KINDS, finish, task_id

log = logging.getLogger(__name__)


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
    log.info("job created", extra={"job_id": job.id, "kind": kind, "user": owner.id, "room": room_name})
    return job


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
    log.info("job cancel asked", extra={"job_id": job.id, "attempt": job.attempt})
    current_app.extensions["celery"].control.revoke(task_id(job.id, job.attempt))
    if not finish(job.id, "cancelled", statuses=("queued",)):
        # queued too: the sweeper may have queued it again since; its next run stops at once.
        unfinished = Job.status.in_(("queued", "running"))
        db.session.execute(update(Job).where(Job.id == job.id, unfinished).values(cancel_requested=True))
        db.session.commit()
    db.session.refresh(job)
    return job


def recent_jobs(user, limit=50):
    """Return the user's latest jobs, newest first."""
    query = db.select(Job).filter_by(owner_id=user.id).order_by(Job.id.desc()).limit(limit)
    return db.session.scalars(query).all()
