"""The UML guest's root filesystem: an initramfs built from this machine's Debian packages, cached by input hash.

What goes in: busybox-static (shell and tools), iproute2's `ip` with the libraries `ldd` lists (busybox's own
`ip` has no xfrm), /etc/protocols (`proto gre`), and guest/init.sh as /init. The kernel (kernel.py) has GRE,
ESP, its crypto and both packet filters built in, so nothing else is needed; only for a kernel that has modules
(one of yours, `--kernel`) its modules folder goes in too, and the kernel loads what it asks for through
busybox's modprobe (modules.alias: `rtnl-link-gre`, `xfrm-type-2-50`, `crypto-gcm`...).

The packet filters' tools, iptables/ip6tables (legacy x_tables) and nft, and tc, are not in the archive, whose
size the boot pays for (unpacking), but symlinks into the host's /usr, which init mounts read-only at /host-usr (UML's
hostfs), with the host's library folder (where the dynamic loader looks after the archive's own).

The archive is written directly as cpio "newc" so no cpio tool is needed, and uncompressed because the
guest unpacks it faster than it would gunzip it.
"""
from __future__ import annotations

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
from grelab.dut.uml import kernel

BUSYBOX = Path("/bin/busybox")
CACHE = kernel.CACHE_ROOT / "uml"
GUEST_FILES = Path(__file__).parent / "guest"
RESET_SCRIPT = Path(__file__).parent.parent / "reset.sh"
XTABLES = Path("/usr/sbin/xtables-legacy-multi")
NFT = Path("/usr/sbin/nft")
UNUSED_IMAGE_S = 24 * 3600  # an image of other inputs (another checkout, an old version) goes after a day unused
HOST_USR = "/host-usr"  # where init mounts the host's /usr, read-only (guest/init.sh)
XTABLES_NAMES = ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"]
# The guest's `nft`, `tc` and iptables tools: the host's, after leaving a mark that tells the reset to take away
# what they made (reset.sh: a process only a case that used them pays for). xtables-legacy-multi takes the tool's name
# as its first argument.
NFT_WRAPPER = """#!/bin/sh
: > /run/grelab-nft-used
exec /sbin/nft.host "$@"
"""
TC = Path("/usr/sbin/tc")
TC_WRAPPER = """#!/bin/sh
: > /run/grelab-tc-used
exec /sbin/tc.host "$@"
"""
XTABLES_WRAPPER = f"""#!/bin/sh
: > /run/grelab-xtables-used
exec /sbin/{XTABLES.name} "${{0##*/}}" "$@"
"""
BINARIES = [Path("/usr/sbin/ip")]
FILES = [Path("/etc/protocols")]
SETUP_HINT = ("run ./setup.sh (it installs busybox-static, iptables, nftables and netbase, builds grelab's UML kernel, "
              "then runs `grelab dut prepare`)")


@dataclass(frozen=True)
class Image:
    """A prepared guest: the kernel to run and the initramfs to give it."""

    kernel: Path
    initramfs: Path
    uml: kernel.Kernel | None = None  # what grelab knows of that kernel (None: a bare path, e.g. in a test)


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


def _libraries(binary: Path) -> list[Path]:
    """The shared objects `ldd` says a binary loads, the dynamic loader included."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    return [Path(p) for p in re.findall(r"(/\S+) \(0x", out)]


def _inputs(uml: kernel.Kernel) -> tuple[list[tuple[str, Path]], dict[str, str], list[tuple[str, Path]]]:
    """(path in the guest, host file) pairs to copy, {path in the guest: text} of the files made here,
    and (path in the guest, host file) pairs to link to through HOST_USR."""
    for need, package in ((BUSYBOX, "busybox-static"), (BINARIES[0], "iproute2"), (XTABLES, "iptables"),
                          (NFT, "nftables"), (TC, "iproute2")):
        if not need.exists():
            raise DutError(f"{need} is missing: apt-get install {package}, or {SETUP_HINT}")
    files = [("bin/busybox", BUSYBOX), ("init", GUEST_FILES / "init.sh"), ("etc/grelab-reset.sh", RESET_SCRIPT)]
    files += [(f"sbin/{b.name}", b.resolve()) for b in BINARIES]
    files += [(str(f).lstrip("/"), f) for f in FILES]
    libs = {lib for b in BINARIES for lib in _libraries(b)}
    files += [(str(lib).lstrip("/"), lib.resolve()) for lib in sorted(libs)]
    # From the host: iptables and nft, with their libraries and plugins, in a folder the dynamic loader
    # searches after the archive's /lib/<triplet>, so ip's come from the archive and the rest from the
    # host. No `ldd` per plugin: prepare() runs at every boot and must stay a few stats.
    host_libraries = _host_libraries()
    links = [(f"sbin/{XTABLES.name}", XTABLES), ("sbin/nft.host", NFT), ("sbin/tc.host", TC),
             (str(host_libraries).lstrip("/"), host_libraries)]
    generated = {"sbin/nft": NFT_WRAPPER, "sbin/tc": TC_WRAPPER, "sbin/grelab-xtables": XTABLES_WRAPPER}
    if uml.modular and uml.modules is not None:  # a kernel of yours with modules: all of them, loaded on demand
        where = f"lib/modules/{uml.release}"
        if uml.modules.resolve().is_relative_to("/usr"):
            links.append((where, uml.modules))
        else:
            files += [(f"{where}/{f.relative_to(uml.modules)}", f) for f in sorted(uml.modules.rglob("*"))
                      if f.is_file() and (".ko" in f.name or f.name.startswith("modules."))]
    return files, generated, links


def prepare(uml: kernel.Kernel | None = None, cache: Path = CACHE) -> Image:
    """Build the initramfs unless the cache already holds one made from the same inputs; return the image.

    The cache key hashes every Debian input's path, size and mtime, and the content of this builder and
    the guest scripts (and, for a kernel with modules, its modules), so a Debian upgrade or an edit here makes
    a new image, another checkout of the same code uses the same one, and an unchanged machine costs a few stats and one hash of the image: its size
    and sha256 are recorded at build time and checked before use, so a damaged image (truncated by a full
    disk, changed by hand) is rebuilt, or refused with the set-up hint when it cannot be."""
    uml = uml or kernel.grelab_kernel()
    files, generated, links = _inputs(uml)
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
    return Image(uml.path, target, uml)


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
        archive.file(guest_path, text.encode(), 0o755 if text.startswith("#!") else 0o644)
    for guest_path, host_path in links:
        archive.symlink(guest_path, _on_host(host_path))
    for name in XTABLES_NAMES:  # one wrapper, which calls the binary with the name it is called by
        archive.symlink(f"sbin/{name}", "/sbin/grelab-xtables")
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
