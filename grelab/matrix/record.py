"""The pytest plugin of grelab matrix's runs (`-p grelab.matrix.record --matrix-results FILE`): each case's phases
(outcome, the skip, xfail or failure text, seconds) and properties, written to FILE as JSON when the run ends, one
record per case (grelab.matrix.cells reads them).

On the process running a case it adds to the case's reports what the matrix needs and pytest does not keep: the
variant's implementation (the row leaves it out), and a failure's first differing field: a grelab.errors.Mismatch's,
or the golden comparison's. (A NotApplicable, at set-up or in a case body, is grelab's pytest plugin's to skip.)
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

KEPT = ("implementation", "variant_implementation", "differing")  # the properties a record keeps


def pytest_addoption(parser):
    parser.getgroup("grelab").addoption("--matrix-results", metavar="FILE",
                                        help="grelab matrix: write every case's phases and properties to FILE (JSON)")


def pytest_configure(config):
    path = config.getoption("--matrix-results", None)
    if path and not hasattr(config, "workerinput"):  # xdist's workers report to the controller, which writes
        config.pluginmanager.register(Records(Path(path), config.getoption("--dut")), "grelab-matrix-records")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "setup":
        variant = item.callspec.params.get("net") if hasattr(item, "callspec") else None
        if getattr(variant, "implementation", None):
            report.user_properties.append(("variant_implementation", variant.implementation))
    if report.failed and call.excinfo is not None:
        differing = getattr(call.excinfo.value, "differing", None)
        golden = getattr(item, "funcargs", {}).get("golden")
        if differing is None and call.excinfo.errisinstance(pytest.fail.Exception) and golden is not None:
            differing = golden.differing  # the golden comparison failed the case (grelab.pytest_plugin)
        if differing is not None:
            report.user_properties.append(("differing", differing.as_dict()))
    return report


class Records:
    """Where the reports of every case arrive (the single process, or xdist's controller): kept per case."""

    def __init__(self, path: Path, dut: str):
        self.path, self.dut = path, dut
        self.records: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report):
        record = self.records.setdefault(report.nodeid, {"nodeid": report.nodeid, "dut": self.dut, "phases": [],
                                                         "properties": {}})
        record["phases"].append({"when": report.when, "outcome": report.outcome, "text": _text(report),
                                 "xfail": getattr(report, "wasxfail", None), "seconds": report.duration})
        for key, value in report.user_properties:
            if key in KEPT:
                record["properties"].setdefault(key, value)

    def pytest_sessionfinish(self):
        self.path.write_text(json.dumps(list(self.records.values()), ensure_ascii=False))


def _text(report) -> str:
    """What pytest says of a phase that did not pass: a skip's reason, a failure's message (not its traceback)."""
    if report.passed:
        return ""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    return crash.message if crash is not None else str(longrepr)
