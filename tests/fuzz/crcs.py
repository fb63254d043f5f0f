"""Recomputing a .gsplat file's CRCs, so fuzz mutations reach the parsers behind the CRC checks. Shared
by the atheris harness (fuzz_decode.py) and the pytest replay (test_corpus.py)."""
from __future__ import annotations

import struct
import zlib

from splatcodec.codec import compact, container


def refresh_crcs(data: bytes) -> bytes:
    """``data`` with the header CRC and every section CRC recomputed (as far as the sections parse);
    for a compact 1.1 file, its trailing CRC-16."""
    if compact.is_compact(data) and len(data) >= 5:
        return bytes(data[:-2]) + struct.pack("<H", compact.crc16(bytes(data[:-2])))
    out = bytearray(data)
    if len(out) < container.HEADER_SIZE:
        return bytes(out)
    struct.pack_into("<I", out, container.HEADER.size, zlib.crc32(bytes(out[:container.HEADER.size])))
    pos = container.HEADER_SIZE
    while pos + container.SECTION_OVERHEAD <= len(out):
        _, _, length = container.SECTION_HEAD.unpack_from(out, pos)
        stop = pos + container.SECTION_HEAD.size + length
        if stop + 4 > len(out):
            break
        struct.pack_into("<I", out, stop, zlib.crc32(bytes(out[pos:stop])))
        pos = stop + 4
    return bytes(out)
