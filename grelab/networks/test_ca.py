"""The IKE story's test CA, made once per process with `cryptography`: a CA and a certificate for r1 and r2
(subjectAltName their identity), as PEM for strongSwan and as an NSS database for libreswan (certutil and pk12util,
the tools of Debian's libnss3-tools, on the host: pluto reads its certificates and keys only from NSS).

    pem = certificates()["r1"]      # (certificate PEM, private key PEM, PKCS#8)
    files = nss_database("r1")      # {"cert9.db": bytes, "key4.db": bytes}: the CA trusted, r1's key and certificate
"""
from __future__ import annotations

import datetime
import functools
import subprocess
import tempfile
from pathlib import Path

from grelab.dut.base import DutError

CA_NAME = "grelab test CA"  # its subject's common name, and its nickname in an NSS database
NSS_FILES = ("cert9.db", "key4.db")  # an NSS "sql:" database; its pkcs11.txt is written where it is used


def identity(router: str) -> str:
    return f"{router}.grelab.test"


@functools.cache
def certificates() -> dict[str, tuple[str, str]]:
    """{name: (certificate PEM, private key PEM, PKCS#8)}, "ca" holding the CA's, r1 and r2 their own."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731

    def certificate(subject: str, key, issuer_key, ca: bool, san: str | None):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(CA_NAME))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    out = {"ca": _pem(certificate(CA_NAME, ca_key, ca_key, True, None), ca_key)}
    for router in ("r1", "r2"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        out[router] = _pem(certificate(identity(router), key, ca_key, False, identity(router)), key)
    return out


def _pem(cert, key) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def pkcs12(router: str) -> bytes:
    """The router's key and certificate as PKCS#12 (no password), what pk12util imports."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12 as p12
    cert, key = certificates()[router]
    return p12.serialize_key_and_certificates(identity(router).encode(), serialization.load_pem_private_key(key.encode(), None),
                                              x509.load_pem_x509_certificate(cert.encode()), None,
                                              serialization.NoEncryption())


@functools.cache
def nss_database(router: str | None) -> dict[str, bytes]:
    """An NSS database's files, made with certutil: empty for None (libreswan with a pre-shared key still opens one),
    else holding the CA's certificate trusted to issue peers' (CT,,) and the router's certificate and key (pk12util),
    its nickname the router's identity."""
    with tempfile.TemporaryDirectory(prefix="grelab-nss-") as folder:
        db = f"sql:{folder}"
        _tool(["certutil", "-N", "-d", db, "--empty-password"])
        if router is not None:
            ca = Path(folder) / "ca.pem"
            ca.write_text(certificates()["ca"][0])
            _tool(["certutil", "-A", "-d", db, "-n", CA_NAME, "-t", "CT,,", "-a", "-i", str(ca)])
            own = Path(folder) / f"{router}.p12"
            own.write_bytes(pkcs12(router))
            _tool(["pk12util", "-i", str(own), "-d", db, "-W", ""])
        return {name: (Path(folder) / name).read_bytes() for name in NSS_FILES}


def _tool(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise DutError(f"{argv[0]}: {exc.strerror or exc}: install libnss3-tools (setup.sh does)") from None
    if done.returncode != 0:
        raise DutError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")
