"""The encoder's fitting strategy: one attempt at a fixed Gaussian count, pixels in, ``.gsplat`` bytes out.

:func:`fit_and_code` fits ``N`` Gaussians coarse to fine (:func:`fit_coarse_to_fine`: one
progressive group at a time on the residual of the previous groups, plus a short joint polish),
quantizes them, re-fits only the colours with the quantized geometry frozen (the quantizer in the
loop), quantizes the colours, on images of at most 64x64 pixels moves symbols to neighbouring grid
values where that lowers distortion + lambda x rate (:mod:`.rdoq`), and entropy-codes the result; it
returns an :class:`Attempt`. Which
``N`` and which bit depths to try is decided elsewhere (:mod:`.rate`, :mod:`.rate_search`,
:func:`.encoder.encode`). Measurements behind every constant: docs/codec.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import InvalidInputError
from ..splats import GEOMETRY_FLOATS, Splats
from ..validation import check_int
from . import colors, compact, formats, rdoq
from .priors import builtin
from .quantize import BitDepths, dequantize, group_sizes_for, quantize

#: Effort knob: 1..MAX_EFFORT, more = more fitting iterations and rate-control steps.
DEFAULT_EFFORT = 4
MAX_EFFORT = 9
#: The encoder fits in at least this many coarse-to-fine stages, whatever ``levels`` is.
FIT_STAGES = 4

#: Fit options of every coarse-to-fine stage: every 25 iterations until 70 % of the stage, drop
#: Gaussians whose |colour| luma is under 0.02 and re-seed as many where the error is largest (the
#: count, hence the progressive group sizes, is kept). Measured on 256x256 crops of kodim01/15/23 at
#: quality 45 and 72: +0.3 to +0.7 dB at the same file size over plain stage fits (docs/codec.md).
STAGE_FIT_OPTIONS: dict[str, Any] = dict(prune_every=25, prune_threshold=0.02, prune_until=0.7, densify=True)

#: Images with more than TINY_IMAGE_PIXELS and at most SHORT_SCHEDULE_PIXELS pixels (thumbnails such as
#: 224x224) fit with a shorter schedule (:func:`schedule_for`); setting SCALED_SCHEDULE (of
#: this module) to False restores the full schedule everywhere (benchmarks compare against it).
TINY_IMAGE_PIXELS = rdoq.MAX_PIXELS  # 64x64: also the images that get RDOQ (below)
SHORT_SCHEDULE_PIXELS = 1 << 18
SCALED_SCHEDULE = True
#: Images of at most TINY_IMAGE_PIXELS (64x64; those that get RDOQ and least-squares colours) fit with
#: short stages and a long joint polish (:func:`schedule_for`) when the mean spacing
#: sqrt(pixels / N) is at most TINY_SCHEDULE_MAX_SPACING (below that density the few large Gaussians
#: of the first stages need the long stages); False: the full schedule.
TINY_SCHEDULE = True
TINY_SCHEDULE_MAX_SPACING = 8.0

#: Low-rate encodes fit their coarse stages at half resolution (4x fewer pixels per iteration) and
#: scale the Gaussians back: a stage is halved when its own mean spacing sqrt(W H / N_stage) is at
#: least HALF_RES_MIN_SPACING pixels and the whole fit's spacing at least HALF_RES_MIN_FIT_SPACING.
#: Measured on the 24 Kodak images (docs/codec.md): up to ~0.25 bpp +0.02 to +0.17 dB and 35-40 %
#: less encode time; at 0.38-0.6 bpp halving the same stages cost 0.2-0.4 dB, hence the second bound.
HALF_RES_MIN_SPACING = 18.0
HALF_RES_MIN_FIT_SPACING = 12.0
#: Thumbnails (the short schedule) halve the stages whose own spacing is at least this, whatever the
#: whole fit's spacing: on 224x224 Flickr8k training crops at 400 Gaussians the two 50-Gaussian stages
#: (spacing 32 px) at half resolution cost 0.04 dB at equal bytes for 16 % less encode CPU (18 px,
#: also halving the third stage: -0.06 dB, -22 %).
HALF_RES_THUMBNAIL_SPACING = 24.0

#: Rate-distortion optimised quantization of images of at most ``rdoq.MAX_PIXELS`` on the 1.1 grid
#: (:mod:`.rdoq`): the lambda scale (0 turns it off; the tiny-image depths of
#: ``formats.TINY_EXTRA_BITS`` were chosen with it on). Measured in docs/codec.md, "Small images".
RDOQ_SCALE = rdoq.LAMBDA_SCALE
#: On those images the quantization-aware colour refit is the exact least-squares solve of the colours
#: (:func:`.colors.solve_colors`, under a millisecond) instead of ``refine`` Adam iterations: the same
#: PSNR at equal bytes on CIFAR-10 training images, ~20 ms less CPU per 32x32 encode.
LS_COLORS = True

#: Images of more than 64x64 pixels refit their colours with :func:`.colors.least_squares_colors`
#: (Jacobi-preconditioned conjugate gradients, ``Schedule.color_steps`` steps) instead of ``refine``
#: Adam iterations (False: Adam, as before 2026-12-04; benchmarks compare against it). Thumbnails,
#: 12 steps: +0.01 to +0.02 dB at equal bytes on 224x224 crops at a tenth of the time. Kodak, 20 steps
#: (LARGE_IMAGE_CG_STEPS) against 300 Adam iterations: -0.001 / -0.006 dB at equal bytes on the
#: mean of the 24 images at quality 45 / 75 (per image -0.085 to +0.075 dB), 33 / 18 % less encode CPU.
CG_COLORS = True
LARGE_IMAGE_CG_STEPS = 20

#: ``progress(step, total, label)`` callback type: called after each fitting step of an attempt.
Progress = Callable[[int, int, str], None]


def no_progress(step: int, total: int, label: str) -> None:
    """The :data:`Progress` callback that reports nothing."""
    return None


@dataclass(frozen=True)
class Attempt:
    """One fit-and-code at a fixed Gaussian count (what the rate search compares)."""

    #: The ``.gsplat`` bytes (1.0 or 1.1, whichever is smaller).
    data: bytes
    #: PSNR (dB, 8-bit) of the decoded file against the input pixels.
    psnr: float
    #: Coded bits per stream (``"header+models"``, ``"position"``, ...), as ``formats.write_best`` reports.
    stream_bits: dict[str, float]
    #: Gaussians in the file (the fitter may end with fewer than were asked for).
    num_gaussians: int


def check_effort(effort: int) -> int:
    """``effort`` as an int in [1, MAX_EFFORT]; anything else is an :class:`InvalidInputError`."""
    return check_int("effort", effort, minimum=1, maximum=MAX_EFFORT)


def check_fit_kwargs(fit_kwargs: Any) -> dict:
    """The stage fit options (:data:`STAGE_FIT_OPTIONS` overridden by ``fit_kwargs``), checked before
    any fitting (a typo must not fail after minutes)."""
    from ..fitting import _make_options

    if fit_kwargs is not None and not isinstance(fit_kwargs, dict):
        raise InvalidInputError(f"fit_kwargs must be a dict of fit options, got {type(fit_kwargs).__name__}")
    reserved = sorted(set(fit_kwargs or ()) & {"num_gaussians", "iterations", "seed", "threads", "init",
                                                "return_stats", "max_pixels", "device"})
    if reserved:
        raise InvalidInputError(f"fit_kwargs cannot set {', '.join(reserved)}: encode chooses them")
    merged = {**STAGE_FIT_OPTIONS, **(fit_kwargs or {})}
    _make_options(merged).check()
    # The image was checked against the caller's pixel limit already; the stage fits must not apply
    # the default one again (encode(max_pixels=None) of a large image would fail halfway).
    return {**merged, "max_pixels": None}


@dataclass(frozen=True)
class Schedule:
    """How long an encode fits: iterations per coarse-to-fine stage, joint-polish (and colour refit)
    iterations, and the polish's learning-rate scale."""

    stage_iterations: int
    refine_iterations: int
    polish_lr_scale: float
    #: A stage is fitted at half resolution when its own mean spacing is at least the first and the
    #: whole fit's at least the second (see HALF_RES_MIN_SPACING).
    half_res_spacing: tuple[float, float] = (HALF_RES_MIN_SPACING, HALF_RES_MIN_FIT_SPACING)
    #: Conjugate-gradient steps of the colour refit (:mod:`.colors`, with CG_COLORS); 0: Adam,
    #: ``refine_iterations`` of it.
    color_steps: int = 0


