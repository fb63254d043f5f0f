"""The .gsplat container and bitstream: exact round trips, validation, limits, malformed input."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from splatcodec.codec import bitstream, container
from splatcodec.codec.api import decode_splats, info, metadata as read_metadata
from splatcodec.codec.container import HEADER_SIZE, Limits
from splatcodec.codec.quantize import BitDepths, dequantize, group_sizes_for, morton_decode, morton_encode, quantize
from splatcodec.errors import FormatError, InvalidInputError, LimitExceededError
from splatcodec.splats import Splats


def random_splats(n: int = 300, channels: int = 3, width: int = 96, height: int = 64, seed: int = 0) -> Splats:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-2, [width + 2, height + 2], (n, 2))
    chol = np.c_[rng.uniform(0.3, 8, n) * rng.choice([-1, 1], n), rng.normal(0, 2, n), rng.uniform(0.3, 8, n)]
    color = rng.normal(0.2, 0.3, (n, channels))
    return Splats(xy, chol, color, width, height)


def encode(splats: Splats, bits: BitDepths = BitDepths(), levels: int = 4, meta=None) -> bytes:
    data, _ = bitstream.write(quantize(splats, bits, levels=levels), meta)
    return data


def parse(data: bytes, **limits):
    return bitstream.parse(data, Limits(**limits))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("levels", [1, 4])
def test_symbols_round_trip_exactly(channels, levels):
    q = quantize(random_splats(channels=channels), BitDepths(), levels=levels)
    data, _ = bitstream.write(q)
    back = bitstream.read(parse(data))
    assert back.group_sizes == q.group_sizes
    np.testing.assert_array_equal(back.qx, q.qx)
    np.testing.assert_array_equal(back.qy, q.qy)
    np.testing.assert_array_equal(back.qattr, q.qattr)
    np.testing.assert_array_equal(back.ranges, q.ranges)


def test_dequantized_gaussians_are_close_and_describe_the_same_covariance():
    s = random_splats(200)
    back = dequantize(quantize(s, BitDepths(16, 12, 12, (12, 12, 12)), levels=1, shear_clip=0))
    # File order differs; match each decoded Gaussian to its source by position.
    d = np.linalg.norm(back.xy[:, None] - s.xy[None], axis=2)
    src = d.argmin(axis=1)
    assert d.min(axis=1).max() < 0.01
    got, want = back.covariance(), s.subset(src).covariance()
    diag = np.sqrt(want[:, [0, 1], [0, 1]])
    scale = diag[:, :, None] * diag[:, None, :]  # errors relative to sigma_i sigma_j
    assert np.abs((got - want) / scale).max() < 0.01
    np.testing.assert_allclose(back.color, s.color[src], atol=0.002)


def test_quantization_error_shrinks_with_bits():
    s = random_splats(500)
    errs = []
    for b in (6, 8, 10):
        back = dequantize(quantize(s, BitDepths(b + 6, b, b, (b, b, b)), levels=1, shear_clip=0))
        errs.append(np.abs(np.sort(back.color[:, 0]) - np.sort(s.color[:, 0])).max())
    assert errs[0] > errs[1] > errs[2]


def test_sorted_order_saves_about_log2_n_factorial_bits():
    s = random_splats(4000, width=512, height=512)
    q = quantize(s, BitDepths(pos=14), levels=1)
    data, stats = bitstream.write(q)
    raw_position_bits = 2 * 14 * 4000
    log2_n_factorial = sum(np.log2(np.arange(1, 4001)))
    # Uniform random positions: coded ~ raw - log2(n!) plus a small per-Gaussian overhead.
    assert stats.bits["position"] < raw_position_bits - log2_n_factorial + 2.0 * 4000
    assert stats.bits["position"] > raw_position_bits - log2_n_factorial - 1.0 * 4000


def test_morton_round_trip_and_order():
    rng = np.random.default_rng(1)
    qx, qy = rng.integers(0, 1 << 16, 1000), rng.integers(0, 1 << 16, 1000)
    code = morton_encode(qx, qy, 16)
    bx, by = morton_decode(code, 16)
    np.testing.assert_array_equal(bx, qx)
    np.testing.assert_array_equal(by, qy)
    assert morton_encode(np.array([1]), np.array([0]), 4)[0] == 1
    assert morton_encode(np.array([0]), np.array([1]), 4)[0] == 2


def test_group_sizes_double_and_cover():
    assert group_sizes_for(1000, 4) == [125, 125, 250, 500]
    assert sum(group_sizes_for(1001, 4)) == 1001
    assert group_sizes_for(5, 4) == [5]
    assert group_sizes_for(0, 4) == []


def test_first_group_holds_the_most_important_gaussians():
    s = random_splats(400)
    q = quantize(s, BitDepths(), levels=4)
    back = dequantize(q)
    energy = np.abs(back.color @ [0.2126, 0.7152, 0.0722]) * back.chol[:, 0] * back.chol[:, 2]
    first = q.group_sizes[0]
    assert np.median(energy[:first]) > 2 * np.median(energy[first:])


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_gaussian_counts(n):
    s = random_splats(n)
    back = decode_splats(encode(s))
    assert back.num_gaussians == n


def test_prefix_decode_counts():
    data = encode(random_splats(400))
    for m in (0, 1, 50, 51, 100, 399, 400, 10_000):
        assert decode_splats(data, max_gaussians=m).num_gaussians == min(m, 400)
    full = decode_splats(data)
    part = decode_splats(data, max_gaussians=100)  # exactly groups 1+2: a prefix of the file order
    np.testing.assert_array_equal(part.xy, full.xy[:100])


def test_metadata_round_trips():
    meta = {"icc": b"\x00\x01\xffprofile", "comment": "héllo", "empty": b""}
    data = encode(random_splats(), meta=meta)
    assert read_metadata(data) == meta
    assert isinstance(read_metadata(data)["comment"], str)


def test_info_reports_the_file():
    data = encode(random_splats(300))
    facts = info(data, coded_bits=True)
    assert (facts.width, facts.height, facts.channels, facts.num_gaussians) == (96, 64, 3, 300)
    assert facts.bytes == len(data) and facts.version == "1.0"
    assert abs(sum(facts.bits_per_gaussian.values()) * 300 - 8 * len(data)) < 8
    assert sum(facts.progressive_groups) == 300
    cheap = info(data)  # header only: the same facts, no coded bits
    assert cheap.bits_per_gaussian is None
    assert {**cheap.to_dict(), "bits_per_gaussian": facts.bits_per_gaussian} == facts.to_dict()


# ----------------------------------------------------------------------------- malformed input
def _rewrite_header(data: bytes, **changes) -> bytes:
    fields = list(container.HEADER.unpack(data[:container.HEADER.size]))
    names = ["sig", "major", "minor", "flags", "width", "height", "channels", "space", "reserved", "count", "total"]
    for k, v in changes.items():
        fields[names.index(k)] = v
    fixed = container.HEADER.pack(*fields)
    return fixed + struct.pack("<I", zlib.crc32(fixed)) + data[HEADER_SIZE:]


def _sections(data: bytes):
    pos, out = HEADER_SIZE, []
    while pos < len(data):
        kind, flags, length = container.SECTION_HEAD.unpack_from(data, pos)
        out.append((pos, kind, flags, length))
        pos += container.SECTION_OVERHEAD + length
    return out


def _with_section(data: bytes, kind: bytes, flags: int, payload: bytes) -> bytes:
    head = container.SECTION_HEAD.pack(kind, flags, len(payload))
    sec = head + payload + struct.pack("<I", zlib.crc32(head + payload))
    out = data + sec
    return _rewrite_header(out, total=len(out))


@pytest.fixture(scope="module")
def small_file() -> bytes:
    return encode(random_splats(60, width=40, height=30), meta={"k": "v"})


def test_every_truncation_is_a_format_error(small_file):
    for cut in range(len(small_file)):
        with pytest.raises(FormatError):
            decode_splats(small_file[:cut])


def test_trailing_bytes_are_refused(small_file):
    with pytest.raises(FormatError, match="trailing"):
        decode_splats(small_file + b"\0")


def test_every_single_bit_flip_is_detected(small_file):
    for pos in range(len(small_file)):
        for bit in (0, 3, 7):
            bad = bytearray(small_file)
            bad[pos] ^= 1 << bit
            with pytest.raises((FormatError, LimitExceededError)):
                decode_splats(bytes(bad))


def test_wrong_major_version_is_refused_and_minor_accepted(small_file):
    with pytest.raises(FormatError, match="major version"):
        decode_splats(_rewrite_header(small_file, major=2))
    assert decode_splats(_rewrite_header(small_file, minor=7)).num_gaussians == 60


def test_not_bytes_and_bad_signature():
    with pytest.raises(FormatError):
        decode_splats("not bytes")
    with pytest.raises(FormatError, match="signature"):
        decode_splats(b"\x89PNG\r\n\x1a\n" + bytes(100))


def test_lying_section_length_with_valid_crcs(small_file):
    pos, kind, flags, length = _sections(small_file)[0]
    bad = bytearray(small_file)
    struct.pack_into("<I", bad, pos + 8, 0xFFFFFFF0)
    with pytest.raises(FormatError, match="beyond the end"):
        decode_splats(bytes(bad))


def test_lying_total_length(small_file):
    with pytest.raises(FormatError):
        decode_splats(_rewrite_header(small_file, total=len(small_file) + 1000))
    with pytest.raises(FormatError):
        decode_splats(_rewrite_header(small_file, total=2 ** 63))


def test_huge_dimensions_hit_the_pixel_limit_before_allocating(small_file):
    huge = _rewrite_header(small_file, width=1 << 16, height=1 << 16)
    with pytest.raises(LimitExceededError):
        decode_splats(huge)
    # The override lets it parse (we only decode Gaussians here, no pixels).
    assert decode_splats(huge, max_pixels=None).width == 1 << 16
    # Sides over 2^16 are outside the format (the core cannot render them), whatever the limits.
    with pytest.raises(FormatError):
        decode_splats(_rewrite_header(small_file, width=(1 << 16) + 1), max_pixels=None)
    with pytest.raises(FormatError):
        decode_splats(_rewrite_header(small_file, width=0))


def test_huge_gaussian_count_hits_the_limit(small_file):
    with pytest.raises(LimitExceededError):
        decode_splats(_rewrite_header(small_file, count=2 ** 32 - 1))
    with pytest.raises(FormatError):  # allowed by the limit, but the groups disagree
        decode_splats(_rewrite_header(small_file, count=61))


def test_unknown_optional_section_is_skipped_and_required_refused(small_file):
    assert decode_splats(_with_section(small_file, b"XTRA", 0, b"future stuff")).num_gaussians == 60
    with pytest.raises(FormatError, match="required"):
        decode_splats(_with_section(small_file, b"XTRA", 1, b"future stuff"))
    with pytest.raises(FormatError, match="reserved"):
        decode_splats(_with_section(small_file, b"XTRA", 2, b""))


def test_duplicate_or_missing_sections(small_file):
    secs = _sections(small_file)
    qunt_pos, _, _, qlen = secs[0]
    qunt = small_file[qunt_pos:qunt_pos + container.SECTION_OVERHEAD + qlen]
    dup = small_file + qunt
    with pytest.raises(FormatError):
        decode_splats(_rewrite_header(dup, total=len(dup)))
    grup_pos, _, _, glen = secs[1]
    dropped = small_file[:grup_pos] + small_file[grup_pos + container.SECTION_OVERHEAD + glen:]
    with pytest.raises(FormatError, match="GRUP"):
        decode_splats(_rewrite_header(dropped, total=len(dropped)))


def test_garbage_payloads_with_valid_crcs_are_format_errors(small_file):
    """Corrupt the inside of each section and fix its CRC: the parser itself must catch it."""
    rng = np.random.default_rng(0)
    for pos, kind, flags, length in _sections(small_file):
        for trial in range(40):
            bad = bytearray(small_file)
            start = pos + container.SECTION_HEAD.size
            k = int(rng.integers(0, length))
            bad[start + k] ^= int(rng.integers(1, 256))
            stop = start + length
            struct.pack_into("<I", bad, stop, zlib.crc32(bytes(bad[pos:stop])))
            try:
                decode_splats(bytes(bad))
            except (FormatError, LimitExceededError):
                pass


def test_encoder_refuses_non_finite_gaussians():
    s = random_splats(10)
    s.color[0, 0] = np.nan
    with pytest.raises(InvalidInputError):
        quantize(s, BitDepths())
    with pytest.raises(InvalidInputError):
        quantize(random_splats(10), BitDepths(pos=17))


def test_implausible_ranges_are_refused_on_both_sides():
    s = random_splats(10)
    s.color[0, 0] = 1e6
    with pytest.raises(InvalidInputError, match="implausibly large"):
        quantize(s, BitDepths())
    s = random_splats(10)
    s.xy[0, 0] = 1e7
    with pytest.raises(InvalidInputError):
        quantize(s, BitDepths())


def test_delta_coding_is_chosen_for_spatially_smooth_attributes():
    """Colours that vary smoothly in space are cheaper as differences along the Morton order."""
    s = random_splats(2000, width=256, height=256)
    s.color[:] = (s.xy[:, :1] / 256.0) * np.array([0.9, 0.1, 0.5])  # a horizontal ramp
    q = quantize(s, BitDepths(), levels=1)
    data, _ = bitstream.write(q)
    parsed = parse(data)
    assert any(m.delta for m in parsed.models[3:])
    np.testing.assert_array_equal(bitstream.read(parsed).qattr, q.qattr)


def test_delta_stream_leaving_its_range_is_a_format_error():
    from splatcodec.codec.entropy import from_deltas, to_deltas
    v = np.array([0, 5, 127, 3])
    np.testing.assert_array_equal(from_deltas(to_deltas(v, 7), 7), v)
    with pytest.raises(FormatError):
        from_deltas(np.array([254, 254]), 7)  # 64 + 127 + 127 > 127


def test_render_work_limit_stops_decoder_bombs():
    """Many image-sized Gaussians would make rendering take hours: refused before rendering."""
    from splatcodec.codec import api
    n = 3000
    s = Splats(np.full((n, 2), 500.0), np.tile([2000.0, 0.0, 2000.0], (n, 1)), np.full((n, 3), 0.001), 1000, 1000)
    data = encode(s, levels=1)
    with pytest.raises(LimitExceededError, match="Gaussian-tile entries|evaluate"):
        api.decode(data, width=4000, height=4000, max_pixels=1 << 25)
    assert api.decode(data, max_gaussians=1).shape == (1000, 1000, 3)
