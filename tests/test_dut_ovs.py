"""The Open vSwitch DUT (`--dut ovs`): the plan's mapping to OVS (pure, every GRE option), and a real OVS in a
namespace: an echo through its tunnel with its counters moving, its namespace's kernel quiet, a reset that leaves
nothing, a killed run's leftovers swept."""
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply
from scapy.layers.l2 import GRE, Ether

from grelab.craft.esp import SA
from grelab.dut.base import NotApplicable, counter_delta
from grelab.dut.ovs import daemons
from grelab.dut.ovs.mapping import KINDS, OPTIONS, TUNNEL_BRIDGE, gre_port, ovs_plan, tunnel_options
from grelab.dut.ovs.switch import ovs_counters
from grelab.dut.plan import Interface, Plan, Route, Tunnel
from grelab.dut.tunnel import esp_transport
from test_dut_uml import H, H_MAC, R, R6, echo, exchange, lab  # noqa: F401 - its lab, around this module's guest



def options(**tunnel) -> list[str]:
    return tunnel_options(Tunnel("gre1", R, H, **tunnel))


# --- the mapping, without OVS ---

@pytest.mark.parametrize("tunnel, words", [
    ({"key": 42}, ["key=42"]),
    ({"ikey": 1, "okey": 2}, ["in_key=1", "out_key=2"]),
    ({"oseq": True}, ["seq=true"]),
    ({"ocsum": True}, ["csum=true"]),
    ({"ttl": 17}, ["ttl=17"]),
    ({"ttl": "inherit"}, ["ttl=inherit"]),
    ({"tos": 0x28}, ["tos=40"]),
    ({"tos": "inherit"}, ["tos=inherit"]),
    ({"pmtudisc": False}, ["df_default=false"]),
    ({"pmtudisc": True}, ["df_default=true"]),
])
def test_each_gre_option_becomes_its_ovs_option(tunnel, words):
    got = options(**tunnel)
    assert got[:2] == [f"remote_ip={H}", f"local_ip={R}"] and got[-1] == "packet_type=legacy_l3"
    default_ttl = [] if "ttl" in tunnel else ["ttl=64"]  # a plan Tunnel's ttl is 64 unless said
    assert sorted(got[2:-1]) == sorted(words + default_ttl)


def test_the_option_table_names_every_gre_option_of_a_tunnel():
    gre_options = {"key", "ikey", "okey", "seq", "iseq", "oseq", "csum", "icsum", "ocsum", "ttl", "tos", "pmtudisc",
                   "ignore_df", "dev"}
    assert set(OPTIONS) == gre_options
    assert set(KINDS) == {"gre", "ip6gre", "gretap", "ip6gretap"}


@pytest.mark.parametrize("tunnel, capability", [
    ({"seq": True}, "gre_iseq"), ({"iseq": True}, "gre_iseq"), ({"csum": True}, "gre_icsum"),
    ({"icsum": True}, "gre_icsum"), ({"ignore_df": True}, "gre_ignore_df"), ({"dev": "wan"}, "gre_dev"),
])
def test_what_ovs_has_no_equivalent_for_is_not_applicable(tunnel, capability):
    with pytest.raises(NotApplicable) as raised:
        ovs_plan("r1", Plan(tunnels=[Tunnel("gre1", R, H, **tunnel)]))
    assert raised.value.capability == capability and raised.value.dut == "r1" and "Tunnel gre1" in raised.value.item


def test_esp_and_a_fixed_encapsulation_limit_are_not_applicable():
    sa_out, sa_in = SA(0x100, "gcm128", bytes(20), src=R, dst=H), SA(0x101, "gcm128", bytes(20), src=H, dst=R)
    for plan, capability in ((esp_transport(sa_out, sa_in), "esp"), (Plan(udp_encap_ports=(4500,)), "esp"),
                             (Plan(tunnels=[Tunnel("gre1", "2001:db8::1", "2001:db8::2", encaplimit=4)]),
                              "ip6gre_encaplimit")):
        with pytest.raises(NotApplicable) as raised:
            ovs_plan("r1", plan)
        assert raised.value.capability == capability


