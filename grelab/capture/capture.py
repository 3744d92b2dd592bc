"""Capture on a link end of a lab: armed at creation, BPF-filtered, nothing lost silently.

A raw AF_PACKET socket is created with protocol 0 (it receives nothing), given its BPF filter
(compiled by `tcpdump -ddd`), a 64 MiB buffer (SO_RCVBUFFORCE) and kernel timestamps, and only then
bound to the interface: from the moment the Capture object exists, every matching frame is kept and
none that does not match slips in. A reader thread drains the socket with recvmmsg (256 frames per
system call) and stores frames as (timestamp, bytes); dissect them only when needed
(`result.packets()`). The kernel's packet statistics count what the filter passed and what the
buffer dropped; drops are reported in every result, never hidden.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import select
import socket
import struct
import subprocess
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable

from grelab.errors import GrelabError
from grelab.lab.netns import libc
from grelab.lab.ownership import current_run
from grelab.lab.send import MMSGHDR_WORDS, message_table, open_packet_socket

Frame = tuple[float, bytes]  # (kernel receive time, seconds since the epoch; the whole frame)

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SIOCGIFMTU = 0x8921
MSG_DONTWAIT, MSG_TRUNC = 0x40, 0x20
BATCH = 256
NAME_SIZE = 24  # struct sockaddr_ll (20 bytes), padded: tells the packet's direction
CONTROL_SIZE = 32  # one cmsg carrying a struct timespec


@functools.lru_cache(maxsize=None)
def compile_filter(expression: str) -> bytes:
    """A tcpdump expression -> struct sock_filter[] for Ethernet links, via `tcpdump -ddd`."""
    done = subprocess.run(["tcpdump", "-ddd", "-y", "EN10MB", "-s", "262144", expression],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise GrelabError(f"capture filter {expression!r}: {done.stderr.strip()}")
    lines = done.stdout.split("\n")
    code = b"".join(struct.pack("HBBI", *map(int, line.split())) for line in lines[1:int(lines[0]) + 1])
    return code


@dataclass
class CaptureResult:
    """What a capture holds when wait() returns."""

    frames: list[Frame]
    matched: bool  # the count or condition was met before the deadline
    passed: int  # frames the kernel's filter passed (the socket's packet statistics)
    dropped: int  # of those, frames lost because the buffer was full
    ifname: str = ""
    _packets: list | None = field(default=None, repr=False)

    def packets(self) -> list:
        """The frames dissected by scapy (slow: ~6,000 frames/s), once."""
        if self._packets is None:
            from grelab.craft.dissect import frame  # here: scapy is slow to import, and only this needs it
            self._packets = [frame(data) for _, data in self.frames]
            for packet, (stamp, _) in zip(self._packets, self.frames):
                packet.time = stamp
        return self._packets

    def check_no_drops(self) -> None:
        if self.dropped:
            raise AssertionError(f"capture on {self.ifname} dropped {self.dropped} of {self.passed} frames: "
                                 "the results are incomplete (a bigger buffer, or send slower)")


class _Closer:
    """Closes packet sockets on a thread of its own: closing one waits for an RCU grace period (12-16 ms
    here), which a case's teardown need not wait for. One long-lived thread, started on first use."""

    def __init__(self):
        self._queue: list[socket.socket] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def close(self, sock: socket.socket) -> None:
        with self._cond:
            self._queue.append(sock)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="grelab-socket-closer", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                sock = self._queue.pop(0)
            sock.close()


_closer = _Closer()


