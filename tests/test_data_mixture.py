"""Mixtures of datasets: proportions, weights, determinism, exact resume, the NYUv2 leakage guard, spec errors.

The data are miniatures of the public layouts, written with the builders of the per-dataset tests (where each
layout comes from is said there): ``nyuv2-zip`` in the authors' zip layout (``test_data_nyuv2``), Matterport3D's
``v1/scans`` tree with the benchmark's house lists (``test_data_matterport3d``), and SUN RGB-D's tree with
``allsplit.mat`` (``test_data_sunrgbd``'s encoding), here with several ``kv1/NYUdata/NYU<dddd>`` scenes: the release
names the folders of NYUv2's 1449 labelled frames ``NYU0001`` .. ``NYU1449``. NYUv2's ``splits.mat`` is the
official form (v5, ``trainNdxs`` / ``testNdxs``, 1-based column vectors).
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from test_data_matterport3d import write_release as write_matterport
from test_data_nyuv2 import ZipFrames, authors_sequences_zip, png_bytes, write_zip
from test_data_sunrgbd import rotate_left_3
from test_trainer import _fingerprint, train_until_killed
from tiny_spec import TINY_CONFIG

from mlrd_core.config import RunConfig
from mlrd_core.data.mixture import MixtureDataset, epoch_counts, missing_guard_files, run_dataset
from mlrd_core.data.provenance import dataset_sources
from mlrd_core.data.transforms import TransformedDataset
from mlrd_core.errors import ConfigError, DataError
from mlrd_core.trainer import CHECKPOINT_NAME, fit, load_checkpoint, steps_per_epoch
from suite.plan import plan, run_id_for
from suite.spec import Spec, loads_spec

#: SUN RGB-D miniature: the NYUv2 frames 1..6 and two other sensors' scenes, all in alltrain; kv2 also in alltest.
NYU_SCENES = [f"kv1/NYUdata/NYU{n:04d}" for n in range(1, 7)]
OTHER_SCENES = ["kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize", "xtion/sun3ddata/a/b"]
#: NYUv2 test frames (1-based, as splits.mat stores them): 2, 4 and 5 are in SUN RGB-D's training scenes above.
NYU_TEST = [2, 4, 5, 9]


class Part(torch.utils.data.Dataset):
    """A stand-in dataset whose items say where they come from."""

    def __init__(self, tag: int, size: int) -> None:
        self.tag, self.size = tag, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        image = torch.full((3, 2, 2), float(self.tag))
        return {
            "image": image,
            "depth": torch.ones(1, 2, 2),
            "mask": torch.ones(1, 2, 2, dtype=torch.bool),
            "index": index,
            "tag": self.tag,
            "item": index,
        }


def seen(mixture: MixtureDataset) -> Counter:
    return Counter(mixture.locate(i) for i in range(len(mixture)))


def test_without_weights_every_item_once_per_epoch() -> None:
    mixture = MixtureDataset([("a", Part(0, 5)), ("b", Part(1, 3)), ("c", Part(2, 12))], seed=0)
    assert len(mixture) == 20 and mixture.counts == [5, 3, 12]
    for epoch in (0, 3):
        mixture.set_epoch(epoch)
        assert seen(mixture) == Counter({(p, i): 1 for p, n in enumerate((5, 3, 12)) for i in range(n)})
    item = mixture[7]
    assert (item["tag"], item["item"], item["index"]) == (1, 2, 7)  # index is the mixture's


def test_weights_set_the_shares_and_walk_each_part_in_passes() -> None:
    assert epoch_counts([5, 3, 12], [2, 1, 1]) == [10, 5, 5]
    assert epoch_counts([1, 1, 1], [1, 1, 1]) == [1, 1, 1] and sum(epoch_counts([7, 5, 9], [0.3, 0.3, 0.4])) == 21
    mixture = MixtureDataset([("a", Part(0, 5)), ("b", Part(1, 3)), ("c", Part(2, 12))], weights=[2, 1, 1], seed=4)
    assert len(mixture) == 20 and mixture.counts == [10, 5, 5]
    shown: dict[int, Counter] = {0: Counter(), 1: Counter(), 2: Counter()}
    epochs = []
    for epoch in range(12):  # 12 epochs: part c (12 items, 5 a epoch) makes 5 full passes
        mixture.set_epoch(epoch)
        found = seen(mixture)
        assert Counter(p for p, _ in found.elements()) == Counter({0: 10, 1: 5, 2: 5})
        for (part, item), n in found.items():
            shown[part][item] += n
        epochs.append([mixture.locate(i) for i in range(len(mixture))])
    # over-weighted a (10 of 5 a epoch) and b: every item equally often; under-weighted c: after 5 passes each once
    assert set(shown[0].values()) == {24} and set(shown[1].values()) == {20} and set(shown[2].values()) == {5}
    assert epochs[0] != epochs[1]  # c shows other items in the next epoch
    # deterministic: a fresh mixture with the same seed gives the same epochs; another seed other ones
    again = MixtureDataset([("a", Part(0, 5)), ("b", Part(1, 3)), ("c", Part(2, 12))], weights=[2, 1, 1], seed=4)
    again.set_epoch(7)
    assert [again.locate(i) for i in range(20)] == epochs[7]
    other = MixtureDataset([("a", Part(0, 5)), ("b", Part(1, 3)), ("c", Part(2, 12))], weights=[2, 1, 1], seed=5)
    other.set_epoch(7)
    assert [other.locate(i) for i in range(20)] != epochs[7]


def test_the_transform_wrapper_passes_the_epoch_on_and_resizes() -> None:
    mixture = MixtureDataset([("a", Part(0, 5)), ("b", Part(1, 3))], weights=[1, 3], seed=0)
    wrapped = TransformedDataset(mixture, size=(4, 6), augment=True, seed=0)
    wrapped.set_epoch(2)
    assert mixture.epoch == 2 and wrapped[0]["image"].shape == (3, 4, 6)
    with pytest.raises(DataError, match="needs 2 weights"):
        MixtureDataset([("a", Part(0, 5)), ("b", Part(1, 3))], weights=[1])
    with pytest.raises(DataError, match="b of the mixture have no items"):
        MixtureDataset([("a", Part(0, 5)), ("b", Part(1, 0))])


# ------------------------------------------------------------------------------------------ miniatures


def write_sunrgbd(root: Path) -> None:
    """SUN RGB-D's tree (``SUNRGBD/<sensor>/.../<scene>/{image,depth}``) and ``allsplit.mat``."""
    for number, scene in enumerate(NYU_SCENES + OTHER_SCENES):
        folder = root / "SUNRGBD" / scene
        (folder / "image").mkdir(parents=True)
        (folder / "depth").mkdir()
        rng = np.random.default_rng(number)
        h, w = (5, 7) if "kv2" in scene else (6, 8)  # sensors differ in size
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / "image" / "0000001.jpg")
        Image.fromarray(rotate_left_3(rng.integers(500, 7000, (h, w)).astype(np.uint16))).save(
            folder / "depth" / "0000001.png"
        )
    toolbox = root / "SUNRGBDtoolbox" / "traintestSUNRGBD"
    toolbox.mkdir(parents=True)

    def cells(scenes: list[str]) -> np.ndarray:
        out = np.empty((1, len(scenes)), dtype=object)
        for i, scene in enumerate(scenes):
            out[0, i] = f"/n/fs/sun3d/data/SUNRGBD/{scene}"
        return out

    scipy.io.savemat(
        toolbox / "allsplit.mat", {"alltrain": cells(NYU_SCENES + OTHER_SCENES), "alltest": cells(OTHER_SCENES[:1])}
    )


