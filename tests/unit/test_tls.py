"""TLS pieces (issue 15) without a server: the contexts (certificates, SNI choice, load errors, expiry), the
TLS transport on a loopback connection against a real OpenSSL client (the non-blocking handshake, plain HTTP
detected, sends that fill the socket and resume with the same bytes, files sent in chunks byte-exact,
close_notify), and the router's redirect of plain HTTP to HTTPS."""

import datetime
import hashlib
import os
import re
import select
import socket
import ssl
import threading

import pytest
from cryptography.hazmat.primitives import serialization

from oserver.config import ConfigError, SniCertificate, build_config
from oserver.http.parser import parse_request_head
from oserver.net.tls import OP_PRIORITIZE_CHACHA, TlsContexts, certificate_not_after, load_tls
from oserver.net.transport import EPOLLIN, EPOLLOUT, FILE_CHUNK, PlainHttpOnTlsPort, TlsTransport
from oserver.router import Router, https_redirect
from tests.certificates import TestCertificates

TIMEOUT = 10.0
NOT_AFTER = datetime.datetime(2031, 5, 17, 12, 30, tzinfo=datetime.timezone.utc)
SMALL_BUFFER = 16384
FILE_BYTES = 5 * FILE_CHUNK + 123


class Files(TestCertificates):
    """The test certificates, the default one expiring at NOT_AFTER, and a config serving them."""

    def __init__(self, directory):
        super().__init__(directory, not_after=NOT_AFTER)

    def config(self, **options):
        values = {"root": str(self.directory), "tls_port": 8443, "tls_certificate": self.cert,
                  "tls_certificate_key": self.key, "tls_sni": (SniCertificate(("other.test",), self.other_cert,
                                                                              self.other_key),
                                                               SniCertificate(("*.wild.test",), self.wild_cert,
                                                                              self.wild_key))}
        values.update(options)
        return build_config(None, values)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return Files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def contexts(files):
    return TlsContexts(files.config())


# ---------------------------------------------------------------- contexts

def test_a_certificates_expiry_is_read_from_its_der_form(files):
    assert certificate_not_after(files.cert) == NOT_AFTER


def test_certificates_expiring_within_14_days_are_listed(contexts):
    soon = NOT_AFTER - datetime.timedelta(days=10)
    assert [(c.path, days) for c, days in contexts.expiring(soon)] == [(contexts.certificates[0].path, 10)]
    assert contexts.expiring(NOT_AFTER - datetime.timedelta(days=20)) == []


class Choosing:
    """What the SNI callback is handed: the transport, whose OpenSSL connection gets the chosen context."""

    def __init__(self):
        self.tls = self
        self.context = None


@pytest.mark.parametrize("name, chosen", [("other.test", "other"), ("OTHER.test", "other"), ("a.wild.test", "wild"),
                                          ("a.b.wild.test", None), ("wild.test", None), ("unknown.test", None),
                                          (None, None)])
def test_sni_chooses_exact_names_then_a_wildcard_one_label_down(contexts, files, name, chosen):
    owner = Choosing()
    contexts.choose(owner, name, contexts.default)
    expected = {"other": contexts.by_name["other.test"], "wild": contexts.by_name["*.wild.test"], None: None}[chosen]
    assert owner.context is expected


def test_contexts_offer_tls_1_2_and_1_3_in_server_order_without_renegotiation(contexts):
    context = contexts.default
    assert (context.minimum_version, context.maximum_version) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    assert context.options & ssl.OP_NO_RENEGOTIATION and context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE and context.options & OP_PRIORITIZE_CHACHA
    assert {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"} == {
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}


def load_error(config):
    with pytest.raises(ConfigError) as raised:
        load_tls(config, True)
    return str(raised.value)


def test_a_key_that_does_not_match_is_refused(files):
    message = load_error(files.config(tls_certificate_key=files.other_key))
    assert message == (f"tls_certificate: cannot load {files.cert} with key {files.other_key}: "
                       "the key does not match the certificate")


def test_a_missing_certificate_is_refused(files):
    assert load_error(files.config(tls_certificate="/nonexistent.pem")).endswith("No such file or directory")


