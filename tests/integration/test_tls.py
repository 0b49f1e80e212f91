"""HTTPS (issue 15) with real clients over real sockets: requests, curl and `openssl s_client` against a server
whose certificates come from a test CA (trustme). SNI, ALPN, session resumption on another worker, ranges and
conditional requests, a 100 MB download byte-exact, 200 concurrent downloads all progressing, reload under TLS
load, certificate reload (and a bad one refused), stalled handshakes, garbage and plain HTTP on the TLS port,
the redirect to HTTPS, HSTS, the access log fields, the handshake counters, -t's certificate checks, and a key
readable by root only.
"""

import datetime
import hashlib
import os
import random
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests

from tests.certificates import TestCertificates
from tests.conftest import HTTPD, REPO, free_port
from tests.integration.test_master import (all_workers, assert_no_request_lost, launched, nobody,  # noqa: F401
                                           public_docroot, public_tmp, reload_under_load, run_httpd, wait_for,
                                           workers_replaced)

INDEX_PATH = "/httptest/dir2/"
INDEX_BODY = b"<html>Directory index file</html>\n"
SOCKET_TIMEOUT = 10.0
BIG_BYTES = 100 * 2**20
BLOCK = 2**20
DOWNLOADS = 200
DOWNLOAD_WINDOW = 2.0  # seconds
DOWNLOAD_WINDOWS = 2
SPARSE_BYTES = 16 * 2**30  # no download reaches its end while measured
CLIENT_RCVBUF = 256 * 1024
READ_PER_TURN = 256 * 1024  # what the download client reads from one connection before the next
STALLED = 300
STALL_HEADER_TIMEOUT = 3.0
NORMAL_REQUEST_LIMIT = 1.0  # seconds, beside the stalled handshakes (it takes a few milliseconds)
GARBAGE_CONNECTIONS = 50
MAX_RESUME_TRIES = 60
ACCESS_FORMAT = "$pid $scheme $ssl_protocol $ssl_cipher $ssl_session_reused $status \"$request\""
EXPIRING_DAYS = 5
MOUNTAPPS = os.path.join(REPO, "tests", "mountapps")
# Socket activation as systemd does it with FileDescriptorName=: fd 3 plain ("http"), fd 4 TLS ("https").
TLS_LAUNCHER = """
import os, socket, sys
sockets = [socket.create_server(("127.0.0.1", int(port))) for port in sys.argv[1:3]]  # fds 3 and 4
for fd, sock in zip((3, 4), sockets):
    os.dup2(sock.fileno(), fd)  # a no-op when it already is that fd
    os.set_inheritable(fd, True)
os.environ.update(LISTEN_FDS="2", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="http:https")
os.execv(sys.executable, [sys.executable, *sys.argv[3:]])
"""


# ---------------------------------------------------------------- certificates and servers

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return TestCertificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def start_tls(start_server, certs, tmp_path):
    """Factory: a ready server with a TLS port (the default certificate) beside its plain one; `tls_url`,
    `tls_port` and `access_log` (the access log file, format ACCESS_FORMAT) are set on it."""
    def start(*args, cert=None, key=None, **kwargs):
        port = free_port()
        access_log = str(tmp_path / f"access-{port}.log")
        server = start_server("--tls-port", str(port), "--tls-certificate", cert or certs.cert,
                              "--tls-certificate-key", key or certs.key, "--access-log", access_log,
                              "--access-log-format", ACCESS_FORMAT, *args, **kwargs)
        server.tls_port, server.tls_url, server.access_log = port, f"https://localhost:{port}", access_log
        server.access_skip = 0
        server.access_skip = len(wait_for_access_lines(server, 1))  # the readiness request's
        return server
    return start


@pytest.fixture
def tls_server(start_tls):
    return start_tls()


def access_lines(server):
    """The access log's lines the test caused (after the readiness request's), as the workers flushed them
    (every 0.25 s)."""
    try:
        with open(server.access_log) as f:
            return f.read().splitlines()[server.access_skip:]
    except FileNotFoundError:
        return []


