"""IKEv2 implementations as rows of one table: strongSwan's charon and libreswan's pluto, each told the same story
(one IKEv2 connection "gre" between two routers protecting GRE in ESP transport mode, IKE AES-128-SHA-256 with
MODP-2048, ESP AES-GCM-128 without PFS or ESN, a pre-shared key or certificates of the run's test CA) in its own
configuration language, started as DUT daemons (grelab.dut.daemon), and asked to initiate and to rekey with its
own client.

    row = IMPLEMENTATIONS["libreswan"]
    plan = row.plan(End("r1", "r2", "198.51.100.1", "203.0.113.1", "certs"))   # the daemons, their config
    dut.check(row.initiate(dut))                                                # whack --initiate ... --asynchronous

A row's config renderers are pure (text from data); what touches a DUT is the shell command it returns. strongSwan is
Debian's installed strongswan-charon and swanctl; libreswan conflicts with it and runs from the package unpacked in
grelab's cache (grelab.dut.unpacked), its certificates and keys in an NSS database made on the host
(grelab.networks.test_ca).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from grelab.dut.daemon import Daemon, client, folder
from grelab.dut.plan import Plan
from grelab.dut.unpacked import LIBRESWAN, unpack
from grelab.networks.test_ca import CA_NAME, NSS_FILES, certificates, identity, nss_database

CONNECTION = "gre"  # the connection's and its child SA's name in both daemons
PSK = "grelab's test key: not a secret"


@dataclass(frozen=True)
class End:
    """One router's side of the connection: who it is, who the peer is, their addresses, "psk" or "certs", and the
    child SA's ESP mode (the variant's)."""
    me: str
    peer: str
    local: str
    remote: str
    auth: str
    mode: str = "transport"


@dataclass(frozen=True)
class Implementation:
    """How one IKEv2 implementation is run and asked things. plan: its daemons (and their config) for one End;
    daemon: the one whose log tells what it did; logs: its daemons' names (their logs go with a failure); loaded: a shell test on that log ({log}) that the connection is
    loaded (so a peer's request finds it); initiate(dut, seconds): the client's command for a DUT, returning within
    those seconds (grelab then waits on the kernels, to a deadline); rekey(dut): likewise; authenticated: regexes
    over its log ({peer}: the peer's identity) whose group "how" says how it authenticated the peer; methods: {what grelab calls that: a regex that
    wording fullmatches}; signature: how it signs its AUTH payload with a certificate as the initiator (what a
    verifying peer says); mirrors: as the responder it signs as the initiator did instead."""
    name: str
    plan: Callable[[End], Plan]
    daemon: str
    logs: tuple[str, ...]
    loaded: str
    initiate: Callable[[object, int], str]
    rekey: Callable[[object], str]
    authenticated: tuple[str, ...]
    methods: dict[str, str]
    signature: str
    mirrors: bool = False

    def how_authenticated(self, log: str, peer: str) -> str:
        """How its log says it authenticated `peer`: a name of `methods`, else the words themselves (or that none)."""
        found = next(filter(None, (re.search(pattern.format(peer=re.escape(identity(peer))), log)
                                   for pattern in self.authenticated)), None)
        if not found:
            return f"no authentication of {identity(peer)} logged"
        how = found.group("how")
        return next((method for method, pattern in self.methods.items() if re.fullmatch(pattern, how)), how)


# Canonical names of how a peer was authenticated: the pre-shared key, or the signature scheme its AUTH carried.
PSK_AUTH, PKCS1_SHA256, PSS_SHA512 = "pre-shared key", "RSA PKCS#1 v1.5 SHA-256", "RSASSA-PSS SHA-512"

# --- strongSwan: charon, and swanctl loading the connection once charon's control socket is there ---------------

CHARON_LIB = "/usr/lib/ipsec"  # libcharon, libstrongswan, and the plugins in plugins/
VICI = "{dir}/../charon/charon.vici"  # charon's control socket, as swanctl's folder sees it
# By name: no OpenSSL plugin in Debian's base packages, so IKE is AES-SHA-256 with MODP-2048 and the certificates
# RSA; mgf1 lets gmp verify RSASSA-PSS signatures (libreswan's).
CHARON_PLUGINS = ("random nonce aes sha1 sha2 hmac kdf gmp mgf1 pem pkcs1 pkcs8 x509 pubkey kernel-netlink "
                  "socket-default vici")
SWANCTL_PLUGINS = "random pem pkcs1 pkcs8 x509 pubkey gmp"
STRONGSWAN_PROPOSALS = {"ike": "aes128-sha256-modp2048", "esp": "aes128gcm16"}


def swanctl_conf(end: End, proposals: dict = STRONGSWAN_PROPOSALS) -> dict[str, str]:
    """swanctl's folder for end.me: one IKEv2 connection to the peer protecting GRE between the two addresses in
    end.mode; with certs, the CA's certificate, its own and its key, else the shared key."""
    certs = end.auth == "certs"
    auth = "pubkey" if certs else "psk"
    own_cert = f"\n      certs = {end.me}.pem" if certs else ""
    conf = f"""connections {{
  {CONNECTION} {{
    version = 2
    local_addrs = {end.local}
    remote_addrs = {end.remote}
    proposals = {proposals['ike']}
    mobike = no
    local {{
      auth = {auth}
      id = {identity(end.me)}{own_cert}
    }}
    remote {{
      auth = {auth}
      id = {identity(end.peer)}
    }}
    children {{
      {CONNECTION} {{
        mode = {end.mode}
        local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        esp_proposals = {proposals['esp']}
      }}
    }}
  }}
}}
"""
    if certs:
        ca = certificates()
        return {"swanctl.conf": conf, "x509ca/ca.pem": ca["ca"][0], f"x509/{end.me}.pem": ca[end.me][0],
                f"private/{end.me}.pem": ca[end.me][1]}
    return {"swanctl.conf": conf + f'secrets {{\n  ike {{\n    id-me = {identity(end.me)}\n'
                                   f'    id-peer = {identity(end.peer)}\n    secret = "{PSK}"\n  }}\n}}\n'}


def strongswan_conf(plugins: str = CHARON_PLUGINS, settings: str = "", plugin_settings: str = "") -> str:
    """charon's and swanctl's settings: plugins by name, no routes of its own (transport mode needs none), IKE
    retransmitted after 0.5 s (the default 4 s: a peer may not listen yet when the first request comes), the
    control socket in charon's folder, the log on stderr (its log there); settings and plugin_settings: lines more
    in charon's section and in its plugins' (a row's own, e.g. STRONGSWAN_LIBIPSEC's)."""
    return f"""charon {{
  load = {plugins}
  install_routes = no
{settings}  retransmit_timeout = 0.5
  retransmit_base = 1.4
  plugins {{
{plugin_settings}    vici {{
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


def charon(end: End, proposals: dict = STRONGSWAN_PROPOSALS, settings: str | None = None) -> Plan:
    """charon, then a swanctl loading its connection (and credentials) once charon's control socket is there;
    proposals: {"ike": ..., "esp": ...} in strongSwan's words; settings: its strongswan.conf (strongswan_conf's)."""
    conf = {"strongswan.conf": strongswan_conf() if settings is None else settings,
            **{f"swanctl/{path}": text for path, text in swanctl_conf(end, proposals).items()}}
    daemon = Daemon("charon", (f"{CHARON_LIB}/charon",), conf, env={"STRONGSWAN_CONF": "{dir}/strongswan.conf"},
                    library_paths=(CHARON_LIB,))
    loader = Daemon("swanctl", ("/usr/sbin/swanctl", "--load-all", "--noprompt", "--uri", f"unix://{VICI}"),
                    env={"STRONGSWAN_CONF": "{dir}/../charon/strongswan.conf", "SWANCTL_DIR": "{dir}/../charon/swanctl"},
                    library_paths=(CHARON_LIB,), after=VICI, oneshot=True)
    return Plan(daemons=(daemon, loader))


def swanctl(dut, *args: str) -> str:
    """A swanctl command line for `dut`, talking to the case's charon there."""
    charon_folder = folder(dut, "charon")
    return client(dut, ["/usr/sbin/swanctl", *args, "--uri", f"unix://{charon_folder}/charon.vici"],
                  library_paths=(CHARON_LIB,), env=[("STRONGSWAN_CONF", f"{charon_folder}/strongswan.conf")])


