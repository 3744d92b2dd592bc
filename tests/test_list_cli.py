"""`grelab list`, run as a user would: the whole catalogue in 100 columns, -v with each case's sentence, --json
for tools; every case pytest collects is there once, with the kinds of DUT that can run it."""
import json
import os
import re
import subprocess
import sys
from collections import defaultdict

import pytest

from cli_user import ROOT, grelab, one_line_error
from grelab.scenario.catalog import WIDTH, Case, Entry, first_sentence, render


@pytest.fixture(scope="module")
def collected() -> dict[str, list[str]]:
    """{scenario: its case ids}, as pytest itself collects scenarios/ (a process of its own)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "scenarios"],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    ids = defaultdict(list)
    for line in out.stdout.splitlines():
        if match := re.match(r"scenarios/(\w+)\.py::test_(\S+)$", line):
            ids[match.group(1)].append(match.group(2))
    assert len(ids) >= 20, out.stdout[-2000:]
    return dict(ids)


@pytest.fixture(scope="module")
def catalogue() -> dict:
    done = grelab("list", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def dut_cell(cases: list[dict], kinds: list[str]) -> str:
    """What the DUTs column must say of these cases, from the JSON: a kind that runs all of them by name, one that
    runs k of n as kind(k/n)."""
    said = []
    for kind in kinds:
        k = sum(kind in case["duts"] for case in cases)
        said += [kind if k == len(cases) else f"{kind}({k}/{len(cases)})"] if k else []
    return " ".join(said) or "-"


def blocks(lines: list[str]) -> dict[str, list[str]]:
    """{scenario: its row's lines and those under it}, up to the next scenario's row or the blank line."""
    rows = [n for n, line in enumerate(lines) if re.match(r"[a-z]\w* +\d+ ", line)]
    ends = rows[1:] + [lines.index("", 1)]
    return {lines[at].split()[0]: lines[at:end] for at, end in zip(rows, ends)}


def test_the_whole_catalogue_fits_100_columns_one_entry_per_scenario(collected, catalogue):
    done = grelab("list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(map(len, lines)) <= 100, [line for line in lines if len(line) > 100]
    assert re.match(r"scenario +cases +DUTs +story$", lines[0])
    kinds = list(catalogue["duts"])
    entries = blocks(lines)
    assert sorted(entries) == sorted(collected)
    for scenario in catalogue["scenarios"]:
        block = entries[scenario["name"]]
        name, count, rest = block[0].split(None, 2)
        assert int(count) == len(collected[name]) == len(scenario["cases"])
        cell = dut_cell(scenario["cases"], kinds)
        assert rest.startswith(cell + "  "), (block[0], cell)
        story = [line for line in block[1:] if re.match(r" {5,}\S", line)]  # wrapped under its column
        assert " ".join([rest[len(cell):], *story]).split() == scenario["story"].split()
        # Its cases' ids, wrapped under it: each once, in pytest's order, and no case's sentence.
        ids = [line for line in block[1:] if re.match(r" {4}\S", line)]
        assert " ".join(ids).split() == collected[name]
    two = entries["two_offices"]
    assert re.match(r"two_offices +4 +\S.* +Two offices, one GRE tunnel, in the clear or inside IPsec\.$", two[0])
    assert two[1:] == ["    echo[gre]  echo[gre-in-esp]  tcp[gre]  tcp[gre-in-esp]"]
    assert "h1's ping reaches h2" not in done.stdout and "with this row's algorithm" not in done.stdout
    assert len(lines) < sum(map(len, collected.values())), "more lines than cases"
    assert lines[-1].startswith("--dut auto ")


def test_verbose_gives_each_case_its_sentence_once_and_each_id_its_duts(collected, catalogue):
    done = grelab("list", "-v")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(map(len, lines)) <= 100, [line for line in lines if len(line) > 100]
    text, entries = " ".join(done.stdout.split()), blocks(lines)
    for scenario in catalogue["scenarios"]:
        for function in {case["function"]: case for case in scenario["cases"]}.values():
            label = function["function"].removeprefix("test_")
            assert f"{label}: {function['sentence']}" in text  # the sentence, once per test function
        for case in scenario["cases"]:
            shown = [line.split() for line in entries[scenario["name"]] if line.startswith("    ")
                     and line.split()[0] == case["id"]]
            assert shown == [[case["id"], *(case["duts"] or ["-"])]]
    algorithms = next(s for s in catalogue["scenarios"] if s["name"] == "esp_algorithms")["cases"]
    assert len(algorithms) > 50 and {case["sentence"] for case in algorithms} == {algorithms[0]["sentence"]}
    assert text.count(algorithms[0]["sentence"]) == 1  # one sentence for its many cases, said once


def test_json_carries_every_case_with_its_sentence_needs_and_duts(collected, catalogue):
    assert {s["name"]: [c["id"] for c in s["cases"]] for s in catalogue["scenarios"]} == collected
    duts = catalogue["duts"]
    assert set(duts) == {"host", "uml", "ovs"}
    assert duts["uml"]["capabilities"] == ["esp", "gre", "ipv6_transport", "several"]
    assert duts["ovs"]["capabilities"] == ["gre", "ipv6_transport", "several"]  # Open vSwitch: no ESP
    endpoint = {c["id"]: c["duts"] for s in catalogue["scenarios"] if s["name"] == "grelab_endpoint" for c in s["cases"]}
    assert "ovs" in endpoint["reply_through_r1[gre-ipv6-echo]"]
    assert "ovs" not in endpoint["reply_through_r1[gre-in-esp-ipv6-echo]"]
    assert catalogue["auto"] in ("host", "uml") and duts[catalogue["auto"]]["usable_here"]
    cases = {(s["name"], c["id"]): c for s in catalogue["scenarios"] for c in s["cases"]}
    echo = cases["two_offices", "echo[gre-in-esp]"]
    assert echo["function"] == "test_echo" and echo["sentence"].startswith("h1's ping reaches h2 and comes back;")
    assert echo["needs"] == ["esp", "gre", "several"]
    assert cases["two_offices", "echo[gre]"]["needs"] == ["gre", "several"]
    assert cases["ipv6_transport", "passenger[gre-ipv6-ip6gre]"]["needs"] == ["gre", "ipv6_transport"]
    for case in cases.values():  # a kind runs a case exactly when it declares all the case needs
        assert case["duts"] == [k for k, d in duts.items() if set(case["needs"]) <= set(d["capabilities"])]
        assert case["sentence"] and case["sentence"] != "(no docstring)"
    assert all(s["story"] != "(no docstring)" for s in catalogue["scenarios"])


def test_a_dut_of_yours_is_listed_beside_host_and_uml(tmp_path):
    (tmp_path / "lesser.py").write_text("from grelab.dut.base import Dut\n\nclass GreOnly(Dut):\n"
                                        "    capabilities = frozenset({'gre'})\n")
    env = {"PYTHONPATH": f"{ROOT}:{tmp_path}"}
    catalogue = json.loads(grelab("list", "--dut", "lesser:GreOnly", "--json", env=env).stdout)
    cases = {c["id"]: c["duts"] for s in catalogue["scenarios"] if s["name"] in ("grelab_endpoint", "two_offices")
             for c in s["cases"]}
    assert "lesser:GreOnly" in cases["reply_through_r1[gre-ipv6-echo]"]
    assert "lesser:GreOnly" not in cases["reply_through_r1[gre-in-esp-ipv6-echo]"]  # lacks esp
    assert "lesser:GreOnly" not in cases["echo[gre]"]  # lacks two DUTs at once
    assert catalogue["duts"]["lesser:GreOnly"] == {"capabilities": ["gre"], "usable_here": True,
                                                   "why": "named by --dut lesser:GreOnly"}
    done = grelab("list", "--dut", "lesser:GreOnly", env=env)
    lines = done.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    row = next(line for line in lines if line.startswith("grelab_endpoint "))
    assert re.search(r" 6  (host )?(uml )?(ovs\(3/6\) )?lesser:GreOnly\(3/6\) +grelab as the far end", row), row
    assert "lesser:GreOnly: declares gre; usable here (named by --dut lesser:GreOnly)" in done.stdout


def test_a_dut_that_cannot_be_used_is_one_line_exit_2():
    message = one_line_error(grelab("list", "--dut", "no.such:Thing"), "list")
    assert message.startswith("grelab list: --dut no.such:Thing: cannot load it")


def test_first_sentences_and_width_whatever_the_names():
    assert first_sentence("Two offices. The rest\nof it.\n\nMore.") == "Two offices."
    assert first_sentence("RFC 2784, as Linux does it: no full stop") == "RFC 2784, as Linux does it: no full stop"
    assert first_sentence("  A story\n  over two lines (v1.2 and 3.4).\n") == "A story over two lines (v1.2 and 3.4)."
    assert first_sentence(None) == first_sentence("  \n ") == "(no docstring)"
    long = "a.very.long.module.path.of.a.dut.of.yours:WithAClassNameToMatch"
    cases = tuple(Case(f"case_number_{n}[gre-in-esp-variant-{n}]", f"test_case_number_{n}", "word " * 60,
                       {"gre": "gre"}) for n in range(7))
    for kinds in ({"uml": frozenset({"gre"})}, {"uml": frozenset({"gre"}), long: frozenset({"gre"})}):
        for verbose in (False, True):
            lines = render([Entry("a_scenario_with_a_long_name", "tale " * 40, cases)], kinds, verbose)
            assert max(map(len, lines)) <= WIDTH, "\n".join(lines)
            assert " ".join(lines).split().count("tale") == 40
