"""A real HAProxy (conf/haproxy.cfg, the shipped file, on loopback ports) in front of three OServer instances
with send-proxy-v2: the instances log the client's address, not HAProxy's; a rolling restart (each instance in
turn: QUIT, /readyz answers 503 during shutdown_delay, HAProxy takes it out, it exits, starts again, HAProxy
takes it back) loses no request of a running load; an instance killed with SIGKILL is taken out by the health
checks, and HAProxy's retries on another server keep the clients' failures at 0.

HAProxy is the Debian package (`make test` installs it with tools/apt-install.sh). Its runtime API (a unix
socket, `show stat`) tells the test what it thinks of each instance.
"""

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import uuid

import pytest

from tests.conftest import REPO, Server, free_port, make_docroot
from tests.integration.test_master import EXIT_TIMEOUT, wait_for
from tests.integration.test_realip import fetch, logged_addresses
from tests.load import Load

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CONFIG = os.path.join(REPO, "conf", "haproxy.cfg")
INSTANCES = 3
SHUTDOWN_DELAY = 4.0  # as conf/haproxy.cfg advises, above its inter 1s x fall 2 (a second more on a busy machine)
CHECKS_TIMEOUT = 20.0  # HAProxy's checks take an instance out (fall 2) or back (rise 2) in a few seconds
LOAD_CLIENTS = 10
LOAD_STEP = 100
SMALL_PATHS = ("/httptest/dir2/", "/httptest/readme.txt")  # each answered in one write
LOAD_PATHS = (*SMALL_PATHS, "/httptest/wikipedia_russia.html")
CLIENT = "127.0.0.5"
LOG_FORMAT = "$remote_addr $realip_remote_addr $request_uri"


