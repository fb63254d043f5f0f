"""The user-facing GS-CLIP model: ``splatcodec.clip.load(CKPT)`` -> :class:`ClipModel`.

    >>> import splatcodec.clip
    >>> model = splatcodec.clip.load("gs.pt")                       # device="cuda" where there is one
    >>> g = model.encode_splats(["a.gsplat", "b.gsplat"])           # (2, D) float32, L2-normalised
    >>> t = model.encode_text(["a photo of a cat.", "a photo of a dog."])
    >>> (g @ t.T).argmax(axis=1)                                    # which caption fits each file

Every ``encode_*`` takes a batch (a list) or one item, always returns ``[B, D]`` L2-normalised float32
numpy rows in input order (``return_tensor=True``: a torch tensor on the model's device), and runs in
chunks of ``batch_size``.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..splats import Splats
from .cache import GaussianCache, GaussianSettings, default_cache_dir, read_gsplat
from .data import prepare_image
from .errors import ClipInputError, require_torch


def _device(device: Any) -> Any:
    torch = require_torch()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ClipInputError(f"not a torch device: {device!r} ({exc})") from None


class ClipModel:
    """A loaded GS-CLIP checkpoint. Attributes: ``model`` (the :class:`GSClip` module, in eval mode),
    ``extra`` (what the checkpoint stores besides weights: stage, epoch, encode settings, templates,
    class names, ...), ``device``, ``embed_dim``, ``encode_settings`` (the :class:`GaussianSettings` a
    GS checkpoint was trained with, else ``None``), ``templates`` (prompt templates)."""

    def __init__(self, model: Any, extra: dict, device: Any = "cpu") -> None:
        from .prompts import DEFAULT_TEMPLATES

        self.model = model
        self.extra = dict(extra or {})
        self.device = _device(device)
        self.model.to(self.device)
        self.model.eval()
        settings = self.extra.get("encode_settings")
        self.encode_settings = GaussianSettings.from_dict(settings) if settings else None
        self.templates = list(self.extra.get("templates") or DEFAULT_TEMPLATES)

    @property
    def embed_dim(self) -> int:
        """Embedding width D."""
        return int(self.model.config.embed_dim)

    @property
    def image_size(self) -> int:
        """Side of the square RGB input of the teacher (images are centre-cropped and resized to it)."""
        return int(self.model.config.vision.image_size)

    def to(self, device: Any) -> "ClipModel":
        """Moves the model to ``device`` (e.g. ``"cuda"``); returns self."""
        self.device = _device(device)
        self.model.to(self.device)
        return self

    def _out(self, tensor: Any, return_tensor: bool) -> Any:
        return tensor if return_tensor else tensor.detach().float().cpu().numpy()

    # -- Gaussians ---------------------------------------------------------------------------------
    @staticmethod
    def _as_splats(item: Any) -> Splats:
        if isinstance(item, Splats):
            return item
        if isinstance(item, (bytes, bytearray, memoryview)):
            return read_gsplat(bytes(item)).splats
        if isinstance(item, (str, os.PathLike)):
            return read_gsplat(item).splats
        raise ClipInputError(f"encode_splats takes Splats, .gsplat bytes or paths, got {type(item).__name__}")

    def encode_splats(self, splats: Any, *, batch_size: int = 64, return_tensor: bool = False) -> Any:
        """GS embeddings of Splats, ``.gsplat`` bytes or ``.gsplat`` paths (one, or a list mixing them)."""
        from .evaluate import embed_splats

        items = [splats] if isinstance(splats, (Splats, bytes, bytearray, memoryview, str, os.PathLike)) \
            else list(splats) if isinstance(splats, Sequence) else None
        if not items:
            raise ClipInputError("encode_splats needs Splats, .gsplat bytes, a path, or a non-empty list of them")
        return self._out(embed_splats(self.model, [self._as_splats(x) for x in items], _batch(batch_size),
                                      self.device), return_tensor)

    def gaussians_from_images(self, images: Any, settings: GaussianSettings | None = None,
                              cache_dir: str | None = None) -> list[Splats]:
        """Images (arrays or paths) -> the Gaussians the GS path reads, made with ``settings`` (default:
        the checkpoint's encode settings) after the same centre crop and resize as the teacher's input."""
        settings = settings or self.encode_settings or GaussianSettings()
        cache = GaussianCache(settings, cache_dir if cache_dir is not None else default_cache_dir())
        return [e.splats for e in cache.get(list(self._prepare(images)))]

    # -- pixels and text ---------------------------------------------------------------------------
    def _prepare(self, images: Any) -> np.ndarray:
        from ..errors import SplatcodecError
        from ..image_io import as_array
        from .data import read_pixels

        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        elif isinstance(images, (str, os.PathLike, np.ndarray)) or not isinstance(images, Sequence):
            images = [images]
        if not images:
            raise ClipInputError("no images given")
        out = []
        for image in images:
            if isinstance(image, (str, os.PathLike)):
                out.append(read_pixels(os.fspath(image), self.image_size))
                continue
            try:
                out.append(prepare_image(as_array(image), self.image_size))
            except SplatcodecError as exc:
                raise ClipInputError(str(exc)) from None
        return np.stack(out)

    def encode_image(self, images: Any, *, batch_size: int = 64, return_tensor: bool = False) -> Any:
        """RGB teacher embeddings of images: uint8 (H, W, 3) / (B, H, W, 3) arrays, PIL images or paths
        (any size: centre-cropped to a square and resized to :attr:`image_size`)."""
        from .evaluate import embed_pixels

        return self._out(embed_pixels(self.model, self._prepare(images), _batch(batch_size), self.device),
                         return_tensor)

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 256, return_tensor: bool = False) -> Any:
        """Text embeddings of a list of strings (one string is taken as a list of one)."""
        torch = require_torch()
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ClipInputError("encode_text needs a non-empty list of strings")
        step = _batch(batch_size)
        with torch.no_grad():
            out = torch.cat([self.model.encode_text(texts[i:i + step]) for i in range(0, len(texts), step)])
        return self._out(torch.nn.functional.normalize(out.float(), dim=-1), return_tensor)

    def __repr__(self) -> str:
        c = self.model.config
        return (f"ClipModel(config={c.name!r}, embed_dim={c.embed_dim}, image_size={c.vision.image_size}, "
                f"param={c.stem.param!r}, stage={self.extra.get('stage')!r}, device={str(self.device)!r})")


def _batch(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ClipInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def load(checkpoint: str | os.PathLike, device: Any = "cpu") -> ClipModel:
    """Loads a checkpoint written by ``splatcodec clip train`` (or ``checkpoint.save_checkpoint``);
    :class:`CheckpointError` for a missing, unreadable or foreign file."""
    from .checkpoint import load_checkpoint

    dev = _device(device)
    model, extra = load_checkpoint(os.fspath(checkpoint), device="cpu")
    return ClipModel(model, extra, dev)
