"""The evaluation stage: every row on the same test images, bootstrap intervals, the table and the plot.

Rows: the teacher on RGB; per rate, the teacher on the rendered decoded Gaussians, the teacher on WebP
and on JPEG at the largest quality whose file fits the rate's per-image budget (headers counted), and
the GS student of each seed. Each row is scored three ways: ``all`` (10-way prompts over all test
images), ``seen`` (8-way over the images of the classes trained on) and ``unseen`` (2-way over the
images of the two held-out classes, from their names alone: the true zero-shot row).
Intervals: 95 % percentile bootstrap over test images (1,000 resamples, seed 0), the same resamples for
every row, so relative accuracy (row / teacher on RGB) gets a paired interval.
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

import splatcodec
from splatcodec.clip.cache import GaussianCache, GaussianSettings
from splatcodec.clip.checkpoint import load_checkpoint
from splatcodec.clip.data import load_pixels
from splatcodec.clip.evaluate import class_text_embeddings, embed_pixels, embed_splats, gs_byte_stats
from splatcodec.metrics import psnr

from .stages import RAW_BYTES, Run

BOOTSTRAP = 1000
#: (name, Pillow format, options, lowest quality, highest quality)
PIXEL_CODECS = (("webp", "WEBP", {"method": 6}, 0, 100), ("jpeg", "JPEG", {"optimize": True}, 1, 100))


def _save(image: np.ndarray, fmt: str, quality: int, opts: dict) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, quality=quality, **opts)
    return buf.getvalue()


def fit_budget(image: np.ndarray, budget: float, fmt: str, opts: dict, lo: int, hi: int) -> tuple[int, bytes]:
    """(quality, file) at the largest quality in [lo, hi] whose file has at most ``budget`` bytes, found by
    bisection (sizes grow with quality almost everywhere); the lowest quality when none fits."""
    best = (lo, _save(image, fmt, lo, opts))
    if len(best[1]) > budget:
        return best
    while lo < hi:
        mid = (lo + hi + 1) // 2
        data = _save(image, fmt, mid, opts)
        if len(data) <= budget:
            lo, best = mid, (mid, data)
        else:
            hi = mid - 1
    return best


def pixel_codec_images(pixels: np.ndarray, budget: float, fmt: str, opts: dict, lo: int, hi: int) -> dict:
    """Decoded images and byte facts of one codec at a per-image budget."""
    decoded, sizes, qualities = [], [], []
    for image in pixels:
        q, data = fit_budget(image, budget, fmt, opts, lo, hi)
        with Image.open(io.BytesIO(data)) as im:
            decoded.append(np.asarray(im.convert("RGB")))
        sizes.append(len(data))
        qualities.append(q)
    sizes_a = np.array(sizes, float)
    return {"pixels": np.stack(decoded), "mean_bytes": float(sizes_a.mean()),
            "fit_fraction": float((sizes_a <= budget).mean()), "mean_quality": float(np.mean(qualities)),
            "budget_bytes": float(budget)}


def _mean_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([min(psnr(x, y), 100.0) for x, y in zip(a, b)]))


class Scorer:
    """Correctness of predictions on the test set, three views, and bootstrap intervals."""

    def __init__(self, labels: np.ndarray, classnames: list[str], heldout: list[str]) -> None:
        self.labels, self.classnames = labels, classnames
        unseen = [classnames.index(c) for c in heldout]
        self.views = {"all": (np.ones(len(labels), bool), list(range(len(classnames)))),
                      "seen": (~np.isin(labels, unseen), [c for c in range(len(classnames)) if c not in unseen]),
                      "unseen": (np.isin(labels, unseen), unseen)}
        rng = np.random.default_rng(0)
        self.resamples = {v: rng.integers(0, int(mask.sum()), (BOOTSTRAP, int(mask.sum())))
                          for v, (mask, _) in self.views.items()}
        self.reference: dict[str, np.ndarray] = {}
        self.reference_top1: dict[str, float] = {}

    def score(self, image_emb: Any, class_emb: Any, reference: bool = False) -> dict:
        logits = (image_emb.float() @ class_emb.float().T).cpu().numpy()
        out = {}
        for view, (mask, classes) in self.views.items():
            sub = logits[mask][:, classes]
            truth = np.searchsorted(classes, self.labels[mask]) if view != "unseen" else \
                np.array([classes.index(int(y)) for y in self.labels[mask]])
            order = np.argsort(-sub, axis=1, kind="stable")
            k = min(5, len(classes))
            top1 = (order[:, 0] == truth).astype(float)
            top5 = (order[:, :k] == truth[:, None]).any(axis=1).astype(float)
            boot = top1[self.resamples[view]].mean(axis=1)
            if reference:
                self.reference[view], self.reference_top1[view] = boot, float(top1.mean())
            rel = boot / np.maximum(self.reference[view], 1e-12)
            out[view] = {"n": int(mask.sum()), "classes": len(classes), "chance_top1": 1 / len(classes),
                         "top1": float(top1.mean()), "top1_ci95": _ci(boot), "top5": float(top5.mean()), "top5_k": k,
                         "top5_ci95": _ci(top5[self.resamples[view]].mean(axis=1)),
                         "relative_top1": float(top1.mean() / max(self.reference_top1[view], 1e-12)),
                         "relative_top1_ci95": _ci(rel)}
        return out


def _ci(samples: np.ndarray) -> list[float]:
    return [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]


def stage_evaluate(run: Run, rates: dict, students: dict, teacher_seconds: float,
                   log: Callable[[str], None] = print) -> dict:
    """All rows on the stored test images (see the module doc)."""
    test = run.datasets()["test"]
    classnames = list(test.classnames or [])
    pixels = load_pixels(test.items, 32)
    dev = run.device
    teacher, extra = load_checkpoint(run.out / "teacher.pt", device=dev)
    templates = extra["templates"]
    scorer = Scorer(test.labels(), classnames, run.scale.heldout)
    rows = []

    def row(name: str, kind: str, rate: str | None, model: Any, emb: Any, seconds: float, **facts: Any) -> None:
        t_cls = class_text_embeddings(model, classnames, templates)
        scores = scorer.score(emb, t_cls, reference=kind == "teacher_rgb")
        # the reference row's relative accuracy uses the reference itself: computed after setting it
        rows.append({"name": name, "kind": kind, "rate": rate, "train_seconds": teacher_seconds, **facts,
                     "eval_seconds": round(seconds, 2), **scores})
        log(f"  {name}: top-1 {scores['all']['top1']:.3f} (unseen 2-way {scores['unseen']['top1']:.3f})")

    t0 = time.perf_counter()
    row("teacher on RGB", "teacher_rgb", None, teacher, embed_pixels(teacher, pixels, device=dev),
        time.perf_counter() - t0,
        mean_bytes=float(RAW_BYTES), compression=1.0, psnr=None,
        trainable_fraction=extra.get("trainable_fraction"))
    for rate, info in rates.items():
        settings = GaussianSettings.from_dict(info["settings"])
        t0 = time.perf_counter()
        encoded = GaussianCache(settings, run.cache).get(list(pixels))
        stats = gs_byte_stats(encoded)
        renders = np.stack([splatcodec.render(e.splats, 32, 32, threads=1) for e in encoded])
        gs_facts = {"mean_bytes": stats["mean_bytes"], "compression": stats["compression"],
                    "fp16_bytes": stats["fp16_bytes"], "fp16_compression": stats["fp16_compression"],
                    "mean_gaussians": stats["mean_gaussians"], "psnr": _mean_psnr(renders, pixels)}
        row(f"teacher on GS render {rate}", "teacher_gs_render", rate, teacher,
            embed_pixels(teacher, renders, device=dev), time.perf_counter() - t0, **gs_facts,
            trainable_fraction=extra.get("trainable_fraction"))
        budget = info["val_stats"]["mean_bytes"]  # the rate's per-image budget, fixed on validation images
        for name, fmt, opts, lo, hi in PIXEL_CODECS:
            t0 = time.perf_counter()
            coded = pixel_codec_images(pixels, budget, fmt, opts, lo, hi)
            row(f"teacher on {name.upper()} {rate}", f"teacher_{name}", rate, teacher,
                embed_pixels(teacher, coded["pixels"], device=dev), time.perf_counter() - t0,
                **{k: v for k, v in coded.items() if k != "pixels"}, compression=RAW_BYTES / coded["mean_bytes"],
                psnr=_mean_psnr(coded["pixels"], pixels), trainable_fraction=extra.get("trainable_fraction"))
        for tag, st in students.items():
            if st["rate"] != rate:
                continue
            model, sx = load_checkpoint(run.out / st["contrastive"]["dir"] / "checkpoint.pt", device=dev)
            t0 = time.perf_counter()
            emb = embed_splats(model, [e.splats for e in encoded], device=dev)
            row(f"GS student {rate} seed {st['seed']}", "gs_student", rate, model, emb, time.perf_counter() - t0,
                **gs_facts, seed=st["seed"], trainable_fraction=sx.get("trainable_fraction"),
                train_seconds=st["distill"]["train_seconds"] + st["contrastive"]["train_seconds"])
    return {"rows": rows, "test_images": len(test), "classnames": classnames, "bootstrap": BOOTSTRAP}


def table(rows: list[dict]) -> str:
    """The markdown table of the rows (10-way on all test images, plus the unseen 2-way column)."""
    head = ("| row | mean bytes | compression | fp16 bytes | PSNR | top-1 [95 % CI] | top-5 | relative top-1 [95 % CI] "
            "| unseen 2-way top-1 | in budget | trainable | train s | eval s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        a = r["all"]
        f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
        lines.append(f"| {r['name']} | {f(r.get('mean_bytes'))} | {f(r.get('compression'))} | "
                     f"{f(r.get('fp16_bytes'), 0)} | {f(r.get('psnr'), 2)} | {a['top1']:.3f} "
                     f"[{a['top1_ci95'][0]:.3f}, {a['top1_ci95'][1]:.3f}] | {a['top5']:.3f} | "
                     f"{a['relative_top1']:.3f} [{a['relative_top1_ci95'][0]:.3f}, {a['relative_top1_ci95'][1]:.3f}] | "
                     f"{r['unseen']['top1']:.3f} | {f(r.get('fit_fraction'), 2)} | "
                     f"{f(r.get('trainable_fraction'), 3)} | "
                     f"{f(r.get('train_seconds'), 0)} | {f(r.get('eval_seconds'), 1)} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Top-1 against mean bytes per image for the GS student, the teacher on GS renders, WebP and JPEG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for kind, label, marker in (("gs_student", "GS student (on .gsplat)", "o"),
                                ("teacher_gs_render", "teacher on GS render", "s"),
                                ("teacher_webp", "teacher on WebP", "^"), ("teacher_jpeg", "teacher on JPEG", "v")):
        pts = sorted((r["mean_bytes"], r["all"]["top1"], r["all"]["top1_ci95"]) for r in rows if r["kind"] == kind)
        if pts:
            x, y = [p[0] for p in pts], [p[1] for p in pts]
            err = np.array([[p[1] - p[2][0] for p in pts], [p[2][1] - p[1] for p in pts]])
            ax.errorbar(x, y, yerr=err, marker=marker, label=label, capsize=3, linestyle="-" if kind != "gs_student"
                        else "none")
    ref = next(r for r in rows if r["kind"] == "teacher_rgb")
    ax.axhline(ref["all"]["top1"], color="grey", linestyle="--", label=f"teacher on RGB ({RAW_BYTES} B)")
    ax.set_xscale("log")
    ax.set_xlabel("mean bytes per image (real files, headers counted)")
    ax.set_ylabel("zero-shot top-1 (10 classes, CIFAR-10 test)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
