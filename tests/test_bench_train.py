"""``python -m suite bench train`` end to end with a tiny encoder (timings themselves are not asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from mlrd_core.config import AMP_MODES
from mlrd_core.errors import ConfigError
from suite.benchmarks.train import BASELINE, TRAIN_CASES, run_train_benchmark, train_summary
from suite.cli import main
from suite.commands.bench import AMP_CHOICES

TINY = ["--encoder", "test_resnet", "--decoder-width", "32", "--height", "64", "--width", "64", "--repeats", "1"]


def test_bench_train_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "train", *TINY, "--warmup", "0", "--device", "cpu", "--threads", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "train" and len(out["results"]) == 1
    result = out["results"][0]
    assert [c["label"] for c in result["cases"]] == ["{l_D^0}", "L^3|L^4|L^5", "L"]
    assert [c["n_losses"] for c in result["cases"]] == [1, 39, 78]
    assert all(len(c["step_s"]) == 1 and c["median_s"] > 0 for c in result["cases"])
    assert all(0 < c["loss_cost_median_s"] < c["median_s"] for c in result["cases"])
    phases = ("forward_s", "losses_s", "loss_backward_s", "backward_s")
    assert all(len(c[phase]) == 1 for c in result["cases"] for phase in phases)
    assert result["cases"][0]["ratio"] == 1.0
    assert result["cases"][0]["paired_ratio"] == 1.0
    assert result["overhead_all_losses"] == pytest.approx(result["cases"][2]["paired_ratio"] - 1)
    assert (result["encoder"], result["height"], result["width"], result["batch"]) == ("test_resnet", 64, 64, 2)
    assert (result["device"], result["amp"], result["channels_last"], result["threads"]) == ("cpu", "off", False, 1)
    assert result["parameters"] > 0 and result["target_overhead"] == 0.05


def test_bench_train_channels_last_acts_on_the_cpu_as_in_the_trainer(capsys: pytest.CaptureFixture[str]) -> None:
    args = [*TINY, "--warmup", "0", "--device", "cpu", "--threads", "1", "--channels-last", "--json"]
    assert main(["bench", "train", *args]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert (result["device"], result["channels_last"]) == ("cpu", True)


def test_bench_train_table(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    assert main(["bench", "train", *TINY, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "L^3|L^4|L^5" in out and f"÷ {BASELINE}" in out and "paper ÷" in out
    assert "all 78 losses vs {l_D^0} on cpu" in out and "target" in out
    assert torch.get_num_threads() == threads


def test_rounds_interleave_every_case_and_threads_are_restored() -> None:
    before = torch.get_num_threads()
    result = run_train_benchmark(
        3, encoder="test_resnet", decoder_width=32, height=32, width=32, batch=2, warmup=1, threads=1
    )
    assert result.threads == 1 and torch.get_num_threads() == before
    assert [c.label for c in result.cases] == [label for label, _ in TRAIN_CASES]
    assert all(len(c.step_s) == len(c.losses_s) == len(c.loss_backward_s) == 3 for c in result.cases)
    for c in result.cases:
        assert c.step_s[0] == pytest.approx(c.forward_s[0] + c.losses_s[0] + c.loss_backward_s[0] + c.backward_s[0])
    assert result.ratio(BASELINE) == 1.0
    assert "per step" in train_summary(result)


def test_bench_train_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["bench", "train", "--repeats", "0"])
    assert "must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "train", "--device", "tpu"])
    assert "expected auto, cpu, cuda" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "train", "--amp", "fp8"])
    with pytest.raises(ConfigError, match="amp must be one of"):
        run_train_benchmark(1, encoder="test_resnet", amp="fp8")
    assert AMP_CHOICES == AMP_MODES  # the CLI's copy of the trainer's modes


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        run_train_benchmark(1, encoder="test_resnet", device="cuda")
