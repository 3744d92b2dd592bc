"""grelab's pytest plugin (loaded through the pytest11 entry point): options, markers and fixtures.

Fixtures:
    duts          duts("r1", "r2") -> DUTs booted once per worker (per name), reset before each case (side by side)
    lab           lab(topology) -> a built lab, torn down after the case
    golden        the case's golden recorder (grelab.golden.recorder): compared, or updated, after the case passes
    grelab_scope  the case's scope (grelab.scope): what is deferred there is closed when the case ends
A scenario module gets its `net` fixture from its Scenario (grelab.scenario.spec.Scenario.fixture).
Options: --dut, --kernel PATH, --update-golden, --keep-pcaps DIR, --grelab-report DIR; grelab.shard's --shard I/N,
--store-durations, --durations-file PATH.
Markers: needs_gre, needs_esp, needs_ipv6_transport, needs_duts(n): with --dut auto, a case the selected DUT cannot run is
skipped, saying why; with a DUT named explicitly it fails, and a DUT that cannot be selected at all is an error:
a run that cannot test what it was asked to is never green.
"""
from __future__ import annotations

import re
from pathlib import Path
import pytest

from grelab import shard
from grelab.dut.base import DutError, NotApplicable
from grelab.dut.pool import DutPool

MARKERS = {
    "needs_gre": "the case needs a DUT with GRE (every scenario's case: a DUT of yours may lack it)",
    "needs_esp": "the case needs a DUT with ESP (xfrm)",
    "needs_ipv6_transport": "the case needs GRE over IPv6 transport (ip6_gre) in the DUT",
    "needs_duts(n)": "the case needs n devices under test at once",
}
CAPABILITY_OF_MARKER = {"needs_gre": "gre", "needs_esp": "esp", "needs_ipv6_transport": "ipv6_transport"}


def pytest_addoption(parser):
    group = parser.getgroup("grelab")
    group.addoption("--dut", default="auto", help="device under test: auto (default), host, uml, ovs or module:Class")
    group.addoption("--kernel", metavar="PATH", help="the uml DUT boots this user-mode-linux kernel (also "
                    "GRELAB_KERNEL; default: grelab's own build): grelab kernel build --source DIR makes one")
    group.addoption("--update-golden", action="store_true", help="rewrite the selected cases' golden pcaps")
    group.addoption("--keep-pcaps", metavar="DIR", help="keep every case's captures in DIR/<scenario>/<case>.pcapng")
    group.addoption("--not-applicable", choices=("fail", "skip"), default="fail",
                    help="a case the named DUT has no equivalent for (what it lacks, a plan item it cannot hold): "
                    "fail (default: the run could not test what it was asked to) or skip as \"not applicable: "
                    "...\" (grelab matrix)")
    group.addoption("--grelab-report", metavar="DIR", help="write a run report to DIR/index.html: per case its "
                    "result, story, a ladder diagram of its packets, the golden diff, its pcapng")
    shard.add_options(group)


def pytest_configure(config):
    # A run stopped by SIGTERM (a CI timeout), SIGINT or SIGHUP removes what it made before it exits, whatever
    # thread made it; an xdist controller passes the signal on to its workers, each of which cleans up its own.
    from grelab.lab.ownership import arm_stop_signals, on_stop
    arm_stop_signals()
    if _xdist_controller(config):
        on_stop(_pass_on_to_children)
    if hasattr(config, "workerinput"):  # an xdist worker: its guests and hosts on one CPU, the next worker's the next
        from grelab.dut.uml.guest import pin_guests
        pin_guests(int(config.workerinput["workerid"].removeprefix("gw")))
    elif not _xdist_controller(config) and not config.option.collectonly:  # the one process running the cases
        from grelab.dut.uml.guest import pin_guests
        pin_guests(0)
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    shard.configure(config)  # --shard I/N checked (a usage error), the part selected; --store-durations
    report = config.getoption("--grelab-report", None)
    if report and not hasattr(config, "workerinput"):  # this run's cases only, never a previous run's
        import shutil
        from grelab.golden.report import RunReport
        shutil.rmtree(Path(report) / "cases", ignore_errors=True)
        config.pluginmanager.register(RunReport(Path(report)), "grelab-run-report")  # steps' times, the page
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
        pytest_testnodedown(None, None)


def pytest_report_header(config):
    """The run's first lines name the DUT and its kernel (which kernel ran is part of every result)."""
    line = dut_line(config)
    return [f"grelab DUT: {line}"] if line else None


def dut_line(config) -> str:
    """Which DUT and kernel this process's cases run on (the pool's choice), or "" while none is chosen."""
    pool = config.stash.get(_POOL, None)
    choice = pool.chosen if pool is not None else None
    return f"{choice.name}, kernel {choice.kernel or 'not known to grelab'}" if choice is not None else ""


def dut_problem(spec: str, exc: DutError) -> str:
    """One line: `--dut SPEC: why it cannot be used` (select's messages may name the backend or span lines)."""
    from grelab.errors import one_line
    text = one_line(exc)
    return text if text.startswith("--dut ") else f"--dut {spec}: {text.removeprefix(spec + ': ')}"


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


def needs(item) -> dict[str, str]:
    """What a case asks of its DUT, read from its markers: {capability: how to say it is missing}, in the words
    of Dut.capabilities ("several" for needs_duts(n) with n > 1). `grelab list` shows it too."""
    wanted = {CAPABILITY_OF_MARKER[m.name]: CAPABILITY_OF_MARKER[m.name]
              for m in item.iter_markers() if m.name in CAPABILITY_OF_MARKER}
    several = max((m.args[0] for m in item.iter_markers("needs_duts")), default=1)
    return wanted | ({"several": f"{several} DUTs at once"} if several > 1 else {})