def schedule_for(effort: int, pixels: int = 0, gaussians: int = 0) -> Schedule:
    """The fitting schedule of an encode at ``effort`` of an image of ``pixels`` with ``gaussians``.

    Large images (and every image with SCALED_SCHEDULE off): measured on 256x256 Kodak crops
    (kodim01, kodim23; quality 45 and 72), 800 iterations per stage match 1500 within the fits' noise
    (+-0.3 dB), 500 lose ~0.2 dB, 300 ~0.3 dB; polish at 0.3 x the fit's learning rates; colour
    refit by LARGE_IMAGE_CG_STEPS conjugate-gradient steps (docs/codec.md).

    Thumbnails (more than 64x64, at most SHORT_SCHEDULE_PIXELS; 224x224 Flickr8k *training* crops at
    400 Gaussians, effort 4): 250 iterations per stage and a 150-iteration polish at 1.0 x the
    learning rates give the PSNR at equal bytes of 400 + 150 at 0.3 x (which took half the time of
    800 + 300 for -0.09 dB) with 1,200 fewer stage iterations; their colour refit is the
    conjugate-gradient solve of :mod:`.colors`, and stages with a mean spacing of at least
    HALF_RES_THUMBNAIL_SPACING fit at half resolution.

    Images of at most 64x64 pixels (with RDOQ and least-squares colours) spend the time the other
    way round, when ``gaussians`` makes the mean spacing at most TINY_SCHEDULE_MAX_SPACING (8 and 12
    Gaussians on 32x32 lost ~1 dB with it): 150 iterations per stage and a 600-iteration polish at
    1.5 x the learning rates at effort 4 (CIFAR-10 training images: +0.3 to +0.75 dB at equal bytes
    over 800 + 300, and within 0.05 dB of a 1000-iteration polish at 0.3 x at 40 % less CPU).
    """
    tiny_density = gaussians > 0 and pixels <= gaussians * TINY_SCHEDULE_MAX_SPACING ** 2
    if SCALED_SCHEDULE and TINY_SCHEDULE and 0 < pixels <= TINY_IMAGE_PIXELS and tiny_density:
        return Schedule(25 * effort + 50, 125 * effort + 100, 1.5)
    if SCALED_SCHEDULE and TINY_IMAGE_PIXELS < pixels <= SHORT_SCHEDULE_PIXELS:
        return Schedule(50 * effort + 50, 25 * effort + 50, 1.0, (HALF_RES_THUMBNAIL_SPACING, 0.0),
                        color_steps=colors.CG_STEPS)
    return Schedule(150 * effort + 200, 50 * effort + 100, 0.3, color_steps=LARGE_IMAGE_CG_STEPS)


