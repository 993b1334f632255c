"""The application factory: wires Flask, Socket.IO, the database, Redis and Celery; a web process's background work."""

import logging
import re
import sqlite3
import uuid
from pathlib import Path

from celery import Celery, Task
from flask import Flask, g, jsonify, request, send_from_directory
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from config import PROJECT_ROOT, Config
from core.errors import ProtocolError
from core.logs import bind, configure_logging, unbind
from core.metrics import HTTP_REQUESTS
from extensions import csrf, db, login_manager, migrate, redis_store, socketio
from resources.commands import users
from services import throttle
from services.accounts import session_user
from services.jobs import sweeper
from socket_views import init_socketio

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  # a proxy's X-Request-ID, as logs may carry it
SOCKET_IO_CLIENT = PROJECT_ROOT / "node_modules" / "socket.io-client" / "dist"


def create_app(config=None):
    """Build the app from a config object (default: Config() read from the environment)."""
    app = Flask(__name__, instance_path=str((config := config or Config()).INSTANCE_PATH))
    app.config.from_object(config or Config())
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not logging.root.handlers:  # gunicorn and Celery configure logging before; scripts and flask CLI do not
        configure_logging(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])

    register_request_ids(app)  # first: every answer has one, CSRF's refusals included
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_request_metrics(app)
    register_security_headers(app)
    app.cli.add_command(users)  # flask users ... (resources/commands.py)
    celery_init_app(app)
    import tasks  # noqa: F401  (registers the job kinds with their Celery tasks)

    if app.config["PROXY_FIX_X_FOR"]:
        # The client's address (for the throttles) is the one the trusted proxies forwarded.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_X_FOR"], x_proto=1)

    return app


def start_background_work(app):
    """Start what a web process runs beside its clients (wsgi.py calls this; tests and Celery do not)."""
    # Every web process sweeps; the sweep's conditional updates let only one act on a job.
    socketio.start_background_task(sweeper.supervise, app)
    # The connections this process holds count toward their users' limits while it lives.
    socketio.start_background_task(throttle.keep_process_alive_forever)


def register_extensions(app):
    """Configure the bare extension instances."""
    db.init_app(app)
    migrate.init_app(app, db)
    csrf.init_app(app)
    redis_store.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "pages.login"
    login_manager.user_loader(session_user)
    init_socketio(app)


@event.listens_for(Engine, "connect")
def tune_sqlite(dbapi_connection, connection_record):
    """Let SQLite readers and a writer work at once (WAL), and wait for locks instead of failing."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def register_blueprints(app):
    """Attach the pages, the API, the ops endpoints, the Socket.IO Admin UI and the vendored JS client."""
    from resources.api import api
    from resources.socket.admin_ui import admin_ui
    from routes import ops, pages

    app.register_blueprint(pages)
    app.register_blueprint(api)
    app.register_blueprint(ops)
    app.register_blueprint(admin_ui)  # /admin/, answered 404 unless ADMIN_UI is on

    @app.get("/vendor/socket.io/<path:filename>")
    def socket_io_client(filename):
        """Serve the Socket.IO client installed from npm (package-lock.json pins it)."""
        return send_from_directory(SOCKET_IO_CLIENT, filename)


def register_error_handlers(app):
    """Answer /api errors as JSON: {"error": {"code", "message"}}."""

    @app.errorhandler(ProtocolError)
    def protocol_error(error):
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
        return jsonify(error.to_json()), error.http_status, headers

    @app.errorhandler(HTTPException)
    def http_error(error):
        if not request.path.startswith("/api/"):
            return error
        code = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(
            error.code, "too_large" if error.code == 413 else "invalid"
        )
        body = {"error": {"code": code, "message": error.description}}
        return jsonify(body), error.code

    @app.errorhandler(RedisError)
    def redis_unavailable(error):
        app.logger.warning("Redis is unavailable on %s %s: %s", request.method, request.path, error)
        db.session.rollback()
        body = {"error": {"code": "unavailable", "message": "the server is briefly unavailable; try again"}}
        return jsonify(body), 503, {"Retry-After": "1"}

    @app.errorhandler(Exception)
    def unexpected_error(error):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        body = {"error": {"code": "internal", "message": "the server failed to answer"}}
        return jsonify(body), 500


def register_request_metrics(app):
    """Count HTTP responses by method and status."""

    @app.after_request
    def count_response(response):
        HTTP_REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response


def register_request_ids(app):
    """Give each HTTP request an id (the client's X-Request-ID if sane, else a new one), in its log lines and answer."""

    @app.before_request
    def take_request_id():
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.log_token = bind(request_id=g.request_id)

    @app.after_request
    def answer_request_id(response):
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        return response

    @app.teardown_request
    def forget_request_id(error):
        if "log_token" in g:
            unbind(g.pop("log_token"))


def register_security_headers(app):
    """Send every response with a CSP that allows only the app's own scripts and Socket.IO endpoint."""

    @app.after_request
    def add_security_headers(response):
        # The page's only other origin is its own Socket.IO endpoint over ws(s)://.
        host = request.host
        style_src = " ".join(["'self'", *g.get("csp_style_hashes", ())])  # the Admin UI adds its theme's
        response.headers.setdefault(
            "Content-Security-Policy",
            f"default-src 'self'; script-src 'self'; style-src {style_src}; img-src 'self' data:; "
            f"connect-src 'self' ws://{host} wss://{host}; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors, for older browsers
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def celery_init_app(app):
    """Create the Celery app whose tasks run inside a Flask app context."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
