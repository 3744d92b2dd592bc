"""Real daemons in a DUT: plan items (grelab.dut.plan.Daemon) rendered to shell, waiting for what they
negotiate, and reading the SAs they installed back into grelab SAs.

    plan = Plan(daemons=[Daemon("zebra", ["/usr/lib/frr/zebra", "-f", "{dir}/zebra.conf", "-z", "{dir}/zserv.api", ...],
                                config_files={"zebra.conf": text}), ...])
    dut.apply(plan)                                       # started in the same round trip as the rest
    took = wait_until(dut, "vtysh ... | grep -q Full", timeout=5, what="OSPF adjacency")
    sas = read_sas(dut)                                   # `ip xfrm state` -> [grelab SA, ...]

The UML guest runs a daemon from the host's /usr (hostfs at /host-usr) through the host's dynamic loader,
with the host's library folder: nothing of the daemon goes into the initramfs. Its files live in
/tmp/grelab-daemons/NAME (the guest's tmpfs: control sockets cannot live on hostfs), written by the shell's
own printf; init's shell keeps the pids ($GRELAB_DAEMON_PIDS) and its reset (reset.sh) kills them before
anything else, so no daemon outlives its case. On the host DUT the same daemon runs in the DUT's namespace,
with a private /run (a pid file such as charon's would otherwise be shared by every DUT).
"""
from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from grelab.craft.esp import SA
from grelab.craft.keys import parse_xfrm_state
from grelab.errors import InputError

GUEST_DIR = "/tmp/grelab-daemons"
HOST_USR = "/host-usr"
HOST_ROOT = "/host-root"  # where the guest mounts a daemon's root (an unpacked package): /host-root/var/cache/...
LOADER = Path("/lib64/ld-linux-x86-64.so.2")


OCTAL = [f"\\{b:03o}" for b in range(256)]
DAEMON_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
CONFIG_PATH_RE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


@dataclass(frozen=True)
class Daemon:
    """A real daemon the DUT runs for the case (BIRD, charon, ...), stopped by the DUT's reset.

    argv[0] is the program's path on a Debian system (/usr/lib/frr/ospfd); "{dir}" in any word of argv or env,
    or in a config file's text, becomes the daemon's own folder in the DUT, where config_files ({path relative to it: text}) are written
    first and its output goes to `log`. library_paths: folders under /usr its plugins or libraries are
    found in (/usr/lib/ipsec). after: a path ("{dir}/../zebra/zserv.api") the daemon waits for, at most 10 s,
    before it starts: the socket of a daemon it needs, which it would otherwise retry only seconds later (FRR's
    ospfd: 10 s). root: a host folder holding the program's package unpacked, not installed (grelab.dut.unpacked:
    libreswan's pluto), where argv[0] and library_paths are found; the host's libraries still serve it. A config
    file's text may be bytes (an NSS database), written as they are. The UML guest runs it from the host's /usr (or
    root) through the host's loader, the host DUT in its namespace (grelab.dut.daemon renders both)."""

    name: str
    argv: tuple[str, ...]
    config_files: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    library_paths: tuple[str, ...] = ()
    after: str = ""
    oneshot: bool = False  # a command that does its job and exits 0 (swanctl --load-all), not a daemon that stays
    root: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not DAEMON_NAME_RE.fullmatch(self.name):
            raise InputError("daemon name", self.name, "1-32 of a-z, 0-9, '_', '-', starting with a letter")
        argv = tuple(self.argv)
        if not argv or not all(isinstance(w, str) for w in argv) or not argv[0].startswith("/usr/"):
            raise InputError(f"daemon {self.name} argv", self.argv, "words, the first a program's path under /usr")
        object.__setattr__(self, "argv", argv)
        files = self.config_files.items() if isinstance(self.config_files, dict) else self.config_files
        files = tuple((str(k), v if isinstance(v, bytes) else str(v)) for k, v in files)
        for path, _ in files:
            if not CONFIG_PATH_RE.fullmatch(path) or ".." in path.split("/"):
                raise InputError(f"daemon {self.name} config file", path, "a relative path such as ospfd.conf")
        object.__setattr__(self, "config_files", files)
        env = self.env.items() if isinstance(self.env, dict) else self.env
        env = tuple((str(k), str(v)) for k, v in env)
        for key, _ in env:
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
                raise InputError(f"daemon {self.name} env", key, "an environment variable name")
        object.__setattr__(self, "env", env)
        paths = tuple(self.library_paths)
        for path in paths:
            if not path.startswith("/usr/") or ".." in path.split("/"):
                raise InputError(f"daemon {self.name} library path", path, "a folder under /usr")
        object.__setattr__(self, "library_paths", paths)
        if not isinstance(self.after, str) or self.after and not re.fullmatch(r"[A-Za-z0-9_.{}/-]+", self.after):
            raise InputError(f"daemon {self.name} after", self.after, "a path such as {dir}/../zebra/zserv.api")
        if not isinstance(self.oneshot, bool):
            raise InputError(f"daemon {self.name} oneshot", self.oneshot, "True or False")
        if not isinstance(self.root, str) or self.root and not (
                re.fullmatch(r"(/[A-Za-z0-9_.+-]+)+", self.root) and ".." not in self.root.split("/")):
            raise InputError(f"daemon {self.name} root", self.root, "a host folder such as /var/cache/grelab/libreswan")


