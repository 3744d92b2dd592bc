"""The IKE story's parts that need no DUT: each implementation's config as its own tool parses it (libreswan's addconn),
how a daemon's log line reads as an authentication, the NSS database certutil made, the wire's IKE described (any
bytes accepted), and Debian's libreswan unpacked into the cache."""
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from scapy.contrib.ikev2 import IKEv2, IKEv2_KE, IKEv2_Nonce, IKEv2_Notify, IKEv2_Proposal, IKEv2_SA, IKEv2_Transform
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from grelab.dut.unpacked import LIBRESWAN, unpack, version
from grelab.networks import ike
from grelab.networks.ike_daemons import (IMPLEMENTATIONS, PKCS1_SHA256, PSK_AUTH, PSS_SHA512, End, ipsec_conf,
                                         ipsec_secrets, swanctl_conf)
from grelab.networks.ike_wire import describe, exchange
from grelab.networks.test_ca import CA_NAME, nss_database

R1, R2 = "198.51.100.1", "203.0.113.1"


@pytest.mark.parametrize("auth", ["psk", "certs"])
def test_libreswans_config_is_what_its_own_parser_reads(auth, tmp_path):
    """addconn --checkconfig (libreswan's own parser, from the unpacked package) takes the connection as written."""
    conf = tmp_path / "ipsec.conf"
    conf.write_text(ipsec_conf(End("r1", "r2", R1, R2, auth)))
    addconn = unpack(LIBRESWAN) / "usr/libexec/ipsec/addconn"
    done = subprocess.run([str(addconn), "--config", str(conf), "--checkconfig"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = subprocess.run([str(addconn), "--config", str(conf), "--listall"], capture_output=True, text=True)
    assert listed.stdout.split() == ["gre"]


def test_both_say_the_same_story_in_their_own_words():
    """The same ends, proposals and identities in swanctl.conf and ipsec.conf; the key only where it is used."""
    end = End("r1", "r2", R1, R2, "psk")
    swan, lib = swanctl_conf(end)["swanctl.conf"], ipsec_conf(end)
    for words in (["local_addrs = 198.51.100.1", "remote_addrs = 203.0.113.1", "aes128-sha256-modp2048",
                   "aes128gcm16", "mode = transport", "dynamic[gre]", "id = r1.grelab.test", "id = r2.grelab.test"],):
        assert all(w in swan for w in words), swan
    for words in (["left=198.51.100.1", "right=203.0.113.1", "ike=aes128-sha2_256-modp2048", "esp=aes_gcm128",
                   "type=transport", "leftprotoport=gre", "leftid=@r1.grelab.test", "rightid=@r2.grelab.test",
                   "authby=secret", "pfs=no", "esn=no"],):
        assert all(w in lib for w in words), lib
    assert ipsec_secrets(end) == "@r1.grelab.test @r2.grelab.test : PSK \"grelab's test key: not a secret\"\n"
    assert ipsec_secrets(End("r1", "r2", R1, R2, "certs")) == ""
    assert "leftcert=r1.grelab.test" in ipsec_conf(End("r1", "r2", R1, R2, "certs"))
    tunnel = End("r1", "r2", R1, R2, "psk", mode="tunnel")  # the variant's mode (userspace_esp's: tunnel)
    assert "mode = tunnel" in swanctl_conf(tunnel)["swanctl.conf"] and "type=tunnel" in ipsec_conf(tunnel)


# Lines as the daemons logged them in this story's cases.
LOGS = {
    "strongswan": ("16[IKE] authentication of 'r1.grelab.test' (myself) with RSA_EMSA_PKCS1_SHA2_256 successful\n"
                   "16[IKE] authentication of 'r2.grelab.test' with RSA_EMSA_PSS_SHA2_512_SALT_64 successful\n"),
    "libreswan": ("Dec  7 00:53:00.299893: \"gre\" #1: initiator established IKE SA; authenticated peer '2048-bit "
                  "PKCS#1 1.5 RSA with SHA2_256' digital signature using peer certificate '@r2.grelab.test' issued by "
                  "CA 'CN=grelab test CA'\n"),
    "libreswan-psk": ("\"gre\" #1: responder established IKE SA; authenticated peer using authby=secret and FQDN "
                      "'@r1.grelab.test'\n"),
}


def test_a_daemons_log_reads_as_how_it_authenticated_the_peer():
    strongswan, libreswan = IMPLEMENTATIONS["strongswan"], IMPLEMENTATIONS["libreswan"]
    assert strongswan.how_authenticated(LOGS["strongswan"], "r2") == PSS_SHA512
    assert strongswan.how_authenticated(LOGS["strongswan"], "r1") == "no authentication of r1.grelab.test logged"
    assert libreswan.how_authenticated(LOGS["libreswan"], "r2") == PKCS1_SHA256
    assert libreswan.how_authenticated(LOGS["libreswan-psk"], "r1") == PSK_AUTH
    assert libreswan.how_authenticated(LOGS["libreswan-psk"], "r2") == "no authentication of r2.grelab.test logged"
    odd = LOGS["strongswan"].replace("RSA_EMSA_PSS_SHA2_512_SALT_64", "ED25519")
    assert strongswan.how_authenticated(odd, "r2") == "ED25519"  # words it has no name for: said as they are


def test_the_expected_authentication_follows_who_signs_and_who_mirrors():
    """libreswan answers with the initiator's scheme; strongSwan signs PKCS#1 v1.5 SHA-256 whoever asks."""
    class Net:
        def __init__(self, variant):
            self.variant = variant
    expected = {(v.implementation, v.id.split("-")[1]): ike.expected_authentication(Net(v)) for v in ike.VARIANTS}
    assert expected[("strongswan→libreswan", "certs")] == {"r1": PKCS1_SHA256, "r2": PKCS1_SHA256}
    assert expected[("libreswan→strongswan", "certs")] == {"r1": PKCS1_SHA256, "r2": PSS_SHA512}
    assert expected[("libreswan→libreswan", "certs")] == {"r1": PSS_SHA512, "r2": PSS_SHA512}
    assert expected[("libreswan→libreswan", "psk")] == {"r1": PSK_AUTH, "r2": PSK_AUTH}
    assert len(ike.VARIANTS) == 8 and ike.PSK_VARIANT.id == "ikev2-psk-gcm128"


def test_the_nss_database_holds_the_ca_trusted_and_the_routers_key(tmp_path):
    for name, data in nss_database("r1").items():
        (tmp_path / name).write_bytes(data)
    listed = subprocess.run(["certutil", "-L", "-d", f"sql:{tmp_path}"], capture_output=True, text=True, check=True)
    rows = {line[:60].strip(): line[60:].strip() for line in listed.stdout.splitlines()[4:] if line.strip()}
    assert rows == {CA_NAME: "CT,,", "r1.grelab.test": "u,u,u"}
    keys = subprocess.run(["certutil", "-K", "-d", f"sql:{tmp_path}"], capture_output=True, text=True, check=True)
    assert "r1.grelab.test" in keys.stdout
    assert set(nss_database(None)) == {"cert9.db", "key4.db"}


def frame(ike_message, src=R1, dst=R2, sport=500) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst) /
                 UDP(sport=sport, dport=500) / ike_message)


