"""POST /api/jobs, GET /api/jobs[/<id>[/file]]: the same jobs as the /jobs namespace."""

from flask import send_file, url_for

from errors import ProtocolError
from resources.api import api, api_user, json_body
from services import jobs
from validation import ROOM_NAME, Field, optional

NEW_JOB = {"kind": Field(str, max_length=32), "params": Field(dict), "room": optional(ROOM_NAME)}


@api.post("/jobs")
def start_job():
    """Start a job; its owner's sockets follow it with watch."""
    data = json_body(NEW_JOB)
    job = jobs.create_job(api_user(), data["kind"], data["params"], data["room"])
    jobs.dispatch(job)
    return {"job": job.to_json()}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@api.get("/jobs")
def list_jobs():
    """List the caller's latest 50 jobs, newest first (an extension: pages re-watch them)."""
    return [job.to_json() for job in jobs.recent_jobs(api_user())]


@api.get("/jobs/<int:job_id>")
def get_job(job_id):
    """Return one of the caller's jobs; anyone else's is 404."""
    return {"job": jobs.owned_job(job_id, api_user()).to_json()}


@api.get("/jobs/<int:job_id>/file")
def download_job_file(job_id):
    """Download an export's file; only its owner may."""
    job = jobs.owned_job(job_id, api_user())
    if job.status != "succeeded" or not job.result or "url" not in job.result:
        raise ProtocolError("not_found", f"job {job_id} has no file")
    fmt = job.result["format"]
    path = jobs.export_file(job.id, fmt)
    if not path.is_file():
        raise ProtocolError("not_found", f"the file of job {job_id} is gone")
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    name = f"{job.params['room']}-job{job.id}.{fmt}"
    return send_file(path, mimetype=mimetype, as_attachment=True, download_name=name)