def wait_for_access_lines(server, count):
    return wait_for(lambda: len(lines := access_lines(server)) >= count and lines, f"{count} access log lines")


def access_line(server, path):
    """The fields of the access log line of the request for `path` (the workers' lines interleave in any order)."""
    return wait_for(lambda: next((line.split() for line in access_lines(server) if f" {path} " in line), None),
                    f"the access log line of {path}")


def connect_tls(server, certs, server_name="localhost", session=None, alpn=None):
    """A TLS connection to the server's TLS port, verified against the test CA for `server_name`."""
    context = certs.client_context(alpn)
    raw = socket.create_connection(("127.0.0.1", server.tls_port), timeout=SOCKET_TIMEOUT)
    return context.wrap_socket(raw, server_hostname=server_name, session=session)


def ask(sock, path=INDEX_PATH, extra=""):
    """Send a GET and read the response until the server closes: (status line, head, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], head, body


def openssl(*args, stdin=b""):
    """`openssl s_client ARGS` (the text it prints)."""
    return subprocess.run(["openssl", "s_client", *args], input=stdin, capture_output=True,
                          timeout=SOCKET_TIMEOUT).stdout.decode("latin-1")


# ---------------------------------------------------------------- serving over TLS

def test_requests_gets_a_file_over_https_verified_by_the_test_ca(tls_server, certs):
    response = requests.get(tls_server.tls_url + INDEX_PATH, verify=certs.ca_path, timeout=SOCKET_TIMEOUT)
    assert (response.status_code, response.content) == (200, INDEX_BODY)


def test_curl_gets_a_file_over_https_with_cacert(tls_server, certs):
    result = subprocess.run(["curl", "-sS", "--cacert", certs.ca_path, tls_server.tls_url + INDEX_PATH],
                            capture_output=True, timeout=SOCKET_TIMEOUT)
    assert (result.returncode, result.stdout, result.stderr) == (0, INDEX_BODY, b"")


def test_the_plain_port_still_serves_beside_the_tls_port(tls_server):
    assert requests.get(tls_server.url + INDEX_PATH).content == INDEX_BODY


def test_keep_alive_serves_several_requests_on_one_tls_connection(tls_server, certs):
    with requests.Session() as session:  # verify per request: $REQUESTS_CA_BUNDLE overrides a session's own
        for _ in range(3):
            assert session.get(tls_server.tls_url + INDEX_PATH, verify=certs.ca_path).content == INDEX_BODY
    lines = wait_for_access_lines(tls_server, 3)
    assert [line.split()[4] for line in lines] == [".", ".", "."]  # one handshake: none resumed


def test_a_range_is_served_over_tls(tls_server, certs):
    response = requests.get(tls_server.tls_url + "/httptest/wikipedia_russia.html", headers={"Range": "bytes=10-19"},
                            verify=certs.ca_path)
    whole = requests.get(tls_server.url + "/httptest/wikipedia_russia.html").content
    assert (response.status_code, response.content) == (206, whole[10:20])
    assert response.headers["Content-Range"] == f"bytes 10-19/{len(whole)}"


def test_a_conditional_request_gets_304_over_tls(tls_server, certs):
    etag = requests.get(tls_server.tls_url + INDEX_PATH, verify=certs.ca_path).headers["ETag"]
    response = requests.get(tls_server.tls_url + INDEX_PATH, headers={"If-None-Match": etag}, verify=certs.ca_path)
    assert (response.status_code, response.content) == (304, b"")


def test_a_multipart_range_is_served_whole_over_tls(tls_server, certs):
    response = requests.get(tls_server.tls_url + "/httptest/wikipedia_russia.html",
                            headers={"Range": "bytes=0-4,100-104"}, verify=certs.ca_path)
    whole = requests.get(tls_server.url + "/httptest/wikipedia_russia.html").content
    assert response.status_code == 206
    assert whole[0:5] in response.content and whole[100:105] in response.content


@pytest.fixture
def big_file(docroot):
    """A 100 MB file whose every MiB differs (a block sent at the wrong offset shows): (URL path, sha256)."""
    digest = hashlib.sha256()
    seed = os.urandom(BLOCK)
    with open(os.path.join(docroot, "big.bin"), "wb") as f:
        for index in range(BIG_BYTES // BLOCK):
            block = index.to_bytes(8, "big") + seed[8:]
            digest.update(block)
            f.write(block)
    return "/big.bin", digest.hexdigest()


def test_a_100_mb_download_over_tls_is_byte_exact(start_tls, docroot, big_file, certs):
    server = start_tls(root=docroot)
    path, expected = big_file
    digest = hashlib.sha256()
    received = 0
    with requests.get(server.tls_url + path, stream=True, verify=certs.ca_path, timeout=SOCKET_TIMEOUT) as response:
        assert response.headers["Content-Length"] == str(BIG_BYTES)
        for chunk in response.iter_content(BLOCK):
            digest.update(chunk)
            received += len(chunk)
    assert (received, digest.hexdigest()) == (BIG_BYTES, expected)


class TlsDownloads:
    """`count` TLS connections each downloading a sparse file, read round-robin from one epoll loop (at most
    READ_PER_TURN from each per turn), so the client itself treats them alike."""

    def __init__(self, server, certs, path, count):
        self.conns = []
        context = certs.client_context()
        for _ in range(count):
            raw = socket.create_connection(("127.0.0.1", server.tls_port), timeout=SOCKET_TIMEOUT)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
            conn = context.wrap_socket(raw, server_hostname="localhost")
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            conn.setblocking(False)
            self.conns.append(conn)
        self.received = [0] * count
        self.closed = 0

    def read_window(self, seconds):
        """Bytes each connection received during `seconds`."""
        before = list(self.received)
        index = {conn.fileno(): i for i, conn in enumerate(self.conns)}
        with select.epoll() as poller:
            for fd in index:
                poller.register(fd, select.EPOLLIN)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for fd, _ in poller.poll(0.1):
                    self.drain(index[fd], poller)
        return [after - early for after, early in zip(self.received, before)]

    def drain(self, i, poller):
        conn, taken = self.conns[i], 0
        try:
            while taken < READ_PER_TURN:
                data = conn.recv(65536)
                if not data:
                    self.closed += 1
                    poller.unregister(conn.fileno())
                    return
                taken += len(data)
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        self.received[i] += taken

    def close(self):
        for conn in self.conns:
            conn.close()


def test_200_concurrent_tls_downloads_all_progress_in_every_window(start_tls, docroot, certs):
    with open(os.path.join(docroot, "sparse.bin"), "wb") as f:
        f.truncate(SPARSE_BYTES)
    server = start_tls(root=docroot)
    downloads = TlsDownloads(server, certs, "/sparse.bin", DOWNLOADS)
    try:
        windows = [downloads.read_window(DOWNLOAD_WINDOW) for _ in range(DOWNLOAD_WINDOWS)]
    finally:
        downloads.close()
    assert downloads.closed == 0
    assert [sum(1 for n in window if n == 0) for window in windows] == [0] * DOWNLOAD_WINDOWS
    assert all(rss_mb(pid) < 64 for pid in server.worker_pids())  # files pass in chunks, never whole


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


# ---------------------------------------------------------------- SNI, ALPN, resumption

@pytest.fixture
def sni_server(start_tls, certs, tmp_path):
    config = tmp_path / "sni.toml"
    config.write_text(f'[[tls_sni]]\nserver_names = ["other.test"]\ncertificate = "{certs.other_cert}"\n'
                      f'certificate_key = "{certs.other_key}"\n\n'
                      f'[[tls_sni]]\nserver_names = "*.wild.test"\ncertificate = "{certs.wild_cert}"\n'
                      f'certificate_key = "{certs.wild_key}"\n')
    return start_tls("-c", str(config))


@pytest.mark.parametrize("server_name, common_name", [("other.test", "other.test"), ("a.wild.test", "*.wild.test"),
                                                      ("localhost", "localhost"), ("unknown.test", "localhost")])
def test_sni_chooses_the_certificate_of_the_name_asked(sni_server, certs, server_name, common_name):
    context = ssl.create_default_context(cafile=certs.ca_path)
    context.check_hostname = False  # unknown.test gets the default certificate: see which one it is
    raw = socket.create_connection(("127.0.0.1", sni_server.tls_port), timeout=SOCKET_TIMEOUT)
    with context.wrap_socket(raw, server_hostname=server_name) as conn:
        subject = dict(item[0] for item in conn.getpeercert()["subject"])
    assert subject["commonName"] == common_name


def test_openssl_s_client_verifies_the_sni_certificate(sni_server, certs):
    output = openssl("-connect", f"127.0.0.1:{sni_server.tls_port}", "-servername", "other.test",
                     "-CAfile", certs.ca_path, "-verify_hostname", "other.test", "-verify_return_error")
    assert "Verify return code: 0 (ok)" in output
    assert re.search(r"subject=.*CN ?= ?other\.test", output)


def test_alpn_chooses_http_1_1(tls_server, certs):
    with connect_tls(tls_server, certs, alpn=["h2", "http/1.1"]) as conn:
        assert conn.selected_alpn_protocol() == "http/1.1"
    output = openssl("-connect", f"127.0.0.1:{tls_server.tls_port}", "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in output


def test_a_client_offering_only_h2_still_gets_http_1_1_without_alpn(tls_server, certs):
    with connect_tls(tls_server, certs, alpn=["h2"]) as conn:
        assert conn.selected_alpn_protocol() is None
        assert ask(conn)[0] == b"HTTP/1.1 200 OK"


def test_only_tls_1_2_and_1_3_are_offered(tls_server):
    for flag, accepted in (("-tls1_3", True), ("-tls1_2", True), ("-tls1_1", False), ("-tls1", False)):
        output = openssl("-connect", f"127.0.0.1:{tls_server.tls_port}", flag, "-cipher", "ALL:@SECLEVEL=0")
        assert ("Cipher is (NONE)" not in output and "New, TLS" in output) == accepted, (flag, output[-400:])


def resumed_pids(server, session_file, tries):
    """The worker pids that resumed `session_file`'s session, asked until two did (or `tries` ran out)."""
    pids = set()
    for attempt in range(tries):
        path = f"{INDEX_PATH}?resumed={attempt}"
        request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
        output = openssl("-connect", f"127.0.0.1:{server.tls_port}", "-sess_in", session_file, "-ign_eof",
                         stdin=request)
        assert "Reused, TLSv1.3" in output, output[-400:]
        pid, _, _, _, reused = access_line(server, path)[:5]
        assert reused == "r"
        pids.add(pid)
        if len(pids) == 2:
            break
    return pids


