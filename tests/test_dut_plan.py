"""DUT plans as data and their iproute2 rendering: pure, checked line by line without a DUT."""
from pathlib import Path

import pytest

from grelab.craft.esp import SA
from grelab.dut.iproute2 import commands, iptables_restore, nft_ruleset, render
from grelab.dut.plan import Filter, Interface, Neighbour, Plan, Route, Rule, Tunnel, XfrmPolicy, XfrmState
from grelab.dut.tunnel import esp_transport, gre_tunnel
from grelab.errors import InputError

OUT = SA(0x1001, "gcm128", bytes(range(20)), src="192.0.2.1", dst="192.0.2.2")
BACK = SA(0x2001, "gcm128", bytes(range(20, 40)), src="192.0.2.2", dst="192.0.2.1")


def texts(lines):
    return [line.text for line in lines]


def test_a_plan_renders_in_order_interfaces_tunnels_routes_rules_states_policies():
    plan = (Plan(interfaces=[Interface("wan", "02:00:00:00:0a:01", 1500, ["192.0.2.1/24"])],
                 routes=[Route("default", via="192.0.2.254")], sysctls={"net.ipv4.ip_forward": 1})
            + gre_tunnel("gre1", "192.0.2.1", "192.0.2.2", routes=("2001:db8:2::/64",), key=7, seq=True,
                         addresses=("2001:db8:ff::1/64",))
            + esp_transport(OUT, BACK)
            + Plan(rules=[Rule(100, priority=10, family=6), Rule(100, priority=11, src="10.0.0.0/8")]))
    r = render(plan)
    assert r.sysctls == (("/proc/sys/net/ipv4/ip_forward", "1"),)
    assert texts(r.batch) == [
        "link set dev wan down",
        "link set dev wan address 02:00:00:00:0a:01 mtu 1500",
        "link set dev wan up",
        "addr add 192.0.2.1/24 dev wan",
        "link add gre1 type gre local 192.0.2.1 remote 192.0.2.2 key 7 seq ttl 64",
        "link set dev gre1 addrgenmode none",
        "link set dev gre1 up",
        "addr add 2001:db8:ff::1/64 dev gre1 nodad",
        "route add 0.0.0.0/0 via 192.0.2.254",
        "route add 2001:db8:2::/64 dev gre1",
        "rule add priority 11 from 10.0.0.0/8 table 100",
        "xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x00001001 mode transport replay-window 32 "
        "aead rfc4106(gcm(aes)) 0x" + bytes(range(20)).hex() + " 128",
        "xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x00002001 mode transport replay-window 32 "
        "aead rfc4106(gcm(aes)) 0x" + bytes(range(20, 40)).hex() + " 128",
        "xfrm policy add src 192.0.2.1/32 dst 192.0.2.2/32 proto gre dir out action allow "
        "tmpl src 192.0.2.1 dst 192.0.2.2 proto esp mode transport level required",
        "xfrm policy add src 192.0.2.2/32 dst 192.0.2.1/32 proto gre dir in action allow "
        "tmpl src 192.0.2.2 dst 192.0.2.1 proto esp mode transport level required",
    ]
    assert texts(r.batch6) == ["rule add priority 10 table 100"]  # an IPv6 rule without addresses: ip -6
    assert r.batch[4].item == plan.tunnels[0]  # each line names the plan item it comes from


