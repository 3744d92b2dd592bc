"""`grelab report merge` and the README's CI workflow: the workflow parses, a job per shard and a merging job; its
shard commands run as written (a folder of their own each, as on their machines) on two scenarios, and its merge
command joins their reports into a page with every case once, the totals of all and working links; reports that
overlap differently are refused, naming the case."""
import json
import math
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from cli_user import ROOT, grelab, one_line_error
from grelab.cli import build_parser
from grelab.golden.report import file_stem
from test_shell import usable

SELECTION = ["two_offices", "gre_options"]  # the catalogue's own scenarios: 15 short cases


def workflow() -> dict:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- ci-workflow -->\n```yaml\n(.*?)\n```", text, re.S)
    assert block, "README: no ```yaml block after <!-- ci-workflow -->"
    return yaml.safe_load(block.group(1))


def runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def as_written(command: str, shard: int, count: int) -> str:
    """A workflow command with its matrix values, grelab as the checkout's."""
    command = command.replace("${{ matrix.shard }}", str(shard)).replace("${{ strategy.job-total }}", str(count))
    assert "${{" not in command, command
    return command.replace(".venv/bin/grelab", f"{sys.executable} -m grelab.cli")


def test_the_workflow_is_a_job_per_shard_each_uploading_its_report_and_a_job_merging_them():
    flow = workflow()
    shard, report = flow["jobs"]["shard"], flow["jobs"]["report"]
    shards = shard["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1)) and len(shards) >= 2 and shard["strategy"]["fail-fast"] is False
    [command] = [r for r in runs(shard) if "grelab run" in r]
    assert "--shard ${{ matrix.shard }}/${{ strategy.job-total }}" in command and "--report report" in command
    [upload] = [s for s in shard["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"] == {"name": "report-${{ matrix.shard }}", "path": "report"} and upload["if"] == "always()"
    assert report["needs"] == "shard" and report["if"] == "always()"
    [download] = [s for s in report["steps"] if s.get("uses", "").startswith("actions/download-artifact@")]
    assert download["with"] == {"pattern": "report-*", "path": "reports"}
    [merge] = [r for r in runs(report) if "grelab report merge" in r]
    assert merge == ".venv/bin/grelab report merge reports/report-* -o report"
    for line in [command, merge]:  # grelab's own parser takes them as they are
        words = as_written(line, 1, len(shards)).replace("reports/report-*", "reports/report-1").split()
        build_parser().parse_args(words[words.index("grelab.cli") + 1:])
    assert "./setup.sh" in runs(shard)


class Page(HTMLParser):
    """What a test reads of the report page: case ids, links, the title, the summary's footer and the time line."""

    def __init__(self, text: str):
        super().__init__()
        self.cases, self.links, self.text, self.where = [], [], {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "details" and "case" in attrs.get("class", ""):
            self.cases.append(attrs["id"])
        if tag == "a" and attrs.get("href", "").endswith(".pcapng"):
            self.links.append(attrs["href"])
        self.where.append(attrs.get("class") or tag)

    def handle_endtag(self, tag):
        self.where.pop() if self.where else None

    def handle_data(self, data):
        if self.where:
            self.text.setdefault(self.where[-1], []).append(data)


def test_the_workflows_shard_and_merge_commands_run_as_written(tmp_path):
    """The workflow's jobs run here: each shard command in a folder of its own (its machine) on SELECTION, its report
    "uploaded" to reports/report-I of the merging job's folder, then the merge command there. The merged page holds
    every case once, the totals of all the shards' steps, and links that reach each capture and golden."""
    if not usable():
        pytest.skip("no DUT that can be two routers at once")
    flow = workflow()
    shards = flow["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    [command] = [r for r in runs(flow["jobs"]["shard"]) if "grelab run" in r]
    [merge] = [r for r in runs(flow["jobs"]["report"]) if "grelab report merge" in r]
    (tmp_path / "merge/reports").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for shard in shards:
        job = tmp_path / f"job-{shard}"
        job.mkdir()
        done = subprocess.run(f"{as_written(command, shard, len(shards))} {' '.join(SELECTION)}", shell=True,
                              cwd=job, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert list((job / "report/cases").glob("*.json"))  # each part ran some cases
        shutil.copytree(job / "report", tmp_path / f"merge/reports/report-{shard}")
    done = subprocess.run(as_written(merge, 0, len(shards)), shell=True, cwd=tmp_path / "merge", env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                *(f"scenarios/{s}.py" for s in SELECTION)], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=120)
    nodeids = [line for line in collected.stdout.splitlines() if "::" in line]
    ran = [json.loads(p.read_text())["nodeid"] for p in tmp_path.glob("merge/reports/report-*/cases/*.json")]
    assert sorted(ran) == sorted(nodeids) and len(nodeids) == 15  # the parts: disjoint, every case

    out = tmp_path / "merge/report"
    assert done.stdout == f"merged {len(shards)} reports, 15 cases (15 passed): {out / 'index.html'}\n"
    text = (out / "index.html").read_text()
    page = Page(text)
    assert sorted(page.cases) == sorted(file_stem(n) for n in nodeids)  # each once
    assert "".join(page.text["h1"]) == "grelab run: 15 of 15 cases passed"
    parts = [json.loads((tmp_path / f"job-{s}/report/run.json").read_text()) for s in shards]
    steps = math.fsum(math.fsum(v for k, v in step.items() if k in ("setup", "call", "teardown"))
                      for part in parts for step in part["steps"].values())  # exact, as the page sums: any order
    assert "".join(page.text["took"]) == (f"The run's {len(parts)} shards took "
                                          + ", ".join(f"{p['took']:.1f}" for p in parts)
                                          + f" s; the cases' steps {steps:.1f} s of worker time.")
    footer = re.search(r"<tfoot><tr><th>2 scenarios</th>(.*?)</tr></tfoot>", text).group(1)
    assert re.findall(r'data-v="([\d.]+)"', footer) == ["15", "0", "0", f"{steps:.3f}"]

    captures = [link for link in page.links if link.startswith("cases/")]
    goldens = [link for link in page.links if not link.startswith("cases/")]
    assert len(captures) >= 15 and len(goldens) >= 15  # each case's capture (and ESP's decrypted one), each golden
    assert all((out / link).is_file() for link in page.links), [link for link in page.links if not (out / link).is_file()]
    assert all((out / link).resolve().is_relative_to(ROOT / "pcaps") for link in goldens)
    for link in captures:  # a copy of the shard's capture, byte for byte
        [shard_copy] = tmp_path.glob(f"merge/reports/report-*/{link}")
        assert (out / link).read_bytes() == shard_copy.read_bytes()


GOLDEN = ROOT / "pcaps/two_offices/echo-gre.pcapng"


def report(folder: Path, cases: dict[str, str], took: float = 3.0) -> Path:
    """A run report as the plugin writes one (grelab.golden.report.save_case, run.json): {nodeid: outcome}, each case
    with a capture (two_offices' echo golden) and steps of 0.1 + 0.2 + 0.05 s."""
    from grelab.golden.case import read_pcapng
    from grelab.golden.report import case_data, save_case
    for nodeid, outcome in cases.items():
        path, _, name = nodeid.partition("::")
        data = case_data({"nodeid": nodeid, "scenario": Path(path).stem, "case": name, "outcome": outcome,
                          "scenario_story": "A story.", "story": "A case."}, None)
        data.update(golden=str(GOLDEN), _frames=read_pcapng(GOLDEN))
        save_case(folder, data)
    steps = {nodeid: {"setup": 0.1, "call": 0.2, "teardown": 0.05} for nodeid in cases}
    (folder / "run.json").write_text(json.dumps({"took": took, "steps": steps}))
    return folder


def merge(*args) -> subprocess.CompletedProcess:
    return grelab("report", "merge", *args)


def test_the_totals_are_every_shards(tmp_path):
    one = report(tmp_path / "one", {"scenarios/a.py::test_x[gre]": "passed", "scenarios/a.py::test_y[gre]": "failed"})
    two = report(tmp_path / "two", {"scenarios/b.py::test_x[gre]": "passed", "scenarios/b.py::test_z[gre]": "skipped",
                                    "scenarios/a.py::test_z[gre]": "passed"}, took=4.25)
    done = merge(one, two, "-o", tmp_path / "out")
    assert done.stdout == (f"merged 2 reports, 5 cases (1 failed, 3 passed, 1 skipped): "
                           f"{tmp_path / 'out/index.html'}\n"), done.stderr
    text = (tmp_path / "out/index.html").read_text()
    page = Page(text)
    assert "".join(page.text["h1"]) == "grelab run: 3 of 5 cases passed, 1 failed, 1 skipped"
    assert "".join(page.text["took"]) == "The run's 2 shards took 3.0, 4.2 s; the cases' steps 1.8 s of worker time."
    footer = re.search(r"<tfoot><tr><th>2 scenarios</th>(.*?)</tr></tfoot>", text).group(1)
    assert re.findall(r'data-v="([\d.]+)"', footer) == ["3", "1", "1", "1.750"]
    assert len(page.cases) == 5 and len(set(page.cases)) == 5
    run = json.loads((tmp_path / "out/run.json").read_text())  # merged again, it adds up the same way
    assert run["took"] == [3.0, 4.25] and len(run["steps"]) == 5
    assert merge(tmp_path / "out", "-o", tmp_path / "again").returncode == 0
    assert "".join(Page((tmp_path / "again/index.html").read_text()).text["took"]).startswith("The run's 2 shards took")


def test_the_same_report_twice_merges_each_case_once(tmp_path):
    one = report(tmp_path / "one", {"scenarios/a.py::test_x[gre]": "passed"})
    shutil.copytree(one, tmp_path / "copy")
    done = merge(one, tmp_path / "copy", "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out/cases").glob("*.json"))) == 1


def test_reports_holding_a_case_differently_are_refused_naming_it(tmp_path):
    one = report(tmp_path / "one", {"scenarios/a.py::test_x[gre]": "passed", "scenarios/a.py::test_y[gre]": "passed"})
    again = report(tmp_path / "again", {"scenarios/a.py::test_x[gre]": "failed"})
    error = one_line_error(merge(one, again, "-o", tmp_path / "out"), "report")
    assert error == (f"grelab report: 1 cases are in more than one report, differently: scenarios/a.py::test_x[gre] "
                     f"(in {one}, {again}): each case belongs to one shard (were these made with the same --shard N "
                     "and selection, from one run?)")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.merging.*"))  # nothing half written


def test_what_merge_cannot_merge_is_one_line(tmp_path):
    one = report(tmp_path / "one", {"scenarios/a.py::test_x[gre]": "passed"})
    (tmp_path / "empty").mkdir()
    error = one_line_error(merge(one, tmp_path / "empty", "-o", tmp_path / "out"), "report")
    assert error == (f"grelab report: DIR: '{tmp_path / 'empty'}' is not allowed; allowed: a report folder (pytest "
                     "--grelab-report DIR, grelab run --report DIR, grelab matrix --out DIR): it has no cases or "
                     "matrix.json")
    matrix = report(tmp_path / "matrix", {"scenarios/b.py::test_x[gre]": "passed"})
    (matrix / "matrix.json").write_text("{}")
    error = one_line_error(merge(one, matrix, "-o", tmp_path / "out"), "report")
    assert f"matrix: '{matrix / 'matrix.json'}' is not allowed; allowed: a matrix.json of schema" in error
    (tmp_path / "full").mkdir()
    (tmp_path / "full/mine.txt").write_text("the user's")
    error = one_line_error(merge(one, "-o", tmp_path / "full"), "report")
    assert "allowed: a folder that does not exist yet, or is empty" in error
    assert (tmp_path / "full/mine.txt").read_text() == "the user's"
    assert "allowed: each report folder once" in one_line_error(merge(one, one, "-o", tmp_path / "out"), "report")
    (one / "run.json").unlink()
    assert "a report with its run.json" in one_line_error(merge(one, "-o", tmp_path / "out"), "report")
    assert not (tmp_path / "out").exists()


def test_merge_needs_an_out_folder():
    done = merge("somewhere")
    assert done.returncode == 2 and "-o" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_golden_links_follow_the_merging_checkout(tmp_path):
    """A shard that ran on a machine whose checkout was elsewhere: its goldens' paths are not here, so the merged page
    links the same pcaps/... of the checkout grelab merges in."""
    moved = report(tmp_path / "moved", {"scenarios/a.py::test_x[gre]": "passed"})
    for case in moved.glob("cases/*.json"):
        data = json.loads(case.read_text())
        case.write_text(json.dumps(dict(data, golden=data["golden"].replace(str(ROOT), "/elsewhere/grelab"))))
    assert merge(moved, "-o", tmp_path / "out").returncode == 0
    [golden] = [link for link in Page((tmp_path / "out/index.html").read_text()).links if not link.startswith("cases/")]
    assert (tmp_path / "out" / golden).resolve() == GOLDEN


def test_matrix_shards_merge_into_one_matrix_page(tmp_path):
    """Shards of grelab matrix (--shard I/N --out DIR each) are one matrix again: every row once, figures of all."""
    from grelab.matrix import load, write
    from grelab.matrix.table import build

    def shard(name, nodeid, outcome, part):
        phases = [{"when": "setup", "outcome": "passed", "text": "", "xfail": None, "seconds": 0.1},
                  {"when": "call", "outcome": outcome, "text": "" if outcome == "passed" else "AssertionError: no",
                   "xfail": None, "seconds": 0.2}]
        records = [{"nodeid": nodeid, "dut": "uml", "phases": phases, "properties": {"implementation": "uml"}}]
        write(build(records, ["uml"], [{"dut": "uml", "shard": part, "exit": 0, "seconds": 1.0}], {}), tmp_path / name)
        return tmp_path / name
    one = shard("one", "scenarios/a.py::test_x[gre]", "passed", "1/2")
    two = shard("two", "scenarios/b.py::test_y[gre]", "failed", "2/2")
    result = merge(one, two, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    merged = load(tmp_path / "out" / "matrix.json")
    assert list(merged["rows"]) == ["a.py::test_x[gre]", "b.py::test_y[gre]"]
    assert (merged["figures"]["uml"]["passed"], merged["figures"]["uml"]["failed"]) == (1, 1)
    assert "b.py::test_y[gre]" in (tmp_path / "out" / "matrix.html").read_text()