def test_a_tls_1_3_session_resumes_on_another_worker(tls_server, tmp_path):
    session_file = str(tmp_path / "session.pem")
    openssl("-connect", f"127.0.0.1:{tls_server.tls_port}", "-sess_out", session_file, "-ign_eof",
            stdin=b"GET /httptest/dir2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    first_pid = wait_for_access_lines(tls_server, 1)[0].split()[0]
    pids = resumed_pids(tls_server, session_file, MAX_RESUME_TRIES)
    assert len(pids) == 2 and first_pid in pids


def test_openssl_reconnect_resumes_tls_1_2_sessions(tls_server):
    output = openssl("-connect", f"127.0.0.1:{tls_server.tls_port}", "-tls1_2", "-reconnect")
    assert output.count("Reused, TLSv1.2") == 5  # s_client reconnects 5 times


def test_python_client_sessions_resume(tls_server, certs):
    with connect_tls(tls_server, certs) as conn:
        assert ask(conn)[0] == b"HTTP/1.1 200 OK"  # the ticket comes after the handshake: read it
        session = conn.session
    for _ in range(4):
        with connect_tls(tls_server, certs, session=session) as conn:
            assert conn.session_reused


def test_status_page_counts_full_resumed_and_failed_handshakes_across_workers(start_tls, certs):
    server = start_tls("--status-path", "/status")
    with connect_tls(server, certs) as conn:
        ask(conn)
        session = conn.session
    for _ in range(3):
        with connect_tls(server, certs, session=session) as conn:
            ask(conn)
    with socket.create_connection(("127.0.0.1", server.tls_port)) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05hello")  # a broken ClientHello
        raw.recv(100)

    def counted():
        handshakes = requests.get(server.url + "/status").json()["server"]["tls_handshakes"]
        return handshakes if handshakes == {"full": 1, "resumed": 3, "failed": 1} else None
    wait_for(counted, "the handshakes to be counted")
    prometheus = requests.get(server.url + "/status?format=prometheus").text
    assert 'oserver_tls_handshakes_total{result="resumed"} 3' in prometheus


# ---------------------------------------------------------------- what the client sees of TLS

def test_access_log_shows_scheme_protocol_cipher_and_resumption(tls_server, certs):
    with connect_tls(tls_server, certs) as conn:
        ask(conn, INDEX_PATH + "?full")
        session = conn.session
    with connect_tls(tls_server, certs, session=session) as conn:
        ask(conn, INDEX_PATH + "?resumed")
    requests.get(tls_server.url + INDEX_PATH + "?plain")
    full = access_line(tls_server, INDEX_PATH + "?full")[1:6]
    assert full[:2] == ["https", "TLSv1.3"] and full[2].startswith("TLS_") and full[3:] == [".", "200"]
    assert access_line(tls_server, INDEX_PATH + "?resumed")[4] == "r"
    assert access_line(tls_server, INDEX_PATH + "?plain")[1:6] == ["http", "-", "-", "-", "200"]


def test_hsts_is_sent_on_tls_responses_only(start_tls, certs):
    server = start_tls("--hsts-max-age", "31536000")
    tls = requests.get(server.tls_url + INDEX_PATH, verify=certs.ca_path)
    assert tls.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in requests.get(server.url + INDEX_PATH).headers


def test_no_hsts_by_default(tls_server, certs):
    assert "Strict-Transport-Security" not in requests.get(tls_server.tls_url + INDEX_PATH,
                                                           verify=certs.ca_path).headers


def test_redirect_to_https_sends_plain_requests_to_the_same_url_on_the_tls_port(start_tls, certs):
    server = start_tls("--redirect-to-https", "--status-path", "/status", ready_path="/healthz")
    response = requests.get(server.url + "/httptest/dir2/?a=1", allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{server.tls_port}/httptest/dir2/?a=1"
    followed = requests.get(server.url.replace("127.0.0.1", "localhost") + INDEX_PATH, verify=certs.ca_path)
    assert (followed.status_code, followed.url, followed.content) == (200, server.tls_url + INDEX_PATH, INDEX_BODY)


def test_redirect_to_https_keeps_the_status_page_and_health_path_plain(start_tls):
    server = start_tls("--redirect-to-https", "--status-path", "/status", ready_path="/healthz")
    assert requests.get(server.url + "/status", allow_redirects=False).status_code == 200
    assert requests.get(server.url + "/healthz", allow_redirects=False).text == "ok\n"


def test_wsgi_apps_see_https_as_their_url_scheme(start_tls, certs):
    server = start_tls("--python-path", MOUNTAPPS, "--mount", "/wsgi=wsgiapps:app")
    over_tls = requests.get(server.tls_url + "/wsgi/environ", verify=certs.ca_path).json()
    assert over_tls["wsgi.url_scheme"] == "https"
    assert requests.get(server.url + "/wsgi/environ").json()["wsgi.url_scheme"] == "http"


# ---------------------------------------------------------------- bad clients

def test_plain_http_on_the_tls_port_gets_400_and_is_closed(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=SOCKET_TIMEOUT) as sock:
        status, head, body = ask(sock)
    assert status == b"HTTP/1.1 400 Bad Request"
    assert b"Connection: close" in head
    assert wait_for_access_lines(tls_server, 1)[0].split()[1:] == ["http", "-", "-", "-", "400", '"GET',
                                                                    INDEX_PATH, 'HTTP/1.1"']


def test_a_tls_hello_on_the_plain_port_fails_the_handshake_promptly(tls_server, certs):
    raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=SOCKET_TIMEOUT)
    with pytest.raises(ssl.SSLError):
        certs.client_context().wrap_socket(raw, server_hostname="localhost")
    raw.close()
    assert requests.get(tls_server.url + INDEX_PATH).content == INDEX_BODY


def garbage(rng):
    """Random bytes: half of them start like a TLS record (so OpenSSL must reject them), half anything."""
    body = rng.randbytes(rng.randrange(1, 4096))
    return b"\x16\x03" + body if rng.random() < 0.5 else body


def test_garbage_on_the_tls_port_closes_the_connection_and_harms_nothing(tls_server, certs):
    workers = all_workers(tls_server)
    rng = random.Random(15)
    for _ in range(GARBAGE_CONNECTIONS):
        with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=SOCKET_TIMEOUT) as sock:
            try:
                sock.sendall(garbage(rng))
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):  # an alert, or a 400 when it did not look like TLS
                    pass
            except TimeoutError:
                raise  # the server kept the connection: a failure
            except OSError:
                pass  # closed by the server, perhaps with a reset before all of it was sent
    assert requests.get(tls_server.tls_url + INDEX_PATH, verify=certs.ca_path).content == INDEX_BODY
    assert tls_server.worker_pids() == workers
    assert "Traceback" not in tls_server.log_text()