def test_every_tunnel_option_becomes_its_iproute2_word():
    t = Tunnel("t1", "2001:db8::1", "2001:db8::2", kind="ip6gretap", ikey=1, okey=2, iseq=True, icsum=True,
               ocsum=True, ttl="inherit", tos="inherit", encaplimit="none", dev="wan", mtu=1448,
               mac="02:00:00:00:00:99", link_local=True)
    assert render(Plan(tunnels=[t])).batch[0].text == (
        "link add t1 mtu 1448 address 02:00:00:00:00:99 type ip6gretap local 2001:db8::1 remote 2001:db8::2 "
        "ikey 1 okey 2 iseq icsum ocsum hoplimit inherit tclass inherit encaplimit none dev wan")
    four = Tunnel("t2", "192.0.2.1", "192.0.2.2", csum=True, oseq=True, tos=0x10, pmtudisc=False, ignore_df=True)
    assert texts(render(Plan(tunnels=[four])).batch)[0] == (
        "link add t2 type gre local 192.0.2.1 remote 192.0.2.2 oseq csum ttl 64 tos 0x10 nopmtudisc ignore-df")


def test_xfrm_options_nat_t_marks_limits_and_null_keys():
    sa = SA(0x10, "null-sha256", b"", bytes(32), src="192.0.2.1", dst="192.0.2.2", nat_t=(4500, 4500))
    line = render(Plan(states=[XfrmState(sa, replay_window=64, mark=(5, 0xff), reqid=3, packet_limit=10)])).batch[0].text
    assert ("replay-window 64 reqid 3 mark 0x5 mask 0xff encap espinudp 4500 4500 0.0.0.0 "
            'enc ecb(cipher_null) "" auth-trunc hmac(sha256) 0x' + bytes(32).hex() + " 128 limit packet-hard 10") in line
    policy = XfrmPolicy("192.0.2.0/24", "198.51.100.0/24", "fwd", "192.0.2.1", "192.0.2.2", mode="tunnel",
                        priority=5, mark=7)
    assert render(Plan(policies=[policy])).batch[0].text == (
        "xfrm policy add src 192.0.2.0/24 dst 198.51.100.0/24 dir fwd priority 5 mark 0x7 mask 0xffffffff action allow "
        "tmpl src 192.0.2.1 dst 192.0.2.2 proto esp mode tunnel level required")


def test_a_confidentiality_only_state_is_enc_alone():
    sa = SA(0x11, "ctr256-none", bytes(36), src="192.0.2.1", dst="192.0.2.2", mode="tunnel")
    assert render(Plan(states=[XfrmState(sa)])).batch[0].text.endswith(
        "mode tunnel replay-window 32 enc rfc3686(ctr(aes)) 0x" + bytes(36).hex())


def test_sysctls_of_a_device_the_plan_makes_come_after_the_batch():
    plan = gre_tunnel("gre1", "192.0.2.1", "192.0.2.2") + Plan(sysctls={
        "net.ipv6.conf.gre1.disable_ipv6": 1, "net.ipv6.conf.wan.accept_dad": 0, "net/ipv6/conf/eth0.5/mtu": 1400})
    r = render(plan)
    assert r.late_sysctls == (("/proc/sys/net/ipv6/conf/gre1/disable_ipv6", "1"),)
    assert ("/proc/sys/net/ipv6/conf/eth0.5/mtu", "1400") in r.sysctls
    assert commands(r)[-1] == "echo 1 > /proc/sys/net/ipv6/conf/gre1/disable_ipv6"


def test_filters_as_iptables_and_nft():
    filters = [Filter("input", "drop", proto="gre", src="192.0.2.0/24", length=(1000, 1500)),
               Filter("forward", "clamp-mss", set_mss=1436, oif="gre1"),
               Filter("input", "drop", family=6, proto="icmp", iif="wan")]
    assert iptables_restore(filters, 4) == ("*filter\n-A INPUT -p gre -s 192.0.2.0/24 -m length --length 1000:1500 -j DROP\n"
                                            "COMMIT\n*mangle\n-A FORWARD -p tcp -o gre1 --tcp-flags SYN,RST SYN -j TCPMSS "
                                            "--set-mss 1436\nCOMMIT\n")
    assert iptables_restore(filters, 6) == "*filter\n-A INPUT -p ipv6-icmp -i wan -j DROP\nCOMMIT\n"
    nft = nft_ruleset(filters)
    assert "meta nfproto ipv4 meta l4proto gre ip saddr 192.0.2.0/24 ip length 1000-1500 drop" in nft
    assert 'oifname "gre1" tcp flags & (syn|rst) == syn tcp option maxseg size set 1436' in nft


