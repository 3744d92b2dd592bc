"""One case on one implementation, as grelab matrix shows it: a cell.

What a pytest run said of a case (grelab.matrix.record keeps each phase's outcome, text and the case's properties)
is a record; a record is a cell: pass; fail with the first differing field; error; not applicable with the
capability the DUT lacks; xfail, where the implementation behaves its own way (a row of grelab.dut.divergences,
named with its source); skip, for any other reason a case did not run.

A record: {"nodeid", "dut": the --dut kind, "phases": [{"when", "outcome", "text", "xfail", "seconds"}],
"properties": {"implementation", "variant_implementation", "differing": {where, field, expected, got}}}.
"""
from __future__ import annotations

import re

STATUSES = ("fail", "error", "xfail", "n/a", "skip", "pass")  # what needs looking at first
BAD = ("fail", "error")  # a matrix with one of these exits 1
# The pytest plugin's skip reasons (grelab.pytest_plugin, --not-applicable=skip): a marker's capability, or a plan
# item the DUT's apply refused (grelab.dut.base.NotApplicable: "DUT r1 lacks gre_iseq: Tunnel gre1 iseq=True").
NOT_APPLICABLE = re.compile(r"not applicable: DUT (?P<dut>\S+) lacks (?P<capability>[^:]+)(?:: (?P<item>.*))?", re.S)
XPASS_STRICT = "[XPASS(strict)] "


def cell(record: dict) -> dict:
    """The record's cell: {"status", "detail" (one line), "seconds", "nodeid", "dut"} and, where there is one,
    "differing" (a failure's first differing field), "capability" (what a not-applicable DUT lacks),
    "divergence" (an xfail's behaviour and source, as the divergence table says it)."""
    phases = {p["when"]: p for p in record["phases"]}
    out = {"nodeid": record["nodeid"], "dut": record["dut"],
           "seconds": round(sum(p.get("seconds", 0.0) for p in record["phases"]), 3)}
    setup, call, teardown = (phases.get(when, {}) for when in ("setup", "call", "teardown"))
    if setup.get("outcome") == "failed":
        return out | {"status": "error", "detail": first_line(setup["text"])}
    decided = call if call else setup  # a case skipped at set-up has no call
    if decided.get("outcome") == "skipped":
        return out | _skipped(decided)
    if call.get("outcome") == "failed":
        return out | _failed(call, record.get("properties", {}))
    if teardown.get("outcome") == "failed":
        return out | {"status": "error", "detail": "teardown: " + first_line(teardown["text"])}
    if call.get("outcome") == "passed":
        return out | {"status": "pass", "detail": ""}
    return out | {"status": "error", "detail": "no result recorded (the run stopped during this case)"}


def _skipped(phase: dict) -> dict:
    if phase.get("xfail") is not None:
        return {"status": "xfail", "detail": first_line(phase["xfail"]), "divergence": phase["xfail"]}
    text = phase.get("text", "").removeprefix("Skipped: ")
    found = NOT_APPLICABLE.search(text)
    if found:
        return {"status": "n/a", "detail": first_line(text[found.start():]), "capability": found["capability"].strip()}
    return {"status": "skip", "detail": first_line(text)}


def _failed(phase: dict, properties: dict) -> dict:
    text = phase.get("text", "")
    if text.startswith(XPASS_STRICT):  # a divergence row whose case now passes: the row must go
        return {"status": "fail", "detail": f"passes, yet marked a divergence: {first_line(text[len(XPASS_STRICT):])}"}
    differing = properties.get("differing")
    if differing:
        return {"status": "fail", "differing": differing, "detail": differing_text(differing)}
    return {"status": "fail", "detail": first_line(text)}


def differing_text(differing: dict) -> str:
    """As grelab.errors.Differing says it: `transit: GRE.key expected 42, got 43`."""
    return f"{differing['where']}: {differing['field']} expected {differing['expected']}, got {differing['got']}"


def first_line(text: str, width: int = 240) -> str:
    """A reason's first line that says something (pytest's "AssertionError: ", "Failed: " dropped), cut to width."""
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    line = re.sub(r"^(AssertionError|Failed|[\w.]*Mismatch): ", "", line)
    return line if len(line) <= width else line[:width - 1] + "…"


def column(record: dict) -> str:
    """The implementation the case ran on: the one the pytest plugin recorded for it (its variant's, else the DUT
    kind), else the DUT kind (a case skipped before that was recorded)."""
    return record.get("properties", {}).get("implementation") or record["dut"]


def row(record: dict) -> str:
    """The case without its folders, and without what in its parameters only names its variant's implementation
    (ikev2.py::test_echo[psk-strongswan-libreswan] on strongswan→libreswan -> ikev2.py::test_echo[psk]), so one
    story's pairings share a row."""
    nodeid = record["nodeid"]
    path, sep, rest = nodeid.partition("::")
    case = path.rsplit("/", 1)[-1] + sep + rest
    named = record.get("properties", {}).get("variant_implementation")
    match = re.fullmatch(r"(?P<test>[^\[]*)\[(?P<params>.*)\]", case)
    if not named or not match:
        return case
    names = {part.lower() for part in re.split(r"[→,\s]+", named) if part}
    escaped = named.encode("unicode_escape").decode()  # how pytest writes → in an id
    params = match["params"].replace(named, "").replace(escaped, "")
    kept = [token for token in params.split("-") if token and token.lower() not in names]
    return f"{match['test']}[{'-'.join(kept)}]" if kept else match["test"]
