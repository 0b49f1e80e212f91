"""The core server (issue 2) over real sockets: process model, HTTP/1.x framing and static files.

Every test talks to a real `httpd.py -w 2` started by the conftest fixtures; raw sockets carry the requests a
library would tidy up, and every socket has a timeout so a hung connection fails the test instead of hanging it.
"""

import email.utils
import importlib.util
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from oserver import __version__
from tests import conftest
from tests.conftest import FIXTURES, HTTPD, START_TIMEOUT, STOP_TIMEOUT, free_port, make_docroot

SOCKET_TIMEOUT = 10.0  # a response that takes longer than this counts as a hung connection
EXIT_TIMEOUT = 15.0  # processes must be gone within this after being told (generous: the machine is shared)
POLL_INTERVAL = 0.02
IMF_FIXDATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                         r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")
SECRET = "the secret outside the root\n"
GIB = 1 << 30
MAX_WORKER_RSS_KB = 64 * 1024
DOWNLOAD_CHUNK = 1 << 20
RSS_SAMPLE_EVERY = 16  # chunks between samples of the workers' VmRSS
TRICKLE_INTERVAL = 0.25  # seconds between the empty lines a slow client sends
needs_setproctitle = pytest.mark.skipif(importlib.util.find_spec("setproctitle") is None,
                                        reason="process titles need setproctitle (requirements.txt)")


# ---------------------------------------------------------------- helpers

class RawResponse:
    def __init__(self, version, status, headers, body):
        self.version = version
        self.status = status
        self.headers = headers  # [(lower-case name, value)] in the order received
        self.body = body

    def header(self, name):
        values = [value for key, value in self.headers if key == name]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


