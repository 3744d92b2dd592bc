"""The UML DUT's kernel: grelab's own build of a pinned Debian kernel source, or one you built (`--kernel`).

Why not Debian's user-mode-linux package: its 6.1 kernel (bookworm) and 6.12 (trixie) hand PTRACE_SETREGSET a
fixed-size XSAVE buffer, and a host whose CPU has AMX wants its whole, far larger XSAVE area: every guest
panics at its first process ("ptrace set fp regs failed, errno = 14"). Kernels after 6.12 ask the host for the
size at boot (`host_fp_size`, arch/x86/um/os-Linux/registers.c). Debian's newer UML packages need a newer glibc
than the machines have, so grelab builds its kernel itself, once, from Debian's `linux-source-*` package:

    apt-get download (a sources list of its own: the machine's apt set-up is not touched)
      -> make ARCH=um defconfig + kernel.config (everything built in: no modules to list) -> make linux
      -> the cache: /var/cache/grelab/kernel/<source version>-<fragment hash>/{linux, config, info.json}

The version is pinned, so goldens do not move when the mirror does; when the mirror no longer has it, the
newest of the same series is built and every place that names the kernel says so. A kernel given with
`--kernel PATH` (or GRELAB_KERNEL) is checked the same way: its configuration (`linux --showconfig`) must have
every feature of REQUIRED before any case runs.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from grelab.dut.base import DutError
from grelab.dut.uml.kernel_source import PINNED, download_source, unpack

CACHE_ROOT = Path(os.environ.get("GRELAB_CACHE", "/var/cache/grelab"))
KERNELS = CACHE_ROOT / "kernel"
FRAGMENT = Path(__file__).with_name("kernel.config")
ENV = "GRELAB_KERNEL"


# The build's tools (Debian packages); setup.sh installs them.
BUILD_TOOLS = {"make": "make", "gcc": "gcc", "flex": "flex", "bison": "bison", "bc": "bc", "xz": "xz-utils"}

# What the catalogue needs of a DUT kernel: (feature, the config options that build it). Each must be `y`, or `m`
# on a kernel whose modules grelab can put into the guest. kernel.config sets all of them.
REQUIRED = [
    ("IPv6", ("CONFIG_IPV6",)),
    ("GRE over IPv4 (ip_gre: gre, gretap)", ("CONFIG_NET_IPGRE_DEMUX", "CONFIG_NET_IPGRE")),
    ("GRE to multicast addresses", ("CONFIG_NET_IPGRE_BROADCAST",)),
    ("GRE over IPv6 (ip6_gre: ip6gre, ip6gretap)", ("CONFIG_IPV6_GRE",)),
    ("policy routing", ("CONFIG_IP_MULTIPLE_TABLES", "CONFIG_IPV6_MULTIPLE_TABLES")),
    ("xfrm netlink (ip xfrm)", ("CONFIG_XFRM_USER",)),
    ("xfrm statistics (/proc/net/xfrm_stat)", ("CONFIG_XFRM_STATISTICS",)),
    ("ESP for IPv4 (with NAT-T's UDP encapsulation)", ("CONFIG_INET_ESP",)),
    ("ESP for IPv6", ("CONFIG_INET6_ESP",)),
    ("AES-GCM and AES-GMAC", ("CONFIG_CRYPTO_AES", "CONFIG_CRYPTO_GCM")),
    ("AES-CCM", ("CONFIG_CRYPTO_CCM",)),
    ("ChaCha20-Poly1305", ("CONFIG_CRYPTO_CHACHA20POLY1305",)),
    ("AES-CBC, AES-CTR", ("CONFIG_CRYPTO_CBC", "CONFIG_CRYPTO_CTR", "CONFIG_CRYPTO_ECB")),
    ("3DES", ("CONFIG_CRYPTO_DES",)),
    ("the NULL cipher", ("CONFIG_CRYPTO_NULL",)),
    ("HMAC with MD5, SHA-1, SHA-256/384/512",
     ("CONFIG_CRYPTO_HMAC", "CONFIG_CRYPTO_MD5", "CONFIG_CRYPTO_SHA1", "CONFIG_CRYPTO_SHA256", "CONFIG_CRYPTO_SHA512")),
    ("AES-CMAC", ("CONFIG_CRYPTO_CMAC",)),
    ("ESP's authenc and ESN (authencesn)", ("CONFIG_CRYPTO_AUTHENC",)),
    ("bridge", ("CONFIG_BRIDGE",)),
    ("nftables for ip, ip6, inet with NAT and masquerade",
     ("CONFIG_NF_TABLES", "CONFIG_NF_TABLES_INET", "CONFIG_NF_TABLES_IPV4", "CONFIG_NF_TABLES_IPV6",
      "CONFIG_NFT_NAT", "CONFIG_NFT_MASQ")),
    ("legacy iptables and ip6tables (filter, mangle)",
     ("CONFIG_IP_NF_IPTABLES_LEGACY", "CONFIG_IP6_NF_IPTABLES_LEGACY", "CONFIG_IP_NF_FILTER", "CONFIG_IP_NF_MANGLE",
      "CONFIG_IP6_NF_FILTER", "CONFIG_IP6_NF_MANGLE")),
    ("iptables' TCPMSS, length and policy matches",
     ("CONFIG_NETFILTER_XT_TARGET_TCPMSS", "CONFIG_NETFILTER_XT_MATCH_LENGTH", "CONFIG_NETFILTER_XT_MATCH_POLICY")),
    ("netem", ("CONFIG_NET_SCH_NETEM",)),
    ("the guest's plumbing: hostfs, tap interfaces (vector), an initramfs",
     ("CONFIG_HOSTFS", "CONFIG_UML_NET_VECTOR", "CONFIG_BLK_DEV_INITRD")),
]


@dataclass(frozen=True)
class Kernel:
    """A UML kernel to boot: where it is, its release, its configuration, and where it comes from."""

    path: Path
    release: str
    config: dict[str, str]
    origin: str  # one line: grelab's build of which source, or the user's kernel
    modules: Path | None = None  # its modules' folder (lib/modules/<release>), for a kernel that has modules
    seccomp: bool = False  # it has UML's seccomp mode (`seccomp=on`: since 6.14)

    @property
    def modular(self) -> bool:
        return self.config.get("CONFIG_MODULES") == "y"

    def describe(self) -> str:
        """One line for run headers, reports and `grelab doctor`."""
        return f"UML {self.release}: {self.origin}"


def parse_config(text: str) -> dict[str, str]:
    """A .config's lines as {"CONFIG_X": "y"|"m"|"value"}; `# CONFIG_X is not set` becomes "n"."""
    config = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            name, _, value = line.partition("=")
            config[name] = value.strip('"')
        elif m := re.fullmatch(r"# (CONFIG_\w+) is not set", line):
            config[m.group(1)] = "n"
    return config


