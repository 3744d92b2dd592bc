"""Stateless tunnel monitoring: GRE keepalives sent every interval, the tunnel reported down after N unanswered.

A GRE keepalive (grelab.craft.keepalive) is a packet the far end sends back to us without knowing it: the outer
GRE carries an IP packet from the far end to us, which the far end takes out of its tunnel and routes back.
Nothing keeps state on the far end, so a keepalive that comes back is the whole proof that the tunnel works.

    monitor = KeepaliveMonitor(send, capture, keepalive_for, returned, interval=0.05, misses=3)
    report = monitor.run(until="down", timeout=1.0)    # or until=("answered", 3), or ("sent", 3): 3, then their answers
    report.down_at, report.sent, report.answered

Event driven: the capture wakes the monitor when frames arrive; the only waiting is the send interval itself
(keepalive k goes out at start + k * interval). A keepalive answered before the next one is due counts as
answered; the tunnel is down once `misses` keepalives in a row were not answered within their interval.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from grelab.errors import InputError, check_range


@dataclass
class Keepalive:
    number: int
    sent_at: float  # time.monotonic()
    answered_at: float | None = None


@dataclass
class MonitorReport:
    keepalives: list[Keepalive] = field(default_factory=list)
    down_at: float | None = None  # monotonic time the monitor reported the tunnel down, if it did

    @property
    def sent(self) -> int:
        return len(self.keepalives)

    @property
    def answered(self) -> list[int]:
        return [k.number for k in self.keepalives if k.answered_at is not None]

    @property
    def unanswered(self) -> list[int]:
        return [k.number for k in self.keepalives if k.answered_at is None]

    def summary(self, interval: float) -> str:
        marks = "".join("+" if k.answered_at is not None else "." for k in self.keepalives)
        down = "" if self.down_at is None else \
            f"; down {self.down_at - self.keepalives[0].sent_at:.3f} s after the first ({(self.down_at - self.first_miss_at) / interval:.2f} intervals after the first miss)"
        return f"{self.sent} keepalives [{marks}] every {interval * 1000:.0f} ms{down}"

    @property
    def first_miss_at(self) -> float | None:
        missed = [k.sent_at for k in self.keepalives if k.answered_at is None]
        return missed[0] if missed else None


class KeepaliveMonitor:
    """send(frame_bytes) puts a keepalive on the wire; capture: a grelab Capture where the answers appear;
    keepalive_for(n) -> the frame of keepalive n; returned(frame) -> the number n of the keepalive this frame
    brings back, or None. Numbers count on from one run to the next."""

    def __init__(self, send: Callable[[bytes], object], capture, keepalive_for: Callable[[int], bytes],
                 returned: Callable[[bytes], int | None], interval: float = 0.05, misses: int = 3):
        if not 0.001 <= interval <= 60:
            raise InputError("monitor interval", interval, "0.001 to 60 seconds")
        check_range("monitor misses", misses, 1, 1000)
        self.send, self.capture, self.keepalive_for, self.returned = send, capture, keepalive_for, returned
        self.interval, self.misses = interval, misses
        self._arrived = threading.Event()
        self._seen = len(capture.wait(timeout=0).frames)  # frames from before the monitor are not answers
        self._next = 1
        capture.on_frames(self._arrived.set)

    def _collect(self, pending: dict[int, Keepalive]) -> None:
        frames = self.capture.wait(timeout=0).frames
        for stamp, data in frames[self._seen:]:
            number = self.returned(data)
            if number in pending and pending[number].answered_at is None:
                pending[number].answered_at = time.monotonic()
        self._seen = len(frames)

    def run(self, until="down", timeout: float = 5.0) -> MonitorReport:
        """Send keepalives until the tunnel is reported down (until="down"), `n` have been answered
        (until=("answered", n)), or `n` have been sent and then answered, none more sent (until=("sent", n): how many
        went out is then the caller's, not the far end's latency against the interval; those still unanswered at the
        deadline are the report's `unanswered`, for the caller to assert on); otherwise AssertionError if that does
        not happen before the deadline."""
        if until != "down" and until[0] == "sent":
            return self._send(until[1], timeout)
        report, pending = MonitorReport(), {}
        start = time.monotonic()
        deadline = start + timeout
        while True:
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(f"keepalive monitor: not {until} within {timeout} s: {report.summary(self.interval)}")
            keepalive = Keepalive(self._next, now)
            self._next += 1
            report.keepalives.append(keepalive)
            pending[keepalive.number] = keepalive
            self._arrived.clear()
            self.send(self.keepalive_for(keepalive.number))
            due = start + len(report.keepalives) * self.interval  # when the next one goes out
            while (left := due - time.monotonic()) > 0:
                self._collect(pending)
                if until != "down" and len(report.answered) >= until[1]:
                    return report
                self._arrived.wait(left)  # a frame arrived, or the next keepalive is due
                self._arrived.clear()
            self._collect(pending)
            if until != "down" and len(report.answered) >= until[1]:
                return report
            last = report.keepalives[-self.misses:]
            if until == "down" and len(last) == self.misses and all(k.answered_at is None for k in last):
                report.down_at = time.monotonic()
                return report

    def _send(self, count: int, timeout: float) -> MonitorReport:
        """`count` keepalives on the schedule, then their answers until all are in or the deadline."""
        report, pending = MonitorReport(), {}
        start = time.monotonic()
        for n in range(count):
            while (left := start + n * self.interval - time.monotonic()) > 0:
                self._arrived.wait(left)
                self._arrived.clear()
            keepalive = Keepalive(self._next, time.monotonic())
            self._next += 1
            report.keepalives.append(keepalive)
            pending[keepalive.number] = keepalive
            self.send(self.keepalive_for(keepalive.number))
        deadline = start + timeout
        while True:
            self._collect(pending)
            if not report.unanswered or time.monotonic() > deadline:
                return report
            self._arrived.wait(max(0.0, deadline - time.monotonic()))
            self._arrived.clear()