STRONGSWAN = Implementation(
    "strongswan", charon, daemon="charon", logs=("charon", "swanctl"), loaded=f"grep -q 'added vici connection: {CONNECTION}' {{log}}",
    # swanctl --initiate waits for the exchange's end, at most --timeout seconds: its failure says what charon saw
    initiate=lambda dut, seconds: swanctl(dut, "--initiate", "--child", CONNECTION, "--timeout", str(max(1, seconds))),
    rekey=lambda dut: swanctl(dut, "--rekey", "--child", CONNECTION),
    authenticated=(r"authentication of '{peer}' with (?P<how>.+) successful",),
    methods={PSK_AUTH: "pre-shared key", PKCS1_SHA256: "RSA_EMSA_PKCS1_SHA2_256", PSS_SHA512: r"RSA_EMSA_PSS_SHA2_512_SALT_64"},
    # charon.rsa_pss defaults to no: PKCS#1 v1.5, with the strongest hash both sides support of its default set
    signature=PKCS1_SHA256)

# --- strongSwan with kernel-libipsec: charon does ESP itself, through a TUN device (grelab.networks.libipsec) ---

LIBIPSEC_FWMARK = "0x42"  # on charon's own packets, which the rule into libipsec's routing table skips
# The first kernel-ipsec plugin loaded is the one charon uses (kernel_interface.c, add_ipsec_interface): libipsec's,
# kernel-netlink's routing part still used. libipsec does ESP with strongSwan's own crypto: gcm for AES-GCM.
LIBIPSEC_PLUGINS = CHARON_PLUGINS.replace("kernel-netlink", "gcm kernel-libipsec kernel-netlink")
REPLAY_WINDOW = 32  # packets: charon's replay_window (its default), said


