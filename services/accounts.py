"""Accounts: registration, password checks, and logins (signed API tokens, browser sessions) that can be ended."""

import logging
import os
import secrets
import time
from functools import cache

from flask import current_app, session
from flask_login import login_user, logout_user
from gevent import get_hub, monkey
from gevent.lock import BoundedSemaphore
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.exceptions import RedisError
from sqlalchemy import bindparam, false, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from core.errors import ProtocolError
from extensions import db, redis_store, socketio
from models import BOT_USERNAME, RoomMember, User
from services import throttle
from services.channels import login_room, user_room

TOKEN_SALT = "roomcast-api-token"
TOKEN_CLAIMS = (("uid", int), ("v", int), ("lid", str))  # user id, the user's session version, login id
HASHING_NICENESS = 10  # a password hash yields the CPU to the event loop when both want it
log = logging.getLogger(__name__)


def create_user(username, password, address=None):
    """Register a user (at most REGISTRATIONS_PER_ADDRESS_PER_HOUR from one address); conflict when taken."""
    if address is not None:
        limit = current_app.config["REGISTRATIONS_PER_ADDRESS_PER_HOUR"]
        throttle.hit("register", address, limit, 3600, "registrations from your address")
    if username.lower() == BOT_USERNAME:
        raise ProtocolError("conflict", "that username is taken")
    user = User(username=username, password_hash=off_the_event_loop(generate_password_hash, password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ProtocolError("conflict", "that username is taken") from None
    return user


def authenticate(username, password, address):
    """Return the user whose credentials these are, or None; as slow for unknown names as for known ones.

    Attempts are limited per username and per client address (rate_limited past them);
    a successful login clears its username's count.
    """
    config = current_app.config
    window = config["LOGIN_WINDOW_SECONDS"]
    throttle.hit("login-address", address, config["LOGIN_ATTEMPTS_PER_ADDRESS"], window, "login attempts")
    throttle.hit("login-username", username, config["LOGIN_ATTEMPTS_PER_USERNAME"], window, "login attempts")
    user = db.session.scalar(db.select(User).filter_by(username=username))
    # An unknown name is checked against a hash too: a quick "no" would tell which names exist.
    if user is not None and user.username == BOT_USERNAME:
        user = None  # the bot never logs in
    stored = user.password_hash if user is not None else unknown_user_hash()
    matches = off_the_event_loop(check_password_hash, stored, password)
    if user is None or user.disabled or not matches:
        return None
    throttle.clear("login-username", username)
    return user


@cache
def unknown_user_hash():
    """Return a hash made like real ones, for checking passwords of names that do not exist."""
    return off_the_event_loop(generate_password_hash, "no user has this password")


def off_the_event_loop(function, *args):
    """Run CPU-heavy work (password hashing) in gevent's thread pool, so the worker keeps serving everyone else."""
    if not monkey.is_module_patched("threading"):  # tests and scripts; a gunicorn gevent worker is patched
        return function(*args)
    # One hash at a time per process: each takes a core for ~80 ms, and several at
    # once starve the event loop's own thread of CPU. More logins wait their turn.
    with hashing_turn():
        return get_hub().threadpool.apply(at_low_cpu_priority, (function, *args))


def at_low_cpu_priority(function, *args):
    """Call function(*args) on this OS thread after lowering the thread's CPU priority (Linux: per thread)."""
    # Else, on a machine with no core to spare, the hash takes CPU time from the
    # event loop's thread, and every client of the worker waits behind a login storm.
    try:
        os.setpriority(os.PRIO_PROCESS, monkey.get_original("_thread", "get_native_id")(), HASHING_NICENESS)
    except OSError:  # not allowed here; the hash still runs, at normal priority
        pass
    return function(*args)


@cache
def hashing_turn():
    """Return this process's lock for its one password hash at a time (made in the worker, after the fork)."""
    return BoundedSemaphore(1)


def _serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


# --- logins: tokens and browser sessions, each with an id that can be revoked ---


def issue_token(user):
    """Return a signed token for the user and its lifetime in seconds."""
    claims = {"uid": user.id, "v": user.session_version, "lid": secrets.token_urlsafe(12)}
    return _serializer().dumps(claims), current_app.config["TOKEN_MAX_AGE"]


# A token's check reads one column of one row: a prebuilt statement on a pooled connection, with no
# User and no ORM session (building them was most of a socket connect's database time:
# docs/benchmarks.md, "Event and connect paths").
USERS = User.__table__
ACTIVE_LOGIN = select(USERS.c.id).where(
    USERS.c.id == bindparam("uid"), USERS.c.session_version == bindparam("v"), USERS.c.disabled == false()
)


def token_login(token):
    """Return (user id, login id) of a valid, unexpired token of an active user, or None; revocation unchecked."""
    if not isinstance(token, str) or len(token) > 512:
        return None
    try:
        claims = _serializer().loads(token, max_age=current_app.config["TOKEN_MAX_AGE"])
    except BadSignature:  # SignatureExpired is a BadSignature too
        return None
    if not isinstance(claims, dict) or not all(isinstance(claims.get(key), kind) for key, kind in TOKEN_CLAIMS):
        return None
    with db.engine.connect() as connection:
        if connection.execute(ACTIVE_LOGIN, {"uid": claims["uid"], "v": claims["v"]}).first() is None:
            return None
    return claims["uid"], claims["lid"]


def login_from_token(token):
    """Return (user id, login id) of a valid, unexpired, unrevoked token of an active user, or None."""
    login = token_login(token)
    return None if login is None or is_revoked(login[1]) else login


def user_from_token(token):
    """Return the user a valid, unexpired, unrevoked token names, or None."""
    login = login_from_token(token)
    return None if login is None else db.session.get(User, login[0])


def start_session(user):
    """Log the browser in: its session carries a login id and the user's session version."""
    login_user(user)
    session["lid"] = secrets.token_urlsafe(12)
    session["v"] = user.session_version
    session["iat"] = int(time.time())


def session_user(user_id):
    """Return the user of the browser's session (Flask-Login's user_loader), or None if it has ended."""
    user = db.session.get(User, int(user_id))
    if user is None or user.disabled or session.get("v") != user.session_version:
        return None
    if time.time() - session.get("iat", 0) > current_app.config["SESSION_MAX_AGE"] or is_revoked(session.get("lid")):
        return None
    return user


def end_session():
    """Log the browser out: its login id is revoked, so a copy of its cookie no longer works either."""
    login_id = session.get("lid")
    if login_id:
        revoke(login_id, current_app.config["SESSION_MAX_AGE"])
    logout_user()


def end_token(token):
    """Revoke a token, and disconnect the sockets it opened; False if it was not a valid token."""
    login = login_from_token(token)
    if login is None:
        return False
    revoke(login[1], current_app.config["TOKEN_MAX_AGE"])
    return True


def end_everywhere(user):
    """End every session and token of the user (and so their sockets): log out everywhere."""
    user.session_version = User.session_version + 1
    db.session.commit()
    disconnect_sockets(user_room(user.id))


def disable(user):
    """Stop the user from logging in or using anything they are logged in with."""
    user.disabled = True
    end_everywhere(user)


def delete(user):
    """Delete an account: it can no longer log in, its logins end, its name is freed; its messages stay, unnamed."""
    db.session.execute(db.delete(RoomMember).where(RoomMember.user_id == user.id))
    user.username = f"deleted-{user.id}"
    user.password_hash = "!"  # matches no password
    disable(user)


def revoke(login_id, seconds):
    """Remember for `seconds` (the login's longest life) that a login has ended; disconnect its sockets."""
    redis_store.client.set(redis_store.key("revoked", login_id), 1, ex=seconds)
    disconnect_sockets(login_room(login_id))


def admit_socket(user_id, login_id, sid, limit):
    """Refuse a revoked login (False) and count the socket toward the user's limit, in one Redis round trip.

    login_id: the login to check (None: already checked, a session's); limit: CONNECTIONS_PER_USER
    (0: none). Over the limit raises rate_limited. When Redis is away, the socket is let in, as
    is_revoked and throttle.admit_connection do.
    """
    with redis_store.client.pipeline(transaction=False) as pipe:
        if login_id:
            pipe.exists(redis_store.key("revoked", login_id))
        if limit:
            throttle.queue_admission(pipe, user_id, sid, limit, throttle.PROCESS_ID)
        try:
            replies = pipe.execute() if len(pipe) else []
        except RedisError as error:
            log.warning("cannot check revoked logins nor count connections while Redis is unavailable (%s)", error)
            return True
    if login_id and replies.pop(0):
        if limit:  # counted on the way: uncount it
            throttle.release_connection(user_id, sid)
        return False
    if limit:
        throttle.check_admitted(replies[0], limit)
    return True


def is_revoked(login_id):
    """Tell whether a login was ended (False when there is no id, or Redis cannot say)."""
    if not login_id:
        return False
    try:
        return bool(redis_store.client.exists(redis_store.key("revoked", login_id)))
    except RedisError as error:  # keep serving; revocations hold again when Redis is back
        log.warning("cannot check revoked logins while Redis is unavailable (%s)", error)
        return False


def disconnect_sockets(room):
    """Disconnect every socket in a Socket.IO room, on every web process; call it after committing.

    This process's sockets disconnect at once, and their handlers end the database session.
    """
    socketio.server.manager.disconnect_room(room)
