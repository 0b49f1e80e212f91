"""Per-client limits on a real server (-w 2), counted across its workers: a client opening 1,000 connections
with limit_conn_per_ip = 100 keeps 100 and the rest are answered 503 while another client is served; requests
beyond limit_req_per_ip get 429 with Retry-After, at the configured rate; a worker killed while holding
connections does not leave them counted. Clients connect from chosen loopback addresses (127.0.0.2, .3)."""

import http.client
import json
import os
import select
import signal
import socket
import time

from tests.integration.test_core import SOCKET_TIMEOUT
from tests.integration.test_master import all_workers, wait_for, workers_replaced
from tests.integration.test_realip import fetch

CLIENT = "127.0.0.2"
OTHER = "127.0.0.3"
STATUS_PATH = "/server-status"
MAX_CONNECTIONS = 100
CONNECTIONS = 1000
RATE = 20.0
BURST = 20  # a second of the rate: a client stalled that long on a busy machine loses no pass it was owed
RATE_SECONDS = 4.0
RATE_TOLERANCE = 0.10
FILE = "/httptest/readme.txt"


def limited(server):
    """The server's per-client limit counters, from its status page."""
    return json.loads(fetch(server, STATUS_PATH, "127.0.0.1")[1])["server"]["limited"]


def open_connections(server, count, source):
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((server.host, server.port), SOCKET_TIMEOUT, source_address=(source, 0))
        sockets.append(sock)
    return sockets


def answered(sockets, received):
    """Read what has arrived on any of `sockets` (without waiting) into received[socket]."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in sockets}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    for fd, _ in poller.poll(0):
        sock = by_fd[fd]
        try:
            received[sock] = received.get(sock, b"") + sock.recv(65536)
        except ConnectionResetError:
            received[sock] = received.get(sock, b"")


def test_a_client_opening_1000_connections_keeps_its_100_and_another_is_served(start_server):
    server = start_server("--limit-conn-per-ip", str(MAX_CONNECTIONS), "--header-timeout", "60",
                          "--status-path", STATUS_PATH)
    sockets = open_connections(server, CONNECTIONS, CLIENT)
    try:
        received = {}

        def refused():
            answered(sockets, received)
            return sum(data.startswith(b"HTTP/1.1 503 ") for data in received.values())

        wait_for(lambda: refused() >= CONNECTIONS - MAX_CONNECTIONS, "the refusals")
        assert fetch(server, FILE, OTHER)[0] == 200  # another client is served meanwhile
        kept = [sock for sock in sockets if sock not in received]
        assert len(kept) == MAX_CONNECTIONS and refused() == CONNECTIONS - MAX_CONNECTIONS
        for sock in kept:  # each connection kept is served
            sock.sendall(f"GET {FILE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        assert limited(server)["conn_refused"] == CONNECTIONS - MAX_CONNECTIONS
    finally:
        for sock in sockets:
            sock.close()
    wait_for(lambda: fetch(server, FILE, CLIENT)[0] == 200, "the client's connections uncounted once closed")


def test_requests_beyond_the_rate_get_429_and_the_rate_passes(start_server):
    server = start_server("--limit-req-per-ip", str(RATE), "--limit-req-burst", str(BURST),
                          "--status-path", STATUS_PATH)
    statuses = []
    started = time.monotonic()
    while time.monotonic() - started < RATE_SECONDS:  # a new connection each: both workers take them
        status, _ = fetch(server, FILE, CLIENT)
        statuses.append(status)
    elapsed = time.monotonic() - started
    assert set(statuses) == {200, 429}
    served_rate = (statuses.count(200) - 1 - BURST) / elapsed
    assert abs(served_rate - RATE) <= RATE * RATE_TOLERANCE, f"{served_rate:.1f} requests/s passed"
    assert fetch(server, FILE, OTHER)[0] == 200
    assert limited(server)["req_refused"] == statuses.count(429)


def test_a_refused_request_says_when_to_retry_and_keeps_its_connection(start_server):
    server = start_server("--limit-req-per-ip", "0.5", "--limit-req-burst", "0")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=SOCKET_TIMEOUT, source_address=(CLIENT, 0))
    try:
        answers = []
        for _ in range(2):
            conn.request("GET", FILE)
            response = conn.getresponse()
            response.read()
            answers.append((response.status, response.getheader("Retry-After")))
        assert answers == [(200, None), (429, "2")]
    finally:
        conn.close()


def hold_connections(server, conns, count, source):
    """Open `count` keep-alive connections from `source` into `conns`, each counted by the server before the
    next is opened (its request answered): no later connection can be counted ahead of one of them, which would
    then be the one refused."""
    for _ in range(count):
        conn = http.client.HTTPConnection(server.host, server.port, timeout=SOCKET_TIMEOUT,
                                          source_address=(source, 0))
        conns.append(conn)
        conn.request("GET", FILE)
        response = conn.getresponse()
        response.read()
        assert response.status == 200 and not response.will_close


def test_connections_held_by_a_killed_worker_are_not_counted_any_more(start_server):
    server = start_server("--limit-conn-per-ip", "10", "--keepalive-timeout", "60")
    workers = all_workers(server)
    conns = []
    try:
        hold_connections(server, conns, 10, CLIENT)
        assert fetch(server, FILE, CLIENT)[0] == 503  # the client at its limit
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: workers_replaced(server, workers), "new workers")
        wait_for(lambda: fetch(server, FILE, CLIENT)[0] == 200, "the dead worker's connections uncounted")
    finally:
        for conn in conns:
            conn.close()
