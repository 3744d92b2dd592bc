"""The lab: topologies as data, built in network namespaces owned by this run; send on their links.

    from grelab.lab import build, a_r_b
    with build(a_r_b()) as lab:
        lab.namespace("r"); lab.link_end("a", "eth0"); lab.run_in("b", fn)
        with lab.capture("b", "eth0", "icmp6") as cap, lab.sender("a", "eth0") as tx: ...
"""
from grelab.lab.build import Lab, LinkEnd, build
from grelab.lab.netns import run_in
from grelab.lab.send import NotOurInterface, Sender
from grelab.lab.topology import End, Link, Node, Route, Topology, a_r_b

__all__ = ["Lab", "LinkEnd", "build", "run_in", "NotOurInterface", "Sender",
           "End", "Link", "Node", "Route", "Topology", "a_r_b"]
