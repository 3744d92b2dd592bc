"""Keys in the forms users have them (grelab.craft.keys): Wireshark esp_sa rows with wildcards and unchecked
authentication, tcpdump's espsecret lines and files, `ip xfrm state` / `ip -s xfrm state` text and add commands;
each bad line named with its field and what is allowed. And what a packet says of itself: tunnel or transport mode,
NAT-T, whatever the SA says."""
import dataclasses

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE

from grelab.craft import esp
from grelab.craft.gre import gre, passenger
from grelab.craft.keys import parse_keys, parse_xfrm_state, read_keys
from grelab.craft.peel import peel
from grelab.errors import InputError

CBC_KEY, SHA1_KEY = bytes(range(1, 17)), bytes(range(0x41, 0x55))
CBC_SHA1 = esp.SA(0x1234, "cbc128-sha1", CBC_KEY, SHA1_KEY, src="192.0.2.1", dst="192.0.2.2")


def protected(sa=CBC_SHA1, mode="tunnel", nat_t=None, seq=5, transport="ipv4"):
    """sa's ESP (tunnel mode: any outer addresses) around GRE with key 9."""
    if transport == "ipv6":
        sa = dataclasses.replace(sa, src="2001:db8::1", dst="2001:db8::2")
    sa = dataclasses.replace(sa, mode=mode, nat_t=nat_t)
    return bytes(esp.encrypt(sa, gre(passenger("ipv6", seq=seq), key=9), seq=seq))


def opened(keys, packet: bytes):
    ip = esp.dissect_ip(packet)
    return esp.open_with(keys, ip)


def row(*fields):
    return ",".join(f'"{f}"' for f in fields)


def test_a_wireshark_row_with_wildcards_and_unchecked_authentication_opens_esp_unchecked():
    keys = parse_keys(row("IPv4", "*", "*", "*", "AES-CBC [RFC3602]", "0x" + CBC_KEY.hex(),
                          "ANY 96 bit authentication [no checking]", ""))
    result = opened(keys, protected())
    assert (result.sa.algorithm, result.icv) == ("cbc128-any96", "unchecked")
    assert result.packet[GRE].key == 9 and (result.sa.spi, result.sa.src, result.sa.dst) == (0x1234, "192.0.2.1",
                                                                                               "192.0.2.2")
    assert "(ICV unchecked (no integrity key))" in str(peel(protected(), keys, link="ip"))
    assert opened(keys, protected(transport="ipv6")) is None  # the row is IPv4's


def test_wireshark_wildcards_per_byte_and_per_spi_digit_match_as_wireshark_does():
    keys = parse_keys(row("IPv4", "192.0.2.*", "192.0.2.2", "0x0000123*", "AES-CBC [RFC3602]", "0x" + CBC_KEY.hex(),
                          "HMAC-SHA-1-96 [RFC2404]", "0x" + SHA1_KEY.hex()))
    assert opened(keys, protected()).icv == "good"
    assert opened(keys, protected(dataclasses.replace(CBC_SHA1, spi=0x1240))) is None
    assert opened(keys, protected(dataclasses.replace(CBC_SHA1, dst="192.0.2.3"))) is None


def test_an_exact_row_checks_the_icv_before_an_any_row_opens_it_unchecked():
    rows = "\n".join([row("IPv4", "*", "*", "*", "AES-CBC [RFC3602]", "0x" + CBC_KEY.hex(),
                          "ANY 96 bit authentication [no checking]", ""),
                      row("IPv4", "192.0.2.1", "192.0.2.2", "0x00001234", "AES-CBC [RFC3602]", "0x" + CBC_KEY.hex(),
                          "HMAC-SHA-1-96 [RFC2404]", "0x" + SHA1_KEY.hex())])
    assert opened(parse_keys(rows), protected()).icv == "good"


def test_confidentiality_only_rows_read_from_wireshark_tcpdump_and_xfrm():
    sa = esp.SA(0x77, "3des-none", bytes(range(24)), src="198.51.100.1", dst="198.51.100.2")
    packet = protected(sa)
    wireshark = parse_keys(row("IPv4", "198.51.100.1", "198.51.100.2", "0x77", "TripleDES-CBC [RFC2451]",
                               "0x" + sa.key.hex(), "NULL", ""))
    tcpdump = parse_keys(f"0x77@198.51.100.2 3des-cbc:0x{sa.key.hex()}")
    xfrm = parse_keys(f"src 198.51.100.1 dst 198.51.100.2\n\tproto esp spi 0x00000077 reqid 0 mode tunnel\n"
                      f"\tenc cbc(des3_ede) 0x{sa.key.hex()}\n")
    for keys in (wireshark, tcpdump, xfrm):
        result = opened(keys, packet)
        assert (result.sa.algorithm, result.sa.mode, result.icv) == ("3des-none", "tunnel", "none")
        assert bytes(result.packet) == bytes(esp.decrypt(dataclasses.replace(sa, mode="tunnel"), packet))


