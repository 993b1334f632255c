"""The Celery entry point: celery -A celery_worker worker."""

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]

import tasks  # noqa: E402,F401  (registers the shared tasks)
