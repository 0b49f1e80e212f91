"""One client connection: bytes in -> parsed requests (and bodies) -> queued replies -> send / sendfile out.

Owns the connection's input buffer, its output queue, keep-alive and pipelining. It asks http.py to parse,
body.py to frame request bodies and its worker (static files, status page, mounted handlers) to decide; it
tells the worker which timer applies to it.
"""

import os
import socket
import time

from oserver.body import request_body
from oserver.handlers import HandlerBody, HandlerReply
from oserver.http import (CONTINUE, ERROR_BODIES, HttpError, check_incomplete_head, find_head, parse_request_head,
                          response_head, skip_empty_lines)
from oserver.mounts import Route
from oserver.static import FileSpan, error_reply

RECV_SIZE = 65536
PIPELINE_DEPTH = 16  # replies queued before the connection stops parsing pipelined requests
# Heads seen before -> their parsed, immutable Request: load tools and browsers repeat the same head, and a
# cached head was complete and valid (it holds no blank line), so a hit skips the whole parse.
PARSED_HEADS = {}
PARSED_HEADS_MAX = 1024
PARSED_HEAD_MAX_BYTES = 2048  # longer heads are parsed every time: 1024 hostile 16 KiB heads held ~40 MB


class Exchange:
    """One request/response pair in flight: what the access log and the counters need once it ends.
    `received` is what a request refused before it parsed began with (its request line, if it was read)."""

    __slots__ = ("request", "status", "head_bytes", "started", "received")

    def __init__(self, request, status, head_bytes, started, received):
        self.request = request
        self.status = status
        self.head_bytes = head_bytes
        self.started = started
        self.received = received


