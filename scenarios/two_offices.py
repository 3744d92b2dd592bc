"""Two offices, one GRE tunnel, in the clear or inside IPsec.

h1 and h2 sit on IPv6 LANs in two offices. Between them lies a provider (isp) that forwards IPv4 only.
Their routers r1 and r2, the devices under test, are the kernel's GRE endpoints: r1 puts what h1 sends to
h2's LAN into GRE and sends it over IPv4 to r2, which takes it out and delivers it, and back. GRE has no
security of its own, so in the second telling r1 and r2 require ESP (transport mode) for their GRE.

The plot: h1's echo and a TCP exchange reach h2 and come back, and the transit holds nothing but IPv4
GRE of protocol type 0x86DD (IPv6) -- or only ESP that decrypts to that GRE -- carrying exactly the IPv6
packets the hosts sent.
"""
from typing import NamedTuple

import pytest

from grelab import hosts, offices
from grelab.expect.tunnel import expect_tunnel_carries

pytestmark = pytest.mark.needs_duts(2)


class Offices(NamedTuple):
    lab: object  # the built grelab.lab.build.Lab
    sas: tuple  # the ESP SAs between r1 and r2, or none


@pytest.fixture(params=[pytest.param(False, id="gre"), pytest.param(True, id="gre-in-esp", marks=pytest.mark.needs_esp)])
def net(request, duts, lab, golden):
    esp = request.param
    r1, r2 = duts("r1", "r2")
    built = lab(offices.topology(r1, r2))
    offices.connect(r1, r2, esp=esp)
    for link, (node, ifname) in offices.LINKS.items():
        golden.capture(link, built, node, ifname)
    sas = offices.ESP_SAS if esp else ()
    golden.sas(*sas)
    offices.explain(golden, "ESP (transport mode) around IPv4/GRE (0x86DD)" if esp else "IPv4/GRE (0x86DD)")
    return Offices(built, sas)


def test_echo(net, golden):
    reply = hosts.ping6(net.lab, "h1", offices.H2, ident=0x4242, seq=1)
    assert (reply.source, reply.payload) == (offices.H2, b"grelab echo")
    transit = offices.transit(golden)
    assert len(transit) == 2  # the request and the reply, nothing else
    expect_tunnel_carries(transit, offices.sent_by_hosts(golden), sas=net.sas)


def test_tcp(net, golden):
    exchange = hosts.tcp_echo(net.lab, "h1", "h2", offices.H2)
    assert exchange.echoed == exchange.sent
    expect_tunnel_carries(offices.transit(golden), offices.sent_by_hosts(golden), sas=net.sas)
