"""The page: its CSS, script and Content-Security-Policy, :func:`build_report` (every section of one spec) and
:func:`write_report` (atomically, to ``<results>/<spec>/report.html``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlrd_core.atomic import write_text_atomic
from suite.html_report.sections import (
    _config_html,
    _environment_html,
    _figures_html,
    _runs_html,
    _search_html,
    _spec_text_html,
)
from suite.html_report.tables import esc, render_html
from suite.plan import PlannedRun
from suite.spec import Spec
from suite.tables import data_sources

REPORT_NAME = "report.html"


#: The browser may fetch nothing: images are data: URIs, style and script are inline.
_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)


_CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --head: #f6f8fa; --improved: #c0392b;
        --degraded: #1f5fbf; --accent: #0b5cad; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.5;
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 78rem; margin: 0 auto; padding: 1rem 1.25rem 4rem; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0.5rem 0; }
h2 { font-size: 1.3rem; margin: 2.5rem 0 0.75rem; padding-bottom: 0.25rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
h4 { font-size: 1rem; margin: 1rem 0 0.25rem; }
p, li { max-width: 60rem; }
a { color: var(--accent); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
                   font-size: 0.875em; }
pre { background: var(--head); border: 1px solid var(--line); padding: 0.75rem; overflow-x: auto;
      white-space: pre; }
.meta { color: var(--muted); margin: 0.25rem 0; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; padding: 0; margin: 0.75rem 0; list-style: none; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; margin: 0.5rem 0;
          border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; font-size: 0.9rem; min-width: 100%; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--head); text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.report-table td, #run-matrix td, #search-trials td { white-space: nowrap; }
#arm-configs td { min-width: 7rem; }
#arm-configs td:nth-child(3) { min-width: 16rem; }
tr.reference td { color: var(--muted); font-style: italic; }
tr.reference td.num em { font-style: italic; }
td.improved { color: var(--improved); }
td.degraded { color: var(--degraded); }
td.best strong { font-weight: 700; }
.legend, .note { color: var(--muted); font-size: 0.875rem; }
.state-DONE { color: #1a7f37; }
.state-FAILED, .state-LOST { color: #cf222e; font-weight: 600; }
.state-RUNNING { color: #9a6700; }
figure { margin: 1.25rem 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.9rem; margin-top: 0.35rem; }
details summary { cursor: pointer; }
dl.env { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.env dt { font-weight: 600; }
dl.env dd { margin: 0; overflow-wrap: anywhere; }
th.sortable { cursor: pointer; }
@media (max-width: 40rem) {
  body { font-size: 15px; }
  main { padding: 0.75rem 0.75rem 3rem; }
  h1 { font-size: 1.3rem; }
  th, td { padding: 0.25rem 0.45rem; }
  dl.env { grid-template-columns: 1fr; }
  dl.env dd { margin-bottom: 0.4rem; }
}
@media print { .scroll { overflow: visible; } nav { display: none; } }
"""


