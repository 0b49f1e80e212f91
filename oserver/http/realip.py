"""Client addresses: lists of addresses and networks (status_allow, real_ip_from), and the real client of a
request sent through trusted proxies, from X-Forwarded-For, Forwarded (RFC 7239) or another header.

nginx's real_ip_recursive semantics: only a trusted peer's header counts; the client is the right-most address
of the header that is not itself trusted (the left-most when all are); an entry that does not parse ends the
walk. Pure: addresses and header text in, an address out.
"""

import ipaddress
import re

from oserver.memo import Memo

CACHE_MAX = 4096  # remembered answers (address -> trusted, header -> client); cleared when full
PORT = re.compile(r"[0-9]{1,5}")
KEEP_PEER = ()  # a cached answer meaning "the peer stays the client"


class Networks:
    """Addresses and CIDR networks ("127.0.0.1", "10.0.0.0/8", "fd00::/8"); ValueError for an invalid one.
    An IPv4-mapped IPv6 address (::ffff:10.1.2.3) matches its IPv4 entry."""

    __slots__ = ("networks", "known")

    def __init__(self, addresses):
        self.networks = tuple(ipaddress.ip_network(address, strict=False) for address in addresses)
        self.known = Memo(self.lookup, CACHE_MAX)  # host text -> bool

    def __bool__(self):
        return bool(self.networks)

    def contains(self, host):
        """Is the host text (an IP address) listed?"""
        return self.known[host]

    def lookup(self, host):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def allows(self, address):
        """Is a socket address (host, port, ...) listed? Anything else (a unix socket's) is not."""
        return address.__class__ is tuple and self.contains(address[0])


def parse_node(text):
    """(host, port) of one proxy-chain entry: "192.0.2.1", "192.0.2.1:4711", "2001:db8::1", "[2001:db8::1]",
    "[2001:db8::1]:4711" (port 0 when none is given); None for anything else ("unknown", "_hidden", names)."""
    text = text.strip()
    port = "0"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] or port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host = text
    if not PORT.fullmatch(port) or int(port) > 65535:
        return None
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        return None


def forwarded_for_nodes(value):
    """X-Forwarded-For (and headers like it): the comma-separated entries, right-most first."""
    return [parse_node(entry) for entry in reversed(value.split(","))]


def forwarded_nodes(value):
    """Forwarded (RFC 7239 4): the for= node of each comma-separated element, right-most first (None where an
    element has none or it does not parse). Elements are split at every comma: a quoted string a client put
    in front cannot swallow the elements its proxies appended after it."""
    nodes = []
    for element in reversed(value.split(",")):
        node = None
        for pair in element.split(";"):
            name, equals, node_text = pair.partition("=")
            if equals and name.strip().lower() == "for":
                node = parse_node(node_text.strip().strip('"'))
                break
        nodes.append(node)
    return nodes


class RealIp:
    """real_ip_from + real_ip_header: `client(peer, headers)` is the request's client address."""

    __slots__ = ("trusted", "header", "nodes", "answers")

    def __init__(self, trusted, header):
        self.trusted = trusted  # Networks
        self.header = header.lower()
        self.nodes = forwarded_nodes if self.header == "forwarded" else forwarded_for_nodes
        self.answers = Memo(lambda key: self.walk(key[1]), CACHE_MAX)  # (peer host, value) -> client, or KEEP_PEER

    def client(self, peer, headers):
        value = headers.get(self.header)
        if value is None or not self.trusted.allows(peer):
            return peer
        return self.answers[(peer[0], value)] or peer

    def walk(self, value):
        """The header's client: right to left past trusted entries; KEEP_PEER when its last entry is invalid."""
        client = KEEP_PEER
        for node in self.nodes(value):
            if node is None:
                break
            client = node
            if not self.trusted.contains(node[0]):
                break
        return client
