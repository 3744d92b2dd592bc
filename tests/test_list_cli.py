"""`grelab list`, run as a user would: every scenario and case with its story, and what the DUT can run."""
import re

from cli_user import ROOT, grelab, one_line_error


def test_lists_scenarios_and_cases_with_their_stories():
    done = grelab("list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("two_offices "))
    assert re.match(r"two_offices +Two offices, one GRE tunnel, in the clear or inside IPsec\.$", lines[at])
    assert re.match(r"  echo\[gre-in-esp\] +h1's ping reaches h2 and comes back; .* +runs on (uml|host)$", lines[at + 2])
    cases = [line.split()[0] for line in lines if line.startswith("  ")]
    assert [line.split()[0] for line in lines[at + 1:at + 5]] == ["echo[gre]", "echo[gre-in-esp]", "tcp[gre]", "tcp[gre-in-esp]"]
    assert "reply_through_r1[gre-in-esp-ethernet-arp]" in cases  # every parametrized case is a line of its own
    assert "(no docstring)" not in done.stdout  # every case of ours tells what it shows
    assert lines[-1].startswith("DUT: ")


def test_says_which_cases_a_lesser_dut_would_skip(tmp_path):
    (tmp_path / "lesser.py").write_text("from grelab.dut.base import Dut\n\nclass GreOnly(Dut):\n"
                                        "    capabilities = frozenset({'gre'})\n")
    done = grelab("list", "--dut", "lesser:GreOnly", env={"PYTHONPATH": f"{ROOT}:{tmp_path}"})
    assert done.returncode == 0, done.stderr
    verdicts = {line.split()[0]: line.split("  ")[-1].strip() for line in done.stdout.splitlines() if line.startswith("  ")}
    assert verdicts["reply_through_r1[gre-ipv6-echo]"] == "runs on lesser:GreOnly"
    assert verdicts["reply_through_r1[gre-in-esp-ipv6-echo]"] == "skipped on lesser:GreOnly: lacks esp"
    assert verdicts["echo[gre]"] == "skipped on lesser:GreOnly: lacks 2 DUTs at once"
    assert verdicts["tcp[gre-in-esp]"] == "skipped on lesser:GreOnly: lacks 2 DUTs at once, esp"


def test_a_dut_that_cannot_be_used_is_one_line_exit_2():
    message = one_line_error(grelab("list", "--dut", "no.such:Thing"), "list")
    assert message.startswith("grelab list: --dut no.such:Thing: cannot load it")
