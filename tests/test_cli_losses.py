"""``python -m suite losses``: the report, its JSON form and its errors, through the real CLI entry point."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from test_expr import TABLE5

from mlrd_core.losses import LOSS_NAMES, LOSS_SETS, select
from suite import cli
from suite.commands.losses import selection_dict, selection_renderable, selection_table


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["losses", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def render(renderable: object, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def table_row(text: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in\n{text}")


def test_losses_is_a_registered_command() -> None:
    assert "losses" in cli.COMMANDS


def test_text_report_for_l_d_union_l_g(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "L_D | L_G")
    assert code == 0
    assert err == ""
    assert out.splitlines()[0] == "L_D | L_G  selects 36 losses"
    for name in select("L_D | L_G"):
        assert name in out
    assert "l_M^0" not in out
    assert table_row(out, "L_D") == ["L_D", "D", "1", "1", "1", "1", "1", "1", "6/6"]
    assert table_row(out, "L_M") == ["L_M", "M M5 M17 M65", "·", "·", "·", "·", "·", "·", "0/24"]
    assert table_row(out, "L_G") == ["L_G", "r c rr rc cc", "5", "5", "5", "5", "5", "5", "30/30"]
    assert table_row(out, "L") == ["L", "", "6/13", "6/13", "6/13", "6/13", "6/13", "6/13", "36/78"]


def test_unicode_expression_is_echoed_in_canonical_ascii(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "ℒ^0 ∪ ℒ^1")
    assert code == 0
    assert out.splitlines()[0] == "L^0 | L^1  selects 26 losses"


def test_partial_families_show_their_terms(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "{l_D^0, l_M^0, l_r^0, l_c^0}")
    assert code == 0
    assert out.splitlines()[0] == "{l_D^0, l_M^0, l_r^0, l_c^0}  selects 4 losses"
    assert table_row(out, "L_M")[2:] == ["M", "·", "·", "·", "·", "·", "1/24"]
    assert table_row(out, "L_G")[2:] == ["r c", "·", "·", "·", "·", "·", "2/30"]
    assert table_row(out, "L")[-1] == "4/78"


def test_glob_with_brackets_is_not_taken_for_rich_markup(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "l_*^[345] & L_D")
    assert code == 0
    assert out.splitlines()[0] == "l_*^[345] & L_D  selects 3 losses"


def test_default_expression_is_every_loss(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys)
    assert code == 0
    assert out.splitlines()[0] == "L  selects 78 losses"
    assert table_row(out, "L")[-1] == "78/78"


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "L_D | L_G", "--json")
    assert code == 0
    assert err == ""
    data = json.loads(out)
    assert set(data) == {"expression", "count", "names", "by_set", "by_scale"}
    assert data["expression"] == "L_D | L_G"
    assert data["count"] == 36
    assert data["names"] == list(select("L_D | L_G"))
    assert data["by_set"] == {"L_D": 6, "L_M": 0, "L_G": 30, "L_N": 0}
    assert data["by_scale"] == {f"L^{k}": 6 for k in range(6)}


@pytest.mark.parametrize(("expr", "count"), TABLE5)
def test_json_counts_of_table5(capsys: pytest.CaptureFixture[str], expr: str, count: int) -> None:
    code, out, _ = run_cli(capsys, expr, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["count"] == count == len(data["names"])
    assert sum(data["by_set"].values()) == count == sum(data["by_scale"].values())


def test_bad_expression_exits_2_with_the_caret_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "L_D | L_X")
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("error: unknown set name 'L_X'")
    assert lines[1] == "    L_D | L_X"
    assert lines[2] == "          ^~~"
    assert lines[3].startswith("  in rule set_name := ")


def test_bad_loss_name_suggests_near_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "{l_M16^0}", "--json")
    assert code == 2
    assert "did you mean 'l_M17^0', 'l_M5^0'" in err


def test_empty_selection_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "L_D & L_G")
    assert code == 2
    assert out == ""
    assert "error: the expression selects no losses: 'L_D & L_G' is empty" in err


def test_help_describes_the_expression_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["losses", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "EXPR" in out
    assert "--json" in out
    assert "L_D | L_G" in out


def test_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "suite", "losses", "L^3 | L^4 | L^5", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["count"] == 39


# The pure rendering functions, without argv.


def test_selection_dict_is_pure_data() -> None:
    data = selection_dict("{l_N^5}", ("l_N^5",))
    assert data == {
        "expression": "{l_N^5}",
        "count": 1,
        "names": ["l_N^5"],
        "by_set": {"L_D": 0, "L_M": 0, "L_G": 0, "L_N": 1},
        "by_scale": {"L^0": 0, "L^1": 0, "L^2": 0, "L^3": 0, "L^4": 0, "L^5": 1},
    }


def test_selection_table_shape_and_cells() -> None:
    table = selection_table(LOSS_SETS["L^5"])
    scales = [f"L^{k}" for k in range(6)]
    assert [c.header for c in table.columns] == ["set", "terms", *scales, "total"]
    assert table.row_count == 5
    text = render(table)
    assert table_row(text, "L_N") == ["L_N", "N Nr Nc", "·", "·", "·", "·", "·", "3", "3/18"]
    assert table_row(text, "L")[2:] == ["0/13"] * 5 + ["13/13", "13/78"]


def test_selection_renderable_with_a_single_loss() -> None:
    text = render(selection_renderable("{l_D^0}", ("l_D^0",)))
    assert text.splitlines()[0] == "{l_D^0}  selects 1 loss"
    assert table_row(text, "L_D")[2:] == ["1", "·", "·", "·", "·", "·", "1/6"]
    assert table_row(text, "L")[-1] == f"1/{len(LOSS_NAMES)}"


# docs/loss-space.md shows real output: each console block of the losses command must still be current.
DOC = Path(__file__).resolve().parents[1] / "docs" / "loss-space.md"
_CONSOLE_BLOCK = re.compile(r"```console\n\$ python -m suite (losses[^\n]*)\n(.*?)```", re.DOTALL)
_BLOCKS = _CONSOLE_BLOCK.findall(DOC.read_text("utf-8"))


@pytest.mark.parametrize(("command", "shown"), _BLOCKS, ids=[b[0] for b in _BLOCKS])
def test_doc_console_examples_are_current(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str, shown: str
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    cli.main(shlex.split(command))
    captured = capsys.readouterr()
    printed = [line.rstrip() for line in (captured.out + captured.err).splitlines()]
    assert printed == [line.rstrip() for line in shown.splitlines()]


def test_doc_has_console_examples() -> None:
    assert len(_BLOCKS) >= 10
