"""One worker process: its start (after the fork), and its epoll loop over the shared listening sockets and the
connections it accepted.

The loop owns accepting (through its AcceptPolicy), the per-state timer queues, graceful draining and the
worker's signals, and nothing else: connections (connection.py) carry bytes between a transport and the
HTTP protocol, which asks the router. Of other workers it knows only their connection counts in the shared
stats (and, with per-client limits, the clients' counts they share there); it talks to the master only through
signals, its exit code and its stats slot (heartbeat included).
"""

import ctypes
import errno
import logging
import os
import select
import signal
import traceback

from oserver.apps.executors import InlineExecutor, ThreadPool
from oserver.apps.mounts import MountError, load_mounts
from oserver.http.protocol import IDLE, WAITING_FOR_APP, Http1Protocol, Services
from oserver.http.realip import Networks, RealIp
from oserver.http.response import hsts_field
from oserver.logs import AccessLog, reopen_error_log
from oserver.net.listeners import format_address
from oserver.process.accept import AcceptPolicy, accept_mode
from oserver.process.accounting import RequestEvents
from oserver.process.connection import Connection, PendingConnection
from oserver.process.limits import TOO_MANY_CONNECTIONS, ClientTable, Limits
from oserver.process.privileges import drop_privileges
from oserver.process.timers import LoopClock, TimerQueue
from oserver.process.titles import set_process_title
from oserver.router import Router
from oserver.sites import SiteTable
from oserver.status import StatusPage

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT

POLL_TIMEOUT = 0.5  # seconds; also bounds how late timers and the heartbeat can run
TICK_INTERVAL = 0.25  # seconds between timer / heartbeat / parent checks
DRAIN_IDLE_GRACE = 2.0  # seconds a draining worker leaves idle keep-alive connections for a last request
# nginx's lingering_timeout and lingering_time: after a refusal, wait this long for each further read of what
# the client still sends, and no longer than LINGERING_TIME in all.
LINGERING_TIMEOUT = 5.0
LINGERING_TIME = 30.0
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
HANDLED_SIGNALS = {signal.SIGTERM: "term", signal.SIGINT: "int", signal.SIGQUIT: "quit", signal.SIGUSR1: "usr1"}
# The master's own signals, which may reach a worker too (a terminal's process group): nothing to do here.
IGNORED_SIGNALS = (signal.SIGHUP, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2)
MOUNT_LOAD_FAILED = 3  # the exit code when the mounted code does not import (gunicorn's boot error)
PR_SET_PDEATHSIG = 1

log = logging.getLogger("oserver.worker")


def run_worker(config, listeners, slot, generation, master_pid):
    """Serve as a freshly forked worker: open the logs, drop privileges, load the mounted code, then serve.
    Returns the exit code. Until the loop has its own handlers, TERM and INT end the worker at once (an import
    of slow mounted code never holds up a stop; the master ends a worker that is not serving yet with TERM), a
    QUIT waits for the loop to drain it, and the other signals are ignored."""
    for signum in (signal.SIGUSR1, *IGNORED_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [signal.SIGQUIT])  # the master forked it with signals blocked
    set_process_title("oserver: worker process")
    sites = SiteTable(config)  # opens no file: the sites' files are opened as the workers' user
    access_log = AccessLog(config.access_log, config.access_log_format, sites.name)
    drop_privileges(config.user, config.group)
    set_parent_death_signal(signal.SIGTERM)  # after the privilege drop, which clears it
    if os.getppid() != master_pid:  # the master died before the line above
        return 1
    try:
        worker = Worker(config, listeners, slot, generation, access_log, sites)
    except MountError as e:
        log.error("worker %d: %s\n%s", os.getpid(), e,
                  "".join(traceback.format_exception(e.__cause__)) if e.__cause__ else "")
        return MOUNT_LOAD_FAILED
    return worker.run()