def test_an_l3_tunnel_is_an_internal_port_a_legacy_l3_gre_port_and_two_flows():
    plan = Plan(interfaces=[Interface("wan", "02:00:00:00:0a:01", None, [f"{R}/24"])],
                tunnels=[Tunnel("gre1", R, H, key=7, addresses=(f"{R6}/64",))], routes=[Route("2001:db8:2::/64", dev="gre1")])
    ovs = ovs_plan("r1", plan, generation=3)
    gre = gre_port("gre1", 3)
    assert ("set", "bridge", "wan", 'other_config:hwaddr="02:00:00:00:0a:01"') in ovs.vsctl
    assert ("add-port", TUNNEL_BRIDGE, "gre1") in ovs.vsctl and ("add-port", TUNNEL_BRIDGE, gre) in ovs.vsctl
    internal = next(c for c in ovs.vsctl if c[:3] == ("set", "interface", "gre1"))
    mac = internal[4].split('"')[1]
    assert internal[3] == "type=internal" and internal[5] == "mtu_request=1472"  # 1500 - 20 - 4 - 4 (key)
    port = next(c for c in ovs.vsctl if c[:3] == ("set", "interface", gre))
    assert port[3] == "type=gre" and "options:key=7" in port and "options:packet_type=legacy_l3" in port
    assert ovs.flows == (f"in_port=gre1,actions=output:{gre}",
                         f"in_port={gre},actions=mod_dl_src:{mac},mod_dl_dst:{mac},output:gre1")
    assert any("arp off multicast off" in line for line in ovs.kernel_first)
    assert any("grelab_ovs_mld" in line for line in ovs.kernel_first)
    assert [i.name for i in ovs.kernel.interfaces] == ["wan", "gre1"] and ovs.kernel.interfaces[1].mtu == 1472
    assert ovs.kernel.interfaces[1].addresses == (f"{R6}/64",) and ovs.kernel.routes == plan.routes
    assert not ovs.kernel.tunnels and ovs.next_hops == (H,)


def test_an_ethernet_tunnel_crosses_as_it_is_with_its_mac():
    ovs = ovs_plan("r1", Plan(tunnels=[Tunnel("tap1", R, H, kind="gretap", mac="02:00:00:00:ee:01")]))
    gre = gre_port("tap1")
    assert ("set", "interface", "tap1", "type=internal", 'mac="02:00:00:00:ee:01"', "mtu_request=1462") in ovs.vsctl
    port = next(c for c in ovs.vsctl if c[:3] == ("set", "interface", gre))
    assert not any("packet_type" in word for word in port)
    assert ovs.flows == (f"in_port=tap1,actions=output:{gre}", f"in_port={gre},actions=output:tap1")
    assert not any("arp off" in line for line in ovs.kernel_first)


@pytest.mark.parametrize("kind, port_type, mtu", [("ip6gre", "gre", 1456), ("ip6gretap", "ip6gre", 1442)])
def test_ipv6_gre_is_ovs_gre_between_ipv6_endpoints_without_an_encapsulation_limit(kind, port_type, mtu):
    tunnel = Tunnel("gre1", "2001:db8:a::1", "2001:db8:b::1", kind=kind, encaplimit="none")
    ovs = ovs_plan("r1", Plan(tunnels=[tunnel]))
    port = next(c for c in ovs.vsctl if c[:3] == ("set", "interface", gre_port("gre1")))
    assert port[3] == f"type={port_type}" and "options:remote_ip=2001:db8:b::1" in port
    assert ovs.kernel.interfaces[0].mtu == mtu


def test_a_gre_port_is_new_each_apply():
    assert gre_port("gre1", 1) != gre_port("gre1", 2)


