"""Strict parsing in oserver/http.py (RFC 9112): one test per rejection rule, what the RFC says to accept,
the limits, and property tests feeding arbitrary and mutated bytes to the parser.
"""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oserver.http.parser import (CHUNKED, HttpError, Request, check_head_limits, find_head, parse_request_head,
                                 skip_empty_lines)
from oserver.http.response import REASONS

MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 16384
LINEAR_TIME_BUDGET = 1.0  # seconds; a backtracking regex needs many times this on the inputs below


def refusal(head):
    """The HttpError a head is refused with (fails the test when the head is accepted)."""
    with pytest.raises(HttpError) as caught:
        parse_request_head(head)
    return caught.value


def assert_refused_with_400(head):
    assert refusal(head).status == 400


# ---------------------------------------------------------------- bare CR, NUL and other control characters

def test_bare_cr_in_request_line_is_refused():
    assert_refused_with_400(b"GET /a\rb HTTP/1.1\r\nHost: x")


def test_bare_cr_in_header_value_is_refused():
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2")


def test_bare_cr_ending_a_header_line_is_refused():
    assert_refused_with_400(b"GET / HTTP/1.1\r\nX-A: 1\r\rHost: x")


def test_bare_cr_ending_the_last_line_of_a_bare_lf_head_is_refused():
    assert_refused_with_400(b"GET / HTTP/1.1\nHost: x\r")


def test_bare_cr_before_the_request_line_is_not_an_empty_line():
    buf = b"\rGET / HTTP/1.1\r\nHost: x"
    assert skip_empty_lines(buf) == buf
    assert_refused_with_400(buf)


def test_nul_in_request_line_is_refused():
    assert_refused_with_400(b"GET /a\0b HTTP/1.1\r\nHost: x")


def test_nul_in_header_value_is_refused():
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b")


def test_nul_in_header_name_is_refused():
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: x\r\nX\0A: a")


@pytest.mark.parametrize("ctl", [b"\x01", b"\x08", b"\x0b", b"\x0c", b"\x1b", b"\x1f", b"\x7f"])
def test_control_character_in_header_value_is_refused(ctl):
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a" + ctl + b"b")


@pytest.mark.parametrize("ctl", [b"\x01", b"\t", b"\x7f"])
def test_control_character_in_request_target_is_refused(ctl):
    assert_refused_with_400(b"GET /a" + ctl + b"b HTTP/1.1\r\nHost: x")


# ---------------------------------------------------------------- request line shape and tokens

@pytest.mark.parametrize("line", [b"GET  / HTTP/1.1", b"GET /  HTTP/1.1", b"GET / HTTP/1.1 ", b" GET / HTTP/1.1",
                                  b"GET\t/ HTTP/1.1", b"GET /", b"GET / HTTP/1", b"GET / http/1.1", b"GET / HTTP/1.10"])
def test_request_line_not_exactly_method_sp_target_sp_version_is_refused(line):
    assert_refused_with_400(line + b"\r\nHost: x")


@pytest.mark.parametrize("method", [b"G(ET", b"GE\"T", b"G/T", b"G[T]", b"G,T", b"G\xe9T", b"G:T", b"G@T"])
def test_invalid_token_character_in_method_is_refused(method):
    assert_refused_with_400(method + b" / HTTP/1.1\r\nHost: x")


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0"])
def test_other_http_major_versions_are_refused_with_505(version):
    assert refusal(b"GET / " + version + b"\r\nHost: x").status == 505


# ---------------------------------------------------------------- field lines

@pytest.mark.parametrize("line", [b"Host : x", b"Host\t: x"])
def test_whitespace_between_field_name_and_colon_is_refused(line):
    assert_refused_with_400(b"GET / HTTP/1.1\r\n" + line)


