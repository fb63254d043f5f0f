"""GS-CLIP: language-aligned embeddings of images stored as 2D Gaussians (``.gsplat``), next to text
embeddings in the same space (needs the extra: ``pip install 'splatcodec[clip]'``).

    >>> import splatcodec.clip
    >>> model = splatcodec.clip.load("checkpoint.pt")
    >>> model.encode_splats(["a.gsplat"]) @ model.encode_text(["a photo of a cat."]).T

Importing this package checks that torch is installed (:class:`MissingExtraError` otherwise) but does
not import it: torch loads on the first model call. ``import splatcodec`` never imports this package.
See docs/clip.md.
"""
from __future__ import annotations

import importlib.util

from .errors import CheckpointError, ClipError, ClipInputError, MissingExtraError

if importlib.util.find_spec("torch") is None:
    raise MissingExtraError("splatcodec.clip needs PyTorch: pip install 'splatcodec[clip]'")

from .api import ClipModel, load  # noqa: E402  (after the check: a clear error comes first)
from .cache import GaussianSettings  # noqa: E402
from .data import open_dataset  # noqa: E402

__all__ = ["CheckpointError", "ClipError", "ClipInputError", "ClipModel", "GaussianSettings", "MissingExtraError",
           "load", "open_dataset"]
