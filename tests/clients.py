"""Python Socket.IO and HTTP clients for the integration tests, written from protocol.md."""

import queue
import socket
import time
from urllib.parse import urlsplit

import requests
import socketio
from requests.adapters import HTTPAdapter


def register(base_url, username, password="correct horse"):
    """Create a user over HTTP and return its token."""
    response = requests.post(f"{base_url}/api/users", json={"username": username, "password": password}, timeout=10)
    assert response.status_code == 201, response.text
    response = requests.post(f"{base_url}/api/tokens", json={"username": username, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def server_transports(base_url):
    """Return the transports the server accepts (GET /api/socketio), as a client following it does."""
    response = requests.get(f"{base_url}/api/socketio", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["transports"]


class SourceAddressAdapter(HTTPAdapter):
    """Send requests from a given loopback address (a load balancer hashing client addresses sees another client)."""

    def __init__(self, source_ip):
        self.source_ip = source_ip
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.source_ip, 0), **kwargs)


def session_from(source_ip):
    """Return a requests session whose connections come from source_ip."""
    session = requests.Session()
    session.mount("http://", SourceAddressAdapter(source_ip))
    return session


class SocketClient:
    """One Socket.IO connection to one namespace, recording every server event."""

    def __init__(self, base_url, token, transport, namespace="/chat", reconnection=False, headers=None, source_ip=None):
        self.base_url, self.token, self.transport, self.namespace = base_url, token, transport, namespace
        self.headers = headers or {}
        self.source_ip = source_ip
        options = {"http_session": session_from(source_ip)} if source_ip else {}
        self.sio = socketio.Client(
            reconnection=reconnection, reconnection_delay=0.2, reconnection_delay_max=1, **options
        )
        self.events = queue.Queue()
        self.sio.on("*", lambda event, data: self.events.put((event, data)), namespace=namespace)
        self.sio.on("connect_error", lambda data: self.events.put(("connect_error", data)), namespace=namespace)

    def connect(self):
        """Connect, authenticating with the token; return self."""
        if self.source_ip and self.transport == "websocket":  # (polling goes through http_session)
            # websocket-client cannot bind a source address; it takes a connected socket instead.
            url = urlsplit(self.base_url)
            sock = socket.create_connection((url.hostname, url.port), timeout=10, source_address=(self.source_ip, 0))
            self.sio.eio.websocket_extra_options = {"socket": sock}
        try:
            self.sio.connect(
                self.base_url,
                namespaces=[self.namespace],
                auth={"token": self.token} if self.token else None,
                # No transport given: follow the server's setting, as the page does.
                transports=[self.transport] if self.transport else server_transports(self.base_url),
                headers=self.headers,
                wait_timeout=10,
            )
        except Exception:
            if self.sio.eio.websocket_extra_options.get("socket"):
                self.sio.eio.websocket_extra_options.pop("socket").close()
            raise
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


def follow_to_the_end(client, job_id, timeout=30):
    """Collect a job's progress events until its done event; return (progress values, done)."""
    progress = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name, data = client.events.get(timeout=max(0.01, deadline - time.monotonic()))
        if name == "progress" and data["job_id"] == job_id:
            progress.append(data["progress"])
        if name == "done" and data["job_id"] == job_id:
            return progress, data
    raise AssertionError(f"job {job_id} did not end within {timeout} s; progress so far {progress}")
