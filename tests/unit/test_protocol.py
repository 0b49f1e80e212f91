"""The HTTP/1.1 protocol state machine, fed bytes: no socket, no worker, no router but a stand-in."""

import dataclasses
import re

import pytest

from oserver.apps.mounts import Mount, Route
from oserver.config import Config
from oserver.http.output import FileSpan, Part, SendFailed
from oserver.http.protocol import (CLOSING, IDLE, PIPELINE_DEPTH, READING_BODY, READING_HEAD, WAITING_FOR_APP,
                                   Http1Protocol, Services)
from oserver.http.realip import Networks, RealIp
from oserver.http.response import Reply

CLIENT = ("192.0.2.1", 40000)
HELLO = Reply(200, b"Content-Type: text/plain\r\nContent-Length: 5\r\n", b"hello")


def get(path="/", extra=b""):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n"


class Router:
    """Paths under /app go to mounted code; anything else gets HELLO."""

    def __init__(self):
        self.app = Route(Mount("/app", "test:app", None, "handler"), "/app", "")
        self.clients = []  # the client of each request routed

    def route(self, request, client, secure=False):
        self.clients.append(client)
        self.secure = secure
        return self.app if request.path.startswith("/app") else HELLO


class Executor:
    """Holds AppCalls until the test answers them (as a thread pool would)."""

    def __init__(self):
        self.calls = []

    def submit(self, call, protocol):
        self.calls.append((call, protocol))

    def answer(self, reply):
        call, protocol = self.calls.pop(0)
        protocol.app_replied(call, reply)


class Clock:
    def __init__(self):
        self.now = 100.0


class Events:
    def __init__(self):
        self.answered_statuses = []
        self.refused_statuses = []
        self.done = []  # (status, body bytes, aborted)
        self.clients = []  # (client, peer) of each response

    def answered(self, status, path):
        self.answered_statuses.append(status)

    def refused(self, client, error):
        self.refused_statuses.append(error.status)

    def response_done(self, peer, response, aborted):
        self.done.append((response.status, max(response.sent - response.head_bytes, 0), aborted))
        self.clients.append((response.client, peer))


class Transport:
    """Takes up to `room` bytes (then is full: BlockingIOError), as a socket's send buffer would."""

    def __init__(self, room=1 << 30):
        self.room = room
        self.sent = bytearray()

    def send(self, data):
        if self.room <= 0:
            raise BlockingIOError
        n = min(len(data), self.room)
        self.sent += bytes(data[:n])
        self.room -= n
        return n

    send_corked = send

    def sendfile(self, file, offset, count):
        return self.send(file.read_at(offset, count))


class FakeFile:
    name = "fake"

    def __init__(self, data):
        self.data = data

    def read_at(self, offset, count):
        return self.data[offset:offset + count]


def protocol(real_ip=None, **limits):
    services = Services(dataclasses.replace(Config(), **limits), Router(), Executor(), Clock(), Events(),
                        real_ip=real_ip)
    return Http1Protocol(services, CLIENT, lambda: ("127.0.0.1", 8080))


def feed(proto, data):
    proto.receive(data)
    return proto.advance()


def responses(proto, transport=None):
    transport = transport or Transport()
    proto.write(transport)
    return bytes(transport.sent)


