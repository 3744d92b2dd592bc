"""The run report's page, drawn from the cases grelab.golden.report collected: HTML, its CSS and its script as data.

As pytest-html has it: one self-contained file, a summary first, failures first and open, passed cases folded, a
checkbox per result, a sortable table; beside it a filter (scenario, results, text) that runs in the page, kept in
the address (#scenario=mtu&result=failed,error&q=esp), so a narrowed view can be linked. As Wireshark's Flow Graph
has it: a ladder per case, a lifeline per node, an arrow per frame, time going down; here each arrow's text wraps
inside the lanes it crosses, ESP shows what it decrypts to, a drop ends in a cross at the DUT with the counters
beside it, and the first frame per link that differs from the golden is marked with the fields that differ.
"""
from __future__ import annotations

import html
import math
import re

RESULTS = ("failed", "error", "skipped", "passed")  # the page's order: what needs looking at first
BAD = ("failed", "error")
LANE = 12  # em: the least width of a lane; a wider window gives each more
DIFF_LINE = re.compile(r"^(\s*)(\S+\.\S+: expected .*, got .*|comment: .* != .*)$", re.M)
e = html.escape


def render(cases: list[dict], took: float | list[float] | None = None) -> str:
    """The whole page for these cases (grelab.golden.report's dicts, with "steps" and "links"); took: the run's
    seconds, or each shard's when the page joins shards' reports (grelab report merge)."""
    counts = {r: sum(c["outcome"] == r for c in cases) for r in RESULTS}
    title = f"grelab run: {counts['passed']} of {len(cases)} cases passed" + "".join(
        f", {counts[r]} {r}" for r in ("failed", "error", "skipped") if counts[r])
    scenarios = list(dict.fromkeys(c["scenario"] for c in cases))
    body = [f"<h1>{e(title)}</h1>"]
    body += [f'<p class="dut">DUT: {e(line)}</p>' for line in sorted({c.get("dut", "") for c in cases} - {""})]
    if isinstance(took, list):
        took_text = f"The run's {len(took)} shards took " + ", ".join(f"{t:.1f}" for t in took) + " s"
    elif took is not None:
        took_text = f"The run took {took:.1f} s"
    if took is not None:
        body.append(f'<p class="took">{took_text}; the cases\' steps {math.fsum(map(_seconds, cases)):.1f} s '
                    'of worker time.</p>')
    body.append(summary(cases, scenarios))
    body.append(filters(cases, scenarios, counts))
    failures = [c for c in cases if c["outcome"] in BAD]
    if failures:
        body.append(f'<section class="group" id="failures"><h2>Failures ({len(failures)})</h2>')
        body += [case(c, with_scenario=True) for c in failures]
        body.append("</section>")
    for scenario in scenarios:
        rest = sorted((c for c in cases if c["scenario"] == scenario and c["outcome"] not in BAD),
                      key=lambda c: RESULTS.index(c["outcome"]) if c["outcome"] in RESULTS else 0)
        if not rest:
            continue
        story = next(c["scenario_story"] for c in cases if c["scenario"] == scenario)
        body.append(f'<section class="group" id="s-{e(scenario)}" data-scenario="{e(scenario)}">'
                    f'<h2>{e(scenario)}</h2><p class="story">{e(story)}</p>')
        body += [case(c) for c in rest]
        body.append("</section>")
    return PAGE.replace("{style}", STYLE).replace("{script}", SCRIPT).replace("{body}", "\n".join(body))


def _seconds(c: dict) -> float:
    return math.fsum(v for k, v in c.get("steps", {}).items() if k in ("setup", "call", "teardown"))


