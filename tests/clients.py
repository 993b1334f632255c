"""Python Socket.IO and HTTP clients for the integration tests, written from protocol.md.

SocketClient records raw events; ChatMember and JobWatcher record what a person would
see, with protocol v2's gap handling (seq per room, version per job, resync, join retry).
"""

import collections
import heapq
import itertools
import json
import logging
import queue
import random
import socket
import threading
import time
from urllib.parse import urlsplit

import engineio
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


# --- Clients that record what a person sees, with protocol v2's gap handling (notes/spec-v2.md) ---

RETRYABLE_CODES = frozenset({"unavailable", "internal", "rate_limited"})  # worth asking again
FINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
CALL_TIMEOUT = 10
# Engine.IO's HTTP requests (a polling POST carries events whose handlers it waits for);
# engineio's 5 s gives up on a server that is only busy, as in a reconnect storm.
REQUEST_TIMEOUT = 15
# engineio's own logger prints to stderr; the transport errors these clients recover from
# go to the test's log capture instead (pytest shows it when a test fails).
ENGINEIO_LOG = logging.getLogger("tests.clients.engineio")


class InOrderEngineIOClient(engineio.Client):
    """An Engine.IO client that handles each message in its read loop, in arrival order.

    engineio.Client starts a thread per message, so two quick events may be handled
    out of order; a browser handles them in order, and so must a client that records
    what a person sees.
    """

    def _trigger_event(self, event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)

    def _send_request(self, method, url, headers=None, body=None, timeout=None):
        answer = super()._send_request(method, url, headers=headers, body=body, timeout=timeout)
        if method == "POST" and (answer is None or isinstance(answer, str) or not 200 <= answer.status_code < 300):
            self.post_failed = True
        return answer

    def _reset(self):
        # engineio drops its requests session without closing it: its sockets would be
        # closed by the garbage collector, with a ResourceWarning (an error in this suite).
        http = self.http
        super()._reset()
        if http is not None and self.http is None:
            http.close()

    def _read_loop_websocket(self):
        ws = self.ws
        try:
            super()._read_loop_websocket()
        finally:
            if ws is not None:  # ended by an error, engineio leaves the socket open
                ws.shutdown()

    def _write_loop(self):
        self.post_failed = False
        super()._write_loop()
        # engineio's write loop ends when a POST fails (or times out) and leaves the
        # connection up, unable to send for good; a page takes it as a transport error.
        if self.post_failed and self.state == "connected":
            self.disconnect(abort=True, reason=self.reason.TRANSPORT_ERROR)


class InOrderClient(socketio.Client):
    """A Socket.IO client whose handlers run one at a time, in arrival order; they must not block."""

    def _engineio_client_class(self):
        return InOrderEngineIOClient

    def _handle_disconnect(self, namespace):
        # It ends the Engine.IO connection and waits for the read loop: not from inside it.
        self.start_background_task(super()._handle_disconnect, namespace)

    def _handle_eio_disconnect(self, reason):
        connecting = not self.connected
        super()._handle_eio_disconnect(reason)
        if connecting and self._connect_event is not None:
            # connect() waits wait_timeout for its namespaces even when the connection
            # is gone already (a process shutting down accepts, then closes): fail it now.
            self.failed_namespaces = [n for n in self.connection_namespaces if n not in self.namespaces]
            self._connect_event.set()


def backoff(delay, maximum):
    """Return the next delay of a doubling backoff."""
    return min(delay * 2, maximum)


