"""--shard I/N (grelab.shard): the parts are disjoint and cover the selection for any N, do not depend on the order
pytest collected in, and are balanced by the committed durations; a bad --shard is one usage line; --store-durations
(tests/test_report_merge.py runs a shard with it) is read back here."""
import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from cli_user import ROOT, grelab, one_line_error
from grelab.errors import GrelabError, InputError
from grelab.shard import DURATIONS_FILE, UNRECORDED, estimates, parse_shard, partition, read_durations
from test_shell import usable

RECORDED = read_durations(ROOT / DURATIONS_FILE)
UNRECORDED_CASES = ["scenarios/esp_algorithms.py::test_echo[gre-in-esp-new-row]", "scenarios/new_story.py::test_a[gre]",
                    "tests/test_x.py::test_y"]
NODEIDS = sorted(RECORDED) + UNRECORDED_CASES


def test_the_committed_durations_are_the_catalogues():
    assert len(RECORDED) >= 160 and all(n.startswith("scenarios/") for n in RECORDED)
    assert all(0 < seconds < 30 for seconds in RECORDED.values())


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 200])
def test_the_parts_are_disjoint_and_cover_every_case(count):
    parts = partition(estimates(NODEIDS, RECORDED), count)
    assert len(parts) == count
    together = [n for part in parts for n in part]
    assert sorted(together) == sorted(NODEIDS)  # each case in exactly one part
    if count <= len(NODEIDS):
        assert all(parts)


@pytest.mark.parametrize("count", [2, 3, 4])
def test_the_parts_do_not_depend_on_the_order_cases_were_collected_in(count):
    expected = partition(estimates(NODEIDS, RECORDED), count)
    shuffled = list(NODEIDS)
    for seed in range(10):
        random.Random(seed).shuffle(shuffled)
        recorded = dict(random.Random(seed + 1).sample(sorted(RECORDED.items()), len(RECORDED)))
        assert partition(estimates(shuffled, recorded), count) == expected


@pytest.mark.parametrize("count", [2, 3, 4, 8])
def test_the_parts_are_balanced_by_recorded_time(count, record_property):
    """The longest part is within the longest case of the ideal (total / N: greedy LPT's bound), and over the
    catalogue's many short cases within 2% of it."""
    costs = estimates(NODEIDS, RECORDED)
    totals = [sum(costs[n] for n in part) for part in partition(costs, count)]
    ideal = sum(costs.values()) / count
    assert max(totals) <= ideal + max(costs.values())
    assert max(totals) <= 1.02 * ideal, totals
    record_property("figures", f"shard: {count} parts of {sum(costs.values()):.1f} s recorded: "
                    + ", ".join(f"{t:.2f}" for t in totals) + f" s (ideal {ideal:.2f})")


def test_equal_cases_are_placed_by_node_id():
    costs = {f"scenarios/s.py::test_{c}": 1.0 for c in "dcba"}
    assert partition(costs, 2) == [["scenarios/s.py::test_a", "scenarios/s.py::test_c"],
                                   ["scenarios/s.py::test_b", "scenarios/s.py::test_d"]]
    assert partition({"x::a": 5.0, "x::b": 1.0, "x::c": 1.0, "x::d": 3.0}, 2) == [["x::a"], ["x::d", "x::b", "x::c"]]


def test_a_case_not_recorded_is_estimated_from_its_file_else_from_all():
    recorded = {"s/a.py::t[1]": 1.0, "s/a.py::t[2]": 2.0, "s/a.py::t[3]": 9.0, "s/b.py::t": 0.5}
    got = estimates(["s/a.py::t[1]", "s/a.py::t[4]", "s/c.py::t"], recorded)
    assert got == {"s/a.py::t[1]": 1.0, "s/a.py::t[4]": 2.0, "s/c.py::t": 1.5}
    assert estimates(["s/a.py::t"], {}) == {"s/a.py::t": UNRECORDED}


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "1/0", "a/b", "-1/2", "1/2/3", "1/1001", ""])
def test_a_shard_outside_i_of_n_is_refused_naming_the_option(text):
    with pytest.raises(InputError, match="^--shard: .* allowed: I/N, part I of N parts"):
        parse_shard(text)


def test_a_shard_is_read():
    assert parse_shard("1/1") == (1, 1) and parse_shard(" 3/4 ") == (3, 4)


