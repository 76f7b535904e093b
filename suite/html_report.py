"""One self-contained HTML page per spec: ``<results>/<spec>/report.html`` (docs/reports.md, "The HTML report").

The page gathers what the other commands write separately: the spec's title and description, every table, every
figure, the run matrix, what differs between the arms, the environment the runs ran in, the best trials of the
spec's search and the spec text itself. It is one file that opens from disk: inline CSS, figures embedded as
``data:`` URIs of the PNGs that ``python -m suite figures`` wrote, and a Content-Security-Policy that forbids the
browser any fetch (``default-src 'none'``). Every text is HTML-escaped. Tables scroll sideways on a narrow screen;
a few lines of optional JavaScript sort the run matrix, nothing else needs it.

The tables are rendered from the same model as the Markdown, LaTeX and CSV files
(:func:`suite.tables.table_model`, :class:`suite.report.ReportTable`): :func:`render_html` prints every
cell of every row with the Markdown renderer's text for that row (same numbers, bold, (+)/(−) and any other mark),
adds the model's flags as classes and its statistics as attributes, and converts what
:func:`suite.report.render_markdown` writes under the tables (the legend and any further block) to HTML. Nothing
is recomputed here.

:func:`build_report` is pure apart from reading the store, the figure files, the spec file and the run folders;
:func:`write_report` writes the page atomically.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from mlrd_core.data.mixture import dataset_label
from suite.plan import PlannedRun
from suite.report import MISSING, Cell, Column, ReportTable, Row, markdown_row, render_markdown
from suite.spec import Spec
from suite.tables import DATA_SOURCES_KEY, data_sources

__all__ = [
    "FIGURE_CAPTIONS",
    "REPORT_NAME",
    "build_report",
    "render_html",
    "report_path",
    "write_report",
]

REPORT_NAME = "report.html"

#: Captions of the figures that :func:`suite.figures.make_figures` draws, by file stem (docs/figures.md).
FIGURE_CAPTIONS: dict[str, str] = {
    "fig2_loss_pca": "Fig. 2: PCA of the losses' training trajectories (per-period means divided by their first "
    "value, seed means) on their first two principal axes, by loss type (a) and by scale (b).",
    "fig3_contributions": "Fig. 3: each loss's contribution w·P at the end of each epoch (seed means); red: grew "
    "since the previous epoch shown, blue: shrank, green: unchanged.",
    "weight_trajectories": "Loss weights after every period end, by loss family (top), and each family's share of "
    "the total contribution (bottom), for the arms whose weights change; seed means.",
    "validation_curves": "Validation metrics after each epoch: mean over seeds with a ±1 sample-std band.",
    "depth_maps": "Depth maps of test images: RGB, ground truth and one prediction per arm (the final checkpoint of "
    "its lowest seed), one colour scale per row; the number is the image's RMSE.",
}

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


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes too: safe in attributes)."""
    return html.escape(str(value), quote=True)


_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")


def inline_markdown(text: str) -> str:
    """The report's Markdown inline marks as HTML: the text is escaped first, then ``**x**`` → ``<strong>`` and
    ``*x*`` → ``<em>`` (the only marks the Markdown renderer uses in cells and legends)."""
    out = _STRONG.sub(r"<strong>\1</strong>", esc(text))
    return _EM.sub(r"<em>\1</em>", out)


# ----------------------------------------------------------------------------------------------------------------
# Tables (from the report model)


def _number(value: Any) -> str | None:
    """A number for a ``data-`` attribute (full precision), or None when missing."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return repr(number) if math.isfinite(number) else None


def _cell_details(cell: Cell) -> str:
    """Every field the model carries for a cell (whatever statistics it holds), for the cell's tooltip."""
    parts = []
    for f in dataclasses.fields(cell):
        value = getattr(cell, f.name)
        if value is None or value is False or (isinstance(value, float) and not math.isfinite(value)):
            continue
        if f.name == "n" and value == 0:
            continue
        parts.append(f"{f.name} {value:.6g}" if isinstance(value, float) else f"{f.name} {value}")
    return ", ".join(parts)


_MD_ESCAPES = {"\\\\": "\x00", "\\|": "\x01", "\\*": "\x02"}
_MD_RESTORE = {"\x00": "\\", "\x01": "|", "\x02": "*"}