def test_stalled_handshakes_do_not_delay_a_normal_client_and_time_out(start_tls, certs):
    server = start_tls("--header-timeout", str(STALL_HEADER_TIMEOUT), "--status-path", "/status")
    stalled = []
    try:
        for i in range(STALLED):
            sock = socket.create_connection(("127.0.0.1", server.tls_port), timeout=SOCKET_TIMEOUT)
            if i % 2:
                sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
            stalled.append(sock)
        opened = time.monotonic()
        with requests.Session() as session:
            took = []
            for _ in range(5):
                start = time.monotonic()
                response = session.get(server.tls_url + INDEX_PATH, timeout=SOCKET_TIMEOUT, verify=certs.ca_path)
                assert response.content == INDEX_BODY
                took.append(time.monotonic() - start)
        assert sorted(took)[2] < NORMAL_REQUEST_LIMIT
        for sock in stalled:  # each is closed once header_timeout has passed, without an answer
            assert sock.recv(100) == b""
        assert time.monotonic() - opened < STALL_HEADER_TIMEOUT + SOCKET_TIMEOUT
    finally:
        for sock in stalled:
            sock.close()
    failed = requests.get(server.url + "/status").json()["server"]["tls_handshakes"]["failed"]
    assert failed == STALLED


# ---------------------------------------------------------------- reloads and operations

