"""grelab's pytest plugin (loaded through the pytest11 entry point): options, markers and fixtures.

Fixtures:
    duts          duts("r1", "r2") -> DUTs booted once per worker (per name), reset before each case (side by side)
    lab           lab(topology) -> a built lab, torn down after the case
    golden        the case's golden recorder (grelab.golden.recorder): compared, or updated, after the case passes
    grelab_scope  the case's scope (grelab.scope): what is deferred there is closed when the case ends
A scenario module gets its `net` fixture from its Scenario (grelab.scenario.spec.Scenario.fixture).
Options: --dut, --kernel PATH, --update-golden, --keep-pcaps DIR, --grelab-report DIR.
Markers: needs_gre, needs_esp, needs_ipv6_transport, needs_duts(n): with --dut auto, a case the selected DUT cannot run is
skipped, saying why; with a DUT named explicitly it fails, and a DUT that cannot be selected at all is an error:
a run that cannot test what it was asked to is never green.
"""
from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path

import pytest

from grelab.dut.base import DutError

MARKERS = {
    "needs_gre": "the case needs a DUT with GRE (every scenario's case: a DUT of yours may lack it)",
    "needs_esp": "the case needs a DUT with ESP (xfrm)",
    "needs_ipv6_transport": "the case needs GRE over IPv6 transport (ip6_gre) in the DUT",
    "needs_duts(n)": "the case needs n devices under test at once",
}
CAPABILITY_OF_MARKER = {"needs_gre": "gre", "needs_esp": "esp", "needs_ipv6_transport": "ipv6_transport"}


def pytest_addoption(parser):
    group = parser.getgroup("grelab")
    group.addoption("--dut", default="auto", help="device under test: auto (default), host, uml or module:Class")
    group.addoption("--kernel", metavar="PATH", help="the uml DUT boots this user-mode-linux kernel (also "
                    "GRELAB_KERNEL; default: grelab's own build): grelab kernel build --source DIR makes one")
    group.addoption("--update-golden", action="store_true", help="rewrite the selected cases' golden pcaps")
    group.addoption("--keep-pcaps", metavar="DIR", help="keep every case's captures in DIR/<scenario>/<case>.pcapng")
    group.addoption("--grelab-report", metavar="DIR", help="write a run report to DIR/index.html: per case its "
                    "result, story, a ladder diagram of its packets, the golden diff, its pcapng")


def pytest_configure(config):
    # A run stopped by SIGTERM (a CI timeout), SIGINT or SIGHUP removes what it made before it exits, whatever
    # thread made it; an xdist controller passes the signal on to its workers, each of which cleans up its own.
    from grelab.lab.ownership import arm_stop_signals, on_stop
    arm_stop_signals()
    if _xdist_controller(config):
        on_stop(_pass_on_to_children)
    if hasattr(config, "workerinput"):  # an xdist worker: its guests share one CPU, the next worker's the next one
        from grelab.dut.uml.guest import pin_guests
        pin_guests(int(config.workerinput["workerid"].removeprefix("gw")))
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    report = config.getoption("--grelab-report", None)
    if report and not hasattr(config, "workerinput"):  # this run's cases only, never a previous run's
        import shutil
        shutil.rmtree(Path(report) / "cases", ignore_errors=True)
    kernel = config.getoption("--kernel", None)
    if kernel:  # the environment carries it to xdist's workers and to every DUT they boot
        import os
        os.environ["GRELAB_KERNEL"] = str(Path(kernel).expanduser().resolve())
    spec = config.getoption("--dut", "auto")
    if hasattr(config, "workerinput") or config.option.collectonly:
        return
    # A DUT named explicitly that cannot be used (a typo, a broken set-up), or a kernel that cannot run here
    # (whatever the DUT), stops the run before the first case, in one line: never a copy of a panic per case.
    from grelab.dut.select import KernelCannotRun
    try:
        _pool(config).choice()
    except KernelCannotRun as exc:
        raise pytest.UsageError(dut_problem(spec, exc)) from None
    except DutError as exc:
        if spec != "auto":
            raise pytest.UsageError(dut_problem(spec, exc)) from None


