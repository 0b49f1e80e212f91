"""Shared fixtures: a real OServer master started as a subprocess on a free loopback port, always stopped.

`server` gives a running server on a fresh copy of httptest/ (-w 2); `start_server` starts one with any
extra flags or a custom document root. Readiness is a real HTTP answer, never a sleep.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HTTPD = os.path.join(REPO, "httpd.py")
FIXTURES = os.path.join(REPO, "httptest")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# Fixtures of the tests whose workers switch to the user `nobody` (--user): only root may start those.
ROOT_ONLY_FIXTURES = {"nobody", "public_docroot"}


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening_inodes(port):
    """Inodes of the sockets listening on `port` (any address, IPv4 or IPv6), from /proc/net."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(fields[9])
    return inodes


def holds_socket(pid, inodes):
    """Does process `pid` have one of the sockets `inodes` open?"""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def live_processes():
    """(pid, parent pid, session id) of every live (not zombie) process, from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(entry), int(fields[1]), int(fields[3])


def child_pids(parent):
    """Pids of the live (not zombie) children of `parent`, from /proc."""
    return sorted(pid for pid, ppid, _ in live_processes() if ppid == parent)


def session_holds_socket(session, inodes):
    """Does a process of session `session` (a server and whatever it started) have one of `inodes` open?"""
    return any(holds_socket(pid, inodes) for pid, _, sid in live_processes() if sid == session)


def make_docroot(path):
    """A document root holding a copy of httptest/ (as /httptest/...), like `make run` serves."""
    os.makedirs(path, exist_ok=True)
    shutil.copytree(FIXTURES, os.path.join(path, "httptest"), dirs_exist_ok=True)
    return str(path)


class Server:
    """A running OServer master (`httpd.py` of this checkout unless `command` names another) and how to reach it.

    A port picked by free_port() may be taken by another program (another test run on the machine) before the
    master binds it. Readiness therefore asks that the server's own processes hold the listening socket (whoever
    answers before that is somebody else), and a server that exits because its picked port was taken meanwhile
    is started again on another one."""

    def __init__(self, root, args=(), host="127.0.0.1", workers=2, log_path=None, env=None,
                 command=(sys.executable, HTTPD), port=None):
        self.root = root
        self.host = host
        self.port_picked = port is None  # chosen here by free_port(): another may be picked if it gets taken
        self.port = port or free_port(host)
        self.log_path = log_path
        self.command, self.workers, self.args, self.env = command, workers, args, env
        self.log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.launch()

    def launch(self):
        self.argv = self.command_line(self.command, self.workers, self.args)
        self.proc = subprocess.Popen(self.argv, stdout=self.log_file, stderr=self.log_file, env=self.env,
                                     start_new_session=True)

    def command_line(self, command, workers, args):
        return [*command, "-r", self.root, "-b", self.host, "-p", str(self.port), "-w", str(workers), *args]

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, path="/", timeout=START_TIMEOUT):
        """Wait until `path` answers, or (path None: a server that speaks no plain HTTP) the port is open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self.port_picked and listening_inodes(self.port):  # another program took the port first
                    self.port = free_port(self.host)
                    self.launch()
                    continue
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_text()}")
            if not session_holds_socket(self.pid, listening_inodes(self.port)):  # not listening yet
                time.sleep(0.02)
                continue
            try:
                if path is None:
                    socket.create_connection((self.host, self.port), timeout=1).close()
                else:
                    requests.get(self.url + path, timeout=1)
                return self
            except (requests.RequestException, OSError):
                time.sleep(0.02)
        raise RuntimeError(f"server not ready after {timeout}s: {self.log_text()}")

    def log_text(self):
        if not self.log_path:
            return ""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def worker_pids(self):
        """Pids of the master's live worker children, from /proc."""
        return child_pids(self.pid)

    def signal(self, signum):
        os.kill(self.pid, signum)

    def stop(self):
        """TERM the master and wait; then make sure nothing of its process group is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(STOP_TIMEOUT)
        if self.log_file is not subprocess.DEVNULL:
            self.log_file.close()


def pytest_runtest_setup(item):
    """A test that needs root says so (skipped) when the suite runs as another user, instead of failing."""
    if os.geteuid() != 0 and ROOT_ONLY_FIXTURES & set(item.fixturenames):
        pytest.skip("needs root: its workers switch to the user nobody (--user)")


@pytest.fixture
def docroot(tmp_path):
    return make_docroot(tmp_path / "www")


@pytest.fixture
def start_server(tmp_path):
    """Factory: start_server(*flags, root=None, workers=2, host="127.0.0.1") -> a ready Server."""
    servers = []

    def start(*args, root=None, workers=2, host="127.0.0.1", ready_path="/", env=None):
        if root is None:
            root = make_docroot(tmp_path / f"www{len(servers)}")
        server = Server(root, args, host=host, workers=workers, env=env,
                        log_path=str(tmp_path / f"server{len(servers)}.log"))
        servers.append(server)
        return server.wait_ready(ready_path)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server):
    return start_server()
