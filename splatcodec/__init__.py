"""splatcodec: images as coloured anisotropic 2D Gaussians.

    >>> import splatcodec
    >>> splats = splatcodec.fit(image, num_gaussians=10000)      # encode's fitting step
    >>> pixels = splatcodec.render(splats, width=1536)           # decode at any resolution
"""
from . import _native

# Before anything imports torch: its wheel ships its own libgomp.so.1, which our core then binds to, so
# the wait policy must be in the environment before that copy loads (a fit after `import torch` was
# measured 20-200x slower on a busy machine otherwise; see _native).
_native._prefer_passive_openmp_waits()

from .errors import (CancelledError, DeviceError, DeviceUnavailableError, FormatError, InvalidInputError,
                     LimitExceededError, NativeExtensionError, SplatcodecError)
from .cancellation import CancelToken
from .codec.api import decode, encode, encode_batch, info, load, save
from .fitting import FitOptions, FitResult, FitStats, fit, fit_batch
from .metrics import psnr
from .plugins import register_imageio, register_pillow
from .render import render, render_float
from .splats import CUTOFF_SIGMA, Splats

__version__ = "0.1.0"

__all__ = [
    "CUTOFF_SIGMA", "CancelToken", "CancelledError", "DeviceError", "DeviceUnavailableError", "FitOptions",
    "FitResult", "FitStats", "FormatError", "InvalidInputError", "LimitExceededError", "NativeExtensionError",
    "Splats", "SplatcodecError", "fit", "fit_batch", "psnr", "render", "render_float",
    "decode", "encode", "encode_batch", "info", "load", "save", "register_imageio", "register_pillow",
]