def _pass_on_to_children(signum: int) -> None:
    """xdist's controller got a stop signal: its workers (its child processes) get it too, at once (xdist would
    ask them to exit only after the case under way, and kill those that take over 10 s: SIGKILL leaves all)."""
    import os
    for task in Path("/proc/self/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                os.kill(int(pid), signum)
            except (ProcessLookupError, ValueError):
                pass


def _xdist_controller(config) -> bool:
    return not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """An xdist worker went down (killed, crashed): what it made goes now, not at the next run's start. Its
    lock died with it; live workers' runs are left alone (grelab.lab.ownership.sweep_dead_runs)."""
    from grelab.lab.ownership import sweep_dead_runs
    sweep_dead_runs()


def pytest_unconfigure(config):
    if _xdist_controller(config):  # every worker is down: none of them leaves anything
        from grelab.lab.ownership import sweep_dead_runs
        sweep_dead_runs()


def pytest_report_header(config):
    """The run's first lines name the DUT and its kernel (which kernel ran is part of every result)."""
    pool = config.stash.get(_POOL, None)
    choice = pool.chosen if pool is not None else None
    if choice is not None:
        return [f"grelab DUT: {choice.name}, kernel {choice.kernel or 'not known to grelab'}"]
    return None


def dut_problem(spec: str, exc: DutError) -> str:
    """One line: `--dut SPEC: why it cannot be used` (select's messages may name the backend or span lines)."""
    from grelab.errors import one_line
    text = one_line(exc)
    return text if text.startswith("--dut ") else f"--dut {spec}: {text.removeprefix(spec + ': ')}"


class DutPool:
    """The DUTs of one pytest process: each booted on first use and kept, reset between cases."""

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


_POOL = pytest.StashKey[DutPool]()


def _pool(config) -> DutPool:
    """The process's DUT pool; made on first use, so markers can be checked before any DUT boots."""
    if _POOL not in config.stash:
        config.stash[_POOL] = DutPool(config.getoption("--dut"))
    return config.stash[_POOL]


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    """Before the first case, boot the DUTs the collected scenarios need (see DutPool.warm): a worker's boot
    is paid once, side by side, not inside its first cases."""
    from grelab.scenario.spec import scenario_of
    wanted: dict = {}
    for item in session.items:
        scenario = scenario_of(getattr(item, "module", None))
        if scenario is None or "net" not in getattr(item, "fixturenames", ()):
            continue
        variant = item.callspec.params.get("net") if hasattr(item, "callspec") else None
        for name in scenario.duts:
            interfaces, algorithms = wanted.get(name, (scenario.interfaces, frozenset()))
            if variant is not None and variant.esp:
                algorithms |= {variant.esp}
            wanted[name] = (interfaces, algorithms)
    if wanted and not session.config.option.collectonly:
        pool = _pool(session.config)
        session.config.add_cleanup(pool.stop)
        pool.warm(wanted)
    return (yield)


@pytest.fixture(scope="session")
def grelab_dut_pool(request):
    pool = _pool(request.config)
    yield pool
    pool.stop()


def pytest_runtest_setup(item):
    """A case whose markers ask for what the DUT cannot do: skipped, with the reason, under --dut auto; failed
    when the DUT was named explicitly, or when no DUT can be selected at all."""
    wanted = [CAPABILITY_OF_MARKER[m.name] for m in item.iter_markers() if m.name in CAPABILITY_OF_MARKER]
    several = max((m.args[0] for m in item.iter_markers("needs_duts")), default=1)
    if not wanted and several == 1:
        return
    pool = _pool(item.config)
    try:
        choice = pool.choice()
    except DutError as exc:
        pytest.fail(f"no usable DUT: {dut_problem(pool.spec, exc)}", pytrace=False)
    missing = [c for c in wanted if c not in choice.capabilities]
    if several > 1 and "several" not in choice.capabilities:
        missing.append(f"{several} DUTs at once")
    if missing and pool.spec == "auto":
        pytest.skip(f"DUT {choice.name} lacks: {', '.join(missing)}")
    if missing:
        pytest.fail(f"--dut {pool.spec} lacks what this case needs: {', '.join(missing)}", pytrace=False)


@pytest.fixture
def duts(grelab_dut_pool):
    """duts("r1", "r2", interfaces=("wan", "lan")) -> those DUTs, clean (booted once per worker, else reset);
    ready_later=True for a lab build, which waits for a reset still under way right before the DUT's plan."""
    used: list[str] = []

    def get(*names: str, interfaces: tuple[str, ...] = ("wan", "lan"), ready_later: bool = False):
        got = grelab_dut_pool.get_many(names, tuple(interfaces), ready_later)
        used.extend(names)
        return got[0] if len(got) == 1 else got
    yield get
    grelab_dut_pool.release(used)


@pytest.fixture
def grelab_scope(request):
    """The case's scope: closed when the case ends, every cleanup run even if one fails. When a DUT died
    during the case, the case already failed naming that; the lab's cleanups then only remove what is left."""
    from grelab.lab.ownership import current_run
    scope = current_run().scope.child(f"case {request.node.nodeid}")
    yield scope
    try:
        scope.close()
    finally:
        pool = request.config.stash.get(_POOL, None)
        for name, _ in pool.dead() if pool is not None else []:
            pool.stop_one(name)  # nothing of it stays behind for the rest of the run


@pytest.fixture
def lab(grelab_scope):
    """lab(topology) -> the built lab; everything it made is removed after the case."""
    from grelab.lab.build import build
    return lambda topology: build(topology, scope=grelab_scope)


_RECORDER = pytest.StashKey["GoldenRecorder"]()


@pytest.fixture
def golden(request):
    from grelab.golden.recorder import GoldenRecorder
    from grelab.golden.store import GoldenStore, case_file_name
    config = request.config
    scenario = Path(request.node.path).stem.removeprefix("test_")
    hint = f"pytest '{request.node.nodeid}' --update-golden"
    recorder = GoldenRecorder(GoldenStore(config.rootpath / "pcaps"), scenario, case_file_name(request.node.name), hint)
    request.node.stash[_RECORDER] = recorder
    return recorder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A case during which a DUT died fails with one error naming how it died (a panic, with the guest's
    last console lines), whatever symptom the case body saw first (a missing reply, a teardown error)."""
    report = yield
    _report_case(item, call, report)
    pool = item.config.stash.get(_POOL, None)
    dead = pool.dead() if pool is not None else []
    if dead and call.when in ("call", "setup") and report.failed:
        report.longrepr = "\n\n".join(f"DUT {name} died during this case: {how}" for name, how in dead)
    elif call.when in ("call", "setup") and report.failed and pool is not None:
        crashed = pool.daemons_gone()
        if crashed:  # what the case saw (a route never learnt, a timeout) follows from this: said first
            report.longrepr = "\n".join(f"daemon {name} in DUT {dut} died during this case: {how}"
                                        for dut, name, how in crashed) + f"\n\nwhat the case saw then:\n{report.longrepr}"
    elif dead and call.when == "teardown" and report.failed:
        report.outcome, report.longrepr = "passed", None  # said once, at the call; the lab is gone with it
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After a case body passes, its golden is compared (or rewritten); captures are kept either way."""
    try:
        result = yield
    except BaseException:
        _keep_only(item)
        raise
    recorder = item.stash.get(_RECORDER, None)
    if recorder is not None:
        failure, status = recorder.finish(item.config.getoption("--update-golden"), _keep_dir(item))
        if status:
            item.user_properties.append(("golden", f"{status}: {recorder.store.path(recorder.scenario, recorder.case)}"))
        if failure:
            pytest.fail(failure, pytrace=False)  # the message says it all; grelab's own frames would only distract
    return result


def _report_case(item, call, report) -> None:
    """With --grelab-report: the case's page data, once it has a result (its call, or a setup that did not pass)."""
    folder = item.config.getoption("--grelab-report", None)
    if not folder or not (call.when == "call" or (call.when == "setup" and not report.passed)):
        return
    from grelab.golden import report as run_report
    failure = str(report.longrepr) if report.failed else ""
    if report.skipped and isinstance(report.longrepr, tuple):
        failure = report.longrepr[2]
    run_report.save_case(Path(folder), run_report.case_data(item, report.outcome, failure))


def pytest_sessionfinish(session):
    """With --grelab-report: the page, once, by the process that saw every case (xdist's controller)."""
    folder = session.config.getoption("--grelab-report", None)
    if folder and not hasattr(session.config, "workerinput") and (Path(folder) / "cases").is_dir():
        from grelab.golden.report import write_page
        page = write_page(Path(folder))
        session.config.stash[_REPORT_PAGE] = page


_REPORT_PAGE = pytest.StashKey[Path]()


def _keep_dir(item) -> Path | None:
    keep = item.config.getoption("--keep-pcaps")
    return Path(keep) if keep else None


def _keep_only(item) -> None:
    """A failed case still leaves its captures with --keep-pcaps: that is when they are wanted most."""
    recorder = item.stash.get(_RECORDER, None)
    if recorder is not None and _keep_dir(item) is not None:
        recorder.finish(update=False, keep_dir=_keep_dir(item))


def pytest_terminal_summary(terminalreporter):
    page = terminalreporter.config.stash.get(_REPORT_PAGE, None)
    if page is not None:
        terminalreporter.write_line(f"grelab report: {page.resolve()}")
    _summary(terminalreporter)


def _summary(terminalreporter):
    """How many cases were skipped and why (one line per reason), so a mostly skipped run is seen for what it
    is; the figures tests recorded; with --update-golden: which goldens were created, changed, or left as they were."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("grelab: skipped cases")
        for reason, count in sorted(reasons.items(), key=lambda r: -r[1]):
            terminalreporter.write_line(f"{count} skipped: {reason}")
    figures = [value for reports in terminalreporter.stats.values() for r in reports
               for key, value in getattr(r, "user_properties", []) if key == "figures" and r.when == "call"]
    if figures:  # a test's record_property("figures", line): shown in CI, also from xdist workers
        terminalreporter.section("grelab figures")
        for line in sorted(figures):
            terminalreporter.write_line(line)
    lines = [value for reports in terminalreporter.stats.values() for r in reports
             for key, value in getattr(r, "user_properties", []) if key == "golden" and r.when == "call"]
    if lines:
        terminalreporter.section("golden pcaps")
        changed = sorted(line for line in lines if not line.startswith("unchanged")
                         or re.search(r"companion (created|changed)", line))  # a companion written counts
        for line in changed:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{len(changed)} written, {len(lines) - len(changed)} unchanged")
