"""Client addresses through trusted proxies (nginx's real_ip with real_ip_recursive on), and address lists:
header text and addresses in, an address out."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oserver.http.realip import Networks, RealIp, forwarded_nodes, forwarded_for_nodes, parse_node

PROXY = ("10.0.0.1", 50000)
OUTSIDER = ("198.51.100.7", 50000)


def real_ip(header="X-Forwarded-For", trusted=("10.0.0.0/8",)):
    return RealIp(Networks(trusted), header)


# ---------------------------------------------------------------- address lists

def test_listed_address_is_allowed():
    assert Networks(["127.0.0.1"]).allows(("127.0.0.1", 5000))


def test_address_inside_a_listed_network_is_allowed():
    assert Networks(["10.0.0.0/8"]).allows(("10.1.2.3", 5000))


def test_unlisted_address_is_refused():
    assert not Networks(["127.0.0.1", "::1"]).allows(("192.0.2.1", 5000))


def test_ipv4_mapped_ipv6_client_matches_its_ipv4_entry():
    assert Networks(["127.0.0.1"]).allows(("::ffff:127.0.0.1", 5000, 0, 0))


def test_unix_socket_client_is_refused():
    assert not Networks(["127.0.0.1"]).allows("")


def test_invalid_network_is_a_value_error():
    with pytest.raises(ValueError):
        Networks(["not-an-address"])


def test_an_empty_list_is_false_and_lists_nothing():
    assert not Networks([]) and not Networks([]).allows(("127.0.0.1", 1))


def test_a_host_that_is_no_address_is_not_listed():
    assert not Networks(["0.0.0.0/0"]).contains("localhost")


# ---------------------------------------------------------------- one entry of a proxy chain

@pytest.mark.parametrize("text, node", [
    ("192.0.2.1", ("192.0.2.1", 0)),
    (" 192.0.2.1 ", ("192.0.2.1", 0)),
    ("192.0.2.1:4711", ("192.0.2.1", 4711)),
    ("2001:db8::1", ("2001:db8::1", 0)),
    ("[2001:DB8::1]", ("2001:db8::1", 0)),
    ("[2001:db8::1]:4711", ("2001:db8::1", 4711)),
])
def test_an_address_with_or_without_a_port_is_an_entry(text, node):
    assert parse_node(text) == node


@pytest.mark.parametrize("text", ["unknown", "_hidden", "example.com", "", "192.0.2.1:", "192.0.2.1:70000",
                                  "192.0.2.1:http", "[2001:db8::1", "[2001:db8::1]x", "999.0.0.1", "192.0.2.1:١"])
def test_anything_else_is_no_entry(text):
    assert parse_node(text) is None


@given(st.text(max_size=60))
def test_any_text_is_an_entry_or_none(text):
    node = parse_node(text)
    assert node is None or (isinstance(node[0], str) and 0 <= node[1] <= 65535)


def test_x_forwarded_for_entries_come_right_most_first():
    assert forwarded_for_nodes("203.0.113.1, 10.0.0.2,10.0.0.3") == [("10.0.0.3", 0), ("10.0.0.2", 0),
                                                                     ("203.0.113.1", 0)]


def test_forwarded_for_nodes_come_right_most_first():
    value = 'for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https, By=10.0.0.9;FOR=10.0.0.2'
    assert forwarded_nodes(value) == [("10.0.0.2", 0), ("2001:db8:cafe::17", 4711), ("192.0.2.43", 0)]


def test_a_forwarded_element_without_for_or_with_an_obfuscated_node_is_no_entry():
    assert forwarded_nodes("proto=https, for=_hidden, for=unknown") == [None, None, None]


# ---------------------------------------------------------------- the client of a request

def test_a_trusted_proxys_header_names_the_client():
    assert real_ip().client(PROXY, {"x-forwarded-for": "203.0.113.5"}) == ("203.0.113.5", 0)


def test_an_untrusted_peers_header_changes_nothing():
    assert real_ip().client(OUTSIDER, {"x-forwarded-for": "203.0.113.5"}) == OUTSIDER


def test_without_the_header_the_peer_is_the_client():
    assert real_ip().client(PROXY, {}) == PROXY


def test_a_unix_socket_peer_is_never_trusted():
    assert real_ip(trusted=("0.0.0.0/0",)).client("", {"x-forwarded-for": "203.0.113.5"}) == ""


def test_trusted_entries_are_skipped_from_the_right():
    headers = {"x-forwarded-for": "203.0.113.5, 10.1.1.1, 10.2.2.2"}
    assert real_ip().client(PROXY, headers) == ("203.0.113.5", 0)


def test_a_client_cannot_hide_behind_an_address_it_writes_itself():
    """The client sends "X-Forwarded-For: 127.0.0.1"; its proxy appends the address it saw."""
    headers = {"x-forwarded-for": "127.0.0.1, 203.0.113.5"}
    assert real_ip(trusted=("10.0.0.0/8", "127.0.0.1")).client(PROXY, headers) == ("203.0.113.5", 0)


def test_when_every_entry_is_trusted_the_left_most_is_the_client():
    assert real_ip().client(PROXY, {"x-forwarded-for": "10.9.9.9, 10.8.8.8"}) == ("10.9.9.9", 0)


def test_an_invalid_entry_ends_the_walk_at_the_last_good_one():
    assert real_ip().client(PROXY, {"x-forwarded-for": "203.0.113.5, garbage, 10.3.3.3"}) == ("10.3.3.3", 0)


def test_an_invalid_right_most_entry_leaves_the_peer():
    assert real_ip().client(PROXY, {"x-forwarded-for": "203.0.113.5, garbage"}) == PROXY


def test_a_port_in_the_header_is_the_clients_port():
    assert real_ip().client(PROXY, {"x-forwarded-for": "[2001:db8::7]:4711"}) == ("2001:db8::7", 4711)


def test_the_forwarded_header_names_the_client():
    headers = {"forwarded": 'for="[2001:db8::7]:4711";proto=https, for=10.0.0.5'}
    assert real_ip("Forwarded").client(PROXY, headers) == ("2001:db8::7", 4711)


def test_an_open_quote_in_forwarded_cannot_swallow_what_the_proxy_appended():
    headers = {"forwarded": 'for="127.0.0.1, for=203.0.113.5'}
    assert real_ip("Forwarded", trusted=("10.0.0.0/8", "127.0.0.1")).client(PROXY, headers) == ("203.0.113.5", 0)


def test_another_header_is_read_as_a_list_of_addresses():
    assert real_ip("X-Real-IP").client(PROXY, {"x-real-ip": "203.0.113.5"}) == ("203.0.113.5", 0)


def test_an_answer_given_before_is_given_again():
    resolver = real_ip()
    headers = {"x-forwarded-for": "203.0.113.5, garbage"}
    assert resolver.client(PROXY, headers) == resolver.client(PROXY, headers) == PROXY
    assert resolver.client(("10.0.0.1", 50001), headers) == ("10.0.0.1", 50001)
