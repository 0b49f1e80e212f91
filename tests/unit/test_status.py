"""Shared stats and the status page as pure code: slots in an anonymous mmap, no server, no sockets."""

import json

import pytest

from oserver.http.parser import parse_request_head
from oserver.process.stats import PATH_BYTES, PENDING_PATHS_MAX, TOP_PATHS, SharedStats
from oserver.status import ready_reply, render_json, render_prometheus, requested_format, status_document


@pytest.fixture
def stats():
    shared = SharedStats(4)
    for i, slot in enumerate(shared.slots[:2]):
        slot.worker_started(1000 + i, 1)
    return shared


def request(target="/status", accept=None):
    head = b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x"
    if accept:
        head += b"\r\nAccept: " + accept.encode()
    return parse_request_head(head)


def hits(shared):
    return dict(shared.snapshot()["top_paths"])


def test_totals_add_up_the_workers(stats):
    a, b = stats.slots[:2]
    a.count_request(200, "/a")
    a.count_request(404, "/b")
    b.count_request(200, "/a")
    b.count_bytes(500)
    totals = stats.snapshot()["totals"]
    assert totals["requests"] == 3
    assert totals["responses"] == {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 0}
    assert totals["bytes_sent"] == 500


def test_each_live_worker_is_listed(stats):
    assert [w["pid"] for w in stats.snapshot()["workers"]] == [1000, 1001]


def test_a_stopped_worker_is_not_listed_but_still_counted(stats):
    stats.slots[0].count_request(200, "/a")
    stats.slots[0].worker_stopped()
    snapshot = stats.snapshot()
    assert [w["pid"] for w in snapshot["workers"]] == [1001]
    assert snapshot["totals"]["requests"] == 1


def test_retiring_a_slot_keeps_its_counts_in_the_totals(stats):
    slot = stats.slots[0]
    for _ in range(3):
        slot.count_request(200, "/a")
    slot.count_bytes(10)
    slot.heartbeat(0, 0)
    stats.retire(0)
    snapshot = stats.snapshot()
    assert (snapshot["totals"]["requests"], snapshot["totals"]["bytes_sent"]) == (3, 10)
    assert dict(snapshot["top_paths"]) == {"/a": 3}
    assert slot.read()["requests"] == 0


def test_a_slot_reused_by_a_new_worker_starts_from_zero(stats):
    stats.slots[0].count_request(200, "/a")
    stats.retire(0)
    stats.slots[0].worker_started(2000, 2)
    assert stats.slots[0].read()["requests"] == 0
    assert stats.snapshot()["totals"]["requests"] == 1


def test_path_hits_are_published_on_the_heartbeat(stats):
    slot = stats.slots[0]
    slot.count_request(200, "/a")
    assert hits(stats) == {}
    slot.heartbeat(0, 0)
    assert hits(stats) == {"/a": 1}


def test_the_status_worker_publishes_its_own_paths_first(stats):
    stats.slots[0].count_request(200, "/a")
    assert dict(stats.slots[0].snapshot()["top_paths"]) == {"/a": 1}


def test_path_hits_are_exact_while_the_table_has_room(stats):
    a, b = stats.slots[:2]
    for _ in range(7):
        a.count_request(200, "/x")
    for _ in range(3):
        b.count_request(200, "/x")
    b.count_request(200, "/y")
    a.heartbeat(0, 0)
    b.heartbeat(0, 0)
    assert stats.snapshot()["top_paths"] == [("/x", 10), ("/y", 1)]


def test_a_full_table_keeps_the_frequent_paths(stats):
    slot = stats.slots[0]
    for _ in range(50):
        slot.count_request(200, "/popular")
    slot.heartbeat(0, 0)
    for i in range(TOP_PATHS * 3):
        slot.count_request(200, f"/rare/{i}")
        slot.heartbeat(0, 0)
    top = hits(stats)
    assert top["/popular"] == 50
    assert len(top) == TOP_PATHS


def test_many_distinct_paths_are_published_before_the_heartbeat(stats):
    slot = stats.slots[0]
    for i in range(PENDING_PATHS_MAX + 1):
        slot.count_request(200, f"/p/{i}")
    assert len(hits(stats)) == TOP_PATHS


def test_long_paths_are_shown_truncated(stats):
    long_path = "/" + "a" * (PATH_BYTES + 50)
    stats.slots[0].count_request(200, long_path)
    stats.slots[0].heartbeat(0, 0)
    assert hits(stats) == {long_path[:PATH_BYTES] + "...": 1}


def test_rejected_requests_count_without_a_path(stats):
    stats.slots[0].count_request(400, None)
    stats.slots[0].heartbeat(0, 0)
    snapshot = stats.snapshot()
    assert snapshot["totals"]["responses"]["4xx"] == 1
    assert snapshot["top_paths"] == []


def test_heartbeat_splits_connections_into_active_and_idle(stats):
    stats.slots[0].heartbeat(5, 2)
    worker = stats.slots[0].read()
    assert (worker["active"], worker["idle"]) == (3, 2)


def test_status_document_server_totals(stats):
    stats.slots[0].count_request(200, "/a")
    stats.slots[1].heartbeat(4, 1)
    server = status_document(stats.snapshot(), 1000)["server"]
    assert (server["workers"], server["requests"], server["active"], server["idle"]) == (2, 1, 3, 1)


def test_json_rendering_is_json(stats):
    assert json.loads(render_json(status_document(stats.snapshot(), 1000)))["answered_by"] == 1000


def test_prometheus_label_values_are_escaped(stats):
    stats.slots[0].count_request(200, '/a"b\\c')
    stats.slots[0].heartbeat(0, 0)
    text = render_prometheus(status_document(stats.snapshot(), 1000)).decode()
    assert 'oserver_path_hits_total{path="/a\\"b\\\\c"} 1' in text.splitlines()


def test_json_is_the_default_format():
    assert requested_format(request(accept="*/*")) == "json"


def test_format_query_selects_prometheus():
    assert requested_format(request("/status?format=prometheus")) == "prometheus"


def test_accept_text_plain_selects_prometheus():
    assert requested_format(request(accept="text/plain;version=0.0.4;q=0.5,*/*;q=0.1")) == "prometheus"


def test_accept_naming_json_keeps_json():
    assert requested_format(request(accept="application/json, text/plain")) == "json"


def test_unknown_format_query_is_none():
    assert requested_format(request("/status?format=xml")) is None


# ---------------------------------------------------------------- readiness

def test_readiness_is_200_while_the_instance_takes_new_work():
    reply = ready_reply(request("/readyz"), True)
    assert reply.status == 200 and b"Cache-Control: no-store" in reply.fields


def test_readiness_is_503_once_it_stops_taking_new_work():
    assert ready_reply(request("/readyz"), False).status == 503


def test_readiness_refuses_other_methods():
    post = parse_request_head(b"POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 0")
    assert ready_reply(post, True).status == 405


def test_the_leaving_flag_is_shared_and_starts_clear():
    stats = SharedStats(1)
    assert not stats.leaving
    stats.leaving = True
    assert stats.slots[0].shared.leaving
