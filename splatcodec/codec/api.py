"""Public codec API: encode/decode images to/from ``.gsplat`` bytes, files, info and rate control.

Pipeline of :func:`encode` (details and measurements in docs/codec.md): fit ``N`` Gaussians coarse
to fine, one progressive group at a time on the residual of the previous groups, plus a short joint
polish -> quantize -> re-fit only the colours with the quantized geometry frozen (the quantizer in
the loop) -> quantize the colours -> entropy code. Rate control picks ``N`` and the bit depths.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import FormatError, InvalidInputError
from ..fileio import atomic_write  # noqa: F401  (public here since 0.1)
from ..limits import DEFAULT_MAX_GAUSSIANS, DEFAULT_MAX_PIXELS, Limits
from ..splats import Splats
from ..validation import check_int, check_number
from . import bitstream, formats
from .priors import load as load_priors
from .quantize import BitDepths, dequantize, group_sizes_for, quantize
from .batch import EncodeResult, encode_batch, iter_encode  # noqa: F401  (re-exported; see batch.py)

#: Defaults of the knobs; documented in docs/codec.md.
DEFAULT_QUALITY = 75
DEFAULT_EFFORT = 4
MAX_EFFORT = 9
DEFAULT_LEVELS = 4
#: The encoder fits in at least this many coarse-to-fine stages, whatever ``levels`` is.
FIT_STAGES = 4
#: Relative tolerance of ``target_bpp`` and absolute tolerance (dB) of ``target_psnr``.
BPP_TOLERANCE = 0.05
PSNR_TOLERANCE = 0.2

@dataclass
class EncodeStats:
    """What :func:`encode` did (``encode(..., return_stats=True)``)."""

    num_gaussians: int
    bytes: int
    bpp: float
    psnr: float
    seconds: float
    bits_per_gaussian: dict[str, float]
    attempts: list[tuple[int, int, float]] = field(default_factory=list)  # (N, bytes, psnr) per fit


@dataclass
class GsplatInfo:
    """Facts about a ``.gsplat`` stream, from :func:`info` (cheap: no pixels are rendered)."""

    version: str
    width: int
    height: int
    channels: int
    num_gaussians: int
    bytes: int
    bpp: float
    bit_depths: dict[str, Any]
    progressive_groups: list[int]
    bits_per_gaussian: dict[str, float]
    sections: dict[str, int]
    metadata_keys: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------- rate mapping
def _check_quality(quality: float) -> float:
    return check_number("quality", quality, minimum=0, maximum=100)


def gaussians_for_quality(quality: float, pixels: int) -> int:
    """Gaussian count for ``quality``: density grows geometrically from 1/1500 to 1/15 per pixel."""
    q = _check_quality(quality) / 100.0
    density = math.exp(math.log(1 / 1500) + q * math.log(100))
    return max(16, int(round(density * pixels)))


#: (lowest quality, scale bits, shear bits, colour bits (Y, Cb, Cr), extra position bits), chosen on
#: Kodak crops by comparing PSNR at equal rate (see docs/codec.md); monotone in quality.
_DEPTH_TABLE = (
    (0, 6, 6, (7, 6, 6), 5),
    (30, 7, 7, (8, 6, 6), 5),
    (60, 7, 7, (8, 7, 7), 6),
    (85, 8, 8, (9, 7, 7), 6),
)


def position_bits(num_gaussians: int, width: int, height: int, extra: int) -> int:
    """Bits per coordinate: enough to resolve the mean Gaussian spacing, plus ``extra`` bits below it.

    The useful position precision is a fraction of a Gaussian's size, which scales with the spacing
    sqrt(W H / N); a fixed bit count would be too coarse for dense fits and waste bits on sparse ones.
    """
    spacing = math.sqrt(width * height / max(num_gaussians, 1))
    coarse = max(0, math.ceil(math.log2(max(width, height) / spacing)))
    return int(min(16, max(6, coarse + extra)))


def bits_for_quality(quality: float, channels: int, num_gaussians: int = 10_000, width: int = 768,
                     height: int = 512) -> BitDepths:
    """Bit depths for ``quality`` (non-decreasing in quality at a fixed size and Gaussian count)."""
    q = _check_quality(quality)
    row = [r for r in _DEPTH_TABLE if q >= r[0]][-1]
    _, scale, shear, color, extra = row
    return BitDepths(pos=position_bits(num_gaussians, width, height, extra), scale=scale, shear=shear,
                     color=color[:1] if channels == 1 else color)


def _check_effort(effort: int) -> int:
    return check_int("effort", effort, minimum=1, maximum=MAX_EFFORT)


#: Fit options of every coarse-to-fine stage: every 25 iterations until 70 % of the stage, drop
#: Gaussians whose |colour| luma is under 0.02 and re-seed as many where the error is largest (the
#: count, hence the progressive group sizes, is kept). Measured on 256x256 crops of kodim01/15/23 at
#: quality 45 and 72: +0.3 to +0.7 dB at the same file size over plain stage fits (docs/codec.md).
STAGE_FIT_OPTIONS: dict[str, Any] = dict(prune_every=25, prune_threshold=0.02, prune_until=0.7, densify=True)


#: Images with more than TINY_IMAGE_PIXELS and at most SHORT_SCHEDULE_PIXELS pixels (thumbnails such as
#: 224x224) fit with half the iterations (:func:`_iterations`); SCALED_SCHEDULE = False restores the
#: full schedule everywhere (benchmarks compare against it).
TINY_IMAGE_PIXELS = 1 << 12
SHORT_SCHEDULE_PIXELS = 1 << 18
SCALED_SCHEDULE = True


def _iterations(effort: int, pixels: int = 0) -> tuple[int, int]:
    """(fit iterations per coarse-to-fine stage, refinement iterations) for an effort level.

    Measured on 256x256 Kodak crops (kodim01, kodim23; quality 45 and 72): 800 iterations per stage
    match 1500 within the fits' noise (+-0.3 dB), 500 lose ~0.2 dB, 300 ~0.3 dB; see docs/codec.md.
    On 224x224 Flickr8k crops at 400 Gaussians (effort 4) half the schedule (400 + 150) takes half
    the time and loses 0.09 dB at equal bytes (300 + 100: -0.23 dB); on 32x32 images it would lose
    0.21 dB while the full schedule already takes ~45 ms, so images up to 64x64 keep it.
    """
    if SCALED_SCHEDULE and TINY_IMAGE_PIXELS < pixels <= SHORT_SCHEDULE_PIXELS:
        return 75 * effort + 100, 25 * effort + 50
    return 150 * effort + 200, 50 * effort + 100


# ----------------------------------------------------------------------------------- encode
def encode_splats(splats: Splats, *, bits: BitDepths | None = None, quality: float = DEFAULT_QUALITY,
                  levels: int = DEFAULT_LEVELS, metadata: dict[str, str | bytes] | None = None) -> bytes:
    """Quantize and entropy-code already fitted Gaussians (no fitting). ``bits`` defaults from ``quality``."""
    bits = bits or bits_for_quality(quality, splats.channels, splats.num_gaussians, splats.width, splats.height)
    data, _ = bitstream.write(quantize(splats, bits, levels=levels), _check_metadata(metadata))
    return data


def _check_metadata(metadata: dict | None) -> dict[str, str | bytes] | None:
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


#: ``progress(step, total, label)`` callback type: called after each fitting step of an attempt.
Progress = Callable[[int, int, str], None]


def _no_progress(step: int, total: int, label: str) -> None:
    return None


#: Low-rate encodes fit their coarse stages at half resolution (4x fewer pixels per iteration) and
#: scale the Gaussians back: a stage is halved when its own mean spacing sqrt(W H / N_stage) is at
#: least HALF_RES_MIN_SPACING pixels and the whole fit's spacing at least HALF_RES_MIN_FIT_SPACING.
#: Measured on the 24 Kodak images (docs/codec.md): up to ~0.25 bpp +0.02 to +0.17 dB and 35-40 %
#: less encode time; at 0.38-0.6 bpp halving the same stages cost 0.2-0.4 dB, hence the second bound.
HALF_RES_MIN_SPACING = 18.0
HALF_RES_MIN_FIT_SPACING = 12.0


def _downscale2(image: np.ndarray) -> np.ndarray:
    """2x2 box average; an odd last row/column is repeated first, so block (i, j) is pixels 2i..2i+1."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2, -1).mean(axis=(1, 3))


