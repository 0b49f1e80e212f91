"""Mounted code on a thread pool (--threads N, issue 16), over real sockets: the loop keeps serving while
every thread blocks, N handlers run at once, the pending limit answers 503, QUIT waits for a running handler,
failures stay on their request, streamed bodies are pulled on the pool, slow handlers are reported.

Handlers block on gate files the test creates (tests/mountapps/threaded.py): what is checked is what the
server does while they block, never how long anything takes.
"""

import concurrent.futures
import os
import select
import signal
import socket

import pytest
import requests

from tests.integration.test_master import wait_for
from tests.integration.test_mounts import mount_flags, ready_until_teardown, start_mounted

THREADS = 4
MAX_PENDING = 2
STATUS_PATH = "/server-status"
MOUNTS = {"/block": "threaded:blocked", "/barrier": "threaded:barrier", "/stream": "threaded:gated_stream",
          "/sleepy": "threaded:sleepy", "/boom": "threaded:boom", "/env": "threaded:environ_app"}
STATIC = "/httptest/dir2/"
TIMEOUT = 60.0  # a client's bound on any one request (handlers give up at 30 s)
GATE_ENV = "THREADED_GATE_DIR"


def worker_status(server):
    """The single worker's entry of the status page (busy_threads, queued, pid...)."""
    (worker,) = requests.get(server.url + STATUS_PATH, timeout=TIMEOUT).json()["workers"]
    return worker


def get(server, path, **kwargs):
    return requests.get(server.url + path, timeout=TIMEOUT, **kwargs)


@pytest.fixture
def gates(tmp_path):
    directory = tmp_path / "gates"
    directory.mkdir()
    return directory


def start_pool_server(tmp_path, gates, *args):
    return start_mounted(tmp_path, ("--threads", str(THREADS), "--max-pending", str(MAX_PENDING),
                                    "--status-path", STATUS_PATH, *args, *mount_flags(MOUNTS)),
                         env=dict(os.environ, **{GATE_ENV: str(gates)}))


@pytest.fixture
def pooled(tmp_path, gates):
    """A one-worker server with a pool of THREADS threads and MAX_PENDING waiting places."""
    yield from ready_until_teardown(start_pool_server(tmp_path, gates))


@pytest.fixture
def clients():
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        yield pool


def hold(server, clients, gates, count, gate="open"):
    """`count` requests blocked in handlers until the gate opens: (their futures, a function opening it)."""
    futures = [clients.submit(get, server, f"/block?gate={gate}") for _ in range(count)]
    return futures, lambda: (gates / gate).touch()


def test_static_requests_are_served_while_every_thread_is_blocked(pooled, clients, gates):
    futures, open_gate = hold(pooled, clients, gates, THREADS)
    wait_for(lambda: worker_status(pooled)["busy_threads"] == THREADS, "every thread to be busy")
    assert get(pooled, STATIC).status_code == 200
    assert get(pooled, "/healthz").status_code == 200
    open_gate()
    assert [f.result().status_code for f in futures] == [200] * THREADS


def test_n_handlers_run_at_once_on_n_threads(pooled, clients):
    futures = [clients.submit(get, pooled, f"/barrier?name=all&parties={THREADS}") for _ in range(THREADS)]
    assert [f.result().text for f in futures] == ["met\n"] * THREADS


def test_requests_beyond_the_pending_limit_get_503_with_retry_after(pooled, clients, gates):
    futures, open_gate = hold(pooled, clients, gates, THREADS + MAX_PENDING)
    wait_for(lambda: (lambda w: (w["busy_threads"], w["queued"]))(worker_status(pooled)) == (THREADS, MAX_PENDING),
             "the threads busy and the waiting places taken")
    refused = get(pooled, "/block?gate=never")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    open_gate()
    assert [f.result().status_code for f in futures] == [200] * (THREADS + MAX_PENDING)


def test_quit_waits_for_a_running_handler(tmp_path, gates, clients):
    server = start_pool_server(tmp_path, gates).wait_ready()
    try:
        (future,), open_gate = hold(server, clients, gates, 1)
        wait_for(lambda: worker_status(server)["busy_threads"] == 1, "the handler to run")
        server.signal(signal.SIGQUIT)
        wait_for(lambda: refuses(server), "the listening socket to close")
        assert not future.done()
        open_gate()
        assert future.result().status_code == 200
        assert server.proc.wait(timeout=TIMEOUT) == 0
    finally:
        server.stop()


