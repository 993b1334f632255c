"""Each client's Engine.IO socket: written without a greenlet while idle, its queue bounded, pings from a timer."""

import collections
import logging
import socket
import time

import gevent
import gevent.lock
import gevent.socket
from engineio import exceptions, packet
from engineio import socket as engineio_socket

from core.metrics import SLOW_CLIENTS_DROPPED

log = logging.getLogger(__name__)
PACKET_TYPES = frozenset("0123456")  # Engine.IO's, as a text frame's first character

# Why: Engine.IO keeps what the server sends a client in an unbounded queue per
# connection (Socket.queue). Its WebSocket writer greenlet moves the queue into
# the connection; once the client stops reading, the TCP window closes, the
# writer blocks in sendall for ever (gunicorn's sockets have no timeout) and the
# queue grows with every message of the client's rooms. A long-polling client that
# stops polling lets the queue grow the same way. python-engineio has no limit of
# its own (max_http_buffer_size bounds what clients send, not what they are sent).
#
# Why write from send(): engineio keeps a writer greenlet per WebSocket for the
# connection's life, about 8 KB of memory each (docs/benchmarks.md, "Memory per idle
# connection"), and every packet costs a switch to it. Here the sending greenlet hands
# the frame to the kernel without blocking; only what the kernel cannot take at once
# goes to a writer greenlet, which lives until the queue is empty again.


def bound_outboxes(server, max_pending_bytes):
    """Make each client's Engine.IO socket a BoundedSocket, disconnected past max_pending_bytes waiting (0: never)."""
    eio = server.eio
    handle_connect = eio.handlers["connect"]

    def bound_then_connect(eio_sid, environ):
        # Engine.IO makes each connection's Socket inside its request handler, with
        # no factory to override; the connect event comes right after, before the
        # connection sends anything but its open packet, so the Socket is bounded here.
        client = eio.sockets.get(eio_sid)
        if type(client) is engineio_socket.Socket:
            BoundedSocket.bound(client, max_pending_bytes, environ.get("REMOTE_ADDR"))
        return handle_connect(eio_sid, environ)

    eio.on("connect", bound_then_connect)


def encoded_size(pkt):
    """Return the length of a packet as Engine.IO writes it: a type digit and text, or raw bytes."""
    data = pkt.data
    if isinstance(data, str):
        return 1 + len(data)  # Socket.IO's JSON is ASCII: characters are bytes
    if isinstance(data, bytes | bytearray):
        return len(data)
    return len(pkt.encode())  # open, ping, noop, close: small, and encode() caches


