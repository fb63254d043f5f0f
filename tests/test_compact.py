"""The compact .gsplat 1.1 layout: range coder, coding-table rule, priors, header, versioning, golden file."""
from __future__ import annotations

import hashlib
import random
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from splatcodec.codec import api, bitstream, compact, container, formats
from splatcodec.codec.container import Limits
from splatcodec.codec.priors import Priors, builtin, fixed_ranges
from splatcodec.codec.quantize import BitDepths, Quantized, dequantize, quantize
from splatcodec.codec.rangecoder import MAX_OVERRUN, RangeDecoder, RangeEncoder, Table, build_table
from splatcodec.errors import FormatError, LimitExceededError
from splatcodec.splats import Splats

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
from make_golden import golden11, golden_splats  # noqa: E402

#: Pinned: change only with a format version bump (see docs/format.md, "Versioning").
GOLDEN11_FILE_SHA256 = "8ad38e3b234ed6f3e35d18e42fbb208bcafa521491767c85dffe5ecdadaf7c28"
GOLDEN11_SPLATS_SHA256 = "9a32ff9dcec17cc30b25dd74126f45bf18ba5c3477df4b7ccaf47dc9be0e2c66"
BUILTIN_PRIORS_SHA256 = "aa59797305164cd5973cc7c81b7f7aa3304ebb17601b512f9d36761cde9b4485"


# ------------------------------------------------------------------------------ coding tables
def test_table_rule_by_hand():
    # S = 4, spare = 65532, W = 4: 1 + 3 * 65532 // 4 = 49150, 1 + 65532 // 4 = 16384, zeros get 1.
    assert build_table([3, 1, 0, 0]).freq == [49150, 16384, 1, 1]
    # 1 + 65533 // 3 = 21845 each; the remainder 1 goes to the first largest.
    assert build_table([1, 1, 1]).freq == [21846, 21845, 21845]
    assert build_table([0, 0]).freq == [32768, 32768]  # all-zero weights: uniform
    t = build_table([5, 0, 7, 7])
    assert t.freq[3] == t.freq[2] - (1 if t.freq[2] != t.freq[3] else 0) and sum(t.freq) == 65536
    assert t.start == [0, t.freq[0], t.freq[0] + t.freq[1], t.freq[0] + t.freq[1] + t.freq[2]]


def test_table_refuses_bad_input():
    with pytest.raises(ValueError):
        build_table([])
    with pytest.raises(ValueError):
        Table([1, 2])


# ------------------------------------------------------------------------------ range coder
def test_range_coder_round_trip_and_size():
    rng = random.Random(5)
    for trial in range(60):
        size = rng.randint(1, 200)
        table = build_table([rng.choice([0, 1, 3, 50, 4000]) for _ in range(size)])
        n = rng.randint(0, 400)
        symbols = [min(size - 1, int(rng.expovariate(0.1))) for _ in range(n)]
        raws = [(w, rng.getrandbits(w) if w else 0) for w in (rng.randint(0, 16) for _ in range(n))]
        enc = RangeEncoder()
        ideal = 0.0
        for s, (w, v) in zip(symbols, raws):
            enc.encode(s, table)
            enc.encode_raw(v, w)
            ideal += -np.log2(table.freq[s] / 65536) + w
        data = enc.finish()
        assert not data.endswith(b"\x00") or data.endswith(bytes(MAX_OVERRUN))
        assert len(data) <= ideal / 8 + 3, (trial, len(data), ideal / 8)
        dec = RangeDecoder(data)
        for s, (w, v) in zip(symbols, raws):
            assert dec.decode(table) == s
            assert dec.decode_raw(w) == v
        assert dec.overrun <= MAX_OVERRUN


def test_range_coder_bytes_are_pinned():
    """The coder is part of the format: these bytes must never change."""
    table = build_table([1, 1, 1])
    enc = RangeEncoder()
    for s in (0, 1, 2, 1, 0, 0, 2):
        enc.encode(s, table)
    enc.encode_raw(0xBEEF, 16)
    enc.encode_raw(5, 3)
    assert enc.finish().hex() == RANGE_CODER_PIN


RANGE_CODER_PIN = "32e2afec"


