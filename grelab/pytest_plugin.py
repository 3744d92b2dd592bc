"""grelab's pytest plugin (loaded through the pytest11 entry point): options, markers and fixtures."""
from __future__ import annotations

MARKERS = {
    "needs_esp": "the case needs a DUT with ESP (xfrm)",
    "needs_ipv6_transport": "the case needs GRE over IPv6 transport (ip6_gre) in the DUT",
    "needs_duts(n)": "the case needs n devices under test at once",
}


def pytest_addoption(parser):
    group = parser.getgroup("grelab")
    group.addoption("--dut", default="auto", help="device under test: auto (default), host, uml or module:Class")
    group.addoption("--update-golden", action="store_true", help="rewrite the selected cases' golden pcaps")
    group.addoption("--keep-pcaps", metavar="DIR", help="keep every case's captures in DIR/<scenario>/<case>.pcapng")


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