class BoundedSocket(engineio_socket.Socket):
    """Engine.IO's Socket, writing straight to an idle WebSocket and dropping a client that lets too much wait."""

    @classmethod
    def bound(cls, client, max_pending_bytes, address):
        """Turn an Engine.IO Socket that has just connected into a BoundedSocket."""
        client.__class__ = cls
        client.max_pending_bytes = max_pending_bytes
        client.address = address
        client.pending_bytes = 0  # queued, or taken by the writer, and not yet written to the connection
        client.pending_sizes = collections.deque()  # the size of each of those packets, oldest first
        client.dropped = False
        client.connection = None  # the TCP socket under a WebSocket
        client.websocket = None  # while open, and ours to write to: send() writes to it when nothing waits
        client.writer = None  # the greenlet writing what could not be written at once
        client.write_lock = None  # held while a greenlet waits to write: the writer, or the reader's PONG or close

    def send(self, pkt):
        """Write a packet to the client, or queue it, or drop the client if too much is already waiting."""
        if self.dropped:
            return  # it is being disconnected: nothing more is kept for it
        if self.idle():
            if self.check_ping_timeout():
                self.write_now(pkt)
            return
        # The oldest packet, being written or next to be, does not count: a reader gets one
        # packet larger than the bound (a join's catch-up) as fast as it reads, and what
        # arrives meanwhile stays small. Only a client that stops reading lets data pile up
        # behind it. (Being written or not: on a busy machine the writer may not have taken
        # the catch-up yet when the next message comes.)
        if 0 < self.max_pending_bytes < self.waiting_bytes() and not (self.closing or self.closed):
            self.drop()
            return
        self.count_pending(encoded_size(pkt))
        super().send(pkt)
        if self.websocket is not None:
            self.start_writer()

    def idle(self):
        """Tell whether send() may write to the WebSocket itself: open, nothing waiting, nobody else writing."""
        if self.websocket is None or self.writer is not None:
            return False
        return not self.queue.qsize() and not self.write_lock.locked()

    def write_now(self, pkt):
        """Write a packet without blocking the sending greenlet: the kernel takes the frame, or a writer the rest."""
        frame = websocket_frame(pkt.encode())
        try:
            sent = self.connection._sock.send(frame)  # the non-blocking socket under gevent's
        except OSError:  # full (EAGAIN) or broken: the writer's sendall finds out which
            sent = 0
        if sent < len(frame):
            size = encoded_size(pkt)
            self.count_pending(size)
            self.writer = gevent.spawn(self.write_queued, memoryview(frame)[sent:], size)

    def count_pending(self, size):
        """Count a packet as waiting for the client until written() takes it off."""
        self.pending_bytes += size
        self.pending_sizes.append(size)

    def start_writer(self):
        """Start a greenlet to write what is queued, unless one is at it."""
        if self.writer is None:
            self.writer = gevent.spawn(self.write_queued)

    def write_queued(self, rest=None, size=0):
        """Write a frame's rest, then the queue until it is empty; at its end (None) or on an error, close."""
        websocket = self.websocket
        empty = self.server.get_queue_empty_exception()
        try:
            if rest is not None:
                with self.write_lock:
                    self.connection.sendall(rest)  # waits for the client to read: only this greenlet does
                self.written(size)
            while True:
                try:
                    pkt = self.queue.get(block=False)
                except empty:
                    return  # all written: send() writes by itself again
                self.queue.task_done()
                if pkt is None:
                    break
                websocket.send(pkt.encode())
        except Exception:  # noqa: BLE001 - a dead connection, which engineio's writer closes too
            self.discard_queued()  # nothing will write it: a close(wait=True) must not wait for it
        finally:
            self.writer = None
        self.websocket = None
        try:
            websocket.close()
        except Exception:  # noqa: BLE001 - the connection is gone either way
            pass

    def waiting_bytes(self):
        """Return the bytes held for the client behind the oldest packet."""
        return self.pending_bytes - (self.pending_sizes[0] if self.pending_sizes else 0)

    def schedule_ping(self):
        """Send the next PING after ping_interval, from a loop timer instead of a sleeping greenlet."""
        # engineio spawns a greenlet per connection that sleeps the whole interval: 2.5 KB of
        # saved C stack and a frame stack each, always there (docs/benchmarks.md, "Memory per
        # idle connection"). A timer costs a few hundred bytes; a greenlet lives only to send.
        if self.last_ping:
            self.last_ping = None
            timer = gevent.get_hub().loop.timer(self.server.ping_interval)
            timer.start(self._ping_due, timer)

    def _ping_due(self, timer):
        timer.close()
        # In the loop's callback nothing may block (send may drop the client): a greenlet sends.
        gevent.spawn(self._ping)

    def _ping(self):
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.send(packet.Packet(packet.PING))

    def poll(self):
        """Take the queued packets, for a long-polling response or the WebSocket writer."""
        packets = super().poll()
        # Long-polling: they leave in this response (if the client does not read it,
        # that one batch, at most the bound and a packet, waits in its handler).
        if not self.upgraded:
            for pkt in packets:
                self.written(encoded_size(pkt))
            if not packets and self.closed and not self.upgrading:
                # The session closed while this poll waited (the client's close packet):
                # engineio would answer an empty body; the protocol answers a noop.
                return [packet.Packet(packet.NOOP)]
        return packets

    def written(self, nbytes):
        """Take a packet that reached the connection (or its response) off the count."""
        # Never below zero: the open and upgrade packets were queued before the count began.
        self.pending_bytes = max(0, self.pending_bytes - nbytes)
        if self.pending_sizes:
            self.pending_sizes.popleft()

    def close(self, wait=True, abort=False, reason=None):
        """Close the session; a WebSocket's writer is started to write the CLOSE packet and end it."""
        if self.closed or self.closing:
            return
        super().close(wait=False, abort=abort, reason=reason)
        if self.websocket is not None:
            self.start_writer()
        if wait:
            self.queue.join()

    def _websocket_handler(self, ws):
        """Engine.IO's WebSocket transport, without its writer greenlet (engineio's own for other servers)."""
        self.connection = tcp_connection(ws)
        ws = CountingWebSocket(ws, self)
        if type(self.connection) is not gevent.socket.socket:  # simple-websocket's threads, or TLS: engineio's way
            return super()._websocket_handler(ws)
        self.write_lock = gevent.lock.Semaphore()
        websocket = ws.ws._sock  # gevent-websocket's, under engineio's wrapper
        websocket.raw_write = self.locked(websocket.raw_write)
        if self.connected:
            if not self.upgrade(ws):
                return []
        else:
            self.connected = self.upgraded = True
        self.websocket = ws
        if self.queue.qsize():  # sent while upgrading
            self.start_writer()
        while (frame := self.read(ws)) is not None:
            try:
                self.receive(packet.Packet(encoded_packet=frame))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                break
            except Exception:  # noqa: BLE001 - as engineio: log it and close the connection properly
                self.server.logger.exception("Unknown receive error")
                break
        self.queue.put(None)  # what is queued is written, then the WebSocket closed:
        if self.writer is not None:
            self.writer.join()  # by the writer at it,
        elif self.websocket is not None:
            self.write_queued()  # or here, the connection's greenlet having nothing else to do
        self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return []

    def locked(self, write):
        """Wrap gevent-websocket's raw write: the reader's PONGs and close frames must not interleave with ours."""

        def write_locked(data):
            with self.write_lock:
                return write(data)

        return write_locked

    def upgrade(self, ws):
        """Take a polling client's probe and upgrade packets, as engineio does; return whether it upgraded."""
        self.upgrading = True  # sends are held in the queue meanwhile
        try:
            frame = self.read(ws)
            probe = None if frame is None else packet.Packet(encoded_packet=frame)
            if probe is None or probe.packet_type != packet.PING or probe.data != "probe":
                return False
            ws.send(packet.Packet(packet.PONG, data="probe").encode())
            self.queue.put(packet.Packet(packet.NOOP))  # ends the client's pending poll
            upgrade = self.read(ws)
            if upgrade is None or packet.Packet(encoded_packet=upgrade).packet_type != packet.UPGRADE:
                return False
            self.upgraded = True
            return True
        except Exception:  # noqa: BLE001 - a closed connection or a packet that does not decode
            return False
        finally:
            self.upgrading = False

    def read(self, ws):
        """Return the client's next frame, or None once the connection is closed or the frame too large."""
        try:
            frame = ws.wait()
        except Exception:  # noqa: BLE001 - a reset connection, as engineio treats it
            return None
        if frame is not None and len(frame) > self.server.max_http_buffer_size:
            log.warning("closing websocket session %s (%s): a frame of %d bytes, over SOCKETIO_MAX_HTTP_BUFFER_SIZE",
                        self.sid, self.address, len(frame))  # fmt: skip
            return None
        return frame

    def handle_post_request(self, environ):
        """Take a long-polling POST; a body that is no Engine.IO payload closes the session with one log line."""
        try:
            super().handle_post_request(environ)
        except (ValueError, exceptions.EngineIOError) as error:
            self.refuse("polling", error)
            # Answered 400 by engineio, which would otherwise also wait for this
            # client to poll for a close packet, holding the request open.
            raise exceptions.EngineIOError() from None

    def refuse(self, transport, error):
        """Close the session of a client that sent something malformed, without waiting for it."""
        log.warning("closed %s session %s (%s): malformed packet: %s", transport, self.sid, self.address, error)
        self.close(wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT)
        self.server.sockets.pop(self.sid, None)

    def drop(self):
        """Disconnect the client for not reading: count it, log it, free its queue, close it."""
        self.dropped = True
        transport = "websocket" if self.upgraded else "polling"
        SLOW_CLIENTS_DROPPED.labels(transport).inc()
        log.warning(
            "disconnected slow client %s (%s, %s): %d bytes waiting for it, over SOCKET_MAX_PENDING_BYTES=%d",
            self.sid, transport, self.address, self.waiting_bytes(), self.max_pending_bytes,
        )  # fmt: skip
        self.discard_queued()
        # Not here: send() runs inside an emit to a whole room, and the disconnect
        # handlers (presence, database) would hold up every other recipient.
        self.server.start_background_task(self.cut_off)

    def discard_queued(self):
        """Empty the queue now, so its packets are freed before the connection is."""
        empty = self.server.get_queue_empty_exception()
        while True:
            try:
                self.queue.get(block=False)
            except empty:
                return
            self.queue.task_done()  # a close(wait=True) joins the queue

    def cut_off(self):
        """Close the Engine.IO session, then the TCP connection the writer may be blocked on."""
        self.close(wait=False, abort=True, reason=self.server.reason.SERVER_DISCONNECT)
        if self.connection is not None:
            # The writer is blocked in sendall on a full window, with packets in hand:
            # only failing that write ends it, and with it the WebSocket handler.
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # already gone
                pass
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]


