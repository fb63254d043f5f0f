"""Entropy coding of quantized attribute streams with ``constriction``'s range coder.

Every attribute of a group of Gaussians is a stream of unsigned integers of known bit depth. A stream
is coded as *bucket* (``value >> shift``) with a per-image static categorical model whose (quantized)
histogram travels in the file, plus ``shift`` raw low bits. The encoder picks, per stream, the shift
that minimises model-header bits + coded bits, so short streams get coarse (cheap) models and long
streams get exact histograms.

Positions are coded as gaps between consecutive sorted Morton codes (see ``quantize.py``), split
Elias-gamma style into a categorical "bit length" symbol and the raw bits below the leading one.

Everything a decoder reads goes through :class:`BitReader` / the range decoder, whose failures are
mapped to :class:`~splatcodec.errors.FormatError`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:  # constriction is a hard dependency, but keep import errors readable.
    import constriction
except ImportError as exc:  # pragma: no cover
    raise ImportError("splatcodec's codec needs the 'constriction' package: pip install constriction") from exc

from ..errors import FormatError

#: Largest categorical alphabet a model may have (buckets); bounds header size and decoder work.
MAX_ALPHABET = 1 << 12
#: Histogram counts are rescaled so the largest is at most this before they are stored.
COUNT_SCALE = 4095
#: Widest raw chunk handed to constriction's Uniform model (it needs size < 2**24).
_RAW_CHUNK_BITS = 16

_UNIFORM = constriction.stream.model.Uniform()


class BitWriter:
    """MSB-first bit writer for the small model headers (Elias-gamma coded counts)."""

    def __init__(self) -> None:
        self._bits: list[int] = []

    def write(self, value: int, nbits: int) -> None:
        for k in range(nbits - 1, -1, -1):
            self._bits.append((value >> k) & 1)

    def write_gamma(self, value: int) -> None:
        """Elias-gamma code of ``value >= 1``."""
        n = value.bit_length()
        self.write(0, n - 1)
        self.write(value, n)

    def getvalue(self) -> bytes:
        return np.packbits(np.array(self._bits, dtype=np.uint8)).tobytes() if self._bits else b""


class BitReader:
    """Counterpart of :class:`BitWriter`; reading past the end raises :class:`FormatError`.

    Bits are read from the bytes as they are (no 8x unpacked copy: a large blob costs its own size).
    """

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._size = 8 * len(self._data)
        self._pos = 0

    def read(self, nbits: int) -> int:
        if self._pos + nbits > self._size:
            raise FormatError("entropy model header is truncated")
        value = 0
        data = self._data
        for k in range(self._pos, self._pos + nbits):
            value = (value << 1) | ((data[k >> 3] >> (7 - (k & 7))) & 1)
        self._pos += nbits
        return value

    def finish(self) -> None:
        """Refuses anything after the last value but the zero padding of its final byte
        (:class:`BitWriter` writes nothing else)."""
        if self._size - self._pos >= 8:
            raise FormatError(f"entropy model header has {(self._size - self._pos) // 8} unexpected trailing bytes")
        if self._pos < self._size and self.read(self._size - self._pos):
            raise FormatError("entropy model header has non-zero padding bits")

    def read_gamma(self, max_bits: int = 32) -> int:
        zeros = 0
        while self.read(1) == 0:
            zeros += 1
            if zeros >= max_bits:
                raise FormatError("malformed Elias-gamma code in entropy model header")
        return (1 << zeros) | self.read(zeros)


@dataclass(frozen=True)
class StreamModel:
    """Static model of one stream: ``shift`` raw low bits, and a histogram of ``value >> shift``.

    ``delta`` marks a stream stored as differences to the previous value in file order (see
    :func:`to_deltas`); its symbols then have one bit more than the values.
    """

    shift: int
    counts: tuple[int, ...]
    delta: bool = False

    def categorical(self) -> "constriction.stream.model.Categorical":
        probs = np.asarray(self.counts, dtype=np.float64)
        return constriction.stream.model.Categorical(probs / probs.sum(), perfect=False)

    def write(self, w: BitWriter) -> None:
        w.write(int(self.delta), 1)
        w.write(self.shift, 5)
        w.write(len(self.counts) - 1, 12)
        for c in self.counts:
            w.write_gamma(c + 1)

    @classmethod
    def read(cls, r: BitReader, bits: int, allow_delta: bool = True) -> "StreamModel":
        delta = bool(r.read(1))
        if delta and not allow_delta:
            raise FormatError("delta coding flag set on a stream that cannot use it")
        bits += delta
        shift = r.read(5)
        size = r.read(12) + 1
        if shift > bits or size > (1 << (bits - shift)) or size > MAX_ALPHABET:
            raise FormatError("entropy model does not match the stream's bit depth")
        counts = tuple(r.read_gamma(13) - 1 for _ in range(size))
        if not any(counts) or max(counts) > COUNT_SCALE:
            raise FormatError("entropy model histogram is empty or out of range")
        return cls(shift, counts, delta)


def _gamma_bits(values: np.ndarray) -> int:
    return int(np.sum(2 * np.floor(np.log2(values + 1)).astype(np.int64) + 1))


def _quantized_counts(hist: np.ndarray, scale: int = COUNT_SCALE) -> np.ndarray:
    """Rescale a histogram so its maximum is <= ``scale``, keeping every used symbol nonzero."""
    hist = hist.astype(np.float64)
    peak = hist.max()
    if peak <= scale:
        return hist.astype(np.int64)
    scaled = np.round(hist * (scale / peak)).astype(np.int64)
    scaled[(hist > 0) & (scaled == 0)] = 1
    return scaled


#: Precisions tried for the stored histogram: coarse counts cost fewer header bits, which wins for
#: short streams (the decoder only requires counts <= COUNT_SCALE).
_COUNT_SCALES = (31, 127, 511, COUNT_SCALE)


def _model_cost(values: np.ndarray, bits: int, shift: int) -> tuple[float, np.ndarray]:
    hist = np.bincount(values >> shift, minlength=1)
    used = hist > 0
    best: tuple[float, np.ndarray] | None = None
    for scale in _COUNT_SCALES:
        counts = _quantized_counts(hist, scale)
        p = counts / counts.sum()
        data_bits = -np.sum(hist[used] * np.log2(p[used])) + values.size * shift
        cost = float(data_bits + 18 + _gamma_bits(counts))
        if best is None or cost < best[0]:
            best = (cost, counts)
        if hist.max() <= scale:
            break  # larger scales store the same exact counts
    assert best is not None
    return best


def fit_model(values: np.ndarray, bits: int, allow_shift: bool = True) -> StreamModel:
    """The cheapest :class:`StreamModel` (header + data bits) for ``values`` in ``[0, 2**bits)``.

    With ``allow_shift=False`` the model is an exact histogram (for :meth:`StreamEncoder.encode_symbols`).
    """
    return _fit(values, bits, allow_shift)[1]


def _fit(values: np.ndarray, bits: int, allow_shift: bool = True) -> tuple[float, StreamModel]:
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return 0.0, StreamModel(bits, (1,))
    best: tuple[float, int, np.ndarray] | None = None
    for shift in range(max(0, bits - 12), bits + 1 if allow_shift else 1):
        cost, counts = _model_cost(values, bits, shift)
        if best is None or cost < best[0]:
            best = (cost, shift, counts)
    assert best is not None
    cost, shift, counts = best
    # Trailing zero counts carry no information; drop them (values never reach those buckets).
    last = int(np.nonzero(counts)[0][-1])
    return cost, StreamModel(shift, tuple(int(c) for c in counts[:last + 1]))


def to_deltas(values: np.ndarray, bits: int) -> np.ndarray:
    """Differences to the previous value (the first to ``2**(bits-1)``), offset into ``[0, 2**(bits+1))``."""
    values = np.asarray(values, dtype=np.int64)
    return np.diff(values, prepend=1 << (bits - 1)) + ((1 << bits) - 1)


def from_deltas(symbols: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`to_deltas`; values outside ``[0, 2**bits)`` mean corrupt data."""
    values = np.cumsum(np.asarray(symbols, dtype=np.int64) - ((1 << bits) - 1)) + (1 << (bits - 1))
    if values.size and (values.min() < 0 or values.max() >= 1 << bits):
        raise FormatError("delta-coded stream leaves its value range (corrupt data)")
    return values


