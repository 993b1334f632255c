"""Read Roomcast's configuration from the environment, in one place."""

import os
import secrets
from pathlib import Path


def env(name, default=None):
    """Read a setting; empty counts as unset, as in an env file copied from .env.example."""
    return os.environ.get(name, "").strip() or default


PROJECT_ROOT = Path(__file__).resolve().parent
# The instance folder (the SQLite file, the development key, exports) unless
# ROOMCAST_INSTANCE_PATH names another; Config reads it when instantiated.
INSTANCE_PATH = PROJECT_ROOT / "instance"


class ConfigError(RuntimeError):
    """A setting that cannot work; raised at start-up with a clear message."""


def env_number(name, default, kind=int):
    """Read an int (or float) setting, failing loudly on garbage."""
    raw = env(name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {noun}, got {raw!r}") from None


def env_int(name, default):
    """Read an integer setting."""
    return env_number(name, default, int)


def env_float(name, default):
    """Read a number setting."""
    return env_number(name, default, float)


def env_bool(name, default):
    """Read a boolean setting written as 1/0, true/false, yes/no."""
    raw = env(name, "").lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def log_format():
    """Read LOG_FORMAT: json (one JSON object per line, the default) or text (readable, for make run)."""
    value = env("LOG_FORMAT", "json").lower()
    if value not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT must be json or text, got {value!r}")
    return value


def database_url(instance_path):
    """Return DATABASE_URL, defaulting to a SQLite file in the instance folder."""
    return normalize_database_url(env("DATABASE_URL") or f"sqlite:///{instance_path / 'roomcast.db'}")


def normalize_database_url(url):
    """Pick the psycopg2 driver for PostgreSQL URLs that name none."""
    # postgres:// is the Heroku spelling; SQLAlchemy 2 no longer accepts it. A
    # bare postgresql:// means psycopg 3 to SQLAlchemy 2.1, but Roomcast ships
    # psycopg2, which psycogreen makes cooperative under gevent (wsgi.py).
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url.removeprefix(prefix)
    return url


def cors_allowed_origins():
    """Return the allowed origins: a list, or None for same-origin only."""
    raw = env("CORS_ALLOWED_ORIGINS", "")
    if not raw:
        return None
    origins = [origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip()]
    if "*" in origins:
        raise ConfigError(
            "CORS_ALLOWED_ORIGINS='*' lets any web site act as your users; "
            "list the origins instead, e.g. https://chat.example.com"
        )
    return origins


def secret_key(production, instance_path):
    """Return SECRET_KEY; in development, generate one and keep it in the instance folder."""
    key = env("SECRET_KEY")
    if key:
        return key
    if production:
        raise ConfigError("SECRET_KEY must be set when ROOMCAST_ENV=production")
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


# The limits of services/throttle.py, each a number of hits per window (0: no limit).
THROTTLES = (
    "LOGIN_ATTEMPTS_PER_USERNAME",
    "LOGIN_ATTEMPTS_PER_ADDRESS",
    "REGISTRATIONS_PER_ADDRESS_PER_HOUR",
    "USER_EVENTS_PER_10S",
    "USER_MESSAGES_PER_10S",
    "CONNECTIONS_PER_USER",
    "JOBS_PER_USER",
    "ROOMS_PER_USER_PER_HOUR",
)


class Config:
    """Settings from the environment; instantiate to read them (instance_path: instead of ROOMCAST_INSTANCE_PATH)."""

    def __init__(self, instance_path=None):
        self.INSTANCE_PATH = Path(instance_path or env("ROOMCAST_INSTANCE_PATH", INSTANCE_PATH))
        self.ENV = env("ROOMCAST_ENV", "development")
        self.LOG_FORMAT = log_format()  # json or text (core/logs.py)
        self.LOG_LEVEL = env("LOG_LEVEL", "info").upper()
        production = self.ENV == "production"
        self.SECRET_KEY = secret_key(production, self.INSTANCE_PATH)
        self.SQLALCHEMY_DATABASE_URI = database_url(self.INSTANCE_PATH)
        # Connections per process: events beyond pool_size + max_overflow wait for one (pool_timeout).
        self.SQLALCHEMY_ENGINE_OPTIONS = {
            "pool_pre_ping": True,
            "pool_size": env_int("DATABASE_POOL_SIZE", 10),
            "max_overflow": env_int("DATABASE_MAX_OVERFLOW", 10),
        }
        self.REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
        # The Socket.IO message queue; tests of a single process may turn it off.
        self.SOCKETIO_MESSAGE_QUEUE = self.REDIS_URL
        self.REDIS_KEY_PREFIX = env("REDIS_KEY_PREFIX", "roomcast:")
        self.CORS_ALLOWED_ORIGINS = cors_allowed_origins()
        # Long-polling needs sticky sessions; WebSocket-only mode does not.
        self.SOCKETIO_TRANSPORTS = ["websocket"] if env_bool("WEBSOCKET_ONLY", False) else ["polling", "websocket"]
        self.SOCKETIO_MAX_HTTP_BUFFER_SIZE = env_int("SOCKETIO_MAX_HTTP_BUFFER_SIZE", 1_000_000)
        self.MAX_CONTENT_LENGTH = env_int("MAX_CONTENT_LENGTH", 1_000_000)  # HTTP bodies; 413 beyond
        self.SOCKET_MAX_EVENT_BYTES = env_int("SOCKET_MAX_EVENT_BYTES", 32_768)
        # Bytes a client may have waiting to be sent before it is disconnected as not reading (0: no bound).
        self.SOCKET_MAX_PENDING_BYTES = env_int("SOCKET_MAX_PENDING_BYTES", 1_000_000)
        self.SOCKET_RATE_PER_SECOND = env_int("SOCKET_RATE_PER_SECOND", 10)
        self.SOCKET_RATE_BURST = env_int("SOCKET_RATE_BURST", 30)
        # A join's catch-up is one page; the client asks for the rest (history since_seq).
        self.JOIN_CATCHUP_LIMIT = env_int("JOIN_CATCHUP_LIMIT", 500)
        # How long after sending its author may edit or delete a message (0: no limit).
        self.EDIT_WINDOW_SECONDS = env_int("EDIT_WINDOW_SECONDS", 900)
        # Limits every process shares, in Redis (services/throttle.py); 0 turns one off.
        self.LOGIN_WINDOW_SECONDS = env_int("LOGIN_WINDOW_SECONDS", 300)
        self.LOGIN_ATTEMPTS_PER_USERNAME = env_int("LOGIN_ATTEMPTS_PER_USERNAME", 10)
        self.LOGIN_ATTEMPTS_PER_ADDRESS = env_int("LOGIN_ATTEMPTS_PER_ADDRESS", 50)
        self.REGISTRATIONS_PER_ADDRESS_PER_HOUR = env_int("REGISTRATIONS_PER_ADDRESS_PER_HOUR", 20)
        self.USER_EVENTS_PER_10S = env_int("USER_EVENTS_PER_10S", 300)
        self.USER_MESSAGES_PER_10S = env_int("USER_MESSAGES_PER_10S", 50)
        self.CONNECTIONS_PER_USER = env_int("CONNECTIONS_PER_USER", 40)
        self.JOBS_PER_USER = env_int("JOBS_PER_USER", 5)
        # Each new room is announced to every /chat connection that may see it.
        self.ROOMS_PER_USER_PER_HOUR = env_int("ROOMS_PER_USER_PER_HOUR", 30)
        # Proxies in front that set X-Forwarded-For (nginx in deploy/: 1); their address is not the client's.
        self.PROXY_FIX_X_FOR = env_int("PROXY_FIX_X_FOR", 0)
        # The Socket.IO Admin UI at /admin/ (resources/socket/admin_ui.py): off unless set (make run sets it);
        # read-only unless ADMIN_UI_FULL=1 (then admins may also emit, join, leave and disconnect).
        # ADMIN_UI_MODE=production reports server stats only (no sockets, rooms or events), for less.
        self.ADMIN_UI = env_bool("ADMIN_UI", False)
        self.ADMIN_UI_FULL = env_bool("ADMIN_UI_FULL", False)
        self.ADMIN_UI_MODE = env("ADMIN_UI_MODE", "development")
        if self.ADMIN_UI_MODE not in ("development", "production"):
            raise ConfigError(f"ADMIN_UI_MODE must be development or production, got {self.ADMIN_UI_MODE!r}")
        self.TOKEN_MAX_AGE = env_int("TOKEN_MAX_AGE", 86_400)
        # A browser's login lasts at most this long, even if its cookie is kept.
        self.SESSION_MAX_AGE = env_int("SESSION_MAX_AGE", 14 * 86_400)
        self.SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", production)
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
        # Web processes and Celery workers meet on this Redis pub/sub channel;
        # deployments sharing a Redis keep apart by REDIS_KEY_PREFIX.
        self.SOCKETIO_CHANNEL = self.REDIS_KEY_PREFIX + "socketio"
        self.EXPORT_DIR = env("EXPORT_DIR") or str(self.INSTANCE_PATH / "exports")
        self.JOB_HEARTBEAT_SECONDS = env_float("JOB_HEARTBEAT_SECONDS", 2.0)
        self.JOB_STALE_SECONDS = env_float("JOB_STALE_SECONDS", 30.0)
        self.JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)
        self.JOB_SWEEP_SECONDS = env_float("JOB_SWEEP_SECONDS", 5.0)
        self.CELERY = {
            "broker_url": env("CELERY_BROKER_URL", self.REDIS_URL),
            "task_default_queue": self.REDIS_KEY_PREFIX + "jobs",
            "task_ignore_result": True,  # job state lives in the database
            # A task is acknowledged when it ends, and put back in the queue when
            # the process running it dies, so another worker runs it.
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "broker_connection_retry_on_startup": True,
            # Redis redelivers an unacknowledged task after this many seconds, even
            # to a second worker while the first still runs it: keep it longer than
            # the longest job. Jobs of a vanished worker are re-dispatched sooner
            # by the job sweeper (JOB_STALE_SECONDS).
            "broker_transport_options": {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)},
        }


class TestingConfig(Config):
    """Settings for the test suite: one process, no message queue."""

    def __init__(self, instance_path=None):
        super().__init__(instance_path)
        self.TESTING = True
        self.SOCKETIO_MESSAGE_QUEUE = None
        self.WTF_CSRF_ENABLED = False  # tests of CSRF turn it back on
        self.SOCKET_RATE_BURST = 10_000  # tests send bursts; the rate-limit test sets its own
        for limit in THROTTLES:  # likewise: the throttle tests set their own
            setattr(self, limit, 0)