def test_the_wire_says_which_proposal_was_offered_and_which_notify_came_back():
    transforms = (IKEv2_Transform(transform_type="Encryption", transform_id=12, length=12, key_length=128) /
                  IKEv2_Transform(transform_type="PRF", transform_id=5) /
                  IKEv2_Transform(transform_type="Integrity", transform_id=12) /
                  IKEv2_Transform(transform_type="GroupDesc", transform_id=14))
    request = (IKEv2(init_SPI=b"\1" * 8, exch_type=34, flags="Initiator", id=0) /
               IKEv2_SA(prop=IKEv2_Proposal(proposal=1, trans_nb=4, trans=transforms)) /
               IKEv2_KE(group=14, ke=b"k" * 256) / IKEv2_Nonce(nonce=b"n" * 32) / IKEv2_Notify(type=16388))
    refusal = IKEv2(init_SPI=b"\1" * 8, exch_type=34, flags="Response", id=0) / IKEv2_Notify(type=14)
    esp = bytes(Ether() / IP(src=R1, dst=R2, proto=50) / (b"\x00\x00\x10\x01\x00\x00\x00\x07" + bytes(40)))
    lines = exchange([(10.0, frame(request)), (10.0021, frame(refusal, R2, R1)), (10.5, esp), (10.6, esp)],
                     {R1: "r1", R2: "r2"})
    assert lines == [
        "+0.0 ms r1->r2 IKE_SA_INIT request #0: SA[1: AES-CBC/128 PRF_HMAC_SHA2_256 SHA2-256-128 2048MODPgr], "
        "KE(2048MODPgr), Nonce, N(NAT_DETECTION_SOURCE_IP)",
        "+2.1 ms r2->r1 IKE_SA_INIT response #0: N(NO_PROPOSAL_CHOSEN)",
        "+500.0 ms r1->r2 ESP SPI 0x00001001: its first frame (seq 7)"]


def test_any_bytes_on_the_ike_port_are_described_never_raised():
    import random
    rng = random.Random(18)
    for n in range(300):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        line = describe(frame(junk))
        assert line is None or line.startswith("198.51.100.1->203.0.113.1 ")
    assert describe(b"") is None and describe(b"\x00" * 13) is None
    assert describe(frame(b"\x00\x00\x00\x00" + b"x" * 40, sport=4500)) is not None  # non-ESP marker, then IKE


def test_debians_libreswan_unpacks_once_into_the_cache(tmp_path):
    """A second call finds the tree and only checks it; a tree missing a program is unpacked again."""
    root = unpack(LIBRESWAN, cache=tmp_path)
    assert root == tmp_path / "libreswan" and (root / "usr/libexec/ipsec/pluto").is_file()
    assert version(LIBRESWAN, tmp_path).startswith("4.10")
    inode, start = root.stat().st_ino, time.monotonic()
    assert unpack(LIBRESWAN, cache=tmp_path).stat().st_ino == inode and time.monotonic() - start < 2
    (root / "usr/libexec/ipsec/whack").unlink()
    assert (unpack(LIBRESWAN, cache=tmp_path) / "usr/libexec/ipsec/whack").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work folder left behind
    shutil.rmtree(root)
    assert version(LIBRESWAN, Path(tmp_path)) is None
