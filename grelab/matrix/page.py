"""The matrix's page (matrix.html): one self-contained file, as the run report has it (grelab.golden.report_page).

The figures per implementation first, then the matrix: a row per case, a column per implementation, each cell its
status and what it says (the first differing field of a failure, the capability a DUT lacks, the behaviour and
source of an expected divergence). Headers sort; a filter (scenario, statuses, text) runs in the page and is kept in
the address (#scenario=gre_options&status=fail,n/a&q=seq), so a narrowed view can be linked.
"""
from __future__ import annotations

import html

from grelab.matrix.cells import STATUSES
from grelab.matrix.table import FIGURES

e = html.escape
LABEL = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "xfail": "divergence", "n/a": "not applicable",
         "skip": "skipped"}


def render(matrix: dict) -> str:
    columns, rows = matrix["implementations"], matrix["rows"]
    counts = {s: sum(c["status"] == s for cells in rows.values() for c in cells.values()) for s in STATUSES}
    title = (f"grelab matrix: {len(rows)} cases on {len(columns)} implementations: " +
             ", ".join(f"{counts[s]} {LABEL[s]}" for s in STATUSES if counts[s]))
    selection = matrix.get("selection", {})
    chosen = ", ".join(selection.get("scenarios") or ["the catalogue"]) + \
        (f" (-k {selection['keyword']})" if selection.get("keyword") else "")
    runs = "; ".join(f"--dut {r['dut']}" + (f" shard {r['shard']}" if r.get("shard") else "") +
                     f": {r['seconds']:.1f} s" for r in matrix["runs"])
    body = [f"<h1>{e(title)}</h1>", f'<p class="what">{e(chosen)}; runs: {e(runs) or "none"}</p>',
            figures_table(matrix), filters(rows, counts), cases_table(columns, rows),
            '<p class="legend">pass: as the case expects · FAIL: the first field that differs · not applicable: what '
            'the DUT lacks · divergence: the implementation\'s own behaviour (grelab.dut.divergences), a strict '
            'expected failure: the day it passes, it fails · ERROR: the case could not run</p>']
    return PAGE.replace("{style}", STYLE).replace("{script}", SCRIPT).replace("{body}", "\n".join(body))


def figures_table(matrix: dict) -> str:
    head = "".join(f'<th data-sort="num">{e(name.replace("_", " "))}</th>' for name in FIGURES.values())
    body = []
    for implementation in matrix["implementations"]:
        n = matrix["figures"][implementation]
        cells = "".join(f'<td data-v="{n[name]}"{" class=bad" if name in ("failed", "errors") and n[name] else ""}>'
                        f'{n[name]}</td>' for name in FIGURES.values())
        body.append(f'<tr><td>{e(implementation)}</td>{cells}<td data-v="{n["seconds"]}">{n["seconds"]:.1f}</td></tr>')
    return (f'<table id="figures" class="sortable"><thead><tr><th data-sort="text">implementation</th>{head}'
            f'<th data-sort="num">time (s)</th></tr></thead><tbody>{"".join(body)}</tbody></table>')


def filters(rows: dict, counts: dict) -> str:
    scenarios = sorted({name.split("::")[0].removesuffix(".py") for name in rows})
    options = "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in scenarios)
    boxes = "".join(f'<label class="{_css(s)}"><input type="checkbox" name="status" value="{e(s)}" checked> '
                    f'{counts[s]} {e(LABEL[s])}</label>' for s in STATUSES)
    return ('<form id="filter" onsubmit="return false"><input type="search" id="q" placeholder="text in a row: case, '
            f'field, capability, behaviour" size="36"> <select id="scenario"><option value="">every scenario</option>'
            f'{options}</select> {boxes} <span id="shown">{len(rows)} of {len(rows)} cases shown</span></form>')


