"""`grelab pcap diff` and `grelab pcap show`, run as a user would."""
import dataclasses
import re

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import GRE, Ether

from grelab.craft import esp
from grelab.craft.gre import gre, passenger
from grelab.golden.case import Frame, read_pcapng, write_pcapng

from cli_user import ROOT, grelab, one_line_error

ESP_GOLDEN = ROOT / "pcaps/two_offices/echo-gre-in-esp.pcapng"
GOLDEN = ROOT / "pcaps/two_offices/echo-gre.pcapng"


def test_show_peels_every_packet_to_its_passenger_esp_decrypted():
    done = grelab("pcap", "show", ESP_GOLDEN)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6
    assert "transit  Ethernet / IPv4 198.51.100.1 > 203.0.113.1 / ESP spi=0x00001001 seq=1 gcm128 transport / " \
           "GRE proto=0x86dd -> IPv6 / ICMPv6 Echo Request (id: 0x4242 seq: 0x1)  # between the offices only ESP" \
           in lines[1]
    assert lines[0].split()[:3] == ["1", "2.984755", "lan1"] and "# sent by h1 to h2's office" in lines[0]


def test_show_without_the_key_says_still_encrypted(tmp_path):
    empty = tmp_path / "none.esp_sa"
    empty.write_text("# no keys\n")
    done = grelab("pcap", "show", ESP_GOLDEN, "--esp-sa", empty)
    assert done.returncode == 0 and "(no SA given: still encrypted)" in done.stdout.splitlines()[1]


def test_diff_of_a_file_with_itself_is_same():
    done = grelab("pcap", "diff", GOLDEN, GOLDEN)
    assert done.returncode == 0
    assert re.fullmatch(r"same: 6 packets, field by field \(ESP decrypted with \d+ SAs\)\n", done.stdout)


def test_diff_names_every_differing_field_and_exits_1(tmp_path):
    frames = read_pcapng(GOLDEN)
    request = Ether(frames[2].data)  # lan2: the request as r2 delivered it
    request[IPv6].hlim = 7
    frames[2] = dataclasses.replace(frames[2], data=bytes(request))
    changed = tmp_path / "changed.pcapng"
    write_pcapng(frames, changed)
    done = grelab("pcap", "diff", GOLDEN, changed)
    assert done.returncode == 1, done.stderr
    assert "link lan2: A has 2 frames, B has 2" in done.stdout
    assert "difference at frame 1 on lan2:" in done.stdout
    assert "IPv6.hlim" in done.stdout and "62" in done.stdout and "7" in done.stdout, done.stdout


def test_diff_decrypts_esp_with_the_key_table(tmp_path):
    esp, plain, keys = tmp_path / "esp.pcapng", tmp_path / "plain.pcapng", tmp_path / "k.esp_sa"
    assert grelab("craft", "--esp", "cbc128-sha256", "--count", "3", "--keys", keys, "-o", esp).returncode == 0
    assert grelab("craft", "--count", "3", "-o", plain).returncode == 0
    # transport mode: decrypted, the ESP packet is the plain GRE packet, byte for byte
    assert grelab("pcap", "diff", esp, plain, "--esp-sa", keys).returncode == 0
    none = tmp_path / "none.esp_sa"
    none.write_text("")
    done = grelab("pcap", "diff", esp, plain, "--esp-sa", none)
    assert done.returncode == 1 and "IP.proto" in done.stdout, done.stdout


