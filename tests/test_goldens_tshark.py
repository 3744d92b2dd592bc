"""Every golden pcap, as Wireshark shows it: nothing malformed, no expert warning, every ESP packet decrypted
down to GRE and its passenger (in an "ipsec-alone" case, with no GRE, to the IP packet it carries), ICV checked where
it has one, with nothing but the repository's pcaps/wireshark folder (esp_sa + preferences).

Where Wireshark 4.0 cannot (AES-CCM, AES-GMAC and ChaCha20-Poly1305 it does not decrypt; AES-CMAC and ESN ICVs it
does not check), pcaps/esp_sa keeps the SA as a grelab comment row (grelab.craft.esp_sa.grelab_row), and grelab
decrypts those packets itself, ICV verified, down to GRE and a whole passenger: every ESP packet is accounted for
by one or the other. And every ESP packet is readable decrypted in Wireshark 4.0: directly, or (the algorithms it
cannot decrypt) in the golden's companion <case>.decrypted.pcapng (grelab.golden.decrypted), which must be what
`grelab pcap decrypt` makes of the golden today. Packets a scenario breaks on purpose (a refusal's flipped bit, truncated ESP, unknown SPI, a GRE checksum
deliberately wrong) say so in their comment ("[broken on purpose]", "deliberately") and are held to dissecting without a crash only; ESP sent out of
sequence on purpose (a replay) says so too ("[out of sequence on purpose]") and may draw Wireshark's sequence
warning, nothing else; so may ESP a golden holds twice, seen on two links ("[seen on two links]", a NAT's sides).
"""
import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.l2 import Ether

from grelab.craft.esp import frame_esp_spi
from grelab.craft.keys import read_grelab_rows, read_keys
from grelab.craft.peel import peel
from grelab.golden.case import Frame, read_pcapng
from grelab.golden.decrypted import companion_path, decrypted_frames, is_companion

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"
GOLDENS = sorted(p for p in PCAPS.glob("*/*.pcapng") if not is_companion(p))
COMPANIONS = sorted(p for p in PCAPS.glob("*/*.pcapng") if is_companion(p))
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
    keys = project_keys()
    frames = read_pcapng(path)
    esp = [row for row in rows if row[2] and BROKEN not in row[4]]
    unread = []  # frames Wireshark leaves encrypted: its companion must show them decrypted
    for number, protocols, spi, icv_good, comment in esp:
        inside = ":" + protocols.partition(":esp:")[2]  # tunnel mode: ip or ipv6 first; ip6gre: its dstopts
        if int(spi, 16) in grelab_sas:  # Wireshark cannot decrypt it or check its ICV: grelab does, ICV verified
            peeled = peel(frames[int(number) - 1].data, sas=[grelab_sas[int(spi, 16)]])
            assert peeled.gre is not None and peeled.passenger is not None and not peeled.passenger_problem, \
                f"frame {number}: {peeled}"
            if inside == ":":
                unread.append(int(number))
                continue
        if "ipsec-alone" in path.stem:  # IPsec without GRE: tunnel mode around the hosts' own packets
            assert inside.startswith((":ip:", ":ipv6:")) and inside.count(":") >= 2 and ":gre:" not in inside, \
                f"frame {number}: ESP that did not decrypt to an IP packet with a payload: {protocols}"
        else:
            assert ":gre:" in inside, f"frame {number}: ESP that did not decrypt to GRE: {protocols}"
        if int(spi, 16) not in grelab_sas:
            has_icv = any(sa.algo.icv_len for sa in keys.sas_for(int(spi, 16), *_addresses(frames[int(number) - 1])))
            assert icv_good == ("1" if has_icv else ""), f"frame {number}: Wireshark's ICV verdict {icv_good!r}"
    if "gre-in-esp" in path.stem or "ipsec-alone" in path.stem:
        assert esp, "an ESP case with no ESP on the wire"
    companion = companion_path(path)
    assert companion.exists() == bool(unread), f"{companion}: a companion exactly where Wireshark 4.0 cannot decrypt"
    if unread:
        shown = [line.split("\t") for line in tshark(companion, "-T", "fields", "-e", "frame.number", "-e",
                                                      "frame.protocols", "-e", "frame.comment").splitlines()]
        for number in unread:
            _, protocols, comment = shown[number - 1]
            assert ":esp:" not in protocols and ":gre:ipv6:" in protocols, f"companion frame {number}: {protocols}"
            assert re.match(r"grelab decrypted ESP spi=0x[0-9a-f]{8} seq=\d+ \S+ (transport|tunnel)\S*: ICV good",
                            comment), comment


@functools.cache
def project_keys():
    return read_keys(PCAPS / "esp_sa")


def _addresses(frame: Frame) -> tuple[str, str]:
    ip = Ether(frame.data).payload
    return ip.src, ip.dst


def test_every_companion_is_its_golden_decrypted_today(record_property):
    """Each companion belongs to a golden and is what grelab makes of it now, byte for byte; tshark reads it
    cleanly; the figures (goldens with ESP, readable directly or through a companion) are printed."""
    assert COMPANIONS, "no companion: the goldens of AES-CCM, AES-GMAC and ChaCha20-Poly1305 need one"
    keys = project_keys()
    for companion in COMPANIONS:
        golden = companion.with_name(companion.name.removesuffix(".decrypted.pcapng") + ".pcapng")
        assert golden.exists(), f"{companion}: no golden of its own"
        opened, tally = decrypted_frames(read_pcapng(golden), keys)
        assert [f.key() for f in read_pcapng(companion)] == [f.key() for f in opened], \
            f"{companion} is stale: pytest {golden.parent.name} --update-golden for that case rewrites it"
        assert tally.opened and not tally.left, f"{golden}: {tally}"
        assert tshark(companion, "-Y", "_ws.malformed || _ws.expert.severity >= warning") == ""
    with_esp = [g for g in GOLDENS if any(frame_esp_spi(f.data) is not None for f in read_pcapng(g))]
    line = (f"{len(with_esp)} goldens with ESP: {len(with_esp) - len(COMPANIONS)} read decrypted in Wireshark 4.0 "
            f"directly, {len(COMPANIONS)} through their companion")
    print("\n" + line)
    record_property("figures", line)
