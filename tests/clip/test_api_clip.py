"""The user API: splatcodec.clip.load(...).encode_splats / encode_text / encode_image, errors, lazy import."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import splatcodec
from splatcodec.clip import CheckpointError, ClipInputError, load
from splatcodec.clip.data import image_folder, load_pixels, per_class_subset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gs_model(contrastive_run):
    return load(contrastive_run / "checkpoint.pt")


@pytest.fixture(scope="module")
def files(tmp_path_factory, cifar_test):
    """Six CIFAR test images as PNG paths and their .gsplat files (16 Gaussians)."""
    items = per_class_subset(image_folder(cifar_test), 1).items[:6]
    pixels = load_pixels(items, 32)
    folder = tmp_path_factory.mktemp("gsplat")
    paths = []
    for i, px in enumerate(pixels):
        path = folder / f"img{i}.gsplat"
        path.write_bytes(splatcodec.encode(px, num_gaussians=16, effort=1, threads=1))
        paths.append(path)
    return [it.image for it in items], paths, pixels


def test_encode_splats_takes_splats_bytes_and_paths_alike(gs_model, files):
    from splatcodec.codec.api import decode_splats

    _, paths, _ = files
    blobs = [p.read_bytes() for p in paths]
    by_path = gs_model.encode_splats([str(p) for p in paths])
    assert by_path.shape == (6, gs_model.embed_dim) and by_path.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(by_path, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(gs_model.encode_splats(blobs), by_path)
    np.testing.assert_array_equal(gs_model.encode_splats(paths), by_path)
    mixed = gs_model.encode_splats([decode_splats(blobs[0]), blobs[1], str(paths[2])])
    np.testing.assert_allclose(mixed, by_path[:3], atol=1e-6)  # another batch: float sums may round apart
    one = gs_model.encode_splats(blobs[3])
    assert one.shape == (1, gs_model.embed_dim)
    # Batching (and the padding it brings) does not change an image's embedding.
    np.testing.assert_allclose(gs_model.encode_splats(blobs, batch_size=1), by_path, atol=1e-5)
    t = gs_model.encode_splats(blobs, return_tensor=True)
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.from_numpy(by_path))
    # Different images get different embeddings.
    assert np.abs(by_path[0] - by_path[1]).max() > 1e-3


def test_encode_text_and_image(gs_model, files):
    images, _, pixels = files
    text = gs_model.encode_text(["a photo of a cat.", "a photo of a ship."])
    assert text.shape == (2, gs_model.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(gs_model.encode_text("a photo of a cat."), text[:1], atol=1e-6)
    from_paths = gs_model.encode_image(images)
    np.testing.assert_allclose(gs_model.encode_image(pixels), from_paths, atol=1e-6)
    np.testing.assert_allclose(gs_model.encode_image(pixels[2]), from_paths[2:3], atol=1e-6)
    big = np.repeat(np.repeat(pixels[0], 4, axis=0), 4, axis=1)  # any size: resized to the model's input
    assert gs_model.encode_image(big).shape == (1, gs_model.embed_dim)
    made = gs_model.gaussians_from_images([pixels[0]], cache_dir=None)
    assert made[0].num_gaussians == gs_model.encode_settings.num_gaussians


def test_input_errors_are_our_own(gs_model, tmp_path):
    for bad in ([], [3], 3.5, [b"not a gsplat file"], [str(tmp_path / "absent.gsplat")]):
        with pytest.raises(ClipInputError):
            gs_model.encode_splats(bad)
    for bad in (np.zeros((4, 4, 4, 4, 3), np.uint8), np.zeros((8, 8, 5), np.uint8), [], "no-such-image.png"):
        with pytest.raises(ClipInputError):
            gs_model.encode_image(bad)
    for bad in ([], [1, 2], ["ok", None]):
        with pytest.raises(ClipInputError):
            gs_model.encode_text(bad)
    with pytest.raises(ClipInputError):
        gs_model.encode_splats([b"x"], batch_size=0)
    with pytest.raises(ClipInputError):
        gs_model.to("no-such-device")


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError):
        load(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load(junk)
    torch.save({"something": "else"}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError):
        load(tmp_path / "foreign.pt")


def test_device_argument(contrastive_run, files):
    model = load(contrastive_run / "checkpoint.pt", device="cpu")
    assert str(model.device) == "cpu" and "ClipModel" in repr(model)
    with pytest.raises(ClipInputError):
        load(contrastive_run / "checkpoint.pt", device="nonsense")


def test_import_without_torch_names_the_extra_and_splatcodec_never_imports_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import splatcodec\n"
            "try:\n    import splatcodec.clip\nexcept ImportError as e:\n"
            "    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert "MissingExtraError" in out.stdout and "pip install 'splatcodec[clip]'" in out.stdout, out.stderr
    code = ("import sys; sys.modules['torch'] = None\n"
            "from splatcodec.cli import main\nmain(['clip', 'zeroshot', '--checkpoint', 'x.pt', '.'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 1 and out.stderr.strip() == (
        "splatcodec: error: splatcodec.clip needs PyTorch: pip install 'splatcodec[clip]'"), out.stderr
    code = "import sys, splatcodec, splatcodec.cli, splatcodec.clip; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
