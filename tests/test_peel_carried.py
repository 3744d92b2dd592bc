"""What rides in GRE, what rides on a link, what an ICMP error quotes: peel and `grelab pcap show` say it, and tshark
reads the same fields from the same bytes."""
import os
import struct
import subprocess
import sys

from scapy.contrib.cdp import CDPMsgDeviceID, CDPv2_HDR
from scapy.contrib.dtp import DTP
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import GRE, LLC, SNAP, STP, CookedLinux, CookedLinuxV2, Dot1Q, Dot3, Ether, GRE_PPTP
from scapy.layers.ppp import HDLC, PPP, PPP_IPCP, PPP_LCP_Configure, PPPoE

from cli_user import ROOT, grelab
from grelab.craft import SA, encrypt, gre, passenger, peel
from grelab.craft.carried import NHRP, NHRPMandatory, WCCPRedirect
from grelab.craft.peel import describe

MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
OUTER = dict(src="192.0.2.1", dst="192.0.2.2")
MIRRORED = Ether(**MACS) / Dot1Q(vlan=7) / passenger("ipv4")


def write(path, frames, linktype=1, snaplen=65535):
    """A classic pcap of these frames (by hand: scapy's writer takes link type 0 for "not given")."""
    records = b"".join(struct.pack("<IIII", 0, 0, len(bytes(f)), len(bytes(f))) + bytes(f) for f in frames)
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype) + records)
    return path


def tshark(path, *fields, extra=()):
    """One list of field values per frame."""
    argv = ["tshark", "-n", "-r", str(path), *extra, "-T", "fields"] + [a for f in fields for a in ("-e", f)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_erspan_i_ii_iii_are_peeled_down_to_the_mirrored_frame(tmp_path):
    frames = [Ether(**MACS) / IP(**OUTER) / GRE(proto=0x88BE) / MIRRORED,  # type I: no sequence number
              Ether(**MACS) / IP(**OUTER) / GRE(proto=0x88BE, seqnum_present=1, sequence_number=5)
              / ERSPAN_II(session_id=101, vlan=7, cos=3, index=42) / MIRRORED,
              Ether(**MACS) / IP(**OUTER) / GRE(proto=0x22EB, seqnum_present=1, sequence_number=6)
              / ERSPAN_III(session_id=202, vlan=7, timestamp=123456, d=1, gra=1) / MIRRORED]
    said = [str(peel(bytes(f))) for f in frames]
    assert said[0].endswith("-> ERSPAN I / Ether / Dot1Q / IP / ICMP 198.51.100.1 > 198.51.100.2 echo-request 0 / Raw")
    assert "-> ERSPAN II session=101 vlan=7 cos=3 en=0 truncated=0 index=42 / Ether / Dot1Q / IP / ICMP" in said[1]
    assert ("-> ERSPAN III session=202 vlan=7 cos=0 bso=0 truncated=0 timestamp=123456 granularity=100ns sgt=0 "
            "frame_type=Ethernet hw=0 direction=egress / Ether / Dot1Q / IP / ICMP") in said[2]
    assert all(peel(bytes(f)).passenger.payload.payload[ICMP].seq == 1 for f in frames[1:])
    rows = tshark(write(tmp_path / "erspan.pcap", frames), "erspan.version", "erspan.spanid", "erspan.vlan",
                  "erspan.timestamp", "erspan.direction", "icmp.seq")
    assert [r[1:3] for r in rows[1:]] == [["101", "7"], ["202", "7"]] and rows[2][3:5] == ["123456", "1"]
    assert [r[-1] for r in rows] == ["1", "1", "1"]  # Wireshark too reaches the mirrored echo in all three


def test_a_carried_header_cut_short_is_said_so():
    for proto, payload, said in ((0x88BE, bytes(ERSPAN_II(session_id=1))[:5], "-> ERSPAN [cut short] / Raw"),
                                 (0x883E, b"\x01\x59", "-> WCCP [cut short] / Raw"),
                                 (0x2001, bytes(NHRP())[:12], "-> NHRP [cut short] / Raw")):
        seq = dict(seqnum_present=1, sequence_number=1) if proto == 0x88BE else {}
        assert str(peel(bytes(IP(**OUTER) / GRE(proto=proto, **seq) / payload))).endswith(said)


def test_wccp_redirect_header_and_the_packet_inside(tmp_path):
    inner = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=40001) / b"x"
    frames = [Ether(**MACS) / IP(**OUTER) / GRE(proto=0x883E) / WCCPRedirect(dynamic=1, service_id=89,
                                                                            primary_bucket=72) / inner,
              Ether(**MACS) / IP(**OUTER) / GRE(proto=0x883E) / inner]  # WCCPv1: the IPv4 packet at once
    said = [str(peel(bytes(f))) for f in frames]
    assert said[0].endswith("-> WCCP redirect service=89 dynamic primary_bucket=72 alternative_bucket=0 / "
                            "IP / UDP 10.0.0.1:40000 > 10.0.0.2:40001 / Raw"), said[0]
    assert said[1].endswith("-> WCCP (no redirect header) / IP / UDP 10.0.0.1:40000 > 10.0.0.2:40001 / Raw"), said[1]
    rows = tshark(write(tmp_path / "wccp.pcap", frames), "gre.wccp.service_id", "gre.wccp.primary_bucket",
                  "udp.dstport")
    assert rows == [["89", "72", "40001"], ["", "", "40001"]]


