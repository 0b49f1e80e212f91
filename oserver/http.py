"""Sans-IO HTTP/1.x: find and parse a request head in bytes, build response heads as bytes.

Bytes in, a Request or an HttpError out. This module never touches sockets, files or processes; every
rule names the RFC 9112 (message syntax) or RFC 9110 (semantics) section it comes from.
"""

import re
import time
from email.utils import formatdate

from oserver import __version__


class HttpError(Exception):
    """A request the server refuses: answered with `status`, then the connection is closed."""

    def __init__(self, status, reason):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


# RFC 9110 5.6.2: token = 1*tchar
TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# RFC 9112 3: request-line = method SP request-target SP HTTP-version, exactly one SP between them.
# The target is any run of visible octets (RFC 9112 3.2); obs-text is tolerated as nginx does.
REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") ([^\x00-\x20\x7f]+) HTTP/([0-9])\.([0-9])")
# RFC 9112 5: field-line = field-name ":" OWS field-value OWS, no whitespace before the colon;
# RFC 9110 5.5: field-value is visible octets, SP, HTAB and obs-text; no CR, LF, NUL or other CTL.
# One character class for OWS and value together keeps matching linear (no backtracking on long runs of
# spaces); the OWS is stripped from the value afterwards.
FIELD_LINE = re.compile(rb"(" + TOKEN + rb"):([\t\x20-\x7e\x80-\xff]*)")
OWS = b" \t"
OWS_TEXT = " \t"
# RFC 9112 2.2: the head ends at the first empty line; a bare LF is accepted as a line terminator.
HEAD_END = re.compile(rb"\r?\n\r?\n")
# RFC 9112 2.2: empty lines (CRLF or bare LF) before the request line are ignored; a bare CR is not one.
LEADING_EMPTY_LINES = re.compile(rb"(?:\r?\n)*")
CR = ord("\r")
# RFC 9112 3.2.2: absolute-form, request-target = absolute-URI (http or https here).
ABSOLUTE_FORM = re.compile(r"[hH][tT][tT][pP][sS]?://([^/?#]*)(.*)", re.S)
# RFC 9112 6.3: Content-Length = 1*DIGIT; more digits than this is an absurd length.
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
# RFC 9110 7.2: Host = uri-host [ ":" port ]; RFC 3986 3.2.2: uri-host = IP-literal / IPv4address / reg-name,
# reg-name = *( unreserved / pct-encoded / sub-delims ). No whitespace, slashes or userinfo.
HOST_VALUE = re.compile(r"(?:\[[0-9A-Za-z:.%_~-]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]*)(?::[0-9]*)?")

METHODS_SERVED = ("GET", "HEAD")
CHUNKED = -1  # Request.content_length of a body sent with Transfer-Encoding: chunked (RFC 9112 7.1)


class Request:
    """One parsed request head. `path` is the raw (still percent-encoded) path, without the query."""

    __slots__ = ("method", "target", "path", "query", "version", "headers", "keep_alive", "content_length",
                 "line")

    def __init__(self, method, target, path, query, version, headers, keep_alive, content_length, line):
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.line = line


def skip_empty_lines(buf):
    """RFC 9112 2.2: a server SHOULD ignore empty lines received before the request-line."""
    if buf and buf[0] > CR:  # the usual case: a request line starts here (every tchar is above CR)
        return buf
    return buf[LEADING_EMPTY_LINES.match(buf).end():]


def find_head(buf):
    """(head, rest) when `buf` holds a complete head (without its blank line), else None."""
    m = HEAD_END.search(buf)
    if m is None:
        return None
    return buf[:m.start()], buf[m.end():]


def check_incomplete_head(buf, max_request_line, max_header_bytes):
    """Raise the limit error an incomplete head already deserves (414 or 431), so it cannot grow forever."""
    newline = buf.find(b"\n")
    if (newline == -1 and len(buf) > max_request_line) or newline > max_request_line:
        raise HttpError(414, "request line too long")
    if len(buf) > max_header_bytes:
        raise HttpError(431, "request header section too large")


def split_lines(head):
    """Lines of a head ended by CRLF or (RFC 9112 2.2) by a bare LF; a bare CR stays in and is refused later."""
    lines = head.split(b"\r\n")
    if head.count(b"\n") >= len(lines):  # more LFs than CRLFs: some line ends with a bare LF
        lines = head.split(b"\n")
        # the CR before each LF belongs to its terminator; one ending the last line is a bare CR
        lines[:-1] = [line[:-1] if line.endswith(b"\r") else line for line in lines[:-1]]
    return lines


def parse_request_line(line, max_request_line):
    """(method, target, version) from the request line; 400, 414 or 505 when it is not acceptable."""
    if len(line) > max_request_line:
        raise HttpError(414, "request line too long")
    m = REQUEST_LINE.fullmatch(line)
    if m is None:
        raise HttpError(400, "malformed request line")
    method, target, major, minor = m.groups()
    if major != b"1":  # RFC 9110 6.2: only HTTP/1.x is spoken here
        raise HttpError(505, "HTTP version not supported")
    version = "HTTP/1.0" if minor == b"0" else "HTTP/1.1"  # RFC 9110 6.2: a higher 1.x minor is 1.1
    return method.decode("ascii"), target.decode("latin-1"), version


