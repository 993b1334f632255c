"""Celery tasks; they report to browsers through a write-only Socket.IO emitter."""
