"""Readiness for balancers, with real processes and signals: ready_path answers 200 while the instance takes
new work and 503 from the moment a graceful stop or a WINCH begins; shutdown_delay keeps serving that long
after QUIT (so a balancer's health check sees the 503 before the listening sockets close)."""

import http.client
import signal
import time

import pytest
import requests

from tests.integration.test_core import SOCKET_TIMEOUT
from tests.integration.test_master import EXIT_TIMEOUT, answers, refuses_connections, wait_for

READY = "/readyz"
DELAY = 3.0


def ready_status(server):
    return requests.get(server.url + READY, timeout=SOCKET_TIMEOUT).status_code


def test_ready_path_answers_200_while_serving(server):
    response = requests.get(server.url + READY, timeout=SOCKET_TIMEOUT)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"


def test_ready_path_can_be_turned_off(start_server):
    server = start_server("--ready-path", "")
    assert ready_status(server) == 404


def test_quit_with_a_shutdown_delay_answers_503_while_files_are_still_served(start_server):
    server = start_server("--shutdown-delay", str(DELAY))
    quit_at = time.monotonic()
    server.signal(signal.SIGQUIT)
    wait_for(lambda: ready_status(server) == 503, "readiness 503")
    assert answers(server)  # new connections are still served
    wait_for(lambda: refuses_connections(server), "the listening sockets closed", timeout=DELAY + EXIT_TIMEOUT)
    assert time.monotonic() - quit_at >= DELAY * 0.9
    assert server.proc.wait(EXIT_TIMEOUT) == 0


@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGTERM], ids=["second-quit", "term"])
def test_a_second_quit_or_a_term_during_the_shutdown_delay_stops_at_once(start_server, signum):
    server = start_server("--shutdown-delay", "60")
    server.signal(signal.SIGQUIT)
    wait_for(lambda: ready_status(server) == 503, "readiness 503")
    server.signal(signum)
    assert server.proc.wait(EXIT_TIMEOUT) == 0


def ready_status_on(conn):
    conn.request("GET", READY)
    response = conn.getresponse()
    response.read()
    return response.status


def test_winch_makes_readiness_503_on_an_open_connection(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=SOCKET_TIMEOUT)
    try:
        assert ready_status_on(conn) == 200
        server.signal(signal.SIGWINCH)
        wait_for(lambda: ready_status_on(conn) == 503, "readiness 503 after WINCH")
    finally:
        conn.close()


def test_hup_after_winch_makes_the_instance_ready_again(server):
    server.signal(signal.SIGWINCH)
    wait_for(lambda: "no workers until the next HUP" in server.log_text(), "the WINCH")
    server.signal(signal.SIGHUP)
    wait_for(lambda: ready_status(server) == 200, "readiness 200 after HUP")
