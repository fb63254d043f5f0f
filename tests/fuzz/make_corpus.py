"""(Re)build tests/fuzz/corpus/: valid seeds plus structured mutations of them.

Mutations: every kind of truncation point, single-bit flips, lying length fields (with CRCs fixed
so the parser itself must catch them), huge dimensions and counts, garbage payloads with valid CRCs.
Files named crash-*.gsplat are inputs that once broke the decoder; this script never deletes them.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from crcs import refresh_crcs
from splatcodec.codec import bitstream, compact, container
from splatcodec.codec.priors import fixed_ranges
from splatcodec.codec.quantize import BitDepths, quantize
from splatcodec.splats import Splats

CORPUS = Path(__file__).parent / "corpus"


def seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    out = {}
    for name, n, c, levels in (("rgb", 40, 3, 3), ("gray", 25, 1, 1), ("one", 1, 3, 4), ("empty", 0, 3, 4)):
        xy = rng.uniform(0, [20, 12], (n, 2))
        chol = np.c_[rng.uniform(0.5, 4, n), rng.normal(0, 1, n), rng.uniform(0.5, 4, n)]
        color = rng.uniform(0, 0.5, (n, c))
        q = quantize(Splats(xy, chol, color, 20, 12), BitDepths(10, 6, 6, (7, 6, 6)[:c] if c == 3 else (7,)),
                     levels=levels)
        out[f"seed-{name}"] = bitstream.write(q, {"comment": "fuzz seed"} if name == "rgb" else None)[0]
    for name, n, c, levels, groups in (("rgb", 40, 3, 3, None), ("gray", 25, 1, 1, None), ("one", 1, 3, 4, None),
                                       ("empty", 0, 3, 4, None), ("groups", 30, 3, 1, [4, 9, 17])):
        xy = rng.uniform(-3, [23, 15], (n, 2))
        chol = np.c_[rng.uniform(0.5, 4, n), rng.normal(0, 1, n), rng.uniform(0.5, 4, n)]
        color = rng.normal(0, 0.4, (n, c))
        bits = BitDepths(9, 8, 7, (8, 8, 8)[:c])
        q = quantize(Splats(xy, chol, color, 20, 12), bits, levels=levels, groups=groups,
                     ranges=fixed_ranges(20, 12, n, c))
        out[f"seed-v11-{name}"] = compact.write(q)[0]
    # 1.2: a 1.0-layout file with a PRED section (enough Gaussians, Cr following Cb, b following a)
    n = bitstream.PREDICT_MIN_GAUSSIANS
    xy = rng.uniform(0, [20, 12], (n, 2))
    a = rng.uniform(0.5, 4, n)
    chol = np.c_[a, rng.normal(0, 1, n), a * rng.uniform(0.9, 1.1, n)]
    color = rng.uniform(0, 0.5, (n, 3))
    color[:, 2] = 0.5 - color[:, 0] + rng.normal(0, 0.01, n)
    q = quantize(Splats(xy, chol, color, 20, 12), BitDepths(10, 6, 6, (7, 6, 6)), levels=2)
    out["seed-v12-pred"] = bitstream.write(q)[0]
    assert out["seed-v12-pred"][9] == bitstream.PRED_MINOR, "the 1.2 seed came out as a 1.0 file"
    return out


def mutations11(name: str, data: bytes) -> dict[str, bytes]:
    """Compact 1.1 files: truncations, flips (CRC-16 fixed so the parser must cope), lying header fields."""
    out = {}
    rng = np.random.default_rng(len(data) + 11)
    for cut in sorted({0, 2, 3, 4, 6, 9, len(data) // 2, len(data) - 2, len(data) - 1}):
        if cut < len(data):
            out[f"{name}-trunc{cut}"] = data[:cut]
    body = data[:-2]
    for k in range(8):
        bad = bytearray(body)
        pos = int(rng.integers(0, len(bad)))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        out[f"{name}-garbage{k}"] = refresh_crcs(bytes(bad) + b"\0\0")
    channels = 3 if data[3] & 1 else 1
    fields = 4 + (3 + channels) // 2  # offset of the width varint
    for field, offset, value in (("width", fields, b"\xff\xff\xff\x7f"), ("count", fields + 2, b"\xff\xff\x3f"),
                                 ("count-big", fields + 2, b"\xff\x07"), ("version", 2, b"\x12"),
                                 ("major", 2, b"\x21"), ("flags", 3, b"\xff"), ("depth", 4, b"\xff")):
        bad = bytes(body[:offset]) + value + bytes(body[offset + 1:])
        out[f"{name}-lie-{field}"] = refresh_crcs(bad + b"\0\0")
    out[f"{name}-lie-crc"] = bytes(body) + bytes([data[-2] ^ 1, data[-1]])
    return out


def _fix_header(data: bytearray) -> bytes:
    struct.pack_into("<I", data, container.HEADER.size, zlib.crc32(bytes(data[:container.HEADER.size])))
    return bytes(data)


def _sections(data: bytes):
    pos = container.HEADER_SIZE
    while pos + container.SECTION_OVERHEAD <= len(data):
        kind, flags, length = container.SECTION_HEAD.unpack_from(data, pos)
        yield pos, kind, length
        pos += container.SECTION_OVERHEAD + length


def mutations(name: str, data: bytes) -> dict[str, bytes]:
    out = {}
    rng = np.random.default_rng(len(data))
    for cut in sorted({0, 4, 8, 20, container.HEADER_SIZE - 1, container.HEADER_SIZE, len(data) // 2, len(data) - 1}):
        if cut < len(data):
            out[f"{name}-trunc{cut}"] = data[:cut]
    for k in range(6):
        bad = bytearray(data)
        pos = int(rng.integers(0, len(data)))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        out[f"{name}-flip{k}"] = bytes(bad)
    for field, offset, fmt, value in (("width", 12, "<I", 0xFFFFFFFF), ("height", 16, "<I", 1 << 20),
                                      ("count", 24, "<I", 0xFFFFFFFF), ("total", 28, "<Q", 2 ** 64 - 1),
                                      ("channels", 20, "<B", 4), ("major", 8, "<B", 9)):
        bad = bytearray(data)
        struct.pack_into(fmt, bad, offset, value)
        out[f"{name}-lie-{field}"] = _fix_header(bad)
    if data[9] >= bitstream.PRED_MINOR:  # a PRED section in a file that says 1.0
        bad = bytearray(data)
        bad[9] = 0
        out[f"{name}-lie-minor"] = _fix_header(bad)
    both = bytearray(data)
    struct.pack_into("<II", both, 12, 1 << 20, 1 << 20)
    out[f"{name}-lie-huge-image"] = _fix_header(both)
    for pos, kind, length in _sections(data):
        tag = kind.decode("ascii", "replace").strip()
        bad = bytearray(data)
        struct.pack_into("<I", bad, pos + 8, 0xFFFFFFFF)
        out[f"{name}-{tag}@{pos}-len-huge"] = bytes(bad)
        start, stop = pos + container.SECTION_HEAD.size, pos + container.SECTION_HEAD.size + length
        for k in range(3):  # garbage inside the payload with a valid CRC
            bad = bytearray(data)
            for _ in range(1 + k * 3):
                if length:
                    bad[start + int(rng.integers(0, length))] = int(rng.integers(0, 256))
            struct.pack_into("<I", bad, stop, zlib.crc32(bytes(bad[pos:stop])))
            out[f"{name}-{tag}@{pos}-garbage{k}"] = bytes(bad)
    return out


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for old in CORPUS.glob("*.gsplat"):
        if not old.name.startswith("crash-"):
            old.unlink()
    count = 0
    for name, data in seeds().items():
        mutate = mutations11 if compact.is_compact(data) else mutations
        for fname, blob in {name: data, **mutate(name.replace("seed-", "mut-"), data)}.items():
            (CORPUS / f"{fname}.gsplat").write_bytes(blob)
            count += 1
    print(f"wrote {count} corpus files to {CORPUS}")


if __name__ == "__main__":
    main()
