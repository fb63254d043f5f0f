"""Rate-distortion optimised quantization (RDOQ) of small images on the 1.1 grid.

Plain quantization rounds every attribute to its nearest grid value. Under the 1.1 file's trained
tables (contexts included) a neighbouring value is often much cheaper, and on a tiny image a single
Gaussian's rounding error is visible in the PSNR. :func:`optimise` therefore revisits every
Gaussian of an already quantized :class:`~.quantize.Quantized` and moves single symbols by one grid
step where that lowers ``D + lambda R``:

* ``D``: squared error of the rendered image (float, before the decoder's 8-bit clip) against the
  target, summed over pixels and channels, in image units / 255; the render is the core's model
  (``I(p) = sum c exp(-q/2)``, cut off at 3 sigma; docs/codec.md) evaluated here in numpy, so the
  change of ``D`` of a move is exact up to float rounding.
* ``R``: the bits the 1.1 coder spends on the Gaussian's attribute row under the built-in (or dataset)
  priors, contexts included, and for a position move the Morton gap bits of its group; the ideal
  cost ``-log2 p``, which the range coder meets to a fraction of a bit per file.
* ``lambda = LAMBDA_SCALE * D / R`` at the starting point: the slope of the codec's own
  rate-distortion curve. With PSNR growing by ``s`` dB per doubling of the file, ``-dD/dR =
  D s ln 10 / (10 R ln 2)``; s ~ 4.6 dB on CIFAR-10 gives ~1.5 D / R.

Each move is accepted only when it lowers ``D + lambda R``, so the result never costs more than plain
rounding under that measure (tests/test_rdoq.py). The Gaussian count and the grid are unchanged: the
output is a valid 1.1 quantization of the same image, re-sorted into canonical (Morton) order.
Measurements: docs/codec.md, "Small images: format 1.1".
"""
from __future__ import annotations

import bisect

import numpy as np

from ..splats import CUTOFF_SIGMA
from .priors import CONTEXTS, Priors, context, ref_index
from ..splats import Splats
from .quantize import _YCBCR_TO_RGB, COLOR_YCBCR, Quantized, _geometry, from_symbols, morton_encode
from .rangecoder import TABLE_BITS

#: ``lambda = LAMBDA_SCALE * D / R`` (see the module docstring; chosen on CIFAR-10 training images).
LAMBDA_SCALE = 1.5
#: Passes over all Gaussians.
SWEEPS = 3
#: Largest image (pixels) :func:`optimise` works on (every Gaussian is rendered over the whole image).
MAX_PIXELS = 64 * 64


class _Costs:
    """-log2 p of every symbol under ``priors``, per (attribute, context, depth)."""

    def __init__(self, priors: Priors, depths: list[int]) -> None:
        self.priors = priors
        self.depths = depths
        self.cache: dict[tuple[int, int], np.ndarray] = {}

    def table(self, k: int, ctx: int) -> np.ndarray:
        key = (k, ctx)
        cost = self.cache.get(key)
        if cost is None:
            freq = np.asarray(self.priors.table(k, ctx, self.depths[k]).freq, np.float64)
            cost = self.cache[key] = TABLE_BITS - np.log2(freq)
        return cost

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Bits of every attribute row of ``rows`` (M, 3 + C) (log a, log b, shear, colours)."""
        refs: list[np.ndarray] = []
        total = np.zeros(rows.shape[0])
        for k in range(rows.shape[1]):
            total += self.matrix(k)[context(k, refs), rows[:, k]]
            refs.append(ref_index(rows[:, k], self.depths[k]))
        return total

    def matrix(self, k: int) -> np.ndarray:
        """(contexts, symbols) bits of attribute ``k``."""
        key = ("matrix", k)
        cost = self.cache.get(key)  # type: ignore[arg-type]
        if cost is None:
            cost = self.cache[key] = np.stack([self.table(k, c) for c in range(CONTEXTS[k])])  # type: ignore
        return cost

    def gaps(self, codes: list[int], pos_bits: int) -> float:
        """Bits of a group's Morton codes as sorted gaps (length symbol + raw bits below the top one)."""
        key = ("gap", pos_bits, len(codes).bit_length())
        cost = self.cache.get(key)  # type: ignore[arg-type]
        if cost is None:
            table = self.priors.gap_table(pos_bits, len(codes))
            cost = self.cache[key] = (TABLE_BITS - np.log2(np.asarray(table.freq, np.float64))).tolist()  # type: ignore
        total = 0.0
        previous = 0
        for code in sorted(codes):
            length = (code - previous).bit_length()
            total += cost[length] + max(length - 1, 0)
            previous = code
        return total


    def gap_delta(self, ordered: list[int], old: int, new: int, pos_bits: int) -> float:
        """Change of :meth:`gaps` when the code ``old`` of the sorted list ``ordered`` becomes ``new``."""
        cost = self.cache.get(("gap", pos_bits, len(ordered).bit_length()))  # type: ignore[arg-type]
        if cost is None:
            self.gaps(ordered, pos_bits)
            cost = self.cache[("gap", pos_bits, len(ordered).bit_length())]  # type: ignore[index]

        def bits(gap: int) -> float:
            length = gap.bit_length()
            return cost[length] + (length - 1 if length else 0)

        rest = list(ordered)
        k = bisect.bisect_left(rest, old)
        del rest[k]
        prev = rest[k - 1] if k else 0
        delta = -bits(old - prev)
        if k < len(rest):
            delta += bits(rest[k] - prev) - bits(rest[k] - old)
        k = bisect.bisect_right(rest, new)
        prev = rest[k - 1] if k else 0
        delta += bits(new - prev)
        if k < len(rest):
            delta += bits(rest[k] - new) - bits(rest[k] - prev)
        return delta


