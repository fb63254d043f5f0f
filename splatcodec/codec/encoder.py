"""The encoder's entry points: check the options, choose the rate mode, run the attempts.

:func:`encode` normalises the image (:mod:`splatcodec.images`), checks every option before any
fitting, and then makes one attempt (a fixed quality or Gaussian count) or lets the rate search
(:mod:`.rate_search`) make several; each attempt is :func:`.fit_strategy.fit_and_code` with the bit
depths of :mod:`.rate`. :func:`encode_splats` codes already fitted Gaussians; :func:`save` writes a
file. Pipeline and measurements: docs/codec.md.
"""
from __future__ import annotations

import os
import time
from typing import Any

from .._native import resolve_device
from ..errors import InvalidInputError
from ..fileio import atomic_write
from ..limits import DEFAULT_MAX_GAUSSIANS, DEFAULT_MAX_PIXELS, Limits
from ..splats import Splats
from ..validation import check_int, check_number
from . import bitstream, formats
from .fit_strategy import DEFAULT_EFFORT, Attempt, Progress, check_effort, check_fit_kwargs, fit_and_code, no_progress
from .priors import load as load_priors
from .quantize import BitDepths, quantize
from .rate import DEFAULT_QUALITY, bits_for_quality, check_quality, gaussians_for_quality
from .rate_search import MAX_TARGET_BPP, MAX_TARGET_PSNR, search_bpp, search_psnr
from .results import EncodeStats

#: Progressive groups stored by default for images above :data:`SMALL_IMAGE_PIXELS` (docs/codec.md).
DEFAULT_LEVELS = 4
#: Images of at most this many pixels (the 1.1 grid's size bound, ``formats.COMPACT_MAX_PIXELS``)
#: store :data:`SMALL_IMAGE_LEVELS` group by default: a thumbnail gains little from progressive
#: decoding, and the group order costs ~4 % of a 32x32 file (0.2-0.3 dB at equal bytes on CIFAR-10).
SMALL_IMAGE_PIXELS = formats.COMPACT_MAX_PIXELS
SMALL_IMAGE_LEVELS = 1


def default_levels(width: int, height: int) -> int:
    """Progressive groups :func:`encode` stores when ``levels`` is not given (docs/codec.md)."""
    return SMALL_IMAGE_LEVELS if width * height <= SMALL_IMAGE_PIXELS else DEFAULT_LEVELS


