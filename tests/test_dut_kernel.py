"""grelab's UML kernel: built from Debian's pinned source with everything the catalogue needs built in, found in
the cache at once, and one that sizes the guest's XSAVE buffer from the host (Debian's 6.1 and 6.12 UML pass a
fixed size and panic on CPUs with AMX). A kernel that cannot run stops a run before its first case, in one line."""
import html
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grelab.dut.base import DutError
from grelab.dut.uml import initramfs, kernel, kernel_source
from grelab.dut.uml.guest import Uml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def xsave_size(tmp_path_factory) -> Path:
    """tests/data/xsave_size.c, built statically (the guest has no C library of its own)."""
    program = tmp_path_factory.mktemp("xsave") / "xsave_size"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(program), str(ROOT / "tests/data/xsave_size.c")], check=True)
    return program


def test_the_guest_kernel_sizes_its_xsave_buffer_from_the_host(xsave_size):
    """The guest's signal frames carry exactly the XSAVE area the host's ptrace hands a tracer: the size a UML
    kernel must pass back to PTRACE_SETREGSET, which on an AMX CPU is ~11 KB and panics a fixed-size kernel."""
    host = subprocess.run([str(xsave_size), "ptrace"], capture_output=True, text=True, check=True).stdout.split()
    assert host[0] == "ptrace" and int(host[1]) >= 512, host
    uml = kernel.grelab_kernel()
    with Uml(["wan"], name="xsave") as guest:
        shutil.copy(xsave_size, guest.share / "xsave_size")
        said = guest.check("/grelab/xsave_size sigframe").split()
    assert said == ["sigframe", host[1]], f"guest {said}, host ptrace {host}"
    # and the code that does it is in the binary grelab boots: the size asked of the host at boot
    symbols = subprocess.run(["nm", str(uml.path)], capture_output=True, text=True, check=True).stdout
    assert " host_fp_size\n" in symbols
    assert kernel.info(uml)["xsave_from_host"] is True


def test_grelab_kernel_has_everything_built_in_and_no_modules():
    uml = kernel.grelab_kernel()
    assert kernel.missing(uml) == []
    assert uml.config["CONFIG_MODULES"] == "n" and not uml.modular
    assert kernel.not_applied(kernel.parse_config(kernel.FRAGMENT.read_text()), uml.config) == []
    built = kernel.info(uml)
    assert built["source"] == kernel.PINNED.package and built["version"] == kernel.PINNED.version
    assert uml.release == "7.3.4" and "linux-source-7.3 7.3.4-1~bpo13+1" in uml.describe()


def test_every_required_feature_is_in_grelab_configuration():
    fragment = kernel.parse_config(kernel.FRAGMENT.read_text())
    for feature, options in kernel.REQUIRED:
        for option in options:
            assert fragment.get(option) == "y", f"{feature}: {option}"


def test_the_built_kernel_is_found_in_the_cache_at_once():
    start = time.perf_counter()
    found = kernel.cached()
    assert found is not None and time.perf_counter() - start < 1.0
    assert found.path.stat().st_size > 1_000_000 and found.path.parent.parent == kernel.KERNELS


def test_a_kernel_lacking_a_feature_is_refused_naming_it():
    uml = kernel.grelab_kernel()
    config = {**uml.config, "CONFIG_INET6_ESP": "n"}
    del config["CONFIG_NET_SCH_NETEM"]
    with pytest.raises(DutError, match=r"lacks what the catalogue needs: ESP for IPv6 \(CONFIG_INET6_ESP\); "
                                       r"netem \(CONFIG_NET_SCH_NETEM\)\. Build one .*grelab kernel build --source"):
        kernel.check(kernel.Kernel(uml.path, uml.release, config, "a test's"))


def test_something_that_is_not_a_uml_kernel_is_refused():
    with pytest.raises(DutError, match="/bin/true is not a user-mode-linux kernel|true is not a user-mode-linux"):
        kernel.user_kernel("/bin/true")
    with pytest.raises(DutError, match="no executable file there"):
        kernel.user_kernel("/nonexistent/linux")


def test_the_pin_or_the_newest_of_its_series():
    assert kernel_source.choose_version(["7.3.6-1~bpo13+1", kernel.PINNED.version]) == (kernel.PINNED.version, "")
    version, note = kernel_source.choose_version(["7.3.6-1~bpo13+1", "7.3.5-1~bpo13+1"])
    assert version == "7.3.6-1~bpo13+1" and f"pinned {kernel.PINNED.version} has left the mirror" in note


