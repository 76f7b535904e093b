"""A tiny run config and a tiny two-arm spec for end-to-end tests (test_resnet at 32x32, a few synthetic scenes,
seconds per run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlrd_core.config import RunConfig

#: The trainer's tiny run: test_resnet at 32x32, 2 epochs of 4 batches, 2 periods per epoch, the losses of two scales
#: plus one (seconds on CPU). Tests change what they need with ``TINY_CONFIG.replace(...)``.
TINY_CONFIG = RunConfig(
    encoder="test_resnet",
    decoder_width=32,
    input_size=(32, 32),
    epochs=2,
    batch_size=4,
    periods_per_epoch=2,
    eval_batch_size=8,
    lr=1e-3,
    dataset_options={"length": 16, "height": 32, "width": 32, "val": {"length": 4}, "test": {"length": 4}},
    losses="L^0 | L^1 | {l_D^4}",
)

SPEC = """
[spec]
name = "{name}"
title = "{name}"
seeds = {seeds}

[defaults]
encoder = "test_resnet"
decoder_width = 32
input_size = [32, 32]
epochs = {epochs}
batch_size = 4
periods_per_epoch = 2
lr = 1e-3
eval_batch_size = 8
{extra}

[defaults.dataset_options]
height = 32
width = 32
train = {{ length = {length} }}
val = {{ length = 4 }}
test = {{ length = 4 }}

[[groups]]
name = "a"
title = "tiny arms"

[[groups.arms]]
label = "D"
losses = "L_D"
weighting = "equal"

[[groups.arms]]
label = "all"
losses = "L^0 | L^1"
weighting = "lee-kim"
schedule = "3 -> -3 @ {ramp}"

[[tables]]
name = "{name}"
title = "{name} table"
columns = ["n_losses", "weighting"]
metrics = ["delta1", "rmse"]
{tail}"""


def spec_text(
    *,
    name: str = "tiny",
    seeds: tuple[int, ...] = (0, 1),
    epochs: int = 1,
    length: int = 8,
    ramp: int = 2,
    extra: str = "",
    tail: str = "",
) -> str:
    """The spec's TOML; its spec and table are both called ``name``. ``extra`` lines go into ``[defaults]``,
    ``tail`` after the last table (e.g. a ``[slurm]`` table); ``ramp`` is the λ ramp's epochs."""
    return SPEC.format(name=name, seeds=list(seeds), epochs=epochs, length=length, ramp=ramp, extra=extra, tail=tail)


def write_spec(folder: Path, *, name: str = "tiny", **options: Any) -> Path:
    """Write :func:`spec_text` as ``folder/<name>.toml``."""
    path = folder / f"{name}.toml"
    path.write_text(spec_text(name=name, **options))
    return path
