"""One worker process: an epoll loop over the shared listening sockets and the connections it accepted.

Owns accepting (batched, paused when full or out of descriptors, deferred to peers holding clearly fewer
connections), the per-state timer queues, graceful draining and the worker's signals. Of other workers it
knows only their connection counts in the shared stats; it talks to the master only through signals, its
exit code and its shared stats slot (heartbeat included).
"""

import errno
import logging
import os
import select
import signal
import socket
import time
import traceback
from collections import OrderedDict

from oserver.balance import BALANCE_SLACK, MOUNTED_BALANCE_SLACK, AcceptBalance
from oserver.connection import Connection
from oserver.handlers import HandlerRequest, run_handler
from oserver.logs import reopen_error_log
from oserver.mounts import load_mounts
from oserver.static import StaticFiles
from oserver.status import StatusPage, health_reply

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT

ACCEPT_BATCH = 64
SHARED_LISTENER = EPOLLIN | select.EPOLLEXCLUSIVE  # static files: one new connection wakes one worker
POLL_TIMEOUT = 0.5  # seconds; also bounds how late timers and the heartbeat can run
TICK_INTERVAL = 0.25  # seconds between timer / heartbeat / parent checks
ACCEPT_PAUSE = 0.5  # seconds without accepting after running out of file descriptors
BALANCE_PAUSE = 0.02  # seconds a worker with clearly more connections than a peer leaves new ones to it
DRAIN_IDLE_GRACE = 2.0  # seconds a draining worker leaves idle keep-alive connections for a last request
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
WORKER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGHUP,
                  signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU)


class TimerQueue(OrderedDict):
    """Connections waiting in one state, in deadline order: one timeout per queue means appending keeps the
    order, so expiring is a look at the front, whatever the number of connections."""

    def __init__(self, name, timeout, expire):
        super().__init__()
        self.name = name
        self.timeout = timeout
        self.expire = expire


