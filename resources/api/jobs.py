"""POST /api/jobs, GET /api/jobs[/<id>[/file]]: the same jobs as the /jobs namespace."""

from flask import send_file, url_for

from core.errors import ProtocolError
from core.validation import ROOM_NAME, Field, optional
from resources.api import api, api_user, json_body
from services.jobs import state, web

NEW_JOB = {"kind": Field(str, max_length=32), "params": Field(dict), "room": optional(ROOM_NAME)}


@api.post("/jobs")
def start_job():
    """Start a job; its owner's sockets follow it with watch."""
    data = json_body(NEW_JOB)
    job = web.create_job(api_user(), data["kind"], data["params"], data["room"])
    state.dispatch(job)
    return {"job": job.to_json()}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@api.get("/jobs")
def list_jobs():
    """List the caller's latest 50 jobs, newest first (an extension: pages re-watch them)."""
    return [job.to_json() for job in web.recent_jobs(api_user())]


@api.get("/jobs/<int:job_id>")
def get_job(job_id):
    """Return one of the caller's jobs; anyone else's is 404."""
    return {"job": web.owned_job(job_id, api_user()).to_json()}


@api.get("/jobs/<int:job_id>/file")
def download_job_file(job_id):
    """Download an export's file; only its owner may."""
    job = web.owned_job(job_id, api_user())
    if job.status != "succeeded" or not job.result or "url" not in job.result:
        raise ProtocolError("not_found", f"job {job_id} has no file")
    fmt = job.result["format"]
    path = state.export_file(job.id, fmt)
    if not path.is_file():
        raise ProtocolError("not_found", f"the file of job {job_id} is gone")
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    name = f"{job.params['room']}-job{job.id}.{fmt}"
    return send_file(path, mimetype=mimetype, as_attachment=True, download_name=name)