@pytest.mark.parametrize("make, field", [
    (lambda: Tunnel("gre1", "192.0.2.1", "2001:db8::1"), "gre1 remote"),
    (lambda: Tunnel("gre1", "192.0.2.1", "192.0.2.2", key=2**32), "gre1 key"),
    (lambda: Tunnel("gre1", "192.0.2.1", "192.0.2.2", encaplimit=4), "gre1 encaplimit"),
    (lambda: Tunnel("gre1", "192.0.2.1", "192.0.2.2", ttl="sometimes"), "gre1 ttl"),
    (lambda: Tunnel("a name; rm -rf /", "192.0.2.1", "192.0.2.2"), "tunnel name"),
    (lambda: Interface("wan", mac="zz:00:00:00:00:00"), "wan mac"),
    (lambda: Interface("wan", addresses=["192.0.2.1"]), "wan address"),
    (lambda: Route("2001:db8::/64"), "route 2001:db8::/64"),
    (lambda: Rule(100, priority=32766), "rule priority"),
    (lambda: XfrmPolicy("192.0.2.1", "192.0.2.2", "sideways"), "policy dir"),
    (lambda: Filter(action="clamp-mss"), "filter set_mss"),
    (lambda: Plan(sysctls={"net.ipv4.ip_forward; reboot": 1}), "sysctl"),
    (lambda: Plan(interfaces=[Interface("wan"), Interface("wan")]), "plan interfaces/tunnels"),
    # no kernel can hold an ICV without its integrity key, nor an SA of no mode: refused before any DUT sees them
    (lambda: XfrmState(SA(0x10, "3des-any96", bytes(24), src="192.0.2.1", dst="192.0.2.2")), "ESP algorithm"),
    (lambda: XfrmState(SA(0x10, "gcm128", bytes(20), src="192.0.2.1", dst="192.0.2.2", mode=None)), "ESP mode"),
])
def test_bad_values_are_refused_when_the_plan_is_made_naming_the_field(make, field):
    with pytest.raises(InputError) as error:
        make()
    assert error.value.field == field


def test_counters_flat_names_every_counter_and_a_delta_keeps_what_moved():
    from grelab.dut.base import Counters
    before = Counters({"gre1": {"rx_packets": 1, "rx_crc_errors": 0}}, {"XfrmInNoStates": 2}, {"IcmpOutDestUnreachs": 5})
    after = Counters({"gre1": {"rx_packets": 2, "rx_crc_errors": 1}}, {"XfrmInNoStates": 2}, {"IcmpOutDestUnreachs": 5})
    assert before.flat() == {"gre1.rx_packets": 1, "gre1.rx_crc_errors": 0, "snmp.IcmpOutDestUnreachs": 5,
                             "xfrm.XfrmInNoStates": 2}
    assert after.delta(before).flat() == {"gre1.rx_packets": 1, "gre1.rx_crc_errors": 1}


def test_syn_mss_reads_syns_on_the_link_and_inside_gre():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import GRE, Ether
    from grelab.expect.tunnel import syn_mss
    syn = IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / TCP(flags="S", options=[("MSS", 1440)])
    frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    gre = frame / IP(src="192.0.2.1", dst="192.0.2.2") / GRE() / syn
    ack = frame / IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / TCP(flags="A")
    assert syn_mss([bytes(frame / syn), bytes(ack), bytes(gre)]) == [1440, 1440]


