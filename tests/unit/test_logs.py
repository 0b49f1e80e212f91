"""Access log pieces as pure code: escaping, the compiled format, the clock, buffering and reopening."""

import logging
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oserver.http.output import Response
from oserver.http.parser import parse_request_head
from oserver.logs import (AccessLog, reopen_error_log, setup_error_log, LogClock, check_access_format, compile_access_format, escape,
                          rejected_request_line, seconds_text)

COMBINED = ('$remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
            '"$http_user_agent" $request_time')
SAFE_LINE = re.compile(r'[\x20-\x7e]*')


def peer(address=("192.0.2.7", 40123), now=100.0):
    """The first two arguments of an access log call: the client's address and the loop's time."""
    return address, now


def request(head):
    return parse_request_head(head)


def exchange(head=b"GET /a.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: ua/1", status=200, started=100.0):
    return Response(request(head), status, 150, started, None, b"", [])


def line_of(fmt, conn, ex, body_bytes=10, aborted=False):
    buffer = []
    compile_access_format(fmt, buffer, flush=None)(*conn, ex, body_bytes, aborted)
    assert len(buffer) == 1
    return buffer[0]


def test_escape_keeps_printable_ascii():
    assert escape("Mozilla/5.0 (X11; Linux) ~!@#$%^&*()") == "Mozilla/5.0 (X11; Linux) ~!@#$%^&*()"


def test_escape_writes_quotes_backslashes_and_controls_as_hex():
    assert escape('a"b\\c\nd\x1be\x7f') == "a\\x22b\\x5Cc\\x0Ad\\x1Be\\x7F"


def test_escape_reads_bytes_as_latin1_one_escape_per_byte():
    assert escape(b"caf\xc3\xa9") == "caf\\xC3\\xA9"


def test_escape_writes_characters_beyond_latin1_as_their_utf8_bytes():
    assert escape("\u20ac") == "\\xE2\\x82\\xAC"


@given(st.text())
def test_escaped_text_is_one_line_of_printable_ascii_without_quotes(text):
    escaped = escape(text)
    assert SAFE_LINE.fullmatch(escaped)
    assert '"' not in escaped


def test_rejected_request_line_is_the_first_line_received():
    assert rejected_request_line(b"\r\nBREW /pot HTCPCP/1.0\r\nHost: x\r\n") == "BREW /pot HTCPCP/1.0"


def test_rejected_request_line_is_a_dash_while_the_line_is_incomplete():
    assert rejected_request_line(b"GET /still-coming") == "-"


def test_rejected_request_line_is_a_dash_when_nothing_was_received():
    assert rejected_request_line(b"") == "-"


def test_rejected_request_line_is_a_dash_when_too_long_to_log():
    assert rejected_request_line(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n") == "-"


def test_rejected_request_line_is_escaped():
    assert rejected_request_line(b'GET /"\x1b[2J HTTP/1.1\r\n') == "GET /\\x22\\x1B[2J HTTP/1.1"


def test_seconds_text_truncates_to_milliseconds():
    assert seconds_text(0.0049) == "0.004"


def test_seconds_text_beyond_a_second():
    assert seconds_text(12.3456) == "12.345"


def test_combined_format_line():
    line = line_of(COMBINED, peer(now=100.25), exchange(started=100.0), body_bytes=42)
    assert re.fullmatch(r'192\.0\.2\.7 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /a\.txt HTTP/1\.1" '
                        r'200 42 "-" "ua/1" 0\.250\n', line)


def test_request_time_is_zero_when_sent_in_the_loop_turn_that_queued_it():
    assert line_of("$request_time", peer(now=5.0), exchange(started=5.0)) == "0.000\n"


def test_remote_port_field():
    assert line_of("$remote_addr:$remote_port", peer(("::1", 5555, 0, 0)), exchange()) == "::1:5555\n"


def test_realip_remote_addr_is_the_peer_a_client_came_through():
    buffer = []
    compile_access_format("$remote_addr $realip_remote_addr", buffer, flush=None)(
        ("203.0.113.5", 0), 100.0, exchange(), 10, False, ("10.0.0.1", 50000))
    assert buffer == ["203.0.113.5 10.0.0.1\n"]


def test_realip_remote_addr_is_the_client_when_it_came_directly():
    assert line_of("$remote_addr $realip_remote_addr", peer(), exchange()) == "192.0.2.7 192.0.2.7\n"


def test_unix_socket_client_is_named_unix():
    assert line_of("$remote_addr $remote_port", peer(""), exchange()) == "unix -\n"


def test_any_request_header_is_a_field():
    ex = exchange(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9")
    assert line_of("$http_x_forwarded_for $http_host", peer(), ex) == "203.0.113.9 x\n"


def test_host_is_the_host_name_the_request_names():
    ex = exchange(b"GET / HTTP/1.1\r\nHost: Docs.Example.TEST:8080")
    assert line_of("$host", peer(), ex) == "docs.example.test\n"


def test_host_is_a_dash_without_one():
    assert line_of("$host", peer(), exchange(b"GET / HTTP/1.0")) == "-\n"


def test_site_is_named_by_the_function_given():
    buffer = []
    access = compile_access_format("$site $host", buffer, None, site_name=lambda request: "docs.example.test")
    access(*peer(), exchange(b"GET / HTTP/1.1\r\nHost: a.docs.example.test"), 0, False)
    assert buffer == ["docs.example.test a.docs.example.test\n"]


def test_site_is_default_without_sites_and_a_dash_for_a_rejected_request():
    assert line_of("$site", peer(), exchange()) == "default\n"
    assert line_of("$site $host", peer(), Response(None, 400, 150, 100.0, b"GARBAGE\r\n", b"", [])) == "- -\n"


def test_missing_header_is_a_dash():
    assert line_of('"$http_referer"', peer(), exchange()) == '"-"\n'


def test_bytes_sent_counts_the_head_too():
    assert line_of("$body_bytes_sent $bytes_sent", peer(), exchange(), body_bytes=10) == "10 160\n"


def test_request_completion_is_empty_for_an_aborted_reply():
    assert line_of("[$request_completion]", peer(), exchange(), aborted=True) == "[]\n"


def test_request_completion_is_ok_for_a_finished_reply():
    assert line_of("[$request_completion]", peer(), exchange()) == "[OK]\n"


def test_rejected_request_logs_what_it_began_with():
    ex = Response(None, 400, 150, 100.0, b"GARBAGE\r\n\r\n", b"", [])
    assert line_of('"$request" $status "$http_user_agent" $request_method', peer(), ex) == \
        '"GARBAGE" 400 "-" -\n'


def test_format_text_is_kept_literally():
    fmt = "{x} 'q' \"d\" \\ 100% $status"
    assert line_of(fmt, peer(), exchange()) == "{x} 'q' \"d\" \\ 100% 200\n"


def test_same_request_logged_twice_gives_the_same_text():
    buffer = []
    access = compile_access_format('"$request" "$http_user_agent"', buffer, flush=None)
    ex = exchange()
    access(*peer(), ex, 1, False)
    access(*peer(), ex, 1, False)
    assert buffer == ['"GET /a.txt HTTP/1.1" "ua/1"\n'] * 2


def test_unknown_field_is_refused():
    with pytest.raises(ValueError, match=r"\$nope"):
        check_access_format("$status $nope")


def test_unknown_field_cannot_be_compiled():
    with pytest.raises(ValueError, match=r"\$nope"):
        compile_access_format("$nope", [], flush=None)


def test_clock_formats_nginx_local_time():
    clock = LogClock()
    clock.update(0.0)
    assert re.fullmatch(r"\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", clock.local)


def test_clock_expires_within_a_second():
    clock = LogClock()
    clock.update(50.0)
    assert 50.0 < clock.expires <= 51.0


def test_access_log_writes_lines_on_flush(tmp_path):
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "$status")
    log.access(*peer(), exchange(), 1, False)
    assert path.read_text() == ""
    log.flush()
    assert path.read_text() == "200\n"


def test_access_log_writes_by_itself_when_its_buffer_is_full(tmp_path):
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "$status")
    for _ in range(1000):
        log.access(*peer(), exchange(), 1, False)
    assert path.read_text().count("200\n") >= 256