def test_a_file_without_a_certificate_is_refused(files):
    assert "no PEM certificate" in load_error(files.config(tls_certificate=files.key, tls_certificate_key=""))


def test_an_encrypted_key_is_refused_instead_of_prompting(files):
    with open(files.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    encrypted = files.write("encrypted.key", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    assert "the key is encrypted" in load_error(files.config(tls_certificate_key=encrypted))


def test_an_unknown_cipher_list_is_refused(files):
    assert load_error(files.config(tls_ciphers="NOT-A-CIPHER")).startswith("tls_ciphers: OpenSSL knows no cipher")


def test_no_contexts_when_no_listener_speaks_tls(files):
    assert load_tls(files.config(), False) is None


# ---------------------------------------------------------------- the transport on a loopback connection

class Pair:
    """A server TlsTransport on one end of a loopback TCP connection, a blocking OpenSSL client on the other."""

    def __init__(self, files, contexts, sndbuf=None):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            self.client_sock = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
        if sndbuf:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        server.setblocking(False)
        self.client_sock.settimeout(TIMEOUT)
        self.transport = TlsTransport(server, contexts)
        self.client_context = files.client_context()
        self.client = None

    def handshake(self, server_name="localhost"):
        """Run both sides: the client on a thread, the server as its loop would (waiting for what it asks)."""
        done = threading.Thread(target=self.connect_client, args=(server_name,))
        done.start()
        while wait := self.transport.handshake():
            self.wait(wait)
        done.join(TIMEOUT)
        return self.client

    def connect_client(self, server_name):
        self.client = self.client_context.wrap_socket(self.client_sock, server_hostname=server_name)

    def wait(self, events):
        sock = self.transport.sock
        select.select([sock] if events == EPOLLIN else [], [sock] if events == EPOLLOUT else [], [], TIMEOUT)

    def close(self):
        self.transport.close()
        (self.client or self.client_sock).close()


@pytest.fixture
def pair(files, contexts):
    made = Pair(files, contexts)
    yield made
    made.close()


def test_the_handshake_waits_for_the_client_then_gives_the_session(pair):
    assert pair.transport.handshake() == EPOLLIN  # nothing from the client yet
    pair.handshake()
    session = pair.transport.session
    assert (session.protocol, session.reused) == ("TLSv1.3", False) and session.cipher.startswith("TLS_")
    assert pair.client.selected_alpn_protocol() is None  # this client offered none


def test_the_handshake_serves_the_sni_certificate(pair):
    client = pair.handshake("other.test")
    assert dict(item[0] for item in client.getpeercert()["subject"])["commonName"] == "other.test"


def test_plain_http_is_told_apart_from_a_tls_hello(pair):
    pair.client_sock.sendall(b"GET / HTTP/1.1\r\n")
    with pytest.raises(PlainHttpOnTlsPort):
        pair.transport.handshake()
    assert pair.transport.plain().recv(100) == b"GET / HTTP/1.1\r\n"  # still there for the plain answer


def test_a_client_leaving_before_its_hello_fails_the_handshake(pair):
    pair.client_sock.shutdown(socket.SHUT_WR)
    with pytest.raises(OSError):
        pair.transport.handshake()


def test_recv_decrypts_and_waits_with_blockingioerror(pair):
    client = pair.handshake()
    with pytest.raises(BlockingIOError):
        pair.transport.recv(65536)
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    pair.wait(EPOLLIN)
    assert pair.transport.recv(65536) == b"GET / HTTP/1.1\r\n\r\n"


def test_recv_gives_the_end_of_the_stream_on_close_notify(pair):
    client = pair.handshake()
    unwrapped = threading.Thread(target=client.unwrap)  # it waits for the server's close_notify in return
    unwrapped.start()
    pair.wait(EPOLLIN)
    assert pair.transport.recv(65536) == b""
    pair.transport.close()
    unwrapped.join(TIMEOUT)
    assert not unwrapped.is_alive()


def test_a_send_the_socket_cannot_take_completes_when_repeated_with_the_same_bytes(files, contexts):
    pair = Pair(files, contexts, sndbuf=SMALL_BUFFER)
    try:
        client = pair.handshake()
        data = os.urandom(1 << 20)
        with pytest.raises(BlockingIOError):  # OpenSSL sent what the socket took and keeps its place
            pair.transport.send(data)
        received = bytearray()
        reader = threading.Thread(target=lambda: read_exactly(client, len(data), received))
        reader.start()
        while True:  # as the output items do: the same bytes again
            try:
                assert pair.transport.send(data) == len(data)
                break
            except BlockingIOError:
                pair.wait(EPOLLOUT)
        reader.join(TIMEOUT)
        assert bytes(received) == data  # each byte once
    finally:
        pair.close()


def read_exactly(sock, count, into):
    while len(into) < count:
        into += sock.recv(count - len(into))


def test_a_file_goes_out_in_chunks_byte_exact_under_a_quota(files, contexts, tmp_path):
    pair = Pair(files, contexts, sndbuf=SMALL_BUFFER)
    data = os.urandom(FILE_BYTES)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    try:
        client = pair.handshake()
        received = bytearray()
        reader = threading.Thread(target=lambda: read_exactly(client, len(data), received))
        reader.start()
        offset, calls = 0, 0
        with open(path, "rb") as f:
            while offset < len(data):
                try:
                    n = pair.transport.sendfile(f, offset, len(data) - offset)
                except BlockingIOError:
                    pair.wait(EPOLLOUT)
                    continue
                assert n == min(FILE_CHUNK, len(data) - offset)  # a chunk per call: the quota stays in charge
                offset += n
                calls += 1
            assert pair.transport.sendfile(f, len(data), 1) == 0  # the end of the file: "truncated" to FileSpan
        reader.join(TIMEOUT)
        assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
        assert calls >= FILE_BYTES // FILE_CHUNK
    finally:
        pair.close()


def test_close_sends_close_notify(pair):
    client = pair.handshake()
    pair.transport.close()
    assert client.recv(100) == b""  # a clean end, not a ragged EOF (which raises)


# ---------------------------------------------------------------- the redirect to HTTPS (router.py)

def redirect_of(head, port=8443):
    reply = https_redirect(parse_request_head(head), port)
    location = re.search(rb"Location: (\S+)\r\n", reply.fields)
    return reply.status, location and location[1].decode()


@pytest.mark.parametrize("head, port, location", [
    (b"GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com:8080", 8443, "https://example.com:8443/a/b?x=1&y"),
    (b"GET /a HTTP/1.1\r\nHost: example.com", 443, "https://example.com/a"),
    (b"GET /a HTTP/1.1\r\nHost: [::1]:8080", 8443, "https://[::1]:8443/a"),
    (b"GET http://example.com/p?q HTTP/1.1\r\nHost: example.com", 443, "https://example.com/p?q"),
    (b"HEAD /%20x HTTP/1.0\r\nHost: example.com", 443, "https://example.com/%20x"),
])
def test_a_plain_request_is_sent_to_the_same_url_on_the_tls_port(head, port, location):
    assert redirect_of(head, port) == (301, location)


def test_a_redirect_needs_a_host_to_name():
    assert redirect_of(b"GET /a HTTP/1.0") == (400, None)


def test_the_router_redirects_plain_requests_only_and_keeps_status_and_probes_plain(files):
    config = files.config(redirect_to_https=True, status_path="/status")
    router = Router(config, sites=Answering("file"), status_page=Answering("status"), mounts=None,
                    ready=lambda: True)
    request = parse_request_head(b"GET /page HTTP/1.1\r\nHost: h")
    assert router.route(request, ("127.0.0.1", 1), secure=False).status == 301
    assert router.route(parse_request_head(b"GET /status HTTP/1.1\r\nHost: h"), ("127.0.0.1", 1)) == "status"
    assert router.route(parse_request_head(b"GET /healthz HTTP/1.1\r\nHost: h"), ("127.0.0.1", 1)).status == 200
    assert router.route(parse_request_head(b"GET /readyz HTTP/1.1\r\nHost: h"), ("127.0.0.1", 1)).status == 200
    assert router.route(request, ("127.0.0.1", 1), secure=True) == "file"


class Answering:
    """A responder standing in for the status page or the static files: answers `answer`."""

    def __init__(self, answer):
        self.answer = answer

    def respond(self, *args):
        return self.answer