def test_unreadable_inputs_are_one_line_exit_2(tmp_path):
    assert one_line_error(grelab("pcap", "diff", GOLDEN, tmp_path / "missing.pcapng"), "pcap") == \
        f"grelab pcap: B: '{tmp_path / 'missing.pcapng'}' is not allowed; allowed: an existing pcap or pcapng file"
    junk = tmp_path / "junk.pcapng"
    junk.write_bytes(b"not a pcap")
    assert "a pcap or pcapng scapy can read" in one_line_error(grelab("pcap", "show", junk), "pcap")
    keys = tmp_path / "bad.esp_sa"
    keys.write_text('"IPv4","1.1.1.1","2.2.2.2","0x1","ROT13","0x00","NULL",""\n')
    message = one_line_error(grelab("pcap", "show", GOLDEN, "--esp-sa", keys), "pcap")
    assert f"{keys} line 1: encryption: 'ROT13 with a 1-byte key' is not allowed; allowed: one of AES-CBC [RFC3602] " \
           "(16, 32 bytes); AES-CTR [RFC3686] (20, 36 bytes); " in message
    assert grelab("pcap").returncode == 2  # no action: usage


CCM_GOLDEN = ROOT / "pcaps/esp_algorithms/echo-gre-in-esp-ccm128.pcapng"


def test_decrypt_writes_each_esp_packet_as_what_it_carries(tmp_path):
    """Outer IP header kept, next header the inner protocol (GRE), a comment saying SPI, sequence number, algorithm,
    mode and ICV verdict; every other frame and comment as it was. The golden's companion is exactly this."""
    out = tmp_path / "opened.pcapng"
    done = grelab("pcap", "decrypt", CCM_GOLDEN, out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{out}: 6 frames, 2 ESP packets decrypted (2 ICV good)\n"
    before, after = read_pcapng(CCM_GOLDEN), read_pcapng(out)
    assert [f.link for f in before] == [f.link for f in after]
    for old, new in zip(before, after):
        if old.link != "transit":
            assert new == old
            continue
        esp, plain = Ether(old.data), Ether(new.data)
        assert (plain[IP].src, plain[IP].dst, plain[IP].proto) == (esp[IP].src, esp[IP].dst, 47)
        assert plain[GRE].proto == 0x86DD and not plain.haslayer(ESP)
        assert re.fullmatch(rf"grelab decrypted ESP spi=0x{esp[ESP].spi:08x} seq=1 ccm128 transport: ICV good\n"
                            + re.escape(old.comment), new.comment)
    assert read_pcapng(out) == read_pcapng(ROOT / "pcaps/esp_algorithms/echo-gre-in-esp-ccm128.decrypted.pcapng")


def test_decrypt_never_overwrites_silently(tmp_path):
    out = tmp_path / "opened.pcapng"
    out.write_bytes(b"mine")
    assert one_line_error(grelab("pcap", "decrypt", CCM_GOLDEN, out), "pcap").endswith(
        "allowed: a path that does not exist yet (or --force to overwrite it)")
    assert out.read_bytes() == b"mine"
    assert grelab("pcap", "decrypt", CCM_GOLDEN, out, "--force").returncode == 0 and out.read_bytes() != b"mine"
    assert "allowed: a file other than IN" in one_line_error(grelab("pcap", "decrypt", out, out, "--force"), "pcap")


def test_esp_sa_takes_tcpdump_secrets_inline_and_repeated(tmp_path):
    """--esp-sa as tcpdump's -E: a secret on the command line; several --esp-sa add up; a bad one is one line."""
    sa = esp.SA(0x51, "cbc256-none", bytes(range(32)), src="192.0.2.1", dst="192.0.2.2")
    pcap = tmp_path / "esp.pcapng"
    write_pcapng([Frame("wan", 0.0, bytes(Ether() / esp.encrypt(sa, gre(passenger("ipv4")), seq=3)))], pcap)
    empty = tmp_path / "none.esp_sa"
    empty.write_text("")
    done = grelab("pcap", "show", pcap, "--esp-sa", empty, "--esp-sa", f"0x51@192.0.2.2 aes256-cbc:0x{sa.key.hex()}")
    assert "ESP spi=0x00000051 seq=3 cbc256-none transport (no ICV (confidentiality only)) / GRE" in done.stdout, done
    assert "--esp-sa: 'nothing-here' is not allowed; allowed: a keys file" in one_line_error(
        grelab("pcap", "show", pcap, "--esp-sa", "nothing-here"), "pcap")
