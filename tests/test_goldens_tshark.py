"""Every golden pcap, as Wireshark shows it: nothing malformed, no expert warning, every ESP packet decrypted
down to GRE and its passenger (in an "ipsec-alone" case, with no GRE, to the IP packet it carries), ICV checked, with nothing but the repository's pcaps/wireshark folder (esp_sa +
preferences).

Where Wireshark 4.0 cannot (AES-CCM, AES-GMAC and ChaCha20-Poly1305 it does not decrypt; AES-CMAC and ESN ICVs it
does not check), pcaps/esp_sa keeps the SA as a grelab comment row (grelab.craft.esp_sa.grelab_row), and grelab
decrypts those packets itself, ICV verified, down to GRE and a whole passenger: every ESP packet is accounted for
by one or the other. Packets a scenario breaks on purpose (a refusal's flipped bit, truncated ESP, unknown SPI, a GRE checksum
deliberately wrong) say so in their comment ("[broken on purpose]", "deliberately") and are held to dissecting without a crash only; ESP sent out of
sequence on purpose (a replay) says so too ("[out of sequence on purpose]") and may draw Wireshark's sequence
warning, nothing else; so may ESP a golden holds twice, seen on two links ("[seen on two links]", a NAT's sides).
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from grelab.craft.keys import read_grelab_rows
from grelab.craft.peel import peel
from grelab.golden.case import read_pcapng

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
GOLDENS = sorted(PCAPS.glob("*/*.pcapng"))
BROKEN = "[broken on purpose]"
OUT_OF_SEQUENCE = "[out of sequence on purpose]"  # a replay: Wireshark's ESP sequence analysis warns, rightly
SEEN_TWICE = "[seen on two links]"  # the same ESP on both sides of a NAT: Wireshark's sequence analysis warns too

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (./setup.sh installs it)")


def tshark(path: Path, *args: str) -> str:
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(PCAPS / "wireshark"))
    done = subprocess.run(["tshark", "-n", "-r", str(path), *args], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_there_are_goldens():
    assert {p.parent.name for p in GOLDENS} >= {"two_offices", "grelab_endpoint", "esp_algorithms"}


def test_preferences_check_icvs():
    assert "esp.enable_authentication_check: TRUE" in (PCAPS / "wireshark" / "preferences").read_text()


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_dissects_cleanly_and_decrypts(path):
    intact = (f'!(frame.comment contains "{BROKEN}") && !(frame.comment contains "deliberately") && !((frame.comment contains "{OUT_OF_SEQUENCE}" || '
              f'frame.comment contains "{SEEN_TWICE}") && _ws.expert.message contains "Wrong Sequence Number")')
    assert tshark(path, "-Y", f"(_ws.malformed || _ws.expert.severity >= warning) && {intact}") == ""
    rows = [line.split("\t") for line in tshark(
        path, "-T", "fields", "-E", "occurrence=l", "-e", "frame.number", "-e", "frame.protocols", "-e", "esp.spi",
        "-e", "esp.icv_good", "-e", "frame.comment").splitlines()]
    assert rows, "an empty golden"
    assert all(row[4].strip() for row in rows), "every packet says what it is"
    grelab_sas = {sa.spi: sa for sa in read_grelab_rows((PCAPS / "esp_sa").read_text())}
    frames = read_pcapng(path)
    esp = [row for row in rows if row[2] and BROKEN not in row[4]]
    for number, protocols, spi, icv_good, comment in esp:
        if int(spi, 16) in grelab_sas:  # Wireshark cannot decrypt it or check its ICV: grelab does, ICV verified
            peeled = peel(frames[int(number) - 1].data, sas=[grelab_sas[int(spi, 16)]])
            assert peeled.gre is not None and peeled.passenger is not None and not peeled.passenger_problem, \
                f"frame {number}: {peeled}"
        else:
            inside = ":" + protocols.partition(":esp:")[2]  # tunnel mode: ip or ipv6 first; ip6gre: its dstopts
            if "ipsec-alone" in path.stem:  # IPsec without GRE: tunnel mode around the hosts' own packets
                assert inside.startswith((":ip:", ":ipv6:")) and inside.count(":") >= 2 and ":gre:" not in inside, \
                    f"frame {number}: ESP that did not decrypt to an IP packet with a payload: {protocols}"
            else:
                assert ":gre:" in inside, f"frame {number}: ESP that did not decrypt to GRE: {protocols}"
            assert icv_good == "1", f"frame {number}: Wireshark did not find its ICV good"
    if "gre-in-esp" in path.stem or "ipsec-alone" in path.stem:
        assert esp, "an ESP case with no ESP on the wire"
