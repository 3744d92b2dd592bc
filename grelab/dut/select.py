"""Which DUT to use: `--dut auto|host|uml|ovs|module:Class|entry-point-name`.

`auto` (the default) picks `host` when the host kernel can do GRE and ESP in a namespace, else `uml`
when user-mode-linux is set up; when neither works the error says what is missing and how to get it. `ovs` (Open
vSwitch's userspace GRE, grelab.dut.ovs) is only ever named, never picked by auto: it is another implementation.
Your own DUT: `--dut mypackage.mydut:MyDut` (a grelab.dut.base.Dut subclass), or register it under
the entry point group `grelab.dut` in your package and pass its name.
"""
from __future__ import annotations

import errno
import importlib
import importlib.metadata
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from grelab.dut.base import Dut, DutError

ENTRY_POINT_GROUP = "grelab.dut"
TUN = Path("/dev/net/tun")
# What grelab does needs these capabilities (bit numbers from linux/capability.h): namespaces and mounts
# (SYS_ADMIN), links, addresses, taps (NET_ADMIN), packet sockets (NET_RAW). uid 0 alone is not enough.
CAPABILITIES = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_NET_RAW": 13}
# Files the guest image copies from the host, and the Debian package that provides each.
PACKAGE_OF = {"/etc/protocols": "netbase"}
# Errors of writing the image rather than of reading its inputs.
WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR}


@dataclass(frozen=True)
class Choice:
    """A DUT backend, ready to start instances of."""

    name: str  # "host", "uml", or what the user named
    factory: type
    capabilities: frozenset[str]
    why: str  # one line: why this backend (for `grelab doctor` and skip messages)
    kernel: str = ""  # one line: the DUT's kernel (run headers, reports), where the backend knows it

    def start(self, name: str = "dut", interfaces=("wan", "lan")) -> Dut:
        """Boot one instance; its interfaces are named as given (e.g. the lab's "wan", "lan")."""
        return self.factory(interfaces=list(interfaces), name=name)


def missing_capabilities(status: str | None = None) -> list[str]:
    """The capabilities of CAPABILITIES this process lacks in its effective set (CapEff of /proc/self/status)."""
    status = Path("/proc/self/status").read_text() if status is None else status
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)$", status, re.M)
    effective = int(match.group(1), 16) if match else 0
    return [name for name, bit in CAPABILITIES.items() if not effective >> bit & 1]


def privilege_problem() -> str | None:
    """Why this process cannot make namespaces, links and packet sockets (None when it can)."""
    missing = missing_capabilities()
    if not missing:
        return None
    return (f"this process lacks {', '.join(missing)} (uid {os.geteuid()}): run as root with full capabilities, "
            "or grant them (e.g. docker run --cap-add NET_ADMIN --cap-add SYS_ADMIN --cap-add NET_RAW)")


def host_choice() -> Choice:
    from grelab.dut.host import Host, host_problem, probe
    found = probe()
    problem = host_problem(found)
    if problem:
        raise DutError(f"host: {problem}")
    return Choice("host", Host, found.capabilities, "the host kernel can do GRE and ESP in a namespace",
                  f"the host's {os.uname().release}")


def tun_problem() -> str | None:
    """Why no tap can be made (the uml guest's interfaces are taps), or None: /dev/net/tun is opened and
    closed, which creates nothing."""
    try:
        os.close(os.open(TUN, os.O_RDWR))
    except FileNotFoundError:
        return f"no {TUN} (the guest's interfaces are taps): modprobe tun (CONFIG_TUN), or mknod {TUN} c 10 200"
    except OSError as exc:
        return (f"cannot open {TUN} ({exc.strerror}; the guest's interfaces are taps): run as root, or in a "
                f"container pass the device in (e.g. --device {TUN}) with CAP_NET_ADMIN")
    return None


