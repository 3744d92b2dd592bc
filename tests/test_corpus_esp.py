"""The ESP captures of tcpdump's test suite (tests/data/corpus/esp, README.md there: origin and licence), opened as a
user would: `grelab pcap show --esp-sa` with the secrets tcpdump publishes (its TESTrun's -E strings and its
esp-secrets.txt file), and with the same SAs written as `ip xfrm state` text. Every ESP packet whose keys the suite
publishes decrypts, down to the ICMP echo it carries, and says its ICV went unchecked (the secrets hold no integrity
key); the ESP whose key is not published stays encrypted and says so. The figures are printed."""
import re
import shutil
import subprocess

import pytest

from grelab.golden.case import read_pcapng

from cli_user import ROOT, grelab

CORPUS = ROOT / "tests/data/corpus/esp"
ESP1 = "0x12345678@192.1.2.45 3des-cbc-hmac96:0x4043434545464649494a4a4c4c4f4f515152525454575758"  # TESTrun: esp1
ESP2 = ("0x12345678@192.1.2.45 3des-cbc-hmac96:0x43434545464649494a4a4c4c4f4f51515252545457575840,"
        "0xabcdabcd@192.0.1.1 3des-cbc-hmac96:0x434545464649494a4a4c4c4f4f5151525254545757584043")  # esp2
ESP3 = "3des-cbc-hmac96:0x4043434545464649494a4a4c4c4f4f515152525454575758"  # esp3: any SA
SECRETS, XFRM_ESP1, XFRM_SECRETS = (str(CORPUS / n) for n in ("esp-secrets.txt", "sunrise-sunset.xfrm",
                                                              "esp-secrets.xfrm"))
# file, the keys it opens with (tcpdump's and grelab's forms), ESP headers opened (ESP in ESP counts twice)
OPENED = [
    ("02-sunrise-sunset-esp.pcap", [ESP1, ESP3, XFRM_ESP1], 8),
    ("08-sunrise-sunset-esp2.pcap", [ESP2, SECRETS, XFRM_SECRETS], 16),
    ("08-sunrise-sunset-aes.pcap", [SECRETS, XFRM_SECRETS], 8),
    ("espudp1.pcap", [ESP1, XFRM_ESP1], 8),
]
UNCHECKED = "(ICV unchecked (no integrity key))"


def show(name: str, keys: str) -> list[str]:
    done = grelab("pcap", "show", CORPUS / name, "--esp-sa", keys)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("name, keys, headers", [(n, k, h) for n, ks, h in OPENED for k in ks],
                         ids=lambda v: v.rsplit("/", 1)[-1][:40] if isinstance(v, str) else str(v))
def test_every_esp_packet_decrypts_with_the_published_keys(name, keys, headers):
    lines = show(name, keys)
    assert len(lines) == len(read_pcapng(CORPUS / name)) == 8
    for line in lines:
        assert line.count(" tunnel " + UNCHECKED) == headers // 8, line  # every ESP header, said unchecked
        assert re.search(r"/ IPv4 192\.0\.2\.1 > 192\.0\.1\.1 / ICMP / ", line), line  # the echo inside
    assert ("UDP 4500 > 4500 (NAT-T)" in lines[0]) == (name == "espudp1.pcap")


def test_tcpdumps_secrets_file_does_not_open_espudp1_and_grelab_says_why():
    """tcpdump runs espudp1 with esp-secrets.txt and prints garbage; grelab names the wrong key instead."""
    for line in show("espudp1.pcap", SECRETS):
        assert "does not open with 3des-any96" in line and "likely the wrong key" in line, line


def test_esp_whose_key_is_not_published_stays_encrypted():
    lines = show("isakmp4500.pcap", SECRETS)
    still = [line for line in lines if "spi=0xf4dc0ae5" in line]
    assert len(still) == 8 and all("(no SA given: still encrypted)" in line for line in still)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (./setup.sh installs it)")
def test_decrypted_pcap_and_tcpdumps_secrets_read_in_wireshark(tmp_path):
    """`grelab pcap decrypt` makes tcpdump's nested ESP readable in any Wireshark; `grelab wireshark --esp-sa`
    turns tcpdump's secrets into Wireshark's esp_sa rows (ANY 96 bit authentication) and tshark decrypts."""
    out = tmp_path / "esp2.pcapng"
    done = grelab("pcap", "decrypt", CORPUS / "08-sunrise-sunset-esp2.pcap", out, "--esp-sa", SECRETS)
    assert done.returncode == 0 and done.stdout.strip().endswith(
        "8 frames, 16 ESP packets decrypted (16 ICV unchecked (no integrity key))"), done.stdout
    protocols = subprocess.run(["tshark", "-n", "-r", out, "-T", "fields", "-e", "frame.protocols", "-e",
                                "frame.comment"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(protocols) == 8 and all(p.startswith("eth:ethertype:ip:ip:ip:icmp") and
                                       "grelab decrypted ESP spi=0x12345678" in p for p in protocols), protocols
    viewed = grelab("wireshark", CORPUS / "08-sunrise-sunset-aes.pcap", "--esp-sa", SECRETS,
                    env={"DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert viewed.returncode == 0 and viewed.stdout.count("Internet Control Message Protocol") == 8, viewed.stderr


def test_the_figures(record_property):
    """files, frames, ESP packets decrypted with the published keys (tcpdump's own secrets), left encrypted."""
    files = sorted(CORPUS.glob("*.pcap"))
    frames = sum(len(read_pcapng(f)) for f in files)
    decrypted = sum(" ".join(show(name, keys[0])).count(UNCHECKED) for name, keys, _ in OPENED)
    left = sum(" ".join(show(f.name, SECRETS)).count("still encrypted") for f in files)
    assert decrypted == sum(headers for _, _, headers in OPENED) == 40
    line = (f"ESP corpus (tcpdump's test suite): {len(files)} files, {frames} frames, {decrypted} ESP packets "
            f"decrypted with the published keys, {left} left encrypted (key not published)")
    print("\n" + line)
    record_property("figures", line)  # the grelab plugin prints it at the end of the run, in CI too
