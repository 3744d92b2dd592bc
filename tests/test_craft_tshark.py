"""An independent opinion: Wireshark's dissectors on everything grelab crafts, batched into a few tshark runs."""
import itertools
import shutil
import subprocess

import pytest

from grelab.craft import esp
from grelab.craft.cli import write_pcapng
from grelab.craft.esp_sa import tshark_options
from grelab.craft.fast import FastESP
from grelab.craft.gre import PASSENGERS, TRANSPORTS, gre, keepalive, passenger

from test_craft_esp import make_sa

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


@pytest.fixture(scope="module")
def esp_kinds(tmp_path_factory):
    """Every algorithm x mode x NAT-T x transport, each SA its own SPI, through both the scapy and the fast path."""
    sas, packets = [], []
    for spi, (algorithm, mode, nat_t, transport) in enumerate(
            itertools.product(esp.ALGORITHMS, esp.MODES, (False, True), TRANSPORTS), 0x100):
        sa = make_sa(algorithm, mode, nat_t, transport, spi=spi)
        inner = gre(passenger("ipv6", seq=spi), transport=transport, key=spi, seq=1, csum=True)
        packets += [bytes(esp.encrypt(sa, inner, seq=1)), *FastESP(sa).encrypt([bytes(inner)], first_seq=2)]
        sas.append(sa)
    path = tmp_path_factory.mktemp("tshark") / "esp.pcapng"
    write_pcapng(str(path), packets)
    return path, sas


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
    path, sas = esp_kinds
    assert tshark(path, "-Y", "_ws.malformed || _ws.expert.severity >= warning", sas=sas) == ""
    fields = rows(tshark(path, "-T", "fields", "-e", "esp.spi", "-e", "esp.sequence", "-e", "gre.key",
                         "-e", "gre.checksum.status", "-e", "icmpv6.echo.sequence_number", sas=sas))
    assert len(fields) == 2 * len(sas)
    for sa, scapy_row, fast_row in zip(sas, fields[::2], fields[1::2]):
        for row, seq in ((scapy_row, "1"), (fast_row, "2")):
            assert row == [f"0x{sa.spi:08x}", seq, f"0x{sa.spi:08x}", "1", str(sa.spi)], sa  # key = SPI


def test_without_keys_wireshark_sees_only_esp(esp_kinds):
    path, _ = esp_kinds
    assert "icmpv6" not in tshark(path, "-T", "fields", "-e", "frame.protocols")