def _prepare_problem(exc: OSError) -> str:
    """An OSError from building the guest image, as what went wrong with which path and what to do."""
    from grelab.dut.uml import initramfs
    path = exc.filename
    if path is None:
        return f"cannot prepare the guest image: {exc}: {initramfs.SETUP_HINT}"
    reason = exc.strerror or str(exc)
    if str(path) in PACKAGE_OF:
        hint = f"apt-get install {PACKAGE_OF[str(path)]}, or run ./setup.sh"
    elif Path(os.path.abspath(path)).is_relative_to(initramfs.CACHE) or exc.errno in WRITE_ERRORS:
        hint = f"the image cache {initramfs.CACHE} must be a writable folder: run as root, or set GRELAB_CACHE to one"
    else:
        hint = initramfs.SETUP_HINT
    return f"cannot prepare the guest image: {path}: {reason}: {hint}"


class KernelCannotRun(DutError):
    """The UML kernel is missing, is not one, lacks a feature, or panicked when booted here: no case can run on it."""


def prepare_uml():
    """(initramfs.prepare(), the UML kernel it is for), with every failure as a DutError saying what is
    missing (naming the path, for an OSError) and how to get it."""
    from grelab.dut.uml import initramfs, kernel
    try:
        uml = kernel.grelab_kernel()  # --kernel / GRELAB_KERNEL's, checked, or grelab's build
    except DutError as exc:  # none, not built, not a UML kernel, lacking a feature: no case can run on it
        raise KernelCannotRun(str(exc)) from None
    try:
        return initramfs.prepare(uml), uml  # its own DutErrors say how to get what is missing
    except OSError as exc:
        raise DutError(_prepare_problem(exc)) from None
    except subprocess.SubprocessError as exc:
        raise DutError(f"cannot prepare the guest image: {exc}: {initramfs.SETUP_HINT}") from None


def _machine_key(image) -> str:
    """What decides whether a guest boots here: the kernel file, the image, the CPU's flags, the host kernel."""
    import hashlib
    st = Path(image.kernel).stat()
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    key = f"{image.kernel} {st.st_size} {st.st_mtime_ns} {image.initramfs} {flags} {os.uname().release}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def host_has_amx() -> bool:
    return bool(re.search(r"^flags\s*:.*\bamx_tile\b", Path("/proc/cpuinfo").read_text(), re.M))


def boot_check(image) -> None:
    """Boot the guest once (unless one booted on this machine with this kernel and image before): a kernel that
    cannot run here is a KernelCannotRun naming the cause and the remedy, said once before any case."""
    stamp = Path(image.initramfs).parent / f"booted-{_machine_key(image)}"
    if stamp.exists():
        return
    from grelab.dut.uml.guest import Uml
    try:
        Uml(["wan"], name="bootcheck", image=image).stop()
    except DutError as exc:
        raise KernelCannotRun(cannot_run(image, str(exc))) from None
    stamp.touch()


FP_REFUSED = re.compile(r"^.*ptrace set fp regs failed.*$", re.M)  # arch/um: the host refused the guest's XSAVE buffer
PANIC = re.compile(r"^Kernel panic - not syncing: .*$", re.M)


def cannot_run(image, said: str) -> str:
    """One line: why the guest did not boot (from what its console said) and what to do about it."""
    uml = getattr(image, "uml", None)
    which = uml.describe() if uml is not None else str(image.kernel)
    found = [m.group(0).strip() for pattern in (FP_REFUSED, PANIC) if (m := pattern.search(said))]
    cause = "; ".join(found) or said.strip().splitlines()[0]
    if FP_REFUSED.search(said):
        cpu = ("this CPU has AMX, whose XSAVE area" if host_has_amx() else
               "the host wants the whole XSAVE area (far larger with AMX), which")
        return (f"the UML kernel ({which}) cannot run on this CPU: {cause}. The host refused the guest's FP registers: "
                f"{cpu} a UML kernel before 6.13 does not size from the host: use grelab's own kernel (drop --kernel "
                "and GRELAB_KERNEL; ./setup.sh builds it) or a UML kernel of 6.13 or later")
    return (f"the UML guest did not boot ({which}): {cause}. Rebuild the guest's files (./setup.sh, or "
            "`grelab kernel build` and `grelab dut prepare`); a kernel of yours: build it with grelab's "
            "configuration (grelab kernel build --source DIR)")


