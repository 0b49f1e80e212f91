"""The handler API: what mounted code receives (HandlerRequest) and how what it returns becomes a reply.

A handler is `handler(request) -> (status, headers, body)`; the body is bytes, an iterable of bytes (pulled
as the client takes it: framed with Content-Length, chunked, or by closing) or a binary file (sendfile).
This module checks and frames a handler's answer; it never touches sockets and never runs the handler's
own failures past the worker: a handler that raises answers 500, its traceback goes to the error log.
"""

import io
import logging
import os
import stat
import traceback
from functools import lru_cache

from oserver.http.grammar import CONTENT_LENGTH, FIELD_NAME, FIELD_VALUE, STATUS
from oserver.http.output import FileSpan, Part, SendFailed
from oserver.http.response import REASONS, SERVER_OWNED_FIELDS, Reply, error_reply
from oserver.memo import remember

NO_BODY_STATUSES = (204, 304)  # RFC 9110 15.3.5, 15.4.5
LAST_CHUNK = b"0\r\n\r\n"
STATUS_TEXTS_CACHED = 256
HEADER_LISTS_CACHED = 1024
# Header lists of str pairs already checked, as header_fields() answered them: apps send the same few again and
# again. Pool threads share it (a dict's get and set are atomic); it is emptied when full.
CHECKED_HEADER_LISTS = {}

log = logging.getLogger("oserver.handlers")


class HandlerRequest:
    """The request a handler receives. `path` is the decoded, normalised URL path; `script_name` the mount
    prefix it matched and `path_info` the rest; `query` the raw query string; `headers` lower-case names;
    `client` and `server` are (host, port); `scheme` is "https" on a TLS connection, else "http"; `body` a
    binary file-like reader holding the whole request body."""

    __slots__ = ("method", "target", "path", "script_name", "path_info", "query", "version", "headers",
                 "client", "server", "scheme", "body")

    def __init__(self, request, route, client, server, body, scheme="http"):
        self.method = request.method
        self.target = request.target
        self.path = route.path
        self.script_name = route.mount.prefix
        self.path_info = route.path_info
        self.query = request.query
        self.version = request.version
        self.headers = dict(request.headers)  # a copy: the parsed head may be cached and reused
        self.client = client
        self.server = server
        self.scheme = scheme
        self.body = io.BytesIO(body)

    def __repr__(self):
        return f"<HandlerRequest {self.method} {self.target}>"


class StreamedBody(Part):
    """An iterable body, pulled as the client takes it: chunked (RFC 9112 7.1) when its length is unknown,
    else cut at its Content-Length; one that ends short of its Content-Length closes the connection."""

    __slots__ = ("iterable", "chunks", "remaining", "chunked")

    def __init__(self, iterable, length, chunked):
        self.iterable = iterable
        self.chunks = iter(iterable)
        self.remaining = length  # bytes still owed under a Content-Length, or None
        self.chunked = chunked

    def write(self, response, transport):
        """Hand the next piece of the body to the response to send; True once the body has ended."""
        part = self.next_part()
        if part is None:
            return True
        response.pending = part
        response.quota -= len(part)
        return False

    def next_part(self):
        """The next bytes to send, or None at the end."""
        if self.chunks is None:
            return None
        for chunk in self.chunks:
            if chunk.__class__ is not bytes:
                chunk = body_bytes(chunk)
            if not chunk:
                continue
            if self.chunked:
                return b"%x\r\n%s\r\n" % (len(chunk), chunk)
            if self.remaining is None:
                return chunk
            if len(chunk) >= self.remaining:
                if len(chunk) > self.remaining:
                    log.warning("handler body longer than its Content-Length: cut at %d bytes", self.remaining)
                self.chunks = None
                return chunk[:self.remaining]
            self.remaining -= len(chunk)
            return chunk
        self.chunks = None
        if self.remaining:
            raise SendFailed(f"handler body {self.remaining} bytes shorter than its Content-Length")
        return LAST_CHUNK if self.chunked else None

    def close(self):
        self.chunks = None
        close_quietly(self.iterable)


class FileBody(FileSpan):
    """`count` bytes of a handler's file from `offset`, sent with sendfile; the file is closed afterwards."""

    __slots__ = ()

    def close(self):
        close_quietly(self.file)


def close_if_closable(thing):
    """PEP 3333: an iterable (or a file) with a close() method has it called, however the response ends."""
    close = getattr(thing, "close", None)
    if close is not None:
        close()


def close_quietly(body):
    """close_if_closable(), its failure only logged: the response is over either way."""
    try:
        close_if_closable(body)
    except Exception:
        log.error("error closing a handler body:\n%s", traceback.format_exc())


def run_app(call, client, server):
    """Mounted code's Reply to an AppCall (see http/protocol.py) from `client` to `server` (host, port)."""
    request = call.request
    return run_handler(call.route.mount.handler, request, HandlerRequest(request, call.route, client, server,
                                                                         call.body, call.scheme))


def run_handler(handler, request, handler_request):
    """The reply of a handler to a request; 500 when the handler raises or answers something invalid."""
    try:
        return handler_reply(request, handler(handler_request))
    except Exception:
        log.error("handler error on %s %s:\n%s", request.method, request.target, traceback.format_exc())
        return error_reply(500)


