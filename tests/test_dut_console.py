"""The guest console can be trusted: status and output per command, a hang and a panic reported with the
console's last lines, and a guest of a run killed with SIGKILL removed by the next run's sweep."""
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from grelab.dut.uml.console import GuestDied
from grelab.dut.uml.guest import Uml
from grelab.lab.ownership import NETNS_DIR, current_run, sweep_dead_runs


@pytest.fixture(scope="module")
def guest():
    with Uml(["wan"], name="console") as dut:
        yield dut


def test_output_of_an_abandoned_command_is_never_taken_for_the_next(guest):
    with pytest.raises(GuestDied, match="hung: 'sleep 1; echo late' did not finish within 0.2 s"):
        guest.cmd("sleep 1; echo late", timeout=0.2)
    result = guest.cmd("echo next", timeout=5)
    assert (result.status, result.output) == (0, "next")


def test_multi_line_scripts_and_quotes(guest):
    result = guest.cmd("for i in 1 2; do\n  echo \"line $i 'quoted'\"\ndone\nexit 4")
    assert (result.status, result.output) == (4, "line 1 'quoted'\nline 2 'quoted'")


def test_output_without_a_final_newline_is_kept_whole(guest):
    result = guest.cmd("printf foo")
    assert (result.status, result.output) == (0, "foo")
    assert guest.cmd("printf 'a\\n\\nb\\n'").output == "a\n\nb"


def test_scripts_run_in_a_subshell_unless_asked_to_run_in_init_shell(guest):
    guest.cmd("grelab_left=subshell")
    assert guest.console.run('echo "[$grelab_left]"').output == "[]"  # nothing leaks into init
    assert guest.console.run("grelab_left=init; false", in_init_shell=True).status == 1
    assert guest.cmd('echo "[$grelab_left]"').output == "[init]"  # init's shell kept it
    guest.console.run("unset grelab_left", in_init_shell=True)


def test_a_panic_is_reported_with_the_console_tail(guest):
    with pytest.raises(GuestDied) as died:
        guest.cmd("echo about to crash; echo c > /proc/sysrq-trigger; sleep 5", timeout=10)
    message = str(died.value)
    assert "guest panicked" in message and "about to crash" in message
    assert not (NETNS_DIR / guest.namespace).exists()  # killed at once, its namespace gone
    with pytest.raises(GuestDied, match="guest panicked"):  # and every command after says so
        guest.cmd("true")


def test_a_guest_killed_by_sigkill_is_reported_dead_at_once():
    dut = Uml(["wan"], name="killed")
    try:
        os.kill(dut._proc.pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(GuestDied, match=r"guest died: its process \d+ was killed by signal 9"):
            dut.cmd("true", timeout=30)
        # an event, not the deadline: far less than the 30 s a hang would take, even on a busy machine
        assert time.monotonic() - start < 5
        assert not (NETNS_DIR / dut.namespace).exists()  # what was left of it went at once
    finally:
        dut.stop()


def test_a_sigkilled_run_leaves_no_guest_after_the_next_sweep(tmp_path):
    child = textwrap.dedent("""
        import os, signal
        from grelab.dut.uml.guest import Uml
        dut = Uml(["wan"], name="orphan")
        print(dut.namespace, dut._proc.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    namespace, pid = done.stdout.split()
    guest_exit = os.pidfd_open(int(pid))  # the guest outlived its run: this would fail if it had not
    try:
        assert namespace in sweep_dead_runs()  # what the next run does first
        assert not (NETNS_DIR / namespace).exists()
        readable, _, _ = select.select([guest_exit], [], [], 5)
        assert readable, "the guest still runs after the sweep"
    finally:
        os.close(guest_exit)


def test_a_guest_that_cannot_boot_is_reported_and_cleaned_up(tmp_path):
    from grelab.dut.uml import initramfs, kernel
    empty = tmp_path / "empty.cpio"
    empty.write_bytes(b"")
    with pytest.raises(GuestDied, match="guest panicked"):
        Uml(["wan"], name="noboot", image=initramfs.Image(kernel.grelab_kernel().path, empty))
    assert not (NETNS_DIR / current_run().namespace_name("noboot")).exists()  # its namespace went with it
