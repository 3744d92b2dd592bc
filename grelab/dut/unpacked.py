"""Debian packages grelab runs but does not install: downloaded (`apt-get download`) and unpacked (`dpkg-deb -x`)
into grelab's cache, once.

Debian 12's libreswan conflicts with strongswan-libcharon, which grelab installs for strongSwan's charon, so its
pluto and whack run from the unpacked tree (a Daemon's `root`, grelab.dut.daemon), with the host's libraries: its
library dependencies are ordinary packages setup.sh installs. `grelab dut prepare` (run by setup.sh) unpacks them;
a case that needs one unpacks it on first use too. A second call finds the tree in the cache and only checks it.

    root = unpack(LIBRESWAN)        # /var/cache/grelab/libreswan, holding usr/libexec/ipsec/pluto
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from grelab.dut.base import DutError
from grelab.dut.uml.kernel import CACHE_ROOT


@dataclass(frozen=True)
class Package:
    name: str  # the Debian package
    programs: tuple[str, ...]  # what grelab runs from it, relative to the tree: checked there and for its libraries
    libraries: str  # the Debian packages holding its libraries, for the message when one is missing


LIBRESWAN = Package("libreswan", ("usr/libexec/ipsec/pluto", "usr/libexec/ipsec/whack", "usr/libexec/ipsec/addconn"),
                    "libnss3-tools libldns3 libunbound8 libevent-core-2.1-7 libevent-pthreads-2.1-7 libcurl3-nss "
                    "libcap-ng0 libaudit1 libldap-2.5-0 libpam0g")
VERSION_FILE = ".grelab-version"  # the unpacked package's version, as dpkg-deb read it from the .deb


def unpack(package: Package, cache: Path = CACHE_ROOT) -> Path:
    """The package's tree in the cache (cache/NAME), downloaded and unpacked if not there yet; its programs checked
    to be there and to find every library on this host. A failure: DutError naming what to do."""
    target = cache / package.name
    if not all((target / program).is_file() for program in package.programs):
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=f".{package.name}-") as work:
            deb = _download(package.name, Path(work))
            tree = Path(work) / "tree"
            _run(["dpkg-deb", "-x", str(deb), str(tree)], f"unpacking {deb.name}")
            version = _run(["dpkg-deb", "-f", str(deb), "Version"], f"reading {deb.name}'s version").strip()
            (tree / VERSION_FILE).write_text(version + "\n")
            missing = [p for p in package.programs if not (tree / p).is_file()]
            if missing:
                raise DutError(f"package {package.name} {version} has no {', '.join(missing)}")
            if all((target / program).is_file() for program in package.programs):
                pass  # another process (a pytest worker) unpacked it meanwhile: its tree stays, in use or not
            else:
                shutil.rmtree(target, ignore_errors=True)  # left by an earlier, broken unpack
                try:
                    os.rename(tree, target)
                except OSError:
                    if not all((target / program).is_file() for program in package.programs):
                        raise
    _check_libraries(package, target)
    return target


def version(package: Package, cache: Path = CACHE_ROOT) -> str | None:
    """The version unpacked in the cache, or None."""
    path = cache / package.name / VERSION_FILE
    return path.read_text().strip() if path.is_file() else None


def _download(name: str, folder: Path) -> Path:
    # As root, apt hands the download to its sandbox user, who cannot write a private temporary folder: no sandbox.
    _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", name], f"downloading Debian's {name}",
         cwd=folder, hint="the package lists may be missing: run apt-get update (setup.sh does)")
    debs = sorted(folder.glob(f"{name}_*.deb"))
    if len(debs) != 1:
        raise DutError(f"apt-get download {name} left {[d.name for d in folder.iterdir()]} in {folder}, not one .deb")
    return debs[0]


def _check_libraries(package: Package, tree: Path) -> None:
    for program in package.programs:
        said = _run(["ldd", str(tree / program)], f"listing {program}'s libraries")
        missing = [line.split()[0] for line in said.splitlines() if "not found" in line]
        if missing:
            raise DutError(f"{package.name}'s {program} lacks {', '.join(missing)} on this host: install "
                           f"{package.libraries} (setup.sh does)")


def _run(argv: list[str], what: str, cwd: Path | None = None, hint: str = "") -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DutError(f"{what}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise DutError(f"{what} failed ({' '.join(argv)}: {last[0]}){'; ' + hint if hint else ''}")
    return done.stdout
