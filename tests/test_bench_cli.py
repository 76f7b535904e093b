"""``python -m suite bench losses`` end to end on tiny maps (timings themselves are not asserted)."""

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
