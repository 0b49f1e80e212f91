"""The HTTP/1.1 connection protocol, sans-IO: bytes in; requests routed, replies queued, timer and close
decisions out.

One Http1Protocol per connection. Its input side is in one named state at a time (IDLE, READING_HEAD,
READING_BODY, WAITING_FOR_APP, CLOSING); its output is a queue of items (output.py) that write themselves to
whatever transport the caller hands `write()`. Keep-alive, pipelining, request bodies, 100-continue,
refusals and the request timeout live here. It never touches a socket, a timer or a process: the caller
reads `state` to choose a timer and `linger` to choose how to close. Tested by feeding bytes.
"""

from dataclasses import dataclass

from oserver.http.body import request_body
from oserver.http.output import Interim, Response
from oserver.http.parser import (HttpError, check_head_limits, check_request_start, find_head, parse_request_head,
                                 skip_empty_lines)
from oserver.http.response import CONTINUE, Reply, error_reply, response_head

# The input side's states. Sending is not a state: output is queued in any of them and written as the
# transport takes it; CLOSING means nothing more is read as a request, and the connection closes once the
# queue is sent.
IDLE = "idle"  # no byte of a next request yet (the keep-alive wait)
READING_HEAD = "reading head"
READING_BODY = "reading body"
WAITING_FOR_APP = "waiting for app"  # mounted code is computing the reply of the request at the head
CLOSING = "closing"
CLOSED = "closed"  # the connection is gone: a reply still coming from mounted code is dropped

PIPELINE_DEPTH = 16  # replies queued before the protocol stops parsing pipelined requests
# Heads seen before -> their parsed, immutable Request: load tools and browsers repeat the same head, and a
# cached head was complete and valid (it holds no blank line), so a hit skips the whole parse.
PARSED_HEADS = {}
PARSED_HEADS_MAX = 1024
PARSED_HEAD_MAX_BYTES = 2048  # longer heads are parsed every time: 1024 hostile 16 KiB heads held ~40 MB
NO_LINGER_STATUSES = (408,)  # refusals after which the client is not sending: close at once


@dataclass(slots=True, eq=False)
class Services:
    """What the protocols of one worker share. `config` gives the limits; `router.route(request, client)`
    answers a Reply or the Route of mounted code; `executor.submit(call, protocol)` runs mounted code and
    calls `protocol.app_replied`; `clock.now` is the loop's time; `events` hears `answered(status, path)`,
    `refused(client, error)` and `response_done(peer, response, aborted)`; `draining` ends keep-alive;
    `real_ip.client(client, headers)`, when set, is a request's client sent through trusted proxies;
    `tls_fields` are added to every response on a TLS connection (Strict-Transport-Security)."""

    config: object
    router: object
    executor: object
    clock: object
    events: object
    draining: bool = False
    real_ip: object = None
    tls_fields: bytes = b""


@dataclass(slots=True, eq=False)
class AppCall:
    """A request for mounted code: where it goes, when it started (its first byte, for $request_time), its
    client's address, the scheme it came by ("http" or "https"), the bytes of a 100 Continue sent ahead of its
    reply, and its body once received."""

    request: object
    route: object
    started: float
    client: tuple
    scheme: str
    interim: int = 0
    body: bytes = b""


