"""Ops on the real stack: the Celery worker answers; metrics sum over several web processes."""

import re
import subprocess
import sys
import time

import pytest
import requests

from tests.clients import SocketClient, register
from tests.realstack import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_the_celery_worker_answers_a_ping(stack):
    command = [sys.executable, "-m", "celery", "-A", "celery_worker", "inspect", "ping", "--timeout", "10"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=stack.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "pong" in done.stdout, done.stdout + done.stderr


def connected_clients(stack):
    """Read roomcast_connected_clients for /chat off /metrics."""
    text = requests.get(f"{stack.url}/metrics", timeout=5).text
    match = re.search(r'^roomcast_connected_clients\{namespace="/chat"\} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for_count(stack, expected, timeout=10):
    """Poll /metrics until it reports the expected count; return the readings seen."""
    readings = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readings.append(connected_clients(stack))
        if readings[-1] == expected:
            return readings
        time.sleep(0.1)
    raise AssertionError(f"expected {expected} connected clients, /metrics said {readings[-5:]}")


def test_metrics_sum_over_every_web_process(websocket_only_stack):
    stack = websocket_only_stack
    token = register(stack.url, "metrics_user")
    clients = [SocketClient(stack.url, token, "websocket").connect() for _ in range(8)]
    try:
        wait_for_count(stack, 8)
        # Each scrape lands on either process; every one must report the total.
        assert {connected_clients(stack) for _ in range(20)} == {8.0}
        lines = [line for line in stack.web.output().splitlines() if "Booting worker" in line]
        assert len(lines) == 2, "gunicorn did not start two workers"
    finally:
        for client in clients:
            client.close()
    wait_for_count(stack, 0)
