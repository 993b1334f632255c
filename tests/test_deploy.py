"""deploy/: the systemd units run what the Procfile says, and systemd accepts them."""

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realstack import PROJECT_ROOT, procfile_command, running_stack

DEPLOY = PROJECT_ROOT / "deploy"
INSTALLED_AT = "/srv/roomcast"  # where the units expect the checkout and its .venv
UNITS = {"roomcast-web@.service": "web", "roomcast-worker@.service": "worker", "roomcast-migrate.service": "release"}


def exec_start(unit):
    """Return a unit's ExecStart command as a list."""
    lines = [line for line in (DEPLOY / unit).read_text().splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1
    return shlex.split(lines[0].removeprefix("ExecStart="))


@pytest.mark.unit
@pytest.mark.parametrize("unit, process_type", UNITS.items())
def test_each_unit_runs_its_procfile_command(unit, process_type):
    program, *args = exec_start(unit)
    expected = procfile_command(process_type)
    assert program == f"{INSTALLED_AT}/.venv/bin/{Path(expected[0]).name}"
    assert args[: len(expected) - 1] == expected[1:]


@pytest.mark.unit
def test_systemd_accepts_the_units(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing")
    venv_bin = str(Path(sys.executable).parent)
    paths = []
    for unit in UNITS:
        text = (DEPLOY / unit).read_text().replace(f"{INSTALLED_AT}/.venv/bin", venv_bin)
        # systemd checks each program exists; run them from this checkout instead.
        text = text.replace(INSTALLED_AT, str(PROJECT_ROOT))
        path = tmp_path / unit.replace("@.", "@8001.")
        path.write_text(text)
        paths.append(str(path))
    done = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if "roomcast" in line], done.stderr


def read_env_file(path):
    """Read KEY=value lines as systemd's EnvironmentFile= does (comments and blanks skipped)."""
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.integration
def test_a_copy_of_env_example_runs_the_web_server_and_a_worker(tmp_root, redis_url):
    settings = read_env_file(PROJECT_ROOT / ".env.example")
    assert settings["BIND"] == "" and settings["CELERY_BROKER_URL"] == ""  # empty means the default
    # Only what must point at this test's database, Redis and folders is left to the stack.
    ours = ("DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX", "ROOMCAST_INSTANCE_PATH")
    with running_stack(
        tmp_root, redis_url, "envexample", **{k: v for k, v in settings.items() if k not in ours}
    ) as stack:
        stack.start_web()
        stack.start_worker()
