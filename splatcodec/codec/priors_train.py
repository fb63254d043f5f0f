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


#: Pseudo-samples of the built-in row each dataset-priors row starts from (held-out choice: see
#: docs/codec.md, "Dataset priors").
DATASET_PSEUDO = 1024.0


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

    def priors(self, pseudo: float = 32.0, base: Priors | None = None) -> Priors:
        """Smoothed 16-bit tables: each context row gets ``pseudo`` samples of the attribute's marginal,
        or, with ``base`` (dataset priors refining the built-in set), of ``base``'s row."""
        tables = []
        for k, counts in enumerate(self.tables):
            if base is None:
                prior = counts.sum(axis=0).astype(np.float64) + 0.5
                prior = np.broadcast_to(prior / prior.sum(), counts.shape)
            else:
                prior = base.tables[k].astype(np.float64) + 0.5
                prior = prior / prior.sum(axis=1, keepdims=True)
            tables.append(_to_u16(counts + pseudo * prior))
        if base is None:
            gap = self.gap + 0.5
        else:
            gap = self.gap + pseudo * (base.gap + 0.5) / (base.gap + 0.5).sum()
        return Priors(tables, _to_u16(gap[None, :])[0])


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


def train_from_images(images: Iterable, *, quality: float = 75, num_gaussians: int | None = None, effort: int = 4,
                      threads: int = 0, pseudo: float = DATASET_PSEUDO) -> tuple[Priors, dict]:
    """Dataset priors from images (arrays or PIL images): each is encoded as :func:`splatcodec.encode`
    would (1.1 grid) and its quantized Gaussians counted.

    Returns the priors and a summary: images used, images skipped (too large for the 1.1 grid),
    Gaussians, and the symbols' ideal cost in bytes per image under the built-in and the new priors.
    """
    from . import api, bitstream, compact
    from .container import Limits
    from .priors import builtin

    counts = PriorCounts()
    samples: list[Quantized] = []
    skipped = 0
    for image in images:
        data = api.encode(image, quality=quality, num_gaussians=num_gaussians,
                          effort=effort, threads=threads)
        parsed = bitstream.parse(data, Limits(max_pixels=None))
        if not isinstance(parsed, compact.CompactFile):
            skipped += 1  # larger than the 1.1 grid's limit: not a 1.1 file
            continue
        q = compact.read(parsed)
        counts.add(q)
        samples.append(q)
    if not samples:
        from ..errors import InvalidInputError
        raise InvalidInputError("no image gave a 1.1 file (dataset priors are for images up to 2^18 pixels)")
    priors = counts.priors(pseudo, builtin())
    base = sum(compact.cost_of(q).total for q in samples) / 8 / len(samples)
    new = sum(compact.cost_of(q, priors).total for q in samples) / 8 / len(samples)
    summary = dict(images=len(samples), skipped=skipped, gaussians=sum(q.num_gaussians for q in samples),
                   builtin_bytes_per_image=base, dataset_bytes_per_image=new, id=priors.ident().hex())
    return priors, summary
