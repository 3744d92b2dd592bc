"""The UML guest's root filesystem: an initramfs built from this machine's Debian packages, cached by input hash.

What goes in: busybox-static (shell and tools), iproute2's `ip` with the libraries
`ldd` lists (busybox's own `ip` has no xfrm), /etc/protocols (`proto gre`), the GRE/ESP/crypto modules
of the user-mode-linux package in dependency order (including `drbg` and `sha512_generic`, which nothing
auto-loads and without which `ip xfrm state add` fails), and guest/init.sh as /init.

The packet filter: Debian's UML kernel has nf_tables without its ip/ip6/inet families, so `nft` cannot
filter IP there. It has the legacy x_tables, so the guest gets iptables/ip6tables (iptables-legacy, with
its extensions) and the x_tables modules, loaded on first use through modules.alias; its `nft` is a stub
that says so and fails. Those files are not in the archive, whose size the boot pays for (unpacking),
but symlinks into the host's /usr, which init mounts read-only at /host-usr (UML's hostfs).

The archive is written directly as cpio "newc" so no cpio tool is needed, and uncompressed because the
guest unpacks it faster than it would gunzip it.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grelab.dut.base import DutError

KERNEL = Path("/usr/bin/linux")
MODULES_ROOT = Path("/usr/lib/uml/modules")
BUSYBOX = Path("/bin/busybox")
CACHE = Path(os.environ.get("GRELAB_CACHE", "/var/cache/grelab")) / "uml"
GUEST_FILES = Path(__file__).parent / "guest"
RESET_SCRIPT = Path(__file__).parent.parent / "reset.sh"

# Loaded at boot, in this order after their dependencies: tunnels, IPsec, the crypto ESP needs. Nothing loads a
# crypto module on demand in the guest, so every algorithm of grelab.craft.algorithms needs its modules here:
# des_generic (3DES), ccm, chacha20poly1305 with chacha_generic and poly1305_generic (it asks for them by name),
# cmac, authencesn (ESN with a separate integrity algorithm). md5, sha1, sha256 and aes are built in.
MODULES = [
    "ipv6", "ip_gre", "ip6_gre", "esp4", "esp6", "xfrm_user",
    "drbg", "sha512_generic", "authenc", "authencesn", "hmac", "cmac", "cbc", "ctr", "gcm", "ghash_generic", "ccm",
    "des_generic", "chacha_generic", "poly1305_generic", "chacha20poly1305", "seqiv", "echainiv",
]
# Not loaded at boot (that would cost boot time): x_tables, loaded when iptables or a rule needs them.
ON_DEMAND = ["kernel/net/netfilter/x_tables.ko", "kernel/net/netfilter/xt_*.ko",
             "kernel/net/ipv4/netfilter/ip*.ko", "kernel/net/ipv6/netfilter/ip6*.ko"]
NOT_ON_DEMAND = {"xt_ipvs", "xt_set", "xt_osf", "xt_nfacct"}  # they drag in IPVS, ipset, nfnetlink
XTABLES = Path("/usr/sbin/xtables-legacy-multi")
UNUSED_IMAGE_S = 24 * 3600  # an image of other inputs (another checkout, an old version) goes after a day unused
HOST_USR = "/host-usr"  # where init mounts the host's /usr, read-only (guest/init.sh)
XTABLES_NAMES = ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"]
NFT_STUB = """#!/bin/sh
echo "nft: not on the uml DUT: Debian's user-mode-linux kernel has nf_tables without its ip, ip6 and inet \\
families (CONFIG_NF_TABLES_INET, _IPV4, _IPV6 off). Filter with iptables/ip6tables (legacy x_tables) here, \\
or use a host DUT (--dut host) on a kernel with GRE and ESP." >&2
exit 1
"""
BINARIES = [Path("/usr/sbin/ip")]
FILES = [Path("/etc/protocols")]
SETUP_HINT = "run ./setup.sh (it installs user-mode-linux, busybox-static, iptables and netbase, then runs `grelab dut prepare`)"


@dataclass(frozen=True)
class Image:
    """A prepared guest: the kernel to run and the initramfs to give it."""

    kernel: Path
    initramfs: Path


def kernel_version() -> str:
    if not KERNEL.exists():
        raise DutError(f"no user-mode-linux kernel at {KERNEL}: apt-get install user-mode-linux, or {SETUP_HINT}")
    out = subprocess.run([str(KERNEL), "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.strip().split()[-1]


def _modules(moddir: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(MODULES and everything they need, the ON_DEMAND ones and what they need beyond those), each as
    {path under moddir: [paths it needs]} (lines of modules.dep)."""
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, needs = line.partition(":")
        deps[path] = needs.split()
    by_name = {_name(p): p for p in deps}

    def visit(path: str, into: dict[str, list[str]], skip=()) -> None:
        if path not in into and path not in skip:
            into[path] = deps[path]
            for need in deps[path]:
                visit(need, into, skip)

    at_boot: dict[str, list[str]] = {}
    builtin = {_name(p) for p in (moddir / "modules.builtin").read_text().split()}
    for name in MODULES:
        if name in builtin:
            continue
        if name not in by_name:
            raise DutError(f"module {name} is not in {moddir}: the user-mode-linux package looks incomplete: "
                           f"apt-get install --reinstall user-mode-linux, or {SETUP_HINT}")
        visit(by_name[name], at_boot)
    on_demand: dict[str, list[str]] = {}
    for path in deps:
        if any(fnmatch.fnmatch(path, pattern) for pattern in ON_DEMAND) and _name(path) not in NOT_ON_DEMAND:
            visit(path, on_demand, skip=at_boot)
    return at_boot, on_demand


