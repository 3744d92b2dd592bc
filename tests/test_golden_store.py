"""Golden pcaps: normalization, comparison with a readable diff, safe rewrite, esp_sa merge."""
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, ICMPv6EchoRequest
from scapy.layers.l2 import GRE, Ether

from grelab.craft.esp import SA, decrypt, encrypt
from grelab.golden.case import Frame, read_pcapng
from grelab.golden.normalize import Normalizer
from grelab.golden.store import GoldenStore, case_file_name

MACS = dict(src="02:00:00:00:01:01", dst="02:00:00:00:01:02")


def gre_echo(seq=1, hlim=64, ip_id=1):
    return bytes(Ether(**MACS) / IP(src="198.51.100.1", dst="198.51.100.2", id=ip_id) / GRE()
                 / IPv6(src="2001:db8:1::1", dst="2001:db8:2::1", hlim=hlim) / ICMPv6EchoRequest(id=7, seq=seq))


def frames(**kw):
    return [Frame("transit", 0.0, gre_echo(**kw), "h1 -> h2 echo request in GRE"),
            Frame("lan2", 0.001, gre_echo(**kw)[38:], "")]


def test_case_file_names():
    assert case_file_name("test_echo") == "echo"
    assert case_file_name("test_echo[gcm128-tunnel]") == "echo-gcm128-tunnel"


def test_missing_golden_names_the_command(tmp_path):
    message = GoldenStore(tmp_path).compare("two_offices", "echo", frames(), "pytest X --update-golden")
    assert "no golden pcap" in message and "pytest X --update-golden" in message


def test_roundtrip_equal_then_changed_field_is_named(tmp_path):
    store = GoldenStore(tmp_path)
    assert store.update("s", "c", frames()) == "created"
    assert store.compare("s", "c", frames(), "hint") is None
    assert store.update("s", "c", frames()) == "unchanged"
    message = store.compare("s", "c", frames(hlim=63), "hint")
    assert "first difference at frame 1 on transit" in message
    assert "IPv6.hlim: expected 64, got 63" in message
    assert store.update("s", "c", frames(hlim=63)) == "changed"
    kept = read_pcapng(store.path("s", "c"))
    assert [f.link for f in kept] == ["transit", "lan2"] and kept[0].comment == "h1 -> h2 echo request in GRE"


def test_timestamps_alone_are_no_change(tmp_path):
    store = GoldenStore(tmp_path)
    store.update("s", "c", frames())
    later = [Frame(f.link, f.time + 5, f.data, f.comment) for f in frames()]
    before = store.path("s", "c").stat().st_mtime_ns
    assert store.update("s", "c", later) == "unchanged"
    assert store.path("s", "c").stat().st_mtime_ns == before


MERGE = "import sys; from grelab.golden.store import GoldenStore; GoldenStore(sys.argv[1]).merge_esp_sa([sys.argv[2]])"


def test_esp_sa_merge_under_concurrency(tmp_path):
    # Separate processes, not a fork pool: forking a pytest worker whose capture threads run can deadlock.
    rows = [f'"IPv4","198.51.100.{i}","*","0x{i:08x}","NULL","","NULL",""' for i in range(1, 9)]
    writers = [subprocess.Popen([sys.executable, "-c", MERGE, str(tmp_path), row]) for row in rows]
    assert [w.wait(timeout=60) for w in writers] == [0] * len(rows)
    assert sorted((tmp_path / "esp_sa").read_text().splitlines()) == sorted(rows)


def test_the_projects_esp_sa_is_as_the_store_writes_it(tmp_path):
    """pcaps/esp_sa sorted and each row once, as merge_esp_sa writes it: a merge conflict resolved by hand stays so,
    or the next --update-golden reorders rows in an unrelated change. Its rows merged again change nothing."""
    project = Path(__file__).resolve().parents[1] / "pcaps" / "esp_sa"
    text = project.read_text()
    assert text.splitlines() == sorted(set(text.splitlines())), "pcaps/esp_sa: rows out of order or twice"
    (tmp_path / "esp_sa").write_text(text)
    assert not GoldenStore(tmp_path).merge_esp_sa(text.splitlines()) and (tmp_path / "esp_sa").read_text() == text