def uml_choice() -> Choice:
    from grelab.dut.uml.guest import Uml
    try:
        image, uml = prepare_uml()
    except DutError as exc:
        raise type(exc)(f"uml: {exc}") from None  # a KernelCannotRun stays one
    problem = tun_problem()
    if problem:
        raise DutError(f"uml: {problem}")
    try:
        boot_check(image)
    except KernelCannotRun as exc:
        raise KernelCannotRun(f"uml: {exc}") from None
    return Choice("uml", Uml, Uml.capabilities, f"{uml.describe()}; guest image {image.initramfs}", uml.describe())


def ovs_choice() -> Choice:
    from grelab.dut.ovs.daemons import missing
    from grelab.dut.ovs.switch import Ovs
    problem = missing()
    if problem:
        raise DutError(f"ovs: {problem}")
    version = subprocess.run(["ovs-vswitchd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return Choice("ovs", Ovs, Ovs.capabilities, f"{version.strip()}, userspace datapath, in a namespace",
                  f"the host's {os.uname().release} with {version.strip()}")


def declared_capabilities() -> dict[str, frozenset[str]]:
    """What each kind of DUT grelab has declares it can do, for telling which cases it could run: uml its class's
    capabilities; host what the probe of this kernel found (nothing when that is not GRE and ESP both: it refuses
    to start then). Whether a kind is usable on this machine is select()'s question."""
    from grelab.dut.host import probe
    from grelab.dut.ovs.mapping import CAPABILITIES as OVS
    from grelab.dut.uml.guest import Uml
    found = probe()
    return {"host": found.capabilities if found.usable else frozenset(), "uml": Uml.capabilities, "ovs": OVS}


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
            raise DutError(f"--dut {spec}: not auto, host, uml, ovs, module:Class, or an entry point of group {ENTRY_POINT_GROUP}")
        try:
            factory = points[0].load()
        except (ImportError, AttributeError) as exc:
            raise DutError(f"--dut {spec}: entry point {points[0].value} cannot be loaded: {exc}") from None
    if not (isinstance(factory, type) and issubclass(factory, Dut)):
        raise DutError(f"--dut {spec}: {factory!r} is not a subclass of grelab.dut.base.Dut")
    return Choice(spec, factory, frozenset(factory.capabilities), f"named by --dut {spec}")


def select(spec: str = "auto") -> Choice:
    """The backend `spec` names; for auto the first usable of host, uml. Raises DutError saying why not
    and how to get it."""
    problem = privilege_problem()
    if problem:  # every DUT and every lab needs them: say so, not what the probes fail on without them
        raise DutError(f"--dut {spec}: {problem}")
    if spec == "host":
        try:
            return host_choice()
        except DutError as exc:
            try:
                uml_choice()
            except DutError as uml_exc:
                why_not = str(uml_exc).removeprefix("uml: ")
                raise DutError(f"{exc}.\n  (uml does not work here either: {why_not})") from None
            raise DutError(f"{exc}. The uml DUT works here: use --dut uml, or --dut auto (the default), "
                           "which picks it") from None
    if spec == "uml":
        return uml_choice()
    if spec == "ovs":
        return ovs_choice()
    if spec != "auto":
        return custom_choice(spec)
    failures = []
    for candidate in (host_choice, uml_choice):
        try:
            return candidate()
        except DutError as exc:
            failures.append(exc)
    kind = KernelCannotRun if any(isinstance(e, KernelCannotRun) for e in failures) else DutError
    raise kind("no usable DUT:\n  " + "\n  ".join(map(str, failures)))
