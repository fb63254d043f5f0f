"""Small-image data for the small-image benchmark and the built-in priors: CIFAR-10 and Flickr8k crops.

Splits (so that priors are never trained on what the benchmark reports): CIFAR-10 *training*
images and the first 250 Flickr8k files (sorted by name) train priors; CIFAR-10 *test* images and
Flickr8k files 250..499 are benchmark material.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .common import DATA_DIR as DATA
from .common import load_rgb

FLICKR_TRAIN = range(0, 250)
FLICKR_TEST = range(250, 500)


def cifar_paths(split: str, per_class: int, offset: int = 0) -> list[Path]:
    """``per_class`` images of every class (sorted by name, from ``offset``); split 'train' or 'test'."""
    root = DATA / ("cifar10_train_20k" if split == "train" else "cifar10_test")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    return [p for c in classes for p in sorted((root / c).glob("*.png"))[offset:offset + per_class]]


__all__ = ["FLICKR_TEST", "FLICKR_TRAIN", "center_crop", "cifar_paths", "flickr_paths", "load_rgb"]


def flickr_paths(indices: range) -> list[Path]:
    files = sorted((DATA / "flickr8k_500" / "images").glob("*.jpg"))
    return [files[i] for i in indices if i < len(files)]


def center_crop(path: Path, size: int = 224) -> np.ndarray:
    """Resize the short side to ``size`` (bicubic), then crop the centre ``size`` x ``size``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = size / min(w, h)
        im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)))
