"""Request heads: find one in bytes and parse it into a Request, or refuse it with an HttpError.

Bytes in, a Request or an HttpError out; never touches sockets, files or processes. Every rule names the
RFC 9112 (message syntax) or RFC 9110 (semantics) section it comes from; the grammar is in grammar.py.
"""

from dataclasses import dataclass

from oserver.http.grammar import (ABSOLUTE_FORM, CONTENT_LENGTH, FIELD_LINE, HEAD_END, HOST_VALUE,
                                  LEADING_EMPTY_LINES, OWS, OWS_TEXT, REQUEST_LINE, REQUEST_START)


class HttpError(Exception):
    """A request the server refuses: answered with `status`, then the connection is closed."""

    def __init__(self, status, reason):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


METHODS_SERVED = ("GET", "HEAD")
CHUNKED = -1  # Request.content_length of a body sent with Transfer-Encoding: chunked (RFC 9112 7.1)
CR = ord("\r")
TLS_HANDSHAKE_RECORD = 0x16  # the first byte of a TLS ClientHello


@dataclass(slots=True, frozen=True, eq=False)
class Request:
    """One parsed request head. `path` is the raw (still percent-encoded) path, without the query; `line` the
    request line as received; `host` the host name it names (see host_name). Frozen: a parsed head is cached
    and shared by every request that repeats it."""

    method: str
    target: str
    path: str | None
    query: str
    version: str
    headers: dict
    keep_alive: bool
    content_length: int
    line: bytes
    host: str = ""


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


def check_request_start(buf):
    """An incomplete head (empty lines skipped) must start with a method's first character: anything else is
    refused at once, not when a line end comes (a TLS ClientHello sent to the plain port waits for an answer
    and sends no line end). A CR may be the start of an empty line still arriving."""
    if buf and buf[0] != CR and REQUEST_START.match(buf) is None:
        raise HttpError(400, "TLS handshake sent to the plain HTTP port" if buf[0] == TLS_HANDSHAKE_RECORD
                        else "not an HTTP request")


def check_head_limits(buf, max_request_line, max_header_bytes):
    """Raise the limit error a head (whole, or the start of one) deserves: 414 for its request line first,
    then 431 for its size; a partial head is checked as it grows, so it cannot grow forever."""
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


def host_name(target, host):
    """The host a request names, lower-case, without its port or a trailing dot ("" for none): an absolute-form
    target's authority, else the Host field (RFC 9112 3.2.2: the target's wins)."""
    if target[0] != "/":
        m = ABSOLUTE_FORM.fullmatch(target)
        if m is not None:
            host = m[1]
    if not host:
        return ""
    name = host[:host.find("]") + 1] if host[0] == "[" else host.partition(":")[0]
    return name.rstrip(".").lower()


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
                   body_length(version, headers), lines[0], host_name(target, host))


