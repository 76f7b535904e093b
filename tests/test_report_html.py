"""The HTML report (suite/html_report/, ``python -m suite report``).

Fast tests render pages without a browser: escaping, self-containedness, the same cells as the Markdown table,
the search's trials. The ``browser`` tests run a tiny spec end to end, open its page from ``file://`` in Debian's
chromium (Selenium with chromium-driver) and check what a reader sees: the table cells against the store, every
figure decoded, no console error, no network request, the same content with JavaScript off, no sideways scrolling
of the page at a phone's width. They skip when chromium is missing; ``nox -s browser`` installs it and sets
MLRD_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from tiny_spec import spec_text

from suite.cli import main
from suite.html_report import (
    build_report,
    inline_markdown,
    markdown_blocks_html,
    markdown_cell_html,
    markdown_trailer,
    render_html,
)
from suite.plan import plan
from suite.report import TableLayout, build_table, markdown_row, render_markdown, summarize
from suite.spec import loads_spec
from suite.store import open_store
from suite.tables import metric_table_model

NASTY = "D<i>&amp;[/oops]"  # an arm label that is HTML, an entity and rich markup at once
TITLE = "<b>Tiny & small</b> [/oops]"
DESCRIPTION = "<script>alert(1)</script> and a 'quote' \"too\""


def nasty_spec_text(name: str = "tiny", **options: Any) -> str:
    text = spec_text(name=name, **options)
    text = text.replace(f'title = "{name}"', f"title = {json.dumps(TITLE)}\ndescription = {json.dumps(DESCRIPTION)}", 1)
    return text.replace('label = "D"', f"label = {json.dumps(NASTY)}")


def write_nasty_spec(folder: Path, name: str = "tiny", **options: Any) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(nasty_spec_text(name, **options))
    return path


# ----------------------------------------------------------------------------------------------------------------
# Self-containedness and escaping (no browser)

_URL_ATTR = re.compile(r"""\b(src|href|action|poster|data)\s*=\s*["']?\s*([^"'\s>]*)""", re.IGNORECASE)


def external_references(page: str) -> list[str]:
    """Attribute values that would make a browser reach past the file: a scheme other than data:, or //host."""
    bad = []
    for _attr, value in _URL_ATTR.findall(page):
        scheme = urlparse(html.unescape(value)).scheme.lower()
        if value.startswith("//") or scheme not in ("", "data"):
            bad.append(value)
    bad += re.findall(r"url\(\s*['\"]?(?!data:)[^)]*\)", page)  # CSS fetches
    bad += re.findall(r"@import", page)
    return bad


def test_external_references_finds_what_a_browser_would_fetch() -> None:
    page = '<img src="https://x/y.png"><a href="//cdn/x">x</a><a href="#t">t</a><img src="data:image/png;base64,AA">'
    assert external_references(page) == ["https://x/y.png", "//cdn/x"]
    assert external_references('<style>body{background:url("http://x")}</style>') == ['url("http://x")']


def small_table(arm: str = "ld0") -> Any:
    rows = []
    for group, arms in (("a", {arm: 0.80, "all": 0.85}), ("b", {"all_rb": 0.86})):
        for name, delta in arms.items():
            for seed in range(3):
                for metric, value in (("delta1", delta + 0.01 * seed), ("rmse", 0.5 - delta / 10 + 0.002 * seed)):
                    rows.append(
                        {
                            "run_id": f"{group}-{name}-{seed}",
                            "group": group,
                            "arm": name,
                            "seed": seed,
                            "split": "test",
                            "epoch": 3,
                            "protocol": "synthetic",
                            "metric": metric,
                            "value": value,
                        }
                    )
    descriptors = pd.DataFrame(
        [
            {"group": "a", "arm": arm, "losses": "{l_D^0} <x>"},
            {"group": "a", "arm": "all", "losses": "L"},
            {"group": "b", "arm": "all_rb", "losses": "L"},
        ]
    )
    references = pd.DataFrame(
        [{"group": "a", "arm": "all", "source": "paper", "metric": "delta1", "value": 0.864}],
    )
    layout = TableLayout(
        name="t5",
        title="Table <5> & co",
        groups=("a", "b"),
        metrics=("delta1", "rmse"),
        columns=("losses",),
        baseline="a",
        group_titles={"a": "Loss <sets>", "b": "Rebalancing"},
    )
    return build_table(summarize(pd.DataFrame(rows)), layout, descriptors, references)


def _rows(fragment: str) -> list[tuple[str, list[str]]]:
    """(data-arm, inner HTML of every cell) of every row of the parts' tables."""
    out = []
    for arm, inner in re.findall(r'<tr class="(?:measured|reference)" data-arm="([^"]*)"[^>]*>(.*?)</tr>', fragment):
        out.append((html.unescape(arm), re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", inner)))
    return out


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_render_html_prints_the_markdown_rows_of_the_same_model() -> None:
    table = small_table()
    fragment = render_html(table)
    expected = [
        (row.arm, [markdown_cell_html(text) for text in markdown_row(table, row)])
        for section in table.sections
        for row in section.rows
    ]
    assert _rows(fragment) == expected and len(expected) == 4
    # the marks: bold best within a part, the (+) of (b) against (a), the paper's italic row
    assert '<td class="num best" data-metric="delta1" data-mean="0.86"' in fragment
    assert re.search(r'class="num improved" data-metric="delta1"[^>]*>87\.0 ± 1\.0 \(\+\)</td>', fragment)
    assert '<tr class="reference" data-arm="all" data-source="paper">' in fragment and "<em>86.4</em>" in fragment
    # what the Markdown writes under the parts (the legend, and any block after it) is on the page, as text
    trailer = markdown_trailer(render_markdown(table), len(table.sections))
    assert next(line for line in trailer if line.strip()).startswith("Mean ± sample std")
    shown = _text(fragment)
    for line in trailer:
        if line.startswith("|"):
            cells = [c.strip().replace("\\|", "|").replace("*", "") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert all(c in shown for c in cells if not re.fullmatch(r":?-+:?", c)), line
        elif line.strip():
            assert line.replace("**", "").replace("*", "") in shown, line
    assert "<strong>bold</strong>" in fragment
    # every number the model holds for a cell is in its tooltip, at full precision in data-mean
    best = table.sections[0].rows[1].cells["delta1"]
    assert f'data-mean="{best.mean!r}"' in fragment and f"ci95 {best.ci95:.6g}" in fragment


def test_markdown_blocks_become_tables_headings_and_legends() -> None:
    lines = [
        "Legend with **bold** and *em*, a <tag> & more.",
        "",
        "**Differences against the baseline**",
        "",
        "| Arm   | Baseline | n | δ1 (%) ↑ |",
        "|:------|:---------|--:|---------:|",
        "| a\\|b | x\\*y     | 3 | +3.1 [−0.8, +7.0] (+) |",
        "",
        "Footnote.",
    ]
    out = markdown_blocks_html(lines)
    assert out.startswith('<p class="legend">Legend with <strong>bold</strong> and <em>em</em>, a &lt;tag&gt; &amp;')
    assert "<h4>Differences against the baseline</h4>" in out
    assert (
        '<thead><tr><th scope="col">Arm</th><th scope="col">Baseline</th><th scope="col" class="num">n</th>'
        '<th scope="col" class="num">δ1 (%) ↑</th></tr></thead>'
    ) in out
    assert '<tr><td>a|b</td><td>x*y</td><td class="num">3</td><td class="num">+3.1 [−0.8, +7.0] (+)</td></tr>' in out
    assert out.endswith('<p class="legend">Footnote.</p>')


def test_markdown_trailer_starts_after_the_last_part() -> None:
    markdown = (
        "### T\n\n**(a) x**\n\n| a |\n|--:|\n| 1 |\n\n**(b) y**\n\n*no arms in this part*\n\nLegend.\n\n"
        "**D**\n\n| d |\n"
    )
    assert markdown_trailer(markdown, 2) == ["", "Legend.", "", "**D**", "", "| d |"]
    assert markdown_trailer(markdown, 1)[:4] == ["", "**(b) y**", "", "*no arms in this part*"]


def test_render_html_escapes_labels_titles_and_descriptors() -> None:
    fragment = render_html(small_table(arm=NASTY))
    assert "<i>" not in fragment and "<x>" not in fragment and "<5>" not in fragment and "<sets>" not in fragment
    assert f'data-arm="{html.escape(NASTY)}"' in fragment
    assert "D&lt;i&gt;&amp;amp;[/oops]" in fragment
    assert "Table &lt;5&gt; &amp; co" in fragment and "(a) Loss &lt;sets&gt;" in fragment
    assert "{l_D^0} &lt;x&gt;" in fragment


def test_inline_markdown_escapes_before_marking() -> None:
    assert inline_markdown("**0.5 ± 0.1** (+)†") == "<strong>0.5 ± 0.1</strong> (+)†"
    assert inline_markdown("*paper* rows <b>&") == "<em>paper</em> rows &lt;b&gt;&amp;"
    assert inline_markdown("a * b * c") == "a * b * c"


def test_page_without_results_is_self_contained_and_escaped(tmp_path: Path) -> None:
    spec = loads_spec(nasty_spec_text(), default_name="tiny", path=write_nasty_spec(tmp_path))
    page = build_report(spec, plan(spec), None, tmp_path / "results")
    assert external_references(page) == []
    assert "default-src 'none'" in page  # the browser itself refuses any fetch
    assert page.count("<script>") == 1  # ours; the description's is text
    assert html.escape(DESCRIPTION) in page and f"<title>{html.escape(TITLE)}</title>" in page
    assert "<i>" not in page and "<b>Tiny" not in page
    # the spec text, verbatim once unescaped
    text = re.search(r'<pre id="spec-text">(.*?)</pre>', page, re.S)
    assert text is not None and html.unescape(text.group(1)) == nasty_spec_text()
    assert "no finished runs yet" in page and "4 not in the store" in page
    assert "No figures yet" in page
    # what differs between arms: the losses and the weighting; what the spec sets for each arm
    arms = re.search(r'<table class="sortable" id="arm-configs">(.*?)</table>', page, re.S)
    assert arms is not None and ">losses<" in arms.group(1) and ">weighting<" in arms.group(1)
    assert "weighting = equal" in arms.group(1) and ">epochs<" not in arms.group(1)


def test_report_command_without_a_store_writes_the_plan_page_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_nasty_spec(tmp_path)
    results = tmp_path / "results"
    assert main(["report", str(spec), "--results", str(results), "--set", "epochs=3"]) == 0
    out = capsys.readouterr()
    page_path = results / "tiny" / "report.html"
    assert out.out.strip() == str(page_path) and "no results store" in out.err
    assert not (results / "mlrd.db").exists()  # a read-only command creates no store
    page = page_path.read_text()
    assert "with --set epochs=3" in page and "<td class=mono>3</td>" in page  # the override is shown and applied
    assert "overrides <code>--set epochs=3</code>" in page  # in the header too


def test_search_section_reads_the_study_and_never_creates_optuna_tables(tmp_path: Path) -> None:
    import optuna
    from sqlalchemy import create_engine, inspect

    from suite.search import open_study

    tail = """
[search]
study = "s1"
group = "a"
arm = "all"
objective = "rmse"
n_trials = 2
seeds = [0]
schedule = { kind = "linear", start = { kind = "float", low = 0.0, high = 3.0 }, end = -3.0, epochs = 2 }
"""
    path = tmp_path / "tiny.toml"
    path.write_text(spec_text(tail=tail))
    spec = loads_spec(path.read_text(), default_name="tiny", path=path)
    url = f"sqlite:///{tmp_path / 'mlrd.db'}"
    store = open_store(url)
    try:
        page = build_report(spec, plan(spec), store, tmp_path / "results", url=url)
        assert "No trials yet" in page and "Study <code>s1</code>: minimize rmse" in page
        engine = create_engine(url)
        assert not inspect(engine).has_table("studies")
        engine.dispose()

        study = open_study(spec, url)
        trial = optuna.trial.create_trial(
            params={},
            distributions={},
            value=0.25,
            user_attrs={"label": "3 -> <-3>", "seeds": [0], "n_seeds": 1},
        )
        study.add_trial(trial)
        page = build_report(spec, plan(spec), store, tmp_path / "results", url=url)
    finally:
        store.close()
    trials = re.search(r'<table id="search-trials">(.*?)</table>', page, re.S)
    assert trials is not None
    assert "<td>3 -&gt; &lt;-3&gt;</td><td>0.25</td><td>1</td><td>complete</td>" in trials.group(1)
    assert external_references(page) == []


# ----------------------------------------------------------------------------------------------------------------
# In a real browser

CHROMIUM = os.environ.get("MLRD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MLRD_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",  # chromium refuses to run as root with its sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # without these chromium keeps calling home (updates, sync, field trials), which a closed network only slows
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
)


def _browser_problem() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    if missing:
        return f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is missing (pip install -c constraints.txt -e '.[dev]')"
    return None


def _require_browser() -> None:
    problem = _browser_problem()
    if problem is None:
        return
    if os.environ.get("MLRD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MLRD_REQUIRE_BROWSER=1 but {problem}")
    pytest.skip(f"no browser: {problem}; `nox -s browser` installs Debian's chromium and runs these tests")


def make_driver(*, javascript: bool = True, width: int = 1280, height: int = 900) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*CHROMIUM_ARGS, f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked the network stack for (Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def page_problems(driver: Any) -> list[str]:
    """What is wrong with the loaded page: console errors and warnings, requests that leave the file (anything
    but file: and data: URLs), images that did not decode."""
    problems = [f"console {e['level']}: {e['message']}" for e in driver.get_log("browser") if e["level"] != "INFO"]
    problems += [f"request {u[:80]}" for u in requested_urls(driver) if not u.startswith(("file://", "data:"))]
    sizes = driver.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);")
    problems += [f"image {i} not decoded" for i, (ok, width) in enumerate(sizes) if not (ok and width > 0)]
    return problems


@pytest.mark.browser
def test_page_problems_catches_fetches_script_errors_and_broken_images(tmp_path: Path) -> None:
    _require_browser()
    page = tmp_path / "broken.html"
    page.write_text(
        '<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body>'
        '<img src="data:image/png;base64,iVBORw0KGgo="><img src="https://example.invalid/x.png">'
        "<script>undefinedFunction()</script></body></html>"
    )
    driver = make_driver()
    try:
        driver.get(page.as_uri())
        problems = page_problems(driver)
    finally:
        driver.quit()
    assert any("request https://example.invalid/x.png" in p for p in problems), problems
    assert any("undefinedFunction is not defined" in p for p in problems), problems
    assert "image 0 not decoded" in problems and "image 1 not decoded" in problems, problems


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A tiny spec run end to end by ``python -m suite run`` (2 arms x 2 seeds, one epoch): (spec, results)."""
    _require_browser()
    folder = tmp_path_factory.mktemp("report")
    spec = write_nasty_spec(folder)
    results = folder / "results"
    assert main(["run", str(spec), "--results", str(results), "--jobs", "2"]) == 0
    yield spec, results


def measured_means(results: Path) -> dict[tuple[str, str], float]:
    """Per (arm, metric): the mean over seeds of each run's last test epoch, straight from the store."""
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        frame = store.metrics_frame(spec="tiny")
    finally:
        store.close()
    test = frame[frame["split"] == "test"]
    last = test[test["epoch"] == test.groupby("run_id")["epoch"].transform("max")]
    return {(str(a), str(m)): float(v) for (a, m), v in last.groupby(["arm", "metric"])["value"].mean().items()}


@pytest.mark.browser
@pytest.mark.slow
def test_report_in_chromium(finished: tuple[Path, Path]) -> None:
    from selenium.webdriver.common.by import By

    spec_path, results = finished
    page_path = results / "tiny" / "report.html"
    assert page_path.exists(), "suite run writes the report at its end"
    page = page_path.read_text()
    assert external_references(page) == []
    spec = loads_spec(spec_path.read_text(), default_name="tiny", path=spec_path)
    store = open_store(f"sqlite:///{results / 'mlrd.db'}")
    try:
        model = metric_table_model(spec, spec.tables[0], plan(spec), store.metrics_frame(spec="tiny"))
    finally:
        store.close()
    means = {k: v for k, v in measured_means(results).items() if k[1] in model.metrics}
    pngs = sorted((results / "tiny" / "figures").glob("*.png"))
    assert len(pngs) >= 4

    driver = make_driver()
    try:
        driver.get(page_path.as_uri())
        assert driver.title == TITLE
        # table cells: the store's seed means, and the Markdown table's text
        cells = driver.find_elements(By.CSS_SELECTOR, "table tr.measured td[data-metric]")
        assert len(cells) == len(means) == 4
        metric_index = {c.key: i for i, c in enumerate(model.columns)}
        expected_text = {
            (row.arm, m): markdown_row(model, row)[metric_index[m]].replace("*", "")
            for row in model.sections[0].rows
            if row.source is None
            for m in model.metrics
        }
        for cell in cells:
            arm = cell.find_element(By.XPATH, "./..").get_attribute("data-arm")
            metric = cell.get_attribute("data-metric")
            assert math.isclose(float(cell.get_attribute("data-mean")), means[(arm, metric)], rel_tol=1e-12)
            assert cell.text == expected_text[(arm, metric)]
        md = (results / "tiny" / "tiny.md").read_text()
        assert all(text in md.replace("**", "") for text in expected_text.values())
        arms = {a.text for a in driver.find_elements(By.CSS_SELECTOR, "tr.measured th")}
        assert arms == {markdown_row(model, row)[0].replace("\\", "") for row in model.sections[0].rows}
        assert any(a.startswith(NASTY) for a in arms)
        # every figure decoded, nothing went wrong, nothing was fetched
        assert driver.execute_script("return document.images.length;") == len(pngs)
        urls = requested_urls(driver)  # drains the log: page_problems then sees what came after
        assert urls[0] == page_path.as_uri() and all(u.startswith("data:image/png;base64,") for u in urls[1:]), urls
        assert len(urls) == 1 + len(pngs)
        assert page_problems(driver) == []
        # the run matrix: every run DONE, its log reachable by its relative link
        rows = driver.find_elements(By.CSS_SELECTOR, "#run-matrix tbody tr")
        assert len(rows) == 4
        for row in rows:
            assert row.find_element(By.CSS_SELECTOR, "td[data-state]").text == "DONE"
            link = row.find_element(By.TAG_NAME, "a").get_attribute("href")
            assert link.startswith("file://") and Path(unquote(urlparse(link).path)).is_file()
        # the environment the runs recorded
        env = driver.find_element(By.ID, "environment").text
        assert "torch" in env and "(4 runs)" in env and "code_version" in env
        # the optional sorting works with JavaScript on
        seed_header = driver.find_elements(By.CSS_SELECTOR, "#run-matrix th")[2]
        seed_header.click()
        seeds = [
            r.find_elements(By.TAG_NAME, "td")[2].text
            for r in driver.find_elements(By.CSS_SELECTOR, "#run-matrix tbody tr")
        ]
        assert seeds == sorted(seeds)
        # sorting fetched nothing and raised nothing either
        assert page_problems(driver) == []
    finally:
        driver.quit()


@pytest.mark.browser
@pytest.mark.slow
def test_report_without_javascript_and_on_a_phone(finished: tuple[Path, Path]) -> None:
    from selenium.webdriver.common.by import By

    _spec, results = finished
    page_path = results / "tiny" / "report.html"
    with_js = make_driver()
    try:
        with_js.get(page_path.as_uri())
        shown = with_js.find_element(By.TAG_NAME, "main").text
        assert with_js.find_elements(By.CSS_SELECTOR, "#run-matrix th.sortable")  # the script ran
    finally:
        with_js.quit()

    driver = make_driver(javascript=False, width=390, height=844)  # a phone's CSS width
    try:
        driver.get(page_path.as_uri())
        assert not driver.find_elements(By.CSS_SELECTOR, "#run-matrix th.sortable")  # the script did not run
        assert driver.find_element(By.TAG_NAME, "main").text == shown  # the same content without it
        assert driver.execute_script("return document.images.length;") > 0
        assert page_problems(driver) == []
        # the page does not scroll sideways; wide tables scroll inside their own box
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth,"
            " Math.max(...Array.from(document.querySelectorAll('.scroll')).map(e => e.scrollWidth - e.clientWidth))];"
        )
        page_width, viewport, table_overflow = widths
        assert page_width <= viewport, widths
        assert table_overflow > 0, widths  # the run matrix is wider than a phone: it scrolls in its box
    finally:
        driver.quit()


def test_environment_lists_each_fact_and_the_data_files_the_runs_read(tmp_path: Path) -> None:
    from suite.html_report.sections import _environment_html

    spec = loads_spec(spec_text(), default_name="tiny")
    runs = plan(spec)
    files = {"train": [{"name": "train<1>.zip", "bytes": 10, "items": 2, "hash": "ab"}], "test": [{"name": "t.zip"}]}
    envs = {
        runs[0].run_id: {"torch": "2.13.0", "device": "cpu", "data_sources": json.dumps(files)},
        runs[1].run_id: {"torch": "2.13.0", "device": "cuda:0", "data_sources": json.dumps(files)},
    }
    page = _environment_html(runs, envs)
    assert "<dt>torch</dt><dd class=mono>2.13.0 (2 runs)</dd>" in page
    assert "<dt>device</dt><dd class=mono>cpu (1 run); cuda:0 (1 run)</dd>" in page
    assert "<dt>data_sources</dt>" not in page  # a table of its own
    table = re.search(r'<table id="data-files">(.*?)</table>', page, re.S)
    assert table is not None
    assert '<th scope="col">split</th><th scope="col">name</th><th scope="col">bytes</th>' in table.group(1)
    assert (
        '<tr><td>train</td><td class="mono">train&lt;1&gt;.zip</td><td class="mono">10</td><td class="mono">2</td>'
        '<td class="mono">ab</td><td class="num">2</td></tr>'
    ) in table.group(1)
    assert '<tr><td>test</td><td class="mono">t.zip</td><td class="mono">–</td>' in table.group(1)
    # generated data reads no file
    assert "No run recorded data files" in _environment_html(runs, {runs[0].run_id: {"torch": "2.13.0"}})