def summary(cases: list[dict], scenarios: list[str]) -> str:
    """Per scenario: its cases by result and their time; scenarios with failures first, each sortable."""
    def row(name: str, mine: list[dict], tag: str = "td") -> str:
        n = {r: sum(c["outcome"] == r for c in mine) for r in RESULTS}
        bad = n["failed"] + n["error"]
        cells = [(n["passed"], ""), (bad, ' class="bad"' if bad else ""), (n["skipped"], "")]
        time_ = math.fsum(map(_seconds, mine))  # exact: the same total in any order of cases (merged shards)
        return (f'<{tag}>{name}</{tag}>' + "".join(f'<td data-v="{v}"{cls}>{v}</td>' for v, cls in cells)
                + f'<td data-v="{time_:.3f}">{time_:.2f}</td>')
    ordered = sorted(scenarios, key=lambda s: not any(c["scenario"] == s and c["outcome"] in BAD for c in cases))
    rows = [f'<tr data-scenario="{e(s)}">' + row(f'<a href="#scenario={e(s)}">{e(s)}</a>',
                                                [c for c in cases if c["scenario"] == s]) + "</tr>" for s in ordered]
    return ('<table id="summary"><thead><tr><th data-sort="text">scenario</th><th data-sort="num">passed</th>'
            '<th data-sort="num">failed</th><th data-sort="num">skipped</th><th data-sort="num">time (s)</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody><tfoot><tr>{row(f"{len(scenarios)} scenarios", cases, "th")}'
            '</tr></tfoot></table>')


def filters(cases: list[dict], scenarios: list[str], counts: dict[str, int]) -> str:
    options = "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in sorted(scenarios))
    boxes = "".join(f'<label class="{r}"><input type="checkbox" name="result" value="{r}" checked> {counts[r]} {r}'
                    "</label>" for r in RESULTS)
    return ('<form id="filter" onsubmit="return false"><input type="search" id="q" placeholder="text in a case: name, '
            'story, packets, failure" size="36"> <select id="scenario"><option value="">every scenario</option>'
            f'{options}</select> {boxes} <button type="button" id="expand">expand all</button> '
            f'<button type="button" id="fold">fold all</button> <span id="shown">{len(cases)} of {len(cases)} cases '
            'shown</span></form>')


def case(c: dict, with_scenario: bool = False) -> str:
    outcome = c["outcome"]
    steps = " · ".join(f"{k} {c['steps'][k]:.2f} s" for k in ("setup", "call", "teardown") if k in c.get("steps", {}))
    why = f' <span class="reason">{e(c["failure"])}</span>' if outcome == "skipped" else ""
    out = [f'<details class="case {e(outcome)}" id="{e(c["id"])}" data-scenario="{e(c["scenario"])}" '
           f'data-result="{e(outcome)}"{" open" if outcome in BAD else ""}><summary><span class="result">'
           f'{e(outcome.upper())}</span> ' + (f'<span class="scenario">{e(c["scenario"])}</span> ' if with_scenario else "")
           + f'<b>{e(c["case"])}</b> <span class="steps">{steps}</span>{why}</summary>',
           f'<p class="story">{e(c["story"])}</p>']
    links = [f'{name} <a href="{e(link["href"])}">{e(link["text"])}</a>' if link.get("exists", True)
             else f'{name} {e(link["text"])} (none yet)' for name, link in c.get("links", {}).items()]
    if c.get("pcap"):
        links.append(f'this run\'s capture <a class="pcap" href="{e(c["pcap"])}">{e(c["pcap"].split("/")[-1])}</a>')
    if c.get("pcap_decrypted"):  # its ESP opened by grelab, for a Wireshark that cannot decrypt it
        links.append(f'this run\'s decrypted <a class="companion" href="{e(c["pcap_decrypted"])}">'
                     f'{e(c["pcap_decrypted"].split("/")[-1])}</a>')
    if links:
        out.append(f'<p class="links">{" · ".join(links)} (ESP decrypts with pcaps/esp_sa: grelab wireshark FILE)</p>')
    if c["failure"] and outcome != "skipped":
        failure = DIFF_LINE.sub(r"\1<mark>\2</mark>", e(c["failure"]))  # the fields that differ stand out
        out.append(f'<pre class="failure">{failure}</pre>')
    if c["arrows"]:
        out.append(ladder(c["nodes"], c["arrows"]))
    out.append("</details>")
    return "\n".join(out)


