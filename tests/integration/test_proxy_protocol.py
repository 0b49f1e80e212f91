"""The PROXY protocol (v1 and v2) in front of HTTP, over real sockets: the header's source is the client in the
access log; a connection without a valid header, from an untrusted peer, or too slow to send one is closed;
a worker serves on after each. A TLS listener takes the header before the handshake.

127.0.0.1 plays the balancer (real_ip_from); 127.0.0.3 an outsider.
"""

import socket
import ssl
import time
import uuid

import pytest

from tests.certificates import TestCertificates
from tests.conftest import free_port
from tests.integration.test_core import SOCKET_TIMEOUT, wait_until
from tests.integration.test_hardening import read_until_closed, status_of
from tests.integration.test_realip import logged_addresses
from tests.unit.test_proxy_protocol import V1_TCP4, v2

BALANCER = "127.0.0.1"
OUTSIDER = "127.0.0.3"
HEADER_TIMEOUT = 1.0
LOG_FORMAT = "$remote_addr $realip_remote_addr $request_uri"


def request(path):
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def exchange(server, data, source=BALANCER, pause=None):
    """Send `data` (a list of pieces, sent `pause` seconds apart) from `source`: (reply, closed by the server)."""
    with socket.create_connection((server.host, server.port), SOCKET_TIMEOUT, source_address=(source, 0)) as sock:
        for piece in data:
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            if pause:
                time.sleep(pause)
        return read_until_closed(sock)


@pytest.fixture
def balanced(start_server, tmp_path):
    log = str(tmp_path / "access.log")
    server = start_server("--proxy-protocol", "--real-ip-from", BALANCER, "--real-ip-header", "proxy_protocol",
                          "--proxy-protocol-timeout", str(HEADER_TIMEOUT), "--access-log", log,
                          "--access-log-format", LOG_FORMAT, ready_path=None)
    server.access_log = log
    return server


def unique_path():
    return f"/httptest/readme.txt?{uuid.uuid4().hex}"


def assert_serves(server):
    reply, closed = exchange(server, [V1_TCP4 + request("/httptest/readme.txt")])
    assert status_of(reply) == 200 and closed


@pytest.mark.parametrize("header", [V1_TCP4, v2()], ids=["v1", "v2"])
def test_the_headers_source_is_the_client_in_the_access_log(balanced, header):
    path = unique_path()
    reply, _ = exchange(balanced, [header + request(path)])
    assert status_of(reply) == 200
    assert logged_addresses(balanced.access_log, path) == ("203.0.113.5", BALANCER)


def test_a_local_header_leaves_the_balancer_as_the_client(balanced):
    path = unique_path()
    assert status_of(exchange(balanced, [v2(command=0x0) + request(path)])[0]) == 200
    assert logged_addresses(balanced.access_log, path) == (BALANCER, BALANCER)


def test_a_header_sent_in_pieces_is_waited_for(balanced):
    header = v2()
    path = unique_path()
    reply, _ = exchange(balanced, [header[:5], header[5:20], header[20:], request(path)], pause=0.05)
    assert status_of(reply) == 200
    assert logged_addresses(balanced.access_log, path)[0] == "203.0.113.5"


def test_keep_alive_requests_follow_one_header(balanced):
    keep_alive = b"GET /httptest/readme.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    reply, _ = exchange(balanced, [V1_TCP4 + keep_alive + request("/httptest/readme.txt")])
    assert reply.count(b"HTTP/1.1 200 OK") == 2


@pytest.mark.parametrize("data", [request("/httptest/readme.txt"), b"PROXY TCP4 nonsense\r\n" + request("/"),
                                  b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x00"],
                         ids=["no-header", "bad-v1", "bad-v2"])
def test_a_connection_without_a_valid_header_is_closed_unanswered(balanced, data):
    assert exchange(balanced, [data]) == (b"", True)
    assert_serves(balanced)


def test_a_header_from_an_untrusted_peer_is_refused(balanced):
    assert exchange(balanced, [V1_TCP4 + request("/httptest/readme.txt")], source=OUTSIDER) == (b"", True)
    assert_serves(balanced)
    wait_until(lambda: "PROXY protocol from a peer not in real_ip_from" in balanced.log_text(),
               what="the refusal's log line")


def test_a_header_not_sent_in_time_closes_the_connection(balanced):
    with socket.create_connection((balanced.host, balanced.port), SOCKET_TIMEOUT) as sock:
        sock.sendall(V1_TCP4[:10])
        started = time.monotonic()
        assert read_until_closed(sock) == (b"", True)
        assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9
    wait_until(lambda: "no PROXY header within" in balanced.log_text(), what="the timeout's log line")


def test_a_header_then_an_http_header_from_a_trusted_source(start_server, tmp_path):
    """With real_ip_header X-Forwarded-For on top, a PROXY source in real_ip_from may name a client in turn."""
    log = str(tmp_path / "access.log")
    server = start_server("--proxy-protocol", "--real-ip-from", BALANCER, "--real-ip-from", "203.0.113.0/24",
                          "--access-log", log, "--access-log-format", LOG_FORMAT, ready_path=None)
    path = unique_path()
    forwarded = request(path).replace(b"Host: x\r\n", b"Host: x\r\nX-Forwarded-For: 198.51.100.9\r\n")
    assert status_of(exchange(server, [V1_TCP4 + forwarded])[0]) == 200
    assert logged_addresses(log, path) == ("198.51.100.9", BALANCER)


def test_a_tls_listener_reads_the_header_before_the_handshake(start_server, tmp_path):
    """PROXY v2, then the TLS handshake and the request: the header's source is the client; a handshake sent
    without a header first is not answered."""
    certs = TestCertificates(tmp_path)
    log = str(tmp_path / "access.log")
    tls_port = free_port()
    server = start_server("--proxy-protocol", "--real-ip-from", BALANCER, "--real-ip-header", "proxy_protocol",
                          "--tls-port", str(tls_port), "--tls-certificate", certs.cert, "--tls-certificate-key",
                          certs.key, "--access-log", log, "--access-log-format", LOG_FORMAT, ready_path=None)
    path = unique_path()
    with socket.create_connection((server.host, tls_port), SOCKET_TIMEOUT, source_address=(BALANCER, 0)) as raw:
        raw.sendall(v2())
        with certs.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(request(path))
            reply, _ = read_until_closed(tls)
    assert status_of(reply) == 200
    assert logged_addresses(log, path) == ("203.0.113.5", BALANCER)
    with socket.create_connection((server.host, tls_port), SOCKET_TIMEOUT, source_address=(BALANCER, 0)) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            certs.client_context().wrap_socket(raw, server_hostname="localhost")