def _upscale2(splats: Splats, width: int, height: int) -> Splats:
    """Gaussians fitted to :func:`_downscale2` of a ``width`` x ``height`` image, in that image's pixels.

    Half-resolution pixel centre i + 0.5 is the centre 2i + 1 of its 2x2 block, so positions and
    Cholesky factors scale by exactly 2; colours are amplitudes and stay.
    """
    return Splats(splats.xy * np.float32(2), splats.chol * np.float32(2), splats.color, width, height)


def _fit_coarse_to_fine(pixels: np.ndarray, n: int, levels: int, iters: int, refine: int, seed: int,
                        threads: int, fit_kwargs: dict,
                        progress: Progress = _no_progress) -> tuple[Splats, list[int] | None]:
    """Fit ``n`` Gaussians in stages: each stage is fitted to the residual of the ones before.

    There are ``max(levels, FIT_STAGES)`` stages; the stored progressive groups are the stages, the
    first ones merged when ``levels`` is smaller (``levels=1``: one group, no order information
    to pay for, but the same coarse-to-fine fit).
    Stage k (sizes double: n/8, n/8, n/4, n/2 for 4 stages) only sees what stages 0..k-1 left
    unexplained, so every prefix of groups is a good image on its own (progressive decoding), and
    the coarse-to-fine start also beats one joint fit from the adaptive initialisation: on the
    centre 256x256 crop of kodim23 with 1000 Gaussians, 37.7 dB (effort 4: 800 iterations per
    stage, 300 of polish) against 37.0 dB for a joint fit of 1500 iterations (docs/codec.md). Returns the Gaussians in group order and
    the group sizes (None when the fitter changed the count, e.g. with pruning options).
    """
    from ..fitting import fit
    from ..render import render_float

    sizes = group_sizes_for(n, max(levels, FIT_STAGES))
    total = len(sizes) + 2
    if len(sizes) <= 1:
        result = fit(pixels, num_gaussians=n, iterations=iters, seed=seed, threads=threads, **fit_kwargs)
        progress(total - 1, total, "fitted")
        return result, None
    target = pixels.astype(np.float32).reshape(pixels.shape[0], pixels.shape[1], -1) / np.float32(255.0)
    explained = np.zeros_like(target)
    parts: list[Splats] = []
    height, width = target.shape[:2]
    low_rate = math.sqrt(width * height / n) >= HALF_RES_MIN_FIT_SPACING
    for k, size in enumerate(sizes):
        residual = target - explained
        if low_rate and math.sqrt(width * height / size) >= HALF_RES_MIN_SPACING:
            part = _upscale2(fit(_downscale2(residual), num_gaussians=size, iterations=iters, seed=seed + k,
                                 threads=threads, **fit_kwargs), width, height)
        else:
            part = fit(residual, num_gaussians=size, iterations=iters, seed=seed + k, threads=threads,
                       **fit_kwargs)
        explained += render_float(part, max_pixels=None).reshape(target.shape)
        parts.append(part)
        progress(k + 1, total, f"fitted stage {k + 1}/{len(sizes)}")
    stacked = Splats(np.concatenate([p.xy for p in parts]), np.concatenate([p.chol for p in parts]),
                     np.concatenate([p.color for p in parts]), pixels.shape[1], pixels.shape[0])
    groups = [p.num_gaussians for p in parts]
    if levels < len(groups):  # merge the leading stages into the first stored group
        cut = len(groups) - levels + 1
        groups = [sum(groups[:cut])] + groups[cut:]
    if refine:  # short joint polish; moves the groups a little but keeps the prefixes useful
        stacked = fit(pixels, init=stacked, iterations=refine, seed=seed, threads=threads, lr_scale=0.3,
                      max_pixels=None)
        progress(total - 1, total, "joint polish")
    return stacked, (groups if stacked.num_gaussians == sum(groups) else None)


