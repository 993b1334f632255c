"""Accounts: registration, password checks and signed API tokens."""

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from errors import ProtocolError
from extensions import db
from models import BOT_USERNAME, User

TOKEN_SALT = "roomcast-api-token"


def create_user(username, password):
    """Register a user; raise ProtocolError('conflict') when the name is taken."""
    if username.lower() == BOT_USERNAME:
        raise ProtocolError("conflict", "that username is taken")
    user = User(username=username)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ProtocolError("conflict", "that username is taken") from None
    return user


def authenticate(username, password):
    """Return the user whose credentials these are, or None."""
    user = db.session.scalar(db.select(User).filter_by(username=username))
    if user is None or user.username == BOT_USERNAME or not user.check_password(password):
        return None
    return user


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
