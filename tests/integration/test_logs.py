"""Access and error logs of a real server: lines parsed back, errors and aborts logged, hostile input escaped,
USR1 reopening, pid on every error line, startup lines, --verbose and --quiet.

Log files are written by the workers in batches (at least every worker tick), so every check polls the file
for the line it expects, with a deadline.
"""

import os
import re
import signal
import socket
import struct

import requests

from tests.integration.test_core import SOCKET_TIMEOUT, request_bytes, run_httpd, wait_until
from tests.integration.test_hardening import connect, read_until_closed, send_raw

README = "/httptest/readme.txt"
README_SIZE = 19
# The combined format plus $request_time, as the issue gives it.
COMBINED = re.compile(r'(?P<remote_addr>\S+) - - \[(?P<time_local>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                      r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<body_bytes_sent>\d+) '
                      r'"(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)" (?P<request_time>\d+\.\d{3})')
ERROR_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[(DEBUG|INFO|WARNING|ERROR)\] (\d+): .*")
BIG_FILE_SIZE = 64 << 20  # sparse: far more than the socket buffers of an aborting client hold
SMALL_RCVBUF = 4096
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, like a vanishing client


# ---------------------------------------------------------------- helpers

def read_lines(path):
    try:
        with open(path, encoding="ascii") as f:  # escaped lines are plain ASCII
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def logged(path, pattern):
    """The first parsed access log line whose request contains `pattern`, once it is written."""
    found = []

    def written():
        found[:] = [m for m in map(COMBINED.fullmatch, read_lines(path)) if m and pattern in m["request"]]
        return found

    wait_until(written, what=f"an access log line for {pattern!r} in {path}")
    return found[0]


def access_logging(start_server, tmp_path, *args, **options):
    path = str(tmp_path / "access.log")
    return start_server("--access-log", path, *args, **options), path


def get_close(server, path, *headers):
    """Send one request with Connection: close on a raw socket; (response bytes, closed by the server)."""
    return send_raw(server, request_bytes("GET", path, headers=("Host: localhost", "Connection: close", *headers)))


# ---------------------------------------------------------------- access log lines

def test_get_is_logged_in_combined_format_with_request_time(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path)
    requests.get(server.url + README, headers={"User-Agent": "logs-test/1", "Referer": "http://example/"})
    line = logged(path, README)
    assert line["remote_addr"] == "127.0.0.1"
    assert line["request"] == f"GET {README} HTTP/1.1"
    assert (line["status"], line["body_bytes_sent"]) == ("200", str(README_SIZE))
    assert (line["http_referer"], line["http_user_agent"]) == ("http://example/", "logs-test/1")
    assert float(line["request_time"]) < SOCKET_TIMEOUT


def test_head_is_logged_with_no_body_bytes(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path)
    requests.head(server.url + README)
    line = logged(path, f"HEAD {README}")
    assert (line["status"], line["body_bytes_sent"]) == ("200", "0")


def test_not_found_is_logged_with_its_error_page_bytes(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path)
    response = requests.get(server.url + "/httptest/missing.txt")
    line = logged(path, "/httptest/missing.txt")
    assert (line["status"], line["body_bytes_sent"]) == ("404", str(len(response.content)))


def test_malformed_request_is_logged_as_400_with_its_request_line(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path)
    send_raw(server, b"GARBAGE /x\r\nHost: localhost\r\n\r\n")
    line = logged(path, "GARBAGE")
    assert (line["request"], line["status"], line["http_user_agent"]) == ("GARBAGE /x", "400", "-")


def test_request_line_too_long_to_read_is_logged_as_414_with_a_dash(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path, "--max-request-line", "100")
    send_raw(server, b"GET /" + b"a" * 200)
    wait_until(lambda: any('"-" 414 ' in line for line in read_lines(path)), what="a 414 line")


def test_request_head_timeout_is_logged_as_408_with_what_was_read(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path, "--header-timeout", "1")
    response, closed = send_raw(server, b"GET /slow HTTP/1.1\r\nHost: loc")
    assert closed and response.startswith(b"HTTP/1.1 408 ")
    assert logged(path, "/slow")["status"] == "408"


def test_client_abort_is_logged_with_the_bytes_actually_sent(start_server, tmp_path, docroot):
    with open(os.path.join(docroot, "big.bin"), "wb") as f:
        f.truncate(BIG_FILE_SIZE)
    server, path = access_logging(start_server, tmp_path, root=docroot)
    sock = connect(server, rcvbuf=SMALL_RCVBUF)
    sock.sendall(request_bytes("GET", "/big.bin"))
    received = len(sock.recv(65536))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
    sock.close()
    line = logged(path, "/big.bin")
    assert line["status"] == "200"
    assert 0 < int(line["body_bytes_sent"]) < BIG_FILE_SIZE
    assert int(line["body_bytes_sent"]) >= received - 1024  # what the client read, less at most the head


def test_hostile_user_agent_is_escaped(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path)
    get_close(server, "/ua", 'User-Agent: x" 200 0 "-" "forged\\\t\xff')
    line = logged(path, "/ua")
    assert line["http_user_agent"] == "x\\x22 200 0 \\x22-\\x22 \\x22forged\\x5C\\x09\\xFF"


