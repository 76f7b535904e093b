"""``python -m suite bench losses`` and ``bench overhead`` end to end on tiny sizes (timings themselves are not
asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from suite.benchmarks.losses import run_losses_benchmark
from suite.cli import main

TINY = ["--repeats", "1", "--warmup", "0", "--batch", "1", "--height", "24", "--width", "32"]


def test_bench_losses_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "losses", *TINY, "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    labels = [c["label"] for c in result["cases"]]
    assert labels == ["fused L", "authors L", "fused {l_D^0}", "fused L^3|L^4|L^5"]
    assert [c["n_losses"] for c in result["cases"]] == [78, 78, 1, 39]
    assert all(c["median_ms"] > 0 and len(c["times_s"]) == 1 for c in result["cases"])
    assert (result["batch"], result["height"], result["width"], result["threads"]) == (1, 24, 32, 1)
    assert result["speedup_fused_vs_authors"] > 0
    # Same maps, same losses: float32 rounding apart. (Relative differences can reach 1 here: at 24 x 32 the
    # scale-5 map is 1 x 1, where l_M65^5 is exactly 0 and the authors' float32 65 x 65 avg_pool2d leaves ~5e-4.)
    assert result["max_abs_diff"] < 1e-3
    assert result["fused_rel_err"] < 1e-3  # 1e-8 of the float64 normals at 1 x 1 vs 0 in float32, over 1e-4
    assert result["authors_rel_err"] >= result["fused_rel_err"]


def test_bench_losses_table(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    assert main(["bench", "losses", *TINY]) == 0
    out = capsys.readouterr().out
    assert "fused L^3|L^4|L^5" in out and "authors L" in out and "÷ fused L" in out
    assert "fused vs authors-style, all 78 losses" in out
    assert torch.get_num_threads() == threads


def test_bench_requires_a_target_and_valid_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench"])
    with pytest.raises(SystemExit):
        main(["bench", "losses", "--repeats", "0"])
    assert "must be >= 1" in capsys.readouterr().err


def test_threads_are_restored_after_the_run() -> None:
    before = torch.get_num_threads()
    result = run_losses_benchmark(1, batch=1, height=8, width=8, threads=1, warmup=0)
    assert result.threads == 1
    assert torch.get_num_threads() == before


def test_bench_overhead_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "overhead", "--runs", "2", "--images", "2", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "with cold workers" in captured.err and "with warm workers" in captured.err  # progress, not in the JSON
    assert (result["benchmark"], result["runs"], result["rounds"], result["jobs"], result["images"]) == (
        "overhead",
        2,
        1,
        1,
        2,
    )
    cold, warm = result["cases"]
    assert (cold["label"], warm["label"]) == ("cold", "warm")
    for case in (cold, warm):
        assert len(case["wall_s"]) == len(case["fit_s"]) == len(case["overhead_s"]) == 2
        assert case["first_on_slot"] == [True, False] and len(case["batch_s"]) == 1
        assert all(f > 0 for f in case["fit_s"])
        assert all(w > f for w, f in zip(case["wall_s"], case["fit_s"], strict=True))
        assert case["min_s"] <= case["median_s"] <= case["max_s"]
    assert cold["prestarted"] == [False, False]
    assert warm["prestarted"] == [False, True]  # the second run went to the spare started beside the first
    assert cold["spare_idle_s"] == [None, None] and warm["spare_idle_s"][0] is None and warm["spare_idle_s"][1] >= 0
    assert result["ratio_cold_vs_warm"] == pytest.approx(cold["median_s"] / warm["median_s"])
    assert result["target_s"] == 2.0


def test_bench_overhead_table_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from suite.benchmarks.overhead import OverheadBenchmark, OverheadCase, overhead_summary, render_overhead_table

    def case(label: str, walls: tuple[float, ...]) -> OverheadCase:
        n = len(walls)
        warm = label == "warm"
        idle = (None,) + ((0.5,) if warm else (None,)) + ((0.0,) if warm else (None,))
        return OverheadCase(label, walls, (0.5,) * n, (warm,) * n, (True,) + (False,) * (n - 1), (9.0,), idle)

    result = OverheadBenchmark(
        cases=(case("cold", (3.5, 3.0, 3.1)), case("warm", (3.5, 0.7, 1.6))),
        runs=3,
        rounds=1,
        jobs=1,
        threads=2,
        images=4,
        machine="test",
    )
    warm = result.case("warm")
    assert result.ratio == pytest.approx(2.6 / 1.1)
    assert warm.spares_ready == 1 and warm.ready_median_s == pytest.approx(0.2)
    summary = overhead_summary(result)
    assert "cold 2.60 s, warm spares 1.10 s" in summary and "meets the target" in summary
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render_overhead_table(result))
    text = console.export_text()
    assert "ready s" in text and "2.50-3.00" in text
    with pytest.raises(SystemExit):
        main(["bench", "overhead", "--runs", "0"])
    assert "must be >= 1" in capsys.readouterr().err