class ReconnectingSocket:
    """One person's connection to one namespace, kept up the way the page keeps it.

    Event handlers only record and schedule; one worker thread runs the slow work
    (connecting, joining, fetching) one task at a time, so state changes stay simple.
    Every connection gets a generation: events and tasks of an older one are ignored.
    """

    def __init__(self, urls, token, transport, namespace, name, seed=0):
        self.urls = list(urls)  # home first, then where to fail over to
        self.token, self.transport, self.namespace, self.name = token, transport, namespace, name
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.wakeup = threading.Condition(self.lock)
        self.sio = None  # the current connection while it is up
        self.url = None  # where it goes
        self.generation = 0
        self.closed = False
        self.abandoned = []  # clients given up by abandon()
        self.counts = collections.Counter()  # connects, drops, join_retries, fills, resyncs...
        self.log = collections.deque(maxlen=200)  # what happened, for a failing test's message
        self._tasks = []  # heap of (due, n, key, function, args)
        self._pending = set()  # keys of scheduled tasks (one at a time per key)
        self._task_numbers = itertools.count()
        self.reconnect_delay_max = 2.0
        self._connect_delay = 0.1
        self._failed_connects = 0
        self._thread = threading.Thread(target=self._run, name=f"socket-{name}", daemon=True)
        self._thread.start()

    # --- the worker ---

    def schedule(self, key, function, *args, delay=0.0):
        """Run function(*args) on the worker thread after delay, unless a task of that key is pending."""
        with self.lock:
            if key in self._pending or self.closed:
                return
            self._pending.add(key)
            heapq.heappush(self._tasks, (time.monotonic() + delay, next(self._task_numbers), key, function, args))
            self.wakeup.notify()

    def _run(self):
        while True:
            with self.lock:
                while not self.closed and (not self._tasks or self._tasks[0][0] > time.monotonic()):
                    self.wakeup.wait(timeout=(self._tasks[0][0] - time.monotonic()) if self._tasks else None)
                if self.closed:
                    return
                _, _, key, function, args = heapq.heappop(self._tasks)
                self._pending.discard(key)
            try:
                function(*args)
            except Exception as error:  # a bug here must show in the test, not kill the worker
                self.note(f"task {key} raised {error!r}")
                self.counts["task_errors"] += 1

    def note(self, text):
        """Record what happened, with a timestamp."""
        self.log.append(f"{time.monotonic():.3f} {text}")

    # --- connecting ---

    def connect(self, timeout=30):
        """Start connecting and wait until connected; return self."""
        self.schedule("connect", self._connect)
        self.wait_connected(timeout)
        return self

    def wait_connected(self, timeout=30):
        """Wait until a connection is up."""
        deadline = time.monotonic() + timeout
        while self.sio is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not connect within {timeout} s: {list(self.log)[-5:]}")
            time.sleep(0.02)

    def _next_url(self):
        # Home first; after two failures in a row, take turns with the others (a balancer's failover).
        if self._failed_connects < 2 or len(self.urls) == 1:
            return self.urls[0]
        return self.urls[(self._failed_connects - 1) % len(self.urls)]

    def _connect(self):
        with self.lock:
            if self.closed or self.sio is not None:
                return
            self.generation += 1
            generation = self.generation
        url = self._next_url()
        sio = InOrderClient(reconnection=False, request_timeout=REQUEST_TIMEOUT, engineio_logger=ENGINEIO_LOG)
        self.register_handlers(sio, generation)
        sio.on("disconnect", lambda *args: self._dropped(generation, args), namespace=self.namespace)
        try:
            sio.connect(
                url,
                namespaces=[self.namespace],
                auth={"token": self.token},
                transports=[self.transport],
                wait_timeout=10,
            )
            if sio.eio.state != "connected" or self.namespace not in sio.namespaces:
                # python-socketio forgets a drop between its namespace's connect and the end of
                # connect() (no disconnect event follows): a process shutting down does that.
                raise ConnectionError("the connection closed as it opened")
        except Exception as error:
            self._failed_connects += 1
            self.counts["failed_connects"] += 1
            self.note(f"connect to {url} failed: {error!r}")
            delay = min(self._connect_delay, self.reconnect_delay_max)
            self._connect_delay = backoff(self._connect_delay, self.reconnect_delay_max)
            self._abandon_client(sio)
            self.schedule("connect", self._connect, delay=delay * (0.5 + self.rng.random()))
            return
        with self.lock:
            if generation != self.generation or self.closed:  # closed or dropped meanwhile
                self._abandon_client(sio)
                return
            self.sio, self.url = sio, url
            self._connect_delay, self._failed_connects = 0.1, 0
        self.counts["connects"] += 1
        self.note(f"connected to {url} ({sio.transport()}, sid {sio.get_sid(self.namespace)})")
        self.connected(generation)

    def _abandon_client(self, sio):
        """Forget a client without waiting for it (its threads end when its sockets do)."""
        try:
            sio.eio.disconnect(abort=True)
        except Exception:  # already gone
            pass

    def _dropped(self, generation, args):
        with self.lock:
            if generation != self.generation or self.closed:
                return
            self.generation += 1  # anything still running for the dead connection is stale now
            self.sio = None
        self.counts["drops"] += 1
        self.note(f"connection dropped {args}")
        self.schedule("connect", self._connect, delay=0.1 + 0.2 * self.rng.random())

    def abandon(self):
        """Give up the current connection without a word to the server (its network died); connect again."""
        with self.lock:
            self.generation += 1
            if self.sio is not None:
                self.abandoned.append(self.sio)  # left as it is until close()
            self.sio = None
        self.counts["abandoned"] += 1
        self.note("abandoned the connection")
        self.schedule("connect", self._connect)

    def current(self, generation=None):
        """Return the live client (of that generation, if given), or None."""
        with self.lock:
            if self.sio is None or (generation is not None and generation != self.generation):
                return None
            return self.sio

    def call(self, event, payload, generation=None, timeout=CALL_TIMEOUT):
        """Emit with an ack on the current connection; return the ack, or None if it is down, drops or times out."""
        with self.lock:
            sio = self.current(generation)
            generation = self.generation
        if sio is None:
            return None
        answered = threading.Event()
        answer = []

        def take(*args):
            answer.append(args[0] if len(args) == 1 else list(args))
            answered.set()

        try:
            sio.emit(event, payload, namespace=self.namespace, callback=take)
        except socketio.exceptions.SocketIOError as error:
            self.note(f"{event} not sent: {error!r}")
            return None
        deadline = time.monotonic() + timeout
        # python-socketio's call() waits out its timeout when the connection drops; a page does not.
        while not answered.wait(0.05):
            if self.generation != generation:
                self.note(f"{event}: the connection dropped before its ack")
                return None
            if time.monotonic() > deadline:
                self.note(f"{event} got no ack within {timeout} s")
                return None
        return answer[0]

    def close(self):
        """Disconnect for good and stop the worker."""
        with self.lock:
            self.closed = True
            self.generation += 1
            sio, self.sio = self.sio, None
            self.wakeup.notify()
        if sio is not None:
            try:
                sio.disconnect()
            except Exception:
                self._abandon_client(sio)
        for old in self.abandoned:
            self._abandon_client(old)
        self._thread.join(timeout=10)

    # --- for subclasses ---

    def register_handlers(self, sio, generation):
        """Attach the namespace's event handlers to a new client."""

    def connected(self, generation):
        """A new connection is up: follow again what the person follows."""


