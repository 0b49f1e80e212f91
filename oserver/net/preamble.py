"""A connection's PROXY protocol header, read on the raw socket before its transport exists.

The bytes are peeked, parsed (proxy_protocol.py), and exactly those of the header consumed, so whatever follows
(an HTTP request, a TLS handshake) is left in the socket for the transport the listener makes afterwards. Each
read consumes what it peeked of an incomplete header, so a level-triggered loop never spins on it.
"""

import socket

from oserver.net.proxy_protocol import HEADER_MAX_BYTES, parse_header


class ProxyPreamble:
    """The raw, non-blocking socket of an accepted connection, until its PROXY header is read."""

    __slots__ = ("sock", "fd", "make_transport", "received")

    def __init__(self, sock, make_transport):
        self.sock = sock
        self.fd = sock.fileno()
        self.make_transport = make_transport  # the listener's transport, made once the header is read
        self.received = b""  # the header's bytes consumed so far

    def read(self):
        """The ProxyHeader once it is whole, else None (more must arrive). ProxyProtocolError: not a valid
        header; EOFError: the peer closed first; BlockingIOError, OSError: the socket's."""
        peeked = self.sock.recv(HEADER_MAX_BYTES - len(self.received), socket.MSG_PEEK)
        if not peeked:
            raise EOFError("closed before its PROXY header")
        data = self.received + peeked
        header = parse_header(data)
        wanted = (header.length if header is not None else len(data)) - len(self.received)
        taken = self.sock.recv(wanted)  # no more than was peeked: bytes already in the socket
        self.received += taken
        return header if len(taken) == wanted else None

    def transport(self):
        """The listener's transport on this socket, positioned at the first byte after the header."""
        return self.make_transport(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
