"""The master as a supervisor (issue 3), with real processes and real signals: graceful and fast stops, reload
under load, respawn with backoff, the watchdog, TTIN/TTOU, log reopening, the pidfile, -s and -t, privileges,
systemd notify (a unix datagram socket stands in for systemd) and socket activation (a launcher passes fd 3).
"""

import contextlib
import datetime
import grp
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import HTTPD, REPO, START_TIMEOUT, STOP_TIMEOUT, Server, free_port, make_docroot
from tests.load import Load

EXIT_TIMEOUT = 15.0  # generous: other test suites share the two cores
FAST_STOP_BOUND = 8.0  # TERM must end everything well within this (the master waits 5 s at most)
POLL = 0.02
SOCKET_TIMEOUT = 10.0
BIG_FILE_BYTES = 32 << 20  # far more than the socket buffers hold, so the server is still sending at QUIT
SLOW_READ_BYTES = 1 << 20  # what the slow client has read when QUIT arrives
CHUNK = 1 << 16
WATCHDOG_TIMEOUT = 2
LOAD_CLIENTS = 20
RELOADS = 5
REQUESTS_BETWEEN_RELOADS = 100  # load that must flow after each reload before the next one
LOAD_PATHS = ("/httptest/dir2/", "/httptest/wikipedia_russia.html")
FIRST_BACKOFFS = (0.2, 0.4, 0.8)  # the master's delays after failed starts 1, 2, 3
BACKOFF_RECOVERY_TIMEOUT = 45.0  # the backoff grows to at most 30 s
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")

