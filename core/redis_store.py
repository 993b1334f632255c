"""A Flask extension holding one Redis client for the app's own keys."""

import redis


class RedisStore:
    """Give the app a Redis client from REDIS_URL and a key prefix."""

    def __init__(self):
        self.client = None
        self.prefix = ""

    def init_app(self, app):
        """Connect lazily to REDIS_URL; nothing is sent until first use."""
        self.client = redis.Redis.from_url(
            app.config["REDIS_URL"],
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        self.prefix = app.config["REDIS_KEY_PREFIX"]
        app.extensions["redis_store"] = self

    def key(self, *parts):
        """Build a namespaced key such as roomcast:presence:general."""
        return self.prefix + ":".join(str(part) for part in parts)
