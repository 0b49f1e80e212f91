"""Certificates for the TLS tests (issue 15): a test CA (trustme) and PEM files of leaves it issues."""

import ssl

import trustme


class TestCertificates:
    """A test CA, its certificate in `ca_path`, and the default leaf (localhost, 127.0.0.1), one for SNI
    (other.test) and a wildcard (*.wild.test) as PEM files in `directory`. `context` is a client context
    trusting the CA (one, so that its sessions can resume)."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory, **default_options):
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_path = self.write("ca.pem", self.ca.cert_pem.bytes())
        self.context = ssl.create_default_context(cafile=self.ca_path)
        self.cert, self.key = self.issue("default", "localhost", "127.0.0.1", **default_options)
        self.other_cert, self.other_key = self.issue("other", "other.test")
        self.wild_cert, self.wild_key = self.issue("wild", "*.wild.test")

    def write(self, name, data):
        path = str(self.directory / name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def issue(self, name, *names, **options):
        """(certificate file with its chain, key file) of a new leaf for `names`, its common name the first."""
        leaf = self.ca.issue_cert(*names, common_name=names[0], **options)
        return (self.write(f"{name}.pem", b"".join(blob.bytes() for blob in leaf.cert_chain_pems)),
                self.write(f"{name}.key", leaf.private_key_pem.bytes()))

    def client_context(self, alpn=None):
        if alpn is None:
            return self.context
        context = ssl.create_default_context(cafile=self.ca_path)
        context.set_alpn_protocols(alpn)
        return context
