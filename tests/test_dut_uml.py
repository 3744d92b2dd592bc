"""The user-mode-linux DUT against crafted packets: GRE, ESP(GRE) with two ciphers, policy refusal, reset.

One guest boots for the module and is reset between tests; the lab (grelab.lab.build) wires a test
namespace `h` to the guest's `wan` through a veth.
"""
import time

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.layers.l2 import GRE, Ether
from scapy.packet import Raw

from grelab.dut.base import counter_delta
from grelab.dut.uml.guest import Uml
from grelab.lab.build import build
from grelab.lab.topology import End, Link, Node, Topology

H, R = "192.0.2.1", "192.0.2.254"  # the test host and the DUT's WAN address
H6, R6 = "2001:db8:ff::1", "2001:db8:ff::2"  # inside the tunnel
H_MAC = "02:00:00:00:01:01"
GCM_KEY = bytes(range(16)) + b"salt"
CBC_KEY, HMAC_KEY = bytes(range(16, 32)), bytes(range(32, 64))


@pytest.fixture(scope="module")
def guest():
    with Uml(interfaces=["wan", "lan"], name="r1") as dut:
        yield dut


@pytest.fixture
def lab(guest):
    guest.reset()
    topology = Topology(nodes=[Node("h"), Node("r1", dut=guest)],
                        links=[Link(End("h", "eth0", [f"{H}/24"], H_MAC), End("r1", "wan", [f"{R}/24"]))])
    with build(topology) as lab:
        lab.dut_mac = guest.check("cat /sys/class/net/wan/address").strip()
        yield lab


def gre_tunnel(dut) -> None:
    dut.ip("link", "add", "gre1", "type", "gre", "local", R, "remote", H, "ttl", "64")
    dut.ip("link", "set", "gre1", "up")
    dut.ip("addr", "add", f"{R6}/64", "dev", "gre1")


def echo(seq: int):
    return GRE() / IPv6(src=H6, dst=R6) / ICMPv6EchoRequest(id=0x4242, seq=seq, data=b"grelab")


def exchange(lab, frame, expression: str):
    """Send one frame from h, return the first frame matching expression that comes back to h."""
    with lab.capture("h", "eth0", expression, direction="in") as cap, lab.sender("h", "eth0") as tx:
        tx.send(frame)
        result = cap.wait(count=1, timeout=5)  # an event with a deadline: generous under load, free when it comes
    assert result.matched, f"no answer matching {expression!r}"
    return result.packets()[0]


def test_gre_ipv6_echo_is_answered_inside_gre(lab, guest):
    gre_tunnel(guest)
    before = guest.counters()
    reply = exchange(lab, Ether(src=H_MAC, dst=lab.dut_mac) / IP(src=H, dst=R) / echo(1), "ip proto 47")
    assert reply[IP].src == R and reply[IP].dst == H
    assert reply[IPv6].src == R6 and reply[ICMPv6EchoReply].id == 0x4242
    assert reply[ICMPv6EchoReply].seq == 1 and reply[ICMPv6EchoReply].data == b"grelab"
    moved = counter_delta(before, guest.counters())
    assert moved["links"]["gre1"]["rx_packets"] == 1 and moved["snmp"]["Icmp6InEchos"] == 1


def test_counters_name_what_the_issue_asks_for(guest):
    counters = guest.counters()
    assert {"rx_errors", "rx_crc_errors", "rx_fifo_errors", "rx_dropped"} <= set(counters["links"]["wan"])
    assert "XfrmInTmplMismatch" in counters["xfrm"] and "IpInReceives" in counters["snmp"]


def test_a_frame_no_protocol_takes_moves_rx_dropped(lab, guest):
    """The kernel counts a frame of an EtherType nothing handles (0x88B5, for local experiments) as
    dropped on the link it came in on."""
    before = guest.counters()
    with lab.sender("h", "eth0") as tx:
        tx.send(Ether(src=H_MAC, dst=lab.dut_mac, type=0x88B5) / Raw(b"grelab" * 10))
    deadline = time.monotonic() + 2
    while (moved := counter_delta(before, guest.counters())["links"].get("wan", {})).get("rx_dropped", 0) < 1:
        assert time.monotonic() < deadline, f"rx_dropped did not move; what did: {moved}"
    assert moved["rx_dropped"] == 1 and moved["rx_packets"] >= 1


SUITES = {
    "aes-gcm": (["aead", "rfc4106(gcm(aes))", "0x" + GCM_KEY.hex(), "128"],
                dict(crypt_algo="AES-GCM", crypt_key=GCM_KEY)),
    "aes-cbc-hmac-sha256": (["enc", "cbc(aes)", "0x" + CBC_KEY.hex(), "auth-trunc", "hmac(sha256)",
                             "0x" + HMAC_KEY.hex(), "128"],
                            dict(crypt_algo="AES-CBC", crypt_key=CBC_KEY, auth_algo="SHA2-256-128", auth_key=HMAC_KEY)),
}