class Capture:
    """`with lab.capture("b", "eth0", "icmp6") as cap: ...send...; result = cap.wait(count=10)`."""

    def __init__(self, end, expression: str = "", buffer_bytes: int = 64 << 20, direction: str = "both", scope=None):
        """scope: where its closing is deferred (grelab.scope.Scope; default the run's): a lab's captures
        close with the lab, so a case's 64 MiB buffers and reader threads go when the case ends."""
        if direction not in ("both", "in", "out"):
            raise GrelabError(f"capture direction {direction!r}: one of both, in, out")
        self.end, self.expression, self.direction = end, expression, direction
        program = compile_filter(expression) if expression else b""

        def arm(sock: socket.socket) -> None:
            if program:
                code = ctypes.create_string_buffer(program)
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                                struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(code)))
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

        self.sock = open_packet_socket(end.namespace, end.ifname, ETH_P_ALL, arm)
        ifreq = fcntl.ioctl(self.sock, SIOCGIFMTU, struct.pack("16s16x", end.ifname.encode()))
        mtu = struct.unpack_from("i", ifreq, 16)[0]
        self.slot = mtu + 64  # Ethernet header and VLAN tags: whole frames, jumbo ones too
        self._frames: list[Frame] = []
        self._passed = self._dropped = 0
        self._frames_read = 0  # frames read from the socket, before the direction filter: what settle() counts
        self._changed = threading.Condition()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._error: BaseException | None = None
        self._listeners: list[Callable[[], None]] = []
        self._reader = threading.Thread(target=self._read, name=f"grelab-capture-{end.ifname}", daemon=True)
        self._reader.start()
        self._cancel = (scope or current_run().scope).defer(self._stop, f"capture on {end.namespace}:{end.ifname}")

    def _read(self) -> None:
        try:
            self._read_loop()
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self._error = exc
        with self._changed:
            self._changed.notify_all()

    def _read_loop(self) -> None:
        data = ctypes.create_string_buffer(BATCH * self.slot)
        names = ctypes.create_string_buffer(BATCH * NAME_SIZE)
        controls = ctypes.create_string_buffer(BATCH * CONTROL_SIZE)
        start = ctypes.addressof(data)
        iov, table = message_table(array("Q", range(start, start + BATCH * self.slot, self.slot)),  # noqa: F841
                                   array("Q", [self.slot]) * BATCH)
        table[0::MMSGHDR_WORDS] = array("Q", range(ctypes.addressof(names),
                                                   ctypes.addressof(names) + BATCH * NAME_SIZE, NAME_SIZE))
        table[4::MMSGHDR_WORDS] = array("Q", range(ctypes.addressof(controls),
                                                   ctypes.addressof(controls) + BATCH * CONTROL_SIZE, CONTROL_SIZE))
        # The kernel writes the actual sizes back: reset them before each call.
        name_sizes, control_sizes = array("Q", [NAME_SIZE]) * BATCH, array("Q", [CONTROL_SIZE]) * BATCH
        view = memoryview(data)
        stamp_words = memoryview(controls).cast("B").cast("q")  # per frame: cmsg length, level+type, seconds, ns
        fd = self.sock.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        keep = {"both": None, "in": False, "out": True}[self.direction]  # is the frame outgoing?
        while True:
            table[1::MMSGHDR_WORDS] = name_sizes
            table[5::MMSGHDR_WORDS] = control_sizes
            count = libc.recvmmsg(fd, ctypes.c_void_p(table.buffer_info()[0]), BATCH, MSG_DONTWAIT, None)
            if count < 0:
                err = ctypes.get_errno()
                if err not in (errno.EAGAIN, errno.EINTR):
                    raise OSError(err, f"recvmmsg: {os.strerror(err)}")
                if any(fd_ == self._wake_r for fd_, _ in poller.poll()):
                    return
                continue
            if any(flags & MSG_TRUNC for flags in table[6:count * MMSGHDR_WORDS:MMSGHDR_WORDS]):
                raise GrelabError(f"a frame longer than {self.slot} bytes arrived: the link's MTU grew after "
                                  "the capture was armed (captures keep whole frames or fail)")
            # Whole-batch slices in C; the one Python step per frame is copying its bytes out.
            lengths = [n & 0xFFFFFFFF for n in table[7:count * MMSGHDR_WORDS:MMSGHDR_WORDS]]
            stamps = stamp_words[2:count * 4:4], stamp_words[3:count * 4:4]
            batch = [(sec + nsec * 1e-9, view[start:start + length].tobytes())
                     for sec, nsec, start, length in zip(*stamps, range(0, count * self.slot, self.slot), lengths)]
            if keep is not None:
                batch = [frame for i, frame in enumerate(batch)
                         if (names[i * NAME_SIZE + 10][0] == PACKET_OUTGOING) == keep]
            with self._changed:
                self._frames.extend(batch)
                self._frames_read += count
                self._changed.notify_all()
                listeners = list(self._listeners)
            for listener in listeners:
                listener()

    def on_frames(self, listener: Callable[[], None]) -> None:
        """Call listener() (from the reader thread; keep it short) whenever frames arrive: to wait on several
        captures at once."""
        with self._changed:
            self._listeners.append(listener)

    def _count(self) -> None:
        """Add the kernel's counters (they reset on every read) to ours."""
        passed, dropped = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        with self._changed:
            self._passed += passed
            self._dropped += dropped

    def settle(self, timeout: float = 1.0) -> CaptureResult:
        """Wait until every frame the kernel has passed to this capture so far has been read.

        Once the traffic has provably happened (the reply is back), this makes the capture complete
        up to now without guessing a quiet window. result.matched is False if the deadline passed."""
        self._count()
        with self._changed:
            target = self._passed - self._dropped
        return self.wait(until=lambda _frames: self._frames_read >= target, timeout=timeout)

    def wait(self, count: int | None = None, until: Callable[[list[Frame]], bool] | None = None,
             timeout: float = 1.0) -> CaptureResult:
        """Wait until `count` frames are in, or until(frames) is true, or the deadline passes.

        With neither count nor until, wait the whole timeout (to see that nothing arrives)."""
        deadline = time.monotonic() + timeout
        # until() (expect's dissecting and decrypting) runs outside the lock, on a copy of the frames taken
        # under it, so the reader never waits for it; `read` tells whether the reader added anything since.
        seen: list[Frame] = []
        while True:
            with self._changed:
                seen.extend(self._frames[len(seen):])
                read = self._frames_read
            matched = (count is not None and len(seen) >= count) or (until is not None and until(seen))
            left = deadline - time.monotonic()
            if matched or left <= 0 or self._error or not self._reader.is_alive():
                break
            with self._changed:
                if self._frames_read == read and not self._error and self._reader.is_alive():
                    self._changed.wait(left)
        with self._changed:
            frames = list(self._frames)  # all of them: settle's target may count frames read after the copy
        if self._error:
            raise GrelabError(f"capture on {self.end.ifname} failed: {self._error}")
        self._count()
        with self._changed:
            passed, dropped = self._passed, self._dropped
        return CaptureResult(frames, bool(matched), passed, dropped, f"{self.end.node}:{self.end.ifname}")

    def _stop(self) -> None:
        if self._reader.is_alive():
            os.write(self._wake_w, b"x")
            self._reader.join()
        _closer.close(self.sock)
        os.close(self._wake_r)
        os.close(self._wake_w)

    def close(self) -> None:
        self._cancel()

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