def test_streams_ending_in_zero_bytes_decode():
    """The flush leaves >= 3 zero bytes, more when the coded bytes before them are zeros too: the decoder
    reads exactly the bytes the encoder dropped (it failed on 1 of 200 CIFAR images when it allowed 4)."""
    table = build_table([1] * 256)
    for run in (0, 1, 3, 5, 12, 40):
        enc = RangeEncoder()
        for s in [7] * 5 + [0] * run:  # symbol 0 of a uniform table emits zero bytes
            enc.encode(s, table)
        data = enc.finish()
        dec = RangeDecoder(data)
        assert [dec.decode(table) for _ in range(5 + run)] == [7] * 5 + [0] * run
        assert dec.overrun <= MAX_OVERRUN


def test_range_decoder_rejects_values_outside_the_interval():
    dec = RangeDecoder(b"\xff\xff\xff\xff")
    with pytest.raises(FormatError):
        for _ in range(10):
            dec.decode(build_table([1, 1, 1]))
            dec.decode_raw(16)


# ------------------------------------------------------------------------------ files
def _random_splats(n: int, channels: int, seed: int = 0, w: int = 32, h: int = 24) -> Splats:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-4, [w + 4, h + 4], (n, 2))
    chol = np.c_[rng.uniform(0.4, 6, n), rng.normal(0, 1.5, n), rng.uniform(0.4, 6, n)]
    color = rng.normal(0, 0.4, (n, channels))
    return Splats(xy, chol, color, w, h)


def _quantized(s: Splats, levels: int = 4, groups=None, bits=BitDepths(9, 8, 7, (8, 8, 8))):
    return quantize(s, bits, levels=levels, groups=groups,
                    ranges=fixed_ranges(s.width, s.height, s.num_gaussians, s.channels))


@pytest.mark.parametrize("n,channels,levels,groups", [
    (40, 3, 4, None), (40, 1, 1, None), (1, 3, 4, None), (0, 3, 4, None), (17, 3, 3, None),
    (30, 3, 1, [5, 7, 18]),  # not the canonical doubling sizes: stored explicitly
    (300, 3, 6, None),
])
def test_round_trip(n, channels, levels, groups):
    q = _quantized(_random_splats(n, channels, seed=n), levels, groups)
    data, cost = compact.write(q)
    assert compact.is_compact(data) and data[2] == 0x11
    parsed = bitstream.parse(data, Limits())
    back = bitstream.read(parsed)
    assert back.group_sizes == q.group_sizes
    for a, b in ((back.qx, q.qx), (back.qy, q.qy), (back.qattr, q.qattr)):
        np.testing.assert_array_equal(a, b)
    want = dequantize(q)
    got = api.decode_splats(data)
    np.testing.assert_array_equal(got.xy, want.xy)
    np.testing.assert_array_equal(got.color, want.color)
    assert len(data) - cost.total / 8 <= 16  # header + coder termination + CRC
    info = api.info(data)
    assert info.version == "1.1" and info.num_gaussians == n


def test_progressive_prefix_decodes_only_the_groups_it_needs():
    q = _quantized(_random_splats(80, 3, seed=3), levels=4)
    data = compact.write(q)[0]
    part = api.decode_splats(data, max_gaussians=20)  # groups of 10, 10, 20, 40
    assert part.num_gaussians == 20
    np.testing.assert_array_equal(part.xy, dequantize(q).xy[:20])


def test_values_outside_the_grid_are_clipped_not_refused():
    s = _random_splats(10, 3)
    s.color[0] = [50.0, -50.0, 3.0]
    s.xy[1] = [-1000.0, 1000.0]
    data = compact.write(_quantized(s))[0]
    back = api.decode_splats(data)
    assert np.isfinite(back.color).all() and np.abs(back.xy).max() <= 1.5 * 32


def test_compact_write_refuses_what_it_cannot_hold():
    s = _random_splats(10, 3)
    assert compact.can_write(quantize(s, BitDepths(9, 8, 7, (8, 8, 8)))) is not None  # per-image grid
    deep = _quantized(s, bits=BitDepths(9, 13, 7, (8, 8, 8)))
    with pytest.raises(ValueError):
        compact.write(deep)


# ------------------------------------------------------------------------------ versions and hostile input
def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", compact.crc16(body))