def ladder(nodes: list[str], arrows: list[dict]) -> str:
    """A grid of two columns per node (its lifeline between them), a row per frame: an arrow spans the columns
    from the sender's lifeline to the receiver's, its text wrapping inside that span."""
    lane = {node: i for i, node in enumerate(nodes)}
    out = [f'<div class="ladder" style="grid-template-columns:repeat({2 * len(nodes)},minmax(0,1fr));'
           f'min-width:{LANE * len(nodes)}em">']
    out += [f'<b class="node" style="grid-column:{2 * i + 1}/span 2">{e(node)}</b>'
            f'<i class="life" style="grid-column:{2 * i + 1}/span 2;grid-row:2/span {len(arrows)}"></i>'
            for i, node in enumerate(nodes)]
    for row, a in enumerate(arrows, 2):
        i, j = lane[a["from"]], lane[a["to"]]
        span = f"{2 * min(i, j) + 2}/{2 * max(i, j) + 2}" if i != j else f"{2 * i + 1}/span 2"
        kind = ["right" if j >= i else "left"] + ["drop"] * ("drop" in a) + ["diff"] * ("diff" in a)
        parts = [f'<div class="label">{e(a["label"])}</div>']
        if a.get("inner"):
            bad = a["inner"].startswith(("does not", "no SA", "malformed"))
            parts.append(f'<div class="inner{" bad" * bad}">{"" if bad else "decrypts to: "}{e(a["inner"])}</div>')
        parts.append('<div class="line"></div>')
        if "drop" in a:
            parts.append(f'<div class="counted">dropped by {e(a["to"])}: {e(a["drop"])}</div>')
        parts.append(f'<div class="note">{e(a["link"])} +{a["time"]:.6f} s · {e(a["comment"])}</div>')
        if "diff" in a:
            parts.append(f'<div class="why">differs from the golden: {e("; ".join(a["diff"]))}</div>')
        out.append(f'<div class="msg {" ".join(kind)}" style="grid-column:{span};grid-row:{row}" '
                   f'data-from="{e(a["from"])}" data-to="{e(a["to"])}" data-link="{e(a["link"])}">{"".join(parts)}</div>')
    out.append("</div>")
    return "".join(out)


STYLE = """
body { font-family: sans-serif; margin: 1.2em; color: #222; }
h1 { margin: 0 0 .3em; } h2 { margin: 1.2em 0 .3em; }
table#summary { border-collapse: collapse; margin: .6em 0; }
#summary th, #summary td { border: 1px solid #ccc; padding: .15em .6em; text-align: right; }
#summary th:first-child, #summary td:first-child { text-align: left; }
#summary th[data-sort] { cursor: pointer; background: #f3f3f3; }
#summary th[aria-sort=ascending]::after { content: " \\25B2"; } #summary th[aria-sort=descending]::after { content: " \\25BC"; }
#summary .bad { color: #c0392b; font-weight: bold; }
form#filter { position: sticky; top: 0; background: #fff; padding: .4em 0; border-bottom: 1px solid #ddd; z-index: 2; }
form#filter label { margin-left: .6em; } #shown { margin-left: 1em; color: #555; }
details.case { border-left: 6px solid #2a8a2a; padding: .1em .8em; margin: .5em 0; overflow-x: auto; }
details.failed, details.error { border-left-color: #c0392b; } details.skipped { border-left-color: #999; }
details.case > summary { cursor: pointer; padding: .2em 0; }
.result { font-family: monospace; font-weight: bold; }
.failed .result, .error .result, label.failed, label.error { color: #c0392b; }
.passed .result, label.passed { color: #2a8a2a; } .skipped .result { color: #777; }
.scenario { color: #555; } .steps, .reason { color: #666; font-size: .85em; margin-left: .6em; }
pre.failure { background: #fdf0ee; padding: .8em; white-space: pre-wrap; overflow-wrap: anywhere; }
pre.failure mark { background: #ffd9a8; }
.links { font-size: .9em; }
.ladder { display: grid; column-gap: 0; row-gap: .2em; margin: .5em 0 1em; font: 12px/1.3 monospace; }
.ladder .node { text-align: center; padding-bottom: .3em; }
.ladder .life { justify-self: center; width: 0; border-left: 1px dashed #999; }
.msg { padding: 0 .5em; min-width: 0; overflow-wrap: anywhere; z-index: 1; }
.msg .label, .msg .inner, .msg .note, .msg .counted, .msg .why { background: rgba(255, 255, 255, .88); }
.msg.right { margin-right: 0; } .msg .inner { color: #1d6b3a; } .msg .inner.bad { color: #a04000; }
.msg .note { color: #777; font-size: 11px; }
.msg .line { position: relative; border-top: 2px solid #1f5fa8; margin: 3px -.5em 2px; }
.msg.right .line::after, .msg.left .line::after { content: ""; position: absolute; top: -7px; border: 6px solid transparent; }
.msg.right .line::after { right: -1px; border-left: 11px solid #1f5fa8; border-right: 0; }
.msg.left .line::after { left: -1px; border-right: 11px solid #1f5fa8; border-left: 0; }
.msg.drop .line { border-top: 2px dashed #c0392b; }
.msg.drop .line::after { content: "\\2715"; border: 0; color: #c0392b; font: bold 18px sans-serif; top: -11px; }
.msg.right.drop .line::after { right: -.35em; } .msg.left.drop .line::after { left: -.35em; }
.msg .counted { color: #c0392b; font-weight: bold; } .msg.right .counted { text-align: right; }
.msg.diff { outline: 2px solid #e67e22; background: #fff4e5; } .msg .why { color: #b35900; font-weight: bold; }
"""

