"""TLS settings: the SSL contexts of the TLS listeners (certificates chosen by SNI, versions, ciphers, ALPN,
session tickets) and the kernel-TLS check. The master builds them before it forks, so every worker holds the
same ticket keys (a session resumes on any worker) and keys readable by root only work. A file that does not
load is a ConfigError naming it; nothing here touches a client connection (that is transport.py).
"""

import datetime
import ssl
from dataclasses import dataclass

from oserver.config import ConfigError

ALPN_PROTOCOLS = ["http/1.1"]
VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
OP_ENABLE_KTLS = 1 << 3  # OpenSSL 3's SSL_OP_ENABLE_KTLS (Python 3.12's ssl.OP_ENABLE_KTLS)
OP_PRIORITIZE_CHACHA = 1 << 21  # OpenSSL's SSL_OP_PRIORITIZE_CHACHA (not in Python's ssl)
ULP_LIST = "/proc/sys/net/ipv4/tcp_available_ulp"
EXPIRY_WARNING = datetime.timedelta(days=14)
SSL_REASONS = {"KEY_VALUES_MISMATCH": "the key does not match the certificate"}
NO_PEM = "no PEM certificate, or no PEM key, in the file"  # OpenSSL's "PEM lib"
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"
# DER (X.690) tags met on the way to a certificate's notAfter (RFC 5280 4.1)
DER_VERSION = 0xA0  # [0] EXPLICIT Version, optional
DER_UTC_TIME = 0x17
DER_UTC_FORMAT = "%y%m%d%H%M%SZ"
DER_GENERALIZED_FORMAT = "%Y%m%d%H%M%SZ"


@dataclass(slots=True, frozen=True)
class LoadedCertificate:
    """A certificate the contexts serve: its file, the names it is chosen for (empty: the default), when it
    expires."""

    path: str
    server_names: tuple
    not_after: datetime.datetime


class TlsContexts:
    """The default context (tls_certificate) and those chosen by SNI: exact names first, then *.domain for
    a name one label below it; any other name gets the default certificate. `wrap(transport)` starts a
    server-side TLS connection on the transport's socket."""

    def __init__(self, config):
        self.kernel_tls = kernel_tls_available()
        self.certificates = []
        self.default = self.context(config, config.tls_certificate, config.tls_certificate_key, ())
        self.by_name = {}
        for entry in config.tls_sni:
            context = self.context(config, entry.certificate, entry.certificate_key, entry.server_names)
            for name in entry.server_names:
                self.by_name.setdefault(name.lower(), context)
        if self.by_name:
            self.default.sni_callback = self.choose

    def context(self, config, certificate, key, server_names):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        versions = [VERSIONS[name] for name in config.tls_protocols]
        context.minimum_version, context.maximum_version = min(versions), max(versions)
        # No renegotiation, no compression (CRIME). The server's cipher order (testssl rates its absence
        # HIGH), but ChaCha20 first for a client that prefers it (phones without AES instructions). Kernel TLS
        # when the kernel has it.
        context.options |= (ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE |
                            OP_PRIORITIZE_CHACHA | (OP_ENABLE_KTLS if self.kernel_tls else 0))
        try:
            context.set_ciphers(config.tls_ciphers)
        except ssl.SSLError:
            raise ConfigError(f"tls_ciphers: OpenSSL knows no cipher in {config.tls_ciphers!r}") from None
        context.set_alpn_protocols(ALPN_PROTOCOLS)
        try:
            context.load_cert_chain(certificate, key or None, password=refuse_password)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            raise ConfigError(f"tls_certificate: cannot load {certificate}{' with key ' + key if key else ''}: "
                              f"{load_failure(e)}") from None
        self.certificates.append(LoadedCertificate(certificate, server_names, certificate_not_after(certificate)))
        return context

    def choose(self, tls, server_name, context):
        """The SNI callback (`tls` is the transport owning the connection): switch to the certificate of the
        name the client asked for."""
        if server_name is None:
            return
        name = server_name.lower()
        chosen = self.by_name.get(name) or self.by_name.get("*." + name.partition(".")[2])
        if chosen is not None:
            tls.tls.context = chosen

    def wrap(self, transport):
        """The OpenSSL connection object of a server-side TLS connection on transport.sock, its owner the
        transport (the SNI callback gets it). The socket stays a plain socket, so the transport keeps using
        it (peeking at the first byte, sendfile under kernel TLS). A private entry of the ssl module, the one
        ssl.SSLContext.wrap_socket calls: measured, it halves the cost of starting a connection (9 us
        instead of 31 us here) and leaves the socket object alone."""
        return self.default._wrap_socket(transport.sock, True, None, owner=transport)

    def expiring(self, now):
        """(certificate, days left) of the certificates expiring within EXPIRY_WARNING of `now` (or expired)."""
        return [(certificate, (certificate.not_after - now).days) for certificate in self.certificates
                if certificate.not_after - now < EXPIRY_WARNING]

    def describe(self):
        """One line for the error log: versions, certificates, and how files are sent."""
        context = self.default
        sni = f" + {len(self.certificates) - 1} by SNI" if len(self.certificates) > 1 else ""
        files = ("kernel TLS (sendfile) where the kernel takes the cipher" if self.kernel_tls else
                 f"no kernel TLS (no 'tls' in {ULP_LIST}): files are encrypted by the workers in chunks")
        return (f"TLS {context.minimum_version.name}-{context.maximum_version.name}, certificate "
                f"{self.certificates[0].path}{sni}; {files}")


