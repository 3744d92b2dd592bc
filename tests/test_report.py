"""The run report (pytest --grelab-report DIR), made by real runs and read in headless Chromium (Debian's chromium and
chromium-driver, through selenium): a small run of its own with a case failing on purpose, a drop, a skip and a
decrypted companion; and the whole catalogue, whose page must stay under 2 MB. Screenshots go to each test's
output folder (tmp_path)."""
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from grelab.golden.case import read_pcapng, write_pcapng
from grelab.golden.report import file_stem
from test_shell import usable

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                 reason="chromium and chromium-driver are not installed (./setup.sh installs them)"),
              pytest.mark.skipif(not usable(), reason="no DUT that can be two routers at once")]
MB2 = 2_000_000

OFFICES = '''"""The two offices, told for the report: the echo's golden is wrong on purpose (a hop limit), TCP's is right."""
from grelab.scenario import PLAIN_GRE
from grelab.networks import offices

net = offices.two_offices(variants=[PLAIN_GRE]).fixture()


def test_echo(net):
    """h1's ping reaches h2 and comes back; its golden says h2 got the request with hop limit 7 (it gets 62)."""
    net.ping("h1", "h2")
    net.transit.carries_exactly(net.sent_by("h1", "h2"))


def test_tcp(net):
    """A TCP exchange from h1 to h2, as the catalogue has it."""
    exchange = net.tcp("h1", "h2")
    assert exchange.echoed == exchange.sent
'''

