"""ESP around GRE: interop with scapy's SecurityAssociation both ways, integrity failures, esp_sa rows, peel."""
import dataclasses
import hmac
import itertools

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.layers.l2 import GRE, Ether

from grelab.craft import esp
from grelab.craft.algorithms import xfrm_algorithm_words, xfrm_esn_words
from grelab.craft.esp_sa import esp_sa_lines, esp_sa_row, esp_sa_text, tshark_options, wireshark_algorithms
from grelab.craft.keys import read_grelab_rows
from grelab.craft.gre import OUTER, gre, passenger
from grelab.craft.overhead import Stack
from grelab.craft.peel import peel
from grelab.errors import InputError

# (algorithm, scapy's crypt name, scapy's auth name): written out here so the test does not trust esp.ALGORITHMS.
SCAPY_NAMES = {"gcm128": ("AES-GCM", None), "gcm256": ("AES-GCM", None), "cbc128-sha256": ("AES-CBC", "SHA2-256-128"),
               "cbc256-sha256": ("AES-CBC", "SHA2-256-128"), "null-sha256": ("NULL", "SHA2-256-128")}
KEY_LENGTHS = {"gcm128": (20, 0), "gcm256": (36, 0), "cbc128-sha256": (16, 32), "cbc256-sha256": (32, 32),
               "null-sha256": (0, 32)}
CASES = list(itertools.product(SCAPY_NAMES, esp.MODES, (False, True), ("ipv4", "ipv6")))
# One algorithm of each shape (IV, block, ICV, salt, how the ICV is made) beside the five above: tests that go
# through every mode x NAT-T x transport take these; every algorithm goes through transport mode over IPv4.
SHAPES = [*SCAPY_NAMES, "3des-sha1", "ctr128-sha384", "cbc256-sha512", "null-cmac", "cbc128-md5", "gcm128-icv8",
          "gcm256-icv12", "ccm128", "ccm256-icv8", "gmac256", "chacha20-poly1305", "cbc128-none", "3des-none",
          "ctr256-none"]


def make_sa(algorithm, mode="transport", nat_t=False, transport="ipv4", spi=0x1234, esn=False):
    key_len, auth_len = KEY_LENGTHS.get(algorithm) or (esp.ALGORITHMS[algorithm].key_len,
                                                       esp.ALGORITHMS[algorithm].auth_key_len)
    src, dst = OUTER[transport]
    return esp.SA(spi, algorithm, bytes(range(7, 7 + key_len)), bytes(range(90, 90 + auth_len)), src, dst, mode,
                  (4500, 4500) if nat_t else None, esn)


def scapy_sa(sa: esp.SA, seq: int) -> SecurityAssociation:
    """scapy's own SA built from the test's names, independent of grelab's table."""
    crypt, auth = SCAPY_NAMES[sa.algorithm]
    outer = IP if sa.version == 4 else IPv6
    return SecurityAssociation(ESP, spi=sa.spi, seq_num=seq, crypt_algo=crypt, crypt_key=sa.key or None,
                               auth_algo=auth, auth_key=sa.auth_key or None,
                               tunnel_header=outer(src=sa.src, dst=sa.dst) if sa.mode == "tunnel" else None,
                               nat_t_header=UDP(sport=4500, dport=4500) if sa.nat_t else None)


def inner(transport):
    return gre(passenger("ipv6", seq=3), transport=transport, key=11, seq=12, csum=True)


@pytest.mark.parametrize("algorithm, mode, nat_t, transport", CASES)
def test_grelab_encrypts_scapy_decrypts(algorithm, mode, nat_t, transport):
    sa = make_sa(algorithm, mode, nat_t, transport)
    protected = bytes(esp.encrypt(sa, inner(transport), seq=77))
    parsed = esp.dissect_ip(protected)
    assert parsed[ESP].spi == sa.spi and parsed[ESP].seq == 77 and parsed.haslayer(UDP) == nat_t
    assert bytes(scapy_sa(sa, 77).decrypt(parsed)) == bytes(inner(transport))
    assert len(protected) == Stack(transport=transport, csum=True, key=True, seq=True, esp=algorithm, esp_mode=mode,
                                   nat_t=nat_t).wire_size(len(bytes(passenger("ipv6"))))


