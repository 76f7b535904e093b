"""The ``[slurm]`` table: resources of the SLURM executor (no effect on run ids)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from suite.spec.records import SlurmSettings
from suite.spec.values import _Ctx, _fmt, _show
from suite.spec.vocabulary import SBATCH_OPTION_RE, SLURM_KEYS


def _load_slurm(ctx: _Ctx, sraw: Mapping[str, Any]) -> SlurmSettings:
    path = "slurm"
    ctx.check_keys(sraw, SLURM_KEYS, path)
    default = SlurmSettings()

    def optional_string(key: str) -> str | None:
        return ctx.string(sraw[key], f"{path}.{key}", empty=False) if key in sraw else None

    mem_gb = ctx.number(sraw["mem_gb"], f"{path}.mem_gb") if "mem_gb" in sraw else None
    if mem_gb is not None and mem_gb <= 0:
        raise ctx.error(f"{path}.mem_gb", f"expected a positive number of GB, got {_fmt(mem_gb)}")
    gpus = ctx.integer(sraw.get("gpus_per_task", default.gpus_per_task), f"{path}.gpus_per_task", 0)
    if gpus > 1:
        raise ctx.error(f"{path}.gpus_per_task", f"expected 0 (CPU) or 1 (the trainer uses one device), got {gpus}")
    setup = ctx.strings(sraw.get("setup", []), f"{path}.setup")
    sbatch: dict[str, str | int | bool] = {}
    for key, value in ctx.table(sraw.get("sbatch", {}), f"{path}.sbatch").items():
        if not SBATCH_OPTION_RE.fullmatch(key):
            raise ctx.error(
                f"{path}.sbatch", f"invalid sbatch option {key!r}: use the long name without '--', e.g. account"
            )
        if not isinstance(value, (str, int, bool)):
            raise ctx.error(f"{path}.sbatch.{key}", f"expected a string, an integer or true, got {_show(value)}")
        sbatch[key] = value
    return SlurmSettings(
        partition=optional_string("partition"),
        timeout_min=ctx.integer(sraw.get("timeout_min", default.timeout_min), f"{path}.timeout_min", 1),
        gpus_per_task=gpus,
        cpus_per_task=ctx.integer(sraw.get("cpus_per_task", default.cpus_per_task), f"{path}.cpus_per_task", 1),
        mem_gb=mem_gb,
        array_parallelism=ctx.integer(
            sraw.get("array_parallelism", default.array_parallelism), f"{path}.array_parallelism", 1
        ),
        folder=optional_string("folder"),
        max_timeouts=ctx.integer(sraw.get("max_timeouts", default.max_timeouts), f"{path}.max_timeouts", 0),
        signal_delay_s=ctx.integer(sraw.get("signal_delay_s", default.signal_delay_s), f"{path}.signal_delay_s", 0),
        setup=setup,
        sbatch=sbatch,
    )