def test_reload_under_tls_load_loses_no_request(start_tls, certs, capsys):
    server = start_tls()
    assert_no_request_lost(reload_under_load(server, server.tls_url, verify=certs.ca_path), capsys,
                           "reload under TLS load")


def served_serial(server, certs):
    context = certs.client_context()
    raw = socket.create_connection(("127.0.0.1", server.tls_port), timeout=SOCKET_TIMEOUT)
    with context.wrap_socket(raw, server_hostname="localhost") as conn:
        return conn.getpeercert()["serialNumber"]


def copy_to(source, target):
    with open(source, "rb") as f, open(target, "wb") as out:
        out.write(f.read())


def test_hup_reads_new_certificates_and_keeps_the_old_ones_when_the_new_do_not_load(start_tls, certs, tmp_path):
    cert, key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    copy_to(certs.cert, cert)
    copy_to(certs.key, key)
    server = start_tls(cert=cert, key=key)
    first = served_serial(server, certs)
    renewed_cert, renewed_key = certs.issue("renewed", "localhost")
    copy_to(renewed_cert, cert)
    copy_to(renewed_key, key)
    workers = all_workers(server)
    server.signal(signal.SIGHUP)
    workers = wait_for(lambda: workers_replaced(server, workers), "a new generation")
    renewed = served_serial(server, certs)
    assert renewed != first
    copy_to(certs.other_key, key)  # a key that does not match the certificate
    server.signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in server.log_text(), "the reload to be refused")
    assert "tls_certificate: cannot load" in server.log_text()
    assert server.worker_pids() == workers
    assert served_serial(server, certs) == renewed


