"""Rate search: the Gaussian count that meets a target file size (bpp) or a target PSNR.

Each search calls ``attempt(n)`` (a fit-and-code at ``n`` Gaussians returning an
:class:`~.fit_strategy.Attempt`) a few times, predicting the next ``n`` from the last result, and
returns the chosen attempt. The searches know nothing of images or files: the encoder
(:func:`.encoder.encode`) builds ``attempt`` and records every call.
"""
from __future__ import annotations

from typing import Callable

from .fit_strategy import Attempt

#: Relative tolerance of ``target_bpp`` and absolute tolerance (dB) of ``target_psnr``.
BPP_TOLERANCE = 0.05
PSNR_TOLERANCE = 0.2
#: Largest rate targets: 8-bit RGB costs 24 bpp uncoded; an exact fit reports 99 dB.
MAX_TARGET_BPP = 64.0
MAX_TARGET_PSNR = 99.0

#: Starting guess of the coded size of one Gaussian, in bits (refined from each attempt).
BITS_PER_GAUSSIAN_GUESS = 40.0

#: ``attempt(n)``: fit and code at ``n`` Gaussians.
AttemptFn = Callable[[int], Attempt]


def search_bpp(attempt: AttemptFn, target: float, pixels: int, effort: int, n_max: int) -> Attempt:
    """The attempt whose file is ``target`` bits per pixel (of ``pixels``) within :data:`BPP_TOLERANCE`.

    At most ``2 + effort // 2`` attempts, with counts in [16, ``n_max``]. When none lands within the
    tolerance, the largest file not above ``target * (1 + BPP_TOLERANCE)`` is returned, else the
    file closest to the target.
    """
    budget = target * pixels
    n = min(max(16, int(budget / BITS_PER_GAUSSIAN_GUESS)), n_max)
    best = None  # the largest file within the tolerance above the target
    fallback = None  # the file closest to the target
    for _ in range(2 + effort // 2):
        res = attempt(n)
        size_bits = 8.0 * len(res.data)
        if size_bits <= budget * (1 + BPP_TOLERANCE) and (best is None or len(res.data) > len(best.data)):
            best = res
        if fallback is None or abs(size_bits - budget) < abs(8.0 * len(fallback.data) - budget):
            fallback = res
        if abs(size_bits - budget) <= BPP_TOLERANCE * budget:
            return res
        # Size = fixed overhead (header, models) + N * bits per Gaussian; solve for N.
        overhead = res.stream_bits.get("header+models", 0.0)
        per_gaussian = max(size_bits - overhead, 1.0) / res.num_gaussians
        n_next = min(max(16, int((budget * (1 - BPP_TOLERANCE / 2) - overhead) / per_gaussian)), n_max)
        if n_next == n:
            break
        n = n_next
    return best if best is not None else fallback


def search_psnr(attempt: AttemptFn, target: float, pixels: int, effort: int, n_max: int) -> Attempt:
    """The smallest attempt within :data:`PSNR_TOLERANCE` below ``target`` dB or better.

    At most ``2 + effort // 2`` attempts, with counts in [16, ``n_max``], stopping early within half
    the tolerance; when no attempt reaches the target (e.g. it is unreachable), the best one is
    returned.
    """
    n = min(max(16, int(pixels / 60)), n_max)
    passing = None
    best = None
    for _ in range(2 + effort // 2):
        res = attempt(n)
        p = res.psnr
        if p >= target - PSNR_TOLERANCE and (passing is None or len(res.data) < len(passing.data)):
            passing = res
        if best is None or p > best.psnr:
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


__all__ = ["AttemptFn", "BITS_PER_GAUSSIAN_GUESS", "BPP_TOLERANCE", "MAX_TARGET_BPP", "MAX_TARGET_PSNR",
           "PSNR_TOLERANCE", "search_bpp", "search_psnr"]