@pytest.mark.parametrize("algorithm, mode, nat_t, transport", CASES)
def test_scapy_encrypts_grelab_decrypts(algorithm, mode, nat_t, transport):
    sa = make_sa(algorithm, mode, nat_t, transport)
    protected = scapy_sa(sa, 5).encrypt(inner(transport))  # scapy's random IV
    assert bytes(esp.decrypt(sa, bytes(protected))) == bytes(inner(transport))


def test_same_inputs_same_bytes_and_iv_is_explicit():
    sa = make_sa("cbc128-sha256")
    assert bytes(esp.encrypt(sa, inner("ipv4"), seq=9)) == bytes(esp.encrypt(sa, inner("ipv4"), seq=9))
    one, two = (bytes(esp.encrypt(sa, inner("ipv4"), seq=9, iv=bytes([b]) * 16)) for b in (1, 2))
    assert one[28:44] == b"\x01" * 16 and one != two


@pytest.mark.parametrize("algorithm", SCAPY_NAMES)
def test_integrity_failure_is_a_clear_error(algorithm):
    sa = make_sa(algorithm)
    protected = bytearray(bytes(esp.encrypt(sa, inner("ipv4"), seq=4)))
    protected[-20] ^= 0x01  # inside the ciphertext (or, for NULL, the data the HMAC covers)
    with pytest.raises(esp.IntegrityError, match="SPI 0x00001234 seq 4: integrity check failed"):
        esp.decrypt(sa, bytes(protected))
    wrong_keys = esp.SA(sa.spi, algorithm, bytes(len(sa.key)), bytes(len(sa.auth_key)))
    with pytest.raises(esp.IntegrityError):
        esp.decrypt(wrong_keys, bytes(esp.encrypt(sa, inner("ipv4"))))


@pytest.mark.parametrize("call, field, allowed", [
    (lambda: esp.SA(1, "gcm128", bytes(16)), "gcm128 key", "exactly 20 bytes"),
    (lambda: esp.SA(1, "cbc256-sha256", bytes(32), bytes(20)), "cbc256-sha256 auth_key", "exactly 32 bytes"),
    (lambda: esp.SA(1, "null-sha256", bytes(16), bytes(32)), "null-sha256 key", "no key"),
    (lambda: esp.SA(1, "des", b""), "ESP algorithm", "gcm128"),
    (lambda: esp.SA(0, "null-sha256", b"", bytes(32)), "SPI", "1 to 4294967295"),
    (lambda: esp.SA(1, "null-sha256", b"", bytes(32), "192.0.2.1", "2001:db8::2"), "SA dst", "an IPv4 address"),
    (lambda: esp.SA(1, "null-sha256", b"", bytes(32), nat_t=(4500, 70000)), "NAT-T port", "65535"),
    (lambda: esp.SA(1, "null-sha256", b"", bytes(32), src="gateway"), "SA src", "an IPv4 or IPv6 address"),
    (lambda: esp.encrypt(make_sa("gcm128"), inner("ipv4"), iv=bytes(16)), "ESP IV", "exactly 8 bytes"),
    (lambda: esp.encrypt(make_sa("gcm128"), inner("ipv6")), "packet addresses", "192.0.2.1 -> 192.0.2.2"),
    (lambda: esp.decrypt(make_sa("gcm128", spi=9), bytes(esp.encrypt(make_sa("gcm128"), inner("ipv4")))),
     "ESP SPI", "0x00000009"),
])
def test_bad_input_names_field_value_and_allowed(call, field, allowed):
    with pytest.raises(InputError) as caught:
        call()
    assert caught.value.field == field and allowed in caught.value.allowed