def _host_loader() -> tuple[str, str]:
    """(the loader's path under /usr, its library folder under /usr) on this host."""
    loader = LOADER.resolve()
    return str(loader), str(loader.parent)


def _words(daemon: Daemon, folder: str) -> tuple[list[str], list[tuple[str, str]]]:
    argv = [w.replace("{dir}", folder) for w in daemon.argv]
    env = [(k, v.replace("{dir}", folder)) for k, v in daemon.env]
    return argv, env


def _files(daemon: Daemon, folder: str) -> str:
    """Shell lines writing the daemon's config files with printf (a builtin: no process)."""
    out = f"mkdir -p {shlex.quote(folder)}\n"
    subfolders = sorted({p.rpartition("/")[0] for p, _ in daemon.config_files if "/" in p})
    if subfolders:
        out += "mkdir -p " + " ".join(shlex.quote(f"{folder}/{s}") for s in subfolders) + "\n"
    for path, text in daemon.config_files:  # "{dir}" in a file too: a socket's path in charon's strongswan.conf
        if isinstance(text, bytes):  # every byte as an octal escape of printf's format (NUL too: busybox and dash)
            escaped = "".join(OCTAL[b] for b in text)
            out += f"printf '{escaped}' > {shlex.quote(folder + '/' + path)}\n"
        else:
            out += f"printf '%s' {shlex.quote(text.replace('{dir}', folder))} > {shlex.quote(folder + '/' + path)}\n"
    return out


def _background(daemon: Daemon, folder: str, command: str, env: list[tuple[str, str]]) -> str:
    """The shell line starting `command` in the background with `env`, its output in the daemon's log; with
    `after`, in a subshell that first waits for that path (at most 10 s), then exports env and execs it, so $! is
    still the daemon's pid."""
    if daemon.after:
        path = shlex.quote(daemon.after.replace("{dir}", folder))
        exports = f"export {' '.join(f'{k}={shlex.quote(v)}' for k, v in env)}; " if env else ""
        command = f"( i=0; until [ -e {path} ] || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done; {exports}exec {command} )"
    else:
        command = "".join(f"{k}={shlex.quote(v)} " for k, v in env) + command
    return f"{command} > {folder}/log 2>&1 < /dev/null &\n"


