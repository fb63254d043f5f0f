"""The training-side stages of the experiment: split, teacher, encodes (rate choice), students.

Each stage writes ``stages/<name>.json`` last (atomically) and is skipped when that file exists; the
training runs inside a stage resume from their own ``resume.pt`` (``splatcodec.clip.train``), so an
interrupted stage loses at most one epoch.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import splatcodec  # noqa: F401  (before torch: passive OpenMP waits)
from splatcodec.clip.cache import GaussianCache, GaussianSettings
from splatcodec.clip.data import Dataset, load_pixels, open_dataset, per_class_subset, split
from splatcodec.clip.evaluate import gs_byte_stats
from splatcodec.clip.train import TrainArgs, train

from ..common import atomic_write_json

RAW_BYTES = 32 * 32 * 3  # one CIFAR-10 image, 8-bit RGB
VAL_FRACTION = 0.1  # of every class of cifar10_train_20k: 200 of 2,000 -> 2,000 validation images


@dataclass
class Scale:
    """Sizes of one run (the full protocol, --quick or --smoke)."""

    name: str
    per_class: int | None  # training-split images per class (None: all 2,000)
    test_per_class: int | None  # test images per class (None: all 1,000)
    model: str  # a GSClipConfig name or "micro"
    teacher_epochs: int
    distill_epochs: int
    contrastive_epochs: int
    seeds: list[int]
    rates: list[int]  # compression ratios (raw bytes / mean real .gsplat bytes)
    calibration: int  # validation images used to choose each rate's byte target
    batch_size: int = 128
    effort: int = 1
    retrieval_images: int | None = None  # flickr8k_500 images used by the retrieval variant (None: all 500)
    heldout: list[str] = field(default_factory=lambda: ["cat", "truck"])
    token_distill: float = 0.0  # weight of the token-level distillation loss (splatcodec.clip.train)


SCALES = {
    "full": Scale("full", None, 200, "tiny", 15, 5, 2, [0, 1], [3, 10, 20], 200),
    "quick": Scale("quick", 40, 20, "micro", 6, 2, 1, [0], [10, 20], 20, batch_size=64, retrieval_images=100),
    "smoke": Scale("smoke", 6, 3, "micro", 1, 1, 1, [0], [20], 6, batch_size=32, retrieval_images=15),
}


class Run:
    """One experiment directory: where each stage's outputs go and whether a stage is finished."""

    def __init__(self, out: Path, scale: Scale, train_dir: Path, test_dir: Path, threads: int | None,
                 device: str = "cpu", log: Callable[[str], None] = print) -> None:
        self.out, self.scale, self.train_dir, self.test_dir = out, scale, train_dir, test_dir
        self.threads, self.device, self.log = threads, device, log
        self.cache = str(out / "gaussian_cache")
        (out / "stages").mkdir(parents=True, exist_ok=True)

    def done(self, stage: str) -> dict | None:
        path = self.out / "stages" / f"{stage}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def finish(self, stage: str, result: dict) -> dict:
        atomic_write_json(self.out / "stages" / f"{stage}.json", result)
        return result

    def stage(self, name: str, work: Callable[[], dict]) -> dict:
        """``work()``'s result, or the stored one when the stage finished before (then not redone)."""
        found = self.done(name)
        if found is not None:
            self.log(f"[{name}] finished before: skipped")
            return found
        self.log(f"[{name}] running")
        t0 = time.perf_counter()
        result = work()
        result["stage_seconds"] = round(time.perf_counter() - t0, 1)
        return self.finish(name, result)

    # ------------------------------------------------------------------ data
    def datasets(self) -> dict[str, Dataset]:
        """train (seen classes, training part), val (all classes), val_seen, test (all classes)."""
        full = open_dataset(self.train_dir)
        if self.scale.per_class is not None:
            full = per_class_subset(full, self.scale.per_class)
        train_idx, val_idx = split(full, VAL_FRACTION)
        heldout = {full.classnames.index(c) for c in self.scale.heldout}  # type: ignore[union-attr]
        test = open_dataset(self.test_dir)
        if self.scale.test_per_class is not None:
            test = per_class_subset(test, self.scale.test_per_class)
        val = full.subset(val_idx)
        return {"train": full.subset([i for i in train_idx if full.items[i].label not in heldout]),
                "train_heldout": full.subset([i for i in train_idx if full.items[i].label in heldout]),
                "val": val, "test": test}

    def train_args(self, **kw: Any) -> TrainArgs:
        s = self.scale
        return TrainArgs(data=str(self.train_dir), per_class=s.per_class, val_fraction=VAL_FRACTION,
                         exclude_classes=list(s.heldout), batch_size=s.batch_size, threads=self.threads,
                         quiet=True, cache_dir=self.cache, resume=True, device=self.device, **kw)


