"""Request body framing in oserver/body.py: Content-Length and chunked (RFC 9112 7.1), fed in any pieces."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oserver.http.body import ChunkedBody, FixedBody, request_body
from oserver.http.parser import CHUNKED, HttpError

LIMIT = 1 << 20
NEXT_REQUEST = b"GET / HTTP/1.1\r\n"


def chunked(data, sizes):
    """`data` chunk-encoded in pieces of the given sizes (cycled), ended by the last chunk."""
    out, position, i = [], 0, 0
    while position < len(data):
        size = sizes[i % len(sizes)]
        piece = data[position:position + size]
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        position += size
        i += 1
    return b"".join(out) + b"0\r\n\r\n"


def feed_in_pieces(body, wire, piece):
    """Feed `wire` `piece` bytes at a time, as the connection would; returns what was left for the next request."""
    rest = b""
    for start in range(0, len(wire), piece):
        rest = body.feed(rest + wire[start:start + piece])
    return rest


def test_fixed_body_keeps_exactly_its_length_and_leaves_the_next_request():
    body = FixedBody(5, keep=True)
    assert body.feed(b"hel") == b""
    assert not body.done
    assert body.feed(b"lo" + NEXT_REQUEST) == NEXT_REQUEST
    assert body.done and body.data() == b"hello"


def test_dropped_body_is_consumed_but_not_kept():
    body = FixedBody(3, keep=False)
    assert body.feed(b"abcdef") == b"def"
    assert body.done and body.parts is None


def test_chunked_body_is_decoded():
    body = ChunkedBody(LIMIT, keep=True)
    assert body.feed(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" + NEXT_REQUEST) == NEXT_REQUEST
    assert body.done and body.data() == b"hello world"


def test_chunk_extensions_are_ignored():
    body = ChunkedBody(LIMIT, keep=True)
    body.feed(b"5;name=value;flag\r\nhello\r\n0 ; last\r\n\r\n")
    assert body.done and body.data() == b"hello"


def test_trailer_fields_are_read_past():
    body = ChunkedBody(LIMIT, keep=True)
    assert body.feed(b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n" + NEXT_REQUEST) == NEXT_REQUEST
    assert body.done and body.data() == b"abc"


def test_bare_lf_line_endings_are_accepted():
    body = ChunkedBody(LIMIT, keep=True)
    body.feed(b"3\nabc\n0\n\n")
    assert body.done and body.data() == b"abc"


def test_uppercase_hex_sizes_are_read():
    body = ChunkedBody(LIMIT, keep=True)
    body.feed(b"A\r\n0123456789\r\n0\r\n\r\n")
    assert body.data() == b"0123456789"


@pytest.mark.parametrize("wire", [b"zz\r\n", b"-1\r\n", b"5\r\nhelloXX\r\n", b"3\r\nabc\r\n0\r\nbad trailer\r\n\r\n",
                                  b"\r\n", b"5 \r\nhello\r\n"])
def test_malformed_chunked_framing_is_400(wire):
    with pytest.raises(HttpError) as caught:
        ChunkedBody(LIMIT, keep=True).feed(wire)
    assert caught.value.status == 400


def test_endless_chunk_size_line_is_400_before_it_ends():
    with pytest.raises(HttpError) as caught:
        ChunkedBody(LIMIT, keep=True).feed(b"1" + b";x" * 2000)
    assert caught.value.status == 400


def test_chunked_body_over_the_limit_is_413_from_the_size_line():
    body = ChunkedBody(10, keep=True)
    body.feed(b"8\r\n12345678\r\n")
    with pytest.raises(HttpError) as caught:
        body.feed(b"3\r\n")
    assert caught.value.status == 413


def test_huge_trailer_section_is_refused():
    body = ChunkedBody(LIMIT, keep=True)
    body.feed(b"0\r\n")
    with pytest.raises(HttpError) as caught:
        for _ in range(1000):
            body.feed(b"X-Pad: " + b"p" * 100 + b"\r\n")
    assert caught.value.status == 431


def test_incomplete_pieces_are_handed_back_until_the_rest_arrives():
    body = ChunkedBody(LIMIT, keep=True)
    pending = b""
    for piece in (b"5", b"\r", b"\nhel", b"lo\r", b"\n0\r\n", b"\r"):
        pending = body.feed(pending + piece)
        assert not body.done
    assert pending == b"\r"  # half of the final CRLF, kept for the next read
    assert body.feed(pending + b"\n") == b""
    assert body.done and body.data() == b"hello"


def test_request_body_picks_the_framing():
    assert isinstance(request_body(CHUNKED, LIMIT, True), ChunkedBody)
    assert isinstance(request_body(7, LIMIT, True), FixedBody)


@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), min_size=1, max_size=5), st.integers(1, 97))
def test_any_chunking_fed_in_any_pieces_decodes_to_the_data(data, sizes, piece):
    body = ChunkedBody(LIMIT, keep=True)
    assert feed_in_pieces(body, chunked(data, sizes) + NEXT_REQUEST, piece) == NEXT_REQUEST
    assert body.done and body.data() == data