def test_esp_sa_rows_use_wiresharks_names():
    gcm, cbc = make_sa("gcm128"), make_sa("cbc256-sha256", transport="ipv6", spi=0xABCDEF01)
    assert esp_sa_row(gcm) == ('"IPv4","192.0.2.1","192.0.2.2","0x00001234","AES-GCM with 16 octet ICV [RFC4106]",'
                               '"0x' + bytes(range(7, 27)).hex() + '","NULL",""')
    assert esp_sa_row(cbc).startswith('"IPv6","2001:db8::1","2001:db8::2","0xabcdef01","AES-CBC [RFC3602]","0x')
    assert esp_sa_row(cbc).endswith('"HMAC-SHA-256-128 [RFC4868]","0x' + bytes(range(90, 122)).hex() + '"')
    text = esp_sa_text([gcm, cbc])
    assert text.startswith("#") and text.splitlines()[1:] == [esp_sa_row(gcm), esp_sa_row(cbc)]
    assert tshark_options([gcm]) == ["-o", "esp.enable_encryption_decode:TRUE", "-o",
                                      "esp.enable_authentication_check:TRUE", "-o", "uat:esp_sa:" + esp_sa_row(gcm)]


@pytest.mark.parametrize("mode, nat_t", list(itertools.product(esp.MODES, (False, True))))
def test_peel_through_esp_to_the_passenger(mode, nat_t):
    sa = make_sa("gcm256", mode, nat_t)
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / esp.encrypt(sa, inner("ipv4"), seq=8))
    report = peel(frame, [sa])
    assert report.esp_spi == sa.spi and report.esp_seq == 8 and report.checksum_ok is True
    assert report.gre.key == 11 and report.gre.sequence_number == 12
    assert bytes(report.passenger) == bytes(passenger("ipv6", seq=3))
    assert ("UDP 4500 > 4500 (NAT-T)" in report.layers) == nat_t
    assert str(report).endswith("-> " + passenger("ipv6", seq=3).summary())


def test_peel_without_the_sa_stops_at_esp_and_reports_a_bad_gre_checksum():
    sa = make_sa("gcm128")
    report = peel(bytes(esp.encrypt(sa, inner("ipv4"))), link="ip")
    assert report.passenger is None and "no SA given" in report.layers[-1]
    damaged = bytearray(bytes(gre(passenger("ipv4"), csum=True)))
    damaged[-1] ^= 0xFF
    report = peel(bytes(damaged), link="ip")
    assert report.checksum_ok is False and "checksum=BAD" in str(report) and isinstance(report.gre, GRE)


def test_peel_refuses_an_integrity_failure_unless_told_not_to_verify():
    sa = make_sa("null-sha256")
    damaged = bytearray(bytes(esp.encrypt(sa, inner("ipv4"))))
    damaged[-1] ^= 1
    with pytest.raises(esp.IntegrityError):
        peel(bytes(damaged), [sa], link="ip")
    assert peel(bytes(damaged), [sa], link="ip", verify=False).gre.key == 11


@pytest.mark.parametrize("algorithm, words", [
    ("gcm128", ["aead", "rfc4106(gcm(aes))", "0x" + bytes(range(7, 27)).hex(), "128"]),
    ("gcm256-icv8", ["aead", "rfc4106(gcm(aes))", "0x" + bytes(range(7, 43)).hex(), "64"]),
    ("ccm128-icv12", ["aead", "rfc4309(ccm(aes))", "0x" + bytes(range(7, 26)).hex(), "96"]),
    ("gmac256", ["aead", "rfc4543(gcm(aes))", "0x" + bytes(range(7, 43)).hex(), "128"]),
    ("chacha20-poly1305", ["aead", "rfc7539esp(chacha20,poly1305)", "0x" + bytes(range(7, 43)).hex(), "128"]),
    ("cbc128-sha256", ["enc", "cbc(aes)", "0x" + bytes(range(7, 23)).hex(), "auth-trunc", "hmac(sha256)",
                       "0x" + bytes(range(90, 122)).hex(), "128"]),
    ("3des-sha1", ["enc", "cbc(des3_ede)", "0x" + bytes(range(7, 31)).hex(), "auth-trunc", "hmac(sha1)",
                   "0x" + bytes(range(90, 110)).hex(), "96"]),
    ("ctr256-sha512", ["enc", "rfc3686(ctr(aes))", "0x" + bytes(range(7, 43)).hex(), "auth-trunc", "hmac(sha512)",
                       "0x" + bytes(range(90, 154)).hex(), "256"]),
    ("null-cmac", ["enc", "ecb(cipher_null)", "", "auth-trunc", "cmac(aes)", "0x" + bytes(range(90, 106)).hex(), "96"]),
    ("3des-none", ["enc", "cbc(des3_ede)", "0x" + bytes(range(7, 31)).hex()]),  # confidentiality only: enc alone
])
def test_xfrm_words_are_the_kernels_names(algorithm, words):
    assert xfrm_algorithm_words(make_sa(algorithm)) == words
    assert xfrm_esn_words(make_sa(algorithm)) == []
    assert xfrm_esn_words(make_sa(algorithm, esn=True), 3) == ["flag", "esn", "replay-seq-hi", "3",
                                                                  "replay-oseq-hi", "3"]


