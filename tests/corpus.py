"""The test corpus of captures no one here wrote (tests/data/corpus/README.md lists each file, where it comes from
and its licence), laid into tests/data/corpus/<project>/ by ./setup.sh:

    .venv/bin/python tests/corpus.py [--shared DIR]

A file is taken from where the README's `via` column says: `debian:PACKAGE` from that Debian source package (apt's
own client, with a sources list of grelab's: the machine's apt set-up is untouched; downloads cached in
/var/cache/grelab/corpus), `shared` from the project's shared folder (CI lays a copy of it beside the clone:
../shared/corpus/<project>/<file>), as nothing fetched from elsewhere is committed. Each file is checked against
the README's sha256. Idempotent: files already here and right are left alone.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
README = CORPUS / "README.md"
SHARED = ROOT.parent / "shared" / "corpus"
CACHE = Path("/var/cache/grelab/corpus")
SUITE = "bookworm"  # Debian 12's source packages: tcpdump 4.99.3, wireshark 4.0.x
# (Debian source package, the folder its upstream tarball keeps the captures in)
DEBIAN = {"tcpdump": "tests", "wireshark": "test/captures"}


@dataclass(frozen=True)
class Entry:
    """One row of the README's table."""
    project: str
    name: str
    via: str  # "debian:PACKAGE" or "shared"
    sha256: str

    @property
    def path(self) -> Path:
        return CORPUS / self.project / self.name


def manifest(readme: Path = README) -> list[Entry]:
    """The README's table rows: | project | file | what it holds | upstream | licence | via | sha256 |."""
    rows = []
    for line in readme.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"[0-9a-f]{64}", cells[6]):
            rows.append(Entry(cells[0], cells[1], cells[5], cells[6]))
    return rows


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def present(entry: Entry) -> bool:
    return entry.path.is_file() and sha256(entry.path) == entry.sha256


def lay(entries: list[Entry], shared: Path = SHARED) -> list[str]:
    """Put every entry in place; returns what could not be (one line each)."""
    missing = [e for e in entries if not present(e)]
    problems = []
    for package in sorted({e.via.split(":", 1)[1] for e in missing if e.via.startswith("debian:")}):
        wanted = [e for e in missing if e.via == f"debian:{package}"]
        try:
            tarball = _source_tarball(package)
        except RuntimeError as exc:
            problems.append(f"{package}: {exc}")
            continue
        problems += _extract(tarball, DEBIAN[package], wanted)
    for e in (e for e in missing if e.via == "shared"):
        source = shared / e.project / e.name
        if not source.is_file():
            problems.append(f"{e.project}/{e.name}: not in {shared} (the shared corpus is not laid there)")
            continue
        _put(e, source.read_bytes(), problems)
    return problems


def _put(entry: Entry, data: bytes, problems: list[str]) -> None:
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        problems.append(f"{entry.project}/{entry.name}: sha256 differs from the README's")
        return
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    entry.path.write_bytes(data)


def _extract(tarball: Path, folder: str, wanted: list[Entry]) -> list[str]:
    problems, names = [], {e.name: e for e in wanted}
    with tarfile.open(tarball) as tar:
        for member in tar:  # the tarball's top folder is named by the version: match below it
            parts = member.name.split("/", 1)
            if len(parts) == 2 and member.isfile() and parts[1].startswith(folder + "/"):
                entry = names.pop(parts[1][len(folder) + 1:], None)
                if entry is not None:
                    _put(entry, tar.extractfile(member).read(), problems)
            if not names:
                break
    return problems + [f"{e.project}/{e.name}: not in {tarball.name}" for e in names.values()]


def _source_tarball(package: str) -> Path:
    """Debian's upstream tarball of `package` (the suite's newest version), downloaded once into the cache."""
    cached = sorted(CACHE.glob(f"{package}_*.orig.tar.*"))
    if cached:
        return cached[-1]
    from grelab.dut.uml.kernel_source import apt_options
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        work = Path(work)
        options = apt_options(work, SUITE, kind="deb-src")
        for step in (["update"], ["source", "--download-only", package]):
            done = subprocess.run(["apt-get", *options, *step], cwd=work, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"apt-get {' '.join(step)}: {done.stderr.strip()[-300:]}")
        tarball = next(work.glob(f"{package}_*.orig.tar.*"))
        return tarball.rename(CACHE / tarball.name)


def main(argv: list[str]) -> int:
    shared = Path(argv[argv.index("--shared") + 1]) if "--shared" in argv else SHARED
    entries = manifest()
    problems = lay(entries, shared)
    here = sum(present(e) for e in entries)
    print(f"corpus: {here} of {len(entries)} files in {CORPUS.relative_to(ROOT)}")
    for line in problems:
        print(f"corpus: {line}")
    # only a Debian file that cannot be had is an error: the shared ones depend on what the shared folder holds
    return 1 if any(not present(e) for e in entries if e.via.startswith("debian:")) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