def test_reopen_sends_pending_lines_to_the_old_file_then_writes_a_new_one(tmp_path):
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "$status")
    log.access(*peer(), exchange(status=200), 1, False)
    os.rename(path, tmp_path / "access.log.1")
    log.reopen()
    log.access(*peer(), exchange(status=404), 1, False)
    log.flush()
    assert (tmp_path / "access.log.1").read_text() == "200\n"
    assert path.read_text() == "404\n"


def test_access_log_off_opens_nothing(tmp_path):
    log = AccessLog("off", "$status")
    assert not log.enabled and log.fd is None


def test_text_of_a_small_request_head_is_kept_for_its_next_line():
    access = compile_access_format('"$http_user_agent"', [], flush=None)
    access(*peer(), exchange(), 1, False)
    assert len(access.__globals__["cache"]) == 1


def test_text_of_a_big_request_head_is_not_kept():
    buffer = []
    access = compile_access_format('"$http_user_agent"', buffer, flush=None)
    access(*peer(), exchange(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"u" * 4000), 1, False)
    assert buffer == ['"' + "u" * 4000 + '"\n']
    assert access.__globals__["cache"] == {}


@pytest.fixture
def error_log_setup():
    """setup_error_log, with the `oserver` logger put back as it was afterwards (handlers, level and
    propagation): other tests read its records through pytest's caplog, which needs propagation."""
    logger = logging.getLogger("oserver")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield setup_error_log
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:], logger.level, logger.propagate = saved


def test_error_log_reopen_that_fails_keeps_writing_to_the_old_file(tmp_path, error_log_setup):
    directory = tmp_path / "logs"
    directory.mkdir()
    path = directory / "error.log"
    logger = error_log_setup(str(path), "info")
    old = open(path, "rb")  # keeps the old file readable after its directory is gone
    os.unlink(path)
    directory.rmdir()  # the log's directory vanished: reopening cannot create the file
    reopen_error_log()
    logger.error("after the failed reopen")
    for handler in logger.handlers:
        handler.flush()
    assert b"after the failed reopen" in old.read()
    old.close()


def test_error_log_on_a_full_disk_reports_once_then_counts_what_was_dropped(error_log_setup, capsys):
    logger = error_log_setup("/dev/full", "info")
    for n in range(5):
        logger.error("record %d", n)
    (handler,) = logger.handlers
    handler.stream = open(os.devnull, "w")  # the disk has room again
    logger.error("record 5")
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["oserver: cannot write error log /dev/full: No space left on device; dropping records "
                     "until it works again", "oserver: error log /dev/full written again; 5 records were dropped"]


def test_access_log_on_a_full_disk_reports_once_then_counts_what_was_dropped(caplog):
    log = AccessLog("/dev/full", COMBINED)
    for flush in range(3):
        log.access(*peer(), exchange(), 1, False)
        log.flush()
    log.fd = os.open(os.devnull, os.O_WRONLY)  # the disk has room again
    log.access(*peer(), exchange(), 1, False)
    log.flush()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["cannot write access log /dev/full: No space left on device; dropping lines until it "
                        "works again", "access log /dev/full written again; 3 lines were dropped"]