def refuses(server):
    try:
        get(server, STATIC)
    except requests.ConnectionError:
        return True
    return False


def test_an_exception_on_a_thread_is_a_500_and_the_worker_serves_on(pooled):
    pid = worker_status(pooled)["pid"]
    assert get(pooled, "/boom").status_code == 500
    assert get(pooled, "/env").status_code == 200 and worker_status(pooled)["pid"] == pid
    assert "boom on a pool thread" in pooled.log_text()


def test_wsgi_multithread_is_true_with_threads(pooled):
    assert get(pooled, "/env").json() == {"wsgi.multithread": True, "wsgi.multiprocess": True,
                                          "wsgi.run_once": False}


def test_a_streamed_body_waiting_for_its_next_chunk_does_not_hold_the_loop(pooled, gates):
    with get(pooled, "/stream?gate=more", stream=True) as response:
        chunks = response.iter_content(chunk_size=None)
        assert next(chunks) == b"first\n"
        assert get(pooled, STATIC).status_code == 200
        (gates / "more").touch()
        assert b"".join(chunks) == b"second\n"


def test_a_handler_running_past_worker_timeout_is_logged_and_its_worker_kept(tmp_path, gates):
    server = start_pool_server(tmp_path, gates, "--worker-timeout", "2").wait_ready()
    try:
        pid = worker_status(server)["pid"]
        assert get(server, "/sleepy?seconds=4").status_code == 200
        assert worker_status(server)["pid"] == pid
        assert "mounted code has been running for" in server.log_text() and "/sleepy" in server.log_text()
    finally:
        server.stop()


def test_a_thread_pool_adds_its_gauges_to_prometheus(pooled):
    text = get(pooled, STATUS_PATH + "?format=prometheus").text
    assert "oserver_threads_busy " in text and "oserver_worker_requests_queued{" in text


def test_requests_pipelined_behind_a_running_handler_are_answered_in_order(pooled, gates):
    pipelined = (b"GET /block?gate=pipe HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET " + STATIC.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with socket.create_connection((pooled.host, pooled.port), timeout=TIMEOUT) as sock:
        sock.sendall(pipelined)
        wait_for(lambda: worker_status(pooled)["busy_threads"] == 1, "the handler to run")
        (gates / "pipe").touch()
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ") and received.count(b"HTTP/1.1 200 ") == 2
    assert received.index(b"gate opened") < received.rindex(b"HTTP/1.1 200 ")




def kernel_buffers_bound():
    """Bytes a client's send can leave in the kernel once the worker stops reading: the client's largest send
    buffer (tcp_wmem's maximum, 4 MiB by default), plus 4 MiB for the worker's receive buffer, which does not
    grow while nobody reads it, and the request head's worth the worker read (measured: 3.9 MB in all)."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2]) + 4 * 1024 * 1024


HELD_INPUT_BOUND = kernel_buffers_bound()
SENT_LIMIT = 2 * HELD_INPUT_BOUND  # bytes a client tries to push behind a running handler
STALLED = 2.0  # seconds a socket stays unwritable before the client counts its sending as stopped


def push_until_stalled(sock, limit):
    """Send junk without blocking until `limit` bytes went out or the socket stays full for STALLED seconds;
    returns the bytes the kernel took."""
    sock.setblocking(False)
    junk = b"x" * 65536
    sent = 0
    while sent < limit:
        try:
            sent += sock.send(junk)
        except BlockingIOError:
            if not select.select([], [sock], [], STALLED)[1]:
                break
    sock.setblocking(True)
    return sent


def test_a_client_sending_behind_a_running_handler_is_held_back(pooled, gates):
    """While mounted code works for a connection, the worker reads at most a request head's worth more of it:
    the rest waits in the kernel, so a client cannot grow the worker's memory by sending on (it once read on
    without bound). The handler's reply still goes out, then the junk is refused."""
    with socket.create_connection((pooled.host, pooled.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /block?gate=held HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: worker_status(pooled)["busy_threads"] == 1, "the handler to run")
        sent = push_until_stalled(sock, SENT_LIMIT)
        assert sent < HELD_INPUT_BOUND, f"the worker read on: the kernel took {sent} bytes"
        (gates / "held").touch()
        received = b""
        while b"gate opened" not in received and (chunk := sock.recv(65536)):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ") and b"gate opened" in received
    assert get(pooled, STATIC).status_code == 200