def statuses(wire):
    return [int(status) for status in re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", wire)]


# ---------------------------------------------------------------- requests and states

def test_a_request_is_answered_and_the_connection_goes_idle():
    proto = protocol()
    feed(proto, get())
    wire = responses(proto)
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n") and wire.endswith(b"keep-alive\r\n\r\nhello")
    assert proto.state is IDLE and proto.services.events.done == [(200, 5, False)]


def test_a_partial_head_waits_in_reading_head():
    proto = protocol()
    feed(proto, b"GET / HTTP/1.1\r\nHo")
    assert proto.state is READING_HEAD and proto.out == []
    feed(proto, b"st: x\r\n\r\n")
    assert statuses(responses(proto)) == [200] and proto.state is IDLE


def test_pipelined_requests_are_answered_in_order():
    proto = protocol()
    feed(proto, get("/a") + get("/app") + get("/b"))
    proto.services.executor.answer(Reply(201, b"Content-Length: 0\r\n"))
    proto.advance()
    assert statuses(responses(proto)) == [200, 201, 200]


def test_pipelining_stops_at_the_queue_depth_and_resumes_once_sent():
    proto = protocol()
    assert feed(proto, get() * (PIPELINE_DEPTH + 4)) is True
    assert len(proto.out) == PIPELINE_DEPTH
    responses(proto)
    assert proto.advance() is False and len(proto.out) == 4


def test_connection_close_answers_then_reads_nothing_more():
    proto = protocol()
    feed(proto, get("/", b"Connection: close\r\n") + get("/next"))
    wire = responses(proto)
    assert statuses(wire) == [200] and b"Connection: close\r\n" in wire
    assert proto.state is CLOSING and not proto.linger


def test_draining_answers_with_connection_close():
    proto = protocol()
    proto.services.draining = True
    feed(proto, get())
    assert b"Connection: close\r\n" in responses(proto) and proto.state is CLOSING


def test_a_body_sent_to_a_file_is_read_past():
    proto = protocol()
    feed(proto, get("/", b"Content-Length: 5\r\n") + b"123")
    assert proto.state is READING_BODY
    feed(proto, b"45" + get("/next"))
    assert statuses(responses(proto)) == [200, 200] and proto.state is IDLE


def test_a_head_request_gets_no_body():
    proto = protocol()
    feed(proto, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert responses(proto).endswith(b"\r\n\r\n")


# ---------------------------------------------------------------- mounted code

def test_mounted_code_gets_its_chunked_body_once_whole():
    proto = protocol()
    feed(proto, b"POST /app HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert proto.state is READING_BODY and proto.services.executor.calls == []
    feed(proto, b"0\r\n\r\n")
    (call, _), = proto.services.executor.calls
    assert call.body == b"abc" and proto.state is WAITING_FOR_APP


def test_the_next_request_waits_while_mounted_code_runs():
    proto = protocol()
    feed(proto, get("/app") + get("/b"))
    assert proto.state is WAITING_FOR_APP and proto.out == []
    proto.services.executor.answer(HELLO)
    proto.advance()
    assert statuses(responses(proto)) == [200, 200]


def test_expect_100_continue_is_answered_before_the_body():
    proto = protocol()
    feed(proto, b"POST /app HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert responses(proto) == b"HTTP/1.1 100 Continue\r\n\r\n"
    feed(proto, b"ok")
    proto.services.executor.answer(HELLO)
    assert statuses(responses(proto)) == [200]


def test_mounted_code_may_end_keep_alive():
    proto = protocol()
    feed(proto, get("/app"))
    proto.services.executor.answer(dataclasses.replace(HELLO, keep_alive=False))
    assert b"Connection: close\r\n" in responses(proto) and proto.state is CLOSING


# ---------------------------------------------------------------- refusals

def test_an_oversized_head_arriving_whole_is_refused_with_431_and_lingers():
    proto = protocol()
    feed(proto, get("/", b"X-Big: " + b"a" * 70000 + b"\r\n"))
    assert statuses(responses(proto)) == [431]
    assert proto.state is CLOSING and proto.linger and proto.services.events.refused_statuses == [431]


def test_a_long_request_line_arriving_whole_is_414_not_431():
    proto = protocol()
    feed(proto, get("/" + "a" * 20000))
    assert statuses(responses(proto)) == [414]


def test_a_malformed_request_is_400_and_nothing_after_it_is_read():
    proto = protocol()
    feed(proto, b"GET / HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n" + get())
    assert statuses(responses(proto)) == [400] and proto.state is CLOSING


def test_too_large_a_body_after_a_static_reply_closes_after_that_reply():
    proto = protocol(max_body_bytes=4)
    feed(proto, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n")
    assert statuses(responses(proto)) == [200] and proto.state is CLOSING and proto.linger


def test_a_timeout_is_408_without_lingering():
    proto = protocol()
    feed(proto, b"GET / HTT")
    proto.timeout()
    assert statuses(responses(proto)) == [408] and proto.state is CLOSING and not proto.linger


def test_a_timeout_while_mounted_code_waits_for_its_body_logs_its_request():
    proto = protocol()
    feed(proto, b"POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc")
    proto.timeout()
    assert statuses(responses(proto)) == [408] and proto.out == []
    assert proto.app_call is None and proto.body is None


# ---------------------------------------------------------------- output

def test_a_full_transport_keeps_the_rest_for_later():
    proto = protocol()
    feed(proto, get())
    transport = Transport(room=10)
    assert proto.write(transport) is False and len(transport.sent) == 10
    transport.room = 1 << 20
    assert proto.write(transport) is True and transport.sent.endswith(b"hello")


def test_a_file_is_sent_in_send_quota_slices():
    proto = protocol(send_quota=4096)
    data = bytes(range(256)) * 64
    proto.services.router.route = lambda request, client, secure: Reply(
        200, b"Content-Length: %d\r\n" % len(data), parts=(FileSpan(FakeFile(data), 0, len(data)),))
    feed(proto, get())
    transport = Transport()
    turns = 1
    while not proto.write(transport):
        turns += 1
    assert transport.sent.endswith(data) and turns == len(data) // 4096


def test_a_truncated_file_fails_the_response():
    proto = protocol()
    proto.services.router.route = lambda request, client, secure: Reply(
        200, b"Content-Length: 100\r\n", parts=(FileSpan(FakeFile(b"short"), 0, 100),))
    feed(proto, get())
    transport = Transport()
    assert proto.write(transport) is False  # what there was went out: a short send waits for the socket
    with pytest.raises(SendFailed):
        proto.write(transport)


def test_abort_ends_every_queued_response_as_aborted():
    proto = protocol()
    feed(proto, get() + get())
    proto.write(Transport(room=5))
    assert proto.response_started()
    proto.abort()
    assert proto.services.events.done == [(200, 0, True), (200, 0, True)] and proto.out == []


def test_a_response_is_timed_from_the_first_byte_of_its_request():
    proto = protocol()
    proto.services.clock.now = 100.0
    feed(proto, b"GET / HTTP/1.1\r\n")
    proto.services.clock.now = 105.0
    feed(proto, b"Host: x\r\n\r\n")
    assert proto.out[0].started == 100.0


def test_a_reply_for_a_connection_closed_meanwhile_is_dropped_and_closed():
    proto = protocol()
    feed(proto, get("/app"))
    proto.abort()

    class Body(Part):
        closed = False

        def close(self):
            Body.closed = True

    proto.services.executor.answer(Reply(200, b"", parts=(Body(),)))
    assert proto.out == [] and Body.closed


# ---------------------------------------------------------------- the client of each request

TRUSTING_THE_PEER = RealIp(Networks([CLIENT[0]]), "X-Forwarded-For")


def test_each_request_has_the_client_its_trusted_proxy_names():
    proto = protocol(real_ip=TRUSTING_THE_PEER)
    feed(proto, get("/a", b"X-Forwarded-For: 203.0.113.1\r\n") + get("/b", b"X-Forwarded-For: 203.0.113.2\r\n"))
    responses(proto)
    assert proto.services.router.clients == [("203.0.113.1", 0), ("203.0.113.2", 0)]
    assert proto.services.events.clients == [(("203.0.113.1", 0), CLIENT), (("203.0.113.2", 0), CLIENT)]


def test_mounted_code_is_called_for_the_client_the_proxy_names():
    proto = protocol(real_ip=TRUSTING_THE_PEER)
    feed(proto, get("/app", b"X-Forwarded-For: 203.0.113.1\r\n"))
    assert proto.services.executor.calls[0][0].client == ("203.0.113.1", 0)


def test_without_real_ip_the_connections_client_is_every_requests():
    proto = protocol()
    feed(proto, get("/a", b"X-Forwarded-For: 203.0.113.1\r\n"))
    responses(proto)
    assert proto.services.router.clients == [CLIENT] and proto.services.events.clients == [(CLIENT, CLIENT)]


def test_a_refused_request_is_the_connections_clients():
    proto = protocol(real_ip=TRUSTING_THE_PEER)
    feed(proto, b"GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.1\r\nBad Header\r\n\r\n")
    responses(proto)
    assert proto.services.events.clients == [(CLIENT, CLIENT)]


# ---------------------------------------------------------------- what a TLS connection changes

TLS_SESSION = object()  # the protocol only carries it to the responses (the access log reads it)
HSTS = b"Strict-Transport-Security: max-age=600\r\n"


def tls_protocol(**limits):
    proto = protocol(**limits)
    proto.services.tls_fields = HSTS
    proto.tls = TLS_SESSION
    return proto


def test_a_tls_connection_adds_its_fields_to_every_response_and_carries_its_session():
    proto = tls_protocol()
    feed(proto, get())
    response = proto.out[0]
    assert HSTS in responses(proto) and response.tls is TLS_SESSION


def test_a_plain_connection_adds_no_tls_fields():
    proto = protocol()
    proto.services.tls_fields = HSTS
    feed(proto, get())
    assert HSTS not in responses(proto) and proto.out == []


def test_the_router_hears_whether_the_request_came_over_tls():
    for proto, secure in ((protocol(), False), (tls_protocol(), True)):
        feed(proto, get())
        assert proto.services.router.secure is secure


def test_mounted_code_is_told_the_scheme():
    for proto, scheme in ((protocol(), "http"), (tls_protocol(), "https")):
        feed(proto, get("/app"))
        assert proto.services.executor.calls[0][0].scheme == scheme


def test_a_tls_hello_on_the_plain_port_is_refused_at_its_first_byte():
    proto = protocol()
    feed(proto, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start: no line end comes
    assert statuses(responses(proto)) == [400] and proto.state is CLOSING


def test_a_request_still_arriving_after_an_empty_line_waits():
    proto = protocol()
    feed(proto, b"\r")
    assert proto.out == []
    feed(proto, b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(responses(proto)) == [200]
