"""``python -m benchmarks.clip_zeroshot``: the command line and the order of the stages."""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..common import DATA_DIR, RESULTS_DIR, atomic_write_json, machine_description, require_data
from .stages import SCALES, Run, stage_encodes, stage_split, stage_students, stage_teacher

STAGE_ORDER = ("split", "teacher", "encodes", "students", "evaluate", "retrieval")


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.clip_zeroshot",
                                 description="The GS-CLIP experiment (issue 15): zero-shot CIFAR-10 from real "
                                             ".gsplat bytes against the RGB teacher on WebP/JPEG at equal bytes.")
    scale = ap.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="smoke scale (400 training-split images, micro "
                                                           "model, 6/2/1 epochs, one seed, rates 10x and 20x): minutes")
    scale.add_argument("--smoke", action="store_true", help="the smallest scale (the test's): 20x only, ~60 images")
    ap.add_argument("--out", default=None, help="run directory (default benchmarks/results/clip/<scale>)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default="cpu", help="torch device for training and embedding (e.g. cuda)")
    ap.add_argument("--teacher-epochs", type=int, default=None)
    ap.add_argument("--distill-epochs", type=int, default=None)
    ap.add_argument("--contrastive-epochs", type=int, default=None)
    ap.add_argument("--token-distill", type=float, default=None,
                    help="weight of the token-level distillation loss of the students (default 0: embedding only)")
    ap.add_argument("--test-per-class", type=int, default=None,
                    help="test images per class (full default 200; 1000 = the whole cifar10_test)")
    ap.add_argument("--stop-after", choices=STAGE_ORDER, default=None,
                    help="stop after this stage (the rest runs on the next call)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs every stage not finished before in the run directory, then writes summary.json and the plot."""
    a = parse(argv)
    scale = SCALES["quick" if a.quick else "smoke" if a.smoke else "full"]
    overrides = {k: v for k, v in (("teacher_epochs", a.teacher_epochs), ("distill_epochs", a.distill_epochs),
                                   ("contrastive_epochs", a.contrastive_epochs),
                                   ("test_per_class", a.test_per_class), ("token_distill", a.token_distill))
                 if v is not None}
    scale = replace(scale, **overrides)
    out = Path(a.out) if a.out else RESULTS_DIR / "clip" / scale.name
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / "settings.json"
    if settings_path.exists() and json.loads(settings_path.read_text()) != asdict(scale):
        raise SystemExit(f"{out} holds a run with other settings ({settings_path}): use another --out")
    atomic_write_json(settings_path, asdict(scale))
    run = Run(out, scale, require_data(DATA_DIR / "cifar10_train_20k"), require_data(DATA_DIR / "cifar10_test"),
              a.threads, a.device)
    t0 = time.perf_counter()
    results: dict = {}
    work = {"split": lambda: stage_split(run), "teacher": lambda: stage_teacher(run),
            "encodes": lambda: stage_encodes(run),
            "students": lambda: stage_students(run, results["encodes"]["rates"]),
            "evaluate": lambda: _evaluate(run, results), "retrieval": lambda: _retrieval(run)}
    for name in STAGE_ORDER:
        results[name] = run.stage(name, work[name])
        if name == a.stop_after:
            print(f"stopped after the {name} stage; run the same command again to continue")
            return 0
    summary = {"issue": 15, "scale": asdict(scale), "smoke": scale.name != "full",
               "machine": machine_description(), "load_avg": os.getloadavg(),
               "seconds_this_call": round(time.perf_counter() - t0, 1),
               "stage_seconds": {k: v.get("stage_seconds") for k, v in results.items()},
               "split": results["split"], "rates": results["encodes"]["rates"],
               "students": results["students"]["students"],
               **{k: v for k, v in results["evaluate"].items() if k != "stage_seconds"},
               "checkpoints": {"teacher": "teacher.pt",
                               **{r: f"gs_{r}.pt" for r in results["encodes"]["rates"]}},
               "retrieval": results["retrieval"]}
    atomic_write_json(out / "summary.json", summary)
    from .evaluation import plot, table

    label = "SMOKE SCALE - not a finding" if summary["smoke"] else "full protocol"
    plot(summary["rows"], out / "accuracy_vs_bytes.png", f"GS-CLIP on CIFAR-10 ({scale.name}, {label})")
    text = table(summary["rows"])
    print(f"## {scale.name} run in {out} ({label}); test images: {summary['test_images']}, "
          f"held out: {', '.join(scale.heldout)}")
    print(text)
    from .retrieval import retrieval_table

    retrieval_text = retrieval_table(summary["retrieval"])
    (out / "table.md").write_text(f"{text}\n\nRetrieval, flickr8k_500 held-out fold "
                                  f"({summary['retrieval']['test_images']} images, 64x64):\n\n{retrieval_text}\n")
    print(f"\n## retrieval on flickr8k_500, held-out fold of {summary['retrieval']['test_images']} images (64x64)")
    print(retrieval_text)
    return 0


def _evaluate(run: Run, results: dict) -> dict:
    from .evaluation import stage_evaluate

    return stage_evaluate(run, results["encodes"]["rates"], results["students"]["students"],
                          results["teacher"]["train_seconds"], log=run.log)


def _retrieval(run: Run) -> dict:
    from .retrieval import stage_retrieval

    return stage_retrieval(run)
