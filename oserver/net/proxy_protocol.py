"""The PROXY protocol header (HAProxy's spec, versions 1 and 2), sans-IO: bytes in, the addresses it carries out.

A balancer sends it first on each connection, before any HTTP or TLS byte, to say whom the connection is for.
`parse_header(data)` reads the header at the start of `data`: None while it is incomplete (every byte so far
then belongs to it, so a reader may consume them all), a ProxyHeader once it is whole, ProxyProtocolError for
anything that cannot be one. Never touches a socket (net/preamble.py reads the bytes).
"""

import ipaddress
import re
import struct
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX_BYTES = 107  # the longest v1 line, CRLF included (spec 2.1)
V1_LINE = re.compile(rb"PROXY (?:UNKNOWN[^\r\n]*|(TCP[46]) (\S+) (\S+) ([0-9]{1,5}) ([0-9]{1,5}))\r\n")
V1_FAMILIES = {b"TCP4": ipaddress.IPv4Address, b"TCP6": ipaddress.IPv6Address}
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEAD = struct.Struct("!12sBBH")  # signature, version and command, family and transport, address length
V2_MAX_BYTES = V2_HEAD.size + 0xFFFF
V2_VERSION = 0x2
V2_LOCAL, V2_PROXY = 0x0, 0x1  # commands: a connection of the balancer's own (a health check), a proxied one
# Address families (high nibble) carrying IP addresses: address bytes, the struct of (source, destination,
# source port, destination port). UNSPEC (0) and UNIX (3) carry none that could name a client here.
V2_ADDRESSES = {0x1: (ipaddress.IPv4Address, struct.Struct("!4s4sHH")),
                0x2: (ipaddress.IPv6Address, struct.Struct("!16s16sHH"))}
V2_UNIX_BYTES = 216
HEADER_MAX_BYTES = max(V1_MAX_BYTES, V2_MAX_BYTES)


class ProxyProtocolError(Exception):
    """Bytes that are not a valid PROXY protocol header: the connection must be closed."""


@dataclass(slots=True, frozen=True)
class ProxyHeader:
    """A whole header: `length` bytes long; the client's (source) and the address it connected to
    (destination), as (host, port), or None when the header carries none (v1 UNKNOWN, v2 LOCAL or a family
    without IP addresses): the connection is then the balancer's own."""

    version: int
    length: int
    source: tuple | None = None
    destination: tuple | None = None


def parse_header(data):
    """The PROXY header at the start of `data`, None while incomplete; ProxyProtocolError if it is none."""
    if data.startswith(V2_SIGNATURE[:len(data)]):
        return parse_v2(data) if len(data) >= V2_HEAD.size else None
    if data.startswith(V1_PREFIX[:len(data)]):
        return parse_v1(data)
    raise ProxyProtocolError("no PROXY protocol header")


def parse_v1(data):
    """Version 1: one line of text, "PROXY TCP4 src dst sport dport\\r\\n" or "PROXY UNKNOWN ...\\r\\n"."""
    end = data.find(b"\n", 0, V1_MAX_BYTES)
    if end < 0:
        if len(data) >= V1_MAX_BYTES:
            raise ProxyProtocolError(f"v1 header longer than {V1_MAX_BYTES} bytes")
        return None
    line = V1_LINE.fullmatch(data, 0, end + 1)
    if line is None:
        raise ProxyProtocolError("malformed v1 header")
    family, source, destination, source_port, destination_port = line.groups()
    if family is None:
        return ProxyHeader(1, end + 1)
    address = V1_FAMILIES[family]
    return ProxyHeader(1, end + 1, v1_address(address, source, source_port),
                       v1_address(address, destination, destination_port))


def v1_address(address_type, host, port):
    try:
        host = str(address_type(host.decode("ascii")))
    except ValueError:
        raise ProxyProtocolError(f"v1 header: {host!r} is not an address of its family") from None
    if int(port) > 0xFFFF or (port.startswith(b"0") and port != b"0"):
        raise ProxyProtocolError(f"v1 header: {port!r} is not a port")
    return host, int(port)


def parse_v2(data):
    """Version 2: a binary head (signature, version/command, family/transport, length), addresses, TLVs."""
    _, version_command, family_transport, address_bytes = V2_HEAD.unpack_from(data)
    version, command = version_command >> 4, version_command & 0xF
    if version != V2_VERSION:
        raise ProxyProtocolError(f"v2 header: unknown version {version}")
    if command not in (V2_LOCAL, V2_PROXY):
        raise ProxyProtocolError(f"v2 header: unknown command {command}")
    length = V2_HEAD.size + address_bytes
    if len(data) < length:
        return None
    family = family_transport >> 4
    if family == 0x3 and address_bytes < V2_UNIX_BYTES:
        raise ProxyProtocolError("v2 header: unix addresses cut short")
    if command == V2_LOCAL or family not in V2_ADDRESSES:
        return ProxyHeader(2, length)
    address_type, layout = V2_ADDRESSES[family]
    if address_bytes < layout.size:
        raise ProxyProtocolError("v2 header: addresses cut short")
    source, destination, source_port, destination_port = layout.unpack_from(data, V2_HEAD.size)
    return ProxyHeader(2, length, (str(address_type(source)), source_port),
                       (str(address_type(destination)), destination_port))
