"""Hardening (issue 5) over real sockets: timeouts, limits, strict parsing, resource exhaustion and fuzzing.

Every attack targets 127.0.0.1 only and is bounded in count and time. What each test checks afterwards: the
bad input got a clear answer (its status, or a closed connection) and the same workers still serve others.
The plain traversal forms and a client leaving mid-download are covered in test_core.py.
"""

import contextlib
import os
import random
import resource
import select
import selectors
import shutil
import socket
import struct
import time

import pytest
import requests

from tests.conftest import Server, make_docroot
from tests.integration.test_core import (SOCKET_TIMEOUT, RawConnection, fixture_bytes, request_bytes, wait_until,
                                         worker_rss_kb)

README = "/httptest/readme.txt"
README_HEAD = request_bytes("GET", README)
SECRET = b"a secret beside the document root\n"
LISTENING_SOCKETS = 1  # the fixtures bind one address
SHORT_TIMEOUT = 1.0  # seconds: --header-timeout / --keepalive-timeout / --send-timeout in the timeout tests
TRICKLE_TIMEOUT = 2.0  # seconds: header and keep-alive timeouts against trickling clients
TRICKLE_INTERVAL = 0.05  # seconds between trickled bytes
TRICKLE_BYTES = 1000  # a whole trickle would last 50 s
EARLY_SLACK = 0.9  # a timeout may not fire before this fraction of its value
BIG_FILE_SIZE = 256 << 20  # sparse: far more than socket buffers hold
SMALL_RCVBUF = 4096
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, like a vanishing client


# ---------------------------------------------------------------- helpers

