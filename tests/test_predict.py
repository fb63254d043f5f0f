"""Format 1.2: attribute streams predicted from earlier attributes (PRED section, codec/predict.py)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from splatcodec.codec import bitstream, container, predict
from splatcodec.codec.container import Limits
from splatcodec.codec.quantize import BitDepths, quantize
from splatcodec.errors import FormatError
from splatcodec.splats import Splats


def correlated_splats(n: int = 1500, seed: int = 0) -> Splats:
    """log b follows log a, Cr follows Cb and Y: what Kodak fits show, exaggerated."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, [128, 96], (n, 2))
    a = np.exp(rng.normal(0.5, 0.6, n))
    b = a * np.exp(rng.normal(0, 0.15, n))
    chol = np.c_[a, rng.normal(0, 0.5, n) * b, b]
    ycc = np.c_[rng.uniform(0.1, 0.9, n), rng.normal(0, 0.1, n), np.zeros(n)]
    ycc[:, 2] = -0.8 * ycc[:, 1] + rng.normal(0, 0.01, n)
    rgb = ycc @ np.linalg.inv(np.array([[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5],
                                        [0.5, -0.418687589, -0.081312411]])).T
    return Splats(xy, chol, rgb, 128, 96)


@pytest.fixture(scope="module")
def q():
    return quantize(correlated_splats(), BitDepths(12, 7, 7, (7, 6, 6)), levels=4)


@pytest.fixture(scope="module")
def files(q):
    return bitstream.write(q)[0], bitstream.write(q, predict=False)[0]


def _sections(data: bytes):
    pos = container.HEADER_SIZE
    while pos < len(data):
        kind, flags, length = container.SECTION_HEAD.unpack_from(data, pos)
        yield pos, kind, flags, length
        pos += container.SECTION_OVERHEAD + length


def _rebuild(data: bytes, edit) -> bytes:
    """``data`` with its sections replaced by ``edit(list of (kind, required, payload))``, re-framed."""
    header = container.read_header(data, Limits())
    secs = [(kind, bool(flags & 1), data[pos + 12:pos + 12 + length]) for pos, kind, flags, length in _sections(data)]
    return container.write_file(header, edit(secs))


def test_predicted_file_is_1_2_smaller_and_exact(q, files):
    data, plain = files
    assert data[8:10] == bytes([1, bitstream.PRED_MINOR]) and plain[8:10] == bytes([1, 0])
    assert len(data) < len(plain)
    parsed = bitstream.parse(data, Limits())
    assert parsed.predictors[5] is not None and 4 in parsed.predictors[5].sources  # Cr from Cb
    back = bitstream.read(parsed)
    np.testing.assert_array_equal(back.qattr, q.qattr)
    np.testing.assert_array_equal(back.qx, q.qx)
    np.testing.assert_array_equal(bitstream.read(bitstream.parse(plain, Limits())).qattr, q.qattr)
    # a prefix of the groups decodes too (the predictions are per Gaussian)
    part = bitstream.read(parsed, max_groups=2)
    np.testing.assert_array_equal(part.qattr, q.qattr[:part.num_gaussians])


def test_small_or_uncorrelated_sets_stay_1_0():
    small = quantize(correlated_splats(100), BitDepths(), levels=1)
    assert bitstream.write(small)[0] == bitstream.write(small, predict=False)[0]


def test_a_reader_without_pred_refuses_1_2_with_a_clear_error(files):
    """1.0 readers accept any minor but refuse unknown required sections: PRED is one."""
    with pytest.raises(FormatError, match="unsupported required section b'PRED'.*newer reader"):
        container.read_sections(files[0], container.read_header(files[0], Limits()),
                                frozenset({b"QUNT", b"GRUP", b"META"}))


def test_pred_in_a_1_0_file_is_refused(files):
    bad = bytearray(files[0])
    bad[9] = 0
    struct.pack_into("<I", bad, container.HEADER.size, zlib.crc32(bytes(bad[:container.HEADER.size])))
    with pytest.raises(FormatError, match="PRED section in a version 1.0 file"):
        bitstream.parse(bytes(bad), Limits())


