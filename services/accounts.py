"""Accounts: registration, password checks and signed API tokens."""

from functools import cache

from flask import current_app
from gevent import get_hub, monkey
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from errors import ProtocolError
from extensions import db
from models import BOT_USERNAME, User
from services import throttle

TOKEN_SALT = "roomcast-api-token"


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
    if user is None or not matches:
        return None
    throttle.clear("login-username", username)
    return user


@cache
def unknown_user_hash():
    """Return a hash made like real ones, for checking passwords of names that do not exist."""
    return generate_password_hash("no user has this password")


def off_the_event_loop(function, *args):
    """Run CPU-heavy work (password hashing) in gevent's thread pool, so the worker keeps serving everyone else."""
    if monkey.is_module_patched("threading"):  # a gunicorn gevent worker; tests and scripts call it directly
        return get_hub().threadpool.apply(function, args)
    return function(*args)


def _serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def issue_token(user):
    """Return a signed token for the user and its lifetime in seconds."""
    return _serializer().dumps({"uid": user.id}), current_app.config["TOKEN_MAX_AGE"]


def user_id_from_token(token):
    """Return the id of the existing user a valid, unexpired token names, or None."""
    if not isinstance(token, str) or len(token) > 512:
        return None
    try:
        data = _serializer().loads(token, max_age=current_app.config["TOKEN_MAX_AGE"])
    except BadSignature:  # SignatureExpired is a BadSignature too
        return None
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
        return None
    # Only the id: a socket connect needs no User object (a third of its cost was building one).
    return db.session.scalar(db.select(User.id).filter_by(id=data["uid"]))


def user_from_token(token):
    """Return the user a valid, unexpired token names, or None."""
    user_id = user_id_from_token(token)
    return None if user_id is None else db.session.get(User, user_id)