def test_a_durations_file_that_is_not_one_is_grelabs_error(tmp_path):
    (tmp_path / "d.json").write_text('["not", "a map"]')
    with pytest.raises(GrelabError, match="not an object of node id -> seconds"):
        read_durations(tmp_path / "d.json")
    (tmp_path / "d.json").write_text("{")
    with pytest.raises(GrelabError, match="not readable as JSON"):
        read_durations(tmp_path / "d.json")
    assert read_durations(tmp_path / "none.json") == {}


def pytest_run(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}:{cwd}"})


def test_a_bad_shard_is_one_usage_line():
    done = pytest_run("scenarios/two_offices.py", "--collect-only", "-q", "--shard", "3/2")
    assert done.returncode == 4 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == ("ERROR: --shard: '3/2' is not allowed; allowed: I/N, part I of N parts, "
                                   "1 <= I <= N <= 1000 (e.g. 1/4)")
    error = one_line_error(grelab("run", "two_offices", "--shard", "1/x"), "run")
    assert error.startswith("grelab run: --shard: '1/x' is not allowed; allowed: I/N")
    # a durations file that cannot be read: one usage line too, before any case
    done = pytest_run("scenarios/two_offices.py", "--collect-only", "-q", "--shard", "1/2", "--durations-file", "/proc")
    assert done.returncode == 4 and len(done.stderr.strip().splitlines()) == 1, done.stderr


SHUFFLE = '''import random
import pytest


@pytest.hookimpl(tryfirst=True)  # before every other plugin's: the collection in another order
def pytest_collection_modifyitems(items):
    random.Random(7).shuffle(items)
'''


def test_pytest_selects_the_same_parts_whatever_it_collected_first(tmp_path):
    """Real collections of scenarios/: a part collected in another order (a plugin shuffling the items) is the same
    part, and the two parts of a shuffled collection are disjoint and hold every case."""
    (tmp_path / "shuffle_items.py").write_text(SHUFFLE)
    runs = {"all": [], "1/2": ["--shard", "1/2"], "1/2 shuffled": ["--shard", "1/2", "-p", "shuffle_items"],
            "2/2 shuffled": ["--shard", "2/2", "-p", "shuffle_items"]}
    with ThreadPoolExecutor(4) as pool:
        done = dict(zip(runs, pool.map(lambda a: pytest_run(str(ROOT / "scenarios"), "--rootdir", str(ROOT),
                                                            "--collect-only", "-q", *a, cwd=tmp_path), runs.values())))
    ids = {name: [line for line in d.stdout.splitlines() if "::" in line] for name, d in done.items()}
    assert all(d.returncode == 0 for d in done.values()), {n: d.stderr for n, d in done.items()}
    assert len(ids["all"]) >= 160 and ids["1/2 shuffled"] != sorted(ids["1/2 shuffled"], key=ids["all"].index)
    assert set(ids["1/2"]) == set(ids["1/2 shuffled"])
    assert not set(ids["1/2 shuffled"]) & set(ids["2/2 shuffled"])
    assert sorted(ids["1/2 shuffled"] + ids["2/2 shuffled"]) == sorted(ids["all"])
    half = len(ids["all"]) // 2
    assert abs(len(ids["1/2"]) - half) < half  # both parts hold cases
    assert f"{len(ids['all']) - len(ids['1/2'])} deselected" in done["1/2"].stdout


@pytest.mark.skipif(not usable(), reason="no DUT that can be two routers at once")
def test_stored_durations_keep_the_cases_not_run(tmp_path):
    """--store-durations on two_offices' echo cases, two xdist workers (the controller, which sees every report,
    writes): those two entries rewritten, the rest kept as they were."""
    durations = tmp_path / "d.json"
    durations.write_text(json.dumps({"scenarios/two_offices.py::test_echo[gre]": 99.0, "elsewhere.py::test": 7.5}))
    done = pytest_run(str(ROOT / "scenarios/two_offices.py"), "--rootdir", str(ROOT), "-q", "-k", "echo", "-n", "2",
                      "--store-durations", "--durations-file", str(durations), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stored = read_durations(durations)
    assert set(stored) == {"scenarios/two_offices.py::test_echo[gre]", "scenarios/two_offices.py::test_echo[gre-in-esp]",
                           "elsewhere.py::test"}
    assert stored["elsewhere.py::test"] == 7.5 and 0 < stored["scenarios/two_offices.py::test_echo[gre]"] < 30
    assert f"2 cases' durations stored in {durations}" in done.stdout
    assert durations.read_text().count("\n") == 5  # a line a case: a refresh is a readable diff
