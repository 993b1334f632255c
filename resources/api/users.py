"""POST /api/users and POST /api/tokens."""

from flask import request

from core.errors import ProtocolError
from core.validation import PASSWORD, USERNAME, Field
from resources.api import api, api_user, json_body
from services.accounts import authenticate, create_user, end_everywhere, end_token, issue_token

CREDENTIALS = {"username": USERNAME, "password": PASSWORD}
# Logging in checks the pair, not the rules new passwords must follow.
LOGIN = {"username": Field(str, max_length=32), "password": Field(str, max_length=128)}


@api.post("/users")
def register_user():
    """Create an account."""
    data = json_body(CREDENTIALS)
    return create_user(data["username"], data["password"], request.remote_addr).to_json(), 201


@api.post("/tokens")
def create_token():
    """Exchange a username and password for a signed, expiring token."""
    data = json_body(LOGIN)
    user = authenticate(data["username"], data["password"], request.remote_addr)
    if user is None:
        raise ProtocolError("unauthorized", "wrong username or password")
    token, expires_in = issue_token(user)
    return {"token": token, "expires_in": expires_in}


@api.delete("/tokens")
def revoke_token():
    """Revoke the token this request carries (Authorization: Bearer); its sockets are disconnected."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not end_token(token.strip()):
        raise ProtocolError("unauthorized", "send the token to revoke as Authorization: Bearer <token>")
    return "", 204


@api.delete("/sessions")
def log_out_everywhere():
    """End every session and token of the caller, and disconnect all their sockets."""
    end_everywhere(api_user())
    return "", 204
