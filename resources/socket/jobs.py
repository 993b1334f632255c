"""The /jobs namespace: start background jobs and follow their progress."""

from flask_socketio import join_room

from core.validation import MESSAGE_ID, ROOM_NAME, Field, optional
from extensions import db
from resources.socket.base import BaseSocket, payload
from services.channels import job_room
from services.jobs import state, web

JOB_ID = MESSAGE_ID  # a positive integer a JSON client reads exactly


class JobsSocket(BaseSocket):
    """Background jobs over Socket.IO, as protocol.md describes /jobs."""

    @payload(kind=Field(str, max_length=32), params=Field(dict), room=optional(ROOM_NAME))
    def on_start(self, kind, params, room):
        """Store a job, follow it, then queue it (so no event can come before we listen)."""
        job = web.create_job(self.user, kind, params, room)
        join_room(job_room(job.id))
        state.dispatch(job)
        db.session.refresh(job)
        return {"job": job.to_json()}

    @payload(job_id=JOB_ID)
    def on_watch(self, job_id):
        """Follow one of the caller's jobs; ack with its stored state, read after following."""
        job = web.owned_job(job_id, self.user)
        join_room(job_room(job.id))
        db.session.refresh(job)
        return {"job": job.to_json()}

    @payload(job_id=JOB_ID)
    def on_cancel(self, job_id):
        """Cancel one of the caller's jobs; `done` follows when it has stopped."""
        job = web.cancel_job(web.owned_job(job_id, self.user))
        return {"job": job.to_json()}
