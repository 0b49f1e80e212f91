"""The per-client table of process/limits.py on a real shared region: connection counts up to a limit, the
leaky bucket of requests, a full set, a new epoch after a worker died, and exact counts across processes
(forked children racing for the same client's slots under the set's lock)."""

import os
import zlib

import pytest

from oserver.http.realip import Networks
from oserver.process import limits
from oserver.process.limits import (REFUSED, SETS, TABLE_BYTES, UNTRACKED, WAYS, ClientTable, Limits,
                                    client_key)
from oserver.process.stats import SharedStats

KEY = client_key("203.0.113.5")


@pytest.fixture
def stats():
    return SharedStats(2, TABLE_BYTES)


@pytest.fixture
def table(stats):
    return ClientTable(stats)


class Clock:
    """Stands in for time.monotonic inside limits.py."""

    def __init__(self, monkeypatch):
        self.now = 1000.0
        monkeypatch.setattr(limits.time, "monotonic", lambda: self.now)


def same_set_keys(count):
    """`count` client keys that hash to one set of the table."""
    keys = {}
    for i in range(1 << 20):
        key = client_key(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        keys.setdefault(zlib.crc32(key) % SETS, []).append(key)
        if len(keys[zlib.crc32(key) % SETS]) == count:
            return keys[zlib.crc32(key) % SETS]
    raise AssertionError("no set with enough keys")


def test_an_ipv4_client_is_its_ipv4_mapped_ipv6_address():
    assert client_key("203.0.113.5") == client_key("::ffff:203.0.113.5")
    assert client_key("2001:db8::1") != client_key("2001:db8::2")


def test_connections_are_counted_up_to_the_limit(table):
    assert [table.add_connection(KEY, 3) for _ in range(4)] == [0, 0, 0, REFUSED]


def test_a_closed_connection_makes_room_for_another(table):
    for _ in range(3):
        epoch = table.add_connection(KEY, 3)
    table.remove_connection(KEY, epoch)
    assert table.add_connection(KEY, 3) == epoch


def test_other_clients_have_their_own_count(table):
    for _ in range(3):
        table.add_connection(KEY, 3)
    assert table.add_connection(client_key("203.0.113.6"), 3) != REFUSED


def test_a_new_epoch_voids_every_count_and_old_closes(stats, table):
    for _ in range(3):
        old = table.add_connection(KEY, 3)
    stats.new_epoch()
    new = table.add_connection(KEY, 3)
    assert new == old + 1
    table.remove_connection(KEY, old)  # a connection counted before: its count is gone already
    assert [table.add_connection(KEY, 3) for _ in range(3)] == [new, new, REFUSED]


def test_a_set_full_of_clients_holding_connections_leaves_a_new_one_untracked(table):
    keys = same_set_keys(WAYS + 1)
    for key in keys[:WAYS]:
        table.add_connection(key, 1)
    assert table.add_connection(keys[WAYS], 1) == UNTRACKED


def test_a_client_without_connections_makes_room_for_a_new_one(table, monkeypatch):
    clock = Clock(monkeypatch)
    keys = same_set_keys(WAYS + 1)
    for key in keys[:WAYS]:
        clock.now += 1
        table.take_request(key, 1.0, 0)
    assert table.add_connection(keys[WAYS], 1) == 0
    assert table.take_request(keys[0], 1.0, 0) == 0  # the oldest was replaced: it starts afresh


def test_requests_pass_at_the_rate_after_the_burst(table, monkeypatch):
    clock = Clock(monkeypatch)
    assert [table.take_request(KEY, 10.0, 2) for _ in range(4)] == [0, 0, 0, 1]
    clock.now += 0.1  # one request's worth drains
    assert [table.take_request(KEY, 10.0, 2) for _ in range(2)] == [0, 1]


def test_retry_after_counts_the_whole_seconds_until_a_request_may_pass(table, monkeypatch):
    Clock(monkeypatch)
    table.take_request(KEY, 0.25, 0)
    assert table.take_request(KEY, 0.25, 0) == 4


def test_over_time_the_bucket_lets_the_rate_through(table, monkeypatch):
    clock = Clock(monkeypatch)
    passed = 0
    for _ in range(1000):  # 100 requests a second for 10 s, against a limit of 20 a second
        clock.now += 0.01
        passed += table.take_request(KEY, 20.0, 5) == 0
    assert passed == 1 + 5 + 200 - 1


def test_counts_are_exact_across_processes(table):
    """Two forked children race to open 200 connections each for one client limited to 150."""
    pids = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            admitted = sum(table.add_connection(KEY, 150) != REFUSED for _ in range(200))
            os.write(write, b"%d" % admitted)
            os._exit(0)
        os.close(write)
        pids.append((pid, read))
    admitted = []
    for pid, read in pids:
        os.waitpid(pid, 0)
        admitted.append(int(os.read(read, 16)))
        os.close(read)
    assert sum(admitted) == 150


# ---------------------------------------------------------------- a worker's side

class Config:
    limit_conn_per_ip = 2
    limit_req_per_ip = 1.0
    limit_req_burst = 0


class Conn:
    limit = None


@pytest.fixture
def worker_limits(stats, table):
    return Limits(Config(), table, stats.slots[0], Networks(["10.0.0.0/8"]))


def test_a_connection_beyond_the_limit_is_refused_and_counted(worker_limits, stats):
    opened = [worker_limits.connection_opened(Conn(), ("203.0.113.5", 1000 + i)) for i in range(3)]
    assert opened == [True, True, False]
    assert stats.slots[0].read()["limited"]["conn_refused"] == 1


def test_a_closed_connection_is_uncounted(worker_limits):
    conns = [Conn(), Conn()]
    for conn in conns:
        worker_limits.connection_opened(conn, ("203.0.113.5", 1000))
    worker_limits.connection_closed(conns[0])
    assert conns[0].limit is None and worker_limits.connection_opened(Conn(), ("203.0.113.5", 1001))


@pytest.mark.parametrize("address", [("10.1.2.3", 1000), ""], ids=["trusted", "unix"])
def test_trusted_and_unix_socket_clients_are_never_limited(worker_limits, address):
    assert all(worker_limits.connection_opened(Conn(), address) for _ in range(5))
    assert all(worker_limits.request_refusal(address) is None for _ in range(5))


def test_a_request_beyond_the_rate_gets_429_with_retry_after(worker_limits, stats):
    assert worker_limits.request_refusal(("203.0.113.5", 1)) is None
    refusal = worker_limits.request_refusal(("203.0.113.5", 1))
    assert refusal.status == 429 and b"Retry-After: 1\r\n" in refusal.fields
    assert stats.slots[0].read()["limited"]["req_refused"] == 1


def test_after_a_new_epoch_a_worker_counts_its_connections_again(worker_limits, stats, table):
    conns = [Conn(), Conn()]
    for conn in conns:
        worker_limits.connection_opened(conn, ("203.0.113.5", 1000))
    stats.new_epoch()
    worker_limits.tick(0.0, conns)
    assert [conn.limit[1] for conn in conns] == [1, 1]
    assert not worker_limits.connection_opened(Conn(), ("203.0.113.5", 1002))
