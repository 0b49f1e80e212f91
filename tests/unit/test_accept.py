"""The accept policy (oserver/process/accept.py): which mode a worker accepts in, and its two pauses."""

import time

from oserver.process.accept import (BALANCE_PAUSE, DESCRIPTOR_PAUSE, EXCLUSIVE_BATCHES, ONE_AT_A_TIME, AcceptPolicy,
                                    accept_mode)
from oserver.process.stats import SharedStats

GENERATION = 1


def test_static_files_are_accepted_in_exclusive_batches():
    assert accept_mode(False, 1) is EXCLUSIVE_BATCHES and accept_mode(False, 8) is EXCLUSIVE_BATCHES


def test_inline_mounted_code_shares_connections_one_for_one():
    assert accept_mode(True, 1) is ONE_AT_A_TIME and ONE_AT_A_TIME.slack == 1


def test_a_thread_pool_takes_its_thread_count_then_shares_one_for_one():
    mode = accept_mode(True, 32)
    assert (mode.batch, mode.allowance, mode.slack, mode.events) == (1, 32, 1, ONE_AT_A_TIME.events)


def policy_with_a_peer(peer_load, mode=ONE_AT_A_TIME):
    stats = SharedStats(4)
    own, peer = stats.slots[0], stats.slots[1]
    own.worker_started(1000, GENERATION)
    peer.worker_started(1001, GENERATION)
    peer.heartbeat(peer_load, 0)
    policy = AcceptPolicy(mode, own, GENERATION)
    policy.balance.find_peers(time.monotonic())
    return policy


def test_a_worker_ahead_of_its_peer_defers_once_then_accepts_whatever_they_hold():
    policy = policy_with_a_peer(0)
    now = time.monotonic()
    assert policy.defer_to_peers(5, now) and policy.paused(now)
    assert not policy.paused(now + BALANCE_PAUSE)
    assert not policy.defer_to_peers(5, now + BALANCE_PAUSE)


def test_a_peers_requests_waiting_for_a_thread_count_as_its_load():
    stats = SharedStats(4)
    own, peer = stats.slots[0], stats.slots[1]
    own.worker_started(1000, GENERATION)
    peer.worker_started(1001, GENERATION)
    # 5 connections, 2 requests running on threads (on 2 of those connections) and 3 waiting for one: a load of 8
    peer.heartbeat(5, 0, busy=2, queued=3)
    policy = AcceptPolicy(ONE_AT_A_TIME, own, GENERATION)
    policy.balance.find_peers(time.monotonic())
    assert not policy.defer_to_peers(9, time.monotonic())
    assert policy.defer_to_peers(10, time.monotonic())


def test_running_out_of_descriptors_is_reported_once_per_shortage():
    policy = policy_with_a_peer(0)
    now = time.monotonic()
    assert policy.descriptors_exhausted(now) and not policy.descriptors_exhausted(now)
    assert policy.paused(now) and not policy.paused(now + DESCRIPTOR_PAUSE)
    assert policy.backlog_empty() and not policy.backlog_empty()
