"""One client connection in a worker's loop: its transport, its protocol, its timer and epoll interest.

Runs the transport's handshake first (TLS), under the header timer; then moves bytes between the two (the
transport reads and writes, the protocol decides), tells the loop which timer applies (from the protocol's
state), and closes: at once, or lingering (the write side shut, what the client still sends read and dropped)
after a refusal, so that the client reads the answer. Before it, with proxy_protocol, a PendingConnection
waits for the PROXY header, then hands the socket over to one.
"""

import logging
import select

from oserver.apps.executors import AppPending
from oserver.http.output import SendFailed
from oserver.http.parser import HttpError
from oserver.http.protocol import CLOSING, WAITING_FOR_APP
from oserver.http.response import error_reply, response_head
from oserver.net.listeners import format_address
from oserver.net.proxy_protocol import ProxyProtocolError
from oserver.net.transport import PlainHttpOnTlsPort

RECV_SIZE = 65536
EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
INTERNAL_ERROR = (lambda reply: response_head(500, reply.fields, False) + reply.data)(error_reply(500))

log = logging.getLogger("oserver.worker")


class Connection:
    __slots__ = ("loop", "transport", "protocol", "fd", "timer", "watching", "registered", "closed",
                 "linger_until", "limit", "handshaking")

    def __init__(self, loop, transport, protocol):
        self.loop = loop
        self.transport = transport
        self.protocol = protocol
        protocol.owner = self
        self.fd = transport.fd
        self.timer = None  # the loop's timer queue this connection sits in
        # The events it waits for: EPOLLIN (a request), EPOLLOUT (output blocked), or 0 (input_events()).
        self.watching = EPOLLIN
        self.registered = False  # known to the loop's epoll
        self.closed = False
        self.linger_until = 0.0  # while lingering: when to close whatever the client does
        self.limit = None  # (client key, epoch) while counted by limit_conn_per_ip (process/limits.py)
        self.handshaking = transport.handshakes  # no HTTP byte until the transport's handshake is done

    @property
    def address(self):
        return self.protocol.client

    # ------------------------------------------------------------ events

    def on_readable(self):
        if self.linger_until:
            return self.discard_input()
        if self.handshaking:
            return self.handshake()
        try:
            data = self.transport.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            return self.close()
        if not data:
            return self.close()
        protocol = self.protocol
        protocol.receive(data)
        if protocol.state is WAITING_FOR_APP:
            self.watch(self.input_events())
        self.process()

    def on_writable(self):
        if self.handshaking:
            return self.handshake()
        self.process()

    def handshake(self):
        """Advance the transport's handshake; once done, the connection reads its first request."""
        events = self.protocol.services.events
        try:
            waiting_for = self.transport.handshake()
        except PlainHttpOnTlsPort:
            return self.refuse_plain_http()
        except OSError as e:
            events.handshake_failed(self.address, e)
            return self.close()
        if waiting_for:
            return self.watch(waiting_for)
        self.handshaking = False
        session = self.transport.session
        if session is not None:
            self.protocol.tls = session
            events.handshake_done(session)
        self.watch(EPOLLIN)
        self.on_readable()  # the first request often follows the handshake at once

    def refuse_plain_http(self):
        """Plain HTTP sent to the TLS port: answered in plain HTTP, 400, and closed (nginx's 497 case)."""
        self.handshaking = False
        self.transport = self.transport.plain()
        self.protocol.services.events.handshake_failed(self.address, "plain HTTP sent to the TLS port")
        try:
            received = self.transport.recv(RECV_SIZE)
        except OSError:
            received = b""
        self.protocol.refuse(HttpError(400, "plain HTTP request sent to the HTTPS port"), received)
        self.process()

    def refuse(self, reply):
        """Answer `reply` before reading any request (a per-client limit), then close as after a refusal."""
        self.protocol.refuse_connection(reply)
        self.process()

    def process(self):
        """Answer what can be answered, send what can be sent; repeat while pipelined requests wait."""
        protocol = self.protocol
        while True:
            more = protocol.advance()
            if not self.flush():
                return
            if protocol.state is CLOSING:
                return self.finish()
            if not more:
                break
        self.loop.await_client(self, protocol.state)

    def flush(self):
        """Write queued output; True when all of it went out."""
        try:
            sent_all = self.protocol.write(self.transport)
        except AppPending:  # a streamed body's next chunk is on its way from the pool, which resumes us
            self.watch(self.input_events())  # not EPOLLOUT: the socket is writable, there is nothing to write yet
            self.loop.clear_timer(self)
            return False
        except SendFailed as failure:
            log.warning("%s; connection closed", failure)
            return self.close()
        except OSError:
            return self.close()
        if not sent_all:
            self.watch(EPOLLOUT)
            self.loop.await_send(self)
            return False
        if self.watching != EPOLLIN:
            self.watch(self.input_events())
        return True

    def input_events(self):
        """EPOLLIN; or 0 while mounted code works for this connection and more than a request head's worth of
        what the client sent since waits: the rest stays in the kernel until the reply (back-pressure, bounded
        memory)."""
        protocol = self.protocol
        if protocol.state is WAITING_FOR_APP and len(protocol.inbuf) > protocol.services.config.max_header_bytes:
            return 0
        return EPOLLIN

    def watch(self, events):
        if events != self.watching:
            self.watching = events
            if self.registered:
                self.loop.epoll.modify(self.fd, events)

    # ------------------------------------------------------------ timers and closing

    def expire_head(self):
        """header_timeout: the request head or body did not arrive in time: 408, then close. A handshake not
        done by then is closed without an answer."""
        if self.handshaking:
            self.protocol.services.events.handshake_failed(self.address, "handshake timed out")
            return self.close()
        self.protocol.timeout()
        if self.flush():
            self.finish()

    def finish(self):
        """Everything is sent and nothing more will be read as a request: close, lingering after a refusal."""
        if not self.protocol.linger:
            return self.close()
        self.transport.shutdown_write()
        self.linger_until = self.loop.linger(self)

    def discard_input(self):
        """Lingering: read and drop what the client still sends, until it stops (or time is up)."""
        try:
            while self.transport.recv(RECV_SIZE):
                if self.loop.clock.now >= self.linger_until:
                    return self.close()
        except BlockingIOError:
            self.loop.linger(self)
            return
        except OSError:
            pass
        self.close()

    def fail(self):
        """A bug surfaced while handling this connection: answer 500 if nothing was sent yet, then close."""
        if self.closed:
            return
        if not self.handshaking and not self.protocol.response_started():
            self.protocol.abort()
            try:
                self.transport.send(INTERNAL_ERROR)
            except OSError:
                pass
        self.close()

    def close(self):
        if self.closed:
            return False
        self.closed = True
        self.protocol.abort()
        self.loop.forget(self)
        self.transport.close()
        return False


