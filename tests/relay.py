"""A loopback TCP relay whose connections the tests can cut silently or reset, as a failing network does."""

import selectors
import socket
import struct
import threading

from devtools.embedded_redis import free_port


class Link:
    """One relayed connection: the client's socket, the server's, and what each side has yet to take."""

    def __init__(self, client, server):
        self.client, self.server = client, server
        self.pending = {client: bytearray(), server: bytearray()}  # bytes waiting to be written to that socket
        self.cut = False

    def peer(self, sock):
        return self.server if sock is self.client else self.client


class LoopbackRelay:
    """Listen on a free loopback port and relay each connection to target_port, on one thread.

    cut(): the connections open now go silent both ways, and stay open: neither
    side gets a FIN or a RST, as when a network path dies. reset(): they end with
    a RST at both ends, as when a NAT or a mobile network drops them. New
    connections are relayed as usual either way.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.links = {}  # socket -> Link
        self.silenced = []  # sockets of cut connections, closed only by close()
        self.requests = []  # functions the relay thread runs next (cut, reset, close)
        self.lock = threading.Lock()
        self.waker_r, self.waker_w = socket.socketpair()
        self.selector.register(self.waker_r, selectors.EVENT_READ)
        self.running = True
        self.thread = threading.Thread(target=self._run, name=f"relay-{self.port}", daemon=True)
        self.thread.start()

    def cut(self):
        """Silence every open connection for good, keeping it open."""
        self._ask(self._cut_all)

    def reset(self):
        """End every open connection with a RST to both sides."""
        self._ask(self._reset_all)

    def close(self):
        """Stop relaying and close everything."""
        self._ask(self._close_all)
        self.thread.join(timeout=10)

    def _ask(self, function):
        done = threading.Event()
        with self.lock:
            self.requests.append((function, done))
        self.waker_w.send(b"x")
        done.wait(timeout=10)

    def _run(self):
        while self.running:
            for key, mask in self.selector.select(timeout=1):
                sock = key.fileobj
                if sock is self.listener:
                    self._accept()
                elif sock is self.waker_r:
                    sock.recv(4096)
                    with self.lock:
                        requests, self.requests = self.requests, []
                    for function, done in requests:
                        function()
                        done.set()
                    if not self.running:
                        return
                elif sock in self.links:
                    if mask & selectors.EVENT_READ:
                        self._read(sock)
                    if sock in self.links and mask & selectors.EVENT_WRITE:
                        self._write(sock)

    def _accept(self):
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            self._abort(client)  # nothing listens there: refuse as a dead server would
            return
        link = Link(client, server)
        for sock in (client, server):
            sock.setblocking(False)
            self.links[sock] = link
            self.selector.register(sock, selectors.EVENT_READ)

    def _read(self, sock):
        link = self.links[sock]
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if link.cut:
            if not data:  # the side that gave up; the other never hears of it
                self._forget(sock)
            return  # what is sent into a dead path vanishes
        if not data:
            self._end(link)
            return
        link.pending[link.peer(sock)] += data
        self._write(link.peer(sock))

    def _write(self, sock):
        link = self.links[sock]
        buffer = link.pending[sock]
        try:
            sent = sock.send(buffer) if buffer else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self._end(link)
            return
        del buffer[:sent]
        self.selector.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if buffer else 0))

    def _end(self, link):
        """One side closed: close both (an orderly end, relayed)."""
        for sock in (link.client, link.server):
            self._forget(sock)
            sock.close()

    def _forget(self, sock):
        if self.links.pop(sock, None) is not None:
            self.selector.unregister(sock)

    def _abort(self, sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # with a zero linger: a RST, not a FIN

    def _cut_all(self):
        for link in set(self.links.values()):
            link.cut = True
            for sock in (link.client, link.server):
                link.pending[sock].clear()
                self.selector.modify(sock, selectors.EVENT_READ)
            self.silenced += [link.client, link.server]

    def _reset_all(self):
        for link in set(self.links.values()):
            for sock in (link.client, link.server):
                self._forget(sock)
                self._abort(sock)

    def _close_all(self):
        for sock in list(self.links):
            self._forget(sock)
            sock.close()
        for sock in self.silenced:
            sock.close()
        self.selector.close()
        self.listener.close()
        self.waker_r.close()
        self.waker_w.close()
        self.running = False