def test_newer_versions_are_refused_clearly():
    data = compact.write(_quantized(_random_splats(10, 3)))[0]
    for version, text in ((0x12, "1.2"), (0x21, "2.1")):
        bad = _with_crc(data[:2] + bytes([version]) + data[3:-2])
        with pytest.raises(FormatError, match=text):
            api.decode(bad)


def test_a_1_0_reader_refuses_1_1_files():
    """A 1.0 reader checks the 8-byte signature first; the compact magic fails it (never misread)."""
    data = compact.write(_quantized(_random_splats(10, 3)))[0]
    with pytest.raises(FormatError, match="signature"):
        container.read_header(data)


@pytest.mark.parametrize("cut", [0, 2, 3, 5, 8, 12, -3, -1])
def test_truncations_are_format_errors(cut):
    data = compact.write(_quantized(_random_splats(40, 3)))[0]
    with pytest.raises(FormatError):
        api.decode(data[:cut])


def test_lying_headers_are_refused():
    data = compact.write(_quantized(_random_splats(40, 3)))[0]
    body = bytearray(data[:-2])
    # flags 1 byte, depths 3 bytes, then W-1, H-1, N varints at offsets 7, 8, 9
    huge_n = _with_crc(bytes(body[:9]) + b"\xff\xff\xff\x7f" + bytes(body[10:]))
    with pytest.raises((FormatError, LimitExceededError)):
        api.decode(huge_n)
    many = _with_crc(bytes(body[:9]) + bytes([127]) + bytes(body[10:]))  # 127 Gaussians in the same bytes
    with pytest.raises(FormatError):
        api.decode_splats(many)
    reserved = bytearray(body)
    reserved[3] |= 0x80
    with pytest.raises(FormatError, match="reserved"):
        api.decode(_with_crc(bytes(reserved)))
    deep = bytearray(body)
    deep[4] = 0x8F  # pos 9, scale 16 bits: beyond the 1.1 maximum
    with pytest.raises(FormatError):
        api.decode(_with_crc(bytes(deep)))
    with pytest.raises(FormatError, match="CRC"):
        api.decode(bytes(body) + b"\x00\x00")


# ------------------------------------------------------------------------------ golden file and priors
def test_golden11_file_is_pinned():
    data = (GOLDEN / "tiny11.gsplat").read_bytes()
    assert hashlib.sha256(data).hexdigest() == GOLDEN11_FILE_SHA256
    assert golden11() == data  # the encoder still writes exactly these bytes
    splats = api.decode_splats(data)
    h = hashlib.sha256()
    for a in (splats.xy, splats.chol, splats.color):
        h.update(np.ascontiguousarray(a, "<f4").tobytes())
    assert h.hexdigest() == GOLDEN11_SPLATS_SHA256
    ref = golden_splats().xy  # same set, canonical order: every centre within half a grid step
    assert np.abs(ref[:, None, :] - splats.xy[None, :, :]).max(axis=2).min(axis=1).max() < 0.05


def test_builtin_priors_are_pinned():
    p = builtin()
    assert p.digest().hex() == BUILTIN_PRIORS_SHA256
    assert Priors.from_bytes(p.to_bytes()).digest() == p.digest()
    with pytest.raises(FormatError):
        Priors.from_bytes(p.to_bytes()[:-2])


# ------------------------------------------------------------------------------ encoder choice
def test_small_encodes_are_1_1_and_large_ones_keep_1_0():
    rng = np.random.default_rng(0)
    img = (rng.random((32, 32, 3)) * 60 + np.linspace(0, 180, 32)[None, :, None]).astype(np.uint8)
    data, stats = api.encode(img, num_gaussians=32, effort=1, threads=1, return_stats=True)
    assert compact.is_compact(data) and stats.bits_per_gaussian["header+models"] * 32 / 8 <= 16
    assert api.decode(data).shape == img.shape
    with_meta = api.encode(img, num_gaussians=32, effort=1, threads=1, metadata={"comment": "x"})
    assert with_meta[:8] == container.SIGNATURE  # metadata needs 1.0's META section
    assert formats.compact_grid(768, 512, 5000, 3, None) is None