def test_udp_encap_ports_render_a_socket_holder_per_port_and_add_up():
    from grelab.dut.iproute2 import stop_pids_script, udp_encap_script
    plan = Plan(udp_encap_ports=(4500,)) + Plan(udp_encap_ports=(4500, 4501))
    assert plan.udp_encap_ports == (4500, 4501)
    assert render(plan).udp_encap_ports == (4500, 4501)
    script = udp_encap_script((4500,), perl="PERL")
    assert "PERL -e 'socket(S,2,2,17)" in script and "setsockopt(S,17,100,pack(\"i\",2))" in script
    assert "' 4500 > /tmp/grelab-encap-4500.$$ 2>&1 &" in script and 'echo "@@encap 4500 $!"' in script
    assert '@@encap-failed 4500' in script and "read -r grelab_encap <" in script  # waits, does not poll
    assert stop_pids_script(["12"]).startswith("kill 12 2>/dev/null; wait 12")
    with pytest.raises(InputError, match="udp_encap_ports"):
        Plan(udp_encap_ports=(0,))


def test_the_udp_encap_holder_binds_in_a_namespace_of_this_host():
    """The perl one-liner itself, run here: bound, UDP_ENCAP set (the host kernel has no ESP, but the option exists)."""
    import shutil
    import subprocess
    from grelab.dut.iproute2 import udp_encap_script
    if shutil.which("perl") is None or shutil.which("unshare") is None:
        pytest.skip("needs perl and unshare")
    script = udp_encap_script((4500,)) + 'echo "got $grelab_encap"; cat /proc/net/udp; kill %1'
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True, timeout=10)
    assert "got bound" in done.stdout and ":1194 " in done.stdout, done.stdout + done.stderr


def test_sysctls_of_devices_the_plan_creates_are_not_learnt_for_restore():
    """A sysctl of a tunnel the plan makes cannot be read before the plan runs, and reset removes the device:
    only the early sysctls are read first and restored later."""
    from grelab.dut.base import ShellDut
    from grelab.dut.iproute2 import render
    from grelab.dut.plan import Plan, Tunnel

    class Shell(ShellDut):
        cmd = plug = reset = stop = None

    plan = Plan(tunnels=[Tunnel("gre1", "192.0.2.1", "192.0.2.2")],
                sysctls={"net.ipv4.conf.gre1.accept_local": 1, "net.ipv4.ip_forward": 1})
    unknown, learn, early = Shell.__new__(Shell)._sysctl_script(render(plan))
    assert unknown == ["/proc/sys/net/ipv4/ip_forward"]
    assert "gre1" not in learn and "gre1" not in early


def test_a_neighbour_is_a_permanent_entry_after_the_tunnels_before_the_routes():
    plan = Plan(routes=[Route("203.0.113.0/24", via="198.18.0.2")], neighbours=[Neighbour("198.18.0.2", "02:00:00:00:0c:02", "tap1")],
                tunnels=[Tunnel("tap1", "2001:db8::1", "2001:db8::2", kind="ip6gretap")])
    lines = texts(render(plan).batch)
    assert lines[-2:] == ["neigh replace 198.18.0.2 lladdr 02:00:00:00:0c:02 dev tap1 nud permanent",
                          "route add 203.0.113.0/24 via 198.18.0.2"]
    with pytest.raises(InputError, match="neighbour mac"):
        Neighbour("198.18.0.2", "02:00", "tap1")