class HAProxy:
    """HAProxy running the shipped config in the foreground, its addresses from the environment."""

    host = "127.0.0.1"

    def __init__(self, tmp_path, instances):
        self.port = free_port()
        self.socket_path = str(tmp_path / "haproxy.sock")
        env = dict(os.environ, HAPROXY_BIND=f"{self.host}:{self.port}", HAPROXY_STATS_SOCKET=self.socket_path,
                   **{f"OSERVER_WEB{i + 1}": f"127.0.0.1:{server.port}" for i, server in enumerate(instances)})
        self.log = open(tmp_path / "haproxy.log", "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", CONFIG], stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True)

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def command(self, line):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(EXIT_TIMEOUT)
            sock.connect(self.socket_path)
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self):
        """{server name: its `show stat` row} in the oserver backend, or {} until the API answers. A row's
        status is UP, DOWN...; check_status says what the last health check saw (L7STS: an HTTP status other
        than 200, whose check_code it gives; L4CON: connection refused)."""
        try:
            text = self.command("show stat")
        except OSError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row for row in rows if row["pxname"] == "oserver" and row["svname"].startswith("web")}

    def wait_state(self, name, state):
        """The server's row once HAProxy sees it in `state`."""
        return wait_for(lambda: (row := self.servers().get(name)) and row["status"].split()[0] == state and row,
                        f"HAProxy to see {name} {state}", CHECKS_TIMEOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class Cluster:
    """Three OServer instances behind HAProxy (-w 1 each: 3 masters, 3 workers and HAProxy on 2 cores)."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.root = make_docroot(tmp_path / "www")
        self.instances = [self.start(i, port=None) for i in range(INSTANCES)]
        self.haproxy = HAProxy(tmp_path, self.instances)
        for i in range(INSTANCES):
            self.haproxy.wait_state(self.name(i), "UP")

    @staticmethod
    def name(i):
        return f"web{i + 1}"

    def access_log(self, i):
        return str(self.tmp_path / f"access{i}.log")

    def start(self, i, port):
        server = Server(self.root, ["--proxy-protocol", "--real-ip-from", "127.0.0.1", "--real-ip-header",
                                    "proxy_protocol", "--shutdown-delay", str(SHUTDOWN_DELAY),
                                    "--access-log", self.access_log(i), "--access-log-format", LOG_FORMAT],
                        workers=1, port=port, log_path=str(self.tmp_path / f"server{i}.log"))
        return server.wait_ready(None)

    def restart(self, i):
        """A rolling restart's step: QUIT, HAProxy sees /readyz 503 and takes it out, it exits, starts again
        on its port, and HAProxy takes it back."""
        old = self.instances[i]
        old.signal(signal.SIGQUIT)
        taken_out = self.haproxy.wait_state(self.name(i), "DOWN")
        assert (taken_out["check_status"], taken_out["check_code"]) == ("L7STS", "503")  # readiness, not a refusal
        assert old.proc.wait(EXIT_TIMEOUT + SHUTDOWN_DELAY) == 0
        old.stop()
        self.instances[i] = self.start(i, old.port)
        self.haproxy.wait_state(self.name(i), "UP")

    def stop(self):
        self.haproxy.stop()
        for server in self.instances:
            server.stop()


@pytest.fixture
def cluster(tmp_path):
    if not os.access(HAPROXY, os.X_OK):
        pytest.fail("haproxy is not installed: `make test` installs it (tools/apt-install.sh haproxy)")
    cluster = Cluster(tmp_path)
    yield cluster
    cluster.stop()


def test_the_instances_log_the_clients_address_not_haproxys(cluster):
    """A client at 127.0.0.5 (sending a forged X-Forwarded-For, which changes nothing) is logged as itself,
    with HAProxy (127.0.0.1) as $realip_remote_addr, whichever instance served it."""
    paths = [f"/httptest/readme.txt?{uuid.uuid4().hex}" for _ in range(2 * INSTANCES)]
    for path in paths:
        assert fetch(cluster.haproxy, path, CLIENT, {"X-Forwarded-For": "203.0.113.66"})[0] == 200
    logs = [cluster.access_log(i) for i in range(INSTANCES)]
    for path in paths:
        log = wait_for(lambda: next((log for log in logs if path in read(log)), None), f"the log line of {path}")
        assert logged_addresses(log, path) == (CLIENT, "127.0.0.1")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_a_rolling_restart_under_load_loses_no_request(cluster, capsys):
    with Load(cluster.haproxy.url, LOAD_PATHS, LOAD_CLIENTS) as load:
        load.flows(LOAD_STEP)
        for i in range(INSTANCES):
            cluster.restart(i)
            load.flows(LOAD_STEP)
    with capsys.disabled():
        print(f"\nrolling restart of {INSTANCES} instances behind HAProxy: {load.summary()}")
    assert load.errors == [] and (load.failed, load.non_2xx) == (0, 0)


def test_an_instance_killed_under_load_is_taken_out_and_retries_keep_failures_at_zero(cluster, capsys):
    with Load(cluster.haproxy.url, SMALL_PATHS, LOAD_CLIENTS) as load:
        load.flows(LOAD_STEP)
        os.killpg(cluster.instances[0].pid, signal.SIGKILL)
        assert cluster.haproxy.wait_state("web1", "DOWN")["check_status"] == "L4CON"
        load.flows(LOAD_STEP)
    killed = cluster.haproxy.servers()["web1"]
    with capsys.disabled():
        print(f"\nan instance SIGKILLed behind HAProxy: {load.summary()}; HAProxy retried {killed['wretr']} and "
              f"redispatched {killed['wredis']} of its requests; errors: {load.errors[:5]}")
    assert (load.failed, load.non_2xx) == (0, 0)
    assert int(killed["wretr"]) + int(killed["wredis"]) > 0  # the kill did meet requests: the retries carried them


def test_the_shipped_config_is_valid_haproxy():
    result = subprocess.run([HAPROXY, "-c", "-f", CONFIG], capture_output=True, text=True, timeout=EXIT_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
