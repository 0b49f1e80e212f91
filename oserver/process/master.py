"""The master process: binds the listeners, forks and supervises workers, turns signals into actions.

Owns worker generations (reload), respawn with backoff, the watchdog, the pidfile, systemd notices and the
live upgrade (USR2: a new master from the code on disk, on the same sockets; process/upgrade.py).
Signal handlers do nothing; `signal.set_wakeup_fd` wakes the main loop, which dispatches `handle_<name>`.
It never parses HTTP and never serves a client.
"""

import datetime
import logging
import os
import resource
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

from oserver.config import MAX_WORKERS, ConfigError, build_config
from oserver.logs import reopen_error_log, setup_error_log
from oserver.net.listeners import bind_listener, format_address, make_listener
from oserver.net.tls import expiry_text, load_tls
from oserver.process import systemd, upgrade
from oserver.process.privileges import worker_ids
from oserver.process.limits import TABLE_BYTES
from oserver.process.stats import SharedStats
from oserver.process.titles import set_process_title
from oserver.process.worker import MOUNT_LOAD_FAILED, run_worker

STATS_SLOTS = 4 * MAX_WORKERS  # room for a serving generation and the ones still draining after reloads
LOOP_TIMEOUT = 1.0  # seconds between supervision passes when no signal arrives
FAST_STOP_TIMEOUT = 5.0  # seconds TERM/INT wait for workers before SIGKILL
READY_TIMEOUT = 10.0  # seconds a new generation has to come up
READY_POLL = 0.01  # seconds between supervision passes while a generation comes up (its slots are read)
QUICK_DEATH = 2.0  # a worker dying sooner than this after its start counts as a failed start
FIRST_BACKOFF = 0.2  # seconds before the start after a first failed one; doubles with each further failure
MAX_BACKOFF = 30.0
FAILURES_FORGOTTEN = 2 * MAX_BACKOFF  # a failed start this long after the previous one starts the count afresh
SIGNAL_NAMES = {signal.SIGTERM: "term", signal.SIGINT: "int", signal.SIGQUIT: "quit", signal.SIGHUP: "hup",
                signal.SIGUSR1: "usr1", signal.SIGUSR2: "usr2", signal.SIGTTIN: "ttin", signal.SIGTTOU: "ttou",
                signal.SIGWINCH: "winch", signal.SIGCHLD: "chld"}
CONTROL_SIGNALS = {"stop": signal.SIGTERM, "quit": signal.SIGQUIT, "reload": signal.SIGHUP,
                   "reopen": signal.SIGUSR1, "upgrade": signal.SIGUSR2}
OLD_PID_SUFFIX = ".oldbin"  # nginx's: the pidfile of the master an upgrade replaces
TLS_SOCKET_NAMES = ("https", "tls")  # socket activation: a socket systemd names so (FileDescriptorName=) is TLS


@dataclass(slots=True, eq=False)
class WorkerProcess:
    """What the master knows of one worker."""

    pid: int
    slot: int
    generation: int
    started: float
    heartbeat: float  # last sign of life seen in its stats slot (monotonic)
    up: bool = False  # seen serving (announced in its stats slot)
    exit_code: int | None = None  # once reaped: its exit code, or -signal
    retiring: float | None = None  # monotonic deadline once told to stop gracefully


@dataclass(slots=True, eq=False)
class Rollout:
    """A generation of workers coming up (the first one, or a reload's beside the serving one). It is a state
    the supervise loop checks at each pass, never a wait: a signal arriving meanwhile is acted on at once.
    `previous` is what a failed reload goes back to: (config, TLS contexts, generation, worker count)."""

    generation: int
    listeners: dict
    deadline: float
    previous: tuple | None  # None for the first generation
    workers: list = field(default_factory=list)


