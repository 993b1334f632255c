"""Python Socket.IO and HTTP clients for the integration tests, written from protocol.md."""

import queue
import time

import requests
import socketio


def register(base_url, username, password="correct horse"):
    """Create a user over HTTP and return its token."""
    response = requests.post(f"{base_url}/api/users", json={"username": username, "password": password}, timeout=10)
    assert response.status_code == 201, response.text
    response = requests.post(f"{base_url}/api/tokens", json={"username": username, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


class SocketClient:
    """One Socket.IO connection to one namespace, recording every server event."""

    def __init__(self, base_url, token, transport, namespace="/chat", reconnection=False, headers=None):
        self.base_url, self.token, self.transport, self.namespace = base_url, token, transport, namespace
        self.headers = headers or {}
        self.sio = socketio.Client(reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=1)
        self.events = queue.Queue()
        self.sio.on("*", lambda event, data: self.events.put((event, data)), namespace=namespace)
        self.sio.on("connect_error", lambda data: self.events.put(("connect_error", data)), namespace=namespace)

    def connect(self):
        """Connect, authenticating with the token; return self."""
        self.sio.connect(
            self.base_url,
            namespaces=[self.namespace],
            auth={"token": self.token} if self.token else None,
            transports=[self.transport],
            headers=self.headers,
            wait_timeout=10,
        )
        return self

    def call(self, event, payload, timeout=10):
        """Emit an event and return its ack."""
        return self.sio.call(event, payload, namespace=self.namespace, timeout=timeout)

    def wait_for(self, event, predicate=lambda data: True, timeout=10):
        """Return the first recorded event of that name whose data matches; fail after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                name, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {event} event within {timeout} s") from None
            if name == event and predicate(data):
                return data

    def drain(self, event, seconds=0.5):
        """Return every event of that name that arrives within the next few seconds."""
        found = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                name, data = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if name == event:
                found.append(data)
        return found

    def close(self):
        """Disconnect if connected."""
        if self.sio.connected:
            self.sio.disconnect()
