"""Sans-IO request bodies: Content-Length (RFC 9112 6.2) and chunked (RFC 9112 7.1) framing.

A body reader is fed the connection's buffered bytes and hands back what belongs to the next request; it
keeps the body (for a mounted handler) or drops it (a static request's body is read only to keep framing).
Bytes in, bytes out: no sockets here. Malformed framing raises HttpError(400), an oversized body 413.
"""

from oserver.http.grammar import CHUNK_SIZE_LINE, END_OF_LINE, TRAILER_LINE
from oserver.http.parser import CHUNKED, HttpError

MAX_SIZE_LINE = 1024  # a chunk-size line with extensions longer than this is an attack, not a client
MAX_TRAILER_BYTES = 8192


class BodyReader:
    """What both framings share: `remaining` data bytes to take, kept in `parts` (or dropped when None)."""

    __slots__ = ("remaining", "parts")

    def __init__(self, remaining, keep):
        self.remaining = remaining
        self.parts = [] if keep else None

    def take(self, buf):
        """Take up to `remaining` data bytes from the front of `buf`; returns the rest."""
        n = min(self.remaining, len(buf))
        if self.parts is not None and n:
            self.parts.append(buf[:n])
        self.remaining -= n
        return buf[n:]

    def data(self):
        return b"".join(self.parts)


class FixedBody(BodyReader):
    """A body of a known length (Content-Length)."""

    __slots__ = ()

    @property
    def done(self):
        return self.remaining == 0

    def feed(self, buf):
        """Take this body's bytes from the front of `buf`; returns the rest."""
        return self.take(buf)


class ChunkedBody(BodyReader):
    """A chunked body (RFC 9112 7.1), decoded; more than `limit` bytes of data is refused with 413."""

    __slots__ = ("state", "size", "limit", "trailer_bytes")

    def __init__(self, limit, keep):
        super().__init__(0, keep)  # `remaining`: data bytes left in the current chunk
        self.state = self.read_size
        self.size = 0  # data bytes received so far
        self.limit = limit
        self.trailer_bytes = 0

    @property
    def done(self):
        return self.state is None

    def feed(self, buf):
        """Decode as much of `buf` as belongs to this body; returns the rest (the next request, if any)."""
        while buf and self.state is not None:
            rest = self.state(buf)
            if rest is None:  # an incomplete line: wait for more bytes
                break
            buf = rest
        return buf

    def read_size(self, buf):
        m = CHUNK_SIZE_LINE.match(buf)
        if m is None:
            if b"\n" in buf[:MAX_SIZE_LINE] or len(buf) > MAX_SIZE_LINE:
                raise HttpError(400, "malformed chunk size line")
            return None
        size = int(m[1], 16)
        self.size += size
        if self.size > self.limit:
            raise HttpError(413, "request body too large")
        self.remaining = size
        self.state = self.read_data if size else self.read_trailer
        return buf[m.end():]

    def read_data(self, buf):
        rest = self.take(buf)
        if self.remaining == 0:
            self.state = self.read_data_end
        return rest

    def read_data_end(self, buf):
        """RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF."""
        m = END_OF_LINE.match(buf)
        if m is None:
            if buf[:1] != b"\r" or len(buf) > 1:
                raise HttpError(400, "chunk data not followed by CRLF")
            return None
        self.state = self.read_size
        return buf[m.end():]

    def read_trailer(self, buf):
        m = END_OF_LINE.match(buf)
        if m is not None:  # the empty line that ends the message
            self.state = None
            return buf[m.end():]
        m = TRAILER_LINE.match(buf)
        if m is None:
            if b"\n" in buf or len(buf) > MAX_TRAILER_BYTES:
                raise HttpError(400, "malformed trailer field")
            return None
        self.trailer_bytes += m.end()
        if self.trailer_bytes > MAX_TRAILER_BYTES:
            raise HttpError(431, "trailer section too large")
        return buf[m.end():]


def request_body(content_length, limit, keep):
    """The reader for a request's body: `content_length` is its length, or CHUNKED."""
    if content_length == CHUNKED:
        return ChunkedBody(limit, keep)
    return FixedBody(content_length, keep)