def esp_transport(dut, algorithm: list[str]) -> None:
    """Transport-mode SAs both ways and policies that require ESP for GRE between h and the DUT."""
    for src, dst, spi in ((H, R, "0x1001"), (R, H, "0x2002")):
        dut.ip("xfrm", "state", "add", "src", src, "dst", dst, "proto", "esp", "spi", spi,
               "mode", "transport", *algorithm)
    for src, dst, direction in ((H, R, "in"), (R, H, "out")):
        dut.ip("xfrm", "policy", "add", "src", src, "dst", dst, "proto", "gre", "dir", direction,
               "tmpl", "src", src, "dst", dst, "proto", "esp", "mode", "transport")


@pytest.mark.parametrize("suite", SUITES)
def test_esp_transport_decrypts_and_answers_encrypted(lab, guest, suite):
    ip_args, scapy_args = SUITES[suite]
    gre_tunnel(guest)
    esp_transport(guest, ip_args)
    to_dut = SecurityAssociation(ESP, spi=0x1001, **scapy_args)
    from_dut = SecurityAssociation(ESP, spi=0x2002, **scapy_args)
    request = to_dut.encrypt(IP(src=H, dst=R) / echo(2))
    reply = exchange(lab, Ether(src=H_MAC, dst=lab.dut_mac) / request, "ip proto 50")
    assert reply[ESP].spi == 0x2002
    inner = from_dut.decrypt(reply[IP])
    assert inner[GRE] and inner[IPv6].src == R6 and inner[ICMPv6EchoReply].seq == 2


def test_plain_gre_is_refused_under_esp_policy(lab, guest):
    """Plain GRE, then the same echo inside ESP: the DUT answers in order, so once the ESP answer is in,
    an answer to the plain one would be too. None is, and the xfrm counter that says why moves."""
    gre_tunnel(guest)
    esp_transport(guest, SUITES["aes-gcm"][0])
    sa = SecurityAssociation(ESP, spi=0x1001, **SUITES["aes-gcm"][1])
    before = guest.counters()
    with lab.capture("h", "eth0", "ip proto 47 or ip proto 50", direction="in") as cap, \
            lab.sender("h", "eth0") as tx:
        to_dut = Ether(src=H_MAC, dst=lab.dut_mac)
        tx.send([to_dut / IP(src=H, dst=R) / echo(3), to_dut / sa.encrypt(IP(src=H, dst=R) / echo(4))])
        result = cap.wait(until=lambda frames: any(IP(f[14:]).proto == 50 for _, f in frames), timeout=2)
    assert result.matched, "no answer to the ESP-protected echo"
    assert [p[IP].proto for p in result.packets()] == [50], "the DUT answered plain GRE despite the policy"
    assert counter_delta(before, guest.counters())["xfrm"] == {"XfrmInTmplMismatch": 1}


def test_reset_leaves_no_state(lab, guest):
    gre_tunnel(guest)
    esp_transport(guest, SUITES["aes-cbc-hmac-sha256"][0])
    guest.sysctl("net.ipv4.ip_forward", 1)
    guest.ip("route", "add", "203.0.113.0/24", "via", H)
    guest.ip("-6", "route", "add", "unreachable", "2001:db8:6::/64")  # through lo: no link takes it away
    guest.ip("-6", "rule", "add", "from", "2001:db8::/32", "table", "100")
    guest.ip("route", "add", "198.51.100.0/24", "via", H, "table", "100")
    guest.ip("-6", "route", "add", "2001:db8:7::/64", "dev", "lo", "table", "100")
    guest.reset()
    assert guest.ip("xfrm", "state").strip() == "" and guest.ip("xfrm", "policy").strip() == ""
    assert "gre1" not in guest.ip("-br", "link")
    assert guest.ip("-4", "addr", "show", "dev", "wan").strip() == ""
    assert guest.ip("-4", "route").strip() == ""
    assert "2001:db8:6::" not in guest.ip("-6", "route") and "table 100" not in guest.ip("-6", "rule")
    assert guest.ip("route", "show", "table", "100").strip() == ""
    assert guest.ip("-6", "route", "show", "table", "100").strip() == ""
    assert guest.check("sysctl -n net.ipv4.ip_forward").strip() == "0"
    assert "fe80::" in guest.ip("-6", "addr", "show", "dev", "wan")  # link-local comes back