def libipsec_conf() -> str:
    """strongswan_conf with kernel-libipsec's plugins, no NAT keepalives (the NAT libipsec fakes would send one every
    20 s: not a case's traffic), the replay window said; libipsec allowed traffic selectors naming the IKE peer (GRE
    between the routers), its routes kept off charon's own packets by their firewall mark."""
    return strongswan_conf(LIBIPSEC_PLUGINS, f"  keep_alive = 0\n  replay_window = {REPLAY_WINDOW}\n", f"""\
    kernel-libipsec {{
      allow_peer_ts = yes
    }}
    kernel-netlink {{
      fwmark = !{LIBIPSEC_FWMARK}
    }}
    socket-default {{
      fwmark = {LIBIPSEC_FWMARK}
    }}
""")


STRONGSWAN_LIBIPSEC = dataclasses.replace(
    STRONGSWAN, name="strongswan-libipsec", plan=lambda end, proposals=STRONGSWAN_PROPOSALS: charon(
        end, proposals, libipsec_conf()))

# --- libreswan: pluto, which loads its connections itself (addconn) -------------------------------------------

IPSEC = "/usr/libexec/ipsec"  # pluto, whack, addconn: in the unpacked package (grelab.dut.unpacked)
LIBRESWAN_PROPOSALS = {"ike": "aes128-sha2_256-modp2048", "esp": "aes_gcm128"}  # strongSwan's, in libreswan's words


def ipsec_conf(end: End, proposals: dict = LIBRESWAN_PROPOSALS) -> str:
    """pluto's connection: the same story in ipsec.conf's words. No updown script (there is no `ipsec` command in the
    guest, and transport mode needs no route), no PFS or ESN (what strongSwan's proposal asks), IKEv2 only."""
    certs = end.auth == "certs"
    auth = (f"    authby=rsasig\n    leftcert={identity(end.me)}\n    leftrsasigkey=%cert\n    rightrsasigkey=%cert\n"
            f"    rightca=%same\n" if certs else "    authby=secret\n")
    return f"""config setup
    logtime=yes
conn {CONNECTION}
    ikev2=insist
    left={end.local}
    leftid=@{identity(end.me)}
    right={end.remote}
    rightid=@{identity(end.peer)}
{auth}    type={end.mode}
    leftprotoport=gre
    rightprotoport=gre
    ike={proposals['ike']}
    esp={proposals['esp']}
    pfs=no
    esn=no
    mobike=no
    leftupdown=%disabled
    rightupdown=%disabled
    auto=add
"""


def ipsec_secrets(end: End) -> str:
    """The pre-shared key between the two identities (with certificates, pluto finds its key in NSS by leftcert)."""
    return "" if end.auth == "certs" else f'@{identity(end.me)} @{identity(end.peer)} : PSK "{PSK}"\n'


