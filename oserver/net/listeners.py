"""Listeners: bind a listening socket, and accept a connection with the transport its listener speaks.

The master binds (or inherits, from systemd or an upgrade) the sockets; each worker wraps them in Listeners.
A listener chooses the transport of its connections: plain TCP, or TLS with the master's contexts; and whether
a PROXY protocol header comes first: then it hands out a ProxyPreamble, which makes the transport once the
header is read.
"""

import functools
import socket
from dataclasses import dataclass

from oserver.config import ConfigError
from oserver.net.preamble import ProxyPreamble
from oserver.net.transport import TcpTransport, TlsTransport


CREATE_SERVER_SUFFIX = " (while attempting to bind on address"


def format_address(address):
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address) or "unix"


def bind_listener(address, backlog):
    """A non-blocking listening TCP socket on (host, port) (IPv6 literals bind v6-only, as nginx does)."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as e:  # create_server appends the address to the reason; it is named once, first
        reason = e.strerror.partition(CREATE_SERVER_SUFFIX)[0]
        raise ConfigError(f"cannot listen on {format_address(address)}: {reason}") from None
    sock.setblocking(False)
    return sock


@dataclass(slots=True, eq=False)
class Listener:
    """A listening socket, the transport its connections get, and whether they start with a PROXY header."""

    sock: socket.socket
    make_transport: object = TcpTransport  # make_transport(connected socket) -> its transport
    proxy_protocol: bool = False
    kind: tuple = ()  # (family, type, proto) of its connections, as plain ints

    def __post_init__(self):
        self.kind = (int(self.sock.family), int(self.sock.type), self.sock.proto)

    def fileno(self):
        return self.sock.fileno()

    def accept(self):
        """(transport, client address) of the next queued connection, or (ProxyPreamble, balancer address) with
        proxy_protocol; BlockingIOError when there is none. socket.accept() would build its new socket from
        the `family` and `type` properties, two enum conversions per connection: the kind is known once, so
        `_accept` (what it calls) is used directly."""
        fd, address = self.sock._accept()
        sock = socket.socket(*self.kind, fileno=fd)
        sock.setblocking(False)
        if self.proxy_protocol:  # before any byte of the transport's own (a TLS handshake)
            return ProxyPreamble(sock, self.make_transport), address
        return self.make_transport(sock), address

    def close(self):
        self.sock.close()


def make_listener(sock, tls=None, proxy_protocol=False):
    """A Listener on `sock`: TLS with `tls` (the master's TlsContexts), else plain TCP; its connections start
    with a PROXY header when `proxy_protocol`."""
    transport = TcpTransport if tls is None else functools.partial(TlsTransport, contexts=tls)
    return Listener(sock, transport, proxy_protocol)
