"""The protocol's error codes, as one exception type shared by HTTP and Socket.IO."""

HTTP_STATUS = {
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,  # a dependency (Redis) is briefly unreachable: try again
}


class ProtocolError(Exception):
    """An error a client is told about: a code from protocol.md and a message."""

    def __init__(self, code, message, retry_after=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, for rate_limited

    @property
    def http_status(self):
        """Return the HTTP status that carries this error."""
        return HTTP_STATUS[self.code]

    def to_json(self):
        """Serialize as the protocol's error object (with retry_after, in seconds, when known)."""
        error = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error}