def pluto(end: End, proposals: dict = LIBRESWAN_PROPOSALS) -> Plan:
    """pluto with every compiled-in path moved to its folder (no /etc/ipsec.*, /run/pluto or /var/lib/ipsec/nss in
    the guest). pluto itself runs addconn --autoall on its --config once it listens (programs/pluto/server.c), from
    its compiled-in /usr/libexec/ipsec: that folder is linked to the unpacked package's (library_paths). proposals:
    {"ike": ..., "esp": ...} in libreswan's words."""
    root = libreswan_root()
    nss = nss_database(end.me if end.auth == "certs" else None)
    files = {"ipsec.conf": ipsec_conf(end, proposals), "ipsec.secrets": ipsec_secrets(end),
             **{f"nss/{name}": nss[name] for name in NSS_FILES},
             "nss/pkcs11.txt": ("library=\nname=NSS Internal PKCS #11 Module\nparameters=configdir='sql:{dir}/nss' "
                                "certPrefix='' keyPrefix='' secmod='secmod.db' flags=\n"
                                "NSS=Flags=internal,critical trustOrder=75 cipherOrder=100\n")}
    daemon = Daemon("pluto", (f"{IPSEC}/pluto", "--nofork", "--stderrlog", "--config", "{dir}/ipsec.conf",
                              "--rundir", "{dir}", "--ipsecdir", "{dir}", "--nssdir", "{dir}/nss",
                              "--secretsfile", "{dir}/ipsec.secrets", "--no-dnssec", "--ikev1-drop"),
                    files, library_paths=(IPSEC,), root=root)
    return Plan(daemons=(daemon,))


@functools.cache
def libreswan_root() -> str:
    """Debian's libreswan unpacked in grelab's cache (grelab.dut.unpacked), checked once per process."""
    return str(unpack(LIBRESWAN))


def whack(dut, *args: str) -> str:
    """A whack command line for `dut`, talking to the case's pluto there."""
    return client(dut, [f"{IPSEC}/whack", "--ctlsocket", f"{folder(dut, 'pluto')}/pluto.ctl", *args],
                  root=libreswan_root())


LIBRESWAN_ROW = Implementation(
    "libreswan", pluto, daemon="pluto", logs=("pluto",), loaded=f"grep -q '\"{CONNECTION}\": added IKEv2 connection' {{log}}",
    # whack --initiate would wait through pluto's retransmissions (a minute): asynchronous, grelab waits on the kernels
    initiate=lambda dut, seconds: whack(dut, "--initiate", "--name", CONNECTION, "--asynchronous"),
    rekey=lambda dut: whack(dut, "--rekey-ipsec", "--name", CONNECTION, "--asynchronous"),
    # "initiator established IKE SA; authenticated peer using authby=secret and FQDN '@r2.grelab.test'", or
    # "... peer '2048-bit RSASSA-PSS with SHA2_512' digital signature using peer certificate '@r2.grelab.test' issued by
    # CA 'CN=grelab test CA'"
    # (programs/pluto/ikev2_psk.c, keys.c)
    authenticated=(r"established IKE SA; authenticated peer (?P<how>using authby=\S+) and \S+ '@?{peer}'",
                   r"established IKE SA; authenticated peer '(?P<how>[^']+)' [\w ]*signature using peer certificate "
                   rf"'@{{peer}}' issued by CA 'CN={CA_NAME}'"),
    methods={PSK_AUTH: "using authby=secret", PKCS1_SHA256: r"\d+-bit PKCS#1 1\.5 RSA with SHA2_256",
             PSS_SHA512: r"\d+-bit RSASSA-PSS with SHA2_512"},
    # RSASSA-PSS with the strongest hash both announced (SIGNATURE_HASH_ALGORITHMS), as the initiator; the responder
    # "prefer[s] the HASH and SIGNER algorithms saved when authenticating the initiator" (programs/pluto/
    # ikev2_ike_auth.c:997-1037, saved in ikev2_auth.c:567-569 at v4.10)
    signature=PSS_SHA512, mirrors=True)

IMPLEMENTATIONS = {row.name: row for row in (STRONGSWAN, STRONGSWAN_LIBIPSEC, LIBRESWAN_ROW)}
