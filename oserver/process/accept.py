"""The accept policy of a worker: how it takes new connections (a named mode) and when it leaves them in the
backlog (two separate pauses: out of file descriptors, and a peer holding fewer connections).

Decisions only: the worker's loop does the accepting and the epoll registration.
"""

import select
from dataclasses import dataclass, replace

from oserver.process.balance import BALANCE_SLACK, MOUNTED_BALANCE_SLACK, AcceptBalance

DESCRIPTOR_PAUSE = 0.5  # seconds without accepting after running out of file descriptors
BALANCE_PAUSE = 0.02  # seconds a worker with clearly more connections than a peer leaves new ones to it


@dataclass(slots=True, frozen=True)
class AcceptMode:
    """`events` the listener is watched with, `batch` connections taken per wake-up, `slack` connections a
    worker may hold above its least loaded peer, `yields_turn` re-queues it behind its peers after a batch,
    `allowance` the connections it takes whatever its peers hold."""

    name: str
    events: int
    batch: int
    slack: int
    yields_turn: bool
    allowance: int


# Static files: one new connection wakes one worker (EPOLLEXCLUSIVE), which takes a batch, then steps to the
# back of the listener's queue of waiting workers (the kernel wakes them in registration order).
EXCLUSIVE_BATCHES = AcceptMode("exclusive batches", select.EPOLLIN | select.EPOLLEXCLUSIVE, 64, BALANCE_SLACK, True,
                               BALANCE_SLACK)
# Mounted code may hold a worker for a while, and keep-alive clients stay with the worker that accepted them:
# every worker is woken for each connection, takes one, and leaves the next to a peer holding fewer.
ONE_AT_A_TIME = AcceptMode("one at a time", select.EPOLLIN, 1, MOUNTED_BALANCE_SLACK, False, MOUNTED_BALANCE_SLACK)


def accept_mode(mounted, threads):
    """Exclusive batches for static files; one at a time with mounted code, sharing connections one for one.
    On a thread pool a worker first takes as many connections as it has threads, whatever its peers hold (it
    serves each at once: holding back would only delay first answers), and shares the rest one for one (a
    connection beyond its threads may have to wait for one)."""
    if not mounted:
        return EXCLUSIVE_BATCHES
    if threads == 1:
        return ONE_AT_A_TIME
    return replace(ONE_AT_A_TIME, allowance=threads)


class AcceptPolicy:
    def __init__(self, mode, slot, generation):
        self.mode = mode
        self.balance = AcceptBalance(slot, generation, mode.slack, mode.allowance)
        self.out_of_descriptors = False  # accept() hit EMFILE/ENFILE and has not since found the backlog empty
        self.descriptors_pause_until = 0.0
        self.peers_pause_until = 0.0
        self.deferred = False  # accepting was left to the peers: the next batch goes ahead whatever they hold

    def paused(self, now):
        return now < self.descriptors_pause_until or now < self.peers_pause_until

    def defer_to_peers(self, connections, now):
        """Should this wake-up leave the listener to the peers (holding clearly more connections than one)?
        A deferral lasts BALANCE_PAUSE; the batch after it is accepted regardless, so accepting never stalls."""
        if self.deferred:
            self.deferred = False
            return False
        if not self.balance.over_share(connections, now):
            return False
        self.deferred = True
        self.peers_pause_until = now + BALANCE_PAUSE
        return True

    def descriptors_exhausted(self, now):
        """accept() ran out of file descriptors: pause DESCRIPTOR_PAUSE; True the first time of a shortage
        (to be reported once, not once per retry)."""
        self.descriptors_pause_until = now + DESCRIPTOR_PAUSE
        first, self.out_of_descriptors = not self.out_of_descriptors, True
        return first

    def backlog_empty(self):
        """The backlog was found empty with a descriptor free; True when that ends a shortage."""
        ended, self.out_of_descriptors = self.out_of_descriptors, False
        return ended
