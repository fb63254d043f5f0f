"""GS-CLIP model: tokens, masking, set invariances, stages, trainable share, distillation step."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")

from splatcodec import Splats  # noqa: E402
from splatcodec.clip.config import GSClipConfig, ResamplerConfig, StemConfig, VisionConfig  # noqa: E402
from splatcodec.clip.errors import ClipInputError  # noqa: E402
from splatcodec.clip.model import GSClip, normalize_pixels  # noqa: E402
from splatcodec.clip.resampler import PerceiverResampler  # noqa: E402
from splatcodec.clip.tokens import FEATURE_DIM, splat_features  # noqa: E402

ATOL = 2e-6  # float32 attention over a set: only the summation order may differ


def random_splats(rng: np.random.Generator, n: int, size: int = 32, channels: int = 3) -> Splats:
    chol = np.c_[rng.uniform(0.4, 4, n), rng.normal(0, 1.5, n), rng.uniform(0.4, 4, n)]
    return Splats(rng.uniform(0, size, (n, 2)), chol, rng.uniform(0, 1, (n, channels)), size, size)


def micro_config(**overrides) -> GSClipConfig:
    """A very small model (16x16 input, width 64, 2 blocks) that runs in milliseconds."""
    kwargs = dict(name="micro", embed_dim=32,
                  vision=VisionConfig(image_size=16, patch_size=4, width=64, layers=2, head_width=32),
                  resampler=ResamplerConfig(head_width=16))
    kwargs.update(overrides)
    return GSClipConfig(**kwargs)


@pytest.fixture(scope="module")
def tiny() -> GSClip:
    torch.manual_seed(0)
    return GSClip(micro_config()).eval()


def encode(model: GSClip, splats, param: str = "log_ab_shear") -> torch.Tensor:
    feats, valid = splat_features(splats, param=param)
    with torch.no_grad():
        return model.encode_gaussians(feats, valid)


def test_features_shapes_and_padding():
    rng = np.random.default_rng(1)
    batch = [random_splats(rng, 7), random_splats(rng, 3), random_splats(rng, 0), random_splats(rng, 5, channels=1)]
    for param, dim in (("log_ab_shear", 8), ("scale_rotation", 9)):
        feats, valid = splat_features(batch, param=param)
        assert FEATURE_DIM(param) == dim
        assert feats.shape == (4, 7, dim) and feats.dtype == np.float32
        assert valid.dtype == bool and valid.sum(1).tolist() == [7, 3, 0, 5]
        assert not feats[~valid].any()  # padding rows are zero
        assert np.all(np.abs(feats[valid][:, :2]) <= 1)  # positions in [-1, 1]


def test_features_geometry():
    # One axis-aligned Gaussian in a 200 x 100 image: sigma_x = 20 px, sigma_y = 5 px, at the centre.
    s = Splats([[100.0, 50.0]], [[20.0, 0.0, 5.0]], [[0.2, 0.4, 0.6]], 200, 100)
    f, _ = splat_features([s], param="log_ab_shear")
    np.testing.assert_allclose(f[0, 0], [0, 0, np.log(0.1), np.log(0.05), 0, 0.2, 0.4, 0.6], rtol=1e-6, atol=1e-7)
    f, _ = splat_features([s], param="scale_rotation")
    e = (0.1 ** 2 - 0.05 ** 2) / (0.1 ** 2 + 0.05 ** 2)
    np.testing.assert_allclose(f[0, 0], [0, 0, np.log(0.1), np.log(0.05), e, 0, 0.2, 0.4, 0.6], rtol=1e-6, atol=1e-7)
    # Flipping a Cholesky column's sign is the same Gaussian; a rotated one has the same scales.
    flipped = Splats([[100.0, 50.0]], [[-20.0, -0.0, -5.0]], [[0.2, 0.4, 0.6]], 200, 100)
    np.testing.assert_array_equal(splat_features([flipped])[0], splat_features([s])[0])
    sq = Splats([[5.0, 5.0], [5.0, 5.0]], [[2.0, 0.0, 1.0], [1.0, 0.0, 2.0]], [[1, 1, 1]] * 2, 10, 10)
    f, _ = splat_features([sq], param="scale_rotation")
    np.testing.assert_allclose(f[0, 0, 2:4], f[0, 1, 2:4], rtol=1e-6)
    np.testing.assert_allclose(f[0, 0, 4], -f[0, 1, 4], rtol=1e-6)  # 90 degrees apart: cos 2t flips


def test_degenerate_gaussians_are_invalid():
    s = Splats([[1, 1], [2, 2], [3, 3]], [[1, 0, 1], [0, 0, 1], [1, 0, np.nan]], [[1, 1, 1]] * 3, 8, 8)
    feats, valid = splat_features([s])
    assert valid.tolist() == [[True]] and feats.shape == (1, 1, 8)


def test_bad_inputs_raise_our_errors(tiny):
    with pytest.raises(ClipInputError):
        splat_features([np.zeros((3, 8))])
    with pytest.raises(ClipInputError):
        splat_features([], param="log_ab_shear")
    with pytest.raises(ClipInputError):
        splat_features([random_splats(np.random.default_rng(0), 3)], param="cholesky")
    with pytest.raises(ClipInputError):
        tiny.encode_gaussians(torch.zeros(2, 5, 9), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ClipInputError):
        tiny.encode_gaussians(torch.zeros(2, 5, 8), torch.ones(2, 5))  # a float mask is refused
    with pytest.raises(ClipInputError):
        tiny.encode_image(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ClipInputError):
        tiny.set_stage("finetune")
    with pytest.raises(ClipInputError):
        tiny.set_stage("contrastive", unfreeze_blocks=99)


def test_encode_shapes_and_norm_variable_n(tiny):
    rng = np.random.default_rng(2)
    emb = encode(tiny, [random_splats(rng, n) for n in (64, 5, 0, 17)])
    assert emb.shape == (4, 32) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all()
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))


def test_permutation_invariance(tiny):
    rng = np.random.default_rng(3)
    s = random_splats(rng, 48)
    perm = rng.permutation(48)
    for param in ("log_ab_shear", "scale_rotation"):
        model = tiny if param == "log_ab_shear" else GSClip(
            micro_config(stem=StemConfig(param=param))).eval()
        a = encode(model, [s], param)
        b = encode(model, [s.subset(perm)], param)
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
        assert not torch.equal(a, encode(model, [s.subset(slice(0, 40))], param))  # content matters


def test_padding_invariance(tiny):
    rng = np.random.default_rng(4)
    small, large = random_splats(rng, 9), random_splats(rng, 80)
    alone = encode(tiny, [small])
    batched = encode(tiny, [large, small, random_splats(rng, 33)])
    torch.testing.assert_close(batched[1:2], alone, atol=ATOL, rtol=0)
    torch.testing.assert_close(batched[0:1], encode(tiny, [large]), atol=ATOL, rtol=0)


def test_padding_values_are_ignored(tiny):
    rng = np.random.default_rng(5)
    feats, valid = splat_features([random_splats(rng, 20), random_splats(rng, 6)])
    with torch.no_grad():
        ref = tiny.encode_gaussians(feats, valid)
        junk = feats.copy()
        junk[~valid] = rng.normal(0, 100, junk[~valid].shape)
        junk[1, 10] = np.nan
        torch.testing.assert_close(tiny.encode_gaussians(junk, valid), ref, atol=0, rtol=0)


def test_float_key_mask_not_bool_cast():
    valid = torch.tensor([[True, False, True]])
    bias = PerceiverResampler.key_bias(valid, 2, torch.float32)
    assert bias.dtype == torch.float32 and bias.shape == (1, 1, 1, 5)
    assert bias.flatten().tolist() == [0.0, float("-inf"), 0.0, 0.0, 0.0]


def test_teacher_and_student_share_blocks(tiny):
    # Changing a shared block changes both paths; the student's own parts do not touch the teacher.
    model = GSClip(micro_config()).eval()
    pixels = normalize_pixels(np.random.default_rng(6).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), model.config)
    rng = np.random.default_rng(6)
    feats, valid = splat_features([random_splats(rng, 10)])
    with torch.no_grad():
        t0, s0 = model.encode_image(pixels), model.encode_gaussians(feats, valid)
        model.resampler.latents.add_(1.0)
        assert torch.equal(model.encode_image(pixels), t0)
        model.visual.transformer.resblocks[0].mlp.c_fc.bias.add_(0.5)
        assert not torch.equal(model.encode_image(pixels), t0)
        assert not torch.equal(model.encode_gaussians(feats, valid), s0)


def test_normalize_pixels_layouts():
    cfg = GSClipConfig.from_name("tiny")
    img = np.random.default_rng(7).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    a = normalize_pixels(img, cfg)
    b = normalize_pixels(torch.from_numpy(img).permute(0, 3, 1, 2), cfg)
    c = normalize_pixels(img.astype(np.float32) / 255, cfg)
    assert a.shape == (2, 3, 32, 32)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    expect = (img[0, 5, 6, 1] / 255 - cfg.vision.mean[1]) / cfg.vision.std[1]
    assert abs(float(a[0, 1, 5, 6]) - expect) < 1e-6


def test_stages_set_requires_grad():
    model = GSClip(micro_config())
    names = lambda: {n for n, p in model.named_parameters() if p.requires_grad}  # noqa: E731
    model.set_stage("distill")
    assert names() and all(n.startswith(("splat_stem.", "resampler.")) for n in names())
    model.set_stage("rgb")
    assert all(n.startswith(("visual.", "text.projection", "logit_scale")) for n in names())
    assert "visual.conv1.weight" in names() and "text.projection.weight" in names()
    model.set_stage("contrastive", unfreeze_blocks=1)
    got = names()
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in got
    assert "visual.transformer.resblocks.1.attn.in_proj_weight" not in got
    assert {"visual.proj", "visual.ln_post.weight", "logit_scale"} <= got
    assert not any(n.startswith("text.") for n in got)
    model.set_stage("contrastive", unfreeze_head=False)
    assert "visual.proj" not in names()
    assert sum(p.numel() for p in model.trainable_parameters()) == sum(
        p.numel() for n, p in model.named_parameters() if p.requires_grad)


def test_trainable_fraction_vit_m16():
    """The paper's backbone (open_clip ViT-M-16: width 512, 12 layers) with the default stem and
    resampler trains 7-14 % of the GS path in both GS stages; exact values are in docs."""
    torch.manual_seed(0)
    model = GSClip(GSClipConfig.from_name("ViT-M-16"))
    counts = model.parameter_counts()
    assert counts["backbone_shared"] == 38_194_176  # 12 blocks of width 512, 197 positions, proj 512x512
    model.set_stage("distill")
    distill = model.trainable_fraction()
    assert distill == pytest.approx((counts["stem"] + counts["resampler"]) / counts["gs_path"])
    assert 0.07 <= distill <= 0.14
    model.set_stage("contrastive")
    assert 0.07 <= model.trainable_fraction() <= 0.14
    model.set_stage("contrastive", unfreeze_blocks=12)
    assert model.trainable_fraction() > 0.9


def test_latent_count_defaults_and_override():
    cfg = GSClipConfig.from_name("tiny")
    assert cfg.num_latents == 64 and cfg.resampler_width == 96
    model = GSClip(micro_config(resampler=ResamplerConfig(latents=5, head_width=16))).eval()
    assert model.resampler.latents.shape == (5, 32)
    emb = encode(model, [random_splats(np.random.default_rng(8), 12)])
    assert emb.shape == (1, 32) and torch.isfinite(emb).all()


def test_distillation_step_lowers_loss():
    """A few distill-stage steps (MSE between normalised teacher and student embeddings) on one tiny
    batch lower the loss, and move only the stem and resampler."""
    torch.manual_seed(0)
    model = GSClip(micro_config())
    rng = np.random.default_rng(9)
    pixels = normalize_pixels(rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8), model.config)
    feats, valid = splat_features([random_splats(rng, n) for n in (30, 12, 40, 25)])
    model.eval()
    with torch.no_grad():
        target = model.encode_image(pixels)
    model.set_stage("distill")
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.mse_loss(model.encode_gaussians(feats, valid), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_import_splatcodec_does_not_import_torch():
    code = ("import sys, splatcodec, splatcodec.clip.config, splatcodec.clip.tokens; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert out.stdout.strip() == "False"