# ---------------------------------------------------------------------- stages
def stage_split(run: Run) -> dict:
    """The stored split: training/validation keys of cifar10_train_20k, test keys of cifar10_test."""
    d = run.datasets()
    seen = [c for c in d["test"].classnames or [] if c not in run.scale.heldout]
    result = {"method": "cifar10_train_20k: per class, the first round(0.1*n) files in sha256('split:'+path) "
                        "order are validation (splatcodec.clip.data.split); --per-class keeps the first n in "
                        "sha256('subset:'+path) order; test: cifar10_test, --test-per-class the same way",
              "train_dir": str(run.train_dir), "test_dir": str(run.test_dir), "heldout_classes": run.scale.heldout,
              "seen_classes": seen, "val_fraction": VAL_FRACTION, "per_class": run.scale.per_class,
              "test_per_class": run.scale.test_per_class,
              "train": [it.key for it in d["train"].items],
              "train_heldout_unused": [it.key for it in d["train_heldout"].items],
              "val": [it.key for it in d["val"].items], "test": [it.key for it in d["test"].items]}
    atomic_write_json(run.out / "split.json", result)
    return {"train": len(result["train"]), "val": len(result["val"]), "test": len(result["test"]),
            "train_heldout_unused": len(result["train_heldout_unused"]), "heldout_classes": run.scale.heldout}


def micro_config(out: Path) -> str:
    """A ~0.1M-parameter ViT for smoke runs: width 64, 2 blocks, 4 px patches (the protocol uses 'tiny')."""
    from splatcodec.clip.config import GSClipConfig

    data = GSClipConfig.from_name("tiny").to_dict()
    data.update(name="micro", embed_dim=64)
    data["vision"].update(width=64, layers=2, head_width=32, patch_size=4)
    data["resampler"].update(blocks=1, head_width=32)
    path = out / "micro.json"
    path.write_text(json.dumps(data, indent=1))
    return str(path)


def _check_split(run: Run, run_dir: Path) -> None:
    """The training run's own split must be the stored one (seen classes), else the protocol is broken."""
    stored = json.loads((run.out / "split.json").read_text())
    mine = json.loads((run_dir / "split.json").read_text())
    if set(mine["train"]) != set(stored["train"]) or not set(mine["val"]) <= set(stored["val"]):
        raise SystemExit(f"{run_dir}: the training run's split differs from {run.out / 'split.json'}")


def _log_seconds(run_dir: Path) -> float:
    return round(sum(json.loads(line)["seconds"] for line in (run_dir / "log.jsonl").read_text().splitlines()), 1)


def _trained(run: Run, args: TrainArgs, check_split: bool = True) -> dict:
    """Trains (or resumes, or finds finished) one run; its time, last log record and trainable fraction."""
    run.log(f"  train {args.stage} -> {args.out}")
    train(args)
    out = Path(args.out)
    if check_split:
        _check_split(run, out)
    last = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    from splatcodec.clip.checkpoint import load_checkpoint

    _, extra = load_checkpoint(out / "checkpoint.pt")
    return {"dir": str(out.relative_to(run.out)), "train_seconds": _log_seconds(out), "last": last,
            "trainable_fraction": extra.get("trainable_fraction")}


