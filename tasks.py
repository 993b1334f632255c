"""The job kinds: each is a Celery task that reports progress to its job's room.

A job body takes a JobRun and its params; it calls run.progress(...) as it
goes and returns the job's result. See README "Adding a job kind".
"""

import csv
import json
import os

from core.validation import ROOM_NAME, Field
from extensions import db
from models import Message, User, isoformat
from services import chat
from services.jobs.state import export_file
from services.jobs.worker import job_task

EXPORT_BATCH = 500  # rows between progress reports


@job_task(
    "sleep",
    seconds=Field(float, minimum=0, maximum=600),
    steps=Field(int, minimum=1, maximum=1000),
)
def sleep(run, seconds, steps):
    """Sleep for `seconds` in `steps` equal steps, reporting each one (demos, tests, benchmarks)."""
    # A re-run (its worker died) resumes after the last step it reported.
    done = -(-run.resumed_progress * steps // 100)
    for step in range(done + 1, steps + 1):
        run.sleep(seconds / steps)
        run.progress(step * 100 // steps, f"step {step} of {steps}")
    return {"seconds": seconds, "steps": steps}


def can_read_room(owner, params):
    """Refuse an export of a room the owner may not read."""
    chat.readable_room(params["room"], owner)


@job_task("export", authorize=can_read_room, room=ROOM_NAME, format=Field(str, choices=("csv", "json")))
def export(run, room, format):
    """Write every message of a room to a CSV or JSON file that only the owner may download."""
    found = chat.readable_room(room, run.owner)  # again: membership may have changed since
    total = db.session.scalar(db.select(db.func.count()).select_from(Message).filter_by(room_id=found.id))
    path = export_file(run.job_id, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".attempt{run.attempt}.part")
    query = (
        db.select(Message.id, Message.seq, Message.created_at, User.username, Message.text, Message.client_id)
        .add_columns(Message.edit_seq, Message.edited_at, Message.deleted)
        .join(User, Message.author_id == User.id)
        .where(Message.room_id == found.id)
        .order_by(Message.id)
    )
    written = 0
    # Stream on a connection of its own (a server-side cursor on PostgreSQL):
    # progress commits on the session's connection would close its cursor.
    with db.engine.connect() as connection, open(partial, "w", newline="", encoding="utf-8") as out:
        rows = connection.execution_options(yield_per=EXPORT_BATCH).execute(query)
        write = csv_writer(out) if format == "csv" else json_writer(out)
        for row in rows:
            write(
                {
                    "id": row.id,
                    "seq": row.seq,
                    "room": room,
                    "author": row.username,
                    "text": row.text,
                    "created_at": isoformat(row.created_at),
                    "client_id": row.client_id,
                    "edit_seq": row.edit_seq,
                    "edited_at": isoformat(row.edited_at) if row.edited_at else None,
                    "deleted": row.deleted,
                }
            )
            written += 1
            if written % EXPORT_BATCH == 0:
                run.progress(min(99, written * 100 // max(total, 1)), f"{written} of {total} messages")
        write(None)
    run.checkpoint(force=True)  # still ours (not cancelled or superseded) before publishing the file
    os.replace(partial, path)
    return {
        "url": f"/api/jobs/{run.job_id}/file",
        "format": format,
        "rows": written,
        "bytes": path.stat().st_size,
    }


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_writer(out):
    """Return write(message) for CSV; write(None) ends the file."""
    fields = ["id", "seq", "room", "author", "text", "created_at", "client_id", "edit_seq", "edited_at", "deleted"]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    return lambda message: message is not None and writer.writerow({**message, "text": csv_text(message["text"])})


def csv_text(text):
    """Escape a cell a spreadsheet would run as a formula (OWASP's advice: a leading quote)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def json_writer(out):
    """Return write(message) for a JSON array written one element at a time; write(None) closes it."""
    state = {"first": True}

    def write(message):
        if message is None:
            out.write("[]\n" if state["first"] else "\n]\n")
            return
        out.write("[\n" if state["first"] else ",\n")
        out.write(json.dumps(message, ensure_ascii=False))
        state["first"] = False

    return write
