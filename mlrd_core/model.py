"""The depth estimator of Lee & Kim (ECCV 2020, §4.1): a timm encoder and a plain upsampling decoder.

Architecture (paper §4.1 and the authors' released ``networks/model.py``)::

    image [B, 3, H, W] in [0, 1]
      -> (x - mean) / std                     buffers from the encoder's timm pretrained config
      -> encoder (timm, features_only=True)   levels with reductions r_0 <= ... <= r_L (e.g. 2..32)
      -> 1x1 conv, C_L -> w                   deepest level only (9x12 at 288x384 for densenet161 / pnasnet)
      -> n = log2(r_L) up-blocks              bilinear resize x2, [concat skip], 3x3 conv + ReLU, 3x3 conv + ReLU,
                                              widths w/2, w/4, ..., w/2^n (1024 -> 512 -> ... -> 32)
      -> 3x3 conv to 1 channel                -> output activation (default: none, as in the paper)
      -> depth [B, 1, H, W]

Every channel count and reduction is read from the encoder's ``feature_info``; nothing is a literal. The output has
the input's size whenever H and W are multiples of ``r_L`` (:attr:`DepthModel.input_multiple`); other sizes are
rejected with a :class:`ModelInputError` (no silent padding: a padded border would change every loss near it).

Each up-block resizes to the exact target size ``(H / r, W / r)`` rather than doubling blindly, and optional skip
features are resized to that size too, so encoders whose maps are a pixel short (pnasnet5large's stride-2 map is
143x191 at 288x384) and encoders with an extra stride-1 level (vgg16 has 6 levels) need no special case.

Pretrained weights: ``False`` (random init), ``True`` (timm's hub download; fails in well under a second with a
:class:`ModelError` when offline and not cached), or a path to a local weights file loaded through timm's
``pretrained_cfg_overlay=dict(file=...)``. See ``docs/model.md``.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlparse

import timm
import timm.models
import torch
import torch.nn.functional as F
from timm.data import resolve_data_config
from torch import Tensor, nn

from mlrd_core.errors import ModelError, ShapeError

if TYPE_CHECKING:
    from mlrd_core.config import RunConfig

__all__ = [
    "OUTPUT_ACTIVATIONS",
    "DepthDecoder",
    "DepthModel",
    "EncoderInfo",
    "ModelInputError",
    "UpBlock",
    "WeightsReport",
    "create_depth_model",
    "encoder_info",
    "model_for_config",
]

_logger = logging.getLogger(__name__)

OutputActivation = Literal["linear", "relu", "softplus"]
OUTPUT_ACTIVATIONS: tuple[str, ...] = ("linear", "relu", "softplus")
"""Allowed ``output`` values: ``linear`` is the paper's plain conv output (the default)."""

ALIGN_CORNERS = True
"""Bilinear upsampling with ``align_corners=True``, as in the authors' ``Up`` block (networks/model.py)."""

WEIGHT_FILE_SUFFIXES: tuple[str, ...] = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
"""Weight file formats timm's ``load_state_dict`` reads (safetensors by suffix, everything else via torch.load)."""

_TIMM_BUILDER_LOGGER = "timm.models._builder"
_TIMM_KEYS_MESSAGE = re.compile(r"^(Missing|Unexpected) keys \((.*)\) (?:discovered|found) while loading")
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's load_state_dict_from_hf tries


class ModelInputError(ShapeError, ModelError):
    """The tensor given to :meth:`DepthModel.forward` has the wrong rank, channels, dtype or size.

    It is both a :class:`ShapeError` (the project's error for bad tensor shapes) and a :class:`ModelError`.
    """


# --------------------------------------------------------------------------------------------------------------
# Encoder metadata


