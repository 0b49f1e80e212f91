"""Real client addresses behind trusted proxies, over real sockets: X-Forwarded-For and Forwarded from a
real_ip_from peer name the client in the access log, status_allow and mounted code; the same headers from any
other peer change nothing (spoofing).

Clients connect from chosen loopback addresses (the whole of 127.0.0.0/8 is local on Linux): 127.0.0.2 plays
the trusted proxy, 127.0.0.3 an outsider; the status page allows 127.0.0.1 alone.
"""

import http.client
import json
import os
import uuid

import pytest

from tests.conftest import REPO
from tests.integration.test_core import SOCKET_TIMEOUT, wait_until
from tests.integration.test_logs import read_lines

PROXY = "127.0.0.2"
OUTSIDER = "127.0.0.3"
CLIENT = "203.0.113.5"
STATUS_PATH = "/server-status"
LOG_FORMAT = "$remote_addr $realip_remote_addr $request_uri"
MOUNTAPPS = os.path.join(REPO, "tests", "mountapps")


def fetch(server, path, source, headers=()):
    """(status, body) of one GET sent from the loopback address `source`."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=SOCKET_TIMEOUT, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=dict(headers))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def logged_addresses(path, uri):
    """($remote_addr, $realip_remote_addr) of the access log line of `uri`, once it is written."""
    found = []
    wait_until(lambda: found.extend(line.split()[:2] for line in read_lines(path) if line.endswith(" " + uri))
               or found, what=f"the access log line of {uri}")
    return tuple(found[0])


@pytest.fixture
def behind_proxy(start_server, tmp_path):
    """A server trusting PROXY, logging both addresses, with the status page and the echo handlers mounted."""
    log = str(tmp_path / "access.log")
    server = start_server("--real-ip-from", PROXY, "--access-log", log, "--access-log-format", LOG_FORMAT,
                          "--status-path", STATUS_PATH, "--python-path", MOUNTAPPS,
                          "--mount", "/api=handlers:echo", "--mount", "/wsgi=wsgiapps:app")
    server.access_log = log
    return server


def unique_path():
    return f"/httptest/readme.txt?{uuid.uuid4().hex}"


def test_a_trusted_proxys_client_is_logged_with_the_proxy_as_realip(behind_proxy):
    path = unique_path()
    assert fetch(behind_proxy, path, PROXY, {"X-Forwarded-For": CLIENT})[0] == 200
    assert logged_addresses(behind_proxy.access_log, path) == (CLIENT, PROXY)


def test_forwarded_from_a_trusted_proxy_names_the_client(start_server, tmp_path):
    log = str(tmp_path / "access.log")
    server = start_server("--real-ip-from", PROXY, "--real-ip-header", "Forwarded", "--access-log", log,
                          "--access-log-format", LOG_FORMAT)
    path = unique_path()
    fetch(server, path, PROXY, {"Forwarded": f'for="[2001:db8::7]:4711", for={CLIENT}'})
    assert logged_addresses(log, path) == (CLIENT, PROXY)


def test_an_outsiders_x_forwarded_for_changes_nothing(behind_proxy):
    path = unique_path()
    fetch(behind_proxy, path, OUTSIDER, {"X-Forwarded-For": CLIENT})
    assert logged_addresses(behind_proxy.access_log, path) == (OUTSIDER, OUTSIDER)


def test_status_allow_cannot_be_passed_with_a_forged_header(behind_proxy):
    assert fetch(behind_proxy, STATUS_PATH, OUTSIDER, {"X-Forwarded-For": "127.0.0.1"})[0] == 403
    assert fetch(behind_proxy, STATUS_PATH, OUTSIDER, {"Forwarded": "for=127.0.0.1"})[0] == 403


def test_an_address_a_client_prepends_through_the_proxy_does_not_pass_status_allow(behind_proxy):
    assert fetch(behind_proxy, STATUS_PATH, PROXY, {"X-Forwarded-For": f"127.0.0.1, {CLIENT}"})[0] == 403


def test_status_allow_judges_the_client_the_proxy_names(behind_proxy):
    assert fetch(behind_proxy, STATUS_PATH, PROXY, {"X-Forwarded-For": "127.0.0.1"})[0] == 200
    assert fetch(behind_proxy, STATUS_PATH, "127.0.0.1", {"X-Forwarded-For": CLIENT})[0] == 200


def test_a_handler_sees_the_client_the_proxy_names(behind_proxy):
    status, body = fetch(behind_proxy, "/api/x", PROXY, {"X-Forwarded-For": "[2001:db8::7]:4711"})
    assert status == 200 and json.loads(body)["client"] == ["2001:db8::7", 4711]


def test_a_wsgi_app_sees_the_client_the_proxy_names_as_remote_addr(behind_proxy):
    status, body = fetch(behind_proxy, "/wsgi/environ", PROXY, {"X-Forwarded-For": CLIENT})
    assert status == 200 and json.loads(body)["REMOTE_ADDR"] == CLIENT


def test_a_handler_sees_an_outsider_as_it_is(behind_proxy):
    status, body = fetch(behind_proxy, "/api/x", OUTSIDER, {"X-Forwarded-For": CLIENT})
    assert json.loads(body)["client"][0] == OUTSIDER
