"""The retrieval variant: text<->image recall@1/5/10 on Flickr8k (``flickr8k_500``), RGB and GS.

Images are centre-cropped and resized to 64x64 (``splatcodec.clip.data.prepare_image`` at the model's
input size); the folds are split by image (``splatcodec.clip.data.split`` over images, 20 % held out),
so an image's five captions never straddle training and test. An RGB teacher (captions InfoNCE against
the frozen MiniLM tower) is trained on the training fold; a GS student (distill, then contrastive) reads
real ``.gsplat`` files at ~10x compression (byte target chosen on training-fold images). Both are
evaluated on the held-out fold, with the chance level of every recall.
"""
from __future__ import annotations

import json
from pathlib import Path

import splatcodec  # noqa: F401  (before torch: passive OpenMP waits)
from splatcodec.clip.checkpoint import load_checkpoint
from splatcodec.clip.data import load_pixels, open_dataset, per_class_subset, split
from splatcodec.clip.evaluate import retrieval
from splatcodec.clip.train import TrainArgs

from ..common import DATA_DIR
from .stages import Run, _trained, rate_settings

CAPTIONS = DATA_DIR / "flickr8k_500" / "captions.csv"
SIZE = 64
RATIO = 10
VAL_FRACTION = 0.2


def model_config(run: Run) -> str:
    """The experiment's ViT (``tiny`` or ``micro``) at 64x64 input with 8 px patches (64 tokens)."""
    from splatcodec.clip.config import GSClipConfig

    from .stages import micro_config

    base = json.loads(Path(micro_config(run.out)).read_text()) if run.scale.model == "micro" else \
        GSClipConfig.from_name(run.scale.model).to_dict()
    base["name"] = f"{base['name']}-64"
    base["vision"].update(image_size=SIZE, patch_size=8)
    path = run.out / "retrieval_model.json"
    path.write_text(json.dumps(base, indent=1))
    return str(path)


def stage_retrieval(run: Run) -> dict:
    """Teacher and GS student on the training fold; recall on the held-out fold (see the module doc)."""
    s = run.scale
    dataset = open_dataset(CAPTIONS)
    if s.retrieval_images is not None:
        dataset = per_class_subset(dataset, s.retrieval_images)
    train_idx, test_idx = split(dataset, VAL_FRACTION)
    train_set, test_set = dataset.subset(train_idx), dataset.subset(test_idx)
    common = dict(data=str(CAPTIONS), per_class=s.retrieval_images, val_fraction=VAL_FRACTION,
                  batch_size=s.batch_size, threads=run.threads, quiet=True, cache_dir=run.cache, resume=True,
                  device=run.device)
    runs = run.out / "runs"
    teacher = _trained(run, TrainArgs(stage="rgb", out=str(runs / "retrieval_teacher"), model=model_config(run),
                                      epochs=s.teacher_epochs, lr=2e-3, seed=0, **common), check_split=False)
    calib = load_pixels(train_set.items[:s.calibration], SIZE)
    settings, how = rate_settings(run, SIZE * SIZE * 3 / RATIO, calib)
    distill = _trained(run, TrainArgs(stage="distill", out=str(runs / "retrieval_distill"),
                                      init=str(runs / "retrieval_teacher" / "checkpoint.pt"),
                                      gaussians=settings.to_dict(), epochs=s.distill_epochs, lr=2e-3, seed=0,
                                      token_distill=s.token_distill, **common), check_split=False)
    student = _trained(run, TrainArgs(stage="contrastive", out=str(runs / "retrieval_gs"),
                                      init=str(runs / "retrieval_distill" / "checkpoint.pt"), unfreeze_blocks=1,
                                      epochs=s.contrastive_epochs, lr=5e-4, seed=0, **common), check_split=False)
    for name in ("retrieval_teacher", "retrieval_gs"):  # the runs' own validation fold is our test fold
        own = json.loads((runs / name / "split.json").read_text())
        if own["val"] != [it.key for it in test_set.items]:
            raise SystemExit(f"{runs / name}: its held-out fold differs from the experiment's")
    t_model, _ = load_checkpoint(runs / "retrieval_teacher" / "checkpoint.pt", device=run.device)
    g_model, _ = load_checkpoint(runs / "retrieval_gs" / "checkpoint.pt", device=run.device)
    rgb = retrieval(t_model, test_set, "rgb", device=run.device)
    gs = retrieval(g_model, test_set, "gs", settings=settings, cache_dir=run.cache, device=run.device)
    return {"captions": str(CAPTIONS), "image_size": SIZE, "train_images": len(train_set),
            "test_images": len(test_set), "test_keys": [it.key for it in test_set.items],
            "rate": {"ratio": RATIO, "settings": settings.to_dict(), "calibration": how},
            "teacher": teacher, "distill": distill, "student": student, "rgb": rgb, "gs": gs}


def retrieval_table(result: dict) -> str:
    """Recall@k both ways for RGB and GS, with chance."""
    head = "| input | mean bytes | i2t R@1 | i2t R@5 | i2t R@10 | t2i R@1 | t2i R@5 | t2i R@10 |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in (("teacher on RGB", result["rgb"]), ("GS student", result["gs"]),
                    ("chance", {k.replace("chance_", ""): v for k, v in result["rgb"].items()
                                if k.startswith("chance_")})):
        nbytes = r.get("mean_bytes", SIZE * SIZE * 3 if name.startswith("teacher") else None)
        cells = " | ".join(f"{r[f'{d}_r@{k}']:.3f}" for d in ("i2t", "t2i") for k in (1, 5, 10))
        lines.append(f"| {name} | {'-' if nbytes is None else f'{nbytes:.0f}'} | {cells} |")
    return "\n".join(lines)