COUNTERS_TEXT = """gre1/statistics/rx_packets:3
gre1/statistics/tx_packets:2
@@xfrm
@@snmp
Ip: Forwarding InReceives
Ip: 1 5
@@snmp6
@@ovs-ports
OFPST_PORT reply (xid=0x2): 3 ports
  port  "gre1-gre4": rx pkts=3, bytes=144, drop=?, errs=?, frame=?, over=?, crc=?
           tx pkts=4, bytes=324, drop=?, errs=?, coll=?
  port  gre1: rx pkts=2, bytes=180, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=3, bytes=200, drop=0, errs=0, coll=0
@@ovs-coverage
Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash=4aa7fd4a:
datapath_drop_tunnel_pop_error   0.0/sec     0.000/sec        0.0000/sec   total: 2
netlink_sent               0.0/sec     0.000/sec        0.0000/sec   total: 9
@@ovs-dp
netdev@ovs-netdev:
  lookups: hit:5 missed:7 lost:1
"""


def test_counters_keep_the_kernels_tunnel_view_with_ovss_beside_it():
    counters = ovs_counters(COUNTERS_TEXT)
    assert counters.link("gre1") == {"rx_packets": 3, "tx_packets": 2}  # the internal port: the kernel's view
    assert counters.link("ovs:gre1") == {"rx_packets": 3, "rx_bytes": 144, "tx_packets": 4, "tx_bytes": 324}
    assert counters.link("ovs") == {"datapath_drop_tunnel_pop_error": 2, "lookups_hit": 5, "lookups_missed": 7,
                                    "lookups_lost": 1}
    assert counters["snmp"]["IpInReceives"] == 5


def test_a_missing_open_vswitch_is_one_line_saying_what_to_install(monkeypatch):
    from grelab.dut.base import DutError
    from grelab.dut.select import select
    monkeypatch.setattr(daemons.shutil, "which", lambda name, path=None: None)
    with pytest.raises(DutError) as raised:
        select("ovs")
    assert str(raised.value) == ("ovs: Open vSwitch is not installed (no ovsdb-tool, ovsdb-server, ovs-vswitchd, "
                                 "ovs-vsctl, ovs-ofctl, ovs-appctl): apt-get install openvswitch-switch (or run ./setup.sh)")


# --- a real OVS ---

@pytest.fixture(scope="module")
def guest():
    """The OVS DUT as test_dut_uml's `lab` wants its DUT: r1, its wan plugged to h."""
    problem = daemons.missing()
    if problem:
        pytest.skip(problem)
    from grelab.dut.ovs.switch import Ovs
    with Ovs(interfaces=["wan", "lan"], name="r1") as dut:
        yield dut


@pytest.fixture
def switch(lab, guest):
    """The lab's OVS DUT with a GRE tunnel to h, every ICMP error let out."""
    guest.apply(Plan(tunnels=[Tunnel("gre1", R, H, addresses=(f"{R6}/64",))], sysctls={"net.ipv4.icmp_ratelimit": 0}))
    return guest


def gre_echo(lab, seq: int):
    return Ether(src=H_MAC, dst=lab.dut_mac) / IP(src=H, dst=R) / echo(seq)


def plain_echo(lab, seq: int):
    return Ether(src=H_MAC, dst=lab.dut_mac) / IP(src=H, dst=R) / ICMP(id=0x4343, seq=seq)


def test_an_echo_through_the_ovs_tunnel_comes_back_in_gre_and_the_counters_move(lab, switch):
    before = switch.counters()
    reply = exchange(lab, gre_echo(lab, 1), "ip proto 47")
    assert (reply[IP].src, reply[IP].dst, reply[GRE].proto) == (R, H, 0x86DD)
    assert reply[ICMPv6EchoReply].seq == 1 and reply[ICMPv6EchoReply].data == b"grelab"
    after = switch.counters()
    moved = counter_delta(before, after)
    assert (moved.link("gre1")["rx_packets"], moved.link("gre1")["tx_packets"]) == (1, 1)
    assert moved["snmp"]["Icmp6InEchos"] == 1 and moved["snmp"]["Icmp6OutEchoReplies"] == 1
    assert {"rx_packets", "tx_packets"} <= set(after.link("ovs:gre1"))  # OVS's own, beside (late: a revalidation)
    assert moved.link("ovs")["lookups_missed"] >= 1  # the echo's first packets went up to ovs-vswitchd's upcall