def test_tcpdump_secrets_with_and_without_an_address_in_a_file_and_inline(tmp_path):
    key = "0x" + CBC_KEY.hex()
    secrets = tmp_path / "secrets.txt"
    secrets.write_text(f"# a comment\n\n0x1234@192.0.2.2 aes128-cbc-hmac96:{key}\n"
                       "ikev2 I 0x0001020304050607 0xc02e7a3031a03188 sha1:0x00 aes128:0x00\n")
    keys = read_keys(secrets)
    assert len(keys) == 1 and opened(keys, protected()).sa.algorithm == "cbc128-any96"
    assert opened(keys, protected(dataclasses.replace(CBC_SHA1, spi=0x99))) is None  # the SPI is named
    wildcard = parse_keys(f"aes128-cbc-hmac96:{key}")  # tcpdump's default SA: any SPI, any address
    assert opened(wildcard, protected(dataclasses.replace(CBC_SHA1, spi=0x99))).sa.spi == 0x99
    included = tmp_path / "main.txt"
    included.write_text(f"file {secrets.name}\n")
    assert len(read_keys(included)) == 1
    loop = tmp_path / "loop.txt"
    loop.write_text("file loop.txt\n")
    with pytest.raises(InputError, match=r"loop.txt line 1: file: .*\(it includes itself\)"):
        read_keys(loop)
    text_secret = parse_keys("0x1234@192.0.2.2 aes128-cbc-hmac96:0123456789abcdef")  # 16 bytes written as text
    assert next(iter(text_secret)).sa.key == b"0123456789abcdef"


def test_wrong_key_with_nothing_to_check_is_caught_by_the_padding():
    keys = parse_keys(f"0x1234@192.0.2.2 aes128-cbc-hmac96:0x{bytes(16).hex()}")
    with pytest.raises(esp.IntegrityError, match=r"does not open with cbc128-any96 .*: ESP pad.*: likely the wrong key"):
        opened(keys, protected())


IP_S_XFRM = """src 192.0.2.1 dst 192.0.2.2
\tproto esp spi 0x00001234(4660) reqid 0(0x00000000) mode tunnel
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\tauth-trunc hmac(sha1) 0x{auth} (160 bits) 96
\tenc cbc(aes) 0x{enc} (128 bits)
\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
\tsel src 0.0.0.0/0 dst 0.0.0.0/0 uid 0
\tstats:
\t  replay-window 0 replay 0 failed 0
src 192.0.2.1 dst 192.0.2.2
\tproto esp spi 0x00000106(262) reqid 0(0x00000000) mode transport
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\tauth-trunc hmac(sha1)  96
\tenc cbc(aes) 0x{enc} (128 bits)
src 192.0.2.1 dst 192.0.2.2
\tproto ah spi 0x00000200 reqid 0 mode transport
\tauth-trunc hmac(sha1) 0x{auth} 96
""".format(auth=SHA1_KEY.hex(), enc=CBC_KEY.hex())


def test_ip_s_xfrm_state_pasted_from_a_router():
    """-s output as a router prints it (numbers in both bases, key lengths, statistics); an empty integrity key
    (how iproute2 prints one the state has none of) means the ICV is skipped unchecked; AH states are not ESP."""
    checked, unchecked = parse_xfrm_state(IP_S_XFRM)
    assert (checked.algorithm, checked.mode, checked.key, checked.auth_key) == ("cbc128-sha1", "tunnel", CBC_KEY,
                                                                               SHA1_KEY)
    assert (unchecked.spi, unchecked.algorithm, unchecked.auth_key) == (0x106, "cbc128-any96", b"")
    assert opened(parse_keys(IP_S_XFRM), protected(mode="tunnel")).icv == "good"


def test_ip_xfrm_state_add_commands_as_typed():
    commands = (f"ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1234 mode transport "
                f"enc 'cbc(aes)' 0x{CBC_KEY.hex()} auth 'hmac(sha1)' 0x{SHA1_KEY.hex()}\n"
                f"ip xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x4321 mode transport "
                f"enc 'cbc(aes)' 0x{CBC_KEY.hex()}\n")
    sha1, none = parse_xfrm_state(commands)
    assert (sha1.algorithm, none.algorithm, none.spi) == ("cbc128-sha1", "cbc128-none", 0x4321)
    with pytest.raises(InputError) as caught:  # `auth hmac(sha256)` truncates to 96 bits: no row of grelab's
        parse_xfrm_state(commands.replace("hmac(sha1)", "hmac(sha256)").replace(SHA1_KEY.hex(), bytes(32).hex()))
    assert caught.value.field == "ip xfrm state line 1: algorithm" and "auth-trunc NAME KEY BITS" in caught.value.allowed


