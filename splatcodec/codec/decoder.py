"""The decoder: ``.gsplat`` bytes (or a file) to Gaussians, pixels, a description, or the metadata.

Every call parses under :mod:`splatcodec.limits` first (sizes and counts checked before anything is
allocated), range-decodes only the progressive groups it needs, dequantizes, and (``decode``,
``load``) renders at the requested size. Every malformed input raises :class:`FormatError`.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import FormatError
from ..limits import DEFAULT_MAX_GAUSSIANS, DEFAULT_MAX_PIXELS, Limits
from ..splats import Splats
from ..validation import check_int
from . import bitstream
from .priors import load as load_priors
from .quantize import dequantize
from .results import GsplatInfo


def _limits(max_pixels: int | None, gaussian_limit: int | None) -> Limits:
    return Limits.for_decode(max_pixels=max_pixels, gaussian_limit=gaussian_limit)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise FormatError(f"expected .gsplat bytes, got {type(data).__name__}")


def decode_splats(data: bytes, *, max_gaussians: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  gaussian_limit: int | None = DEFAULT_MAX_GAUSSIANS, priors: Any = None) -> Splats:
    """The (dequantized) Gaussians of a ``.gsplat`` stream, in file order.

    ``max_gaussians`` keeps a coarser prefix: every progressive group that fits completely, then a
    spatially even subsample of the next group; only the groups needed are range-decoded.
    ``priors``: the dataset priors a file was encoded with (path, bytes or ``Priors``), if any.
    """
    parsed = bitstream.parse(_as_bytes(data), _limits(max_pixels, gaussian_limit))
    n_total = parsed.header.num_gaussians
    if max_gaussians is not None:
        check_int("max_gaussians", max_gaussians, minimum=0)
    keep = n_total if max_gaussians is None else min(int(max_gaussians), n_total)
    ends = np.cumsum(parsed.group_sizes)
    groups = int(np.searchsorted(ends, keep, side="left")) + 1 if keep else 0
    q = bitstream.read(parsed, max_groups=groups, priors=None if priors is None else load_priors(priors))
    splats = dequantize(q)
    if splats.num_gaussians > keep:
        full = int(ends[groups - 2]) if groups > 1 else 0
        extra = keep - full
        last = splats.num_gaussians - full
        # Morton order inside a group: evenly strided picks spread over the whole image.
        pick = full + (np.arange(extra) * last) // max(extra, 1)
        splats = splats.subset(np.concatenate([np.arange(full), pick]).astype(np.int64))
    return splats


def decode(data: bytes, *, width: int | None = None, height: int | None = None, scale: float | None = None,
           max_gaussians: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
           gaussian_limit: int | None = DEFAULT_MAX_GAUSSIANS, priors: Any = None, device: str = "cpu") -> np.ndarray:
    """Decode ``.gsplat`` bytes to a uint8 image, (H, W, C) with C = 1 or 3.

    ``width``/``height`` (one keeps the aspect ratio) or ``scale`` render at another resolution;
    ``max_gaussians`` decodes a coarser progressive prefix. ``max_pixels`` and ``gaussian_limit``
    are the safety limits (``None`` disables); every malformed input raises :class:`FormatError`.
    ``device``: where the render runs, "cpu" (default), "cuda" (the GPU;
    :class:`~splatcodec.DeviceUnavailableError` without one) or "auto" (the GPU when usable).
    """
    from .._native import resolve_device
    from ..render import output_size, render

    device = resolve_device(device)  # before any parsing: a device that cannot run fails first
    limits = _limits(max_pixels, gaussian_limit)  # refuses a NaN or malformed limit up front
    splats = decode_splats(data, max_gaussians=max_gaussians, max_pixels=max_pixels, gaussian_limit=gaussian_limit,
                           priors=priors)
    out_w, out_h = output_size(splats.width, splats.height, width, height, scale)
    limits.check_pixels(out_w, out_h, "output image")
    # The core counts the tile entries and the work before allocating them (limits.py).
    return render(splats, width=out_w, height=out_h, max_pixels=limits.max_pixels, device=device)


def info(data: bytes, *, coded_bits: bool = False, gaussian_limit: int | None = DEFAULT_MAX_GAUSSIANS,
         priors: Any = None) -> GsplatInfo:
    """Describe a ``.gsplat`` stream: size, Gaussians, bpp, bit depths, groups, sections, metadata.

    Cheap by default: only the header, section table and checksums are read (well under a
    millisecond), so a corrupt entropy stream is found by :func:`decode`, not here.
    ``coded_bits=True`` also range-decodes every Gaussian and re-codes them to fill
    ``bits_per_gaussian`` (coded bits per attribute; costs about as much as a decode, and needs the
    dataset ``priors`` a file was encoded with). Without it ``bits_per_gaussian`` is ``None``.
    """
    data = _as_bytes(data)
    parsed = bitstream.parse(data, _limits(None, gaussian_limit))
    h = parsed.header
    loaded = None if priors is None else load_priors(priors)  # a bad priors argument fails either way
    per_attribute = None
    if coded_bits:
        q = bitstream.read(parsed, priors=loaded)
        # Re-coding the decoded symbols with the file's settings reproduces the per-stream split
        # exactly for files this encoder wrote (the models are a deterministic function of the symbols).
        n = max(h.num_gaussians, 1)
        per_attribute = {k: round(v / n, 3) for k, v in bitstream.stream_bits(parsed, q, loaded).items()}
    b = parsed.bits
    depths = {"position": b.pos, "scale": b.scale, "shear": b.shear, "color": list(b.color)}
    return GsplatInfo(f"{h.major}.{h.minor}", h.width, h.height, h.channels, h.num_gaussians, len(data),
                      8.0 * len(data) / (h.width * h.height), depths, list(parsed.group_sizes),
                      per_attribute, parsed.section_sizes, sorted(parsed.metadata))


def metadata(data: bytes) -> dict[str, str | bytes]:
    """The META entries of a ``.gsplat`` stream (empty if none)."""
    return bitstream.parse(_as_bytes(data), _limits(None, None)).metadata


def load(path: str | os.PathLike, **kwargs: Any) -> np.ndarray:
    """Read a ``.gsplat`` file and :func:`decode` it (same keyword arguments). The file is read
    header first and then to the length it declares (splatcodec.cli_io), so a device or an endless
    file is refused instead of read into memory."""
    from ..cli_io import read_gsplat

    limits = _limits(kwargs.get("max_pixels", DEFAULT_MAX_PIXELS), kwargs.get("gaussian_limit", DEFAULT_MAX_GAUSSIANS))
    return decode(read_gsplat(os.fspath(path), limits), **kwargs)


__all__ = ["decode", "decode_splats", "info", "load", "metadata"]
