"""The sans-IO parser and response heads in oserver/http.py, fed valid bytes: what a good request parses to.

Strict rejection rules and fuzzing live in test_http_strict.py.
"""

import calendar
import re
import time

import pytest

from oserver import __version__
from oserver.http.parser import HttpError, find_head, parse_request_head, skip_empty_lines, wants_keep_alive
from oserver.http.response import DATE, ERROR_BODIES, error_fields, http_date, response_head

IMF_FIXDATE = re.compile(rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                         rb"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")


def parse(text):
    return parse_request_head(text.encode("latin-1"))


# ---------------------------------------------------------------- request line

@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"])
def test_method_is_parsed(method):
    assert parse(f"{method} / HTTP/1.1\r\nHost: x").method == method


def test_origin_form_target_is_split_into_path_and_query():
    request = parse("GET /dir2/page.html?a=1&b=2 HTTP/1.1\r\nHost: x")
    assert (request.target, request.path, request.query) == ("/dir2/page.html?a=1&b=2", "/dir2/page.html", "a=1&b=2")


def test_path_stays_percent_encoded():
    assert parse("GET /space%20in%20name.txt HTTP/1.1\r\nHost: x").path == "/space%20in%20name.txt"


def test_target_without_query_has_empty_query():
    assert parse("GET /a HTTP/1.1\r\nHost: x").query == ""


@pytest.mark.parametrize("target, path, query", [
    ("http://example.com/dir2/page.html", "/dir2/page.html", ""),
    ("http://example.com:8080/a?x=1", "/a", "x=1"),
    ("HTTPS://example.com/a", "/a", ""),
    ("http://example.com", "/", ""),
    ("http://example.com?x=1", "/", "x=1"),
])
def test_absolute_form_target_yields_its_path(target, path, query):
    request = parse(f"GET {target} HTTP/1.1\r\nHost: example.com")
    assert (request.path, request.query) == (path, query)


@pytest.mark.parametrize("line, version", [
    ("GET / HTTP/1.1", "HTTP/1.1"),
    ("GET / HTTP/1.0", "HTTP/1.0"),
    ("GET / HTTP/1.9", "HTTP/1.1"),  # RFC 9110 6.2: a higher minor version is answered as 1.1
])
def test_version_is_parsed(line, version):
    assert parse(line + "\r\nHost: x").version == version


def test_http10_needs_no_host():
    request = parse("GET /a HTTP/1.0")
    assert request.version == "HTTP/1.0"
    assert request.headers == {}


def test_request_line_is_kept_for_the_log():
    assert parse("GET /a?b HTTP/1.1\r\nHost: x").line == b"GET /a?b HTTP/1.1"


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/0.9", "HTTP/3.1"])
def test_other_major_versions_are_505(version):
    with pytest.raises(HttpError) as error:
        parse(f"GET / {version}\r\nHost: x")
    assert error.value.status == 505


def test_http11_without_host_is_400():
    with pytest.raises(HttpError) as error:
        parse("GET / HTTP/1.1\r\nAccept: */*")
    assert error.value.status == 400


# ---------------------------------------------------------------- header fields

def test_header_names_are_lower_cased():
    request = parse("GET / HTTP/1.1\r\nHOST: x\r\nUser-Agent: t\r\naCCePT: */*")
    assert request.headers == {"host": "x", "user-agent": "t", "accept": "*/*"}


def test_header_values_lose_surrounding_whitespace_only():
    assert parse("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: \t curl/8  x \t").headers["user-agent"] == "curl/8  x"


def test_empty_header_value_is_kept():
    assert parse("GET / HTTP/1.1\r\nHost: x\r\nX-Empty:").headers["x-empty"] == ""


def test_repeated_header_values_are_joined_with_commas():
    assert parse("GET / HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept: b").headers["accept"] == "a, b"


def test_bare_lf_line_endings_are_accepted():
    request = parse("GET /a HTTP/1.1\nHost: x\nAccept: */*")
    assert (request.path, request.headers) == ("/a", {"host": "x", "accept": "*/*"})


def test_content_length_is_the_body_length():
    assert parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 42").content_length == 42


def test_no_content_length_means_no_body():
    assert parse("GET / HTTP/1.1\r\nHost: x").content_length == 0


