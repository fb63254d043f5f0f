"""Quantized Gaussians <-> ``.gsplat`` bytes: the QUNT, GRUP and META sections (see docs/format.md).

* ``QUNT`` (required, once, first): bit depths, float32 ranges, progressive group sizes, and the
  static entropy models of the attribute streams (shared by all groups).
* ``GRUP`` (required, one per group, in order): the group's Morton-gap model and its range-coded
  words: gap bit lengths, gap raw bits, then each attribute stream (log a, log b, shear, colours).
* ``PRED`` (required where present, version 1.2, directly after QUNT): linear predictions of
  attribute streams from earlier attributes of the same Gaussian (``predict.py``); a predicted
  stream codes residuals, one bit wider than the values.
* ``META`` (optional): key/value metadata (text or bytes, e.g. an ICC profile) that round-trips.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError
from . import compact, container
from .container import Header, Limits
from .entropy import (BitReader, BitWriter, StreamDecoder, StreamEncoder, StreamModel, fit_attribute, fit_model,
                      from_deltas, to_deltas)
from .predict import Predictor, from_residuals, read_section, residuals, write_section
from .quantize import BitDepths, Quantized, check_ranges, morton_decode, morton_encode

QUNT = b"QUNT"
GRUP = b"GRUP"
META = b"META"
PRED = b"PRED"
KNOWN_SECTIONS = frozenset({QUNT, GRUP, META, PRED})
#: Minor version of files with a PRED section (format 1.2); files without one stay 1.0, byte for byte.
PRED_MINOR = 2
#: Fewest Gaussians for which the writer tries predictions. Below it the PRED section and the wider
#: residual tables rarely pay, and the search (two model fits per candidate) would slow down the
#: small-image encodes, which write a 1.0 file next to their 1.1 file.
PREDICT_MIN_GAUSSIANS = 256
MAX_GROUPS = 64
_GAP_LEN_BITS = 6  # gap bit lengths are < 2 * 16 + 1 = 33 < 64


@dataclass
class StreamStats:
    """Coded size of each attribute, in bits (for ``info`` and the docs)."""

    bits: dict[str, float] = field(default_factory=dict)


def _attribute_names(channels: int) -> list[str]:
    return ["log_a", "log_b", "shear"] + (["gray"] if channels == 1 else ["Y", "Cb", "Cr"])


# ----------------------------------------------------------------------------------------- writing
def _write_qunt(q: Quantized, models: list[StreamModel]) -> bytes:
    b = q.bits
    out = bytearray(struct.pack("<BBBB", b.pos, b.scale, b.shear, len(b.color)))
    out += bytes(b.color)
    out += q.ranges.astype("<f4").tobytes()
    out += struct.pack("<H", len(q.group_sizes))
    out += np.asarray(q.group_sizes, "<u4").tobytes()
    w = BitWriter()
    for m in models:
        m.write(w)
    blob = w.getvalue()
    out += struct.pack("<I", len(blob)) + blob
    return bytes(out)


def _gaps(q: Quantized, start: int, stop: int) -> np.ndarray:
    code = morton_encode(q.qx[start:stop], q.qy[start:stop], q.bits.pos).astype(np.int64)
    return np.diff(code, prepend=0)


def _bit_length(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape, np.int64)
    nz = v > 0
    out[nz] = np.floor(np.log2(v[nz].astype(np.float64))).astype(np.int64) + 1
    # float log2 can be off by one near powers of two for large ints; fix exactly.
    out[nz] += (v[nz] >> out[nz]) > 0
    out[nz] -= (v[nz] >> (out[nz] - 1)) == 0
    return out


def _write_group(q: Quantized, start: int, stop: int, models: list[StreamModel],
                 symbols: np.ndarray, widths: list[int]) -> tuple[bytes, dict[str, float]]:
    """One GRUP payload; ``symbols[:, k]`` is attribute ``k`` (or its residual) in ``widths[k]`` bits."""
    gaps = _gaps(q, start, stop)
    lengths = _bit_length(gaps)
    len_model = fit_model(lengths, _GAP_LEN_BITS, allow_shift=False)
    enc = StreamEncoder()
    stats: dict[str, float] = {}
    sizes = []
    enc.encode_symbols(lengths, len_model)
    mant_bits = np.maximum(lengths - 1, 0)
    enc.encode_raw(gaps - np.where(lengths > 0, 1 << mant_bits, 0), mant_bits)
    sizes.append(("position", len(enc.getvalue())))
    names = _attribute_names(len(q.bits.color))
    for k, model in enumerate(models):
        values = symbols[start:stop, k]
        enc.encode_values(to_deltas(values, widths[k]) if model.delta else values, model)
        sizes.append((names[k], len(enc.getvalue())))
    prev = 0
    for name, total in sizes:  # approximate split of the shared word stream, in bits
        stats[name] = 8.0 * (total - prev)
        prev = total
    w = BitWriter()
    len_model.write(w)
    blob = w.getvalue()
    return struct.pack("<H", len(blob)) + blob + enc.getvalue(), stats


def _write_meta(metadata: dict[str, str | bytes]) -> bytes:
    out = bytearray(struct.pack("<I", len(metadata)))
    for key, value in metadata.items():
        kb = key.encode("utf-8")
        is_text = isinstance(value, str)
        vb = value.encode("utf-8") if is_text else bytes(value)
        out += struct.pack("<HB", len(kb), 1 if is_text else 0) + kb + struct.pack("<I", len(vb)) + vb
    return bytes(out)


def choose_models(q: Quantized, predict: bool = True
                  ) -> tuple[list[StreamModel], list[StreamModel], list[Predictor | None]]:
    """The cheapest model of each attribute stream as it is (the 1.0 file's), and the cheapest model
    and prediction (or None) of each stream with ``predict``.

    A stream is predicted when coding its residual, with the prediction's parameter bytes, is
    cheaper than coding it as it is. Candidates: each earlier attribute alone, then the best one
    paired with each other earlier attribute (least-squares slopes; see ``predict.py``).
    """
    bits = q.attribute_bits()
    bounds = np.cumsum([0] + list(q.group_sizes))

    def split(column: np.ndarray) -> list[np.ndarray]:
        return [column[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def priced(k: int, sources: tuple[int, ...]) -> tuple[float, StreamModel, Predictor]:
        p = Predictor.fit(q.qattr, k, sources)
        r = residuals(q.qattr[:, k], p.predict([q.qattr[:, j] for j in range(k)], bits[k]), bits[k])
        cost, model = fit_attribute(split(r), bits[k] + 1)
        return cost + 8 * len(write_section([p])), model, p

    plain: list[StreamModel] = []
    models: list[StreamModel] = []
    predictors: list[Predictor | None] = []
    for k in range(len(bits)):
        cost, model = fit_attribute(split(q.qattr[:, k]), bits[k])
        plain.append(model)
        best: tuple[float, StreamModel, Predictor | None] = (cost + 8, model, None)  # + its PRED byte
        if predict and k and q.num_gaussians >= PREDICT_MIN_GAUSSIANS:
            singles = [priced(k, (j,)) for j in range(k)]
            first = min(range(k), key=lambda j: singles[j][0])
            pairs = [priced(k, (first, j)) for j in range(k) if j != first]
            best = min([best] + singles + pairs, key=lambda t: t[0])
        models.append(best[1])
        predictors.append(best[2])
    return plain, models, predictors


def write(q: Quantized, metadata: dict[str, str | bytes] | None = None,
          predict: bool = True) -> tuple[bytes, StreamStats]:
    """Serialize quantized Gaussians (already in canonical order) into a complete ``.gsplat`` file.

    With ``predict`` (and at least :data:`PREDICT_MIN_GAUSSIANS` Gaussians) the file is 1.2 when
    predicted streams make it smaller than the 1.0 file of the same Gaussians, else 1.0.
    """
    plain_models, models, predictors = choose_models(q, predict)
    plain = _assemble(q, plain_models, [None] * len(plain_models), metadata)
    if not any(predictors):
        return plain
    predicted = _assemble(q, models, predictors, metadata)
    return predicted if len(predicted[0]) < len(plain[0]) else plain


def _assemble(q: Quantized, models: list[StreamModel], predictors: list[Predictor | None],
              metadata: dict[str, str | bytes] | None) -> tuple[bytes, StreamStats]:
    bits = q.attribute_bits()
    symbols = q.qattr.copy()
    widths = list(bits)
    for k, p in enumerate(predictors):
        if p is not None:
            symbols[:, k] = residuals(q.qattr[:, k], p.predict([q.qattr[:, j] for j in range(k)], bits[k]), bits[k])
            widths[k] += 1
    sections = [(QUNT, True, _write_qunt(q, models))]
    if any(predictors):
        sections.append((PRED, True, write_section(predictors)))
    stats = StreamStats()
    start = 0
    for size in q.group_sizes:
        payload, group_stats = _write_group(q, start, start + size, models, symbols, widths)
        sections.append((GRUP, True, payload))
        for name, value in group_stats.items():
            stats.bits[name] = stats.bits.get(name, 0.0) + value
        start += size
    if metadata:
        sections.append((META, False, _write_meta(metadata)))
    minor = PRED_MINOR if any(predictors) else container.MINOR
    header = Header(container.MAJOR, minor, q.width, q.height, len(q.bits.color), q.color_space,
                    q.num_gaussians, 0)
    data = container.write_file(header, sections)
    stats.bits["header+models"] = 8.0 * len(data) - sum(stats.bits.values())
    return data, stats


def _entropy_bits(values: np.ndarray) -> float:
    """N x the empirical entropy of ``values``: no static model codes them in fewer bits."""
    counts = np.bincount(values)
    p = counts[counts > 0] / values.size
    return float(-values.size * np.sum(p * np.log2(p)))


def size_lower_bound(q: Quantized) -> float:
    """Bytes that every 1.0 file of ``q`` (without metadata) has at least, computed without coding it.

    The header, the section frames and QUNT's fixed fields, plus each attribute stream's empirical
    entropy, direct or delta-coded (whichever is lower; raw low bits never beat it either). Lets the
    encoder skip the 1.0 writer where a compact 1.1 file is already smaller (small images).
    """
    channels = len(q.bits.color)
    groups = len(q.group_sizes)
    fixed = (container.HEADER_SIZE + container.SECTION_OVERHEAD * (1 + groups)
             + 4 + channels + 8 * (5 + channels) + 2 + 4 * groups + 4 + 2 * groups)
    bits = q.attribute_bits()
    bounds = np.cumsum([0] + list(q.group_sizes))
    data_bits = 0.0
    for k in range(len(bits)):
        parts = [q.qattr[a:b, k].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if not parts:
            continue
        direct = np.concatenate(parts)
        deltas = np.concatenate([to_deltas(v, bits[k]) for v in parts])
        data_bits += min(_entropy_bits(direct), _entropy_bits(deltas))
    return fixed + data_bits / 8.0


# ----------------------------------------------------------------------------------------- reading
class _Cursor:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"{self.what} section is truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def done(self) -> None:
        if self.pos != len(self.data):
            raise FormatError(f"{self.what} section has {len(self.data) - self.pos} unexpected trailing bytes")


@dataclass
class Parsed:
    header: Header
    bits: BitDepths
    ranges: np.ndarray
    group_sizes: list[int]
    models: list[StreamModel]
    groups: list[bytes]
    metadata: dict[str, str | bytes]
    section_sizes: dict[str, int]
    #: Per attribute stream, its prediction (PRED section, 1.2) or None.
    predictors: list[Predictor | None] = field(default_factory=list)


def _read_qunt(payload: bytes, header: Header,
               predicted: list[bool]) -> tuple[BitDepths, np.ndarray, list[int], list[StreamModel]]:
    """``predicted[k]``: stream ``k`` codes residuals (one bit wider than its values)."""
    cur = _Cursor(payload, "QUNT")
    pos, scale, shear, nc = cur.unpack("<BBBB")
    if nc != header.channels:
        raise FormatError("QUNT channel count disagrees with the header")
    color = tuple(cur.take(nc))
    bits = BitDepths(pos, scale, shear, color)
    try:
        bits.validate(nc)
    except ValueError as exc:
        raise FormatError(f"invalid bit depths: {exc}") from None
    ranges = np.frombuffer(cur.take(4 * 2 * (5 + nc)), "<f4").reshape(-1, 2).astype(np.float32)
    problem = check_ranges(ranges, header.width, header.height)
    if problem:
        raise FormatError(f"QUNT {problem}")
    (ngroups,) = cur.unpack("<H")
    if ngroups > MAX_GROUPS or (ngroups == 0) != (header.num_gaussians == 0):
        raise FormatError(f"invalid number of progressive groups {ngroups}")
    sizes = [int(s) for s in np.frombuffer(cur.take(4 * ngroups), "<u4")]
    if sum(sizes) != header.num_gaussians or any(s == 0 for s in sizes):
        raise FormatError("progressive group sizes do not add up to the Gaussian count")
    (blob_len,) = cur.unpack("<I")
    reader = BitReader(cur.take(blob_len))
    cur.done()
    attr_bits = [scale, scale, shear, *color]
    models = [StreamModel.read(reader, b + wider) for b, wider in zip(attr_bits, predicted)]
    reader.finish()  # junk after the models would be parsed for nothing (and was accepted)
    return bits, ranges, sizes, models


def _read_meta(payload: bytes) -> dict[str, str | bytes]:
    cur = _Cursor(payload, "META")
    (count,) = cur.unpack("<I")
    if count > len(payload):
        raise FormatError("META entry count is larger than the section")
    out: dict[str, str | bytes] = {}
    for _ in range(count):
        klen, kind = cur.unpack("<HB")
        try:
            key = cur.take(klen).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("META key is not UTF-8") from None
        (vlen,) = cur.unpack("<I")
        value = cur.take(vlen)
        if kind == 1:
            try:
                out[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError("META text value is not UTF-8") from None
        elif kind == 0:
            out[key] = value
        else:
            raise FormatError(f"unknown META value kind {kind}")
    cur.done()
    return out


def parse(data: bytes, limits: Limits) -> "Parsed | compact.CompactFile":
    """Validate the container and split it into its parts (no range decoding yet).

    Compact 1.1 files (``compact.py``) come back as a :class:`compact.CompactFile`; :func:`read` and
    :func:`stream_bits` take either.
    """
    if compact.is_compact(bytes(data[:3])):
        return compact.parse(bytes(data), limits)
    header = container.read_header(data, limits)
    sections = container.read_sections(bytes(data), header, KNOWN_SECTIONS)
    if not sections or sections[0].type != QUNT:
        raise FormatError("first section must be QUNT")
    if sum(s.type == QUNT for s in sections) != 1 or sum(s.type == META for s in sections) > 1:
        raise FormatError("QUNT must appear once and META at most once")
    preds = [s for s in sections if s.type == PRED]
    predictors: list[Predictor | None] = [None] * (3 + header.channels)
    if preds:
        if len(preds) > 1 or sections[1].type != PRED:
            raise FormatError("PRED must appear at most once, directly after QUNT")
        if not preds[0].required:
            raise FormatError("PRED section must be marked required (a reader that skips it misdecodes)")
        if header.minor < PRED_MINOR:
            raise FormatError(f"PRED section in a version {header.major}.{header.minor} file (needs 1.{PRED_MINOR})")
        predictors = read_section(preds[0].payload, 3 + header.channels)
    bits, ranges, sizes, models = _read_qunt(sections[0].payload, header, [p is not None for p in predictors])
    groups = [s.payload for s in sections if s.type == GRUP]
    if len(groups) != len(sizes):
        raise FormatError(f"file has {len(groups)} GRUP sections but QUNT declares {len(sizes)} groups")
    metas = [s for s in sections if s.type == META]
    metadata = _read_meta(metas[0].payload) if metas else {}
    section_sizes: dict[str, int] = {}
    for s in sections:
        name = s.type.decode("ascii", "replace")
        section_sizes[name] = section_sizes.get(name, 0) + len(s.payload) + container.SECTION_OVERHEAD
    return Parsed(header, bits, ranges, sizes, models, groups, metadata, section_sizes, predictors)


def _read_group(payload: bytes, count: int, bits: BitDepths, models: list[StreamModel],
                predictors: list[Predictor | None]):
    cur = _Cursor(payload, "GRUP")
    (blob_len,) = cur.unpack("<H")
    reader = BitReader(cur.take(blob_len))
    len_model = StreamModel.read(reader, _GAP_LEN_BITS, allow_delta=False)
    reader.finish()
    if len(len_model.counts) > 2 * bits.pos + 1 or len_model.shift:
        raise FormatError("GRUP gap model does not fit the position bit depth")
    dec = StreamDecoder(payload[cur.pos:])
    lengths = dec.decode_symbols(len_model, count)
    mant_bits = np.maximum(lengths - 1, 0)
    gaps = dec.decode_raw(mant_bits) + np.where(lengths > 0, np.left_shift(1, mant_bits), 0)
    code = np.cumsum(gaps)
    if count and code[-1] >= 1 << (2 * bits.pos):
        raise FormatError("decoded positions leave the quantization grid (corrupt data)")
    qx, qy = morton_decode(code.astype(np.uint64), bits.pos)
    attr_bits = [bits.scale, bits.scale, bits.shear, *bits.color]
    columns: list[np.ndarray] = []
    for m, b, p in zip(models, attr_bits, predictors):  # column by column: predictions use earlier ones
        width = b + (p is not None)
        values = dec.decode_values(m, count)
        values = from_deltas(values, width) if m.delta else values
        columns.append(values if p is None else from_residuals(values, p.predict(columns, b), b))
    attrs = np.stack(columns, axis=1) if columns else np.zeros((count, 0), np.int64)
    return qx, qy, attrs


def read(parsed: "Parsed | compact.CompactFile", max_groups: int | None = None, priors=None) -> Quantized:
    """Range-decode the first ``max_groups`` groups (all by default) into a :class:`Quantized`.

    ``priors``: dataset priors for 1.1 files that name them (see ``compact.read``).
    """
    if isinstance(parsed, compact.CompactFile):
        return compact.read(parsed, max_groups, priors)
    h = parsed.header
    ngroups = len(parsed.group_sizes) if max_groups is None else min(max_groups, len(parsed.group_sizes))
    predictors = parsed.predictors or [None] * len(parsed.models)
    parts = [_read_group(parsed.groups[g], parsed.group_sizes[g], parsed.bits, parsed.models, predictors)
             for g in range(ngroups)]
    nattr = len(parsed.models)
    qx = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    qy = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    qa = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, nattr), np.int64)
    return Quantized(h.width, h.height, h.color_space, parsed.bits, parsed.ranges, parsed.group_sizes[:ngroups],
                     qx, qy, qa.reshape(-1, nattr))


def stream_bits(parsed: "Parsed | compact.CompactFile", q: Quantized, priors=None) -> dict[str, float]:
    """Coded bits per stream of a parsed file whose Gaussians are ``q`` (re-codes them; for ``info``)."""
    if isinstance(parsed, compact.CompactFile):
        cost = compact.cost_of(q, priors if parsed.priors_id else None)
        return {**cost.bits, "header+models": 8.0 * parsed.header.total_length - cost.total}
    return write(q, parsed.metadata or None)[1].bits
