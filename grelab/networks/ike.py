"""IKEv2 with a real daemon, as data: strongSwan's charon in r1 and r2 negotiates the ESP that protects the two
offices' GRE (grelab.networks.offices), the peers authenticated by a pre-shared key or by certificates of a
test CA made at run time.

    r1 (initiator) ==IKEv2, UDP 500, across the isp== r2 (responder)
    then ESP in transport mode around GRE between 198.51.100.1 and 203.0.113.1, SPIs and keys negotiated

Each router runs Debian's charon (its plugins loaded by name: no OpenSSL plugin in Debian's base packages, so
IKE itself is AES-SHA-256 with MODP-2048 and the certificates are RSA) and a swanctl that loads the connection
once charon's control socket is there and exits; r1 initiates the child SA once both hold it. grelab reads the
keys back from r1's kernel (`ip -s xfrm state`: grelab.dut.daemon.read_sas) into the case's SAs (Net.negotiated),
so the case's expectations decrypt the transit, and its golden holds that ESP re-encrypted with stand-in SAs
derived like a variant's (the same every run). IKE itself (random SPIs, nonces, key exchange) is left out of goldens.
"""
from __future__ import annotations

import datetime
import functools
import ipaddress
import re
import time
from concurrent.futures import ThreadPoolExecutor

from grelab.dut.daemon import client, folder, read_sas, wait_until
from grelab.dut.plan import Daemon, Plan
from grelab.networks import offices
from grelab.scenario.spec import Scenario, Variant

CHARON_LIB = "/usr/lib/ipsec"  # libcharon, libstrongswan, and the plugins in plugins/
VICI = "{dir}/../charon/charon.vici"  # charon's control socket, as swanctl's folder sees it
CHARON_PLUGINS = "random nonce aes sha1 sha2 hmac kdf gmp pem pkcs1 pkcs8 x509 pubkey kernel-netlink socket-default vici"
SWANCTL_PLUGINS = "random pem pkcs1 pkcs8 x509 pubkey gmp"
IKE_PROPOSAL, ESP_PROPOSAL, ESP_ALGORITHM = "aes128-sha256-modp2048", "aes128gcm16", "gcm128"
PSK = "grelab's test key: not a secret"
# The daemons' start to the child SA in both kernels (both charons start together, r1 initiates once both hold the
# connection): the bound the scenario asserts.
CONVERGENCE_S = 5

PSK_VARIANT = Variant(f"ikev2-psk-{ESP_ALGORITHM}", esp=ESP_ALGORITHM)
CERTS_VARIANT = Variant(f"ikev2-certs-{ESP_ALGORITHM}", esp=ESP_ALGORITHM)


def identity(router: str) -> str:
    return f"{router}.grelab.test"


@functools.cache
def test_ca() -> dict[str, tuple[str, str]]:
    """A CA and a certificate for r1 and r2 (subjectAltName their identity), made once per process with
    `cryptography`: {name: (certificate PEM, private key PEM, PKCS#8)}, "ca" holding the CA's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool, san: str | None):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def pem(cert, key) -> tuple[str, str]:
        return (cert.public_bytes(serialization.Encoding.PEM).decode(),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode())
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    out = {"ca": pem(certificate("grelab test CA", ca_key, "grelab test CA", ca_key, True, None), ca_key)}
    for router in ("r1", "r2"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        out[router] = pem(certificate(identity(router), key, "grelab test CA", ca_key, False, identity(router)), key)
    return out


def swanctl_conf(me: str, peer: str, local: str, remote: str, certs: bool) -> dict[str, str]:
    """swanctl's folder for `me`: one IKEv2 connection to `peer` protecting GRE between the two addresses in
    transport mode; with certs, the CA's certificate, `me`'s own and its key, else the shared key."""
    auth = "pubkey" if certs else "psk"
    own_cert = f"\n      certs = {me}.pem" if certs else ""
    conf = f"""connections {{
  gre {{
    version = 2
    local_addrs = {local}
    remote_addrs = {remote}
    proposals = {IKE_PROPOSAL}
    mobike = no
    local {{
      auth = {auth}
      id = {identity(me)}{own_cert}
    }}
    remote {{
      auth = {auth}
      id = {identity(peer)}
    }}
    children {{
      gre {{
        mode = transport
        local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        esp_proposals = {ESP_PROPOSAL}
      }}
    }}
  }}
}}
"""
    if certs:
        ca = test_ca()
        return {"swanctl.conf": conf, "x509ca/ca.pem": ca["ca"][0], f"x509/{me}.pem": ca[me][0],
                f"private/{me}.pem": ca[me][1]}
    return {"swanctl.conf": conf + f'secrets {{\n  ike {{\n    id-me = {identity(me)}\n    id-peer = {identity(peer)}\n'
                                   f'    secret = "{PSK}"\n  }}\n}}\n'}


def strongswan_conf() -> str:
    """charon's and swanctl's settings: plugins by name, no routes of its own (transport mode needs none), IKE
    retransmitted after 0.5 s (the default 4 s: r2's charon may not listen yet when r1's first request comes),
    the control socket in charon's folder, the log on stderr (its log there)."""
    return f"""charon {{
  load = {CHARON_PLUGINS}
  install_routes = no
  retransmit_timeout = 0.5
  retransmit_base = 1.4
  plugins {{
    vici {{
      socket = unix://{{dir}}/charon.vici
    }}
  }}
  filelog {{
    log {{
      path = stderr
      default = 1
      ike = 2
    }}
  }}
}}
swanctl {{
  load = {SWANCTL_PLUGINS}
}}
"""


