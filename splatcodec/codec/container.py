"""The ``.gsplat`` container: fixed header, typed length-prefixed CRC-checked sections, safety limits.

Layout (all integers little-endian; see ``docs/format.md`` for the normative description)::

    header (40 bytes)
      0  8  signature  b"\\x89GSPL\\r\\n\\x1a"
      8  1  major version (readers refuse other majors)
      9  1  minor version (readers accept any minor of their major)
     10  2  header flags (must be 0 in 1.x)
     12  4  width      (u32, > 0)
     16  4  height     (u32, > 0)
     20  1  channels   (1 or 3)
     21  1  colour space (0 = gray, 1 = YCbCr from RGB)
     22  2  reserved (0)
     24  4  Gaussian count N (u32)
     28  8  total file length in bytes (u64)
     36  4  CRC32 of bytes 0..35
    sections, back to back until the total length is reached exactly:
      0  4  type (4 ASCII bytes)
      4  4  flags (bit 0: required; other bits 0)
      8  4  payload length L (u32)
     12  L  payload
   12+L  4  CRC32 of type, flags, length and payload

Every read is bounds-checked with Python integers before anything is sliced or allocated.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import FormatError, InvalidInputError
# The limits live in splatcodec.limits (one home); re-exported here for the format code.
from ..limits import DEFAULT_MAX_GAUSSIANS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_RENDER_WORK, MAX_DIMENSION, Limits  # noqa: F401

SIGNATURE = b"\x89GSPL\r\n\x1a"
MAJOR = 1
MINOR = 0
HEADER = struct.Struct("<8sBBHIIBBHIQ")
HEADER_SIZE = HEADER.size + 4  # + CRC32
SECTION_HEAD = struct.Struct("<4sII")
SECTION_OVERHEAD = SECTION_HEAD.size + 4
FLAG_REQUIRED = 1

@dataclass(frozen=True)
class Header:
    major: int
    minor: int
    width: int
    height: int
    channels: int
    color_space: int
    num_gaussians: int
    total_length: int


@dataclass(frozen=True)
class Section:
    type: bytes
    required: bool
    payload: bytes
    offset: int  # where the section starts in the file (for error messages)


def _crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def write_file(header: Header, sections: list[tuple[bytes, bool, bytes]]) -> bytes:
    """Serialize ``header`` (its total_length is recomputed) and ``(type, required, payload)`` sections.

    A header this package's reader would refuse (a side over MAX_DIMENSION, a count over 2^32 - 1) is
    refused here too (:class:`InvalidInputError`), so no writer makes a file it cannot read back."""
    if not (0 < header.width <= MAX_DIMENSION and 0 < header.height <= MAX_DIMENSION):
        raise InvalidInputError(f"cannot store a {header.width}x{header.height} image: each side must be "
                                f"1..{MAX_DIMENSION}")
    if not 0 <= header.num_gaussians < 1 << 32:
        raise InvalidInputError(f"cannot store {header.num_gaussians} Gaussians (at most 2^32 - 1)")
    body = bytearray()
    for kind, required, payload in sections:
        if len(kind) != 4 or len(payload) >= 1 << 32:
            raise ValueError("bad section")
        head = SECTION_HEAD.pack(kind, FLAG_REQUIRED if required else 0, len(payload))
        body += head + payload + struct.pack("<I", _crc(head + payload))
    total = HEADER_SIZE + len(body)
    fixed = HEADER.pack(SIGNATURE, header.major, header.minor, 0, header.width, header.height,
                        header.channels, header.color_space, 0, header.num_gaussians, total)
    return fixed + struct.pack("<I", _crc(fixed)) + bytes(body)


def read_header(data: bytes, limits: Limits | None = None) -> Header:
    """Parse and validate the fixed header (and the limits); does not look at the sections."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"expected bytes, got {type(data).__name__}")
    # The count-to-size limits judge the real length when the whole file is given, the declared one
    # when only the header is (a reader deciding how much to read); a lying length is a FormatError.
    given = len(data)
    data = bytes(data[:HEADER_SIZE]) if len(data) >= HEADER_SIZE else bytes(data)
    if len(data) < len(SIGNATURE) or data[:len(SIGNATURE)] != SIGNATURE:
        raise FormatError("not a .gsplat file (bad signature)")
    if len(data) < HEADER_SIZE:
        raise FormatError("truncated .gsplat header")
    fields = HEADER.unpack(data[:HEADER.size])
    (_, major, minor, flags, width, height, channels, space, reserved, count, total) = fields
    if major != MAJOR:
        raise FormatError(f"unsupported .gsplat major version {major} (this reader handles {MAJOR}.x)")
    (crc,) = struct.unpack("<I", data[HEADER.size:HEADER_SIZE])
    if crc != _crc(data[:HEADER.size]):
        raise FormatError("header CRC mismatch (corrupted file)")
    if flags or reserved:
        raise FormatError("header uses reserved fields")
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise FormatError(f"invalid image size {width}x{height}")
    if (channels, space) not in ((1, 0), (3, 1)):
        raise FormatError(f"invalid channels/colour space combination {channels}/{space}")
    header = Header(major, minor, width, height, channels, space, count, total)
    if limits is not None:
        limits.check_pixels(width, height)
        limits.check_gaussians(count, file_bytes=total if given <= HEADER_SIZE else given)
    return header


def read_sections(data: bytes, header: Header, known: frozenset[bytes]) -> list[Section]:
    """All sections after the header, CRC-checked; unknown optional ones are dropped, unknown required refused."""
    if len(data) != header.total_length:
        kind = "truncated" if len(data) < header.total_length else "has trailing bytes"
        raise FormatError(f".gsplat file {kind}: header says {header.total_length} bytes, got {len(data)}")
    sections = []
    pos = HEADER_SIZE
    end = len(data)
    while pos < end:
        if end - pos < SECTION_OVERHEAD:
            raise FormatError(f"truncated section header at byte {pos}")
        kind, flags, length = SECTION_HEAD.unpack_from(data, pos)
        if length > end - pos - SECTION_OVERHEAD:
            raise FormatError(f"section at byte {pos} claims {length} bytes, beyond the end of the file")
        stop = pos + SECTION_HEAD.size + length
        (crc,) = struct.unpack_from("<I", data, stop)
        if crc != _crc(data[pos:stop]):
            raise FormatError(f"CRC mismatch in section {kind!r} at byte {pos} (corrupted file)")
        if flags & ~FLAG_REQUIRED:
            raise FormatError(f"section {kind!r} uses reserved flag bits")
        required = bool(flags & FLAG_REQUIRED)
        if kind in known:
            sections.append(Section(kind, required, bytes(data[pos + SECTION_HEAD.size:stop]), pos))
        elif required:
            raise FormatError(f"unsupported required section {kind!r} (file needs a newer reader)")
        pos = stop + 4
    return sections
