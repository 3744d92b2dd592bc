"""Choosing a DUT: auto falls back to uml here, says what is missing and how to get it when nothing works, and
loads your own DUT class by `module:Class` or by entry point; `grelab doctor` tells the truth about this machine
and reports the same choice."""
import argparse
import functools
import importlib.metadata
import os
from pathlib import Path

import pytest

from grelab.cli import doctor
from grelab.dut import select as selection
from grelab.dut.base import Dut, DutError
from grelab.dut import host
from grelab.dut.host import Probe, probe
from grelab.dut.uml import initramfs, kernel
from grelab.dut.uml.guest import Uml
from grelab.dut.base import Counters
from grelab.dut.plan import Interface, Plan


class EchoDut(Dut):
    """The smallest DUT a user could write: it keeps the plans it is given, and never sees an iproute2 string."""

    capabilities = frozenset({"gre"})

    def __init__(self, interfaces=("wan", "lan"), name="dut"):
        self.name, self.interfaces, self.namespace, self.plugged, self.held = name, list(interfaces), "", {}, Plan()

    def plug(self, iface, veth_end):
        self.plugged[iface] = veth_end

    def apply(self, plan):
        self.held += plan

    def counters(self):
        return Counters(links={iface: {"rx_packets": 0} for iface in self.plugged})

    def reset(self):
        self.plugged.clear()
        self.held = Plan()

    def stop(self):
        pass


def test_auto_picks_host_when_capable_else_uml():
    choice = selection.select("auto")
    assert choice.name == ("host" if probe().usable else "uml")
    assert {"gre", "esp"} <= choice.capabilities


def _nothing_works(monkeypatch):
    """Both backends fail, whatever this machine can do: the host probe finds no GRE nor ESP, and there is no
    user-mode-linux kernel (grelab's is not built)."""
    said = {"gre": "Error: Unknown device type.", "ipv6_transport": "Error: Unknown device type.",
            "esp": "Error: Requested AEAD algorithm not found."}
    monkeypatch.setattr(host, "probe", lambda: Probe(frozenset(), said))
    _no_kernel(monkeypatch)


def _no_kernel(monkeypatch):
    monkeypatch.delenv("GRELAB_KERNEL", raising=False)
    monkeypatch.setattr(kernel, "KERNELS", Path("/nonexistent/kernel"))


def test_nothing_usable_says_what_is_missing_and_how_to_get_it(monkeypatch):
    _nothing_works(monkeypatch)
    with pytest.raises(DutError) as error:
        selection.select("auto")
    message = str(error.value)
    assert "ip_gre" in message and "CONFIG_NET_IPGRE" in message and "esp4" in message and "CONFIG_INET_ESP" in message
    assert "boot a kernel that has them" in message
    assert "grelab's UML kernel (linux-source-7.3" in message and "is not built yet" in message
    assert "grelab kernel build" in message
    assert message.count("./setup.sh") == 1  # said once, not again after each reason
    assert "--dut uml" not in message  # uml failed too: no advice to use it


def test_forced_host_says_whether_uml_would_do(monkeypatch):
    monkeypatch.setattr(host, "probe", lambda: Probe(frozenset(), {"gre": "no", "esp": "no"}))
    with pytest.raises(DutError) as error:
        selection.select("host")
    works = _uml_works()
    assert ("The uml DUT works here: use --dut uml" in str(error.value)) == works
    if not works:
        assert "uml does not work here either" in str(error.value)
    _no_kernel(monkeypatch)
    with pytest.raises(DutError, match="uml does not work here either") as error:
        selection.select("host")
    assert "--dut uml" not in str(error.value)


@pytest.mark.parametrize("filename, errno_, said", [
    ("/etc/protocols", 2, "/etc/protocols: No such file or directory: apt-get install netbase"),
    (str(initramfs.CACHE / "0123"), 13, f"{initramfs.CACHE / '0123'}: Permission denied: the image cache"),
])
def test_an_os_error_preparing_uml_names_the_path(monkeypatch, filename, errno_, said):
    def prepare(*_):
        raise OSError(errno_, os.strerror(errno_), filename)
    monkeypatch.setattr(initramfs, "prepare", prepare)
    with pytest.raises(DutError) as error:
        selection.select("uml")
    assert said in str(error.value)


def test_an_unwritable_cache_is_a_dut_error(monkeypatch, tmp_path):
    """For real: the cache folder is under a plain file, so it cannot be made."""
    if not _uml_works():
        pytest.skip("uml is not set up here: prepare fails before it writes")
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(initramfs, "prepare", functools.partial(initramfs.prepare, cache=tmp_path / "file" / "uml"))
    with pytest.raises(DutError, match=f"cannot prepare the guest image: {tmp_path}/file/uml/.*: Not a directory"):
        selection.select("uml")


def test_uml_needs_a_tap(monkeypatch):
    if not _uml_works():
        pytest.skip("uml is not set up here")
    monkeypatch.setattr(selection, "TUN", Path("/nonexistent/tun"))
    with pytest.raises(DutError, match="uml: no /nonexistent/tun .*modprobe tun"):
        selection.select("uml")


def test_your_own_dut_by_module_and_class():
    choice = selection.select(f"{__name__}:EchoDut")
    assert choice.factory is EchoDut and choice.capabilities == {"gre"}
    dut = choice.start(name="mine", interfaces=["wan"])
    dut.plug("wan", "grelab-x")
    dut.apply(Plan(interfaces=[Interface("wan", addresses=["192.0.2.1/24"])]))
    assert dut.held.interfaces == (Interface("wan", addresses=("192.0.2.1/24",)),)
    assert dut.plugged == {"wan": "grelab-x"} and dut.counters().link("wan") == {"rx_packets": 0}


