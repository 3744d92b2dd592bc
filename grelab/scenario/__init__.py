"""The scenario platform: scenarios as data (spec), live (net), a lab brought up by hand (live), the traffic real
hosts make (hosts) and the catalogue (catalog). The networks stories are told in are grelab.networks. A scenario
module in scenarios/ is its story plus a few cases:

    from grelab.networks import offices
    net = offices.two_offices().fixture()

    def test_echo(net):
        net.ping("h1", "h2")
        net.transit.carries_exactly(net.sent_by("h1", "h2"))
"""
from grelab.scenario.spec import GRE, IN_ESP, Comment, Scenario, Variant, in_esp  # noqa: F401
