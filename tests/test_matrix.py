"""grelab matrix: a case's phases become a cell (pass, fail naming its first differing field, not applicable naming
the capability, a divergence naming the behaviour, error), cells a matrix with figures, shards' matrices one, the
JSON and the page; and one real matrix of gre_options and two_offices on uml and on a DUT kind of these tests' own
(tests/matrix_duts.py), whose cells are each kind of result."""
import html
import json
import re

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import GRE, Ether

from cli_user import ROOT, grelab, one_line_error
from grelab.cli import build_parser
from grelab.cli.matrix import pytest_argv
from grelab.cli.run import scenario_targets
from grelab.errors import Differing, GrelabError, InputError, Mismatch
from grelab.expect import expect
from grelab.golden.case import Frame
from grelab.golden.store import first_differing
from grelab.matrix import exit_status, load, merge, page, write
from grelab.matrix.cells import cell, row
from grelab.matrix.table import SCHEMA, build
from grelab.scenario.net import first_counter
from matrix_duts import KIND, ROW, STALE

NODE = "scenarios/gre_options.py::test_option[gre-output-seq]"
DIFFERING = {"where": "transit", "field": "GRE.seqnum_present", "expected": "1", "got": "0"}


def phase(when, outcome="passed", text="", xfail=None, seconds=0.5):
    return {"when": when, "outcome": outcome, "text": text, "xfail": xfail, "seconds": seconds}


def record(*phases, nodeid=NODE, dut="uml", **properties):
    return {"nodeid": nodeid, "dut": dut, "phases": list(phases), "properties": properties}


PASSED = (phase("setup"), phase("call"), phase("teardown"))


def test_each_outcome_is_its_cell():
    assert cell(record(*PASSED)) == {"nodeid": NODE, "dut": "uml", "seconds": 1.5, "status": "pass", "detail": ""}
    failed = cell(record(phase("setup"), phase("call", "failed", "Mismatch: transit ..."), phase("teardown"),
                         differing=DIFFERING))
    assert (failed["status"], failed["differing"]) == ("fail", DIFFERING)
    assert failed["detail"] == "transit: GRE.seqnum_present expected 1, got 0"
    plain = cell(record(phase("setup"), phase("call", "failed", "AssertionError: no echo reply from 2001:db8::1\nmore")))
    assert (plain["status"], plain["detail"]) == ("fail", "no echo reply from 2001:db8::1")
    marker = cell(record(phase("setup", "skipped", "Skipped: not applicable: DUT ovs lacks esp")))
    assert (marker["status"], marker["capability"], marker["detail"]) == ("n/a", "esp", "not applicable: DUT ovs lacks esp")
    item = cell(record(phase("setup", "skipped", "not applicable: DUT r1 lacks gre_iseq: Tunnel gre1 iseq=True")))
    assert (item["status"], item["capability"]) == ("n/a", "gre_iseq")
    diverged = cell(record(phase("setup"), phase("call", "skipped", "", xfail="ovs: checks no sequence (lib/x.c:12)")))
    assert (diverged["status"], diverged["divergence"]) == ("xfail", "ovs: checks no sequence (lib/x.c:12)")
    stale = cell(record(phase("setup"), phase("call", "failed", "[XPASS(strict)] ovs: checks no sequence (lib/x.c:12)")))
    assert stale["status"] == "fail" and stale["detail"] == "passes, yet marked a divergence: ovs: checks no sequence (lib/x.c:12)"
    assert cell(record(phase("setup", "failed", "DutError: DUT r1 did not boot")))["status"] == "error"
    torn = cell(record(phase("setup"), phase("call"), phase("teardown", "failed", "OSError: busy")))
    assert (torn["status"], torn["detail"]) == ("error", "teardown: OSError: busy")
    assert cell(record(phase("setup", "skipped", "Skipped: tshark missing")))["status"] == "skip"
    assert cell(record(phase("setup")))["status"] == "error"  # the run stopped during the case