def test_hostile_request_line_cannot_forge_a_line(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path)
    send_raw(server, b'GET /a\x1b[2J\rforged" 200 1 HTTP/1.1\r\nHost: localhost\r\n\r\n')
    line = logged(path, "forged")
    assert line["request"] == "GET /a\\x1B[2J\\x0Dforged\\x22 200 1 HTTP/1.1"
    assert line["status"] == "400"
    assert [text for text in read_lines(path) if "forged" in text] == [line[0]]


def test_every_line_is_printable_ascii(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path)
    get_close(server, "/caf%C3%A9", "User-Agent: caf\xe9", "Referer: \xff\tx")
    assert logged(path, "/caf%C3%A9")["http_referer"] == "\\xFF\\x09x"
    with open(path, "rb") as f:
        assert re.fullmatch(rb"([\x20-\x7e]*\n)+", f.read())


def test_access_log_to_stdout(start_server):
    server = start_server("--access-log", "-")
    requests.get(server.url + README)
    wait_until(lambda: COMBINED.search(server.log_text()) is not None, what="an access log line on stdout")


def test_custom_format_shows_the_client_port(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path, "--access-log-format", "$remote_addr:$remote_port $status")
    with connect(server) as sock:
        port = sock.getsockname()[1]
        sock.sendall(request_bytes("GET", README, headers=("Host: localhost", "Connection: close")))
        read_until_closed(sock)
    wait_until(lambda: f"127.0.0.1:{port} 200" in read_lines(path), what="the custom line")


def test_unknown_format_field_is_refused_at_start(docroot):
    result = run_httpd("-r", docroot, "--access-log-format", "$status $bogus", "-t")
    assert result.returncode != 0 and "$bogus" in result.stderr


def test_usr1_reopens_the_access_log(start_server, tmp_path):
    server, path = access_logging(start_server, tmp_path)
    requests.get(server.url + "/httptest/dir2/")
    logged(path, "/httptest/dir2/")
    os.rename(path, path + ".1")
    server.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(path), what="the access log re-created")
    marks = []

    def new_line_in_new_file():
        marks.append(f"/mark{len(marks)}")
        requests.get(server.url + marks[-1])
        return any(mark in line for line in read_lines(path) for mark in marks)

    wait_until(new_line_in_new_file, what="a new line in the re-created access log")
    assert any("/httptest/dir2/" in line for line in read_lines(path + ".1"))


# ---------------------------------------------------------------- error log

def test_startup_lines_say_what_listens_where_with_how_many_workers_and_which_root(start_server, docroot):
    server = start_server(root=docroot, workers=3)
    assert (f"listening on 127.0.0.1:{server.port}, 3 workers, root {os.path.abspath(docroot)}"
            in server.log_text())


def test_every_error_log_line_carries_a_process_id(start_server):
    server = start_server("--verbose")
    requests.get(server.url + README)
    pids = {server.pid, *server.worker_pids()}
    wait_until(lambda: "accepted" in server.log_text(), what="a worker debug line")
    lines = server.log_text().splitlines()
    assert all(ERROR_LINE.fullmatch(line) for line in lines)
    assert {int(ERROR_LINE.fullmatch(line)[2]) for line in lines} <= pids


def test_worker_lines_carry_the_worker_pid(start_server):
    server = start_server("--verbose")
    with connect(server) as sock:
        port = sock.getsockname()[1]
    wait_until(lambda: f"127.0.0.1:{port}: accepted" in server.log_text(), what="the accept line")
    line = next(line for line in server.log_text().splitlines() if f"127.0.0.1:{port}: accepted" in line)
    assert int(ERROR_LINE.fullmatch(line)[2]) in server.worker_pids()


def test_verbose_logs_accept_and_close(start_server):
    server = start_server("--verbose")
    with connect(server) as sock:
        port = sock.getsockname()[1]
        sock.sendall(request_bytes("GET", README, headers=("Host: localhost", "Connection: close")))
        read_until_closed(sock)
    for event in ("accepted", "closed"):
        wait_until(lambda: f"127.0.0.1:{port}: {event}" in server.log_text(), what=f"the {event} line")


def test_verbose_logs_timeouts(start_server):
    server = start_server("--verbose", "--header-timeout", "1")
    with connect(server) as sock:
        port = sock.getsockname()[1]
        read_until_closed(sock)
    wait_until(lambda: f"127.0.0.1:{port}: header timeout" in server.log_text(), what="the timeout line")


def test_info_lines_by_default_but_no_debug_lines(start_server):
    server = start_server()
    send_raw(server, b"GARBAGE\r\n\r\n")
    text = server.log_text()
    assert "[INFO]" in text and "[DEBUG]" not in text


def test_quiet_leaves_only_warnings_and_errors(start_server):
    server = start_server("--quiet")
    send_raw(server, b"GARBAGE\r\n\r\n")  # logged at info level otherwise
    assert not re.search(r"\[(INFO|DEBUG)\]", server.log_text())


def test_error_log_to_a_file_is_reopened_on_usr1(start_server, tmp_path):
    path = str(tmp_path / "error.log")
    server = start_server("--error-log", path, "--verbose")
    wait_until(lambda: "listening on" in "".join(read_lines(path)), what="the startup line in the file")
    os.rename(path, path + ".1")
    server.signal(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(path), what="the error log re-created")

    def worker_line_in_new_file():
        requests.get(server.url + README)
        return any("accepted" in line for line in read_lines(path))

    wait_until(worker_line_in_new_file, what="a worker line in the re-created error log")