def _aliases(moddir: Path, modules) -> str:
    """The lines of modules.alias naming one of modules (paths): the kernel asks for a match by an alias
    (ipt_policy for xt_policy), and busybox's modprobe resolves it here. Only for the modules loaded on
    demand: init loads the others by name."""
    names = {_name(p) for p in modules}
    return "".join(line + "\n" for line in (moddir / "modules.alias").read_text().splitlines()
                   if line.startswith("alias ") and line.split()[-1] in names)


def _host_libraries() -> Path:
    """The host's folder of shared libraries that iptables uses, with its plugins (dlopen'ed, so `ldd`
    does not list them) in xtables/ below it."""
    libxtables = next(lib for lib in _libraries(XTABLES) if lib.name.startswith("libxtables."))
    folder = libxtables.resolve().parent
    if not any((folder / "xtables").glob("libxt_*.so")):
        raise DutError(f"iptables' plugins are missing in {folder / 'xtables'}: apt-get install iptables, or {SETUP_HINT}")
    return folder


def _on_host(path: Path) -> str:
    """Where the guest sees a file of the host's /usr (see HOST_USR)."""
    path = path.resolve()
    if not path.is_relative_to("/usr"):
        raise DutError(f"{path} is outside /usr, which is all the guest sees of the host")
    return f"{HOST_USR}/{path.relative_to('/usr')}"


def _name(path: str) -> str:
    return re.sub(r"\.ko(\..*)?$", "", path.rsplit("/", 1)[-1]).replace("-", "_")


def _libraries(binary: Path) -> list[Path]:
    """The shared objects `ldd` says a binary loads, the dynamic loader included."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    return [Path(p) for p in re.findall(r"(/\S+) \(0x", out)]


def _inputs() -> tuple[list[tuple[str, Path]], dict[str, str], list[tuple[str, Path]]]:
    """(path in the guest, host file) pairs to copy, {path in the guest: text} of the files made here,
    and (path in the guest, host file) pairs to link to through HOST_USR."""
    for need, package in ((BUSYBOX, "busybox-static"), (BINARIES[0], "iproute2"), (XTABLES, "iptables")):
        if not need.exists():
            raise DutError(f"{need} is missing: apt-get install {package}, or {SETUP_HINT}")
    version = kernel_version()
    moddir = MODULES_ROOT / version
    files = [("bin/busybox", BUSYBOX), ("init", GUEST_FILES / "init.sh"), ("etc/grelab-reset.sh", RESET_SCRIPT)]
    files += [(f"sbin/{b.name}", b.resolve()) for b in BINARIES]
    files += [(str(f).lstrip("/"), f) for f in FILES]
    libs = {lib for b in BINARIES for lib in _libraries(b)}
    files += [(str(lib).lstrip("/"), lib.resolve()) for lib in sorted(libs)]
    at_boot, on_demand = _modules(moddir)
    files += [(f"lib/modules/{version}/{path}", moddir / path) for path in at_boot]
    # On demand, from the host: iptables, and its libraries and plugins, in a folder the dynamic loader
    # searches after the archive's /lib/<triplet>, so ip's come from the archive and the rest from the
    # host. No `ldd` per plugin: prepare() runs at every boot and must stay a few stats.
    host_libraries = _host_libraries()
    links = [(f"sbin/{XTABLES.name}", XTABLES), (str(host_libraries).lstrip("/"), host_libraries)]
    links += [(f"lib/modules/{version}/{path}", moddir / path) for path in on_demand]
    # Busybox's modprobe loads them all, dependencies first, in one process: an exec per module costs
    # ~25 ms in the guest.
    modules = at_boot | on_demand
    generated = {f"lib/modules/{version}/modules.dep": "".join(f"{p}: {' '.join(n)}\n" for p, n in modules.items()),
                 f"lib/modules/{version}/modules.alias": _aliases(moddir, on_demand),
                 "etc/grelab-modules": " ".join(MODULES) + "\n",
                 "etc/grelab-boot-modules": " ".join(sorted(_name(p) for p in at_boot)) + "\n"}
    return files, generated, links


def prepare(cache: Path = CACHE) -> Image:
    """Build the initramfs unless the cache already holds one made from the same inputs; return the image.

    The cache key hashes every Debian input's path, size and mtime, and the content of this builder and
    the guest scripts, so a Debian upgrade or an edit here makes a new image, another checkout of the same
    code uses the same one, and an unchanged machine costs a few stats and one hash of the image: its size
    and sha256 are recorded at build time and checked before use, so a damaged image (truncated by a full
    disk, changed by hand) is rebuilt, or refused with the set-up hint when it cannot be."""
    files, generated, links = _inputs()
    h = hashlib.sha256()
    ours = {Path(__file__), GUEST_FILES / "init.sh", RESET_SCRIPT}  # by content: every checkout shares an image
    for guest_path, host_path in files + links + [("builder", Path(__file__))]:
        if host_path in ours:
            h.update(guest_path.encode() + hashlib.sha256(host_path.read_bytes()).digest())
        else:
            st = host_path.stat()
            h.update(f"{guest_path} {host_path} {st.st_size} {st.st_mtime_ns}\n".encode())
    h.update(repr(sorted(generated.items())).encode())
    target = cache / h.hexdigest()[:16] / "initramfs.cpio"
    damage = _damage(target) if target.exists() else None
    if not target.exists() or damage:
        try:
            _build(target, files, generated, links)
        except OSError as exc:
            if not damage:
                raise
            raise DutError(f"the cached guest image {target} is damaged ({damage}) and cannot be rebuilt here "
                           f"({exc.strerror or exc}): run `grelab dut prepare` as root, or {SETUP_HINT}") from None
    os.utime(target.parent)  # in use: another checkout's prepare keeps it
    for old in cache.iterdir():  # images of older inputs, unused for a day
        if old != target.parent and time.time() - old.stat().st_mtime > UNUSED_IMAGE_S:
            shutil.rmtree(old, ignore_errors=True)
    return Image(KERNEL, target)


def _record(image: Path) -> Path:
    return image.with_name(image.name + ".sha256")


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return f"{path.stat().st_size} {digest.hexdigest()}"


def _damage(image: Path) -> str | None:
    """What is wrong with a cached image (None when its size and sha256 are those recorded at build)."""
    try:
        recorded = _record(image).read_text().strip()
    except FileNotFoundError:
        return "no size and sha256 recorded for it"
    size = image.stat().st_size
    if recorded.split()[0] != str(size):
        return f"{size} bytes, {recorded.split()[0]} recorded at build"
    if _fingerprint(image) != recorded:
        return "its sha256 differs from the one recorded at build"
    return None


def _build(target: Path, files, generated, links) -> None:
    """Write the archive beside target, record its size and sha256, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")  # per writer
    record_tmp = tmp.with_name(tmp.name + ".sha256")
    try:
        with open(tmp, "wb") as out:
            _write_cpio(out, files, generated, links)
        record_tmp.write_text(_fingerprint(tmp) + "\n")
        os.replace(record_tmp, _record(target))  # the record first: an image is never there without its own
        os.replace(tmp, target)  # atomic: a concurrent prepare sees no image or a whole one
    finally:
        tmp.unlink(missing_ok=True)
        record_tmp.unlink(missing_ok=True)