@pytest.mark.parametrize("fold", [b" folded", b"\tfolded"])
def test_obs_fold_is_refused(fold):
    error = refusal(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n" + fold)
    assert (error.status, error.reason) == (400, "obsolete line folding")


@pytest.mark.parametrize("name", [b"X(A)", b"X A", b"X/A", b"X\"A", b"X[A]", b"X{A}", b"X\xe9A", b"X@A", b""])
def test_invalid_token_character_in_field_name_is_refused(name):
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: x\r\n" + name + b": v")


def test_field_line_without_colon_is_refused():
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: x\r\nNo-Colon")


def test_field_value_with_internal_spaces_is_kept_whole():
    request = parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: \t Mozilla/5.0  (X11;\tLinux) \t")
    assert request.headers["user-agent"] == "Mozilla/5.0  (X11;\tLinux)"


def test_field_value_with_obs_text_is_accepted():
    assert parse_request_head(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\xe9").headers["x-a"] == "caf\xe9"


def test_long_run_of_spaces_in_a_field_value_is_parsed_in_linear_time():
    value = b" " * (MAX_HEADER_BYTES // 2) + b"a" * (MAX_HEADER_BYTES // 2) + b"\x01"
    started = time.perf_counter()
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: x\r\nX-A:" + value)
    assert time.perf_counter() - started < LINEAR_TIME_BUDGET


# ---------------------------------------------------------------- Host

def test_missing_host_in_http11_is_refused():
    assert_refused_with_400(b"GET / HTTP/1.1\r\nAccept: */*")


def test_missing_host_in_http10_is_accepted():
    assert parse_request_head(b"GET / HTTP/1.0\r\nAccept: */*").version == "HTTP/1.0"


def test_duplicate_host_is_refused():
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: x\r\nHost: x")


def test_duplicate_host_is_refused_in_http10_too():
    assert_refused_with_400(b"GET / HTTP/1.0\r\nHost: x\r\nHost: y")


@pytest.mark.parametrize("host", [b"a b", b"a/b", b"user@a", b"a:80x", b"a\\b", b"a?b", b"a#b", b"[::1", b"a:1:2"])
def test_invalid_host_value_is_refused(host):
    assert_refused_with_400(b"GET / HTTP/1.1\r\nHost: " + host)


@pytest.mark.parametrize("host", [b"example.com", b"example.com:8080", b"127.0.0.1:80", b"[::1]:8080",
                                  b"xn--e1afmkfd.xn--p1ai", b""])
def test_valid_host_value_is_accepted(host):
    assert parse_request_head(b"GET / HTTP/1.1\r\nHost: " + host).headers["host"] == host.decode()


# ---------------------------------------------------------------- message body framing

@pytest.mark.parametrize("value", [b"+5", b"-1", b"0x10", b"1e3", b"1,1", b"1, 1", b"5 5", b"five", b"\xb9"])
def test_content_length_that_is_not_plain_decimal_is_refused(value):
    assert_refused_with_400(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + value)


def test_empty_content_length_is_refused():
    assert_refused_with_400(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:")


def test_conflicting_content_lengths_are_refused():
    assert_refused_with_400(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6")


def test_identical_duplicate_content_lengths_are_accepted():
    request = parse_request_head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5")
    assert request.content_length == 5


def test_absurd_content_length_is_refused():
    assert_refused_with_400(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 19)


@pytest.mark.parametrize("coding", [b"chunked", b"Chunked", b" chunked "])
def test_chunked_transfer_encoding_is_a_chunked_body(coding):
    request = parse_request_head(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding)
    assert request.content_length == CHUNKED


@pytest.mark.parametrize("coding", [b"", b"chunked, gzip", b"chunked, chunked", b"gzip,,chunked"])
def test_transfer_encoding_not_ending_in_one_chunked_is_refused(coding):
    assert_refused_with_400(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding)


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"identity", b"gzip"])
def test_transfer_coding_other_than_chunked_is_not_implemented(coding):
    assert refusal(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding).status == 501


def test_transfer_encoding_with_content_length_is_refused():
    assert_refused_with_400(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked")


def test_transfer_encoding_in_http10_is_refused():
    assert_refused_with_400(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked")


# ---------------------------------------------------------------- request targets

@pytest.mark.parametrize("target", [b"http://user@host/a", b"http://user:pw@host/a", b"http:///a", b"http://",
                                    b"http://ho\\st/a", b"http://host:8o/a"])
def test_absolute_form_without_a_valid_host_is_refused(target):
    assert_refused_with_400(b"GET " + target + b" HTTP/1.1\r\nHost: x")


@pytest.mark.parametrize("target", [b"a/b", b"../etc/passwd", b"*", b"example.com:80", b"ftp://host/a",
                                    b"javascript:alert(1)"])
def test_target_neither_origin_nor_absolute_form_is_refused_for_get(target):
    assert_refused_with_400(b"GET " + target + b" HTTP/1.1\r\nHost: x")


def test_absolute_form_with_dot_segments_keeps_them_for_the_path_mapper():
    request = parse_request_head(b"GET http://x/a/../../etc/passwd HTTP/1.1\r\nHost: x")
    assert request.path == "/a/../../etc/passwd"  # static.url_path_to_segments refuses the climb


# ---------------------------------------------------------------- what the RFC says to accept

def test_leading_crlf_and_lf_empty_lines_are_skipped():
    assert skip_empty_lines(b"\r\n\n\r\nGET / HTTP/1.1") == b"GET / HTTP/1.1"


def test_bare_lf_terminated_head_is_found_and_parsed():
    head, rest = find_head(b"GET / HTTP/1.1\nHost: x\nAccept: */*\n\nNEXT")
    assert rest == b"NEXT"
    assert parse_request_head(head).headers == {"host": "x", "accept": "*/*"}


def test_mixed_crlf_and_bare_lf_lines_are_accepted():
    request = parse_request_head(b"GET / HTTP/1.1\nHost: x\r\nAccept: */*\nX-A: 1")
    assert request.headers == {"host": "x", "accept": "*/*", "x-a": "1"}


# ---------------------------------------------------------------- limits

def test_request_line_over_the_limit_is_414():
    line = b"GET /" + b"a" * MAX_REQUEST_LINE + b" HTTP/1.1"
    assert refusal(line + b"\r\nHost: x").status == 414


def test_incomplete_request_line_over_the_limit_is_414():
    with pytest.raises(HttpError) as caught:
        check_head_limits(b"GET /" + b"a" * MAX_REQUEST_LINE, MAX_REQUEST_LINE, MAX_HEADER_BYTES)
    assert caught.value.status == 414


def test_incomplete_head_over_the_limit_is_431():
    buf = b"GET / HTTP/1.1\r\n" + b"X-A: aaaaaaaaaaaaaaaa\r\n" * (MAX_HEADER_BYTES // 20)
    with pytest.raises(HttpError) as caught:
        check_head_limits(buf, MAX_REQUEST_LINE, MAX_HEADER_BYTES)
    assert caught.value.status == 431


def test_incomplete_head_within_the_limits_is_left_to_grow():
    assert check_head_limits(b"GET / HTTP/1.1\r\nHost: x\r\n", MAX_REQUEST_LINE, MAX_HEADER_BYTES) is None


def test_more_than_max_header_fields_is_431():
    head = b"GET / HTTP/1.1\r\nHost: x" + b"\r\nX-A: 1" * 100
    with pytest.raises(HttpError) as caught:
        parse_request_head(head, max_header_fields=100)
    assert caught.value.status == 431


def test_max_header_fields_exactly_is_accepted():
    head = b"GET / HTTP/1.1\r\nHost: x" + b"\r\nX-A: 1" * 99
    assert parse_request_head(head, max_header_fields=100).headers["x-a"].count("1") == 99


# ---------------------------------------------------------------- properties: any bytes, never anything else

REQUEST_LINES = [b"GET / HTTP/1.1", b"HEAD /httptest/a.txt?x=1 HTTP/1.1", b"GET http://x/a HTTP/1.1",
                 b"GET / HTTP/1.0", b"OPTIONS * HTTP/1.1", b"CONNECT x:443 HTTP/1.1"]
FIELD_LINES = [b"Host: x", b"Host: [::1]:80", b"Content-Length: 0", b"Content-Length: 12", b"Connection: close",
               b"Transfer-Encoding: chunked", b"X-A:  a  b ", b" folded", b"Bad Name: v", b"X-A: \xff\x80",
               b"Range: bytes=0-1", b"Connection: keep-alive, close"]
NASTY = st.sampled_from([b"\r", b"\n", b"\r\n", b"\0", b" ", b"\t", b":", b"\x7f", b"\xff", b"%00", b"..", b"/",
                         b"\\", b"?", b"#", b"@", b"[", b"]", b"HTTP/1.1", b"Host: y"])


@st.composite
def mutated_heads(draw):
    """A plausible request head with random bytes inserted, deleted or replaced."""
    lines = [draw(st.sampled_from(REQUEST_LINES))] + draw(st.lists(st.sampled_from(FIELD_LINES), max_size=6))
    head = bytearray(draw(st.sampled_from([b"\r\n", b"\n"])).join(lines))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(head)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.one_of(NASTY, st.binary(min_size=1, max_size=4)))
        if action == "insert":
            head[position:position] = piece
        elif action == "delete":
            del head[position:position + len(piece)]
        else:
            head[position:position + len(piece)] = piece
    return bytes(head)


def parse_or_error(head):
    try:
        return parse_request_head(head)
    except HttpError as error:
        return error


def assert_request_or_known_error(result):
    if isinstance(result, HttpError):
        assert result.status in REASONS and result.status >= 400
    else:
        assert isinstance(result, Request)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_parse_to_a_request_or_an_http_error(data):
    assert_request_or_known_error(parse_or_error(data))


@given(mutated_heads())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_heads_parse_to_a_request_or_an_http_error(head):
    assert_request_or_known_error(parse_or_error(head))


@given(st.one_of(st.binary(max_size=512), mutated_heads().map(lambda head: head + b"\r\n\r\nrest")))
def test_find_head_returns_none_or_the_split_buffer(buf):
    found = find_head(buf)
    if found is not None:
        head, rest = found
        assert buf.startswith(head) and buf.endswith(rest)
        assert buf[len(head):len(buf) - len(rest)] in (b"\r\n\r\n", b"\n\n", b"\r\n\n", b"\n\r\n")


@given(st.binary(max_size=512))
def test_incomplete_head_check_only_ever_raises_http_error(buf):
    try:
        check_head_limits(buf, 64, 256)
    except HttpError as error:
        assert error.status in (414, 431)


@given(mutated_heads())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_accepted_fields_carry_no_line_breaks_or_nul(head):
    result = parse_or_error(head)
    if isinstance(result, Request):
        for name, value in result.headers.items():
            assert not set(name + value) & {"\r", "\n", "\0"}


@given(mutated_heads())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_an_accepted_head_is_found_whole_again_behind_crlfcrlf(head):
    """The connection caches parsed heads by the bytes before the first CRLFCRLF: that key must be exactly the
    head find_head would cut, so a cache hit can never answer a different request than a full parse."""
    if isinstance(parse_or_error(head), Request):
        assert skip_empty_lines(head) == head
        assert find_head(head + b"\r\n\r\nrest") == (head, b"rest")
