"""Where grelab's UML kernel comes from: Debian's `linux-source-*` package at a pinned version, fetched with
apt-get from the archive this machine's apt uses, through a sources list and package lists of grelab's own (the
machine's apt set-up is not touched), and unpacked. grelab.dut.uml.kernel builds it."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from grelab.dut.base import DutError


@dataclass(frozen=True)
class DebianSource:
    """A Debian kernel source package: its name, the version grelab pins and the suite that has it."""

    package: str
    version: str
    suite: str

    @property
    def series(self) -> str:
        return self.package.removeprefix("linux-source-")


# 7.3 sizes the XSAVE buffer from the host; trixie-backports is on the same mirror as bookworm.
PINNED = DebianSource("linux-source-7.3", "7.3.4-1~bpo13+1", "trixie-backports")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


def mirror(sources=APT_SOURCES) -> str:
    """The Debian archive this machine's apt uses (its first source of a suite that is not -security): the other
    suite is fetched from the same place."""
    texts = []
    for where in sources:
        files = sorted(where.glob("*.sources")) + sorted(where.glob("*.list")) if where.is_dir() else [where]
        texts += [f.read_text(errors="replace") for f in files if f.is_file()]
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):  # deb822: URIs: and Suites: in one stanza
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and not suites.group(1).split()[0].endswith("-security"):
                return uris.group(1).rstrip("/")
        for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):  # one-line style
            if not m.group(2).endswith("-security"):
                return m.group(1).rstrip("/")
    raise DutError("no Debian archive in this machine's apt sources (/etc/apt/sources.list, sources.list.d): "
                   "grelab fetches the kernel source from the archive apt uses")


def apt_options(workdir: Path, suite: str, kind: str = "deb") -> list[str]:
    """apt-get's options for a sources list (of binary packages, or kind="deb-src" of source packages) and package
    lists of grelab's own, under workdir: the machine's apt set-up is untouched."""
    (workdir / "lists/partial").mkdir(parents=True, exist_ok=True)
    (workdir / "archives/partial").mkdir(parents=True, exist_ok=True)
    (workdir / "sources.list").write_text(f"{kind} {mirror()} {suite} main\n")
    return ["-o", f"Dir::Etc::sourcelist={workdir / 'sources.list'}", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={workdir / 'lists'}", "-o", f"Dir::Cache={workdir}",
            "-o", "APT::Sandbox::User=root", "-q"]


def download_source(workdir: Path, source: DebianSource = PINNED) -> tuple[Path, str, str]:
    """(the source tarball inside the downloaded .deb, the version fetched, a note when it is not the pinned one)."""
    options = apt_options(workdir, source.suite)
    update = subprocess.run(["apt-get", *options, "update"], capture_output=True, text=True)
    if update.returncode:
        raise DutError(f"cannot read {source.suite}'s package list from {mirror()}: {update.stderr.strip()[-300:]}")
    policy = subprocess.run(["apt-cache", *options, "madison", source.package], capture_output=True, text=True).stdout
    versions = [line.split("|")[1].strip() for line in policy.splitlines() if "|" in line]
    if not versions:
        raise DutError(f"{source.suite} has no {source.package} any more: grelab's pinned kernel source "
                       f"(grelab/dut/uml/kernel_source.py PINNED) needs a new pin")
    version, note = choose_version(versions, source)
    got = subprocess.run(["apt-get", *options, "download", f"{source.package}={version}"], cwd=workdir,
                         capture_output=True, text=True)
    if got.returncode:
        raise DutError(f"cannot download {source.package} {version}: {got.stderr.strip()[-300:]}")
    deb = next(workdir.glob(f"{source.package}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(workdir / "deb")], check=True)
    deb.unlink()
    tarball = next((workdir / "deb/usr/src").glob("linux-source-*.tar.xz"))
    return tarball, version, note


def choose_version(versions: list[str], source: DebianSource = PINNED) -> tuple[str, str]:
    """(the version to build, a note when it is not the pinned one) from the versions the mirror has of the
    package (newest first, as apt-cache madison lists them): the pin, else the newest of the same series."""
    if source.version in versions:
        return source.version, ""
    return versions[0], f"pinned {source.version} has left the mirror: built {versions[0]}, the newest {source.package}"


def unpack(tarball: Path, into: Path) -> Path:
    """The kernel tree inside the tarball, unpacked into `into`."""
    subprocess.run(["tar", "-xJf", str(tarball), "-C", str(into)], check=True)
    tarball.unlink()
    return next(p for p in into.iterdir() if p.is_dir() and (p / "Makefile").is_file())
