"""Gaussians for images: from real ``.gsplat`` files, or made on the fly and cached on disk.

Two ways to make them (:class:`GaussianSettings.mode`):

* ``"encode"``: :func:`splatcodec.encode` at a stated rate (quality, bits per pixel, bytes per image or a
  Gaussian count), then the Gaussians the decoder gets back (:func:`decode_splats`): what a receiver
  of the file sees, with its real byte count.
* ``"fit"``: :func:`splatcodec.fit_batch` with ``num_gaussians`` and ``iterations``, batched in one
  native call: unquantised Gaussians, no file and so no byte count (cheaper; for experiments).

The cache stores one file per image under ``<dir>/<settings hash>/<image hash[:2]>/<image hash>``:
``.gsplat`` bytes (encode) or a ``.npy`` of the packed Gaussians (fit). The settings hash covers every
setting and the splatcodec version, the image hash the prepared pixels, so a changed setting or image
never reads a stale entry. Writes are atomic (temporary file + rename), so concurrent runs and
interrupted runs leave only complete entries.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import SplatcodecError
from ..splats import Splats
from .errors import ClipInputError

#: Bump when the cached representation changes.
CACHE_FORMAT = 1
MODES = ("encode", "fit")


@dataclass(frozen=True)
class GaussianSettings:
    """How images become Gaussians. Rate (encode mode): at most one of ``target_bpp``, ``target_bytes``
    (per image, turned into bits per pixel for its size) and ``num_gaussians``; ``quality`` alone or with
    ``num_gaussians``; none of them: the codec's default quality. Fit mode needs ``num_gaussians``."""

    mode: str = "encode"
    quality: float | None = None
    target_bpp: float | None = None
    target_bytes: int | None = None
    num_gaussians: int | None = None
    effort: int = 4
    levels: int | None = None  # progressive groups; None: the codec's choice (one for images up to 2^18 px)
    iterations: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ClipInputError(f"Gaussian mode must be one of {MODES}, got {self.mode!r}")
        rates = [n for n in ("target_bpp", "target_bytes", "num_gaussians") if getattr(self, n) is not None]
        if len(rates) > 1:
            raise ClipInputError(f"give at most one of target_bpp, target_bytes, num_gaussians (got {rates})")
        if self.quality is not None and rates and rates != ["num_gaussians"]:
            raise ClipInputError("quality cannot be combined with target_bpp or target_bytes")
        if self.mode == "fit" and (self.num_gaussians is None or rates != ["num_gaussians"] or self.quality is not None):
            raise ClipInputError("fit mode takes num_gaussians (and iterations) only")
        for name in ("target_bpp", "target_bytes", "num_gaussians", "quality"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value > 0 or
                                          name == "quality" and value == 0):
                raise ClipInputError(f"{name} must be positive, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (stored in checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GaussianSettings":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, dict):
            raise ClipInputError(f"Gaussian settings must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ClipInputError(f"unknown Gaussian settings: {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "GaussianSettings":
        """A copy with ``changes`` (``None`` values are ignored); a new rate replaces the old one."""
        changes = {k: v for k, v in changes.items() if v is not None}
        base = self.to_dict()
        if any(k in changes for k in ("target_bpp", "target_bytes", "num_gaussians", "quality")):
            for k in ("target_bpp", "target_bytes", "num_gaussians", "quality"):
                base[k] = None
        base.update(changes)
        return GaussianSettings(**base)

    def key(self) -> str:
        """Hex digest of the settings, the cache format and the splatcodec version."""
        from .. import __version__

        blob = json.dumps({"settings": self.to_dict(), "format": CACHE_FORMAT, "version": __version__},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def describe(self) -> str:
        """A short human label, e.g. ``encode q=50 effort=4`` or ``fit 64 Gaussians x 500 it``."""
        if self.mode == "fit":
            return f"fit {self.num_gaussians} Gaussians x {self.iterations} it"
        rate = [f"{k}={v}" for k, v in (("q", self.quality), ("bpp", self.target_bpp),
                                        ("bytes", self.target_bytes), ("N", self.num_gaussians)) if v is not None]
        return f"encode {' '.join(rate) or 'default quality'} effort={self.effort}"


@dataclass
class Encoded:
    """Gaussians of one image and, when they come from a real file, that file's size in bytes."""

    splats: Splats
    nbytes: int | None


def image_hash(pixels: np.ndarray) -> str:
    """SHA-256 of an image's shape, dtype and pixels."""
    pixels = np.ascontiguousarray(pixels)
    digest = hashlib.sha256(f"{pixels.shape}{pixels.dtype}".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def default_cache_dir() -> str:
    """``$SPLATCODEC_CLIP_CACHE``, else ``~/.cache/splatcodec/clip``."""
    return os.environ.get("SPLATCODEC_CLIP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                   "splatcodec", "clip")


def decode_gsplat(data: bytes, name: str = ".gsplat data") -> Encoded:
    """The Gaussians of ``.gsplat`` bytes, with their byte count; bad data -> :class:`ClipInputError`."""
    from ..codec.api import decode_splats

    try:
        return Encoded(decode_splats(bytes(data)), len(data))
    except SplatcodecError as exc:
        raise ClipInputError(f"{name}: {exc}") from None


def read_gsplat(source: str | bytes | os.PathLike) -> Encoded:
    """:func:`decode_gsplat` of a file path or of bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_gsplat(bytes(source))
    try:
        with open(source, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ClipInputError(f"{source}: {exc.strerror or exc}") from None
    return decode_gsplat(data, str(source))


class GaussianCache:
    """Makes (and remembers) the Gaussians of prepared images for one :class:`GaussianSettings`.

    ``directory=None`` keeps nothing on disk. ``workers`` encodes that many images side by side (each
    encode single-threaded, so results do not depend on the worker count).
    """

    def __init__(self, settings: GaussianSettings, directory: str | os.PathLike | None = None,
                 workers: int | None = None) -> None:
        self.settings = settings
        self.directory = Path(directory) / settings.key()[:16] if directory is not None else None
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.hits = 0
        self.misses = 0

    def _path(self, digest: str) -> Path | None:
        if self.directory is None:
            return None
        ext = ".gsplat" if self.settings.mode == "encode" else ".npy"
        return self.directory / digest[:2] / f"{digest}{ext}"

    def _read(self, path: Path | None, width: int, height: int) -> Encoded | None:
        if path is None or not path.is_file():
            return None
        try:
            data = path.read_bytes()
            if self.settings.mode == "encode":
                return decode_gsplat(data, str(path))
            return Encoded(Splats.from_packed(np.load(io.BytesIO(data), allow_pickle=False), width, height), None)
        except (OSError, ValueError, SplatcodecError):
            return None  # an unreadable entry is made again (and overwritten)

    def _write(self, path: Path | None, data: bytes) -> None:
        if path is None:
            return
        from ..fileio import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        if not (self.directory / "settings.json").exists():  # type: ignore[operator]
            atomic_write(self.directory / "settings.json",  # type: ignore[operator]
                         json.dumps(self.settings.to_dict(), indent=1).encode())
        atomic_write(path, data)

    def _encode_one(self, pixels: np.ndarray) -> bytes:
        from ..codec.api import encode

        s = self.settings
        h, w = pixels.shape[:2]
        bpp = s.target_bpp if s.target_bytes is None else 8.0 * s.target_bytes / (w * h)
        try:
            return encode(pixels, s.quality, target_bpp=bpp, num_gaussians=s.num_gaussians, effort=s.effort,
                          levels=s.levels, seed=s.seed, threads=1)  # type: ignore[return-value]
        except SplatcodecError as exc:
            raise ClipInputError(f"cannot encode a {w}x{h} image with {s.describe()}: {exc}") from None

    def get(self, images: Sequence[np.ndarray],
            progress: Callable[[int], None] | None = None) -> list[Encoded]:
        """The Gaussians of each uint8 (H, W, 3) image, in order (cached ones read, the others made)."""
        out: list[Encoded | None] = []
        todo: list[int] = []
        digests = [image_hash(im) for im in images]
        for i, (image, digest) in enumerate(zip(images, digests)):
            found = self._read(self._path(digest), image.shape[1], image.shape[0])
            out.append(found)
            if found is None:
                todo.append(i)
        self.hits += len(images) - len(todo)
        self.misses += len(todo)
        if progress is not None and len(images) - len(todo):
            progress(len(images) - len(todo))
        chunk = 256
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            if self.settings.mode == "encode":
                with ThreadPoolExecutor(self.workers) as pool:
                    blobs = list(pool.map(self._encode_one, [images[i] for i in part]))
                for i, blob in zip(part, blobs):
                    try:
                        out[i] = decode_gsplat(blob)
                    except ClipInputError as exc:  # an encoder bug: say which image and settings
                        raise ClipInputError(f"splatcodec.encode ({self.settings.describe()}) made a file its "
                                             f"decoder rejects for image {digests[i][:16]}: {exc}") from None
                    self._write(self._path(digests[i]), blob)
            else:
                from ..fitting import fit_batch

                try:
                    fitted = fit_batch([images[i] for i in part], int(self.settings.num_gaussians or 0),
                                       self.settings.iterations, seed=self.settings.seed)
                except SplatcodecError as exc:
                    raise ClipInputError(f"cannot fit with {self.settings.describe()}: {exc}") from None
                for i, splats in zip(part, fitted):
                    buf = io.BytesIO()
                    np.save(buf, splats.packed(), allow_pickle=False)  # type: ignore[union-attr]
                    self._write(self._path(digests[i]), buf.getvalue())
                    out[i] = Encoded(splats, None)  # type: ignore[arg-type]
            if progress is not None:
                progress(len(part))
        return out  # type: ignore[return-value]


def gaussians_for(items: Sequence[Any], pixels: np.ndarray | None, cache: GaussianCache | None,
                  progress: Callable[[int], None] | None = None) -> list[Encoded]:
    """Gaussians for dataset items: an item's own ``.gsplat`` when it has one (its bytes counted),
    else made from its prepared ``pixels[i]`` through ``cache``."""
    out: list[Encoded | None] = [None] * len(items)
    need = [i for i, it in enumerate(items) if it.gsplat is None]
    for i, it in enumerate(items):
        if it.gsplat is not None:
            out[i] = read_gsplat(it.gsplat)
    if need:
        if pixels is None or cache is None:
            raise ClipInputError(f"{items[need[0]].key} has no .gsplat and no way to make one was given")
        made = cache.get([pixels[i] for i in need], progress)
        for i, enc in zip(need, made):
            out[i] = enc
    return out  # type: ignore[return-value]
