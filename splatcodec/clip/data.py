"""Datasets for training and evaluation: an ImageFolder with class names, an image folder with a captions
CSV, or WebDataset tar shards; deterministic train/validation splits; pixels at the model's size.

Every dataset becomes a list of :class:`Item` s, each with a stable ``key`` (its path relative to the
dataset root, or the shard sample key). Splits and subsets are decided by SHA-256 of the key, never
by file order or a random generator, so they are the same on every machine and run:

* :func:`split` (train / validation): within each class (or over all images of a captions set),
  items are sorted by ``sha256("split:" + key)`` and the first ``round(fraction * n)`` are the
  validation set. The two sets are disjoint and stratified, and an image's captions never straddle
  them (a captions item is one image with all its captions).
* ``per_class`` subsets keep the first ``per_class`` items of each class in ``sha256("subset:" + key)``
  order, so a smaller subset is always contained in a larger one.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import ClipInputError

#: Image file extensions an ImageFolder or a captions set reads (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".gif")
GSPLAT_EXTENSION = ".gsplat"
#: WebDataset entry names read as an image, in order of preference.
WDS_IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class Item:
    """One image: its pixels (a path or encoded bytes), its ``.gsplat`` (path or bytes), label, captions."""

    key: str
    image: str | bytes | None = None
    gsplat: str | bytes | None = None
    label: int | None = None
    captions: tuple[str, ...] = ()


@dataclass
class Dataset:
    """Items plus what they mean: ``classnames`` for labelled data (index = label), ``kind`` and ``root``."""

    items: list[Item]
    kind: str
    root: str
    classnames: list[str] | None = None
    notes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labelled(self) -> bool:
        """Whether every item has a class label (zero-shot classification applies)."""
        return self.classnames is not None and all(it.label is not None for it in self.items)

    @property
    def captioned(self) -> bool:
        """Whether every item has at least one caption (retrieval applies)."""
        return bool(self.items) and all(it.captions for it in self.items)

    def subset(self, indices: Iterable[int]) -> "Dataset":
        """The items at ``indices`` (in that order), same class names."""
        return replace(self, items=[self.items[i] for i in indices])

    def labels(self) -> np.ndarray:
        """int64 labels of all items (labelled datasets only)."""
        if not self.labelled:
            raise ClipInputError(f"{self.root}: the dataset has no class labels")
        return np.array([it.label for it in self.items], np.int64)


def _hash01(salt: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big")


def _groups(dataset: Dataset) -> list[list[int]]:
    if dataset.labelled:
        by_label: dict[int, list[int]] = {}
        for i, it in enumerate(dataset.items):
            by_label.setdefault(int(it.label), []).append(i)  # type: ignore[arg-type]
        return [by_label[k] for k in sorted(by_label)]
    return [list(range(len(dataset.items)))]


def split(dataset: Dataset, val_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic, disjoint, stratified ``(train, validation)`` index lists (see the module doc)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ClipInputError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    train: list[int] = []
    val: list[int] = []
    for group in _groups(dataset):
        ordered = sorted(group, key=lambda i: _hash01("split", dataset.items[i].key))
        n_val = int(round(val_fraction * len(ordered)))
        val += ordered[:n_val]
        train += ordered[n_val:]
    return sorted(train), sorted(val)


def per_class_subset(dataset: Dataset, per_class: int) -> Dataset:
    """At most ``per_class`` items of each class (all items of an unlabelled set count as one class)."""
    if per_class < 1:
        raise ClipInputError(f"per_class must be >= 1, got {per_class}")
    keep: list[int] = []
    for group in _groups(dataset):
        keep += sorted(group, key=lambda i: _hash01("subset", dataset.items[i].key))[:per_class]
    return dataset.subset(sorted(keep))


# ------------------------------------------------------------------------------------ readers
def _read_classes_txt(root: Path) -> list[str] | None:
    path = root / "classes.txt"
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def image_folder(root: str | os.PathLike, *, classes: Sequence[str] | None = None,
                 exclude: Sequence[str] = ()) -> Dataset:
    """``root/<class>/<file>``: images and/or ``.gsplat`` files (an image and a ``.gsplat`` with the same
    stem are one item). Class order: ``root/classes.txt`` if present, else sorted folder names;
    ``classes`` keeps only those (in that order), ``exclude`` drops some (e.g. held-out classes)."""
    base = Path(root)
    if not base.is_dir():
        raise ClipInputError(f"{root}: not a directory")
    found = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    order = _read_classes_txt(base) or found
    missing = [c for c in order if c not in found]
    if missing:
        raise ClipInputError(f"{root}: classes.txt names folders that do not exist: {', '.join(missing[:5])}")
    if classes is not None:
        unknown = [c for c in classes if c not in order]
        if unknown:
            raise ClipInputError(f"{root}: no such classes: {', '.join(unknown)}")
        order = list(classes)
    order = [c for c in order if c not in set(exclude)]
    if not order:
        raise ClipInputError(f"{root}: no class folders (expected {root}/<class>/<image files>)")
    items: list[Item] = []
    for label, name in enumerate(order):
        entries: dict[str, dict[str, str]] = {}
        for path in sorted((base / name).iterdir()):
            ext = path.suffix.lower()
            kind = "gsplat" if ext == GSPLAT_EXTENSION else "image" if ext in IMAGE_EXTENSIONS else None
            if kind and path.is_file():
                entries.setdefault(path.stem, {})[kind] = str(path)
        for stem, files in entries.items():
            items.append(Item(f"{name}/{stem}", image=files.get("image"), gsplat=files.get("gsplat"), label=label))
    if not items:
        raise ClipInputError(f"{root}: the class folders hold no images or .gsplat files")
    return Dataset(items, "imagefolder", str(base), classnames=list(order))


def captions_csv(csv_path: str | os.PathLike, images: str | os.PathLike | None = None) -> Dataset:
    """A CSV with a header naming an image column (``image``/``filename``/``file``) and a caption column
    (``caption``/``text``); images are looked up in ``images`` (default: ``images/`` beside the CSV if
    it exists, else the CSV's folder). Rows of the same image become one item with several captions."""
    path = Path(csv_path)
    if not path.is_file():
        raise ClipInputError(f"{csv_path}: no such captions file")
    folder = Path(images) if images is not None else (
        path.parent / "images" if (path.parent / "images").is_dir() else path.parent)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = {f.lower().strip(): f for f in reader.fieldnames or []}
        image_col = next((fields[k] for k in ("image", "filename", "file", "path") if k in fields), None)
        text_col = next((fields[k] for k in ("caption", "text") if k in fields), None)
        if image_col is None or text_col is None:
            raise ClipInputError(f"{csv_path}: the header needs an image column (image/filename/file) and a "
                                 f"caption column (caption/text), got {reader.fieldnames}")
        captions: dict[str, list[str]] = {}
        for row in reader:
            name, text = (row.get(image_col) or "").strip(), (row.get(text_col) or "").strip()
            if name and text:
                captions.setdefault(name, []).append(text)
    if not captions:
        raise ClipInputError(f"{csv_path}: no (image, caption) rows")
    items = []
    for name in sorted(captions):
        file = folder / name
        if not file.is_file():
            raise ClipInputError(f"{csv_path}: image {name} not found in {folder}")
        kind = {"gsplat": str(file)} if file.suffix.lower() == GSPLAT_EXTENSION else {"image": str(file)}
        items.append(Item(name, captions=tuple(captions[name]), **kind))
    return Dataset(items, "captions", str(path))


def _shard_list(spec: str | Sequence[str]) -> list[str]:
    if not isinstance(spec, str):
        return [str(s) for s in spec]
    if os.path.isdir(spec):
        shards = sorted(glob.glob(os.path.join(spec, "*.tar")))
        if not shards:
            raise ClipInputError(f"{spec}: no .tar shards in the directory")
        return shards
    if "{" in spec:
        import braceexpand

        return list(braceexpand.braceexpand(spec))
    return sorted(glob.glob(spec)) if any(ch in spec for ch in "*?[") else [spec]


def webdataset_shards(spec: str | Sequence[str]) -> Dataset:
    """WebDataset tar shards (a directory of ``.tar``, a brace pattern ``data-{000..009}.tar``, a glob or a
    list). Each sample's ``.jpg``/``.png`` is its image, ``.txt`` its captions (one per line), ``.gsplat``
    its pre-encoded Gaussians and ``.cls`` an optional integer label; class names come from a
    ``classes.txt`` beside the shards. Samples are read into memory in shard order."""
    shards = _shard_list(spec)
    for shard in shards:
        if not os.path.isfile(shard):
            raise ClipInputError(f"{shard}: no such shard")
    try:
        import webdataset as wds
    except ImportError as exc:
        from .errors import MissingExtraError

        raise MissingExtraError("reading WebDataset shards needs webdataset: pip install 'splatcodec[clip]'") from exc
    items: list[Item] = []
    try:
        for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False):
            key = f"{os.path.basename(sample.get('__url__', ''))}/{sample['__key__']}"
            image = next((sample[k] for k in WDS_IMAGE_KEYS if k in sample), None)
            text = sample.get("txt")
            caps = tuple(line.strip() for line in bytes(text).decode("utf-8").splitlines() if line.strip()) \
                if text else ()
            label = int(bytes(sample["cls"]).decode().strip()) if "cls" in sample else None
            gsplat = bytes(sample["gsplat"]) if "gsplat" in sample else None
            if image is None and gsplat is None:
                raise ClipInputError(f"shard sample {key} has neither an image (.jpg/.png) nor a .gsplat")
            items.append(Item(key, image=bytes(image) if image is not None else None, gsplat=gsplat,
                              label=label, captions=caps))
    except ClipInputError:
        raise
    except Exception as exc:  # tar errors, decoding errors: one message naming the shards
        raise ClipInputError(f"cannot read WebDataset shards {shards[0]}...: {exc}") from None
    if not items:
        raise ClipInputError(f"{spec}: the shards hold no samples")
    classnames = _read_classes_txt(Path(shards[0]).parent)
    if any(it.label is not None for it in items) and classnames is None:
        classnames = [str(i) for i in range(max(it.label or 0 for it in items) + 1)]
    return Dataset(items, "webdataset", str(spec), classnames=classnames if
                   all(it.label is not None for it in items) else None)


