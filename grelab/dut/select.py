"""Which DUT to use: `--dut auto|host|uml|module:Class|entry-point-name`.

`auto` (the default) picks `host` when the host kernel can do GRE and ESP in a namespace, else `uml`
when user-mode-linux is set up; when neither works the error says what is missing and how to get it.
Your own DUT: `--dut mypackage.mydut:MyDut` (a grelab.dut.base.Dut subclass), or register it under
the entry point group `grelab.dut` in your package and pass its name.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
from dataclasses import dataclass

from grelab.dut.base import Dut, DutError

ENTRY_POINT_GROUP = "grelab.dut"


@dataclass(frozen=True)
class Choice:
    """A DUT backend, ready to start instances of."""

    name: str  # "host", "uml", or what the user named
    factory: type
    capabilities: frozenset[str]
    why: str  # one line: why this backend (for `grelab doctor` and skip messages)

    def start(self, name: str = "dut", interfaces=("wan", "lan")) -> Dut:
        """Boot one instance; its interfaces are named as given (e.g. the lab's "wan", "lan")."""
        return self.factory(interfaces=list(interfaces), name=name)


def host_choice() -> Choice:
    from grelab.dut.host import Host, probe
    found = probe()
    if not found.usable:
        raise DutError("host: the host kernel lacks " + "; ".join(f"{c} ({why})" for c, why in found.missing.items())
                       + " (a kernel with ip_gre and esp4, e.g. Debian's stock kernel, or use --dut uml)")
    return Choice("host", Host, found.capabilities, "the host kernel can do GRE and ESP in a namespace")


def uml_choice() -> Choice:
    from grelab.dut.uml import initramfs
    from grelab.dut.uml.guest import Uml
    try:
        image = initramfs.prepare()
    except (DutError, OSError, subprocess.SubprocessError) as exc:
        raise DutError(f"uml: {exc}") from None
    return Choice("uml", Uml, Uml.capabilities, f"user-mode-linux {initramfs.kernel_version()} with {image.initramfs}")


def custom_choice(spec: str) -> Choice:
    """`module:Class`, or the name of a `grelab.dut` entry point."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise DutError(f"--dut {spec}: cannot load it: {exc}") from None
    else:
        points = [p for p in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if p.name == spec]
        if not points:
            raise DutError(f"--dut {spec}: not auto, host, uml, module:Class, or an entry point of group {ENTRY_POINT_GROUP}")
        factory = points[0].load()
    if not (isinstance(factory, type) and issubclass(factory, Dut)):
        raise DutError(f"--dut {spec}: {factory!r} is not a subclass of grelab.dut.base.Dut")
    return Choice(spec, factory, frozenset(factory.capabilities), f"named by --dut {spec}")


def select(spec: str = "auto") -> Choice:
    """The backend `spec` names; for auto the first usable of host, uml. Raises DutError saying why not."""
    if spec == "host":
        return host_choice()
    if spec == "uml":
        return uml_choice()
    if spec != "auto":
        return custom_choice(spec)
    reasons = []
    for candidate in (host_choice, uml_choice):
        try:
            return candidate()
        except DutError as exc:
            reasons.append(str(exc))
    raise DutError("no usable DUT. " + " | ".join(reasons) + ". To get one: run ./setup.sh as root "
                   "(it installs user-mode-linux and busybox-static and prepares the guest)")
