"""The handler API (oserver/handlers.py): how a handler's (status, headers, body) becomes a framed reply."""

import io

import pytest

from oserver.apps import handlers
from oserver.apps.handlers import (FileBody, HandlerRequest, StreamedBody, handler_reply, header_fields, run_handler,
                                   status_line)
from oserver.apps.mounts import Mount, MountTable
from oserver.http.output import SendFailed
from oserver.http.parser import Request


def request(method="GET", version="HTTP/1.1"):
    return Request(method, "/api/x", "/api/x", "", version, {}, True, 0, b"GET /api/x HTTP/1.1")


def fields_of(reply):
    return reply.fields.decode("latin-1")


def drain(stream):
    """Every part a streamed body gives until its end (None) or a forced close (False: SendFailed)."""
    parts = []
    while True:
        try:
            part = stream.next_part()
        except SendFailed:
            return parts, False
        if part is None:
            return parts, part
        parts.append(part)


class Closable:
    """An iterable body recording whether close() was called."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.closed = False

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        self.closed = True


# ---------------------------------------------------------------- status

@pytest.mark.parametrize("status, code, line", [
    (200, 200, None), ("200 OK", 200, None), ("404 Not Found", 404, None),
    ("201 Made", 201, b"HTTP/1.1 201 Made\r\n"), (299, 299, b"HTTP/1.1 299 Unknown\r\n"),
])
def test_status_gives_its_code_and_keeps_a_nonstandard_reason(status, code, line):
    assert status_line(status) == (code, line)


@pytest.mark.parametrize("status", [99, 600, "abc", "200OK", "200 OK\r\nX: y", True, None, 100])
def test_invalid_status_is_refused(status):
    with pytest.raises(ValueError):
        status_line(status)


# ---------------------------------------------------------------- header fields

def test_header_fields_accept_a_dict_or_pairs():
    assert header_fields({"X-A": "1"})[0] == header_fields([("X-A", "1")])[0] == b"X-A: 1\r\n"


def test_repeated_header_fields_are_all_sent():
    assert header_fields([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])[0] == b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"


@pytest.mark.parametrize("name", ["Transfer-Encoding", "Date", "Server", "Keep-Alive", "Upgrade"])
def test_framing_and_server_fields_from_a_handler_are_dropped(name):
    assert header_fields({name: "x", "X-A": "1"})[0] == b"X-A: 1\r\n"


def test_connection_close_from_a_handler_ends_keep_alive():
    assert header_fields({"Connection": "close"}) == (b"", None, False)


def test_content_length_from_a_handler_is_read_not_copied():
    assert header_fields({"Content-Length": "12"}) == (b"", 12, True)


def test_a_header_list_seen_before_is_answered_alike():
    headers = [("Content-Type", "text/plain"), ("Content-Length", "13"), ("Connection", "close")]
    assert header_fields(headers) == header_fields(list(headers)) == (b"Content-Type: text/plain\r\n", 13, False)


def test_a_value_that_equals_a_checked_one_is_still_checked_as_itself():
    header_fields([("X-A", "1")])  # remembered
    assert header_fields([("X-A", 1)])[0] == b"X-A: 1\r\n"
    with pytest.raises(ValueError):
        header_fields([("X-A", 1.0)])  # equal to 1, but no header value


def test_pairs_that_are_lists_are_checked_each_time():
    assert header_fields([["X-A", "1"]])[0] == header_fields([["X-A", "1"]])[0] == b"X-A: 1\r\n"


def test_the_header_list_memory_is_bounded_by_emptying_it(monkeypatch):
    monkeypatch.setattr(handlers, "CHECKED_HEADER_LISTS", {})
    for i in range(handlers.HEADER_LISTS_CACHED + 1):
        header_fields([("X-N", str(i))])
    assert len(handlers.CHECKED_HEADER_LISTS) == 1


@pytest.mark.parametrize("headers", [{"X-A": "1\r\nInjected: yes"}, {"Bad Name": "1"}, {"X-A": None},
                                     {"Content-Length": "-1"}, [("X-A",)]])
def test_invalid_header_field_is_refused(headers):
    with pytest.raises((ValueError, TypeError)):
        header_fields(headers)


# ---------------------------------------------------------------- bodies

def test_bytes_body_gets_its_content_length():
    reply = handler_reply(request(), (200, {"Content-Length": "99"}, b"hello"))
    assert "Content-Length: 5\r\n" in fields_of(reply) and reply.data == b"hello"


def test_list_body_is_joined_with_a_content_length():
    reply = handler_reply(request(), (200, {}, [b"a", bytearray(b"b"), memoryview(b"c")]))
    assert "Content-Length: 3\r\n" in fields_of(reply) and reply.data == b"abc"


def test_str_body_is_refused():
    with pytest.raises(TypeError):
        handler_reply(request(), (200, {}, "text"))


def test_iterable_body_without_length_is_chunked_for_http11():
    reply = handler_reply(request(), (200, {}, iter([b"ab", b"", b"cde"])))
    assert "Transfer-Encoding: chunked\r\n" in fields_of(reply) and reply.keep_alive
    assert drain(reply.parts[0]) == ([b"2\r\nab\r\n", b"3\r\ncde\r\n", b"0\r\n\r\n"], None)


def test_iterable_body_without_length_ends_the_connection_for_http10():
    reply = handler_reply(request(version="HTTP/1.0"), (200, {}, iter([b"ab"])))
    assert "Transfer-Encoding" not in fields_of(reply) and not reply.keep_alive
    assert drain(reply.parts[0]) == ([b"ab"], None)


def test_iterable_body_is_cut_at_its_content_length():
    reply = handler_reply(request(), (200, {"Content-Length": "3"}, iter([b"ab", b"cdef"])))
    assert "Content-Length: 3\r\n" in fields_of(reply)
    assert drain(reply.parts[0]) == ([b"ab", b"c"], None)


def test_iterable_body_shorter_than_its_content_length_closes_the_connection():
    reply = handler_reply(request(), (200, {"Content-Length": "10"}, iter([b"abc"])))
    assert drain(reply.parts[0]) == ([b"abc"], False)


def test_file_body_is_sent_from_its_position_with_sendfile(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    file = open(path, "rb")
    file.seek(4)
    reply = handler_reply(request(), (200, {}, file))
    (body,) = reply.parts
    assert isinstance(body, FileBody) and "Content-Length: 6\r\n" in fields_of(reply)
    assert (body.offset, body.count) == (4, 6)
    body.close()
    assert file.closed


def test_in_memory_file_body_is_streamed():
    reply = handler_reply(request(), (200, {}, io.BytesIO(b"line1\nline2\n")))
    assert isinstance(reply.parts[0], StreamedBody)


def test_head_sends_no_body_but_keeps_the_length_and_closes_the_iterable():
    body = Closable([b"abc"])
    reply = handler_reply(request("HEAD"), (200, {"Content-Length": "3"}, body))
    assert (reply.data, reply.parts) == (b"", ()) and "Content-Length: 3\r\n" in fields_of(reply) and body.closed


def test_no_content_has_neither_body_nor_length():
    reply = handler_reply(request(), (204, {}, b"ignored"))
    assert (reply.data, reply.parts) == (b"", ()) and "Content-Length" not in fields_of(reply)


def test_streamed_body_close_reaches_the_iterable():
    body = Closable([b"abc"])
    reply = handler_reply(request(), (200, {}, body))
    reply.parts[0].close()
    assert body.closed


# ---------------------------------------------------------------- failures

def test_handler_exception_is_a_500_with_the_generic_page(caplog):
    def broken(handler_request):
        raise RuntimeError("secret detail")

    reply = run_handler(broken, request(), None)
    assert reply.status == 500 and b"secret detail" not in reply.data
    assert "secret detail" in caplog.text


def test_handler_answer_of_the_wrong_shape_is_a_500():
    assert run_handler(lambda handler_request: b"just bytes", request(), None).status == 500


def test_empty_file_body_sends_no_body_and_closes_the_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    file = open(path, "rb")
    reply = handler_reply(request(), (200, {}, file))
    assert (reply.data, reply.parts) == (b"", ()) and "Content-Length: 0\r\n" in fields_of(reply) and file.closed


def test_handler_gets_its_own_copy_of_the_headers():
    parsed = request()
    parsed.headers["x-a"] = "1"
    seen = []

    def mutating(handler_request):
        handler_request.headers.pop("x-a")
        seen.append(handler_request)
        return 200, {}, b""

    route = MountTable([Mount("/api", "m:h", mutating, "handler")]).route("/api/x")
    run_handler(mutating, parsed, HandlerRequest(parsed, route, ("c", 1), ("s", 2), b""))
    assert seen and parsed.headers == {"x-a": "1"}