def downscale2(image: np.ndarray) -> np.ndarray:
    """2x2 box average; an odd last row/column is repeated first, so block (i, j) is pixels 2i..2i+1."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2, -1).mean(axis=(1, 3))


def upscale2(splats: Splats, width: int, height: int) -> Splats:
    """Gaussians fitted to :func:`downscale2` of a ``width`` x ``height`` image, in that image's pixels.

    Half-resolution pixel centre i + 0.5 is the centre 2i + 1 of its 2x2 block, so positions and
    Cholesky factors scale by exactly 2; colours are amplitudes and stay.
    """
    return Splats(splats.xy * np.float32(2), splats.chol * np.float32(2), splats.color, width, height)


def fit_coarse_to_fine(pixels: np.ndarray, n: int, levels: int, plan: Schedule, seed: int, threads: int,
                       fit_kwargs: dict, progress: Progress = no_progress,
                       device: str = "cpu") -> tuple[Splats, list[int] | None]:
    """Fit ``n`` Gaussians in stages: each stage is fitted to the residual of the ones before.

    There are ``max(levels, FIT_STAGES)`` stages; the stored progressive groups are the stages, the
    first ones merged when ``levels`` is smaller (``levels=1``: one group, no order information
    to pay for, but the same coarse-to-fine fit).
    Stage k (sizes double: n/8, n/8, n/4, n/2 for 4 stages) only sees what stages 0..k-1 left
    unexplained, so every prefix of groups is a good image on its own (progressive decoding), and
    the coarse-to-fine start also beats one joint fit from the adaptive initialisation: on the
    centre 256x256 crop of kodim23 with 1000 Gaussians, 37.7 dB (effort 4: 800 iterations per
    stage, 300 of polish) against 37.0 dB for a joint fit of 1500 iterations (docs/codec.md). Returns
    the Gaussians in group order and the group sizes (None when the fitter changed the count, e.g.
    with pruning options). Every fit and render runs on ``device`` ("cpu", "cuda" or "auto").
    """
    from ..fitting import fit
    from ..render import render_float

    iters, refine = plan.stage_iterations, plan.refine_iterations
    sizes = group_sizes_for(n, max(levels, FIT_STAGES))
    total = len(sizes) + 2
    if len(sizes) <= 1:
        result = fit(pixels, num_gaussians=n, iterations=iters, seed=seed, threads=threads, device=device,
                     **fit_kwargs)
        progress(total - 1, total, "fitted")
        return result, None
    target = pixels.astype(np.float32).reshape(pixels.shape[0], pixels.shape[1], -1) / np.float32(255.0)
    explained = np.zeros_like(target)
    parts: list[Splats] = []
    height, width = target.shape[:2]
    stage_spacing, fit_spacing = plan.half_res_spacing
    low_rate = math.sqrt(width * height / n) >= fit_spacing
    for k, size in enumerate(sizes):
        residual = target - explained
        if low_rate and math.sqrt(width * height / size) >= stage_spacing:
            part = upscale2(fit(downscale2(residual), num_gaussians=size, iterations=iters, seed=seed + k,
                                threads=threads, device=device, **fit_kwargs), width, height)
        else:
            part = fit(residual, num_gaussians=size, iterations=iters, seed=seed + k, threads=threads,
                       device=device, **fit_kwargs)
        explained += render_float(part, max_pixels=None, device=device).reshape(target.shape)
        parts.append(part)
        progress(k + 1, total, f"fitted stage {k + 1}/{len(sizes)}")
    stacked = Splats(np.concatenate([p.xy for p in parts]), np.concatenate([p.chol for p in parts]),
                     np.concatenate([p.color for p in parts]), pixels.shape[1], pixels.shape[0])
    groups = [p.num_gaussians for p in parts]
    if levels < len(groups):  # merge the leading stages into the first stored group
        cut = len(groups) - levels + 1
        groups = [sum(groups[:cut])] + groups[cut:]
    if refine:  # short joint polish; moves the groups a little but keeps the prefixes useful
        stacked = fit(pixels, init=stacked, iterations=refine, seed=seed, threads=threads,
                      lr_scale=plan.polish_lr_scale, max_pixels=None, device=device)
        progress(total - 1, total, "joint polish")
    return stacked, (groups if stacked.num_gaussians == sum(groups) else None)


def fit_and_code(pixels: np.ndarray, n: int, bits: BitDepths, effort: int, levels: int, seed: int, threads: int,
                 metadata: dict[str, str | bytes] | None, fit_kwargs: dict, progress: Progress = no_progress,
                 priors: Any = None, device: str = "cpu") -> Attempt:
    """One fit + quantization-aware refinement (+ RDOQ on tiny images) + coding of ``pixels`` (uint8)
    at ``n`` Gaussians; the returned PSNR is that of the Gaussians the file decodes to.

    ``bits``, ``levels``, ``metadata`` and ``priors`` are the file's settings; ``effort``, ``seed``,
    ``threads``, ``fit_kwargs`` (already checked by :func:`check_fit_kwargs`) and ``device`` (where the
    fits and renders run) the fits'.
    """
    from ..fitting import fit  # the native core; imported lazily so the format code works without it
    from ..metrics import psnr
    from ..render import render

    h, w = pixels.shape[:2]
    plan = schedule_for(effort, h * w, n)
    splats, groups = fit_coarse_to_fine(pixels, n, levels, plan, seed, threads, fit_kwargs, progress, device)
    grid = formats.compact_grid(w, h, splats.num_gaussians, len(bits.color), metadata)  # None: 1.0 grid
    q = quantize(splats, bits, levels=levels, groups=groups, ranges=grid)
    tiny_on_grid = grid is not None and h * w <= TINY_IMAGE_PIXELS  # least-squares colours and RDOQ
    target = pixels.astype(np.float64) / 255.0 if tiny_on_grid else None
    if plan.refine_iterations:
        # Quantization-aware step: keep the quantized geometry fixed and re-fit the colours to it (the
        # image is linear in the colours, so they can absorb much of the geometry's quantization
        # error); then quantize the colours on the same geometry grid. Measured on Kodak crops this
        # beats refining all parameters and re-quantizing (the re-quantization undoes the refinement).
        geometry = q.ranges[:GEOMETRY_FLOATS].copy()
        if LS_COLORS and tiny_on_grid:  # solve exactly
            refit = colors.solve_colors(dequantize(q), target)
        elif CG_COLORS and plan.color_steps:
            refit = colors.least_squares_colors(dequantize(q), pixels / 255.0, plan.color_steps, threads=threads,
                                                device=device)
        else:
            refit = fit(pixels, init=dequantize(q), iterations=plan.refine_iterations, seed=seed, threads=threads,
                        max_pixels=None, device=device, lr_xy=0.0, lr_chol=0.0)  # colours only
        if refit.num_gaussians == q.num_gaussians:  # same Gaussians, same (file) order
            q = quantize(refit, bits, levels=levels, geometry_ranges=geometry, groups=q.group_sizes, ranges=grid)
    if tiny_on_grid and RDOQ_SCALE > 0 and compact.can_write(q) is None:
        q = rdoq.optimise(q, target, priors or builtin(), RDOQ_SCALE)
    data, stream_bits = formats.write_best(q, metadata, priors)
    steps = len(group_sizes_for(n, max(levels, FIT_STAGES))) + 2
    progress(steps, steps, "quantized and coded")
    psnr_db = psnr(render(dequantize(q), max_pixels=None, device=device).reshape(pixels.shape), pixels)
    return Attempt(data, psnr_db, stream_bits, q.num_gaussians)


__all__ = ["Attempt", "CG_COLORS", "DEFAULT_EFFORT", "FIT_STAGES", "HALF_RES_MIN_FIT_SPACING",
           "HALF_RES_MIN_SPACING", "HALF_RES_THUMBNAIL_SPACING", "LARGE_IMAGE_CG_STEPS", "LS_COLORS", "MAX_EFFORT",
           "Progress", "RDOQ_SCALE", "SCALED_SCHEDULE", "Schedule", "SHORT_SCHEDULE_PIXELS", "STAGE_FIT_OPTIONS",
           "TINY_IMAGE_PIXELS", "TINY_SCHEDULE", "TINY_SCHEDULE_MAX_SPACING", "check_effort", "check_fit_kwargs", "downscale2", "fit_and_code",
           "fit_coarse_to_fine", "no_progress", "schedule_for", "upscale2"]
