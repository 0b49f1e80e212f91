"""The live status page of a real server: off by default, address-restricted, JSON and Prometheus text, and
numbers aggregated across workers through the shared stats region: exact totals, workers, top paths.

Requests are counted when they are answered, before the response is sent, so every response a client has
read is already in the totals, whichever worker answers the status request; the status request itself is
counted after its own page is built.
"""

import json
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.integration.test_core import request_bytes, run_httpd, wait_until
from tests.integration.test_hardening import connect, send_raw

STATUS = "/server-status"
README = "/httptest/readme.txt"
CLIENT_THREADS = 4
PROMETHEUS_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf"({METRIC_NAME})(?:\{{(.*)\}})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)')


# ---------------------------------------------------------------- helpers

def status_server(start_server, *args, workers=2):
    """A server with the status page on, once every worker has started (the first one answers sooner)."""
    server = start_server("--status-path", STATUS, *args, workers=workers)
    if "--status-allow" not in args:
        wait_until(lambda: len(status_json(server)["workers"]) == workers, what="every worker started")
    return server


def fetch(server, target=STATUS, *headers):
    """(status code, headers text, body) of one request on its own connection, read until the server closes."""
    response, closed = send_raw(server, request_bytes("GET", target, headers=("Host: localhost", "Connection: close",
                                                                              *headers)))
    assert closed, "the server kept a Connection: close request open"
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head[9:12]), head.decode("latin-1"), body, len(response)


def status_json(server):
    code, _, body, _ = fetch(server)
    assert code == 200
    return json.loads(body)


def parse_prometheus(text):
    """{(name, frozenset of label pairs): value} from the text exposition format; asserts its rules: HELP and
    TYPE before the samples of a family, known types, well-formed and unique series, numeric values."""
    types = {}
    samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert re.fullmatch(rf"# HELP {METRIC_NAME} .*", line), line
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in PROMETHEUS_TYPES and name not in types, line
            types[name] = kind
        else:
            m = SAMPLE.fullmatch(line)
            assert m, f"not a sample line: {line!r}"
            name, labels_text, value = m.groups()
            assert name in types, f"sample before the TYPE of its family: {line!r}"
            key = (name, frozenset(parse_labels(labels_text or "")))
            assert key not in samples, f"duplicate series: {line!r}"
            samples[key] = float(value)
    return samples


def parse_labels(text):
    labels = []
    position = 0
    while position < len(text):
        m = LABEL.match(text, position)
        assert m, f"malformed labels: {text!r}"
        labels.append((m[1], m[2]))
        position = m.end()
    return labels


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def get_many(server, paths):
    """GET each path on its own connection, from a few threads at once (so several workers answer)."""
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        return list(pool.map(lambda path: requests.get(server.url + path).status_code, paths))


# ---------------------------------------------------------------- access

def test_status_page_is_off_by_default(server):
    assert fetch(server)[0] == 404


def test_status_page_is_refused_to_an_unlisted_address(start_server):
    server = status_server(start_server, "--status-allow", "10.0.0.0/8")
    assert fetch(server)[0] == 403


def test_status_page_is_served_to_a_listed_network(start_server):
    server = status_server(start_server, "--status-allow", "127.0.0.0/8")
    assert fetch(server)[0] == 200


def test_status_page_refuses_other_methods(start_server):
    server = status_server(start_server)
    response, _ = send_raw(server, request_bytes("DELETE", STATUS, headers=("Host: localhost", "Connection: close")))
    assert response.startswith(b"HTTP/1.1 405 ")


def test_unknown_format_is_a_400(start_server):
    server = status_server(start_server)
    assert fetch(server, STATUS + "?format=xml")[0] == 400


def test_invalid_allow_entry_is_refused_at_start(docroot):
    result = run_httpd("-r", docroot, "--status-path", STATUS, "--status-allow", "localhost", "-t")
    assert result.returncode != 0 and "status_allow" in result.stderr


# ---------------------------------------------------------------- JSON

def test_json_is_the_default_format(start_server):
    server = status_server(start_server)
    code, head, body, _ = fetch(server)
    assert "Content-Type: application/json" in head
    assert set(json.loads(body)) == {"server", "workers", "top_paths", "answered_by"}


def test_totals_equal_the_requests_sent_across_workers(start_server):
    server = status_server(start_server, workers=3)
    before = status_json(server)["server"]
    codes = get_many(server, [README] * 40 + ["/httptest/missing"] * 20)
    after = status_json(server)
    sent_2xx, sent_4xx = codes.count(200), codes.count(404)
    assert (sent_2xx, sent_4xx) == (40, 20)
    totals = after["server"]
    assert totals["requests"] == before["requests"] + 1 + 60  # + the first status request
    assert totals["responses"]["2xx"] == before["responses"]["2xx"] + 1 + 40
    assert totals["responses"]["4xx"] == before["responses"]["4xx"] + 20
    assert totals["requests"] == sum(w["requests"] for w in after["workers"])


