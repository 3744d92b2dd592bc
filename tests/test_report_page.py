"""The run report's page assembled from saved cases (grelab.golden.report.write_page, grelab.golden.report_page),
without a run: the order, the summary, a teardown that failed, the links. tests/test_report.py reads real runs'
pages in Chromium."""
import html
import re
import shutil
from pathlib import Path

from grelab.golden.decrypted import companion_path as companion
from grelab.golden.report import save_case, write_page

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"


def case(scenario: str, name: str, outcome: str, failure: str = "", golden: Path | None = None) -> dict:
    data = {"nodeid": f"scenarios/{scenario}.py::{name}", "scenario": scenario, "case": name,
            "scenario_story": f"{scenario}'s story.", "story": f"{name}'s story.", "outcome": outcome,
            "failure": failure, "dut": "uml, kernel K", "nodes": [], "arrows": []}
    if golden is not None:
        data["golden"] = str(golden)
    return data


def page(tmp_path: Path, cases: list[dict], steps=None) -> str:
    out = tmp_path / "report"
    for c in cases:
        save_case(out, c)
    return write_page(out, steps or {}, took=12.5).read_text()


def test_failures_first_and_open_then_each_scenario_skipped_before_passed_and_folded(tmp_path):
    text = page(tmp_path, [case("alpha", "test_a", "passed"), case("alpha", "test_b", "skipped", "no ESP here"),
                           case("beta", "test_c", "failed", "    IPv6.hlim: expected 7, got 62"),
                           case("beta", "test_d", "passed")])
    order = re.findall(r'<details class="case (\w+)" id="([^"]+)"[^>]*?( open)?>', text)
    assert order == [("failed", "scenarios_beta.py_test_c", " open"), ("skipped", "scenarios_alpha.py_test_b", ""),
                     ("passed", "scenarios_alpha.py_test_a", ""), ("passed", "scenarios_beta.py_test_d", "")]
    assert "<h1>grelab run: 2 of 4 cases passed, 1 failed, 1 skipped</h1>" in text
    assert "<mark>IPv6.hlim: expected 7, got 62</mark>" in text  # the field that differs stands out
    assert '<span class="reason">no ESP here</span>' in text
    rows = re.findall(r'<tr data-scenario="(\w+)">.*?</tr>', text)
    assert rows == ["beta", "alpha"]  # the scenario with a failure first


def test_steps_times_add_up_per_scenario_and_a_failed_teardown_makes_an_error(tmp_path):
    steps = {"scenarios/alpha.py::test_a": {"setup": 0.25, "call": 1.5, "teardown": 0.125},
             "scenarios/alpha.py::test_b": {"setup": 0.5, "call": 0.25, "teardown": 0.25,
                                            "teardown_failure": "lab could not be removed"}}
    text = page(tmp_path, [case("alpha", "test_a", "passed"), case("alpha", "test_b", "passed")], steps)
    assert "setup 0.25 s · call 1.50 s · teardown 0.12 s" in text
    assert re.search(r'<details class="case error" id="scenarios_alpha.py_test_b"[^>]* open>', text)
    assert "teardown: lab could not be removed" in text
    assert '<td data-v="2.875">2.88</td>' in text  # alpha's cases' steps, all of them
    assert "1 of 2 cases passed, 1 error" in text


def test_links_to_the_golden_and_its_decrypted_companion_only_when_it_exists(tmp_path):
    pcaps = tmp_path / "pcaps/alpha"
    pcaps.mkdir(parents=True)
    for name in ("a.pcapng", "b.pcapng"):
        shutil.copy(PCAPS / "two_offices/echo-gre.pcapng", pcaps / name)
    shutil.copy(PCAPS / "two_offices/echo-gre.pcapng", companion(pcaps / "a.pcapng"))
    assert companion(pcaps / "a.pcapng").name == "a.decrypted.pcapng"
    text = html.unescape(page(tmp_path, [case("alpha", "test_a", "passed", golden=pcaps / "a.pcapng"),
                                         case("alpha", "test_b", "passed", golden=pcaps / "b.pcapng"),
                                         case("alpha", "test_c", "failed", golden=pcaps / "c.pcapng")]))
    assert 'golden <a href="../pcaps/alpha/a.pcapng">pcaps/alpha/a.pcapng</a> · golden decrypted ' \
           '<a href="../pcaps/alpha/a.decrypted.pcapng">pcaps/alpha/a.decrypted.pcapng</a>' in text
    b = text[text.index('id="scenarios_alpha.py_test_b"'):]
    assert "pcaps/alpha/b.pcapng</a> (ESP" in b[:b.index("</details>")]  # no companion: no link
    assert "golden pcaps/alpha/c.pcapng (none yet)" in text