class Worker:
    def __init__(self, config, listeners, stats_slot, generation, log_sink):
        self.config = config
        self.listeners = {sock.fileno(): sock for sock in listeners}
        self.slot = stats_slot
        self.generation = generation
        self.logs = log_sink
        self.log_access = log_sink.access if log_sink.enabled else None  # bound once: called per response
        self.log = logging.getLogger("oserver.worker")
        self.debug = self.log.isEnabledFor(logging.DEBUG)  # one line per connection event (--verbose)
        self.static = StaticFiles(config)
        self.status_path = config.status_path  # "" (off) never equals a request path
        self.status = StatusPage(config, stats_slot)
        self.health_path = config.health_path
        self.mounts = load_mounts(config)  # imports the mounted code (MountError when it does not load)
        # A mounted handler may hold this worker for a while: then every worker is woken for each new
        # connection (no EPOLLEXCLUSIVE), accepts one at a time and leaves the next to a peer holding fewer,
        # as keep-alive clients stay with the worker that accepted them. Static files are taken in batches.
        mounted = self.mounts is not None
        self.listen_events = EPOLLIN if mounted else SHARED_LISTENER
        self.accept_limit = 1 if mounted else ACCEPT_BATCH
        self.connections = {}
        self.epoll = None
        self.accepting = False
        self.accept_paused_until = 0.0
        self.out_of_descriptors = False  # accept() hit EMFILE/ENFILE and has not since found the backlog empty
        self.balance = AcceptBalance(stats_slot, generation, MOUNTED_BALANCE_SLACK if mounted else BALANCE_SLACK)
        self.deferred = False  # accepting was left to the peers: the next batch is accepted whatever they hold
        self.poll_timeout = POLL_TIMEOUT
        self.draining = False
        self.alive = True
        self.drain_deadline = None
        self.master_pid = os.getppid()
        self.now = time.monotonic()
        self.next_tick = 0.0
        self.header_timers = TimerQueue("header", config.header_timeout, Connection.expire_head)
        self.idle_timers = TimerQueue("keep-alive", config.keepalive_timeout, Connection.close)
        self.send_timers = TimerQueue("send", config.send_timeout, Connection.close)

    # ------------------------------------------------------------ the loop

    def run(self):
        """Serve until told to stop; returns the process exit code."""
        self.epoll = select.epoll()
        self.signal_fd = self.install_signals()
        self.epoll.register(self.signal_fd, EPOLLIN)
        self.start_accepting()
        self.slot.worker_started(os.getpid(), self.generation)
        connections = self.connections
        listeners = self.listeners
        while self.alive:
            events = self.epoll.poll(self.poll_timeout)
            self.now = time.monotonic()
            for fd, mask in events:
                conn = connections.get(fd)
                if conn is not None:
                    try:
                        if conn.writing:
                            conn.on_writable()
                        else:
                            conn.on_readable()
                    except Exception:
                        self.connection_failed(conn)
                elif fd in listeners:
                    self.accept_batch(listeners[fd])
                elif fd == self.signal_fd:
                    self.handle_signals()
            if self.now >= self.next_tick:
                self.tick()
        self.shutdown()
        return 0

    def tick(self):
        """Periodic work: expire timers, beat the heart, flush logs, notice a dead master, finish draining."""
        self.next_tick = self.now + TICK_INTERVAL
        self.poll_timeout = POLL_TIMEOUT
        for queue in (self.header_timers, self.idle_timers, self.send_timers):
            self.expire_timers(queue)
        self.slot.heartbeat(len(self.connections), len(self.idle_timers))
        self.balance.find_peers(self.now)
        self.logs.flush()
        if os.getppid() != self.master_pid:
            self.log.error("master process %d is gone; worker exits", self.master_pid)
            self.alive = False
        if not self.accepting and not self.draining and self.now >= self.accept_paused_until:
            self.start_accepting()
        if self.draining and (not self.connections or self.now >= self.drain_deadline):
            self.alive = False

    def expire_timers(self, queue):
        now = self.now
        while queue:
            conn, deadline = next(iter(queue.items()))
            if deadline > now:
                return
            del queue[conn]
            conn.timer = None
            if self.debug:
                self.log.debug("%s: %s timeout", format_address(conn.address), queue.name)
            try:
                queue.expire(conn)
            except Exception:
                self.connection_failed(conn)

    def connection_failed(self, conn):
        self.log.error("error on connection from %s:\n%s", format_address(conn.address), traceback.format_exc())
        try:
            conn.fail()
        except Exception:
            self.log.error("error while failing a connection:\n%s", traceback.format_exc())

    # ------------------------------------------------------------ accepting

    def start_accepting(self):
        if self.is_full():
            return
        for fd in self.listeners:
            self.epoll.register(fd, self.listen_events)
        self.accepting = True

    def stop_accepting(self):
        if self.accepting:
            for fd in self.listeners:
                self.epoll.unregister(fd)
            self.accepting = False

    def pause_accepting(self, error):
        """Out of file descriptors: leave new clients in the backlog and retry after ACCEPT_PAUSE (no busy
        loop); logged once per shortage, not once per retry."""
        if not self.out_of_descriptors:
            self.out_of_descriptors = True
            self.log.error("accept() failed: %s; pausing accepts, retrying every %.1fs", error.strerror,
                           ACCEPT_PAUSE)
        self.accept_paused_until = self.now + ACCEPT_PAUSE
        self.stop_accepting()

    def is_full(self):
        return len(self.connections) >= self.config.max_connections

    def accept_batch(self, listener):
        if self.deferred:
            self.deferred = False  # whatever the peers report, this batch goes ahead: accepting never stalls
        elif not self.draining and self.balance.over_share(len(self.connections), self.now):
            return self.defer_accepting()
        accepted = 0
        for _ in range(self.accept_limit):
            if self.is_full():
                return self.stop_accepting()
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                if self.out_of_descriptors:  # the backlog is empty and a descriptor was free: shortage over
                    self.out_of_descriptors = False
                    self.log.warning("file descriptors available again")
                break
            except OSError as e:
                if e.errno in OUT_OF_DESCRIPTORS:
                    return self.pause_accepting(e)
                continue  # ECONNABORTED and friends: that client is gone, the next may not be
            sock.setblocking(False)
            accepted += 1
            if self.debug:
                self.log.debug("%s: accepted", format_address(address))
            conn = Connection(self, sock, address)
            self.connections[conn.fd] = conn
            self.set_timer(conn, self.header_timers)
            try:
                conn.on_readable()  # the request often arrives with the connection: answer it right away
            except Exception:
                self.connection_failed(conn)
            if not conn.closed and not conn.registered:
                self.register(conn)
        if accepted:
            if self.listen_events == SHARED_LISTENER:
                self.yield_accept_turn(listener)
            if len(self.connections) > self.balance.slack:  # peers weigh this worker by its published count
                self.slot.heartbeat(len(self.connections), len(self.idle_timers))

    def yield_accept_turn(self, listener):
        """Step to the back of the listener's queue of waiting workers. EPOLLEXCLUSIVE wakes the first idle
        worker in registration order, so without this one worker takes nearly every connection when they
        come one after another (measured: 88-100% of them). Re-adding re-checks readiness: a connection
        still queued is not missed."""
        fd = listener.fileno()
        self.epoll.unregister(fd)
        self.epoll.register(fd, SHARED_LISTENER)

    def defer_accepting(self):
        """Clearly more connections than a peer: leave the listener to the peers for BALANCE_PAUSE (on a
        2-core machine a burst is otherwise taken by the one worker running). Connections that woke only this
        worker wait at most that long: the next batch after the pause is accepted regardless."""
        self.deferred = True
        self.accept_paused_until = self.now + BALANCE_PAUSE
        self.next_tick = min(self.next_tick, self.accept_paused_until)
        self.poll_timeout = BALANCE_PAUSE
        self.stop_accepting()

    # ------------------------------------------------------------ connection callbacks

    def respond(self, conn, request):
        """The Reply for a request, or the Route of the mounted handler that answers it once its body is in."""
        path = request.path
        if path == self.status_path:
            reply = self.status.respond(request, conn.address)
        elif path == self.health_path:
            reply = health_reply(request)
        elif self.mounts is not None and (route := self.mounts.route(path)) is not None:
            return route
        else:
            reply = self.static.respond(request)
        self.slot.count_request(reply.status, path)
        return reply

    def call_handler(self, conn, request, route, body):
        """A mounted handler's Reply. It runs inline: until it returns, this worker serves nobody else."""
        handler_request = HandlerRequest(request, route, conn.address, conn.sock.getsockname(), body)
        reply = run_handler(route.mount.handler, request, handler_request)
        self.slot.count_request(reply.status, request.path)
        return reply

    def set_timer(self, conn, queue):
        current = conn.timer
        if current is queue:
            queue.move_to_end(conn)
        elif current is not None:
            del current[conn]
        conn.timer = queue
        queue[conn] = self.now + queue.timeout

    def register(self, conn):
        """Watch a connection that outlived its first read. Registration is lazy so that a connection answered
        and closed straight from accept() costs no epoll calls (closing the socket drops it from epoll)."""
        conn.registered = True
        self.epoll.register(conn.fd, EPOLLOUT if conn.writing else EPOLLIN)
        if conn.sock.family != socket.AF_UNIX:  # replies to come on this connection must not wait for Nagle
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def wait_for_request(self, conn, partial):
        """The connection has sent all it owes: it now waits idle, or for the rest of a started head."""
        if not conn.registered:
            self.register(conn)
        if partial:
            if conn.timer is not self.header_timers:  # slowloris: the head's clock is not reset by trickling
                self.set_timer(conn, self.header_timers)
        else:
            self.set_timer(conn, self.idle_timers)

    def wait_for_send(self, conn):
        self.set_timer(conn, self.send_timers)

    def watch_output(self, conn):
        if conn.registered:
            self.epoll.modify(conn.fd, EPOLLOUT)

    def watch_input(self, conn):
        self.epoll.modify(conn.fd, EPOLLIN)

    def exchange_done(self, conn, exchange, body_bytes, aborted=False):
        """A response ended (aborted: the connection closed first; body_bytes is what was really sent)."""
        self.slot.count_bytes(body_bytes + exchange.head_bytes)
        if self.log_access is not None:
            self.log_access(conn, exchange, body_bytes, aborted)

    def log_rejected(self, conn, error):
        """A request refused before it could be answered normally (400, 408, 414, 431...): log and count it."""
        self.log.info("%s: %s", format_address(conn.address), error)
        self.slot.count_request(error.status, None)

    def forget(self, conn):
        if self.debug:
            self.log.debug("%s: closed", format_address(conn.address))
        del self.connections[conn.fd]
        if conn.timer is not None:
            del conn.timer[conn]
            conn.timer = None
        if not self.accepting and not self.draining and self.now >= self.accept_paused_until:
            self.start_accepting()

    # ------------------------------------------------------------ signals and stopping

    def install_signals(self):
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for signum in WORKER_SIGNALS:
            signal.signal(signum, lambda signum, frame: None)  # real work happens in the loop
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # the master forked this worker with signals blocked
        return read_fd

    def handle_signals(self):
        try:
            received = os.read(self.signal_fd, 64)
        except BlockingIOError:
            return
        for signum in received:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.alive = False
            elif signum == signal.SIGQUIT:
                self.start_draining()
            elif signum == signal.SIGUSR1:
                self.logs.reopen()
                reopen_error_log()

    def start_draining(self):
        """Graceful stop: accept nothing more, finish every request (each answered with Connection: close),
        close idle keep-alive connections after a short grace, then exit.

        The grace is for clients about to reuse an idle connection: closing it under them would fail their
        request, while answering it with Connection: close sends them cleanly to a new connection."""
        if self.draining:
            return
        self.draining = True
        self.drain_deadline = self.now + self.config.graceful_timeout
        if self.accepting:  # EPOLLEXCLUSIVE may have woken only this worker for the connections queued now
            for listener in self.listeners.values():
                self.accept_batch(listener)
        self.stop_accepting()
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        idle = self.idle_timers
        idle.timeout = min(idle.timeout, DRAIN_IDLE_GRACE)
        for conn in list(idle):
            self.set_timer(conn, idle)
        self.next_tick = 0.0

    def shutdown(self):
        for conn in list(self.connections.values()):
            conn.close()
        self.logs.flush()
        self.slot.worker_stopped()


def format_address(address):
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return str(address) or "unix"
