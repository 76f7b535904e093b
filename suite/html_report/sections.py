"""The other sections of the page: figures, runs, what differs between arms, the data files, the environment, the
search's best trials and the spec text.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from mlrd_core.data.mixture import dataset_label
from suite.html_report.tables import esc
from suite.plan import PlannedRun
from suite.report import MISSING
from suite.spec import Spec
from suite.tables import DATA_SOURCES_KEY, data_sources

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
