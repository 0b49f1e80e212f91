"""A worker's clock and timer queues: the loop's time, read once per loop turn, and one queue of
connections per timeout (header, keep-alive, send, linger), each in deadline order."""

import time
from collections import OrderedDict


class LoopClock:
    """The loop's notion of now (monotonic seconds), updated once per loop turn (and after inline app code),
    as nginx caches its time: requests, timers and the access log read it without a clock call."""

    __slots__ = ("now",)

    def __init__(self):
        self.now = time.monotonic()

    def update(self):
        self.now = time.monotonic()


class TimerQueue(OrderedDict):
    """Connections waiting in one state, in deadline order: one timeout per queue means appending keeps the
    order, so expiring is a look at the front, whatever the number of connections. `expire(conn)` runs when
    a connection's time is up."""

    def __init__(self, name, timeout, expire):
        super().__init__()
        self.name = name
        self.timeout = timeout
        self.expire = expire
