"""`grelab craft` and the craft part of `grelab bench`."""
import shutil
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE, Ether
from scapy.utils import rdpcap

from grelab.cli import main
from grelab.bench import craft as bench
from grelab.craft import esp
from grelab.craft.gre import gre, passenger

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def craft(tmp_path, *args):
    return main(["craft", *args, "-o", str(tmp_path / "out.pcapng")])


def test_defaults_one_ipv6_echo_in_gre_over_ipv4(tmp_path):
    assert craft(tmp_path) == 0
    (frame,) = rdpcap(str(tmp_path / "out.pcapng"))
    assert bytes(frame[IP]) == bytes(gre(passenger("ipv6")))


def test_count_counts_gre_and_echo_sequence_numbers_up(tmp_path):
    assert craft(tmp_path, "--transport", "ipv6", "--passenger", "ipv4", "--key", "0x10", "--seq", "100", "--csum",
                 "--count", "4") == 0
    frames = rdpcap(str(tmp_path / "out.pcapng"))
    expected = [bytes(gre(passenger("ipv4", seq=n), transport="ipv6", key=16, seq=99 + n, csum=True))
                for n in range(1, 5)]
    assert [bytes(f[IPv6]) for f in frames] == expected


def test_esp_nat_t_tunnel_and_the_keys_file(tmp_path):
    keys = tmp_path / "k.esp_sa"
    assert craft(tmp_path, "--esp", "cbc256-sha256", "--esp-mode", "tunnel", "--nat-t", "--passenger", "ethernet",
                 "--keys", str(keys)) == 0
    (frame,) = rdpcap(str(tmp_path / "out.pcapng"))
    assert frame[UDP].dport == 4500 and frame[ESP].spi == 0x1000
    assert keys.read_text().splitlines()[1].startswith('"IPv4","192.0.2.1","192.0.2.2","0x00001000","AES-CBC')


@pytest.mark.parametrize("algorithm", ["ccm256-icv8", "3des-sha1", "chacha20-poly1305", "null-cmac"])
def test_esp_takes_every_algorithm_of_the_table(tmp_path, algorithm):
    keys = tmp_path / "k.esp_sa"
    assert craft(tmp_path, "--esp", algorithm, "--count", "2", "--keys", str(keys)) == 0
    frames = rdpcap(str(tmp_path / "out.pcapng"))
    algo = esp.ALGORITHMS[algorithm]  # the command's fixed test keys: 01 02 ..., and 41 42 ... for integrity
    sa = esp.SA(0x1000, algorithm, bytes(range(1, algo.key_len + 1)), bytes(range(0x41, 0x41 + algo.auth_key_len)))
    assert [bytes(esp.decrypt(sa, bytes(f[IP]))) for f in frames] == [bytes(gre(passenger("ipv6", seq=n)))
                                                                       for n in (1, 2)]
    assert ("Wireshark 4.0 cannot decrypt" in keys.read_text()) == (algorithm in ("ccm256-icv8", "chacha20-poly1305"))


def test_help_lists_the_algorithms_compactly(capsys):
    with pytest.raises(SystemExit):
        main(["craft", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--esp ALGORITHM" in shown and "chacha20-poly1305" in shown and "CIPHER-INTEGRITY" in shown
    assert "cbc128-sha384" not in shown  # made from the cipher and integrity lists, not all 51 spelled out


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    (tmp_path / "out.pcapng").write_text("mine")
    assert craft(tmp_path) == 2
    assert (tmp_path / "out.pcapng").read_text() == "mine"
    err = capsys.readouterr().err
    assert "out.pcapng" in err and "--force" in err
    keys = tmp_path / "keys"
    keys.write_text("mine too")
    assert main(["craft", "--esp", "gcm128", "--keys", str(keys), "-o", str(tmp_path / "new.pcapng")]) == 2
    assert keys.read_text() == "mine too" and not (tmp_path / "new.pcapng").exists()
    assert craft(tmp_path, "--force") == 0 and (tmp_path / "out.pcapng").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"


@pytest.mark.parametrize("args, message", [
    (["--key", "4294967296"], "--key: 4294967296 is not allowed; allowed: an integer from 0 to 4294967295"),
    (["--count", "0"], "--count: 0 is not allowed; allowed: an integer from 1 to 65535"),
    (["--seq", "4294967295", "--count", "2"], "--seq: 4294967295 is not allowed; allowed: an integer from 0 to 4294967294"),
    (["--nat-t"], "--nat-t: True is not allowed; allowed: only together with --esp"),
    (["--esp-mode", "tunnel"], "--esp-mode: 'tunnel' is not allowed"),
])
def test_bad_input_is_one_line_naming_the_field(tmp_path, capsys, args, message):
    assert craft(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1


@needs_tshark
def test_readme_command_shows_decrypted_packets_and_keys_work_from_wiresharks_config(tmp_path, capsys):
    keys, out = tmp_path / "demo.esp_sa", tmp_path / "demo.pcapng"
    assert main(["craft", "--esp", "gcm128", "--count", "3", "--keys", str(keys), "-o", str(out), "--show"]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if "Echo (ping) request" in line]
    assert len(shown) == 3 and all(f"seq={n}," in line for n, line in zip((1, 2, 3), shown))
    assert all("eth:ethertype:ip:esp:gre:ipv6:icmpv6" in line for line in shown)  # decrypted, whole stack
    # The keys file itself, dropped in a Wireshark configuration folder, decrypts the capture.
    config = tmp_path / "wireshark"
    config.mkdir()
    shutil.copy(keys, config / "esp_sa")
    seqs = subprocess.run(["tshark", "-r", str(out), "-o", "esp.enable_encryption_decode:TRUE", "-T", "fields",
                           "-e", "gre.proto", "-e", "icmpv6.echo.sequence_number"], capture_output=True, text=True,
                          check=True, env={"WIRESHARK_CONFIG_DIR": str(config), "PATH": "/usr/bin:/bin"}).stdout
    assert seqs.split() == ["0x86dd", "1", "0x86dd", "2", "0x86dd", "3"]


def test_frames_are_ethernet_carrying_the_packets(tmp_path):
    craft(tmp_path, "--transport", "ipv6")
    (frame,) = rdpcap(str(tmp_path / "out.pcapng"))
    assert isinstance(frame, Ether) and frame.type == 0x86DD and frame[GRE].proto == 0x86DD


def test_bench_measures_fast_path_beside_scapy():
    measures = {m.name: m for m in bench.measures(quick=True)}
    assert set(measures) == {"craft_pps"} | {f"esp_{a.replace('-', '_')}_pps" for a in esp.ALGORITHMS}
    for m in measures.values():
        assert m.unit == "pkt/s" and m.grelab > m.baseline > 0, m  # the ratio is the bench's to print, not a timed test