@pytest.mark.parametrize("trouble", ["panics", "lacks-esp6"])
def test_a_kernel_that_cannot_run_here_stops_the_run_before_the_first_case(tmp_path, trouble):
    """What an AMX machine does to Debian's 6.1 UML, played by a stand-in kernel whose configuration is grelab's and
    whose boot prints the panic; and a kernel without ESP for IPv6. The run ends before any case, with one line
    naming the cause and the remedy."""
    text = kernel.grelab_kernel().path.parent.joinpath("config").read_text()
    if trouble == "lacks-esp6":
        text = text.replace("CONFIG_INET6_ESP=y", "# CONFIG_INET6_ESP is not set")
    config = tmp_path / "config"
    config.write_text(text)
    stand_in = tmp_path / "linux"
    stand_in.write_text(f"""#!/bin/sh
case "$1" in
  --showconfig) cat {config}; exit 0 ;;
  --version) echo 6.1.176; exit 0 ;;
  --help) exit 0 ;;
esac
echo "userspace - ptrace set fp regs failed, errno = 14"
echo "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b"
exit 1
""")
    stand_in.chmod(0o755)
    run = subprocess.run([sys.executable, "-m", "pytest", "scenarios/two_offices.py", "--kernel", str(stand_in),
                          "-p", "no:cacheprovider", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "GRELAB_PROGRESS": "0"})
    said = run.stdout + run.stderr
    assert run.returncode not in (0, 1), said  # not a test result: a usage error
    assert not re.search(r"\d+ (passed|failed|error)", said), said  # no case ran
    if trouble == "panics":
        assert said.count("set fp regs failed") == 1, said
        assert "cannot run on this CPU" in said and "use grelab's own kernel" in said, said
    else:
        assert said.count("ESP for IPv6 (CONFIG_INET6_ESP)") == 1, said
        assert "grelab kernel build --source DIR" in said, said


def test_a_run_names_the_dut_kernel_in_its_header_and_report(tmp_path):
    """`grelab run` says which kernel ran before anything else, and the report says it again."""
    from grelab.dut.host import probe
    run = subprocess.run([sys.executable, "-m", "grelab.cli", "run", "two_offices", "-k", "echo and not esp",
                          "--report", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "GRELAB_PROGRESS": "0"})
    assert run.returncode == 0, run.stdout + run.stderr
    first = run.stdout.splitlines()[0]
    if probe().usable:
        assert first.startswith("grelab run: DUT host, kernel the host's ")
    else:
        assert first == f"grelab run: DUT uml, kernel {kernel.grelab_kernel().describe()}"
        page = html.unescape((tmp_path / "index.html").read_text())
        assert f"DUT: uml, kernel {kernel.grelab_kernel().describe()}</p>" in page


def test_the_boot_check_boots_once_per_kernel_image_and_cpu(tmp_path, monkeypatch):
    """What `grelab doctor` and every run rely on: a guest booted here before they say the DUT works; then
    remembered, so the next run does not boot one more."""
    from grelab.dut import select
    image = initramfs.prepare()
    copy = tmp_path / "initramfs.cpio"  # an image of its own: no stamp of an earlier check beside it
    shutil.copy(image.initramfs, copy)
    image = initramfs.Image(image.kernel, copy, image.uml)
    booted = []
    real = Uml.__init__
    monkeypatch.setattr(Uml, "__init__", lambda self, *a, **k: (booted.append(1), real(self, *a, **k))[1])
    select.boot_check(image)
    select.boot_check(image)
    assert booted == [1] and list(tmp_path.glob("booted-*"))


def test_the_source_comes_from_the_archive_apt_uses(tmp_path):
    """No archive is named in grelab: the kernel source comes from where this machine's apt goes (deb822 or one-line)."""
    (tmp_path / "debian.sources").write_text("Types: deb\nURIs: http://security.example/debian-security\n"
                                             "Suites: bookworm-security\n\nTypes: deb\nURIs: http://archive.example/debian/\n"
                                             "Suites: bookworm bookworm-updates\nComponents: main\n")
    assert kernel_source.mirror([tmp_path]) == "http://archive.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# a comment\ndeb [arch=amd64] http://other.example/debian bookworm main\n")
    assert kernel_source.mirror([one_line]) == "http://other.example/debian"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DutError, match="no Debian archive in this machine's apt sources"):
        kernel_source.mirror([empty])