def charon(me: str, peer: str, local: str, remote: str, certs: bool) -> Plan:
    """charon, then a swanctl loading its connection (and credentials) once charon's control socket is there."""
    conf = {"strongswan.conf": strongswan_conf(),
            **{f"swanctl/{path}": text for path, text in swanctl_conf(me, peer, local, remote, certs).items()}}
    daemon = Daemon("charon", (f"{CHARON_LIB}/charon",), conf, env={"STRONGSWAN_CONF": "{dir}/strongswan.conf"},
                    library_paths=(CHARON_LIB,))
    loader = Daemon("swanctl", ("/usr/sbin/swanctl", "--load-all", "--noprompt", "--uri", f"unix://{VICI}"),
                    env={"STRONGSWAN_CONF": "{dir}/../charon/strongswan.conf", "SWANCTL_DIR": "{dir}/../charon/swanctl"},
                    library_paths=(CHARON_LIB,), after=VICI, oneshot=True)
    return Plan(daemons=(daemon, loader))


def routers(variant: Variant, sas) -> dict[str, Plan]:
    """The offices' GRE tunnel, and charon in each router to protect it."""
    certs = variant is CERTS_VARIANT
    plans = offices.connect(offices.PLAIN_GRE, sas)
    plans["r1"] += charon("r1", "r2", offices.R1_WAN, offices.R2_WAN, certs)
    plans["r2"] += charon("r2", "r1", offices.R2_WAN, offices.R1_WAN, certs)
    return plans


def two_offices_ike(name: str = "ikev2", variants=(PSK_VARIANT, CERTS_VARIANT), **changes) -> Scenario:
    """The two offices, their GRE protected by ESP that charon negotiates (IKE left out of goldens)."""
    fields = dict(tunnels=routers, routing=frozenset({"ike"}))
    return offices.two_offices(name, variants, **{**fields, **changes})


def swanctl(dut, *args: str) -> str:
    """A swanctl command line for `dut`, talking to the case's charon there."""
    charon_folder = folder(dut, "charon")
    return client(dut, ["/usr/sbin/swanctl", *args, "--uri", f"unix://{charon_folder}/charon.vici"],
                  library_paths=(CHARON_LIB,), env=[("STRONGSWAN_CONF", f"{charon_folder}/strongswan.conf")])


# How charon logs a peer authenticated by each variant's means: "authentication of 'r2.grelab.test' with ... successful".
AUTHENTICATION = {PSK_VARIANT.id: "pre-shared key", CERTS_VARIANT.id: "RSA_EMSA_PKCS1_SHA2_256"}


def authenticated(net) -> dict[str, str]:
    """{router: how its charon authenticated the other router}, from charon's log."""
    out = {}
    for me, peer in (("r1", "r2"), ("r2", "r1")):
        log = folder(net.dut(me), "charon") + "/log"
        lines = net.dut(me).cmd(f"grep \"authentication of '{identity(peer)}' with\" {log}").output
        found = re.search(rf"authentication of '{identity(peer)}' with (.+) successful", lines)
        out[me] = found.group(1) if found else f"none logged: {lines.strip() or 'no such line'}"
    return out


# Both ESP states and the outbound policy in the kernel (a DUT shell test).
INSTALLED = "[ $(/sbin/ip xfrm state | grep -c '^src') -ge 2 ] && /sbin/ip xfrm policy | grep -q 'dir out'"


