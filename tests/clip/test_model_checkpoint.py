"""GS-CLIP checkpoints: exact round trips, and our CheckpointError for every kind of bad file."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")

from splatcodec import Splats  # noqa: E402
from splatcodec.clip.checkpoint import FORMAT, load_checkpoint, save_checkpoint  # noqa: E402
from splatcodec.clip.config import (GSClipConfig, ResamplerConfig, StemConfig, TextConfig,  # noqa: E402
                                    VisionConfig)
from splatcodec.clip.errors import CheckpointError, ClipInputError  # noqa: E402
from splatcodec.clip.model import GSClip, normalize_pixels  # noqa: E402
from splatcodec.clip.tokens import splat_features  # noqa: E402

VOCAB = Path(__file__).resolve().parents[1] / "fixtures" / "open_clip_tiny" / "bpe_tiny.txt.gz"


def small_config(**overrides) -> GSClipConfig:
    kwargs = dict(name="small", embed_dim=24,
                  vision=VisionConfig(image_size=16, patch_size=4, width=32, layers=2, head_width=16),
                  resampler=ResamplerConfig(blocks=2, head_width=16), stem=StemConfig(param="scale_rotation"))
    kwargs.update(overrides)
    return GSClipConfig(**kwargs)


def trained_model(config: GSClipConfig | None = None) -> GSClip:
    """A model whose weights all differ from their init (so a missed tensor would show)."""
    torch.manual_seed(3)
    model = GSClip(config or small_config())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def inputs(model: GSClip):
    rng = np.random.default_rng(0)
    splats = [Splats(rng.uniform(0, 16, (n, 2)), np.c_[rng.uniform(0.5, 3, n), rng.normal(0, 1, n),
                                                        rng.uniform(0.5, 3, n)], rng.uniform(0, 1, (n, 3)), 16, 16)
              for n in (12, 30)]
    feats, valid = splat_features(splats, param=model.config.stem.param)
    pixels = normalize_pixels(rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), model.config)
    return feats, valid, pixels


def test_round_trip_is_bit_exact(tmp_path):
    model = trained_model()
    model.set_stage("contrastive", unfreeze_blocks=1)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    feats, valid, pixels = inputs(model)
    model.encode_gaussians(feats, valid).sum().backward()
    opt.step()
    extra = {"stage": "contrastive", "epoch": 2, "optimizer": opt.state_dict(),
             "encode_settings": {"num_gaussians": 16, "effort": 1}, "history": [0.5, 0.25], "none": None}
    path = save_checkpoint(tmp_path / "sub" / "model.pt", model, extra=extra)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left behind
    loaded, got = load_checkpoint(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert got["stage"] == "contrastive" and got["encode_settings"] == extra["encode_settings"]
    assert got["history"] == [0.5, 0.25] and got["none"] is None
    opt2 = torch.optim.AdamW(loaded.parameters(), lr=1e-3)
    del opt2  # the optimiser state is plain tensors and numbers: it loads into a fresh optimiser
    torch.optim.AdamW(model.trainable_parameters(), lr=1e-3).load_state_dict(got["optimizer"])
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model.encode_gaussians(feats, valid), loaded.encode_gaussians(feats, valid))
        assert torch.equal(model.encode_image(pixels), loaded.encode_image(pixels))
        assert torch.equal(model.text.projection.weight, loaded.text.projection.weight)


def test_round_trip_open_clip_text_tower(tmp_path):
    cfg = small_config(text=TextConfig(tower="open_clip", context_length=16, vocab_size=584, width=32, heads=2,
                                       layers=1, vocab_path=str(VOCAB)))
    model = trained_model(cfg)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    with torch.no_grad():
        assert torch.equal(model.encode_text(["a photo of a cat", "a dog"]),
                           loaded.encode_text(["a photo of a cat", "a dog"]))


def test_saving_rejects_what_a_safe_load_cannot_read(tmp_path):
    model = trained_model()
    path = save_checkpoint(tmp_path / "m.pt", model, extra={"epoch": 1})
    before = path.read_bytes()
    for bad in ({"array": np.zeros(3)}, {"obj": object()}, {("tuple", "key"): 1}, {"nested": [{"x": {1, 2}}]}):
        with pytest.raises(CheckpointError):
            save_checkpoint(path, model, extra=bad)
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    with pytest.raises(CheckpointError):
        save_checkpoint(tmp_path / "x.pt", torch.nn.Linear(2, 2))


def write(path: Path, payload) -> Path:
    torch.save(payload, path)
    return path


def test_bad_checkpoints_raise_checkpoint_error(tmp_path):
    model = trained_model()
    good = save_checkpoint(tmp_path / "good.pt", model)
    data = torch.load(good, weights_only=True)
    state = data["state_dict"]
    cases = {
        "missing": tmp_path / "absent.pt",
        "directory": tmp_path,
        "garbage": tmp_path / "garbage.pt",
        "truncated": tmp_path / "truncated.pt",
        "plain_state_dict": write(tmp_path / "plain.pt", state),
        "other_format": write(tmp_path / "other.pt", {**data, "format": "something-else"}),
        "new_version": write(tmp_path / "v2.pt", {**data, "version": 2}),
        "no_config": write(tmp_path / "noconfig.pt", {k: v for k, v in data.items() if k != "config"}),
        "bad_config": write(tmp_path / "badcfg.pt", {**data, "config": {**data["config"], "embed_dim": -1}}),
        "unknown_config_key": write(tmp_path / "cfgkey.pt", {**data, "config": {**data["config"], "x": 1}}),
        "missing_tensor": write(tmp_path / "miss.pt", {**data, "state_dict": {
            k: v for k, v in state.items() if k != "resampler.latents"}}),
        "extra_tensor": write(tmp_path / "more.pt", {**data, "state_dict": {**state, "foo": torch.zeros(1)}}),
        "wrong_shape": write(tmp_path / "shape.pt", {**data, "state_dict": {
            **state, "visual.proj": torch.zeros(3, 3)}}),
        "config_mismatch": write(tmp_path / "mismatch.pt", {**data, "config": small_config(
            embed_dim=48).to_dict()}),
    }
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a torch file" * 10)
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:2000])
    messages = {}
    for name, path in cases.items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        messages[name] = str(err.value)
    assert "does not exist" in messages["missing"] and "version 2" in messages["new_version"]
    assert "not a splatcodec.clip checkpoint" in messages["plain_state_dict"]
    assert "invalid model config" in messages["bad_config"] and "'config'" in messages["no_config"]
    assert "resampler.latents" in messages["missing_tensor"] and "visual.proj" in messages["wrong_shape"]
    assert all("\n" not in m for m in messages.values())  # one line each, also for torch's long errors
    # A pickle that would run code on load is refused by the safe loader, as a CheckpointError.
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": FORMAT, "payload": Exploit()}, protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()


class Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ.get("TMPDIR", "/tmp")) / "pwned",))


def test_config_dict_round_trip_and_validation():
    for name in ("ViT-B-32", "ViT-B-16", "ViT-M-16", "tiny"):
        cfg = GSClipConfig.from_name(name)
        assert GSClipConfig.from_dict(cfg.to_dict()) == cfg
    import json
    json.dumps(GSClipConfig.from_name("tiny").to_dict())
    m16 = GSClipConfig.from_name("ViT-M-16")
    assert (m16.vision.width, m16.vision.layers, m16.vision.patch_size, m16.vision.heads, m16.num_latents) == (
        512, 12, 16, 8, 196)
    assert GSClipConfig.from_name("ViT-B-32").num_latents == 49
    for bad in ({"vision": {"width": 100}}, {"stem": {"param": "cholesky"}}, {"text": {"tower": "bert"}},
                {"resampler": {"latents": 0}}, {"embed_dim": 0}, {"vision": {"image_size": 30}}, []):
        with pytest.raises(ClipInputError):
            GSClipConfig.from_dict(bad) if isinstance(bad, list) else GSClipConfig.from_dict(
                {**GSClipConfig.from_name("tiny").to_dict(), **bad})
    with pytest.raises(ClipInputError):
        GSClipConfig.from_name("ViT-H-14")
