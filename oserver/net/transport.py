"""Transports: a connection's bytes on a socket. handshake, recv, send (corked or not), sendfile, half-close,
close.

The plain TCP transport binds the socket's own methods, so the hot path pays no extra call. The TLS transport
runs its handshake in the worker's loop (`handshake()` says which epoll event it waits for), then carries
bytes through OpenSSL; a PROXY-protocol preamble is another step of the same kind, taken before either. Nothing
above this layer knows which one it has. Errors are the socket's: BlockingIOError when it must wait, OSError
when the connection broke.
"""

import os
import select
import socket
import ssl
from dataclasses import dataclass

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
TLS_HANDSHAKE_RECORD = 0x16  # the first byte of a TLS ClientHello (and SSL 3's)
SSLV2_HELLO = 0x80  # the high bit opens an SSLv2-format hello: OpenSSL answers it (with a refusal)
# Files through OpenSSL (no kernel TLS) are read into one buffer per process, this much at a time: 4 records.
FILE_CHUNK = 65536
WAIT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
SOL_TLS = 282  # linux/tls.h
TLS_TX = 1
TLS_CRYPTO_INFO_SIZE = 64  # room for any tls12_crypto_info_* the kernel returns
# socket.socket.close without its two Python layers (close, _real_close), which only wait for file objects
# made by makefile(); a transport makes none.
CLOSE_SOCKET = socket._socket.socket.close


class SocketTransport:
    """What every transport on a connected stream socket does the same way."""

    __slots__ = ("sock", "fd", "local")
    handshakes = False  # TLS (or a preamble) must run handshake() before any HTTP byte
    session = None  # what the handshake found out: a TlsSession, or None without TLS

    def local_address(self):
        """(host, port) the client connected to (one getsockname per connection, on first use)."""
        if self.local is None:
            self.local = self.sock.getsockname()
        return self.local

    def no_delay(self):
        """Replies to come must not wait for Nagle (TCP only: a Unix socket refuses the option, which is fine;
        asking is cheaper than sock.family, an enum built per call)."""
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def shutdown_write(self):
        """Half-close: the client reads what was sent, then the end of the stream (a lingering close)."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        try:
            CLOSE_SOCKET(self.sock)
        except OSError:
            pass


class TcpTransport(SocketTransport):
    """A connected, non-blocking TCP (or Unix) stream socket."""

    __slots__ = ("recv", "send")

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


class PlainHttpOnTlsPort(Exception):
    """The client's first byte opens no TLS record: plain HTTP sent to the TLS port (nginx's 497 case)."""


@dataclass(slots=True, frozen=True)
class TlsSession:
    """What the access log says of a TLS connection."""

    protocol: str  # "TLSv1.3"
    cipher: str  # OpenSSL's name: "TLS_AES_256_GCM_SHA384"
    reused: bool  # resumed from a session ticket


class TlsTransport(SocketTransport):
    """A TCP connection carrying TLS, started server-side from `contexts` (net/tls.py). Until handshake() has
    returned 0 it carries no application byte. Files go through OpenSSL in FILE_CHUNK reads under the
    caller's quota, or with sendfile when the kernel encrypts (kTLS)."""

    __slots__ = ("contexts", "tls", "session", "sendfile", "__weakref__")
    handshakes = True

    def __init__(self, sock, contexts):
        self.sock = sock
        self.fd = sock.fileno()
        self.local = None  # (host, port) the client connected to, once asked
        self.contexts = contexts
        self.tls = None  # OpenSSL's connection, once the first byte says TLS
        self.session = None  # a TlsSession once the handshake is done
        self.sendfile = self.sendfile_chunks

    def handshake(self):
        """Advance the handshake: 0 once it is done, else the epoll event it waits for. Raises
        PlainHttpOnTlsPort when the client speaks plain HTTP, OSError (ssl.SSLError) when the handshake failed
        or the client left."""
        tls = self.tls
        if tls is None:
            try:
                first = self.sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return EPOLLIN
            if not first:
                raise ConnectionAbortedError("closed before the TLS handshake")
            if first[0] != TLS_HANDSHAKE_RECORD and not first[0] & SSLV2_HELLO:
                raise PlainHttpOnTlsPort
            tls = self.tls = self.contexts.wrap(self)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            return EPOLLIN
        except ssl.SSLWantWriteError:
            return EPOLLOUT
        self.session = TlsSession(tls.version(), tls.cipher()[0], tls.session_reused)
        if self.contexts.kernel_tls and kernel_sends(self.sock):
            self.sendfile = self.sendfile_kernel
        return 0

    def plain(self):
        """The same socket as a TcpTransport: to answer plain HTTP sent to the TLS port."""
        return TcpTransport(self.sock)

    def recv(self, size):
        """Up to `size` decrypted bytes, b"" when the client closed. OpenSSL reads one record at a time (no
        read-ahead) and hands a whole record (16 KiB at most) to a read this large, so nothing it holds is left
        unseen by epoll."""
        try:
            return self.tls.read(size)
        except WAIT:
            raise BlockingIOError from None
        except ssl.SSLZeroReturnError:  # the client's close_notify
            return b""

    def send(self, data):
        """Encrypt and send all of `data`; or BlockingIOError when the socket is full, though OpenSSL may have
        sent part of it: the caller then repeats the send with the same bytes (or more of them, from the same
        start), as OpenSSL requires, and OpenSSL goes on from where it stopped."""
        try:
            return self.tls.write(data)
        except WAIT:
            raise BlockingIOError from None

    send_corked = send  # records are not corked: the head is one record, the body the next

    def sendfile_chunks(self, file, offset, count):
        """Up to FILE_CHUNK bytes of `file` from `offset`, read into the process's buffer and sent; 0 when the
        file ends there. After BlockingIOError the output item calls again with the same offset and a count as
        large or larger (a fresh turn's quota), so OpenSSL is handed the same bytes again."""
        view = FILE_BUFFER[:min(count, FILE_CHUNK)]
        n = os.preadv(file.fileno(), (view,), offset)
        return self.send(view[:n]) if n else 0

    def sendfile_kernel(self, file, offset, count):
        """Under kernel TLS the kernel encrypts what sendfile sends."""
        return os.sendfile(self.fd, file.fileno(), offset, count)

    def shutdown_write(self):
        self.close_notify()
        SocketTransport.shutdown_write(self)

    def close(self):
        self.close_notify()
        SocketTransport.close(self)

    def close_notify(self):
        """Tell the client the stream ends here (a TLS close_notify alert), if the socket takes it now."""
        if self.session is not None:
            try:
                self.tls.shutdown()
            except (OSError, ValueError):  # the alert was sent (ssl.SSLWantReadError), or cannot be
                pass


FILE_BUFFER = memoryview(bytearray(FILE_CHUNK))


def kernel_sends(sock):
    """Did OpenSSL hand this connection's sending to the kernel (kTLS TX)? The kernel answers TLS_TX only then."""
    try:
        sock.getsockopt(SOL_TLS, TLS_TX, TLS_CRYPTO_INFO_SIZE)
    except OSError:
        return False
    return True