class Http1Protocol:
    __slots__ = ("services", "client", "peer", "local_address", "owner", "inbuf", "out", "state", "body",
                 "app_call", "linger", "started", "tls")

    def __init__(self, services, client, local_address, peer=None):
        self.services = services
        self.client = client  # (host, port) of the connection's client
        self.peer = peer or client  # (host, port) of the other end of the socket (a proxy's, in front of it)
        self.local_address = local_address  # () -> (host, port) the client connected to
        self.owner = None  # the caller's handle on this connection, for whoever resumes it (an executor)
        self.started = services.clock.now  # when the first byte of the request being read arrived
        self.inbuf = b""
        self.out = []  # Response / Interim items; a list, not a deque: 10x smaller when idle
        self.state = IDLE
        self.body = None  # the request body being received (kept for mounted code, else dropped)
        self.app_call = None  # the AppCall of a mounted request awaiting its body or its reply
        self.linger = False  # close by reading what the client still sends (after a refusal)
        self.tls = None  # the TLS session (protocol, cipher, resumed) of a TLS connection, set before any byte

    # ------------------------------------------------------------ input

    def receive(self, data):
        """Bytes from the client; advance() then acts on them."""
        self.inbuf = self.inbuf + data if self.inbuf else data
        if self.state is IDLE:
            self.state = READING_HEAD
            self.started = self.services.clock.now

    def advance(self):
        """Answer (queue replies for) the complete requests in the input; True if it stopped with requests
        left because the output queue is full."""
        while self.inbuf:
            state = self.state
            if state is CLOSING or state is WAITING_FOR_APP:
                return False
            if len(self.out) >= PIPELINE_DEPTH:
                return True
            if state is READING_BODY:
                if not self.receive_body():
                    return False
            elif not self.read_request():
                return False
        if self.state is READING_HEAD:
            self.state = IDLE
        return False

    def read_request(self):
        """Parse and route the request at the start of the input; False when its head is incomplete or it
        was refused."""
        buf = self.inbuf
        end = buf.find(b"\r\n\r\n")
        request = PARSED_HEADS.get(buf[:end]) if end > 0 else None
        services = self.services
        try:
            if request is None:  # not a head seen before: the full parse
                request = self.parse_head(buf)
                if request is None:
                    return False
            else:
                self.inbuf = buf[end + 4:]
            client = self.client
            if services.real_ip is not None:  # through trusted proxies: the client they name
                client = services.real_ip.client(client, request.headers)
            answer = services.router.route(request, client, self.tls is not None)
            if answer.__class__ is not Reply:  # the Route of mounted code
                self.start_app(request, answer, client)
                return True
        except HttpError as error:
            self.refuse(error, buf)
            return False
        services.events.answered(answer.status, request.path)
        if request.content_length:  # read past it: the connection stays usable
            self.body = request_body(request.content_length, services.config.max_body_bytes, False)
            self.state = READING_BODY
        started, self.started = self.started, services.clock.now  # next_started(), without the call
        self.queue_reply(request, answer, started, client)
        return True

    def next_started(self):
        """When the request just read started; a request pipelined behind it starts now."""
        started, self.started = self.started, self.services.clock.now
        return started

    def parse_head(self, buf):
        """Parse the head at the start of `buf` (consuming it), or None while it is still incomplete."""
        config = self.services.config
        stripped = skip_empty_lines(buf)
        found = find_head(stripped)
        if found is None:
            check_request_start(stripped)
            check_head_limits(stripped, config.max_request_line, config.max_header_bytes)
            if len(buf) > config.max_header_bytes:  # a flood of empty lines
                raise HttpError(431, "request header section too large")
            self.inbuf = buf  # empty lines stay until the head is whole: trickling them cannot reset its clock
            return None
        head, self.inbuf = found
        check_head_limits(head, config.max_request_line, config.max_header_bytes)
        request = parse_request_head(head, config.max_request_line, config.max_header_fields)
        if request.content_length > config.max_body_bytes:
            raise HttpError(413, "request body too large")
        if len(head) <= PARSED_HEAD_MAX_BYTES:
            if len(PARSED_HEADS) >= PARSED_HEADS_MAX:
                PARSED_HEADS.clear()
            PARSED_HEADS[head] = request
        return request

    def receive_body(self):
        """Take the request body's bytes from the input; True once it is whole (mounted code is then called).
        Broken framing or too large a body is refused (400/413) and the connection closes; a reply already
        queued for it is sent first."""
        body = self.body
        try:
            self.inbuf = body.feed(self.inbuf)
        except HttpError as error:
            self.body = None
            if self.app_call is None:
                self.state = CLOSING
                self.linger = True
            else:
                self.refuse_pending(error)
            return False
        if not body.done:
            return False
        self.body = None
        self.state = READING_HEAD
        if self.app_call is not None:
            self.call_app(body.data())
        return True

    # ------------------------------------------------------------ mounted code

    def start_app(self, request, route, client):
        """A request for mounted code: called at once, or once its body is in (after a 100 Continue, if it
        asked for one)."""
        call = AppCall(request, route, self.next_started(), client, "http" if self.tls is None else "https")
        self.app_call = call
        if not request.content_length:
            return self.call_app(b"")
        call.interim = self.expect_continue(request)
        self.body = request_body(request.content_length, self.services.config.max_body_bytes, True)
        self.state = READING_BODY

    def expect_continue(self, request):
        """RFC 9110 10.1.1: a mounted request asking for "100-continue" gets it before its body is read (the
        bytes queued are returned); HTTP/1.0 ignores Expect, any other expectation is refused with 417."""
        expect = request.headers.get("expect")
        if expect is None or request.version == "HTTP/1.0":
            return 0
        if expect.lower() != "100-continue":
            raise HttpError(417, "unsupported expectation")
        if self.inbuf:  # the body is already on its way
            return 0
        self.out.append(Interim(CONTINUE))
        return len(CONTINUE)

    def call_app(self, body):
        call = self.app_call
        call.body = body
        self.state = WAITING_FOR_APP
        self.services.executor.submit(call, self)

    def app_replied(self, call, reply):
        """Mounted code answered `call` (the request at the head of the input)."""
        if self.state is CLOSED:  # the client left meanwhile
            for part in reply.parts:
                part.close()
            return
        self.app_call = None
        self.state = READING_HEAD
        self.services.events.answered(reply.status, call.request.path)
        self.queue_reply(call.request, reply, call.started, call.client, call.interim)

    # ------------------------------------------------------------ refusals and timeouts

    def refuse(self, error, received, interim=0):
        """Answer a request that could not be accepted, then close: its framing can no longer be trusted.
        `received` holds the bytes it began with, for the access log. Unless the client is known to be
        silent, it may still be sending: the connection lingers, so that it reads the answer."""
        self.services.events.refused(self.client, error)
        self.linger = error.status not in NO_LINGER_STATUSES
        self.queue_reply(None, error_reply(error.status), self.next_started(), self.client, interim, received)

    def refuse_connection(self, reply):
        """Answer `reply` before any request is read (a per-client connection limit's 503), then close,
        lingering: the client reads it once it has sent its request."""
        self.services.events.answered(reply.status, None)
        self.linger = True
        self.queue_reply(None, reply, self.started, self.client, received=b"")

    def refuse_pending(self, error):
        """refuse() the request being received: mounted code's request awaiting its body is logged by its
        request line (and counts the 100 Continue it was sent); otherwise the input holds what arrived."""
        call, self.app_call = self.app_call, None
        self.body = None
        if call is None:
            self.refuse(error, self.inbuf)
        else:
            self.refuse(error, call.request.line, call.interim)

    def timeout(self):
        """The request head or body did not arrive within header_timeout: 408, then close."""
        self.refuse_pending(HttpError(408, "request not received in time"))

    # ------------------------------------------------------------ output

    def queue_reply(self, request, reply, started, client, interim=0, received=None):
        """Queue a reply to `client` as a Response; `interim` counts the bytes of a 100 Continue sent ahead of
        it."""
        keep_alive = request is not None and request.keep_alive and reply.keep_alive and \
            not self.services.draining
        fields = reply.fields if self.tls is None else reply.fields + self.services.tls_fields
        head = response_head(reply.status, fields, keep_alive, reply.line)
        if request is not None and request.method == "HEAD":
            pending, parts = head, ()
        else:
            pending = head + reply.data if reply.data else head
            parts = list(reply.parts) if reply.parts else ()
        self.out.append(Response(request, reply.status, len(head) + interim, started, received, pending, parts,
                                 interim, 0, client, self.tls))  # positional: the hot path's cheaper call
        if not keep_alive:
            self.state = CLOSING

    def write(self, transport):
        """Send queued output within this turn's send_quota; True when all of it went out, False when the
        transport is full or the quota spent. OSError or SendFailed: the connection must close; an output
        part may raise its executor's AppPending (it waits for mounted code to produce more)."""
        out = self.out
        quota = self.services.config.send_quota
        while out:
            item = out[0]
            item.quota = quota
            try:
                if not item.write(transport):
                    return False
            except BlockingIOError:
                return False
            quota = item.quota
            del out[0]
            item.ended(self.services.events, self.peer, False)
        return True

    def response_started(self):
        """Has any byte of the reply at the head of the queue been sent?"""
        return bool(self.out) and self.out[0].sent > 0

    def abort(self):
        """The connection is closed: every queued reply ends unsent (logged with what was actually sent)."""
        self.state = CLOSED
        if self.out:
            out, self.out = self.out, []
            for item in out:
                item.ended(self.services.events, self.peer, True)