def _morton(x: int, y: int, bits: int) -> int:
    """:func:`~.quantize.morton_encode` of one position (Python ints)."""
    code = 0
    for k in range(bits):
        code |= ((x >> k) & 1) << (2 * k) | ((y >> k) & 1) << (2 * k + 1)
    return code


def _weights(x: np.ndarray, y: np.ndarray, log_a: np.ndarray, log_b: np.ndarray, shear: np.ndarray,
             px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """(M, P) float32 footprint exp(-q/2) (0 beyond the cutoff) of M Gaussians at pixel centres (px, py)."""
    inv_a = np.exp(-log_a).astype(np.float32)[:, None]
    inv_b = np.exp(-log_b).astype(np.float32)[:, None]
    c = (np.sinh(shear) * np.exp(log_b)).astype(np.float32)[:, None]
    z1 = (px[None, :] - x.astype(np.float32)[:, None]) * inv_a
    z2 = py[None, :] - y.astype(np.float32)[:, None]
    z2 -= c * z1
    z2 *= inv_b
    z1 *= z1
    z2 *= z2
    z1 += z2  # q
    out = np.exp(np.float32(-0.5) * z1)
    out[z1 > np.float32(CUTOFF_SIGMA ** 2)] = 0.0
    return out


def optimise(q: Quantized, target: np.ndarray, priors: Priors, lambda_scale: float = LAMBDA_SCALE,
             sweeps: int | None = None) -> Quantized:
    """``q`` with single-step symbol moves that lower ``D + lambda R`` (module docstring).

    ``target``: the image (H, W) or (H, W, C) as floats in image units / 255 (``pixels / 255``).
    ``q`` must be quantized on the 1.1 grid (its ranges are used as they are). In every sweep each
    Gaussian in turn takes the best of its one-step moves (up or down in one attribute) if that
    lowers ``D + lambda R``; the moves' rate and footprint changes are computed for all Gaussians at
    the start of a sweep (a Gaussian's own row and footprint only change by its own move).
    """
    n = q.num_gaussians
    h, w = q.height, q.width
    channels = len(q.bits.color)
    target = np.asarray(target, np.float64).reshape(h * w, channels)
    sweeps = SWEEPS if sweeps is None else sweeps
    if n == 0 or lambda_scale < 0:
        return q
    depths = q.attribute_bits()
    pos_bits = q.bits.pos
    all_depths = [pos_bits, pos_bits, *depths]
    cols = len(all_depths)
    r = np.asarray(q.ranges, np.float64)
    sym = np.concatenate([q.qx[:, None], q.qy[:, None], q.qattr], axis=1).astype(np.int64)  # (N, 5 + C)
    top = np.array([(1 << d) - 1 for d in all_depths], np.int64)
    step = (r[:, 1] - r[:, 0]) / top

    def values(s: np.ndarray) -> np.ndarray:  # symbols (..., cols) -> attribute values
        return r[:, 0] + s * step

    to_rgb = _YCBCR_TO_RGB if q.color_space == COLOR_YCBCR else np.eye(channels)
    ys, xs = np.mgrid[0:h, 0:w]
    px = (xs.reshape(-1) + 0.5).astype(np.float32)
    py = (ys.reshape(-1) + 0.5).astype(np.float32)

    vals = values(sym)
    weights = _weights(*vals[:, :5].T, px, py).astype(np.float64)  # (N, P)
    colors = vals[:, 5:] @ to_rgb.T  # (N, C) RGB
    error = target - weights.T @ colors  # (P, C): target minus render
    costs = _Costs(priors, depths)
    row_bits = costs.rows(sym[:, 2:])
    groups = np.repeat(np.arange(len(q.group_sizes)), q.group_sizes).tolist()
    bounds = np.cumsum([0, *q.group_sizes]).tolist()
    codes = morton_encode(sym[:, 0], sym[:, 1], pos_bits).astype(np.int64).tolist()
    gap_bits = [costs.gaps(codes[bounds[g]:bounds[g + 1]], pos_bits) for g in range(len(q.group_sizes))]
    ordered = [sorted(codes[bounds[g]:bounds[g + 1]]) for g in range(len(q.group_sizes))]
    distortion = float((error ** 2).sum())
    rate = float(row_bits.sum() + sum(gap_bits))
    lam = lambda_scale * distortion / max(rate, 1.0)
    moves = [(col, d) for col in range(cols) for d in (-1, 1)]
    geo_moves = [m for m, (col, _) in enumerate(moves) if col < 5]
    col_moves = [m for m, (col, _) in enumerate(moves) if col >= 5]
    # RGB change of every colour move: d * step * column of the YCbCr -> RGB matrix.
    dcolor = np.array([d * step[col] * to_rgb[:, col - 5] for col, d in (moves[m] for m in col_moves)])

    for _ in range(sweeps):
        # Candidate symbols (N, moves) and their validity, rate and footprint changes.
        cand = np.empty((n, len(moves)), np.int64)
        for m, (col, d) in enumerate(moves):
            cand[:, m] = sym[:, col] + d
        valid = (cand >= 0) & (cand <= top[[col for col, _ in moves]])
        d_rate = np.zeros((n, len(moves)))
        for m, (col, _) in enumerate(moves):
            if col >= 2:
                trial = sym[:, 2:].copy()
                trial[:, col - 2] = np.clip(cand[:, m], 0, top[col])
                d_rate[:, m] = costs.rows(trial) - row_bits
        params = np.repeat(vals[:, None, :5], len(geo_moves), axis=1)  # (N, G, 5)
        for g_idx, m in enumerate(geo_moves):
            col = moves[m][0]
            params[:, g_idx, col] = r[col, 0] + cand[:, m] * step[col]
        flat = params.reshape(-1, 5)
        dw = _weights(*flat.T, px, py).reshape(n, len(geo_moves), -1)
        np.subtract(weights[:, None, :].astype(np.float32), dw, out=dw)  # (N, G, P): old minus new footprint
        dw2 = np.einsum("ngp,ngp->ng", dw, dw, dtype=np.float64)  # (N, G)
        moved = False
        for i in range(n):
            ci = colors[i]
            dj = np.full(len(moves), np.inf)
            # geometry: ||e + dw c||^2 - ||e||^2
            dj[geo_moves] = 2.0 * (dw[i] @ (error @ ci).astype(np.float32)) + float(ci @ ci) * dw2[i]
            # colours: ||e - w dc||^2 - ||e||^2
            wi = weights[i]
            dj[col_moves] = -2.0 * (dcolor @ (error.T @ wi)) + float(wi @ wi) * (dcolor * dcolor).sum(axis=1)
            dj += lam * d_rate[i]
            gi = groups[i]
            for m, (col, d) in enumerate(moves[:4]):  # x and y: the rate is the group's Morton gaps
                if valid[i, m]:
                    xy = [int(sym[i, 0]), int(sym[i, 1])]
                    xy[col] += d
                    dj[m] += lam * costs.gap_delta(ordered[gi], codes[i], _morton(xy[0], xy[1], pos_bits), pos_bits)
            dj[~valid[i]] = np.inf
            m = int(np.argmin(dj))
            if not dj[m] < 0:
                continue
            moved = True
            col, d = moves[m]
            old = np.outer(weights[i], ci)
            sym[i, col] += d
            vals[i, col] = r[col, 0] + sym[i, col] * step[col]
            if col < 5:
                weights[i] = weights[i] - dw[i, geo_moves.index(m)].astype(np.float64)
            else:
                colors[i] = vals[i, 5:] @ to_rgb.T
            error += old - np.outer(weights[i], colors[i])
            if col < 2:
                codes[i] = _morton(int(sym[i, 0]), int(sym[i, 1]), pos_bits)
                ordered[gi] = sorted(codes[bounds[gi]:bounds[gi + 1]])
            else:
                row_bits[i] = costs.rows(sym[i:i + 1, 2:])[0]
        if not moved:
            break

    # Canonical order again: Morton order inside each group (ties by the previous order).
    order = []
    start = 0
    code_array = np.asarray(codes, np.int64)
    for size in q.group_sizes:
        members = np.arange(start, start + size)
        order.append(members[np.lexsort((members, code_array[members]))])
        start += size
    perm = np.concatenate(order)
    return Quantized(q.width, q.height, q.color_space, q.bits, q.ranges, list(q.group_sizes),
                     sym[perm, 0].copy(), sym[perm, 1].copy(), sym[perm, 2:].copy())


def solve_colors(splats: Splats, target: np.ndarray, ridge: float = 1e-6) -> Splats:
    """``splats`` with the colours that minimise the squared error of the render against ``target``
    (the render is linear in them: a least-squares solve; ``ridge`` x mean footprint energy keeps
    near-duplicate footprints from cancelling with huge colours)."""
    h, w = splats.height, splats.width
    ys, xs = np.mgrid[0:h, 0:w]
    geom = _geometry(splats)
    weights = _weights(splats.xy[:, 0].astype(np.float64), splats.xy[:, 1].astype(np.float64), geom[:, 0],
                       geom[:, 1], geom[:, 2], (xs.reshape(-1) + 0.5).astype(np.float32),
                       (ys.reshape(-1) + 0.5).astype(np.float32)).astype(np.float64)
    gram = weights @ weights.T
    gram[np.diag_indices_from(gram)] += ridge * max(float(np.trace(gram)) / max(len(gram), 1), 1e-12)
    rhs = weights @ np.asarray(target, np.float64).reshape(h * w, -1)
    colors = np.linalg.solve(gram, rhs)
    return Splats(splats.xy, splats.chol, colors.astype(np.float32), w, h)


def objective(q: Quantized, target: np.ndarray, priors: Priors) -> tuple[float, float]:
    """(D, R) of ``q`` as :func:`optimise` measures them (for tests and measurements)."""
    h, w = q.height, q.width
    channels = len(q.bits.color)
    depths = q.attribute_bits()
    pos_bits = q.bits.pos
    all_depths = [pos_bits, pos_bits, *depths]
    r = np.asarray(q.ranges, np.float64)
    sym = np.concatenate([q.qx[:, None], q.qy[:, None], q.qattr], axis=1).astype(np.int64)
    vals = np.stack([from_symbols(sym[:, k], r[k, 0], r[k, 1], all_depths[k]) for k in range(sym.shape[1])], axis=1)
    to_rgb = _YCBCR_TO_RGB if q.color_space == COLOR_YCBCR else np.eye(channels)
    ys, xs = np.mgrid[0:h, 0:w]
    weights = _weights(*vals[:, :5].T, (xs.reshape(-1) + 0.5).astype(np.float32),
                       (ys.reshape(-1) + 0.5).astype(np.float32)).astype(np.float64)
    error = np.asarray(target, np.float64).reshape(h * w, channels) - weights.T @ (vals[:, 5:] @ to_rgb.T)
    costs = _Costs(priors, depths)
    rate = float(costs.rows(sym[:, 2:]).sum())
    codes = morton_encode(sym[:, 0], sym[:, 1], pos_bits).astype(np.int64).tolist()
    start = 0
    for size in q.group_sizes:
        rate += costs.gaps(codes[start:start + size], pos_bits)
        start += size
    return float((error ** 2).sum()), float(rate)


__all__ = ["LAMBDA_SCALE", "MAX_PIXELS", "SWEEPS", "objective", "optimise", "solve_colors"]
