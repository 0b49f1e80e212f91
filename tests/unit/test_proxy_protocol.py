"""The PROXY protocol header (v1 text, v2 binary) fed as bytes, and its reader on a socketpair: exactly the
header is consumed, whatever follows it is left for the transport."""

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oserver.net.preamble import ProxyPreamble
from oserver.net.proxy_protocol import (V1_MAX_BYTES, V2_SIGNATURE, ProxyHeader, ProxyProtocolError,
                                        parse_header)

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
V1_TCP4 = b"PROXY TCP4 203.0.113.5 192.0.2.1 40123 8080\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::5 2001:db8::1 40123 443\r\n"


def v2(command=0x1, family=0x11, addresses=None, tlvs=b"", version=0x2):
    if addresses is None:
        addresses = {0x11: socket.inet_aton("203.0.113.5") + socket.inet_aton("192.0.2.1") +
                     struct.pack("!HH", 40123, 8080),
                     0x21: socket.inet_pton(socket.AF_INET6, "2001:db8::5") +
                     socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 40123, 443),
                     0x31: bytes(216), 0x00: b""}[family]
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", len(body)) + body


VALID = [V1_TCP4, V1_TCP6, b"PROXY UNKNOWN\r\n", v2(), v2(family=0x21), v2(command=0x0), v2(family=0x00),
         v2(family=0x31), v2(tlvs=b"\x01\x00\x02h2")]


# ---------------------------------------------------------------- version 1

def test_v1_tcp4_names_source_and_destination():
    assert parse_header(V1_TCP4 + REQUEST) == ProxyHeader(1, len(V1_TCP4), ("203.0.113.5", 40123),
                                                          ("192.0.2.1", 8080))


def test_v1_tcp6_names_source_and_destination():
    assert parse_header(V1_TCP6).source == ("2001:db8::5", 40123)


def test_v1_unknown_carries_no_address():
    assert parse_header(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nGET") == ProxyHeader(1, 35)


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 203.0.113.5 192.0.2.1 40123\r\n",  # a field missing
    b"PROXY TCP4 2001:db8::5 192.0.2.1 40123 8080\r\n",  # an address of the other family
    b"PROXY TCP6 203.0.113.5 2001:db8::1 40123 8080\r\n",
    b"PROXY TCP4 203.0.113.5 192.0.2.1 70000 8080\r\n",  # no port
    b"PROXY TCP4 203.0.113.5 192.0.2.1 040123 8080\r\n",
    b"PROXY TCP4 203.0.113.5 192.0.2.1 08080 8080\r\n",  # a leading zero
    b"PROXY TCP4  203.0.113.5 192.0.2.1 40123 8080\r\n",  # two spaces
    b"PROXY TCP4 203.0.113.5 192.0.2.1 40123 8080\n",  # a bare LF
    b"PROXY UDP4 203.0.113.5 192.0.2.1 40123 8080\r\n",
    b"PROXY tcp4 203.0.113.5 192.0.2.1 40123 8080\r\n",
])
def test_v1_malformed_lines_are_refused(line):
    with pytest.raises(ProxyProtocolError):
        parse_header(line)


def test_v1_without_its_end_waits_up_to_107_bytes_then_is_refused():
    assert parse_header(b"PROXY UNKNOWN " + b"x" * (V1_MAX_BYTES - 15)) is None
    with pytest.raises(ProxyProtocolError):
        parse_header(b"PROXY UNKNOWN " + b"x" * (V1_MAX_BYTES - 14))


# ---------------------------------------------------------------- version 2

def test_v2_tcp4_names_source_and_destination():
    header = v2()
    assert parse_header(header + REQUEST) == ProxyHeader(2, len(header), ("203.0.113.5", 40123),
                                                         ("192.0.2.1", 8080))


def test_v2_tcp6_names_the_source():
    assert parse_header(v2(family=0x21)).source == ("2001:db8::5", 40123)


@pytest.mark.parametrize("header", [v2(command=0x0), v2(family=0x00), v2(family=0x31)])
def test_v2_local_unspec_and_unix_carry_no_client_address(header):
    assert parse_header(header) == ProxyHeader(2, len(header))


def test_v2_tlvs_are_part_of_the_header_and_skipped():
    header = v2(tlvs=b"\x01\x00\x02h2\x04\x00\x01x")
    assert parse_header(header + REQUEST).length == len(header)


@pytest.mark.parametrize("header", [v2(version=0x1), v2(command=0x2), v2(addresses=bytes(8)),
                                   v2(family=0x21, addresses=bytes(20)), v2(family=0x31, addresses=bytes(100))])
def test_v2_malformed_heads_are_refused(header):
    with pytest.raises(ProxyProtocolError):
        parse_header(header)


# ---------------------------------------------------------------- any input

@pytest.mark.parametrize("data", [REQUEST, b"\x16\x03\x01\x02\x00", b"PROXY\r\n", b"\r\n\r\n\x00\r\nQUIT!"])
def test_anything_but_a_header_is_refused(data):
    with pytest.raises(ProxyProtocolError):
        parse_header(data)


@pytest.mark.parametrize("header", VALID)
def test_every_proper_prefix_of_a_header_is_incomplete(header):
    assert all(parse_header(header[:n]) is None for n in range(len(header)))


@given(st.binary(max_size=200))
def test_any_bytes_are_incomplete_a_header_or_refused(data):
    try:
        header = parse_header(data)
    except ProxyProtocolError:
        return
    assert header is None or 0 < header.length <= len(data)


@given(st.sampled_from(VALID), st.binary(max_size=64))
def test_what_follows_a_header_never_changes_it(header, rest):
    assert parse_header(header + rest) == parse_header(header)


# ---------------------------------------------------------------- the reader

@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.setblocking(False)
    yield ProxyPreamble(server, make_transport=lambda sock: sock), client
    server.close()
    client.close()


def test_the_reader_consumes_exactly_the_header(pair):
    preamble, client = pair
    client.sendall(v2() + REQUEST)
    assert preamble.read().source == ("203.0.113.5", 40123)
    assert preamble.transport().recv(1000) == REQUEST


@pytest.mark.parametrize("header", [V1_TCP4, v2()])
def test_the_reader_takes_a_header_sent_a_byte_at_a_time(pair, header):
    preamble, client = pair
    for byte in header[:-1]:
        client.sendall(bytes([byte]))
        assert preamble.read() is None
        with pytest.raises(BlockingIOError):  # what it saw was consumed: no busy loop on a readable socket
            preamble.read()
    client.sendall(header[-1:] + REQUEST)
    assert preamble.read().length == len(header)
    assert preamble.transport().recv(1000) == REQUEST


def test_the_reader_reports_a_peer_that_closed(pair):
    preamble, client = pair
    client.close()
    with pytest.raises(EOFError):
        preamble.read()


def test_the_reader_refuses_a_request_without_a_header(pair):
    preamble, client = pair
    client.sendall(REQUEST)
    with pytest.raises(ProxyProtocolError):
        preamble.read()
