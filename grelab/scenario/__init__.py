"""The scenario platform: scenarios as data (spec), live (net), a lab brought up by hand (live), the traffic real
hosts make (hosts) and the catalogue (catalog). The networks stories are told in are grelab.networks. A scenario
module in scenarios/ is its story plus a few cases:

    from grelab.networks import offices
    net = offices.two_offices().fixture()

    def test_echo(net):
        net.ping("h1", "h2")
        net.transit.carries_exactly(net.sent_by("h1", "h2"))

The variants are PLAIN_GRE, IN_ESP and in_esp(algorithm): `GRE` stays scapy's GRE layer, here as in scapy.
"""
from grelab.scenario.spec import IN_ESP, PLAIN_GRE, Comment, Scenario, Variant, in_esp  # noqa: F401


def __getattr__(name: str):
    if name == "GRE":  # the variant's old name: say the new one rather than "cannot import name"
        raise ImportError("grelab.scenario.GRE is now PLAIN_GRE (the plain GRE variant); GRE is scapy's GRE layer "
                          "(scapy.layers.l2)")
    raise AttributeError(f"module 'grelab.scenario' has no attribute {name!r}")