def _check_needs(item):
    """A case whose markers ask for what the DUT cannot do: skipped, with the reason, under --dut auto; failed
    when the DUT was named explicitly, or when no DUT can be selected at all."""
    wanted = needs(item)
    if not wanted:
        return
    pool = _pool(item.config)
    try:
        choice = pool.choice()
    except DutError as exc:
        pytest.fail(f"no usable DUT: {dut_problem(pool.spec, exc)}", pytrace=False)
    missing = [say for capability, say in wanted.items() if capability not in choice.capabilities]
    if missing and item.config.getoption("--not-applicable") == "skip":
        pytest.skip(f"not applicable: DUT {choice.name} lacks {', '.join(missing)}")
    if missing and pool.spec == "auto":
        pytest.skip(f"DUT {choice.name} lacks: {', '.join(missing)}")
    if missing:
        pytest.fail(f"--dut {pool.spec} lacks what this case needs: {', '.join(missing)}", pytrace=False)
    _mark_divergences(item, choice.name)


def _mark_divergences(item, dut_kind: str) -> None:
    """A case where an implementation it runs on behaves its own way (grelab.dut.divergences): a strict xfail
    naming that behaviour; the implementations are recorded for grelab matrix."""
    from grelab.dut.divergences import divergences_for, implementations_of, reason
    variant = item.callspec.params.get("net") if hasattr(item, "callspec") else None
    named = getattr(variant, "implementation", None)
    item.user_properties.append(("implementation", named or dut_kind))
    rows = divergences_for(item.nodeid, implementations_of(dut_kind, named))
    if rows:
        item.add_marker(pytest.mark.xfail(strict=True, reason=reason(rows)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """Before the case's fixtures: what its markers ask of the DUT (_check_needs), and its divergences. NotApplicable
    (from a DUT's apply, here or in a case body) skips the case as "not applicable" under --not-applicable=skip."""
    _check_needs(item)
    return (yield from _applicable(item))


def _applicable(item):
    try:
        return (yield)
    except NotApplicable as exc:
        if item.config.getoption("--not-applicable") == "skip":
            pytest.skip(f"not applicable: {exc}")
        pytest.fail(f"--dut {_pool(item.config).spec} cannot run this case: {exc}", pytrace=False)  # else fails


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
    _report_case(item, call, report)  # what the run's report says of the case: what pytest says
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After a case body passes, its golden is compared (or rewritten); captures are kept either way."""
    try:
        result = yield from _applicable(item)
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
    """With --grelab-report: the case's page data, once it has a result (its call, or a setup that did not pass),
    drawn from its golden recorder and its lab (grelab.golden.report)."""
    folder = item.config.getoption("--grelab-report", None)
    if not folder or not (call.when == "call" or (call.when == "setup" and not report.passed)):
        return
    from grelab.golden import report as run_report
    failure = str(report.longrepr) if report.failed else ""
    if report.skipped and isinstance(report.longrepr, tuple):
        failure = report.longrepr[2]
    scenario_story = (getattr(item.module, "__doc__", "") or "").strip().split("\n\n")[0]
    story = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
    facts = {"nodeid": item.nodeid, "scenario": Path(str(item.path)).stem, "case": item.name, "story": story,
             "scenario_story": scenario_story, "failure": failure, "dut": dut_line(item.config),
             "outcome": "error" if call.when == "setup" and report.failed else report.outcome}
    net = item.funcargs.get("net") if hasattr(item, "funcargs") else None
    run_report.save_case(Path(folder), run_report.case_data(facts, item.stash.get(_RECORDER, None),
                                                            getattr(net, "lab", None)))


def _keep_dir(item) -> Path | None:
    keep = item.config.getoption("--keep-pcaps")
    return Path(keep) if keep else None


def _keep_only(item) -> None:
    """A failed case still leaves its captures with --keep-pcaps: that is when they are wanted most."""
    recorder = item.stash.get(_RECORDER, None)
    if recorder is not None and _keep_dir(item) is not None:
        recorder.finish(update=False, keep_dir=_keep_dir(item))


def pytest_terminal_summary(terminalreporter):
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
    figures = _properties(terminalreporter, "figures")
    if figures:  # a test's record_property("figures", line): shown in CI, also from xdist workers
        terminalreporter.section("grelab figures")
        for line in sorted(figures):
            terminalreporter.write_line(line)
    corpus = _properties(terminalreporter, "corpus")  # tests/test_corpus.py's figures
    if corpus:
        terminalreporter.section("corpus: captures no one here wrote")
        for line in corpus:
            terminalreporter.write_line(line)
    lines = _properties(terminalreporter, "golden")
    if lines:
        terminalreporter.section("golden pcaps")
        changed = sorted(line for line in lines if not line.startswith("unchanged")
                         or re.search(r"companion (created|changed)", line))  # a companion written counts
        for line in changed:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{len(changed)} written, {len(lines) - len(changed)} unchanged")


def _properties(terminalreporter, name: str) -> list[str]:
    """The values tests recorded under `name` (record_property, item.user_properties), from every worker."""
    return [value for reports in terminalreporter.stats.values() for r in reports
            for key, value in getattr(r, "user_properties", []) if key == name and r.when == "call"]
