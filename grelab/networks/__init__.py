"""The networks scenarios are told in, each a Scenario made with the platform (grelab.scenario) and the names
its stories use: offices (two offices over a provider), endpoint (grelab itself as the tunnel's far end),
ip6_endpoint, hub (hub and spokes), branch (a branch and HQ running OSPF), anycast, flood, ike (IKEv2 daemons),
refusals (what an endpoint must refuse) and monitor (GRE keepalives).

    from grelab.networks import offices
    net = offices.two_offices().fixture()
"""
