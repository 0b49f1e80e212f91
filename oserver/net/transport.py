"""Transports: a connection's bytes on a socket. recv, send (corked or not), sendfile, half-close, close.

The plain TCP transport binds the socket's own methods, so the hot path pays no extra call. TLS and a
PROXY-protocol preamble are other transports (or a step in front of one), chosen per listener: nothing above
this layer knows which one it has. Errors are the socket's: BlockingIOError when it must wait, OSError when
the connection broke.
"""

import os
import socket


class TcpTransport:
    """A connected, non-blocking TCP (or Unix) stream socket."""

    __slots__ = ("sock", "fd", "recv", "send", "local")

    def __init__(self, sock):
        self.sock = sock
        self.fd = sock.fileno()
        self.local = None  # (host, port) the client connected to, once asked
        self.recv = sock.recv  # recv(size) -> bytes, b"" at the end of the stream
        self.send = sock.send  # send(data) -> bytes taken

    def send_corked(self, data):
        """send(), telling the kernel more follows at once (MSG_MORE): the head shares a packet with the body."""
        return self.sock.send(data, socket.MSG_MORE)

    def sendfile(self, file, offset, count):
        return os.sendfile(self.fd, file.fileno(), offset, count)

    def local_address(self):
        """(host, port) the client connected to (one getsockname per connection, on first use)."""
        if self.local is None:
            self.local = self.sock.getsockname()
        return self.local

    def no_delay(self):
        """Replies to come must not wait for Nagle (TCP only)."""
        if self.sock.family != socket.AF_UNIX:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def shutdown_write(self):
        """Half-close: the client reads what was sent, then the end of the stream (a lingering close)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