def _entry_points(monkeypatch, **points):
    """importlib.metadata.entry_points() as if an installed package registered points (name -> value)."""
    real = importlib.metadata.entry_points

    def entry_points(**select):
        if select.get("group") != selection.ENTRY_POINT_GROUP:
            return real(**select)
        return [importlib.metadata.EntryPoint(name, value, selection.ENTRY_POINT_GROUP) for name, value in points.items()]
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_your_own_dut_by_entry_point(monkeypatch):
    _entry_points(monkeypatch, echo=f"{__name__}:EchoDut", other="argparse:Namespace")
    choice = selection.select("echo")
    assert choice.name == "echo" and choice.factory is EchoDut and choice.capabilities == {"gre"}
    assert choice.start(name="mine").name == "mine"
    with pytest.raises(DutError, match="is not a subclass"):
        selection.select("other")
    with pytest.raises(DutError, match="not auto, host, uml, ovs, module:Class, or an entry point of group grelab.dut"):
        selection.select("nosuchname")


def test_a_broken_entry_point_is_explained(monkeypatch):
    _entry_points(monkeypatch, broken="nosuchmodule:X")
    with pytest.raises(DutError, match="entry point nosuchmodule:X cannot be loaded"):
        selection.select("broken")


@pytest.mark.parametrize("spec, said", [("nosuchmodule:X", "cannot load it"),
                                         ("argparse:Namespace", "is not a subclass"),
                                         ("nosuchname", "not auto, host, uml")])
def test_bad_dut_names_are_explained(spec, said):
    with pytest.raises(DutError, match=said):
        selection.select(spec)


def test_uml_is_a_dut():
    assert issubclass(Uml, Dut) and Uml.capabilities >= {"gre", "esp", "ipv6_transport", "several"}


def _uml_works() -> bool:
    try:
        selection.uml_choice()
    except DutError:
        return False
    return True


def test_doctor_rows_are_the_truth():
    """Each row agrees with the probes, and every MISSING row says how to get it."""
    rows = {what: (ok, detail) for what, ok, detail in doctor.checks()}
    found = probe()
    for capability, label in doctor.HOST_ROWS:
        ok, detail = rows[label]
        assert ok == (capability in found.capabilities), (label, detail)
        if not ok:
            module, options = host.HOST_NEEDS[capability]
            assert f"lacks {module}" in detail and any(o in detail for o in options)
            assert "use a kernel with it" in detail
            assert ("--dut uml, which works here" in detail) == _uml_works()
    assert rows["UML (booted once)"][0] == _uml_works()
    assert rows["UML kernel"][0] and "UML 7.3.4: grelab's build of Debian's linux-source-7.3" in rows["UML kernel"][1]
    assert rows["TUN/TAP"][0] == (selection.tun_problem() is None)
    assert rows["privileges"][0] == (not selection.missing_capabilities())
    for what, (ok, detail) in rows.items():
        if not ok:
            assert any(how in detail for how in ("use a kernel", "apt-get", "setup.sh", "modprobe", "run as root",
                                                 "needs", "not tested")), (what, detail)


def test_doctor_reports_the_choice(capsys):
    usable = probe().usable or _uml_works()
    assert doctor.run(argparse.Namespace(dut="auto", boot=False, kernel=None)) == (0 if usable else 1)
    out = capsys.readouterr().out
    if usable:
        assert "--dut auto picks: " + ("host" if probe().usable else "uml") in out
    for check in ("privileges", "veth", "host GRE (ip_gre)", "host ESP", "TUN/TAP", "UML", "tshark"):
        assert check in out


def test_doctor_forced_host_points_at_uml(capsys):
    if probe().usable:
        pytest.skip("the host kernel is usable")
    assert doctor.run(argparse.Namespace(dut="host", boot=False, kernel=None)) == 2
    out = capsys.readouterr().out
    assert "--dut host: not usable" in out
    assert ("The uml DUT works here: use --dut uml" in out) == _uml_works()


def test_doctor_fails_when_nothing_is_usable(monkeypatch, capsys):
    _nothing_works(monkeypatch)
    assert doctor.run(argparse.Namespace(dut="auto", boot=False, kernel=None)) == 2
    out = capsys.readouterr().out
    assert "nothing usable" in out
    assert "MISSING  host GRE (ip_gre)" in out and "or get the uml DUT working" in out
    assert "--dut uml, which works here" not in out


def test_capabilities_are_read_from_the_effective_set():
    assert selection.missing_capabilities("CapEff:\t000001ffffffffff\n") == []
    assert selection.missing_capabilities("CapEff:\t0000000000003000\n") == ["CAP_SYS_ADMIN"]  # NET_ADMIN, NET_RAW
    assert selection.missing_capabilities("CapEff:\t0000000000000000\n") == ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_NET_RAW"]


def test_doctor_without_net_admin_and_sys_admin_says_so_and_fails():
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin,-sys_admin", sys.executable,
                           "-m", "grelab.cli", "doctor"], capture_output=True, text=True, timeout=120, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("MISSING  privileges") and "lack CAP_NET_ADMIN, CAP_SYS_ADMIN" in line for line in lines)
    assert "needs CAP_SYS_ADMIN, which this process lacks" in done.stdout
    assert "CONFIG_VETH" not in done.stdout and "root ok" not in done.stdout
    assert "--dut auto: nothing usable. --dut auto: this process lacks CAP_NET_ADMIN, CAP_SYS_ADMIN" in done.stdout
