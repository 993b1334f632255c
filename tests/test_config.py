"""Configuration read from the environment, and the checks made at start-up."""

import subprocess
import sys

import pytest

from app import create_app
from config import Config, ConfigError
from tests.helpers import config_for
from tests.realstack import PROJECT_ROOT


@pytest.fixture(autouse=True)
def instance_folder(monkeypatch, tmp_path):
    """Keep the instance folder of every Config made here (its generated key) out of the checkout's."""
    monkeypatch.setenv("ROOMCAST_INSTANCE_PATH", str(tmp_path / "instance"))
    return tmp_path / "instance"


@pytest.mark.unit
def test_the_instance_folder_is_read_when_a_config_is_made_or_given_to_it(
    monkeypatch, tmp_path, instance_folder, database_url, redis_url
):
    for name in ("DATABASE_URL", "EXPORT_DIR", "SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = Config()
    assert config.INSTANCE_PATH == instance_folder and (instance_folder / "secret_key").exists()
    assert config.SQLALCHEMY_DATABASE_URI == f"sqlite:///{instance_folder / 'roomcast.db'}"
    assert config.EXPORT_DIR == str(instance_folder / "exports")
    monkeypatch.setenv("ROOMCAST_INSTANCE_PATH", str(tmp_path / "moved"))
    assert Config().INSTANCE_PATH == tmp_path / "moved"
    given = config_for(database_url, redis_url, tmp_path / "given")  # as the tests' apps are made
    assert given.INSTANCE_PATH == tmp_path / "given" and create_app(given).instance_path == str(tmp_path / "given")


@pytest.mark.unit
def test_cors_star_is_refused(monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://a.example, *")
    with pytest.raises(ConfigError, match="list the origins"):
        Config()


@pytest.mark.unit
def test_cors_origins_are_a_list_and_same_origin_when_unset(monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://a.example/, https://b.example")
    assert Config().CORS_ALLOWED_ORIGINS == ["https://a.example", "https://b.example"]
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS")
    assert Config().CORS_ALLOWED_ORIGINS is None


@pytest.mark.unit
def test_production_needs_a_secret_key(monkeypatch):
    monkeypatch.setenv("ROOMCAST_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Config()
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    config = Config()
    assert config.SECRET_KEY == "s3cret" and config.SESSION_COOKIE_SECURE is True


@pytest.mark.unit
def test_the_development_key_is_generated_once_and_kept(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("ROOMCAST_ENV", raising=False)
    first, second = Config().SECRET_KEY, Config().SECRET_KEY
    assert first == second and len(first) == 64


@pytest.mark.unit
def test_postgres_urls_use_the_shipped_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db/roomcast")
    assert Config().SQLALCHEMY_DATABASE_URI == "postgresql+psycopg2://u@db/roomcast"


@pytest.mark.unit
@pytest.mark.parametrize("name, value", [("SOCKET_RATE_PER_SECOND", "ten"), ("WEBSOCKET_ONLY", "maybe")])
def test_garbage_settings_fail_loudly(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        Config()


@pytest.mark.integration
@pytest.mark.parametrize(
    "env, complaint",
    [
        ({"CORS_ALLOWED_ORIGINS": "*"}, "list the origins"),
        ({"WEB_CONCURRENCY": "2"}, "WEBSOCKET_ONLY=1"),
    ],
)
def test_gunicorn_refuses_to_start_with_an_unsafe_setup(tmp_path, env, complaint):
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:0"]
    full_env = {"PATH": "/usr/bin:/bin", "ROOMCAST_INSTANCE_PATH": str(tmp_path), **env}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=full_env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and complaint in done.stderr


@pytest.mark.unit
def test_empty_settings_mean_the_defaults(monkeypatch):
    # An env file copied from .env.example holds empty values: they must not count as set.
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "REDIS_KEY_PREFIX", "SOCKET_RATE_PER_SECOND", "WEBSOCKET_ONLY"):
        monkeypatch.setenv(name, "")
    config = Config()
    assert config.REDIS_URL == config.CELERY["broker_url"] == "redis://127.0.0.1:6379/0"
    assert config.REDIS_KEY_PREFIX == "roomcast:" and config.SOCKET_RATE_PER_SECOND == 10
    assert config.SOCKETIO_TRANSPORTS == ["polling", "websocket"]
