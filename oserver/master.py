"""The master process: binds the listeners, forks and supervises workers, turns signals into actions.

Owns worker generations (reload), respawn with backoff, the watchdog, the pidfile and systemd notices.
Signal handlers do nothing; `signal.set_wakeup_fd` wakes the main loop, which dispatches `handle_<name>`.
It never parses HTTP and never serves a client.
"""

import ctypes
import grp
import logging
import os
import pwd
import select
import signal
import socket
import sys
import time
import traceback

try:
    from setproctitle import setproctitle
except ImportError:  # titles are a convenience for `ps`; serving does not depend on them
    def setproctitle(title):
        logging.getLogger("oserver").warning("setproctitle is not installed; process titles stay unchanged")

from oserver import systemd
from oserver.config import ConfigError, build_config
from oserver.logs import AccessLog, reopen_error_log, setup_error_log
from oserver.stats import SharedStats
from oserver.worker import Worker, format_address

STATS_SLOTS = 512
LOOP_TIMEOUT = 1.0  # seconds between supervision passes when no signal arrives
FAST_STOP_TIMEOUT = 5.0  # seconds TERM/INT wait for workers before SIGKILL
READY_TIMEOUT = 10.0  # seconds a new generation has to come up during a reload
QUICK_DEATH = 2.0  # a worker dying sooner than this after its start counts as a failed start
MAX_BACKOFF = 30.0
PR_SET_PDEATHSIG = 1
SIGNAL_NAMES = {signal.SIGTERM: "term", signal.SIGINT: "int", signal.SIGQUIT: "quit", signal.SIGHUP: "hup",
                signal.SIGUSR1: "usr1", signal.SIGTTIN: "ttin", signal.SIGTTOU: "ttou", signal.SIGCHLD: "chld"}
CONTROL_SIGNALS = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT, "reload": signal.SIGHUP,
                   "reopen": signal.SIGUSR1}


class WorkerProcess:
    """What the master knows of one worker."""

    __slots__ = ("pid", "slot", "generation", "started", "retiring")

    def __init__(self, pid, slot, generation, started):
        self.pid = pid
        self.slot = slot
        self.generation = generation
        self.started = started
        self.retiring = None  # monotonic deadline once told to stop gracefully


