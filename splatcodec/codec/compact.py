"""The compact ``.gsplat`` 1.1 layout: a few header bytes, built-in models, one range-coded payload.

Layout (normative description in docs/format.md, "Version 1.1")::

    89 47            magic ("\\x89G")
    11               version byte: major << 4 | minor
    flags            bit 0: YCbCr (3 channels) / gray; bits 1-3: levels - 1; bit 4: explicit groups;
                     bit 5: dataset priors
    depth nibbles    pos-1 | scale-1, shear-1 | colour0-1 [, colour1-1 | colour2-1]
    varint W - 1, varint H - 1, varint N
    [4 bytes: the dataset priors' id, the first bytes of their SHA-256]   (only with flag bit 5)
    [varint G, then G - 1 varints: group sizes]      (only with flag bit 4)
    payload          range-coded Gaussians (rangecoder.py), models from priors.py
    CRC-16           binascii.crc_hqx(everything before, 0), little-endian

Quantization grids are fixed (:func:`priors.fixed_ranges`), so a file carries no ranges and no
histograms: a 32x32 image with 32 Gaussians spends ~10 header bytes instead of ~150.
"""
from __future__ import annotations

import binascii
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import FormatError
from .container import MAX_DIMENSION, Header, Limits
from .priors import ID_BYTES, MAX_ATTRIBUTE_BITS, Priors, builtin, context, fixed_ranges, ref_index
from .quantize import COLOR_GRAY, COLOR_YCBCR, BitDepths, Quantized, group_sizes_for, morton_decode, morton_encode
from .rangecoder import MAX_OVERRUN, TABLE_BITS, RangeDecoder, RangeEncoder

MAGIC = b"\x89G"
MAJOR = 1
MINOR = 1
MAX_LEVELS = 8
MAX_GROUPS = 64
_FLAG_COLOR = 1
_FLAG_GROUPS = 1 << 4
_FLAG_PRIORS = 1 << 5
_FLAG_RESERVED = 0xC0
_RAW_CHUNK = 16
#: Largest ``N`` per byte of file: every Gaussian costs far more than one bit in practice, and the
#: bound keeps a tiny hostile file from asking a (pure Python) decoder for millions of symbols.
GAUSSIANS_PER_BYTE = 8


def is_compact(data: bytes) -> bool:
    """Whether ``data`` starts like a compact (1.1+) file rather than a 1.0 one."""
    return len(data) >= 3 and data[:2] == MAGIC and data[2:3] != b"S"


# ------------------------------------------------------------------------------------ varints
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes, end: int) -> None:
        self.data, self.pos, self.end = data, 0, end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise FormatError("truncated .gsplat 1.1 header")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self, limit: int, what: str) -> int:
        value = shift = 0
        for _ in range(4):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if byte == 0 and shift > 7:
                    raise FormatError(f"{what} is not minimally encoded")
                if value > limit:
                    raise FormatError(f"{what} {value} is out of range (at most {limit})")
                return value
        raise FormatError(f"{what} is too long")


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (polynomial 0x1021, initial value 0), as ``binascii.crc_hqx(data, 0)``."""
    return binascii.crc_hqx(data, 0)


# ------------------------------------------------------------------------------------ writing
@dataclass
class CodeCost:
    """Ideal cost of the payload's symbols under the models, in bits, by attribute."""

    bits: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.bits.values())


def _names(channels: int) -> list[str]:
    return ["log_a", "log_b", "shear"] + (["gray"] if channels == 1 else ["Y", "Cb", "Cr"])


def can_write(q: Quantized) -> str | None:
    """Why ``q`` cannot be a 1.1 file, or None."""
    if any(b > MAX_ATTRIBUTE_BITS for b in q.attribute_bits()):
        return f"attribute depths above {MAX_ATTRIBUTE_BITS} bits"
    if len(q.group_sizes) > MAX_GROUPS:
        return f"more than {MAX_GROUPS} groups"
    expect = fixed_ranges(q.width, q.height, q.num_gaussians, len(q.bits.color))
    if not np.array_equal(np.asarray(q.ranges, np.float32), expect):
        return "not quantized on the 1.1 grid"
    return None


def _levels_of(sizes: list[int], n: int) -> int | None:
    for levels in range(1, MAX_LEVELS + 1):
        if group_sizes_for(n, levels) == list(sizes):
            return levels
    return None