def read_config(path: Path) -> dict[str, str]:
    """A UML kernel's configuration, as it prints it (`linux --showconfig`: UML builds it in, always)."""
    try:
        out = subprocess.run([str(path), "--showconfig"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DutError(f"the UML kernel {path} cannot be run here ({exc}): give the path of a user-mode-linux "
                       "`linux` binary (grelab kernel build makes one)") from None
    config = parse_config(out.stdout)
    if "CONFIG_UML" not in config:
        raise DutError(f"{path} is not a user-mode-linux kernel: `{path} --showconfig` printed no CONFIG_UML "
                       "(build one with `grelab kernel build --source DIR`)")
    return config


def has_seccomp_mode(path: Path) -> bool:
    """Whether the UML kernel takes `seccomp=on` (its --help lists every option it knows)."""
    out = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=20).stdout
    return "seccomp=<on" in out


def release_of(path: Path) -> str:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20).stdout.split()
    if not out:
        raise DutError(f"{path} --version printed nothing: is it a user-mode-linux kernel?")
    return out[-1]


def missing(kernel: Kernel) -> list[str]:
    """The REQUIRED features the kernel lacks, each as "feature (CONFIG_X, ...)" naming the options that are off."""
    ok = {"y", "m"} if kernel.modular and kernel.modules is not None else {"y"}
    lacking = []
    for feature, options in REQUIRED:
        off = [o for o in options if kernel.config.get(o, "n") not in ok]
        if off:
            lacking.append(f"{feature} ({', '.join(off)})")
    return lacking


def check(kernel: Kernel) -> Kernel:
    """The kernel, or a DutError naming every required feature it lacks and how to get a kernel with them."""
    lacking = missing(kernel)
    if lacking:
        raise DutError(f"the UML kernel {kernel.path} ({kernel.release}) lacks what the catalogue needs: "
                       f"{'; '.join(lacking)}. Build one with grelab's configuration: grelab kernel build --source DIR")
    return kernel


def user_kernel(path: str | Path) -> Kernel:
    """A kernel the user built (`--kernel PATH`, GRELAB_KERNEL), checked for every REQUIRED feature."""
    path = Path(path).expanduser().resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise DutError(f"--kernel {path}: no executable file there: give the path of a user-mode-linux `linux` "
                       "binary (grelab kernel build --source DIR makes one)")
    config = read_config(path)
    release = release_of(path)
    modules = None
    if config.get("CONFIG_MODULES") == "y":  # make modules_install INSTALL_MOD_PATH=<its folder>, or Debian's layout
        modules = next((d for d in (path.parent / "lib/modules" / release, Path("/usr/lib/uml/modules") / release)
                        if (d / "modules.dep").is_file()), None)
    return check(Kernel(path, release, config, f"your kernel {path}", modules, has_seccomp_mode(path)))


