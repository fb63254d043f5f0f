"""benchmarks.clip_zeroshot (issue 15) at its --smoke scale on real CIFAR-10: the stages, the stored split,
summary.json, resuming, the checkpoints; the equal-bytes baseline and the bootstrap scorer on their own."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.clip_zeroshot import evaluation, main

STAGES = ("split", "teacher", "encodes", "students", "evaluate", "retrieval")
#: The smoke run also exercises the students' token-level distillation option.
ARGS = ["--smoke", "--threads", "1", "--token-distill", "0.5"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip_zeroshot")
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def test_summary_holds_every_row_and_number(smoke_run):
    s = json.loads((smoke_run / "summary.json").read_text())
    assert s["smoke"] is True and s["scale"]["name"] == "smoke" and s["scale"]["token_distill"] == 0.5
    for run in ("distill_20x_s0", "retrieval_distill"):  # the option reaches every distill run
        assert json.loads((smoke_run / "runs" / run / "args.json").read_text())["token_distill"] == 0.5
    kinds = [r["kind"] for r in s["rows"]]
    assert kinds == ["teacher_rgb", "teacher_gs_render", "teacher_webp", "teacher_jpeg", "gs_student"]
    for r in s["rows"]:
        for view, classes in (("all", 10), ("seen", 8), ("unseen", 2)):
            v = r[view]
            assert v["classes"] == classes and 0 <= v["top1"] <= v["top5"] <= 1
            assert v["top1_ci95"][0] <= v["top1"] <= v["top1_ci95"][1]
        assert r["mean_bytes"] > 0 and r["all"]["n"] == s["test_images"] == 30
    ref = s["rows"][0]
    assert ref["all"]["relative_top1"] == 1.0 and ref["compression"] == 1.0
    gs = s["rows"][-1]
    rate = s["rates"]["20x"]
    assert gs["mean_bytes"] == rate["test_stats"]["mean_bytes"] and gs["fp16_bytes"] == 16 * gs["mean_gaussians"]
    assert abs(rate["val_stats"]["mean_bytes"] - 3072 / 20) < 0.1 * 3072 / 20  # the rate was met on val images
    assert 0 < gs["trainable_fraction"] < 1
    webp = next(r for r in s["rows"] if r["kind"] == "teacher_webp")
    assert webp["budget_bytes"] == rate["val_stats"]["mean_bytes"]
    assert (smoke_run / "accuracy_vs_bytes.png").stat().st_size > 1000
    assert "| teacher on RGB |" in (smoke_run / "table.md").read_text()


def test_split_is_stored_disjoint_and_holds_out_two_classes(smoke_run):
    split = json.loads((smoke_run / "split.json").read_text())
    train, val, test = set(split["train"]), set(split["val"]), set(split["test"])
    assert train and val and test and not train & val
    assert len(val) == 10 and len(test) == 30  # 6 per class -> 1 val per class; 3 test per class
    held = split["heldout_classes"]
    assert len(held) == 2 and not any(k.split("/")[0] in held for k in train)
    assert all(k.split("/")[0] in held for k in split["train_heldout_unused"])
    for run in ("teacher", "distill_20x_s0", "contrastive_20x_s0"):  # every training run used this split
        own = json.loads((smoke_run / "runs" / run / "split.json").read_text())
        assert set(own["train"]) == train and set(own["val"]) <= val


def test_retrieval_variant_folds_split_by_image(smoke_run):
    r = json.loads((smoke_run / "summary.json").read_text())["retrieval"]
    own = json.loads((smoke_run / "runs" / "retrieval_teacher" / "split.json").read_text())
    assert r["train_images"] == len(own["train"]) == 12 and r["test_images"] == len(r["test_keys"]) == 3
    assert not set(own["train"]) & set(r["test_keys"])  # an image's captions all on one side
    for side in ("rgb", "gs"):
        assert r[side]["images"] == 3 and r[side]["texts"] == 15  # five captions per image
        for k in (1, 5, 10):
            assert 0 <= r[side][f"i2t_r@{k}"] <= 1 and r[side][f"chance_t2i_r@{k}"] == min(1.0, k / 3)
    assert abs(r["gs"]["mean_bytes"] - 64 * 64 * 3 / 10) < 0.15 * 64 * 64 * 3 / 10
    assert "| GS student |" in (smoke_run / "table.md").read_text()


def test_resume_skips_finished_stages(smoke_run, capsys):
    stamps = {st: (smoke_run / "stages" / f"{st}.json").stat().st_mtime_ns for st in STAGES}
    ckpt = (smoke_run / "gs_20x.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*ARGS, "--out", str(smoke_run)]) == 0
    out = capsys.readouterr().out
    for st in STAGES:
        assert f"[{st}] finished before: skipped" in out
        assert (smoke_run / "stages" / f"{st}.json").stat().st_mtime_ns == stamps[st]
    assert (smoke_run / "gs_20x.pt").stat().st_mtime_ns == ckpt
    with pytest.raises(SystemExit, match="other settings"):
        main([*ARGS, "--out", str(smoke_run), "--teacher-epochs", "2"])
    with pytest.raises(SystemExit, match="other settings"):
        main(["--smoke", "--threads", "1", "--out", str(smoke_run)])  # token distillation off: another run


def test_checkpoints_load(smoke_run):
    import splatcodec.clip

    s = json.loads((smoke_run / "summary.json").read_text())
    teacher = splatcodec.clip.load(smoke_run / s["checkpoints"]["teacher"])
    student = splatcodec.clip.load(smoke_run / s["checkpoints"]["20x"])
    assert teacher.encode_settings is None
    assert student.encode_settings.to_dict() == s["rates"]["20x"]["settings"]
    px = np.zeros((1, 32, 32, 3), np.uint8)
    assert teacher.encode_image(px).shape == (1, teacher.embed_dim)
    splats = student.gaussians_from_images(px, cache_dir=str(smoke_run / "gaussian_cache"))
    assert student.encode_splats(splats).shape == (1, student.embed_dim)


def test_fit_budget_takes_the_largest_quality_that_fits():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    q, data = evaluation.fit_budget(image, 600, "WEBP", {"method": 6}, 0, 100)
    assert len(data) <= 600
    assert q == 100 or len(evaluation._save(image, "WEBP", q + 1, {"method": 6})) > 600
    q, data = evaluation.fit_budget(image, 10, "JPEG", {}, 1, 100)  # nothing fits: the lowest quality
    assert q == 1 and len(data) > 10


def test_scorer_views_and_paired_relative_accuracy():
    import torch

    labels = np.array([0, 1, 2, 0, 1, 2])
    scorer = evaluation.Scorer(labels, ["a", "b", "c"], ["c"])
    classes = torch.eye(3)
    ref = scorer.score(torch.eye(3)[labels], classes, reference=True)  # all right
    assert ref["all"]["top1"] == 1.0 and ref["unseen"]["classes"] == 1 and ref["seen"]["n"] == 4
    half = scorer.score(torch.eye(3)[[0, 1, 2, 1, 0, 0]], classes)  # 3 of 6 right, unseen 1 of 2
    assert half["all"]["top1"] == 0.5 and half["all"]["relative_top1"] == 0.5
    assert half["seen"]["top1"] == 0.5
    lo, hi = half["all"]["relative_top1_ci95"]
    assert 0 <= lo <= 0.5 <= hi <= 1
