"""The DUTs of one process (a pytest worker, a shell's lab, a benchmark): each booted on first use and kept, reset
between cases in the background while the next case is set up (grelab.pytest_plugin hands them to cases)."""
from __future__ import annotations

import threading
import warnings

from grelab.dut.base import DutError


class DutPool:
    """The DUTs of one process: each booted on first use and kept, reset between cases."""

    def __init__(self, spec: str):
        self.spec = spec
        self._duts: dict[str, object] = {}
        self._choice = None
        self._choosing = threading.Lock()  # get_many's threads: one selection (and image build), not two
        self._resets: dict = {}  # name -> the Future of its reset, begun when the last case using it ended
        self._resetter = None  # one thread: resets one after the other (see get_many)

    @property
    def chosen(self):
        """The backend chosen so far (None before choice(), or when none could be)."""
        return self._choice

    def choice(self):
        """The selected DUT backend (grelab.dut.select), or raise DutError saying why none works."""
        with self._choosing:
            if self._choice is None:
                from grelab.dut.select import select
                self._choice = select(self.spec)
        return self._choice

    def get(self, name: str, interfaces: tuple[str, ...], ready_later: bool = False):
        """The DUT, booted or reset. ready_later: a reset still under way is left to end while the caller goes
        on (a lab build calls dut.ready() right before the DUT's plan); its failure is then the caller's."""
        dut = self._duts.get(name)
        pending = self._resets.pop(name, None)
        if dut is not None and ready_later and pending is not None and not pending.done() and not died(dut) \
                and list(dut.interfaces) == list(interfaces):
            dut.pending_reset = pending
            return dut
        if dut is not None and pending is not None and pending.exception() is not None and died(dut):
            pending = None  # it died at (or before) its reset: said below, by the restart
        if dut is not None and (list(dut.interfaces) != list(interfaces) or died(dut) or getattr(dut, "wedged", None)):
            dut.stop()  # a guest that died in an earlier case was reported there; this case gets a new one
            dut = None
        if dut is not None:
            try:
                pending.result() if pending is not None else dut.reset()
                return dut
            except DutError as error:  # died, hung or wedged in an earlier case: this case gets a new one
                warnings.warn(f"DUT {name} could not be reset, so it is started again: {error}")
                dut.stop()
        dut = self._duts[name] = self.choice().start(name=name, interfaces=list(interfaces))
        return dut

    def get_many(self, names, interfaces: tuple[str, ...], ready_later: bool = False) -> list:
        """get() for each name: DUTs to boot side by side (a boot waits on its guest), the resets of running ones
        one after the other (two UML guests working at once on two cores took longer than one after the other:
        a two-office case measured ~113 ms against ~73-90 ms)."""
        from grelab.together import side_by_side
        booting = [name for name in names if name not in self._duts]
        side_by_side(lambda name: self.get(name, interfaces), booting)
        return [self._duts[name] if name in booting else self.get(name, interfaces, ready_later) for name in names]

    def release(self, names) -> None:
        """The case that used these DUTs has ended: reset them now, in the background and one after the other,
        while pytest reports that case and sets up the next, which then finds them clean (get() waits for the
        reset, and starts a DUT again whose reset failed)."""
        from concurrent.futures import ThreadPoolExecutor
        if self._resetter is None:
            self._resetter = ThreadPoolExecutor(1, thread_name_prefix="grelab-reset")
        for name in dict.fromkeys(names):
            dut = self._duts.get(name)
            if dut is not None and name not in self._resets and not died(dut):
                self._resets[name] = self._resetter.submit(dut.reset)

    def _settle(self, name: str) -> None:
        """Until a reset of that DUT under way has ended, however it ended."""
        pending = self._resets.pop(name, None)
        if pending is not None:
            pending.exception()

    def warm(self, wanted: dict[str, tuple[tuple[str, ...], frozenset[str]]]) -> None:
        """Boot these DUTs ({name: (interfaces, ESP algorithms its cases use)}) side by side before the first
        case, and have each kernel set up those algorithms once (the first state of an algorithm costs it
        100-200 ms): cases then start on DUTs that only need a reset. A failure here is left for the case that
        needs the DUT to report."""
        from grelab.dut.plan import Plan, XfrmState
        from grelab.craft.esp import ALGORITHMS, SA

        from grelab.together import side_by_side

        def one(name: str, interfaces: tuple[str, ...], algorithms: frozenset[str]) -> None:
            try:
                dut = self.get(name, interfaces)
                states = [XfrmState(SA(0x100 + n, a, bytes(ALGORITHMS[a].key_len), bytes(ALGORITHMS[a].auth_key_len),
                                       src="192.0.2.1", dst="192.0.2.2")) for n, a in enumerate(sorted(algorithms))]
                if states:
                    dut.apply(Plan(states=states))
                    dut.reset()
            except Exception:  # noqa: BLE001 - the case that needs this DUT says what is wrong
                pass
        side_by_side(lambda pair: one(pair[0], *pair[1]), wanted.items())

    def daemons_gone(self) -> list[tuple[str, str, str]]:
        """(DUT, daemon, how it ended) of every daemon a case started in a pooled DUT that is no longer running."""
        gone = []
        for name, dut in self._duts.items():
            if name in self._resets:
                continue  # not this case's: released, its reset (which ends its daemons) on its way
            try:
                gone += [(name, daemon, how) for daemon, how in getattr(dut, "daemons_gone", dict)().items()]
            except DutError:
                pass  # a DUT that cannot answer: its own failure is said elsewhere
        return gone

    def dead(self) -> list[tuple[str, str]]:
        """(name, how it died) of every pooled DUT that died (panicked, exited)."""
        return [(name, how) for name, dut in self._duts.items() if (how := died(dut))]

    def stop_one(self, name: str) -> None:
        self._settle(name)
        dut = self._duts.pop(name, None)
        if dut is not None:
            dut.stop()

    def stop(self) -> None:
        for name in list(self._resets):
            self._settle(name)
        if self._resetter is not None:
            self._resetter.shutdown()
            self._resetter = None
        for dut in self._duts.values():
            dut.stop()
        self._duts.clear()


def died(dut) -> str | None:
    """How a DUT died, if it did (DUTs that can tell have a `died` property), else None."""
    return getattr(dut, "died", None)
