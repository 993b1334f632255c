"""Start the real stack for integration tests: gunicorn (GeventWebSocketWorker) and Celery."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from embedded_redis import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name, command, env, log_dir):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log = open(self.log_path, "ab")  # closed in stop()
        self.log = log
        self.popen = subprocess.Popen(
            command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self):
        """Return what the process has logged so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, signum):
        """Send a signal to the process group we started."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout=20):
        """SIGTERM the group, then SIGKILL it if it lingers."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait()
        self.log.close()


class Stack:
    """gunicorn + Celery worker(s) on a database and Redis, on a free loopback port."""

    def __init__(self, database_url, redis_url, log_dir, **env):
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "integration-tests",
            "PORT": str(self.port),
            "ROOMCAST_INSTANCE_PATH": str(log_dir / "instance"),
            "PROMETHEUS_MULTIPROC_DIR": str(log_dir / "metrics"),
            "REDIS_KEY_PREFIX": f"roomcast-it-{self.port}:",
            **env,
        }
        # A None value removes a variable, to test the defaults.
        self.env = {name: value for name, value in self.env.items() if value is not None}
        self.web = None
        self.workers = []

    def migrate(self):
        """Apply the migrations with the real CLI, as make run does."""
        command = [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"]
        subprocess.run(command, env=self.env, cwd=PROJECT_ROOT, check=True, capture_output=True)

    def start_web(self, timeout=30):
        """Start gunicorn and wait until /readyz says ready."""
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        self.web = Process(f"web-{len(list(self.log_dir.glob('web-*')))}", command, self.env, self.log_dir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.web.popen.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.web.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not become ready:\n{self.web.output()}")

    def start_worker(self, timeout=60):
        """Start a Celery worker and wait until it says it is ready."""
        name = f"worker{len(self.workers)}-{self.port}"
        command = [
            sys.executable, "-m", "celery", "-A", "celery_worker", "worker",
            "--loglevel=INFO", "--concurrency=2", f"--hostname={name}@%h",
        ]  # fmt: skip
        worker = Process(name, command, self.env, self.log_dir)
        self.workers.append(worker)
        deadline = time.monotonic() + timeout
        while " ready." not in worker.output():
            if worker.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{worker.output()}")
            time.sleep(0.1)
        return worker

    def stop(self):
        """Stop every process this stack started."""
        for process in [self.web, *self.workers]:
            if process is not None:
                process.stop()