def test_a_row_leaves_out_what_only_names_the_variants_implementation():
    ike = "scenarios/ikev2.py::test_echo[ikev2-psk-strongswan-libreswan]"
    assert row(record(nodeid=ike, variant_implementation="strongswan→libreswan")) == "ikev2.py::test_echo[ikev2-psk]"
    assert row(record(nodeid="scenarios/ikev2.py::test_echo[strongswan-strongswan]",
                      variant_implementation="strongswan→strongswan")) == "ikev2.py::test_echo"
    assert row(record(nodeid=ike)) == "ikev2.py::test_echo[ikev2-psk-strongswan-libreswan]"  # no implementation named
    escaped = "scenarios/ikev2.py::test_echo[psk-strongswan\\u2192libreswan]"  # pytest's id of a variant named so
    assert row(record(nodeid=escaped, variant_implementation="strongswan→libreswan")) == "ikev2.py::test_echo[psk]"
    assert row(record(nodeid="scenarios/flood.py::test_flood")) == "flood.py::test_flood"


def ikev2_records(dut, status_by_pairing):
    out = []
    for pairing, outcome in status_by_pairing.items():
        nodeid = f"scenarios/ikev2.py::test_echo[psk-{pairing.replace('→', '-')}]"
        out.append(record(phase("setup"), phase("call", outcome), nodeid=nodeid, dut=dut, implementation=pairing,
                          variant_implementation=pairing))
    return out


def test_the_matrix_has_a_column_per_dut_kind_and_per_named_implementation_and_its_figures():
    records = [record(*PASSED), record(phase("setup", "skipped", "not applicable: DUT ovs lacks esp"), dut="ovs"),
               *ikev2_records("uml", {"strongswan→libreswan": "passed", "libreswan→strongswan": "failed"})]
    matrix = build(records, ["uml", "ovs"], [{"dut": "uml", "shard": None, "exit": 1, "seconds": 3.0}], {"scenarios": []})
    assert matrix["implementations"] == ["uml", "ovs", "libreswan→strongswan", "strongswan→libreswan"]
    assert list(matrix["rows"]) == ["gre_options.py::test_option[gre-output-seq]", "ikev2.py::test_echo[psk]"]
    assert set(matrix["rows"]["ikev2.py::test_echo[psk]"]) == {"libreswan→strongswan", "strongswan→libreswan"}
    assert matrix["figures"]["ovs"] == {"passed": 0, "failed": 0, "errors": 0, "not_applicable": 1,
                                        "expected_divergences": 0, "skipped": 0, "seconds": 0.5}
    assert matrix["figures"]["uml"]["passed"] == 1 and matrix["figures"]["libreswan→strongswan"]["failed"] == 1
    assert exit_status(matrix) == 1
    assert exit_status(build(records[:2], ["uml", "ovs"], [], {})) == 0  # n/a is no failure
    # One implementation run by two DUT kinds: a column each, never one cell overwritten.
    twice = build(ikev2_records("uml", {"strongswan→libreswan": "passed"}) +
                  ikev2_records("ovs", {"strongswan→libreswan": "failed"}), ["uml", "ovs"], [], {})
    assert set(twice["rows"]["ikev2.py::test_echo[psk]"]) == {"strongswan→libreswan", "strongswan→libreswan on ovs"}


def test_shards_merge_into_the_matrix_of_all_their_cases():
    one = build([record(*PASSED)], ["uml"], [{"dut": "uml", "shard": "1/2", "exit": 0, "seconds": 2.0}], {})
    two = build(ikev2_records("uml", {"strongswan→libreswan": "failed"}), ["uml"],
                [{"dut": "uml", "shard": "2/2", "exit": 1, "seconds": 4.0}], {})
    merged = merge([one, two])
    assert merged == merge([two, one]) | {"runs": merged["runs"]}  # the order of the shards does not matter
    assert list(merged["rows"]) == ["gre_options.py::test_option[gre-output-seq]", "ikev2.py::test_echo[psk]"]
    assert [r["shard"] for r in merged["runs"]] == ["1/2", "2/2"]
    assert merged["figures"]["uml"]["passed"] == 1 and merged["figures"]["strongswan→libreswan"]["failed"] == 1
    assert merge([one, one]) == one | {"runs": one["runs"] * 2}  # the same cells twice are one
    other = build([record(phase("setup"), phase("call", "failed"))], ["uml"], [], {})
    with pytest.raises(GrelabError, match=r"gre-output-seq\] on uml is in two of the matrices merged"):
        merge([one, other])


