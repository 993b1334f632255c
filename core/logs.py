"""Logging: one JSON line per event (LOG_FORMAT=json) or readable text (LOG_FORMAT=text), each with its context.

The context is what a line is about: request_id, sid, user, namespace, room,
message_id, seq, job_id, attempt. Code adds it around a unit of work with
`log_context(...)` (HTTP requests, Socket.IO events, a Celery job's run), or to one
line with `extra={...}`; every line written meanwhile carries it, so one grep of
a job id follows the job through the web process and the Celery worker.
Messages' text, passwords and tokens are never logged.
"""

import contextvars
import logging
import logging.config
from contextlib import contextmanager
from types import MappingProxyType

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("json", "text")
CONTEXT_FIELDS = ("request_id", "sid", "user", "namespace", "room", "message_id", "seq", "job_id", "attempt")
# Each greenlet (and thread) has its own context, so concurrent clients never mix theirs.
_context = contextvars.ContextVar("roomcast_log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields):
    """Add fields to every log line written inside the block (None values are left out)."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def bind(**fields):
    """Add fields to the current context until unbind(token); for hooks that cannot wrap a block (Flask's)."""
    return _context.set({**_context.get(), **{key: value for key, value in fields.items() if value is not None}})


def unbind(token):
    """Undo a bind()."""
    _context.reset(token)


class ContextFilter(logging.Filter):
    """Copy the current context onto each record (a line's own extra= wins)."""

    def filter(self, record):
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    """A readable line: time, level, logger, message, then the context as key=value."""

    def formatMessage(self, record):
        line = super().formatMessage(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key))
        return f"{line} [{context}]" if context else line


def logging_config(log_format="json", level="INFO"):
    """Return a logging.config.dictConfig dict: the root logger and gunicorn's, to stderr, in log_format."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    formatter = (
        {"()": JsonFormatter, "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
         "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}}
        if log_format == "json"
        else {"()": TextFormatter, "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )  # fmt: skip
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"roomcast": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "roomcast",
                "filters": ["context"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        # gunicorn's own loggers write through the root's handler, in the same format.
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }


def configure_logging(log_format="json", level="INFO"):
    """Send every log line to stderr in log_format (json or text), with its context."""
    logging.config.dictConfig(logging_config(log_format, level))