# The cache: one folder per (source version, fragment hash), holding linux, config and info.json.

def fragment_hash(fragment: Path = FRAGMENT) -> str:
    return hashlib.sha256(fragment.read_bytes()).hexdigest()[:12]


def _entry(version: str, fragment: Path = FRAGMENT) -> Path:
    return KERNELS / f"{version.replace('~', '_')}-{fragment_hash(fragment)}"


def cached(fragment: Path = FRAGMENT) -> Kernel | None:
    """grelab's build of the pinned source, else of the nearest version built when the pin had left the mirror;
    None when neither is in the cache. A few stats and one small read: no process."""
    candidates = [_entry(PINNED.version, fragment)]
    if KERNELS.is_dir():
        series = sorted((d for d in KERNELS.glob(f"{PINNED.series}.*-{fragment_hash(fragment)}")
                         if d not in candidates), key=lambda d: d.stat().st_mtime, reverse=True)
        candidates += series
    for entry in candidates:
        try:
            info = json.loads((entry / "info.json").read_text())
            config = parse_config((entry / "config").read_text())
        except (OSError, ValueError):
            continue
        if (entry / "linux").is_file() and info.get("size") == (entry / "linux").stat().st_size:
            seccomp = info["seccomp"] if "seccomp" in info else has_seccomp_mode(entry / "linux")  # an older entry
            return Kernel(entry / "linux", info["release"], config, info["origin"], seccomp=seccomp)
    return None


def grelab_kernel() -> Kernel:
    """The kernel the uml DUT boots: GRELAB_KERNEL's when set, else grelab's build (raises DutError saying how
    to make it when it is not built)."""
    if os.environ.get(ENV):
        return user_kernel(os.environ[ENV])
    kernel = cached()
    if kernel is None:
        raise DutError(f"grelab's UML kernel ({PINNED.package} {PINNED.version}) is not built yet: run ./setup.sh, "
                       "or `grelab kernel build` (about 6 minutes on 2 cores, once)")
    return kernel


# Building.

def tools_missing() -> list[str]:
    return sorted({pkg for tool, pkg in BUILD_TOOLS.items() if shutil.which(tool) is None})


@dataclass
class Built:
    linux: Path
    config: dict[str, str]
    release: str
    seconds: float


REPRODUCIBLE_DATE = "Thu Jan  1 00:00:00 UTC 2026"
# Lines `make` prints for one compiled or linked object: the progress bar counts them against the number the
# pinned source's build printed (make cannot say beforehand how many it will run).
STEP_RE = re.compile(r"^\s+(CC|AS|LD|AR)\s")
PINNED_STEPS = 1655


