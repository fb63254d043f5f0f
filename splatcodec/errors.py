"""The package's exception hierarchy: every error we raise on purpose derives from SplatcodecError."""
from __future__ import annotations


class SplatcodecError(Exception):
    """Base class of every error splatcodec raises deliberately."""


class InvalidInputError(SplatcodecError, ValueError):
    """An argument (image, Splats, option value) is malformed: wrong shape, dtype, range or size."""


class LimitExceededError(InvalidInputError):
    """An input asks for more than a configured safety limit (pixels, Gaussians, bytes)."""


class FormatError(SplatcodecError, ValueError):
    """A .gsplat byte stream is truncated, corrupted, lying about its lengths, or of an unknown version."""


class NativeExtensionError(SplatcodecError, ImportError):
    """The compiled core (splatcodec._core) is missing or failed to load."""


class DeviceError(SplatcodecError, RuntimeError):
    """The compute device of a ``device="cuda"`` call failed (a CUDA runtime error: out of GPU memory,
    a driver or kernel fault)."""


class DeviceUnavailableError(DeviceError):
    """``device="cuda"`` was asked for, but ``splatcodec._core_cuda`` is not built (see docs/cuda.md) or
    sees no GPU. ``device="auto"`` falls back to the CPU instead."""


class CancelledError(SplatcodecError):
    """A call was cancelled through its :class:`splatcodec.CancelToken` (Ctrl-C re-raises KeyboardInterrupt)."""
