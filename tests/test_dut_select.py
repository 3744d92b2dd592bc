"""Choosing a DUT: auto falls back to uml here, says what is missing when nothing works, and loads your own
DUT class by `module:Class`; `grelab doctor` reports the same choice."""
import argparse
from pathlib import Path

import pytest

from grelab.dut import doctor, select as selection
from grelab.dut.base import CommandResult, Dut, DutError
from grelab.dut.host import probe
from grelab.dut.uml import initramfs
from grelab.dut.uml.guest import Uml


class EchoDut(Dut):
    """The smallest DUT a user could write: it runs nothing, but satisfies the interface."""

    capabilities = frozenset({"gre"})

    def __init__(self, interfaces=("wan", "lan"), name="dut"):
        self.name, self.interfaces, self.namespace, self.plugged = name, list(interfaces), "", {}

    def plug(self, iface, veth_end):
        self.plugged[iface] = veth_end

    def cmd(self, script, timeout=10.0):
        return CommandResult(script, 0, script)

    def reset(self):
        self.plugged.clear()

    def stop(self):
        pass


def test_auto_picks_host_when_capable_else_uml():
    choice = selection.select("auto")
    assert choice.name == ("host" if probe().usable else "uml")
    assert {"gre", "esp"} <= choice.capabilities


def test_nothing_usable_says_what_is_missing_and_how_to_get_it(monkeypatch):
    if probe().usable:
        pytest.skip("the host kernel is usable: auto never falls through to the error")
    monkeypatch.setattr(initramfs, "KERNEL", Path("/nonexistent/linux"))
    with pytest.raises(DutError) as error:
        selection.select("auto")
    message = str(error.value)
    assert "host kernel lacks gre" in message and "apt-get install user-mode-linux" in message
    assert "./setup.sh" in message


def test_your_own_dut_by_module_and_class():
    choice = selection.select(f"{__name__}:EchoDut")
    assert choice.factory is EchoDut and choice.capabilities == {"gre"}
    dut = choice.start(name="mine", interfaces=["wan"])
    dut.plug("wan", "grelab-x")
    assert dut.ip("addr", "add", "192.0.2.1/24", "dev", "wan") == "/sbin/ip addr add 192.0.2.1/24 dev wan"
    assert dut.plugged == {"wan": "grelab-x"}


@pytest.mark.parametrize("spec, said", [("nosuchmodule:X", "cannot load it"),
                                         ("argparse:Namespace", "is not a subclass"),
                                         ("nosuchname", "not auto, host, uml")])
def test_bad_dut_names_are_explained(spec, said):
    with pytest.raises(DutError, match=said):
        selection.select(spec)


def test_uml_is_a_dut():
    assert issubclass(Uml, Dut) and Uml.capabilities >= {"gre", "esp", "ipv6_transport", "several"}


def test_doctor_reports_the_choice(capsys):
    assert doctor.run(argparse.Namespace(dut="auto", boot=False)) == 0
    out = capsys.readouterr().out
    assert "--dut auto picks: " + ("host" if probe().usable else "uml") in out
    for check in ("root", "veth", "host GRE (ip_gre)", "host ESP", "UML", "tshark"):
        assert check in out


def test_doctor_fails_when_nothing_is_usable(monkeypatch, capsys):
    if probe().usable:
        pytest.skip("the host kernel is usable")
    monkeypatch.setattr(initramfs, "KERNEL", Path("/nonexistent/linux"))
    assert doctor.run(argparse.Namespace(dut="auto", boot=False)) == 1
    assert "nothing usable" in capsys.readouterr().out