def set_parent_death_signal(signum):
    """Linux prctl(PR_SET_PDEATHSIG): the kernel signals this process when its parent dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Worker:
    def __init__(self, config, listeners, stats_slot, generation, access_log, sites):
        self.config = config
        self.listeners = {listener.fileno(): listener for listener in listeners}
        self.slot = stats_slot
        self.generation = generation
        self.logs = access_log
        self.debug = log.isEnabledFor(logging.DEBUG)  # one line per connection event (--verbose)
        self.clock = LoopClock()
        mounts = load_mounts(config)  # imports the mounted code (MountError when it does not load)
        self.trusted = Networks(config.real_ip_from)  # the balancers: PROXY headers and real_ip_header
        self.limits = None
        if config.limit_conn_per_ip or config.limit_req_per_ip:
            self.limits = Limits(config, ClientTable(stats_slot.shared), stats_slot, self.trusted)
        router = Router(config, sites, StatusPage(config, stats_slot), mounts, self.is_ready,
                        self.limits.request_refusal if config.limit_req_per_ip else None)
        if config.threads > 1:
            self.executor = ThreadPool(config.threads, config.pending_limit, self.clock, self.resume)
        else:
            self.executor = InlineExecutor(self.clock)
        self.services = Services(config, router, self.executor, self.clock,
                                 RequestEvents(stats_slot, access_log, self.clock),
                                 real_ip=RealIp(self.trusted, config.real_ip_header) if config.header_real_ip
                                 else None, tls_fields=hsts_field(config.hsts_max_age))
        self.accept = AcceptPolicy(accept_mode(mounts is not None, config.threads), stats_slot, generation)
        self.connections = {}
        self.epoll = None
        self.signal_fd = None
        self.accepting = False
        self.poll_timeout = POLL_TIMEOUT
        self.alive = True
        self.drain_deadline = None
        self.master_pid = os.getppid()
        self.next_tick = 0.0
        self.header_timers = TimerQueue("header", config.header_timeout, Connection.expire_head)
        self.idle_timers = TimerQueue("keep-alive", config.keepalive_timeout, Connection.close)
        self.send_timers = TimerQueue("send", config.send_timeout, Connection.close)
        self.linger_timers = TimerQueue("linger", LINGERING_TIMEOUT, Connection.close)
        self.proxy_header_timers = TimerQueue("PROXY header", config.proxy_protocol_timeout,
                                              PendingConnection.expire)
        self.timer_queues = (self.header_timers, self.idle_timers, self.send_timers, self.linger_timers,
                             self.proxy_header_timers)

    @property
    def draining(self):
        return self.services.draining

    def is_ready(self):
        """Readiness is the instance's: ready until the master begins to stop it (a graceful stop, WINCH). A
        worker draining after a reload still answers for an instance whose new workers take the work."""
        return not self.slot.shared.leaving

    # ------------------------------------------------------------ the loop

    def run(self):
        """Serve until told to stop; returns the process exit code."""
        self.epoll = select.epoll()
        self.signal_fd = self.install_signals()
        self.epoll.register(self.signal_fd, EPOLLIN)
        app_wakeup = self.executor.wakeup  # the pool's eventfd, None when mounted code runs inline
        if app_wakeup is not None:
            self.epoll.register(app_wakeup, EPOLLIN)
        self.start_accepting()
        self.slot.worker_started(os.getpid(), self.generation)
        connections = self.connections
        listeners = self.listeners
        clock = self.clock
        while self.alive:
            events = self.epoll.poll(self.poll_timeout)
            clock.update()
            for fd, mask in events:
                conn = connections.get(fd)
                if conn is not None:
                    try:
                        if conn.watching == EPOLLOUT:
                            conn.on_writable()
                        else:
                            conn.on_readable()
                    except Exception:
                        self.connection_failed(conn)
                elif fd in listeners:
                    self.accept_batch(listeners[fd])
                elif fd == app_wakeup:
                    self.executor.complete()
                elif fd == self.signal_fd:
                    self.handle_signals()
            if clock.now >= self.next_tick:
                self.tick()
        self.shutdown()
        return 0

    def tick(self):
        """Periodic work: expire timers, beat the heart, flush logs, notice a dead master, finish draining."""
        now = self.clock.now
        self.next_tick = now + TICK_INTERVAL
        self.poll_timeout = POLL_TIMEOUT
        for queue in self.timer_queues:
            self.expire_timers(queue)
        self.publish_load()
        self.accept.balance.find_peers(now)
        if self.executor.busy:
            self.executor.report_slow(self.config.worker_timeout)
        self.logs.flush()
        if os.getppid() != self.master_pid:
            log.error("master process %d is gone; worker exits", self.master_pid)
            self.alive = False
        self.resume_accepting()
        if self.limits is not None:
            self.limits.tick(now, self.connections.values())
        if self.draining and (not self.connections or now >= self.drain_deadline):
            self.alive = False

    def expire_timers(self, queue):
        now = self.clock.now
        while queue:
            conn, deadline = next(iter(queue.items()))
            if deadline > now:
                return
            del queue[conn]
            conn.timer = None
            if self.debug:
                log.debug("%s: %s timeout", format_address(conn.address), queue.name)
            try:
                queue.expire(conn)
            except Exception:
                self.connection_failed(conn)

    def connection_failed(self, conn):
        log.error("error on connection from %s:\n%s", format_address(conn.address), traceback.format_exc())
        try:
            conn.fail()
        except Exception:
            log.error("error while failing a connection:\n%s", traceback.format_exc())

    # ------------------------------------------------------------ accepting

    def start_accepting(self):
        if self.is_full():
            return
        for fd in self.listeners:
            self.epoll.register(fd, self.accept.mode.events)
        self.accepting = True

    def stop_accepting(self):
        if self.accepting:
            for fd in self.listeners:
                self.epoll.unregister(fd)
            self.accepting = False

    def resume_accepting(self):
        if not self.accepting and not self.draining and not self.accept.paused(self.clock.now):
            self.start_accepting()

    def is_full(self):
        return len(self.connections) >= self.config.max_connections

    def accept_batch(self, listener):
        now = self.clock.now
        policy = self.accept
        if not self.draining and policy.defer_to_peers(self.load(), now):
            return self.pause_accepting(policy.peers_pause_until)
        accepted = 0
        for _ in range(policy.mode.batch):
            if self.is_full():
                return self.stop_accepting()
            try:
                opened, address = listener.accept()
            except BlockingIOError:
                if policy.backlog_empty():
                    log.warning("file descriptors available again")
                break
            except OSError as e:
                if e.errno in OUT_OF_DESCRIPTORS:
                    if policy.descriptors_exhausted(now):
                        log.error("accept() failed: %s; pausing accepts until descriptors are free", e.strerror)
                    return self.pause_accepting(policy.descriptors_pause_until)
                continue  # ECONNABORTED and friends: that client is gone, the next may not be
            accepted += 1
            if listener.proxy_protocol:
                self.await_proxy_header(opened, address)
            else:
                self.open_connection(opened, address)
        if accepted:
            if policy.mode.yields_turn:
                self.yield_accept_turn(listener)
            if self.load() > policy.mode.allowance:  # peers weigh this worker by its published load
                self.publish_load()

    def load(self):
        """What accept balancing weighs: connections, and requests for mounted code waiting for a thread (a
        request running on one belongs to a connection counted already)."""
        return len(self.connections) + self.executor.queued

    def publish_load(self):
        executor = self.executor
        self.slot.heartbeat(len(self.connections), len(self.idle_timers), executor.busy, executor.queued)

    def open_connection(self, transport, address, peer=None):
        """Serve HTTP on a new connection from `address` (through `peer`, a balancer, after a PROXY header)."""
        if self.debug:
            log.debug("%s: accepted", format_address(address))
        conn = Connection(self, transport, Http1Protocol(self.services, address, transport.local_address,
                                                         peer=peer))
        self.connections[conn.fd] = conn
        self.set_timer(conn, self.header_timers)
        try:
            if self.limits is None or self.limits.connection_opened(conn, address):
                conn.on_readable()  # the request often arrives with the connection: answer it right away
            else:
                conn.refuse(TOO_MANY_CONNECTIONS)
        except Exception:
            self.connection_failed(conn)
        if not conn.closed and not conn.registered:
            self.register(conn)

    def await_proxy_header(self, preamble, address):
        """A connection whose PROXY header comes first: heard from real_ip_from peers only."""
        if not self.trusted.allows(address):
            log.info("%s: PROXY protocol from a peer not in real_ip_from; connection closed",
                     format_address(address))
            return preamble.close()
        conn = PendingConnection(self, preamble, address)
        self.connections[conn.fd] = conn
        self.set_timer(conn, self.proxy_header_timers)
        try:
            conn.on_readable()  # the header usually arrives with the connection
        except Exception:
            self.connection_failed(conn)
        if self.connections.get(conn.fd) is conn:  # neither closed nor handed over yet
            conn.registered = True
            self.epoll.register(conn.fd, EPOLLIN)

    def proxy_header_read(self, pending, header):
        """The PROXY header is in: the connection goes on as HTTP over its listener's transport, its client
        the header's source (the balancer itself for a LOCAL or UNKNOWN header, its own connection)."""
        del self.connections[pending.fd]
        self.clear_timer(pending)
        if pending.registered:  # the Connection registers the socket afresh
            self.epoll.unregister(pending.fd)
        self.open_connection(pending.preamble.transport(), header.source or pending.address, pending.address)

    def pause_accepting(self, until):
        """Leave new clients in the backlog until `until` (the loop wakes up for it: no busy retrying)."""
        self.next_tick = min(self.next_tick, until)
        self.poll_timeout = min(self.poll_timeout, max(until - self.clock.now, 0.0))
        self.stop_accepting()

    def yield_accept_turn(self, listener):
        """Step to the back of the listener's queue of waiting workers. EPOLLEXCLUSIVE wakes the first idle
        worker in registration order, so without this one worker takes nearly every connection when they
        come one after another (measured: 88-100% of them). Re-adding re-checks readiness: a connection
        still queued is not missed."""
        fd = listener.fileno()
        self.epoll.unregister(fd)
        self.epoll.register(fd, self.accept.mode.events)

    # ------------------------------------------------------------ what connections ask of the loop

    def set_timer(self, conn, queue):
        current = conn.timer
        if current is queue:
            queue.move_to_end(conn)
        elif current is not None:
            del current[conn]
        conn.timer = queue
        queue[conn] = self.clock.now + queue.timeout

    def clear_timer(self, conn):
        if conn.timer is not None:
            del conn.timer[conn]
            conn.timer = None

    def register(self, conn):
        """Watch a connection that outlived its first read. Registration is lazy so that a connection answered
        and closed straight from accept() costs no epoll calls (closing the socket drops it from epoll)."""
        conn.registered = True
        self.epoll.register(conn.fd, conn.watching)
        conn.transport.no_delay()

    def await_client(self, conn, state):
        """The connection has sent all it owes: it waits idle, for the rest of a started request (its clock
        is not reset by trickling bytes: slowloris), or for mounted code."""
        if not conn.registered:
            self.register(conn)
        if state is IDLE:
            self.set_timer(conn, self.idle_timers)
        elif state is WAITING_FOR_APP:
            self.clear_timer(conn)
        elif conn.timer is not self.header_timers:
            self.set_timer(conn, self.header_timers)

    def await_send(self, conn):
        self.set_timer(conn, self.send_timers)

    def linger(self, conn):
        """A lingering close: watch for the client's last bytes, each read within LINGERING_TIMEOUT; returns
        when the lingering must end, whatever the client does."""
        if not conn.registered:
            self.register(conn)
        self.set_timer(conn, self.linger_timers)
        return self.clock.now + LINGERING_TIME

    def resume(self, protocol):
        """Mounted code (on the pool) has more for a connection: send it."""
        conn = protocol.owner
        if conn.closed:
            return
        try:
            conn.process()
        except Exception:
            self.connection_failed(conn)

    def forget(self, conn):
        if self.debug:
            log.debug("%s: closed", format_address(conn.address))
        del self.connections[conn.fd]
        self.clear_timer(conn)
        if conn.limit is not None:
            self.limits.connection_closed(conn)
        self.resume_accepting()

    # ------------------------------------------------------------ signals and stopping

    def install_signals(self):
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, lambda signum, frame: None)  # the wakeup fd carries it; the loop acts
        for signum in IGNORED_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # a QUIT held back during the start is handled now
        return read_fd

    def handle_signals(self):
        try:
            received = os.read(self.signal_fd, 64)
        except BlockingIOError:
            return
        for signum in received:
            name = HANDLED_SIGNALS.get(signum)
            if name is not None:
                getattr(self, "handle_" + name)()

    def handle_term(self):
        self.alive = False

    handle_int = handle_term

    def handle_quit(self):
        self.start_draining()

    def handle_usr1(self):
        self.logs.reopen()
        reopen_error_log()

    def start_draining(self):
        """Graceful stop: accept nothing more, finish every request (each answered with Connection: close),
        close idle keep-alive connections after a short grace, then exit.

        The grace is for clients about to reuse an idle connection: closing it under them would fail their
        request, while answering it with Connection: close sends them cleanly to a new connection."""
        if self.draining:
            return
        self.services.draining = True
        self.drain_deadline = self.clock.now + self.config.graceful_timeout
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