def established(net, record_property) -> float:
    """Once both charons hold the connection (charon logs its loading), r1 initiates it (swanctl --initiate: had r1
    started it on loading, r2 might not know it yet and refuse it for good, NO_PROPOSAL_CHOSEN); then until both
    kernels hold the negotiated SAs and policies. The seconds since the daemons started, reported as the case's
    convergence_s, at most CONVERGENCE_S. The SAs are then the case's (Net.negotiated)."""
    started = min(net.dut(name).daemons_started for name in ("r1", "r2"))
    left = lambda: max(0.0, CONVERGENCE_S - (time.monotonic() - started))  # noqa: E731
    for router in ("r1", "r2"):
        dut = net.dut(router)
        wait_until(dut, f"grep -q 'added vici connection: gre' {folder(dut, 'charon')}/log", timeout=left(),
                   what="charon's connection loaded", logs=["charon", "swanctl"])
    r1 = net.dut("r1")
    r1.check(swanctl(r1, "--initiate", "--child", "gre", "--timeout", str(max(1, int(left())))))
    for router in ("r1", "r2"):
        wait_until(net.dut(router), INSTALLED, timeout=left(), what="the IKE-negotiated SAs", logs=["charon"])
    took = time.monotonic() - started
    record_property("convergence_s", round(took, 2))
    print(f"IKE SAs installed in {took:.2f} s")
    net.negotiated(read_sas(r1))
    return took


# The stream's echoes carry 600 bytes: on any link, the case's only frames over 500 bytes, told apart without
# decrypting (IKE's are left out of goldens anyway).
STREAM_PAYLOAD, STREAM_FRAME = b"grelab stream " * 43, 500


def rekey_mid_stream(net, at: int, after: int = 20, interval: float = 0.002) -> tuple[dict, list[int]]:
    """h1 streams echoes to h2 (one every `interval` s, never waiting for replies); once echo `at` left, r1's charon
    is asked to rekey the child SA (swanctl --rekey, in a thread of its own: the stream goes on), and the stream goes
    on until the rekey is over (neither router's kernel holds its old outbound SA: the old SAs' delete exchanged)
    and `after` echoes more, at most 5 s. Returns ({"r1->r2" / "r2->r1": {"old": stream frames under the SA before,
    "new": under the new one}}, the echoes left unanswered). The new SAs become the case's (Net.negotiated); the
    stream stays out of the golden (which SA carries which echo is the daemons' timing), what comes before and after
    it stays in."""
    from grelab.scenario.hosts import echo_stream
    net.leave_out(lambda frame: len(frame) > STREAM_FRAME)
    old = {sa.spi for sa in net.sas}
    outbound = {router: next(sa.spi for sa in net.sas if sa.src == address)
                for router, address in (("r1", offices.R1_WAN), ("r2", offices.R2_WAN))}
    rekeying, ended = [], []  # the rekey's future once echo `at` left; the echoes sent when it was over

    def rekey() -> None:
        r1 = net.dut("r1")
        r1.check(swanctl(r1, "--rekey", "--child", "gre"))
        for router, spi in outbound.items():
            wait_until(net.dut(router), f"! /sbin/ip xfrm state | grep -q 'spi 0x{spi:08x}'", timeout=5,
                       what=f"{router}'s old outbound SA gone after the rekey", logs=["charon"])

    def until(sent: int) -> bool:
        if rekeying and rekeying[0].done() and not ended:
            ended.append(sent)
        return bool(ended) and sent >= ended[0] + after
    with ThreadPoolExecutor(1, thread_name_prefix="ike-rekey") as pool:
        answered = echo_stream(net.lab, "h1", offices.H2, at, interval=interval, at=at, payload=STREAM_PAYLOAD,
                               midway=lambda: rekeying.append(pool.submit(rekey)), until=until,
                               limit=at + int(5 / interval))
        rekeying[0].result()  # its failure, if any, raised here
    assert ended, f"the rekey was not over after {answered.sent} echoes"
    net.negotiated(read_sas(net.dut("r1")))
    carried = {direction: {"old": 0, "new": 0} for direction in ("r1->r2", "r2->r1")}
    for _, frame in net.golden.frames("transit"):
        if len(frame) > STREAM_FRAME and frame[12:14] == b"\x08\x00" and frame[23] == 50:  # IPv4 / ESP
            spi = int.from_bytes(frame[34:38], "big")
            direction = "r1->r2" if frame[26:30] == ipaddress.ip_address(offices.R1_WAN).packed else "r2->r1"
            carried[direction]["old" if spi in old else "new"] += 1
    return carried, sorted(set(range(1, answered.sent + 1)) - set(answered))