class Master:
    def __init__(self, config, config_file=None, overrides=None):
        self.config = config
        self.config_file = config_file
        self.overrides = overrides or {}
        self.log = logging.getLogger("oserver.master")
        self.listeners = {}  # (host, port) -> socket
        self.activated = False  # listeners came from systemd socket activation
        self.activated_tls = set()  # the addresses of those named TLS_SOCKET_NAMES
        self.tls = None  # the TlsContexts of the serving generation (None: no TLS listener)
        self.workers = {}  # pid -> WorkerProcess
        self.generation = 0
        self.rollout = None  # the Rollout of a generation coming up
        self.winched = False  # WINCH: no workers until the next HUP
        self.num_workers = config.workers
        self.stats = None
        self.wakeup = None
        self.stopping = None  # None, "fast" or "graceful"
        self.stop_deadline = None
        self.stop_at = None  # a graceful stop's start, shutdown_delay after QUIT (monotonic)
        self.failures = 0  # failed starts (workers dying right after starting) in the current series
        self.last_failure = 0.0
        self.next_spawn = 0.0  # no worker is started before this (monotonic): the backoff
        self.pid = os.getpid()
        self.pid_file = None  # the pidfile holding this master's pid (a reload does not move it; USR2 does)
        self.new_master = None  # pid of the master a live upgrade started, while it runs
        self.exit_code = 0

    # ------------------------------------------------------------ life cycle

    def run(self):
        """Bind, fork the workers and supervise them until stopped; returns the exit code."""
        self.open_listeners()
        tls = self.load_tls(self.config)
        set_process_title("oserver: master process " + " ".join(sys.argv))
        self.write_pidfile()
        try:
            self.stats = SharedStats(STATS_SLOTS, TABLE_BYTES)
            self.install_signals()
            self.log.info("oserver %d listening on %s, %d workers, root %s", self.pid,
                          ", ".join(self.listen_names()), self.num_workers, os.path.abspath(self.config.root))
            self.log.info("access log %s, log level %s, status page %s", self.config.access_log,
                          self.config.log_level, self.config.status_path or "off")
            self.report_tls(tls)
            for prefix, spec in self.config.mount.items():
                self.log.info("mount %s -> %s (imported by each worker)", prefix, spec)
            self.warn_about_unused_user()
            raise_open_file_limit(self.config.max_connections)
            self.start_rollout(self.config, self.listeners, tls, previous=None)
            while self.workers or not self.stopping:
                self.supervise()
        finally:
            self.remove_pidfile()
        self.log.info("master %d exits", self.pid)
        return self.exit_code

    def supervise(self):
        """One pass of the main loop: wait for signals (or the next backoff deadline), then act on them."""
        try:
            self.wait_for_signals(self.loop_timeout())
            self.reap_workers()
            if self.stop_at is not None and time.monotonic() >= self.stop_at:
                self.stop("graceful")
            if self.stopping:
                self.finish_stopping()
            else:
                if self.rollout is not None:
                    self.check_rollout()
                self.manage_workers()
                self.murder_workers()
            self.retire_slow_leavers()
        except Exception:  # the one guard of the master: whatever went wrong, supervision goes on
            self.log.error("master: unexpected error:\n%s", traceback.format_exc())

    def loop_timeout(self):
        if self.rollout is not None:
            return READY_POLL
        now = time.monotonic()
        waits = [deadline - now for deadline in (self.next_spawn, self.stop_at) if deadline and deadline > now]
        return min(waits + [LOOP_TIMEOUT])

    def status_line(self):
        return f"STATUS=serving on {', '.join(self.listen_names())} with {self.num_workers} workers " \
               f"(generation {self.generation})"

    def warn_about_unused_user(self):
        if (self.config.user or self.config.group) and os.getuid() != 0:
            self.log.warning("user/group are ignored: the master does not run as root")

    # ------------------------------------------------------------ listeners

    def open_listeners(self):
        """The sockets the master before this one handed over (a live upgrade: it kept serving on them), else
        those systemd passed in (socket activation), else the addresses the config names."""
        try:
            upgraded, self.activated = upgrade.inherited_listeners()
        except (OSError, ValueError) as e:
            raise ConfigError(f"{upgrade.LISTENERS_ENV}: the sockets passed in are unusable: {e}") from None
        if upgraded is not None:
            self.listeners = upgraded
            self.log.info("upgrade: took over %s from the previous master", ", ".join(self.listen_names()))
            if not self.activated:  # serve the config's addresses: bind new ones, close those no longer named
                self.switch_listeners(self.bind_listeners(self.config), self.config.backlog)
            return
        try:
            inherited = systemd.inherited_sockets()
        except OSError as e:
            raise ConfigError(f"LISTEN_FDS: the sockets passed in are unusable: {e.strerror}") from None
        if inherited:
            self.activated = True
            self.listeners = {sock.getsockname()[:2]: sock for sock, _ in inherited}
            self.activated_tls = {sock.getsockname()[:2] for sock, name in inherited if name in TLS_SOCKET_NAMES}
        else:
            self.listeners = self.bind_listeners(self.config)

    def listen_names(self):
        return [format_address(address) + (" (TLS)" if self.is_tls(address, self.config) else "")
                for address in self.listeners]

    def is_tls(self, address, config):
        """Does the listener on `address` speak TLS? Its port is tls_port, or systemd named its socket so."""
        if self.activated:
            return address in self.activated_tls
        return bool(config.tls_port) and address[1] == config.tls_port

    def load_tls(self, config):
        """The TLS contexts of config's TLS listeners (None if it has none), loaded here in the master: before
        the workers fork (they share the session ticket keys) and as the user that started it (a key readable
        by root only works)."""
        return load_tls(config, bool(self.activated_tls) if self.activated else bool(config.tls_port))

    def report_tls(self, tls):
        """Log how TLS is served, and warn of certificates about to expire."""
        if tls is None:
            return
        self.log.info("%s", tls.describe())
        for certificate, days in tls.expiring(datetime.datetime.now(datetime.timezone.utc)):
            self.log.warning("%s", expiry_text(certificate, days))

    def worker_listeners(self, listeners):
        """The Listeners a worker of the current generation serves: TLS ones with its contexts, each expecting a
        PROXY header first with proxy_protocol."""
        return [make_listener(sock, self.tls if self.is_tls(address, self.config) else None,
                              self.config.proxy_protocol)
                for address, sock in listeners.items()]

    def bind_listeners(self, config):
        """{address: socket} for the addresses config names: open sockets are reused, missing ones bound.
        Nothing changes for the current listeners; on failure the sockets bound here are closed again."""
        if self.activated:  # systemd owns the addresses; a reload keeps its sockets
            return dict(self.listeners)
        listeners = {}
        try:
            for address in config.listen_addresses:
                listeners[address] = self.listeners.get(address) or bind_listener(address, config.backlog)
        except ConfigError:
            self.close_listeners(listeners, keep=self.listeners)
            raise
        return listeners

    def switch_listeners(self, listeners, backlog):
        """Serve from `listeners` from now on: close the sockets no longer named, apply the backlog."""
        self.close_listeners(self.listeners, keep=listeners)
        self.listeners = listeners
        if not self.activated:  # systemd chose the backlog of the sockets it passed
            for sock in listeners.values():
                sock.listen(backlog)

    @staticmethod
    def close_listeners(listeners, keep=()):
        for address, sock in listeners.items():
            if address not in keep:
                sock.close()

    # ------------------------------------------------------------ signals

    def install_signals(self):
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wakeup = (read_fd, write_fd)
        for signum in SIGNAL_NAMES:
            signal.signal(signum, lambda signum, frame: None)  # the wakeup fd carries the signal number
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def wait_for_signals(self, timeout):
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
        """Graceful stop, after shutdown_delay if one is set: until then the workers serve on while ready_path
        answers 503, so balancers stop sending new work first. A second QUIT does not wait."""
        delay = self.config.shutdown_delay
        if self.stopping or self.stop_at is not None or not delay:
            return self.stop("graceful")
        self.stop_at = time.monotonic() + delay
        self.stats.leaving = True
        self.log.info("graceful stop in %gs (shutdown_delay); %s answers 503 meanwhile", delay,
                      self.config.ready_path or "ready_path")
        systemd.notify("STOPPING=1", f"STATUS=stopping in {delay:g}s (shutdown_delay)")

    def handle_usr1(self):
        reopen_error_log()
        self.give_logs_to_workers()
        self.signal_workers(signal.SIGUSR1)

    def give_logs_to_workers(self):
        """Workers that dropped privileges can neither create files in the log directory nor open the master's
        new error log: after logrotate moved the logs away, the master (root) creates them for the workers'
        user, as nginx does."""
        config = self.config
        if os.getuid() != 0 or not (config.user or config.group):
            return
        for path in (config.access_log, config.error_log):
            if path in ("-", "off"):
                continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    os.fchown(fd, *worker_ids(config.user, config.group))
                finally:
                    os.close(fd)
            except OSError as e:
                self.log.error("cannot hand log %s to the workers' user: %s", path, e.strerror)

    def handle_usr2(self):
        """Live upgrade: a new master from the code on disk, same command line and environment, serving beside
        this one on the same sockets. This master's pidfile becomes <pid_file>.oldbin; WINCH then QUIT here
        finishes the switch, QUIT to the new master rolls it back (this master takes its pidfile back)."""
        if self.stopping or self.stop_at is not None:
            return
        if self.new_master is not None:
            return self.log.warning("upgrade: new master %d still runs; USR2 ignored", self.new_master)
        if self.pid_file and not self.move_pidfile(self.pid_file + OLD_PID_SUFFIX):
            return
        listeners = self.listeners if self.rollout is None else self.rollout.listeners  # those of the config
        try:
            self.new_master = upgrade.start_new_master(listeners, self.activated)
        except OSError as e:
            self.log.error("upgrade: cannot start a new master: %s", e.strerror)
            self.take_pidfile_back()
            return
        self.log.info("upgrade: new master %d started from the code on disk; WINCH then QUIT master %d finishes "
                      "the switch, QUIT to %d rolls it back", self.new_master, self.pid, self.new_master)

    def new_master_exited(self, status):
        """The new master of an upgrade is gone (rolled back, or it failed): this one takes its pidfile back
        and, if WINCH had stopped its workers, starts them again."""
        code = os.waitstatus_to_exitcode(status)
        self.log.warning("upgrade: new master %d exited (%s); master %d serves on", self.new_master,
                         f"signal {-code}" if code < 0 else f"exit code {code}", self.pid)
        self.new_master = None
        self.take_pidfile_back()
        if self.winched and not self.stopping:
            self.winched = self.stats.leaving = False
            self.log.info("workers start again")
        systemd.notify("READY=1", f"MAINPID={self.pid}", self.status_line())

    def take_pidfile_back(self):
        """<pid_file>.oldbin becomes <pid_file> again (whatever the new master left there)."""
        if self.pid_file:
            self.move_pidfile(self.pid_file.removesuffix(OLD_PID_SUFFIX))

    def move_pidfile(self, path):
        """Rename this master's pidfile to `path`; False, logged, if that fails."""
        try:
            os.replace(self.pid_file, path)
        except OSError as e:
            self.log.error("upgrade: cannot rename %s to %s: %s", self.pid_file, path, e.strerror)
            return False
        self.pid_file = path
        return True

    def handle_ttin(self):
        if self.num_workers < MAX_WORKERS:
            self.num_workers += 1
            self.log.info("worker count raised to %d", self.num_workers)

    def handle_ttou(self):
        if self.num_workers > 1:
            self.num_workers -= 1
            self.log.info("worker count lowered to %d", self.num_workers)

    def handle_hup(self):
        """Reload: a new config and a new generation of workers; the serving generation retires only once the
        new one serves. A config that does not load or bind, or workers that do not come up, change nothing.
        A reload still coming up is superseded by this one."""
        if self.stopping or self.stop_at is not None:
            return
        try:
            config = build_config(self.config_file, self.overrides)
            tls = self.load_tls(config)  # certificates and keys are read again
            listeners = self.bind_listeners(config)
        except ConfigError as e:
            self.log.error("reload failed, the old configuration keeps serving: %s", e)
            return
        if self.rollout is not None and self.rollout.previous is None:
            self.rollout = None  # the first generation serves as it comes up; the reload replaces it as usual
        elif self.rollout is not None:
            self.log.warning("generation %d superseded by a new reload before it came up", self.generation)
            self.abandon_rollout()
        self.winched = self.stats.leaving = False
        systemd.notify("RELOADING=1", systemd.monotonic_usec(), "STATUS=reloading")
        if not self.use_error_log(config):
            self.close_listeners(listeners, keep=self.listeners)
            return systemd.notify("READY=1", self.status_line())
        self.report_tls(tls)
        self.start_rollout(config, listeners, tls,
                           previous=(self.config, self.tls, self.generation, self.num_workers))

    def handle_winch(self):
        """As nginx: the workers stop gracefully, the master stays with its sockets; HUP brings workers back."""
        if self.stopping or self.stop_at is not None:
            return
        if self.rollout is not None:
            self.abandon_rollout()
        self.winched = self.stats.leaving = True
        self.log.info("no workers until the next HUP")
        for worker in self.current_workers():
            self.retire(worker)
        systemd.notify("STATUS=no workers (WINCH); HUP starts them")

    def use_error_log(self, config):
        """Point the error log at config's file (reopening it); if that fails, back to the serving config's."""
        try:
            setup_error_log(config.error_log, config.log_level)
            return True
        except OSError as e:
            setup_error_log(self.config.error_log, self.config.log_level)
            self.log.error("reload failed, the old configuration keeps serving: cannot open error log %s: %s",
                           config.error_log, e.strerror)
            return False

    def start_rollout(self, config, listeners, tls, previous):
        """Fork a generation of workers with `config` on `listeners` (TLS ones with `tls`); check_rollout()
        follows it up."""
        self.config, self.tls, self.num_workers = config, tls, config.workers
        self.generation += 1
        self.next_spawn = 0.0
        self.rollout = Rollout(self.generation, listeners, time.monotonic() + READY_TIMEOUT, previous)
        self.manage_workers()

    def check_rollout(self):
        """Once each new worker has announced itself in its stats slot, the generation serves; one that
        failed before that, or a generation late past READY_TIMEOUT, fails it. A worker that exits cleanly
        before serving was told to stop (a Ctrl-C reaches the whole process group): that is no failure."""
        rollout = self.rollout
        for worker in rollout.workers:
            worker.up = worker.up or self.stats.slots[worker.slot].read()["pid"] == worker.pid
        if any(not w.up and w.exit_code not in (None, 0) for w in rollout.workers):
            self.rollout_failed("a worker exited before serving")
        elif all(w.up or w.exit_code == 0 for w in rollout.workers):
            self.rollout_done()
        elif time.monotonic() >= rollout.deadline:
            self.rollout_failed(f"not up within {READY_TIMEOUT:.0f}s")

    def rollout_done(self):
        rollout, self.rollout = self.rollout, None
        if rollout.previous is not None:
            self.switch_listeners(rollout.listeners, self.config.backlog)
            for worker in list(self.workers.values()):
                if worker.generation < rollout.generation:
                    self.retire(worker)
            self.log.info("reloaded: generation %d, %d workers", self.generation, self.num_workers)
        else:
            self.log.info("serving: %d workers up", self.num_workers)
        systemd.notify("READY=1", f"MAINPID={self.pid}", self.status_line())

    def rollout_failed(self, why):
        """The first generation: mounted code that does not import stops the server (no retry would fix it);
        otherwise backoff goes on. A reload: its workers retire and the serving generation stays untouched."""
        rollout = self.rollout
        if rollout.previous is None:
            self.rollout = None
            if any(w.exit_code == MOUNT_LOAD_FAILED for w in rollout.workers):
                self.log.error("the mounted code did not load (see the lines above); stopping")
                self.exit_code = 1
                return self.stop("fast")
            self.log.error("not every worker came up (%s, see the lines above); retrying with backoff", why)
            return systemd.notify("READY=1", f"MAINPID={self.pid}", self.status_line())
        self.log.error("reload failed: generation %d did not come up (%s); the old workers keep serving",
                       rollout.generation, why)
        self.abandon_rollout()
        self.use_error_log(self.config)
        systemd.notify("READY=1", self.status_line())

    def abandon_rollout(self):
        """Retire the workers of the generation coming up and go back to the serving one."""
        rollout, self.rollout = self.rollout, None
        for worker in rollout.workers:
            self.retire(worker)
        self.close_listeners(rollout.listeners, keep=self.listeners)
        if rollout.previous is not None:
            self.config, self.tls, self.generation, self.num_workers = rollout.previous

    def stop(self, how):
        if self.stopping in (how, "fast"):
            return
        self.stopping = how
        self.stop_at = None
        self.stats.leaving = True
        systemd.notify("STOPPING=1", f"STATUS=stopping ({how})")
        if how == "fast":
            self.stop_deadline = time.monotonic() + FAST_STOP_TIMEOUT
            self.signal_workers(signal.SIGTERM)
        else:
            self.stop_deadline = time.monotonic() + self.config.graceful_timeout + FAST_STOP_TIMEOUT
            for worker in list(self.workers.values()):
                self.retire(worker)
        if self.rollout is not None:
            self.close_listeners(self.rollout.listeners, keep=self.listeners)
            self.rollout = None
        self.close_listeners(self.listeners)  # new connections are refused once the workers close theirs
        self.listeners = {}

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

    def current_workers(self):
        """The workers of the serving generation that are not on their way out, oldest first."""
        return sorted((w for w in self.workers.values() if w.retiring is None and w.generation == self.generation),
                      key=lambda w: w.started)

    def manage_workers(self):
        """Start workers up to the wanted count (unless backing off after failed starts); retire extra ones.
        After a WINCH no worker is wanted; while a generation comes up, its workers are the ones started."""
        wanted = 0 if self.winched else self.num_workers
        current = self.current_workers()
        for worker in current[wanted:]:
            self.retire(worker)
        if time.monotonic() < self.next_spawn:
            return
        rollout = self.rollout
        if rollout is not None and rollout.workers:  # a worker failing now fails the rollout, not respawned
            return
        listeners = self.listeners if rollout is None else rollout.listeners
        for _ in range(wanted - len(current)):
            worker = self.spawn_worker(listeners)
            if worker is None:
                return
            if rollout is not None:
                rollout.workers.append(worker)

    def spawn_worker(self, listeners):
        """Fork one worker of the current generation: its WorkerProcess, or None if that was not possible."""
        slot = self.free_slot()
        if slot is None:
            self.log.error("no free stats slot for another worker (%d in use)", len(self.workers))
            return None
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNAL_NAMES)  # the child unblocks them when ready
        try:
            pid = os.fork()
        except OSError as e:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            self.back_off(f"cannot fork a worker: {e.strerror}")
            return None
        if pid == 0:
            code = 1
            try:
                self.leave_master(listeners)
                code = run_worker(self.config, self.worker_listeners(listeners), self.stats.slots[slot],
                                  self.generation, self.pid)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        now = time.monotonic()
        worker = self.workers[pid] = WorkerProcess(pid, slot, self.generation, now, now)
        self.log.debug("spawned worker %d (generation %d)", pid, self.generation)
        return worker

    def leave_master(self, listeners):
        """In a new worker: drop the master's signal plumbing and the listeners a reload is closing."""
        signal.set_wakeup_fd(-1)
        for fd in self.wakeup:
            os.close(fd)
        for signum in SIGNAL_NAMES:
            signal.signal(signum, signal.SIG_DFL)
        self.close_listeners(self.listeners, keep=listeners)
        if self.rollout is not None:
            self.close_listeners(self.rollout.listeners, keep=listeners)

    def free_slot(self):
        used = {w.slot for w in self.workers.values()}
        return next((i for i in range(STATS_SLOTS) if i not in used), None)

    def reap_workers(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.new_master:
                self.new_master_exited(status)
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            worker.exit_code = os.waitstatus_to_exitcode(status)
            self.stats.retire(worker.slot)  # its counters and top paths join the server totals
            if worker.exit_code != 0:  # it may have died holding connections counted per client
                self.stats.new_epoch()
            if worker.retiring is not None or self.stopping:
                self.log.info("worker %d exited", pid)
                continue
            self.worker_died(worker)

    def worker_died(self, worker):
        """An unexpected exit: replaced at once, or after a growing delay when workers die right at start."""
        code = worker.exit_code
        if code == 0:  # told to stop by someone else than this master
            self.log.warning("worker %d exited cleanly; replacing it", worker.pid)
            return
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        lived = time.monotonic() - worker.started
        if lived >= QUICK_DEATH:
            self.log.error("worker %d died unexpectedly (%s); replacing it", worker.pid, how)
        else:
            self.back_off(f"worker {worker.pid} died {lived:.1f}s after starting ({how})")

    def back_off(self, what):
        """A failed start: delay the next one, twice as long as the previous delay (up to MAX_BACKOFF)."""
        now = time.monotonic()
        if now - self.last_failure > FAILURES_FORGOTTEN:
            self.failures = 0
        self.failures += 1
        self.last_failure = now
        delay = min(FIRST_BACKOFF * 2 ** (self.failures - 1), MAX_BACKOFF)
        self.next_spawn = now + delay
        self.log.error("%s: failed start #%d, next start in %.1fs", what, self.failures, delay)

    def retire(self, worker):
        """Ask a worker to stop gracefully (QUIT): it finishes what it has and exits. One not serving yet
        (still starting, importing mounted code) has nothing to finish: TERM ends it at once."""
        if worker.retiring is None:
            worker.retiring = time.monotonic() + self.config.graceful_timeout
            worker.up = worker.up or self.stats.slots[worker.slot].read()["pid"] == worker.pid
            self.kill(worker.pid, signal.SIGQUIT if worker.up else signal.SIGTERM)

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
            state = self.stats.slots[worker.slot].read()
            if state["pid"] == worker.pid:
                worker.heartbeat = state["heartbeat"]
            silent = now - worker.heartbeat
            if silent > timeout:
                self.log.error("worker %d silent for %.1fs (worker_timeout %.1fs); killing it", worker.pid,
                               silent, timeout)
                self.kill(worker.pid, signal.SIGKILL)

    # ------------------------------------------------------------ pidfile

    def write_pidfile(self):
        """Write the master's pid to pid_file atomically (a temporary file renamed over it)."""
        path = self.config.pid_file
        if not path:
            return
        temporary = f"{path}.{self.pid}.tmp"
        try:
            with open(temporary, "w") as f:
                f.write(f"{self.pid}\n")
            os.replace(temporary, path)
        except OSError as e:
            raise ConfigError(f"pid_file: cannot write {path}: {e.strerror}") from None
        self.pid_file = path

    def remove_pidfile(self):
        if self.pid_file and read_pidfile(self.pid_file) == self.pid:
            os.unlink(self.pid_file)


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def raise_open_file_limit(max_connections):
    """Lift the soft RLIMIT_NOFILE to the hard limit (the workers inherit it), and say so in the log."""
    log = logging.getLogger("oserver.master")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            limit = hard
        except (ValueError, OSError) as e:  # e.g. an unlimited hard limit above the kernel's nr_open
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, e)
    log.info("open-file limit %d%s", limit, f" (raised from {soft})" if limit != soft else "")
    if limit < max_connections:
        log.warning("open-file limit %d is below max_connections %d: a worker may run out of descriptors "
                    "(it then pauses accepting)", limit, max_connections)


def send_control_signal(pid_file, action):
    """`-s stop|quit|reload|reopen`: signal the master named in the pidfile; returns an exit code."""
    pid = read_pidfile(pid_file)
    if pid is None:
        print(f"oserver: error: cannot read a pid from {pid_file}", file=sys.stderr)
        return 1
    try:
        os.kill(pid, CONTROL_SIGNALS[action])
    except ProcessLookupError:
        print(f"oserver: error: no process with pid {pid} (from {pid_file})", file=sys.stderr)
        return 1
    except PermissionError:
        print(f"oserver: error: not allowed to signal pid {pid} (from {pid_file})", file=sys.stderr)
        return 1
    return 0