def _compress(pixels: np.ndarray, n: int, bits: BitDepths, effort: int, levels: int, seed: int, threads: int,
              metadata, fit_kwargs: dict, progress: Progress = _no_progress,
              priors: Any = None) -> tuple[bytes, float, dict[str, float], int]:
    """One fit + quantization-aware refinement + coding at ``n`` Gaussians. Returns (data, psnr, bits, N)."""
    from ..fitting import fit  # the native core; imported lazily so the format code works without it
    from ..render import render

    iters, refine = _iterations(effort, pixels.shape[0] * pixels.shape[1])
    splats, groups = _fit_coarse_to_fine(pixels, n, levels, iters, refine, seed, threads, fit_kwargs, progress)
    h, w = pixels.shape[:2]
    grid = formats.compact_grid(w, h, splats.num_gaussians, len(bits.color), metadata)  # None: 1.0 grid
    q = quantize(splats, bits, levels=levels, groups=groups, ranges=grid)
    if refine:
        # Quantization-aware step: keep the quantized geometry fixed and re-fit the colours to it (the
        # image is linear in the colours, so they can absorb much of the geometry's quantization
        # error); then quantize the colours on the same geometry grid. Measured on Kodak crops this
        # beats refining all parameters and re-quantizing (the re-quantization undoes the refinement).
        geometry = q.ranges[:5].copy()
        refit = fit(pixels, init=dequantize(q), iterations=refine, seed=seed, threads=threads, max_pixels=None,
                    lr_xy=0.0, lr_chol=0.0)  # colours only
        if refit.num_gaussians == q.num_gaussians:  # same Gaussians, same (file) order
            q = quantize(refit, bits, levels=levels, geometry_ranges=geometry, groups=q.group_sizes, ranges=grid)
    data, stream_bits = formats.write_best(q, metadata, priors)
    steps = len(group_sizes_for(n, max(levels, FIT_STAGES))) + 2
    progress(steps, steps, "quantized and coded")
    from ..metrics import psnr
    quality = psnr(render(dequantize(q), max_pixels=None).reshape(pixels.shape), pixels)
    return data, quality, stream_bits, q.num_gaussians


