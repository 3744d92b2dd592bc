"""Open vSwitch's two daemons for one DUT: ovsdb-server and ovs-vswitchd, inside the DUT's namespace, with a database,
sockets, pid files and logs in a folder of the run's (/run/grelab/<run>/ovs/<namespace>), never the system's
/var/run/openvswitch. No kernel module: ovs-vswitchd finds none (dpif_netlink says so) and every bridge is
`datapath_type=netdev`, OVS's userspace datapath.

Started once per DUT (a pytest worker's r1 lives for the whole run) and ready when `--detach` returns: OVS's
daemonize() lets the parent exit only once the child is serving (ovsdb-server listening, ovs-vswitchd connected to
the database), so there is no wait for a socket to appear; each start still has a deadline. A dead run's daemons are
found by `grelab sweep` (they run inside its namespace, and their pids are recorded with the run) and its folder goes
with the run's folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from grelab.dut.base import DutError

PACKAGE = "openvswitch-switch"
SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
PROGRAMS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl")
START_S = 10.0  # a daemon's start, to --detach's return: ~25-50 ms here
COMMAND_S = 10.0


def missing() -> str | None:
    """Why OVS cannot run here (one line saying what to install), or None."""
    absent = [p for p in PROGRAMS if shutil.which(p, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]
    if absent or not SCHEMA.exists():
        what = ", ".join(absent) if absent else str(SCHEMA)
        return f"Open vSwitch is not installed (no {what}): apt-get install {PACKAGE} (or run ./setup.sh)"
    return None


@dataclass(frozen=True)
class Switch:
    """Where one DUT's OVS lives: its namespace and folder; the command lines that reach its daemons."""

    namespace: str
    folder: Path

    @property
    def db(self) -> str:
        return f"unix:{self.folder}/db.sock"

    @property
    def env(self) -> dict[str, str]:
        """ovs-ofctl finds a bridge's management socket in OVS_RUNDIR; the daemons put their files there too."""
        where = str(self.folder)
        return {**os.environ, "OVS_RUNDIR": where, "OVS_DBDIR": where, "OVS_LOGDIR": where}

    def shell_env(self) -> str:
        """The same, as a shell prefix for scripts run in the namespace."""
        return "".join(f"{name}={self.folder}; " for name in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR")) + \
            "export OVS_RUNDIR OVS_DBDIR OVS_LOGDIR\n"

    def vsctl(self) -> str:
        return f"ovs-vsctl --db={self.db} --timeout={int(COMMAND_S)}"

    def appctl(self) -> str:
        return f"ovs-appctl -t {self.folder}/vswitchd.ctl"

    def pid(self, daemon: str) -> int | None:
        try:
            return int((self.folder / f"{daemon}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def start(namespace: str, folder: Path, record_pid) -> Switch:
    """A fresh database and both daemons in `namespace`; record_pid(pid, what) for each (a sweep kills them)."""
    switch = Switch(namespace, folder)
    folder.mkdir(parents=True, exist_ok=True)
    _run(switch, ["ovsdb-tool", "create", str(folder / "conf.db"), str(SCHEMA)], netns=False)
    common = ["--detach", "--no-chdir", "-vconsole:off", "-vfile:info"]
    _run(switch, ["ovsdb-server", str(folder / "conf.db"), f"--remote=punix:{folder}/db.sock",
                  f"--pidfile={folder}/ovsdb-server.pid", f"--unixctl={folder}/ovsdb-server.ctl",
                  f"--log-file={folder}/ovsdb-server.log", *common])
    record_pid(switch.pid("ovsdb-server"), f"ovsdb-server of {namespace}")
    _run(switch, ["ovs-vsctl", f"--db={switch.db}", "--no-wait", "init"])
    _run(switch, ["ovs-vswitchd", switch.db, f"--pidfile={folder}/ovs-vswitchd.pid",
                  f"--unixctl={folder}/vswitchd.ctl", f"--log-file={folder}/ovs-vswitchd.log", *common])
    record_pid(switch.pid("ovs-vswitchd"), f"ovs-vswitchd of {namespace}")
    return switch


def _run(switch: Switch, argv: list[str], netns: bool = True) -> None:
    full = (["ip", "netns", "exec", switch.namespace] if netns else []) + argv
    try:
        p = subprocess.run(full, capture_output=True, text=True, env=switch.env, timeout=START_S)
    except subprocess.TimeoutExpired:
        raise DutError(f"OVS in {switch.namespace}: `{argv[0]}` did not start within {START_S:g} s") from None
    except FileNotFoundError:
        raise DutError(missing() or f"{argv[0]}: not found") from None
    if p.returncode:
        log = switch.folder / f"{argv[0]}.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        raise DutError(f"OVS in {switch.namespace}: `{' '.join(argv[:2])}` exited {p.returncode}: "
                       f"{(p.stderr or p.stdout).strip() or ' / '.join(tail) or '(no output)'}")


def death(switch: Switch) -> str | None:
    """How a daemon of this switch died, or None when both run."""
    for daemon in ("ovsdb-server", "ovs-vswitchd"):
        pid = switch.pid(daemon)
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if pid else "gone"
        except OSError:
            state = "gone"
        if state in ("Z", "X", "gone"):
            return f"{daemon} is no longer running"
    return None


def stop(switch: Switch) -> None:
    """Both daemons killed (the namespace's removal would too) and the folder removed. Idempotent."""
    import signal
    for daemon in ("ovs-vswitchd", "ovsdb-server"):
        pid = switch.pid(daemon)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    shutil.rmtree(switch.folder, ignore_errors=True)
