"""Real open_clip weights load into our model and reproduce open_clip's own outputs.

The fixture (tests/fixtures/open_clip_tiny/, made by make_fixture.py in a separate venv with open_clip
3.3.0) holds a tiny open_clip CLIP state dict with perturbed random weights, fixed inputs, and what
open_clip computed from them. open_clip itself is never imported here.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")

from splatcodec.clip.bpe import ClipTokenizer  # noqa: E402
from splatcodec.clip.checkpoint import (config_from_open_clip_state_dict, load_open_clip_weights,  # noqa: E402
                                        read_open_clip_state_dict, resize_positional_embedding)
from splatcodec.clip.config import GSClipConfig, TextConfig, VisionConfig  # noqa: E402
from splatcodec.clip.errors import CheckpointError, ClipInputError  # noqa: E402
from splatcodec.clip.model import GSClip  # noqa: E402
from splatcodec.clip.text import MiniLMTextEncoder, OpenClipTextTransformer  # noqa: E402
from splatcodec.clip.vit import QuickGELU  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "open_clip_tiny"
VOCAB = FIXTURE / "bpe_tiny.txt.gz"
# float32 on the same CPU arithmetic; open_clip ran on torch 2.14.1, we on 2.13.0: allow rounding.
TOL = dict(atol=2e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def io():
    return dict(np.load(FIXTURE / "io.npz"))


@pytest.fixture(scope="module")
def state():
    return read_open_clip_state_dict(FIXTURE / "state_dict.pt")


def fixture_config(text: str = "open_clip") -> GSClipConfig:
    cfg = json.loads((FIXTURE / "model_config.json").read_text())
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    return GSClipConfig(
        name="fixture", embed_dim=cfg["embed_dim"],
        vision=VisionConfig(image_size=v["image_size"], patch_size=v["patch_size"], width=v["width"],
                            layers=v["layers"], head_width=v["head_width"]),
        text=TextConfig(tower=text, context_length=t["context_length"], vocab_size=t["vocab_size"],
                        width=t["width"], heads=t["heads"], layers=t["layers"], vocab_path=str(VOCAB)))


def test_image_tower_reproduces_open_clip(io, state):
    model = GSClip(fixture_config()).eval()
    report = load_open_clip_weights(model, FIXTURE / "state_dict.pt")
    assert report["visual"] and report["text"] and report["logit_scale"]
    assert not report["resized_positional_embedding"]
    with torch.no_grad():
        got = model.encode_image(torch.from_numpy(io["images"]), normalize=False)
    torch.testing.assert_close(got, torch.from_numpy(io["image_features"]), **TOL)
    assert model.logit_scale.item() == pytest.approx(float(io["logit_scale"]))


def test_text_tower_reproduces_open_clip(io):
    model = GSClip(fixture_config()).eval()
    load_open_clip_weights(model, FIXTURE / "state_dict.pt")
    with torch.no_grad():
        from_ids = model.text(torch.from_numpy(io["tokens"]))
        from_strings = model.encode_text(list(io["texts"]), normalize=False)
    torch.testing.assert_close(from_ids, torch.from_numpy(io["text_features"]), **TOL)
    torch.testing.assert_close(from_strings, from_ids, atol=0, rtol=0)


def test_tokenizer_matches_open_clip(io):
    tok = ClipTokenizer(VOCAB, context_length=16)
    assert tok.vocab_size == 584 and tok.eot_id == 583 and tok.sot_id == 582
    np.testing.assert_array_equal(tok(list(io["texts"])), io["tokens"])
    assert tok(["a very long caption that certainly does not fit into a context of sixteen tokens"])[0, -1] == 583


def test_loading_without_text_tower_and_with_minilm(io, state):
    visual_only = {k: v for k, v in state.items() if k.startswith("visual.") or k == "logit_scale"}
    model = GSClip(fixture_config()).eval()
    text_before = {k: v.clone() for k, v in model.text.state_dict().items()}
    report = load_open_clip_weights(model, visual_only)
    assert report["visual"] and not report["text"]
    assert all(torch.equal(v, model.text.state_dict()[k]) for k, v in text_before.items())
    minilm = GSClip(fixture_config(text="minilm")).eval()
    report = load_open_clip_weights(minilm, state)  # a full CLIP file; its text tower is set aside
    assert not report["text"] and "token_embedding.weight" in report["ignored"]
    assert isinstance(minilm.text, MiniLMTextEncoder)
    with torch.no_grad():
        got = minilm.encode_image(torch.from_numpy(io["images"]), normalize=False)
    torch.testing.assert_close(got, torch.from_numpy(io["image_features"]), **TOL)


def test_custom_text_clip_prefix_and_ddp_checkpoint(io, state, tmp_path):
    # open_clip's CustomTextCLIP keeps the text tower under "text."; training checkpoints wrap the
    # state dict as {"state_dict": ...} with DDP's "module." prefix.
    renamed = {(k if k.startswith("visual.") or k == "logit_scale" else "text." + k): v for k, v in state.items()}
    path = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in renamed.items()}}, path)
    model = GSClip(fixture_config()).eval()
    assert load_open_clip_weights(model, path)["text"]
    with torch.no_grad():
        torch.testing.assert_close(model.text(torch.from_numpy(io["tokens"])),
                                   torch.from_numpy(io["text_features"]), **TOL)


def test_safetensors_file(io, state, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    path = tmp_path / "open_clip_model.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = GSClip(fixture_config()).eval()
    load_open_clip_weights(model, path)
    with torch.no_grad():
        got = model.encode_image(torch.from_numpy(io["images"]), normalize=False)
    torch.testing.assert_close(got, torch.from_numpy(io["image_features"]), **TOL)


def test_config_inferred_from_state_dict(state):
    cfg = config_from_open_clip_state_dict(state, text="open_clip", head_width=16)
    ref = fixture_config()
    assert cfg.vision == VisionConfig(image_size=32, patch_size=8, width=32, layers=2, head_width=16)
    assert (cfg.embed_dim, cfg.text.vocab_size, cfg.text.context_length, cfg.text.layers) == (
        ref.embed_dim, ref.text.vocab_size, ref.text.context_length, ref.text.layers)


def test_positional_embedding_resize_matches_open_clip(io, state):
    resized = resize_positional_embedding(state["visual.positional_embedding"], 6)
    torch.testing.assert_close(resized, torch.from_numpy(io["positional_embedding_6x6"]), **TOL)
    cfg = fixture_config()
    cfg.vision.image_size = 48
    model = GSClip(cfg)
    assert load_open_clip_weights(model, state)["resized_positional_embedding"]
    torch.testing.assert_close(model.visual.positional_embedding.detach(),
                               torch.from_numpy(io["positional_embedding_6x6"]), **TOL)


def test_mismatched_weights_raise_checkpoint_error(state, tmp_path):
    wide = fixture_config()
    wide.vision.width = 64
    with pytest.raises(CheckpointError):
        load_open_clip_weights(GSClip(wide), state)
    deeper = fixture_config()
    deeper.vision.layers = 3
    with pytest.raises(CheckpointError, match="missing"):
        load_open_clip_weights(GSClip(deeper), state)
    with pytest.raises(CheckpointError, match="no image tower"):
        load_open_clip_weights(GSClip(fixture_config()), {k: v for k, v in state.items() if not k.startswith("visual.")})
    with pytest.raises(CheckpointError, match="unsupported key"):
        load_open_clip_weights(GSClip(fixture_config()), {**state, "visual_head.weight": torch.zeros(1)})
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_open_clip_weights(GSClip(fixture_config()), bad)
    with pytest.raises(CheckpointError):
        load_open_clip_weights(GSClip(fixture_config()), tmp_path / "missing.pt")


def test_text_tower_needs_a_matching_vocab(tmp_path):
    cfg = fixture_config()
    cfg.text.vocab_path = None
    with pytest.raises(Exception, match="vocab"):
        GSClip(cfg).encode_text(["a cat"])
    cfg.text.vocab_path = str(VOCAB)
    cfg.text.vocab_size = 600
    with pytest.raises(ClipInputError, match="584"):
        GSClip(cfg).encode_text(["a cat"])
    bad = tmp_path / "bad.txt"
    bad.write_text("#version\na b c\n")
    with pytest.raises(ClipInputError, match="line 2"):
        ClipTokenizer(bad)
    assert isinstance(GSClip(fixture_config()).text, OpenClipTextTransformer)


def test_quick_gelu():
    x = torch.linspace(-4, 4, 9)
    torch.testing.assert_close(QuickGELU()(x), x * torch.sigmoid(1.702 * x))
    cfg = fixture_config()
    cfg.vision.quick_gelu = True
    assert isinstance(GSClip(cfg).visual.transformer.resblocks[0].mlp.gelu, QuickGELU)
