"""Fixtures: Redis and a migrated database per session, a fresh app per test; every test marked with its kind."""

import os
import tempfile
from pathlib import Path

import flask
import pytest
from flask_migrate import upgrade

from app import create_app
from devtools.embedded_redis import EmbeddedRedis
from extensions import db, socketio
from services import throttle
from services.accounts import create_user, issue_token
from tests.browsers import CHROMIUM_FLAGS, SCREENSHOTS, chromium_path
from tests.clients import SocketClient
from tests.databases import create_database, drop_database
from tests.helpers import FAST_JOB_RECOVERY, config_for
from tests.realstack import running_stack

TABLES_TO_EMPTY = ("jobs", "messages", "room_members", "users", "rooms")
KINDS = ("unit", "integration", "browser", "chaos")  # the markers of pyproject.toml: each test has one


def pytest_collection_modifyitems(items):
    """Refuse a test that names no kind, or two: make test-fast (-m unit) would run or miss it unseen."""
    wrong = [item.nodeid for item in items if sum(bool(item.get_closest_marker(kind)) for kind in KINDS) != 1]
    if wrong:
        raise pytest.UsageError(f"mark each test with exactly one of {', '.join(KINDS)}: " + " ".join(wrong))


@pytest.fixture(scope="session")
def tmp_root():
    """Return a folder for this test session's files."""
    with tempfile.TemporaryDirectory(prefix="roomcast-tests-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def instance_path(tmp_root):
    """Return the instance folder of the apps the tests build (config_for), kept out of the checkout's."""
    return str(tmp_root / "instance")


@pytest.fixture(scope="session")
def redis_url():
    """Return REDIS_URL if set, else the URL of an embedded Redis for this session."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis().start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_root, redis_url, instance_path):
    """Return the URL of a database migrated once for the unit tests."""
    url = create_database(tmp_root, "unit")
    app = create_app(config_for(url, redis_url, instance_path))
    with app.app_context():
        upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))
        db.engine.dispose()
    yield url
    drop_database(url)


@pytest.fixture(name="app")
def app_fixture(database_url, redis_url, instance_path):
    """Return an app on the session's database, emptied back to its migrated state afterwards."""
    app = create_app(config_for(database_url, redis_url, instance_path))
    yield app
    with app.app_context():
        db.session.remove()
        for table in TABLES_TO_EMPTY:
            keep = {"users": "username = 'bot'", "rooms": "name = 'general'"}.get(table, "1 = 0")
            db.session.execute(db.text(f"DELETE FROM {table} WHERE NOT ({keep})"))
        db.session.execute(db.text("UPDATE rooms SET last_seq = 0, last_edit_seq = 0"))
        db.session.commit()
        redis = app.extensions["redis_store"]
        for key in redis.client.scan_iter(f"{redis.prefix}*"):
            redis.client.delete(key)
        throttle.forget_shares()  # this process's shares of the limits whose counts were just deleted
        db.engine.dispose()
    assert not flask.has_app_context(), "a test left an app context pushed"


@pytest.fixture
def client(app):
    """Return a Flask test client."""
    return app.test_client()


@pytest.fixture
def make_user(app):
    """Return a factory: make_user("alice") -> (user id, username, token)."""

    def make(username, password="correct horse"):
        with app.app_context():
            user = create_user(username, password)
            token, _ = issue_token(user)
            return {"id": user.id, "username": username, "token": token, "password": password}

    return make


@pytest.fixture
def alice(make_user):
    """Return the user alice."""
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    """Return the user bob."""
    return make_user("bob")


@pytest.fixture
def connect(app):
    """Return a factory of Socket.IO test clients authenticated by token."""
    clients = []

    def make(user, namespace="/chat", **kwargs):
        auth = {"token": user["token"]} if user else None
        test_client = socketio.test_client(app, namespace=namespace, auth=auth, **kwargs)
        clients.append((test_client, namespace))
        return test_client

    yield make
    for test_client, namespace in clients:
        if test_client.is_connected(namespace):
            test_client.disconnect(namespace)


@pytest.fixture(scope="module")
def browser():
    """Launch Debian's Chromium once per module; CI fails rather than skip without it."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no Chromium found (apt-get install chromium); browser tests skipped")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()
    print(f"\nscreenshots: {SCREENSHOTS}")


@pytest.fixture(scope="session")
def stack(tmp_root, redis_url):
    """Start gunicorn (GeventWebSocketWorker) and a Celery worker on a fresh database."""
    # The junk-payload tests send a hundred events at once; rate limits have their own tests.
    rates = {"SOCKET_RATE_PER_SECOND": "1000", "SOCKET_RATE_BURST": "1000"}
    with running_stack(tmp_root, redis_url, "stack", **rates, **FAST_JOB_RECOVERY) as real:
        real.start_web()
        real.start_worker()
        yield real


@pytest.fixture(scope="session")
def websocket_only_stack(tmp_root, redis_url):
    """gunicorn with two worker processes in one group: WebSocket-only, as that requires."""
    # No PROMETHEUS_MULTIPROC_DIR: the default gunicorn.conf.py picks must work.
    env = {"WEB_CONCURRENCY": "2", "WEBSOCKET_ONLY": "1", "PROMETHEUS_MULTIPROC_DIR": None}
    with running_stack(tmp_root, redis_url, "wsonly", **env) as real:
        real.start_web()
        yield real


@pytest.fixture
def open_client(stack):
    """Return a factory of clients connected to the session's stack, closed after the test."""
    opened = []

    def make(token, transport, **kwargs):
        client = SocketClient(stack.url, token, transport, **kwargs).connect()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()
