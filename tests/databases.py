"""Throwaway databases for the tests: SQLite files, or databases on DATABASE_URL's server."""

import os
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from config import normalize_database_url


def create_database(tmp_dir, label):
    """Return the URL of a new empty database named after label."""
    base = os.environ.get("DATABASE_URL")
    if not base or base.startswith("sqlite"):
        return f"sqlite:///{tmp_dir / f'{label}.db'}"
    url = make_url(normalize_database_url(base))
    name = f"roomcast_{label}_{uuid.uuid4().hex[:8]}"
    with _admin_engine(url).connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(database_url):
    """Drop a database create_database made on a server (SQLite files go with tmp)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return
    with _admin_engine(url).connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))


def _admin_engine(url):
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
