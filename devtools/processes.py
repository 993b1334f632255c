"""Child processes for the tests and the benchmark: each in its own process group, its output in a log file."""

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Process:
    """A child started in a process group of its own, so stopping it stops everything it started."""

    def __init__(self, name, command, env, log_dir, **popen_options):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "ab")  # closed in stop()
        self.popen = subprocess.Popen(
            command, env=env, cwd=popen_options.pop("cwd", PROJECT_ROOT), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True, **popen_options,
        )  # fmt: skip

    def output(self):
        """Return what the process has logged so far."""
        return self.log_path.read_text(errors="replace")

    def child_pids(self):
        """Return the pids of the process's children (gunicorn's workers, Celery's pool)."""
        with open(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children") as children:
            return [int(pid) for pid in children.read().split()]

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

    def wait_for_url(self, url, timeout=30):
        """Wait until url answers 200; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.output()[-3000:]}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening, or still starting
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready:\n{self.output()[-3000:]}")

    def wait_for_output(self, text, timeout=60):
        """Wait until the process logs text; fail, with the log, if it exits or time runs out."""
        deadline = time.monotonic() + timeout
        while text not in (output := self.output()):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {text!r}:\n{output[-3000:]}")
            time.sleep(0.1)