def markdown_cell_html(text: str) -> str:
    """A Markdown table cell as HTML: escaped characters (``\\|``, ``\\*``, ``\\\\``) are literal, ``**x**`` and
    ``*x*`` become ``<strong>`` / ``<em>``, everything else is HTML-escaped."""
    for escaped, mark in _MD_ESCAPES.items():
        text = text.replace(escaped, mark)
    out = inline_markdown(text)
    for mark, char in _MD_RESTORE.items():
        out = out.replace(mark, char)
    return out


def _metric_td(column: Column, cell: Cell, row: Row, text: str) -> str:
    classes = ["num"]
    if cell.best and row.source is None:
        classes.append("best")
    if cell.outcome:
        classes.append(str(cell.outcome))
    attrs = [f'class="{" ".join(classes)}"', f'data-{column.kind}="{esc(column.key)}"']
    mean = _number(cell.mean)
    if mean is not None:
        attrs.append(f'data-mean="{mean}"')
    details = _cell_details(cell)
    if details:
        attrs.append(f'title="{esc(details)}"')
    return f"<td {' '.join(attrs)}>{markdown_cell_html(text)}</td>"


def _row_html(table: ReportTable, row: Row) -> str:
    """One row: the Markdown renderer's text of every cell (:func:`suite.report.markdown_row`), as HTML with the
    model's flags as classes and the metric values as ``data-`` attributes."""
    texts = markdown_row(table, row)
    cells: list[str] = []
    for col, text in zip(table.columns, texts, strict=True):
        if col.kind == "arm":
            cells.append(f'<th scope="row">{markdown_cell_html(text)}</th>')
        elif col.kind == "descriptor":
            cells.append(f'<td data-column="{esc(col.key)}">{markdown_cell_html(text)}</td>')
        elif col.kind == "n":
            cells.append(f'<td class="num">{markdown_cell_html(text)}</td>')
        else:
            cells.append(_metric_td(col, row.cells[col.key], row, text))
    kind = "measured" if row.source is None else "reference"
    source = "" if row.source is None else f' data-source="{esc(row.source)}"'
    return f'<tr class="{kind}" data-arm="{esc(row.arm)}"{source}>{"".join(cells)}</tr>'


def markdown_trailer(markdown: str, parts: int) -> list[str]:
    """The lines that :func:`suite.report.render_markdown` writes after the tables of its ``parts`` parts (the
    legend, and whatever notes or blocks follow it): the page shows them in the model's own words."""
    lines = markdown.rstrip("\n").split("\n")
    ends = 0
    for i, line in enumerate(lines):
        table_ends = line.startswith("|") and (i + 1 == len(lines) or not lines[i + 1].startswith("|"))
        if table_ends or line.strip() == "*no arms in this part*":
            ends += 1
            if ends == parts:
                return lines[i + 1 :]
    return []