REFUSALS = '''"""Refusals, told for the report: r1 drops ESP of an SPI it has no SA for, and counts it."""
import pytest
from grelab.scenario import in_esp
from grelab.networks.endpoint import grelab_endpoint
from grelab.networks.refusals import REFUSALS, echo_through

net = grelab_endpoint("esp_refusals", variants=[in_esp("cbc128-sha256")]).fixture()


@pytest.mark.parametrize("refusal", ["unknown-spi"])
def test_refused_and_counted(net, refusal):
    """r1 refuses ESP of an unknown SPI, counts it, and answers a valid echo right after."""
    make, counted, tag = REFUSALS[refusal]
    packets = make(net)
    before = net.dut("r1").counters()
    for packet in packets:
        net.send("grelab", packet, protect=False, comment=f"{refusal}: r1 must refuse it {tag}".rstrip())
    net.expect_counters("r1", before, counted)
    echo_through(net, 10, comment="the valid echo right after: r1 still answers")


def test_not_here():
    """Skipped on purpose."""
    pytest.skip("skipped on purpose, to be folded")
'''
FAILED = "scenarios_offices_demo.py_test_echo_gre"
DROPPED = "scenarios_refusals_demo.py_test_refused_and_counted_gre-in-esp-cbc128-sha256-unknown-spi"
REFUSED = "refused_and_counted-gre-in-esp-cbc128-sha256-unknown-spi"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """offices_demo's echo[gre] against a golden whose lan2 request has the wrong hop limit (it fails, with the
    diff), tcp[gre] against its true golden (passes); refusals_demo's unknown SPI (passes, a drop in its ladder;
    its golden has a decrypted companion) and a skip. Two workers: xdist's controller times the steps."""
    work = tmp_path_factory.mktemp("report")
    (work / "scenarios").mkdir()
    (work / "scenarios/offices_demo.py").write_text(OFFICES)
    (work / "scenarios/refusals_demo.py").write_text(REFUSALS)
    for scenario in ("offices_demo", "refusals_demo"):
        (work / "pcaps" / scenario).mkdir(parents=True)
    shutil.copy(ROOT / "pcaps/two_offices/tcp-gre.pcapng", work / "pcaps/offices_demo/tcp-gre.pcapng")
    frames = read_pcapng(ROOT / "pcaps/two_offices/echo-gre.pcapng")
    wrong = Ether(frames[2].data)
    wrong[IPv6].hlim = 7
    frames[2] = dataclasses.replace(frames[2], data=bytes(wrong))
    write_pcapng(frames, work / "pcaps/offices_demo/echo-gre.pcapng")
    for suffix in (".pcapng", ".decrypted.pcapng"):  # the companion's content is another tool's: any pcapng here
        shutil.copy(ROOT / f"pcaps/esp_refusals/{REFUSED}.pcapng", work / f"pcaps/refusals_demo/{REFUSED}{suffix}")
    out = work / "out"
    done = subprocess.run([sys.executable, "-m", "pytest", "scenarios/offices_demo.py", "scenarios/refusals_demo.py",
                           "-n", "2", "-p", "no:cacheprovider", "--rootdir", str(work), "--grelab-report", str(out), "-q"],
                          cwd=work, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return work, out, done


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                "--disable-background-networking", "--no-first-run", "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def page(browser, out: Path, address: str = ""):
    """The page loaded afresh (another address first: a new hash alone would keep the last test's filter)."""
    browser.get("about:blank")
    browser.get((out / "index.html").as_uri() + address)
    return browser


def choose(browser, scenario: str) -> None:
    from selenium.webdriver.support.ui import Select
    Select(css(browser, "#scenario")[0]).select_by_value(scenario)


def css(browser, selector: str, within=None):
    from selenium.webdriver.common.by import By
    return (within or browser).find_elements(By.CSS_SELECTOR, selector)


def shown(browser) -> list[str]:
    return [c.get_attribute("id") for c in css(browser, "details.case") if c.is_displayed()]


def test_the_run_fails_and_names_the_page(run):
    work, out, done = run
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"grelab report: {out / 'index.html'}" in done.stdout
    assert sorted(p.name for p in (out / "cases").glob("*.pcapng")) == [
        "scenarios_offices_demo.py_test_echo_gre.pcapng", "scenarios_offices_demo.py_test_tcp_gre.pcapng", f"{DROPPED}.pcapng"]


def test_the_failure_comes_first_open_with_its_field_diff_and_its_ladder(run, browser, tmp_path):
    _, out, _ = run
    page(browser, out)
    assert css(browser, "h1")[0].text == "grelab run: 2 of 4 cases passed, 1 failed, 1 skipped", run[2].stdout[-2000:]
    first = css(browser, "details.case")[0]
    assert first.get_attribute("id") == FAILED and first.get_attribute("open") is not None
    assert css(browser, "section#failures details.case") == [first]
    assert first.location["y"] < min(c.location["y"] for c in css(browser, "details.case")[1:])
    assert [m.text for m in css(browser, "pre.failure mark", first)] == ["IPv6.hlim: expected 7, got 62"]
    assert "capture differs from golden" in css(browser, "pre.failure", first)[0].text
    arrows = [(m.get_attribute("data-from"), m.get_attribute("data-to"), m.get_attribute("data-link"))
              for m in css(browser, ".msg", first)]
    assert arrows == [("h1", "r1", "lan1"), ("r1", "isp", "transit"), ("r2", "h2", "lan2"), ("h2", "r2", "lan2"),
                      ("isp", "r1", "transit"), ("r1", "h1", "lan1")]
    [marked] = css(browser, ".msg.diff", first)  # the frame the golden disagrees with, in the ladder itself
    assert (marked.get_attribute("data-link"), marked.get_attribute("data-to")) == ("lan2", "h2")
    assert css(browser, ".why", marked)[0].text == "differs from the golden: IPv6.hlim: expected 7, got 62"
    assert css(browser, ".label", first)[1].text == ("IPv4 198.51.100.1 > 203.0.113.1 / GRE proto=0x86dd -> IPv6 "
                                                     "2001:db8:1::10 > 2001:db8:2::10 / ICMPv6 Echo Request (id: 0x4242 seq: 0x1)")
    browser.save_screenshot(str(tmp_path / "page.png"))
    browser.set_window_size(1400, 2400)  # the whole case, its ladder's end too
    try:
        first.screenshot(str(tmp_path / "failure.png"))
    finally:
        browser.set_window_size(1400, 1000)
    assert (tmp_path / "failure.png").stat().st_size > 60_000  # text and arrows, not a blank box


def test_the_summary_table_counts_each_scenario_with_its_time_and_sorts(run, browser):
    _, out, _ = run
    page(browser, out)
    def table():
        return [[td.text for td in css(browser, "td", row)] for row in css(browser, "#summary tbody tr")]
    rows = table()
    assert [r[:4] for r in rows] == [["offices_demo", "1", "1", "0"], ["refusals_demo", "1", "0", "1"]]  # failing first
    assert all(float(r[4]) > 0 for r in rows)
    assert [th.text for th in css(browser, "#summary tfoot th, #summary tfoot td")][:4] == ["2 scenarios", "2", "1", "1"]
    header = css(browser, "#summary thead th")
    header[4].click()  # time, ascending
    times = [float(r[4]) for r in table()]
    assert times == sorted(times) and header[4].get_attribute("aria-sort") == "ascending"
    header[4].click()
    assert [float(r[4]) for r in table()] == sorted(times, reverse=True)
    header[0].click()
    assert [r[0] for r in table()] == ["offices_demo", "refusals_demo"]


def test_passed_and_skipped_cases_are_folded_with_their_steps_times(run, browser):
    _, out, _ = run
    page(browser, out)
    folded = [c for c in css(browser, "details.case") if c.get_attribute("id") != FAILED]
    assert len(folded) == 3 and all(c.get_attribute("open") is None for c in folded)
    tcp = next(c for c in folded if c.get_attribute("id") == "scenarios_offices_demo.py_test_tcp_gre")
    assert not css(browser, ".ladder", tcp)[0].is_displayed()
    assert re.fullmatch(r"setup \d+\.\d\d s · call \d+\.\d\d s · teardown \d+\.\d\d s",
                        css(browser, ".steps", tcp)[0].text)
    css(browser, "summary", tcp)[0].click()
    assert css(browser, ".ladder", tcp)[0].is_displayed() and len(css(browser, ".msg", tcp)) >= 10
    skipped = next(c for c in folded if "test_not_here" in c.get_attribute("id"))
    assert "skipped on purpose, to be folded" in skipped.text and not css(browser, ".ladder", skipped)


def test_the_filter_box_narrows_the_cases_by_text_scenario_and_result_in_the_page(run, browser, tmp_path):
    _, out, _ = run
    page(browser, out)
    assert len(shown(browser)) == 4
    css(browser, "#q")[0].send_keys("XfrmInNoStates")  # a counter beside a drop: the ladders' text is searched too
    assert shown(browser) == [DROPPED] and css(browser, "#shown")[0].text == "1 of 4 cases shown"
    assert not css(browser, "section#failures")[0].is_displayed()
    assert "q=xfrminnostates" in browser.current_url  # the narrowed view can be linked
    browser.save_screenshot(str(tmp_path / "filtered.png"))
    css(browser, "#q")[0].clear()
    css(browser, "#q")[0].send_keys(" ")  # clear() fires no input event
    choose(browser, "offices_demo")
    assert shown(browser) == [FAILED, "scenarios_offices_demo.py_test_tcp_gre"]
    assert [r.text.split()[0] for r in css(browser, "#summary tbody tr") if r.is_displayed()] == ["offices_demo"]
    next(b for b in css(browser, "input[name=result]") if b.get_attribute("value") == "passed").click()
    assert shown(browser) == [FAILED]
    page(browser, out, "#result=skipped")  # from an address: only what it asks for
    assert [c.split("py_")[1] for c in shown(browser)] == ["test_not_here"]
    page(browser, out, "#scenario=refusals_demo")
    assert shown(browser) == ["scenarios_refusals_demo.py_test_not_here", DROPPED]  # skipped before passed


def test_a_drop_ends_in_a_cross_at_the_dut_with_the_counter_beside_it(run, browser, tmp_path):
    _, out, _ = run
    page(browser, out, f"#{DROPPED}")
    case = css(browser, f'[id="{DROPPED}"]')[0]
    browser.execute_script("arguments[0].open = true; arguments[0].scrollIntoView()", case)
    [drop] = css(browser, ".msg.drop", case)
    assert (drop.get_attribute("data-from"), drop.get_attribute("data-to")) == ("grelab", "r1")
    assert css(browser, ".counted", drop)[0].text == "dropped by r1: XfrmInNoStates +1"
    assert css(browser, ".label", drop)[0].text == "IPv4 198.51.100.2 > 198.51.100.1 / ESP spi=0x0000dead seq=1"
    line = css(browser, ".line", drop)[0]
    assert browser.execute_script("return getComputedStyle(arguments[0], '::after').content", line) == '"\u2715"'
    lifelines = {n.text: n for n in css(browser, ".ladder .node", case)}
    r1 = lifelines["r1"].rect["x"] + lifelines["r1"].rect["width"] / 2
    assert abs(line.rect["x"] + line.rect["width"] - r1) <= 3  # the arrow stops at r1: the cross sits on its lifeline
    forwarded = [m for m in css(browser, ".msg", case) if "drop" not in m.get_attribute("class")]
    assert len(forwarded) == 4 and all(not css(browser, ".counted", m) for m in forwarded)
    case.screenshot(str(tmp_path / "drop.png"))


def test_esp_frames_show_what_they_decrypt_to_and_text_stays_inside_its_lanes(run, browser):
    _, out, _ = run
    page(browser, out)
    css(browser, "#expand")[0].click()
    case = css(browser, f'[id="{DROPPED}"]')[0]
    inner = [m.text for m in css(browser, ".inner", case)]
    assert inner[0] == "no SA for this SPI: not decrypted"
    assert inner[1] == ("decrypts to: IPv4 198.51.100.2 > 198.51.100.1 / GRE proto=0x86dd -> IPv6 2001:db8:2::10 > "
                        "2001:db8:1::10 / ICMPv6 Echo Request (id: 0x4243 seq: 0xa)")
    checked = 0
    for ladder in css(browser, ".ladder"):
        centre = {n.text: n.rect["x"] + n.rect["width"] / 2 for n in css(browser, ".node", ladder)}
        for msg in css(browser, ".msg", ladder):
            left, right = sorted((centre[msg.get_attribute("data-from")], centre[msg.get_attribute("data-to")]))
            for text in css(browser, ".label, .inner, .note", msg):
                assert left - 1 <= text.rect["x"] and text.rect["x"] + text.rect["width"] <= right + 1, text.text
                checked += 1
    assert checked > 60
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")  # nothing cut


def test_each_case_links_its_golden_its_decrypted_companion_and_this_runs_capture(run, browser):
    work, out, _ = run
    page(browser, out)
    def links(case_id):
        return {a.get_attribute("textContent"): a.get_attribute("href") for a in css(browser, f'[id="{case_id}"] .links a')}
    dropped = links(DROPPED)
    assert set(dropped) == {f"pcaps/refusals_demo/{REFUSED}.pcapng", f"pcaps/refusals_demo/{REFUSED}.decrypted.pcapng",
                            f"{DROPPED}.pcapng"}
    assert dropped[f"pcaps/refusals_demo/{REFUSED}.decrypted.pcapng"] == \
        (work / f"pcaps/refusals_demo/{REFUSED}.decrypted.pcapng").as_uri()
    failed = links(FAILED)
    assert failed["pcaps/offices_demo/echo-gre.pcapng"] == (work / "pcaps/offices_demo/echo-gre.pcapng").as_uri()
    assert not any("decrypted" in text for text in failed)  # none beside that golden: no link
    assert failed[f"{FAILED}.pcapng"] == (out / f"cases/{FAILED}.pcapng").as_uri()


def test_the_page_is_one_self_contained_file(run):
    _, out, _ = run
    text = (out / "index.html").read_text()
    assert not re.search(r'<(script|img|link|iframe)[^>]+(src|href)=', text)
    assert not re.search(r'url\(|@import', text)


def test_the_whole_catalogues_page_stays_under_2_mb_and_narrows_to_a_scenario(browser, tmp_path):
    """The full catalogue (grelab run -n 2 --report), as a user runs it: the page's size, and Chromium on it. A case
    of the catalogue that fails here (a shared machine's load) is shown as a failure, open: the page is the point."""
    out = tmp_path / "catalogue"
    done = subprocess.run([sys.executable, "-m", "grelab.cli", "run", "-n", "2", "--report", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    table = [line.split() for line in done.stdout.split("\n\n")[-2].splitlines()[1:]]
    results = {file_stem(f"scenarios/{row[0]}.py::{row[1]}"): row[2] for row in table}
    size = (out / "index.html").stat().st_size
    print(f"\nthe report of the whole catalogue ({len(table)} cases): {size:,} bytes; not passed: "
          f"{[case for case, result in results.items() if result != 'passed'] or 'none'}")
    assert size < MB2, f"{size:,} bytes"
    page(browser, out)
    cases = css(browser, "details.case")
    assert len(cases) == len(table) >= 160
    assert {c.get_attribute("id"): c.get_attribute("data-result") for c in cases} == results
    bad = {case for case, result in results.items() if result in ("failed", "error")}
    opened = [c.get_attribute("id") for c in cases if c.get_attribute("open") is not None]
    assert set(opened) == bad and [c.get_attribute("id") for c in cases[:len(bad)]] == opened  # failures: first, open
    scenarios = len(list((ROOT / "scenarios").glob("[a-z]*.py")))  # a row each
    assert len(css(browser, "#summary tbody tr")) == len({row[0] for row in table}) == scenarios
    choose(browser, "esp_refusals")
    refusals = [c for c in shown(browser) if results[c] == "passed"]
    assert len(shown(browser)) == 9 and refusals
    drops = {c: len(css(browser, f'[id="{c}"] .msg.drop')) for c in refusals}  # each refusal: one frame crossed out
    assert set(drops.values()) == {1}, drops
    choose(browser, "gre_options")
    crossed = {c.split("gre-")[-1]: [m.get_attribute("textContent") for m in css(browser, f'[id="{c}"] .counted')]
               for c in shown(browser) if results[c] == "passed"}
    expected = {"wrong-key": ["dropped by r1: IcmpOutDestUnreachs +1"], "right-key": [], "output-seq": [],
                "input-seq-out-of-order": ["dropped by r1: gre1.rx_fifo_errors +1, gre1.rx_errors +1"],
                "input-csum-bad": ["dropped by r1: no counter moved"]}
    assert {k: v for k, v in crossed.items() if k in expected} == {k: v for k, v in expected.items() if k in crossed}
    assert len(crossed) >= 8
    browser.save_screenshot(str(tmp_path / "catalogue.png"))
