"""The run report: one self-contained HTML page per run, `pytest --grelab-report DIR` / `grelab run --report DIR`.

Each case is written by the process that ran it (DIR/cases/*.json and *.pcapng, so pytest-xdist workers need not
ship frames around): its facts (the plugin's: result, stories, DUT), and a ladder of its packets drawn from the
golden recorder the plugin hands over (grelab.golden.ladder: each frame of the recorder from the node that sent it
to the node it was for, peeled, ESP decrypted, drops crossed out with the counters the case saw move, the first
frame per link that differs from the golden marked). The process that sees every case (xdist's controller, or the
only one) keeps each step's time (RunReport) and assembles the page at the end (grelab.golden.report_page draws it),
with links to each case's golden, its decrypted companion when there is one, and this run's capture; the steps'
times and the run's seconds go to DIR/run.json too, so shards' reports merge into one page (grelab.golden.merge).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from grelab.errors import GrelabError
from grelab.golden import ladder
from grelab.golden.case import read_pcapng, write_pcapng
from grelab.golden.decrypted import companion_path, decrypted_frames, needs_companion
from grelab.golden.recorder import GoldenRecorder
from grelab.outputs import write_all

RUN_FILE = "run.json"  # beside DIR/cases: the run's seconds and each case's steps (grelab report merge reads them)
FACTS = ("nodeid", "scenario", "case", "scenario_story", "story", "outcome", "failure", "dut")


def case_data(facts: dict, recorder: GoldenRecorder | None, lab=None) -> dict:
    """What the page shows of one case: `facts` (FACTS: what pytest knows of it), and from its golden recorder
    and its lab (None when the case had none) the ladder: nodes and arrows."""
    data = {**{key: facts.get(key, "") for key in FACTS}, "nodes": [], "arrows": []}
    if recorder is None:
        return data
    golden = recorder.store.path(recorder.scenario, recorder.case)
    data["golden"] = str(golden.resolve())
    try:
        frames = recorder.record().sorted()
    except (GrelabError, AssertionError, KeyError) as exc:
        data["failure"] += f"\n(no ladder: the captures could not be read: {exc})"
        return data
    data["_frames"] = frames
    if needs_companion(recorder.golden_sas()):  # ESP Wireshark 4.0 cannot decrypt: this run's capture decrypted too
        data["_companion"] = decrypted_frames(frames, recorder.golden_sas())[0]
    ends = {}
    if lab is not None:
        data["nodes"] = [n.name for n in lab.topology.nodes]
        ends = {link: link_ends(lab, *where) for link, where in recorder.where.items()}
    data["arrows"] = ladder.rows(frames, ends, recorder.esp_sas, recorder.counts)
    if data["outcome"] != "passed" and golden.exists():
        try:
            marks = ladder.golden_marks(read_pcapng(golden), frames)
        except GrelabError as exc:
            marks = {}
            data["failure"] += f"\n(the golden could not be read: {exc})"
        for index, why in marks.items():
            data["arrows"][index]["diff"] = why
    for arrow in data["arrows"]:  # ends the lab does not name: columns of their own
        for end in (arrow["from"], arrow["to"]):
            if end not in data["nodes"]:
                data["nodes"].append(end)
    return data


def link_ends(lab, node: str, ifname: str) -> tuple[str, str, str, str]:
    """(node, its MAC, the peer node, its MAC) of the veth whose end node:ifname a capture listens on."""
    for link in lab.topology.links:
        for end, peer in ((link.a, link.b), (link.b, link.a)):
            if (end.node, end.ifname) == (node, ifname):
                return (node, lab.link_end(node, ifname).mac.lower(), peer.node,
                        lab.link_end(peer.node, peer.ifname).mac.lower())
    raise GrelabError(f"no link end {node}:{ifname} in this lab")


def file_stem(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")


def save_case(folder: Path, data: dict) -> None:
    """DIR/cases/<case>.json and .pcapng, written whole (grelab.outputs)."""
    cases = folder / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    stem = file_stem(data["nodeid"])
    frames, decrypted = data.pop("_frames", None), data.pop("_companion", None)
    writers = {str(cases / f"{stem}.json"): lambda tmp: Path(tmp).write_text(json.dumps(data))}
    if frames:
        data["pcap"] = f"cases/{stem}.pcapng"
        writers[str(cases / f"{stem}.pcapng")] = lambda tmp: write_pcapng(frames, Path(tmp))
    if decrypted:
        companion = companion_path(cases / f"{stem}.pcapng")
        data["pcap_decrypted"] = f"cases/{companion.name}"
        writers[str(companion)] = lambda tmp: write_pcapng(decrypted, Path(tmp))
    write_all(writers)


def write_page(folder: Path, steps: dict[str, dict] | None = None, took: float | list[float] | None = None) -> Path:
    """DIR/index.html from every case saved in DIR/cases; steps: {nodeid: {"setup": s, "call": s, "teardown": s,
    "teardown_failure": text}} as pytest reported them; took: the run's seconds (each shard's, merged)."""
    from grelab.golden.report_page import render
    steps = steps or {}
    cases = [json.loads(p.read_text()) for p in sorted((folder / "cases").glob("*.json"))]
    for case in cases:
        mine = dict(steps.get(case["nodeid"], {}))
        problem = mine.pop("teardown_failure", "")
        if problem:  # pytest's word for a case whose teardown failed: an error
            case["outcome"] = "error" if case["outcome"] == "passed" else case["outcome"]
            case["failure"] = (case["failure"] + "\n\n" if case["failure"] else "") + f"teardown: {problem}"
        case["steps"], case["id"] = mine, file_stem(case["nodeid"])
        if case.get("golden"):
            golden = Path(case["golden"])
            case["links"] = {"golden": _link(golden, folder)}
            if companion_path(golden).exists():
                case["links"]["golden decrypted"] = _link(companion_path(golden), folder)
    page = folder / "index.html"
    write_all({str(page): lambda tmp: Path(tmp).write_text(render(cases, took))})
    return page


def _link(path: Path, folder: Path) -> dict:
    """{"href": relative to the page (the pcaps folder and the report stay where they are), "text": pcaps/...}."""
    parts = path.parts
    text = "/".join(parts[len(parts) - 1 - parts[::-1].index("pcaps"):]) if "pcaps" in parts else path.name
    return {"href": os.path.relpath(path, folder.resolve()), "text": text, "exists": path.exists()}


class RunReport:
    """The report's pytest side in the process that sees every case's reports (xdist's controller, or the only
    process): each step's time, the teardowns that failed, and the page once the session ends."""

    def __init__(self, folder: Path):
        self.folder, self.started = Path(folder), time.monotonic()
        self.steps: dict[str, dict] = {}
        self.page: Path | None = None

    def pytest_runtest_logreport(self, report):
        step = self.steps.setdefault(report.nodeid, {})
        step[report.when] = round(report.duration, 4)
        if report.when == "teardown" and report.failed:
            step["teardown_failure"] = str(report.longrepr)

    def pytest_sessionfinish(self, session):
        if (self.folder / "cases").is_dir():
            took = time.monotonic() - self.started
            run = json.dumps({"took": took, "steps": self.steps})  # what the cases' files lack, for a merge
            write_all({str(self.folder / RUN_FILE): lambda tmp: Path(tmp).write_text(run)})
            self.page = write_page(self.folder, self.steps, took)

    def pytest_terminal_summary(self, terminalreporter):
        if self.page is not None:
            terminalreporter.write_line(f"grelab report: {self.page.resolve()}")