def test_a_daemon_with_after_starts_once_that_path_exists_under_the_pid_it_was_given(tmp_path):
    """`after` renders to a background subshell that waits for the path and then execs the daemon: the pid the
    shell reports ($!, kept for the reset's kill) is the daemon's own, once it runs, with the daemon's environment."""
    import subprocess
    import time

    from grelab.dut import daemon
    from grelab.dut.plan import Daemon
    with pytest.raises(InputError):
        Daemon("ospfd", ("/usr/lib/frr/ospfd",), after="/tmp/a b")
    ospfd = Daemon("ospfd", ("/usr/bin/sleep", "30"), after="{dir}/../zebra/zserv.api")
    folder = tmp_path / "ospfd"
    folder.mkdir()
    line = daemon._background(ospfd, str(folder), "sleep 30", [("GRELAB_SAYS", "it's {dir}")])
    pid = int(subprocess.run(["sh", "-c", line + "echo $!"], capture_output=True, text=True, check=True).stdout)
    cmdline = lambda: (Path(f"/proc/{pid}/cmdline").read_bytes())  # noqa: E731
    try:
        assert b"sleep\x0030" not in cmdline()  # still waiting
        (tmp_path / "zebra").mkdir()
        (tmp_path / "zebra" / "zserv.api").touch()
        deadline = time.monotonic() + 5
        while cmdline() != b"sleep\x0030\x00" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cmdline() == b"sleep\x0030\x00"
        assert b"GRELAB_SAYS=it's {dir}\x00" in Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        subprocess.run(["kill", str(pid)])


IP_S_XFRM_STATE = """src 198.51.100.1 dst 203.0.113.1
\tproto esp spi 0xcf1d8b2b(3474819883) reqid 1(0x00000001) mode transport
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\taead rfc4106(gcm(aes)) 0x087ff10f86e9ed9ec1adb4a3867585a9dae88d7a (160 bits) 128
\tanti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
\tsel src 198.51.100.1/32 dst 203.0.113.1/32 uid 0
\tstats:
\t  replay-window 0 replay 0 failed 0
src 203.0.113.1 dst 198.51.100.1
\tproto esp spi 0x00002001 reqid 2 mode tunnel
\treplay-window 32 flag esn
\tauth-trunc hmac(sha1) 0x0102030405060708090a0b0c0d0e0f1011121314 96
\tenc cbc(aes) 0x000102030405060708090a0b0c0d0e0f
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
\tsel src 0.0.0.0/0 dst 0.0.0.0/0
src 203.0.113.1 dst 198.51.100.1
\tproto esp spi 0xca107099(3390075033) reqid 16389(0x00004005) mode transport
\treplay-window 0 seq 0x00000000 flag  (0x00000000)
\taead rfc4106(gcm(aes)) 0xb19a8a3bcc03fe8e2a870efef322fac70f878141 (160 bits) 128
\tanti-replay esn context:
\t seq-hi 0x0, seq 0x0, oseq-hi 0x0, oseq 0x0
\t replay_window 128, bitmap-length 4
\t 00000000 00000000 00000000 00000000
\tsel src 203.0.113.1/32 dst 198.51.100.1/32 proto gre uid 0
src 203.0.113.1 dst 198.51.100.1
\tproto esp spi 0x00002002 reqid 2 mode transport
\treplay-window 0 seq 0x00000000 flag noecn esn (0x00000011)
\taead rfc4106(gcm(aes)) 0xb19a8a3bcc03fe8e2a870efef322fac70f878141 (160 bits) 128
"""


def test_xfrm_states_as_charon_installs_them_read_back_into_grelab_sas():
    """`ip -s xfrm state` (what read_sas asks: numbers in both bases) and plain `ip xfrm state` both parse; the
    kernel's algorithm names map to grelab's rows, NAT-T and ESN flags come along."""
    from grelab.dut.daemon import parse_xfrm_state
    gcm, cbc, libreswans, esn = parse_xfrm_state(IP_S_XFRM_STATE)
    assert (gcm.spi, gcm.algorithm, gcm.src, gcm.dst, gcm.mode) == (0xCF1D8B2B, "gcm128", "198.51.100.1", "203.0.113.1",
                                                                   "transport")
    assert gcm.key == bytes.fromhex("087ff10f86e9ed9ec1adb4a3867585a9dae88d7a")
    assert (cbc.spi, cbc.mode, cbc.nat_t, cbc.esn, cbc.auth_key[:2]) == (0x2001, "tunnel", (4500, 4500), True, b"\1\2")
    assert cbc.algorithm.startswith("cbc128") and "sha1" in cbc.algorithm
    # libreswan gives every state its replay window in the ESN form: "anti-replay esn context" with no esn flag
    assert (gcm.esn, libreswans.esn, libreswans.spi, esn.esn) == (False, False, 0xCA107099, True)