def stage_teacher(run: Run) -> dict:
    """The RGB teacher, contrastive against the frozen MiniLM prompts, on the seen classes."""
    model = micro_config(run.out) if run.scale.model == "micro" else run.scale.model
    result = _trained(run, run.train_args(stage="rgb", out=str(run.out / "runs" / "teacher"), model=model,
                                          epochs=run.scale.teacher_epochs, lr=2e-3, seed=0))
    shutil.copyfile(run.out / "runs" / "teacher" / "checkpoint.pt", run.out / "teacher.pt")
    return result


def rate_settings(run: Run, nominal: float, val_pixels: np.ndarray) -> tuple[GaussianSettings, dict]:
    """The byte target whose mean real .gsplat size on validation images is nearest ``nominal``: start at
    the nominal size, then rescale by nominal/measured (at most three tries). Never looks at test images."""
    tries = []
    target = int(round(nominal))
    for _ in range(3):
        settings = GaussianSettings(target_bytes=target, effort=run.scale.effort)
        mean = gs_byte_stats(GaussianCache(settings, run.cache).get(list(val_pixels)))["mean_bytes"]
        tries.append({"target_bytes": target, "val_mean_bytes": mean})
        if abs(mean - nominal) <= 0.02 * nominal:
            break
        new = int(round(target * nominal / mean))
        if new == target:
            break
        target = new
    best = min(tries, key=lambda t: abs(t["val_mean_bytes"] - nominal))
    return GaussianSettings(target_bytes=best["target_bytes"], effort=run.scale.effort), {"tries": tries}


def stage_encodes(run: Run) -> dict:
    """Per rate: the byte target (chosen on validation images), then the real .gsplat files of the
    training, validation and test images through the cache, with their byte statistics."""
    d = run.datasets()
    pixels = {name: load_pixels(d[name].items, 32) for name in ("train", "val", "test")}
    calib = pixels["val"][np.linspace(0, len(pixels["val"]) - 1, min(run.scale.calibration,
                                                                     len(pixels["val"]))).astype(int)]
    rates = {}
    for ratio in run.scale.rates:
        nominal = RAW_BYTES / ratio
        settings, how = rate_settings(run, nominal, calib)
        cache = GaussianCache(settings, run.cache)
        stats = {}
        for name in ("train", "val", "test"):
            run.log(f"  {ratio}x: encoding {len(pixels[name])} {name} images ({settings.describe()})")
            stats[name] = gs_byte_stats(cache.get(list(pixels[name])))
        rates[f"{ratio}x"] = {"ratio": ratio, "nominal_bytes": nominal, "settings": settings.to_dict(),
                              "calibration": how, "calibration_images": len(calib), **{f"{k}_stats": v
                                                                                      for k, v in stats.items()}}
    return {"rates": rates}


def stage_students(run: Run, rates: dict) -> dict:
    """Per rate and seed: distill from the teacher, then contrastive with the first block and the final
    norm/projection unfrozen; ``gs_<rate>.pt`` is the seed-0 (first seed) student."""
    out: dict[str, Any] = {}
    s = run.scale
    for rate, info in rates.items():
        for seed in s.seeds:
            tag = f"{rate}_s{seed}"
            distill = _trained(run, run.train_args(
                stage="distill", out=str(run.out / "runs" / f"distill_{tag}"), init=str(run.out / "teacher.pt"),
                gaussians=info["settings"], epochs=s.distill_epochs, lr=2e-3, seed=seed,
                token_distill=s.token_distill))
            contrastive = _trained(run, run.train_args(
                stage="contrastive", out=str(run.out / "runs" / f"contrastive_{tag}"),
                init=str(run.out / "runs" / f"distill_{tag}" / "checkpoint.pt"), unfreeze_blocks=1,
                epochs=s.contrastive_epochs, lr=5e-4, seed=seed))
            out[tag] = {"rate": rate, "seed": seed, "distill": distill, "contrastive": contrastive}
        shutil.copyfile(run.out / "runs" / f"contrastive_{rate}_s{s.seeds[0]}" / "checkpoint.pt",
                        run.out / f"gs_{rate}.pt")
    return {"students": out}