def open_dataset(path: str | os.PathLike, *, images: str | os.PathLike | None = None,
                 classes: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> Dataset:
    """Any of the three kinds, by what ``path`` is: a ``.csv`` -> captions (``images`` = its image folder),
    ``.tar`` / a pattern / a directory of shards -> WebDataset, a directory of class folders -> ImageFolder."""
    spec = os.fspath(path)
    if spec.lower().endswith(".csv"):
        return captions_csv(spec, images)
    if spec.lower().endswith(".tar") or any(ch in spec for ch in "{*?[") or (
            os.path.isdir(spec) and glob.glob(os.path.join(spec, "*.tar"))):
        return webdataset_shards(spec)
    if os.path.isdir(spec):
        return image_folder(spec, classes=classes, exclude=exclude)
    raise ClipInputError(f"{spec}: not a dataset (expected a folder of class folders, a captions .csv, "
                         "or WebDataset .tar shards)")


# ------------------------------------------------------------------------------------ pixels
def prepare_image(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 (size, size, 3): grey made RGB, the central square crop, resized (bicubic) if needed."""
    from PIL import Image

    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    h, w = pixels.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = pixels[top:top + side, left:left + side]
    if side != size:
        crop = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BICUBIC))
    return np.ascontiguousarray(crop, np.uint8)


def read_pixels(source: str | bytes, size: int) -> np.ndarray:
    """An image file or encoded bytes, prepared as in :func:`prepare_image`."""
    from ..errors import SplatcodecError
    from ..image_io import read_image

    try:
        pixels, _ = read_image(io.BytesIO(source) if isinstance(source, bytes) else source)
    except SplatcodecError as exc:
        raise ClipInputError(str(exc)) from None
    return prepare_image(pixels, size)


def load_pixels(items: Sequence[Item], size: int) -> np.ndarray:
    """uint8 [N, size, size, 3] for the items (each must have an image)."""
    out = np.empty((len(items), size, size, 3), np.uint8)
    for i, item in enumerate(items):
        if item.image is None:
            raise ClipInputError(f"{item.key} has no image (only a .gsplat): pixels are needed here")
        out[i] = read_pixels(item.image, size)
    return out
