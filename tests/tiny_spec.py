"""A tiny two-arm spec for end-to-end tests (test_resnet at 32x32, a few synthetic scenes, seconds per run)."""

from __future__ import annotations

from pathlib import Path

SPEC = """
[spec]
name = "{name}"
title = "{name}"
seeds = [0, 1]

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
schedule = "3 -> -3 @ 2"

[[tables]]
name = "{name}"
title = "{name} table"
columns = ["n_losses", "weighting"]
metrics = ["delta1", "rmse"]
"""


def write_spec(folder: Path, *, name: str = "tiny", epochs: int = 1, length: int = 8, extra: str = "") -> Path:
    """Write the spec as ``folder/<name>.toml``; its spec and table are both called ``name``."""
    path = folder / f"{name}.toml"
    path.write_text(SPEC.format(name=name, epochs=epochs, length=length, extra=extra))
    return path
