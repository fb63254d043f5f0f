"""Rate-distortion optimised quantization of small images (codec/rdoq.py) and the small-image defaults."""
from __future__ import annotations

import numpy as np
import pytest

from splatcodec.codec import api, bitstream, colors, compact, encoder, fit_strategy, rdoq
from splatcodec.codec.container import Limits
from splatcodec.codec.priors import builtin, fixed_ranges
from splatcodec.codec.quantize import BitDepths, dequantize, quantize
from splatcodec.metrics import psnr
from splatcodec.render import render_float
from splatcodec.splats import Splats


def _random_splats(n: int, channels: int, seed: int, w: int = 20, h: int = 16) -> Splats:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-2, [w + 2, h + 2], (n, 2))
    chol = np.c_[rng.uniform(0.8, 5, n), rng.normal(0, 1.0, n), rng.uniform(0.8, 5, n)]
    color = rng.normal(0, 0.3, (n, channels))
    return Splats(xy, chol, color, w, h)


def _case(n: int, channels: int, seed: int, levels: int = 1):
    s = _random_splats(n, channels, seed)
    q = quantize(s, BitDepths(8, 6, 6, (7, 7, 7)[:channels]), levels=levels,
                 ranges=fixed_ranges(s.width, s.height, n, channels))
    # A target the Gaussians almost explain: their own render plus noise.
    rng = np.random.default_rng(seed + 1000)
    target = render_float(s, max_pixels=None).reshape(s.height, s.width, channels) + rng.normal(0, 0.02, (
        s.height, s.width, channels))
    return q, target


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("channels,levels", [(3, 1), (1, 1), (3, 4)])
def test_rdoq_never_increases_d_plus_lambda_r_over_plain_rounding(seed, channels, levels):
    q, target = _case(24 + seed, channels, seed, levels)
    priors = builtin()
    d0, r0 = rdoq.objective(q, target, priors)
    for scale in (0.0, 0.5, 1.5, 5.0):
        lam = scale * d0 / r0
        out = rdoq.optimise(q, target, priors, scale)
        d1, r1 = rdoq.objective(out, target, priors)
        assert d1 + lam * r1 <= d0 + lam * r0 + 1e-9
    # With the default lambda, something moves on these random inputs and the objective drops.
    d1, r1 = rdoq.objective(rdoq.optimise(q, target, priors), target, priors)
    lam = rdoq.LAMBDA_SCALE * d0 / r0
    assert d1 + lam * r1 < d0 + lam * r0


@pytest.mark.parametrize("channels,levels", [(3, 1), (1, 3)])
def test_rdoq_output_is_a_canonical_1_1_quantization_that_decodes_exactly(channels, levels):
    q, target = _case(40, channels, 7, levels)
    out = rdoq.optimise(q, target, builtin())
    assert out.num_gaussians == q.num_gaussians and out.group_sizes == q.group_sizes
    assert compact.can_write(out) is None
    data, cost = compact.write(out)
    back = bitstream.read(bitstream.parse(data, Limits()))
    for a, b in ((back.qx, out.qx), (back.qy, out.qy), (back.qattr, out.qattr)):
        np.testing.assert_array_equal(a, b)
    # The cost rdoq optimises is the coder's ideal cost (contexts, Morton gaps), to rounding.
    assert rdoq.objective(out, target, builtin())[1] == pytest.approx(cost.total, abs=1e-6)


def test_rdoq_distortion_model_is_the_cores_render():
    q, target = _case(30, 3, 3)
    want = ((target - render_float(dequantize(q), max_pixels=None)) ** 2).sum()
    assert rdoq.objective(q, target, builtin())[0] == pytest.approx(want, rel=1e-4)


def test_encoder_applies_rdoq_to_tiny_images_and_reports_the_decoded_psnr(monkeypatch):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    image = np.clip(np.stack([xx * 6, yy * 7, (xx + yy) * 3], -1) + rng.normal(0, 8, (32, 32, 3)), 0, 255)
    image = image.astype(np.uint8)
    data, stats = api.encode(image, num_gaussians=24, effort=1, threads=1, return_stats=True)
    assert psnr(api.decode(data), image) == pytest.approx(stats.psnr, abs=1e-9)
    monkeypatch.setattr(fit_strategy, "RDOQ_SCALE", 0.0)
    plain, plain_stats = api.encode(image, num_gaussians=24, effort=1, threads=1, return_stats=True)
    assert plain != data
    assert stats.psnr > plain_stats.psnr - 0.05 and len(data) <= len(plain) + 2


def test_small_images_store_one_group_by_default_and_levels_is_honoured():
    assert encoder.default_levels(32, 32) == 1 and encoder.default_levels(512, 512) == 1
    assert encoder.default_levels(768, 512) == encoder.DEFAULT_LEVELS == 4
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    default = api.encode(image, num_gaussians=32, effort=1, threads=1)
    assert api.info(default).progressive_groups == [32]
    four = api.encode(image, num_gaussians=32, effort=1, threads=1, levels=4)
    assert api.info(four).progressive_groups == [4, 4, 8, 16]


@pytest.mark.parametrize("channels", [3, 1])
def test_solve_colors_recovers_the_colours_of_a_render(channels):
    s = _random_splats(12, channels, seed=5)
    target = render_float(s, max_pixels=None).reshape(s.height, s.width, channels)
    zeroed = Splats(s.xy, s.chol, np.zeros_like(s.color), s.width, s.height)
    np.testing.assert_allclose(colors.solve_colors(zeroed, target, ridge=0.0).color, s.color, atol=2e-3)


def test_tiny_images_use_the_tiny_depths():
    from splatcodec.codec import formats

    bits = BitDepths(9, 7, 7, (8, 7, 7))
    assert formats.compact_depths(bits, 32 * 32) == BitDepths(8, 6, 6, (7, 7, 7))
    assert formats.compact_depths(bits, 224 * 224) == BitDepths(9, 7, 7, (8, 8, 8))
    assert formats.compact_depths(bits) == formats.compact_depths(bits, 224 * 224)


def test_tiny_images_fit_with_short_stages_and_a_long_polish_unless_very_sparse():
    Schedule = fit_strategy.Schedule
    assert fit_strategy.schedule_for(4, 32 * 32, 32) == Schedule(150, 600, 1.5)
    assert fit_strategy.schedule_for(4, 32 * 32, 16) == Schedule(150, 600, 1.5)
    assert fit_strategy.schedule_for(4, 32 * 32, 12) == Schedule(800, 300, 0.3, color_steps=20)  # spacing > 8 px
    assert fit_strategy.schedule_for(1, 64 * 64, 64) == Schedule(75, 225, 1.5)
    assert fit_strategy.schedule_for(4, 224 * 224, 400) == Schedule(250, 150, 1.0, (24.0, 0.0), color_steps=12)
    assert fit_strategy.schedule_for(4, 768 * 512, 5000) == Schedule(800, 300, 0.3, color_steps=20)