def parse_fields(lines, max_header_fields):
    """Header fields as {lower-case name: value}; duplicates joined with ", " (RFC 9110 5.3)."""
    if len(lines) > max_header_fields:
        raise HttpError(431, "too many header fields")
    headers = {}
    for line in lines:
        m = FIELD_LINE.fullmatch(line)
        if m is None:
            if line[:1] in (b" ", b"\t"):  # RFC 9112 5.2: obs-fold is rejected with 400
                raise HttpError(400, "obsolete line folding")
            raise HttpError(400, "malformed header field")
        name = m[1].decode("ascii").lower()
        value = m[2].strip(OWS).decode("latin-1")
        previous = headers.get(name)
        if previous is None:
            headers[name] = value
        elif name == "host":  # RFC 9112 3.2: exactly one Host
            raise HttpError(400, "duplicate Host header")
        elif name == "content-length":  # RFC 9112 6.3: differing duplicates are unrecoverable
            if value != previous:
                raise HttpError(400, "conflicting Content-Length headers")
        else:
            headers[name] = previous + ", " + value
    return headers


def split_target(method, target):
    """(path, query) from a request-target: origin-form or absolute-form (RFC 9112 3.2); None path for the
    asterisk and authority forms, which only OPTIONS and CONNECT may use (answered 405 later)."""
    if target[0] != "/":
        m = ABSOLUTE_FORM.fullmatch(target)
        if m is not None:
            if not m[1] or HOST_VALUE.fullmatch(m[1]) is None:  # RFC 9110 4.2.1: an http URI needs a host
                raise HttpError(400, "invalid authority in request target")
            target = m[2] or "/"
            if target[0] != "/":
                target = "/" + target
        elif (method == "OPTIONS" and target == "*") or method == "CONNECT":
            return None, ""
        else:
            raise HttpError(400, "invalid request target")
    path, _, query = target.partition("?")
    return path, query


def connection_tokens(headers):
    value = headers.get("connection")
    if not value:
        return ()
    return [token.strip() for token in value.lower().split(",")]


def wants_keep_alive(version, headers):
    """RFC 9112 9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive"."""
    tokens = connection_tokens(headers)
    if version == "HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens and "close" not in tokens


def body_length(version, headers):
    """The request body's length (RFC 9112 6.3), or CHUNKED; framing that cannot be trusted is refused."""
    coding = headers.get("transfer-encoding")
    if coding is not None:
        # RFC 9112 6.3 item 3: with a Content-Length too it is a smuggling attempt; RFC 9112 6.1: an HTTP/1.0
        # message with a transfer coding has faulty framing. Either way: 400 and close.
        if "content-length" in headers:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if version == "HTTP/1.0":
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
        codings = [c.strip(OWS_TEXT).lower() for c in coding.split(",")]
        if codings == ["chunked"]:
            return CHUNKED
        if "chunked" in codings[:-1] or not all(codings):  # RFC 9112 6.1: chunked once, and last
            raise HttpError(400, "invalid Transfer-Encoding")
        raise HttpError(501, "transfer coding not implemented")  # RFC 9112 6.1: gzip, compress, ...
    value = headers.get("content-length")
    if value is None:
        return 0
    if CONTENT_LENGTH.fullmatch(value) is None:
        raise HttpError(400, "invalid Content-Length")
    return int(value)


def parse_request_head(head, max_request_line=8192, max_header_fields=100):
    """Parse a complete request head (request line and field lines, no blank line) into a Request."""
    lines = split_lines(head)
    method, target, version = parse_request_line(lines[0], max_request_line)
    headers = parse_fields(lines[1:], max_header_fields)
    host = headers.get("host")
    if host is None:
        if version == "HTTP/1.1":  # RFC 9112 3.2: a 1.1 request without Host gets 400
            raise HttpError(400, "missing Host header")
    elif HOST_VALUE.fullmatch(host) is None:
        raise HttpError(400, "invalid Host header")
    path, query = split_target(method, target)
    return Request(method, target, path, query, version, headers, wants_keep_alive(version, headers),
                   body_length(version, headers), lines[0])


# ---------------------------------------------------------------- responses

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified", 307: "Temporary Redirect",
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone", 412: "Precondition Failed",
    413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    417: "Expectation Failed", 422: "Unprocessable Content", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}
SERVER_FIELD = f"Server: oserver/{__version__}\r\n".encode()
STATUS_LINES = {status: f"HTTP/1.1 {status} {reason}\r\n".encode() for status, reason in REASONS.items()}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # RFC 9110 15.2.1: the interim answer to Expect: 100-continue
CONNECTION_FIELDS = {True: b"Connection: keep-alive\r\n\r\n", False: b"Connection: close\r\n\r\n"}
ALLOW_FIELD = b"Allow: GET, HEAD\r\n"


class DateField:
    """The `Date:` field line (RFC 9110 6.6.1, IMF-fixdate), formatted at most once a second."""

    __slots__ = ("second", "line")

    def __init__(self):
        self.second = -1
        self.line = b""

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


def error_body(status):
    title = f"{status} {REASONS[status]}"
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            f"<hr><center>oserver/{__version__}</center>\r\n</body>\r\n</html>\r\n").encode()


ERROR_BODIES = {status: error_body(status) for status in REASONS if status >= 300 and status != 304}


def error_fields(status, extra=b""):
    """Header fields of an error response with its small HTML body."""
    return b"Content-Type: text/html\r\nContent-Length: %d\r\n%s" % (len(ERROR_BODIES[status]), extra)
