"""Executors: where mounted code runs. `submit(call, protocol)` runs an AppCall and, on the worker's loop
thread, hands its Reply to `protocol.app_replied(call, reply)`.

InlineExecutor (`threads = 1`) calls the code right away in the loop: until it returns, the worker serves
nobody else. ThreadPool (`threads = N`) runs it on N threads while the loop keeps every socket: a finished
call is queued back and the loop is woken through an eventfd in its epoll; a streamed body is pulled on
the pool too (PooledStream), a chunk at a time as the client drains it. Requests beyond the pool's pending
limit get 503. Only the loop thread touches protocols, stats and logs; pool threads run app code only.
"""

import collections
import logging
import os
import queue
import threading
import time
import traceback

from oserver.apps.handlers import StreamedBody, run_app
from oserver.http.output import Part, SendFailed
from oserver.http.response import error_reply

RETRY_AFTER_SECONDS = 1
BUSY_REPLY = error_reply(503, b"Retry-After: %d\r\n" % RETRY_AFTER_SECONDS)

log = logging.getLogger("oserver.apps")


class InlineExecutor:
    busy = queued = 0  # nothing runs beside the loop
    wakeup = None  # nor wakes it

    def __init__(self, clock):
        self.clock = clock

    def submit(self, call, protocol):
        reply = run_app(call, call.client, protocol.local_address())
        self.clock.update()  # the reply is timed from the request's start; what follows from now
        protocol.app_replied(call, reply)


class AppPending(Exception):
    """An output part waits for the pool (a streamed body's next chunk): nothing to write until it wakes
    the connection; the transport is not watched meanwhile."""


class PooledStream(Part):
    """A streamed body whose chunks are pulled on the pool (its iterator may block), one ahead at most."""

    __slots__ = ("stream", "pool", "protocol", "chunk", "pulling", "ended", "failure", "closing")

    def __init__(self, stream, pool, protocol):
        self.stream = stream
        self.pool = pool
        self.protocol = protocol
        self.chunk = None  # the next bytes to send, once pulled
        self.pulling = False
        self.ended = False
        self.failure = None  # what the iterator raised
        self.closing = False  # close() came while a pull ran: the pull's return closes it

    def write(self, response, transport):
        if self.chunk is not None:
            response.pending, self.chunk = self.chunk, None
            response.quota -= len(response.pending)
            return False
        if self.failure is not None:
            raise SendFailed(f"streamed body failed: {self.failure!r}")
        if self.ended:
            return True
        if not self.pulling:
            self.pulling = True
            self.pool.run(self.stream.next_part, self.pulled)
        raise AppPending

    def pulled(self, result):
        """On the loop thread: the pool pulled a chunk (bytes), the end (None) or an exception."""
        self.pulling = False
        if isinstance(result, BaseException):
            self.failure = result
        elif result is None:
            self.ended = True
        else:
            self.chunk = result
        if self.closing:
            return self.stream.close()
        self.pool.resume(self.protocol)

    def close(self):
        if self.pulling:
            self.closing = True
        else:
            self.stream.close()


class ThreadPool:
    """`threads` threads running mounted code for one worker; `limit` calls in flight (running or waiting)
    at most. `resume(protocol)` is the loop's: it sends what a protocol now has to send."""

    def __init__(self, threads, limit, clock, resume):
        self.limit = limit
        self.clock = clock
        self.resume = resume
        self.jobs = queue.SimpleQueue()
        self.finished = collections.deque()  # (callback, result): appended by pool threads, read by the loop
        self.wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.wake_sent = False  # the eventfd was written since the loop last read it: no need to again
        self.in_flight = 0  # calls submitted and not yet replied (loop thread only)
        self.running = {}  # thread id -> (monotonic start, AppCall) of a call running now
        self.slow = set()  # ids of calls already reported as running past worker_timeout
        for _ in range(threads):
            threading.Thread(target=self.serve, daemon=True, name="oserver-app").start()

    @property
    def busy(self):
        return len(self.running)

    @property
    def queued(self):
        return max(self.in_flight - len(self.running), 0)

    def submit(self, call, protocol):
        if self.in_flight >= self.limit:
            log.warning("%d requests for mounted code in flight: %s %s answered 503", self.in_flight,
                        call.request.method, call.request.target)
            return protocol.app_replied(call, BUSY_REPLY)
        self.in_flight += 1
        server = protocol.local_address()
        self.jobs.put((lambda: run_app(call, call.client, server), lambda reply: self.replied(call, protocol, reply),
                       call))

    def replied(self, call, protocol, reply):
        self.in_flight -= 1
        self.slow.discard(id(call))
        parts = reply.parts
        if parts and parts[0].__class__ is StreamedBody:  # pulled on the pool, as the client drains it
            reply.parts = (PooledStream(parts[0], self, protocol),)
        protocol.app_replied(call, reply)
        self.resume(protocol)

    def run(self, work, callback):
        """Run work() on the pool; callback(its result, or the exception it raised) on the loop thread."""
        self.jobs.put((work, callback, None))

    def serve(self):
        """A pool thread: run jobs, queue their results back to the loop and wake it."""
        me = threading.get_ident()
        while True:
            work, callback, call = self.jobs.get()
            if call is not None:
                self.running[me] = (time.monotonic(), call)
            try:
                result = work()
            except BaseException as e:  # run_app answers a handler's failures itself; this is a stream's
                result = e
            finally:
                self.running.pop(me, None)
            self.finished.append((callback, result))
            if not self.wake_sent:  # calls finishing together wake the loop once
                self.wake_sent = True
                os.eventfd_write(self.wakeup, 1)

    def complete(self):
        """On the loop thread, when the eventfd is readable: deliver what the pool finished. The eventfd is
        read before wake_sent is cleared, and both before the queue is emptied: a result appended after a
        thread saw wake_sent set is delivered now, and one appended after it was cleared writes again."""
        try:
            os.eventfd_read(self.wakeup)
        except BlockingIOError:
            pass
        self.wake_sent = False
        finished = self.finished
        while finished:
            callback, result = finished.popleft()
            try:
                callback(result)
            except Exception:  # the loop serves on whatever one reply did
                log.error("error delivering a result of mounted code:\n%s", traceback.format_exc())

    def report_slow(self, timeout):
        """Log (once each) the calls running longer than `timeout`: the loop is fine, the handler is not."""
        now = time.monotonic()
        for started, call in list(self.running.values()):
            if now - started > timeout and id(call) not in self.slow:
                self.slow.add(id(call))
                log.warning("mounted code has been running for %.0fs on %s %s", now - started, call.request.method,
                            call.request.path)
