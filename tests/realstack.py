"""Start the real stack for integration tests: gunicorn (GeventWebSocketWorker) and Celery."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from config import THROTTLES
from devtools.embedded_redis import free_port
from devtools.processes import PROJECT_ROOT, Process
from tests.databases import create_database, drop_database


def procfile_command(process_type, *extra_args):
    """Return the Procfile's command for a process type, with this environment's scripts."""
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process_type:
            program, *args = shlex.split(command)
            return [str(Path(sys.executable).parent / program), *args, *extra_args]
    raise KeyError(f"no {process_type} in the Procfile")


class Stack:
    """gunicorn process(es) + Celery worker(s) on a database and Redis, on free loopback ports."""

    def __init__(self, database_url, redis_url, log_dir, **env):
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SECRET_KEY": "integration-tests",
            "ROOMCAST_INSTANCE_PATH": str(log_dir / "instance"),
            "REDIS_KEY_PREFIX": f"roomcast-it-{self.port}:",
            # Every test registers users from 127.0.0.1; the throttle tests set their own limits.
            **dict.fromkeys(THROTTLES, "0"),
            **env,
        }
        # A None value removes a variable, to test the defaults.
        self.env = {name: value for name, value in self.env.items() if value is not None}
        # Each gunicorn process keeps metrics of its own, as on separate machines;
        # PROMETHEUS_MULTIPROC_DIR=None leaves the choice to gunicorn.conf.py.
        self.metrics_dir_per_process = "PROMETHEUS_MULTIPROC_DIR" not in env
        self.web = None  # the web process on self.port
        self.webs = []
        self.workers = []
        self.nginx = None

    def migrate(self):
        """Apply the migrations with the Procfile's release command, as a deployment does."""
        subprocess.run(procfile_command("release"), env=self.env, cwd=PROJECT_ROOT, check=True, capture_output=True)

    def start_web(self, port=None, timeout=30, app=None):
        """Start a gunicorn process (the Procfile's web) on port (default self.port); wait for /readyz.

        app: a WSGI app to serve instead of gunicorn.conf.py's wsgi_app ("module:variable").
        """
        port = port or self.port
        env = {**self.env, "PORT": str(port)}
        if self.metrics_dir_per_process:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.log_dir / f"metrics-{port}")
        command = procfile_command("web", *([app] if app else []))
        web = Process(f"web-{port}-{len(self.webs)}", command, env, self.log_dir)
        self.webs.append(web)
        if port == self.port:
            self.web = web
        web.wait_for_url(f"http://127.0.0.1:{port}/readyz", timeout)
        return web

    def start_worker(self, timeout=60):
        """Start a Celery worker (the Procfile's worker) and wait until it says it is ready."""
        name = f"worker{len(self.workers)}-{self.port}"
        command = procfile_command("worker", "--concurrency=2", f"--hostname={name}@%h")
        worker = Process(name, command, self.env, self.log_dir)
        self.workers.append(worker)
        worker.wait_for_output(" ready.", timeout)
        return worker

    def start_nginx(self, web_ports, timeout=30):
        """Put Debian's nginx, configured by deploy/nginx.conf, in front of web_ports; self.url goes through it."""
        self.nginx = Nginx(web_ports, self.log_dir)
        self.nginx.process.wait_for_url(f"{self.nginx.url}/healthz", timeout)
        self.url = self.nginx.url
        return self.nginx

    def stop(self):
        """Stop every process this stack started."""
        for process in [self.nginx and self.nginx.process, *self.webs, *self.workers]:
            if process is not None:
                process.stop()


@contextmanager
def running_stack(tmp_root, redis_url, label, **env):
    """Yield a Stack on a fresh, migrated database in a folder of its own; stop it and drop the database after."""
    log_dir = tmp_root / label
    log_dir.mkdir()
    stack = Stack(create_database(tmp_root, label), redis_url, log_dir, **env)
    try:
        stack.migrate()
        yield stack
    finally:
        stack.stop()
        drop_database(stack.env["DATABASE_URL"])


def nginx_binary():
    """Return the nginx program, or None."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


class Nginx:
    """nginx running deploy/nginx.conf, with the test's ports, in a folder of its own."""

    # Only the test's copy names the process that answered, so tests can tell where a client landed.
    UPSTREAM_HEADER = "add_header X-Upstream $upstream_addr always;"

    def __init__(self, web_ports, log_dir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = log_dir / f"nginx-{self.port}"
        for folder in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / "temp" / folder).mkdir(parents=True)
            (self.prefix / "temp" / folder).chmod(0o777)  # nginx's workers drop root privileges
        (self.prefix / "roomcast.conf").write_text(self.site(web_ports))
        (self.prefix / "nginx.conf").write_text(
            "daemon off;\n"
            "worker_processes 1;\n"
            f"pid {self.prefix}/nginx.pid;\n"
            f"error_log {self.prefix}/error.log info;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"    access_log {self.prefix}/access.log;\n"
            + "".join(
                f"    {kind}_temp_path {self.prefix}/temp/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f"    include {self.prefix}/roomcast.conf;\n"
            "}\n"
        )
        command = [
            nginx_binary(),
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "error.log"),
            "-c",
            str(self.prefix / "nginx.conf"),
        ]
        self.process = Process(f"nginx-{self.port}", command, os.environ, log_dir)

    def site(self, web_ports):
        """Return deploy/nginx.conf with the test's listen port and upstream servers."""
        text = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
        servers = re.findall(r"^ *server 127\.0\.0\.1:\d+ .*;$", text, flags=re.MULTILINE)
        assert len(servers) == len(web_ports), "deploy/nginx.conf should name one server line per web process"
        for line, port in zip(servers, web_ports, strict=True):
            text = text.replace(line, re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", line))
        assert text.count("listen 80;") == 1 and text.count("listen [::]:80;") == 1
        text = text.replace("    listen [::]:80;\n", "")  # loopback only
        return text.replace("listen 80;", f"listen 127.0.0.1:{self.port};\n    {self.UPSTREAM_HEADER}")
