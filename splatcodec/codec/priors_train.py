"""Training :class:`~.priors.Priors` tables from quantized Gaussians (built-in and dataset priors).

Counts are taken at the reference depth (symbols at any depth are mapped with ``ref_index``), per
context exactly as the coder forms them, then smoothed toward the attribute's marginal (so contexts
seen rarely fall back to the overall shape) and scaled to 16-bit weights.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .priors import CONTEXTS, GAP_OFFSET, GAP_SIZE, REF_BITS, TABLE_NAMES, Priors, context, gap_base, ref_index
from .quantize import Quantized, morton_encode


class PriorCounts:
    """Running symbol counts per attribute table and context, and gap-length counts."""

    def __init__(self) -> None:
        self.tables = [np.zeros((c, 1 << REF_BITS), np.int64) for c in CONTEXTS]
        self.gap = np.zeros(GAP_SIZE, np.int64)

    def add(self, q: Quantized) -> None:
        """Count ``q``'s symbols (any depths; groups as stored)."""
        depths = q.attribute_bits()
        refs = np.stack([[ref_index(int(v), b) for v in q.qattr[:, k]] for k, b in enumerate(depths)], axis=1) \
            if q.num_gaussians else np.zeros((0, len(depths)), np.int64)
        for row in refs.tolist():
            for k in range(len(depths)):
                self.tables[k][context(k, row[:k]), row[k]] += 1
        start = 0
        for size in q.group_sizes:
            codes = morton_encode(q.qx[start:start + size], q.qy[start:start + size], q.bits.pos).astype(np.int64)
            gaps = np.diff(codes, prepend=0)
            base = gap_base(q.bits.pos, size)
            for gap in gaps.tolist():
                self.gap[min(max(int(gap).bit_length() - base + GAP_OFFSET, 0), GAP_SIZE - 1)] += 1
            start += size

    def priors(self, pseudo: float = 32.0) -> Priors:
        """Smoothed 16-bit tables: each context row gets ``pseudo`` samples of the attribute's marginal."""
        tables = []
        for counts in self.tables:
            marginal = counts.sum(axis=0).astype(np.float64) + 0.5
            marginal /= marginal.sum()
            rows = counts + pseudo * marginal
            tables.append(_to_u16(rows))
        gap = _to_u16((self.gap + 0.5)[None, :])[0]
        return Priors(tables, gap)


def _to_u16(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, np.float64)
    scaled = np.floor(rows * (65535.0 / rows.max(axis=1, keepdims=True)) + 0.5).astype(np.int64)
    return np.maximum(scaled, 1)


def train(samples: Iterable[Quantized], pseudo: float = 32.0) -> Priors:
    """Priors from quantized samples (use files quantized on the 1.1 grid)."""
    counts = PriorCounts()
    for q in samples:
        counts.add(q)
    return counts.priors(pseudo)


__all__ = ["PriorCounts", "train", "TABLE_NAMES"]