@pytest.mark.parametrize("edit, message", [
    (lambda s: [s[0]] + s[2:] + [s[1]], "directly after QUNT"),
    (lambda s: s[:2] + [s[1]] + s[2:], "at most once"),
    (lambda s: [s[0], (s[1][0], False, s[1][2])] + s[2:], "marked required"),
    (lambda s: [s[0], (s[1][0], True, s[1][2][:-1])] + s[2:], "truncated"),
    (lambda s: [s[0], (s[1][0], True, s[1][2] + b"\0")] + s[2:], "trailing"),
    (lambda s: [s[0], (s[1][0], True, b"\x01\x00\x00\x00\x00\x00\x00" + s[1][2][1:])] + s[2:], "earlier"),
    (lambda s: [s[0], (s[1][0], True, b"\x03" + s[1][2][1:])] + s[2:], "sources"),
])
def test_malformed_pred_sections_are_format_errors(files, edit, message):
    with pytest.raises(FormatError, match=message):
        bitstream.parse(_rebuild(files[0], edit), Limits())


def test_bad_slopes_and_residuals_are_format_errors():
    with pytest.raises(FormatError, match="slope or offset"):
        predict.read_section(b"\x00\x01\x00\xff\x7f" + struct.pack("<i", 0) + b"\x00" * 4, 6)
    with pytest.raises(FormatError, match="slope or offset"):
        predict.read_section(b"\x00\x01\x00\x00\x00" + struct.pack("<i", predict.MAX_OFFSET + 1) + b"\x00" * 4, 6)
    p = predict.Predictor((0,), (32,), 16)
    pred = p.predict([np.array([0, 127])], 7)
    np.testing.assert_array_equal(pred, [0, 127])
    with pytest.raises(FormatError, match="value range"):
        predict.from_residuals(np.array([253, 0]), pred[::-1], 7)  # 253 - 127 + 127 > 127


def test_predictor_arithmetic_floors_negative_sums():
    p = predict.Predictor((0, 1), (-40, 7), -5)
    cols = [np.array([0, 3, 100]), np.array([9, 0, 1])]
    expected = np.clip(np.floor((-5 - 40 * cols[0] + 7 * cols[1]) / 32), 0, 63)
    np.testing.assert_array_equal(p.predict(cols, 6), expected)
    values = np.array([5, 63, 0])
    np.testing.assert_array_equal(predict.from_residuals(predict.residuals(values, expected, 6), expected, 6), values)


# ------------------------------------------------------------------------------------- golden 1.2
GOLDEN = Path(__file__).parent / "golden"
GOLDEN12_FILE_SHA256 = "0820e84fcfaf71130dfc08a86677b0f187229c0e827631a722e1f6332489c18b"
GOLDEN12_SPLATS_SHA256 = "36ea8cb5c01bee25fb051871c40305174136d819d9f22e23834d1ef39d769259"


def test_golden_1_2_file_decodes_to_pinned_gaussians_and_is_reproduced():
    """1.2 changes must be deliberate: regenerate with tests/golden/make_golden.py and bump the version."""
    import hashlib
    import sys

    from splatcodec.codec import api
    data = (GOLDEN / "tiny12.gsplat").read_bytes()
    assert hashlib.sha256(data).hexdigest() == GOLDEN12_FILE_SHA256
    assert api.info(data).version == "1.2"
    splats = api.decode_splats(data)
    h = hashlib.sha256()
    for a in (splats.xy, splats.chol, splats.color):
        h.update(np.ascontiguousarray(a, "<f4").tobytes())
    assert h.hexdigest() == GOLDEN12_SPLATS_SHA256
    sys.path.insert(0, str(GOLDEN))
    try:
        from make_golden import golden12
    finally:
        sys.path.pop(0)
    assert golden12() == data


def test_write_best_predicts_only_where_no_1_1_file_exists(q, files):
    """Per-image grid (Kodak-size encodes) or metadata: 1.2 where smaller. On the 1.1 grid the 1.0-layout
    candidate is written without predictions (size_lower_bound bounds plain 1.0 files)."""
    from splatcodec.codec import formats
    from splatcodec.codec.priors import fixed_ranges
    assert formats.write_best(q, None)[0] == files[0]
    s = correlated_splats()
    small = quantize(s, BitDepths(12, 7, 7, (7, 6, 6)), levels=1, ranges=fixed_ranges(s.width, s.height, s.num_gaussians, 3))
    kept = formats.write_best(small, None)[0]
    assert kept[:8] != container.SIGNATURE or kept[9] == 0
    assert formats.write_best(small, {"comment": "x"})[0][9] == bitstream.PRED_MINOR