def fit_attribute(groups: list[np.ndarray], bits: int) -> tuple[float, StreamModel]:
    """(cost in bits, model) of an attribute coded group by group: direct or delta coding, whichever is
    smaller; the cost counts the model header and the coded data.

    Neighbours in Morton order are neighbours in the image, and fitted colours are spatially
    correlated, so differences are often cheaper (measured: ~0.4 bit per chroma value on Kodak).
    """
    direct = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    deltas = np.concatenate([to_deltas(g, bits) for g in groups]) if groups else np.zeros(0, np.int64)
    cost_direct, model_direct = _fit(direct, bits)
    cost_delta, model_delta = _fit(deltas, bits + 1)
    if cost_delta < cost_direct:
        return cost_delta, StreamModel(model_delta.shift, model_delta.counts, True)
    return cost_direct, model_direct


class StreamEncoder:
    """Appends streams to one range-coded word sequence."""

    def __init__(self) -> None:
        self._enc = constriction.stream.queue.RangeEncoder()

    def encode_values(self, values: np.ndarray, model: StreamModel) -> None:
        values = np.asarray(values, dtype=np.int64)
        if values.size == 0:
            return
        if len(model.counts) > 1:  # a one-symbol alphabet carries no information (and constriction refuses it)
            self._enc.encode((values >> model.shift).astype(np.int32), model.categorical())
        if model.shift:
            self.encode_raw(values & ((1 << model.shift) - 1), np.full(values.size, model.shift))

    def encode_symbols(self, symbols: np.ndarray, model: StreamModel) -> None:
        """Symbols already in the model's alphabet (no raw bits)."""
        if len(symbols) and len(model.counts) > 1:
            self._enc.encode(np.asarray(symbols, dtype=np.int32), model.categorical())

    def encode_raw(self, values: np.ndarray, nbits: np.ndarray) -> None:
        """``values[i]`` uniformly in ``nbits[i]`` bits (0 bits -> nothing coded)."""
        values = np.asarray(values, dtype=np.int64)
        nbits = np.asarray(nbits, dtype=np.int64)
        for lo in range(0, int(nbits.max(initial=0)), _RAW_CHUNK_BITS):
            width = np.clip(nbits - lo, 0, _RAW_CHUNK_BITS)
            sel = width > 0
            if not sel.any():
                break
            chunk = (values[sel] >> lo) & ((1 << width[sel]) - 1)
            self._enc.encode(chunk.astype(np.int32), _UNIFORM, (1 << width[sel]).astype(np.int32))

    def getvalue(self) -> bytes:
        return self._enc.get_compressed().astype("<u4").tobytes()