class PendingConnection:
    """A connection whose PROXY protocol header is still to come (a ProxyPreamble on its raw socket), under
    the loop's proxy-header timer. Once the header is read the loop opens a Connection on the same socket;
    a connection that sends no valid header, or none in time, is closed."""

    __slots__ = ("loop", "preamble", "address", "fd", "timer", "watching", "registered", "closed")
    limit = None  # not counted by limit_conn_per_ip before its client is known

    def __init__(self, loop, preamble, address):
        self.loop = loop
        self.preamble = preamble
        self.address = address  # the balancer's
        self.fd = preamble.fd
        self.timer = None
        self.watching = EPOLLIN
        self.registered = False
        self.closed = False

    def on_readable(self):
        try:
            header = self.preamble.read()
        except BlockingIOError:
            return
        except (EOFError, OSError):  # gone before a word (a balancer's bare TCP check): nothing to report
            return self.close()
        except ProxyProtocolError as e:
            return self.refuse(e)
        if header is not None:
            self.loop.proxy_header_read(self, header)

    def expire(self):
        self.refuse(f"no PROXY header within {self.loop.config.proxy_protocol_timeout:g}s")

    def refuse(self, why):
        log.info("%s: PROXY protocol: %s; connection closed", format_address(self.address), why)
        self.close()

    def fail(self):
        self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.loop.forget(self)
        self.preamble.close()