class CountingWebSocket:
    """The WebSocket Engine.IO's writer writes to, telling its Socket what each write took off the count."""

    def __init__(self, ws, owner):
        self.ws, self.owner = ws, owner

    def send(self, message):
        """Write one encoded packet, then take it off the count."""
        counted = self.owner.upgraded  # the upgrade's probe answer was never queued
        try:
            return self.ws.send(message)
        finally:
            if counted:
                self.owner.written(len(message))

    def wait(self):
        """Read the next frame; a malformed one ends the connection as the client's close would."""
        frame = self.ws.wait()
        if frame is not None and malformed(frame):
            # As a close: engineio then writes what is queued (earlier events' acks) and closes.
            log.warning("closing websocket session %s (%s): malformed frame %r", self.owner.sid,
                        self.owner.address, frame[:40])  # fmt: skip
            return None
        return frame

    def __getattr__(self, name):
        return getattr(self.ws, name)


def websocket_frame(message):
    """Return an Engine.IO packet's encoding as one final, unmasked WebSocket frame (RFC 6455, 5.2)."""
    if isinstance(message, str):
        payload, first = message.encode(), 0x81  # FIN, text
    else:
        payload, first = bytes(message), 0x82  # FIN, binary
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + size.to_bytes(8, "big")
    return header + payload


def tcp_connection(ws):
    """Return the client's TCP socket under engineio's gevent-websocket wrapper, or None."""
    # engineio's WebSocketWSGI keeps gevent-websocket's WebSocket as _sock, and that
    # keeps the request handler, whose socket is the client's connection.
    return getattr(getattr(getattr(ws, "_sock", None), "handler", None), "socket", None)


def malformed(frame):
    """Tell whether a WebSocket frame is no Engine.IO packet (engineio would fail on it with a traceback)."""
    if not isinstance(frame, str) or frame[:1] in PACKET_TYPES:
        return False  # binary frames, and the usual text ones, decode
    try:
        packet.Packet(encoded_packet=frame)  # "b" + base64, or a type digit of another script
    except ValueError:
        return True
    return False