def encode(image: Any, quality: float | None = None, *, target_bpp: float | None = None,
           target_psnr: float | None = None, num_gaussians: int | None = None, effort: int = DEFAULT_EFFORT,
           bits: BitDepths | None = None, levels: int = DEFAULT_LEVELS, seed: int = 0, threads: int = 0,
           metadata: dict[str, str | bytes] | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
           return_stats: bool = False, fit_kwargs: dict | None = None,
           progress: Progress | None = None, priors: Any = None) -> bytes | tuple[bytes, EncodeStats]:
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
        levels: number of progressive groups (1 disables progressive decoding).
        seed, threads: passed to the fitter (same seed and threads -> same bytes).
        metadata: str -> str | bytes entries stored in the optional META section (e.g. ``icc``).
        max_pixels: refuse larger images (:class:`LimitExceededError`); ``None`` disables.
        return_stats: also return an :class:`EncodeStats`.
        fit_kwargs: extra :func:`splatcodec.fit` options for the coarse-to-fine stage fits; they
            override :data:`STAGE_FIT_OPTIONS` (e.g. ``{"densify": False, "prune_every": 0}``).
        progress: called as ``progress(step, total, label)`` after each fitting step (per attempt
            of the rate search; ``step`` restarts at 1 for each attempt).
        priors: dataset priors (``splatcodec train-priors``; a path, bytes or ``Priors``) for 1.1
            files: they name the priors by id, and decoding them needs the same priors.
    """
    from ..images import to_uint8_image

    start = time.perf_counter()
    pixels = to_uint8_image(image, max_pixels=max_pixels)  # the one input policy (splatcodec.images)
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    effort = _check_effort(effort)
    seed = check_int("seed", seed, minimum=0)
    threads = check_int("threads (0: all cores)", threads, minimum=0, maximum=1024)
    modes = sum(x is not None for x in (target_bpp, target_psnr, num_gaussians))
    if modes > 1:
        raise InvalidInputError("give at most one of target_bpp, target_psnr and num_gaussians")
    if quality is not None and (target_bpp is not None or target_psnr is not None):
        raise InvalidInputError("quality cannot be combined with target_bpp or target_psnr")
    quality = DEFAULT_QUALITY if quality is None else _check_quality(quality)
    if bits is not None:
        if not isinstance(bits, BitDepths):
            raise InvalidInputError(f"bits must be a BitDepths, got {type(bits).__name__}")
        bits = bits.for_channels(channels)
        bits.validate(channels)
    levels = check_int("levels", levels, minimum=1, maximum=bitstream.MAX_GROUPS)
    metadata = _check_metadata(metadata)
    priors = None if priors is None else load_priors(priors)
    fit_kwargs = _check_fit_kwargs(fit_kwargs)
    pixels_count = w * h

    def attempt(n: int):
        depths = bits or bits_for_quality(quality, channels, n, w, h)
        if bits is None and formats.compact_grid(w, h, n, channels, metadata) is not None:
            depths = formats.compact_depths(depths)  # the 1.1 grid's fixed ranges need finer steps
        data, p, stream_bits, n_final = _compress(pixels, n, depths, effort, levels, seed, threads, metadata,
                                                  fit_kwargs, progress or _no_progress, priors)
        attempts.append((n, len(data), p))
        return data, p, stream_bits, n_final

    attempts: list[tuple[int, int, float]] = []
    # The Gaussian counts the encoder picks itself stay within the pixel count and the file limit.
    n_max = min(pixels_count, DEFAULT_MAX_GAUSSIANS)
    if target_bpp is not None:
        target = check_number("target_bpp", target_bpp, positive=True, maximum=MAX_TARGET_BPP)
        result = _search_bpp(attempt, target, pixels_count, effort, n_max)
    elif target_psnr is not None:
        target = check_number("target_psnr (dB)", target_psnr, positive=True, maximum=MAX_TARGET_PSNR)
        result = _search_psnr(attempt, target, pixels_count, effort, n_max)
    else:
        if num_gaussians is None:
            n = min(gaussians_for_quality(quality, pixels_count), n_max)
        else:
            n = check_int("num_gaussians", num_gaussians, minimum=1)
            Limits().check_gaussians(n)
        result = attempt(n)
    data, p, stream_bits, n_final = result
    if not return_stats:
        return data
    per_g = {k: v / max(n_final, 1) for k, v in stream_bits.items()}
    stats = EncodeStats(n_final, len(data), 8.0 * len(data) / pixels_count, p, time.perf_counter() - start,
                        per_g, attempts)
    return data, stats


#: Largest rate targets: 8-bit RGB costs 24 bpp uncoded; an exact fit reports 99 dB.
MAX_TARGET_BPP = 64.0
MAX_TARGET_PSNR = 99.0


def _check_fit_kwargs(fit_kwargs: Any) -> dict:
    """The stage fit options, checked before any fitting (a typo must not fail after minutes)."""
    from ..fitting import _make_options

    if fit_kwargs is not None and not isinstance(fit_kwargs, dict):
        raise InvalidInputError(f"fit_kwargs must be a dict of fit options, got {type(fit_kwargs).__name__}")
    reserved = sorted(set(fit_kwargs or ()) & {"num_gaussians", "iterations", "seed", "threads", "init",
                                                "return_stats", "max_pixels"})
    if reserved:
        raise InvalidInputError(f"fit_kwargs cannot set {', '.join(reserved)}: encode chooses them")
    merged = {**STAGE_FIT_OPTIONS, **(fit_kwargs or {})}
    _make_options(merged).check()
    # The image was checked against the caller's pixel limit already; the stage fits must not apply
    # the default one again (encode(max_pixels=None) of a large image would fail halfway).
    return {**merged, "max_pixels": None}


#: Starting guess of the coded size of one Gaussian, in bits (refined from each attempt).
_BITS_PER_GAUSSIAN_GUESS = 40.0


def _search_bpp(attempt: Callable, target: float, pixels: int, effort: int, n_max: int):
    budget = target * pixels
    n = min(max(16, int(budget / _BITS_PER_GAUSSIAN_GUESS)), n_max)
    best = None  # the largest file within the tolerance above the target
    fallback = None  # the file closest to the target
    for _ in range(2 + effort // 2):
        res = attempt(n)
        size_bits = 8.0 * len(res[0])
        if size_bits <= budget * (1 + BPP_TOLERANCE) and (best is None or len(res[0]) > len(best[0])):
            best = res
        if fallback is None or abs(size_bits - budget) < abs(8.0 * len(fallback[0]) - budget):
            fallback = res
        if abs(size_bits - budget) <= BPP_TOLERANCE * budget:
            return res
        # Size = fixed overhead (header, models) + N * bits per Gaussian; solve for N.
        overhead = res[2].get("header+models", 0.0)
        per_gaussian = max(size_bits - overhead, 1.0) / res[3]
        n_next = min(max(16, int((budget * (1 - BPP_TOLERANCE / 2) - overhead) / per_gaussian)), n_max)
        if n_next == n:
            break
        n = n_next
    return best if best is not None else fallback


def _search_psnr(attempt: Callable, target: float, pixels: int, effort: int, n_max: int):
    n = min(max(16, int(pixels / 60)), n_max)
    passing = None
    best = None
    for _ in range(2 + effort // 2):
        res = attempt(n)
        p = res[1]
        if p >= target - PSNR_TOLERANCE and (passing is None or len(res[0]) < len(passing[0])):
            passing = res
        if best is None or p > best[1]:
            best = res
        if abs(p - target) <= PSNR_TOLERANCE / 2:
            break
        # About 2.5 dB per doubling of the Gaussian count in the useful range. An unreachable target
        # ends at the largest count allowed, and the best attempt is returned.
        n_next = min(max(16, int(round(n * 2.0 ** ((target - p + PSNR_TOLERANCE / 2) / 2.5)))), n_max)
        if n_next == n:
            break
        n = n_next
    return passing if passing is not None else best


# ----------------------------------------------------------------------------------- decode
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
           gaussian_limit: int | None = DEFAULT_MAX_GAUSSIANS, priors: Any = None) -> np.ndarray:
    """Decode ``.gsplat`` bytes to a uint8 image, (H, W, C) with C = 1 or 3.

    ``width``/``height`` (one keeps the aspect ratio) or ``scale`` render at another resolution;
    ``max_gaussians`` decodes a coarser progressive prefix. ``max_pixels`` and ``gaussian_limit``
    are the safety limits (``None`` disables); every malformed input raises :class:`FormatError`.
    """
    from ..render import output_size, render

    limits = _limits(max_pixels, gaussian_limit)  # refuses a NaN or malformed limit up front
    splats = decode_splats(data, max_gaussians=max_gaussians, max_pixels=max_pixels, gaussian_limit=gaussian_limit,
                           priors=priors)
    out_w, out_h = output_size(splats.width, splats.height, width, height, scale)
    limits.check_pixels(out_w, out_h, "output image")
    # The core counts the tile entries and the work before allocating them (limits.py).
    return render(splats, width=out_w, height=out_h, max_pixels=limits.max_pixels)


def info(data: bytes, *, gaussian_limit: int | None = DEFAULT_MAX_GAUSSIANS, priors: Any = None) -> GsplatInfo:
    """Describe a ``.gsplat`` stream: size, Gaussians, bpp, bit depths and coded bits per attribute."""
    data = _as_bytes(data)
    parsed = bitstream.parse(data, _limits(None, gaussian_limit))
    h = parsed.header
    priors = None if priors is None else load_priors(priors)
    q = bitstream.read(parsed, priors=priors)
    # Re-coding the decoded symbols with the file's settings reproduces the per-stream split exactly
    # for files this encoder wrote (the models are a deterministic function of the symbols).
    stream_bits = bitstream.stream_bits(parsed, q, priors)
    n = max(h.num_gaussians, 1)
    b = parsed.bits
    depths = {"position": b.pos, "scale": b.scale, "shear": b.shear, "color": list(b.color)}
    return GsplatInfo(f"{h.major}.{h.minor}", h.width, h.height, h.channels, h.num_gaussians, len(data),
                      8.0 * len(data) / (h.width * h.height), depths, list(parsed.group_sizes),
                      {k: round(v / n, 3) for k, v in stream_bits.items()}, parsed.section_sizes,
                      sorted(parsed.metadata))


def metadata(data: bytes) -> dict[str, str | bytes]:
    """The META entries of a ``.gsplat`` stream (empty if none)."""
    return bitstream.parse(_as_bytes(data), _limits(None, None)).metadata


# ----------------------------------------------------------------------------------- files
def save(path: str | os.PathLike, image: Any, *, overwrite: bool = True, **kwargs: Any) -> int:
    """:func:`encode` ``image`` and write it atomically to ``path``; returns the byte count."""
    data = encode(image, **kwargs)
    atomic_write(path, data, overwrite=overwrite)
    return len(data)


def load(path: str | os.PathLike, **kwargs: Any) -> np.ndarray:
    """Read a ``.gsplat`` file and :func:`decode` it (same keyword arguments). The file is read
    header first and then to the length it declares (splatcodec.cli_io), so a device or an endless
    file is refused instead of read into memory."""
    from ..cli_io import read_gsplat

    limits = _limits(kwargs.get("max_pixels", DEFAULT_MAX_PIXELS), kwargs.get("gaussian_limit", DEFAULT_MAX_GAUSSIANS))
    return decode(read_gsplat(os.fspath(path), limits), **kwargs)