def expiry_text(certificate, days):
    """What the log and -t say of a certificate about to expire."""
    return (f"certificate {certificate.path} expires on {certificate.not_after:%Y-%m-%d %H:%M} UTC "
            f"({f'in {days} days' if days >= 0 else 'expired'})")


def load_failure(error):
    """Why load_cert_chain failed, in words."""
    if isinstance(error, ssl.SSLError):
        return SSL_REASONS.get(error.reason, error.reason) if error.reason else NO_PEM
    return getattr(error, "strerror", None) or str(error)


def refuse_password():
    """A key protected by a passphrase would make OpenSSL prompt on the terminal: refuse it instead."""
    raise ValueError("the key is encrypted; give an unencrypted key readable by the master only")


def load_tls(config, needed):
    """The TlsContexts of config (None when no listener speaks TLS: `needed` is false)."""
    if not needed:
        return None
    if not config.tls_certificate:
        raise ConfigError("tls_certificate: needed by the TLS listeners")
    return TlsContexts(config)


def kernel_tls_available():
    """Can OpenSSL hand the record layer to the kernel (kTLS)? The kernel lists the tls ULP, OpenSSL is 3+."""
    try:
        with open(ULP_LIST) as f:
            ulps = f.read().split()
    except OSError:
        return False
    return "tls" in ulps and ssl.OPENSSL_VERSION_INFO >= (3,)


def certificate_not_after(path):
    """When the first certificate of a PEM file expires (UTC), read from its DER form (RFC 5280 4.1:
    Certificate -> tbsCertificate -> [version], serialNumber, signature, issuer, validity -> notAfter)."""
    with open(path) as f:
        text = f.read()
    start = text.index(PEM_CERTIFICATE)
    der = ssl.PEM_cert_to_DER_cert(text[start:text.index(PEM_END, start) + len(PEM_END)])
    tbs = der_contents(der, der_contents(der, 0)[0])[0]  # Certificate's first element
    position = tbs
    tag, _, end = der_element(der, position)
    if tag == DER_VERSION:
        position = end
    for _ in range(3):  # serialNumber, signature, issuer
        position = der_element(der, position)[2]
    validity = der_contents(der, position)[0]
    not_after = der_element(der, der_element(der, validity)[2])
    tag, start, end = not_after
    text = der[start:end].decode("ascii")
    moment = datetime.datetime.strptime(text, DER_UTC_FORMAT if tag == DER_UTC_TIME else DER_GENERALIZED_FORMAT)
    return moment.replace(tzinfo=datetime.timezone.utc)


def der_element(der, position):
    """(tag, start of its contents, end) of the DER element at `position`."""
    tag, length = der[position], der[position + 1]
    start = position + 2
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold the length
        size = length & 0x7F
        length = int.from_bytes(der[start:start + size], "big")
        start += size
    return tag, start, start + length


def der_contents(der, position):
    """(start, end) of the contents of the DER element at `position`."""
    return der_element(der, position)[1:]