class RawConnection:
    """A client socket that sends exactly the bytes given and reads responses framed by Content-Length."""

    def __init__(self, server, timeout=SOCKET_TIMEOUT):
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def get(self, path, version="HTTP/1.1", method="GET", headers=("Host: localhost",)):
        self.send(request_bytes(method, path, version, headers))
        return self.read_response(method)

    def read_response(self, method="GET"):
        status_line = self.reader.readline()
        assert status_line, "the server closed the connection instead of answering"
        version, status, _reason = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = []
        while True:
            line = self.reader.readline()
            assert line.endswith(b"\r\n"), f"head cut short or not CRLF-ended: {line!r}"
            if line == b"\r\n":
                break
            name, colon, value = line.decode("latin-1").partition(":")
            assert colon and name == name.strip(), f"malformed header line {line!r}"
            headers.append((name.lower(), value.strip()))
        response = RawResponse(version, int(status), headers, b"")
        if method != "HEAD" and response.status != 304:
            response.body = self.reader.read(int(response.header("content-length")))
        return response

    def closed_by_server(self):
        """True when the server closed the connection (EOF or reset) with nothing more sent; False on timeout."""
        try:
            return self.reader.read(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def read_to_end(self):
        """Everything the server sends until it closes (a reset ends it too); a timeout raises."""
        data = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def close(self):
        self.reader.close()
        self.sock.close()


@pytest.fixture
def raw(server):
    conn = RawConnection(server)
    yield conn
    conn.close()


def get_once(server, path, version="HTTP/1.1"):
    """GET exactly `path` (no client-side normalisation) on a fresh connection."""
    conn = RawConnection(server)
    try:
        return conn.get(path, version)
    finally:
        conn.close()


def request_bytes(method, path, version="HTTP/1.1", headers=("Host: localhost",)):
    return "".join([f"{method} {path} {version}\r\n", *(h + "\r\n" for h in headers), "\r\n"]).encode("latin-1")


def fixture_bytes(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def wait_until(condition, timeout=EXIT_TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_INTERVAL)


def process_state(pid):
    """(state letter, process group) of a pid from /proc, or None when it no longer exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[2])


def is_running(pid):
    state = process_state(pid)
    return state is not None and state[0] not in "ZX"


def group_members(pgid):
    """Live (non-zombie) processes in a process group."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and is_running(p) and process_state(p)[1] == pgid]


def process_title(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def worker_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def two_workers(server):
    wait_until(lambda: len(server.worker_pids()) == 2, what="two workers")
    return server.worker_pids()


def run_httpd(*args):
    return subprocess.run([sys.executable, HTTPD, *args], capture_output=True, text=True, timeout=START_TIMEOUT)


# ---------------------------------------------------------------- process model

@needs_setproctitle
def test_master_title_shows_its_command_line(server):
    assert process_title(server.pid) == "oserver: master process " + " ".join(server.argv[1:])


@needs_setproctitle
def test_two_workers_run_with_the_worker_title(server):
    workers = two_workers(server)
    assert [process_title(pid) for pid in workers] == ["oserver: worker process"] * 2


def test_without_setproctitle_the_server_serves_and_says_so_once(start_server, tmp_path):
    hidden = tmp_path / "hide-setproctitle"
    hidden.mkdir()
    (hidden / "setproctitle.py").write_text('raise ImportError("hidden by the test")\n')
    server = start_server(env={**os.environ, "PYTHONPATH": str(hidden)})
    assert requests.get(server.url + "/httptest/dir2/", timeout=SOCKET_TIMEOUT).status_code == 200
    assert server.log_text().count("setproctitle is not installed") == 1


def test_sigterm_stops_master_and_workers_with_exit_0(server):
    workers = two_workers(server)
    server.signal(signal.SIGTERM)
    assert server.proc.wait(STOP_TIMEOUT) == 0
    wait_until(lambda: not any(is_running(pid) for pid in workers), what="workers to exit")
    assert group_members(server.pid) == []


def test_ctrl_c_stops_the_whole_process_group_with_exit_0(server):
    two_workers(server)
    os.killpg(server.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert server.proc.wait(STOP_TIMEOUT) == 0
    wait_until(lambda: group_members(server.pid) == [], what="the process group to empty")


def test_workers_exit_when_the_master_is_killed(server):
    workers = two_workers(server)
    server.signal(signal.SIGKILL)
    server.proc.wait(STOP_TIMEOUT)
    wait_until(lambda: not any(is_running(pid) for pid in workers), what="orphaned workers to exit")


@pytest.mark.parametrize("args, mentions", [
    (["--no-such-flag"], "--no-such-flag"),
    (["-w", "many"], "many"),
    (["-r", "/no/such/directory"], "/no/such/directory"),
], ids=["unknown-flag", "bad-value", "missing-root"])
def test_bad_invocation_exits_nonzero_with_one_line(args, mentions):
    result = run_httpd("-b", "127.0.0.1", "-p", str(free_port()), *args)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert mentions in lines[0]


def test_port_in_use_exits_nonzero_with_one_line_before_forking():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_httpd("-r", FIXTURES, "-b", "127.0.0.1", "-p", str(port), "-w", "2")
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # no "listening" line: it never got as far as forking
    assert str(port) in lines[0] and "in use" in lines[0]


def test_version_prints_the_version():
    result = run_httpd("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"oserver {__version__}"


def test_ipv6_loopback_bind_serves(start_server):
    server = start_server(host="::1")
    response = requests.get(server.url + "/httptest/dir2/page.html", timeout=SOCKET_TIMEOUT)
    assert response.status_code == 200
    assert response.content == fixture_bytes("dir2/page.html")


def test_workers_serve_while_the_master_is_stopped(server):
    server.signal(signal.SIGSTOP)  # the master is out of the request path
    try:
        for _ in range(4):
            response = requests.get(server.url + "/httptest/readme.txt", timeout=SOCKET_TIMEOUT)
            assert response.content == fixture_bytes("readme.txt")
    finally:
        server.signal(signal.SIGCONT)


def test_restart_on_the_same_port_succeeds_at_once(start_server, monkeypatch):
    first = start_server()
    for _ in range(3):  # HTTP/1.0: the server closes first, leaving its side of each connection in TIME_WAIT
        assert get_once(first, "/httptest/readme.txt", version="HTTP/1.0").status == 200
    first.stop()
    monkeypatch.setattr(conftest, "free_port", lambda host: first.port)
    second = start_server()  # SO_REUSEADDR: binding does not wait for TIME_WAIT to clear
    assert second.port == first.port
    assert get_once(second, "/httptest/readme.txt").status == 200


# ---------------------------------------------------------------- HTTP framing

def test_http10_request_is_served(raw):
    response = raw.get("/httptest/dir2/page.html", version="HTTP/1.0", headers=())
    assert response.status == 200
    assert response.body == fixture_bytes("dir2/page.html")


def test_http11_request_is_served(raw):
    response = raw.get("/httptest/dir2/page.html")
    assert (response.version, response.status) == ("HTTP/1.1", 200)
    assert response.body == fixture_bytes("dir2/page.html")


def test_absolute_form_target_is_served(raw):
    response = raw.get("http://localhost/httptest/dir2/page.html")
    assert response.status == 200
    assert response.body == fixture_bytes("dir2/page.html")


def test_header_names_are_case_insensitive(raw):
    response = raw.get("/httptest/dir2/page.html", headers=("hOST: localhost", "CONNECTION: close"))
    assert response.status == 200
    assert response.header("connection") == "close"
    assert raw.closed_by_server()


def test_http11_without_host_is_400(raw):
    assert raw.get("/httptest/dir2/page.html", headers=()).status == 400


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"])
def test_other_http_versions_get_505(raw, version):
    assert raw.get("/httptest/dir2/page.html", version=version).status == 505


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"])
def test_other_methods_get_405_with_allow(raw, method):
    response = raw.get("/httptest/dir2/page.html", method=method)
    assert response.status == 405
    assert response.header("allow") == "GET, HEAD"


def test_405_request_body_is_discarded_before_the_next_request(raw):
    body = b"GET /httptest/readme.txt HTTP/1.1\r\nHost: x\r\n\r\n"  # a body that looks like a request
    raw.send(request_bytes("POST", "/httptest/dir2/page.html", headers=("Host: x", f"Content-Length: {len(body)}"))
             + body + request_bytes("GET", "/httptest/dir2/index.html"))
    assert raw.read_response().status == 405
    following = raw.read_response()
    assert following.status == 200
    assert following.body == fixture_bytes("dir2/index.html")


def test_get_request_body_is_discarded_before_the_next_request(raw):
    raw.send(request_bytes("GET", "/httptest/dir2/page.html", headers=("Host: x", "Content-Length: 5")) + b"HELLO"
             + request_bytes("GET", "/httptest/dir2/index.html"))
    assert raw.read_response().body == fixture_bytes("dir2/page.html")
    assert raw.read_response().body == fixture_bytes("dir2/index.html")


@pytest.mark.parametrize("request_line", [b"hello", b"GET /httptest/dir2/page.html", b"GET  / HTTP/1.1",
                                          b"GET / HTTP/1.1 extra", b"GET / HTTX/1.1"])
def test_malformed_request_line_is_400_and_closes(raw, request_line):
    raw.send(request_line + b"\r\nHost: x\r\n\r\n")
    response = raw.read_response()
    assert response.status == 400
    assert response.header("connection") == "close"
    assert raw.closed_by_server()


def test_header_line_without_colon_is_400(raw):
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    assert raw.read_response().status == 400


@pytest.mark.parametrize("junk", [b"\n", b"\r\n", b"\x00\xff\xfe garbage \x01", b"\x16\x03\x01\x02\x00\x01\x00"],
                         ids=["lone-lf", "lone-crlf", "binary", "tls-hello"])
def test_junk_gets_400_or_a_clean_close_and_the_worker_lives(server, junk):
    workers = two_workers(server)
    conn = RawConnection(server)
    conn.send(junk)
    conn.sock.shutdown(socket.SHUT_WR)  # the client has nothing more to say
    answer = conn.read_to_end()
    conn.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 ")
    assert requests.get(server.url + "/httptest/readme.txt", timeout=SOCKET_TIMEOUT).status_code == 200
    assert server.worker_pids() == workers


def test_lone_newline_left_open_is_closed_by_the_header_timeout(start_server):
    server = start_server("--header-timeout", "1", "--keepalive-timeout", "1")
    conn = RawConnection(server)
    conn.send(b"\n")
    answer = conn.read_to_end()  # within the socket timeout, so never a hang
    conn.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")


def test_trickled_empty_lines_cannot_hold_a_connection_open(start_server):
    server = start_server("--header-timeout", "1", "--keepalive-timeout", "1")
    conn = RawConnection(server)
    deadline = time.monotonic() + SOCKET_TIMEOUT
    ended = False
    while not ended and time.monotonic() < deadline:
        try:
            conn.send(b"\r\n")  # each empty line is ignored (RFC 9112 2.2) but must not restart the clock
        except (BrokenPipeError, ConnectionResetError):
            ended = True
        else:
            ended = bool(select.select([conn.sock], [], [], TRICKLE_INTERVAL)[0])
    assert ended, "empty lines held the connection open"
    answer = conn.read_to_end()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 ")
    conn.close()


def test_keep_alive_connection_serves_several_requests(raw):
    for name in ("dir2/page.html", "readme.txt", "dir2/index.html", "wikipedia_russia.html"):
        response = raw.get("/httptest/" + name)
        assert response.status == 200
        assert response.header("connection") == "keep-alive"
        assert response.body == fixture_bytes(name)


def test_http11_connection_close_closes(raw):
    response = raw.get("/httptest/readme.txt", headers=("Host: x", "Connection: close"))
    assert response.header("connection") == "close"
    assert raw.closed_by_server()


def test_http10_closes_by_default(raw):
    response = raw.get("/httptest/readme.txt", version="HTTP/1.0", headers=())
    assert response.header("connection") == "close"
    assert raw.closed_by_server()


def test_http10_keep_alive_keeps_the_connection(raw):
    for _ in range(3):
        response = raw.get("/httptest/readme.txt", version="HTTP/1.0", headers=("Connection: keep-alive",))
        assert response.status == 200
        assert response.header("connection") == "keep-alive"


@pytest.mark.parametrize("method, path, version, status", [
    ("GET", "/httptest/readme.txt", "HTTP/1.1", 200),
    ("HEAD", "/httptest/readme.txt", "HTTP/1.1", 200),
    ("GET", "/httptest/readme.txt", "HTTP/1.0", 200),
    ("GET", "/httptest/dir2", "HTTP/1.1", 301),
    ("GET", "/httptest/missing.txt", "HTTP/1.1", 404),
    ("DELETE", "/httptest/readme.txt", "HTTP/1.1", 405),
    ("GET", "/httptest/readme.txt", "HTTP/2.0", 505),
    ("GET", "/httptest/readme.txt\x01", "HTTP/1.1", 400),
])
def test_connection_header_is_always_sent(raw, method, path, version, status):
    response = raw.get(path, version=version, method=method)
    assert response.status == status
    assert response.header("connection") in ("keep-alive", "close")


def test_pipelined_requests_are_answered_in_order(raw):
    names = ["dir2/page.html", "readme.txt", "missing.txt", "dir2/index.html", "wikipedia_russia.html",
             "dir1/dir12/dir123/deep.txt"]
    raw.send(b"".join(request_bytes("GET", "/httptest/" + name) for name in names))
    for name in names:
        response = raw.read_response()
        if name == "missing.txt":
            assert response.status == 404
        else:
            assert response.body == fixture_bytes(name)


def test_pipelined_head_and_get_are_answered_in_order(raw):
    raw.send(request_bytes("HEAD", "/httptest/wikipedia_russia.html") + request_bytes("GET", "/httptest/readme.txt"))
    head = raw.read_response("HEAD")
    assert head.header("content-length") == str(len(fixture_bytes("wikipedia_russia.html")))
    assert raw.read_response().body == fixture_bytes("readme.txt")


def test_ok_response_carries_the_standard_headers(raw):
    response = raw.get("/httptest/dir2/page.html")
    mtime = os.stat(os.path.join(FIXTURES, "dir2/page.html")).st_mtime  # the server's copy keeps it
    assert response.header("server") == f"oserver/{__version__}"
    assert response.header("content-type") == "text/html"
    assert response.header("content-length") == str(len(response.body))
    assert response.header("last-modified") == email.utils.formatdate(int(mtime), usegmt=True)


def test_date_header_is_a_current_imf_fixdate(raw):
    date = raw.get("/httptest/readme.txt").header("date")
    assert IMF_FIXDATE.fullmatch(date), date
    assert abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) < 60


@pytest.mark.parametrize("path", ["/httptest/dir2/page.html", "/httptest/wikipedia_russia.html",
                                  "/httptest/missing.txt", "/httptest/dir2"])
def test_head_returns_get_headers_without_body(raw, path):
    get = raw.get(path)
    head = raw.get(path, method="HEAD")
    assert head.status == get.status
    assert [h for h in head.headers if h[0] != "date"] == [h for h in get.headers if h[0] != "date"]
    # the connection still parses the next response, so HEAD really sent no body bytes
    assert raw.get("/httptest/readme.txt").body == fixture_bytes("readme.txt")


@pytest.mark.parametrize("path, status", [("/httptest/missing.txt", 404), ("/httptest/dir2", 301)])
def test_error_body_is_small_html(raw, path, status):
    response = raw.get(path)
    assert response.status == status
    assert response.header("content-type") == "text/html"
    assert response.body.startswith(b"<html>") and b"</html>" in response.body
    assert str(status).encode() in response.body
    assert len(response.body) < 1024


def test_405_body_is_small_html(raw):
    response = raw.get("/httptest/readme.txt", method="PUT")
    assert response.header("content-type") == "text/html"
    assert response.body.startswith(b"<html>") and len(response.body) < 1024


# ---------------------------------------------------------------- static files

def test_query_string_is_dropped(server):
    response = requests.get(server.url + "/httptest/dir2/page.html?x=1&y=../../etc", timeout=SOCKET_TIMEOUT)
    assert response.content == fixture_bytes("dir2/page.html")


def test_directory_with_slash_serves_its_index(server):
    response = requests.get(server.url + "/httptest/dir2/", timeout=SOCKET_TIMEOUT)
    assert response.status_code == 200
    assert response.text == "<html>Directory index file</html>\n"
    assert response.headers["Content-Type"] == "text/html"


def test_directory_without_index_is_404(server):
    assert requests.get(server.url + "/httptest/dir1/", timeout=SOCKET_TIMEOUT).status_code == 404


def test_trailing_slash_after_a_file_is_404(server):
    assert requests.get(server.url + "/httptest/dir2/page.html/", timeout=SOCKET_TIMEOUT).status_code == 404


def test_deep_file_is_served(server):
    response = requests.get(server.url + "/httptest/dir1/dir12/dir123/deep.txt", timeout=SOCKET_TIMEOUT)
    assert response.text == "bingo, you found it\n"


def test_directory_without_slash_redirects_to_slash(raw):
    response = raw.get("/httptest/dir2")
    assert response.status == 301
    assert response.header("location") == "/httptest/dir2/"


def test_directory_redirect_keeps_the_query(raw):
    response = raw.get("/httptest/dir2?lang=en&x=1")
    assert response.status == 301
    assert response.header("location") == "/httptest/dir2/?lang=en&x=1"


def test_redirect_is_followed_to_the_index(server):
    response = requests.get(server.url + "/httptest/dir2", timeout=SOCKET_TIMEOUT)
    assert response.url == server.url + "/httptest/dir2/"
    assert response.text == "<html>Directory index file</html>\n"


@pytest.mark.parametrize("path, name", [("/httptest/space%20in%20name.txt", "space in name.txt"),
                                        ("/httptest/text..txt", "text..txt")])
def test_unusual_file_names_are_served(server, path, name):
    response = requests.get(server.url + path, timeout=SOCKET_TIMEOUT)
    assert response.status_code == 200
    assert response.content == fixture_bytes(name)


@pytest.fixture
def jailed(start_server, tmp_path):
    """A server whose root has a secret file beside it, a symlink to that file and one to its directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    root = make_docroot(tmp_path / "jail")
    os.symlink(outside / "secret.txt", os.path.join(root, "httptest", "link.txt"))
    os.symlink(outside, os.path.join(root, "httptest", "linkdir"))
    return start_server(root=root)


@pytest.mark.parametrize("path", [
    "/../outside/secret.txt",
    "/httptest/../../outside/secret.txt",
    "/httptest/dir2/../../../outside/secret.txt",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/httptest/%2e%2e/%2e%2e/outside/secret.txt",
    "/..%2foutside%2fsecret.txt",
    "/httptest%2f..%2f..%2foutside%2fsecret.txt",
    "/%2e%2e%2foutside%2fsecret.txt",
    "/httptest/..%5c..%5coutside%5csecret.txt",
    "/../outside/secret.txt%00.html",
    "/httptest/dir2/page.html%00../../../outside/secret.txt",
    "http://localhost/../outside/secret.txt",
    "/httptest/link.txt",
    "/httptest/linkdir/secret.txt",
    "/httptest/linkdir/",
])
def test_traversal_never_serves_a_file_outside_the_root(jailed, path):
    response = get_once(jailed, path)
    assert response.status in (400, 403, 404)
    assert SECRET.encode() not in response.body


def test_nul_byte_in_path_is_refused(raw):
    response = raw.get("/httptest/dir2/page.html%00.txt")
    assert response.status in (400, 403, 404)
    assert response.body != fixture_bytes("dir2/page.html")


@pytest.fixture
def with_dotfiles(start_server, tmp_path):
    root = make_docroot(tmp_path / "dots")
    for directory in (root, os.path.join(root, "httptest")):
        os.makedirs(os.path.join(directory, ".git"))
        with open(os.path.join(directory, ".git", "config"), "w") as f:
            f.write("[core] secret dotfile\n")
        with open(os.path.join(directory, ".env"), "w") as f:
            f.write("PASSWORD=secret dotfile\n")
    return start_server(root=root)


@pytest.mark.parametrize("path", ["/.env", "/.git/config", "/.git/", "/.git", "/httptest/.env",
                                  "/httptest/.git/config", "/%2eenv", "/httptest/dir2/../.env",
                                  "/httptest/.git/../.env"])
def test_dot_files_are_not_served(with_dotfiles, path):
    response = get_once(with_dotfiles, path)
    assert response.status == 404
    assert b"secret dotfile" not in response.body


@pytest.mark.parametrize("name, content_type", [
    ("dir2/page.html", "text/html"),
    ("wikipedia_russia.html", "text/html"),
    ("splash.css", "text/css"),
    ("jquery-1.9.1.js", "application/javascript"),
    ("pic.jpg", "image/jpeg"),
    ("pic.jpeg", "image/jpeg"),
    ("pic_ext.png", "image/png"),
    ("pic.gif", "image/gif"),
    ("movie.swf", "application/x-shockwave-flash"),
    ("readme.txt", "text/plain"),
    ("data.json", "application/json"),
    ("logo.svg", "image/svg+xml"),
    ("doc.pdf", "application/pdf"),
    ("clip.mp4", "video/mp4"),
    ("unknown.xyzzy", "application/octet-stream"),
])
def test_content_type_follows_the_extension(server, name, content_type):
    response = requests.get(server.url + "/httptest/" + name, timeout=SOCKET_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.content == fixture_bytes(name)


def test_large_page_is_byte_exact(server):
    response = requests.get(server.url + "/httptest/wikipedia_russia.html", timeout=SOCKET_TIMEOUT)
    expected = fixture_bytes("wikipedia_russia.html")
    assert len(expected) > 900_000
    assert response.headers["Content-Length"] == str(len(expected))
    assert response.content == expected


@pytest.fixture
def big_file_server(start_server, tmp_path):
    root = make_docroot(tmp_path / "big")
    with open(os.path.join(root, "sparse.bin"), "wb") as f:
        f.truncate(GIB)
    return start_server(root=root)


def test_1gib_sparse_file_downloads_whole_with_bounded_worker_memory(big_file_server):
    workers = two_workers(big_file_server)
    zeros = bytes(DOWNLOAD_CHUNK)
    received = 0
    peak_rss = 0
    with requests.get(big_file_server.url + "/sparse.bin", stream=True, timeout=SOCKET_TIMEOUT) as response:
        assert response.headers["Content-Length"] == str(GIB)
        for i, chunk in enumerate(response.iter_content(DOWNLOAD_CHUNK)):
            assert chunk == zeros[:len(chunk)]
            received += len(chunk)
            if i % RSS_SAMPLE_EVERY == 0:
                peak_rss = max(peak_rss, *(worker_rss_kb(pid) for pid in workers))
    assert received == GIB
    assert 0 < peak_rss < MAX_WORKER_RSS_KB


def test_file_over_4gib_announces_its_exact_length(start_server, tmp_path):
    size = 5 * GIB + 7
    root = make_docroot(tmp_path / "huge")
    with open(os.path.join(root, "huge.bin"), "wb") as f:
        f.truncate(size)
    server = start_server(root=root)
    with requests.get(server.url + "/huge.bin", stream=True, timeout=SOCKET_TIMEOUT) as response:
        assert response.headers["Content-Length"] == str(size)
        first = next(response.iter_content(DOWNLOAD_CHUNK))
        assert first and first == bytes(len(first))


def test_client_leaving_mid_download_leaves_the_worker_serving(big_file_server):
    workers = two_workers(big_file_server)
    for _ in range(6):  # enough departures that both workers very likely see some
        conn = RawConnection(big_file_server)
        conn.send(request_bytes("GET", "/sparse.bin"))
        got = 0
        while got < DOWNLOAD_CHUNK:
            data = conn.sock.recv(65536)
            assert data, "the server closed the download early"
            got += len(data)
        conn.close()  # unread data is waiting: the kernel resets the connection
    for _ in range(10):
        response = requests.get(big_file_server.url + "/httptest/readme.txt", timeout=SOCKET_TIMEOUT)
        assert response.content == fixture_bytes("readme.txt")
    assert big_file_server.worker_pids() == workers