class Connection:
    __slots__ = ("worker", "sock", "fd", "address", "inbuf", "out", "body", "mounted", "closing", "writing",
                 "sent", "timer", "closed", "registered")

    def __init__(self, worker, sock, address):
        self.worker = worker
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.inbuf = b""
        self.out = []  # bytes / FileSpan / HandlerBody / Exchange; a list, not a deque: 10x smaller when idle
        self.body = None  # the request body being received (kept for a mounted handler, else dropped)
        self.mounted = None  # (request, route, interim bytes sent) of a mounted request awaiting its body
        self.closing = False  # close once the queued replies are sent
        self.writing = False  # registered for EPOLLOUT (output blocked) instead of EPOLLIN
        self.sent = 0  # bytes sent of the reply at the head of the queue
        self.timer = None  # the worker timer queue this connection sits in
        self.closed = False
        self.registered = False  # known to the worker's epoll

    # ------------------------------------------------------------ events

    def on_readable(self):
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.close()
        if not data:
            return self.close()
        self.inbuf = self.inbuf + data if self.inbuf else data
        self.process()

    def on_writable(self):
        self.process()

    def process(self):
        """Parse what can be answered, send what can be sent; repeat while pipelined requests are waiting."""
        while True:
            more = self.parse_requests()
            if not self.flush():
                return
            if self.closing:
                return self.close()
            if not more:
                break
        # a partial head, or a body still to come, is timed by header_timeout: trickling it never resets the clock
        self.worker.wait_for_request(self, bool(self.inbuf) or self.body is not None)

    # ------------------------------------------------------------ input

    def parse_requests(self):
        """Queue replies for the complete requests in the buffer; True if it stopped with requests left."""
        worker = self.worker
        while self.inbuf and not self.closing:
            if len(self.out) >= PIPELINE_DEPTH:
                return True
            if self.body is not None:
                if not self.receive_body():
                    return False
                continue
            buf = self.inbuf
            end = buf.find(b"\r\n\r\n")
            request = PARSED_HEADS.get(buf[:end]) if end > 0 else None
            try:
                if request is None:  # not a head seen before: the full parse
                    request = self.parse_head(buf)
                    if request is None:
                        return False
                else:
                    self.inbuf = buf[end + 4:]
                reply = worker.respond(self, request)
                if reply.__class__ is Route:
                    self.start_mounted(request, reply)
                    continue
            except HttpError as error:
                self.reject(error, buf)
                return False
            if request.content_length:  # read past it: the connection stays usable
                self.body = request_body(request.content_length, worker.config.max_body_bytes, False)
            self.queue_reply(request, reply)
        return False

    def start_mounted(self, request, route):
        """A request for mounted code: answered at once, or once its body is in (100 Continue sent first if
        asked for)."""
        if not request.content_length:
            self.mounted = (request, route, 0)
            return self.answer_mounted(b"")
        interim = self.expect_continue(request)
        self.body = request_body(request.content_length, self.worker.config.max_body_bytes, True)
        self.mounted = (request, route, interim)

    def parse_head(self, buf):
        """Parse the head at the start of `buf` (consuming it), or None while it is still incomplete."""
        config = self.worker.config
        stripped = skip_empty_lines(buf)
        found = find_head(stripped)
        if found is None:
            check_incomplete_head(stripped, config.max_request_line, config.max_header_bytes)
            if len(buf) > config.max_header_bytes:  # a flood of empty lines
                raise HttpError(431, "request header section too large")
            self.inbuf = buf  # empty lines stay until the head is whole: trickling them cannot reset its clock
            return None
        head, self.inbuf = found
        if len(head) > config.max_header_bytes:
            raise HttpError(431, "request header section too large")
        request = parse_request_head(head, config.max_request_line, config.max_header_fields)
        if request.content_length > config.max_body_bytes:
            raise HttpError(413, "request body too large")
        if len(head) <= PARSED_HEAD_MAX_BYTES:
            if len(PARSED_HEADS) >= PARSED_HEADS_MAX:
                PARSED_HEADS.clear()
            PARSED_HEADS[head] = request
        return request

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
        self.out.append(CONTINUE)
        return len(CONTINUE)

    def receive_body(self):
        """Take the request body's bytes from the input; True once it is whole (a mounted request is then
        answered). Broken framing or too large a body is refused (400/413) and the connection closed; a
        static reply, already queued, is sent first."""
        body = self.body
        try:
            self.inbuf = body.feed(self.inbuf)
        except HttpError as error:
            self.body = None
            if self.mounted is None:
                self.closing = True
            else:
                self.reject_pending(error, b"")
            return False
        if body.done:
            self.body = None
            if self.mounted is not None:
                self.answer_mounted(body.data())
            return True
        return False

    def answer_mounted(self, body):
        request, route, interim = self.mounted
        self.mounted = None
        worker = self.worker
        self.queue_reply(request, worker.call_handler(self, request, route, body), interim=interim)
        worker.now = time.monotonic()  # the reply is timed from before the handler ran; the rest from now

    def reject_pending(self, error, received):
        """reject() the request being received: a mounted one awaiting its body is logged by its request line
        (and counts the 100 Continue it was sent); otherwise `received` holds what arrived."""
        mounted, self.mounted = self.mounted, None
        if mounted is None:
            self.reject(error, received)
        else:
            self.reject(error, mounted[0].line, mounted[2])

    def reject(self, error, received, interim=0):
        """Answer a request that could not be parsed, then close: its framing can no longer be trusted.
        `received` holds the bytes the request began with, for the access log."""
        self.worker.log_rejected(self, error)
        self.queue_reply(None, error_reply(error.status), received, interim)

    # ------------------------------------------------------------ output

    def queue_reply(self, request, reply, received=None, interim=0):
        """Queue a reply's head, body parts and Exchange marker; `interim` counts bytes of a 100 Continue sent
        ahead of it."""
        keep_alive = request is not None and request.keep_alive and not self.worker.draining
        if reply.__class__ is HandlerReply:
            keep_alive = keep_alive and reply.keep_alive
            head = response_head(reply.status, reply.fields, keep_alive, reply.line)
        else:
            head = response_head(reply.status, reply.fields, keep_alive)
        out = self.out
        body = reply.body
        if not body or (request is not None and request.method == "HEAD"):
            out.append(head)
        elif len(body) == 1 and body[0].__class__ is bytes:
            out.append(head + body[0])
        else:
            out.append(head)
            out.extend(body)
        out.append(Exchange(request, reply.status, len(head) + interim, self.worker.now, received))
        if not keep_alive:
            self.closing = True

    def flush(self):
        """Send queued output within this turn's quota; True when all of it went out."""
        out = self.out
        sock = self.sock
        quota = self.worker.config.send_quota
        while out:
            item = out[0]
            kind = item.__class__
            if kind is bytes or kind is memoryview:
                flags = socket.MSG_MORE if len(out) > 1 and out[1].__class__ is FileSpan else 0
                try:
                    n = sock.send(item, flags)
                except (BlockingIOError, InterruptedError):
                    return self.wait_for_output()
                except OSError:
                    return self.close()
                self.sent += n
                if n < len(item):
                    out[0] = memoryview(item)[n:]
                    return self.wait_for_output()
                del out[0]
            elif kind is FileSpan:
                try:
                    n = os.sendfile(self.fd, item.file.fileno(), item.offset, min(item.count, quota))
                except (BlockingIOError, InterruptedError):
                    return self.wait_for_output()
                except OSError:
                    return self.close()
                if n == 0:  # the file shrank under us: never send short data, close instead
                    self.worker.log.warning("file truncated while being sent: %s", item.file.name)
                    return self.close()
                self.sent += n
                item.offset += n
                item.count -= n
                quota -= n
                if item.count == 0:
                    del out[0]
                elif quota <= 0:
                    return self.wait_for_output()
            elif kind is Exchange:
                del out[0]
                self.worker.exchange_done(self, item, self.sent - item.head_bytes)
                self.sent = 0
            else:  # a handler's body, produced as the client takes it
                if quota <= 0:
                    return self.wait_for_output()
                part = item.next_part()
                if part is None:
                    del out[0]
                    item.close()
                elif part is False:
                    return self.close()
                else:
                    out.insert(0, part)
                    if part.__class__ is bytes:
                        quota -= len(part)
        if self.writing:
            self.writing = False
            self.worker.watch_input(self)
        return True

    def wait_for_output(self):
        if not self.writing:
            self.writing = True
            self.worker.watch_output(self)
        self.worker.wait_for_send(self)
        return False

    def expire_head(self):
        """The request head or body did not arrive within header_timeout: 408, then close."""
        self.reject_pending(HttpError(408, "request not received in time"), self.inbuf)
        if self.flush():
            self.close()

    def fail(self):
        """A bug surfaced while handling this connection: answer 500 if nothing was sent yet, then close."""
        if self.sent == 0 and not self.closed:
            self.drop_output()
            try:
                self.sock.send(response_head(500, error_reply(500).fields, False) + ERROR_BODIES[500])
            except OSError:
                pass
        self.close()

    def close(self):
        if self.closed:
            return False
        self.closed = True
        self.drop_output()
        self.worker.forget(self)
        try:
            self.sock.close()
        except OSError:
            pass
        return False

    def drop_output(self):
        """Forget the queued output: unfinished replies are logged with what was actually sent, and handler
        bodies closed."""
        for item in self.out:
            if item.__class__ is Exchange:
                self.worker.exchange_done(self, item, max(self.sent - item.head_bytes, 0), aborted=True)
                self.sent = 0
            elif isinstance(item, HandlerBody):
                item.close()
        self.out.clear()
