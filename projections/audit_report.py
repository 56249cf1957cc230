"""`trustledger audit report`: one static HTML page an auditor reads in any browser.

Theory of operation
-------------------
`collect` walks the device log once: each event becomes a timeline entry (the one mapping
table is projections/report_timeline.py) and is folded into the device state, so that each
trustpoint's lifecycle state (engine/machines/trustpoint.py) is known after every event: a
trustpoint's path is the list of its state changes, with the event that made each one.
`lifecycle_dot` draws that path over the machine's own diagram (engine.machines.diagrams
`dot_source`): visited states filled, numbered in the order reached. `render` lays it all out.

The page is self-contained: inline CSS, SVG drawn by graphviz inlined, no script at all, no
fetch of anything (a `Content-Security-Policy` meta says so to the browser too), every text
from the log escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.machines.trustpoint import Lifecycle
from engine.state import DeviceState, evolve
from events.store import Recorded
from projections.report_timeline import Entry, entry_for
from projections.timefmt import ios_time

REMOVED = "removed"


@dataclass(frozen=True)
class Step:
    seq: int
    at: int
    state: str  # a Lifecycle value, or "removed"
    cause: str  # the event type that led there


@dataclass(frozen=True)
class Row:
    seq: int
    at: int
    actor: str
    type_name: str
    entry: Entry


@dataclass
class ReportData:
    hostname: str = "ios"
    head: tuple[int, str] = (0, "")  # seq and chain hash (hex) of the last event
    rows: list[Row] = field(default_factory=list)
    paths: dict[str, list[Step]] = field(default_factory=dict)  # trustpoint -> its path


def _lifecycles(state: DeviceState) -> dict[str, str]:
    names = set(state.trustpoint_configs) | set(state.trustpoints)
    return {n: (state.trustpoints[n].lifecycle.value if n in state.trustpoints
                else Lifecycle.DECLARED.value) for n in names}


def collect(records: Iterable[Recorded]) -> ReportData:
    """The timeline and the trustpoints' paths of a device log (see the module docstring)."""
    data = ReportData()
    state = DeviceState()
    before: dict[str, str] = {}
    for rec in records:
        data.rows.append(Row(rec.seq, rec.at, rec.actor, rec.type,
                             entry_for(rec.type, rec.payload)))
        state = evolve(state, rec.event, rec.at, rec.seq)
        after = _lifecycles(state)
        for name in sorted(set(before) | set(after)):
            now = after.get(name, REMOVED)
            if now != before.get(name, REMOVED):
                data.paths.setdefault(name, []).append(Step(rec.seq, rec.at, now, rec.type))
        before = after
        data.head = (rec.seq, rec.hash.hex())
    data.hostname = state.hostname
    return data


def lifecycle_dot(machine_dot: str, path: Sequence[Step]) -> str:
    """The trustpoint machine's DOT with the states `path` went through filled and numbered
    in the order reached (a state reached twice gets both numbers)."""
    order: dict[str, list[str]] = {}
    for n, step in enumerate(path, 1):
        if step.state != REMOVED:
            order.setdefault(step.state, []).append(str(n))
    extra = [f'  "{state}" [style="rounded,filled", fillcolor="#cfe3ff", '
             f'xlabel="{",".join(nums)}", penwidth=2];' for state, nums in order.items()]
    body = machine_dot.rstrip().removesuffix("}")
    return body + "\n".join(extra) + "\n}\n"


CSP = "default-src 'none'; style-src 'unsafe-inline'"  # no script, no fetch: nothing
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 76em;
       color: #1b1f24; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccd; }
