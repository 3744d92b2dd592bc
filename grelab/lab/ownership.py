"""Who owns what: every namespace, link and process grelab makes belongs to a run, and a dead run is swept.

A run is one Python process (a pytest worker, a `grelab` command). It holds an flock on
/run/grelab/<run-id>/lock for as long as it lives; the kernel drops that lock when the process dies,
even by SIGKILL, so a later run knows for certain which runs are dead and removes what they left:
their namespaces (`grelab-<run-id>-<node>`) and every process still inside them or recorded by pid.

Resources are paired with their cleanup the moment they are made (`run.defer(...)`, or in a scope of
the run's: `run.scope.child(...)`, see grelab.scope); cleanups run last-in first-out at `run.close()` and at
interpreter exit, which SIGTERM, SIGINT and SIGHUP lead to (see arm_stop_signals), whatever thread made them.
"""
from __future__ import annotations

import atexit
import ctypes
import fcntl
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from grelab.scope import Scope

RUN_ROOT = Path(os.environ.get("GRELAB_RUN_ROOT", "/run/grelab"))
NETNS_DIR = Path("/run/netns")
PREFIX = "grelab-"
# grelab-<6 hex run id>-<node>; the run id is what ties a namespace to its owner.
NAMESPACE_RE = re.compile(r"^grelab-([0-9a-f]{6})-([A-Za-z0-9_.-]+)$")

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def _proc_start_time(pid: int) -> str | None:
    """The process start time from /proc (field 22): with the pid it names one process, even after reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _kill(pid: int, start_time: str | None) -> None:
    if start_time is not None and _proc_start_time(pid) != start_time:
        return  # gone, or the pid now belongs to someone else
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pids_in_namespace(name: str) -> list[int]:
    """Every process whose network namespace is /run/netns/NAME (what `ip netns pids` reports)."""
    try:
        target = os.stat(NETNS_DIR / name)
    except OSError:
        return []
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            found.append(int(entry.name))
    return found


def delete_namespace(name: str) -> None:
    """Remove /run/netns/NAME (what `ip netns delete` does, without its process). The kernel frees the
    namespace and its links once nothing uses it any more. Missing is fine."""
    path = NETNS_DIR / name
    _libc.umount2(bytes(path), MNT_DETACH)
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def remove_namespace(name: str) -> None:
    """Kill whatever still runs inside the namespace, then delete it. Missing is fine."""
    for pid in pids_in_namespace(name):
        if pid != os.getpid():
            _kill(pid, None)
    delete_namespace(name)


def grelab_namespaces() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(PREFIX))
    except FileNotFoundError:
        return []


@dataclass
class Run:
    """This process's claim on the resources it makes."""

    id: str
    path: Path
    _lock_fd: int
    scope: Scope = field(default_factory=lambda: Scope("the run"))
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _names_given: dict[str, int] = field(default_factory=dict)
    _made: dict[str, tuple[int, int]] = field(default_factory=dict)  # namespace name -> (st_dev, st_ino)

    def namespace_name(self, node: str) -> str:
        """`grelab-<run-id>-<node>`, or `...-<node>.<n>` for the n-th one of that node in this run: unique
        across concurrent runs and within this one (a pytest worker's pooled DUT r1 and a test's own r1
        live side by side), and findable after a dead run."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", node):
            raise ValueError(f"node name {node!r}: use 1-40 of letters, digits, '_', '.', '-'")
        with self._mutex:
            n = self._names_given[node] = self._names_given.get(node, 0) + 1
        return f"{PREFIX}{self.id}-{node}" + (f".{n}" if n > 1 else "")

    def claim_namespace(self, name: str) -> None:
        """Record the identity of /run/netns/NAME right after this run created it: ownership is that identity,
        not the name (a bind mount of the host's namespace named like ours must not pass)."""
        st = os.stat(NETNS_DIR / name)
        with self._mutex:
            self._made[name] = (st.st_dev, st.st_ino)

    def made(self, name: str) -> tuple[int, int] | None:
        """The (st_dev, st_ino) of a namespace this run created under that name, or None."""
        with self._mutex:
            return self._made.get(name)

    def record_pid(self, pid: int, what: str) -> None:
        """Remember a process this run started (a DUT guest, tcpdump) so a sweep can kill it if we die."""
        with self._mutex, open(self.path / "pids", "a") as f:
            f.write(f"{pid} {_proc_start_time(pid)} {what}\n")

    def defer(self, cleanup: Callable[[], None], what: str = "") -> Callable[[], None]:
        """Pair a resource with its cleanup now, in the run's scope; returns a function that runs it early, once."""
        return self.scope.defer(cleanup, what)

    def close(self) -> None:
        """Run every deferred cleanup, newest first (one failing does not stop the rest), then remove any
        namespace of this run that is still there."""
        try:
            self.scope.close()
        finally:
            for name in grelab_namespaces():
                m = NAMESPACE_RE.match(name)
                if m and m.group(1) == self.id:
                    remove_namespace(name)


_run: Run | None = None
_run_guard = threading.Lock()


def sweep_dead_runs() -> list[str]:
    """Remove what runs that are no longer alive left behind. Returns the namespaces removed."""
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    # Namespaces first: a run names its folder before it makes any, so a run born after this list is taken is in
    # neither list, and none of its namespaces can be taken for a dead run's.
    namespaces = grelab_namespaces()
    live = set()
    for run_dir in RUN_ROOT.iterdir():
        if run_dir.name.startswith("."):
            continue  # a run being born: it locks before it gets its name
        lock = run_dir / "lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            shutil.rmtree(run_dir, ignore_errors=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            live.add(run_dir.name)  # its owner still holds the lock
            continue
        try:  # dead: we hold its lock now; kill its recorded processes and forget it
            pids = run_dir / "pids"
            if pids.exists():
                for line in pids.read_text().splitlines():
                    pid, start, *_ = line.split() + ["", ""]
                    if pid.isdigit():
                        _kill(int(pid), None if start in ("None", "") else start)
            shutil.rmtree(run_dir, ignore_errors=True)
        finally:
            os.close(fd)
    removed = []
    for name in namespaces:
        m = NAMESPACE_RE.match(name)
        if m is None or m.group(1) not in live:
            remove_namespace(name)
            removed.append(name)
    return removed


def current_run() -> Run:
    """The run of this process, created on first use: sweeps dead runs, takes a lock, arms cleanup at exit."""
    global _run
    with _run_guard:
        if _run is not None and _run.path.exists() and os.getpid() == _run_pid:
            return _run
        sweep_dead_runs()
        run_id = secrets.token_hex(3)
        # Lock first, under a hidden name, then rename: a concurrent sweep never sees an unlocked run.
        nursery = RUN_ROOT / f".{run_id}"
        nursery.mkdir(parents=True)
        fd = os.open(nursery / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (nursery / "owner").write_text(f"{os.getpid()}\n")
        path = RUN_ROOT / run_id
        nursery.rename(path)
        _set_run(Run(run_id, path, fd))
        atexit.register(close_current_run)
        arm_stop_signals((signal.SIGTERM, signal.SIGHUP))  # Ctrl-C already unwinds (a REPL keeps it so)
        return _run


_run_pid = -1


def _set_run(run: Run | None) -> None:
    global _run, _run_pid
    _run, _run_pid = run, os.getpid()


_closing = False  # close_current_run is under way: a stop signal then only records itself
_close_lock = threading.RLock()  # a second caller (the shell's main thread, while its watcher closes) waits for it


def close_current_run() -> None:
    """Clean up everything this process made and release its run (idempotent; a caller on another thread returns
    once a close under way has ended)."""
    global _run, _closing
    with _close_lock:
        with _run_guard:
            run, ok = _run, _run is not None and _run_pid == os.getpid()
            _set_run(None)
        if not ok:
            return
        _closing = True
        try:
            run.close()
        finally:
            shutil.rmtree(run.path, ignore_errors=True)
            os.close(run._lock_fd)
            _closing = False


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # timeout/CI/systemd, Ctrl-C, a closed terminal
_stopped_by: int | None = None
_armed = False
_on_stop: list[Callable[[int], None]] = []  # e.g. an xdist controller passing the signal on to its workers


class RunStopped(KeyboardInterrupt):
    """The process was told to stop (SIGTERM, SIGINT, SIGHUP). A KeyboardInterrupt, so pytest ends the session
    as it does for Ctrl-C (a SystemExit inside a case would only fail that case, and the run would go on)."""


def arm_stop_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> None:
    """Make SIGTERM, SIGINT and SIGHUP end this process through normal exit, so what the run made is removed
    (atexit closes the run), then die of that signal as its parent expects. Python runs signal handlers on the
    main thread only, so call this there (the CLI and the pytest plugin do, before any DUT boots in a thread);
    from another thread it does nothing. A handler someone else installed (the shell's SIGHUP) is left alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    global _armed
    if not _armed:  # before any run's own atexit: it runs after them, and only once a stop signal came
        _armed = True
        atexit.register(_die_of_signal)
    for sig in signals:
        current = signal.getsignal(sig)
        if current is _stop or current not in (signal.SIG_DFL, signal.default_int_handler, None):
            continue
        signal.signal(sig, _stop)


def on_stop(callback: Callable[[int], None]) -> None:
    """Call callback(signum) on the main thread when a stop signal first arrives, before the run unwinds."""
    _on_stop.append(callback)


def _stop(signum, frame) -> None:
    global _stopped_by
    if _stopped_by is not None:
        return  # already stopping: a second signal must not cut the cleanup short (SIGKILL still can)
    _stopped_by = signum
    if _closing:
        return  # the run is being closed (normal exit): let it finish; then the process dies of the signal
    for callback in _on_stop:
        try:
            callback(signum)
        except Exception:  # noqa: BLE001 - stopping goes on whatever a callback does
            pass
    raise RunStopped(f"stopped by {signal.Signals(signum).name}")


def _die_of_signal() -> None:
    """At exit after a stop signal: everything this run made is removed first, then the process ends by that
    signal (exit status 128+N in a shell), as a process that did not catch it would. Nothing without one."""
    if _stopped_by is None:
        return
    try:
        close_current_run()
    finally:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed pipe: nothing more to say
                pass
        signal.signal(_stopped_by, signal.SIG_DFL)
        os.kill(os.getpid(), _stopped_by)


def stopped_by() -> int | None:
    """The stop signal this process received, if any."""
    return _stopped_by