#: Optional: click a header of a ``.sortable`` table to sort its rows. The page needs none of it.
_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, index) {
    th.classList.add("sortable");
    th.title = "sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var up = th.getAttribute("data-sorted") !== "up";
      rows.sort(function (a, b) {
        var x = a.cells[index].getAttribute("data-sort") || a.cells[index].textContent;
        var y = b.cells[index].getAttribute("data-sort") || b.cells[index].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-sorted"); });
      th.setAttribute("data-sorted", up ? "up" : "down");
    });
  });
});
"""


def _state_counts(runs: Iterable[PlannedRun], infos: Mapping[str, Any]) -> str:
    counts: dict[str, int] = {}
    for run in {r.run_id: r for r in runs}.values():
        info = infos.get(run.run_id)
        state = str(info.state) if info is not None else "not in the store"
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in counts.items())


def build_report(
    spec: Spec,
    runs: Sequence[PlannedRun],
    store: Any | None,
    results: Path,
    *,
    url: str | None = None,
    shown_url: str | None = None,
    now: datetime | None = None,
) -> str:
    """The page of ``spec`` as one HTML string. ``store`` None: no results yet (the page still shows the plan and
    the spec). ``url``: the store's URL, to read a search study from; ``shown_url``: how the page names it."""
    from suite.report import METRICS_FRAME_COLUMNS, TIMINGS_FRAME_COLUMNS
    from suite.tables import table_model

    results = Path(results)
    if store is None:
        metrics = pd.DataFrame(columns=list(METRICS_FRAME_COLUMNS))
        timings = pd.DataFrame(columns=list(TIMINGS_FRAME_COLUMNS))
        infos: dict[str, Any] = {}
        envs: dict[str, dict[str, str]] = {}
    else:
        metrics = store.metrics_frame(spec=spec.name)
        timings = store.timings_frame(spec=spec.name)
        infos = {info.run_id: info for info in store.runs(spec=spec.name)}
        envs = {run_id: env for run_id in infos if (env := store.environment(run_id))}

    tables = [render_html(table_model(spec, t, runs, metrics, timings, data_sources(envs))) for t in spec.tables]
    figures, n_figures = _figures_html(results / spec.name / "figures")
    search = _search_html(spec, url)

    sections: list[tuple[str, str, str]] = [
        ("tables", "Tables", "\n".join(tables) or '<p class="note">The spec has no tables.</p>'),
        ("figures", f"Figures ({n_figures})", figures),
        ("runs", f"Runs ({len(runs)})", _runs_html(runs, infos, envs, results)),
        ("arms", "What differs between arms", _config_html(spec)),
    ]
    if search is not None:
        sections.append(("search", "Search: best trials", search))
    sections += [
        ("environment", "Environment", _environment_html(runs, envs)),
        ("spec", "Spec", _spec_text_html(spec)),
    ]
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    unique = len({r.run_id for r in runs})
    meta = [
        f"spec <code>{esc(spec.name)}</code>",
        f"{len(runs)} runs in the matrix ({unique} distinct)",
        esc(_state_counts(runs, infos)),
        f"seeds {esc(', '.join(str(s) for s in spec.seeds))}",
    ]
    overrides = re.search(r"\(with (--set .*)\)$", spec.source)
    if overrides:
        meta.append(f"overrides <code>{esc(overrides.group(1))}</code>")
    if shown_url:
        meta.append(f"database <code>{esc(shown_url)}</code>")
    meta.append(f"generated {esc(stamp)}")
    nav = "".join(f'<li><a href="#{anchor}">{esc(title)}</a></li>' for anchor, title, _ in sections)
    body = "\n".join(
        f'<section id="{anchor}"><h2>{esc(title)}</h2>\n{content}\n</section>' for anchor, title, content in sections
    )
    description = "".join(  # paragraphs at blank lines; the TOML's own line breaks are not the reader's
        f'<p class="description">{esc(" ".join(part.split()))}</p>'
        for part in re.split(r"\n\s*\n", spec.description.strip())
        if part.strip()
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="generator" content="MLRD suite (python -m suite report)">
<title>{esc(spec.title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<header>
<h1>{esc(spec.title)}</h1>
{description}
<p class="meta">{" · ".join(meta)}</p>
<nav aria-label="sections"><ul>{nav}</ul></nav>
</header>
{body}
</main>
<script>{_JS}</script>
</body>
</html>
"""


def report_path(results: Path, spec: Spec) -> Path:
    return Path(results) / spec.name / REPORT_NAME


def write_report(
    spec: Spec,
    runs: Sequence[PlannedRun],
    store: Any | None,
    results: Path,
    *,
    url: str | None = None,
    shown_url: str | None = None,
) -> Path:
    """Write :func:`build_report` to ``<results>/<spec>/report.html`` (atomically) and return the path."""
    path = report_path(results, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = build_report(spec, runs, store, results, url=url, shown_url=shown_url)
    write_text_atomic(path, text)
    return path