def test_esn_sequence_numbers_are_64_bit_and_only_the_low_half_is_sent():
    sa = make_sa("cbc128-sha1", esn=True)
    protected = bytes(esp.encrypt(sa, inner("ipv4"), seq=(5 << 32) + 9))
    assert esp.dissect_ip(protected)[ESP].seq == 9
    assert bytes(esp.decrypt(sa, protected, seq_hi=5)) == bytes(inner("ipv4"))
    with pytest.raises(InputError, match="ESP sequence number"):
        esp.encrypt(make_sa("cbc128-sha1"), inner("ipv4"), seq=1 << 32)  # without ESN: 32 bits
    with pytest.raises(InputError, match="ESN high-order bits"):
        esp.decrypt(sa, protected, seq_hi=1 << 32)


def damaged(sa, at=-20, seq=4):
    protected = bytearray(bytes(esp.encrypt(sa, inner("ipv4"), seq=seq)))
    protected[at] ^= 1
    return bytes(protected)


@pytest.mark.parametrize("sender, receiver, seq_hi, cause", [
    (dict(algorithm="gcm128-icv12"), dict(algorithm="gcm128"), 0,
     "likely cause: ICV length: it verifies with gcm128-icv12 (12-byte ICV, not 16)"),
    (dict(algorithm="ccm256", esn=True), dict(algorithm="ccm256"), 0, "likely cause: ESN: it verifies with ESN on"),
    (dict(algorithm="cbc128-sha256"), dict(algorithm="cbc128-sha256", esn=True), 0,
     "likely cause: ESN: it verifies with ESN off"),
    (dict(algorithm="chacha20-poly1305", esn=True, seq=(2 << 32) + 4), dict(algorithm="chacha20-poly1305", esn=True),
     1, "likely cause: ESN: it verifies with ESN high-order bits 2, not 1"),
    (dict(algorithm="gmac128"), dict(algorithm="gcm128"), 0, "likely cause: algorithm: it verifies with gmac128"),
    (dict(algorithm="ctr128-md5"), dict(algorithm="ctr128-cmac"), 0,
     "likely cause: algorithm: it verifies with ctr128-md5"),
])
def test_a_failed_decrypt_says_the_likely_cause(sender, receiver, seq_hi, cause):
    seq = sender.pop("seq", 4)
    protected = bytes(esp.encrypt(make_sa(**sender), inner("ipv4"), seq=seq))
    with pytest.raises(esp.IntegrityError, match="SPI 0x00001234 seq 4: integrity check failed") as caught:
        esp.decrypt(make_sa(**receiver), protected, seq_hi=seq_hi)
    assert cause in str(caught.value)


def test_an_hmac_truncated_to_96_bits_is_named():
    """`ip xfrm state ... auth hmac(sha256)` (not auth-trunc) sends 12 bytes of HMAC-SHA-256: grelab says so."""
    sa = make_sa("cbc128-sha256")
    protected = esp.dissect_ip(bytes(esp.encrypt(sa, inner("ipv4"), seq=4)))
    esp_bytes = bytes(protected[ESP])[:-16]
    protected[ESP].data = protected[ESP].data[:-16] + hmac.digest(sa.auth_key, esp_bytes, "sha256")[:12]
    del protected.len, protected.chksum
    with pytest.raises(esp.IntegrityError, match=r"ICV length: the ICV is hmac\(sha256\) truncated to 12 bytes"):
        esp.decrypt(sa, bytes(protected))