def test_config_test_refuses_a_key_that_does_not_match_the_certificate(certs, docroot):
    result = run_httpd("-r", docroot, "--tls-port", "8443", "--tls-certificate", certs.cert,
                       "--tls-certificate-key", certs.other_key, "-t")
    assert result.returncode == 1
    assert result.stderr.startswith("oserver: error: tls_certificate: cannot load")
    assert "the key does not match the certificate" in result.stderr


def test_config_test_warns_of_a_certificate_expiring_within_14_days(certs, docroot):
    not_after = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=EXPIRING_DAYS, hours=1)
    cert, key = certs.issue("expiring", "localhost", not_after=not_after)
    result = run_httpd("-r", docroot, "--tls-port", "8443", "--tls-certificate", cert, "--tls-certificate-key", key,
                       "-t")
    assert result.returncode == 0
    assert f"oserver: warning: certificate {cert} expires on {not_after:%Y-%m-%d}" in result.stderr
    assert f"(in {EXPIRING_DAYS} days)" in result.stderr


def test_start_log_says_how_tls_sends_files(tls_server):
    with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
        kernel_tls = "tls" in f.read().split()
    expected = "kernel TLS (sendfile)" if kernel_tls else "no kernel TLS"
    assert re.search(rf"TLS TLSv1_2-TLSv1_3, certificate \S+; {re.escape(expected)}", tls_server.log_text())
    assert f"127.0.0.1:{tls_server.tls_port} (TLS)" in tls_server.log_text()


def test_a_key_readable_by_root_only_serves_unprivileged_workers(start_tls, certs, public_docroot, nobody, tmp_path):
    key = str(tmp_path / "root-only.key")
    copy_to(certs.key, key)
    os.chmod(key, 0o400)
    server = start_tls("--user", "nobody", key=key, root=public_docroot)
    assert requests.get(server.tls_url + INDEX_PATH, verify=certs.ca_path).content == INDEX_BODY


def test_a_socket_systemd_names_https_speaks_tls(certs, docroot, tmp_path):
    plain, tls = free_port(), free_port()
    argv = [sys.executable, "-c", TLS_LAUNCHER, str(plain), str(tls), HTTPD, "-r", docroot, "-w", "2",
            "--tls-certificate", certs.cert, "--tls-certificate-key", certs.key]
    with launched(argv, plain, tmp_path / "server.log") as server:
        response = requests.get(f"https://localhost:{tls}{INDEX_PATH}", verify=certs.ca_path, timeout=SOCKET_TIMEOUT)
        assert response.content == INDEX_BODY
        assert requests.get(server.url + INDEX_PATH).content == INDEX_BODY
        assert f"127.0.0.1:{tls} (TLS)" in server.log_text()