def test_nhrp_fixed_header_and_operation(tmp_path):
    frame = Ether(**MACS) / IP(**OUTER) / GRE(proto=0x2001) / NHRP(operation=3, src_nbma_len=4) / NHRPMandatory(
        request_id=21, src_nbma=bytes([192, 0, 2, 1]), src_proto=bytes([10, 64, 0, 3]), dst_proto=bytes([10, 64, 0, 1]))
    said = str(peel(bytes(frame)))
    assert said.endswith("-> NHRP Registration Request version=1 afn=1 protocol=0x0800 hops=255 size=40 "
                         "request_id=21 src=10.64.0.3 dst=10.64.0.1"), said
    (row,) = tshark(write(tmp_path / "nhrp.pcap", [frame]), "nhrp.hdr.op.type", "nhrp.reqid", "nhrp.hdr.pktsz",
                    "nhrp.hdr.chksum.status", "_ws.malformed")
    assert [int(v, 0) for v in row[:4]] == [3, 21, 40, 1] and row[4] == ""  # checksum status 1: good


def test_pptp_enhanced_gre_is_a_gre_with_its_ppp_passenger(tmp_path):
    frames = [IP(**OUTER) / GRE_PPTP(seqnum_present=1, sequence_number=s, call_id=7) / HDLC() / PPP(proto=p) / body
              for s, (p, body) in enumerate([(0xC021, PPP_LCP_Configure(code=1, id=1)),
                                             (0x8021, PPP_IPCP(code=1, id=2)),
                                             (0x0021, IP(src="10.9.0.1", dst="10.9.0.2") / ICMP())])]
    peeled = [peel(bytes(Ether(**MACS) / f)) for f in frames]
    assert all(isinstance(p.gre, GRE_PPTP) and p.gre.call_id == 7 and isinstance(p.passenger, HDLC) for p in peeled)
    assert [p.passenger[PPP].proto for p in peeled] == [0xC021, 0x8021, 0x0021]
    assert peeled[2].passenger[ICMP].type == 8 and "LCP Configure-Request" in str(peeled[0])
    assert str(peeled[1]).startswith("Ethernet / IPv4 192.0.2.1 > 192.0.2.2 / GRE (PPTP, RFC 2637) version=1 "
                                     "proto=0x880b call_id=7 payload_len=")
    rows = tshark(write(tmp_path / "pptp.pcap", [Ether(**MACS) / f for f in frames]), "ppp.protocol")
    assert [int(r[0], 16) for r in rows] == [0xC021, 0x8021, 0x0021]


def test_8023_llc_snap_frames_are_described_not_malformed(tmp_path):
    llc = dict(dst="01:00:0c:cc:cc:cc", src=MACS["src"])
    frames = [Dot3(dst="01:80:c2:00:00:00", src=MACS["src"]) / LLC() / STP(),
              Dot3(**llc) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x2000)
              / CDPv2_HDR(msg=[CDPMsgDeviceID(val=b"switch1")]),
              Dot3(**llc) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x2004) / DTP(),
              Ether(**llc) / Dot1Q(vlan=1213) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x0C, code=0x10B) / STP()]
    said = [describe(bytes(f)) for f in frames]
    for text, proto in zip(said, ("STP", "CDPv2_HDR", "DTP", "STP")):
        assert proto in text and "malformed" not in text, text
    path = write(tmp_path / "llc.pcap", frames)
    assert [r[0] for r in tshark(path, "frame.protocols")] == [
        "eth:llc:stp", "eth:llc:cdp", "eth:llc:dtp", "eth:ethertype:vlan:ethertype:llc:stp"]
    out = grelab("pcap", "show", path)
    assert out.returncode == 0 and "malformed" not in out.stdout and len(out.stdout.splitlines()) == 4, out.stdout


