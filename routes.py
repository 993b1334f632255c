"""HTTP routes: the pages, health checks and metrics; /api lives in resources/api."""

import time

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import text

from core import metrics
from core.errors import ProtocolError
from extensions import db, redis_store, socketio
from resources.forms import LoginForm, RegisterForm
from services.accounts import authenticate, create_user, end_everywhere, end_session, start_session
from services.jobs import state as jobs_state

pages = Blueprint("pages", __name__)
ops = Blueprint("ops", __name__)


@pages.get("/")
@login_required
def index():
    """Serve the chat page."""
    config = current_app.config
    return render_template(
        "index.html", transports=config["SOCKETIO_TRANSPORTS"], edit_window=config["EDIT_WINDOW_SECONDS"]
    )


@pages.get("/favicon.ico")
def favicon():
    """Serve the icon where browsers and crawlers look for it without a <link rel="icon">."""
    return current_app.send_static_file("favicon.svg")


@pages.route("/login", methods=["GET", "POST"])
def login():
    """Log in with the form; the session cookie then authenticates pages and sockets."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate(form.username.data, form.password.data, request.remote_addr)
        except ProtocolError as error:  # rate_limited
            flash(error.message[0].upper() + error.message[1:] + ".")
            return render_template("login.html", form=form), 429, {"Retry-After": str(error.retry_after)}
        if user is not None:
            start_session(user)
            return redirect(url_for("pages.index"))
        flash("Wrong username or password.")
    return render_template("login.html", form=form), 200 if request.method == "GET" else 400


@pages.route("/register", methods=["GET", "POST"])
def register():
    """Create an account with the form and log in."""
    form = RegisterForm()
    status = 200 if request.method == "GET" else 400
    if form.validate_on_submit():
        try:
            user = create_user(form.username.data, form.password.data, request.remote_addr)
        except ProtocolError as error:  # taken, or rate_limited
            form.username.errors.append(error.message)
            status = 429 if error.code == "rate_limited" else 400
        else:
            start_session(user)
            return redirect(url_for("pages.index"))
    return render_template("register.html", form=form), status


@pages.post("/logout")
def logout():
    """Log out this browser, or everywhere with everywhere=1 (a POST, so another site cannot do it with a link)."""
    if current_user.is_authenticated and request.form.get("everywhere") == "1":
        end_everywhere(current_user)
    end_session()
    return redirect(url_for("pages.login"))


@ops.get("/healthz")
def healthz():
    """Answer while the process serves."""
    return {"status": "ok"}


@ops.get("/readyz")
def readyz():
    """Check the database and the message queue; 503 names the one that failed."""
    checks = {"database": check_database, "redis": check_redis, "listener": check_listener}
    results = {}
    for name, check in checks.items():
        started = time.perf_counter()
        try:
            check()
            results[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
        except Exception as error:  # any failure means not ready; say which and why
            results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    ready = all(result["ok"] for result in results.values())
    failed = [name for name, result in results.items() if not result["ok"]]
    return {"status": "ok" if ready else "unavailable", "failed": failed, "checks": results}, (200 if ready else 503)


def check_database():
    """Run a trivial query."""
    try:
        db.session.execute(text("SELECT 1"))
    finally:
        db.session.remove()


def check_redis():
    """Ping Redis."""
    redis_store.client.ping()


def check_listener():
    """Fail while this process is not subscribed to the Socket.IO channel (it would miss broadcasts)."""
    if not socketio.server.manager.subscribed:
        raise RuntimeError("not subscribed to the Socket.IO channel on Redis")


@ops.get("/metrics")
def metrics_page():
    """Expose Prometheus metrics, summed over every web process."""
    try:
        shared = metrics.SharedStateCollector(
            jobs_state.count_by_kind_and_status, jobs_state.durations_by_kind, jobs_state.queue_length
        )
        body = metrics.render(shared)
    finally:
        db.session.remove()
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")