class RoomView:
    """What one member shows of one room: messages in seq order, each once."""

    def __init__(self, name):
        self.name = name
        self.shown = []  # messages, in the order shown
        self.last_seq = None  # the highest seq shown; None before the first join answered
        self.newest_known = 0  # the highest seq the server said the room has
        self.buffer = {}  # seq -> (message, how it came) that came before the messages it follows
        self.via = {}  # seq -> how the shown message came: live, join, history or send (its ack)
        self.joined_generation = None
        self.join_delay = 0.5
        self.fill_delay = 0.2
        self.join_error = None  # a join refused for good

    def shown_seqs(self):
        """Return the seqs shown, in order."""
        return [message["seq"] for message in self.shown]

    def hole(self):
        """Tell whether messages are missing after last_seq."""
        return self.last_seq is not None and (bool(self.buffer) or self.newest_known > self.last_seq)


class ChatMember(ReconnectingSocket):
    """A person on /chat who shows every message of their rooms once, in seq order (spec-v2 gap handling).

    Per room it keeps last_seq; a message right after it is shown (then what waited for
    it), an older one dropped, a later one buffered while `history since_seq` fills the
    hole. It joins with backoff until a join works, and after every reconnect or
    `resync` joins again with since_seq.
    """

    def __init__(self, urls, token, transport, name, seed=0):
        self.rooms = {}  # name -> RoomView
        super().__init__(urls, token, transport, "/chat", name, seed)

    def register_handlers(self, sio, generation):
        sio.on("message", lambda message: self._on_message(generation, message), namespace="/chat")
        sio.on("resync", lambda data: self._on_resync(generation, data), namespace="/chat")

    def connected(self, generation):
        for room in list(self.rooms):
            self.schedule(f"join:{room}", self._join, room, generation)

    def join(self, room):
        """Follow a room from now on (joining now and after every reconnect)."""
        with self.lock:
            self.rooms.setdefault(room, RoomView(room))
            generation = self.generation
        self.schedule(f"join:{room}", self._join, room, generation)

    def wait_joined(self, room, timeout=30):
        """Wait until the current connection has joined the room."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                view = self.rooms[room]
                if view.join_error:
                    raise AssertionError(f"{self.name} could not join {room}: {view.join_error}")
                if self.sio is not None and view.joined_generation == self.generation:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not join {room} within {timeout} s: {list(self.log)[-5:]}")
            time.sleep(0.02)

    def in_room(self, room):
        """Tell whether the current connection is up and has joined the room."""
        with self.lock:
            return self.sio is not None and self.rooms[room].joined_generation == self.generation

    def shown_via(self, room, seq):
        """Return how the shown message of that seq came (live, join, history, send), or None."""
        with self.lock:
            return self.rooms[room].via.get(seq)

    def shown(self, room):
        """Return the messages shown in a room, in order."""
        with self.lock:
            return list(self.rooms[room].shown)

    def _join(self, room, generation):
        with self.lock:
            view = self.rooms[room]
            if generation != self.generation:
                return  # that connection is gone; the next one joins
            payload = {"room": room} if view.last_seq is None else {"room": room, "since_seq": view.last_seq}
        self.counts["joins"] += 1
        ack = self.call("join", payload, generation)
        with self.lock:
            if generation != self.generation:
                return
            if ack is None or (not ack.get("ok") and ack["error"]["code"] in RETRYABLE_CODES):
                # spec-v2: a failed join leaves us out of the room; retry with backoff while connected.
                self.counts["join_retries"] += 1
                delay, view.join_delay = view.join_delay, backoff(view.join_delay, 5.0)
                self.note(f"join {room} failed ({ack}); again in {delay} s")
                self.schedule(f"join:{room}", self._join, room, generation, delay=delay)
                return
            if not ack.get("ok"):
                view.join_error = ack["error"]
                self.note(f"join {room} refused: {ack}")
                return
            view.join_delay = 0.5
            view.joined_generation = generation
            view.newest_known = max(view.newest_known, ack.get("last_seq", 0))
            if view.last_seq is None:  # a first join without a cursor: show what it gives
                for message in ack["messages"]:
                    self._show(view, message, "join")
                if view.last_seq is None:
                    view.last_seq = ack.get("last_seq", 0)
                self._flush(view)
            else:
                self._take_all(view, ack["messages"], "join")
            if ack.get("more"):
                view.newest_known = max(view.newest_known, view.last_seq + 1)
            self._fill_if_needed(view, generation)

    def _on_message(self, generation, message):
        with self.lock:
            if generation != self.generation or message.get("room") not in self.rooms:
                return
            view = self.rooms[message["room"]]
            self._take(view, message, "live")
            self._fill_if_needed(view, generation)

    def _on_resync(self, generation, data):
        self.counts["resyncs"] += 1
        self.note(f"resync {data}")
        with self.lock:
            if generation != self.generation:
                return
        for room in list(self.rooms):
            self.schedule(f"join:{room}", self._join, room, generation)

    def _take_all(self, view, messages, via):
        for message in sorted(messages, key=lambda m: m["seq"]):
            self._take(view, message, via)

    def _take(self, view, message, via):
        """The spec-v2 rule: drop what is shown, show what follows, buffer what comes early."""
        seq = message["seq"]
        view.newest_known = max(view.newest_known, seq)
        if view.last_seq is None:  # not joined yet: the join's answer decides
            view.buffer[seq] = (message, via)
        elif seq <= view.last_seq:
            self.counts["duplicates_dropped"] += 1
        elif seq == view.last_seq + 1:
            self._show(view, message, via)
            self._flush(view)
        else:
            view.buffer[seq] = (message, via)

    def _show(self, view, message, via):
        view.shown.append(message)
        view.via[message["seq"]] = via
        view.last_seq = message["seq"]

    def _flush(self, view):
        for seq in sorted(view.buffer):
            if seq <= view.last_seq:
                del view.buffer[seq]
            elif seq == view.last_seq + 1:
                self._show(view, *view.buffer.pop(seq))
            else:
                break

    def _fill_if_needed(self, view, generation, delay=0.0):
        if view.hole() and view.joined_generation == generation:
            self.schedule(f"fill:{view.name}", self._fill, view.name, generation, delay=delay)

    def _fill(self, room, generation):
        with self.lock:
            view = self.rooms[room]
            if generation != self.generation or not view.hole():
                return
            since = view.last_seq
        self.counts["fills"] += 1
        ack = self.call("history", {"room": room, "since_seq": since, "limit": 100}, generation)
        with self.lock:
            if generation != self.generation:
                return
            if ack is None or not ack.get("ok"):
                self.note(f"history since_seq {since} in {room} failed: {ack}")
                delay, view.fill_delay = view.fill_delay, backoff(view.fill_delay, 2.0)
                self._fill_if_needed(view, generation, delay)
                return
            view.newest_known = max(view.newest_known, ack.get("last_seq", 0))
            self._take_all(view, ack["messages"], "history")
            if ack["messages"]:
                view.fill_delay = 0.2
                self._fill_if_needed(view, generation)
            else:  # nothing newer yet, though something said there is: look again shortly
                delay, view.fill_delay = view.fill_delay, backoff(view.fill_delay, 2.0)
                self._fill_if_needed(view, generation, delay)

    def send(self, room, text, client_id, timeout=30):
        """Send until acknowledged (a retry with the same client_id stores nothing new); return the message."""
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            ack = self.call("send", {"room": room, "text": text, "client_id": client_id}, timeout=5)
            if ack is not None and ack.get("ok"):
                with self.lock:
                    if room in self.rooms:  # the ack's message is shown by the same rule
                        view = self.rooms[room]
                        self._take(view, ack["message"], "send")
                        self._fill_if_needed(view, self.generation)
                return ack["message"]
            if ack is not None and ack["error"]["code"] not in RETRYABLE_CODES:
                raise AssertionError(f"{self.name}: send refused: {ack}")
            self.counts["send_retries"] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: send {client_id} not acknowledged within {timeout} s: {ack}")
            time.sleep(delay)
            delay = backoff(delay, 1.0)


class JobView:
    """What one watcher shows of one job: its state at the newest version applied."""

    def __init__(self, job_id):
        self.job_id = job_id
        self.version = None
        self.status = None
        self.progress = None
        self.applied = []  # (version, status, progress) in the order applied

    def apply(self, version, **state):
        for name, value in state.items():
            setattr(self, name, value)
        self.version = version
        self.applied.append((version, self.status, self.progress))

    @property
    def finished(self):
        return self.status in FINAL_JOB_STATUSES


class JobWatcher(ReconnectingSocket):
    """A person following jobs on /jobs, applying each change once, in version order (spec-v2).

    An event one version past the known one is applied; an older one dropped; a jump
    means something was missed, so it watches the job again and takes the ack's job.
    """

    def __init__(self, urls, token, transport, name, seed=0):
        self.jobs = {}  # job id -> JobView
        self.early = collections.defaultdict(list)  # job id -> events that came before start's ack
        super().__init__(urls, token, transport, "/jobs", name, seed)

    def register_handlers(self, sio, generation):
        sio.on("progress", lambda data: self._on_change(generation, data, "progress"), namespace="/jobs")
        sio.on("done", lambda data: self._on_change(generation, data, "done"), namespace="/jobs")
        sio.on("resync", lambda data: self._on_resync(generation, data), namespace="/jobs")

    def connected(self, generation):
        self._watch_unfinished(generation)

    def _watch_unfinished(self, generation):
        for job_id, view in list(self.jobs.items()):
            if not view.finished:
                self.schedule(f"watch:{job_id}", self._watch, job_id, generation)

    def start(self, kind, params, room=None, timeout=30):
        """Start a job (once: a start is not safe to repeat) and follow it; return the ack's job."""
        deadline = time.monotonic() + timeout
        while self.current() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        payload = {"kind": kind, "params": params, **({"room": room} if room else {})}
        ack = self.call("start", payload)
        assert ack is not None and ack.get("ok"), f"{self.name}: start {payload} answered {ack}"
        with self.lock:
            view = self.jobs.setdefault(ack["job"]["id"], JobView(ack["job"]["id"]))
            self._take_job(view, ack["job"])
            early = self.early.pop(view.job_id, [])
        for generation, data, event in early:
            self._on_change(generation, data, event)
        return ack["job"]

    def watch(self, job_id):
        """Follow a job from now on (watching it now and after every reconnect)."""
        with self.lock:
            self.jobs.setdefault(job_id, JobView(job_id))
            generation = self.generation
        self.schedule(f"watch:{job_id}", self._watch, job_id, generation)

    def job(self, job_id):
        """Return the job's view."""
        with self.lock:
            return self.jobs[job_id]

    def _watch(self, job_id, generation):
        if self.current(generation) is None:
            return  # the next connection watches again
        self.counts["watches"] += 1
        ack = self.call("watch", {"job_id": job_id}, generation)
        with self.lock:
            if generation != self.generation:
                return
            if ack is None or not ack.get("ok"):
                self.counts["watch_retries"] += 1
                self.note(f"watch {job_id} failed: {ack}")
                self.schedule(f"watch:{job_id}", self._watch, job_id, generation, delay=0.5)
                return
            self._take_job(self.jobs[job_id], ack["job"])

    def _take_job(self, view, job):
        if view.version is None or job["version"] > view.version:
            view.apply(job["version"], status=job["status"], progress=job["progress"])

    def _on_change(self, generation, data, event):
        with self.lock:
            view = self.jobs.get(data.get("job_id"))
            if generation != self.generation:
                return
            if view is None:  # a job being started: its ack is on the way
                self.early[data.get("job_id")].append((generation, data, event))
                return
            version = data["version"]
            if view.version is not None and version <= view.version:
                self.counts["stale_events_dropped"] += 1
            elif view.version is not None and version == view.version + 1:
                if event == "progress":  # status changes come with done, or a watch's job
                    view.apply(version, progress=data["progress"])
                else:
                    view.apply(version, status=data["status"])
            else:  # a jump (or not known yet): the stored job is the truth
                self.counts["version_jumps"] += 1
                self.note(f"job {view.job_id}: {event} version {version} after {view.version}; watching again")
                self.schedule(f"watch:{view.job_id}", self._watch, view.job_id, generation)

    def _on_resync(self, generation, data):
        self.counts["resyncs"] += 1
        self.note(f"resync {data}")
        self._watch_unfinished(generation)