def test_a_pcaps_link_type_is_honoured(tmp_path):
    echo6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(id=1, seq=1, data=b"y" * 100)
    cases = {  # link type: (the frame, what tshark's first protocols are)
        101: (bytes(echo6)[:60], "raw:ipv6"),  # cut at a snap length of 60, as the capture
        228: (bytes(passenger("ipv4")), "ip:icmp"),
        113: (bytes(CookedLinux(proto=0x86DD, src=MACS["src"]) / echo6), "sll:ethertype:ipv6"),
        276: (bytes(CookedLinuxV2(proto=0x0800, src=MACS["src"]) / passenger("ipv4")), "sll:ethertype:ip"),
        0: ((2).to_bytes(4, "little") + bytes(passenger("ipv4")), "null:ip"),
        108: ((24).to_bytes(4, "big") + bytes(echo6), "null:ipv6"),  # Wireshark names OpenBSD's "null" too
    }
    for linktype, (data, protocols) in cases.items():
        path = write(tmp_path / f"link{linktype}.pcap", [data], linktype, snaplen=60 if linktype == 101 else 65535)
        assert tshark(path, "frame.protocols")[0][0].startswith(protocols), linktype
        shown = grelab("pcap", "show", path)
        assert shown.returncode == 0 and "malformed" not in shown.stdout and "Ether" not in shown.stdout, shown.stdout
        assert ("IPv6" if "ipv6" in protocols else "ICMP") in shown.stdout, (linktype, shown.stdout)
    cut = describe(cases[101][0], link=101)
    assert cut.startswith("IPv6") and "[truncated: IPv6 payload length 108 > 20 bytes captured]" in cut, cut
    # A big-endian host's BSD loopback (link type 0): the family's byte order is told from its size
    assert "ICMP" in describe((2).to_bytes(4, "big") + bytes(passenger("ipv4")), link=0)


def test_an_icmp_error_quote_is_cut_short_on_purpose_not_truncated(tmp_path):
    sent = IP(src="198.51.100.2", dst="198.51.100.1") / GRE(key_present=1, key=2, proto=0x86DD) / passenger()
    quoted = bytes(sent)[:28]  # RFC 792: the IP header and 8 bytes (GRE's first 8)
    error = Ether(**MACS) / IP(src="198.51.100.1", dst="198.51.100.2") / ICMP(type=3, code=3) / quoted
    peeled = peel(bytes(error))
    said = str(peeled)
    assert said == ("Ethernet / IPv4 198.51.100.1 > 198.51.100.2 / ICMP dest-unreach port-unreachable / quoting "
                    "[IPv4 198.51.100.2 > 198.51.100.1 (cut short on purpose: 28 of 92 bytes) / GRE proto=0x86dd "
                    "key=2 -> [cut short on purpose]]"), said
    assert peeled.gre is None and peeled.quote.gre.key == 2 and "truncated" not in said
    too_big = Ether(**MACS) / IPv6(src="2001:db8::ff", dst="2001:db8::1") / ICMPv6PacketTooBig(mtu=1280) / bytes(
        IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(data=b"z" * 1400))[:1232]
    said6 = describe(bytes(too_big))
    assert "ICMPv6 Packet Too Big code=0 mtu=1280 / quoting [IPv6 2001:db8::1 > 2001:db8::2 (cut short on purpose: " \
           "1232 of 1448 bytes) / ICMPv6 Echo Request (id: 0x0 seq: 0x0)]" in said6 and "truncated" not in said6, said6
    rows = tshark(write(tmp_path / "errors.pcap", [error, too_big]), "_ws.malformed", "icmp.type", "icmpv6.type")
    assert [[r[0], r[1], r[2][:1]] for r in rows] == [["", "3", ""], ["", "", "2"]]  # Wireshark reads both cleanly


def test_what_peel_finds_does_not_depend_on_scapy_all(tmp_path):
    """ESP behind PPPoE, ERSPAN, CDP: found in a process that never imported scapy.all, the same after it does."""
    sa = SA(0x100, "gcm128", bytes(20), src="192.0.2.1", dst="192.0.2.2")
    frames = [Ether(**MACS, type=0x8864) / PPPoE(sessionid=1) / PPP(proto=0x0021) / encrypt(sa, gre(), seq=1),
              Ether(**MACS) / IP(**OUTER) / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(session_id=9) / MIRRORED,
              Dot3(dst="01:00:0c:cc:cc:cc", src=MACS["src"]) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3)
              / SNAP(OUI=0x0C, code=0x2000) / CDPv2_HDR(msg=[CDPMsgDeviceID(val=b"sw")])]
    script = (
        "import sys\nfrom grelab.craft import SA\nfrom grelab.craft.peel import describe\n"
        "sa = SA(0x100, 'gcm128', bytes(20), src='192.0.2.1', dst='192.0.2.2')\n"
        f"frames = {[bytes(f) for f in frames]!r}\n"
        "before = [describe(f, [sa]) for f in frames]\nassert 'scapy.all' not in sys.modules\n"
        "import scapy.all\nafter = [describe(f, [sa]) for f in frames]\n"
        "print(repr(before)); print(repr(after))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    before, after = (eval(line) for line in done.stdout.splitlines())  # noqa: S307 - our own repr of strings
    assert "ESP spi=0x00000100 seq=1 gcm128 transport / GRE proto=0x86dd -> IPv6" in before[0], before[0]
    assert "ERSPAN II session=9" in before[1] and "CDPv2_HDR" in before[2]
    assert before == after
