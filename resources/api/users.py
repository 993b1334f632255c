"""POST /api/users and POST /api/tokens."""

from flask import request

from errors import ProtocolError
from resources.api import api, json_body
from services.accounts import authenticate, create_user, issue_token
from validation import PASSWORD, USERNAME, Field

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