class StalledPolling:
    """A /chat client on Engine.IO long-polling that joins a room, then never polls again; it still answers pings."""

    def __init__(self, base_url, token, room):
        self.http = requests.Session()
        endpoint = f"{base_url}/socket.io/?EIO=4&transport=polling"
        opened = self.http.get(endpoint, timeout=10)
        assert opened.status_code == 200 and opened.text.startswith("0{"), opened.text
        self.sid = json.loads(opened.text[1:])["sid"]
        self.url = f"{endpoint}&sid={self.sid}"
        self.post("40/chat," + json.dumps({"token": token}))
        assert self._poll_until("40/chat,").startswith("40/chat,{")
        self.post("42/chat,1" + json.dumps(["join", {"room": room}]))
        (self.join_ack,) = json.loads(self._poll_until("43/chat,1").removeprefix("43/chat,1"))
        assert self.join_ack["ok"], self.join_ack
        self.stopped = threading.Event()
        self.refused = threading.Event()
        self.thread = threading.Thread(target=self._answer_pings, daemon=True)
        self.thread.start()

    def post(self, packets):
        """POST one Engine.IO packet; return the response."""
        return self.http.post(self.url, data=packets.encode(), timeout=10)

    def _poll_until(self, prefix, polls=20):
        """GET until a packet starting with prefix arrives (within `polls` GETs)."""
        for _ in range(polls):
            response = self.http.get(self.url, timeout=10)
            assert response.status_code == 200, response.text
            for packet in response.text.split("\x1e"):
                if packet.startswith(prefix):
                    return packet
        raise AssertionError(f"no {prefix!r} packet within {polls} polls")

    def _answer_pings(self):
        for _ in range(300):  # at most five minutes
            if self.stopped.wait(1.0):
                return
            if self.post("3").status_code != 200:
                self.refused.set()  # the server no longer knows this session
                return

    def session_known(self):
        """Tell whether the server still answers this session (a POST of a PONG)."""
        return self.post("3").status_code == 200

    def close(self):
        """Stop answering pings and close the HTTP connection."""
        self.stopped.set()
        self.thread.join(timeout=5)
        self.http.close()
