"""Response heads as bytes: status lines, Server and Date, Connection; the built-in error pages; what a
reply is (a Reply: status, header field lines and a body plan for the output items).

Pure: builds bytes, never sends them.
"""

import time
from dataclasses import dataclass
from email.utils import formatdate

from oserver import __version__

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone", 412: "Precondition Failed",
    413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    417: "Expectation Failed", 421: "Misdirected Request", 422: "Unprocessable Content", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}
SERVER_FIELD = f"Server: oserver/{__version__}\r\n".encode()
STATUS_LINES = {status: f"HTTP/1.1 {status} {reason}\r\n".encode() for status, reason in REASONS.items()}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # RFC 9110 15.2.1: the interim answer to Expect: 100-continue
CONNECTION_FIELDS = {True: b"Connection: keep-alive\r\n\r\n", False: b"Connection: close\r\n\r\n"}
ALLOW_FIELD = b"Allow: GET, HEAD\r\n"
# Framing belongs to the server (RFC 9110 7.6.1, PEP 3333 "hop-by-hop"); Date and Server it sends itself. Neither
# mounted code nor a site's `headers` may set these (lower-case names).
SERVER_OWNED_FIELDS = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
                                 "trailer", "upgrade", "date", "server", "content-length"))


@dataclass(slots=True)
class DateField:
    """The `Date:` field line (RFC 9110 6.6.1, IMF-fixdate), formatted at most once a second."""

    second: int = -1
    line: bytes = b""

    def current(self):
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = b"Date: " + http_date(now).encode() + b"\r\n"
        return self.line


DATE = DateField()


def http_date(timestamp):
    """An IMF-fixdate string, e.g. 'Sun, 06 Nov 1994 08:49:37 GMT'."""
    return formatdate(timestamp, usegmt=True)


def response_head(status, fields, keep_alive, line=None):
    """A whole response head: status line (`line`, or the standard one), Server, Date, the given field bytes,
    Connection, blank line."""
    return b"".join((line or STATUS_LINES[status], SERVER_FIELD, DATE.current(), fields,
                     CONNECTION_FIELDS[keep_alive]))


def hsts_field(max_age):
    """The Strict-Transport-Security field line of TLS responses (RFC 6797), b"" when max_age is -1 (none)."""
    return b"Strict-Transport-Security: max-age=%d\r\n" % max_age if max_age >= 0 else b""


def error_body(status):
    title = f"{status} {REASONS[status]}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            f"<hr><center>oserver/{__version__}</center>\r\n</body>\r\n</html>\r\n").encode()


ERROR_BODIES = {status: error_body(status) for status in REASONS if status >= 300 and status != 304}


def error_fields(status, extra=b""):
    """Header fields of an error response with its small HTML body."""
    return b"Content-Type: text/html\r\nContent-Length: %d\r\n%s" % (len(ERROR_BODIES[status]), extra)


@dataclass(slots=True)
class Reply:
    """What to answer: a status, header field lines (bytes, CRLF-ended), `data` (body bytes sent with the
    head) and `parts`, the output items that send the rest of the body (files, streams: see output.py).
    Mounted code may give its own status `line` and forbid keep-alive (a body framed by closing)."""

    status: int
    fields: bytes
    data: bytes = b""
    parts: tuple = ()
    line: bytes | None = None
    keep_alive: bool = True


def error_reply(status, extra_fields=b""):
    """An error page; the common ones (no extra fields) are built once."""
    if not extra_fields:
        return ERROR_REPLIES[status]
    return Reply(status, error_fields(status, extra_fields), ERROR_BODIES[status])


def redirect_reply(location, status=301):
    return error_reply(status, b"Location: %s\r\n" % location.encode("latin-1"))


def error_extra_fields(reply):
    """The fields a built-in error page carries beside its own Content-Type and Content-Length (Allow,
    Content-Range, Location...), or None when `reply` is not a built-in error page."""
    body = ERROR_BODIES.get(reply.status)
    if body is None or reply.data is not body:
        return None
    return reply.fields[len(error_fields(reply.status)):]


ERROR_REPLIES = {status: Reply(status, error_fields(status), body) for status, body in ERROR_BODIES.items()}
