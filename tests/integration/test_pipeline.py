"""Behaviours of the connection pipeline and master redesign (issue 13), over real sockets and signals:
lingering close after a refusal, 414 for a long request line arriving whole, WINCH, a stop while a reload's
workers are still starting, signals a worker ignores, and log write faults reported once."""

import signal
import socket
import time

import pytest

from tests.conftest import START_TIMEOUT
from tests.integration.test_master import all_workers, answers, is_alive, wait_for, workers_replaced

SOCKET_TIMEOUT = 10.0
BIG_HEADER = 70_000  # far beyond max_header_bytes (16 KiB) and more than one 64 KiB read
TERM_BOUND = 1.0  # the bound for a TERM while new workers start
SLOW_IMPORT_SECONDS = 30  # a mount whose import takes this long: far beyond any stop we wait for
REQUESTS_TO_FULL_DISK = 600  # several access log flushes (every 256 lines, or every 0.25 s)


def exchange(server, data):
    """Send `data` in one go, then read until the server closes: what the client received."""
    with socket.create_connection((server.host, server.port), timeout=SOCKET_TIMEOUT) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_an_oversized_head_gets_its_431_read_by_the_client_not_a_reset(server):
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * BIG_HEADER + b"\r\n\r\n"
    assert exchange(server, head).startswith(b"HTTP/1.1 431 ")


def test_an_oversized_body_gets_its_413_read_while_the_client_still_sends(server):
    body = b"x" * (2 << 20)  # max_body_bytes is 1 MiB: refused from the head, the body still arriving
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert exchange(server, request + body).startswith(b"HTTP/1.1 413 ")


def test_a_long_request_line_arriving_whole_is_414(server):
    request = b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert exchange(server, request).startswith(b"HTTP/1.1 414 ")


def test_the_worker_serves_on_after_lingering_closes(server):
    for _ in range(3):
        exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * BIG_HEADER + b"\r\n\r\n")
    assert answers(server)


def test_winch_stops_the_workers_and_keeps_the_master_and_its_socket(server):
    workers = all_workers(server)
    server.signal(signal.SIGWINCH)
    wait_for(lambda: not any(is_alive(pid) for pid in workers), "the workers to exit")
    assert server.worker_pids() == [] and server.proc.poll() is None
    socket.create_connection((server.host, server.port), timeout=SOCKET_TIMEOUT).close()  # still listening


def test_hup_after_winch_brings_workers_back(server):
    workers = all_workers(server)
    server.signal(signal.SIGWINCH)
    wait_for(lambda: server.worker_pids() == [], "the workers to exit")
    server.signal(signal.SIGHUP)
    wait_for(lambda: workers_replaced(server, workers), "new workers")
    wait_for(lambda: answers(server), "answers from the new workers")


@pytest.fixture
def reload_starting(start_server, tmp_path):
    """A server whose reload is still starting: its new workers import a mount that takes 30 s to load.
    (server, its config file, the first generation's worker pids)."""
    started = tmp_path / "import-started"
    (tmp_path / "slow_app.py").write_text(
        f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep({SLOW_IMPORT_SECONDS})\n"
        "def handle(request):\n    return 200, {}, b''\n")
    config = tmp_path / "oserver.toml"
    config.write_text("")
    server = start_server("-c", str(config))
    workers = all_workers(server)
    config.write_text(f'python_path = [{str(tmp_path)!r}]\n[mount]\n"/slow" = "slow_app:handle"\n')
    server.signal(signal.SIGHUP)
    wait_for(started.exists, "a new worker importing the slow mount", timeout=START_TIMEOUT)
    return server, config, workers


def test_term_while_a_reload_is_starting_ends_the_master_at_once(reload_starting):
    server, _, _ = reload_starting
    sent = time.monotonic()
    server.signal(signal.SIGTERM)
    server.proc.wait(timeout=START_TIMEOUT)
    assert time.monotonic() - sent < TERM_BOUND


def test_a_second_hup_while_a_reload_starts_supersedes_it(reload_starting):
    server, config, workers = reload_starting
    config.write_text('index = ["index.html"]\n')
    server.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded: generation" in server.log_text(), "the newest generation to serve")
    wait_for(lambda: workers_replaced(server, workers), "only the newest generation's workers")
    assert "superseded by a new reload" in server.log_text() and answers(server)


def signal_mask(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    raise AssertionError(f"no {field} for {pid}")


def test_a_worker_ignores_the_signals_it_has_no_use_for(server):
    for pid in all_workers(server):
        ignored = signal_mask(pid, "SigIgn")
        for signum in (signal.SIGHUP, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2):
            assert ignored & (1 << (signum - 1)), signal.Signals(signum).name


def test_a_full_disk_under_the_access_log_is_reported_once_per_worker(start_server):
    server = start_server("--access-log", "/dev/full")
    for _ in range(REQUESTS_TO_FULL_DISK):  # one worker at least fills its 256-line buffer: a write fails
        assert answers(server)
    lines = [line for line in server.log_text().splitlines() if "cannot write access log" in line]
    assert 1 <= len(lines) <= 2, lines
