"""A certificate like a real deployment's, for the TLS bench and `make testssl`: a local CA and an ECDSA P-256
leaf for localhost, valid 90 days (as Let's Encrypt's), with CRL and OCSP addresses, made with the openssl CLI.
"""

import os
import subprocess
from dataclasses import dataclass

LEAF_DAYS = 90
CA_DAYS = 3650
CURVE = "prime256v1"  # ECDSA P-256
LEAF_EXTENSIONS = """subjectAltName = DNS:localhost, IP:127.0.0.1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
crlDistributionPoints = URI:http://crl.oserver.test/ca.crl
authorityInfoAccess = OCSP;URI:http://ocsp.oserver.test, caIssuers;URI:http://ca.oserver.test/ca.pem
"""
OPENSSL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Certificate:
    ca: str  # the CA certificate, for clients to trust
    cert: str  # the leaf
    key: str


def make_certificate(directory):
    """Write ca.pem, cert.pem and key.pem in `directory` (made anew each time); their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, name) for name in
             ("ca.pem", "ca.key", "cert.pem", "key.pem", "leaf.csr", "leaf.ext", "ca.srl")}
    with open(paths["leaf.ext"], "w") as f:
        f.write(LEAF_EXTENSIONS)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{CURVE}", "-nodes",
            "-days", str(CA_DAYS), "-subj", "/O=OServer bench/CN=OServer bench CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", paths["ca.key"], "-out", paths["ca.pem"])
    openssl("req", "-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{CURVE}", "-nodes", "-subj", "/CN=localhost",
            "-keyout", paths["key.pem"], "-out", paths["leaf.csr"])
    openssl("x509", "-req", "-in", paths["leaf.csr"], "-CA", paths["ca.pem"], "-CAkey", paths["ca.key"],
            "-CAserial", paths["ca.srl"], "-CAcreateserial", "-days", str(LEAF_DAYS), "-sha256",
            "-extfile", paths["leaf.ext"], "-out", paths["cert.pem"])
    return Certificate(paths["ca.pem"], paths["cert.pem"], paths["key.pem"])


def openssl(*args):
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=OPENSSL_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr.strip()}")