LAUNCHER = """
import os, socket, sys
sock = socket.create_server(("127.0.0.1", int(sys.argv[1])))
os.dup2(sock.fileno(), 3)  # the first socket-activation fd
os.set_inheritable(3, True)  # dup2 leaves it alone when the socket already is fd 3
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


# ---------------------------------------------------------------- helpers

def wait_for(condition, what, timeout=EXIT_TIMEOUT):
    """Poll `condition` until it returns something true (returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(POLL)


def is_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def proc_ids(pid, field):
    """Real uid or gid of a process, from /proc/<pid>/status (`field` is "Uid" or "Gid")."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def refuses_connections(server):
    try:
        socket.create_connection((server.host, server.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def answers(server, path="/httptest/dir2/"):
    try:
        return requests.get(server.url + path, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def all_workers(server, count=2):
    """The worker pids once `count` run: the first answer to a client may come before the master's last fork."""
    return wait_for(lambda: len(pids := server.worker_pids()) == count and pids, f"{count} workers")


def workers_replaced(server, old, count=2):
    """The new worker pids once exactly `count` workers run and none of them is in `old`."""
    pids = server.worker_pids()
    return pids if len(pids) == count and not set(pids) & set(old) else None


def log_times(server, text):
    """Timestamps of the server's log lines containing `text`."""
    return [datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f")
            for line in server.log_text().splitlines() if text in line and (m := LOG_TIME.match(line))]


def run_httpd(*args, cwd=None):
    return subprocess.run([sys.executable, HTTPD, *args], capture_output=True, text=True, timeout=START_TIMEOUT,
                          cwd=cwd)


def send_get(sock, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())


def read_head(sock):
    """Read a response head from a raw socket: (head, the body bytes read after it)."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(CHUNK)
        assert data, "the server closed before the response head"
        received += data
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    return head, body


def open_download(server, path):
    """A raw connection with a small receive buffer that asked for `path`: (socket, body so far)."""
    sock = socket.create_connection((server.host, server.port), timeout=SOCKET_TIMEOUT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CHUNK)
    send_get(sock, path)
    return sock, read_head(sock)[1]


def read_until_closed(sock, limit):
    """Read until EOF (or `limit` bytes); the bytes read."""
    parts = []
    total = 0
    while total < limit:
        data = sock.recv(CHUNK)
        if not data:
            break
        parts.append(data)
        total += len(data)
    return b"".join(parts)


class LaunchedServer(Server):
    """A server started from an exact command line (no -r/-b/-p/-w added): a config file alone, a launcher."""

    def __init__(self, argv, port, log_path, env=None):
        self.root, self.host, self.port, self.argv, self.log_path = None, "127.0.0.1", port, argv, log_path
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=self.log_file, env=env,
                                     start_new_session=True)


@contextlib.contextmanager
def launched(argv, port, log_path, ready_path="/"):
    """A LaunchedServer answering on `port`, always stopped."""
    server = LaunchedServer(argv, port, str(log_path))
    try:
        yield server.wait_ready(ready_path)
    finally:
        server.stop()


@pytest.fixture
def big_file(docroot):
    """A 32 MiB file of random bytes in the document root: (URL path, its bytes)."""
    data = os.urandom(BIG_FILE_BYTES)
    with open(os.path.join(docroot, "big.bin"), "wb") as f:
        f.write(data)
    return "/big.bin", data


@pytest.fixture
def config_file(tmp_path, docroot):
    """A config file (written by the test) for a server on a copy of httptest/."""
    path = tmp_path / "oserver.toml"
    path.write_text('index = ["index.html"]\n')
    return path


@pytest.fixture
def public_tmp():
    """A directory workers running as `nobody` can reach (pytest's tmp dirs are private to root)."""
    path = os.path.join("/tmp", f"oserver-test-{os.getpid()}-{time.monotonic_ns()}")
    os.mkdir(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def public_docroot(public_tmp):
    return make_docroot(os.path.join(public_tmp, "www"))


@pytest.fixture
def nobody():
    account = pwd.getpwnam("nobody")
    return account.pw_uid, account.pw_gid, grp.getgrgid(account.pw_gid).gr_name


@pytest.fixture
def notify_socket(tmp_path):
    """A unix datagram socket standing in for systemd's $NOTIFY_SOCKET: (path, socket)."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(START_TIMEOUT)
    yield path, sock
    sock.close()


def notices(sock):
    """The next sd_notify datagram as {KEY: value}."""
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())


# ---------------------------------------------------------------- TERM / INT: fast stop

def test_term_ends_an_inflight_download_and_every_process_within_seconds(start_server, docroot, big_file):
    server = start_server(root=docroot)
    workers = all_workers(server)
    sock, _ = open_download(server, big_file[0])
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.proc.wait(EXIT_TIMEOUT) == 0
    assert time.monotonic() - started < FAST_STOP_BOUND
    assert not any(is_alive(pid) for pid in workers)
    assert len(read_until_closed(sock, BIG_FILE_BYTES)) < BIG_FILE_BYTES  # cut short, not finished
    sock.close()


# ---------------------------------------------------------------- QUIT: graceful stop

@pytest.fixture
def quitting_download(start_server, docroot, big_file):
    """A slow client is 1 MiB into a 32 MiB download when the master gets QUIT: (server, socket, body so far,
    the whole file)."""
    server = start_server(root=docroot)
    sock, body = open_download(server, big_file[0])
    while len(body) < SLOW_READ_BYTES:
        data = sock.recv(CHUNK)
        assert data, "the download stopped early"
        body += data
    server.signal(signal.SIGQUIT)
    yield server, sock, body, big_file[1]
    sock.close()


def test_quit_refuses_new_connections_while_a_download_finishes(quitting_download):
    server, sock, body, data = quitting_download
    wait_for(lambda: refuses_connections(server), "new connections to be refused")
    assert server.proc.poll() is None  # still draining: the download is not done


def test_quit_lets_an_inflight_download_finish_byte_exact(quitting_download):
    server, sock, body, data = quitting_download
    wait_for(lambda: refuses_connections(server), "the drain to start")
    body += read_until_closed(sock, len(data) - len(body))
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()


def test_quit_exits_0_once_the_download_is_done(quitting_download):
    server, sock, body, data = quitting_download
    read_until_closed(sock, len(data) - len(body))
    assert server.proc.wait(EXIT_TIMEOUT) == 0
    assert server.worker_pids() == []


def test_quit_closes_idle_keepalive_connections(server):
    sock = socket.create_connection((server.host, server.port), timeout=SOCKET_TIMEOUT)
    send_get(sock, "/httptest/readme.txt")
    head, body = read_head(sock)
    assert b"\r\nConnection: keep-alive" in head
    while len(body) < int(re.search(rb"Content-Length: (\d+)", head)[1]):
        body += sock.recv(CHUNK)
    server.signal(signal.SIGQUIT)
    assert sock.recv(1) == b""  # an orderly close with nothing sent, after a short grace
    sock.close()
    assert server.proc.wait(EXIT_TIMEOUT) == 0


def test_quit_answers_a_request_whose_head_was_partly_read(server):
    sock = socket.create_connection((server.host, server.port), timeout=SOCKET_TIMEOUT)
    sock.sendall(b"GET /httptest/dir2/ HTTP/1.1\r\nHost: localhost\r\n")
    server.signal(signal.SIGQUIT)
    wait_for(lambda: refuses_connections(server), "the drain to start")
    sock.sendall(b"\r\n")
    response = read_until_closed(sock, BIG_FILE_BYTES)
    sock.close()
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in response
    assert response.endswith(b"<html>Directory index file</html>\n")


# ---------------------------------------------------------------- HUP: reload

def reload_under_load(server, url, verify=True):
    """LOAD_CLIENTS keep-alive clients asking `url` (the server's plain or TLS address; `verify` is requests')
    for LOAD_PATHS through RELOADS reloads: (the Load, the worker pids of each generation)."""
    generations = [all_workers(server)]
    with Load(url, LOAD_PATHS, LOAD_CLIENTS, verify=verify) as load:
        for _ in range(RELOADS):
            load.flows(REQUESTS_BETWEEN_RELOADS)
            server.signal(signal.SIGHUP)
            generations.append(wait_for(lambda: workers_replaced(server, generations[-1]), "a new generation"))
        load.flows(REQUESTS_BETWEEN_RELOADS)
    return load, generations


def assert_no_request_lost(reloaded, capsys, what="reload under load"):
    load, generations = reloaded
    with capsys.disabled():
        print(f"\n{what}: {load.summary()}, {len(generations) - 1} reloads")
    assert load.errors == []
    assert (load.failed, load.non_2xx) == (0, 0)
    assert len({pid for pids in generations for pid in pids}) == 2 * (RELOADS + 1)


def test_reload_under_load_loses_no_request(start_server, capsys):
    server = start_server()
    assert_no_request_lost(reload_under_load(server, server.url), capsys)


def test_reload_with_a_new_index_name_takes_effect(start_server, docroot, config_file):
    with open(os.path.join(docroot, "httptest", "dir2", "home.html"), "w") as f:
        f.write("home\n")
    server = start_server("-c", str(config_file), root=docroot)
    assert requests.get(server.url + "/httptest/dir2/").text == "<html>Directory index file</html>\n"
    config_file.write_text('index = ["home.html", "index.html"]\n')
    server.signal(signal.SIGHUP)
    wait_for(lambda: requests.get(server.url + "/httptest/dir2/").text == "home\n", "the new index to be served")


def test_reload_with_new_port_and_worker_count_takes_effect(tmp_path, docroot):
    config = tmp_path / "listen.toml"
    old_port, new_port = free_port(), free_port()
    config.write_text(f'root = "{docroot}"\nbind = ["127.0.0.1"]\nport = {old_port}\nworkers = 1\n')
    with launched([sys.executable, HTTPD, "-c", str(config)], old_port, tmp_path / "server.log") as server:
        old = all_workers(server, count=1)
        config.write_text(f'root = "{docroot}"\nbind = ["127.0.0.1"]\nport = {new_port}\nworkers = 3\n')
        server.signal(signal.SIGHUP)
        wait_for(lambda: workers_replaced(server, old, count=3), "three new workers")
        wait_for(lambda: refuses_connections(server), "the old port to be closed")
        server.port = new_port
        assert answers(server)


@pytest.mark.parametrize("broken", [
    'index = ["index.html"\n',  # not TOML
    "keepalive_timeout = 0\n",  # a bad value
    "no_such_option = 1\n",  # an unknown key
], ids=["bad-toml", "bad-value", "unknown-key"])
def test_reload_with_a_broken_config_keeps_the_old_workers_serving(start_server, config_file, broken):
    server = start_server("-c", str(config_file))
    workers = all_workers(server)
    config_file.write_text(broken)
    server.signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in server.log_text(), "the reload error in the log")
    assert server.worker_pids() == workers
    assert answers(server)


def test_reload_whose_workers_fail_to_start_keeps_the_old_workers_serving(start_server, config_file, tmp_path):
    server = start_server("-c", str(config_file))
    workers = all_workers(server)
    config_file.write_text(f'access_log = "{tmp_path}"\n')  # a directory: every new worker dies opening it
    server.signal(signal.SIGHUP)
    wait_for(lambda: "did not come up" in server.log_text(), "the failed generation in the log")
    wait_for(lambda: server.worker_pids() == workers, "the failed generation to be gone")
    assert answers(server)


def test_reload_error_names_the_bad_key(start_server, config_file):
    server = start_server("-c", str(config_file))
    config_file.write_text("keepalive_timeout = -5\n")
    server.signal(signal.SIGHUP)
    line = wait_for(lambda: [line for line in server.log_text().splitlines() if "reload failed" in line],
                    "the reload error in the log")
    assert "keepalive_timeout" in line[0]


# ---------------------------------------------------------------- CHLD: respawn, backoff; the watchdog

def test_killed_worker_is_replaced_and_the_server_keeps_answering(server):
    victim, survivor = all_workers(server)
    os.kill(victim, signal.SIGKILL)
    pids = wait_for(lambda: workers_replaced(server, [victim]), "a replacement worker")
    assert survivor in pids
    assert answers(server)


def test_watchdog_kills_and_replaces_a_hung_worker(start_server):
    server = start_server("--worker-timeout", str(WATCHDOG_TIMEOUT))
    victim, survivor = all_workers(server)
    os.kill(victim, signal.SIGSTOP)  # a stopped process stops beating, like one stuck in a loop
    pids = wait_for(lambda: workers_replaced(server, [victim]), "the watchdog to replace the hung worker")
    assert survivor in pids
    assert f"worker {victim} silent for" in server.log_text()
    assert answers(server)


def test_worker_dying_right_after_start_is_respawned_with_backoff(start_server, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    server = start_server("--access-log", str(logs / "access.log"), workers=1)
    shutil.rmtree(logs)  # from now on a new worker cannot open its access log and dies at once
    os.kill(server.worker_pids()[0], signal.SIGKILL)
    wait_for(lambda: log_times(server, "failed start #4"), "four failed starts")
    first, fourth = log_times(server, "failed start #1")[0], log_times(server, "failed start #4")[0]
    assert (fourth - first).total_seconds() >= sum(FIRST_BACKOFFS)  # a tight fork loop takes milliseconds


def test_worker_starts_again_once_the_cause_of_its_deaths_is_gone(start_server, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    server = start_server("--access-log", str(logs / "access.log"), workers=1)
    shutil.rmtree(logs)
    os.kill(server.worker_pids()[0], signal.SIGKILL)
    wait_for(lambda: log_times(server, "failed start #2"), "failed starts")
    logs.mkdir()
    wait_for(lambda: answers(server) and len(server.worker_pids()) == 1, "a worker that stays up",
             timeout=BACKOFF_RECOVERY_TIMEOUT)


# ---------------------------------------------------------------- TTIN / TTOU

def test_ttin_adds_a_worker(server):
    server.signal(signal.SIGTTIN)
    wait_for(lambda: len(server.worker_pids()) == 3, "a third worker")


def test_ttou_retires_a_worker(server):
    server.signal(signal.SIGTTOU)
    wait_for(lambda: len(server.worker_pids()) == 1, "one worker left")
    assert answers(server)


def test_ttou_never_goes_below_one_worker(start_server):
    server = start_server(workers=1)
    (worker,) = server.worker_pids()
    server.signal(signal.SIGTTOU)
    wait_for(lambda: "master got SIGTTOU" in server.log_text(), "the TTOU to be handled")
    server.signal(signal.SIGTTIN)  # the count goes 1 -> 1 -> 2, not 1 -> 0 -> 1
    wait_for(lambda: len(server.worker_pids()) == 2, "a second worker")
    assert worker in server.worker_pids()


# ---------------------------------------------------------------- USR1: reopen logs

@pytest.mark.parametrize("flag, provoke, line", [
    ("--access-log", lambda server: answers(server, "/httptest/readme.txt"), "/httptest/readme.txt"),
    ("--error-log", lambda server: server.signal(signal.SIGTTIN) or True, "worker count raised"),
], ids=["access-log", "error-log"])
def test_usr1_recreates_a_renamed_log(start_server, tmp_path, flag, provoke, line):
    log = tmp_path / "oserver.log"
    server = start_server(flag, str(log))
    os.rename(log, tmp_path / "oserver.log.1")
    server.signal(signal.SIGUSR1)
    wait_for(log.exists, "the log to be created again")
    wait_for(lambda: provoke(server) and line in log.read_text(), "a new line in the new file")


def test_usr1_gives_the_new_access_log_to_unprivileged_workers(start_server, public_tmp, public_docroot, nobody):
    uid, gid, group = nobody
    access_log = Path(public_tmp) / "access.log"  # in root's directory: the workers cannot create files there
    server = start_server("--access-log", str(access_log), "--user", "nobody", "--group", group,
                          root=public_docroot)
    os.rename(access_log, access_log.with_suffix(".log.1"))
    server.signal(signal.SIGUSR1)
    wait_for(lambda: answers(server, "/httptest/readme.txt") and access_log.exists()
             and "/httptest/readme.txt" in access_log.read_text(), "a request logged in the new file")
    assert (access_log.stat().st_uid, access_log.stat().st_gid) == (uid, gid)


def test_usr1_with_a_file_error_log_keeps_unprivileged_workers_alive(start_server, public_tmp, public_docroot):
    error_log = Path(public_tmp) / "error.log"
    server = start_server("--error-log", str(error_log), "--user", "nobody", root=public_docroot)
    workers = all_workers(server)
    os.rename(error_log, error_log.with_suffix(".log.1"))
    server.signal(signal.SIGUSR1)
    server.signal(signal.SIGTTIN)  # handled after the USR1: once a third worker runs, the reopen is long done
    pids = wait_for(lambda: len(pids := server.worker_pids()) == 3 and pids, "a third worker")
    assert set(workers) <= set(pids)  # the workers reopened the new error log instead of dying on it
    assert "Traceback" not in error_log.read_text()


# ---------------------------------------------------------------- pidfile, -s, -t

def test_pidfile_holds_the_master_pid(start_server, tmp_path):
    pid_file = tmp_path / "oserver.pid"
    server = start_server("--pid", str(pid_file))
    assert pid_file.read_text() == f"{server.pid}\n"


def test_pidfile_is_removed_on_exit(start_server, tmp_path):
    pid_file = tmp_path / "oserver.pid"
    server = start_server("--pid", str(pid_file))
    server.signal(signal.SIGTERM)
    assert server.proc.wait(EXIT_TIMEOUT) == 0
    assert not pid_file.exists()


def test_signal_reload_starts_new_workers(start_server, tmp_path):
    pid_file = str(tmp_path / "oserver.pid")
    server = start_server("--pid", pid_file)
    workers = all_workers(server)
    result = run_httpd("--pid", pid_file, "-s", "reload")
    assert (result.returncode, result.stderr) == (0, "")
    wait_for(lambda: workers_replaced(server, workers), "a new generation")
    assert answers(server)


@pytest.mark.parametrize("action, signal_name", [("quit", "SIGQUIT"), ("stop", "SIGTERM")])
def test_signal_stops_the_master(start_server, tmp_path, action, signal_name):
    pid_file = str(tmp_path / "oserver.pid")
    server = start_server("--pid", pid_file)
    assert run_httpd("--pid", pid_file, "-s", action).returncode == 0
    assert server.proc.wait(EXIT_TIMEOUT) == 0
    assert f"master got {signal_name}" in server.log_text()


def test_signal_without_a_pidfile_fails_naming_it(tmp_path):
    pid_file = str(tmp_path / "missing.pid")
    result = run_httpd("--pid", pid_file, "-s", "reload")
    assert result.returncode == 1
    assert pid_file in result.stderr


def test_config_test_accepts_the_shipped_config():
    result = run_httpd("-c", "conf/oserver.toml", "-t", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "conf/oserver.toml is OK" in result.stdout


def test_config_test_rejects_a_bad_value_naming_its_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("graceful_timeout = \"soon\"\n")
    result = run_httpd("-c", str(config), "-t")
    assert result.returncode == 1
    assert "graceful_timeout" in result.stderr


# ---------------------------------------------------------------- --user / --group

def test_workers_run_as_the_configured_user_and_group(start_server, public_docroot, nobody):
    uid, gid, group = nobody
    server = start_server("--user", "nobody", "--group", group, root=public_docroot)
    ids = [(uid, gid)] * 2
    wait_for(lambda: [(proc_ids(pid, "Uid"), proc_ids(pid, "Gid")) for pid in all_workers(server)] == ids,
             "both workers to run as nobody")  # a worker just forked is still root for a moment
    assert proc_ids(server.pid, "Uid") == 0  # the master keeps the rights to bind, reopen logs, signal
    assert answers(server)


def test_unprivileged_workers_exit_when_the_master_is_killed(start_server, public_docroot):
    server = start_server("--user", "nobody", root=public_docroot)
    workers = all_workers(server)
    server.signal(signal.SIGKILL)
    server.proc.wait(STOP_TIMEOUT)
    wait_for(lambda: not any(is_alive(pid) for pid in workers), "orphaned workers to exit")


# ---------------------------------------------------------------- systemd

@pytest.fixture
def notified_server(tmp_path, docroot, notify_socket):
    """A server told to report to a stand-in $NOTIFY_SOCKET, not yet known to be ready: (server, socket)."""
    path, sock = notify_socket
    server = Server(docroot, env=dict(os.environ, NOTIFY_SOCKET=path), log_path=str(tmp_path / "notified.log"))
    yield server, sock
    server.stop()


def test_systemd_hears_ready_once_the_workers_accept(notified_server):
    server, sock = notified_server
    ready = notices(sock)
    assert ready["READY"] == "1"
    assert ready["MAINPID"] == str(server.pid)
    assert "2 workers" in ready["STATUS"]
    assert len(server.worker_pids()) == 2
    assert answers(server)


def test_systemd_hears_reloading_then_ready_around_a_reload(notified_server):
    server, sock = notified_server
    notices(sock)
    server.signal(signal.SIGHUP)
    reloading = notices(sock)
    now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert reloading["RELOADING"] == "1"
    assert 0 <= now_usec - int(reloading["MONOTONIC_USEC"]) < EXIT_TIMEOUT * 1e6
    assert notices(sock)["READY"] == "1"


def test_systemd_hears_stopping_on_quit(notified_server):
    server, sock = notified_server
    notices(sock)
    server.signal(signal.SIGQUIT)
    stopping = notices(sock)
    assert stopping["STOPPING"] == "1"
    assert stopping["STATUS"].startswith("stopping")


def test_socket_activation_serves_on_the_inherited_socket(tmp_path, docroot):
    inherited, configured = free_port(), free_port()
    argv = [sys.executable, "-c", LAUNCHER, str(inherited), HTTPD, "-r", docroot, "-b", "127.0.0.1", "-p",
            str(configured)]
    with launched(argv, inherited, tmp_path / "server.log") as server:
        assert answers(server)
        server.port = configured
        assert refuses_connections(server)  # the configured address was not bound


def test_socket_activation_keeps_the_inherited_socket_across_a_reload(tmp_path, docroot):
    port = free_port()
    argv = [sys.executable, "-c", LAUNCHER, str(port), HTTPD, "-r", docroot, "-w", "2"]
    with launched(argv, port, tmp_path / "server.log") as server:
        workers = all_workers(server)
        server.signal(signal.SIGHUP)
        wait_for(lambda: workers_replaced(server, workers), "a new generation")
        assert answers(server)
