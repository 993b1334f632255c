"""`make run`: Redis (embedded unless REDIS_URL is set), migrations, gunicorn and a Celery worker."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

from devtools.embedded_redis import EmbeddedRedis

PYTHON = sys.executable


def start(name, command, env):
    """Start one child process in its own process group."""
    print(f"roomcast: starting {name}: {' '.join(command)}", flush=True)
    return subprocess.Popen(command, env=env, start_new_session=True)


def stop(processes):
    """Stop our children by the process groups we started: SIGTERM, then SIGKILL."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 25
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_ready(url, web, seconds=60):
    """Poll /readyz until it answers 200, the web server exits, or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and web.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}readyz", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def main():
    """Run everything until Ctrl-C or until one part dies."""
    env = dict(os.environ)
    env.setdefault("LOG_FORMAT", "text")  # readable lines in a terminal; production logs JSON
    # The Socket.IO Admin UI at /admin/, for the users made admins (README); production leaves it off.
    env.setdefault("ADMIN_UI", "1")
    redis_server = None
    if not env.get("REDIS_URL"):
        redis_server = EmbeddedRedis().start()
        env["REDIS_URL"] = redis_server.url
        print(f"roomcast: embedded Redis at {redis_server.url}", flush=True)
    processes = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C stops everything, even when a shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        subprocess.run([PYTHON, "-m", "flask", "--app", "app", "db", "upgrade"], env=env, check=True)
        processes.append(start("web", [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py"], env))
        celery = [PYTHON, "-m", "celery", "-A", "celery_worker", "worker", "--loglevel=INFO"]
        processes.append(start("worker", celery, env))
        address = env.get("BIND") or f"{env.get('HOST', '127.0.0.1')}:{env.get('PORT', '8000')}"
        url = f"http://{address}/"
        if wait_until_ready(url, processes[0]):
            print(f"\nroomcast: open {url}  (Ctrl-C stops)\n", flush=True)
            if env["ADMIN_UI"].strip().lower() in ("1", "true", "yes", "on"):
                print(f"roomcast: the Socket.IO Admin UI, for admins (README): {url}admin/\n", flush=True)
        else:
            print(f"roomcast: {url}readyz did not answer yet; see the log above", file=sys.stderr)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("roomcast: a process exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)
        if redis_server is not None:
            redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