@pytest.mark.parametrize("n,channels,levels", [(1, 3, 1), (12, 1, 1), (40, 3, 1), (40, 3, 4), (300, 3, 6)])
def test_the_1_0_size_bound_never_exceeds_a_real_1_0_file(n, channels, levels):
    # write_best skips the 1.0 writer when the 1.1 file is within this bound: it must be a true bound.
    for seed in range(5):
        for bits in (BitDepths(9, 8, 7, (8, 8, 8)[:channels]), BitDepths(5, 3, 2, (3, 2, 2)[:channels])):
            q = _quantized(_random_splats(n, channels, seed=seed), levels, bits=bits)
            data, _ = bitstream.write(q)
            assert bitstream.size_lower_bound(q) <= len(data)
    # One value per stream: zero entropy, only the fixed fields remain.
    flat = Quantized(q.width, q.height, q.color_space, q.bits, q.ranges, q.group_sizes, q.qx, q.qy,
                     np.repeat(q.qattr[:1], q.num_gaussians, axis=0))
    assert bitstream.size_lower_bound(flat) <= len(bitstream.write(flat)[0])


def test_write_best_keeps_the_smaller_file():
    for n in (4, 40, 300):
        q = _quantized(_random_splats(n, 3, seed=n), levels=1)
        data, _ = formats.write_best(q, None)
        assert len(data) == min(len(bitstream.write(q)[0]), len(compact.write(q)[0]))


# ------------------------------------------------------------------------------ dataset priors
def _trained() -> Priors:
    from splatcodec.codec.priors_train import train

    return train([_quantized(_random_splats(60, 3, seed=s)) for s in range(5)])


def test_dataset_priors_round_trip_and_are_required():
    priors = _trained()
    assert priors.digest() != builtin().digest()
    q = _quantized(_random_splats(40, 3, seed=9))
    data = compact.write(q, priors)[0]
    assert data[3] & 0x20 and len(data) <= len(compact.write(q)[0]) + 4 + 16
    with pytest.raises(FormatError, match="dataset priors " + priors.ident().hex()):
        api.decode_splats(data)
    with pytest.raises(FormatError, match="needs dataset priors"):
        api.decode_splats(data, priors=builtin())
    got = api.decode_splats(data, priors=priors)
    np.testing.assert_array_equal(got.xy, dequantize(q).xy)
    assert api.decode_splats(data, priors=priors.to_bytes()).num_gaussians == 40
    assert api.info(data, priors=priors).num_gaussians == 40
    assert api.info(data).num_gaussians == 40  # the header alone needs no priors...
    with pytest.raises(FormatError, match="not a splatcodec priors file"):
        api.info(data, priors=b"junk")  # ...but a priors argument is checked all the same
    with pytest.raises(FormatError, match="dataset priors"):
        api.info(data, coded_bits=True)  # ...the coded bits do
    assert set(api.info(data, coded_bits=True, priors=priors).bits_per_gaussian) >= {"position", "Y"}


def test_priors_files_load_and_refuse_garbage(tmp_path):
    from splatcodec.codec.priors import load

    priors = _trained()
    path = tmp_path / "p.bin"
    path.write_bytes(priors.to_bytes())
    assert load(path).digest() == priors.digest() == load(str(path)).digest()
    for bad in (b"", b"GSPR", priors.to_bytes()[:-1], b"XXXX" + priors.to_bytes()[4:]):
        with pytest.raises(FormatError):
            load(bad)
    with pytest.raises(FormatError):
        load(tmp_path / "missing.bin")


def test_train_priors_command_and_encode_with_them(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from splatcodec.cli import main

    rng = np.random.default_rng(1)
    for k in range(3):
        img = (rng.random((16, 16, 3)) * 80 + np.linspace(0, 160, 16)[:, None, None]).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / f"i{k}.png")
    out = tmp_path / "priors.bin"
    result = CliRunner().invoke(main, ["train-priors", str(tmp_path), "-o", str(out), "-g", "12", "-e", "1",
                                       "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "from 3 images" in result.output and out.exists()
    img = np.asarray(Image.open(tmp_path / "i0.png"))
    data = api.encode(img, num_gaussians=12, effort=1, threads=1, priors=out)
    assert compact.is_compact(data) and data[3] & 0x20
    assert api.decode(data, priors=out).shape == img.shape
    with pytest.raises(FormatError):
        api.decode(data)