def write(q: Quantized, priors: Priors | None = None, *, check_size: bool = True) -> tuple[bytes, CodeCost]:
    """Serialize ``q`` (quantized on :func:`fixed_ranges`, canonical order) as a 1.1 file.

    ``priors``: dataset priors (the file then names them by id and needs them to decode); default
    the built-in set. ``check_size=False`` skips the Gaussians-per-byte bound readers apply (for
    :func:`cost_of`, which only measures).
    """
    problem = can_write(q)
    if problem:
        raise ValueError(f"cannot write a .gsplat 1.1 file: {problem}")
    external = priors is not None and priors.digest() != builtin().digest()
    priors = priors or builtin()
    b = q.bits
    channels = len(b.color)
    n = q.num_gaussians
    levels = _levels_of(q.group_sizes, n)
    flags = (_FLAG_COLOR if q.color_space == COLOR_YCBCR else 0) | ((levels or 1) - 1) << 1
    flags |= (0 if levels else _FLAG_GROUPS) | (_FLAG_PRIORS if external else 0)
    nibbles = [b.pos, b.scale, b.shear, *b.color]  # 4 or 6
    out = bytearray(MAGIC + bytes([MAJOR << 4 | MINOR, flags]))
    out += bytes(((hi - 1) << 4) | (lo - 1) for hi, lo in zip(nibbles[::2], nibbles[1::2]))
    out += _varint(q.width - 1) + _varint(q.height - 1) + _varint(n)
    if external:
        out += priors.ident()
    if not levels:
        out += _varint(len(q.group_sizes)) + b"".join(_varint(s) for s in q.group_sizes[:-1])
    enc = RangeEncoder()
    cost = {name: 0.0 for name in ["position", *_names(channels)]}
    start = 0
    for size in q.group_sizes:
        _write_group(enc, q, start, start + size, priors, cost)
        start += size
    out += enc.finish()
    if check_size and n > GAUSSIANS_PER_BYTE * (len(out) + 2):
        raise ValueError("cannot write a .gsplat 1.1 file: too many Gaussians for its size")
    out += struct.pack("<H", crc16(bytes(out)))
    return bytes(out), CodeCost(cost)


def _write_group(enc: RangeEncoder, q: Quantized, start: int, stop: int, priors: Priors,
                 cost: dict[str, float]) -> None:
    pos_bits = q.bits.pos
    codes = morton_encode(q.qx[start:stop], q.qy[start:stop], pos_bits).astype(np.int64)
    gaps = np.diff(codes, prepend=0).tolist()
    gap_table = priors.gap_table(pos_bits, stop - start)
    scale = 1.0 / (1 << TABLE_BITS)
    position = 0.0
    for gap in gaps:
        length = int(gap).bit_length()
        enc.encode(length, gap_table)
        position -= math.log2(gap_table.freq[length] * scale)
        _encode_raw(enc, gap - (1 << (length - 1)) if length else 0, max(length - 1, 0))
        position += max(length - 1, 0)
    cost["position"] += position
    names = _names(len(q.bits.color))
    depths = q.attribute_bits()
    rows = q.qattr[start:stop].tolist()
    for row in rows:
        refs: list[int] = []
        for k, (value, bits) in enumerate(zip(row, depths)):
            table = priors.table(k, context(k, refs), bits)
            enc.encode(value, table)
            cost[names[k]] -= math.log2(table.freq[value] * scale)
            refs.append(ref_index(value, bits))


def _encode_raw(enc: RangeEncoder, value: int, width: int) -> None:
    lo = 0
    while lo < width:
        w = min(_RAW_CHUNK, width - lo)
        enc.encode_raw((value >> lo) & ((1 << w) - 1), w)
        lo += w


def _decode_raw(dec: RangeDecoder, width: int) -> int:
    value = lo = 0
    while lo < width:
        w = min(_RAW_CHUNK, width - lo)
        value |= dec.decode_raw(w) << lo
        lo += w
    return value


# ------------------------------------------------------------------------------------ reading
@dataclass
class CompactFile:
    """A parsed 1.1 file: header facts and where its payload is (nothing range-decoded yet)."""

    header: Header
    bits: BitDepths
    ranges: np.ndarray
    group_sizes: list[int]
    payload: bytes
    header_bytes: int
    priors_id: bytes | None = None  # dataset priors the file needs (None: the built-in set)
    metadata: dict = field(default_factory=dict)  # 1.1 files carry none

    @property
    def section_sizes(self) -> dict[str, int]:
        return {"header": self.header_bytes, "payload": len(self.payload), "crc": 2}


