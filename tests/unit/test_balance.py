"""Accept balancing (oserver/balance.py): when a worker counts as holding clearly more than its peers."""

import time

import pytest

from oserver.process.balance import BALANCE_SLACK, MOUNTED_BALANCE_SLACK, PEER_LOOKUP_INTERVAL, PEER_SILENCE, AcceptBalance
from oserver.process.stats import SharedStats

GENERATION = 1


@pytest.fixture
def stats():
    return SharedStats(8)


def started(stats, index, connections, generation=GENERATION):
    slot = stats.slots[index]
    slot.worker_started(1000 + index, generation)
    slot.heartbeat(connections, connections // 2)
    return slot


def balance_of(slot, generation=GENERATION):
    balance = AcceptBalance(slot, generation)
    balance.find_peers(time.monotonic())
    return balance


def test_worker_above_least_loaded_peer_plus_slack_is_over_share(stats):
    own = started(stats, 0, 0)
    started(stats, 1, 10)
    started(stats, 2, 500)
    assert balance_of(own).over_share(10 + BALANCE_SLACK + 1, time.monotonic())


def test_worker_within_slack_of_its_peers_is_not_over_share(stats):
    own = started(stats, 0, 0)
    started(stats, 1, 10)
    assert not balance_of(own).over_share(10 + BALANCE_SLACK, time.monotonic())


def test_peer_counts_are_read_afresh(stats):
    own = started(stats, 0, 0)
    peer = started(stats, 1, 10)
    balance = balance_of(own)
    peer.heartbeat(400, 0)
    assert not balance.over_share(400, time.monotonic())


def test_worker_without_peers_is_never_over_share(stats):
    own = started(stats, 0, 0)
    assert not balance_of(own).over_share(100_000, time.monotonic())


def test_peers_of_another_generation_do_not_count(stats):
    own = started(stats, 0, 0)
    started(stats, 1, 0, generation=GENERATION - 1)  # an old generation, draining after a reload
    assert balance_of(own).peers == ()


def test_silent_peer_does_not_count(stats):
    own = started(stats, 0, 0)
    started(stats, 1, 0)
    balance = balance_of(own)
    assert len(balance.peers) == 1
    assert not balance.over_share(10_000, time.monotonic() + PEER_SILENCE + 1)


def test_stopped_peer_does_not_count(stats):
    own = started(stats, 0, 0)
    started(stats, 1, 0).worker_stopped()
    assert balance_of(own).peers == ()


def test_slack_of_one_shares_connections_one_for_one(stats):
    own = started(stats, 0, 0)
    started(stats, 1, 3)
    balance = AcceptBalance(own, GENERATION, slack=MOUNTED_BALANCE_SLACK)
    balance.find_peers(time.monotonic())
    assert not balance.over_share(4, time.monotonic())
    assert balance.over_share(5, time.monotonic())


def test_worker_knowing_no_peer_looks_again_when_it_must_decide(stats):
    own = started(stats, 0, 0)
    balance = balance_of(own)  # looked up alone: no peer yet
    started(stats, 1, 0)  # a peer starts before the next tick
    assert balance.over_share(BALANCE_SLACK + 1, time.monotonic() + PEER_LOOKUP_INTERVAL)


def test_a_worker_below_its_allowance_takes_connections_whatever_its_peers_hold(stats):
    own = started(stats, 0, 0)
    started(stats, 1, 0)
    balance = AcceptBalance(own, GENERATION, slack=MOUNTED_BALANCE_SLACK, allowance=32)
    balance.find_peers(time.monotonic())
    assert not balance.over_share(31, time.monotonic())
    assert balance.over_share(32, time.monotonic())


def test_a_thread_pools_burst_fills_the_first_workers_threads_then_goes_to_its_peer(stats):
    """50 keep-alive clients, 2 workers of 32 threads, the first worker always running first: no worker
    holds more connections than it has threads (none waits for one)."""
    slots = [started(stats, 0, 0), started(stats, 1, 0)]
    first = AcceptBalance(slots[0], GENERATION, MOUNTED_BALANCE_SLACK, allowance=32)
    first.find_peers(time.monotonic())
    held = [0, 0]
    for _ in range(50):
        taker = 1 if first.over_share(held[0], time.monotonic()) else 0
        held[taker] += 1
        slots[taker].heartbeat(held[taker], 0)
    assert held == [32, 18]


@pytest.mark.parametrize("slack, burst", [(BALANCE_SLACK, 1000), (MOUNTED_BALANCE_SLACK, 16)],
                         ids=["static", "mounted"])
def test_a_burst_is_shared_even_when_one_worker_always_runs_first(stats, slack, burst):
    """The burst split, free of scheduling: for each connection of the burst the first worker accepts unless the
    rule says it holds too many, and then its peer accepts; each publishes its count as it accepts."""
    slots = [started(stats, 0, 0), started(stats, 1, 0)]
    first = AcceptBalance(slots[0], GENERATION, slack)
    first.find_peers(time.monotonic())
    held = [0, 0]
    for _ in range(burst):
        taker = 1 if first.over_share(held[0], time.monotonic()) else 0
        held[taker] += 1
        slots[taker].heartbeat(held[taker], 0)
    assert sum(held) == burst
    assert slack <= held[0] - held[1] <= slack + 1  # the first worker at most one over the slack
