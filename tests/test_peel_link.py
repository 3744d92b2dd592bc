"""peel tells an IP packet from an Ethernet frame by itself, so the README's REPL lines print the passenger."""
import os
import re
import subprocess
import sys
from pathlib import Path

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from grelab.craft import SA, encrypt, gre, passenger, peel
from grelab.craft.dissect import guess_link

ROOT = Path(__file__).resolve().parent.parent


def test_guess_link_tells_ip_from_ethernet():
    for transport in ("ipv4", "ipv6"):
        packet = bytes(gre(passenger("ipv6"), transport=transport))
        assert guess_link(packet) == "ip"
        assert guess_link(bytes(Ether(dst="02:00:00:00:00:01") / packet)) == "ethernet"
    # a frame whose destination MAC starts like an IPv4 header is still a frame: length and checksum disagree
    assert guess_link(bytes(Ether(dst="45:00:00:54:00:00") / gre())) == "ethernet"
    damaged = bytearray(bytes(gre()))
    damaged[10] ^= 0xFF  # a bad IPv4 header checksum: not taken for IP
    assert guess_link(bytes(damaged)) == "ethernet"
    assert guess_link(b"") == "ethernet"


def test_peel_of_ip_bytes_and_of_frames_reaches_the_passenger():
    sa = SA(0x1000, "gcm128", bytes(20), src="192.0.2.1", dst="192.0.2.2")
    esp = encrypt(sa, gre(key=42, seq=1, csum=True), seq=1)
    for data in (bytes(esp), esp, bytes(Ether(dst="02:00:00:00:00:01") / esp)):
        peeled = peel(data, sas=[sa])
        assert peeled.gre.key == 42 and "ICMPv6 Echo Request" in str(peeled), str(peeled)
    assert str(peel(bytes(esp), sas=[sa])).startswith("IPv4 192.0.2.1 > 192.0.2.2 / ESP")
    assert isinstance(peel(bytes(esp), [sa], link="ip").passenger.underlayer.underlayer, IP)


def test_the_readme_repl_lines_typed_verbatim_print_the_passenger():
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "print(peel(" in b)
    lines = block.split("\n\nfrom grelab.lab")[0]  # the crafting part (the lab part is covered elsewhere)
    done = subprocess.run([sys.executable, "-c", lines], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "-> IPv6 / ICMPv6 Echo Request" in done.stdout and "passenger not reached" not in done.stdout