def parse(data: bytes, limits: Limits) -> CompactFile:
    """Validate a 1.1 file's header, sizes and CRC."""
    if len(data) < 3 or data[:2] != MAGIC:
        raise FormatError("not a .gsplat file (bad signature)")
    major, minor = data[2] >> 4, data[2] & 15
    if major != MAJOR or minor > MINOR:
        raise FormatError(f"unsupported .gsplat version {major}.{minor}: this reader handles 1.0 and 1.1 "
                          "(a newer splatcodec may read it)")
    if minor != MINOR:
        raise FormatError(f"invalid compact .gsplat version {major}.{minor}")
    if len(data) < 6:
        raise FormatError("truncated .gsplat 1.1 file")
    (crc,) = struct.unpack_from("<H", data, len(data) - 2)
    if crc != crc16(bytes(data[:-2])):
        raise FormatError(".gsplat 1.1 CRC mismatch (corrupted or truncated file)")
    r = _Reader(data, len(data) - 2)
    r.pos = 3
    flags = r.byte()
    if flags & _FLAG_RESERVED:
        raise FormatError(".gsplat 1.1 header uses reserved flag bits")
    channels = 3 if flags & _FLAG_COLOR else 1
    depth = [v + 1 for byte in [r.byte() for _ in range((3 + channels) // 2)] for v in (byte >> 4, byte & 15)]
    bits = BitDepths(depth[0], depth[1], depth[2], tuple(depth[3:3 + channels]))
    if any(v > MAX_ATTRIBUTE_BITS for v in depth[1:3 + channels]):
        raise FormatError(f".gsplat 1.1 attribute depths are at most {MAX_ATTRIBUTE_BITS} bits")
    width = r.varint(MAX_DIMENSION - 1, "width") + 1
    height = r.varint(MAX_DIMENSION - 1, "height") + 1
    limits.check_pixels(width, height)
    count = r.varint(1 << 27, "Gaussian count")
    limits.check_gaussians(count)
    if count > GAUSSIANS_PER_BYTE * len(data):
        raise FormatError(f".gsplat 1.1 file of {len(data)} bytes cannot hold {count} Gaussians")
    priors_id = bytes(r.byte() for _ in range(ID_BYTES)) if flags & _FLAG_PRIORS else None
    if flags & _FLAG_GROUPS:
        ngroups = r.varint(MAX_GROUPS, "group count")
        sizes = [r.varint(count, "group size") for _ in range(max(ngroups - 1, 0))]
        sizes.append(count - sum(sizes))
        if ngroups == 0 or min(sizes) < 1:
            raise FormatError("invalid progressive group sizes")
    else:
        sizes = group_sizes_for(count, ((flags >> 1) & 7) + 1)
    space = COLOR_YCBCR if channels == 3 else COLOR_GRAY
    header = Header(major, minor, width, height, channels, space, count, len(data))
    return CompactFile(header, bits, fixed_ranges(width, height, count, channels), sizes,
                       bytes(data[r.pos:len(data) - 2]), r.pos, priors_id)


def _priors_for(parsed: CompactFile, priors: Priors | None) -> Priors:
    if parsed.priors_id is None:
        return builtin()
    if priors is None:
        raise FormatError(f"this .gsplat file was encoded with dataset priors {parsed.priors_id.hex()}: "
                          "pass them to decode (priors=... in Python, --priors FILE on the command line)")
    if priors.ident() != parsed.priors_id:
        raise FormatError(f"this .gsplat file needs dataset priors {parsed.priors_id.hex()}, "
                          f"not the given {priors.ident().hex()}")
    return priors


def read(parsed: CompactFile, max_groups: int | None = None, priors: Priors | None = None) -> Quantized:
    """Range-decode the first ``max_groups`` groups (all by default).

    ``priors``: the dataset priors a file names (ignored for files coded with the built-in set).
    """
    priors = _priors_for(parsed, priors)
    h, bits = parsed.header, parsed.bits
    ngroups = len(parsed.group_sizes) if max_groups is None else min(max_groups, len(parsed.group_sizes))
    dec = RangeDecoder(parsed.payload)
    depths = [bits.scale, bits.scale, bits.shear, *bits.color]
    codes: list[int] = []
    rows: list[list[int]] = []
    limit = 1 << (2 * bits.pos)
    for g in range(ngroups):
        size = parsed.group_sizes[g]
        gap_table = priors.gap_table(bits.pos, size)
        code = 0
        for _ in range(size):
            length = dec.decode(gap_table)
            if length:
                code += (1 << (length - 1)) + _decode_raw(dec, length - 1)
            if code >= limit:
                raise FormatError("decoded positions leave the quantization grid (corrupt data)")
            codes.append(code)
            if dec.overrun > MAX_OVERRUN:
                raise FormatError(".gsplat 1.1 payload ends before its Gaussians do (corrupt data)")
        for _ in range(size):
            refs: list[int] = []
            row = []
            for k, b in enumerate(depths):
                value = dec.decode(priors.table(k, context(k, refs), b))
                row.append(value)
                refs.append(ref_index(value, b))
            rows.append(row)
            if dec.overrun > MAX_OVERRUN:
                raise FormatError(".gsplat 1.1 payload ends before its Gaussians do (corrupt data)")
    qx, qy = morton_decode(np.asarray(codes, np.uint64), bits.pos)
    qattr = np.asarray(rows, np.int64).reshape(-1, len(depths))
    return Quantized(h.width, h.height, h.color_space, bits, parsed.ranges, parsed.group_sizes[:ngroups],
                     qx, qy, qattr)


def cost_of(q: Quantized, priors: Priors | None = None) -> CodeCost:
    """Per-attribute ideal cost of ``q``'s symbols under the 1.1 models (re-codes them). A file the
    reader accepted may re-code shorter than the per-byte bound (fuzzer find
    tests/fuzz/corpus/crash-info-recode-1.1.gsplat), so the bound is not applied here."""
    return write(q, priors, check_size=False)[1]