@dataclass(frozen=True)
class EncoderInfo:
    """What the decoder needs to know about a timm encoder, read from ``feature_info`` and ``pretrained_cfg``.

    ``channels[i]`` and ``reductions[i]`` describe feature level ``i`` (shallow to deep); ``num_params`` counts the
    parameters of the features-only encoder; ``mean`` / ``std`` are the RGB normalisation of its pretrained
    weights.
    """

    name: str
    channels: tuple[int, ...]
    reductions: tuple[int, ...]
    num_params: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_multiple(self) -> int:
        """Input height and width must be multiples of this (the deepest reduction) for output size = input size."""
        return max(self.reductions)

    @property
    def num_up_blocks(self) -> int:
        """Number of x2 up-blocks the decoder needs to return from the deepest level to full resolution."""
        return _num_up_blocks(self.reductions, self.name)


def encoder_info(name: str, *, out_indices: Sequence[int] | None = None) -> EncoderInfo:
    """Channels, reductions, parameter count and normalisation of timm encoder ``name`` (``features_only``).

    Cost: the encoder is built on PyTorch's ``meta`` device, so no weight memory is allocated and nothing is
    initialised; pnasnet5large (82M parameters) takes about 0.05 s instead of 0.3 s on the CPU. If an
    architecture cannot be built on ``meta``, it is built on the CPU with ``pretrained=False`` instead.

    Raises:
        ModelError: unknown encoder, unknown pretrained tag, or an encoder timm cannot build features-only.
    """
    _check_encoder_name(name)
    kwargs = _feature_kwargs(out_indices)
    try:
        with torch.device("meta"):
            net = timm.create_model(name, pretrained=False, **kwargs)
    except Exception:  # some init code calls .item() or numpy on weights; fall back to a real (random) build
        net = _build_encoder(name, pretrained=False, **kwargs)
    mean, std = _normalization(net, None, None)
    channels, reductions = _feature_meta(net)
    return EncoderInfo(
        name=name,
        channels=channels,
        reductions=reductions,
        num_params=sum(p.numel() for p in net.parameters()),
        mean=mean,
        std=std,
    )


# --------------------------------------------------------------------------------------------------------------
# Decoder


class UpBlock(nn.Module):
    """One decoder block: bilinear resize to ``size``, optional skip concatenation, two 3x3 conv + ReLU.

    In the paper the resize is x2; passing the exact target size makes it x2 for valid inputs and keeps the
    output aligned with the input when an encoder map is a pixel short. A skip feature is resized to ``size``
    (bilinear, same ``align_corners``) only when its size differs.
    """

    def __init__(self, in_channels: int, out_channels: int, skip_channels: int = 0) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(in_channels + skip_channels, out_channels, kernel_size=3, padding=1)
        self.conv_b = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: Tensor, size: tuple[int, int], skip: Tensor | None = None) -> Tensor:
        """``x`` [B, C_in, h, w] -> [B, C_out, *size]; ``skip`` [B, C_skip, h', w'] is resized to ``size``."""
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)
        if skip is not None:
            if tuple(skip.shape[-2:]) != size:
                skip = F.interpolate(skip, size=size, mode="bilinear", align_corners=ALIGN_CORNERS)
            x = torch.cat([x, skip], dim=1)
        return self.act(self.conv_b(self.act(self.conv_a(x))))