def test_rejected_requests_are_counted(start_server):
    server = status_server(start_server)
    before = status_json(server)["server"]["responses"]["4xx"]
    send_raw(server, b"GARBAGE\r\n\r\n")
    assert status_json(server)["server"]["responses"]["4xx"] == before + 1


def test_bytes_sent_count_heads_and_bodies(start_server):
    server = status_server(start_server)
    first_code, _, first_body, first_size = fetch(server)
    readme_size = fetch(server, README)[3]
    second = status_json(server)
    assert second["server"]["bytes_sent"] == json.loads(first_body)["server"]["bytes_sent"] + first_size + readme_size


def test_each_worker_is_listed_with_its_pid_and_generation(start_server):
    server = status_server(start_server, workers=3)
    document = status_json(server)
    workers = document["workers"]
    assert sorted(w["pid"] for w in workers) == server.worker_pids()
    assert all(w["generation"] == 1 and w["uptime_seconds"] >= 0 for w in workers)
    assert document["answered_by"] in server.worker_pids()
    assert document["server"]["workers"] == 3


def test_idle_keepalive_connections_are_shown(start_server):
    server = status_server(start_server)
    sockets = [connect(server) for _ in range(3)]
    try:
        for sock in sockets:
            sock.sendall(request_bytes("GET", README))
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        wait_until(lambda: status_json(server)["server"]["idle"] == 3, what="3 idle connections in the status")
    finally:
        for sock in sockets:
            sock.close()


def test_most_requested_paths_show_their_hits(start_server):
    server = status_server(start_server)
    get_many(server, [README] * 7 + ["/httptest/dir2/"] * 3)

    def top_paths():
        return {p["path"]: p["hits"] for p in status_json(server)["top_paths"]}

    wait_until(lambda: top_paths().get(README) == 7 and top_paths().get("/httptest/dir2/") == 3,
               what="the hits of both paths")


def test_totals_survive_a_worker_being_replaced(start_server):
    server = status_server(start_server)
    get_many(server, [README] * 10)
    before = status_json(server)["server"]
    victim = server.worker_pids()[0]
    status_reads = 0

    def replaced():
        nonlocal status_reads
        status_reads += 1
        pids = [w["pid"] for w in status_json(server)["workers"]]
        return victim not in pids and len(pids) == 2

    os.kill(victim, signal.SIGKILL)
    wait_until(replaced, what="the killed worker replaced")
    after = status_json(server)["server"]
    assert after["requests"] == before["requests"] + 1 + status_reads


# ---------------------------------------------------------------- Prometheus

def test_prometheus_text_parses(start_server):
    server = status_server(start_server)
    get_many(server, [README] * 5)
    code, head, body, _ = fetch(server, STATUS + "?format=prometheus")
    assert code == 200 and "Content-Type: text/plain; version=0.0.4" in head
    samples = parse_prometheus(body.decode("utf-8"))
    assert value(samples, "oserver_workers") == 2
    assert value(samples, "oserver_responses_total", **{"class": "2xx"}) >= 5


def test_prometheus_totals_match_json(start_server):
    server = status_server(start_server)
    get_many(server, [README] * 5)
    document = status_json(server)
    samples = parse_prometheus(fetch(server, STATUS + "?format=prometheus")[2].decode("utf-8"))
    assert value(samples, "oserver_requests_total") == document["server"]["requests"] + 1
    assert value(samples, "oserver_sent_bytes_total") >= document["server"]["bytes_sent"]
    for worker in document["workers"]:
        labels = {"pid": str(worker["pid"]), "generation": "1"}
        assert value(samples, "oserver_worker_requests_total", **labels) >= worker["requests"]


def test_prometheus_shows_the_most_requested_paths(start_server):
    server = status_server(start_server)
    get_many(server, [README] * 4)

    def readme_hits():
        samples = parse_prometheus(fetch(server, STATUS + "?format=prometheus")[2].decode("utf-8"))
        return samples.get(("oserver_path_hits_total", frozenset({("path", README)})))

    wait_until(lambda: readme_hits() == 4, what="the path hits in the Prometheus text")


def test_accept_text_plain_gets_prometheus(start_server):
    server = status_server(start_server)
    code, head, body, _ = fetch(server, STATUS, "Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert "Content-Type: text/plain; version=0.0.4" in head
    assert value(parse_prometheus(body.decode("utf-8")), "oserver_workers") == 2