def test_the_namespace_kernel_answers_no_gre_with_protocol_unreachable(lab, switch):
    """OVS reads the veth before the nft drop that keeps the namespace's kernel out; without it the kernel, which has
    no GRE, answers each GRE packet with ICMP protocol unreachable. A plain echo the kernel answers last closes each
    look: OVS passes the kernel's frames out in order, so an unreachable would be on the wire before its reply."""
    def unreachables(seq: int) -> list:
        with lab.capture("h", "eth0", "icmp[icmptype] = icmp-unreach", direction="in") as cap:
            exchange(lab, gre_echo(lab, seq), "ip proto 47")
            exchange(lab, plain_echo(lab, seq), "icmp[icmptype] = icmp-echoreply")
            seen = cap.settle().packets()
        return [p for p in seen if p[IP].src == R and p[ICMP].code == 2 and p[ICMP].payload.proto == 47]
    assert unreachables(1) == []
    switch.check("nft delete table netdev grelab_quiet_wan")  # the drop gone: the kernel speaks up
    assert len(unreachables(2)) == 1


def test_reset_leaves_no_port_flow_address_or_neighbour(lab, switch):
    exchange(lab, gre_echo(lab, 1), "ip proto 47")
    switch.reset()
    vsctl, appctl = switch.switch.vsctl(), switch.switch.appctl()
    assert switch.check(f"{vsctl} list-br").split() == [TUNNEL_BRIDGE, "wan"]  # bridges stay, empty
    assert switch.check(f"{vsctl} list-ports wan").split() == switch.check(f"{vsctl} list-ports {TUNNEL_BRIDGE}").split() == []
    assert switch.check(f"{switch.switch.shell_env()} ovs-ofctl dump-flows {TUNNEL_BRIDGE}").splitlines()[1:] == []
    assert "actions=NORMAL" in switch.check(f"{switch.switch.shell_env()} ovs-ofctl dump-flows wan")
    assert len(switch.check(f"{switch.switch.shell_env()} ovs-ofctl dump-flows wan").splitlines()) == 2
    assert switch.check("ip -o addr show scope global") == ""
    assert "gre1" not in switch.check("ls /sys/class/net").split()  # the tunnel's tap went with its port
    assert switch.check(f"{appctl} tnl/neigh/show").strip().splitlines()[2:] == []
    assert switch.check("nft list ruleset") == ""
    assert switch.check("ip -o link show wan").split()[1] == "wan:"  # the bridge's local port stays the interface


# A child run: starts an OVS DUT, prints its namespace, daemons' pids and folder, then dies by SIGKILL.
CHILD = r"""
import os, signal
from grelab.dut.ovs.switch import Ovs
dut = Ovs(interfaces=["wan"], name="ok")
pids = [dut.switch.pid(d) for d in ("ovsdb-server", "ovs-vswitchd")]
print(dut.namespace, dut.switch.folder, *pids, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_runs_ovs_is_swept(guest):
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=30)
    assert child.returncode == -signal.SIGKILL, child.stderr
    namespace, folder, *pids = child.stdout.split()
    assert Path(f"/run/netns/{namespace}").exists() and Path(folder).is_dir()
    assert all(Path(f"/proc/{pid}").exists() for pid in pids)  # SIGKILL: nothing could clean up
    subprocess.run([sys.executable, "-m", "grelab.cli", "sweep"], check=True, timeout=30, capture_output=True)
    assert not Path(f"/run/netns/{namespace}").exists() and not Path(folder).exists()
    for pid in pids:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "gone"
        assert state in ("gone", "Z"), f"OVS daemon {pid} survived the sweep"
