"""Numpy reference of :func:`splatcodec.codec.rdoq.optimise` (the implementation before the sweep moved
to the native core, src_cuda/rdoq_cpu.cpp), for tests only.

Same moves, visiting order, acceptance rule, lambda and sweeps as the codec, but every step in plain
numpy over the whole image: each sweep computes all Gaussians' candidate footprints, then visits the
Gaussians in order; the position moves' rate is the change of the group's sorted Morton gap bits,
computed on Python lists. It shares only the rate model (``rdoq._Costs``), the numpy footprint
(``colors.footprints``) and the problem setup (``rdoq._setup``) with the codec, none of them native.
"""
from __future__ import annotations

import bisect

import numpy as np

from splatcodec.codec import colors as color_solve, rdoq
from splatcodec.codec.priors import Priors
from splatcodec.codec.quantize import Quantized


def morton(x: int, y: int, bits: int) -> int:
    """:func:`~splatcodec.codec.quantize.morton_encode` of one position (Python ints)."""
    code = 0
    for k in range(bits):
        code |= ((x >> k) & 1) << (2 * k) | ((y >> k) & 1) << (2 * k + 1)
    return code


def gap_delta(cost: list[float], ordered: list[int], old: int, new: int) -> float:
    """Change of a group's gap bits (``rdoq._Costs.gaps``, length-symbol bits ``cost``) when the code
    ``old`` of its sorted codes ``ordered`` becomes ``new``."""
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


def optimise(q: Quantized, target: np.ndarray, priors: Priors, lambda_scale: float = rdoq.LAMBDA_SCALE,
             sweeps: int | None = None) -> Quantized:
    """What :func:`splatcodec.codec.rdoq.optimise` computes, in numpy."""
    n = q.num_gaussians
    h, w = q.height, q.width
    channels = len(q.bits.color)
    sweeps = rdoq.SWEEPS if sweeps is None else sweeps
    p = rdoq._setup(q, target, priors)
    if n == 0 or lambda_scale < 0:
        return q
    target = p.target.reshape(h * w, channels)
    pos_bits = q.bits.pos
    cols = p.sym.shape[1]
    sym = p.sym.copy()
    top, step, lo, to_rgb, costs = p.top, p.step, p.lo, p.to_rgb, p.costs
    ys, xs = np.mgrid[0:h, 0:w]
    px = (xs.reshape(-1) + 0.5).astype(np.float32)
    py = (ys.reshape(-1) + 0.5).astype(np.float32)

    vals = lo + sym * step
    weights = color_solve.footprints(*vals[:, :5].T, px, py).astype(np.float64)  # (N, P)
    colors = vals[:, 5:] @ to_rgb.T  # (N, C) RGB
    error = target - weights.T @ colors  # (P, C): target minus render
    row_bits = costs.rows(sym[:, 2:])
    groups = np.repeat(np.arange(len(q.group_sizes)), q.group_sizes).tolist()
    bounds = np.cumsum([0, *q.group_sizes]).tolist()
    codes = [morton(int(x), int(y), pos_bits) for x, y in sym[:, :2]]
    gap_cost = [costs.gap_costs(pos_bits, size).tolist() for size in q.group_sizes]
    ordered = [sorted(codes[bounds[g]:bounds[g + 1]]) for g in range(len(q.group_sizes))]
    distortion, rate = p.distortion(), p.rate()
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
            params[:, g_idx, col] = lo[col] + cand[:, m] * step[col]
        flat = params.reshape(-1, 5)
        dw = color_solve.footprints(*flat.T, px, py).reshape(n, len(geo_moves), -1)
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
                    dj[m] += lam * gap_delta(gap_cost[gi], ordered[gi], codes[i], morton(xy[0], xy[1], pos_bits))
            dj[~valid[i]] = np.inf
            m = int(np.argmin(dj))
            if not dj[m] < 0:
                continue
            moved = True
            col, d = moves[m]
            old = np.outer(weights[i], ci)
            sym[i, col] += d
            vals[i, col] = lo[col] + sym[i, col] * step[col]
            if col < 5:
                weights[i] = weights[i] - dw[i, geo_moves.index(m)].astype(np.float64)
            else:
                colors[i] = vals[i, 5:] @ to_rgb.T
            error += old - np.outer(weights[i], colors[i])
            if col < 2:
                codes[i] = morton(int(sym[i, 0]), int(sym[i, 1]), pos_bits)
                ordered[gi] = sorted(codes[bounds[gi]:bounds[gi + 1]])
            else:
                row_bits[i] = costs.rows(sym[i:i + 1, 2:])[0]
        if not moved:
            break
    return rdoq._canonical(q, sym)
