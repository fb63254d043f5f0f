"""Errors of ``splatcodec.clip``: all derive from :class:`splatcodec.SplatcodecError`."""
from __future__ import annotations

from ..errors import InvalidInputError, SplatcodecError


class ClipError(SplatcodecError):
    """Base class of the errors ``splatcodec.clip`` raises deliberately."""


class MissingExtraError(ClipError, ImportError):
    """An optional dependency of ``splatcodec.clip`` (torch, the MiniLM package, webdataset) is missing."""


class CheckpointError(ClipError):
    """A checkpoint file is missing, unreadable, of an unknown kind, or does not fit the model."""


class ClipInputError(ClipError, InvalidInputError):
    """An argument to a model call has the wrong shape, type or value."""


def require_torch():
    """Import torch, or raise :class:`MissingExtraError` naming the extra to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise MissingExtraError("splatcodec.clip needs PyTorch: pip install 'splatcodec[clip]'") from exc
    return torch