def cases_table(columns: list[str], rows: dict) -> str:
    head = "".join(f'<th data-sort="status">{e(c)}</th>' for c in columns)
    body = []
    for name, cells in rows.items():
        tds = "".join(cell(cells.get(c)) for c in columns)
        body.append(f'<tr data-scenario="{e(name.split("::")[0].removesuffix(".py"))}" data-statuses="'
                    f'{e(" ".join(sorted({c["status"] for c in cells.values()})))}"><td class="case">{e(name)}</td>{tds}</tr>')
    return (f'<table id="matrix" class="sortable"><thead><tr><th data-sort="text">case</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def cell(c: dict | None) -> str:
    if c is None:  # the implementation did not run this case (another variant's, or not selected)
        return '<td class="none" data-v="9">–</td>'
    detail = f'<div class="detail">{_detail(c)}</div>' if c.get("detail") else ""
    return (f'<td class="{_css(c["status"])}" data-v="{STATUSES.index(c["status"])}" title="{e(c["nodeid"])} on '
            f'--dut {e(c["dut"])}, {c["seconds"]:.2f} s"><b>{e(LABEL[c["status"]])}</b>{detail}</td>')


SHORT = 90  # a cell's text longer than this is folded: its start shown, the whole of it a click away


def _detail(c: dict) -> str:
    """What a cell says, without repeating its status ("not applicable: DUT ovs lacks esp" -> "DUT ovs lacks esp");
    a long one (a divergence's behaviour and source) folded under its start."""
    text = c["detail"].removeprefix("not applicable: ")
    if len(text) <= SHORT:
        return e(text)
    cut = text[:SHORT].rsplit(" ", 1)[0]
    return f"<details><summary>{e(cut)} …</summary>{e(text[len(cut):])}</details>"


def _css(status: str) -> str:
    return {"n/a": "na"}.get(status, status)


STYLE = """
body { font-family: sans-serif; margin: 1.2em; color: #222; }
h1 { margin: 0 0 .3em; font-size: 1.5em; } .what, .legend { color: #555; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ccc; padding: .2em .6em; vertical-align: top; }
#figures td, #figures th { text-align: right; } #figures td:first-child, #figures th:first-child { text-align: left; }
th[data-sort] { cursor: pointer; background: #f3f3f3; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
.bad { color: #c0392b; font-weight: bold; }
#matrix td { min-width: 10em; max-width: 24em; font-size: .9em; }
#matrix td.case { font-family: monospace; white-space: nowrap; max-width: none; min-width: 0; }
#matrix summary { cursor: pointer; }
#matrix .detail { font-size: .85em; color: #444; overflow-wrap: anywhere; }
td.pass { background: #e8f5e9; } td.pass b, label.pass { color: #2a8a2a; }
td.fail, td.error { background: #fdecea; } td.fail b, td.error b, label.fail, label.error { color: #c0392b; }
td.xfail { background: #fff4e5; } td.xfail b, label.xfail { color: #b35900; }
td.na { background: #f0f0f0; } td.na b, label.na, td.skip b, label.skip { color: #666; } td.none { color: #aaa; }
form#filter { position: sticky; top: 0; background: #fff; padding: .4em 0; border-bottom: 1px solid #ddd; }
form#filter label { margin-left: .6em; } #shown { margin-left: 1em; color: #555; }
"""

SCRIPT = """
const $ = s => document.querySelector(s), $$ = s => [...document.querySelectorAll(s)];
const rows = $$('#matrix tbody tr'), boxes = $$('input[name=status]');
function apply() {
  const q = $('#q').value.trim().toLowerCase(), scenario = $('#scenario').value;
  const statuses = boxes.filter(b => b.checked).map(b => b.value);
  let shown = 0;
  for (const r of rows) {
    const ok = (!scenario || r.dataset.scenario === scenario)
      && r.dataset.statuses.split(' ').some(s => statuses.includes(s))
      && (!q || (r.text ??= r.textContent.toLowerCase()).includes(q));
    r.hidden = !ok; shown += ok;
  }
  $('#shown').textContent = `${shown} of ${rows.length} cases shown`;
  const h = new URLSearchParams();
  if (scenario) h.set('scenario', scenario);
  if (statuses.length < boxes.length) h.set('status', statuses.join(','));
  if (q) h.set('q', q);
  try { history.replaceState(null, '', h.toString() ? '#' + h : location.pathname); } catch (e) {}
}
function fromAddress() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (!['scenario', 'status', 'q'].some(k => h.has(k))) return;
  $('#scenario').value = h.get('scenario') || '';
  $('#q').value = h.get('q') || '';
  const statuses = h.has('status') ? h.get('status').split(',') : boxes.map(b => b.value);
  boxes.forEach(b => b.checked = statuses.includes(b.value));
  apply();
}
$('#q').addEventListener('input', apply);
$('#scenario').addEventListener('change', apply);
boxes.forEach(b => b.addEventListener('change', apply));
window.addEventListener('hashchange', fromAddress);
for (const th of $$('table.sortable th[data-sort]')) th.addEventListener('click', () => {
  const table = th.closest('table'), body = table.tBodies[0], i = th.cellIndex, kind = th.dataset.sort;
  const dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
  table.querySelectorAll('th').forEach(t => t.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
  const key = r => kind === 'text' ? r.cells[i].textContent : parseFloat(r.cells[i].dataset.v);
  [...body.rows].sort((a, b) => dir * (kind === 'text' ? key(a).localeCompare(key(b)) : key(a) - key(b)))
    .forEach(r => body.append(r));
});
fromAddress();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>grelab matrix</title>
<style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""
