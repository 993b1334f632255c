"""The /api blueprint: JSON in and out, Bearer tokens or the browser session."""

from flask import Blueprint, request
from flask_login import current_user

from core.errors import ProtocolError
from core.validation import validate
from extensions import csrf
from services.accounts import user_from_token

api = Blueprint("api", __name__, url_prefix="/api")
# Bearer-token calls carry no cookie to forge; session calls are checked below.
csrf.exempt(api)


def api_user():
    """Return the caller from its Bearer token or login session, or raise unauthorized."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        user = user_from_token(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ProtocolError("unauthorized", "the token is missing, invalid or expired")
        return user
    if current_user.is_authenticated:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            csrf.protect()  # a cookie-authenticated write must carry X-CSRFToken
        return current_user._get_current_object()
    raise ProtocolError("unauthorized", "log in or send Authorization: Bearer <token>")


def json_body(schema):
    """Return the request's JSON object validated against the schema."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested past Python's recursion limit
        body = None
    if body is None:
        raise ProtocolError("invalid", "the body must be a JSON object")
    return validate(body, schema)


from resources.api import connect, jobs, rooms, users  # noqa: E402,F401  (routes register on import)