def test_host_with_port_is_accepted():
    assert parse("GET / HTTP/1.1\r\nHost: example.com:8080").headers["host"] == "example.com:8080"


# ---------------------------------------------------------------- keep-alive

@pytest.mark.parametrize("version, connection, keep_alive", [
    ("HTTP/1.1", None, True),
    ("HTTP/1.1", "close", False),
    ("HTTP/1.1", "Close", False),
    ("HTTP/1.1", "keep-alive", True),
    ("HTTP/1.1", "Upgrade, close", False),
    ("HTTP/1.0", None, False),
    ("HTTP/1.0", "keep-alive", True),
    ("HTTP/1.0", "Keep-Alive", True),
    ("HTTP/1.0", "keep-alive, close", False),
    ("HTTP/1.0", "close", False),
])
def test_keep_alive_rules(version, connection, keep_alive):
    headers = {"connection": connection} if connection is not None else {}
    assert wants_keep_alive(version, headers) is keep_alive


def test_parsed_request_carries_its_keep_alive_decision():
    assert parse("GET / HTTP/1.0\r\nConnection: keep-alive").keep_alive is True
    assert parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close").keep_alive is False


# ---------------------------------------------------------------- finding heads in a byte stream

def test_incomplete_head_is_not_found():
    assert find_head(b"GET / HTTP/1.1\r\nHost: x\r\n") is None


def test_complete_head_is_split_from_what_follows():
    assert find_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY") == (b"GET / HTTP/1.1\r\nHost: x", b"BODY")


def test_pipelined_heads_are_found_one_at_a_time():
    first = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    head, rest = find_head(first + second + b"GET /c")
    assert parse_request_head(head).path == "/a"
    head, rest = find_head(rest)
    assert parse_request_head(head).path == "/b"
    assert rest == b"GET /c"
    assert find_head(rest) is None


def test_head_ended_by_bare_lfs_is_found():
    assert find_head(b"GET / HTTP/1.0\n\nNEXT") == (b"GET / HTTP/1.0", b"NEXT")


def test_empty_lines_before_a_request_are_skipped():
    assert skip_empty_lines(b"\r\n\r\n\nGET / HTTP/1.1\r\n") == b"GET / HTTP/1.1\r\n"


# ---------------------------------------------------------------- response heads

def test_response_head_layout():
    head = response_head(200, b"Content-Type: text/html\r\nContent-Length: 5\r\n", True)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines[1] == f"Server: oserver/{__version__}".encode()
    assert lines[2].startswith(b"Date: ") and IMF_FIXDATE.fullmatch(lines[2][6:])
    assert lines[3:] == [b"Content-Type: text/html", b"Content-Length: 5", b"Connection: keep-alive", b"", b""]


def test_response_head_says_close_when_not_keeping_alive():
    assert response_head(404, b"", False).endswith(b"\r\nConnection: close\r\n\r\n")


@pytest.mark.parametrize("status, line", [(301, b"HTTP/1.1 301 Moved Permanently"), (400, b"HTTP/1.1 400 Bad Request"),
                                          (404, b"HTTP/1.1 404 Not Found"), (405, b"HTTP/1.1 405 Method Not Allowed"),
                                          (505, b"HTTP/1.1 505 HTTP Version Not Supported")])
def test_status_line(status, line):
    assert response_head(status, b"", True).split(b"\r\n")[0] == line


def test_http_date_is_imf_fixdate():
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"  # the example of RFC 9110 5.6.7


def test_date_field_is_now():
    line = DATE.current()
    assert line.startswith(b"Date: ") and line.endswith(b"\r\n")
    stamp = calendar.timegm(time.strptime(line[6:-2].decode(), "%a, %d %b %Y %H:%M:%S GMT"))
    assert abs(stamp - time.time()) <= 2


@pytest.mark.parametrize("status", [301, 400, 404, 405, 505])
def test_error_fields_describe_the_small_html_body(status):
    body = ERROR_BODIES[status]
    assert body.startswith(b"<html>") and str(status).encode() in body and len(body) < 1024
    assert error_fields(status) == b"Content-Type: text/html\r\nContent-Length: %d\r\n" % len(body)
