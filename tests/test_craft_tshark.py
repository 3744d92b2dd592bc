"""An independent opinion: Wireshark's dissectors on everything grelab crafts, batched into a few tshark runs."""
import itertools
import shutil
import subprocess

import pytest

from grelab.craft import esp
from grelab.cli.craft import write_pcapng
from grelab.craft.esp_sa import tshark_options, wireshark_algorithms
from grelab.craft.fast import FastESP
from grelab.craft.gre import PASSENGERS, TRANSPORTS, gre, keepalive, passenger

from test_craft_esp import SHAPES, make_sa

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
OPTIONS = [dict(), dict(csum=True), dict(key=0xFFFFFFFF), dict(key=1, seq=2, csum=True), dict(seq=0)]


def tshark(path, *args, sas=()):
    result = subprocess.run(["tshark", "-r", str(path), *tshark_options(sas), *args],
                            capture_output=True, text=True, check=True)
    return result.stdout


def rows(output):
    return [line.split("\t") for line in output.splitlines()]


@pytest.fixture(scope="module")
def gre_kinds(tmp_path_factory):
    """Every transport x passenger x GRE option set, then keepalives: echo sequence numbers count 1, 2, ..."""
    packets = [bytes(gre(passenger(kind, seq=n), transport=transport, **options)) for n, (transport, kind, options)
               in enumerate(itertools.product(TRANSPORTS, PASSENGERS, OPTIONS), 1)]
    packets += [bytes(keepalive(transport=transport)) for transport in TRANSPORTS]
    path = tmp_path_factory.mktemp("tshark") / "gre.pcapng"
    write_pcapng(str(path), packets)
    return path, len(packets)


def esp_cases():
    """Each shape x mode x NAT-T x transport, then every algorithm in transport mode over IPv4, without and with ESN."""
    cases = set(itertools.product(SHAPES, esp.MODES, (False, True), TRANSPORTS, (False,)))
    cases |= {(algorithm, "transport", False, "ipv4", esn) for algorithm in esp.ALGORITHMS for esn in (False, True)}
    return sorted(cases)


@pytest.fixture(scope="module")
def esp_kinds(tmp_path_factory):
    """Each case its own SPI, through both the scapy and the fast path; ESN sequence numbers above 2**32."""
    sas, packets = [], []
    for spi, (algorithm, mode, nat_t, transport, esn) in enumerate(esp_cases(), 0x100):
        sa = make_sa(algorithm, mode, nat_t, transport, spi=spi, esn=esn)
        inner = gre(passenger("ipv6", seq=spi), transport=transport, key=spi, seq=1, csum=True)
        first = (7 << 32 if esn else 0) + 1
        packets += [bytes(esp.encrypt(sa, inner, seq=first)), *FastESP(sa).encrypt([bytes(inner)], first_seq=first + 1)]
        sas.append(sa)
    path = tmp_path_factory.mktemp("tshark") / "esp.pcapng"
    write_pcapng(str(path), packets)
    return path, sas


def icv_status(sa):
    """(esp.icv_good, esp.icv_bad) as Wireshark 4.0 reports them for this SA's ESP."""
    if not sa.algo.icv_len:
        return ("", "")  # confidentiality only: no ICV to report on (esp_sa says NULL authentication)
    if sa.algo.integrity is None:
        # A combined mode checks its tag; Wireshark 4.0 has no ESN, so its AAD lacks the high-order bits.
        return ("0", "1") if sa.esn else ("1", "0")
    if sa.esn or sa.algo.integrity.wireshark is None:
        return ("0", "0")  # esp_sa says "ANY n bit authentication [no checking]" (grelab.craft.esp_sa)
    return ("1", "0")


def test_gre_kinds_dissect_cleanly(gre_kinds):
    path, count = gre_kinds
    assert tshark(path, "-Y", "_ws.malformed || _ws.expert.severity >= warning") == ""
    fields = rows(tshark(path, "-T", "fields", "-e", "gre.proto", "-e", "icmpv6.echo.sequence_number",
                         "-e", "icmp.seq"))
    assert len(fields) == count
    expected_proto = {"ipv6": "0x86dd", "ipv4": "0x0800", "ethernet": "0x6558"}
    for n, ((transport, kind, options), row) in enumerate(zip(itertools.product(TRANSPORTS, PASSENGERS, OPTIONS),
                                                             fields), 1):
        assert row[0].split(",")[0] == expected_proto[kind]
        assert str(n) in row[1:]  # the passenger's echo, dissected inside GRE


def test_gre_checksums_are_good_in_wireshark(gre_kinds):
    path, _ = gre_kinds
    statuses = tshark(path, "-Y", "gre.checksum", "-T", "fields", "-e", "gre.checksum.status").split()
    with_checksum = sum(bool(o.get("csum")) for o in OPTIONS) * len(TRANSPORTS) * len(PASSENGERS)
    assert statuses == ["1"] * with_checksum  # 1: "Good"


def test_keepalives_are_recognised(gre_kinds):
    path, _ = gre_kinds
    assert tshark(path, "-T", "fields", "-e", "_ws.col.Info").count("GRE keepalive") == len(TRANSPORTS)


def test_esp_decrypts_in_wireshark_down_to_gre_and_the_passenger(esp_kinds):
    """Every algorithm Wireshark 4.0 has decrypts, and its ICV verifies where Wireshark can check it; the others
    (AES-CCM, AES-GMAC, ChaCha20-Poly1305) dissect as ESP, still encrypted."""
    path, sas = esp_kinds
    assert tshark(path, "-Y", "_ws.malformed || _ws.expert.severity >= warning", sas=sas) == ""
    fields = rows(tshark(path, "-T", "fields", "-e", "esp.spi", "-e", "esp.sequence", "-e", "gre.key",
                         "-e", "gre.checksum.status", "-e", "icmpv6.echo.sequence_number", "-e", "esp.icv_good",
                         "-e", "esp.icv_bad", sas=sas))
    assert len(fields) == 2 * len(sas)
    for sa, scapy_row, fast_row in zip(sas, fields[::2], fields[1::2]):
        for row, seq in ((scapy_row, "1"), (fast_row, "2")):
            if wireshark_algorithms(sa) is None:
                assert row[:3] == [f"0x{sa.spi:08x}", seq, ""], sa
            else:  # key = SPI
                assert row == [f"0x{sa.spi:08x}", seq, f"0x{sa.spi:08x}", "1", str(sa.spi), *icv_status(sa)], sa


def test_a_changed_packet_has_a_bad_icv_in_wireshark(tmp_path):
    algorithms = ("gcm128-icv12", "3des-sha1", "ctr256-sha512")
    sas = [make_sa(algorithm, spi=spi) for spi, algorithm in enumerate(algorithms, 1)]
    damaged = []
    for sa in sas:
        packet = bytearray(bytes(esp.encrypt(sa, gre(passenger("ipv6")), seq=1)))
        packet[-sa.algo.icv_len - 1] ^= 1  # the last byte before the ICV
        damaged.append(bytes(packet))
    write_pcapng(str(tmp_path / "bad.pcapng"), damaged)
    assert rows(tshark(tmp_path / "bad.pcapng", "-T", "fields", "-e", "esp.icv_good", "-e", "esp.icv_bad",
                       sas=sas)) == [["0", "1"]] * len(sas)


def test_without_keys_wireshark_sees_only_esp(esp_kinds):
    path, _ = esp_kinds
    assert "icmpv6" not in tshark(path, "-T", "fields", "-e", "frame.protocols")