class DepthDecoder(nn.Module):
    """The paper's decoder, sized from encoder metadata.

    Args:
        channels: channels of each encoder level (``feature_info.channels()``), shallow to deep.
        reductions: reduction of each level (``feature_info.reduction()``); the last one is the deepest and
            must be a power of two, ``r_L = 2^n``; the decoder then has ``n`` up-blocks.
        width: channels after the 1x1 bottleneck conv (paper: 1024); block ``i`` has ``width // 2^(i+1)``.
        skips: if true, block ``i`` (output reduction ``r_L / 2^(i+1)``) concatenates the deepest encoder
            level with exactly that reduction, when there is one (vgg16's stride-1 level feeds the last block).
        output: activation on the final 1-channel conv (:data:`OUTPUT_ACTIVATIONS`).
        init_depth: if given (metres, > 0), the head's bias is set so that a zero head input gives this depth
            after the output activation (``b = init_depth``; for softplus ``b = log(expm1(init_depth))``). The
            head's weights keep their small default init, so the untrained model predicts about ``init_depth``
            everywhere instead of about 0. ``None`` (default) keeps PyTorch's default init, as in the paper.
    """

    def __init__(
        self,
        channels: Sequence[int],
        reductions: Sequence[int],
        *,
        width: int = 1024,
        skips: bool = False,
        output: OutputActivation = "linear",
        init_depth: float | None = None,
    ) -> None:
        super().__init__()
        if len(channels) != len(reductions) or not channels:
            raise ModelError(
                f"channels and reductions must be non-empty and of equal length, got {len(channels)} channels "
                f"and {len(reductions)} reductions"
            )
        if list(reductions) != sorted(reductions):
            raise ModelError(f"feature reductions must be non-decreasing (shallow to deep), got {list(reductions)}")
        n_blocks = _num_up_blocks(reductions, "this encoder")
        if isinstance(width, bool) or not isinstance(width, int) or width // 2**n_blocks < 1:
            raise ModelError(
                f"decoder_width must be an integer of at least {2**n_blocks} (it halves in each of the {n_blocks} "
                f"up-blocks), got {width!r}"
            )
        _check_output(output)
        _check_init_depth(init_depth)
        self.output = output
        self.input_multiple = int(reductions[-1])
        self.block_reductions: tuple[int, ...] = tuple(self.input_multiple // 2 ** (i + 1) for i in range(n_blocks))
        self.widths: tuple[int, ...] = tuple(width // 2 ** (i + 1) for i in range(n_blocks))
        self.skip_levels: tuple[int | None, ...] = tuple(
            _deepest_level_with(reductions, r) if skips else None for r in self.block_reductions
        )
        self.bottleneck = nn.Conv2d(channels[-1], width, kernel_size=1)
        in_widths = (width, *self.widths[:-1])
        self.blocks = nn.ModuleList(
            UpBlock(c_in, c_out, 0 if level is None else channels[level])
            for c_in, c_out, level in zip(in_widths, self.widths, self.skip_levels, strict=True)
        )
        self.head = nn.Conv2d(self.widths[-1], 1, kernel_size=3, padding=1)
        if init_depth is not None:
            assert self.head.bias is not None  # nn.Conv2d has a bias unless bias=False
            with torch.no_grad():
                self.head.bias.fill_(_output_inverse(output, float(init_depth)))

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        """Encoder ``features`` (shallow to deep, NCHW) -> depth [B, 1, *size]; ``size`` is the input's (H, W)."""
        height, width = size
        x = self.bottleneck(features[-1])
        for block, reduction, level in zip(self.blocks, self.block_reductions, self.skip_levels, strict=True):
            x = block(x, (height // reduction, width // reduction), None if level is None else features[level])
        x = self.head(x)
        if self.output == "relu":
            return F.relu(x)
        if self.output == "softplus":
            return F.softplus(x)
        return x


# --------------------------------------------------------------------------------------------------------------
# Full model


@dataclass(frozen=True)
class WeightsReport:
    """Where the encoder's weights came from and how well a weights file matched it.

    ``source`` is ``"random"``, ``"hub"`` or the file path. ``missing`` lists encoder keys the file did not
    provide (they keep their random init; BatchNorm ``num_batches_tracked`` counters are not counted);
    ``unexpected`` lists file keys the model does not use. Classification heads are harmless there (timm drops
    the ``classifier`` of its config before loading, so only other head layers, e.g. EfficientNet's
    ``conv_head``, show up).
    """

    source: str
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for logs: source and missing/unexpected key counts."""
        return f"encoder weights: {self.source} ({len(self.missing)} missing, {len(self.unexpected)} unexpected keys)"


class DepthModel(nn.Module):
    """Normalisation, a timm features-only encoder and :class:`DepthDecoder`; RGB in [0, 1] -> depth map.

    Prefer :func:`create_depth_model`; this constructor accepts any encoder with a timm ``feature_info`` (and
    returning a list of NCHW or NHWC maps), e.g. one built by hand.
    """

    input_mean: Tensor
    input_std: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        *,
        encoder_name: str,
        mean: Sequence[float],
        std: Sequence[float],
        decoder_width: int = 1024,
        skips: bool = False,
        output: OutputActivation = "linear",
        init_depth: float | None = None,
        weights_report: WeightsReport | None = None,
    ) -> None:
        super().__init__()
        feature_info = getattr(encoder, "feature_info", None)
        if feature_info is None or not hasattr(feature_info, "channels"):
            raise ModelError(f"encoder '{encoder_name}' has no timm feature_info; build it with features_only=True")
        self.encoder = encoder
        self.encoder_name = encoder_name
        channels, reductions = _feature_meta(encoder)
        self.decoder = DepthDecoder(
            channels,
            reductions,
            width=decoder_width,
            skips=skips,
            output=output,
            init_depth=init_depth,
        )
        self.weights_report = weights_report or WeightsReport("random")
        self._nhwc = str(getattr(encoder, "output_fmt", "NCHW")).upper().endswith("NHWC")
        # Non-persistent: they are derived from the encoder's config, so checkpoints stay free of them.
        self.register_buffer("input_mean", _rgb_buffer(mean, "mean"), persistent=False)
        self.register_buffer("input_std", _rgb_buffer(std, "std"), persistent=False)
        if bool((self.input_std <= 0).any()):
            raise ModelError(f"std must be positive, got {tuple(std)}")

    @property
    def input_multiple(self) -> int:
        """Input height and width must be multiples of this (the encoder's deepest reduction)."""
        return self.decoder.input_multiple

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of the encoder levels (``feature_info.channels()``)."""
        return _feature_meta(self.encoder)[0]

    @property
    def feature_reductions(self) -> tuple[int, ...]:
        """Reductions of the encoder levels (``feature_info.reduction()``)."""
        return _feature_meta(self.encoder)[1]

    def forward(self, image: Tensor) -> Tensor:
        """Depth [B, 1, H, W] from RGB ``image`` [B, 3, H, W] in [0, 1]; H, W multiples of :attr:`input_multiple`.

        Raises:
            ModelInputError: wrong rank or channel count, a non-floating dtype, or a size that is not a multiple.
        """
        self._check_input(image)
        x = (image - self.input_mean) / self.input_std
        features = self.encoder(x)
        if isinstance(features, Tensor):  # encoders built with a single out_index may return a bare tensor
            features = [features]
        if self._nhwc:
            features = [f.permute(0, 3, 1, 2) for f in features]
        return self.decoder(features, (image.shape[-2], image.shape[-1]))

    def _check_input(self, image: Tensor) -> None:
        """Boundary checks with messages that say what was expected and what came."""
        if not isinstance(image, Tensor):
            raise ModelInputError(f"expected a tensor of shape (B, 3, H, W), got {type(image).__name__}")
        if image.ndim != 4 or image.shape[1] != 3:
            raise ModelInputError(f"expected (B, 3, H, W), got {tuple(image.shape)}")
        if not image.is_floating_point():
            raise ModelInputError(f"expected a floating-point RGB image in [0, 1], got dtype {image.dtype}")
        height, width = int(image.shape[-2]), int(image.shape[-1])
        m = self.input_multiple
        if height % m or width % m:
            raise ModelInputError(
                f"input height and width must be multiples of {m} (the deepest reduction of encoder "
                f"'{self.encoder_name}') so that the output has the input's size; got {height}x{width}. Resize or "
                f"crop to e.g. {_round_to(height, m)}x{_round_to(width, m)} (the paper uses 288x384)"
            )


def create_depth_model(
    encoder: str,
    pretrained: bool | str | os.PathLike[str] = False,
    *,
    decoder_width: int = 1024,
    skips: bool = False,
    out_indices: Sequence[int] | None = None,
    output: OutputActivation = "linear",
    init_depth: float | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> DepthModel:
    """Build the paper's depth estimator around timm encoder ``encoder`` (``timm.create_model(features_only=True)``).

    Args:
        encoder: a timm model name, optionally with a pretrained tag (``"densenet161"``, ``"resnet18.a1_in1k"``).
            The paper uses ``densenet161`` and ``pnasnet5large``.
        pretrained: ``False`` for random init; ``True`` for timm's hub weights (with ``HF_HUB_OFFLINE=1``, the
            project default, this works only from the local cache and otherwise fails at once); or a path to a
            local ``.safetensors`` / ``.pth`` / ``.bin`` file holding a timm state dict for this architecture (a
            full classification model's, or a features-only encoder's).
        decoder_width: channels after the 1x1 bottleneck; halves in each up-block (paper: 1024 -> ... -> 32).
        skips: concatenate encoder features into the up-blocks (not in the paper; off by default).
        out_indices: encoder levels to use (timm's ``out_indices``); default all. The deepest chosen level feeds
            the decoder and fixes :attr:`DepthModel.input_multiple`.
        output: ``"linear"`` (the paper's plain conv output), ``"relu"`` or ``"softplus"`` (positive depth).
        init_depth: initial output level in metres (> 0): the head's bias is set so that the untrained model
            predicts about this depth everywhere (see :class:`DepthDecoder`). ``None`` (default): PyTorch's init,
            as in the paper, which starts near 0 m. Useful for random-init encoders and for loss sets in which
            few losses see the absolute depth level (of the 78, only ``l_D^k`` do).
        mean, std: override the RGB normalisation; default the encoder's timm pretrained config. The authors'
            released code feeds [0, 1] images unnormalised, i.e. ``mean=(0, 0, 0), std=(1, 1, 1)``.

    Raises:
        ModelError: unknown encoder (with close timm names), offline or failed hub download, missing or
            unusable weights file, or an invalid decoder option.
    """
    _check_encoder_name(encoder)
    _check_output(output)
    _check_init_depth(init_depth)
    kwargs = _feature_kwargs(out_indices)
    if isinstance(pretrained, bool):
        if pretrained:
            _check_hub_weights_available(encoder)
            net = _build_encoder(encoder, pretrained=True, **kwargs)
            report = WeightsReport("hub")
        else:
            net = _build_encoder(encoder, pretrained=False, **kwargs)
            report = WeightsReport("random")
    elif isinstance(pretrained, (str, os.PathLike)):
        net, report = _build_encoder_from_file(encoder, Path(pretrained), **kwargs)
    else:
        raise ModelError(
            f"pretrained must be False, True or a path to a weights file, got {type(pretrained).__name__} "
            f"{pretrained!r}"
        )
    if report.missing:
        warnings.warn(
            f"{report.summary()}; {len(report.missing)} encoder tensors keep their random init, e.g. "
            f"{list(report.missing[:3])}",
            stacklevel=2,
        )
    _logger.info("%s: %s", encoder, report.summary())
    mean_, std_ = _normalization(net, mean, std)
    return DepthModel(
        net,
        encoder_name=encoder,
        mean=mean_,
        std=std_,
        decoder_width=decoder_width,
        skips=skips,
        output=output,
        init_depth=init_depth,
        weights_report=report,
    )


def model_for_config(config: RunConfig, *, pretrained: bool | str | os.PathLike[str] | None = None) -> DepthModel:
    """The depth model a run of ``config`` trains: :func:`create_depth_model` with the config's encoder and decoder
    options. ``pretrained`` overrides ``config.pretrained`` (``False`` when the weights come from a checkpoint)."""
    return create_depth_model(
        config.encoder,
        pretrained=config.pretrained if pretrained is None else pretrained,
        decoder_width=config.decoder_width,
        skips=config.skips,
        init_depth=config.init_depth,
    )


# --------------------------------------------------------------------------------------------------------------
# Helpers: names, building, weights


def _check_encoder_name(name: str) -> None:
    """Unknown names (and unknown pretrained tags) fail with close timm names and a list_models pattern."""
    if not isinstance(name, str) or not name:
        raise ModelError(f"encoder must be a timm model name, got {name!r}")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name.lower(), timm.list_models(), n=5, cutoff=0.6)
        stem = re.match(r"[A-Za-z]+", close[0] if close else name)  # '*densenet*' for 'densnet161'
        pattern = f"*{stem.group(0).lower() if stem else name}*"
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ModelError(f"unknown encoder '{name}'; try timm.list_models('{pattern}'){hint}")
    try:
        timm.models.get_pretrained_cfg(name)
    except RuntimeError as err:  # an unknown ".tag"
        arch = name.split(".", 1)[0]
        tags = timm.list_pretrained(arch + ".*")
        raise ModelError(f"{err} Available: timm.list_pretrained('{arch}.*') = {tags}") from err


def _check_output(output: str) -> None:
    if output not in OUTPUT_ACTIVATIONS:
        raise ModelError(f"output must be one of {OUTPUT_ACTIVATIONS}, got {output!r}")


def _check_init_depth(init_depth: float | None) -> None:
    if init_depth is None:
        return
    if (
        isinstance(init_depth, bool)
        or not isinstance(init_depth, (int, float))
        or not (math.isfinite(init_depth) and init_depth > 0)
    ):
        raise ModelError(f"init_depth must be None or a finite depth > 0 (metres), got {init_depth!r}")


def _output_inverse(output: str, depth: float) -> float:
    """The pre-activation value that ``output`` maps to ``depth`` (> 0)."""
    if output == "softplus":
        return depth + math.log(-math.expm1(-depth))  # log(expm1(depth)), stable for large depth
    return depth  # linear and relu are the identity on positive values


def _feature_kwargs(out_indices: Sequence[int] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"features_only": True}
    if out_indices is not None:
        if isinstance(out_indices, (str, bytes)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in out_indices
        ):
            raise ModelError(f"out_indices must be a sequence of integers, got {out_indices!r}")
        if not out_indices:
            raise ModelError("out_indices must name at least one encoder level, got an empty sequence")
        kwargs["out_indices"] = tuple(out_indices)
    return kwargs


def _build_encoder(name: str, *, pretrained: bool, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with timm's errors turned into :class:`ModelError` (download errors included)."""
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except OSError as err:  # hub/url download failures (LocalEntryNotFoundError is a FileNotFoundError)
        raise ModelError(_download_failed_message(name, str(err))) from err
    except (RuntimeError, ValueError, TypeError, AssertionError, KeyError, IndexError) as err:
        raise ModelError(f"timm could not build encoder '{name}' with {kwargs}: {type(err).__name__}: {err}") from err
    except Exception as err:  # HTTP client errors of the hub (not OSError in every huggingface_hub version)
        if pretrained:
            raise ModelError(_download_failed_message(name, f"{type(err).__name__}: {err}")) from err
        raise


def _download_failed_message(name: str, reason: str) -> str:
    return (
        f"could not download pretrained weights for encoder '{name}' ({reason}). Offline, pass "
        f"pretrained='/path/to/{name}.safetensors' (or .pth / .bin: a timm state dict for '{name}', e.g. the "
        f"model.safetensors of {_hub_location(name)}); when online, set HF_HUB_OFFLINE=0 before importing mlrd_core"
    )


def _hub_location(name: str) -> str:
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is not None and cfg.hf_hub_id:
        return f"https://huggingface.co/{cfg.hf_hub_id}"
    if cfg is not None and cfg.url:
        return cfg.url if isinstance(cfg.url, str) else cfg.url[0]
    return "its timm weights"


def _hub_offline() -> bool:
    """Whether huggingface_hub runs offline (it reads HF_HUB_OFFLINE once, at import)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # no hub client: timm can only use plain URLs
        return os.environ.get("HF_HUB_OFFLINE", "0").upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE)


def _check_hub_weights_available(name: str) -> None:
    """Fail before building anything when timm has no weights for ``name`` or they cannot be fetched offline.

    Offline (``HF_HUB_OFFLINE=1``) the weights must be in the Hugging Face cache (or, for URL-only weights, in
    torch.hub's checkpoint folder); otherwise timm would first build the whole encoder (seconds for
    pnasnet5large) and then fail, or for URL weights try the network.
    """
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise ModelError(
            f"timm has no pretrained weights for encoder '{name}'; use pretrained=False, a local weights file, "
            f"or an encoder from timm.list_pretrained('{name.split('.', 1)[0]}*')"
        )
    if cfg.file or not _hub_offline():
        return
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo_id, _, revision = cfg.hf_hub_id.partition("@")
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_WEIGHT_FILES
        for filename in files:
            if isinstance(try_to_load_from_cache(repo_id, filename, revision=revision or None), str):
                return
    elif cfg.url:
        url = cfg.url if isinstance(cfg.url, str) else cfg.url[0]
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        if cached.is_file():
            return
    raise ModelError(
        _download_failed_message(
            name, "HF_HUB_OFFLINE=1 and the weights are not in the local cache, so they could not be downloaded offline"
        )
    )


def _build_encoder_from_file(name: str, path: Path, **kwargs: Any) -> tuple[nn.Module, WeightsReport]:
    """Load a local weights file into the features-only encoder and report how its keys matched.

    First through timm's own path, ``pretrained_cfg_overlay=dict(file=path)``, which applies the architecture's
    checkpoint filter and loads into the full classification model before it is cut to features (non-strictly,
    with the classifier dropped). timm only logs the missing and unexpected keys, so they are collected from its
    log records. If no encoder key matched (a file saved from a features-only encoder, whose module names are
    flattened, e.g. densenet's ``features_conv0``, or from a :class:`DepthModel` with an ``encoder.`` prefix), the
    file is loaded straight into the encoder instead.
    """
    if not path.is_file():
        raise ModelError(
            f"weights file not found: {str(path)!r} (pretrained= takes False, True, or the path of an existing "
            f"{' / '.join(WEIGHT_FILE_SUFFIXES)} file)"
        )
    overlay = {"file": str(path)}
    with _capture_timm_load_keys() as log:
        try:
            net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
        except Exception as err:  # corrupt file, wrong shapes, pickle errors: all surface as one ModelError
            raise ModelError(
                f"could not load weights file {str(path)!r} into encoder '{name}': {type(err).__name__}: {err}"
            ) from err
    encoder_keys = _counted_keys(net.state_dict())
    mapped = (_encoder_key(k, encoder_keys) for k in log.missing)
    missing = {k for k in mapped if k is not None}
    unexpected = tuple(log.unexpected)
    if missing:
        # Some names differ from the full model's: the file may hold a features-only encoder (flattened names)
        # or a DepthModel checkpoint ("encoder." prefix). Load it straight into the encoder as well; a tensor
        # counts as loaded if either path loaded it (both read the same file).
        state = timm.models.load_state_dict(str(path))
        prefix = "encoder."
        if state and all(k.startswith(prefix) for k in state if not k.startswith("decoder.")):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            result = net.load_state_dict(state, strict=False)
        except RuntimeError as err:  # size mismatches
            raise ModelError(f"weights file {str(path)!r} does not fit encoder '{name}': {err}") from err
        direct_missing = set(result.missing_keys) & encoder_keys
        if len(direct_missing) < len(missing):
            unexpected = tuple(result.unexpected_keys)
        missing &= direct_missing
        if len(missing) == len(encoder_keys):
            raise ModelError(
                f"no tensor in weights file {str(path)!r} matches encoder '{name}': the file has keys like "
                f"{list(state)[:3]}, the encoder expects keys like {sorted(encoder_keys)[:3]} (or the full timm "
                f"model's names); was it saved from a different architecture?"
            )
    return net, WeightsReport(str(path), tuple(sorted(missing)), unexpected)


@dataclass
class _KeyLog:
    missing: list[str]
    unexpected: list[str]


@contextmanager
def _capture_timm_load_keys() -> Iterator[_KeyLog]:
    """Collect the key lists timm's ``load_pretrained`` logs (it loads features-only encoders non-strictly).

    The logger is opened to INFO for the duration; a filter records the lists (and drops those records: the
    :class:`WeightsReport` replaces them) and lets through to the user's handlers only the other records they
    would have seen anyway.
    """
    logger = logging.getLogger(_TIMM_BUILDER_LOGGER)
    shown_from = logger.getEffectiveLevel()
    log = _KeyLog([], [])

    def record_keys(record: logging.LogRecord) -> bool:
        match = _TIMM_KEYS_MESSAGE.match(record.getMessage())
        if match:  # superseded by the WeightsReport (and its one-line warning when keys are missing)
            keys = [k.strip() for k in match.group(2).split(",") if k.strip()]
            (log.missing if match.group(1) == "Missing" else log.unexpected).extend(keys)
            return False
        return record.levelno >= shown_from

    old_level = logger.level
    logger.setLevel(min(shown_from, logging.INFO))
    logger.addFilter(record_keys)
    try:
        yield log
    finally:
        logger.removeFilter(record_keys)
        logger.setLevel(old_level)


def _counted_keys(state: dict[str, Tensor]) -> set[str]:
    """State-dict keys that count as weights (BatchNorm's ``num_batches_tracked`` counters do not)."""
    return {k for k in state if not k.endswith("num_batches_tracked")}


def _encoder_key(full_key: str, encoder_keys: set[str]) -> str | None:
    """Name of a full-model key inside the features-only encoder, or None if the encoder drops that module.

    timm's FeatureListNet keeps module names, except that flattened ``nn.Sequential`` children become
    ``parent_child`` (``features.conv0`` -> ``features_conv0``); FeatureGetterNet nests the model as ``model``.
    """
    for candidate in (full_key, full_key.replace(".", "_", 1), f"model.{full_key}"):
        if candidate in encoder_keys:
            return candidate
    return None


def _normalization(
    net: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """RGB mean/std: explicit values, else timm's resolved data config of the encoder's pretrained weights."""
    config = resolve_data_config({}, model=net)
    mean_ = tuple(float(v) for v in (mean if mean is not None else config["mean"]))
    std_ = tuple(float(v) for v in (std if std is not None else config["std"]))
    return mean_, std_


def _rgb_buffer(values: Sequence[float], what: str) -> Tensor:
    if len(values) != 3:
        raise ModelError(f"{what} must have 3 values (R, G, B), got {tuple(values)}")
    return torch.tensor([float(v) for v in values], dtype=torch.float32).view(1, 3, 1, 1)


def _num_up_blocks(reductions: Sequence[int], name: str) -> int:
    deepest = int(reductions[-1])
    n = round(math.log2(deepest)) if deepest >= 1 else -1
    if n < 1 or 2**n != deepest:
        raise ModelError(
            f"the deepest feature level of {name} has reduction {deepest}; the decoder needs a power of two "
            f">= 2 (x2 up-blocks back to full resolution); choose other out_indices or another encoder"
        )
    return n


def _deepest_level_with(reductions: Sequence[int], reduction: int) -> int | None:
    """Index of the last (deepest) encoder level with exactly ``reduction``, or None."""
    levels = [i for i, r in enumerate(reductions) if int(r) == reduction]
    return levels[-1] if levels else None


def _feature_meta(net: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(channels, reductions) of a timm features-only model, from ``feature_info``."""
    info = cast(Any, net).feature_info
    return tuple(int(c) for c in info.channels()), tuple(int(r) for r in info.reduction())


def _round_to(size: int, multiple: int) -> int:
    return max(multiple, round(size / multiple) * multiple)