def _split_pipe_row(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def _pipe_table_html(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    def attrs(j: int) -> str:
        return ' class="num"' if j < len(right) and right[j] else ""

    head = "".join(f'<th scope="col"{attrs(j)}>{markdown_cell_html(c)}</th>' for j, c in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{attrs(j)}>{markdown_cell_html(c)}</td>" for j, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def markdown_blocks_html(lines: Sequence[str]) -> str:
    """Markdown blocks as the report renderer writes them, as HTML: pipe tables (first row the header; ``---:``
    columns right-aligned), a line that is all bold as a heading, any other line as a legend paragraph."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(_split_pipe_row(lines[i]))
                i += 1
            header, rows = block[0], block[1:]
            right = [False] * len(header)
            if rows and all(re.fullmatch(r":?-+:?", c) for c in rows[0]):
                right = [c.endswith(":") and not c.startswith(":") for c in rows[0]]
                rows = rows[1:]
            out.append(_pipe_table_html(header, rows, right))
            continue
        bold = re.fullmatch(r"\*\*(.+)\*\*", line.strip())
        if bold and "**" not in bold.group(1):
            out.append(f"<h4>{markdown_cell_html(bold.group(1))}</h4>")
        else:
            out.append(f'<p class="legend">{markdown_cell_html(line)}</p>')
        i += 1
    return "\n".join(out)


def render_html(table: ReportTable) -> str:
    """The table as an HTML fragment: a heading, one ``<table>`` per part, then what the Markdown rendering writes
    under its tables (the legend and any further blocks). Every cell prints the Markdown renderer's text for the
    same row of the same model; a metric cell's tooltip lists every statistic the model holds for it."""
    out = [f'<section class="report-table" id="table-{esc(table.name)}" data-table="{esc(table.name)}">']
    out.append(f"<h3>{esc(table.title)}</h3>")
    header = "".join(
        f'<th scope="col" class="num" data-column="{esc(c.key)}">{esc(c.label)}</th>'
        if c.kind in ("n", "metric")
        else f'<th scope="col" data-column="{esc(c.key)}">{esc(c.label)}</th>'
        for c in table.columns
    )
    for section in table.sections:
        out.append(f'<h4 data-group="{esc(section.group)}">{esc(section.title)}</h4>')
        if not section.rows:
            out.append('<p class="note"><em>no arms in this part</em></p>')
            continue
        if not section.has_runs:
            out.append('<p class="note"><em>no finished runs yet</em></p>')
        rows = "".join(_row_html(table, row) for row in section.rows)
        out.append(
            f'<div class="scroll"><table data-group="{esc(section.group)}">'
            f"<thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table></div>"
        )
    out.append(markdown_blocks_html(markdown_trailer(render_markdown(table), len(table.sections))))
    out.append("</section>")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------------------------
# The other sections


def _figures_html(folder: Path) -> tuple[str, int]:
    """Every PNG under ``folder`` as an embedded image with its caption (the paper's figures first)."""
    from suite.figures import FIGURE_NAMES

    pngs = sorted(folder.glob("*.png")) if folder.is_dir() else []
    order = {stem: i for i, stem in enumerate(FIGURE_NAMES.values())}
    pngs.sort(key=lambda p: (order.get(p.stem, len(order)), p.name))
    if not pngs:
        return (
            '<p class="note">No figures yet: <code>python -m suite figures SPEC</code> draws them once runs have '
            "finished.</p>",
            0,
        )
    out = []
    for png in pngs:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        caption = FIGURE_CAPTIONS.get(png.stem, png.stem)
        pdf = png.with_suffix(".pdf")
        link = f' (<a href="figures/{quote(pdf.name)}">PDF</a>)' if pdf.exists() else ""
        out.append(
            f'<figure id="figure-{esc(png.stem)}"><img src="data:image/png;base64,{data}" '
            f'alt="{esc(caption)}" loading="eager">'
            f"<figcaption>{esc(caption)} <span class=mono>{esc(png.name)}</span>{link}</figcaption></figure>"
        )
    return "\n".join(out), len(pngs)


def _duration(start: Any, end: Any) -> tuple[str, str]:
    """(shown, sortable seconds) between two timestamps; "–" when one is missing."""
    if start is None or end is None or pd.isna(start) or pd.isna(end):
        return MISSING, ""
    seconds = (pd.Timestamp(end) - pd.Timestamp(start)).total_seconds()
    if seconds < 60:
        shown = f"{seconds:.1f} s"
    elif seconds < 3600:
        shown = f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    else:
        shown = f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return shown, f"{seconds:.3f}"


def _time(value: Any) -> str:
    if value is None or pd.isna(value):
        return MISSING
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _log_link(report_dir: Path, run_dir: Path) -> str:
    """A relative link from the page to the run's worker log (or its folder), or "–" when neither exists."""
    from suite.worker import LOG_FILE

    target = run_dir / LOG_FILE if (run_dir / LOG_FILE).exists() else run_dir if run_dir.is_dir() else None
    if target is None:
        return MISSING
    rel = os.path.relpath(target.resolve(), report_dir.resolve()).replace(os.sep, "/")
    label = LOG_FILE if target.name == LOG_FILE else "folder"
    return f'<a href="{esc(quote(rel))}">{esc(label)}</a>'


def _runs_html(
    runs: Sequence[PlannedRun], infos: Mapping[str, Any], envs: Mapping[str, Mapping[str, str]], results: Path
) -> str:
    report_dir = results / (runs[0].spec if runs else "")
    rows = []
    for run in runs:
        info = infos.get(run.run_id)
        state = str(info.state) if info is not None else "not in the store"
        attempts = str(info.attempts) if info is not None else MISSING
        started = _time(info.started_at) if info is not None else MISSING
        end = info.finished_at if info is not None and info.finished_at is not None else None
        if info is not None and end is None and state == "RUNNING":
            end = info.heartbeat_at
        shown, seconds = _duration(info.started_at if info is not None else None, end)
        env = envs.get(run.run_id, {})
        device = env.get("device", "")
        if env.get("device_name") and env.get("device_name") != device:
            device = f"{device} ({env['device_name']})"
        run_dir = Path(info.workdir) if info is not None and info.workdir else results / "runs" / run.short_id
        state_html = f'<span class="state-{esc(state)}">{esc(state)}</span>'
        if info is not None and info.error:
            state_html = (
                f'<details><summary class="state-{esc(state)}">{esc(state)}</summary>'
                f"<pre>{esc(info.error[-4000:])}</pre></details>"
            )
        rows.append(
            f'<tr data-run="{esc(run.run_id)}">'
            f"<td>{esc(run.group)}</td><td>{esc(run.arm)}</td>"
            f'<td class="num">{run.seed}</td><td class="mono" title="{esc(run.run_id)}">{esc(run.short_id)}</td>'
            f'<td data-state="{esc(state)}">{state_html}</td><td class="num">{esc(attempts)}</td>'
            f'<td class="mono">{esc(started)}</td><td class="num" data-sort="{seconds}">{esc(shown)}</td>'
            f"<td>{esc(device or MISSING)}</td><td>{_log_link(report_dir, run_dir)}</td></tr>"
        )
    header = "".join(
        f'<th scope="col"{" class=num" if h in ("seed", "attempts", "duration") else ""}>{h}</th>'
        for h in ("group", "arm", "seed", "run", "state", "attempts", "started (UTC)", "duration", "device", "log")
    )
    return (
        f'<div class="scroll"><table class="sortable" id="run-matrix"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out  # an empty table sets nothing
    return {prefix: value}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _settings_text(settings: Mapping[str, Any]) -> str:
    return "; ".join(f"{k} = {_show(v)}" for k, v in _flatten(settings).items()) or MISSING


def _config_html(spec: Spec) -> str:
    """The arms' resolved configs: the keys that differ between arms (one row per arm, with what the spec sets
    for it over its ``[defaults]``), then the settings every arm shares."""
    arms = list(spec.arms())
    flat = [_flatten(arm.config.to_dict()) for arm in arms]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    differ = [k for k in keys if len({_show(f.get(k, MISSING)) for f in flat}) > 1]
    same = [k for k in keys if k not in differ]
    header = "".join(f'<th scope="col" class="mono">{esc(k)}</th>' for k in differ)
    rows = []
    for arm, values in zip(arms, flat, strict=True):
        group = spec.group(arm.group)
        own = {**group.defaults, **arm.settings}
        cells = "".join(f'<td class="mono">{esc(_show(values.get(k, MISSING)))}</td>' for k in differ)
        rows.append(
            f"<tr><td>{esc(arm.group)}</td><th scope=row>{esc(arm.label)}</th>"
            f'<td class="mono">{esc(_settings_text(own))}</td>{cells}</tr>'
        )
    shared = "".join(
        f"<tr><th scope=row class=mono>{esc(k)}</th><td class=mono>{esc(_show(flat[0][k]))}</td></tr>" for k in same
    )
    note = (
        "One row per arm: what the spec sets for the arm over its <code>[defaults]</code> (the group's defaults "
        "and the arm's own keys), then each resolved setting whose value differs between arms."
        if differ
        else "Every arm has the same resolved settings (they differ by seed only)."
    )
    return (
        f'<p class="note">{note}</p>'
        f'<div class="scroll"><table class="sortable" id="arm-configs"><thead><tr><th scope=col>group</th>'
        f"<th scope=col>arm</th><th scope=col>set by the spec</th>{header}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f"<details><summary>Settings every arm shares ({len(same)})</summary>"
        f'<div class="scroll"><table><tbody>{shared}</tbody></table></div></details>'
    )


def _data_files_html(envs: Mapping[str, Mapping[str, str]]) -> str:
    """The files the runs read (the ``data_sources`` fact: per split, one record per file or folder), one row per
    distinct (split, record) with the number of runs that read it; "" when no run recorded any (generated data)."""
    seen: dict[str, tuple[str, dict[str, Any], int]] = {}
    for splits in data_sources(envs).values():
        for split, records in splits.items():
            for record in records:
                key = json.dumps([split, record], sort_keys=True, default=str)
                _, _, n = seen.get(key, (split, record, 0))
                seen[key] = (split, record, n + 1)
    if not seen:
        return ""
    fields = list(dict.fromkeys(k for _, record, _ in seen.values() for k in record))
    header = "".join(f'<th scope="col">{esc(f)}</th>' for f in ("split", *fields, "runs"))
    rows = "".join(
        f"<tr><td>{esc(split)}</td>"
        + "".join(f'<td class="mono">{esc(_show(record.get(f, MISSING)))}</td>' for f in fields)
        + f'<td class="num">{n}</td></tr>'
        for split, record, n in seen.values()
    )
    return (
        '<h3>Data files read</h3><p class="note">What each split of the finished runs read, as the runs recorded it '
        "(size, items and content hash), with the number of runs that read it.</p>"
        f'<div class="scroll"><table id="data-files"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody>'
        "</table></div>"
    )


def _environment_html(runs: Sequence[PlannedRun], envs: Mapping[str, Mapping[str, str]]) -> str:
    """Each environment fact the store recorded, with the number of runs per value; the data files the runs read;
    and the dataset settings of the arms."""
    values: dict[str, dict[str, int]] = {}
    for env in envs.values():
        for key, value in env.items():
            if key == DATA_SOURCES_KEY:  # shown as a table of its own
                continue
            counts = values.setdefault(key, {})
            counts[value] = counts.get(value, 0) + 1
    out = []
    if values:
        items = []
        for key in sorted(values):
            shown = "; ".join(f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in values[key].items())
            items.append(f"<dt>{esc(key)}</dt><dd class=mono>{esc(shown)}</dd>")
        out.append(f'<dl class="env">{"".join(items)}</dl>')
    else:
        out.append('<p class="note">No finished run has recorded its environment yet.</p>')
    data: dict[str, list[str]] = {}
    for run in runs:
        options = run.config.dataset_options
        label = dataset_label(run.config)
        if run.config.eval_dataset is not None:
            label += f" (evaluated on {run.config.eval_dataset})"
        if run.config.dataset_weights is not None:
            label += f" weights {_show(dict(run.config.dataset_weights))}"
        text = f"{label} {_show(dict(options))}" if options else label
        arms = data.setdefault(text, [])
        if run.arm not in arms:
            arms.append(run.arm)
    out.append(_data_files_html(envs) or '<p class="note">No run recorded data files (generated data reads none).</p>')
    items = [f"<li><code>{esc(text)}</code>: {esc(', '.join(arms))}</li>" for text, arms in data.items()]
    out.append(f"<h3>Datasets</h3><p class=note>Dataset and its options, by arm:</p><ul>{''.join(items)}</ul>")
    return "\n".join(out)


def _search_html(spec: Spec, url: str | None) -> str | None:
    """The best trials of the spec's search (the same table ``python -m suite search`` prints), or None when the
    spec has no ``[search]``. Reads the study without creating anything."""
    if spec.search is None:
        return None
    search = spec.search
    intro = (
        f'<p class="note">Study <code>{esc(search.study)}</code>: {esc(search.direction)} '
        f"{esc(search.objective)} on {esc(search.split)} over the searched arm "
        f"<code>{esc(search.group)}/{esc(search.arm)}</code>.</p>"
    )
    study = _load_study(search.study, url)
    if study is None:
        return intro + '<p class="note">No trials yet: <code>python -m suite search SPEC</code> runs them.</p>'
    from suite.search import best_trials_table

    return intro + _rich_table_html(best_trials_table(study, spec, top=10))


def _load_study(name: str, url: str | None) -> Any:
    if url is None:
        return None
    import optuna
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        if not inspect(engine).has_table("studies"):  # Optuna would create its tables: leave the store alone
            return None
    finally:
        engine.dispose()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return None


def _rich_table_html(table: Any) -> str:
    """A :class:`rich.table.Table` of plain-text cells as an HTML table (title and caption kept)."""
    columns = list(table.columns)
    header = "".join(f'<th scope="col">{esc(c.header)}</th>' for c in columns)
    cells = [[str(c) for c in column.cells] for column in columns]
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(col[i])}</td>" for col in cells) + "</tr>"
        for i in range(max((len(c) for c in cells), default=0))
    )
    title = f"<h3>{esc(table.title)}</h3>" if table.title else ""
    caption = f'<p class="legend">{esc(table.caption)}</p>' if table.caption else ""
    return (
        f'{title}<div class="scroll"><table id="search-trials"><thead><tr>{header}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>{caption}"
    )


def _spec_text_html(spec: Spec) -> str:
    text = None
    if spec.path is not None:
        try:
            text = Path(spec.path).read_text(encoding="utf-8")
        except OSError:
            text = None
    where = f'<p class="note">From <code>{esc(spec.source)}</code>.</p>'
    if text is None:
        text = json.dumps(spec.raw, indent=2, ensure_ascii=False, default=str)
        where += '<p class="note">The spec file could not be read; this is the parsed document.</p>'
    return f'{where}<pre id="spec-text">{esc(text)}</pre>'


# ----------------------------------------------------------------------------------------------------------------
# The page


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
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