def handler_reply(request, result):
    """Check and frame what a handler returned: (status, headers, body)."""
    status, headers, body = result
    code, line = status_line(status)
    fields, length, keep_alive = header_fields(headers)
    if request.method == "HEAD" or code in NO_BODY_STATUSES:
        close_quietly(body)
        if code == 204:
            return Reply(code, fields, line=line, keep_alive=keep_alive)
        if length is None and isinstance(body, (bytes, bytearray, memoryview)):
            length = len(body)
        return Reply(code, with_length(fields, length), line=line, keep_alive=keep_alive)
    if isinstance(body, (bytes, bytearray, memoryview, str, list, tuple)):
        data = b"".join(map(body_bytes, body)) if isinstance(body, (list, tuple)) else body_bytes(body)
        return Reply(code, with_length(fields, len(data)), data, line=line, keep_alive=keep_alive)
    file = regular_file(body)
    if file is not None:
        offset = file.tell()
        count = max(os.fstat(file.fileno()).st_size - offset, 0)
        if length is not None:
            count = min(count, length)
        if not count:  # nothing to send: sendfile would read 0 bytes, which means a truncated file
            close_quietly(file)
            return Reply(code, with_length(fields, 0), line=line, keep_alive=keep_alive)
        return Reply(code, with_length(fields, count), parts=(FileBody(file, offset, count),), line=line,
                     keep_alive=keep_alive)
    chunked = length is None and request.version == "HTTP/1.1"
    if chunked:
        fields += b"Transfer-Encoding: chunked\r\n"
    elif length is None:  # an HTTP/1.0 client: the end of the body is the end of the connection
        keep_alive = False
    else:
        fields = with_length(fields, length)
    return Reply(code, fields, parts=(StreamedBody(body, length, chunked),), line=line, keep_alive=keep_alive)


def status_line(status):
    """(code, status line bytes) from an int or a "404 Not Found" string; the line is None when standard."""
    if isinstance(status, int) and not isinstance(status, bool):
        if not 200 <= status <= 599:
            raise ValueError(f"invalid status {status!r}")
        return status, None if status in REASONS else b"HTTP/1.1 %d Unknown\r\n" % status
    if not isinstance(status, str):
        raise ValueError(f"invalid status {status!r}")
    return status_text_line(status)


@lru_cache(maxsize=STATUS_TEXTS_CACHED)
def status_text_line(status):
    """status_line() of a status string: apps answer the same few again and again ("200 OK")."""
    m = STATUS.fullmatch(status)
    if m is None:
        raise ValueError(f"invalid status {status!r}")
    code, reason = int(m[1]), m[2] or ""
    if REASONS.get(code) == reason:
        return code, None
    return code, f"HTTP/1.1 {code} {reason}\r\n".encode("latin-1")


def header_fields(headers):
    """(field bytes, declared Content-Length or None, keep-alive allowed) from a dict or (name, value) pairs.
    Framing and hop-by-hop fields are the server's: dropped, though "Connection: close" is honoured. A list
    seen before is answered from CHECKED_HEADER_LISTS; only lists of str pairs are kept there, so that no
    other value (1 for "1", True for 1) can pass for one of them."""
    try:
        pairs = tuple(headers.items() if isinstance(headers, dict) else headers)
    except TypeError:  # not iterable: refused below
        return checked_header_fields(headers)
    try:
        known = CHECKED_HEADER_LISTS.get(pairs)
    except TypeError:  # a pair that is a list
        return checked_header_fields(pairs)
    if known is None:
        known = checked_header_fields(pairs)
        if all(type(name) is str and type(value) is str for name, value in pairs):
            remember(CHECKED_HEADER_LISTS, pairs, known, HEADER_LISTS_CACHED)
    return known


def checked_header_fields(headers):
    """header_fields(), checking each field."""
    items = headers.items() if isinstance(headers, dict) else headers
    lines = []
    length = None
    keep_alive = True
    for name, value in items:
        if not isinstance(value, str):
            value = str(value) if isinstance(value, int) else value
        if not isinstance(name, str) or not isinstance(value, str) or FIELD_NAME.fullmatch(name) is None \
                or FIELD_VALUE.fullmatch(value) is None:
            raise ValueError(f"invalid header field {name!r}: {value!r}")
        lower = name.lower()
        if lower in SERVER_OWNED_FIELDS:
            if lower == "content-length":
                if CONTENT_LENGTH.fullmatch(value.strip()) is None:
                    raise ValueError(f"invalid Content-Length {value!r}")
                length = int(value)
            elif lower == "connection" and "close" in value.lower():
                keep_alive = False
            continue
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1"), length, keep_alive


def with_length(fields, length):
    return fields if length is None else fields + b"Content-Length: %d\r\n" % length


def body_bytes(chunk):
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"handler body parts must be bytes, not {type(chunk).__name__}")


def regular_file(body):
    """`body` if it is a binary file open on a regular file (sent with sendfile), else None."""
    if not isinstance(body, io.IOBase) or isinstance(body, io.TextIOBase):
        return None
    try:
        fd = body.fileno()
    except (OSError, ValueError):
        return None
    return body if stat.S_ISREG(os.fstat(fd).st_mode) else None
