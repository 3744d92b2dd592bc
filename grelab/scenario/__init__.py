"""Scenarios as data (spec), live (net), and the networks they are told in (offices, endpoint), with the
traffic real hosts make (hosts). A scenario module in scenarios/ is its story plus a few cases:

    from grelab.scenario import offices
    net = offices.two_offices().fixture()

    def test_echo(net):
        net.ping("h1", "h2")
        net.transit.carries_exactly(net.sent_by("h1", "h2"))
"""
from grelab.scenario.spec import GRE, IN_ESP, Comment, Scenario, Variant, in_esp  # noqa: F401