def test_the_json_is_the_schema_and_the_page_shows_every_cell(tmp_path):
    records = [record(phase("setup"), phase("call", "failed", "x"), differing=DIFFERING),
               record(phase("setup", "skipped", "not applicable: DUT r1 lacks gre_iseq: Tunnel gre1 iseq=True"), dut=KIND),
               record(phase("setup"), phase("call", "skipped", xfail="ovs: <keys> its own way (a.c:1)"), dut="ovs")]
    matrix = build(records, ["uml", KIND, "ovs"], [{"dut": "uml", "shard": None, "exit": 1, "seconds": 1.0}],
                   {"scenarios": ["gre_options"], "keyword": None})
    data, html = write(matrix, tmp_path / "out")
    read = load(data)
    assert read == json.loads(json.dumps(matrix)) and read["schema"] == SCHEMA
    assert set(read) == {"schema", "duts", "implementations", "selection", "runs", "rows", "figures"}
    for cells in read["rows"].values():
        for found in cells.values():
            assert {"status", "detail", "seconds", "nodeid", "dut"} <= set(found)
    text = html.read_text()
    assert "transit: GRE.seqnum_present expected 1, got 0" in text
    assert "<b>not applicable</b><div class=\"detail\">DUT r1 lacks gre_iseq: Tunnel gre1 iseq=True</div>" in text
    assert "ovs: &lt;keys&gt; its own way (a.c:1)" in text and "<keys>" not in text
    long = build([record(phase("setup"), phase("call", "skipped", xfail="ovs: " + "does its own thing " * 10), dut="ovs")],
                 ["ovs"], [], {})
    assert "<details><summary>ovs: does its own thing" in page.render(long)  # a long behaviour folded under its start
    assert all(f"<th data-sort=\"status\">{c}</th>" in text for c in ("uml", KIND, "ovs"))
    assert page.render(matrix) == text
    (tmp_path / "bad.json").write_text('{"schema": "other"}')
    with pytest.raises(InputError, match="matrix: .*bad.json.* is not allowed; allowed: a matrix.json of schema"):
        load(tmp_path / "bad.json")


def test_a_mismatch_names_its_first_telling_field():
    """The Differing each check gives: a packet's field (not the length that follows from it), a counter, a golden frame."""
    outer = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2")
    want = outer / GRE(seqnum_present=1, sequence_number=0) / IPv6(dst="2001:db8::1") / ICMPv6EchoRequest()
    got = outer / GRE() / IPv6(dst="2001:db8::1") / ICMPv6EchoRequest()

    class Replay:
        def wait(self, until=None, timeout=1.0):
            from grelab.capture.capture import CaptureResult
            return CaptureResult([(0.0, bytes(got))], False, 1, 0, "isp:eth0")
    with pytest.raises(Mismatch) as raised:
        expect(Replay(), bytes(want), timeout=0)
    assert raised.value.differing == Differing("isp:eth0", "GRE.seqnum_present", "1", "0")
    assert first_counter("DUT r1", {"gre1.rx_fifo_errors": 1, "gre1.rx_errors": 1}, {"gre1.rx_errors": 1}) == \
        Differing("DUT r1", "gre1.rx_fifo_errors", "1", "0")
    assert first_counter("DUT r1", {"snmp.IcmpOutDestUnreachs": 0}, {}) == \
        Differing("DUT r1", "snmp.IcmpOutDestUnreachs", "0", "0")  # expected to be seen at 0: not among those seen
    golden, capture = [Frame("transit", 0.0, bytes(want))], [Frame("transit", 0.0, bytes(got))]
    assert first_differing(golden, capture) == Differing("golden transit frame 1", "GRE.seqnum_present", "1", "0")
    missing = first_differing(golden, [])
    assert (missing.where, missing.field, missing.got) == ("golden transit frame 1", "frame", "(none)")
    assert first_differing(golden, golden) is None


def test_a_dut_kind_unknown_or_unusable_is_one_line(tmp_path):
    unknown = one_line_error(grelab("matrix", "two_offices", "--dut", "uml,nosuch", "--out", tmp_path), "matrix")
    assert "'nosuch'" in unknown and "allowed: DUT kinds separated by commas, each one of host, ovs, uml" in unknown
    broken = one_line_error(grelab("matrix", "two_offices", "--dut", "uml,tests.matrix_duts:Missing",
                                   "--out", tmp_path / "out"), "matrix")
    assert broken.startswith("grelab matrix: --dut tests.matrix_duts:Missing: cannot load it")
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written: never a matrix with a quiet empty column
    shard = one_line_error(grelab("matrix", "--dut", "uml", "--shard", "3/2"), "matrix")
    assert "--shard: '3/2' is not allowed; allowed: I/N" in shard