def guest_script(daemons, loader: tuple[str, str] | None = None) -> str:
    """Shell lines for init's shell in the UML guest: each daemon's folder and files, then the daemon in the
    background through the host's loader, its pid added to $GRELAB_DAEMON_PIDS and printed as
    "@@daemon NAME PID". Once per boot, what daemons expect of a Debian system: /dev/urandom, /dev/random and
    /dev/net/tun (the initramfs has no devtmpfs), /var/run, /var/tmp, a root user in /etc/passwd and /etc/group (FRR
    looks its user up, and insists that it be in the group of its vty sockets, frrvty), each library folder at its
    own path (plugins are found by compiled-in paths such as /usr/lib/ipsec/plugins), and a daemon's root (an
    unpacked package) mounted read-only from the host at /host-root/ROOT."""
    if not daemons:
        return ""
    loader_path, libdir = loader or _host_loader()
    out = ("[ -e /dev/urandom ] || { mknod /dev/urandom c 1 9; mknod /dev/random c 1 8; mkdir -p /var/tmp /usr/lib; "
           "ln -s /run /var/run; printf 'root:x:0:0:root:/root:/bin/sh\\n' > /etc/passwd; "
           "printf 'root:x:0:\\nfrrvty:x:85:root\\n' > /etc/group; }\n"
           "[ -e /dev/net/tun ] || { mkdir -p /dev/net; mknod /dev/net/tun c 10 200; }\n")  # charon's kernel-libipsec
    for daemon in daemons:
        if daemon.root:
            mounted = shlex.quote(HOST_ROOT + daemon.root)
            out += (f"[ -d {mounted}/usr ] || {{ mkdir -p {mounted}; "
                    f"mount -r -t hostfs -o {shlex.quote(daemon.root)} hostfs {mounted}; }}\n")
        for path in daemon.library_paths:
            out += f"[ -e {path} ] || {{ mkdir -p {path.rpartition('/')[0]}; ln -s {_in_guest(path, daemon.root)} {path}; }}\n"
        folder = f"{GUEST_DIR}/{daemon.name}"
        out += _files(daemon, folder)
        argv, env = _words(daemon, folder)
        command = guest_command(argv, daemon.library_paths, (loader_path, libdir), daemon.root)
        out += (_background(daemon, folder, command, env) +
                f'GRELAB_DAEMON_PIDS="$GRELAB_DAEMON_PIDS $!"; echo "@@daemon {daemon.name} $!"\n')
    return out


def _in_guest(path: str, root: str = "") -> str:
    """Where a path of the host's /usr (or of an unpacked package's, under root) is in the UML guest."""
    return HOST_ROOT + root + path if root else HOST_USR + path.removeprefix("/usr")


def guest_command(argv: list[str], library_paths=(), loader: tuple[str, str] | None = None, root: str = "") -> str:
    """A shell command running a program of the host's /usr (or of an unpacked package under root, mounted by its
    daemon's start) in the UML guest (a daemon's client: vtysh, swanctl, whack), through the host's loader."""
    loader_path, libdir = loader or _host_loader()
    libraries = ":".join([_in_guest(libdir)] + [_in_guest(p, root) for p in library_paths])
    return shlex.join([_in_guest(loader_path), "--library-path", libraries, _in_guest(argv[0], root)] + list(argv[1:]))


def host_script(daemons, base: str) -> str:
    """Shell lines for the host DUT (run by `ip netns exec NS sh -c`, in a mount namespace of its own): a
    private /run for the daemons, each daemon's files under base/NAME, each started in its own session,
    printing "@@daemon NAME PID"."""
    if not daemons:
        return ""
    out = "mount -t tmpfs grelab-run /run\n"
    for daemon in daemons:
        folder = f"{base}/{daemon.name}"
        out += _files(daemon, folder)
        argv, env = _words(daemon, folder)
        argv[0] = daemon.root + argv[0]
        out += (_background(daemon, folder, f"setsid {shlex.join(argv)}", env) +
                f'echo "@@daemon {daemon.name} $!"\n')
    return out