def build(source: Path, out: Path, fragment: Path = FRAGMENT, jobs: int | None = None, steps: int = PINNED_STEPS) -> Built:
    """make ARCH=um defconfig + fragment, then `make linux`, in the build folder `out` (kept: a second build of
    the same tree after a patch compiles only what changed). Every option the fragment sets is checked in the
    final .config: Kconfig drops one whose dependencies are missing without a word."""
    lacking = tools_missing()
    if lacking:
        raise DutError(f"building a kernel needs {', '.join(lacking)}: apt-get install {' '.join(lacking)} (./setup.sh does)")
    if not (source / "arch/um").is_dir():
        raise DutError(f"--source {source}: not a Linux kernel tree (no arch/um)")
    from grelab.progress import progress
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    # Reproducible: no date, user or host of this build in the binary (Documentation/kbuild/reproducible-builds).
    make = ["make", "-C", str(source), f"O={out}", "ARCH=um", f"KBUILD_BUILD_TIMESTAMP={REPRODUCIBLE_DATE}",
            "KBUILD_BUILD_USER=grelab", "KBUILD_BUILD_HOST=grelab"]
    log = out / "grelab-build.log"
    with open(log, "w") as log_file:
        def run(*args: str) -> None:
            if subprocess.run([*make, *args], stdout=log_file, stderr=subprocess.STDOUT).returncode:
                raise DutError(f"make {' '.join(args)} failed in {source}: see {log} (last lines: {_tail(log)})")
        marker = out / ".grelab-fragment"  # the fragment this folder's .config was made with
        if not (out / ".config").exists() or not marker.exists() or marker.read_text() != fragment.read_text():
            run("defconfig")
            merged = subprocess.run([str(source / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(out),
                                     str(out / ".config"), str(fragment)], stdout=log_file, stderr=subprocess.STDOUT)
            if merged.returncode:
                raise DutError(f"merging {fragment} into {source}'s defconfig failed: see {log}")
            run("olddefconfig")
            marker.write_text(fragment.read_text())
        config = parse_config((out / ".config").read_text())
        dropped = not_applied(parse_config(fragment.read_text()), config)
        if dropped:
            raise DutError(f"{source}'s Kconfig did not take these lines of {fragment}: {', '.join(dropped)} "
                           "(an option renamed or gone in this tree, or one whose dependencies are off)")
        with progress("building the UML kernel", total=steps, unit="objects") as advance:
            proc = subprocess.Popen([*make, f"-j{jobs or os.cpu_count() or 1}", "linux"], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                log_file.write(line)
                if STEP_RE.match(line):
                    advance(1)
            if proc.wait():
                log_file.flush()
                raise DutError(f"make linux failed in {source}: see {log} (last lines: {_tail(log)})")
    release = (out / "include/config/kernel.release").read_text().strip()
    return Built(out / "linux", config, release, time.perf_counter() - start)


def not_applied(wanted: dict[str, str], config: dict[str, str]) -> list[str]:
    """The fragment's settings the final configuration does not have, as "CONFIG_X=v (is w)"."""
    return [f"{name}={value} (is {config.get(name, 'absent')})" for name, value in wanted.items()
            if config.get(name, "n") != value]


def _tail(log: Path, lines: int = 3) -> str:
    return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])


def sizes_xsave_from_host(source: Path) -> bool:
    """Whether a kernel tree's UML asks the host for its XSAVE size at boot (arch_init_registers setting
    host_fp_size from PTRACE_GETREGSET's answer), as kernels after 6.12 do; older ones pass a fixed size and
    panic on hosts with AMX."""
    registers = source / "arch/x86/um/os-Linux/registers.c"
    text = registers.read_text(errors="replace") if registers.is_file() else ""
    return bool(re.search(r"host_fp_size\s*=\s*iov\.iov_len", text))


def ensure(fragment: Path = FRAGMENT) -> Kernel:
    """grelab's kernel from the cache, or downloaded, built and cached now (once: ~6 minutes on 2 cores). One
    builder at a time (a lock in the cache): a second waits, then finds the first one's kernel."""
    kernel = cached(fragment)
    if kernel is not None:
        return kernel
    KERNELS.mkdir(parents=True, exist_ok=True)
    with open(KERNELS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kernel = cached(fragment)
        if kernel is not None:
            return kernel
        for left in KERNELS.glob("build-*"):  # of a build that was killed: no other builder holds the lock
            shutil.rmtree(left, ignore_errors=True)
        return _download_and_build(fragment)


def _download_and_build(fragment: Path) -> Kernel:
    start = time.perf_counter()
    work = KERNELS / "build-work"  # one name every time (the builder holds the lock): no path of its differs
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        from grelab.progress import status
        with status(f"downloading and unpacking {PINNED.package}"):
            tarball, version, note = download_source(work)
            tree = unpack(tarball, work)
        if not sizes_xsave_from_host(tree):
            raise DutError(f"{PINNED.package} {version} does not size UML's XSAVE buffer from the host: its guests "
                           "would panic on AMX CPUs; pin a newer source (grelab/dut/uml/kernel_source.py PINNED)")
        built = build(tree, work / "build", fragment)
        entry = _entry(version, fragment)
        staging = work / "entry"
        staging.mkdir()
        shutil.copy2(built.linux, staging / "linux")
        shutil.copy2(work / "build/.config", staging / "config")
        origin = f"grelab's build of Debian's {PINNED.package} {version}" + (f" ({note})" if note else "")
        info = {"release": built.release, "source": PINNED.package, "version": version, "pinned": PINNED.version,
                "note": note, "origin": origin, "fragment": fragment_hash(fragment), "xsave_from_host": True,
                "seccomp": has_seccomp_mode(staging / "linux"),
                "build_s": round(built.seconds, 1), "total_s": round(time.perf_counter() - start, 1),
                "size": (staging / "linux").stat().st_size}
        (staging / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(staging, entry)  # whole or not at all: a build that died leaves only its work folder
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cached(fragment)


def info(kernel: Kernel) -> dict:
    """What grelab recorded when it built this kernel (empty for a kernel of yours)."""
    try:
        return json.loads((kernel.path.parent / "info.json").read_text())
    except (OSError, ValueError):
        return {}
