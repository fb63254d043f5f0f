"""Linear prediction of an attribute stream from earlier attributes of the same Gaussian (format 1.2).

The quantized attributes of a Gaussian are not independent: on Kodak, chroma follows luma and the
other chroma channel (the fixed BT.601 rotation does not decorrelate a given image's colours), and
log b follows log a. A 1.2 file may therefore code an attribute ``q_k`` as the residual

    r = q_k - p + 2^bits - 1,   p = clip(floor((offset + sum_i slope_i * q_{j_i}) / 32), 0, 2^bits - 1)

of an integer linear prediction from at most two earlier attributes ``j_i < k`` of the same Gaussian
(slopes in 1/32 steps). Unlike per-context histograms this needs no extra tables, only a few
parameter bytes (the ``PRED`` section), and decodes column by column: the sources of column ``k``
are decoded before it. Measured gain: docs/codec.md, "Context modelling (1.2)".
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError

#: Slopes are integers in units of 1/SLOPE_ONE.
SLOPE_SHIFT = 5
SLOPE_ONE = 1 << SLOPE_SHIFT
#: |slope| <= MAX_SLOPE (i.e. 4.0): larger slopes do not occur between these attributes.
MAX_SLOPE = 4 * SLOPE_ONE
#: |offset| <= MAX_OFFSET (in 1/SLOPE_ONE units); with 16-bit attributes and two sources the sum
#: stays far inside int64.
MAX_OFFSET = 1 << 24
MAX_SOURCES = 2

_SOURCE = struct.Struct("<Bh")
_OFFSET = struct.Struct("<i")


@dataclass(frozen=True)
class Predictor:
    """``p = clip((offset + sum(slopes[i] * q[sources[i]])) >> SLOPE_SHIFT, 0, 2^bits - 1)``."""

    sources: tuple[int, ...]
    slopes: tuple[int, ...]
    offset: int

    def predict(self, columns: list[np.ndarray], bits: int) -> np.ndarray:
        """Prediction for every Gaussian from the already known ``columns`` (indexed by attribute)."""
        acc = np.full(columns[self.sources[0]].shape, self.offset, dtype=np.int64)
        for j, s in zip(self.sources, self.slopes):
            acc += s * np.asarray(columns[j], dtype=np.int64)
        return np.clip(acc >> SLOPE_SHIFT, 0, (1 << bits) - 1)  # >> on int64 floors, also below zero

    @classmethod
    def fit(cls, qattr: np.ndarray, k: int, sources: tuple[int, ...]) -> "Predictor":
        """Least-squares prediction of column ``k`` from ``sources`` (slopes rounded, clamped)."""
        x = qattr[:, list(sources)].astype(np.float64)
        y = qattr[:, k].astype(np.float64)
        xc = x - x.mean(axis=0)
        slopes = np.linalg.lstsq(xc, y - y.mean(), rcond=None)[0] if xc.any() else np.zeros(len(sources))
        slopes = np.clip(np.round(slopes * SLOPE_ONE), -MAX_SLOPE, MAX_SLOPE).astype(np.int64)
        # Offset so that floor((offset + s.x) / 32) is the rounded mean prediction.
        offset = int(np.round(np.mean(y * SLOPE_ONE - x @ slopes))) + SLOPE_ONE // 2
        offset = max(-MAX_OFFSET, min(MAX_OFFSET, offset))
        return cls(tuple(int(j) for j in sources), tuple(int(s) for s in slopes), offset)


def residuals(values: np.ndarray, prediction: np.ndarray, bits: int) -> np.ndarray:
    """Residual symbols in ``[0, 2^(bits+1) - 1)`` of values and predictions in ``[0, 2^bits)``."""
    return np.asarray(values, np.int64) - prediction + ((1 << bits) - 1)


def from_residuals(symbols: np.ndarray, prediction: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`residuals`; values outside ``[0, 2^bits)`` mean corrupt data."""
    values = np.asarray(symbols, np.int64) - ((1 << bits) - 1) + prediction
    if values.size and (values.min() < 0 or values.max() >= 1 << bits):
        raise FormatError("predicted stream leaves its value range (corrupt data)")
    return values


def write_section(predictors: list[Predictor | None]) -> bytes:
    """PRED payload: per attribute stream, u8 source count m (0..2), m x (u8 source, i16 slope),
    then (if m > 0) the i32 offset."""
    out = bytearray()
    for p in predictors:
        if p is None:
            out.append(0)
            continue
        out.append(len(p.sources))
        for j, s in zip(p.sources, p.slopes):
            out += _SOURCE.pack(j, s)
        out += _OFFSET.pack(p.offset)
    return bytes(out)


def read_section(payload: bytes, nattr: int) -> list[Predictor | None]:
    """Parse and validate a PRED payload for ``nattr`` attribute streams."""
    out: list[Predictor | None] = []
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(payload):
            raise FormatError("PRED section is truncated")
        pos += n
        return payload[pos - n:pos]

    for k in range(nattr):
        (m,) = take(1)
        if m == 0:
            out.append(None)
            continue
        if m > MAX_SOURCES:
            raise FormatError(f"PRED stream {k} has {m} sources (at most {MAX_SOURCES})")
        pairs = [_SOURCE.unpack(take(_SOURCE.size)) for _ in range(m)]
        (offset,) = _OFFSET.unpack(take(_OFFSET.size))
        sources = tuple(j for j, _ in pairs)
        slopes = tuple(s for _, s in pairs)
        if any(j >= k for j in sources) or len(set(sources)) != m:
            raise FormatError(f"PRED stream {k} must predict from distinct earlier streams")
        if any(abs(s) > MAX_SLOPE for s in slopes) or abs(offset) > MAX_OFFSET:
            raise FormatError(f"PRED stream {k} has an out-of-range slope or offset")
        out.append(Predictor(sources, slopes, offset))
    if pos != len(payload):
        raise FormatError(f"PRED section has {len(payload) - pos} unexpected trailing bytes")
    return out