def test_a_daemon_from_an_unpacked_package_runs_from_its_root_with_binary_files_written_byte_for_byte(tmp_path):
    """root: the guest mounts the host folder once (hostfs) and runs argv[0] and its library folders from there; the
    host DUT runs the path under root. A config file given as bytes (an NSS database) is written as it is, every
    byte (NUL too) through printf's octal escapes, by busybox's sh as by dash."""
    import shutil
    import subprocess

    from grelab.dut import daemon
    from grelab.dut.plan import Daemon
    with pytest.raises(InputError, match="root"):
        Daemon("pluto", ("/usr/libexec/ipsec/pluto",), root="var/cache/x")
    blob = bytes(range(256)) * 3 + b"'\\%s\n"
    pluto = Daemon("pluto", ("/usr/libexec/ipsec/pluto", "--rundir", "{dir}"), {"nss/key4.db": blob, "a.conf": "x"},
                   library_paths=("/usr/libexec/ipsec",), root="/var/cache/grelab/libreswan")
    guest = daemon.guest_script([pluto], loader=("/usr/lib/x86_64-linux-gnu/ld.so", "/usr/lib/x86_64-linux-gnu"))
    assert ("[ -d /host-root/var/cache/grelab/libreswan/usr ] || { mkdir -p /host-root/var/cache/grelab/libreswan; "
            "mount -r -t hostfs -o /var/cache/grelab/libreswan hostfs /host-root/var/cache/grelab/libreswan; }") in guest
    assert ("ln -s /host-root/var/cache/grelab/libreswan/usr/libexec/ipsec /usr/libexec/ipsec") in guest
    assert ("/host-usr/lib/x86_64-linux-gnu/ld.so --library-path /host-usr/lib/x86_64-linux-gnu:"
            "/host-root/var/cache/grelab/libreswan/usr/libexec/ipsec "
            "/host-root/var/cache/grelab/libreswan/usr/libexec/ipsec/pluto --rundir /tmp/grelab-daemons/pluto") in guest
    host = daemon.host_script([pluto], str(tmp_path))
    assert f"setsid /var/cache/grelab/libreswan/usr/libexec/ipsec/pluto --rundir {tmp_path}/pluto" in host
    files = daemon._files(pluto, str(tmp_path / "pluto"))
    for shell in ([shutil.which("busybox"), "sh"], ["dash"]):
        if shell[0] is None:
            continue
        shutil.rmtree(tmp_path / "pluto", ignore_errors=True)
        subprocess.run([*shell, "-c", files], check=True)
        assert (tmp_path / "pluto/nss/key4.db").read_bytes() == blob
        assert (tmp_path / "pluto/a.conf").read_text() == "x"


def test_the_host_dut_says_it_cannot_run_an_unpacked_daemon_whose_helpers_live_in_a_folder_it_lacks():
    """pluto runs addconn from its compiled-in /usr/libexec/ipsec: the UML guest links it to the unpacked package, the
    host's namespaces share the host's /usr, where the package is not installed: not applicable, saying why."""
    from grelab.dut.base import NotApplicable
    from grelab.dut.host import Host
    from grelab.dut.plan import Daemon
    host = Host.__new__(Host)
    host.name = "r1"
    pluto = Daemon("pluto", ("/usr/libexec/ipsec/pluto",), library_paths=("/usr/libexec/grelab-absent",),
                   root="/var/cache/grelab/libreswan")
    with pytest.raises(NotApplicable, match="DUT r1 lacks daemons_unpacked: Daemon pluto from /var/cache/grelab/libreswan"):
        host._daemons_script([pluto])