def test_command_status_and_output(guest):
    result = guest.cmd("echo out; echo err >&2; exit 3")
    assert (result.status, result.output) == (3, "out\nerr")
    with pytest.raises(Exception, match="exited 1"):
        guest.ip("link", "show", "dev", "nosuchlink")


@pytest.mark.parametrize("rule", [
    "iptables -A INPUT -p gre -m length --length 200:65535 -j DROP",
    "nft add table inet f; nft add chain inet f input '{ type filter hook input priority 0; }'; "
    "nft add rule inet f input meta l4proto gre meta length 200-65535 counter drop",
], ids=["iptables", "nft"])
def test_both_packet_filters_work_and_reset_takes_them_away(lab, guest, rule):
    """grelab's kernel has legacy x_tables and the full nftables: a rule (of either) that drops long GRE packets
    stops a long echo, and its counter says so, while a short one is answered. Reset empties the tables and
    flushes the ruleset; the long echo is answered again."""
    gre_tunnel(guest)
    guest.check(rule)
    to_dut = Ether(src=H_MAC, dst=lab.dut_mac) / IP(src=H, dst=R)
    long_echo = GRE() / IPv6(src=H6, dst=R6) / ICMPv6EchoRequest(id=0x4242, seq=7, data=bytes(300))
    with lab.capture("h", "eth0", "ip proto 47", direction="in") as cap, lab.sender("h", "eth0") as tx:
        tx.send([to_dut / long_echo, to_dut / echo(8)])  # the DUT answers in order
        result = cap.wait(count=1, timeout=5)  # an event with a deadline: generous under load, free when it comes
    assert [p[ICMPv6EchoReply].seq for p in result.packets()] == [8], "the long echo was answered despite the rule"
    if rule.startswith("iptables"):
        assert guest.check("iptables -L INPUT -v -x -n | grep DROP").split()[0] == "1"
    else:
        assert "counter packets 1 " in guest.check("nft list chain inet f input")

    guest.reset()
    assert guest.check("iptables-save; nft list ruleset").strip().count("-A ") == 0
    assert guest.check("nft list ruleset").strip() == ""
    guest.ip("addr", "add", f"{R}/24", "dev", "wan")
    gre_tunnel(guest)
    assert exchange(lab, to_dut / long_echo, "ip proto 47")[ICMPv6EchoReply].seq == 7


def test_link_statistics_from_iproute2_json_take_sysfs_names():
    from grelab.dut.uml.guest import _link_statistics
    text = ('[{"ifindex":5,"ifname":"gre1","stats64":{"rx":{"bytes":120,"packets":2,"errors":1,"dropped":0,'
            '"over_errors":0,"multicast":1,"crc_errors":1,"fifo_errors":0},"tx":{"bytes":0,"packets":0,'
            '"collisions":0,"carrier_changes":3,"aborted_errors":0}}}]')
    assert _link_statistics(text) == {"gre1": {
        "rx_bytes": 120, "rx_packets": 2, "rx_errors": 1, "rx_dropped": 0, "rx_over_errors": 0, "multicast": 1,
        "rx_crc_errors": 1, "rx_fifo_errors": 0, "tx_bytes": 0, "tx_packets": 0, "collisions": 0, "tx_aborted_errors": 0}}
    with pytest.raises(Exception, match="not iproute2's JSON"):
        _link_statistics("Device not found")


def test_the_guest_kernel_takes_every_filter_and_qdisc_users_write(guest):
    """Built into grelab's kernel and used for real: nftables' ip, ip6 and inet families with NAT and masquerade,
    legacy iptables' TCPMSS, length and policy matches, and netem. Reset takes all of it away."""
    guest.check("nft add table ip nat; nft add chain ip nat post '{ type nat hook postrouting priority 100; }'; "
                "nft add rule ip nat post oifname wan masquerade; "
                "nft add table ip6 f6; nft add chain ip6 f6 in '{ type filter hook input priority 0; }'; "
                "nft add table inet f; nft add chain inet f forwarded '{ type filter hook forward priority 0; }'; "
                "nft add rule inet f forwarded meta l4proto gre counter accept")
    guest.check("iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1436; "
                "iptables -A INPUT -p gre -m length --length 1400:65535 -j DROP; "
                "iptables -A INPUT -m policy --dir in --pol ipsec -j ACCEPT; "
                "ip6tables -A INPUT -m policy --dir in --pol none -j ACCEPT")
    guest.check("tc qdisc add dev wan root netem delay 5ms loss 1%")
    assert "netem" in guest.check("tc qdisc show dev wan")
    guest.reset()
    assert guest.check("nft list ruleset").strip() == ""
    assert "-A " not in guest.check("iptables-save; ip6tables-save")
    assert "netem" not in guest.check("tc qdisc show dev wan")