.meta { color: #555; } code, pre, .mono { font-family: ui-monospace, monospace; font-size: 12px; }
table.timeline { border-collapse: collapse; width: 100%; }
table.timeline td { border-top: 1px solid #e3e6ea; padding: .45em .5em; vertical-align: top; }
td.when { white-space: nowrap; color: #444; width: 15em; } td.seq { text-align: right; width: 4em; }
.kind { display: inline-block; min-width: 6.5em; padding: 0 .4em; border-radius: 3px;
        font-size: 11px; text-transform: uppercase; letter-spacing: .04em; background: #eef; }
.k-ca { background: #ffe8b3; } .k-certificate { background: #d7f5dd; }
.k-key { background: #e6dcff; } .k-trustpool { background: #d9f0ff; }
.k-crl { background: #ffe0e6; } .k-validation { background: #ffd6cc; }
.k-config { background: #eceff3; } .k-other { background: #f4f4f4; }
tr.refused .title { color: #b00020; font-weight: 600; }
.title { font-weight: 600; }
dl { margin: .3em 0 0; display: grid; grid-template-columns: max-content 1fr; gap: 0 1em; }
dt { color: #555; } dd { margin: 0; word-break: break-all; }
pre.diff { margin: .4em 0 0; padding: .4em; background: #f7f8fa; }
.add { color: #116329; } .del { color: #a40e26; }
.diagram svg { max-width: 100%; height: auto; } .diagram { margin: 1em 0; }
ol.path li { margin: .2em 0; }
"""


def _facts(entry: Entry) -> str:
    if not entry.facts:
        return ""
    items = "".join(f"<dt>{html.escape(k)}</dt><dd class=\"mono\">{html.escape(v)}</dd>"
                    for k, v in entry.facts)
    return f"<dl>{items}</dl>"


def _diff(entry: Entry) -> str:
    if not entry.diff:
        return ""
    lines = "\n".join(f'<span class="{"add" if sign == "+" else "del"}">'
                      f"{sign} {html.escape(line)}</span>" for sign, line in entry.diff)
    return f'<pre class="diff">{lines}</pre>'


def _row(row: Row) -> str:
    e = row.entry
    refused = ' class="refused"' if e.refused else ""
    return (f'<tr{refused} data-type="{html.escape(row.type_name)}"><td class="seq">{row.seq}'
            f'</td><td class="when">{html.escape(ios_time(row.at))}<br>'
            f'<span class="meta">{html.escape(row.actor)}</span></td>'
            f'<td><span class="kind k-{e.kind}">{html.escape(e.kind)}</span> '
            f'<span class="title">{html.escape(e.title)}</span>{_facts(e)}{_diff(e)}</td></tr>')


def _inline_svg(svg: str) -> str:
    """graphviz's SVG without its XML prolog and DOCTYPE, to sit inside HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else ""


def _paths(data: ReportData, path_svgs: Mapping[str, str]) -> str:
    if not data.paths:
        return "<p>No trustpoint was ever configured.</p>"
    out = []
    for name, path in sorted(data.paths.items()):
        steps = "".join(f"<li><b>{html.escape(s.state)}</b> at seq {s.seq}, "
                        f"{html.escape(ios_time(s.at))} ({html.escape(s.cause)})</li>"
                        for s in path)
        svg = path_svgs.get(name, "")
        out.append(f'<h3 id="tp-{html.escape(name)}">Trustpoint {html.escape(name)}</h3>'
                   f'<ol class="path">{steps}</ol>'
                   f'<div class="diagram">{_inline_svg(svg)}</div>')
    return "\n".join(out)


def render(data: ReportData, diagrams: Mapping[str, str], path_svgs: Mapping[str, str],
           *, source: str, made_at: int) -> str:
    """The whole page. `diagrams`: machine name -> SVG; `path_svgs`: trustpoint -> SVG."""
    rows = "\n".join(_row(r) for r in data.rows)
    machines = "\n".join(f'<h3>{html.escape(name)}</h3><div class="diagram">'
                         f"{_inline_svg(svg)}</div>" for name, svg in diagrams.items())
    seq, chain = data.head
    refused = sum(r.entry.refused for r in data.rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>trustledger audit report: {html.escape(data.hostname)}</title>
<style>{CSS}</style></head><body>
<h1>Audit report: {html.escape(data.hostname)}</h1>
<p class="meta">Log <span class="mono">{html.escape(source)}</span>: {seq} events, head chain
hash <span class="mono">{chain}</span>. Made {html.escape(ios_time(made_at))}.
{refused} refusal(s) in red.</p>
<h2 id="timeline">Timeline</h2>
<table class="timeline"><tbody>
{rows}
</tbody></table>
<h2 id="trustpoints">Trustpoint lifecycles</h2>
{_paths(data, path_svgs)}
<h2 id="machines">State machines</h2>
{machines}
</body></html>
"""