def connect(server, timeout=SOCKET_TIMEOUT, rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((server.host, server.port))
    return sock


def read_until_closed(sock):
    """All the server sends until it closes: (bytes, True); (bytes, False) when it is still open at the timeout."""
    received = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(received), True
            received.append(data)
    except ConnectionResetError:
        return b"".join(received), True
    except socket.timeout:
        return b"".join(received), False


def send_raw(server, data):
    """Send bytes on a fresh connection: (what came back, whether the server then closed)."""
    with connect(server) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it was all sent: the answer is still there to read
        return read_until_closed(sock)


def status_of(response):
    assert response.startswith(b"HTTP/1.1 "), f"not an HTTP response: {response[:80]!r}"
    return int(response[9:12])


def assert_refused_and_closed(response, closed, status):
    assert status_of(response) == status
    assert b"\r\nConnection: close\r\n" in response.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert response.count(b"HTTP/1.1 ") == 1, "something after the refused request was answered"
    assert closed, "the server kept the connection open after refusing the request"


def assert_serves_normally(server):
    response = requests.get(server.url + README, timeout=SOCKET_TIMEOUT)
    assert response.status_code == 200
    assert response.content == fixture_bytes("readme.txt")


def only_worker(server):
    wait_until(lambda: len(server.worker_pids()) == 1, what="one worker")
    return server.worker_pids()[0]


def open_connections(pid):
    """Client connections a worker holds: its socket descriptors other than the listening socket."""
    sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass  # closed while we looked
    return sockets - LISTENING_SOCKETS


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    """User + system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid):
    wait_until(lambda: open_connections(pid) == 0, what="the worker to hold no connection")


def read_response_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)
        assert data, "closed before the response head was complete"
        head += data
    return head


def content_length(head):
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    raise AssertionError(f"no Content-Length in {head!r}")


# ---------------------------------------------------------------- a shared server for the request matrices

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server (-w 2) for the matrices below; beside its root lie secrets it must never serve, one in a
    sibling directory whose name starts like the root's, with symlinks leading to both."""
    base = tmp_path_factory.mktemp("hardening")
    root = make_docroot(base / "www")
    sibling = base / "www-sibling"
    sibling.mkdir()
    for directory in (base, sibling):
        (directory / "secret.txt").write_bytes(SECRET)
    os.symlink(base / "secret.txt", os.path.join(root, "httptest", "out.txt"))
    os.symlink(sibling / "secret.txt", os.path.join(root, "httptest", "sibling.txt"))
    os.symlink(sibling, os.path.join(root, "sibling"))
    server = Server(root, log_path=str(base / "server.log"))
    try:
        yield server.wait_ready()
    finally:
        server.stop()


# ---------------------------------------------------------------- strict parsing (RFC 9112)

FOLLOW_UP = request_bytes("GET", README)  # pipelined after each bad request: it must never be answered
STRICT_VIOLATIONS = {
    "bare-cr-in-request-line": b"GET /a\rb HTTP/1.1\r\nHost: x\r\n\r\n",
    "bare-cr-in-field-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n",
    "bare-cr-ending-a-field-line": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\r\n\r\n",
    "bare-cr-before-request-line": b"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul-in-request-target": b"GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul-in-field-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
    "ctl-in-field-value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
    "del-in-request-target": b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n",
    "two-spaces-in-request-line": b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "tab-before-colon": b"GET / HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "invalid-method-token": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "invalid-field-name-token": b"GET / HTTP/1.1\r\nHost: x\r\nX[A]: 1\r\n\r\n",
    "missing-host-in-http11": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "duplicate-host": b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    "host-with-userinfo": b"GET / HTTP/1.1\r\nHost: user@x\r\n\r\n",
    "content-length-with-sign": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nA",
    "content-length-in-hex": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\nA",
    "content-length-list": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nA",
    "conflicting-content-lengths": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nAB",
    "absurd-content-length": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n",
    "transfer-encoding-not-ending-in-chunked":
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "transfer-encoding-with-content-length":
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "transfer-encoding-in-http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "absolute-form-with-userinfo": b"GET http://user@x/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute-form-without-host": b"GET http:///httptest/readme.txt HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("data", STRICT_VIOLATIONS.values(), ids=STRICT_VIOLATIONS.keys())
def test_strict_violation_is_400_then_closed_and_the_next_client_is_served(shared, data):
    assert_refused_and_closed(*send_raw(shared, data + FOLLOW_UP), 400)
    assert_serves_normally(shared)


def test_chunked_body_sent_to_a_static_path_is_read_past_and_the_next_request_served(shared):
    chunked = b"POST /httptest/readme.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" \
              b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"
    response, closed = send_raw(shared, chunked + request_bytes("GET", README, headers=["Host: x", "Connection: close"]))
    assert status_of(response) == 405
    assert response.split(b"HTTP/1.1 ")[2].startswith(b"200 OK")
    assert response.endswith(fixture_bytes("readme.txt")) and closed


def test_broken_chunked_body_on_a_static_path_closes_the_connection_after_the_reply(shared):
    broken = b"POST /httptest/readme.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    response, closed = send_raw(shared, broken + FOLLOW_UP)
    assert status_of(response) == 405
    assert response.count(b"HTTP/1.1 ") == 1 and closed


def test_unknown_transfer_coding_is_501_then_closed(shared):
    unknown = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    assert_refused_and_closed(*send_raw(shared, unknown + FOLLOW_UP), 501)


RFC_TOLERATED = {
    "leading-empty-lines": b"\r\n\n\r\nGET /httptest/readme.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "bare-lf-line-endings": b"GET /httptest/readme.txt HTTP/1.1\nHost: x\nConnection: close\n\n",
    "absolute-form": b"GET http://x/httptest/readme.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "spaces-inside-a-value": b"GET /httptest/readme.txt HTTP/1.1\r\nHost: x\r\nUser-Agent:  a  b\tc \r\n"
                             b"Connection: close\r\n\r\n",
}


@pytest.mark.parametrize("data", RFC_TOLERATED.values(), ids=RFC_TOLERATED.keys())
def test_form_the_rfc_tolerates_is_served(shared, data):
    response, closed = send_raw(shared, data)
    assert status_of(response) == 200
    assert response.endswith(b"\r\n\r\n" + fixture_bytes("readme.txt"))
    assert closed


# ---------------------------------------------------------------- limits

LIMIT_VIOLATIONS = {
    "request-line-over-8k": (request_bytes("GET", "/" + "a" * 9000), 414),
    "request-line-over-8k-unfinished": (b"GET /" + b"a" * 9000, 414),
    "header-section-over-16k": (request_bytes("GET", "/", headers=["Host: x"] + ["X-A: " + "a" * 1000] * 17), 431),
    "header-section-over-16k-unfinished": (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: aaaaaaaa\r\n" * 1300, 431),
    "more-than-100-fields": (request_bytes("GET", "/", headers=["Host: x"] + ["X-A: a"] * 100), 431),
    "body-over-1mib": (request_bytes("POST", "/", headers=["Host: x", "Content-Length: 2000000"]), 413),
}


@pytest.mark.parametrize("data, status", LIMIT_VIOLATIONS.values(), ids=LIMIT_VIOLATIONS.keys())
def test_request_over_a_limit_is_refused_then_closed_and_the_next_client_is_served(shared, data, status):
    assert_refused_and_closed(*send_raw(shared, data), status)
    assert_serves_normally(shared)


# ---------------------------------------------------------------- path traversal (beyond test_core's forms)

TRAVERSALS = [
    "/%252e%252e/secret.txt",  # double-encoded: "%2e%2e" is a name, never decoded twice
    "/%25252e%25252e/secret.txt",
    "/httptest/%252e%252e%252f%252e%252e%252fsecret.txt",
    "/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 "."
    "/%e0%80%ae%e0%80%ae/secret.txt",
    "/%c0%af..%c0%afsecret.txt",  # overlong UTF-8 "/"
    "/httptest/..%c0%af..%c0%afsecret.txt",
    "/%ef%bc%8e%ef%bc%8e/secret.txt",  # fullwidth full stops are not dots
    "/%u002e%u002e/secret.txt",
    "/..\\secret.txt",  # a backslash is a name character, not a separator
    "/httptest\\..\\..\\secret.txt",
    "/httptest/..%5c..%5csecret.txt",
    "/.%2e/secret.txt",
    "/%2e./secret.txt",
    "//..//secret.txt",
    "/./../secret.txt",
    "/httptest/./../../secret.txt",
    "/%00/../secret.txt",
    "/httptest/readme.txt%00/../../secret.txt",
    "/secret.txt%00",
    "http://localhost/../secret.txt",  # absolute-form with dot segments
    "http://localhost/httptest/../../secret.txt",
    "HTTPS://localhost/%2e%2e/secret.txt",
    "http://localhost//../secret.txt",
    "http://localhost/./.././secret.txt",
    "http://localhost/httptest/..%2f..%2fsecret.txt",
    "/httptest/out.txt",  # a symlink to a file beside the root
    "/httptest/sibling.txt",  # a symlink into a sibling directory named like the root plus a suffix
    "/sibling/secret.txt",  # a symlinked directory into that sibling
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_attempt_never_serves_a_file_outside_the_root(shared, target):
    response, _ = send_raw(shared, request_bytes("GET", target, headers=["Host: x", "Connection: close"]))
    assert status_of(response) in (400, 403, 404)
    assert SECRET not in response


@pytest.mark.parametrize("target", ["/httptest//./readme.txt", "/httptest/dir1/../readme.txt",
                                    "http://localhost/httptest/dir2/../readme.txt", "/httptest/%72eadme.txt"])
def test_path_normalised_inside_the_root_is_served(shared, target):
    response, _ = send_raw(shared, request_bytes("GET", target, headers=["Host: x", "Connection: close"]))
    assert status_of(response) == 200
    assert response.endswith(fixture_bytes("readme.txt"))


# ---------------------------------------------------------------- timeouts

@pytest.fixture
def impatient(start_server):
    """A single-worker server with one-second header, keep-alive and send timeouts."""
    timeout = str(SHORT_TIMEOUT)
    return start_server("--header-timeout", timeout, "--keepalive-timeout", timeout, "--send-timeout", timeout,
                        workers=1)


def test_incomplete_head_gets_408_and_a_close_after_the_header_timeout(impatient):
    started = time.monotonic()
    with connect(impatient) as sock:
        sock.sendall(b"GET /httptest/readme.txt HTTP/1.1\r\nHost: x\r\n")
        response, closed = read_until_closed(sock)
    assert time.monotonic() - started >= SHORT_TIMEOUT * EARLY_SLACK
    assert_refused_and_closed(response, closed, 408)


def test_silent_connection_is_closed_after_the_header_timeout(impatient):
    started = time.monotonic()
    with connect(impatient) as sock:
        response, closed = read_until_closed(sock)
    assert time.monotonic() - started >= SHORT_TIMEOUT * EARLY_SLACK
    assert closed
    assert response == b"" or status_of(response) == 408


def trickle(server, data, sent_at_once=b""):
    """On a fresh connection, send `sent_at_once`, then `data` a byte per TRICKLE_INTERVAL, collecting what the
    server sends until it closes the connection: (all it sent, seconds it took). Fails when it took all."""
    started = time.monotonic()
    answer = b""
    with connect(server) as sock:
        sock.sendall(sent_at_once)
        for byte in data:
            if not select.select([sock], [], [], TRICKLE_INTERVAL)[0]:
                sock.send(bytes([byte]))
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return answer, time.monotonic() - started
            answer += chunk
    pytest.fail("the server took the whole trickle without closing the connection")


@pytest.fixture
def strict_clock(start_server):
    return start_server("--header-timeout", str(TRICKLE_TIMEOUT), "--keepalive-timeout", str(TRICKLE_TIMEOUT),
                        workers=1)


def test_trickling_a_head_does_not_extend_the_header_timeout(strict_clock):
    answer, elapsed = trickle(strict_clock, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * TRICKLE_BYTES)
    assert TRICKLE_TIMEOUT * EARLY_SLACK <= elapsed < TRICKLE_TIMEOUT * 4
    assert_refused_and_closed(answer, True, 408)


def test_trickling_a_body_does_not_hold_the_connection(strict_clock):
    head = request_bytes("GET", README, headers=["Host: x", f"Content-Length: {TRICKLE_BYTES}"])
    answer, elapsed = trickle(strict_clock, b"a" * TRICKLE_BYTES, sent_at_once=head)
    assert elapsed < TRICKLE_TIMEOUT * 4
    assert status_of(answer) == 200  # the request is answered before its body is read
    assert_refused_and_closed(answer[answer.index(b"HTTP/1.1 408 "):], True, 408)


def test_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(impatient):
    started = time.monotonic()
    conn = RawConnection(impatient)
    try:
        assert conn.get(README).status == 200
        assert conn.closed_by_server()
    finally:
        conn.close()
    assert time.monotonic() - started >= SHORT_TIMEOUT * EARLY_SLACK


@pytest.fixture
def big_file_root(tmp_path):
    root = make_docroot(tmp_path / "big")
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.truncate(BIG_FILE_SIZE)
    return root


def test_client_that_stops_reading_is_dropped_after_the_send_timeout(start_server, big_file_root):
    server = start_server("--send-timeout", str(SHORT_TIMEOUT), root=big_file_root, workers=1)
    worker = only_worker(server)
    wait_idle(worker)
    with connect(server, rcvbuf=SMALL_RCVBUF) as sock:
        sock.sendall(request_bytes("GET", "/big.bin"))
        started = time.monotonic()
        wait_until(lambda: open_connections(worker) == 1, what="the slow reader to be accepted")
        wait_until(lambda: open_connections(worker) == 0, what="the slow reader to be dropped")
        assert time.monotonic() - started >= SHORT_TIMEOUT * EARLY_SLACK
        received, closed = read_until_closed(sock)
    assert closed
    assert status_of(received) == 200
    assert len(received) < BIG_FILE_SIZE


# ---------------------------------------------------------------- connection and descriptor exhaustion

SLOWLORIS_CONNECTIONS = 300
SLOWLORIS_ROUNDS = 4
NORMAL_CLIENT_BUDGET = 2.0  # seconds for a plain GET while the crowd trickles (it takes milliseconds alone)


def test_slowloris_crowd_does_not_delay_a_normal_client(server):
    crowd = []
    try:
        for _ in range(SLOWLORIS_CONNECTIONS):
            sock = connect(server)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            crowd.append(sock)
        slowest = 0.0
        for n in range(SLOWLORIS_ROUNDS):
            for sock in crowd:
                sock.sendall(b"X-Trickle-%d: x\r\n" % n)
            started = time.monotonic()
            assert_serves_normally(server)
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < NORMAL_CLIENT_BUDGET
    finally:
        for sock in crowd:
            sock.close()


@contextlib.contextmanager
def slots_taken(server, count):
    """`count` kept-alive connections holding a worker's slots, and one more client that has sent its request
    and waits in the listen backlog (the kernel completed its handshake): yields (holders, waiting)."""
    holders = [RawConnection(server) for _ in range(count)]
    waiting = RawConnection(server)
    try:
        for conn in holders:
            assert conn.get(README).status == 200
        waiting.send(README_HEAD)
        yield holders, waiting
    finally:
        for conn in holders + [waiting]:
            conn.close()


def assert_left_waiting(conn, seconds):
    conn.sock.settimeout(seconds)
    with pytest.raises(socket.timeout):
        conn.sock.recv(1)
    conn.sock.settimeout(SOCKET_TIMEOUT)


def assert_served_once_a_slot_frees(holders, waiting):
    holders.pop().close()
    assert waiting.read_response().body == fixture_bytes("readme.txt")


def test_full_worker_leaves_the_next_client_in_the_backlog_until_a_slot_frees(start_server):
    max_connections = 4
    server = start_server("--max-connections", str(max_connections), workers=1)
    worker = only_worker(server)
    wait_idle(worker)
    with slots_taken(server, max_connections) as (holders, waiting):
        assert_left_waiting(waiting, SHORT_TIMEOUT)
        assert open_connections(worker) == max_connections
        assert_served_once_a_slot_frees(holders, waiting)


def test_running_out_of_descriptors_pauses_accepting_without_spinning(start_server):
    server = start_server(workers=1)
    worker = only_worker(server)
    assert_serves_normally(server)  # the file is open in the worker's cache from now on
    wait_idle(worker)
    spare = 3
    _, hard = resource.prlimit(worker, resource.RLIMIT_NOFILE)
    resource.prlimit(worker, resource.RLIMIT_NOFILE, (descriptors(worker) + spare, hard))
    with slots_taken(server, spare) as (holders, waiting):  # the holders take every descriptor left
        cpu_before = cpu_seconds(worker)
        assert_left_waiting(waiting, 3 * SHORT_TIMEOUT)  # several accept retries happen meanwhile
        assert cpu_seconds(worker) - cpu_before < SHORT_TIMEOUT  # paused, not spinning on accept()
        assert_served_once_a_slot_frees(holders, waiting)
    assert_serves_normally(server)  # descriptors are free again: the shortage is over
    wait_until(lambda: "file descriptors available again" in server.log_text(), what="the end of the shortage")
    assert server.log_text().count("accept() failed: Too many open files") == 1


# ---------------------------------------------------------------- files changing under the server

def start_download(server, path, close=False):
    """A slow reader that has received the response head: (socket, announced body length)."""
    headers = ["Host: x", "Connection: close"] if close else ["Host: x"]
    sock = connect(server, rcvbuf=SMALL_RCVBUF)
    sock.sendall(request_bytes("GET", path, headers=headers))
    head = read_response_head(sock)
    assert status_of(head) == 200
    return sock, content_length(head)


def test_file_truncated_while_being_sent_ends_the_connection_early(start_server, big_file_root):
    server = start_server(root=big_file_root, workers=1)
    worker = only_worker(server)
    sock, length = start_download(server, "/big.bin")
    with sock:
        os.truncate(os.path.join(big_file_root, "big.bin"), 0)
        body, closed = read_until_closed(sock)
    assert closed
    assert len(body) < length
    assert "truncated while being sent" in server.log_text()
    assert_serves_normally(server)
    assert server.worker_pids() == [worker]


def test_file_deleted_while_being_sent_is_still_sent_whole(start_server, tmp_path):
    root = make_docroot(tmp_path / "deleted")
    data = os.urandom(4 << 20)
    with open(os.path.join(root, "doomed.bin"), "wb") as f:
        f.write(data)
    server = start_server(root=root, workers=1)
    sock, length = start_download(server, "/doomed.bin", close=True)
    with sock:
        os.unlink(os.path.join(root, "doomed.bin"))
        body, closed = read_until_closed(sock)
    assert closed
    assert (length, body) == (len(data), data)


def test_directory_replaced_by_a_file_is_served_as_that_file(start_server, tmp_path):
    root = make_docroot(tmp_path / "replaced")
    os.mkdir(os.path.join(root, "d"))
    with open(os.path.join(root, "d", "index.html"), "w") as f:
        f.write("the directory's index\n")
    server = start_server(root=root)
    workers = server.worker_pids()
    assert requests.get(server.url + "/d/", timeout=SOCKET_TIMEOUT).text == "the directory's index\n"
    shutil.rmtree(os.path.join(root, "d"))
    with open(os.path.join(root, "d"), "w") as f:
        f.write("now a file\n")
    wait_until(lambda: requests.get(server.url + "/d/", timeout=SOCKET_TIMEOUT).status_code == 404,
               what="/d/ to be a 404 once d is a file")
    assert requests.get(server.url + "/d", timeout=SOCKET_TIMEOUT).text == "now a file\n"
    assert server.worker_pids() == workers


# ---------------------------------------------------------------- fuzzing

FUZZ_CASES = 600
FUZZ_SECONDS = 45.0
FUZZ_BATCH = 30
FUZZ_ANSWER_WAIT = 1.0  # seconds a batch waits for answers; an unfinished head legitimately gets none
FUZZ_CORPUS = [
    README_HEAD,
    request_bytes("HEAD", "/httptest/dir2/", headers=["Host: x", "Connection: keep-alive"]),
    request_bytes("GET", "/httptest/wikipedia_russia.html", headers=["Host: x", "Range: bytes=0-99,200-"]),
    request_bytes("GET", "http://x/httptest/pic.jpg?a=1", "HTTP/1.0", headers=["If-None-Match: \"x\""]),
    request_bytes("POST", "/", headers=["Host: x", "Content-Length: 5"]) + b"hello",
    request_bytes("GET", "/httptest/space%20in%20name.txt", headers=["Host: x", "Accept-Encoding: gzip, br"]),
    request_bytes("GET", "/httptest", headers=["Host: x"]) + README_HEAD,
    request_bytes("GET", "/httptest/readme.txt", headers=["Host: x", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
                                                          "If-Range: \"a\"", "Range: bytes=1-2,4-"]),
]
FUZZ_PIECES = [b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\0", b" ", b"\t", b":", b"\x7f", b"\xff", b"%", b"%00", b"%2e",
               b"..", b"/", b"\\", b"?", b"#", b"HTTP/1.1", b"Host: y\r\n", b"Content-Length: 3\r\n",
               b"Transfer-Encoding: chunked\r\n", b"Range: bytes=-1\r\n", b"9" * 30]
ANSWER_STATUSES = {200, 206, 301, 304, 400, 404, 405, 408, 412, 413, 414, 416, 431, 501, 505}


def mutated(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        position = rng.randrange(len(data) + 1)
        action = rng.randrange(4)
        if action == 0:
            data[position:position] = rng.choice(FUZZ_PIECES)
        elif action == 1:
            del data[position:position + rng.randint(1, 8)]
        elif action == 2:
            data[position:position + 1] = bytes([rng.randrange(256)])
        else:  # repeat a slice: long lines, many fields, huge numbers
            data[position:position] = data[position:position + rng.randint(1, 32)] * rng.randint(2, 300)
    return bytes(data)


def fuzz_case(rng):
    if rng.random() < 0.25:
        return rng.randbytes(rng.randint(1, 600))
    return mutated(rng, rng.choice(FUZZ_CORPUS))


def fuzz_batch(server, cases, rng):
    """Send each case on its own connection (some in two writes); the first bytes answered to each."""
    selector = selectors.DefaultSelector()
    answers = {}
    try:
        for case in cases:
            sock = connect(server)
            cut = rng.randrange(len(case) + 1)
            try:
                sock.sendall(case[:cut])
                sock.sendall(case[cut:])
            except (BrokenPipeError, ConnectionResetError):
                pass
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, case)
            answers[sock] = b""
        deadline = time.monotonic() + FUZZ_ANSWER_WAIT
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(deadline - time.monotonic()):
                try:
                    answers[key.fileobj] += key.fileobj.recv(65536)
                except (BlockingIOError, ConnectionResetError):
                    pass
                selector.unregister(key.fileobj)
    finally:
        for sock in answers:
            if rng.random() < 0.5:  # half of the clients vanish with a reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
            sock.close()
        selector.close()
    return list(answers.values())


def test_fuzzed_requests_get_clear_answers_and_the_same_workers_serve_on(start_server):
    server = start_server()
    workers = server.worker_pids()
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(1 << 32)))
    rng = random.Random(seed)
    started = time.monotonic()
    sent = 0
    while sent < FUZZ_CASES and time.monotonic() - started < FUZZ_SECONDS:
        cases = [fuzz_case(rng) for _ in range(FUZZ_BATCH)]
        for case, answer in zip(cases, fuzz_batch(server, cases, rng)):
            if answer:
                assert status_of(answer) in ANSWER_STATUSES, f"FUZZ_SEED={seed} case {case!r}"
        sent += len(cases)
    assert sent >= FUZZ_BATCH
    assert "Traceback" not in server.log_text(), f"FUZZ_SEED={seed}: a handler failed"
    assert_serves_normally(server)
    assert server.worker_pids() == workers


# ---------------------------------------------------------------- memory

IDLE_CONNECTIONS = 1000
MAX_KB_PER_IDLE_CONNECTION = 4
SOAK_ROUNDS = 600
SOAK_PIPELINE = [request_bytes("GET", README), request_bytes("HEAD", "/httptest/dir2/"),
                 request_bytes("GET", "/httptest/missing.txt"), request_bytes("GET", "/httptest/dir2"),
                 request_bytes("GET", "/httptest/dir2/page.html", headers=["Host: x", "Range: bytes=0-9"]),
                 request_bytes("GET", "/httptest/data.json", headers=["Host: x", "Connection: close"])]
SOAK_MAX_RSS_GROWTH_KB = 1024
HOSTILE_HEADS = 1100  # distinct ~15 KiB heads: more than the worker's parsed-head cache holds
HOSTILE_FIELDS = 97
HOSTILE_MAX_RSS_GROWTH_KB = 8 * 1024  # ~40 MB when every such head was kept


def soak(server, rounds):
    """Rounds of pipelined requests on keep-alive connections, each followed by a refused request."""
    for _ in range(rounds):
        response, closed = send_raw(server, b"".join(SOAK_PIPELINE))
        assert closed and response.count(b"HTTP/1.1 ") == len(SOAK_PIPELINE)
        assert_refused_and_closed(*send_raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n"), 400)


def test_unique_large_heads_do_not_pile_up_in_worker_memory(start_server):
    server = start_server(workers=1)
    worker = only_worker(server)
    rss = worker_rss_kb(worker)
    fields = ["Host: x", "Connection: close"] + [f"X-Field-{i}: {'v' * 140}" for i in range(HOSTILE_FIELDS)]
    for n in range(HOSTILE_HEADS):
        response, _ = send_raw(server, request_bytes("GET", f"{README}?{n}", headers=fields))
        assert status_of(response) == 200
    assert worker_rss_kb(worker) - rss < HOSTILE_MAX_RSS_GROWTH_KB


def test_idle_keep_alive_connections_cost_a_few_kb_each(start_server):
    server = start_server(workers=1)
    worker = only_worker(server)
    assert_serves_normally(server)
    wait_idle(worker)
    before = worker_rss_kb(worker)
    idle = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            conn = RawConnection(server)
            idle.append(conn)
            assert conn.get(README, method="HEAD").status == 200
        wait_until(lambda: open_connections(worker) == IDLE_CONNECTIONS, what="every connection idle")
        per_connection = (worker_rss_kb(worker) - before) / IDLE_CONNECTIONS
    finally:
        for conn in idle:
            conn.close()
    assert per_connection < MAX_KB_PER_IDLE_CONNECTION


def test_worker_memory_and_descriptors_stay_flat_over_a_soak(start_server):
    server = start_server(workers=1)
    worker = only_worker(server)
    soak(server, SOAK_ROUNDS // 4)  # caches and allocator pools fill up first
    wait_idle(worker)
    rss, fds = worker_rss_kb(worker), descriptors(worker)
    soak(server, SOAK_ROUNDS)
    wait_idle(worker)
    assert worker_rss_kb(worker) - rss < SOAK_MAX_RSS_GROWTH_KB
    assert descriptors(worker) == fds
