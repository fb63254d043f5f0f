"""Datasets, splits, prompt templates and the Gaussian cache of splatcodec.clip (no model, no torch)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from splatcodec.clip import data, prompts
from splatcodec.clip.cache import GaussianCache, GaussianSettings, gaussians_for, image_hash
from splatcodec.clip.errors import ClipInputError

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"

CIFAR_TEST = DATA_DIR / "cifar10_test"
FLICKR = DATA_DIR / "flickr8k_500"


@pytest.fixture(scope="module")
def cifar() -> data.Dataset:
    if not (CIFAR_TEST / "classes.txt").is_file():
        pytest.fail(f"test data missing: {CIFAR_TEST} (see ../shared/data/README.md)")
    return data.image_folder(CIFAR_TEST)


def test_image_folder_reads_classes_in_classes_txt_order(cifar):
    names = (CIFAR_TEST / "classes.txt").read_text().split()
    assert cifar.classnames == names
    assert len(cifar) == 10_000 and cifar.labelled and not cifar.captioned
    assert np.bincount(cifar.labels()).tolist() == [1000] * 10
    item = cifar.items[0]
    assert item.key.startswith("airplane/") and item.image.endswith(".png") and item.label == 0


def test_classes_and_exclusions(cifar):
    two = data.image_folder(CIFAR_TEST, classes=["ship", "cat"])
    assert two.classnames == ["ship", "cat"] and set(two.labels().tolist()) == {0, 1}
    eight = data.image_folder(CIFAR_TEST, exclude=["cat", "dog"])
    assert eight.classnames == [c for c in cifar.classnames if c not in ("cat", "dog")]
    with pytest.raises(ClipInputError, match="no such classes"):
        data.image_folder(CIFAR_TEST, classes=["unicorn"])


def test_per_class_subsets_are_nested_and_balanced(cifar):
    small, large = data.per_class_subset(cifar, 3), data.per_class_subset(cifar, 7)
    assert np.bincount(small.labels()).tolist() == [3] * 10
    assert {it.key for it in small.items} < {it.key for it in large.items}


def test_split_is_disjoint_stratified_and_independent_of_order(cifar):
    sub = data.per_class_subset(cifar, 40)
    train, val = data.split(sub, 0.25)
    assert not set(train) & set(val) and sorted(train + val) == list(range(len(sub)))
    assert np.bincount(sub.labels()[val]).tolist() == [10] * 10
    shuffled = sub.subset(np.random.default_rng(1).permutation(len(sub)))
    _, val2 = data.split(shuffled, 0.25)
    assert {shuffled.items[i].key for i in val2} == {sub.items[i].key for i in val}
    assert data.split(sub, 0.0)[1] == []
    with pytest.raises(ClipInputError):
        data.split(sub, 1.0)


def test_captions_csv_groups_captions_by_image_and_splits_by_image():
    if not (FLICKR / "captions.csv").is_file():
        pytest.fail(f"test data missing: {FLICKR}")
    caps = data.captions_csv(FLICKR / "captions.csv")
    assert len(caps) == 500 and caps.captioned and not caps.labelled
    assert all(len(it.captions) == 5 for it in caps.items)
    train, val = data.split(caps, 0.2)
    assert len(val) == 100 and not {caps.items[i].key for i in train} & {caps.items[i].key for i in val}
    assert data.open_dataset(FLICKR / "captions.csv").kind == "captions"


def test_captions_csv_errors(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("name,words\na.png,hello\n")
    with pytest.raises(ClipInputError, match="header"):
        data.captions_csv(bad)
    bad.write_text("image,caption\nmissing.png,hello\n")
    with pytest.raises(ClipInputError, match="not found"):
        data.captions_csv(bad)
    with pytest.raises(ClipInputError):
        data.open_dataset(tmp_path / "nothing-here")


def test_webdataset_shards_with_images_captions_and_gsplat(tmp_path, cifar):
    import webdataset as wds

    import splatcodec

    items = data.per_class_subset(cifar, 1).items[:6]
    pixels = data.load_pixels(items, 32)
    blob = splatcodec.encode(pixels[0], num_gaussians=16, effort=1, threads=1)
    for shard in range(2):
        with wds.TarWriter(str(tmp_path / f"part-{shard:03d}.tar")) as sink:
            for i in range(3 * shard, 3 * shard + 3):
                with open(items[i].image, "rb") as fh:
                    sample = {"__key__": f"s{i:04d}", "png": fh.read(), "cls": str(items[i].label).encode(),
                              "txt": f"a photo of a thing\nsecond caption {i}".encode()}
                if i == 0:
                    sample["gsplat"] = blob
                sink.write(sample)
    (tmp_path / "classes.txt").write_text("\n".join(cifar.classnames))
    ds = data.open_dataset(tmp_path)
    assert ds.kind == "webdataset" and len(ds) == 6 and ds.labelled and ds.captioned
    assert ds.classnames == cifar.classnames
    assert [it.label for it in ds.items] == [it.label for it in items]
    assert ds.items[4].captions == ("a photo of a thing", "second caption 4")
    assert ds.items[0].gsplat == blob and ds.items[1].gsplat is None
    np.testing.assert_array_equal(data.load_pixels(ds.items, 32), pixels)
    brace = data.open_dataset(str(tmp_path / "part-{000..001}.tar"))
    assert [it.key for it in brace.items] == [it.key for it in ds.items]
    (tmp_path / "part-002.tar").write_bytes(b"this is not a tar file" * 40)
    with pytest.raises(ClipInputError):
        data.open_dataset(tmp_path)


def test_prepare_image_crops_the_centre_and_makes_rgb():
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, 10:30] = 200
    out = data.prepare_image(wide, 20)
    assert out.shape == (20, 20, 3) and (out == 200).all()
    gray = data.prepare_image(np.full((64, 48), 7, np.uint8), 32)
    assert gray.shape == (32, 32, 3) and (gray == 7).all()


def test_prompt_templates(tmp_path):
    assert prompts.prompts(["sea_lion"], ["a {} here.", "{}!"]) == [["a sea lion here.", "sea lion!"]]
    path = tmp_path / "t.txt"
    path.write_text("# comment\n\nphoto of {}\n")
    assert prompts.load_templates(path) == ["photo of {}"]
    path.write_text("no placeholder\n")
    with pytest.raises(ClipInputError, match="exactly once"):
        prompts.load_templates(path)
    with pytest.raises(ClipInputError):
        prompts.load_templates(tmp_path / "absent.txt")


def test_gaussian_settings_validation_and_round_trip():
    s = GaussianSettings(quality=40, effort=2)
    assert GaussianSettings.from_dict(s.to_dict()) == s
    assert s.replace(target_bytes=200).quality is None
    assert s.key() != s.replace(effort=3).key() and s.key() == GaussianSettings(quality=40, effort=2).key()
    for bad in (dict(target_bpp=1.0, num_gaussians=5), dict(quality=50, target_bytes=100), dict(mode="fit"),
                dict(mode="zip"), dict(num_gaussians=-1)):
        with pytest.raises(ClipInputError):
            GaussianSettings(**bad)
    with pytest.raises(ClipInputError, match="unknown"):
        GaussianSettings.from_dict({"qualty": 3})


def _cifar_pixels(cifar, n):
    return data.load_pixels(data.per_class_subset(cifar, 1).items[:n], 32)


def test_encode_cache_counts_real_bytes_and_reuses_entries(tmp_path, cifar):
    from splatcodec.codec.api import decode_splats

    import splatcodec

    pixels = _cifar_pixels(cifar, 4)
    settings = GaussianSettings(num_gaussians=24, effort=1)
    cache = GaussianCache(settings, tmp_path, workers=2)
    first = cache.get(list(pixels))
    assert cache.misses == 4 and cache.hits == 0
    direct = splatcodec.encode(pixels[2], num_gaussians=24, effort=1, threads=1)  # the codec's own levels
    assert first[2].nbytes == len(direct)
    np.testing.assert_array_equal(first[2].splats.packed(), decode_splats(direct).packed())
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len([p for p in files if p.suffix == ".gsplat"]) == 4 and not [p for p in files if ".tmp" in p.name]
    again = GaussianCache(settings, tmp_path).get(list(pixels))
    assert [e.nbytes for e in again] == [e.nbytes for e in first]
    np.testing.assert_array_equal(again[1].splats.packed(), first[1].splats.packed())
    # A damaged entry is made again; other settings use another folder.
    entry = tmp_path / settings.key()[:16] / image_hash(pixels[0])[:2] / f"{image_hash(pixels[0])}.gsplat"
    entry.write_bytes(b"GSPL broken")
    healed = GaussianCache(settings, tmp_path)
    assert healed.get(list(pixels[:1]))[0].nbytes == first[0].nbytes and healed.misses == 1
    GaussianCache(settings.replace(num_gaussians=8), tmp_path).get(list(pixels[:1]))
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_fit_cache_and_gsplat_items(tmp_path, cifar):
    pixels = _cifar_pixels(cifar, 3)
    cache = GaussianCache(GaussianSettings(mode="fit", num_gaussians=12, iterations=50), tmp_path)
    fitted = cache.get(list(pixels))
    assert all(e.nbytes is None and e.splats.num_gaussians <= 12 for e in fitted)
    again = GaussianCache(cache.settings, tmp_path).get(list(pixels))
    np.testing.assert_array_equal(again[0].splats.packed(), fitted[0].splats.packed())
    import splatcodec

    blob = splatcodec.encode(pixels[1], num_gaussians=10, effort=1, threads=1)
    items = [data.Item("a", image="unused"), data.Item("b", gsplat=blob)]
    out = gaussians_for(items, pixels[:2], cache)
    assert out[1].nbytes == len(blob) and out[0].nbytes is None
    with pytest.raises(ClipInputError):
        gaussians_for([data.Item("c", gsplat=b"not a gsplat")], None, None)
    with pytest.raises(ClipInputError, match="no .gsplat"):
        gaussians_for([data.Item("d", image="x.png")], None, None)
