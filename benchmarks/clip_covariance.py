"""Which covariance parameterisation of the splat tokens trains better: "log_ab_shear" or "scale_rotation"?

    python -m benchmarks.clip_covariance                  # ~25 min on 2 busy cores
    python -m benchmarks.clip_covariance --quick          # smoke run (a minute)

Protocol (CIFAR-10 training split only; the test split is never used for this choice): a fixed
stratified subset of ``cifar10_train_20k`` (``--per-class`` images per class) split by hashed file names
into train and validation (``--val-fraction``); one RGB teacher (``splatcodec clip train --stage rgb``);
then, for each parameterisation and seed, a fresh splat stem distilled from that teacher and a
contrastive stage, on the same Gaussians (``--gaussians`` per image: fitted with ``fit_batch`` by default, or
real ``.gsplat`` files with ``--mode encode``). Reported:
the validation distillation cosine and the validation zero-shot top-1 / top-5 after each stage.
Everything is written under ``--out`` (runs, logs, summary.json); finished runs are reused.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import splatcodec  # noqa: F401  (before torch: passive OpenMP waits)
from splatcodec.clip.train import TrainArgs, train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "cifar10_train_20k"


def teacher_config(out: Path) -> str:
    """A 0.6M-parameter ViT for 32x32 input: width 128, 3 blocks, 4 px patches (64 tokens)."""
    from splatcodec.clip.config import GSClipConfig

    data = GSClipConfig.from_name("tiny").to_dict()
    data.update(name="cov-bench", embed_dim=128)
    data["vision"].update(width=128, layers=3, head_width=32, patch_size=4)
    data["resampler"].update(blocks=2, head_width=32)
    path = out / "model.json"
    path.write_text(json.dumps(data, indent=1))
    return str(path)


def run(args: TrainArgs) -> list[dict]:
    """Trains (or resumes / reuses) a run; returns its log."""
    args.resume = True
    train(args)
    return [json.loads(line) for line in (Path(args.out) / "log.jsonl").read_text().splitlines()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "clip_covariance"))
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--val-fraction", type=float, default=0.2)
    ap.add_argument("--gaussians", type=int, default=32)
    ap.add_argument("--effort", type=int, default=2, help="Encoder effort with --mode encode.")
    ap.add_argument("--mode", choices=["fit", "encode"], default="fit",
                    help="fit: unquantised Gaussians from fit_batch; encode: real .gsplat files.")
    ap.add_argument("--iterations", type=int, default=300, help="Fit iterations with --mode fit.")
    ap.add_argument("--teacher-epochs", type=int, default=12)
    ap.add_argument("--distill-epochs", type=int, default=8)
    ap.add_argument("--contrastive-epochs", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="Tiny sizes: a smoke run.")
    a = ap.parse_args(argv)
    if a.quick:
        a.per_class, a.teacher_epochs, a.distill_epochs, a.contrastive_epochs, a.seeds = 20, 2, 2, 1, [0]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = str(out / "gaussian_cache")
    common = dict(data=str(DATA), per_class=a.per_class, val_fraction=a.val_fraction, batch_size=128,
                  threads=a.threads, quiet=True, cache_dir=cache)
    t0 = time.perf_counter()
    teacher = run(TrainArgs(stage="rgb", out=str(out / "teacher"), model=teacher_config(out),
                            epochs=a.teacher_epochs, lr=2e-3, seed=0, **common))
    rows = []
    for param in ("log_ab_shear", "scale_rotation"):
        for seed in a.seeds:
            tag = f"{param}_s{seed}"
            distill = run(TrainArgs(stage="distill", out=str(out / f"distill_{tag}"), param=param, seed=seed,
                                    init=str(out / "teacher" / "checkpoint.pt"), epochs=a.distill_epochs, lr=2e-3,
                                    gaussians=(dict(num_gaussians=a.gaussians, effort=a.effort) if a.mode == "encode" else
                                               dict(mode="fit", num_gaussians=a.gaussians, iterations=a.iterations)), **common))
            contrastive = run(TrainArgs(stage="contrastive", out=str(out / f"contrastive_{tag}"), seed=seed,
                                        init=str(out / f"distill_{tag}" / "checkpoint.pt"), unfreeze_blocks=1,
                                        epochs=a.contrastive_epochs, lr=5e-4, **common))
            rows.append({"param": param, "seed": seed, "distill_val_cosine": distill[-1]["val_cosine"],
                         "distill_val_top1": distill[-1]["val_top1"], "val_top1": contrastive[-1]["val_top1"],
                         "val_top5": contrastive[-1]["val_top5"], "distill_loss": distill[-1]["loss"]})
            print(json.dumps(rows[-1]), flush=True)
    summary = {"teacher_val_top1": teacher[-1]["val_top1"], "teacher_val_top5": teacher[-1]["val_top5"],
               "rows": rows, "settings": vars(a), "seconds": round(time.perf_counter() - t0, 1),
               "load": os.getloadavg()}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"teacher (RGB) val top-1 {summary['teacher_val_top1']:.3f}")
    print(f"{'param':>16} {'seed':>4} {'distill cos':>11} {'top-1 after distill':>19} {'top-1':>6} {'top-5':>6}")
    for r in rows:
        print(f"{r['param']:>16} {r['seed']:>4} {r['distill_val_cosine']:>11.3f} {r['distill_val_top1']:>19.3f} "
              f"{r['val_top1']:>6.3f} {r['val_top5']:>6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
