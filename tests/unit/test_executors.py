"""The thread pool's hand-back to the loop (oserver/apps/executors.py): results come back on the loop thread, and
calls finishing before the loop has woken do not write the eventfd again (one wake-up for all of them)."""

import os
import select
import threading
import time

from oserver.apps.executors import ThreadPool

DEADLINE_S = 10.0


def wait_until(condition, what):
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def wakeup_readable(pool):
    poller = select.poll()
    poller.register(pool.wakeup, select.POLLIN)
    return bool(poller.poll(0))


def blocked_job(pool, number, delivered):
    """A job that waits for the returned Event, then delivers `number` to `delivered`."""
    gate = threading.Event()
    pool.run(lambda: gate.wait() and number, delivered.append)
    return gate


def finish_one_by_one(pool, numbers, delivered):
    """Let the jobs finish one after another, each once the one before has queued its result and woken the
    loop (which does not read meanwhile)."""
    gates = [blocked_job(pool, number, delivered) for number in numbers]
    for count, gate in enumerate(gates, 1):
        gate.set()
        wait_until(lambda: len(pool.finished) == count and wakeup_readable(pool), "a result and the wake-up")


def test_results_finishing_before_the_loop_wakes_write_the_eventfd_once_and_all_are_delivered():
    pool = ThreadPool(3, 10, clock=None, resume=None)
    delivered = []
    finish_one_by_one(pool, [0, 1, 2], delivered)
    pool.complete()
    assert sorted(delivered) == [0, 1, 2]
    finish_one_by_one(pool, [3], delivered)  # a result after the loop has read wakes it again
    pool.complete()
    assert sorted(delivered) == [0, 1, 2, 3]


def test_the_eventfd_counts_one_write_for_results_queued_together():
    pool = ThreadPool(2, 10, clock=None, resume=None)
    finish_one_by_one(pool, [0, 1], [])
    assert os.eventfd_read(pool.wakeup) == 1
