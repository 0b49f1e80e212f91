"""The servers under test: OServer, nginx, `python -m http.server` and gunicorn, each a process group we own.

Every server starts in its own session (so its workers share one process group), is ready when it answers
a real GET with 200, and is stopped by a signal to its leader, then a SIGKILL sweep of the group while the
leader is still unreaped (its pid, hence the group id, cannot have been reused), all bounded in time.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from bench import cputime

MOZILLA_INTERMEDIATE_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")  # OServer's default

HOST = "127.0.0.1"
START_TIMEOUT = 20.0  # seconds for a server to answer its first request
STOP_TIMEOUT = 10.0  # seconds for a server to exit after its stop signal
POLL_INTERVAL = 0.05
PROBE_TIMEOUT = 2.0
WORKERS = 2  # OServer, nginx and gunicorn alike
GUNICORN_THREADS = 4
NGINX_WORKER_CONNECTIONS = 4096
KEEPALIVE_TIMEOUT_S = 15  # OServer's default keepalive_timeout, given to nginx too
NGINX_KEEPALIVE_REQUESTS = 1000000  # nginx closes after 1000 by default; OServer has no per-connection cap
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
FIXTURES = os.path.join(REPO, "httptest")
WORK_DIR = os.path.join(BENCH_DIR, "work")  # everything a run writes (gitignored)
DOCROOT = os.path.join(WORK_DIR, "www")
OSERVER = "OServer"
BASELINE = "OServer (baseline)"  # another checkout, run beside the one under test (BENCH_OSERVER_BASELINE_DIR)
BASELINE_DIR_VARIABLE = "BENCH_OSERVER_BASELINE_DIR"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_docroot(path):
    """A fresh document root holding a copy of httptest/ (served as /httptest/...)."""
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(FIXTURES, os.path.join(path, "httptest"))
    return path


class Interrupted(Exception):
    """SIGTERM or SIGHUP arrived: unwind through every finally so the servers get stopped."""


def unwind_on_signals():
    """Turn SIGTERM and SIGHUP into Interrupted, and SIGINT into KeyboardInterrupt even when the shell that
    started us in the background had set it to be ignored."""
    def raise_interrupted(signum, frame):
        raise Interrupted(f"signal {signum}")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class ServerProcess:
    """One server: a command line, the port it listens on, its log file and how it is told to stop."""

    name: str
    argv: list
    port: int
    log_path: str
    env: dict | None = None
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen | None = None
    scheme: str = "http"  # "https": `port` is its TLS port

    def url(self, path):
        return f"{self.scheme}://{HOST}:{self.port}{path}"

    def cpu_seconds(self):
        """User + system CPU seconds used so far by the server's processes (its master and workers)."""
        return cputime.server_seconds(self.proc.pid)  # its own session, so its process group is its pid

    def start(self, probe_path):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=self.env, start_new_session=True)
        self.wait_ready(probe_path)
        return self

    def wait_ready(self, probe_path):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.proc.returncode}; see {self.log_path}")
            if answers_ok(self.url(probe_path)):
                return
            time.sleep(POLL_INTERVAL)
        raise RuntimeError(f"{self.name} did not answer within {START_TIMEOUT:.0f}s; see {self.log_path}")

    def stop(self):
        """Stop the leader, then sweep the whole group; never waits longer than STOP_TIMEOUT."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        signal_quietly(os.kill, proc.pid, self.stop_signal)
        leader_exited(proc.pid, STOP_TIMEOUT)
        signal_quietly(os.killpg, proc.pid, signal.SIGKILL)  # stragglers, or a leader that ignored us
        proc.wait()


class Fleet:
    """The servers this run started; leaving the `with` block stops each of them, whatever happened."""

    def __init__(self):
        self.running = []

    def start(self, server, probe_path):
        self.running.append(server)
        print(f"  starting {server.name} on port {server.port}", flush=True)
        return server.start(probe_path)

    def stop_all(self):
        while self.running:
            self.running.pop().stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        try:
            self.stop_all()
        finally:
            signal.signal(signal.SIGINT, previous)


def answers_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT, context=PROBE_CONTEXT) as reply:
            reply.read()
            return reply.status == 200
    except (OSError, urllib.error.URLError):
        return False


PROBE_CONTEXT = ssl._create_unverified_context()  # the probe asks whether it answers, not who it is


def leader_exited(pid, timeout):
    """Wait for pid to exit without reaping it (WNOWAIT keeps its pid, so its group id, reserved)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        time.sleep(POLL_INTERVAL)
    return False


def signal_quietly(send, pid, signum):
    try:
        send(pid, signum)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ the servers

def file_name(server_name):
    """A server's name as a file name: "OServer (baseline)" -> "oserver-baseline"."""
    return re.sub(r"\W+", "-", server_name.lower()).strip("-")


def oserver_httpd(checkout=None):
    """httpd.py of `checkout`, else of BENCH_OSERVER_DIR (another checkout, e.g. to compare two versions), else
    of this one. Only httpd.py is run, never an oserver module imported, so any layout of the package works."""
    path = os.path.abspath(os.path.join(checkout or os.environ.get("BENCH_OSERVER_DIR", REPO), "httpd.py"))
    if not os.path.isfile(path):
        raise RuntimeError(f"{path}: no such file; BENCH_OSERVER_DIR and {BASELINE_DIR_VARIABLE} must name "
                           "OServer checkouts")
    return path