def test_normalizer_takes_out_ip_id_and_tcp_isn():
    n = Normalizer()
    a = bytes(Ether(**MACS) / IP(src="198.51.100.1", dst="198.51.100.2", id=1) / TCP(sport=40000, dport=40001, seq=1000, flags="S"))
    b = bytes(Ether(**MACS) / IP(src="198.51.100.1", dst="198.51.100.2", id=99) / TCP(sport=40000, dport=40001, seq=5555, flags="S"))
    assert n.frame(a) == Normalizer().frame(b)
    assert Ether(n.frame(a))[TCP].seq == 0


@pytest.mark.parametrize("algorithm,key,auth_key,mode,nat_t", [
    ("gcm128", b"k" * 16 + b"salt", b"", "transport", None),
    ("cbc128-sha256", b"k" * 16, b"a" * 32, "transport", None),
    ("gcm256", b"k" * 32 + b"salt", b"", "tunnel", None),
    ("gcm128", b"k" * 16 + b"salt", b"", "transport", (4500, 4500)),
])
def test_normalizer_reencrypts_esp_deterministically(algorithm, key, auth_key, mode, nat_t):
    sa = SA(0x1000, algorithm, key, auth_key, src="198.51.100.1", dst="198.51.100.2", mode=mode, nat_t=nat_t)
    inner = IP(src="198.51.100.1", dst="198.51.100.2", ttl=17) / GRE() \
        / IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / TCP(sport=40000, dport=40001, seq=123456, flags="S")
    size = sa.algo.iv_len
    one = bytes(Ether(**MACS) / encrypt(sa, inner, seq=5, iv=b"\x01" * size))
    two = bytes(Ether(**MACS) / encrypt(sa, inner, seq=5, iv=b"\x02" * size))
    assert one != two
    normal = Normalizer([sa]).frame(one)
    assert normal == Normalizer([sa]).frame(two)
    outer = Ether(normal)[IP]
    assert outer.ttl == (64 if mode == "tunnel" else 17)  # the sender's outer header is kept
    assert decrypt(sa, outer)[TCP].seq == 0


class _Settled:
    """What a Capture's settle() gives: these frames, complete."""
    matched = True

    def __init__(self, frames):
        self.frames = frames

    def check_no_drops(self):
        pass


class _Capture:
    def __init__(self, frames):
        self._frames = frames

    def settle(self):
        return _Settled(self._frames)


def test_frames_left_out_are_not_in_the_golden_but_expectations_see_them(tmp_path):
    from grelab.golden.recorder import GoldenRecorder
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    data = bytes(eth / IP(src="10.1.0.10", dst="10.2.0.10") / TCP(flags="A") / b"data")
    ack = bytes(eth / IP(src="10.2.0.10", dst="10.1.0.10") / TCP(flags="A"))
    recorder = GoldenRecorder(GoldenStore(tmp_path), "scenario", "case", "hint")
    recorder._captures = [("lan1", _Capture([(recorder.start + 0.1, data), (recorder.start + 0.2, ack)])),
                          ("lan2", _Capture([(recorder.start + 0.3, ack)]))]
    recorder.leave_out(lambda frame: len(frame) == len(ack), link="lan1")
    kept = [(frame.link, len(frame.data)) for frame in recorder.record().sorted()]  # normalized: IP ids differ
    assert kept == [("lan1", len(data)), ("lan2", len(ack))]  # the pure ACK left out on lan1 only
    assert [f for _, f in recorder.frames("lan1")] == [data, ack]  # expectations still see it


def test_frames_of_an_ordered_link_go_into_the_golden_by_key_other_links_as_they_came(tmp_path):
    from grelab.golden.recorder import GoldenRecorder
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frame = {n: bytes(eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(seq=n)) for n in (1, 2, 3)}
    recorder = GoldenRecorder(GoldenStore(tmp_path), "scenario", "case", "hint")
    t = recorder.start
    recorder._captures = [("a", _Capture([(t + 0.1, frame[2]), (t + 0.3, frame[1])])),
                          ("b", _Capture([(t + 0.2, frame[3]), (t + 0.4, frame[1])]))]
    recorder.order(lambda data: data[-1], link="a")  # by the echo's last byte: its sequence number
    kept = [(f.link, IPv6(f.data[14:])[ICMPv6EchoRequest].seq) for f in recorder.record().sorted()]
    assert kept == [("a", 1), ("b", 3), ("a", 2), ("b", 1)]  # a re-sorted in its own places; b as it came


