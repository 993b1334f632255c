"""kombu's Redis transport, changed so a Celery worker survives its Redis restarting; register() puts it in use."""

from queue import Empty

from kombu import transport
from kombu.transport import redis


class Channel(redis.Channel):
    """A Redis channel whose close() finishes even when Redis cannot be reached.

    When the broker connection drops, Celery (Consumer.on_connection_error_after_connected)
    first collect()s the connection, which closes its channels and then detaches
    the transport (transport.client = None), then close()s it again. kombu's
    Channel.close() talks to Redis before it marks the channel closed: it reads
    the reply of the BRPOP in flight and deletes the bindings of auto-delete
    fanout queues. With Redis down either raises, so the channel stays open; the
    second close() then restores its unacknowledged messages through a
    transport that has no client any more and raises AttributeError ('NoneType'
    object has no attribute 'hostname'), which Celery does not expect: the
    worker exits.

    Here those two steps give up quietly while closing, so the first close()
    reaches kombu's own, which marks the channel closed (the second close()
    then does nothing) and restores the unacknowledged messages. With Redis
    still down that restore fails with a connection error, which Celery ignores:
    the messages stay in Redis's unacked set, acknowledged there when their
    tasks end (or restored after visibility_timeout if the worker dies).
    """

    def _brpop_read(self, **options):
        try:
            return super()._brpop_read(**options)
        except self.connection_errors:
            if not self._closing:
                raise  # the event loop's error: Celery reconnects
            # The connection is dead: no BRPOP reply will come.
            raise Empty() from None

    def queue_delete(self, queue, *args, **kwargs):
        try:
            return super().queue_delete(queue, *args, **kwargs)
        except self.connection_errors:
            if not self._closing:
                raise
            # Closing without Redis: the binding of this auto-delete queue (a
            # pidbox or gossip reply queue) stays; the next connection binds it again.


class Transport(redis.Transport):
    """kombu's Redis transport with the Channel above."""

    Channel = Channel


def register():
    """Make redis:// and rediss:// broker URLs use this Transport; call it before the first broker connection."""
    # By kombu's aliases rather than Celery's broker_transport setting: the URL's
    # scheme still chooses the transport (an amqp:// CELERY_BROKER_URL stays AMQP),
    # and kombu still turns TLS on for rediss://, which it does only for that name.
    for scheme in ("redis", "rediss"):
        transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
