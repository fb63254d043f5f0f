"""Zero-shot and retrieval scoring of splatcodec.clip.evaluate against brute-force counting."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from splatcodec.clip.cache import Encoded
from splatcodec.clip.evaluate import gs_byte_stats, retrieval_scores, zeroshot_scores
from splatcodec.splats import Splats


def _unit(rows: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.as_tensor(rows, dtype=torch.float32), dim=-1)


def test_zeroshot_scores_match_counting():
    rng = np.random.default_rng(0)
    classes = _unit(rng.normal(size=(7, 16)))
    labels = rng.integers(0, 7, size=200)
    images = _unit(classes.numpy()[labels] + rng.normal(scale=0.9, size=(200, 16)))
    s = zeroshot_scores(images, classes, labels, [f"c{i}" for i in range(7)])
    sims = images.numpy() @ classes.numpy().T
    rank = [int((sims[i] > sims[i, labels[i]]).sum()) for i in range(200)]  # classes scoring higher
    assert s["top1"] == pytest.approx(np.mean([r == 0 for r in rank]))
    assert s["top5"] == pytest.approx(np.mean([r < 5 for r in rank]))
    assert 0.1 < s["top1"] < 0.99 and s["top5"] > s["top1"] and s["n"] == 200
    for c in range(7):
        assert s["per_class"][f"c{c}"] == pytest.approx(np.mean([rank[i] == 0 for i in range(200) if labels[i] == c]))
    small = zeroshot_scores(images[:10], classes[:3], labels[:10] % 3, ["a", "b", "c"])
    assert small["top5"] == 1.0 and small["top5_k"] == 3


def test_retrieval_scores_match_counting():
    rng = np.random.default_rng(1)
    n_img, caps = 30, 3
    owner = np.repeat(np.arange(n_img), caps)
    images = _unit(rng.normal(size=(n_img, 12)))
    texts = _unit(images.numpy()[owner] + rng.normal(scale=1.0, size=(len(owner), 12)))
    s = retrieval_scores(images, texts, owner)
    sim = images.numpy() @ texts.numpy().T
    for k in (1, 5, 10):
        i2t = np.mean([set(np.argsort(-sim[i])[:k]) & set(np.flatnonzero(owner == i)) != set() for i in range(n_img)])
        t2i = np.mean([owner[j] in np.argsort(-sim[:, j])[:k] for j in range(len(owner))])
        assert s[f"i2t_r@{k}"] == pytest.approx(i2t) and s[f"t2i_r@{k}"] == pytest.approx(t2i)
        assert s[f"chance_t2i_r@{k}"] == pytest.approx(k / n_img)
        exact = 1 - math.comb(len(owner) - caps, k) / math.comb(len(owner), k)
        assert s[f"chance_i2t_r@{k}"] == pytest.approx(exact)
    assert s["i2t_r@1"] <= s["i2t_r@5"] <= s["i2t_r@10"] and s["t2i_r@10"] > s["chance_t2i_r@10"]


def test_gs_byte_stats():
    splats = Splats(np.zeros((4, 2)), np.ones((4, 3)), np.zeros((4, 3)), 32, 32)
    stats = gs_byte_stats([Encoded(splats, 100), Encoded(splats, 300)])
    assert stats["mean_bytes"] == 200 and stats["raw_bytes"] == 3072
    assert stats["compression"] == pytest.approx(3072 / 200)
    assert stats["mean_gaussians"] == 4 and stats["fp16_bytes"] == 64
    fitted = gs_byte_stats([Encoded(splats, None)])
    assert fitted["mean_bytes"] is None and fitted["compression"] is None