def test_a_links_frames_go_into_the_golden_in_capture_order_even_when_their_times_disagree(tmp_path):
    """A frame stamped when the reader took it (it reached the socket without a timestamp) can carry a later time
    than the next frame on its link: links are merged by time, each kept in the order its capture saw."""
    from grelab.golden.recorder import GoldenRecorder
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frame = {n: bytes(eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(seq=n)) for n in (1, 2, 3)}
    recorder = GoldenRecorder(GoldenStore(tmp_path), "scenario", "case", "hint")
    t = recorder.start
    recorder._captures = [("transit", _Capture([(t + 0.3, frame[1]), (t + 0.2, frame[2])])),
                          ("lan", _Capture([(t + 0.1, frame[3])]))]
    kept = [(f.link, IPv6(f.data[14:])[ICMPv6EchoRequest].seq) for f in recorder.record().sorted()]
    assert kept == [("lan", 3), ("transit", 1), ("transit", 2)]


def esp_frames(sa: SA):
    inner = IP(src=sa.src, dst=sa.dst) / GRE() / IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / ICMPv6EchoRequest()
    return [Frame("transit", 0.5, bytes(Ether(**MACS) / encrypt(sa, inner, seq=4)), "an echo in ESP")]


def test_a_golden_wireshark_cannot_decrypt_gets_its_companion_and_only_such_a_golden(tmp_path):
    """Written beside the golden, its ESP opened (grelab.golden.decrypted); rewritten only when it would differ; a
    golden of an algorithm Wireshark decrypts gets none, and a file of that name is left as it is; comparisons do not
    see companions."""
    store = GoldenStore(tmp_path)
    ccm = SA(0x77, "ccm128", bytes(range(19)), src="198.51.100.1", dst="198.51.100.2")
    store.update("s", "ccm", esp_frames(ccm))
    assert store.update_companion("s", "ccm", [ccm]) == "companion created"
    companion = tmp_path / "s" / "ccm.decrypted.pcapng"
    (opened,) = read_pcapng(companion)
    assert opened.time == 0.5 and opened.comment.startswith("grelab decrypted ESP spi=0x00000077 seq=4 ccm128 transport")
    assert bytes(Ether(opened.data)[IPv6]) == bytes(decrypt(ccm, Ether(esp_frames(ccm)[0].data)[IP])[IPv6])
    before = companion.stat().st_mtime_ns
    assert store.update_companion("s", "ccm", [ccm]) == "companion unchanged" and companion.stat().st_mtime_ns == before
    assert store.compare("s", "ccm", esp_frames(ccm), "hint") is None
    gcm = SA(0x78, "gcm128", bytes(range(20)), src="198.51.100.1", dst="198.51.100.2")
    store.update("s", "gcm", esp_frames(gcm))
    mine = tmp_path / "s" / "gcm.decrypted.pcapng"
    mine.write_bytes(b"a user's file")
    assert store.update_companion("s", "gcm", [gcm]) is None and mine.read_bytes() == b"a user's file"


def test_the_run_report_links_a_cases_companion_when_it_has_one(tmp_path):
    from grelab.golden.decrypted import decrypted_frames
    from grelab.golden.report import save_case, write_page
    ccm = SA(0x77, "ccm128", bytes(range(19)), src="198.51.100.1", dst="198.51.100.2")
    base = {"scenario": "s", "scenario_story": "", "story": "", "outcome": "passed", "failure": "", "nodes": [],
            "arrows": []}
    save_case(tmp_path, {**base, "nodeid": "s.py::test_ccm", "case": "test_ccm", "_frames": esp_frames(ccm),
                         "_companion": decrypted_frames(esp_frames(ccm), [ccm])[0]})
    save_case(tmp_path, {**base, "nodeid": "s.py::test_plain", "case": "test_plain", "_frames": frames()})
    page = write_page(tmp_path).read_text()
    assert page.count('class="companion"') == 1
    assert '<a class="companion" href="cases/s.py_test_ccm.decrypted.pcapng">' in page
    assert read_pcapng(tmp_path / "cases/s.py_test_ccm.decrypted.pcapng")[0].comment.startswith("grelab decrypted ESP")
