"""The run report: one self-contained HTML page per run, `pytest --grelab-report DIR` / `grelab run --report DIR`.

Per scenario (its story) and case (its story, its result): a ladder of the case's packets across the nodes of
its topology (h1 | r1 | isp | r2 | h2, time going down), each arrow one frame of the golden recorder (the frames
the plugin's finish step compares), from the node that sent it to the node it was for, labelled with the frame
peeled (ESP decrypted) and what the golden says of it; the golden diff when the case failed; links to the
case's pcapng. Each case is written by the process that ran it (DIR/cases/*.json and *.pcapng, so pytest-xdist
workers need not ship frames around); the page is assembled at the end of the session.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from grelab.craft.peel import describe
from grelab.errors import GrelabError
from grelab.golden.case import write_pcapng
from grelab.golden.decrypted import COMPANION, decrypted_frames, needs_companion
from grelab.golden.recorder import GoldenRecorder
from grelab.outputs import write_all

COLUMN, ROW, TOP, LEFT = 170, 46, 50, 70


def case_data(item, outcome: str, failure: str) -> dict:
    """What the page shows of one case; frames from its golden recorder, nodes from its lab."""
    scenario_doc = getattr(item.module, "__doc__", "") or ""
    data = {"nodeid": item.nodeid, "scenario": Path(str(item.path)).stem, "case": item.name,
            "scenario_story": scenario_doc.strip().split("\n\n")[0],
            "story": (item.function.__doc__ or "").strip(), "outcome": outcome, "failure": failure,
            "nodes": [], "arrows": [], "dut": _dut_line(item)}
    recorder, net = item.stash.get(golden_key(), None), item.funcargs.get("net")
    if recorder is None:
        return data
    try:
        frames = recorder.record().sorted()
    except (GrelabError, AssertionError, KeyError) as exc:
        data["failure"] += f"\n(no ladder: the captures could not be read: {exc})"
        return data
    data["_frames"] = frames
    if needs_companion(recorder.golden_sas()):  # ESP Wireshark 4.0 cannot decrypt: a decrypted companion beside it
        data["_companion"] = decrypted_frames(frames, recorder.golden_sas())[0]
    owner: dict[str, str] = {}
    if net is not None:
        data["nodes"] = [n.name for n in net.lab.topology.nodes]
        for link in net.lab.topology.links:
            for end in (link.a, link.b):
                owner[net.lab.link_end(end.node, end.ifname).mac] = end.node
    sas = recorder._sas
    for f in frames:
        src, dst = _mac(f.data[6:12]), _mac(f.data[0:6])
        try:
            label = describe(f.data, sas)
        except GrelabError as exc:
            label = f"[{exc}]"
        data["arrows"].append({"link": f.link, "time": f.time, "from": owner.get(src, src), "to": owner.get(dst, dst),
                               "label": label, "comment": GoldenRecorder.story(f.comment)})
    for arrow in data["arrows"]:  # ends the topology does not name (broadcast, other MACs): columns of their own
        for end in (arrow["from"], arrow["to"]):
            if end not in data["nodes"]:
                data["nodes"].append(end)
    return data


def _dut_line(item) -> str:
    """Which DUT and kernel ran the case (the pool's choice), or "" when the case used none."""
    from grelab.pytest_plugin import _POOL
    pool = item.config.stash.get(_POOL, None)
    choice = pool.chosen if pool is not None else None
    return f"{choice.name}, kernel {choice.kernel or 'not known to grelab'}" if choice is not None else ""


def golden_key():
    from grelab.pytest_plugin import _RECORDER
    return _RECORDER


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def file_stem(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")


def save_case(folder: Path, data: dict) -> None:
    """DIR/cases/<case>.json and .pcapng, written whole (grelab.outputs)."""
    cases = folder / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    stem = file_stem(data["nodeid"])
    frames, companion = data.pop("_frames", None), data.pop("_companion", None)
    writers = {str(cases / f"{stem}.json"): lambda tmp: Path(tmp).write_text(json.dumps(data))}
    if frames:
        data["pcap"] = f"cases/{stem}.pcapng"
        writers[str(cases / f"{stem}.pcapng")] = lambda tmp: write_pcapng(frames, Path(tmp))
    if companion:
        data["companion"] = f"cases/{stem}{COMPANION}"
        writers[str(cases / f"{stem}{COMPANION}")] = lambda tmp: write_pcapng(companion, Path(tmp))
    write_all(writers)


def write_page(folder: Path) -> Path:
    """DIR/index.html from every case saved in DIR/cases."""
    cases = [json.loads(p.read_text()) for p in sorted((folder / "cases").glob("*.json"))]
    page = folder / "index.html"
    write_all({str(page): lambda tmp: Path(tmp).write_text(render(cases))})
    return page


def render(cases: list[dict]) -> str:
    e = html.escape
    passed = sum(c["outcome"] == "passed" for c in cases)
    body = [f"<h1>grelab run: {passed} of {len(cases)} cases passed</h1>"]
    body += [f'<p class="dut">DUT: {e(line)}</p>' for line in sorted({c.get("dut", "") for c in cases} - {""})]
    for scenario in dict.fromkeys(c["scenario"] for c in cases):
        mine = [c for c in cases if c["scenario"] == scenario]
        body.append(f'<section class="scenario" id="{e(scenario)}"><h2>{e(scenario)}</h2>'
                    f'<p class="story">{e(mine[0]["scenario_story"])}</p>')
        for c in mine:
            body.append(f'<article class="case {e(c["outcome"])}" id="{e(file_stem(c["nodeid"]))}">'
                        f'<h3><span class="result">{e(c["outcome"].upper())}</span> {e(c["case"])}</h3>'
                        f'<p class="story">{e(c["story"])}</p>')
            if c.get("pcap"):
                body.append(f'<p><a class="pcap" href="{e(c["pcap"])}">{e(c["pcap"].split("/")[-1])}</a> '
                            "(ESP decrypts with the project's pcaps/esp_sa: grelab wireshark FILE)</p>")
            if c.get("companion"):
                body.append(f'<p><a class="companion" href="{e(c["companion"])}">{e(c["companion"].split("/")[-1])}'
                            "</a> (its ESP decrypted by grelab, for a Wireshark that cannot decrypt it)</p>")
            if c["arrows"]:
                body.append(ladder(c))
            if c["failure"]:
                body.append(f'<pre class="failure">{e(c["failure"])}</pre>')
            body.append("</article>")
        body.append("</section>")
    return PAGE.replace("{body}", "\n".join(body))


def ladder(case: dict) -> str:
    """The case's frames as an SVG ladder diagram: a lifeline per node, an arrow per frame, time going down."""
    e = html.escape
    nodes, arrows = case["nodes"], case["arrows"]
    x = {node: LEFT + i * COLUMN for i, node in enumerate(nodes)}
    height = TOP + ROW * len(arrows) + 20
    width = LEFT + COLUMN * max(len(nodes) - 1, 1) + 560
    out = [f'<svg class="ladder" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
           '<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
           '<path d="M0,0 L10,4 L0,8 z" fill="#1f5fa8"/></marker></defs>']
    for node in nodes:
        out.append(f'<g class="node" data-node="{e(node)}"><text x="{x[node]}" y="20" text-anchor="middle" '
                   f'font-weight="bold">{e(node)}</text><line x1="{x[node]}" y1="28" x2="{x[node]}" y2="{height}" '
                   'stroke="#999" stroke-dasharray="4 3"/></g>')
    for row, a in enumerate(arrows):
        y = TOP + ROW * row + 18
        x1, x2 = x[a["from"]], x[a["to"]]
        text_x = min(x1, x2) + 4
        out.append(f'<g class="arrow" data-from="{e(a["from"])}" data-to="{e(a["to"])}" data-link="{e(a["link"])}">'
                   f'<title>{e(a["link"])} at {a["time"]:.6f} s: {e(a["label"])} ({e(a["comment"])})</title>'
                   f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#1f5fa8" stroke-width="2" marker-end="url(#head)"/>'
                   f'<text class="label" x="{text_x}" y="{y - 5}" font-size="11">{e(a["label"])}</text>'
                   f'<text class="comment" x="{text_x}" y="{y + 14}" font-size="10" fill="#666">'
                   f'{e(a["link"])} +{a["time"]:.6f} s: {e(a["comment"])}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>grelab run report</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
article.case { border-left: 6px solid #2a8a2a; padding: 0.2em 1em; margin: 1em 0; overflow-x: auto; }
article.failed, article.error { border-left-color: #c0392b; }
article.skipped { border-left-color: #999; }
.result { font-family: monospace; }
.failed .result, .error .result { color: #c0392b; }
.passed .result { color: #2a8a2a; }
pre.failure { background: #fdf0ee; padding: 0.8em; white-space: pre-wrap; }
svg.ladder text { font-family: monospace; }
</style></head>
<body>
{body}
</body></html>
"""
