"""Tests of mlrd_core.model: the paper's encoder-decoder built from timm metadata, weights loading, input checks.

Forward passes use tiny encoders (test_resnet, test_byobnet, test_convnext, mobilenetv3_small_100, resnet18) at
64x96 / 96x128 with narrow decoders; the paper's encoders are checked through metadata (built on the meta device),
plus one small vgg16 and one pnasnet5large forward at 64x96 / 96x128.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, cast

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.data import resolve_data_config

from mlrd_core.errors import ModelError, ShapeError
from mlrd_core.model import (
    DepthDecoder,
    DepthModel,
    ModelInputError,
    UpBlock,
    create_depth_model,
    encoder_info,
)

PAPER_ENCODERS = ("densenet161", "pnasnet5large")
METADATA_ENCODERS = (*PAPER_ENCODERS, "vgg16", "legacy_senet154", "resnet50")


def _feature_info(model: DepthModel) -> tuple[list[int], list[int]]:
    info = cast(Any, model.encoder).feature_info
    return list(info.channels()), list(info.reduction())


def _blocks(decoder: DepthDecoder) -> list[UpBlock]:
    return [cast(UpBlock, block) for block in decoder.blocks]


# ---------------------------------------------------------------------------------------------------------------
# Shapes and gradients


@pytest.mark.parametrize(
    ("encoder", "skips", "size"),
    [
        ("test_resnet", False, (64, 96)),
        ("test_resnet", True, (64, 96)),
        ("test_resnet", True, (96, 128)),
        ("test_byobnet", True, (64, 96)),
        ("test_convnext", True, (64, 96)),  # 4 levels starting at stride 4: blocks 2 and 1 get no skip
        ("mobilenetv3_small_100", False, (96, 128)),
        ("mobilenetv3_small_100", True, (64, 96)),
        ("resnet18", False, (64, 96)),
    ],
)
def test_output_has_input_size(encoder: str, skips: bool, size: tuple[int, int]) -> None:
    model = create_depth_model(encoder, decoder_width=64, skips=skips).eval()
    with torch.no_grad():
        depth = model(torch.rand(2, 3, *size))
    assert depth.shape == (2, 1, *size)
    assert torch.isfinite(depth).all()
    assert model.encoder_name == encoder
    assert model.input_multiple == 32


def test_paper_width_default_output_and_gradients() -> None:
    model = create_depth_model("test_resnet", skips=True)  # decoder_width=1024 as in the paper
    depth = model(torch.rand(2, 3, 64, 96))
    assert depth.shape == (2, 1, 64, 96)
    depth.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert model.decoder.bottleneck.weight.grad.abs().sum() > 0  # type: ignore[union-attr]
    assert model.decoder.head.weight.grad.abs().sum() > 0  # type: ignore[union-attr]
    first_encoder_param = next(model.encoder.parameters())
    assert first_encoder_param.grad.abs().sum() > 0  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------------------
# Decoder sizes derived from feature_info


@pytest.mark.parametrize("skips", [False, True])
def test_decoder_channels_come_from_feature_info(skips: bool) -> None:
    model = create_depth_model("test_resnet", skips=skips)
    channels, reductions = _feature_info(model)
    decoder = model.decoder
    assert decoder.bottleneck.in_channels == channels[-1]
    assert decoder.bottleneck.out_channels == 1024
    assert [b.conv_b.out_channels for b in _blocks(decoder)] == [512, 256, 128, 64, 32]
    assert decoder.block_reductions == (16, 8, 4, 2, 1)
    in_width = 1024
    for block, reduction in zip(_blocks(decoder), decoder.block_reductions, strict=True):
        skip = channels[reductions.index(reduction)] if skips and reduction in reductions else 0
        assert block.conv_a.in_channels == in_width + skip
        assert block.conv_a.kernel_size == block.conv_b.kernel_size == (3, 3)
        in_width = block.conv_b.out_channels
    assert decoder.head.in_channels == 32 and decoder.head.out_channels == 1
    assert decoder.head.kernel_size == (3, 3)
    assert model.feature_channels == tuple(channels)
    assert model.feature_reductions == tuple(reductions)


@pytest.mark.parametrize("encoder", METADATA_ENCODERS)
def test_paper_encoders_metadata_and_decoder(encoder: str) -> None:
    info = encoder_info(encoder)
    with torch.device("meta"):
        reference = cast(Any, timm.create_model(encoder, features_only=True))
    assert info.channels == tuple(reference.feature_info.channels())
    assert info.reductions == tuple(reference.feature_info.reduction())
    assert info.num_params == sum(p.numel() for p in reference.parameters())
    assert info.input_multiple == 32 and info.num_up_blocks == 5
    # 288x384 -> 9x12 at the deepest level, as in the paper (no forward needed)
    assert (288 // info.input_multiple, 384 // info.input_multiple) == (9, 12)
    for skips in (False, True):
        decoder = DepthDecoder(info.channels, info.reductions, width=1024, skips=skips)
        assert decoder.bottleneck.in_channels == info.channels[-1]
        assert decoder.widths == (512, 256, 128, 64, 32)


def test_vgg16_six_levels_metadata() -> None:
    info = encoder_info("vgg16")
    assert len(info.channels) == 6 and info.reductions == (1, 2, 4, 8, 16, 32)
    decoder = DepthDecoder(info.channels, info.reductions, width=1024, skips=True)
    # block output reductions 16, 8, 4, 2, 1 take levels 4, 3, 2, 1, 0: the stride-1 level feeds the last block
    assert decoder.skip_levels == (4, 3, 2, 1, 0)
    assert _blocks(decoder)[-1].conv_a.in_channels == 64 + info.channels[0]


def test_vgg16_six_levels_forward() -> None:
    model = create_depth_model("vgg16", decoder_width=64, skips=True).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)


def test_skip_one_pixel_short_is_resized_to_target() -> None:
    block = UpBlock(8, 4, skip_channels=3)
    out = block(torch.rand(1, 8, 24, 32), (48, 64), torch.rand(1, 3, 47, 63))  # pnasnet's stride-2 map at 96x128
    assert out.shape == (1, 4, 48, 64)


def test_pnasnet5large_off_by_one_forward() -> None:
    model = create_depth_model("pnasnet5large", decoder_width=64, skips=True).eval()
    image = torch.rand(1, 3, 96, 128)
    with torch.no_grad():
        features = model.encoder(image)
        depth = model(image)
    assert tuple(features[0].shape[-2:]) == (47, 63)  # one pixel short of 48x64
    assert depth.shape == (1, 1, 96, 128)


def test_out_indices_shallower_deepest_level() -> None:
    model = create_depth_model("test_resnet", decoder_width=64, out_indices=(1, 2, 3))
    assert model.input_multiple == 16
    assert len(model.decoder.blocks) == 4
    with torch.no_grad():
        assert model(torch.rand(1, 3, 48, 80)).shape == (1, 1, 48, 80)


def test_decoder_rejects_non_power_of_two_reduction() -> None:
    with pytest.raises(ModelError, match="power of two"):
        DepthDecoder([8, 16], [7, 14])


def test_decoder_width_too_small() -> None:
    with pytest.raises(ModelError, match="decoder_width must be an integer of at least 32"):
        create_depth_model("test_resnet", decoder_width=16)


# ---------------------------------------------------------------------------------------------------------------
# Normalisation and output activation


@pytest.mark.parametrize("encoder", ["test_resnet", "resnet18"])
def test_normalization_buffers_equal_timm_config(encoder: str) -> None:
    model = create_depth_model(encoder, decoder_width=64)
    config = resolve_data_config({}, model=model.encoder)
    assert model.input_mean.flatten().tolist() == pytest.approx(list(config["mean"]))
    assert model.input_std.flatten().tolist() == pytest.approx(list(config["std"]))
    assert model.input_mean.shape == (1, 3, 1, 1)
    assert "input_mean" not in model.state_dict()  # derived from the encoder config, not checkpointed
    image = torch.rand(1, 3, 64, 96)
    model.eval()
    with torch.no_grad():
        expected = model.decoder(model.encoder((image - model.input_mean) / model.input_std), (64, 96))
        assert torch.equal(model(image), expected)


def test_normalization_override_reproduces_authors_unnormalised_input() -> None:
    model = create_depth_model("test_resnet", decoder_width=64, mean=(0, 0, 0), std=(1, 1, 1))
    assert model.input_mean.flatten().tolist() == [0, 0, 0]
    assert model.input_std.flatten().tolist() == [1, 1, 1]
    with pytest.raises(ModelError, match="3 values"):
        create_depth_model("test_resnet", decoder_width=64, mean=(0.5, 0.5))


def test_output_activations() -> None:
    torch.manual_seed(0)
    model = create_depth_model("test_resnet", decoder_width=64, output="softplus").eval()
    with torch.no_grad():
        assert (model(torch.rand(1, 3, 64, 96)) > 0).all()
    with pytest.raises(ModelError, match="output must be one of"):
        create_depth_model("test_resnet", output="exp")  # type: ignore[arg-type]


@pytest.mark.parametrize("output", ["linear", "relu", "softplus"])
def test_init_depth_sets_the_initial_output_level(output: str) -> None:
    torch.manual_seed(0)
    model = create_depth_model("test_resnet", decoder_width=64, skips=True, output=output, init_depth=3.0).eval()
    with torch.no_grad():
        pred = model(torch.rand(2, 3, 64, 96))
    # the head's weights keep their small default init, so the untrained model predicts about init_depth everywhere
    assert abs(pred.median().item() - 3.0) < 0.5
    # exactly: a zero head input gives init_depth after the output activation
    head = model.decoder.head
    level = model.decoder.head(torch.zeros(1, head.in_channels, 1, 1))
    level = {"linear": level, "relu": torch.relu(level), "softplus": torch.nn.functional.softplus(level)}[output]
    assert level.item() == pytest.approx(3.0, abs=1e-5)


def test_init_depth_default_keeps_pytorch_init_and_rejects_bad_values() -> None:
    torch.manual_seed(0)
    default = create_depth_model("test_resnet", decoder_width=64)
    torch.manual_seed(0)
    same = create_depth_model("test_resnet", decoder_width=64, init_depth=None)
    assert torch.equal(default.decoder.head.bias, same.decoder.head.bias)
    head = default.decoder.head
    bound = 1 / (head.in_channels * 9) ** 0.5  # PyTorch's uniform init: near 0 m
    assert abs(head.bias.item()) <= bound
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ModelError, match="init_depth must be None or a finite depth > 0"):
            create_depth_model("test_resnet", decoder_width=64, init_depth=bad)  # type: ignore[arg-type]


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = create_depth_model("test_resnet", decoder_width=64, skips=True).eval()
    image = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        expected = model(image)
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        actual = model(image.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Input checks


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((4, 64, 96), r"expected \(B, 3, H, W\), got \(4, 64, 96\)"),
        ((2, 1, 64, 96), r"expected \(B, 3, H, W\), got \(2, 1, 64, 96\)"),
    ],
)
def test_bad_input_shape(shape: tuple[int, ...], message: str) -> None:
    model = create_depth_model("test_resnet", decoder_width=64)
    with pytest.raises(ModelInputError, match=message):
        model(torch.rand(shape))


def test_input_errors_are_shape_and_model_errors() -> None:
    model = create_depth_model("test_resnet", decoder_width=64)
    with pytest.raises(ShapeError, match="floating-point"):
        model(torch.zeros(1, 3, 64, 96, dtype=torch.uint8))
    with pytest.raises(ModelError):
        model(torch.rand(3, 64, 96))


def test_not_a_multiple_of_the_deepest_reduction() -> None:
    model = create_depth_model("test_resnet", decoder_width=64)
    with pytest.raises(ModelError, match=r"multiples of 32 .* got 100x128"):
        model(torch.rand(1, 3, 100, 128))


# ---------------------------------------------------------------------------------------------------------------
# Names and pretrained weights


def test_unknown_encoder_suggests_close_names() -> None:
    with pytest.raises(ModelError, match=r"unknown encoder 'densnet161'; try timm.list_models\('\*densenet\*'\)") as e:
        create_depth_model("densnet161")
    assert "densenet161" in str(e.value).split("close matches:")[1]
    with pytest.raises(ModelError, match="unknown encoder"):
        encoder_info("no_such_net_xyz")


def test_unknown_pretrained_tag() -> None:
    with pytest.raises(ModelError, match=r"resnet18\.a1_in1k"):
        create_depth_model("resnet18.no_such_tag")


def test_pretrained_true_offline_fails_fast() -> None:
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE is not set; this test checks the offline failure")
    start = time.perf_counter()
    with pytest.raises(ModelError) as err:
        create_depth_model("pnasnet5large", pretrained=True)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, elapsed  # measured: under a millisecond (the check runs before the encoder is built)
    message = str(err.value)
    assert "could not be downloaded offline" in message
    assert "pretrained='/path/to/pnasnet5large.safetensors'" in message
    assert "HF_HUB_OFFLINE=0" in message


def test_pretrained_true_without_published_weights() -> None:
    with pytest.raises(ModelError, match="timm has no pretrained weights for encoder 'botnet50ts_256'"):
        create_depth_model("botnet50ts_256", pretrained=True)


def test_pretrained_wrong_type() -> None:
    with pytest.raises(ModelError, match="pretrained must be False, True or a path"):
        create_depth_model("test_resnet", pretrained=1)  # type: ignore[arg-type]


def _assert_encoder_equals(model: DepthModel, expected: dict[str, torch.Tensor]) -> None:
    state = model.encoder.state_dict()
    assert state, "empty encoder"
    for key, value in state.items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_full_model_round_trip(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(123)
    full = timm.create_model("test_resnet")  # classification model, head included
    state = {k: v.contiguous() for k, v in full.state_dict().items()}
    path = tmp_path / f"test_resnet{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    model = create_depth_model("test_resnet", pretrained=path, decoder_width=64)
    _assert_encoder_equals(model, state)
    assert model.weights_report.source == str(path)
    assert model.weights_report.missing == ()


def test_local_weights_features_only_file_with_flattened_names(tmp_path: Path) -> None:
    # test_byobnet's features model flattens names (stem.conv -> stem_conv), so timm's own path matches nothing
    # and the file is loaded straight into the encoder.
    torch.manual_seed(7)
    features = timm.create_model("test_byobnet", features_only=True)
    state = features.state_dict()
    path = tmp_path / "encoder.pth"
    torch.save(state, path)
    model = create_depth_model("test_byobnet", pretrained=str(path), decoder_width=64)
    _assert_encoder_equals(model, state)
    assert model.weights_report.missing == () and model.weights_report.unexpected == ()


def test_local_weights_from_depth_model_checkpoint(tmp_path: Path) -> None:
    source = create_depth_model("test_resnet", decoder_width=64)
    path = tmp_path / "depth_model.pth"
    torch.save(source.state_dict(), path)
    model = create_depth_model("test_resnet", pretrained=path, decoder_width=64)
    _assert_encoder_equals(model, source.encoder.state_dict())


def test_local_weights_partial_file_warns_with_counts(tmp_path: Path) -> None:
    full = timm.create_model("test_resnet")
    state = {k: v for k, v in full.state_dict().items() if not k.startswith("layer4.")}
    n_dropped = sum(1 for k in full.state_dict() if k.startswith("layer4.") and not k.endswith("num_batches_tracked"))
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning, match=rf"{n_dropped} missing, 0 unexpected keys"):
        model = create_depth_model("test_resnet", pretrained=path, decoder_width=64)
    assert len(model.weights_report.missing) == n_dropped


def test_local_weights_from_other_architecture_fails(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"totally.different.weight": torch.zeros(3)}, path)
    with pytest.raises(ModelError, match=r"no tensor in weights file .* matches encoder 'test_resnet'"):
        create_depth_model("test_resnet", pretrained=path)


def test_local_weights_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a weights file")
    with pytest.raises(ModelError, match="could not load weights file"):
        create_depth_model("test_resnet", pretrained=path)


def test_missing_weights_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "densenet161.safetensors"
    with pytest.raises(ModelError, match=r"weights file not found: .*nowhere/densenet161\.safetensors"):
        create_depth_model("test_resnet", pretrained=path)


def test_timm_key_log_is_replaced_by_the_report(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = timm.create_model("test_resnet").state_dict()
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    logger = logging.getLogger("timm.models._builder")
    level = logger.level
    with caplog.at_level(logging.INFO):
        model = create_depth_model("test_resnet", pretrained=path, decoder_width=64)
    assert model.weights_report.unexpected == ("extra.weight",)
    assert model.weights_report.missing == ()
    assert not any("Unexpected keys" in record.getMessage() for record in caplog.records)
    assert any("1 unexpected keys" in record.getMessage() for record in caplog.records)
    assert logger.level == level and not logger.filters