class StreamDecoder:
    """Reads streams back in the order :class:`StreamEncoder` wrote them."""

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise FormatError("range-coded payload is not a whole number of 32-bit words")
        self._dec = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))

    def decode_values(self, model: StreamModel, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, np.int64)
        values = self.decode_symbols(model, count) << model.shift
        if model.shift:
            values |= self.decode_raw(np.full(count, model.shift))
        return values

    def decode_symbols(self, model: StreamModel, count: int) -> np.ndarray:
        if count == 0 or len(model.counts) == 1:
            return np.zeros(count, np.int64)
        return self._call(model.categorical(), count).astype(np.int64)

    def decode_raw(self, nbits: np.ndarray) -> np.ndarray:
        nbits = np.asarray(nbits, dtype=np.int64)
        out = np.zeros(nbits.size, np.int64)
        for lo in range(0, int(nbits.max(initial=0)), _RAW_CHUNK_BITS):
            width = np.clip(nbits - lo, 0, _RAW_CHUNK_BITS)
            sel = width > 0
            if not sel.any():
                break
            chunk = self._call(_UNIFORM, (1 << width[sel]).astype(np.int32))
            out[sel] |= chunk.astype(np.int64) << lo
        return out

    def _call(self, model, arg) -> np.ndarray:
        try:
            return np.asarray(self._dec.decode(model, arg))
        except Exception as exc:  # constriction reports corrupt streams with assorted exception types
            raise FormatError(f"corrupt range-coded data: {exc}") from None