def _write_cpio(out, files: list[tuple[str, Path]], generated: dict[str, str], links: list[tuple[str, Path]]) -> None:
    applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    archive = _Cpio(out)
    for mount_point in ("proc", "sys", "run", "tmp", "grelab", HOST_USR.lstrip("/")):
        archive.directory(mount_point)
    # Device nodes the kernel needs before anything mounts devtmpfs: init's stdio, and /dev/null.
    archive.node("dev/console", 0o020600, 5, 1)
    archive.node("dev/null", 0o020666, 1, 3)
    for guest_path, host_path in files:
        archive.file(guest_path, host_path.read_bytes(), 0o755)
    for guest_path, text in generated.items():
        archive.file(guest_path, text.encode(), 0o644)
    for guest_path, host_path in links:
        archive.symlink(guest_path, _on_host(host_path))
    for name in XTABLES_NAMES:  # one binary, which acts as the name it is called by
        archive.symlink(f"sbin/{name}", f"/sbin/{XTABLES.name}")
    archive.file("sbin/nft", NFT_STUB.encode(), 0o755)
    for applet in applets:  # busybox applets as symlinks, except where iproute2's real tools live
        path = applet.lstrip("/")
        if path not in {g for g, _ in files}:
            archive.symlink(path, "/bin/busybox")
    archive.trailer()


class _Cpio:
    """Writer for the cpio "newc" format the kernel unpacks (Documentation/driver-api/early-userspace)."""

    def __init__(self, out):
        self.out, self.ino, self.seen = out, 1, set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        parent = name.rpartition("/")[0]
        if parent and parent not in self.seen:  # the kernel creates no missing parents
            self.directory(parent)
        self.ino += 1
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        header = b"070701" + b"".join(b"%08x" % f for f in fields) + name.encode() + b"\0"
        self.out.write(header + b"\0" * (-len(header) % 4))
        self.out.write(data + b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, perm: int) -> None:
        self._entry(name, 0o100000 | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def node(self, name: str, mode: int, major: int, minor: int) -> None:
        self._entry(name, mode, rdev=(major, minor))

    def trailer(self) -> None:
        self._entry("TRAILER!!!", 0)