def started(output: str) -> dict[str, int]:
    """{daemon name: pid} from an apply's output ("@@daemon NAME PID" lines)."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^@@daemon (\S+) (\d+)$", output, re.M)}


def gone_script(pids: dict[str, int]) -> str:
    """Shell lines for init's shell (the daemons' parent) printing "@@gone NAME STATUS" for each daemon no longer
    running (gone from /proc, or a zombie), its exit status taken with `wait`; builtins only."""
    out = ""
    for name, pid in pids.items():
        out += (f'if [ ! -e /proc/{pid} ] || {{ read -r l < /proc/{pid}/stat; case "$l" in *") Z "*) true;; *) false;; '
                f'esac; }}; then wait {pid} 2> /dev/null; echo "@@gone {name} $?"; fi\n')
    return out


def how_gone(output: str, oneshots=frozenset()) -> dict[str, str]:
    """{daemon name: how it ended} from gone_script's output: a status over 128 is the signal that killed it. A
    oneshot that exited 0 did its job: not listed."""
    import signal
    out = {}
    for m in re.finditer(r"^@@gone (\S+) (\d+)$", output, re.M):
        status = int(m.group(2))
        if status == 0 and m.group(1) in oneshots:
            continue
        if status == 127:
            out[m.group(1)] = "it is no longer running"
        elif status > 128:
            try:
                named = signal.Signals(status - 128).name
            except ValueError:
                named = f"signal {status - 128}"
            out[m.group(1)] = f"killed by {named}"
        else:
            out[m.group(1)] = f"exited with status {status}"
    return out


def folder(dut, name: str) -> str:
    """The daemon's folder in the DUT ("{dir}" in its argv and files): the host DUT's own, else the UML guest's."""
    return getattr(dut, "daemon_folder", lambda n: f"{GUEST_DIR}/{n}")(name)


def client(dut, argv: list[str], library_paths=(), env=(), root: str = "") -> str:
    """A shell command for `dut` running a daemon's client (vtysh, swanctl, whack) of the host's /usr (or of an
    unpacked package under root): as it is in the host DUT's namespace, through the host's loader in the UML guest.
    "{dir}" in a word: the client's daemon's folder is spelt out by the caller (folder())."""
    assignments = "".join(f"{k}={shlex.quote(v)} " for k, v in env)
    if hasattr(dut, "daemon_folder"):
        return assignments + shlex.join([root + argv[0], *argv[1:]])
    return assignments + guest_command(argv, library_paths, root=root)


def daemon_log(dut, name: str) -> str:
    """The daemon's output so far (its log file in the DUT), for failure messages."""
    return dut.cmd(f"tail -n 30 {folder(dut, name)}/log 2>&1").output


def wait_until(dut, script: str, timeout: float, what: str, interval: float = 0.1, logs=()) -> float:
    """Run `script` in the DUT until it succeeds, at most `timeout` seconds; the seconds it took. Polling,
    because a daemon's state (an adjacency, an SA) has no event the DUT's shell can wait on. On the deadline:
    an AssertionError with the script's last output and the named daemons' logs."""
    start = time.monotonic()
    while True:
        result = dut.cmd(script)
        took = time.monotonic() - start
        if result.ok:
            return took
        if took >= timeout:
            said = "".join(f"\n--- {name}'s log:\n{daemon_log(dut, name)}" for name in logs)
            raise AssertionError(f"DUT {dut.name}: {what} not within {timeout:g} s; `{script}` said:\n"
                                 f"{result.output}{said}")
        time.sleep(min(interval, max(0.0, timeout - took)))


def holds_until(dut, script: str, until, what: str, interval: float = 0.1, logs=()) -> int:
    """Run `script` in the DUT until `until`, every run having to succeed: how an absence (no route, no neighbour)
    is shown for as long as it must be. `until` is a time.monotonic() deadline (the last run starts after it), or
    a function telling, after each run, whether the absence has been shown long enough (an event: so many Hellos
    sent; it raises to give up). The number of runs. The first run that fails: an AssertionError with its output
    and the named daemons' logs."""
    done = until if callable(until) else lambda: time.monotonic() > until
    runs = 0
    while True:
        result = dut.cmd(script)
        runs += 1
        if not result.ok:
            said = "".join(f"\n--- {name}'s log:\n{daemon_log(dut, name)}" for name in logs)
            raise AssertionError(f"DUT {dut.name}: {what} no longer held at check {runs}; `{script}` said:\n"
                                 f"{result.output}{said}")
        if done():
            return runs
        time.sleep(interval if callable(until) else min(interval, max(0.0, until - time.monotonic())))


def read_sas(dut) -> list[SA]:
    """The ESP SAs the DUT's kernel holds now (what a daemon negotiated), as grelab SAs."""
    return parse_xfrm_state(dut.check("/sbin/ip -s xfrm state"), f"DUT {dut.name}'s ip -s xfrm state")