def test_a_wrong_key_is_the_likely_cause_when_nothing_else_verifies():
    sa = make_sa("gcm256")
    with pytest.raises(esp.IntegrityError, match="likely cause: key"):
        esp.decrypt(dataclasses.replace(sa, key=bytes(36)), bytes(esp.encrypt(sa, inner("ipv4"))))


@pytest.mark.parametrize("algorithm", ["null-sha256", "cbc256-sha512", "3des-cmac", "ctr128-sha1", "gcm128-icv8",
                                       "ccm256-icv12", "gmac256", "chacha20-poly1305"])
def test_verify_false_looks_inside_despite_a_bad_icv_or_integrity_key(algorithm):
    sa = make_sa(algorithm)
    bad_icv = damaged(sa, at=-1)  # the last byte of the ICV: the ciphertext is intact
    with pytest.raises(esp.IntegrityError):
        esp.decrypt(sa, bad_icv)
    assert bytes(esp.decrypt(sa, bad_icv, verify=False)) == bytes(inner("ipv4"))
    if sa.auth_key:
        unknown = dataclasses.replace(sa, auth_key=bytes(len(sa.auth_key)))
        assert bytes(esp.decrypt(unknown, bytes(esp.encrypt(sa, inner("ipv4"))), verify=False)) == bytes(inner("ipv4"))


def test_esp_sa_for_algorithms_wireshark_lacks():
    ccm, cmac, esn = make_sa("ccm128"), make_sa("cbc128-cmac", spi=2), make_sa("cbc128-sha1", spi=3, esn=True)
    assert wireshark_algorithms(ccm) is None
    with pytest.raises(InputError, match="Wireshark 4.0 can decrypt"):
        esp_sa_row(ccm)
    any_96 = '"ANY 96 bit authentication [no checking]"'
    assert esp_sa_row(cmac).endswith(any_96 + ',"0x' + bytes(range(90, 106)).hex() + '"')
    assert '"AES-CBC [RFC3602]"' in esp_sa_row(esn) and any_96 in esp_sa_row(esn)
    text = esp_sa_text([ccm, cmac])
    assert "# grelab (Wireshark 4.0 cannot decrypt ccm128): " in text
    assert "# grelab (Wireshark 4.0 cannot check the ICV of cbc128-cmac): " in text
    assert read_grelab_rows(text) == [ccm, cmac]  # kept in grelab's words, for a test to decrypt them itself
    assert read_grelab_rows(esp_sa_text([esn])) == [esn]
    gcm = make_sa("gcm128", spi=4)
    assert esp_sa_lines(gcm) == [esp_sa_row(gcm)]  # Wireshark checks it: no grelab row
    assert len(tshark_options([ccm, cmac])) == 6  # the two preferences and cmac's row only


def test_ipv6_transport_after_a_destination_option_decrypts_to_what_follows_it():
    """ip6gre's encapsulation limit option stays before ESP (the kernel's and scapy's placement): scapy alone would
    dissect the GRE after it as another extension header."""
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt
    from scapy.layers.l2 import GRE as GREHeader
    from grelab.craft.gre import passenger
    sa = make_sa("cbc128-sha256", transport="ipv6")
    plain = IPv6(bytes(IPv6(src=sa.src, dst=sa.dst) / IPv6ExtHdrDestOpt() / GREHeader(proto=0x86DD) / passenger()))
    protected = esp.encrypt(sa, plain, seq=3)
    assert isinstance(protected.payload, IPv6ExtHdrDestOpt) and protected.payload.nh == 50
    clear = esp.decrypt(sa, IPv6(bytes(protected)))
    assert bytes(clear) == bytes(plain) and clear.haslayer(GREHeader)
    assert bytes(esp.decrypt(sa, IPv6(bytes(protected)), verify=False)) == bytes(plain)
    tampered = bytearray(bytes(protected))
    tampered[-1] ^= 1
    with pytest.raises(esp.IntegrityError, match="integrity check failed"):
        esp.decrypt(sa, IPv6(bytes(tampered)))
