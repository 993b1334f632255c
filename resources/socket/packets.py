"""Socket.IO packets as Roomcast reads them: every event reaches a namespace that answers it; bad ones dropped."""

import logging

from socketio import packet

log = logging.getLogger(__name__)


class AnsweringPacket(packet.Packet):
    """python-socketio's packet, decoded so that every event reaches a namespace that can answer it."""

    def decode(self, encoded_packet):
        if not isinstance(encoded_packet, str):  # a binary frame: the protocol is JSON only
            raise ValueError("binary frames are not part of the protocol")
        try:
            attachments = super().decode(encoded_packet)
        except (ValueError, RecursionError):  # bad JSON, or nested past Python's recursion limit
            if self.packet_type not in (packet.EVENT, packet.BINARY_EVENT):
                raise
            self.data, attachments = None, 0
        if self.packet_type == packet.BINARY_ACK:
            raise ValueError("binary packets are not part of the protocol")
        if self.packet_type == packet.BINARY_EVENT:
            # Answered as an event without a name, and no attachment is waited for (or
            # kept): python-socketio would hold every binary frame the packet announces.
            self.packet_type, self.data, attachments = packet.EVENT, None, 0
        if self.packet_type == packet.EVENT and not (
            isinstance(self.data, list) and self.data and isinstance(self.data[0], str)
        ):
            # No event name ([], {...}, [1], undecodable): python-socketio would fail on it
            # without an answer; the namespace answers an event called "" as unknown.
            self.data = [""]
        return attachments


def drop_bad_packets(server):
    """Drop a packet python-socketio cannot handle with one log line, not a traceback."""
    handle = server._handle_eio_message

    def handle_or_drop(eio_sid, data):
        try:
            handle(eio_sid, data)
        except Exception as error:  # a client's malformed packet (unknown type, stray attachment...)
            log.warning("dropped a malformed Socket.IO packet from %s: %s: %s", eio_sid, type(error).__name__, error)

    server.eio.on("message", handle_or_drop)