def write_nyu(root: Path) -> None:
    """The authors' ``train_reduced05.zip`` (2 frames) and ``test654.zip`` (1 frame), and ``splits.mat``."""
    root.mkdir(parents=True)
    frames = ZipFrames()
    authors_sequences_zip(root / "train_reduced05.zip", frames)
    members = {"test654/test.csv": b"test654/0.png,test654/0d.png\n"}
    members["test654/0.png"] = png_bytes(frames.rgb[0])
    members["test654/0d.png"] = png_bytes(frames.depth16[0])
    write_zip(root / "test654.zip", members)
    train = [[float(n)] for n in range(1, 20) if n not in NYU_TEST]
    scipy.io.savemat(
        root / "splits.mat", {"trainNdxs": np.array(train), "testNdxs": np.array([[float(n)] for n in NYU_TEST])}
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixture")
    write_nyu(root / "nyu")
    write_sunrgbd(root / "sun")
    write_matterport(root / "mp")
    return root


def mixture_config(root: Path, **changes: object) -> RunConfig:
    values: dict = {
        "dataset": ("nyuv2-zip", "sunrgbd", "matterport3d"),
        "eval_dataset": "nyuv2-zip",
        "dataset_options": {
            "nyuv2-zip": {"root": str(root / "nyu")},
            "sunrgbd": {"root": str(root / "sun")},
            "matterport3d": {"root": str(root / "mp")},
        },
        "val_split": None,
        "protocol": "nyu-lee-kim",
        "batch_size": 4,
    }
    values.update(changes)
    return TINY_CONFIG.replace(**values)


def test_leakage_guard_leaves_out_the_nyuv2_test_frames(data: Path) -> None:
    messages: list[str] = []
    train = run_dataset(mixture_config(data), "train", train=True, log=messages.append)
    assert isinstance(train, MixtureDataset) and train.names == ("nyuv2-zip", "sunrgbd", "matterport3d")
    sun = train.datasets[1]
    assert sun.scenes == sorted(OTHER_SCENES + [f"kv1/NYUdata/NYU{n:04d}" for n in (1, 3, 6)])  # type: ignore[attr-defined]
    assert train.sizes == [2, 5, 4] and len(train) == 11
    assert any("left out 3 SUN RGB-D frames (NYUv2 test-split frames" in m for m in messages), messages
    records = dataset_sources(train)
    by_name = {(r["dataset"], r["name"]): r for r in records}
    assert by_name[("sunrgbd", "SUNRGBD")]["settings"]["excluded_nyuv2_frames"] == 3
    assert by_name[("sunrgbd", "splits.mat")]["items"] == 3
    assert by_name[("nyuv2-zip", "train_reduced05.zip")]["mixture"] == {"items": 2, "per_epoch": 2, "share": 0.181818}
    assert {r["dataset"] for r in records} == {"nyuv2-zip", "sunrgbd", "matterport3d"}
    # evaluated elsewhere: no guard; "all" leaves out every NYUdata frame
    elsewhere = run_dataset(mixture_config(data, eval_dataset="matterport3d"), "train", train=True)
    assert elsewhere.datasets[1].excluded_nyuv2 == 0 and len(elsewhere.datasets[1]) == 8  # type: ignore[attr-defined]
    options = mixture_config(data).dataset_options
    strict = mixture_config(
        data, dataset_options={**options, "sunrgbd": {**options["sunrgbd"], "exclude_nyuv2": "all"}}
    )
    assert run_dataset(strict, "train", train=True).datasets[1].excluded_nyuv2 == 6  # type: ignore[attr-defined]
    # the test split is the eval dataset's alone
    test = run_dataset(mixture_config(data), "test")
    assert len(test) == 1 and dataset_sources(test)[0]["name"] == "test654.zip"  # type: ignore[arg-type]
    assert steps_per_epoch(mixture_config(data)) == 2


def test_table_footnotes_name_each_part_and_the_guard(data: Path) -> None:
    from suite.tables import data_note

    records = dataset_sources(run_dataset(mixture_config(data), "train", train=True))
    runs = plan(spec())[:1]
    note = data_note(runs, {runs[0].run_id: {"train": records}})
    assert note is not None and note.startswith("Data read by the runs: train: nyuv2-zip: train_reduced05.zip (2 items")
    assert "sunrgbd: SUNRGBD (5 items, 45.5% of an epoch, 3 kv1/NYUdata frames left out (test)" in note
    assert "sunrgbd: splits.mat (3 items, 45.5% of an epoch, NYUv2 test frames left out of SUN RGB-D" in note


def test_leakage_guard_without_splits_mat_says_what_to_do(data: Path, tmp_path: Path) -> None:
    nyu = tmp_path / "nyu"
    nyu.mkdir()
    for name in ("train_reduced05.zip", "test654.zip"):
        (nyu / name).write_bytes((data / "nyu" / name).read_bytes())
    config = mixture_config(data)
    config = config.replace(dataset_options={**config.dataset_options, "nyuv2-zip": {"root": str(nyu)}})
    with pytest.raises(DataError, match=r"needs NYUv2's official splits\.mat.*nyuv2_splits.*exclude_nyuv2 = \"all\""):
        run_dataset(config, "train", train=True)
    assert missing_guard_files(config) == [
        f"leakage guard: NYUv2's splits.mat not found: {nyu / 'splits.mat'} (needed to leave NYUv2's test frames out "
        'of SUN RGB-D; or set dataset_options.sunrgbd.nyuv2_splits, or dataset_options.sunrgbd.exclude_nyuv2 = "all")'
    ]
    assert missing_guard_files(mixture_config(data)) == []
    assert missing_guard_files(mixture_config(data, eval_dataset="matterport3d")) == []


def test_a_weighted_mixture_run_killed_mid_run_resumes_exactly(data: Path, tmp_path: Path) -> None:
    """As the trainer's resume test, on a weighted mixture of three miniatures, killed in its second epoch (so the
    resumed run must select epoch 1's items of the weighted parts again)."""
    config = mixture_config(data, dataset_weights={"nyuv2-zip": 1.0, "sunrgbd": 1.0, "matterport3d": 2.0})
    # 11 items: 3 + 3 + 5 per epoch -> 2 batches of 4, one period each (ends after batches 0 and 1)
    reference = fit(config, seed=1, workdir=tmp_path / "uninterrupted")
    assert reference.environment["data_sources"]["train"][0]["dataset"] == "nyuv2-zip"
    assert fit(config, seed=1).metrics == reference.metrics  # deterministic
    workdir = tmp_path / "killed"
    workdir.mkdir()
    proc = train_until_killed(config, workdir, step=4)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "data: leakage guard: left out 3 SUN RGB-D frames" in proc.stderr  # the run's log says it
    ckpt = load_checkpoint(workdir / CHECKPOINT_NAME)
    assert (ckpt["epoch"], ckpt["next_batch"]) == (1, 1)  # killed at step 4, after epoch 1's first period
    resumed = fit(config, seed=1, workdir=workdir)
    assert resumed.resumed_from == {"epoch": 1, "batch": 1, "step": 3}
    assert _fingerprint(resumed) == _fingerprint(reference)


# ------------------------------------------------------------------------------------------ configs and specs


def test_one_dataset_configs_keep_their_canonical_json() -> None:
    before = {f for f in RunConfig.__dataclass_fields__ if f not in ("dataset_weights", "eval_dataset")}
    assert set(TINY_CONFIG.to_dict()) == before
    assert TINY_CONFIG.replace(eval_dataset="synthetic") == TINY_CONFIG  # naming the one dataset changes nothing
    config = mixture_config(Path("/data"), dataset_weights={"nyuv2-zip": 2, "sunrgbd": 1, "matterport3d": 1})
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and run_id_for(again, 0) == run_id_for(config, 0)
    assert config.to_dict()["dataset"] == ["nyuv2-zip", "sunrgbd", "matterport3d"]
    assert config.replace(dataset_weights=[2, 1, 1]) == config  # a list is in the order of dataset (train CONFIG.toml)
    ids = {
        run_id_for(c, 0)
        for c in (
            config,
            config.replace(dataset_weights=None),
            config.replace(eval_dataset="matterport3d"),
            config.replace(dataset_weights={"nyuv2-zip": 1, "sunrgbd": 1, "matterport3d": 1}),
        )
    }
    assert len(ids) == 4  # weights and the eval dataset are part of a mixture's id
    with pytest.raises(ConfigError, match="needs eval_dataset"):
        TINY_CONFIG.replace(dataset=("synthetic", "middlebury"))
    with pytest.raises(ConfigError, match="dataset_weights is for a mixture"):
        TINY_CONFIG.replace(dataset_weights={"synthetic": 1.0})


SPEC = """
[spec]
name = "mix"
[defaults]
encoder = "test_resnet"
decoder_width = 32
input_size = [32, 32]
dataset = ["nyuv2-zip", "sunrgbd", "matterport3d"]
{eval}
protocol = "nyu-lee-kim"
val_split = false
{extra}
[defaults.dataset_options]
nyuv2-zip = {{ root = "data/nyu" }}
sunrgbd = {{ root = "data/sunrgbd" }}
matterport3d = {{ root = "data/matterport3d" }}
[[groups]]
name = "a"
[[groups.arms]]
losses = "L_D"
{arm}
"""


def spec(extra: str = "", arm: str = "", eval_line: str = 'eval_dataset = "nyuv2-zip"') -> Spec:
    return loads_spec(SPEC.format(eval=eval_line, extra=extra, arm=arm), source="mix.toml")


def test_a_spec_names_a_mixture_its_weights_and_its_eval_dataset() -> None:
    loaded = spec("dataset_weights = { nyuv2-zip = 2, sunrgbd = 1, matterport3d = 1 }")
    config = next(loaded.arms()).config
    assert config.dataset == ("nyuv2-zip", "sunrgbd", "matterport3d") and config.eval_dataset == "nyuv2-zip"
    assert config.dataset_weights == {"nyuv2-zip": 2.0, "sunrgbd": 1.0, "matterport3d": 1.0}
    assert spec("dataset_weights = [2, 1, 1]").groups[0].arms[0].config == config
    assert plan(loaded)[0].describe()["dataset"] == "nyuv2-zip + sunrgbd + matterport3d"
    # a list of lists in an arm is a grid of mixtures; an arm's smaller mixture drops the other tables
    grid = spec(arm='dataset = [["nyuv2-zip", "sunrgbd"], ["nyuv2-zip", "matterport3d"]]')
    first, second = (arm.config for arm in grid.arms())
    assert set(first.dataset_options) == {"nyuv2-zip", "sunrgbd"} and second.dataset == ("nyuv2-zip", "matterport3d")


@pytest.mark.parametrize(
    ("extra", "arm", "eval_line", "message"),
    [
        (
            "",
            'dataset = ["nyuv2-zip", "sunrgdb"]',
            None,
            r"mix\.toml: groups\[0\]\.arms\[0\]\.dataset\[1\]: unknown dataset 'sunrgdb' \(did you mean 'sunrgbd'\?\)",
        ),
        ("dataset_weights = [2, 1]", "", None, r"mix\.toml: defaults\.dataset_weights: 2 weights for the 3 datasets"),
        (
            "dataset_weights = { nyuv2-zip = 1, sunrgbd = 1, nyu = 2 }",
            "",
            None,
            r"defaults\.dataset_weights: .*nyu not in the mixture; no weight for matterport3d",
        ),
        (
            "dataset_weights = { nyuv2-zip = 1, sunrgbd = 0, matterport3d = 1 }",
            "",
            None,
            r"defaults\.dataset_weights\.sunrgbd: a dataset weight must be a number > 0",
        ),
        (
            "",
            "",
            "",
            r"mix\.toml: defaults\.dataset: a mixture \(nyuv2-zip \+ sunrgbd \+ matterport3d\) needs eval_dataset",
        ),
        ("", "", 'eval_dataset = "nyu2"', r"defaults\.eval_dataset: unknown dataset 'nyu2'"),
        ("", 'dataset = ["sunrgbd", "sunrgbd"]', None, r"arms\[0\]\.dataset: a mixture names each dataset once"),
        (
            "",
            'dataset = "nyuv2-zip"\ndataset_weights = [1]',
            None,
            r"arms\[0\]\.dataset_weights: dataset_weights is for a mixture",
        ),
        (
            "",
            'dataset_options = { root = "x" }',
            None,
            r"arms\[0\]\.dataset_options\.root: a mixture's dataset_options hold one table per dataset",
        ),
    ],
)
def test_bad_mixtures_fail_at_load_with_the_key_path(extra: str, arm: str, eval_line: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec(extra, arm, 'eval_dataset = "nyuv2-zip"' if eval_line is None else eval_line)


def test_the_shipped_mixture_spec_checks_for_the_guards_splits_file() -> None:
    from suite.spec import check_files, load_spec

    problems = check_files(load_spec(Path(__file__).parent.parent / "specs" / "table5_mixture.toml"))
    assert any(
        "dataset_options.sunrgbd: leakage guard: NYUv2's splits.mat not found: data/nyu/splits.mat" in p
        for p in problems
    )
    assert {p.split(": ")[1] for p in problems} >= {
        "dataset_options.nyuv2-zip",
        "dataset_options.sunrgbd",
        "dataset_options.matterport3d",
    }