SCRIPT = """
const $ = s => document.querySelector(s), $$ = s => [...document.querySelectorAll(s)];
const cases = $$('details.case'), boxes = $$('input[name=result]');
function apply() {
  const q = $('#q').value.trim().toLowerCase(), scenario = $('#scenario').value;
  const results = boxes.filter(b => b.checked).map(b => b.value);
  let shown = 0;
  for (const c of cases) {
    const ok = (!scenario || c.dataset.scenario === scenario) && results.includes(c.dataset.result)
      && (!q || (c.text ??= c.textContent.toLowerCase()).includes(q));
    c.hidden = !ok; shown += ok;
  }
  for (const g of $$('section.group')) g.hidden = !g.querySelector('details.case:not([hidden])');
  for (const r of $$('#summary tbody tr')) r.hidden = !!scenario && r.dataset.scenario !== scenario;
  $('#shown').textContent = `${shown} of ${cases.length} cases shown`;
  const h = new URLSearchParams();
  if (scenario) h.set('scenario', scenario);
  if (results.length < boxes.length) h.set('result', results.join(','));
  if (q) h.set('q', q);
  try { history.replaceState(null, '', h.toString() ? '#' + h : location.pathname); } catch (e) {}
}
function fromAddress() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (!['scenario', 'result', 'q'].some(k => h.has(k))) return;  // an anchor (#failures, a case's id)
  $('#scenario').value = h.get('scenario') || '';
  $('#q').value = h.get('q') || '';
  const results = h.has('result') ? h.get('result').split(',') : boxes.map(b => b.value);
  boxes.forEach(b => b.checked = results.includes(b.value));
  apply();
}
$('#q').addEventListener('input', apply);
$('#scenario').addEventListener('change', apply);
boxes.forEach(b => b.addEventListener('change', apply));
$('#expand').onclick = () => cases.forEach(c => { if (!c.hidden) c.open = true; });
$('#fold').onclick = () => cases.forEach(c => c.open = false);
window.addEventListener('hashchange', fromAddress);
for (const th of $$('#summary th[data-sort]')) th.addEventListener('click', () => {
  const body = $('#summary tbody'), i = th.cellIndex, num = th.dataset.sort === 'num';
  const dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
  $$('#summary th').forEach(t => t.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
  const key = r => num ? parseFloat(r.cells[i].dataset.v) : r.cells[i].textContent;
  [...body.rows].sort((a, b) => dir * (num ? key(a) - key(b) : key(a).localeCompare(key(b)))).forEach(r => body.append(r));
});
fromAddress();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>grelab run report</title>
<style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""