def check_metadata(metadata: dict | None) -> dict[str, str | bytes] | None:
    """``metadata`` if it is a dict of short str keys -> str (UTF-8 encodable) or bytes values, else
    an :class:`InvalidInputError`; ``None`` stays ``None``."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidInputError("metadata must be a dict of str -> str | bytes")
    for key, value in metadata.items():
        try:  # checked before any fitting: a lone surrogate must not fail after minutes of work
            ok = isinstance(key, str) and len(key.encode("utf-8")) <= 0xFFFF and (
                isinstance(value, bytes) or isinstance(value, str) and value.encode("utf-8") is not None)
        except UnicodeEncodeError:
            ok = False
        if not ok:
            raise InvalidInputError(f"bad metadata entry {key!r}: keys are short str, values str (encodable "
                                    "as UTF-8) or bytes")
    return metadata


def encode_splats(splats: Splats, *, bits: BitDepths | None = None, quality: float = DEFAULT_QUALITY,
                  levels: int = DEFAULT_LEVELS, metadata: dict[str, str | bytes] | None = None) -> bytes:
    """Quantize and entropy-code already fitted Gaussians (no fitting). ``bits`` defaults from ``quality``."""
    bits = bits or bits_for_quality(quality, splats.channels, splats.num_gaussians, splats.width, splats.height)
    data, _ = bitstream.write(quantize(splats, bits, levels=levels), check_metadata(metadata))
    return data


def encode(image: Any, quality: float | None = None, *, target_bpp: float | None = None,
           target_psnr: float | None = None, num_gaussians: int | None = None, effort: int = DEFAULT_EFFORT,
           bits: BitDepths | None = None, levels: int | None = None, seed: int = 0, threads: int = 0,
           metadata: dict[str, str | bytes] | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
           return_stats: bool = False, fit_kwargs: dict | None = None,
           progress: Progress | None = None, priors: Any = None,
           device: str = "cpu") -> bytes | tuple[bytes, EncodeStats]:
    """Compress an image into ``.gsplat`` bytes.

    Args:
        image: an array or PIL image, as :mod:`splatcodec.images` describes (the same inputs as
            :func:`splatcodec.fit`); stored as 8-bit gray or RGB.
        quality: 0..100, higher = more Gaussians and bits (monotone); default 75 when no other
            rate option is given.
        target_bpp: aim at this many bits per pixel (real file size); hit within +-5 % when the
            search converges, otherwise the closest file not above the target is returned.
        target_psnr: aim at this PSNR (dB, 8-bit); the smallest tried file within 0.2 dB below the
            target or better is returned.
        num_gaussians: fix the Gaussian count by hand (bit depths still follow ``quality``).
        effort: 1..9, more = more fitting iterations and rate-control steps (slower, better).
        bits: override the per-attribute bit depths.
        levels: number of progressive groups (1 disables progressive decoding); default
            :func:`default_levels`: 1 for images of at most 2^18 pixels, else 4.
        seed, threads: passed to the fitter (same seed and threads -> same bytes).
        metadata: str -> str | bytes entries stored in the optional META section (e.g. ``icc``).
        max_pixels: refuse larger images (:class:`LimitExceededError`); ``None`` disables.
        return_stats: also return an :class:`EncodeStats`.
        fit_kwargs: extra :func:`splatcodec.fit` options for the coarse-to-fine stage fits; they
            override :data:`~.fit_strategy.STAGE_FIT_OPTIONS` (e.g. ``{"densify": False, "prune_every": 0}``).
        progress: called as ``progress(step, total, label)`` after each fitting step (per attempt
            of the rate search; ``step`` restarts at 1 for each attempt).
        priors: dataset priors (``splatcodec train-priors``; a path, bytes or ``Priors``) for 1.1
            files: they name the priors by id, and decoding them needs the same priors.
        device: where the fits and renders run: "cpu" (default), "cuda" (the GPU;
            :class:`~splatcodec.DeviceUnavailableError` without one) or "auto" (the GPU when usable,
            else the CPU); resolved once per call. The bytes depend on it (the GPU rounds differently);
            what the GPU fitter supports: docs/cuda.md.
    """
    from ..images import to_uint8_image

    start = time.perf_counter()
    pixels = to_uint8_image(image, max_pixels=max_pixels)  # the one input policy (splatcodec.images)
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    effort = check_effort(effort)
    seed = check_int("seed", seed, minimum=0)
    threads = check_int("threads (0: all cores)", threads, minimum=0, maximum=1024)
    device = resolve_device(device)  # once: every attempt of a rate search runs on the same device
    modes = sum(x is not None for x in (target_bpp, target_psnr, num_gaussians))
    if modes > 1:
        raise InvalidInputError("give at most one of target_bpp, target_psnr and num_gaussians")
    if quality is not None and (target_bpp is not None or target_psnr is not None):
        raise InvalidInputError("quality cannot be combined with target_bpp or target_psnr")
    quality = DEFAULT_QUALITY if quality is None else check_quality(quality)
    if bits is not None:
        if not isinstance(bits, BitDepths):
            raise InvalidInputError(f"bits must be a BitDepths, got {type(bits).__name__}")
        bits = bits.for_channels(channels)
        bits.validate(channels)
    levels = default_levels(w, h) if levels is None else \
        check_int("levels", levels, minimum=1, maximum=bitstream.MAX_GROUPS)
    metadata = check_metadata(metadata)
    priors = None if priors is None else load_priors(priors)
    fit_kwargs = check_fit_kwargs(fit_kwargs)
    pixels_count = w * h
    attempts: list[tuple[int, int, float]] = []

    def attempt(n: int) -> Attempt:
        depths = bits or bits_for_quality(quality, channels, n, w, h)
        if bits is None and formats.compact_grid(w, h, n, channels, metadata) is not None:
            depths = formats.compact_depths(depths, w * h)  # the 1.1 grid's own depths
        result = fit_and_code(pixels, n, depths, effort, levels, seed, threads, metadata, fit_kwargs,
                              progress or no_progress, priors, device)
        attempts.append((n, len(result.data), result.psnr))
        return result

    # The Gaussian counts the encoder picks itself stay within the pixel count and the file limit.
    n_max = min(pixels_count, DEFAULT_MAX_GAUSSIANS)
    if target_bpp is not None:
        target = check_number("target_bpp", target_bpp, positive=True, maximum=MAX_TARGET_BPP)
        chosen = search_bpp(attempt, target, pixels_count, effort, n_max)
    elif target_psnr is not None:
        target = check_number("target_psnr (dB)", target_psnr, positive=True, maximum=MAX_TARGET_PSNR)
        chosen = search_psnr(attempt, target, pixels_count, effort, n_max)
    else:
        if num_gaussians is None:
            n = min(gaussians_for_quality(quality, pixels_count), n_max)
        else:
            n = check_int("num_gaussians", num_gaussians, minimum=1)
            Limits().check_gaussians(n)
        chosen = attempt(n)
    if not return_stats:
        return chosen.data
    per_g = {k: v / max(chosen.num_gaussians, 1) for k, v in chosen.stream_bits.items()}
    stats = EncodeStats(chosen.num_gaussians, len(chosen.data), 8.0 * len(chosen.data) / pixels_count, chosen.psnr,
                        time.perf_counter() - start, per_g, attempts)
    return chosen.data, stats


def save(path: str | os.PathLike, image: Any, *, overwrite: bool = True, **kwargs: Any) -> int:
    """:func:`encode` ``image`` and write it atomically to ``path``; returns the byte count."""
    data = encode(image, **kwargs)
    atomic_write(path, data, overwrite=overwrite)
    return len(data)


__all__ = ["DEFAULT_LEVELS", "SMALL_IMAGE_LEVELS", "SMALL_IMAGE_PIXELS", "check_metadata", "default_levels", "encode",
           "encode_splats", "save"]