@pytest.mark.parametrize("text, field, allowed", [
    (row("IPv4", "*", "*", "*", "AES-CBC [RFC3602]", "0x" + bytes(24).hex(), "NULL", ""),
     "keys line 1: encryption", "AES-CBC [RFC3602] (16, 32 bytes)"),
    (row("IPv4", "*", "*", "*", "AES-CBC [RFC3602]", "0x" + CBC_KEY.hex(), "ANY 97 bit", ""),
     "keys line 1: authentication", "ANY 96 bit authentication [no checking]"),
    (row("IPv5", "*", "*", "*", "NULL", "", "NULL", ""), "keys line 1: protocol", "IPv4 or IPv6"),
    (row("IPv4", "1.2.3", "*", "*", "NULL", "", "HMAC-SHA-1-96 [RFC2404]", "0x" + SHA1_KEY.hex()),
     "keys line 1: source", "an IPv4 address, or * for any"),
    (row("IPv4", "*", "*", "0xzz", "NULL", "", "HMAC-SHA-1-96 [RFC2404]", "0x" + SHA1_KEY.hex()),
     "keys line 1: SPI", "a number"),
    (row("IPv4", "*", "*", "*", "AES-CBC [RFC3602]", "0x" + CBC_KEY.hex(), "HMAC-SHA-1-96 [RFC2404]", "0x00"),
     "keys line 1: cbc128-sha1 auth_key", "exactly 20 bytes"),
    ('"IPv4","*"', "keys line 1: columns", "8: protocol"),
    ("\n0x1234@192.0.2.2 des-cbc:0x0011223344556677", "keys line 2: algorithm", "3des-cbc"),
    ("0x1234@192.0.2.2 3des-cbc-hmac96:0x00", "keys line 1: 3des-any96 key", "exactly 24 bytes"),
    ("0x1234@192.0.2.999 3des-cbc:0x00", "keys line 1: address", "an IPv4 or IPv6 address"),
    ("0x1234@ 3des-cbc", "keys line 1: SPI@address", "0xSPI@ADDRESS"),
    ("src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1 mode beet enc cbc(aes) 0x" + CBC_KEY.hex(),
     "keys line 1: mode", "transport or tunnel"),
    ("src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1 mode tunnel comp deflate", "keys line 1: algorithm",
     "aead NAME KEY BITS"),
])
def test_a_bad_line_names_its_line_field_and_what_is_allowed(text, field, allowed):
    with pytest.raises(InputError) as caught:
        parse_keys(text)
    assert caught.value.field == field and allowed in caught.value.allowed, str(caught.value)


def test_every_bad_line_is_counted_in_the_one_error():
    text = "\n".join(["0x1 none:", "des-cbc:0x00", "# fine", "blowfish-cbc:0x00"])
    with pytest.raises(InputError, match=r"^keys line 1: SPI@address: .*\(also bad: lines 2, 4\)$"):
        parse_keys(text)


@pytest.mark.parametrize("transport", ["ipv4", "ipv6"])
def test_the_mode_and_nat_t_come_from_the_packet(transport):
    """An SA given without a mode opens tunnel-mode ESP as tunnel mode (the inner IP header after it) and says so;
    ESP in UDP 4500 is NAT-T whatever the SA says, over IPv6 too."""
    sa = esp.SA(0x1234, "gcm128", bytes(range(20)), src="2001:db8::1" if transport == "ipv6" else "192.0.2.1",
                dst="2001:db8::2" if transport == "ipv6" else "192.0.2.2")
    unknown = dataclasses.replace(sa, mode=None)
    inner = gre(passenger("ipv6", seq=5), transport=transport, key=9)
    for mode, nat_t in (("tunnel", None), ("transport", None), ("tunnel", (4500, 4500)), ("transport", (4500, 4500))):
        packet = bytes(esp.encrypt(dataclasses.replace(sa, mode=mode, nat_t=nat_t), inner, seq=5))
        result = esp.open_esp(unknown, packet)
        assert (result.sa.mode, result.sa.nat_t) == (mode, nat_t)
        assert bytes(result.packet.getlayer(GRE)) == bytes(inner[GRE])
        outer = IP if transport == "ipv4" else IPv6
        assert isinstance(result.kept, outer) and not result.kept.haslayer(UDP)  # the outer header kept, UDP gone
        assert (result.kept.proto if transport == "ipv4" else result.kept.nh) == (47 if mode == "transport" else
                                                                                  (4 if transport == "ipv4" else 41))
        said = str(peel(packet, [unknown], link="ip"))
        assert f"gcm128 {mode} / " in said and ("(NAT-T)" in said) == bool(nat_t)
        assert esp.open_esp(dataclasses.replace(sa, mode="transport"), packet).sa.nat_t == nat_t  # SA says none


def test_keys_as_wireshark_rows_keep_wildcards_and_unchecked_authentication():
    keys = parse_keys(f"0x1234@192.0.2.2 aes128-cbc-hmac96:0x{CBC_KEY.hex()}\naes256-cbc:0x{bytes(32).hex()}")
    lines = keys.esp_sa_text().splitlines()[1:]
    assert lines[0] == row("IPv4", "*", "192.0.2.2", "0x00001234", "AES-CBC [RFC3602]", "0x" + CBC_KEY.hex(),
                           "ANY 96 bit authentication [no checking]", "")
    assert lines[1:] == [row(v, "*", "*", "*", "AES-CBC [RFC3602]", "0x" + bytes(32).hex(), "NULL", "")
                         for v in ("IPv4", "IPv6")]