def test_each_kinds_run_is_pytest_with_not_applicable_skipped_and_the_shard_passed_on(tmp_path):
    args = build_parser(("matrix",)).parse_args(["matrix", "two_offices", "--dut", "uml", "-n", "2", "-k", "echo",
                                                 "--shard", "2/3"])
    argv = pytest_argv(scenario_targets(args.scenarios), "uml", args, tmp_path / "uml.json")
    assert argv[1:3] == ["-m", "pytest"] and argv[3] == str(ROOT / "scenarios/two_offices.py")
    for option in (["--dut", "uml"], ["-n", "2"], ["-k", "echo"], ["--shard", "2/3"], ["-p", "grelab.matrix.record"],
                   ["--matrix-results", str(tmp_path / "uml.json")]):
        assert option in [argv[i:i + 2] for i in range(len(argv) - 1)], (option, argv)
    assert "--not-applicable=skip" in argv
    args = build_parser(("matrix",)).parse_args(["matrix", "--dut", "uml"])
    assert not {"--shard", "-n", "-k"} & set(pytest_argv(scenario_targets([]), "uml", args, tmp_path / "u.json"))


def test_a_real_matrix_on_uml_and_a_reduced_kind(tmp_path):
    """gre_options and two_offices on uml and on ReducedUml: each kind of cell, from real runs."""
    done = grelab("matrix", "gre_options", "two_offices", "--dut", f"uml,{KIND}", "--out", tmp_path,
                  "-k", "echo or right-key or ikey-okey or output-seq or input-seq-missing",
                  env={"PYTEST_PLUGINS": "tests.matrix_duts"}, timeout=300)
    assert done.returncode == 1, (done.stdout, done.stderr)  # output-seq fails on ReducedUml, right-key's row is stale
    matrix = load(tmp_path / "matrix.json")
    cells = {(name, where): c for name, row_cells in matrix["rows"].items() for where, c in row_cells.items()}
    status = {key: c["status"] for key, c in cells.items()}
    option = "gre_options.py::test_option[gre-{}]".format
    uml = {key: s for key, s in status.items() if key[1] == "uml"}
    assert uml == {**{(option(c), "uml"): "pass" for c in ("ikey-okey", "output-seq", "input-seq-missing")},
                   (option("right-key"), "uml"): "fail",  # STALE: marked a divergence, yet it passes
                   ("two_offices.py::test_echo[gre]", "uml"): "pass", ("two_offices.py::test_echo[gre-in-esp]", "uml"): "pass"}
    assert cells[option("right-key"), "uml"]["detail"] == f"passes, yet marked a divergence: uml: {STALE.behaviour} " \
        f"({STALE.source})"
    assert status[option("right-key"), KIND] == "pass" and status["two_offices.py::test_echo[gre]", KIND] == "pass"
    esp = cells["two_offices.py::test_echo[gre-in-esp]", KIND]
    assert (esp["status"], esp["capability"]) == ("n/a", "esp")
    iseq = cells[option("input-seq-missing"), KIND]
    assert (iseq["status"], iseq["capability"], iseq["detail"]) == \
        ("n/a", "gre_iseq", "not applicable: DUT r1 lacks gre_iseq: Tunnel gre1 iseq=True")
    diverged = cells[option("ikey-okey"), KIND]
    assert diverged["status"] == "xfail" and ROW.behaviour in diverged["detail"] and ROW.source in diverged["detail"]
    failed = cells[option("output-seq"), KIND]
    assert (failed["status"], failed["differing"]) == \
        ("fail", {"where": "transit", "field": "GRE.seqnum_present", "expected": "1", "got": "0"})
    assert matrix["figures"][KIND] | {"seconds": 0} == {"passed": 2, "failed": 1, "errors": 0, "not_applicable": 2,
                                                        "expected_divergences": 1, "skipped": 0, "seconds": 0}
    assert [r["dut"] for r in matrix["runs"]] == ["uml", KIND]
    shown = html.unescape(re.sub(r" …</summary>|<[^>]+>", "", (tmp_path / "matrix.html").read_text()))
    for c in cells.values():  # each cell's whole text, a long one folded under its start
        assert c["detail"].removeprefix("not applicable: ") in shown
    assert re.search(rf"^{re.escape(KIND)} +2 +1 +0 +2 +1 +0 ", done.stdout, re.M), done.stdout