def bind_listener(host, port, backlog):
    """A non-blocking listening TCP socket on host:port (IPv6 literals bind v6-only, as nginx does)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as e:
        raise ConfigError(f"cannot listen on {format_address((host, port))}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


class Master:
    def __init__(self, config, config_file=None, overrides=None):
        self.config = config
        self.config_file = config_file
        self.overrides = overrides or {}
        self.log = logging.getLogger("oserver.master")
        self.listeners = {}  # (host, port) -> socket
        self.activated = False  # listeners came from systemd socket activation
        self.workers = {}  # pid -> WorkerProcess
        self.generation = 1
        self.num_workers = config.workers
        self.stats = None
        self.wakeup = None
        self.stopping = None  # None, "fast" or "graceful"
        self.stop_deadline = None
        self.failures = 0  # workers in a row that died right after starting
        self.next_spawn = 0.0
        self.pid = os.getpid()

    # ------------------------------------------------------------ life cycle

    def run(self):
        """Bind, fork the workers and supervise them until stopped; returns the exit code."""
        for sock in systemd.inherited_sockets():
            self.listeners[sock.getsockname()[:2]] = sock
            self.activated = True
        self.bind_listeners(self.config)
        setproctitle("oserver: master process " + " ".join(sys.argv))
        self.write_pidfile()
        self.stats = SharedStats(STATS_SLOTS)
        self.install_signals()
        self.log.info("oserver %d listening on %s, %d workers, root %s", self.pid,
                      ", ".join(self.listen_names()), self.num_workers, os.path.abspath(self.config.root))
        self.log.info("access log %s, log level %s, status page %s", self.config.access_log,
                      self.config.log_level, self.config.status_path or "off")
        try:
            self.manage_workers()
            self.wait_until_up([w for w in self.workers.values()])
            systemd.notify("READY=1", f"STATUS=serving with {len(self.workers)} workers", f"MAINPID={self.pid}")
            while self.workers or not self.stopping:
                self.wait_for_signals()
                self.reap_workers()
                if self.stopping:
                    self.finish_stopping()
                else:
                    self.manage_workers()
                    self.murder_workers()
                self.retire_slow_leavers()
        finally:
            self.remove_pidfile()
        self.log.info("master %d exits", self.pid)
        return 0

    def listen_names(self):
        return [format_address(sock.getsockname()[:2]) for sock in self.listeners.values()]

    def bind_listeners(self, config):
        """Bind the addresses the config names that are not bound yet; close the ones it no longer names."""
        if self.activated:  # systemd owns the addresses; a reload keeps its sockets
            return
        wanted = set(config.listen_addresses)
        for address in wanted - set(self.listeners):
            self.listeners[address] = bind_listener(*address, config.backlog)
        for address in set(self.listeners) - wanted:
            self.listeners.pop(address).close()

    # ------------------------------------------------------------ signals

    def install_signals(self):
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wakeup = (read_fd, write_fd)
        for signum in SIGNAL_NAMES:
            signal.signal(signum, lambda signum, frame: None)  # the wakeup fd carries the signal number
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def wait_for_signals(self, timeout=LOOP_TIMEOUT):
        ready, _, _ = select.select([self.wakeup[0]], [], [], timeout)
        if not ready:
            return
        try:
            received = os.read(self.wakeup[0], 256)
        except BlockingIOError:
            return
        for signum in received:
            name = SIGNAL_NAMES.get(signum)
            if name:
                if name != "chld":
                    self.log.info("master got SIG%s", name.upper())
                getattr(self, "handle_" + name)()

    def handle_chld(self):
        pass  # reap_workers runs after every wakeup

    def handle_term(self):
        self.stop("fast")

    handle_int = handle_term

    def handle_quit(self):
        self.stop("graceful")

    def handle_usr1(self):
        reopen_error_log()
        self.signal_workers(signal.SIGUSR1)

    def handle_ttin(self):
        self.num_workers += 1
        self.log.info("worker count raised to %d", self.num_workers)

    def handle_ttou(self):
        if self.num_workers > 1:
            self.num_workers -= 1
            self.log.info("worker count lowered to %d", self.num_workers)

    def handle_hup(self):
        """Reload: new config, new generation of workers; the old one retires only once the new one serves."""
        try:
            config = build_config(self.config_file, self.overrides)
            self.bind_listeners(config)
        except (ConfigError, OSError) as e:
            self.log.error("reload failed, old configuration keeps serving: %s", e)
            return
        systemd.notify("RELOADING=1", systemd.monotonic_usec(), "STATUS=reloading")
        setup_error_log(config.error_log, config.log_level)
        old = [w for w in self.workers.values() if w.retiring is None]
        self.config = config
        self.num_workers = config.workers
        self.generation += 1
        self.failures = 0
        self.next_spawn = 0.0
        self.manage_workers()
        new = [w for w in self.workers.values() if w.generation == self.generation]
        if not self.wait_until_up(new):
            self.log.error("reload: new generation %d did not come up; old workers keep serving", self.generation)
        for worker in old:
            self.retire(worker)
        self.log.info("reloaded: generation %d, %d workers", self.generation, self.num_workers)
        systemd.notify("READY=1", f"STATUS=serving with {self.num_workers} workers (generation {self.generation})")

    def stop(self, how):
        if self.stopping == "fast":
            return
        self.stopping = how
        systemd.notify("STOPPING=1", f"STATUS=stopping ({how})")
        if how == "fast":
            self.stop_deadline = time.monotonic() + FAST_STOP_TIMEOUT
            self.signal_workers(signal.SIGTERM)
        else:
            self.stop_deadline = time.monotonic() + self.config.graceful_timeout + FAST_STOP_TIMEOUT
            for worker in list(self.workers.values()):
                self.retire(worker)
        for sock in self.listeners.values():  # new connections are refused from now on
            sock.close()
        self.listeners.clear()

    def finish_stopping(self):
        if time.monotonic() >= self.stop_deadline:
            for worker in self.workers.values():
                self.log.warning("worker %d did not stop in time; killing it", worker.pid)
                self.kill(worker.pid, signal.SIGKILL)
            self.stop_deadline = time.monotonic() + FAST_STOP_TIMEOUT

    def signal_workers(self, signum):
        for pid in list(self.workers):
            self.kill(pid, signum)

    def kill(self, pid, signum):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    # ------------------------------------------------------------ workers

    def manage_workers(self):
        """Start workers up to the wanted count (with backoff after failed starts); retire extra ones."""
        current = sorted((w for w in self.workers.values() if w.retiring is None and
                          w.generation == self.generation), key=lambda w: w.started)
        for worker in current[self.num_workers:]:
            self.retire(worker)
        missing = self.num_workers - len(current)
        if missing > 0 and time.monotonic() >= self.next_spawn:
            for _ in range(missing):
                self.spawn_worker()

    def spawn_worker(self):
        slot = self.free_slot()
        config = self.config
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = self.run_worker(config, slot)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        self.workers[pid] = WorkerProcess(pid, slot, self.generation, time.monotonic())
        self.log.debug("spawned worker %d (generation %d)", pid, self.generation)

    def run_worker(self, config, slot):
        """In the child: detach from the master's signal plumbing, then serve."""
        signal.set_wakeup_fd(-1)
        for fd in self.wakeup:
            os.close(fd)
        for signum in SIGNAL_NAMES:
            signal.signal(signum, signal.SIG_DFL)
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != self.pid:
            return 1
        setproctitle("oserver: worker process")
        access_log = AccessLog(config.access_log, config.access_log_format)
        drop_privileges(config.user, config.group)
        worker = Worker(config, list(self.listeners.values()), self.stats.slots[slot], self.generation,
                        access_log)
        return worker.run()

    def free_slot(self):
        used = {w.slot for w in self.workers.values()}
        return next(i for i in range(STATS_SLOTS) if i not in used)

    def wait_until_up(self, workers, timeout=READY_TIMEOUT):
        """Wait until each given worker has announced itself in its stats slot; False if one did not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.reap_workers()
            alive = [w for w in workers if w.pid in self.workers]
            if len(alive) < len(workers):
                return False
            if all(self.stats.slots[w.slot].read()["pid"] == w.pid for w in workers):
                return True
            time.sleep(0.01)
        return False

    def reap_workers(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self.stats.retire(worker.slot)  # its counters and top paths join the server totals
            if worker.retiring is not None or self.stopping:
                self.log.info("worker %d exited", pid)
                continue
            self.worker_died(worker, status)

    def worker_died(self, worker, status):
        code = os.waitstatus_to_exitcode(status)
        lived = time.monotonic() - worker.started
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        if lived < QUICK_DEATH:
            self.failures += 1
            delay = min(0.1 * 2 ** self.failures, MAX_BACKOFF)
            self.next_spawn = time.monotonic() + delay
            self.log.error("worker %d died %.1fs after starting (%s); failed start #%d, next try in %.1fs",
                           worker.pid, lived, how, self.failures, delay)
        else:
            self.failures = 0
            self.log.error("worker %d died unexpectedly (%s); replacing it", worker.pid, how)

    def retire(self, worker):
        """Ask a worker to stop gracefully (QUIT): it finishes what it has and exits."""
        if worker.retiring is None:
            worker.retiring = time.monotonic() + self.config.graceful_timeout
            self.kill(worker.pid, signal.SIGQUIT)

    def retire_slow_leavers(self):
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.retiring is not None and now > worker.retiring + FAST_STOP_TIMEOUT:
                self.log.warning("worker %d still draining after graceful_timeout; killing it", worker.pid)
                self.kill(worker.pid, signal.SIGKILL)

    def murder_workers(self):
        """Watchdog: SIGKILL a worker whose heartbeat is older than worker_timeout (it is then replaced)."""
        now = time.monotonic()
        timeout = self.config.worker_timeout
        for worker in self.workers.values():
            if now - worker.started < timeout:
                continue
            silent = now - self.stats.slots[worker.slot].last_heartbeat
            if silent > timeout:
                self.log.error("worker %d silent for %.0fs (worker_timeout %.0fs); killing it", worker.pid,
                               silent, timeout)
                self.kill(worker.pid, signal.SIGKILL)

    # ------------------------------------------------------------ pidfile

    def write_pidfile(self):
        path = self.config.pid_file
        if not path:
            return
        temporary = f"{path}.{self.pid}.tmp"
        with open(temporary, "w") as f:
            f.write(f"{self.pid}\n")
        os.replace(temporary, path)

    def remove_pidfile(self):
        path = self.config.pid_file
        if path and read_pidfile(path) == self.pid:
            os.unlink(path)


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def set_parent_death_signal(signum):
    """Linux prctl(PR_SET_PDEATHSIG): the kernel signals this process when its parent dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def drop_privileges(user, group):
    """When running as root and asked to, become user/group (supplementary groups cleared)."""
    if os.getuid() != 0 or not (user or group):
        return
    gid = grp.getgrnam(group).gr_gid if group else pwd.getpwnam(user).pw_gid
    os.setgroups([])
    os.setgid(gid)
    if user:
        os.setuid(pwd.getpwnam(user).pw_uid)


def send_control_signal(pid_file, action):
    """`-s stop|quit|reload|reopen`: signal the master named in the pidfile; returns an exit code."""
    pid = read_pidfile(pid_file)
    if pid is None:
        print(f"oserver: cannot read a pid from {pid_file}", file=sys.stderr)
        return 1
    try:
        os.kill(pid, CONTROL_SIGNALS[action])
    except ProcessLookupError:
        print(f"oserver: no process with pid {pid} (from {pid_file})", file=sys.stderr)
        return 1
    return 0