def baseline_httpd():
    """httpd.py of the checkout in BENCH_OSERVER_BASELINE_DIR, benchmarked beside the OServer under test; or None."""
    checkout = os.environ.get(BASELINE_DIR_VARIABLE)
    return oserver_httpd(checkout) if checkout else None


def serves_tls(httpd):
    """Does that httpd.py have TLS listeners (a checkout older than issue 15 has none)?"""
    help_text = subprocess.run([oserver_python(), httpd, "--help"], capture_output=True, text=True).stdout
    return "--tls-port" in help_text


def describe_oserver(httpd):
    """Which httpd.py, at which commit, run by which python."""
    return f"{httpd}, {oserver_revision(httpd)}, on {oserver_python()}"


def oserver_revision(httpd=None):
    """The git commit of the OServer under test (or of `httpd`), marked when its code differs from that commit."""
    where = os.path.dirname(httpd or oserver_httpd())
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        changes = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "oserver", "httpd.py"],
                                 capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown revision"
    if commit.returncode != 0:
        return "not a git checkout"
    return f"commit {commit.stdout.strip()}" + (" with uncommitted changes" if changes.stdout.strip() else "")


def oserver_python():
    venv_python = os.path.join(REPO, ".venv", "bin", "python")
    chosen = os.environ.get("OSERVER_PYTHON") or (venv_python if os.path.exists(venv_python) else sys.executable)
    return os.path.abspath(chosen)


def oserver(root, workdir, access_log=None, workers=WORKERS, httpd=None, env=None, name=OSERVER, tls=None):
    """OServer; with `tls` (a bench.certs.Certificate) the process measured is its TLS port."""
    port = free_port()
    argv = [oserver_python(), httpd or oserver_httpd(), "-r", root, "-b", HOST, "-p", str(port), "-w", str(workers)]
    if access_log:
        argv += ["--access-log", access_log]
    if tls:
        port = free_port()
        argv += ["--tls-port", str(port), "--tls-certificate", tls.cert, "--tls-certificate-key", tls.key]
    return ServerProcess(name, argv, port, os.path.join(workdir, f"{file_name(name)}.log"), env,
                         scheme="https" if tls else "http")


def nginx(root, workdir, access_log=None, tls=None):
    """nginx; with `tls` (a bench.certs.Certificate) it listens with TLS only."""
    port = free_port()
    prefix = os.path.join(workdir, "nginx")
    os.makedirs(prefix, exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_config(root, port, prefix, access_log, tls))
    argv = [nginx_binary(), "-p", prefix, "-c", conf, "-e", os.path.join(prefix, "error.log")]
    return ServerProcess("nginx", argv, port, os.path.join(prefix, "stderr.log"), scheme="https" if tls else "http")


def nginx_binary():
    return shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_config(root, port, prefix, access_log=None, tls=None):
    """A minimal nginx config: same root, same worker count, sendfile, keep-alive, no access log by default, and
    no error log line for a missing file (OServer writes none for a 404 either). With `tls`: OServer's TLS
    defaults (versions, ciphers, session tickets, which are on by default in both)."""
    temp_paths = "".join(f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers read the root as OServer does
    return (f"daemon off;\n{user}worker_processes {WORKERS};\npid {prefix}/nginx.pid;\n"
            f"error_log {prefix}/error.log warn;\n"
            f"events {{\n    worker_connections {NGINX_WORKER_CONNECTIONS};\n}}\n"
            f"http {{\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
            f"    sendfile on;\n    keepalive_timeout {KEEPALIVE_TIMEOUT_S}s;\n"
            f"    keepalive_requests {NGINX_KEEPALIVE_REQUESTS};\n"
            f"    access_log {access_log or 'off'};\n    log_not_found off;\n{temp_paths}"
            f"    server {{\n        listen {HOST}:{port}{' ssl' if tls else ''};\n        root {root};\n"
            f"{nginx_tls(tls) if tls else ''}    }}\n}}\n")


def nginx_tls(tls):
    return (f"        ssl_certificate {tls.cert};\n        ssl_certificate_key {tls.key};\n"
            f"        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_ciphers {MOZILLA_INTERMEDIATE_CIPHERS};\n"
            "        ssl_prefer_server_ciphers on;\n")


def http_server(python, root, workdir):
    port = free_port()
    argv = [python, "-m", "http.server", str(port), "--bind", HOST, "--directory", root]
    return ServerProcess("http.server", argv, port, os.path.join(workdir, "http.server.log"))


def gunicorn(venv_bin, root, workdir):
    port = free_port()
    argv = [os.path.join(venv_bin, "gunicorn"), "--worker-class", "gthread", "--workers", str(WORKERS),
            "--threads", str(GUNICORN_THREADS), "--bind", f"{HOST}:{port}", "--chdir", BENCH_DIR,
            "wsgi_static:app"]
    env = dict(os.environ, BENCH_DOCROOT=root)
    # SIGINT is gunicorn's quick shutdown; SIGTERM would wait its graceful_timeout
    return ServerProcess("gunicorn", argv, port, os.path.join(workdir, "gunicorn.log"), env, signal.SIGINT)
